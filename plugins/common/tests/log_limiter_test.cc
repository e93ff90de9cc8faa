// Unit tests for the SDK's one rate-limited logging rule (common/log_limiter.h).
#include "common/log_limiter.h"

#include <gtest/gtest.h>

namespace ingestd::common {
namespace {

TEST(LogLimiter, OneLineAnIntervalCountingTheRest) {
  LogLimiter l(60000);
  EXPECT_TRUE(l.allow(1000));
  EXPECT_EQ(l.skipped(), 0u);
  EXPECT_FALSE(l.allow(2000));
  EXPECT_FALSE(l.allow(60999));
  EXPECT_TRUE(l.allow(61000));
  EXPECT_EQ(l.skipped(), 2u);  // "(2 more like it)"
  EXPECT_TRUE(l.allow(200000));
  EXPECT_EQ(l.skipped(), 0u);
}

TEST(LogLimiter, FirstLineAtTimeZeroAndReset) {
  LogLimiter l(30000);
  EXPECT_TRUE(l.allow(0));
  EXPECT_FALSE(l.allow(29999));
  l.reset();
  EXPECT_TRUE(l.allow(29999));
  EXPECT_EQ(l.skipped(), 0u);
}

}  // namespace
}  // namespace ingestd::common
