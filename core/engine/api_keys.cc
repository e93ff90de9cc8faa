// API key file parsing, constant-time lookup, token buckets.
#include "engine/api_keys.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

namespace ingestd {

bool constant_time_equal(std::string_view a, std::string_view b) {
  // Lengths differ: still walk the presented key so the time depends on it
  // alone, not on where a known key stops matching.
  unsigned diff = a.size() == b.size() ? 0u : 1u;
  for (size_t i = 0; i < a.size(); ++i) {
    unsigned char x = static_cast<unsigned char>(a[i]);
    unsigned char y = b.empty() ? 0 : static_cast<unsigned char>(b[i % b.size()]);
    diff |= static_cast<unsigned>(x ^ y);
  }
  return diff == 0;
}

std::shared_ptr<const ApiKeys> ApiKeys::load(const std::string &path,
                                             std::vector<std::string> *errors) {
  std::ifstream in(path);
  if (!in) {
    errors->push_back(path + ": cannot read API keys file: " + std::strerror(errno));
    return nullptr;
  }
  std::vector<Entry> entries;
  std::set<std::string> seen;
  std::string line;
  size_t lineno = 0;
  size_t before = errors->size();
  while (std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    std::istringstream words(line);
    std::string key, name, extra;
    if (!(words >> key) || key[0] == '#') continue;
    auto where = path + ":" + std::to_string(lineno) + ": ";
    if (!(words >> name)) {
      errors->push_back(where + "expected 'KEY NAME', found only a key");
      continue;
    }
    if (words >> extra && extra[0] != '#') {
      errors->push_back(where + "expected 'KEY NAME', found more words");
      continue;
    }
    if (key.size() < 16) {
      errors->push_back(where + "key for '" + name + "' is shorter than 16 characters");
      continue;
    }
    if (!seen.insert(key).second) {
      errors->push_back(where + "key for '" + name + "' is listed twice");
      continue;
    }
    entries.push_back({key, name});
  }
  if (errors->size() != before) return nullptr;
  return from_entries(std::move(entries));
}

std::shared_ptr<const ApiKeys> ApiKeys::from_entries(std::vector<Entry> entries) {
  auto k = std::make_shared<ApiKeys>();
  k->entries_ = std::move(entries);
  return k;
}

const std::string *ApiKeys::find(std::string_view presented) const {
  const std::string *match = nullptr;
  for (const auto &e : entries_) {
    // No early exit: every key is compared whatever matched.
    if (constant_time_equal(presented, e.key)) match = &e.name;
  }
  return match;
}

bool TokenBucket::take(double n, uint64_t now_ms, uint64_t *retry_after_s) {
  if (now_ms > last_ms_) {
    tokens_ = std::min(burst_, tokens_ + rate_ * static_cast<double>(now_ms - last_ms_) / 1000.0);
    last_ms_ = now_ms;
  }
  // A request larger than the burst passes when the bucket is full and
  // leaves a debt, so the long-run rate still holds.
  double need = std::min(n, burst_);
  if (need <= tokens_) {
    tokens_ -= n;
    return true;
  }
  double missing = need - tokens_;
  *retry_after_s = rate_ > 0 ? static_cast<uint64_t>(std::ceil(missing / rate_)) : 60;
  if (*retry_after_s == 0) *retry_after_s = 1;
  return false;
}

}  // namespace ingestd
