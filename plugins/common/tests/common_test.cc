// Unit tests for the pure helpers of the schema inputs: RFC 3339 parsing,
// civil dates, UTF-8 truncation, duration text. timegm(3) is the independent
// reference for dates.
#include <gtest/gtest.h>

#include <cstddef>
#include <ctime>
#include <string>
#include <utility>
#include <vector>

#include "common/slices.h"
#include "common/text.h"
#include "common/timestamp.h"

namespace ingestd::common {
namespace {

int64_t timegm_ms(int year, int month, int day, int hour, int minute, int second) {
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  return static_cast<int64_t>(timegm(&tm)) * 1000;
}

int64_t parse(const std::string &s) {
  int64_t ms = -1;
  EXPECT_TRUE(parse_rfc3339_ms(s, &ms)) << s;
  return ms;
}

TEST(Rfc3339, UtcWithZ) {
  EXPECT_EQ(parse("2026-11-25T10:00:00Z"), 1795600800000);
  EXPECT_EQ(parse("2026-11-25T10:00:00Z"), timegm_ms(2026, 11, 25, 10, 0, 0));
  EXPECT_EQ(parse("1970-01-01T00:00:00Z"), 0);
}

TEST(Rfc3339, Offsets) {
  EXPECT_EQ(parse("2026-11-25T10:00:00.123+09:00"), timegm_ms(2026, 11, 25, 1, 0, 0) + 123);
  EXPECT_EQ(parse("2026-11-25T10:00:00-05:30"), timegm_ms(2026, 11, 25, 15, 30, 0));
  EXPECT_EQ(parse("2026-11-25T10:00:00+00:00"), parse("2026-11-25T10:00:00Z"));
  EXPECT_EQ(parse("2026-11-25T10:00:00-00:00"), parse("2026-11-25T10:00:00Z"));
  // An offset that moves the instant into the previous year.
  EXPECT_EQ(parse("2027-01-01T01:00:00+02:00"), timegm_ms(2026, 12, 31, 23, 0, 0));
  EXPECT_EQ(parse("2026-11-25T23:59:59+23:59"), timegm_ms(2026, 11, 25, 0, 0, 59));
}

TEST(Rfc3339, FractionsAreTruncatedToMilliseconds) {
  int64_t base = timegm_ms(2026, 11, 25, 10, 0, 0);
  EXPECT_EQ(parse("2026-11-25T10:00:00.1Z"), base + 100);
  EXPECT_EQ(parse("2026-11-25T10:00:00.12Z"), base + 120);
  EXPECT_EQ(parse("2026-11-25T10:00:00.123Z"), base + 123);
  EXPECT_EQ(parse("2026-11-25T10:00:00.1239Z"), base + 123);
  EXPECT_EQ(parse("2026-11-25T10:00:00.999999999Z"), base + 999);
  EXPECT_EQ(parse("2026-11-25T10:00:00.000000000000000000001Z"), base);
  EXPECT_EQ(parse("2026-11-25T10:00:00.5-01:00"), base + 3600000 + 500);
}

TEST(Rfc3339, LowercaseAndSpaceSeparator) {
  int64_t base = timegm_ms(2026, 11, 25, 10, 0, 0);
  EXPECT_EQ(parse("2026-11-25t10:00:00z"), base);
  EXPECT_EQ(parse("2026-11-25 10:00:00Z"), base);
}

TEST(Rfc3339, LeapYears) {
  EXPECT_EQ(parse("2024-02-29T12:00:00Z"), timegm_ms(2024, 2, 29, 12, 0, 0));
  EXPECT_EQ(parse("2000-02-29T00:00:00Z"), timegm_ms(2000, 2, 29, 0, 0, 0));
  EXPECT_EQ(parse("2024-12-31T23:59:59Z"), timegm_ms(2024, 12, 31, 23, 59, 59));
  int64_t ms;
  EXPECT_FALSE(parse_rfc3339_ms("2026-02-29T00:00:00Z", &ms));
  EXPECT_FALSE(parse_rfc3339_ms("1900-02-29T00:00:00Z", &ms));
  EXPECT_FALSE(parse_rfc3339_ms("2100-02-29T00:00:00Z", &ms));
  EXPECT_FALSE(parse_rfc3339_ms("2024-02-30T00:00:00Z", &ms));
}

TEST(Rfc3339, LeapSecondReadsAsTheNextSecond) {
  EXPECT_EQ(parse("2016-12-31T23:59:60Z"), timegm_ms(2017, 1, 1, 0, 0, 0));
}

TEST(Rfc3339, RejectsWhatIsNotAnRfc3339Time) {
  const char *bad[] = {
      "",
      "2026-11-25",                 // date only
      "2026-11-25T10:00:00",        // no offset
      "2026-11-25T10:00Z",          // no seconds
      "2026-02-30T10:00:00Z",       // no such day
      "2026-04-31T10:00:00Z",       // April has 30
      "2026-13-01T10:00:00Z",       // month 13
      "2026-00-01T10:00:00Z",       // month 0
      "2026-11-00T10:00:00Z",       // day 0
      "2026-11-25T24:00:00Z",       // hour 24
      "2026-11-25T10:60:00Z",       // minute 60
      "2026-11-25T10:00:61Z",       // second 61
      "2026-11-25T10:00:00.Z",      // '.' without digits
      "2026-11-25T10:00:00+09",     // offset without minutes
      "2026-11-25T10:00:00+0900",   // offset without ':'
      "2026-11-25T10:00:00+24:00",  // offset hour 24
      "2026-11-25T10:00:00+09:60",  // offset minute 60
      "2026-11-25T10:00:00ZZ",      // trailing text
      "2026-11-25T10:00:00Z ",      // trailing space
      " 2026-11-25T10:00:00Z",      // leading space
      "2026-1-25T10:00:00Z",        // one-digit month
      "26-11-25T10:00:00Z",         // two-digit year
      "2026/11/25T10:00:00Z",       // wrong separator
      "2026-11-25X10:00:00Z",       // wrong date/time separator
      "2026-11-25T10:00:00UTC",     // zone name
      "+2026-11-25T10:00:00Z",      // signed year
      "1764064800000",              // a number in a string
  };
  for (const char *s : bad) {
    int64_t ms = 42;
    EXPECT_FALSE(parse_rfc3339_ms(s, &ms)) << s;
    EXPECT_EQ(ms, 42) << s;
  }
}

TEST(CivilDays, MatchesTimegmOverFourCenturies) {
  // Every 1st and 28th of each month, and Feb 29 of leap years, 1800-2400.
  for (int y = 1800; y <= 2400; ++y) {
    for (int m = 1; m <= 12; ++m) {
      for (int d : {1, 28}) {
        ASSERT_EQ(days_from_civil(y, m, d) * 86400000, timegm_ms(y, m, d, 0, 0, 0))
            << y << "-" << m << "-" << d;
      }
    }
    unsigned last_feb = is_leap_year(y) ? 29 : 28;
    ASSERT_EQ(days_from_civil(y, 2, last_feb) + 1, days_from_civil(y, 3, 1)) << y;
  }
  EXPECT_EQ(days_from_civil(1970, 1, 1), 0);
  EXPECT_EQ(days_from_civil(1969, 12, 31), -1);
  EXPECT_EQ(days_from_civil(0, 3, 1), -719468);
}

TEST(Utf8Prefix, KeepsWholeCharacters) {
  EXPECT_EQ(utf8_prefix_length("hello", 10), 5u);
  EXPECT_EQ(utf8_prefix_length("hello", 5), 5u);
  EXPECT_EQ(utf8_prefix_length("hello", 3), 3u);
  EXPECT_EQ(utf8_prefix_length("hello", 0), 0u);
  const std::string han = "\xea\xb0\x80\xeb\x82\x98";  // 가나: two 3-byte characters
  EXPECT_EQ(utf8_prefix_length(han, 6), 6u);
  EXPECT_EQ(utf8_prefix_length(han, 5), 3u);
  EXPECT_EQ(utf8_prefix_length(han, 4), 3u);
  EXPECT_EQ(utf8_prefix_length(han, 3), 3u);
  EXPECT_EQ(utf8_prefix_length(han, 2), 0u);
  const std::string mixed = "a\xc3\xa9\xf0\x9f\x98\x80z";  // a é 😀 z
  EXPECT_EQ(utf8_prefix_length(mixed, 1), 1u);
  EXPECT_EQ(utf8_prefix_length(mixed, 2), 1u);
  EXPECT_EQ(utf8_prefix_length(mixed, 3), 3u);
  for (size_t n = 3; n < 7; ++n)
    EXPECT_EQ(utf8_prefix_length(mixed, n), 3u) << n;
  EXPECT_EQ(utf8_prefix_length(mixed, 7), 7u);
  EXPECT_EQ(utf8_prefix_length(mixed, 8), 8u);
}

TEST(DurationText, SpellsLikeConfig) {
  EXPECT_EQ(format_duration_ms(86400000), "24h");
  EXPECT_EQ(format_duration_ms(5400000), "1h30m");
  EXPECT_EQ(format_duration_ms(90000), "1m30s");
  EXPECT_EQ(format_duration_ms(1500), "1s500ms");
  EXPECT_EQ(format_duration_ms(250), "250ms");
  EXPECT_EQ(format_duration_ms(0), "0ms");
}

}  // namespace
}  // namespace ingestd::common

