// Rate-limited logging: at most one line per interval for a repeating
// condition, counting what was held back. The one copy used by the outputs
// (and the core when it wants one). Header-only, plain C++20: the caller
// writes the line itself, through host->log or the core's logger.
#pragma once

#include <cstdint>

namespace ingestd::common {

class LogLimiter {
 public:
  constexpr LogLimiter() = default;  // once a minute
  constexpr explicit LogLimiter(uint64_t interval_ms) : interval_ms_(interval_ms) {}

  // True when a line may be written at now_ms: the first one, or interval_ms
  // after the last one written. False counts the line as held back.
  constexpr bool allow(uint64_t now_ms) {
    if (logged_ && now_ms - last_ms_ < interval_ms_) {
      ++held_;
      return false;
    }
    logged_ = true;
    last_ms_ = now_ms;
    skipped_ = held_;
    held_ = 0;
    return true;
  }

  // Lines held back before the one allow() just let through ("N more like it").
  constexpr uint64_t skipped() const { return skipped_; }

  // The condition ended: the next line goes out at once.
  constexpr void reset() {
    logged_ = false;
    held_ = skipped_ = 0;
  }

 private:
  uint64_t interval_ms_ = 60000;
  uint64_t last_ms_ = 0;
  uint64_t held_ = 0;
  uint64_t skipped_ = 0;
  bool logged_ = false;
};

}  // namespace ingestd::common
