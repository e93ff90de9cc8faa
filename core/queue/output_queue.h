// OutputQueue: the bounded, in-memory queue in front of one output.
//
// Pure logic: no libuv, no threads, no globals. Time is passed in (now_ms, a
// monotonic clock in milliseconds that never goes backwards) and randomness
// comes from an injected generator, so every behaviour is deterministic under
// test. The engine drives it: after push() and after a completion it calls
// take_batch() until that returns nothing, then arms one uv timer for
// next_wakeup().
//
// Ownership. The queue owns every record from push() until it is delivered or
// dead-lettered; it hands them back through Completion. While a batch is in
// flight its records stay inside the queue and take_batch() returns a view of
// them (Batch), valid until complete()/retry_all() for that batch id or the
// queue's destruction. So records count against the limits, and are accounted
// for, until they are delivered or dead-lettered: queued + in flight.
//
// Admission is all-or-nothing, and is the caller's job: a request going to
// several outputs is checked with can_accept() on every target queue before it
// is push()ed into any. push() itself never refuses (losing an accepted record
// would be worse than exceeding a limit by one request).
//
// Batch release. take_batch() returns a batch (at most batch_max_records
// records and batch_max_bytes bytes; one record larger than batch_max_bytes
// goes alone) when ALL of:
//   - fewer than max_inflight_batches batches are in flight;
//   - now_ms >= retry_not_before() (backoff gating, below);
//   - and one of: a full batch is queued (by records or by bytes), or the
//     oldest queued record was pushed flush_interval_ms ago or more, or the
//     queue is flushing (set_flushing(true): shutdown / drain — release
//     whatever is queued at once; flushing does NOT bypass the in-flight bound
//     or the backoff).
// next_wakeup(now) says when that will next be true by the clock alone:
// nullopt when there is nothing to wait for (empty queue, or in-flight limit
// reached: the completion is what unblocks it); otherwise a time >= now, and
// when it equals now, take_batch(now) returns a batch.
//
// Retry semantics.
//   - complete() takes one Outcome per record, in batch order. Delivered
//     records are returned in Completion::delivered (for the caller to
//     release). DeadLetter records are returned in Completion::dead_lettered
//     with cause Rejected (the plugin's reason is found by index).
//   - Retry records have their attempt count incremented (attempts = sends
//     made so far). If max_attempts is non-zero and that count reached
//     max_attempts, the record is dead-lettered with cause RetriesExhausted
//     instead. Otherwise it goes back to the FRONT of the queue, in its
//     original order: the queue is always kept in push order (each record
//     carries a sequence number), so requeued records land in front of every
//     not-yet-sent record, and with max_inflight_batches > 1 requeued records
//     of several batches interleave back into push order whatever order the
//     batches complete in. (Order across batches that were in flight together
//     and succeeded cannot be restored: an output that needs strict order,
//     like the Redis live positions, runs with max_inflight_batches = 1.)
//   - A requeued record keeps its original push time, so it does not wait
//     another flush interval: it is released as soon as the backoff allows.
//   - A batch where every record is Retry (requeued or exhausted) counts as a
//     failure: consecutive_failures() is incremented and no batch is released
//     before now + Backoff::next_delay_ms(consecutive_failures, rng) (never
//     shortening a gate already set).
//   - A partial failure (some records Retry, others delivered or
//     dead-lettered: Elasticsearch item 429s, Firehose FailedPutCount) is not
//     an outage: the output is answering. consecutive_failures() resets to 0
//     and the retried records wait one first-step delay
//     (Backoff::next_delay_ms(1, rng)), so a steady trickle of throttled
//     items never escalates the backoff to retry_max.
//   - A batch without any Retry resets consecutive_failures() to 0; it does
//     not lift a gate already set.
//   - retry_all() is complete() with every outcome Retry (INGESTD_BATCH_RETRY).
//   - complete()/retry_all() on an unknown batch id (never issued, or already
//     completed) is a no-op returning an empty Completion with found == false:
//     a buggy plugin calling batch_done twice must not corrupt the queue; the
//     caller should log it.
//   - If outcomes is shorter than the batch, the missing records are treated
//     as Retry (a record is never dropped); extra outcomes are ignored.
//
// Limits are normalised at construction: batch_max_records, batch_max_bytes
// and max_inflight_batches are at least 1.
#pragma once

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <limits>
#include <map>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "queue/backoff.h"