// ---- Slices: a batch's work one slice per loop turn

namespace ingestd::common {
namespace {

struct FakeLoop {
  std::vector<std::pair<ingestd_timer_cb, void *>> soon;  // what the next turn runs
  void turn() {
    auto calls = std::move(soon);
    soon.clear();
    for (auto [cb, arg] : calls)
      cb(arg);
  }
};
// The fake host's instance handle is the loop itself.
ingestd_instance_t *as_instance(FakeLoop *loop) {
  return reinterpret_cast<ingestd_instance_t *>(loop);
}
int fake_call_soon(ingestd_instance_t *inst, ingestd_timer_cb cb, void *arg) {
  reinterpret_cast<FakeLoop *>(inst)->soon.emplace_back(cb, arg);
  return 0;
}

struct Work {
  int left = 0;
  int steps = 0;
};
bool one_step(void *arg) {
  auto *w = static_cast<Work *>(arg);
  ++w->steps;
  return --w->left > 0;
}

TEST(Slices, OneSlicePerLoopTurnAndNeverTwoScheduled) {
  FakeLoop loop;
  ingestd_host_t host{};
  host.struct_size = sizeof host;
  host.call_soon = fake_call_soon;
  Work w{3, 0};
  Slices s;
  s.init(&host, as_instance(&loop), one_step, &w);
  s.schedule();
  s.schedule();           // already due: not twice
  EXPECT_EQ(w.steps, 0);  // nothing inside the hook that scheduled it
  EXPECT_EQ(loop.soon.size(), 1u);
  loop.turn();
  EXPECT_EQ(w.steps, 1);
  EXPECT_EQ(loop.soon.size(), 1u);  // slices remain: the next turn is booked
  loop.turn();
  loop.turn();
  EXPECT_EQ(w.steps, 3);
  EXPECT_TRUE(loop.soon.empty());  // done: nothing more booked
}

TEST(Slices, ASliceIsSmallWhileTheOutputKeepsUpAndTheRestWhenABatchWaits) {
  EXPECT_EQ(Slices::end(0, 1000, 32, false), 32u);
  EXPECT_EQ(Slices::end(990, 1000, 32, false), 1000u);
  EXPECT_EQ(Slices::end(32, 1000, 32, true), 1000u);
  EXPECT_EQ(Slices::end(0, 10, 32, false), 10u);
}

TEST(Slices, AbiOneZeroHostRunsEverySliceAtOnce) {
  ingestd_host_t host{};
  host.struct_size = offsetof(ingestd_host_t, call_soon);  // built before call_soon
  host.call_soon = fake_call_soon;                         // past struct_size: never called
  FakeLoop loop;
  Work w{5, 0};
  Slices s;
  s.init(&host, as_instance(&loop), one_step, &w);
  s.schedule();
  EXPECT_EQ(w.steps, 5);
  EXPECT_TRUE(loop.soon.empty());
}

}  // namespace
}  // namespace ingestd::common
