// API keys of a listener: a file of `key name` lines, read at start and on
// every reload. Lookups compare the presented key with every known key in
// constant time, so the answer's timing says nothing about how much of a key
// was right. Cost: O(number of keys) per request, fine for the handful of
// keys an API gateway usage plan has.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/token_bucket.h"

namespace ingestd {

class ApiKeys {
 public:
  struct Entry {
    std::string key;
    std::string name;
  };

  // Parses `path`: one `key name` pair a line, separated by blanks; blank
  // lines and lines starting with '#' are ignored. On failure returns null and
  // appends "path:line: message" lines to *errors.
  static std::shared_ptr<const ApiKeys> load(const std::string &path,
                                             std::vector<std::string> *errors);
  static std::shared_ptr<const ApiKeys> from_entries(std::vector<Entry> entries);

  // The key's name, or nullptr when no key matches.
  const std::string *find(std::string_view presented) const;
  size_t size() const { return entries_.size(); }

 private:
  std::vector<Entry> entries_;
};

// Constant-time equality (no early exit on the first differing byte).
bool constant_time_equal(std::string_view a, std::string_view b);

// The per-key rate limit: the SDK's token bucket (plugins/common/token_bucket.h)
// answering in the whole seconds of a Retry-After header.
class TokenBucket : public common::TokenBucket {
 public:
  using common::TokenBucket::TokenBucket;
  // Takes n tokens if there are enough; else returns false and sets
  // *retry_after_s to the whole seconds until there will be (at least 1).
  bool take(double n, uint64_t now_ms, uint64_t *retry_after_s) {
    uint64_t wait_ms = 0;
    if (try_take(n, now_ms, &wait_ms)) return true;
    *retry_after_s = wait_ms < 1000 ? 1 : (wait_ms + 999) / 1000;
    return false;
  }
};

}  // namespace ingestd
