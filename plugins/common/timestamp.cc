// RFC 3339 date-times to epoch milliseconds, without mktime/timegm (which
// read the process time zone and are not required to handle every year).
#include "common/timestamp.h"

namespace ingestd::common {
namespace {

// Reads exactly n decimal digits at text[*pos].
bool digits(std::string_view text, size_t *pos, size_t n, unsigned *out) {
  if (*pos + n > text.size()) return false;
  unsigned v = 0;
  for (size_t i = 0; i < n; ++i) {
    char c = text[*pos + i];
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<unsigned>(c - '0');
  }
  *pos += n;
  *out = v;
  return true;
}

bool expect(std::string_view text, size_t *pos, char c) {
  if (*pos >= text.size() || text[*pos] != c) return false;
  ++*pos;
  return true;
}

unsigned days_in_month(int64_t year, unsigned month) {
  static constexpr unsigned kDays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return month == 2 && is_leap_year(year) ? 29 : kDays[month - 1];
}

}  // namespace

bool is_leap_year(int64_t year) {
  return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

// Howard Hinnant's days_from_civil: exact for every proleptic Gregorian date.
int64_t days_from_civil(int64_t year, unsigned month, unsigned day) {
  year -= month <= 2;
  const int64_t era = (year >= 0 ? year : year - 399) / 400;
  const auto yoe = static_cast<unsigned>(year - era * 400);
  const unsigned doy = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

bool parse_rfc3339_ms(std::string_view text, int64_t *ms) {
  size_t p = 0;
  unsigned year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  if (!digits(text, &p, 4, &year) || !expect(text, &p, '-') || !digits(text, &p, 2, &month) ||
      !expect(text, &p, '-') || !digits(text, &p, 2, &day)) {
    return false;
  }
  if (p >= text.size() || (text[p] != 'T' && text[p] != 't' && text[p] != ' ')) return false;
  ++p;
  if (!digits(text, &p, 2, &hour) || !expect(text, &p, ':') || !digits(text, &p, 2, &minute) ||
      !expect(text, &p, ':') || !digits(text, &p, 2, &second)) {
    return false;
  }
  if (month < 1 || month > 12 || day < 1 || day > days_in_month(year, month)) return false;
  if (hour > 23 || minute > 59 || second > 60) return false;

  unsigned millis = 0;
  if (p < text.size() && text[p] == '.') {
    ++p;
    size_t first = p;
    while (p < text.size() && text[p] >= '0' && text[p] <= '9') {
      if (p - first < 3) millis = millis * 10 + static_cast<unsigned>(text[p] - '0');
      ++p;
    }
    if (p == first) return false;  // "10:00:00." has no digits
    for (size_t n = p - first; n < 3; ++n)
      millis *= 10;
  }

  int64_t offset_minutes = 0;
  if (p >= text.size()) return false;  // the offset is mandatory
  char tz = text[p++];
  if (tz == '+' || tz == '-') {
    unsigned oh = 0, om = 0;
    if (!digits(text, &p, 2, &oh) || !expect(text, &p, ':') || !digits(text, &p, 2, &om)) {
      return false;
    }
    if (oh > 23 || om > 59) return false;
    offset_minutes = static_cast<int64_t>(oh * 60 + om) * (tz == '-' ? -1 : 1);
  } else if (tz != 'Z' && tz != 'z') {
    return false;
  }
  if (p != text.size()) return false;

  int64_t seconds = days_from_civil(year, month, day) * 86400 + int64_t{hour} * 3600 +
                    int64_t{minute} * 60 + second - offset_minutes * 60;
  *ms = seconds * 1000 + millis;
  return true;
}

}  // namespace ingestd::common
