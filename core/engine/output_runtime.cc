// An output's queue, batches and retries, and the per-turn pump. See
// output_runtime.h.
#include "engine/output_runtime.h"

#include <algorithm>

#include "engine/disk_buffer.h"

namespace ingestd {

// ---- OutputPump

OutputPump::OutputPump(uv_loop_t *loop) {
  if (!loop) return;
  auto *check = new uv_check_t;
  uv_check_init(loop, check);
  check->data = this;
  check_ = UvHandle<uv_check_t>(check);
  // Started once and unreferenced: it never keeps a loop alive by itself,
  // and a turn with nothing due costs one empty callback.
  uv_check_start(check, [](uv_check_t *c) { static_cast<OutputPump *>(c->data)->run(); });
  uv_unref(reinterpret_cast<uv_handle_t *>(check));
  auto *idle = new uv_idle_t;
  uv_idle_init(loop, idle);
  idle->data = this;
  idle_ = UvHandle<uv_idle_t>(idle);
}

OutputPump::~OutputPump() = default;

void OutputPump::mark(OutputRuntime *o) {
  due_.push_back(o);
  if (!check_) {
    run();
    return;
  }
  if (!running_ && !uv_is_active(reinterpret_cast<uv_handle_t *>(idle_.get())))
    uv_idle_start(idle_.get(), [](uv_idle_t *i) { static_cast<OutputPump *>(i->data)->run(); });
}

void OutputPump::forget(OutputRuntime *o) {
  std::replace(due_.begin(), due_.end(), o, static_cast<OutputRuntime *>(nullptr));
}

void OutputPump::run() {
  if (running_) return;
  running_ = true;
  // Pumping may make more outputs due (a batch finished at once, a disk
  // reader refilled): they run in the same pass.
  for (size_t i = 0; i < due_.size(); ++i)
    if (due_[i]) due_[i]->pump();
  due_.clear();
  running_ = false;
  if (idle_) uv_idle_stop(idle_.get());
}

// ---- OutputRuntime

OutputRuntime::OutputRuntime(const OutputEnv &env, const OutputSettings &s)
    : env_(env), settings_(s), queue_(s.limits) {
  const QueueLimits &l = s.limits;
  // The read-ahead of a disk output: enough for every in-flight batch and the next.
  size_t batches = size_t{std::max<uint32_t>(1, l.max_inflight_batches)} + 1;
  window_records_ = std::min(l.max_records, std::max<size_t>(1, l.batch_max_records) * batches);
  window_bytes_ = std::min(l.max_bytes, std::max<size_t>(1, l.batch_max_bytes) * batches);
}

OutputRuntime::~OutputRuntime() {
  if (env_.pump) env_.pump->forget(this);
}

void OutputRuntime::setup_metrics(MetricsRegistry *m) {
  Labels l = {{"output", inst_.name}};
  records_out_ = m->counter("ingestd_output_records_total", "Records delivered by the output", l);
  records_retried_ =
      m->counter("ingestd_output_retried_records_total", "Records sent again after a failure", l);
  records_dead_ = m->counter("ingestd_output_dead_letter_records_total",
                             "Records written to the dead-letter file", l);
  batches_ = m->counter("ingestd_output_batches_total", "Batches handed to the output", l);
  queue_records_ = m->gauge("ingestd_output_queue_records", "Records queued or in flight", l);
  queue_bytes_ =
      m->gauge("ingestd_output_queue_bytes", "JSON bytes of the records queued or in flight", l);
  queue_memory_ = m->gauge("ingestd_output_queue_memory_bytes",
                           "Memory the records queued or in flight take (max_memory)", l);
  batch_latency_ = m->histogram("ingestd_output_batch_duration_seconds",
                                "Time from handing a batch to the output until it finished", l);
  if (settings_.disk) {
    disk_bytes_gauge_ = m->gauge("ingestd_output_disk_bytes",
                                 "Bytes of the disk buffer logs the output reads (this worker)", l);
  }
}

bool OutputRuntime::start() {
  timer_.init(env_.loop);
  return inst_.start();
}

bool OutputRuntime::can_accept(size_t records, size_t memory) const {
  return queue_.can_accept(records, 0) && memory <= settings_.max_memory &&
         memory_ <= settings_.max_memory - memory;
}

bool OutputRuntime::could_ever_accept(size_t records, size_t memory) const {
  return records <= queue_.limits().max_records && memory <= settings_.max_memory;
}

void OutputRuntime::push(RecordPtr r, uint64_t now_ms) {
  memory_ += r->memory();
  size_t bytes = r->size();
  queue_.push(std::move(r), bytes, now_ms);
  mark_due();
}

void OutputRuntime::push_from_disk(RecordPtr r, DiskReader *reader, uint64_t seq) {
  origin_[r.get()] = {reader, seq};
  push(std::move(r), uv_now(env_.loop));
}

void OutputRuntime::mark_due() {
  if (stopped_) return;
  if (pumping_) {
    again_ = true;  // a batch finished inside on_flush: pump() loops instead of recursing
    return;
  }
  if (due_) return;
  due_ = true;
  env_.pump->mark(this);
}

void push_all(Deliveries &deliveries, uint64_t now_ms) {
  for (auto &[out, r] : deliveries)
    out->push(std::move(r), now_ms);
  deliveries.clear();
}

void OutputRuntime::update_gauges() {
  queue_records_->set(static_cast<double>(queue_.total_records()));
  queue_bytes_->set(static_cast<double>(queue_.total_bytes()));
  queue_memory_->set(static_cast<double>(memory_));
  if (disk_bytes_gauge_) disk_bytes_gauge_->set(static_cast<double>(disk_bytes()));
}

bool OutputRuntime::window_room(size_t *free_bytes) const {
  if (stopped_ || queue_.total_records() >= window_records_ ||
      queue_.total_bytes() >= window_bytes_)
    return false;
  *free_bytes = window_bytes_ - queue_.total_bytes();
  return true;
}

uint64_t OutputRuntime::disk_bytes() const {
  uint64_t n = 0;
  for (const DiskReader *r : readers_)
    n += r->log()->segments().disk_bytes();
  return n;
}

void OutputRuntime::remove_reader(DiskReader *r) {
  readers_.erase(std::remove(readers_.begin(), readers_.end(), r), readers_.end());
}

void OutputRuntime::note_disk_full(uint64_t used) {
  if (warned_disk_full_) return;
  warned_disk_full_ = true;
  env_.log->logf(LogLevel::Warn, inst_.scope,
                 "max_disk reached (%llu of %llu bytes on this worker): requests get "
                 "503 until the output catches up",
                 static_cast<unsigned long long>(used),
                 static_cast<unsigned long long>(settings_.max_disk));
}

void OutputRuntime::pump() {
  due_ = false;
  if (stopped_ || pumping_) return;
  pumping_ = true;
  do {
    again_ = false;
    while (!stopped_) {
      auto b = queue_.take_batch(uv_now(env_.loop));
      if (!b) break;
      dispatch(*b);
    }
  } while (again_ && !stopped_);
  pumping_ = false;
  update_gauges();
  schedule();
}

void OutputRuntime::schedule() {
  if (stopped_) return;
  uint64_t now = uv_now(env_.loop);
  auto when = queue_.next_wakeup(now);
  if (!when) return;  // a timer still armed fires once and finds nothing: cheaper than stopping
  // Keep an armed timer that fires no later than needed: firing early only
  // pumps and schedules again, and re-arming on every request is not free.
  if (timer_.active() && timer_due_ <= *when) return;
  timer_due_ = *when;
  timer_.start(*when > now ? *when - now : 0, 0, [this] { pump(); });
}

void OutputRuntime::dispatch(const OutputQueue<RecordPtr>::Batch &qb) {
  auto batch = std::make_unique<Batch>();
  Batch *b = batch.get();
  b->id = qb.id;
  b->output = &inst_;  // logs a refused setter on its read-only records
  b->records.assign(qb.items.begin(), qb.items.end());
  b->marks.assign(qb.size(), Mark::None);
  b->reasons.resize(qb.size());
  b->started_ms = uv_now(env_.loop);
  b->on_done = [this](Batch &done, ingestd_batch_status_type status) { finish(done, status); };
  inflight_[b->id] = std::move(batch);
  batches_->add();
  inst_.plugin->on_flush(inst_.data, b->abi());
}

void OutputRuntime::acked(const RecordPtr &r) {
  memory_ -= std::min(memory_, r->memory());
  if (origin_.empty()) return;
  auto it = origin_.find(r.get());
  if (it == origin_.end()) return;
  it->second.first->done(it->second.second);
  origin_.erase(it);
}

void OutputRuntime::finish(Batch &b, ingestd_batch_status_type status) {
  auto it = inflight_.find(b.id);
  if (it == inflight_.end()) {
    env_.log->log(LogLevel::Warn, inst_.scope, "batch_done for an unknown batch ignored");
    return;
  }
  std::unique_ptr<Batch> owned = std::move(it->second);
  inflight_.erase(it);
  uint64_t now = uv_now(env_.loop);
  batch_latency_->observe(static_cast<double>(now - b.started_ms));

  OutputQueue<RecordPtr>::Completion c;
  if (status == INGESTD_BATCH_RETRY) {
    c = queue_.retry_all(b.id, now, rng_);
  } else {
    std::vector<ItemOutcome> outcomes(b.marks.size(), ItemOutcome::Delivered);
    for (size_t i = 0; i < b.marks.size(); ++i) {
      if (b.marks[i] == Mark::Retry) outcomes[i] = ItemOutcome::Retry;
      if (b.marks[i] == Mark::DeadLetter) outcomes[i] = ItemOutcome::DeadLetter;
    }
    c = queue_.complete(b.id, outcomes, now, rng_);
  }
  records_out_->add(c.delivered.size());
  records_retried_->add(c.retried);
  // Records read from a disk log are acked there once delivered or dead-lettered.
  for (auto &r : c.delivered)
    acked(r);
  for (auto &d : c.dead_lettered) {
    std::string reason = d.cause == DeadLetterCause::RetriesExhausted
                             ? "retries exhausted after " + std::to_string(d.attempts) + " attempts"
                             : b.reasons[d.index];
    env_.dead_letter->write(inst_.name, d.item->tag, reason, d.item->json());
    records_dead_->add();
    acked(d.item);
  }
  // The cursor moves after every batch: a crash repeats at most the batches
  // in flight. Then the freed window is filled again.
  for (DiskReader *r : readers_)
    r->persist();
  for (DiskReader *r : readers_)
    r->fill();
  if (c.retried > 0)
    env_.log->logf(LogLevel::Debug, inst_.scope, "%zu records will be retried", c.retried);
  env_.releaser->release(owned->records);
  mark_due();
}

void OutputRuntime::set_flushing() {
  queue_.set_flushing(true);
  mark_due();
}

void OutputRuntime::halt() {
  stopped_ = true;
  timer_.stop();
}

std::vector<RecordPtr> OutputRuntime::take_memory_records() {
  std::vector<RecordPtr> out;
  for (RecordPtr &r : queue_.drain_queued()) {
    if (origin_.count(r.get())) {
      origin_.erase(r.get());  // its disk log keeps it for the next reader
      continue;
    }
    memory_ -= std::min(memory_, r->memory());
    out.push_back(std::move(r));
  }
  update_gauges();
  return out;
}

size_t OutputRuntime::abandon() {
  stopped_ = true;
  timer_.stop();
  // Records read from a disk log stay there for the next start.
  size_t lost = queue_.total_records() - origin_.size();
  origin_.clear();
  memory_ = 0;
  // Batches the plugin still holds after on_stop: their callbacks must not run.
  for (auto &[id, b] : inflight_)
    b->on_done = nullptr;
  inflight_.clear();
  return lost;
}

}  // namespace ingestd