namespace ingestd {

struct QueueLimits {
  size_t max_records = 100000;  // queued + in flight
  size_t max_bytes = size_t{64} << 20;
  size_t batch_max_records = 500;
  size_t batch_max_bytes = size_t{4} << 20;
  uint64_t flush_interval_ms =
      1000;  // a non-full batch is released when its oldest record is this old
  uint32_t max_inflight_batches = 1;
  uint64_t retry_initial_ms = 100;
  uint64_t retry_max_ms = 30000;
  uint32_t max_attempts = 0;  // 0 = retry forever; else dead-letter after this many sends
};

// What happened to one record of a batch.
enum class ItemOutcome : uint8_t { Delivered, Retry, DeadLetter };

// Why a record was dead-lettered.
enum class DeadLetterCause : uint8_t {
  Rejected,          // the output said so (batch_dead_letter, with its own reason)
  RetriesExhausted,  // max_attempts sends failed: reason "retries exhausted"
};

template <std::movable T>  // T: the record handle (e.g. a ref-counted pointer)
class OutputQueue {
 public:
  using Outcome = ItemOutcome;

  // A view of an in-flight batch, valid until complete()/retry_all() for `id`
  // (or the queue's destruction). Parallel spans, in batch order.
  struct Batch {
    uint64_t id = 0;                     // never 0
    std::span<const T> items;            // the records
    std::span<const size_t> bytes;       // each record's size as pushed
    std::span<const uint32_t> attempts;  // sends already made before this one (0 = first)
    size_t total_bytes = 0;
    size_t size() const { return items.size(); }
  };

  struct DeadLetter {
    T item;
    size_t index;       // position in the batch (to look up the plugin's reason)
    uint32_t attempts;  // sends made, including the one just completed
    DeadLetterCause cause;
  };

  struct Completion {
    bool found = false;                     // false: unknown batch id, nothing changed
    std::vector<T> delivered;               // done: the caller releases them
    std::vector<DeadLetter> dead_lettered;  // done: the caller writes them to the dead-letter file
    size_t retried = 0;                     // records put back at the front of the queue
  };

  explicit OutputQueue(QueueLimits limits)
      : limits_(normalise(limits)), backoff_(limits_.retry_initial_ms, limits_.retry_max_ms) {}

  OutputQueue(const OutputQueue &) = delete;
  OutputQueue &operator=(const OutputQueue &) = delete;

  const QueueLimits &limits() const { return limits_; }
  const Backoff &backoff() const { return backoff_; }

  // Would `records` records totalling `bytes` bytes fit under max_records and
  // max_bytes, counting queued and in-flight records?
  bool can_accept(size_t records, size_t bytes) const {
    const size_t r = total_records();
    const size_t b = total_bytes();
    if (r > limits_.max_records || records > limits_.max_records - r) return false;
    if (b > limits_.max_bytes || bytes > limits_.max_bytes - b) return false;
    return true;
  }

  // Appends a record (the caller checked can_accept). Never refuses.
  void push(T item, size_t bytes, uint64_t now_ms) {
    queue_.push_back(Entry{std::move(item), bytes, 0, next_seq_++, now_ms});
    queued_bytes_ += bytes;
  }

  // A batch to send now, or nullopt (see "Batch release" above).
  std::optional<Batch> take_batch(uint64_t now_ms) {
    if (!can_release() || now_ms < release_time()) return std::nullopt;

    const uint64_t id = next_batch_id_++;
    InFlight &f = inflight_[id];
    const size_t reserve = std::min(queue_.size(), limits_.batch_max_records);
    f.items.reserve(reserve);
    f.bytes.reserve(reserve);
    f.attempts.reserve(reserve);
    f.seq.reserve(reserve);
    f.pushed_ms.reserve(reserve);
    while (!queue_.empty() && f.items.size() < limits_.batch_max_records) {
      Entry &e = queue_.front();
      if (!f.items.empty() && (f.total_bytes >= limits_.batch_max_bytes ||
                               e.bytes > limits_.batch_max_bytes - f.total_bytes))
        break;
      f.items.push_back(std::move(e.item));
      f.bytes.push_back(e.bytes);
      f.attempts.push_back(e.attempts);
      f.seq.push_back(e.seq);
      f.pushed_ms.push_back(e.pushed_ms);
      f.total_bytes += e.bytes;
      queue_.pop_front();
    }
    queued_bytes_ -= f.total_bytes;
    inflight_records_ += f.items.size();
    inflight_bytes_ += f.total_bytes;
    return view(id, f);
  }

