// A worker: one thread, one uv loop, its own pipeline and HTTP servers on the
// listen sockets the engine hands it. Nothing is shared with other workers but
// the read-only config and the dead-letter file.
#pragma once

#include <uv.h>

#include <atomic>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "config/config.h"
#include "engine/dead_letter.h"
#include "engine/pipeline.h"
#include "engine/setup.h"
#include "http/server.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/uv_handle.h"

namespace ingestd {

class Worker {
 public:
  struct Options {
    int index = 0;
    int worker_count = 1;
    bool cpu_affinity = false;  // pin to CPU index % cores
    uint64_t generation = 0;
    std::shared_ptr<const Setup> setup;
    const Logger *log = nullptr;
    DeadLetter *dead_letter = nullptr;
    const std::atomic<bool> *draining = nullptr;  // the engine's; see PipelineEnv
    std::map<std::string, int> listen_fds;        // by listener name; the worker dups them
    std::function<void()> on_exit;                // called from the worker thread when it ends
  };

  explicit Worker(Options opts);
  ~Worker();  // joins the thread
  Worker(const Worker &) = delete;
  Worker &operator=(const Worker &) = delete;

  // Starts the thread and waits until the pipeline is initialised and every
  // listener accepts. False when something failed (already logged).
  bool start();
  // Thread-safe: stop accepting, answer requests in progress, drain queues for
  // up to timeout_ms, then stop the plugins and end the thread.
  // With hand_over (a reload), what memory queues still hold at the end is
  // kept for take_handover() instead of being lost.
  void retire(uint64_t timeout_ms, bool hand_over = false);
  // After the thread ended: the records a reload retirement handed over.
  std::vector<HandedRecord> take_handover() { return std::move(handover_); }
  // Thread-safe: records handed over by a retired generation, queued to
  // their outputs on this worker's loop.
  void adopt(std::vector<HandedRecord> records);
  bool exited() const { return exited_.load(std::memory_order_acquire); }
  void join();

  const MetricsRegistry &metrics() const { return metrics_; }
  size_t lost_records() const { return lost_.load(std::memory_order_relaxed); }
  int index() const { return opts_.index; }
  uint64_t generation() const { return opts_.generation; }

 private:
  void run(std::promise<bool> *ready);
  bool setup();
  void on_wake();
  void begin_retire(uint64_t timeout_ms);
  void check_retired();
  void finish();
  void tls_error(const std::string &listener, std::string_view kind, std::string_view detail);

  Options opts_;
  std::string scope_;
  MetricsRegistry metrics_;
  std::thread thread_;
  uv_loop_t loop_{};
  UvHandle<uv_async_t> wake_;
  std::unique_ptr<Pipeline> pipeline_;
  std::map<std::string, std::unique_ptr<http::Server>> servers_;
  size_t servers_open_ = 0;
  Timer retire_timer_;
  uint64_t retire_deadline_ = 0;
  bool retiring_ = false;
  bool finished_ = false;

  std::mutex mu_;  // guards the command below (set by the engine thread)
  bool retire_requested_ = false;
  bool wake_open_ = false;
  uint64_t retire_timeout_ms_ = 0;
  bool hand_over_ = false;
  std::vector<HandedRecord> inbox_;  // adopt(): waiting for the loop

  std::vector<HandedRecord> handover_;  // written by the thread before exited_
  std::atomic<bool> exited_{false};
  std::atomic<size_t> lost_{0};
  Counter *requests_ = nullptr;
  std::map<std::string, Counter *> tls_errors_;       // by listener and reason
  std::map<std::string, uint64_t> tls_error_logged_;  // by listener: loop time of the last log
};

// HTTP server limits of a [listeners.*] section.
http::ServerLimits listener_limits(const config::Section &listener);

}  // namespace ingestd
