// A pipeline: one worker's instances of every input, filter and output of one
// config generation, wired together. A record's way through it:
//   http_ingest.cc  keys, rate limits, body -> records, input plugin, answers
//   routing.cc      routes: filters once, all-or-nothing admission
//   disk_buffer.cc  (disk outputs) the input's log, read back per output
//   output_runtime.cc  queue, batches once per loop turn, retries
// The phone is answered once its records are in every matching queue.
#pragma once

#include <uv.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "aws/chain.h"
#include "config/config.h"
#include "engine/dead_letter.h"
#include "engine/disk_store.h"
#include "engine/http_ingest.h"
#include "engine/output_runtime.h"
#include "engine/record_releaser.h"
#include "engine/routing.h"
#include "engine/setup.h"
#include "http/server.h"
#include "httpclient/http_client.h"
#include "util/log.h"
#include "util/metrics.h"

namespace ingestd {

// A record left in a memory queue by a generation retiring for a reload, as
// text, since it crosses to a worker thread of the next generation.
struct HandedRecord {
  std::string output;
  std::string tag;
  int64_t received_ms = 0;
  std::string json;
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
  // Set by the engine when the process drains (SIGTERM with drain_delay):
  // listeners' health_path answers 503. Owned by the engine; may be null.
  const std::atomic<bool> *draining = nullptr;
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
  void handle(const std::string &listener, http::Request &req, http::Responder responder) {
    ingest_->handle(listener, req, std::move(responder));
  }
  // Counts an answer (from the HTTP server's observer).
  void observe(const std::string &listener, const http::Request *req, int status, size_t bytes_in,
               uint64_t latency_ms) {
    ingest_->observe(listener, req, status, bytes_in, latency_ms);
  }
  // Outputs send everything they hold at once (shutdown, retirement).
  void drain();
  bool idle() const;
  size_t pending_records() const;
  // Stops and destroys every instance; returns records never delivered.
  // With `hand_over` (a reload), what memory queues still hold is moved
  // there as text instead of being lost: the next generation delivers it.
  size_t stop(std::vector<HandedRecord> *hand_over = nullptr);

  const config::Config &config() const { return *cfg_; }
  const PipelineEnv &env() const { return env_; }

  // Queues a record for one output directly (`ingestd --replay`); false if
  // there is no such output.
  bool enqueue_to(std::string_view output, RecordPtr record);
  // A record the previous generation handed over (Pipeline::stop); false
  // when this configuration has no output of that name.
  bool adopt(HandedRecord &&record);
  // Records the named output delivered so far.
  uint64_t delivered(std::string_view output) const;

 private:
  bool make_instance(Instance &inst, const config::Section &s, ingestd_kind_type kind);
  bool init_outputs();
  bool init_filters();
  bool init_inputs();

  std::shared_ptr<const Setup> setup_;
  const config::Config *cfg_;
  PipelineEnv env_;
  // The worker's outgoing HTTP client and AWS credentials chains, handed to
  // every instance. Declared before the instances: destroyed after them.
  std::unique_ptr<HttpClient> http_;
  std::unique_ptr<aws::Registry> aws_;
  RecordReleaser releaser_;
  OutputPump pump_;  // before the outputs: they leave it as they go
  std::vector<std::unique_ptr<OutputRuntime>> outputs_;
  std::vector<std::unique_ptr<FilterRuntime>> filters_;
  std::vector<std::unique_ptr<InputRuntime>> inputs_;
  std::unique_ptr<Routing> routing_;
  std::unique_ptr<HttpIngest> ingest_;
  // After the outputs and inputs: destroyed before them (readers point at both).
  std::unique_ptr<DiskStore> disk_;
  bool stopped_ = false;
};

}  // namespace ingestd
