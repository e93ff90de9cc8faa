// API key file parsing and constant-time lookup.
#include "engine/api_keys.h"

#include <cerrno>
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

}  // namespace ingestd
