// Small text helpers, the one copy for plugins and the core: ASCII case and
// blanks (HTTP tokens, headers, config values, AWS files, Redis error codes;
// locale-independent on purpose), UTF-8 aware truncation and human-readable
// durations for rejection reasons. Header-only, plain C++20.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace ingestd::common {

constexpr char ascii_lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

// Case-insensitive ASCII comparison (header names, enum words).
constexpr bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  }
  return true;
}

// Without leading and trailing spaces, tabs, CR and LF.
constexpr std::string_view trim(std::string_view s) {
  auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!s.empty() && blank(s.front()))
    s.remove_prefix(1);
  while (!s.empty() && blank(s.back()))
    s.remove_suffix(1);
  return s;
}

// The length of the longest prefix of `s` that is at most `max_bytes` long
// and does not split a UTF-8 character (s is assumed to be valid UTF-8, as
// every JSON string the host parsed is).
constexpr size_t utf8_prefix_length(std::string_view s, size_t max_bytes) {
  if (s.size() <= max_bytes) return s.size();
  size_t n = max_bytes;
  // s[n] is the first byte left out: back off while it continues a character.
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80)
    --n;
  return n;
}

// Milliseconds the way config spells durations: 86400000 -> "24h",
// 5400000 -> "1h30m", 1500 -> "1s500ms", 0 -> "0ms".
inline std::string format_duration_ms(int64_t ms) {
  if (ms <= 0) return "0ms";
  struct Unit {
    int64_t factor;
    const char *name;
  };
  static constexpr Unit kUnits[] = {{3600000, "h"}, {60000, "m"}, {1000, "s"}, {1, "ms"}};
  std::string out;
  for (const Unit &u : kUnits) {
    if (ms >= u.factor) {
      out += std::to_string(ms / u.factor);
      out += u.name;
      ms %= u.factor;
    }
  }
  return out;
}

}  // namespace ingestd::common
