// Small text helpers for the schema inputs: UTF-8 aware truncation and
// human-readable durations for rejection reasons.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace ingestd::common {

// The length of the longest prefix of `s` that is at most `max_bytes` long
// and does not split a UTF-8 character (s is assumed to be valid UTF-8, as
// every JSON string the host parsed is).
size_t utf8_prefix_length(std::string_view s, size_t max_bytes);

// Milliseconds the way config spells durations: 86400000 -> "24h",
// 5400000 -> "1h30m", 1500 -> "1s500ms", 0 -> "0ms".
std::string format_duration_ms(int64_t ms);

}  // namespace ingestd::common
