// The stand-in provider for a test (see stand_in.h).
#include "support/stand_in.h"

#include <cstdlib>

namespace lens::test {

std::int64_t stat_counter(const std::string& json, const std::string& name) {
  const auto at = json.find("\"" + name + "\":");
  if (at == std::string::npos) return 0;
  return std::strtoll(json.c_str() + at + name.size() + 3, nullptr, 10);
}

StandIn::StandIn(stand_in::StandInOptions options) : server_(std::move(options)), port_(server_.start()) {}

std::string StandIn::base_url() const {
  return "http://127.0.0.1:" + std::to_string(port_) + "/v1";
}

std::vector<std::string> supermind_args(const std::string& base_url, const std::string& model) {
  return {"--provider", "supermind", "--base-url", base_url, "--model", model};
}

}  // namespace lens::test
