// Capped exponential backoff with jitter: the one copy used by the core (the
// output queue, the AWS credentials refresh) and by plugins (reconnects,
// resends, pauses). Header-only, plain C++20: no host table, no core header.
//
// Pure arithmetic: no clock, no global random state. The caller passes the
// attempt number and a random generator (or keeps a Retry, which holds a
// seeded one), so tests are deterministic.
//
// Full jitter, for attempt n >= 1 (n = consecutive failures):
//
//   ceiling(n) = min(max_ms, initial_ms * 2^(n-1))      (saturating, no overflow)
//   floor(n)   = min(initial_ms / 2, ceiling(n))         (integer division)
//   delay(n)   = floor(n) + rng() % (ceiling(n) - floor(n) + 1)
//
// i.e. uniform over the closed range [floor(n), ceiling(n)]: spreads the
// retries of many workers hitting the same dead peer, but never below half
// the initial delay, so a failing peer is never hammered in a tight loop by
// an unlucky draw of 0. The modulo bias is at most range / 2^64, negligible
// for millisecond ranges. attempt 0 means "no failure": the delay is 0 and
// rng is not called.
//
// Decorrelated jitter (AWS architecture blog, "Exponential Backoff And
// Jitter"): delay = min(max_ms, uniform[initial_ms, 3 * previous delay]),
// which grows about as fast but never repeats the same sequence.
#pragma once

#include <concepts>
#include <cstdint>
#include <limits>
#include <type_traits>

namespace ingestd::common {

// A random source: callable with no argument, returning an unsigned 64-bit
// value spread over the whole range (SplitMix64, std::mt19937_64, or a fixed
// sequence in tests).
template <typename Rng>
concept BackoffRng =
    std::invocable<Rng &> && std::convertible_to<std::invoke_result_t<Rng &>, uint64_t>;

// SplitMix64 (Steele, Lea, Flood 2014): a tiny generator whose every output
// is well mixed even from seeds that differ in one bit, so instances seeded
// with their address or the time do not retry in step.
class SplitMix64 {
 public:
  constexpr explicit SplitMix64(uint64_t seed = 0) : state_(seed) {}
  constexpr uint64_t operator()() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }

 private:
  uint64_t state_;
};

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

  // Full jitter: a delay drawn uniformly from [floor_ms(attempt), ceiling_ms(attempt)].
  template <BackoffRng Rng>
  constexpr uint64_t next_delay_ms(uint32_t attempt, Rng &rng) const {
    if (attempt == 0) return 0;
    return uniform(floor_ms(attempt), ceiling_ms(attempt), rng);
  }

  // Decorrelated jitter: min(max_ms, uniform[initial_ms, 3 * previous_ms]);
  // previous_ms 0 (the first failure) draws from [initial_ms, 3 * initial_ms].
  template <BackoffRng Rng>
  constexpr uint64_t decorrelated_delay_ms(uint64_t previous_ms, Rng &rng) const {
    const uint64_t lo = initial_ms_ < max_ms_ ? initial_ms_ : max_ms_;
    uint64_t prev = previous_ms < lo ? lo : previous_ms;
    uint64_t hi = prev > max_ms_ / 3 ? max_ms_ : prev * 3;
    if (hi < lo) hi = lo;
    return uniform(lo, hi, rng);
  }

 private:
  template <BackoffRng Rng>
  static constexpr uint64_t uniform(uint64_t lo, uint64_t hi, Rng &rng) {
    const uint64_t r = static_cast<uint64_t>(rng());
    const uint64_t span = hi - lo;
    if (span == std::numeric_limits<uint64_t>::max()) return r;  // [0, 2^64-1]: any value
    return lo + r % (span + 1);
  }

  uint64_t initial_ms_;
  uint64_t max_ms_;
};

enum class Jitter { Full, Decorrelated };

// The state of one retry loop: consecutive failures, the last delay and its
// own generator. failed() gives the next delay, succeeded() starts over.
class Retry {
 public:
  constexpr Retry(Backoff backoff, uint64_t seed, Jitter jitter = Jitter::Full)
      : backoff_(backoff), rng_(seed), jitter_(jitter) {}

  // One more failure: the delay before the next attempt.
  constexpr uint64_t failed() {
    if (failures_ < std::numeric_limits<uint32_t>::max()) ++failures_;
    last_ms_ = jitter_ == Jitter::Full ? backoff_.next_delay_ms(failures_, rng_)
                                       : backoff_.decorrelated_delay_ms(last_ms_, rng_);
    return last_ms_;
  }
  constexpr void succeeded() {
    failures_ = 0;
    last_ms_ = 0;
  }

  constexpr uint32_t failures() const { return failures_; }
  constexpr const Backoff &backoff() const { return backoff_; }
  // The generator, for a caller that draws by attempt itself (next_delay_ms).
  constexpr SplitMix64 &rng() { return rng_; }

 private:
  Backoff backoff_;
  SplitMix64 rng_;
  Jitter jitter_;
  uint32_t failures_ = 0;
  uint64_t last_ms_ = 0;
};

}  // namespace ingestd::common
