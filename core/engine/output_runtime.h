// One output on one worker: the plugin instance, its bounded queue, batches
// in flight, retries and the memory its records take. Enqueueing only marks
// the output due; OutputPump hands batches to the plugin once per loop turn,
// after the turn's requests were answered, never on a request's stack.
#pragma once

#include <uv.h>

#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "engine/dead_letter.h"
#include "engine/record_releaser.h"
#include "host/instance.h"
#include "queue/output_queue.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/uv_handle.h"

namespace ingestd {

class DiskReader;
class OutputRuntime;

// The worker's outputs that have work, pumped once per loop turn: a
// uv_check handle runs after the turn's I/O callbacks (Redis's beforesleep),
// so a request that fills a batch is answered before the batch is sent.
// Without a loop (config checks) marked outputs are pumped at once.
class OutputPump {
 public:
  explicit OutputPump(uv_loop_t *loop);
  ~OutputPump();
  OutputPump(const OutputPump &) = delete;
  OutputPump &operator=(const OutputPump &) = delete;

  void mark(OutputRuntime *o);
  void forget(OutputRuntime *o);
  // Pumps every due output, and those that became due meanwhile.
  void run();

 private:
  UvHandle<uv_check_t> check_;
  // Active only while something is due: a mark made after this turn's check
  // (in a close callback) must not wait for the next I/O to be pumped.
  UvHandle<uv_idle_t> idle_;
  std::vector<OutputRuntime *> due_;
  bool running_ = false;
};

// What every output of a worker shares; each pointer outlives the outputs.
struct OutputEnv {
  uv_loop_t *loop = nullptr;
  const Logger *log = nullptr;
  DeadLetter *dead_letter = nullptr;
  RecordReleaser *releaser = nullptr;
  OutputPump *pump = nullptr;
};

struct OutputSettings {
  QueueLimits limits;
  size_t max_memory = SIZE_MAX;  // Record::memory() of queued and in-flight records
  bool disk = false;             // buffer = "disk": fed from input logs only
  uint64_t max_disk = 0;         // this worker's share of max_disk
};

class OutputRuntime {
 public:
  OutputRuntime(const OutputEnv &env, const OutputSettings &s);
  ~OutputRuntime();
  OutputRuntime(const OutputRuntime &) = delete;
  OutputRuntime &operator=(const OutputRuntime &) = delete;

  Instance &instance() { return inst_; }
  const Instance &instance() const { return inst_; }
  const std::string &name() const { return inst_.name; }
  const std::string &scope() const { return inst_.scope; }
  void setup_metrics(MetricsRegistry *m);
  bool start();

  // Admission: room for `records` more taking `memory` bytes.
  bool can_accept(size_t records, size_t memory) const;
  // Whether the queue could take that much when empty.
  bool could_ever_accept(size_t records, size_t memory) const;
  size_t memory() const { return memory_; }
  // Queues a record whose admission was checked, and marks the output due.
  void push(RecordPtr r, uint64_t now_ms);
  void push_from_disk(RecordPtr r, DiskReader *reader, uint64_t seq);
  // Called by OutputPump: sends every batch the queue releases now, then
  // arms the flush timer.
  void pump();
  void mark_due();

  // buffer = "disk"
  bool disk() const { return settings_.disk; }
  uint64_t max_disk() const { return settings_.max_disk; }
  // Room in the read-ahead window (free JSON bytes in *free_bytes).
  bool window_room(size_t *free_bytes) const;
  uint64_t disk_bytes() const;
  void add_reader(DiskReader *r) { readers_.push_back(r); }
  void remove_reader(DiskReader *r);
  // max_disk reached: warns once until the output is below it again.
  void note_disk_full(uint64_t used);
  void note_disk_room() { warned_disk_full_ = false; }

  // Shutdown and retirement.
  void set_flushing();
  bool idle() const { return queue_.total_records() == 0; }
  size_t pending_records() const { return queue_.total_records(); }
  // No more batches to the plugin (before on_stop: batches it finishes then
  // are accounted, nothing new is sent).
  void halt();
  bool halted() const { return stopped_; }
  // After on_stop: removes the queued records that live only in memory (not
  // read from a disk log), for the next generation to deliver.
  std::vector<RecordPtr> take_memory_records();
  // Forgets in-flight batches the plugin never finished (after on_stop);
  // returns the records lost (those read from a disk log stay there).
  size_t abandon();
  void close_timer() { timer_ = Timer(); }
  void update_gauges();
  uint64_t delivered() const { return records_out_->value(); }

 private:
  void dispatch(const OutputQueue<RecordPtr>::Batch &b);
  void finish(Batch &b, ingestd_batch_status_type status);
  void acked(const RecordPtr &r);
  void schedule();

  OutputEnv env_;
  OutputSettings settings_;
  Instance inst_;
  OutputQueue<RecordPtr> queue_;
  Timer timer_;
  uint64_t timer_due_ = 0;  // loop time the armed timer fires
  std::mt19937_64 rng_{std::random_device{}()};
  std::map<uint64_t, std::unique_ptr<Batch>> inflight_;
  bool due_ = false;
  bool pumping_ = false;
  bool again_ = false;
  bool stopped_ = false;
  size_t window_records_ = 0, window_bytes_ = 0;
  size_t memory_ = 0;
  bool warned_disk_full_ = false;
  std::vector<DiskReader *> readers_;
  // Queued records read from a log: where to ack them once done.
  std::unordered_map<const Record *, std::pair<DiskReader *, uint64_t>> origin_;

  Counter *records_out_ = nullptr;
  Counter *records_retried_ = nullptr;
  Counter *records_dead_ = nullptr;
  Counter *batches_ = nullptr;
  Gauge *queue_records_ = nullptr;
  Gauge *queue_bytes_ = nullptr;
  Gauge *queue_memory_ = nullptr;
  Histogram *batch_latency_ = nullptr;
  Gauge *disk_bytes_gauge_ = nullptr;
};

// Records bound for memory-buffered outputs, pushed together once admitted.
using Deliveries = std::vector<std::pair<OutputRuntime *, RecordPtr>>;
void push_all(Deliveries &deliveries, uint64_t now_ms);

}  // namespace ingestd
