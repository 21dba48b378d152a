// The stand-in provider (tests/stand_in) started for a test: in this process, on a free
// port of 127.0.0.1, stopped when it goes; its /stats counters; the flags that point
// lens-embed at it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "stand_in_server.h"

namespace lens::test {

// --provider supermind --base-url `base_url` --model `model`: lens-embed's flags for an
// OpenAI-compatible server; the key comes from SUPERMIND_API_KEY in its environment.
std::vector<std::string> supermind_args(const std::string& base_url, const std::string& model);

// A counter of the stand-in's /stats JSON; 0 when absent (never counted).
std::int64_t stat_counter(const std::string& stats_json, const std::string& name);

class StandIn {
 public:
  explicit StandIn(stand_in::StandInOptions options);
  StandIn(const StandIn&) = delete;
  StandIn& operator=(const StandIn&) = delete;

  // False when it could not bind a port.
  [[nodiscard]] bool ok() const { return port_ > 0; }
  [[nodiscard]] int port() const { return port_; }
  // http://127.0.0.1:PORT/v1
  [[nodiscard]] std::string base_url() const;
  [[nodiscard]] std::string stats_json() const { return server_.stats_json(); }
  [[nodiscard]] std::int64_t stat(const std::string& counter) const {
    return stat_counter(stats_json(), counter);
  }
  // supermind_args(base_url(), model).
  [[nodiscard]] std::vector<std::string> provider_args(const std::string& model) const {
    return supermind_args(base_url(), model);
  }
  // 0: serve; a 5xx: answer every request with it (StandInServer::set_outage).
  void set_outage(int http_status) { server_.set_outage(http_status); }
  // Stops serving (the destructor does too); stats stay readable.
  void stop() { server_.stop(); }
  // The Files and Batch API's switches (stand_in_batch.h); POST /control/batch does the same.
  [[nodiscard]] stand_in::BatchService& batch() { return server_.batch(); }

 private:
  stand_in::StandInServer server_;
  int port_;
};

}  // namespace lens::test
