// parse_listen_address and its printing.
#include "metrics/listen_address.h"

#include <fmt/core.h>

#include <charconv>

namespace lens::metrics {
namespace {

bool parse_port(std::string_view s, int& port) {
  if (s.empty() || s.size() > 5) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), port);
  return ec == std::errc() && end == s.data() + s.size() && port <= 65535;
}

}  // namespace

std::string ListenAddress::text() const {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

util::Result<ListenAddress> parse_listen_address(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return util::fail(util::ErrorCode::invalid_argument,
                      fmt::format("'{}': {} (expected PORT for 127.0.0.1, HOST:PORT, or [IPV6]:PORT; "
                                  "0.0.0.0:PORT for every interface)",
                                  text, why));
  };
  ListenAddress a;
  std::string_view port = text;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return bad("an IPv6 address in brackets must be followed by :PORT");
    a.host = std::string(text.substr(1, close - 1));
    port = text.substr(close + 2);
  } else if (const auto colon = text.rfind(':'); colon != std::string_view::npos) {
    a.host = std::string(text.substr(0, colon));
    port = text.substr(colon + 1);
    if (a.host.find(':') != std::string::npos) return bad("put an IPv6 address in brackets");
  }
  if (a.host.empty()) return bad("no host before ':'");
  for (char c : a.host)
    if (c == ' ' || c == '\t' || c == '/' || c == '[' || c == ']') return bad("not a host name or address");
  if (!parse_port(port, a.port)) return bad("the port must be a number from 0 to 65535");
  return a;
}

}  // namespace lens::metrics
