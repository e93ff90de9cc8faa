// Host rotation and cool-down: see es_hosts.h.
#include "es_hosts.h"

namespace ingestd::es {

HostPool::HostPool(size_t hosts, uint64_t cooldown_ms)
    : cooldown_ms_(cooldown_ms), until_(hosts == 0 ? 1 : hosts, 0) {}

size_t HostPool::pick(uint64_t now_ms) {
  size_t n = until_.size();
  for (size_t k = 0; k < n; ++k) {
    size_t i = (next_ + k) % n;
    if (!cooling(i, now_ms)) {
      next_ = (i + 1) % n;
      return i;
    }
  }
  size_t best = 0;
  for (size_t i = 1; i < n; ++i) {
    if (until_[i] < until_[best]) best = i;
  }
  next_ = (best + 1) % n;
  return best;
}

void HostPool::failed(size_t i, uint64_t now_ms) {
  if (i < until_.size()) until_[i] = now_ms + cooldown_ms_;
}

void HostPool::healthy(size_t i) {
  if (i < until_.size()) until_[i] = 0;
}

std::vector<size_t> HostPool::cooling_hosts(uint64_t now_ms) const {
  std::vector<size_t> out;
  for (size_t i = 0; i < until_.size(); ++i) {
    if (cooling(i, now_ms)) out.push_back(i);
  }
  return out;
}

size_t HostPool::available(uint64_t now_ms) const {
  size_t n = 0;
  for (size_t i = 0; i < until_.size(); ++i)
    n += cooling(i, now_ms) ? 0 : 1;
  return n;
}

}  // namespace ingestd::es