  // The view of an in-flight batch, or nullopt if `id` is not in flight.
  std::optional<Batch> find_batch(uint64_t id) const {
    auto it = inflight_.find(id);
    if (it == inflight_.end()) return std::nullopt;
    return view(id, it->second);
  }

  // Finishes an in-flight batch with one outcome per record, in batch order.
  template <BackoffRng Rng>
  Completion complete(uint64_t batch_id, std::span<const Outcome> outcomes, uint64_t now_ms,
                      Rng &rng) {
    return finish(
        batch_id, [&](size_t i) { return i < outcomes.size() ? outcomes[i] : Outcome::Retry; },
        now_ms, rng);
  }

  // The whole batch failed: every record is retried (or dead-lettered if its
  // attempts are exhausted).
  template <BackoffRng Rng>
  Completion retry_all(uint64_t batch_id, uint64_t now_ms, Rng &rng) {
    return finish(
        batch_id, [](size_t) { return Outcome::Retry; }, now_ms, rng);
  }

  // When take_batch may next return a batch (>= now_ms), or nullopt when only
  // a push() or a completion can change that.
  std::optional<uint64_t> next_wakeup(uint64_t now_ms) const {
    if (!can_release()) return std::nullopt;
    return std::max(now_ms, release_time());
  }

  void set_flushing(bool on) { flushing_ = on; }
  bool flushing() const { return flushing_; }

  // Removes and returns every queued (not in-flight) record, in queue order.
  std::vector<T> drain_queued() {
    std::vector<T> out;
    out.reserve(queue_.size());
    for (Entry &e : queue_)
      out.push_back(std::move(e.item));
    queue_.clear();
    queued_bytes_ = 0;
    return out;
  }

  size_t queued_records() const { return queue_.size(); }
  size_t queued_bytes() const { return queued_bytes_; }
  size_t inflight_records() const { return inflight_records_; }
  size_t inflight_bytes() const { return inflight_bytes_; }
  size_t inflight_batches() const { return inflight_.size(); }
  // What counts against the limits: queued + in flight.
  size_t total_records() const { return queue_.size() + inflight_records_; }
  size_t total_bytes() const { return queued_bytes_ + inflight_bytes_; }
  bool empty() const { return total_records() == 0; }

  uint32_t consecutive_failures() const { return consecutive_failures_; }
  // No batch is released before this time (0: no backoff ever set).
  uint64_t retry_not_before() const { return not_before_ms_; }

 private:
  struct Entry {
    T item;
    size_t bytes;
    uint32_t attempts;
    uint64_t seq;  // push order; the queue is always sorted by it
    uint64_t pushed_ms;
  };

  // Struct of arrays, so Batch can hand out spans. Lives in a std::map node:
  // the vectors never move while the batch is in flight.
  struct InFlight {
    std::vector<T> items;
    std::vector<size_t> bytes;
    std::vector<uint32_t> attempts;
    std::vector<uint64_t> seq;
    std::vector<uint64_t> pushed_ms;
    size_t total_bytes = 0;
  };

  static QueueLimits normalise(QueueLimits l) {
    if (l.batch_max_records == 0) l.batch_max_records = 1;
    if (l.batch_max_bytes == 0) l.batch_max_bytes = 1;
    if (l.max_inflight_batches == 0) l.max_inflight_batches = 1;
    return l;
  }

  static uint64_t saturating_add(uint64_t a, uint64_t b) {
    return a > std::numeric_limits<uint64_t>::max() - b ? std::numeric_limits<uint64_t>::max()
                                                        : a + b;
  }

  static Batch view(uint64_t id, const InFlight &f) {
    return Batch{id, std::span<const T>(f.items), std::span<const size_t>(f.bytes),
                 std::span<const uint32_t>(f.attempts), f.total_bytes};
  }

  // Something queued and room for another batch in flight.
  bool can_release() const {
    return !queue_.empty() && inflight_.size() < limits_.max_inflight_batches;
  }

  // A full batch is queued. Exact for the greedy fill in take_batch: fewer
  // than batch_max_records records totalling fewer than batch_max_bytes all
  // fit in one batch with room to spare; otherwise the fill stops on a limit.
  bool full_batch_queued() const {
    return queue_.size() >= limits_.batch_max_records || queued_bytes_ >= limits_.batch_max_bytes;
  }

