// Frees the records of finished batches a slice per loop turn.
#pragma once

#include <uv.h>

#include <algorithm>
#include <vector>

#include "host/record.h"
#include "util/uv_handle.h"

namespace ingestd {

// Freeing the records of a finished 1,000-record batch at once takes ~0.2 ms
// of the loop, and every request that arrives meanwhile waits for it. The
// releaser takes the batch's references and drops them a slice per loop turn
// (a uv_idle handle, active only while something is pending). Each turn
// drops at least kPerTurn and at least an eighth of what is pending, so the
// backlog cannot outgrow a loop that frees slower than it receives.
class RecordReleaser {
 public:
  static constexpr size_t kPerTurn = 64;

  // Without a loop (config checks, unit tests) references are dropped at once.
  explicit RecordReleaser(uv_loop_t *loop) {
    if (!loop) return;
    auto *idle = new uv_idle_t;
    uv_idle_init(loop, idle);
    idle->data = this;
    idle_ = UvHandle<uv_idle_t>(idle);
  }
  RecordReleaser(const RecordReleaser &) = delete;
  RecordReleaser &operator=(const RecordReleaser &) = delete;
  ~RecordReleaser() { idle_.reset(); }

  // Takes the references in `records` (left empty).
  void release(std::vector<RecordPtr> &records) {
    if (!idle_ || (pending_.empty() && records.size() <= kPerTurn)) {
      records.clear();
      return;
    }
    if (pending_.empty()) {
      pending_.swap(records);
      uv_idle_start(idle_.get(), &RecordReleaser::on_idle);
    } else {
      pending_.insert(pending_.end(), std::make_move_iterator(records.begin()),
                      std::make_move_iterator(records.end()));
      records.clear();
    }
  }
  size_t pending() const { return pending_.size(); }

 private:
  static void on_idle(uv_idle_t *h) {
    auto *self = static_cast<RecordReleaser *>(h->data);
    auto &p = self->pending_;
    size_t n = std::min(p.size(), std::max(kPerTurn, p.size() / 8));
    p.erase(p.end() - static_cast<std::ptrdiff_t>(n), p.end());
    if (p.empty()) uv_idle_stop(h);
  }

  std::vector<RecordPtr> pending_;
  UvHandle<uv_idle_t> idle_;
};

}  // namespace ingestd
