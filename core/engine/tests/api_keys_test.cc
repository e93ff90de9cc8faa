#include "engine/api_keys.h"

#include <gtest/gtest.h>

namespace ingestd {
namespace {

TEST(ConstantTimeEqual, ComparesWholeStrings) {
  EXPECT_TRUE(constant_time_equal("abcdef", "abcdef"));
  EXPECT_FALSE(constant_time_equal("abcdef", "abcdeg"));
  EXPECT_FALSE(constant_time_equal("abcde", "abcdef"));
  EXPECT_FALSE(constant_time_equal("abcdef", "abcde"));
  EXPECT_FALSE(constant_time_equal("", "a"));
  EXPECT_FALSE(constant_time_equal("a", ""));
  EXPECT_TRUE(constant_time_equal("", ""));
}

TEST(ApiKeys, FindsTheNameOfTheMatchingKey) {
  auto keys = ApiKeys::from_entries({{"k1k1k1k1k1k1k1k1", "one"}, {"k2k2k2k2k2k2k2k2", "two"}});
  ASSERT_NE(keys->find("k2k2k2k2k2k2k2k2"), nullptr);
  EXPECT_EQ(*keys->find("k2k2k2k2k2k2k2k2"), "two");
  EXPECT_EQ(keys->find("k2k2k2k2k2k2k2k"), nullptr);
  EXPECT_EQ(keys->find(""), nullptr);
}

TEST(TokenBucket, RefillsAtTheRateUpToTheBurst) {
  TokenBucket b(10, 20, 0);  // 10/s, burst 20
  uint64_t retry = 0;
  EXPECT_TRUE(b.take(20, 0, &retry));
  EXPECT_FALSE(b.take(1, 0, &retry));
  EXPECT_EQ(retry, 1u);
  EXPECT_TRUE(b.take(1, 100, &retry));  // 0.1 s later: one token
  EXPECT_FALSE(b.take(1, 100, &retry));
  EXPECT_TRUE(b.take(20, 100000, &retry));  // long idle refills only to the burst
  EXPECT_FALSE(b.take(1, 100000, &retry));
}

TEST(TokenBucket, RequestLargerThanBurstPassesOnAFullBucketAndLeavesDebt) {
  TokenBucket b(1, 5, 0);
  uint64_t retry = 0;
  EXPECT_TRUE(b.take(8, 0, &retry));      // full bucket: allowed, 3 tokens of debt
  EXPECT_FALSE(b.take(1, 3000, &retry));  // debt repaid after 3 s, but nothing left yet
  EXPECT_TRUE(b.take(1, 4000, &retry));
  EXPECT_FALSE(b.take(5, 4000, &retry));
  EXPECT_EQ(retry, 5u);
}

}  // namespace
}  // namespace ingestd
