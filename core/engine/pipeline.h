// A pipeline: one worker's instances of every input, filter and output of one
// config generation, and the request path through them:
//   HTTP request -> body split into records -> input plugin (validate, shape)
//   -> routes -> filters -> output queues (all-or-nothing admission)
// The phone is answered once its records are in every matching queue.
#pragma once

#include <uv.h>

#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "aws/chain.h"
#include "config/config.h"
#include "engine/api_keys.h"
#include "engine/dead_letter.h"
#include "engine/record_releaser.h"
#include "engine/router.h"
#include "engine/setup.h"
#include "host/instance.h"
#include "http/server.h"
#include "httpclient/http_client.h"
#include "queue/output_queue.h"
#include "storage/storage_io.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/uv_handle.h"

namespace ingestd {

class Pipeline;
class DiskLog;
class DiskReader;

// HTTP answers of one path (or of every unknown path of a listener).
struct PathMetrics {
  Labels labels;
  std::map<int, Counter *> by_status;  // filled on first use of a status
  Counter *bytes_in = nullptr;
  Histogram *latency = nullptr;
  void observe(MetricsRegistry *m, int status, size_t bytes, uint64_t latency_ms);
};

struct InputRuntime {
  Instance inst;
  std::string listener;
  std::string path;
  std::string tag;
  std::vector<RouteTarget> targets;
  Counter *records_in = nullptr;        // accepted by the input
  Counter *records_rejected = nullptr;  // invalid, answered in the rejected list
  Counter *records_unrouted = nullptr;  // accepted but matched no route
  Counter *records_refused = nullptr;   // accepted but refused with 503 (queue full)
  Counter *requests_shed = nullptr;     // 503 before parsing: a queue was already full
  bool warned_unrouted = false;
  PathMetrics http;
  // Disk outputs this input reaches, each with the filter chains of the
  // routes that lead there (applied when the output reads the log). Their
  // indices are not in `targets`.
  struct DiskRoute {
    size_t output;
    std::vector<std::vector<size_t>> chains;
  };
  std::vector<DiskRoute> disk_routes;
  DiskLog *log = nullptr;  // this worker's log of the input (when disk_routes is not empty)
};

// What the pipeline knows of one listener: its inputs by path, API keys,
// per-key rate limits.
struct ListenerRuntime {
  std::string name;
  std::map<std::string, InputRuntime *, std::less<>> by_path;
  std::shared_ptr<const ApiKeys> keys;
  std::string key_header;
  std::string source_field;
  std::string client_address_field;
  double rate_limit = 0;  // records/s per key and worker
  double rate_burst = 0;
  std::map<std::string, TokenBucket, std::less<>> buckets;  // by key name
  PathMetrics other_paths;
  Counter *unauthorized = nullptr;
  Counter *rate_limited = nullptr;
};

struct FilterRuntime {
  Instance inst;
  Counter *dropped = nullptr;
};

class OutputRuntime {
 public:
  OutputRuntime(Pipeline *p, QueueLimits limits) : pipeline_(p), queue_(limits) {}
  Instance inst;

  OutputQueue<RecordPtr> &queue() { return queue_; }
  // Queues a record (admission was checked), counting its memory.
  void push(RecordPtr r, uint64_t now_ms) {
    memory_ += r->memory();
    size_t bytes = r->size();
    queue_.push(std::move(r), bytes, now_ms);
  }
  // Room for `records` more records taking `memory` bytes (max_records, max_memory).
  bool can_accept(size_t records, size_t memory) const {
    return queue_.can_accept(records, 0) && memory <= max_memory_ &&
           memory_ <= max_memory_ - memory;
  }
  // Memory of the records queued or in flight (Record::memory()).
  size_t memory() const { return memory_; }
  void set_max_memory(size_t bytes) { max_memory_ = bytes; }
  void setup_metrics(MetricsRegistry *m);
  void start_timer(uv_loop_t *loop) { timer_.init(loop); }
  // Sends every batch the queue releases now, then arms the timer.
  void pump();
  void set_flushing() {
    queue_.set_flushing(true);
    pump();
  }
  // Nothing queued and nothing in flight.
  bool idle() const { return queue_.total_records() == 0; }
  size_t pending_records() const { return queue_.total_records(); }
  // No more batches to the plugin (before on_stop: batches it finishes then
  // are accounted, nothing new is sent).
  void halt() {
    stopped_ = true;
    timer_.stop();
  }
  // Forgets in-flight batches the plugin never finished (after on_stop).
  size_t abandon();
  void close_timer() { timer_ = Timer(); }
  void update_gauges();

  // buffer = "disk": records reach the queue only from the logs of the
  // inputs routed here, a read-ahead window at a time.
  bool disk = false;
  uint64_t max_disk = 0;  // this worker's share of max_disk
  bool warned_disk_full = false;
  std::vector<DiskReader *> readers;
  bool window_room(size_t *free_bytes) const;
  uint64_t disk_bytes() const;
  void push_from_disk(RecordPtr r, DiskReader *reader, uint64_t seq);
  bool halted() const { return stopped_; }
  // The read-ahead of a disk output: enough for every in-flight batch and the next.
  void set_window(const QueueLimits &l) {
    size_t batches = size_t{std::max<uint32_t>(1, l.max_inflight_batches)} + 1;
    window_records_ = std::min(l.max_records, std::max<size_t>(1, l.batch_max_records) * batches);
    window_bytes_ = std::min(l.max_bytes, std::max<size_t>(1, l.batch_max_bytes) * batches);
  }
  Pipeline *pipeline() const { return pipeline_; }

