// Timestamps for the schema inputs: RFC 3339 parsing and civil-date
// arithmetic, pure functions with no host or libc time-zone state.
#pragma once

#include <cstdint>
#include <string_view>

namespace ingestd::common {

// Days since 1970-01-01 of a proleptic Gregorian date (month 1..12).
int64_t days_from_civil(int64_t year, unsigned month, unsigned day);

// True for Gregorian leap years (2000 and 2024 are, 1900 and 2100 are not).
bool is_leap_year(int64_t year);

// Parses an RFC 3339 date-time ("2026-11-25T10:00:00Z",
// "2026-11-25T10:00:00.123+09:00") into epoch milliseconds. Fractional
// seconds of any length are truncated to milliseconds. 't', 'z' and a space
// for 'T' are accepted, as RFC 3339 section 5.6 allows; a leap second (:60)
// reads as the first millisecond after :59.999. Returns false for anything
// else, including impossible dates like 2026-02-30.
bool parse_rfc3339_ms(std::string_view text, int64_t *ms);

}  // namespace ingestd::common
