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

// A token bucket: `rate` tokens a second up to `burst`, on a caller's clock.
class TokenBucket {
 public:
  TokenBucket() = default;
  TokenBucket(double rate, double burst, uint64_t now_ms)
      : rate_(rate), burst_(burst), tokens_(burst), last_ms_(now_ms) {}
  // Takes n tokens if there are enough; else returns false and sets
  // *retry_after_s to the whole seconds until there will be.
  bool take(double n, uint64_t now_ms, uint64_t *retry_after_s);

 private:
  double rate_ = 0;
  double burst_ = 0;
  double tokens_ = 0;
  uint64_t last_ms_ = 0;
};

}  // namespace ingestd
