// Unit tests for the SDK's one token bucket (common/token_bucket.h), which
// paces the firehose output and the core's API key rate limits.
#include "common/token_bucket.h"

#include <gtest/gtest.h>

namespace ingestd::common {
namespace {

TEST(TokenBucket, BurstThenRate) {
  TokenBucket b(10, 10, 1000);  // 10/s, burst 10
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(b.wait_ms(1, 1000), 0u);
    b.take(1, 1000);
  }
  EXPECT_EQ(b.wait_ms(1, 1000), 100u);
  EXPECT_EQ(b.wait_ms(1, 1050), 50u);
  EXPECT_EQ(b.wait_ms(1, 1100), 0u);
  b.take(1, 1100);
  EXPECT_EQ(b.wait_ms(1, 1100), 100u);
  // Refill caps at the burst.
  EXPECT_NEAR(b.tokens(100000), 10.0, 1e-9);
}

TEST(TokenBucket, BurstLargerThanRate) {
  TokenBucket b(10, 20, 0);
  EXPECT_TRUE(b.try_take(20, 0));
  uint64_t wait = 0;
  EXPECT_FALSE(b.try_take(1, 0, &wait));
  EXPECT_EQ(wait, 100u);
  EXPECT_TRUE(b.try_take(1, 100));  // 0.1 s later: one token
  EXPECT_FALSE(b.try_take(1, 100));
  EXPECT_NEAR(b.tokens(100000), 20.0, 1e-9);  // long idle refills only to the burst
}

TEST(TokenBucket, RequestsLargerThanTheBurstGoWhenFull) {
  TokenBucket b(1000, 1000, 0);       // bytes: 1000/s
  EXPECT_EQ(b.wait_ms(4000, 0), 0u);  // admitted with a full bucket
  b.take(4000, 0);
  // Debt of 3000 plus a full bucket's worth before the next big request.
  EXPECT_EQ(b.wait_ms(4000, 0), 4000u);
  EXPECT_EQ(b.wait_ms(1, 0), 3001u);
  EXPECT_EQ(b.wait_ms(4000, 4000), 0u);
}

TEST(TokenBucket, UnlimitedAndDrain) {
  TokenBucket u(0, 0, 0);
  EXPECT_TRUE(u.unlimited());
  u.take(1e9, 0);
  EXPECT_EQ(u.wait_ms(1e9, 0), 0u);
  EXPECT_TRUE(u.try_take(1e9, 0));
  TokenBucket b(100, 100, 0);
  b.drain(0);
  EXPECT_EQ(b.wait_ms(1, 0), 10u);
  EXPECT_EQ(b.wait_ms(1, 5), 5u);  // time never goes backwards inside the bucket
  EXPECT_EQ(b.wait_ms(1, 3), 5u);
  b.take(5, 5);  // a debt survives a drain
  b.drain(5);
  EXPECT_NEAR(b.tokens(5), -4.5, 1e-9);
}

}  // namespace
}  // namespace ingestd::common
