// .env parser: one pass over the lines, setting each new variable and noting its line.
#include "cli/dotenv.h"

#include <fmt/core.h>
#include <cctype>
#include <cstdlib>
#include <fstream>

namespace lens::cli {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())))
    s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
    s.remove_suffix(1);
  return s;
}

bool valid_key(std::string_view key) {
  if (key.empty() || std::isdigit(static_cast<unsigned char>(key[0]))) return false;
  for (char c : key) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  }
  return true;
}

}  // namespace

std::optional<std::string> DotenvOrigins::source_of(const std::string& name) const {
  const auto it = line_of.find(name);
  if (it == line_of.end()) return std::nullopt;
  return fmt::format("{}:{}", path, it->second);
}

util::Result<DotenvOrigins> load_dotenv(const std::string& path) {
  DotenvOrigins origins{path, {}};
  std::ifstream in(path, std::ios::binary);
  if (!in) return origins;
  std::string line;
  int number = 0;
  auto bad = [&](std::string_view why) {
    return util::fail(util::ErrorCode::invalid_argument,
                      fmt::format("{}:{}: {} (expected KEY=VALUE)", path, number, why));
  };
  while (std::getline(in, line)) {
    ++number;
    std::string_view rest = trim(line);
    if (rest.empty() || rest.front() == '#') continue;
    if (rest.starts_with("export ")) rest = trim(rest.substr(7));
    const auto eq = rest.find('=');
    if (eq == std::string_view::npos) return bad("no '='");
    const std::string_view key = trim(rest.substr(0, eq));
    if (!valid_key(key)) return bad("invalid variable name");
    std::string_view raw = trim(rest.substr(eq + 1));
    std::string value;
    if (!raw.empty() && (raw.front() == '"' || raw.front() == '\'')) {
      const char quote = raw.front();
      std::size_t i = 1;
      bool closed = false;
      for (; i < raw.size(); ++i) {
        char c = raw[i];
        if (c == quote) {
          closed = true;
          break;
        }
        if (quote == '"' && c == '\\' && i + 1 < raw.size()) {
          const char n = raw[++i];
          c = n == 'n' ? '\n' : n == 't' ? '\t' : n == 'r' ? '\r' : n;
        }
        value.push_back(c);
      }
      if (!closed) return bad("unterminated quote");
      const std::string_view after = trim(raw.substr(i + 1));
      if (!after.empty() && after.front() != '#') return bad("text after the closing quote");
    } else {
      // Unquoted: an inline comment starts at " #".
      const auto hash = raw.find(" #");
      value = std::string(trim(hash == std::string_view::npos ? raw : raw.substr(0, hash)));
    }
    const std::string k(key);
    if (std::getenv(k.c_str()) != nullptr) continue;  // the environment wins, as does an earlier line
    ::setenv(k.c_str(), value.c_str(), /*overwrite=*/1);
    origins.line_of[k] = number;
  }
  return origins;
}

}  // namespace lens::cli