  Counter *records_out = nullptr;
  Counter *records_retried = nullptr;
  Counter *records_dead = nullptr;
  Counter *batches = nullptr;
  Gauge *queue_records = nullptr;
  Gauge *queue_bytes = nullptr;
  Gauge *queue_memory = nullptr;
  Histogram *batch_latency = nullptr;
  Gauge *disk_bytes_gauge = nullptr;

 private:
  void dispatch(const OutputQueue<RecordPtr>::Batch &b);
  void finish(Batch &b, ingestd_batch_status_type status);
  void schedule();

  Pipeline *pipeline_;
  OutputQueue<RecordPtr> queue_;
  Timer timer_;
  uint64_t timer_due_ = 0;  // loop time the armed timer fires
  std::mt19937_64 rng_{std::random_device{}()};
  std::map<uint64_t, std::unique_ptr<Batch>> inflight_;
  bool pumping_ = false;
  bool again_ = false;
  bool stopped_ = false;
  size_t window_records_ = 0, window_bytes_ = 0;
  size_t memory_ = 0;
  size_t max_memory_ = SIZE_MAX;
  // Queued records read from a log: where to ack them once done.
  std::unordered_map<const Record *, std::pair<DiskReader *, uint64_t>> origin_;
};

struct PipelineEnv {
  uv_loop_t *loop = nullptr;
  const Logger *log = nullptr;
  MetricsRegistry *metrics = nullptr;
  DeadLetter *dead_letter = nullptr;
  int worker = 0;
  int worker_count = 1;  // per-key rate limits are split evenly across workers
  uint64_t generation = 0;
  bool check_only = false;  // `ingestd -t`: init plugins, never start them
  bool disk_logs = true;    // open and adopt disk buffer logs (not for --replay)
};

class Pipeline {
 public:
  Pipeline(std::shared_ptr<const Setup> setup, PipelineEnv env);
  ~Pipeline();
  Pipeline(const Pipeline &) = delete;
  Pipeline &operator=(const Pipeline &) = delete;

  // Creates and initialises every instance. False (errors logged) if a plugin
  // refuses its config.
  bool init();
  bool start();
  // Answers one request on `listener`.
  void handle(const std::string &listener, http::Request &req, http::Responder responder);
  // Counts an answer (from the HTTP server's observer).
  void observe(const std::string &listener, const http::Request *req, int status, size_t bytes_in,
               uint64_t latency_ms);
  // Outputs send everything they hold at once (shutdown, retirement).
  void drain();
  bool idle() const;
  size_t pending_records() const;
  // Stops and destroys every instance; returns records never delivered.
  size_t stop();

  const config::Config &config() const { return *cfg_; }
  const PipelineEnv &env() const { return env_; }

  // Queues a record for one output directly (`ingestd --replay`); false if
  // there is no such output.
  bool enqueue_to(std::string_view output, RecordPtr record);
  // Records the named output delivered so far.
  uint64_t delivered(std::string_view output) const;

  // The answer to a request, held while its records are written to disk.
  struct Reply {
    http::Responder responder;
    http::Response response;
  };
  enum class IngestResult {
    Ok,        // queued; answer now
    Pending,   // written to a disk log: the commit answers (reply was taken)
    Full,      // a memory queue or max_memory is full: 503
    DiskFull,  // an output's max_disk is reached, or its log cannot be written: 503
  };
  // Routes accepted records of `input`: all of them or none are queued.
  IngestResult ingest(InputRuntime &input, std::vector<RecordPtr> &records, Reply *reply);

 private:
  friend class OutputRuntime;
  friend class DiskLog;
  friend class DiskReader;
  // False when a queue of the input's routes is already full (checked before parsing).
  bool room_for(const InputRuntime &input);
  // Runs a filter chain on r; false when a filter dropped it.
  bool run_filters(const std::vector<size_t> &chain, RecordPtr &r);
  // Pushes deliveries to memory queues and pumps them (after admission).
  void push_memory(std::vector<std::pair<size_t, RecordPtr>> &deliveries);
  bool open_own_logs();
  bool open_log(InputRuntime *in, const std::string &dir, UniqueFd lock, bool own);
  // Adopts logs under storage_dir nobody holds; removes adopted logs read to the end.
  void adopt_logs();
  // Logs under storage_dir no configured disk output reads: said once at start.
  void warn_unread_logs();
  void retire_drained_logs(bool include_own);
  bool make_instance(Instance &inst, const config::Section &s, ingestd_kind_type kind);
  // 401 / 429 checks; false when the request was answered.
  bool admit(ListenerRuntime &l, http::Request &req, http::Responder &responder,
             const std::string **source);

  std::shared_ptr<const Setup> setup_;
  const config::Config *cfg_;
  PipelineEnv env_;
  // The worker's outgoing HTTP client and AWS credentials chains, handed to
  // every instance. Declared before the instances: destroyed after them.
  std::unique_ptr<HttpClient> http_;
  std::unique_ptr<aws::Registry> aws_;
  RecordReleaser releaser_;
  std::vector<std::unique_ptr<InputRuntime>> inputs_;
  std::vector<std::unique_ptr<FilterRuntime>> filters_;
  std::vector<std::unique_ptr<OutputRuntime>> outputs_;
  std::map<std::string, ListenerRuntime, std::less<>> listeners_;
  std::vector<Counter *> route_records_;
  // Scratch for ingest(), reused across requests.
  std::vector<std::pair<size_t, RecordPtr>> deliveries_;
  std::vector<size_t> out_records_, out_bytes_;
  bool stopped_ = false;
  size_t max_memory_ = SIZE_MAX;  // this worker's share of service.max_memory
  std::string storage_dir_;
  std::vector<std::string> disk_payloads_;  // scratch for ingest()
  // Declared after outputs_: destroyed before them (readers point at outputs).
  std::vector<std::unique_ptr<DiskLog>> logs_;
  Timer adopt_timer_;
};

}  // namespace ingestd
