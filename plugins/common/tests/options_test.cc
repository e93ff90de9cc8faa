// Unit tests for the SDK's one option reader (common/options.h), against a
// host table whose config is a map: unset, NULL and empty values, lists and
// the retry_initial / retry_max rules.
#include "common/options.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

namespace ingestd::common {
namespace {

struct FakeConfig {
  std::map<std::string, const char *> values;  // a nullptr value: set, but NULL
  std::map<std::string, std::vector<std::vector<std::string>>> lists;
};

const FakeConfig *C(const ingestd_config_t *c) {
  return reinterpret_cast<const FakeConfig *>(c);
}

const char *value(const ingestd_config_t *c, const char *n) {
  auto it = C(c)->values.find(n);
  return it == C(c)->values.end() ? nullptr : it->second;
}

ingestd_host_t fake_host() {
  ingestd_host_t h{};
  h.struct_size = sizeof h;
  h.has_option = [](const ingestd_config_t *c, const char *n) {
    return static_cast<int>(C(c)->values.count(n) + C(c)->lists.count(n));
  };
  h.option_string = value;
  h.option_int = [](const ingestd_config_t *c, const char *n) -> int64_t {
    const char *v = value(c, n);
    return v ? std::stoll(v) : 0;
  };
  h.option_size = [](const ingestd_config_t *c, const char *n) -> uint64_t {
    const char *v = value(c, n);
    return v ? std::stoull(v) : 0;
  };
  h.option_double = [](const ingestd_config_t *c, const char *n) -> double {
    const char *v = value(c, n);
    return v ? std::stod(v) : 0;
  };
  h.option_bool = [](const ingestd_config_t *c, const char *n) -> int {
    const char *v = value(c, n);
    return v && std::string(v) == "true";
  };
  h.option_list_size = [](const ingestd_config_t *c, const char *n) -> size_t {
    auto it = C(c)->lists.find(n);
    return it == C(c)->lists.end() ? 0 : it->second.size();
  };
  h.option_list_item = [](const ingestd_config_t *c, const char *n, size_t i) -> const char * {
    const std::vector<std::string> &l = C(c)->lists.at(n)[i];
    return l.empty() ? nullptr : l[0].c_str();
  };
  h.option_list_list_size = [](const ingestd_config_t *c, const char *n, size_t i) -> size_t {
    return C(c)->lists.at(n)[i].size();
  };
  h.option_list_list_item = [](const ingestd_config_t *c, const char *n, size_t i,
                               size_t j) -> const char * {
    return C(c)->lists.at(n)[i][j].c_str();
  };
  return h;
}

class OptionsTest : public ::testing::Test {
 protected:
  Options opts() const {
    return Options(&host_, reinterpret_cast<const ingestd_config_t *>(&cfg_));
  }
  ingestd_host_t host_ = fake_host();
  FakeConfig cfg_;
};

TEST_F(OptionsTest, UnsetNullAndEmptyStrings) {
  cfg_.values = {{"set", "value"}, {"null", nullptr}, {"empty", ""}};
  EXPECT_TRUE(opts().has("set"));
  EXPECT_FALSE(opts().has("unset"));
  EXPECT_EQ(opts().string("set"), "value");
  EXPECT_EQ(opts().string("null"), "");
  EXPECT_EQ(opts().string("empty"), "");
  EXPECT_EQ(opts().string("unset"), "");
  EXPECT_STREQ(opts().c_str("set"), "value");
  EXPECT_EQ(opts().c_str("null"), nullptr);
  EXPECT_EQ(opts().c_str("empty"), nullptr);
  EXPECT_EQ(opts().c_str("unset"), nullptr);
}

TEST_F(OptionsTest, Scalars) {
  cfg_.values = {{"n", "42"}, {"d", "2.5"}, {"b", "true"}, {"s", "1048576"}, {"t", "-1"}};
  EXPECT_EQ(opts().integer("n"), 42);
  EXPECT_DOUBLE_EQ(opts().number("d"), 2.5);
  EXPECT_TRUE(opts().flag("b"));
  EXPECT_FALSE(opts().flag("n"));
  EXPECT_EQ(opts().size("s"), 1048576u);
  EXPECT_EQ(opts().duration_ms("n"), 42u);
  EXPECT_EQ(opts().duration_ms("t"), 0u);
}

TEST_F(OptionsTest, Lists) {
  cfg_.lists["hosts"] = {{"a"}, {"b"}, {}};
  cfg_.lists["commands"] = {{"SET", "k", "v"}, {"PING"}};
  EXPECT_EQ(opts().strings("hosts"), (std::vector<std::string>{"a", "b", ""}));
  EXPECT_EQ(opts().string_lists("commands"),
            (std::vector<std::vector<std::string>>{{"SET", "k", "v"}, {"PING"}}));
  EXPECT_TRUE(opts().strings("none").empty());
}

TEST_F(OptionsTest, RetryBoundsAreSane) {
  cfg_.values = {{"retry_initial", "200"}, {"retry_max", "5000"}};
  EXPECT_EQ(opts().retry_initial_ms(), 200u);
  EXPECT_EQ(opts().retry_max_ms(), 5000u);
  cfg_.values = {{"retry_initial", "0"}, {"retry_max", "0"}};
  EXPECT_EQ(opts().retry_initial_ms(), 1u);  // never a tight loop
  EXPECT_EQ(opts().retry_max_ms(), 1u);
  cfg_.values = {{"retry_initial", "300"}, {"retry_max", "100"}};
  EXPECT_EQ(opts().retry_max_ms(), 300u);  // max never below initial
}

}  // namespace
}  // namespace ingestd::common
