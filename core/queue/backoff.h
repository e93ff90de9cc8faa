// Capped exponential backoff with jitter, for retrying an output's batches.
//
// Pure arithmetic: no clock, no global random state. The caller passes the
// attempt number and a random generator, so tests are deterministic.
//
// Exact formula, for attempt n >= 1 (n = consecutive failed batches):
//
//   ceiling(n) = min(max_ms, initial_ms * 2^(n-1))      (saturating, no overflow)
//   floor(n)   = min(initial_ms / 2, ceiling(n))         (integer division)
//   delay(n)   = floor(n) + rng() % (ceiling(n) - floor(n) + 1)
//
// i.e. uniform over the closed range [floor(n), ceiling(n)]: "full jitter"
// (spreads the retries of many workers hitting the same dead peer) but never
// below half the initial delay, so a failing output is never hammered in a
// tight loop by an unlucky draw of 0. The modulo bias is at most
// range / 2^64, negligible for millisecond ranges.
//
// attempt 0 means "no failure": the delay is 0 and rng is not called.
#pragma once

#include <concepts>
#include <cstdint>
#include <limits>
#include <type_traits>

namespace ingestd {

// A random source: callable with no argument, returning an unsigned 64-bit
// value spread over the whole range (std::mt19937_64, or a fixed sequence in
// tests).
template <typename Rng>
concept BackoffRng =
    std::invocable<Rng &> && std::convertible_to<std::invoke_result_t<Rng &>, uint64_t>;

class Backoff {
 public:
  constexpr Backoff(uint64_t initial_ms, uint64_t max_ms)
      : initial_ms_(initial_ms), max_ms_(max_ms) {}

  constexpr uint64_t initial_ms() const { return initial_ms_; }
  constexpr uint64_t max_ms() const { return max_ms_; }

  // min(max_ms, initial_ms * 2^(attempt-1)); 0 for attempt 0.
  constexpr uint64_t ceiling_ms(uint32_t attempt) const {
    if (attempt == 0) return 0;
    const uint32_t shift = attempt - 1;
    if (initial_ms_ == 0) return 0;
    // initial << shift would exceed max (or overflow): the cap wins.
    if (shift >= 64 || initial_ms_ > (max_ms_ >> shift)) return max_ms_;
    return initial_ms_ << shift;
  }

  // min(initial_ms / 2, ceiling_ms(attempt)).
  constexpr uint64_t floor_ms(uint32_t attempt) const {
    const uint64_t ceiling = ceiling_ms(attempt);
    const uint64_t half = initial_ms_ / 2;
    return half < ceiling ? half : ceiling;
  }

  // A delay drawn uniformly from [floor_ms(attempt), ceiling_ms(attempt)].
  template <BackoffRng Rng>
  uint64_t next_delay_ms(uint32_t attempt, Rng &rng) const {
    if (attempt == 0) return 0;
    const uint64_t lo = floor_ms(attempt);
    const uint64_t hi = ceiling_ms(attempt);
    const uint64_t r = static_cast<uint64_t>(rng());
    const uint64_t span = hi - lo;
    if (span == std::numeric_limits<uint64_t>::max()) return r;  // [0, 2^64-1]: any value
    return lo + r % (span + 1);
  }

 private:
  uint64_t initial_ms_;
  uint64_t max_ms_;
};

}  // namespace ingestd
