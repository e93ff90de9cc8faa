// The disk buffer (`buffer = "disk"` on an output): one segment log per
// (input, worker) holds every accepted record of the input once; each disk
// output reading it keeps a cursor in it and a small in-memory window of
// records in its queue. A request that wrote to a log is answered after the
// group commit that holds its last record.
//
// Log directories live under storage_dir/<input>/, one per worker and
// process start or reload, each locked with flock(2) by the worker that
// owns it. A log nobody holds (an earlier run, a retired generation after a
// reload, a worker that no longer exists) is adopted by whichever worker
// locks it first: it reads it to the end for its disk outputs and removes
// it. So a reload or a restart with fewer workers hands the backlog over
// instead of stranding it.
#pragma once

#include <uv.h>

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/output_runtime.h"
#include "engine/routing.h"
#include "host/record.h"
#include "http/server.h"
#include "storage/segment_log.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/uv_handle.h"

namespace ingestd {

class DiskLog;

// What the logs of a worker share; each pointer outlives the logs.
struct DiskEnv {
  uv_loop_t *loop = nullptr;
  const Logger *log = nullptr;
  MetricsRegistry *metrics = nullptr;
};

// Payload of one log record: received_ms (8 bytes, little-endian) + JSON.
std::string encode_disk_record(int64_t received_ms, const std::string &json);

// One disk output reading one log. Feeds the output's queue from the log up
// to the output's read-ahead window and acks the log in order as copies are
// delivered or dead-lettered.
class DiskReader {
 public:
  DiskReader(DiskLog *log, OutputRuntime *out, std::vector<FilterChain> chains, Reader *reader);
  DiskReader(const DiskReader &) = delete;
  DiskReader &operator=(const DiskReader &) = delete;

  // Reads while the output's window has room; marks the output due.
  void fill();
  // One queued copy of record `seq` is done (delivered or dead-lettered).
  void done(uint64_t seq);
  // Writes the cursor if it moved, then lets the log drop consumed segments.
  void persist();
  // Everything committed so far was read and acked.
  bool caught_up() const;
  // Records read but not acked (their copies are in the output's queue).
  size_t outstanding() const { return outstanding_.size(); }
  uint64_t acked() const { return reader_->acked(); }
  OutputRuntime *output() const { return out_; }
  DiskLog *log() const { return log_; }

 private:
  void enqueue(const RecordView &v);
  void advance_ack();

  DiskLog *log_;
  OutputRuntime *out_;
  std::vector<FilterChain> chains_;  // of the routes input -> output, run once on read
  Reader *reader_;
  std::map<uint64_t, uint32_t> outstanding_;  // seq -> copies still queued
  std::vector<RecordView> views_;
  bool read_error_logged_ = false;
};

// A request (or a plugin's emit) waiting for the commit of its last record.
struct CommitWaiter {
  uint64_t seq = 0;
  bool has_responder = false;
  http::Responder responder;
  http::Response response;
  // Deliveries to memory outputs of the same request: pushed once the disk
  // write succeeded, dropped with a 503 when it failed (all or nothing).
  Deliveries memory;
  // Counters that move only once the write succeeded.
  std::vector<std::pair<Counter *, uint64_t>> counts;
};

class DiskLog {
 public:
  // `own`: this worker appends to it; otherwise it was adopted and is only
  // read to the end.
  DiskLog(const DiskEnv &env, InputRuntime *input, std::string dir, std::unique_ptr<SegmentLog> log,
          UniqueFd lock, bool own);
  ~DiskLog();
  DiskLog(const DiskLog &) = delete;
  DiskLog &operator=(const DiskLog &) = delete;

  SegmentLog &segments() { return *log_; }
  const DiskEnv &env() const { return env_; }
  const std::string &dir() const { return dir_; }
  InputRuntime *input() const { return input_; }
  bool own() const { return own_; }
  std::vector<std::unique_ptr<DiskReader>> &readers() { return readers_; }

  // Appends one record; 0 when it cannot be stored (too large).
  uint64_t append(const std::string &payload) { return log_->append(payload); }
  // Parks a request until `waiter.seq` is committed and starts a commit soon
  // (requests parsed in the same loop turn share one write).
  void wait(CommitWaiter waiter);
  // Every reader is caught up and nothing is waiting to be written.
  bool drained() const;
  // Feeds every reader (new records committed, or room freed).
  void fill_all();
  // Shutdown: writes what is pending, persists every cursor, stops timers.
  // Returns the records still unread by some output (kept for the next run).
  uint64_t close();

 private:
  void schedule_commit();
  void commit();
  void complete(std::unique_ptr<CommitJob> job);
  static void work_cb(uv_work_t *w);
  static void after_work_cb(uv_work_t *w, int status);
  // fsync = "interval": the sync runs beside the commits (SegmentLog background_sync).
  void start_sync();
  static void sync_work_cb(uv_work_t *w);
  static void after_sync_cb(uv_work_t *w, int status);

  DiskEnv env_;
  InputRuntime *input_;
  std::string dir_;
  std::unique_ptr<SegmentLog> log_;
  UniqueFd lock_;
  bool own_;
  std::vector<std::unique_ptr<DiskReader>> readers_;
  std::deque<CommitWaiter> waiters_;
  Timer commit_timer_;  // 0 ms: the next loop turn, after this turn's requests
  Timer sync_timer_;    // fsync = "interval": a sync even when nothing is appended
  uv_work_t work_{};
  std::unique_ptr<CommitJob> job_;  // on the thread pool
  bool working_ = false;
  uv_work_t sync_work_{};
  std::unique_ptr<SyncJob> sync_job_;  // on the thread pool
  bool syncing_ = false;
  bool closed_ = false;
  // A write found the file system full and none has succeeded since; the
  // requests refused meanwhile (logged once when it ends).
  bool no_space_ = false;
  uint64_t refused_no_space_ = 0;
  Counter *commits_ = nullptr;
  Counter *commit_errors_ = nullptr;
};

}  // namespace ingestd
