// --metrics-addr [HOST:]PORT: where the metrics endpoint listens.
#pragma once

#include <string>
#include <string_view>

#include "util/result.h"

namespace lens::metrics {

struct ListenAddress {
  std::string host = "127.0.0.1";  // a name or an address; IPv6 without brackets
  int port = 0;                    // 0: any free port (the endpoint says which)
  // "HOST:PORT", with brackets around an IPv6 address.
  [[nodiscard]] std::string text() const;
};

// "PORT" (on 127.0.0.1: nothing is exposed beyond this machine unless asked), "HOST:PORT"
// or "[IPV6]:PORT"; "0.0.0.0:PORT" listens on every interface. PORT is 0..65535.
// On failure: invalid_argument saying which form is expected. ":PORT" is refused rather
// than guessed (elsewhere it means every interface, here a port alone means loopback).
[[nodiscard]] util::Result<ListenAddress> parse_listen_address(std::string_view text);

}  // namespace lens::metrics
