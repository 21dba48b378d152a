// SHA-256 of byte strings (content_sha256 of inputs, pinned rank tables).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace lens::util {

using Sha256 = std::array<std::uint8_t, 32>;

[[nodiscard]] Sha256 sha256(std::string_view bytes);
[[nodiscard]] std::string to_hex(const Sha256& digest);

}  // namespace lens::util
