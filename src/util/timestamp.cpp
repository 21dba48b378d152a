// parse_timestamp: a strict, allocation-free reader of ISO 8601 / PostgreSQL timestamps.
#include "util/timestamp.h"

#include <cstdint>

namespace lens::util {
namespace {

class Cursor {
 public:
  explicit Cursor(std::string_view s) : s_(s) {}
  [[nodiscard]] bool done() const { return i_ == s_.size(); }
  [[nodiscard]] char peek() const { return done() ? '\0' : s_[i_]; }
  bool eat(char c) {
    if (peek() != c) return false;
    ++i_;
    return true;
  }
  // Exactly `n` digits.
  bool digits(int n, int& out) {
    out = 0;
    for (int k = 0; k < n; ++k) {
      const char c = peek();
      if (c < '0' || c > '9') return false;
      out = out * 10 + (c - '0');
      ++i_;
    }
    return true;
  }

 private:
  std::string_view s_;
  std::size_t i_ = 0;
};

}  // namespace

std::optional<std::chrono::system_clock::time_point> parse_timestamp(std::string_view text) {
  using namespace std::chrono;
  Cursor c(text);
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
  if (!c.digits(4, y) || !c.eat('-') || !c.digits(2, mo) || !c.eat('-') || !c.digits(2, d))
    return std::nullopt;
  const year_month_day date{year{y}, month{static_cast<unsigned>(mo)}, day{static_cast<unsigned>(d)}};
  if (!date.ok()) return std::nullopt;
  std::int64_t micros = 0;
  if (c.eat('T') || c.eat(' ')) {
    if (!c.digits(2, h) || !c.eat(':') || !c.digits(2, mi)) return std::nullopt;
    if (c.eat(':')) {
      if (!c.digits(2, sec)) return std::nullopt;
      if (c.eat('.')) {
        // Up to microseconds count; further digits are read and dropped.
        int n = 0;
        for (char ch = c.peek(); ch >= '0' && ch <= '9'; ch = c.peek()) {
          if (n < 6) micros = micros * 10 + (ch - '0');
          ++n;
          c.eat(ch);
        }
        if (n == 0) return std::nullopt;
        for (int k = n; k < 6; ++k)
          micros *= 10;
      }
    }
    // 60 is a leap second as some databases print it; counted as the next second.
    if (h > 23 || mi > 59 || sec > 60) return std::nullopt;
  }
  c.eat(' ');
  int offset_minutes = 0;
  if (c.eat('Z')) {
  } else if (c.peek() == '+' || c.peek() == '-') {
    const int sign = c.peek() == '-' ? -1 : 1;
    c.eat(c.peek());
    int oh = 0, om = 0;
    if (!c.digits(2, oh)) return std::nullopt;
    if (c.eat(':')) {
      if (!c.digits(2, om)) return std::nullopt;
    } else if (!c.done()) {
      if (!c.digits(2, om)) return std::nullopt;
    }
    if (oh > 23 || om > 59) return std::nullopt;
    offset_minutes = sign * (oh * 60 + om);
  }
  if (!c.done()) return std::nullopt;
  const auto local = sys_days(date) + hours(h) + minutes(mi) + seconds(sec) + microseconds(micros);
  return time_point_cast<system_clock::duration>(local - minutes(offset_minutes));
}

}  // namespace lens::util
