// UTF-8 truncation and duration formatting (see text.h).
#include "common/text.h"

namespace ingestd::common {

size_t utf8_prefix_length(std::string_view s, size_t max_bytes) {
  if (s.size() <= max_bytes) return s.size();
  size_t n = max_bytes;
  // s[n] is the first byte left out: back off while it continues a character.
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80)
    --n;
  return n;
}

std::string format_duration_ms(int64_t ms) {
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
