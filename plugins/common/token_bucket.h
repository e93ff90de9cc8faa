// A token bucket on a caller's clock: the one copy used by the core (API key
// rate limits) and by plugins (the firehose output's call, record and byte
// pacing). Header-only, plain C++20: no host table, no core header.
#pragma once

#include <cstdint>

namespace ingestd::common {

// `rate` tokens a second up to `burst`; starts full. A request for more than
// the burst is admitted when the bucket is full and drives it negative (a
// debt), so a 4 MiB call at 1 MiB/s waits ~4 s before the next one instead of
// never going out, and the long-run rate still holds. rate <= 0: unlimited.
// Time never goes backwards inside the bucket (an older now_ms is ignored).
class TokenBucket {
 public:
  TokenBucket() = default;
  TokenBucket(double rate, double burst, uint64_t now_ms)
      : rate_(rate), burst_(burst), tokens_(burst), last_ms_(now_ms) {}

  bool unlimited() const { return rate_ <= 0; }
  double tokens(uint64_t now_ms) {
    refill(now_ms);
    return tokens_;
  }

  // Milliseconds until take(n) would be admitted; 0: now.
  uint64_t wait_ms(double n, uint64_t now_ms) {
    if (unlimited()) return 0;
    refill(now_ms);
    double need = n < burst_ ? n : burst_;
    if (tokens_ >= need) return 0;
    double ms = (need - tokens_) * 1000.0 / rate_;
    auto w = static_cast<uint64_t>(ms);
    return static_cast<double>(w) < ms ? w + 1 : w;
  }

  // Takes n tokens, admitted or not (the caller checked wait_ms).
  void take(double n, uint64_t now_ms) {
    if (unlimited()) return;
    refill(now_ms);
    tokens_ -= n;
  }

  // Takes n tokens if wait_ms(n) is 0; else false and, when wait is given,
  // *wait = wait_ms(n).
  bool try_take(double n, uint64_t now_ms, uint64_t *wait = nullptr) {
    uint64_t w = wait_ms(n, now_ms);
    if (w > 0) {
      if (wait) *wait = w;
      return false;
    }
    take(n, now_ms);
    return true;
  }

  // Empties the bucket (after the peer said "slow down"); a debt stays.
  void drain(uint64_t now_ms) {
    if (unlimited()) return;
    refill(now_ms);
    if (tokens_ > 0) tokens_ = 0;
  }

 private:
  void refill(uint64_t now_ms) {
    if (now_ms > last_ms_) {
      tokens_ += static_cast<double>(now_ms - last_ms_) * rate_ / 1000.0;
      if (tokens_ > burst_) tokens_ = burst_;
      last_ms_ = now_ms;
    }
  }

  double rate_ = 0;
  double burst_ = 0;
  double tokens_ = 0;
  uint64_t last_ms_ = 0;
};

}  // namespace ingestd::common
