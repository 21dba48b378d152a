// Secret registry and redaction rules.
#include "util/redact.h"

#include <algorithm>
#include <cctype>
#include <mutex>
#include <vector>

namespace lens::util {
namespace {

std::mutex g_mutex;
std::vector<std::string>& secrets() {
  static std::vector<std::string> s;
  return s;
}

void replace_all(std::string& text, std::string_view needle) {
  if (needle.empty()) return;
  std::size_t pos = 0;
  while ((pos = text.find(needle, pos)) != std::string::npos) {
    text.replace(pos, needle.size(), "***");
    pos += 3;
  }
}

bool is_token_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' || c == '~' ||
         c == '+' || c == '/' || c == '=';
}

// Masks what follows `marker` up to the first byte for which `stop` is true.
template <typename Stop>
void mask_after(std::string& text, std::string_view marker, Stop stop, bool case_insensitive) {
  std::size_t pos = 0;
  while (true) {
    std::size_t at;
    if (case_insensitive) {
      auto it = std::search(text.begin() + static_cast<std::ptrdiff_t>(pos), text.end(), marker.begin(),
                            marker.end(), [](char a, char b) {
                              return std::tolower(static_cast<unsigned char>(a)) ==
                                     std::tolower(static_cast<unsigned char>(b));
                            });
      if (it == text.end()) return;
      at = static_cast<std::size_t>(it - text.begin());
    } else {
      at = text.find(marker, pos);
      if (at == std::string::npos) return;
    }
    const std::size_t start = at + marker.size();
    std::size_t end = start;
    while (end < text.size() && !stop(text[end]))
      ++end;
    if (end > start && text.compare(start, end - start, "***") != 0) {
      text.replace(start, end - start, "***");
    }
    pos = start + 3;
    if (pos > text.size()) return;
  }
}

void mask_url_passwords(std::string& text) {
  std::size_t pos = 0;
  while ((pos = text.find("://", pos)) != std::string::npos) {
    const std::size_t auth_start = pos + 3;
    std::size_t end = auth_start;
    while (end < text.size() && text[end] != '/' && text[end] != ' ' && text[end] != '@' &&
           text[end] != '\n' && text[end] != '"' && text[end] != '\'')
      ++end;
    if (end < text.size() && text[end] == '@') {
      const std::size_t colon = text.find(':', auth_start);
      if (colon != std::string::npos && colon < end && end - colon > 1) {
        text.replace(colon + 1, end - colon - 1, "***");
      }
    }
    pos = auth_start;
  }
}

}  // namespace

void register_secret(std::string_view secret) {
  if (secret.size() < 4) return;
  std::lock_guard lock(g_mutex);
  auto& s = secrets();
  if (std::find(s.begin(), s.end(), secret) == s.end()) s.emplace_back(secret);
  // Longest first, so a secret that contains another is masked whole.
  std::sort(s.begin(), s.end(), [](const auto& a, const auto& b) { return a.size() > b.size(); });
}

std::string redact(std::string_view text) {
  std::string out(text);
  {
    std::lock_guard lock(g_mutex);
    for (const auto& s : secrets())
      replace_all(out, s);
  }
  mask_after(
      out, "Bearer ", [](char c) { return !is_token_char(c); }, true);
  mask_after(
      out, "password=", [](char c) { return c == ' ' || c == '&' || c == '\n'; }, true);
  mask_url_passwords(out);
  return out;
}

}  // namespace lens::util
