#include "engine/router.h"

#include <gtest/gtest.h>

namespace ingestd {
namespace {

TEST(Glob, Literals) {
  EXPECT_TRUE(glob_match("trace", "trace"));
  EXPECT_FALSE(glob_match("trace", "traces"));
  EXPECT_FALSE(glob_match("traces", "trace"));
  EXPECT_TRUE(glob_match("", ""));
  EXPECT_FALSE(glob_match("", "a"));
}

TEST(Glob, Star) {
  EXPECT_TRUE(glob_match("*", ""));
  EXPECT_TRUE(glob_match("*", "anything"));
  EXPECT_TRUE(glob_match("tr*", "trace"));
  EXPECT_TRUE(glob_match("*ce", "trace"));
  EXPECT_TRUE(glob_match("t*a*e", "trace"));
  EXPECT_FALSE(glob_match("t*x", "trace"));
  EXPECT_TRUE(glob_match("a*b*c", "aXbYbZc"));
  EXPECT_FALSE(glob_match("a*b*c", "aXbYbZ"));
  EXPECT_TRUE(glob_match("**", "x"));
}

TEST(Glob, QuestionAndClass) {
  EXPECT_TRUE(glob_match("v?", "v1"));
  EXPECT_FALSE(glob_match("v?", "v"));
  EXPECT_TRUE(glob_match("v[0-9]", "v7"));
  EXPECT_FALSE(glob_match("v[0-9]", "vx"));
  EXPECT_TRUE(glob_match("v[!0-9]", "vx"));
  EXPECT_FALSE(glob_match("v[!0-9]", "v3"));
  EXPECT_TRUE(glob_match("[ab]c", "bc"));
  EXPECT_TRUE(glob_match("a[", "a["));  // unterminated class is literal
}

TEST(Glob, Escape) {
  EXPECT_TRUE(glob_match("a\\*", "a*"));
  EXPECT_FALSE(glob_match("a\\*", "ab"));
}

TEST(Routes, FanOutAndOrder) {
  std::vector<RouteSpec> routes = {
      {"trace", {}, {0, 1}},
      {"act*", {}, {1}},
      {"*", {0}, {2}},
  };
  auto t = plan_routes(routes, "trace");
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[0].route, 0u);
  EXPECT_EQ(t[0].outputs, (std::vector<size_t>{0, 1}));
  EXPECT_EQ(t[1].route, 2u);
  EXPECT_EQ(t[1].filters, (std::vector<size_t>{0}));
  auto a = plan_routes(routes, "actions");
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[0].outputs, (std::vector<size_t>{1}));
  EXPECT_TRUE(plan_routes({{"x", {}, {0}}}, "y").empty());
}

}  // namespace
}  // namespace ingestd
