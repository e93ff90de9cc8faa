// Which Elasticsearch host the next request goes to: round-robin over the
// hosts that are not cooling down. A host that failed (transport error, 429
// or 5xx on a whole request) is skipped for `cooldown_ms`; a health check or
// a successful request returns it early. When every host is cooling down the
// one whose cool-down ends first is used, so requests never stop. Pure code:
// the caller passes the time (loop time in the plugin, anything in tests).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace ingestd::es {

class HostPool {
 public:
  HostPool(size_t hosts, uint64_t cooldown_ms);

  size_t size() const { return until_.size(); }
  // The host for the next request. O(hosts).
  size_t pick(uint64_t now_ms);
  // A whole request failed on host i: skip it until now + cooldown.
  void failed(size_t i, uint64_t now_ms);
  // Host i answered (a request or a health check): usable again.
  void healthy(size_t i);
  bool cooling(size_t i, uint64_t now_ms) const { return until_[i] > now_ms; }
  // Hosts cooling down at now_ms (health checks go to them).
  std::vector<size_t> cooling_hosts(uint64_t now_ms) const;
  size_t available(uint64_t now_ms) const;

 private:
  uint64_t cooldown_ms_;
  std::vector<uint64_t> until_;  // cool-down end per host; 0: available
  size_t next_ = 0;              // round-robin cursor
};

}  // namespace ingestd::es
