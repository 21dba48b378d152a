// A TLS front for the stand-in provider, made by the test itself: a private CA and server
// certificates from the openssl CLI, and nginx (HTTP/2 and HTTP/1.1 over TLS, by ALPN)
// proxying to the stand-in's plain HTTP/1.1. nginx, not stunnel: only an HTTP-aware front
// can multiplex many requests over one client connection, which is what the tests check.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace lens::test {

// The files of a throwaway PKI, all in one folder, valid for two days from now.
struct TestPki {
  std::string ca_cert;                  // the CA's certificate (PEM): what --ca-cert names
  std::string server_cert, server_key;  // for IP 127.0.0.1 and DNS localhost, signed by the CA
  std::string other_cert, other_key;    // for DNS other.example only, signed by the CA
};

// Makes the PKI in `dir` (created if missing) with the openssl CLI (EC P-256 keys).
// On failure: nullopt, with openssl's output in `error`.
std::optional<TestPki> make_test_pki(const std::string& dir, std::string& error);

// One request as nginx logged it.
struct AccessLogLine {
  std::int64_t connection = 0;  // nginx's serial number of the client connection
  std::string protocol;         // "HTTP/2.0", "HTTP/1.1"
  int status = 0;
  double start_s = 0, end_s = 0;  // epoch seconds, millisecond resolution
  int port = 0;                   // the listening port that took it
};

class TlsFront {
 public:
  // Starts nginx with its files in `dir` (created if missing) before
  // http://127.0.0.1:`upstream_port`. port() serves pki.server_cert, mismatch_port()
  // pki.other_cert. Ports are picked free; a start that loses a port race is retried.
  // Check ok().
  TlsFront(const std::string& dir, int upstream_port, const TestPki& pki);
  ~TlsFront();
  TlsFront(const TlsFront&) = delete;
  TlsFront& operator=(const TlsFront&) = delete;

  [[nodiscard]] bool ok() const { return pid_ > 0; }
  // Why it did not start: nginx's own messages.
  [[nodiscard]] const std::string& error() const { return error_; }
  [[nodiscard]] int port() const { return port_; }
  [[nodiscard]] int mismatch_port() const { return mismatch_port_; }
  // https://127.0.0.1:PORT/v1 of port() and of mismatch_port().
  [[nodiscard]] std::string base_url() const;
  [[nodiscard]] std::string mismatch_base_url() const;

  // Stops nginx gracefully (requests in progress finish and are logged); idempotent.
  void stop();
  // Every request nginx logged. Complete once stop() returned; before, a request whose
  // answer was just sent may not be there yet.
  [[nodiscard]] std::vector<AccessLogLine> access_log() const;

 private:
  bool start_once(int upstream_port, const TestPki& pki);

  std::string dir_, error_;
  pid_t pid_ = -1;
  int port_ = 0, mismatch_port_ = 0;
};

// The most requests in progress at one instant: for each request's start, how many
// requests had started by then and not yet ended.
int max_overlap(const std::vector<AccessLogLine>& lines);

}  // namespace lens::test
