// The TLS front (see tls_front.h): openssl for the certificates, nginx for TLS and HTTP/2.
#include "tls_front.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/core.h>
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "support/process.h"

namespace lens::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// serverAuth leaf certificates; SAN is what a client checks the host name against (the
// CN is ignored by modern verifiers, so it is set only for people reading the files).
constexpr const char* k_extensions = R"([server]
subjectAltName = IP:127.0.0.1, DNS:localhost
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
[other]
subjectAltName = DNS:other.example
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
)";

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

// A port nobody listens on right now. Another process may take it before nginx binds it:
// TlsFront retries the start when that happens.
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  int port = -1;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  ::close(fd);
  return port;
}

bool accepts(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

std::string nginx_binary() {
  // Debian puts it in /usr/sbin, which is not on every user's PATH.
  return fs::exists("/usr/sbin/nginx") ? "/usr/sbin/nginx" : "nginx";
}

// Every body is held in memory (client_body_buffer_size, proxy_buffering off): nginx's
// workers run as nobody when started by root, and may not be able to enter `dir` for
// temporary files. Request bodies are buffered whole, so that a request can be sent to
// the stand-in again (proxy_next_upstream, below).
std::string nginx_config(const std::string& dir, int port, int mismatch_port, int upstream_port,
                         const TestPki& pki) {
  return fmt::format(R"(worker_processes 1;
pid {0}/nginx.pid;
error_log {0}/error.log info;
daemon off;
events {{ worker_connections 1024; }}
http {{
  log_format lens '$connection $connection_requests $server_protocol $status $msec $request_time $server_port';
  access_log {0}/access.log lens;
  client_body_temp_path {0}/tmp/body;
  proxy_temp_path {0}/tmp/proxy;
  fastcgi_temp_path {0}/tmp/fastcgi;
  uwsgi_temp_path {0}/tmp/uwsgi;
  scgi_temp_path {0}/tmp/scgi;
  client_max_body_size 256m;
  client_body_buffer_size 256m;
  proxy_buffering off;
  proxy_read_timeout 300s;
  # The stand-in (cpp-httplib) listens with a backlog of 5: of 16 connections opened at
  # once, some are dropped or reset before it accepts them. Such a request never reached
  # it, so nginx sends it again (to the same server, listed three times, never marked
  # down): the client side, which the tests measure, sees only answers.
  proxy_next_upstream error timeout non_idempotent;
  upstream stand_in {{
    server 127.0.0.1:{3} max_fails=0;
    server 127.0.0.1:{3} max_fails=0;
    server 127.0.0.1:{3} max_fails=0;
    keepalive 64;
  }}
  server {{
    listen 127.0.0.1:{1} ssl http2;
    ssl_certificate {4};
    ssl_certificate_key {5};
    location / {{
      proxy_pass http://stand_in;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
  server {{
    listen 127.0.0.1:{2} ssl http2;
    ssl_certificate {6};
    ssl_certificate_key {7};
    location / {{
      proxy_pass http://stand_in;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
}}
)",
                     dir, port, mismatch_port, upstream_port, pki.server_cert, pki.server_key, pki.other_cert,
                     pki.other_key);
}

}  // namespace

std::optional<TestPki> make_test_pki(const std::string& dir, std::string& error) {
  fs::create_directories(dir);
  TestPki p;
  p.ca_cert = dir + "/ca.pem";
  p.server_cert = dir + "/server.pem";
  p.server_key = dir + "/server.key";
  p.other_cert = dir + "/other.pem";
  p.other_key = dir + "/other.key";
  const std::string ext = dir + "/extensions.cnf";
  write_file(ext, k_extensions);
  const std::vector<std::string> ec = {"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"};
  auto req = [&](std::vector<std::string> args) {
    std::vector<std::string> argv = {"openssl", "req"};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  };
  std::vector<std::vector<std::string>> steps;
  auto ca = req({"-x509", "-days", "2", "-subj", "/CN=lens-embed test CA", "-keyout", dir + "/ca.key", "-out",
                 p.ca_cert, "-addext", "basicConstraints=critical,CA:TRUE", "-addext",
                 "keyUsage=critical,keyCertSign,cRLSign"});
  ca.insert(ca.begin() + 3, ec.begin(), ec.end());
  steps.push_back(ca);
  int serial = 2;
  for (const auto& [name, cn, cert, key] :
       {std::tuple{"server", "127.0.0.1", p.server_cert, p.server_key},
        std::tuple{"other", "other.example", p.other_cert, p.other_key}}) {
    const std::string csr = dir + "/" + name + ".csr";
    auto r = req({"-new", "-subj", std::string("/CN=") + cn, "-keyout", key, "-out", csr});
    r.insert(r.begin() + 3, ec.begin(), ec.end());
    steps.push_back(r);
    steps.push_back({"openssl", "x509", "-req", "-in", csr, "-CA", p.ca_cert, "-CAkey", dir + "/ca.key",
                     "-set_serial", std::to_string(serial++), "-days", "2", "-out", cert, "-extfile", ext,
                     "-extensions", name});
  }
  for (const auto& argv : steps) {
    const Output o = run(argv, dir + "/openssl", {}, 30s);
    if (o.exit_code != 0) {
      error = fmt::format("openssl failed (exit {}): {}{}", o.exit_code, o.out, o.err);
      return std::nullopt;
    }
  }
  return p;
}

TlsFront::TlsFront(const std::string& dir, int upstream_port, const TestPki& pki) : dir_(dir) {
  fs::create_directories(dir_ + "/tmp");
  for (int attempt = 0; attempt < 5 && !ok(); ++attempt) {
    if (start_once(upstream_port, pki)) return;
  }
}

bool TlsFront::start_once(int upstream_port, const TestPki& pki) {
  port_ = free_port();
  mismatch_port_ = free_port();
  if (port_ <= 0 || mismatch_port_ <= 0 || port_ == mismatch_port_) {
    error_ = "no free port";
    return false;
  }
  const std::string conf = dir_ + "/nginx.conf";
  write_file(conf, nginx_config(dir_, port_, mismatch_port_, upstream_port, pki));
  SpawnOptions o;
  o.out_path = dir_ + "/nginx.out";
  o.err_path = dir_ + "/nginx.err";
  // -e: the error log before the configuration is read (else /var/log/nginx/error.log).
  const pid_t pid = spawn({nginx_binary(), "-p", dir_, "-c", conf, "-e", dir_ + "/error.log"}, o);
  if (pid <= 0) {
    error_ = "cannot start nginx (is it installed? scripts/install-deps.sh)";
    return false;
  }
  bool exited = false;
  const bool up = wait_until(
      [&] {
        if (try_wait(pid)) {
          exited = true;
          return true;
        }
        return accepts(port_) && accepts(mismatch_port_);
      },
      20s);
  if (up && !exited) {
    pid_ = pid;
    return true;
  }
  if (!exited) (void)kill_and_wait(pid, SIGKILL);
  error_ = "nginx did not start: " + slurp(o.err_path) + slurp(dir_ + "/error.log");
  return false;
}

TlsFront::~TlsFront() {
  stop();
}

void TlsFront::stop() {
  if (pid_ <= 0) return;
  // SIGQUIT: graceful shutdown; requests in progress are answered and logged first.
  if (!try_wait(pid_)) {
    ::kill(pid_, SIGQUIT);
    if (wait_exit(pid_, 20s) == k_timed_out) error_ = "nginx did not stop within 20 s (killed)";
  }
  pid_ = -1;
}

std::string TlsFront::base_url() const {
  return fmt::format("https://127.0.0.1:{}/v1", port_);
}

std::string TlsFront::mismatch_base_url() const {
  return fmt::format("https://127.0.0.1:{}/v1", mismatch_port_);
}

std::vector<AccessLogLine> TlsFront::access_log() const {
  std::vector<AccessLogLine> lines;
  std::istringstream in(slurp(dir_ + "/access.log"));
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    AccessLogLine l;
    std::int64_t requests_on_connection = 0;
    double request_time = 0;
    if (f >> l.connection >> requests_on_connection >> l.protocol >> l.status >> l.end_s >> request_time >>
        l.port) {
      l.start_s = l.end_s - request_time;
      lines.push_back(l);
    }
  }
  return lines;
}

int max_overlap(const std::vector<AccessLogLine>& lines) {
  int best = 0;
  for (const auto& a : lines) {
    const auto n = std::count_if(lines.begin(), lines.end(), [&](const AccessLogLine& b) {
      return b.start_s <= a.start_s && a.start_s < b.end_s;
    });
    best = std::max(best, static_cast<int>(n));
  }
  return best;
}

}  // namespace lens::test
