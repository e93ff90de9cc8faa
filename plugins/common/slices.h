// Work an output does per batch, split into slices on later loop turns.
// Header-only, on the host API: the elasticsearch and firehose outputs build
// a batch's request this way.
#pragma once

#include <algorithm>
#include <cstddef>

#include "ingestd/plugin.h"

namespace ingestd::common {

// Every request a worker serves waits while a plugin hook runs, so work that
// grows with the batch (serialising 500-1,000 records) runs one slice per
// loop turn, after the I/O ready by then (host->call_soon). On an ABI 1.0
// host, which has no call_soon, every slice runs at once.
class Slices {
 public:
  // Where this turn's slice of a batch of `total` items ends, `done` being
  // built: `per_slice` more while the output keeps up; all the rest when
  // another batch waits behind it. Then the output is what falls behind,
  // and small slices would only let its queue fill and the requests get 503.
  static constexpr size_t end(size_t done, size_t total, size_t per_slice, bool batch_waiting) {
    return batch_waiting ? total : std::min(total, done + per_slice);
  }

  // `step` runs one slice and returns true while slices remain.
  using Step = bool (*)(void *arg);
  void init(const ingestd_host_t *host, ingestd_instance_t *inst, Step step, void *arg) {
    host_ = host;
    inst_ = inst;
    step_ = step;
    arg_ = arg;
  }

  // Runs the next slice on a later turn; nothing when one is due already.
  void schedule() {
    if (due_) return;
    if (INGESTD_HOST_HAS(host_, call_soon) && host_->call_soon(inst_, &Slices::on_due, this) == 0) {
      due_ = true;
      return;
    }
    while (step_(arg_)) {
    }
  }

 private:
  static void on_due(void *self) {
    auto *s = static_cast<Slices *>(self);
    s->due_ = false;
    if (s->step_(s->arg_)) s->schedule();
  }

  const ingestd_host_t *host_ = nullptr;
  ingestd_instance_t *inst_ = nullptr;
  Step step_ = nullptr;
  void *arg_ = nullptr;
  bool due_ = false;
};

}  // namespace ingestd::common
