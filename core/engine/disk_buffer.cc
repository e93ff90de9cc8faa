// Disk buffer: group commit of accepted records, readers feeding the disk
// outputs' queues, in-order acks. See disk_buffer.h.
#include "engine/disk_buffer.h"

#include <cstring>

#include "json/json.h"

namespace ingestd {

namespace {

http::Response unavailable(std::string_view why) {
  http::Response r;
  r.status = 503;
  r.body = "{\"error\":";
  json::serialize(json::Value::string(why), &r.body);
  r.body += "}";
  r.headers.emplace_back("Retry-After", "1");
  return r;
}

}  // namespace

std::string encode_disk_record(int64_t received_ms, const std::string &json) {
  std::string out(8 + json.size(), '\0');
  auto v = static_cast<uint64_t>(received_ms);
  for (int i = 0; i < 8; ++i)
    out[static_cast<size_t>(i)] = static_cast<char>((v >> (8 * i)) & 0xff);
  std::memcpy(out.data() + 8, json.data(), json.size());
  return out;
}

// ---- DiskReader

DiskReader::DiskReader(DiskLog *log, OutputRuntime *out, std::vector<FilterChain> chains,
                       Reader *reader)
    : log_(log), out_(out), chains_(std::move(chains)), reader_(reader) {}

void DiskReader::fill() {
  if (out_->halted()) return;
  size_t free_bytes = 0;
  bool read_any = false;
  while (out_->window_room(&free_bytes)) {
    std::string err = reader_->read(256, free_bytes, &views_);
    if (!err.empty() && !read_error_logged_) {
      read_error_logged_ = true;
      log_->env().log->logf(LogLevel::Error, out_->scope(), "disk buffer %s: %s",
                            log_->dir().c_str(), err.c_str());
    }
    if (views_.empty()) break;
    read_any = true;
    for (const auto &v : views_)
      enqueue(v);
  }
  if (read_any) {
    advance_ack();
    out_->mark_due();
  }
}

void DiskReader::enqueue(const RecordView &v) {
  json::Value root;
  json::ParseError perr;
  if (v.payload.size() < 8 || !json::parse(v.payload.substr(8), &root, &perr) ||
      !root.is_object()) {
    // Checksummed, so only a foreign writer gets here: skip it, loudly.
    log_->env().log->logf(LogLevel::Error, out_->scope(),
                          "disk buffer %s: record %llu is not a stored record; skipped",
                          log_->dir().c_str(), static_cast<unsigned long long>(v.seq));
    return;
  }
  uint64_t received = 0;
  for (int i = 7; i >= 0; --i)
    received = (received << 8) | static_cast<unsigned char>(v.payload[static_cast<size_t>(i)]);
  uint32_t copies = 0;
  for (size_t i = 0; i < chains_.size(); ++i) {
    RecordPtr r = RecordPtr::make();
    if (i + 1 < chains_.size())
      r->root = root;
    else
      r->root = std::move(root);
    r->tag = log_->input()->tag;
    r->received_ms = static_cast<int64_t>(received);
    if (!run_filters(chains_[i], r)) continue;
    out_->push_from_disk(std::move(r), this, v.seq);
    ++copies;
  }
  if (copies > 0) outstanding_[v.seq] += copies;
}

void DiskReader::done(uint64_t seq) {
  auto it = outstanding_.find(seq);
  if (it == outstanding_.end()) return;
  if (--it->second == 0) {
    bool first = it == outstanding_.begin();
    outstanding_.erase(it);
    if (first) advance_ack();
  }
}

void DiskReader::advance_ack() {
  uint64_t through =
      outstanding_.empty() ? reader_->read_position() : outstanding_.begin()->first - 1;
  reader_->ack_through(through);
}

void DiskReader::persist() {
  if (reader_->persisted() == reader_->acked()) return;
  std::string err = reader_->persist();
  if (!err.empty()) {
    log_->env().log->logf(LogLevel::Error, out_->scope(),
                          "disk buffer %s: cannot save the read position: %s", log_->dir().c_str(),
                          err.c_str());
  }
  err = log_->segments().collect();
  if (!err.empty()) {
    log_->env().log->logf(LogLevel::Error, out_->scope(),
                          "disk buffer %s: cannot remove a consumed segment: %s",
                          log_->dir().c_str(), err.c_str());
  }
}

bool DiskReader::caught_up() const {
  uint64_t committed = log_->segments().committed_through();
  return outstanding_.empty() && reader_->read_position() >= committed &&
         reader_->acked() >= committed;
}

// ---- DiskLog

DiskLog::DiskLog(const DiskEnv &env, InputRuntime *input, std::string dir,
                 std::unique_ptr<SegmentLog> log, UniqueFd lock, bool own)
    : env_(env),
      input_(input),
      dir_(std::move(dir)),
      log_(std::move(log)),
      lock_(std::move(lock)),
      own_(own) {
  uv_loop_t *loop = env_.loop;
  commit_timer_.init(loop);
  sync_timer_.init(loop);
  work_.data = this;
  sync_work_.data = this;
  Labels l = {{"input", input->inst.name}};
  commits_ = env_.metrics->counter("ingestd_disk_commits_total",
                                   "Group commits written to the disk buffer", l);
  commit_errors_ =
      env_.metrics->counter("ingestd_disk_commit_errors_total",
                            "Disk buffer writes that failed (their requests got 503)", l);
  const auto &o = log_->options();
  if (own_ && o.fsync == FsyncMode::Interval) {
    sync_timer_.start(o.fsync_interval_ms, o.fsync_interval_ms, [this] {
      uint64_t now = uv_now(env_.loop);
      if (log_->options().background_sync) {
        if (log_->sync_wanted(now)) start_sync();
      } else if (log_->commit_wanted(now)) {
        schedule_commit();
      }
    });
  }
}

DiskLog::~DiskLog() = default;

void DiskLog::wait(CommitWaiter waiter) {
  waiters_.push_back(std::move(waiter));
  schedule_commit();
}

void DiskLog::schedule_commit() {
  if (closed_ || working_ || commit_timer_.active()) return;
  commit_timer_.start(0, 0, [this] { commit(); });
}

void DiskLog::commit() {
  if (working_ || closed_) return;
  auto job = log_->begin_commit(uv_now(env_.loop));
  if (!job) return;
  if (!job->syncs()) {
    // A write into the page cache: cheaper here than a thread hop.
    job->run();
    complete(std::move(job));
    return;
  }
  job_ = std::move(job);
  working_ = true;
  int rc = uv_queue_work(env_.loop, &work_, &DiskLog::work_cb, &DiskLog::after_work_cb);
  if (rc != 0) {
    working_ = false;
    job_->run();
    complete(std::move(job_));
  }
}

void DiskLog::work_cb(uv_work_t *w) {
  static_cast<DiskLog *>(w->data)->job_->run();
}

void DiskLog::after_work_cb(uv_work_t *w, int) {
  auto *self = static_cast<DiskLog *>(w->data);
  self->working_ = false;
  self->complete(std::move(self->job_));
}

void DiskLog::start_sync() {
  if (syncing_ || closed_) return;
  sync_job_ = log_->begin_sync(uv_now(env_.loop));
  if (!sync_job_) return;
  syncing_ = true;
  if (uv_queue_work(env_.loop, &sync_work_, &DiskLog::sync_work_cb, &DiskLog::after_sync_cb) != 0) {
    sync_job_->run();
    after_sync_cb(&sync_work_, 0);
  }
}

void DiskLog::sync_work_cb(uv_work_t *w) {
  static_cast<DiskLog *>(w->data)->sync_job_->run();
}

void DiskLog::after_sync_cb(uv_work_t *w, int) {
  auto *self = static_cast<DiskLog *>(w->data);
  self->syncing_ = false;
  std::string err = self->log_->finish_sync(std::move(self->sync_job_));
  if (!err.empty()) {
    self->env_.log->logf(LogLevel::Error, self->input_->inst.scope,
                         "disk buffer %s: sync failed, the log takes no more records "
                         "until restarted: %s",
                         self->dir_.c_str(), err.c_str());
  }
}

void DiskLog::complete(std::unique_ptr<CommitJob> job) {
  CommitResult r = log_->finish_commit(std::move(job));
  commits_->add();
  const Logger *log = env_.log;
  if (r.requeued > 0) {
    log->logf(LogLevel::Info, input_->inst.scope,
              "disk buffer %s: no space left on device: removed %llu bytes of delivered records "
              "and writing %zu records again",
              dir_.c_str(), static_cast<unsigned long long>(r.reclaimed_bytes), r.requeued);
  }
  if (!r.reclaim_error.empty()) {
    log->logf(LogLevel::Warn, input_->inst.scope,
              "disk buffer %s: cannot give back the space of delivered records: %s", dir_.c_str(),
              r.reclaim_error.c_str());
  }
  if (!r.ok) {
    commit_errors_->add();
    if (!r.no_space) {
      log->logf(LogLevel::Error, input_->inst.scope,
                "disk buffer %s: write failed, %zu records refused with 503: %s", dir_.c_str(),
                r.records, r.error.c_str());
    } else if (!no_space_) {
      // Once per episode: under load every commit would say it again.
      no_space_ = true;
      log->logf(LogLevel::Error, input_->inst.scope,
                "disk buffer %s: no space left on device: requests get 503 until space is freed "
                "(%s)",
                dir_.c_str(), r.error.c_str());
    }
  } else if (no_space_ && r.records > 0) {
    no_space_ = false;
    log->logf(LogLevel::Info, input_->inst.scope,
              "disk buffer %s: writable again after %llu requests were refused for lack of space",
              dir_.c_str(), static_cast<unsigned long long>(refused_no_space_));
    refused_no_space_ = 0;
  }
  while (!waiters_.empty() && waiters_.front().seq <= std::max(r.last_seq, r.committed_through)) {
    CommitWaiter w = std::move(waiters_.front());
    waiters_.pop_front();
    bool failed = !r.ok && w.seq >= r.first_seq && w.seq <= r.last_seq;
    if (failed) {
      if (r.no_space) ++refused_no_space_;
      if (w.has_responder) {
        w.responder.respond(unavailable(r.no_space ? "disk buffer full: no space left on device, "
                                                     "retry later"
                                                   : "disk buffer cannot be written: " + r.error));
      }
      continue;
    }
    if (w.seq > r.committed_through) {
      waiters_.push_front(std::move(w));
      break;
    }
    if (!closed_) {
      push_all(w.memory, uv_now(env_.loop));
      for (auto &[counter, n] : w.counts)
        counter->add(n);
    }
    if (w.has_responder) w.responder.respond(std::move(w.response));
  }
  if (!closed_) {
    fill_all();
    if (log_->pending_records() > 0) schedule_commit();
  }
  if (log_->broken()) {
    // No later commit can succeed until the log is reopened: answer now.
    while (!waiters_.empty()) {
      CommitWaiter w = std::move(waiters_.front());
      waiters_.pop_front();
      if (w.has_responder)
        w.responder.respond(unavailable("disk buffer cannot be written: " + log_->broken_reason()));
    }
  }
}

void DiskLog::fill_all() {
  for (auto &r : readers_)
    r->fill();
}

bool DiskLog::drained() const {
  if (working_ || syncing_ || !waiters_.empty() || log_->pending_records() > 0) return false;
  for (const auto &r : readers_)
    if (!r->caught_up()) return false;
  return true;
}

uint64_t DiskLog::close() {
  if (closed_) return 0;
  commit_timer_.stop();
  sync_timer_.stop();
  // Twice at most: a write that met a full disk may be requeued once.
  for (int i = 0; i < 2 && !working_ && log_->pending_records() > 0; ++i) {
    auto job = log_->begin_commit(uv_now(env_.loop));
    if (!job) break;
    job->run();
    closed_ = true;  // no more memory pushes or reads
    complete(std::move(job));
  }
  closed_ = true;
  if (!syncing_ && log_->options().background_sync) {
    // What a clean stop wrote reaches the disk before the process goes.
    if (auto sync = log_->begin_sync(uv_now(env_.loop))) {
      sync->run();
      std::string err = log_->finish_sync(std::move(sync));
      if (!err.empty()) {
        env_.log->logf(LogLevel::Error, input_->inst.scope,
                       "disk buffer %s: sync at shutdown failed: %s", dir_.c_str(), err.c_str());
      }
    }
  }
  uint64_t committed = log_->committed_through();
  uint64_t slowest = committed;  // records some output has not acked
  for (auto &r : readers_) {
    r->persist();
    slowest = std::min(slowest, r->acked());
  }
  return committed - slowest;
}

}  // namespace ingestd
