// Unit tests for the SDK's one backoff (common/backoff.h): full jitter by
// attempt, decorrelated jitter, and the Retry state that outputs and the core
// keep per retry loop.
#include "common/backoff.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <random>
#include <set>
#include <vector>

namespace ingestd::common {
namespace {

// Gives back `values` in turn, cycling, and counts the draws.
struct SeqRng {
  std::vector<uint64_t> values;
  size_t calls = 0;
  uint64_t operator()() { return values[calls++ % values.size()]; }
};

TEST(Backoff, CeilingGrowsExponentiallyAndIsCapped) {
  Backoff b(100, 1000);
  EXPECT_EQ(b.ceiling_ms(0), 0u);
  EXPECT_EQ(b.ceiling_ms(1), 100u);
  EXPECT_EQ(b.ceiling_ms(2), 200u);
  EXPECT_EQ(b.ceiling_ms(3), 400u);
  EXPECT_EQ(b.ceiling_ms(4), 800u);
  EXPECT_EQ(b.ceiling_ms(5), 1000u);
  EXPECT_EQ(b.ceiling_ms(6), 1000u);
  EXPECT_EQ(b.ceiling_ms(64), 1000u);
  EXPECT_EQ(b.ceiling_ms(65), 1000u);
  EXPECT_EQ(b.ceiling_ms(std::numeric_limits<uint32_t>::max()), 1000u);
  for (uint32_t n = 1; n < 10; ++n)
    EXPECT_EQ(b.floor_ms(n), 50u) << n;
}

TEST(Backoff, NoOverflowWithHugeValues) {
  const uint64_t max = std::numeric_limits<uint64_t>::max();
  Backoff b(uint64_t{1} << 40, max);
  EXPECT_EQ(b.ceiling_ms(24), uint64_t{1} << 63);
  EXPECT_EQ(b.ceiling_ms(25), max);
  EXPECT_EQ(b.ceiling_ms(1000), max);
  SeqRng rng{{12345}};
  EXPECT_GE(b.next_delay_ms(1000, rng), b.floor_ms(1000));
  Backoff zero(0, max);
  EXPECT_EQ(zero.ceiling_ms(3), 0u);
  EXPECT_EQ(zero.next_delay_ms(3, rng), 0u);
  // floor 0 (1/2 == 0), ceiling 2^64-1: the range is every uint64, the draw as is.
  Backoff whole(1, max);
  EXPECT_EQ(whole.floor_ms(100), 0u);
  EXPECT_EQ(whole.ceiling_ms(100), max);
  SeqRng big{{max, 7}};
  EXPECT_EQ(whole.next_delay_ms(100, big), max);
  EXPECT_EQ(whole.next_delay_ms(100, big), 7u);
}

TEST(Backoff, ExactValuesFromFixedRng) {
  Backoff b(100, 1000);
  // attempt 1: [50, 100], span 51; attempt 3: [50, 400], span 351.
  SeqRng rng{{0, 50, 51, 1000, 350, 351}};
  EXPECT_EQ(b.next_delay_ms(1, rng), 50u);
  EXPECT_EQ(b.next_delay_ms(1, rng), 100u);
  EXPECT_EQ(b.next_delay_ms(1, rng), 50u);              // 51 % 51 == 0
  EXPECT_EQ(b.next_delay_ms(1, rng), 50u + 1000 % 51);  // 69
  EXPECT_EQ(b.next_delay_ms(3, rng), 400u);
  EXPECT_EQ(b.next_delay_ms(3, rng), 50u);
  EXPECT_EQ(rng.calls, 6u);
}

TEST(Backoff, AttemptZeroIsNoDelayAndDrawsNothing) {
  Backoff b(100, 1000);
  SeqRng rng{{999}};
  EXPECT_EQ(b.next_delay_ms(0, rng), 0u);
  EXPECT_EQ(rng.calls, 0u);
}

TEST(Backoff, MaxBelowInitial) {
  Backoff b(100, 30);  // cap wins, floor never above the cap
  SeqRng rng{{0, 30}};
  EXPECT_EQ(b.ceiling_ms(1), 30u);
  EXPECT_EQ(b.floor_ms(1), 30u);
  EXPECT_EQ(b.next_delay_ms(1, rng), 30u);
  EXPECT_EQ(b.next_delay_ms(5, rng), 30u);
}

TEST(Backoff, JitterStaysWithinBoundsAndSpreads) {
  Backoff b(100, 30000);
  std::mt19937_64 rng(42);
  for (uint32_t n = 1; n <= 12; ++n) {
    const uint64_t lo = b.floor_ms(n), hi = b.ceiling_ms(n);
    uint64_t seen_min = std::numeric_limits<uint64_t>::max(), seen_max = 0;
    for (int i = 0; i < 2000; ++i) {
      const uint64_t d = b.next_delay_ms(n, rng);
      ASSERT_GE(d, lo) << n;
      ASSERT_LE(d, hi) << n;
      seen_min = std::min(seen_min, d);
      seen_max = std::max(seen_max, d);
    }
    // Full jitter: the draws cover the range, not a point.
    EXPECT_LE(seen_min, lo + (hi - lo) / 10) << n;
    EXPECT_GE(seen_max, hi - (hi - lo) / 10) << n;
  }
}

TEST(Backoff, DecorrelatedStaysBetweenInitialAndThreeTimesThePrevious) {
  Backoff b(100, 30000);
  SplitMix64 rng(1);
  uint64_t prev = 0;
  for (int i = 0; i < 1000; ++i) {
    const uint64_t d = b.decorrelated_delay_ms(prev, rng);
    ASSERT_GE(d, 100u);
    ASSERT_LE(d, std::min<uint64_t>(30000, std::max<uint64_t>(100, prev) * 3));
    prev = d;
  }
  // Exact: [100, 300] for the first failure, span 201.
  SeqRng seq{{0, 200, 201}};
  EXPECT_EQ(b.decorrelated_delay_ms(0, seq), 100u);
  EXPECT_EQ(b.decorrelated_delay_ms(0, seq), 300u);
  EXPECT_EQ(b.decorrelated_delay_ms(0, seq), 100u);
  // The cap holds, even where 3 * previous would overflow.
  SeqRng top{{std::numeric_limits<uint64_t>::max()}};
  EXPECT_LE(b.decorrelated_delay_ms(std::numeric_limits<uint64_t>::max(), top), 30000u);
  Backoff low(100, 30);
  EXPECT_EQ(low.decorrelated_delay_ms(0, top), 30u);
}

TEST(Retry, GrowsWithFailuresAndStartsOverOnSuccess) {
  Retry r(Backoff(100, 1000), 7);
  EXPECT_EQ(r.failures(), 0u);
  for (uint32_t n = 1; n <= 8; ++n) {
    const uint64_t d = r.failed();
    EXPECT_EQ(r.failures(), n);
    EXPECT_GE(d, r.backoff().floor_ms(n));
    EXPECT_LE(d, r.backoff().ceiling_ms(n));
  }
  r.succeeded();
  EXPECT_EQ(r.failures(), 0u);
  EXPECT_LE(r.failed(), 100u);
}

TEST(Retry, DifferentSeedsDoNotRetryInStep) {
  // Workers seeded apart draw apart: the point of jitter.
  std::set<uint64_t> first;
  for (uint64_t seed = 0; seed < 16; ++seed) {
    Retry r(Backoff(1000, 60000), seed);
    r.failed();
    r.failed();
    first.insert(r.failed());  // attempt 3: [500, 4000]
  }
  EXPECT_GE(first.size(), 12u);
}

TEST(Retry, DecorrelatedMode) {
  Retry r(Backoff(100, 5000), 3, Jitter::Decorrelated);
  uint64_t prev = 0;
  for (int i = 0; i < 50; ++i) {
    const uint64_t d = r.failed();
    EXPECT_GE(d, 100u);
    EXPECT_LE(d, std::min<uint64_t>(5000, std::max<uint64_t>(100, prev) * 3));
    prev = d;
  }
  r.succeeded();
  EXPECT_LE(r.failed(), 300u);
}

}  // namespace
}  // namespace ingestd::common