  // Earliest time a batch may be released (queue non-empty).
  uint64_t release_time() const {
    const uint64_t ready =
        (flushing_ || full_batch_queued())
            ? 0
            : saturating_add(queue_.front().pushed_ms, limits_.flush_interval_ms);
    return std::max(ready, not_before_ms_);
  }

  template <typename OutcomeAt, BackoffRng Rng>
  Completion finish(uint64_t batch_id, OutcomeAt outcome_at, uint64_t now_ms, Rng &rng) {
    Completion c;
    auto it = inflight_.find(batch_id);
    if (it == inflight_.end()) return c;
    InFlight f = std::move(it->second);
    inflight_.erase(it);
    inflight_records_ -= f.items.size();
    inflight_bytes_ -= f.total_bytes;
    c.found = true;

    std::vector<Entry> requeue;
    bool failed = false;    // some record must be sent again
    bool answered = false;  // some record was delivered or dead-lettered
    for (size_t i = 0; i < f.items.size(); ++i) {
      const uint32_t sends =
          f.attempts[i] == std::numeric_limits<uint32_t>::max() ? f.attempts[i] : f.attempts[i] + 1;
      switch (outcome_at(i)) {
        case Outcome::Delivered:
          answered = true;
          c.delivered.push_back(std::move(f.items[i]));
          break;
        case Outcome::DeadLetter:
          answered = true;
          c.dead_lettered.push_back(
              DeadLetter{std::move(f.items[i]), i, sends, DeadLetterCause::Rejected});
          break;
        case Outcome::Retry:
        default:  // an out-of-range value: never drop the record
          failed = true;
          if (limits_.max_attempts != 0 && sends >= limits_.max_attempts) {
            c.dead_lettered.push_back(
                DeadLetter{std::move(f.items[i]), i, sends, DeadLetterCause::RetriesExhausted});
          } else {
            requeue.push_back(
                Entry{std::move(f.items[i]), f.bytes[i], sends, f.seq[i], f.pushed_ms[i]});
          }
          break;
      }
    }

    if (failed && !answered) {
      if (consecutive_failures_ < std::numeric_limits<uint32_t>::max()) ++consecutive_failures_;
      const uint64_t gate =
          saturating_add(now_ms, backoff_.next_delay_ms(consecutive_failures_, rng));
      not_before_ms_ = std::max(not_before_ms_, gate);
    } else if (failed) {
      consecutive_failures_ = 0;
      const uint64_t gate = saturating_add(now_ms, backoff_.next_delay_ms(1, rng));
      not_before_ms_ = std::max(not_before_ms_, gate);
    } else {
      consecutive_failures_ = 0;
    }
    c.retried = requeue.size();
    requeue_front(std::move(requeue));
    return c;
  }

  // Puts retried entries (sorted by seq) back, keeping the queue sorted by
  // seq: they merge with any earlier-requeued entries at the front and land
  // before every never-sent entry.
  void requeue_front(std::vector<Entry> retried) {
    if (retried.empty()) return;
    const uint64_t last = retried.back().seq;
    std::vector<Entry> prefix;  // queued entries older than the last retried one
    while (!queue_.empty() && queue_.front().seq < last) {
      prefix.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    std::vector<Entry> merged;
    merged.reserve(prefix.size() + retried.size());
    size_t a = 0, b = 0;
    while (a < prefix.size() || b < retried.size()) {
      if (b == retried.size() || (a < prefix.size() && prefix[a].seq < retried[b].seq)) {
        merged.push_back(std::move(prefix[a++]));
      } else {
        queued_bytes_ += retried[b].bytes;
        merged.push_back(std::move(retried[b++]));
      }
    }
    for (auto e = merged.rbegin(); e != merged.rend(); ++e)
      queue_.push_front(std::move(*e));
  }

  QueueLimits limits_;
  Backoff backoff_;
  std::deque<Entry> queue_;
  size_t queued_bytes_ = 0;
  std::map<uint64_t, InFlight> inflight_;
  size_t inflight_records_ = 0;
  size_t inflight_bytes_ = 0;
  uint64_t next_seq_ = 0;
  uint64_t next_batch_id_ = 1;
  uint64_t not_before_ms_ = 0;
  uint32_t consecutive_failures_ = 0;
  bool flushing_ = false;
};

}  // namespace ingestd
