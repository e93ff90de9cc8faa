// SegmentLog: recovery, group commit, readers and retention (see segment_log.h).
#include "storage/segment_log.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <limits>

namespace ingestd {
namespace {

using storage_detail::Chunk;
using storage_detail::CommitPart;
using storage_detail::Segment;

constexpr size_t kMinReadBytes = 256 * 1024;
constexpr size_t kMaxReadBytes = 64 << 20;  // buffer sizing only: a bigger record is read alone
constexpr std::string_view kSegmentSuffix = ".seg";
constexpr std::string_view kTempSuffix = ".tmp";
constexpr std::string_view kCursorPrefix = "ingestd-cursor 1 ";

std::string segment_name(uint64_t base) {
  char name[32];
  std::snprintf(name, sizeof name, "%020" PRIu64 ".seg", base);
  return name;
}

// "NNNNNNNNNNNNNNNNNNNN.seg" -> base.
bool parse_segment_name(std::string_view name, uint64_t *base) {
  if (name.size() != 20 + kSegmentSuffix.size() || !name.ends_with(kSegmentSuffix)) return false;
  uint64_t v = 0;
  for (size_t i = 0; i < 20; ++i) {
    const char c = name[i];
    if (c < '0' || c > '9') return false;
    const uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (std::numeric_limits<uint64_t>::max() - d) / 10) return false;
    v = v * 10 + d;
  }
  *base = v;
  return true;
}

// Reader names become file names: [A-Za-z0-9_-] as is, every other byte %XX.
std::string escape_name(std::string_view name) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const char ch : name) {
    const auto c = static_cast<unsigned char>(ch);
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
        c == '-') {
      out += ch;
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  if (out.empty()) out = "%";
  return out;
}

bool parse_cursor(std::string_view text, uint64_t *acked) {
  if (!text.starts_with(kCursorPrefix) || !text.ends_with('\n')) return false;
  text.remove_prefix(kCursorPrefix.size());
  text.remove_suffix(1);
  if (text.empty() || text.size() > 20) return false;
  uint64_t v = 0;
  for (const char c : text) {
    if (c < '0' || c > '9') return false;
    const uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (std::numeric_limits<uint64_t>::max() - d) / 10) return false;
    v = v * 10 + d;
  }
  *acked = v;
  return true;
}

// Reads the start of a small file. Returns 0 or an errno value.
int read_small_file(const std::string &path, std::string *out) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return errno;
  char buf[256];
  const ssize_t n = pread_all(fd.get(), buf, sizeof buf, 0);
  if (n < 0) return static_cast<int>(-n);
  out->assign(buf, static_cast<size_t>(n));
  return 0;
}

std::string make_dirs(const std::string &path) {
  if (path.empty()) return "storage directory: empty path";
  for (size_t i = 1; i <= path.size(); ++i) {
    if (i != path.size() && path[i] != '/') continue;
    const std::string prefix = path.substr(0, i);
    if (::mkdir(prefix.c_str(), 0755) != 0 && errno != EEXIST)
      return sys_error("mkdir", prefix, errno);
  }
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return sys_error("stat", path, errno);
  if (!S_ISDIR(st.st_mode)) return "storage directory " + path + ": not a directory";
  return "";
}

UniqueFd open_dir(const std::string &path) {
  return UniqueFd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
}

// Names in a directory (not "." or ".."). Returns "" or the error.
std::string list_dir(const std::string &path, std::vector<std::string> *names) {
  DIR *d = ::opendir(path.c_str());
  if (d == nullptr) return sys_error("opendir", path, errno);
  errno = 0;
  while (const dirent *e = ::readdir(d)) {
    const std::string_view n = e->d_name;
    if (n != "." && n != "..") names->emplace_back(n);
  }
  const int err = errno;
  ::closedir(d);
  if (err != 0) return sys_error("readdir", path, err);
  std::sort(names->begin(), names->end());
  return "";
}

// The file system (or the user's quota) is full: space may come back.
bool no_space(int err) {
  return err == ENOSPC || err == EDQUOT;
}

uint64_t saturating_add(uint64_t a, uint64_t b) {
  return a > std::numeric_limits<uint64_t>::max() - b ? std::numeric_limits<uint64_t>::max()
                                                      : a + b;
}

void add_index_entries(Segment &seg, const Chunk &c, const CommitPart &p) {
  for (size_t r = p.rec_begin; r < p.rec_end; ++r) {
    const uint64_t off = p.file_offset + (c.offsets[r] - p.buf_begin);
    if (off >= seg.next_index_offset) {
      seg.index.push_back(IndexEntry{c.first_seq + r, off});
      seg.next_index_offset = off + kIndexStride;
    }
  }
}

}  // namespace

// ---- RecoveryReport ---------------------------------------------------------

bool RecoveryReport::clean() const {
  for (const SegmentRecovery &s : segments)
    if (s.bytes_cut || s.bytes_skipped || s.removed || !s.issues.empty()) return false;
  return true;
}

std::string RecoveryReport::summary() const {
  std::string out;
  for (const SegmentRecovery &s : segments) {
    for (const std::string &i : s.issues)
      out += s.path + ": " + i + "\n";
    if (s.removed) out += s.path + ": no intact record left, removed\n";
  }
  for (const std::string &n : notes)
    out += n + "\n";
  out += std::to_string(records) + " records recovered; next sequence number " +
         std::to_string(next_seq);
  return out;
}

// ---- CommitJob --------------------------------------------------------------

uint64_t CommitJob::first_seq() const {
  return chunk_->offsets.empty() ? 0 : chunk_->first_seq;
}
uint64_t CommitJob::last_seq() const {
  return chunk_->last_seq();
}
size_t CommitJob::records() const {
  return chunk_->offsets.size();
}
size_t CommitJob::bytes() const {
  return chunk_->bytes.size();
}

void CommitJob::run() {
  if (ran_) return;
  ran_ = true;
  for (size_t i = 0; i < parts_.size(); ++i) {
    CommitPart &p = parts_[i];
    if (p.create) {
      p.created.reset(::open(p.path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
      if (!p.created.valid()) {
        errno_ = errno;
        error_ = sys_error("create", p.path, errno_);
        rollback(i);
        return;
      }
    }
    const int err = pwrite_all(*io_, p.write_fd(), chunk_->bytes.data() + p.buf_begin,
                               p.buf_end - p.buf_begin, static_cast<off_t>(p.file_offset));
    if (err != 0) {
      errno_ = err;
      error_ = sys_error("write", p.path, err);
      rollback(i + 1);
      return;
    }
  }
  if (!sync_) return;
  auto sync_failed = [&](std::string_view op, const std::string &path) {
    error_ = sys_error(op, path, errno);
    broken_ = true;  // after a failed sync the kernel may have dropped dirty pages
    rollback(parts_.size());
  };
  for (CommitPart &p : parts_)
    if (io_->fdatasync(p.write_fd()) != 0) return sync_failed("fdatasync", p.path);
  for (const auto &[fd, path] : sync_fds_)
    if (io_->fdatasync(fd) != 0) return sync_failed("fdatasync", path);
  if (sync_dir_ && io_->fsync(dir_fd_) != 0) return sync_failed("fsync", dir_path_);
}

// Undoes the writes of parts [0, n): truncates existing segments back to
// where the job started, removes created ones.
void CommitJob::rollback(size_t n) {
  for (size_t i = 0; i < n; ++i) {
    CommitPart &p = parts_[i];
    if (p.create) {
      p.created.reset();
      if (::unlink(p.path.c_str()) != 0 && errno != ENOENT) {
        error_ += "; rollback: " + sys_error("unlink", p.path, errno);
        broken_ = true;
      }
    } else if (io_->ftruncate(p.fd, static_cast<off_t>(p.file_offset)) != 0) {
      error_ += "; rollback: " + sys_error("ftruncate", p.path, errno);
      broken_ = true;
    }
  }
}

// ---- SegmentLog: open and recovery ------------------------------------------

SegmentLog::SegmentLog(SegmentLogOptions options)
    : options_(std::move(options)),
      io_(options_.io ? options_.io : &StorageIo::system()),
      pending_(std::make_shared<Chunk>()) {
  while (options_.dir.size() > 1 && options_.dir.back() == '/')
    options_.dir.pop_back();
  if (options_.segment_bytes == 0) options_.segment_bytes = 1;
  cursors_dir_ = options_.dir + "/cursors";
}

SegmentLog::~SegmentLog() = default;

std::unique_ptr<SegmentLog> SegmentLog::open(SegmentLogOptions options, RecoveryReport *report,
                                             std::string *error) {
  RecoveryReport scratch;
  if (report == nullptr) report = &scratch;
  *report = RecoveryReport{};
  std::string scratch_error;
  if (error == nullptr) error = &scratch_error;
  std::unique_ptr<SegmentLog> log(new SegmentLog(std::move(options)));
  *error = make_dirs(log->cursors_dir_);
  if (!error->empty()) return nullptr;
  log->dir_fd_ = open_dir(log->options_.dir);
  if (!log->dir_fd_.valid()) {
    *error = sys_error("open", log->options_.dir, errno);
    return nullptr;
  }
  log->cursors_fd_ = open_dir(log->cursors_dir_);
  if (!log->cursors_fd_.valid()) {
    *error = sys_error("open", log->cursors_dir_, errno);
    return nullptr;
  }
  *error = log->recover(report);
  if (!error->empty()) return nullptr;
  return log;
}

std::string SegmentLog::recover(RecoveryReport *report) {
  std::vector<std::string> names;
  if (std::string e = list_dir(options_.dir, &names); !e.empty()) return e;
  std::vector<uint64_t> bases;
  for (const std::string &n : names) {
    uint64_t base;
    if (parse_segment_name(n, &base))
      bases.push_back(base);
    else if (n != "cursors")
      report->notes.push_back("ignored unknown file " + options_.dir + "/" + n);
  }
  std::sort(bases.begin(), bases.end());

  uint64_t last = 0;
  std::vector<char> data;
  for (size_t i = 0; i < bases.size(); ++i) {
    Segment seg;
    seg.base = bases[i];
    seg.path = options_.dir + "/" + segment_name(seg.base);
    seg.fd.reset(::open(seg.path.c_str(), O_RDWR | O_CLOEXEC));
    if (!seg.fd.valid()) return sys_error("open", seg.path, errno);
    struct stat st;
    if (::fstat(seg.fd.get(), &st) != 0) return sys_error("stat", seg.path, errno);
    const auto size = static_cast<size_t>(st.st_size);
    data.resize(size);
    const ssize_t got = pread_all(seg.fd.get(), data.data(), size, 0);
    if (got < 0) return sys_error("read", seg.path, static_cast<int>(-got));
    if (static_cast<size_t>(got) != size) return "read " + seg.path + ": file shrank while read";

    const SegmentScan scan =
        scan_segment(data.data(), size, std::max(last, seg.base > 0 ? seg.base - 1 : 0));
    SegmentRecovery rec;
    rec.path = seg.path;
    rec.records = scan.records;
    rec.issues = scan.issues;
    for (const SegmentHole &h : scan.holes)
      rec.bytes_skipped += h.length;
    if (scan.valid_end < size) {
      rec.bytes_cut = size - scan.valid_end;
      if (io_->ftruncate(seg.fd.get(), static_cast<off_t>(scan.valid_end)) != 0)
        return sys_error("ftruncate", seg.path, errno);
      if (options_.fsync != FsyncMode::Never && io_->fdatasync(seg.fd.get()) != 0)
        return sys_error("fdatasync", seg.path, errno);
    }
    const bool newest = i + 1 == bases.size();
    if (scan.records == 0 && !newest) {
      rec.removed = true;
      report->segments.push_back(std::move(rec));
      if (::unlink(seg.path.c_str()) != 0) return sys_error("unlink", seg.path, errno);
      continue;
    }
    report->segments.push_back(std::move(rec));
    report->records += scan.records;
    seg.size = scan.valid_end;
    seg.records = scan.records;
    seg.first_seq = scan.first_seq;
    seg.last_seq = scan.last_seq;
    seg.holes = scan.holes;
    seg.index = scan.index;
    seg.next_index_offset = seg.index.empty() ? 0 : seg.index.back().offset + kIndexStride;
    if (scan.records > 0) last = std::max(last, scan.last_seq);
    next_seq_ = std::max(next_seq_, seg.base);
    segment_bytes_total_ += seg.size;
    const uint64_t base = seg.base;
    segments_.emplace(base, std::move(seg));
  }
  next_seq_ = std::max(next_seq_, last + 1);

  // Cursor files: remove stale temp files; never hand out a sequence number
  // a cursor already claims delivered (the segments may have been wiped).
  names.clear();
  if (std::string e = list_dir(cursors_dir_, &names); !e.empty()) return e;
  for (const std::string &n : names) {
    const std::string path = cursors_dir_ + "/" + n;
    if (std::string_view(n).ends_with(kTempSuffix)) {
      if (::unlink(path.c_str()) != 0) return sys_error("unlink", path, errno);
      report->notes.push_back("removed unfinished cursor file " + path);
      continue;
    }
    std::string text;
    uint64_t acked;
    if (read_small_file(path, &text) == 0 && parse_cursor(text, &acked) && acked != 0 &&
        acked != std::numeric_limits<uint64_t>::max())
      next_seq_ = std::max(next_seq_, acked + 1);
  }
  committed_seq_ = next_seq_ - 1;
  report->next_seq = next_seq_;
  return "";
}

// ---- SegmentLog: writing ----------------------------------------------------

uint64_t SegmentLog::append(std::string_view payload) {
  if (payload.size() > kMaxRecordBytes) return 0;
  Chunk &c = *pending_;
  if (c.offsets.empty()) c.first_seq = next_seq_;
  c.offsets.push_back(c.bytes.size());
  encode_frame(c.bytes, next_seq_, payload);
  return next_seq_++;
}

size_t SegmentLog::pending_records() const {
  return pending_->offsets.size();
}
size_t SegmentLog::pending_bytes() const {
  return pending_->bytes.size();
}

bool SegmentLog::sync_due(uint64_t now_ms) const {
  return !synced_once_ || now_ms >= saturating_add(last_sync_ms_, options_.fsync_interval_ms);
}

bool SegmentLog::commit_wanted(uint64_t now_ms) const {
  if (!pending_->offsets.empty()) return true;
  return options_.fsync == FsyncMode::Interval && !options_.background_sync &&
         (unsynced_data_ || dir_dirty_) && sync_due(now_ms);
}

bool SegmentLog::sync_wanted(uint64_t now_ms) const {
  return options_.fsync == FsyncMode::Interval && options_.background_sync && !sync_outstanding_ &&
         !broken() && (unsynced_data_ || dir_dirty_) && sync_due(now_ms);
}

std::unique_ptr<SyncJob> SegmentLog::begin_sync(uint64_t now_ms) {
  if (sync_outstanding_ || broken() || (!unsynced_data_ && !dir_dirty_)) return nullptr;
  std::unique_ptr<SyncJob> job(new SyncJob);
  job->io_ = io_;
  job->begun_ms_ = now_ms;
  // Every retained segment: earlier unsynced writes may sit in any of them,
  // and syncing a clean file costs nothing.
  for (const auto &[base, seg] : segments_) {
    UniqueFd fd(::fcntl(seg.fd.get(), F_DUPFD_CLOEXEC, 0));
    if (!fd.valid()) {
      job->error_ = sys_error("dup", seg.path, errno);
      break;
    }
    job->files_.emplace_back(std::move(fd), seg.path);
  }
  if (dir_dirty_ && job->error_.empty()) {
    job->dir_ = UniqueFd(::fcntl(dir_fd_.get(), F_DUPFD_CLOEXEC, 0));
    job->dir_path_ = options_.dir;
    if (!job->dir_.valid()) job->error_ = sys_error("dup", options_.dir, errno);
  }
  // Commits from now on are unsynced again until the next job.
  unsynced_data_ = false;
  dir_dirty_ = false;
  sync_outstanding_ = true;
  return job;
}

void SyncJob::run() {
  ran_ = true;
  if (!error_.empty()) return;
  for (const auto &[fd, path] : files_) {
    if (io_->fdatasync(fd.get()) != 0) {
      error_ = sys_error("fdatasync", path, errno);
      return;
    }
  }
  if (dir_.valid() && io_->fsync(dir_.get()) != 0) error_ = sys_error("fsync", dir_path_, errno);
}

std::string SegmentLog::finish_sync(std::unique_ptr<SyncJob> job) {
  sync_outstanding_ = false;
  if (!job) return "finish_sync: no job";
  std::string err = job->ran_ ? job->error_ : "sync job was never run";
  if (!err.empty()) {
    broken_reason_ = "log unusable until reopened: " + err;
    return err;
  }
  last_sync_ms_ = job->begun_ms_;
  synced_once_ = true;
  return "";
}

std::unique_ptr<CommitJob> SegmentLog::begin_commit(uint64_t now_ms) {
  if (job_outstanding_ || broken()) return nullptr;
  const bool has_records = !pending_->offsets.empty();
  bool sync = false;
  switch (options_.fsync) {
    case FsyncMode::Always:
      sync = has_records;
      break;
    case FsyncMode::Interval:
      sync = !options_.background_sync && (has_records || unsynced_data_ || dir_dirty_) &&
             sync_due(now_ms);
      break;
    case FsyncMode::Never:
      break;
  }
  if (!has_records && !sync) return nullptr;

  std::unique_ptr<CommitJob> job(new CommitJob);
  job->io_ = io_;
  job->begun_ms_ = now_ms;
  job->chunk_ = std::move(pending_);
  pending_ = std::make_shared<Chunk>();
  // The next batch is likely as big as this one: avoid regrowing it.
  pending_->bytes.reserve(std::min<size_t>(job->chunk_->bytes.size(), size_t{4} << 20));
  const Chunk &c = *job->chunk_;

  // Split the frames between the newest segment and new ones.
  const size_t n = c.offsets.size();
  auto start_part = [&](size_t r, uint64_t base, const Segment *existing) {
    CommitPart p;
    p.seg_base = base;
    p.rec_begin = p.rec_end = r;
    p.buf_begin = p.buf_end = r < n ? c.offsets[r] : c.bytes.size();
    if (existing != nullptr) {
      p.path = existing->path;
      p.fd = existing->fd.get();
      p.file_offset = existing->size;
    } else {
      p.path = options_.dir + "/" + segment_name(base);
      p.create = true;
    }
    return p;
  };
  auto end_part = [&](CommitPart &p, size_t r) {
    p.rec_end = r;
    p.buf_end = r < n ? c.offsets[r] : c.bytes.size();
    if (p.rec_end > p.rec_begin) job->parts_.push_back(std::move(p));
  };
  if (n > 0) {
    const Segment *active = segments_.empty() ? nullptr : &segments_.rbegin()->second;
    CommitPart part = start_part(0, active ? active->base : c.first_seq, active);
    uint64_t fill = active ? active->size : 0;
    for (size_t r = 0; r < n; ++r) {
      const size_t frame = (r + 1 < n ? c.offsets[r + 1] : c.bytes.size()) - c.offsets[r];
      if (fill > 0 && fill + frame > options_.segment_bytes) {
        end_part(part, r);
        part = start_part(r, c.first_seq + r, nullptr);
        fill = 0;
      }
      fill += frame;
    }
    end_part(part, n);
  }

  for (const CommitPart &p : job->parts_) {
    if (p.create) continue;
    ++segments_.at(p.seg_base).pins;
    job->pinned_.push_back(p.seg_base);
  }
  if (sync) {
    job->sync_ = true;
    if (unsynced_data_) {
      // Earlier unsynced writes may sit in any retained segment; syncing a
      // clean file is cheap (nothing to write back).
      for (auto &[base, seg] : segments_) {
        if (std::find(job->pinned_.begin(), job->pinned_.end(), base) != job->pinned_.end())
          continue;
        ++seg.pins;
        job->pinned_.push_back(base);
        job->sync_fds_.emplace_back(seg.fd.get(), seg.path);
      }
    }
    bool creates = false;
    for (const CommitPart &p : job->parts_)
      creates = creates || p.create;
    job->sync_dir_ = creates || dir_dirty_;
    job->dir_fd_ = dir_fd_.get();
    job->dir_path_ = options_.dir;
  }
  job_outstanding_ = true;
  inflight_bytes_ = c.bytes.size();
  return job;
}

CommitResult SegmentLog::finish_commit(std::unique_ptr<CommitJob> job) {
  CommitResult res;
  if (!job) {
    res.ok = false;
    res.error = "finish_commit: no job";
    res.committed_through = committed_seq_;
    return res;
  }
  job_outstanding_ = false;
  inflight_bytes_ = 0;
  for (uint64_t base : job->pinned_) {
    auto it = segments_.find(base);
    if (it != segments_.end()) --it->second.pins;
  }
  const Chunk &c = *job->chunk_;
  res.first_seq = job->first_seq();
  res.last_seq = job->last_seq();
  res.records = c.offsets.size();
  if (!job->ran_) {
    res.ok = false;
    res.error = "commit job was never run: its records were not written";
  } else if (!job->error_.empty()) {
    res.ok = false;
    res.error = job->error_;
    if (job->broken_) broken_reason_ = "log unusable until reopened: " + job->error_;
  }
  if (!res.ok) {
    if (job->ran_ && !job->broken_ && no_space(job->errno_)) {
      res.no_space = true;
      space_short_ = true;
      std::shared_ptr<Chunk> failed = std::move(job->chunk_);
      const bool retry = !failed->retried && !failed->offsets.empty();
      // The records written again after a reclaim go first into the newest segment.
      res.reclaimed_bytes =
          reclaim_acked(retry ? failed->first_seq : next_write_seq(), &res.reclaim_error);
      if (retry && res.reclaimed_bytes > 0) {
        res.ok = true;
        res.error.clear();
        res.requeued = failed->offsets.size();
        res.first_seq = res.last_seq = 0;
        res.records = 0;
        requeue(std::move(failed));
      }
    }
    res.committed_through = committed_seq_;
    return res;
  }
  if (!c.offsets.empty()) space_short_ = false;

  for (CommitPart &p : job->parts_) {
    Segment *seg;
    if (p.create) {
      Segment fresh;
      fresh.base = p.seg_base;
      fresh.path = p.path;
      fresh.fd = std::move(p.created);
      seg = &segments_.emplace(p.seg_base, std::move(fresh)).first->second;
      if (!job->sync_) dir_dirty_ = true;
    } else {
      seg = &segments_.at(p.seg_base);
    }
    add_index_entries(*seg, c, p);
    const uint64_t bytes = p.buf_end - p.buf_begin;
    seg->size = p.file_offset + bytes;
    segment_bytes_total_ += bytes;
    if (seg->records == 0) seg->first_seq = c.first_seq + p.rec_begin;
    seg->records += p.rec_end - p.rec_begin;
    seg->last_seq = c.first_seq + p.rec_end - 1;
  }
  if (job->sync_) {
    unsynced_data_ = false;
    if (job->sync_dir_) dir_dirty_ = false;
    last_sync_ms_ = job->begun_ms_;
    synced_once_ = true;
  } else if (!c.offsets.empty()) {
    unsynced_data_ = true;
  }
  res.synced = job->sync_;
  if (!c.offsets.empty()) {
    committed_seq_ = std::max(committed_seq_, c.last_seq());
    add_to_cache(std::move(job->chunk_));
  }
  res.committed_through = committed_seq_;
  return res;
}

CommitResult SegmentLog::commit_now(uint64_t now_ms) {
  std::unique_ptr<CommitJob> job = begin_commit(now_ms);
  if (!job) {
    CommitResult res;
    if (broken()) {
      res.ok = false;
      res.error = broken_reason_;
    } else if (job_outstanding_) {
      res.ok = false;
      res.error = "a commit is already outstanding";
    }
    res.committed_through = committed_seq_;
    return res;
  }
  job->run();
  return finish_commit(std::move(job));
}

// `failed` ran out of space and is written again: its frames (and sequence
// numbers) go in front of what was appended since, which follows it.
void SegmentLog::requeue(std::shared_ptr<Chunk> failed) {
  failed->retried = true;
  const size_t shift = failed->bytes.size();
  failed->bytes += pending_->bytes;
  for (const size_t off : pending_->offsets)
    failed->offsets.push_back(shift + off);
  pending_ = std::move(failed);
}

uint64_t SegmentLog::next_write_seq() const {
  return pending_->offsets.empty() ? next_seq_ : pending_->first_seq;
}

void SegmentLog::add_to_cache(std::shared_ptr<const Chunk> chunk) {
  if (options_.tail_cache_bytes == 0) return;
  cache_bytes_ += chunk->bytes.size();
  cache_.push_back(std::move(chunk));
  while (!cache_.empty() && cache_bytes_ > options_.tail_cache_bytes) {
    cache_bytes_ -= cache_.front()->bytes.size();
    cache_.pop_front();
  }
}

// ---- SegmentLog: readers, retention -----------------------------------------

uint64_t SegmentLog::oldest_seq() const {
  for (const auto &[base, seg] : segments_)
    if (seg.records > 0) return seg.first_seq;
  return 0;
}

uint64_t SegmentLog::disk_bytes() const {
  return segment_bytes_total_ + pending_->bytes.size() + inflight_bytes_;
}

Reader *SegmentLog::find_reader(std::string_view name) {
  auto it = readers_.find(name);
  return it == readers_.end() ? nullptr : it->second.get();
}

Reader &SegmentLog::reader(std::string_view name) {
  if (Reader *r = find_reader(name)) return *r;
  std::string path = cursors_dir_ + "/" + escape_name(name);
  std::unique_ptr<Reader> r(new Reader(this, std::string(name), path));
  const uint64_t oldest = oldest_seq();
  const uint64_t before_oldest = oldest > 0 ? oldest - 1 : committed_seq_;
  std::string text;
  const int read_errno = read_small_file(path, &text);
  uint64_t acked = 0;
  bool write_now = false;
  if (read_errno == 0 && parse_cursor(text, &acked)) {
    r->note_ = "cursor " + path + ": delivered through " + std::to_string(acked);
    if (acked < before_oldest)
      r->note_ += "; records " + std::to_string(acked + 1) + ".." + std::to_string(before_oldest) +
                  " were removed before this reader read them";
    if (acked > committed_seq_) {  // cannot happen: open() starts after every cursor
      r->note_ += "; ahead of the log, clamped to " + std::to_string(committed_seq_);
      acked = committed_seq_;
    }
  } else if (read_errno != ENOENT) {
    acked = before_oldest;
    r->note_ =
        "unreadable cursor " + path + " (" +
        (read_errno == 0 ? std::string("bad contents") : sys_error("read", path, read_errno)) +
        "): starting at the oldest retained record";
    write_now = true;
  } else {
    acked = options_.new_reader_start == ReaderStart::Tail ? committed_seq_ : before_oldest;
    r->note_ =
        std::string("new reader: starting at the ") +
        (options_.new_reader_start == ReaderStart::Tail ? "tail" : "oldest retained record") +
        " (after sequence number " + std::to_string(acked) + ")";
    write_now = true;
  }
  r->read_pos_ = r->acked_ = r->persisted_ = acked;
  if (write_now) {
    if (std::string e = write_cursor(*r, acked); !e.empty())
      r->note_ += "; could not write the cursor: " + e;
  }
  Reader &ref = *r;
  readers_.emplace(std::string(name), std::move(r));
  return ref;
}

std::string SegmentLog::remove_reader(std::string_view name) {
  auto it = readers_.find(name);
  const std::string path =
      it != readers_.end() ? it->second->path_ : cursors_dir_ + "/" + escape_name(name);
  if (it != readers_.end()) readers_.erase(it);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return sys_error("unlink", path, errno);
  return "";
}

std::string SegmentLog::write_cursor(const Reader &r, uint64_t acked) {
  const std::string tmp = r.path_ + std::string(kTempSuffix);
  const bool sync = options_.fsync == FsyncMode::Always;
  std::string err;
  {
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!fd.valid()) return sys_error("create", tmp, errno);
    const std::string text = std::string(kCursorPrefix) + std::to_string(acked) + "\n";
    if (int e = pwrite_all(*io_, fd.get(), text.data(), text.size(), 0); e != 0)
      err = sys_error("write", tmp, e);
    else if (sync && io_->fsync(fd.get()) != 0)
      err = sys_error("fsync", tmp, errno);
  }
  if (err.empty() && ::rename(tmp.c_str(), r.path_.c_str()) != 0)
    err = sys_error("rename", tmp, errno);
  if (!err.empty()) {
    ::unlink(tmp.c_str());
    return err;
  }
  if (sync && io_->fsync(cursors_fd_.get()) != 0) return sys_error("fsync", cursors_dir_, errno);
  return "";
}

std::string SegmentLog::collect() {
  if (readers_.empty()) return "";
  uint64_t min = std::numeric_limits<uint64_t>::max();
  for (const auto &[name, r] : readers_)
    min = std::min(min, r->persisted_);
  while (segments_.size() > 1) {
    auto it = segments_.begin();
    Segment &seg = it->second;
    if (seg.pins > 0 || seg.last_seq > min) break;
    if (::unlink(seg.path.c_str()) != 0 && errno != ENOENT)
      return sys_error("unlink", seg.path, errno);
    segment_bytes_total_ -= seg.size;
    segments_.erase(it);
  }
  if (space_short_) {
    std::string err;
    reclaim_acked(next_write_seq(), &err);
    return err;
  }
  return "";
}

uint64_t SegmentLog::reclaim(std::string *error) {
  std::string scratch;
  return reclaim_acked(next_write_seq(), error ? error : &scratch);
}

uint64_t SegmentLog::reclaim_acked(uint64_t next_base, std::string *error) {
  error->clear();
  if (readers_.empty() || segments_.empty()) return 0;
  uint64_t min = std::numeric_limits<uint64_t>::max();
  for (const auto &[name, r] : readers_)
    min = std::min(min, r->acked_);
  // The oldest segments whose records every reader acked; the newest too when
  // it holds records, no job writes to it and the replacement name is free.
  size_t n = 0;
  bool newest = false;
  for (auto it = segments_.begin(); it != segments_.end(); ++it) {
    const Segment &seg = it->second;
    if (seg.pins > 0 || seg.last_seq > min) break;
    if (std::next(it) == segments_.end()) {
      if (seg.records == 0 || job_outstanding_ || next_base <= seg.last_seq) break;
      newest = true;
    }
    ++n;
  }
  if (n == 0) return 0;
  // Cursors first, so that a crash after the removal finds them up to date;
  // on a full disk that may fail, and is tried again once space is freed.
  auto write_cursors = [&](bool report) {
    for (auto &[name, r] : readers_) {
      if (r->acked_ == r->persisted_) continue;
      std::string e = write_cursor(*r, r->acked_);
      if (e.empty())
        r->persisted_ = r->acked_;
      else if (report && error->empty())
        *error = e;
    }
  };
  write_cursors(false);
  if (newest) {
    // The replacement keeps the sequence numbers going after a restart.
    Segment fresh;
    fresh.base = next_base;
    fresh.path = options_.dir + "/" + segment_name(next_base);
    fresh.fd.reset(::open(fresh.path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (fresh.fd.valid()) {
      segments_.emplace(next_base, std::move(fresh));
    } else {
      *error = sys_error("create", fresh.path, errno);
      --n;
    }
  }
  uint64_t freed = 0;
  for (size_t i = 0; i < n; ++i) {
    auto it = segments_.begin();
    Segment &seg = it->second;
    if (::unlink(seg.path.c_str()) != 0 && errno != ENOENT) {
      if (error->empty()) *error = sys_error("unlink", seg.path, errno);
      break;
    }
    freed += seg.size;
    segment_bytes_total_ -= seg.size;
    segments_.erase(it);
  }
  if (newest || freed > 0) {
    if (options_.fsync == FsyncMode::Always) {
      if (io_->fsync(dir_fd_.get()) != 0 && error->empty())
        *error = sys_error("fsync", options_.dir, errno);
    } else {
      dir_dirty_ = true;
    }
  }
  write_cursors(true);
  return freed;
}

std::string SegmentLog::rescan(Segment &seg) {
  std::vector<char> data(seg.size);
  const ssize_t got = pread_all(seg.fd.get(), data.data(), data.size(), 0);
  if (got < 0) return sys_error("read", seg.path, static_cast<int>(-got));
  if (static_cast<size_t>(got) != data.size()) return "read " + seg.path + ": segment shrank";
  const SegmentScan scan = scan_segment(data.data(), data.size(), seg.base > 0 ? seg.base - 1 : 0);
  std::vector<SegmentHole> holes = scan.holes;
  if (scan.valid_end < seg.size)
    holes.push_back(SegmentHole{scan.valid_end, seg.size - scan.valid_end});
  if (holes.size() == seg.holes.size()) return "";  // nothing new found
  seg.holes = std::move(holes);
  seg.index = scan.index;
  std::string msg = "corrupt data in " + seg.path + " found while reading:";
  for (const std::string &i : scan.issues)
    msg += " " + i + ";";
  msg.pop_back();
  return msg;
}

// ---- Reader -----------------------------------------------------------------

Reader::Reader(SegmentLog *log, std::string name, std::string path)
    : log_(log), name_(std::move(name)), path_(std::move(path)) {}

void Reader::ack_through(uint64_t seq) {
  acked_ = std::max(acked_, std::min(seq, read_pos_));
}

std::string Reader::persist() {
  if (acked_ == persisted_) return "";
  if (std::string e = log_->write_cursor(*this, acked_); !e.empty()) return e;
  persisted_ = acked_;
  return "";
}

void Reader::seek_to_cursor() {
  read_pos_ = acked_;
  have_file_pos_ = false;
  pins_.clear();
}

std::string Reader::read(size_t max_records, size_t max_bytes, std::vector<RecordView> *out) {
  out->clear();
  pins_.clear();
  if (max_records == 0 || read_pos_ >= log_->committed_seq_) return "";
  if (read_cache(max_records, max_bytes, out)) return "";
  return read_file(max_records, max_bytes, out);
}

bool Reader::read_cache(size_t max_records, size_t max_bytes, std::vector<RecordView> *out) {
  const auto &cache = log_->cache_;
  if (cache.empty() || read_pos_ + 1 < cache.front()->first_seq) return false;
  auto it = std::partition_point(cache.begin(), cache.end(),
                                 [&](const auto &c) { return c->last_seq() <= read_pos_; });
  if (it == cache.end()) return false;
  size_t bytes = 0;
  for (; it != cache.end(); ++it) {
    const Chunk &c = **it;
    size_t i = read_pos_ + 1 > c.first_seq ? read_pos_ + 1 - c.first_seq : 0;
    pins_.push_back(*it);
    for (; i < c.offsets.size(); ++i) {
      const uint32_t len = frame_length(c.bytes.data(), c.offsets[i]);
      if (!out->empty() && (out->size() >= max_records || len > max_bytes - bytes)) return true;
      out->push_back(
          RecordView{c.first_seq + i,
                     std::string_view(c.bytes.data() + c.offsets[i] + kFrameHeaderBytes, len)});
      bytes += std::min<size_t>(len, max_bytes);  // (one oversized record may exceed max_bytes)
      read_pos_ = c.first_seq + i;
    }
  }
  have_file_pos_ = false;
  return true;
}

void Reader::seek() {
  const auto &segs = log_->segments_;
  const uint64_t target = read_pos_ + 1;
  auto it = segs.upper_bound(target);
  if (it != segs.begin()) --it;
  seg_base_ = it->first;
  offset_ = 0;
  const auto &index = it->second.index;
  auto e = std::partition_point(index.begin(), index.end(),
                                [&](const IndexEntry &x) { return x.seq <= target; });
  if (e != index.begin()) offset_ = std::prev(e)->offset;
  have_file_pos_ = true;
}

std::string Reader::read_file(size_t max_records, size_t max_bytes, std::vector<RecordView> *out) {
  auto &segs = log_->segments_;
  std::string report;  // a corruption found on the way (records may still be returned)
  const size_t want_default =
      std::max(kMinReadBytes, std::min(max_bytes, kMaxReadBytes) + kMinReadBytes);
  while (!segs.empty()) {
    if (!have_file_pos_ || segs.find(seg_base_) == segs.end()) {
      have_file_pos_ = false;  // the tail cache ran ahead, or the segment was collected
      seek();
    }
    auto it = segs.find(seg_base_);
    Segment &seg = it->second;
    uint64_t limit = seg.size;
    for (const SegmentHole &h : seg.holes) {
      if (offset_ >= h.offset && offset_ < h.offset + h.length) offset_ = h.offset + h.length;
      if (h.offset >= offset_) limit = std::min(limit, h.offset);
    }
    if (offset_ >= seg.size) {
      auto next = std::next(it);
      if (next == segs.end()) break;  // caught up
      seg_base_ = next->first;
      offset_ = 0;
      continue;
    }
    size_t want = static_cast<size_t>(std::min<uint64_t>(limit - offset_, want_default));
    size_t got = 0;
    size_t p = 0;
    size_t bytes = 0;
    bool corrupt = false;
    for (;;) {  // at most twice: again with the whole frame when one record fills the buffer
      if (buf_.size() < want) buf_.resize(want);
      const ssize_t r = pread_all(seg.fd.get(), buf_.data(), want, static_cast<off_t>(offset_));
      if (r < 0) return sys_error("read", seg.path, static_cast<int>(-r));
      got = static_cast<size_t>(r);
      if (got < want) return "read " + seg.path + ": segment shorter than its published size";
      const FrameCheck first = check_frame(buf_.data(), got, 0, 0);
      if (first.status != FrameStatus::Truncated || want == first.frame_bytes() ||
          offset_ + first.frame_bytes() > limit)
        break;
      want = first.frame_bytes();
    }
    while (p < got) {
      const FrameCheck c = check_frame(buf_.data(), got, p, 0);
      if (c.status == FrameStatus::ShortHeader || c.status == FrameStatus::Truncated) {
        if (p == 0) corrupt = true;  // a frame that runs past the published end
        break;
      }
      if (c.status != FrameStatus::Ok) {
        corrupt = true;
        break;
      }
      if (c.seq > read_pos_) {
        if (!out->empty() && (out->size() >= max_records || c.length > max_bytes - bytes)) break;
        out->push_back(
            RecordView{c.seq, std::string_view(buf_.data() + p + kFrameHeaderBytes, c.length)});
        bytes += std::min<size_t>(c.length, max_bytes);
        read_pos_ = c.seq;
      }
      p += c.frame_bytes();
    }
    offset_ += p;
    if (corrupt && out->empty()) {
      const uint64_t bad = offset_;
      std::string msg = log_->rescan(seg);
      if (msg.empty())
        return "read " + seg.path + ": frame at offset " + std::to_string(bad) +
               " failed its check but the segment scans clean";
      if (!report.empty()) report += "; ";
      report += msg;
      have_file_pos_ = false;
      continue;
    }
    if (!out->empty()) break;
  }
  return report;
}

}  // namespace ingestd
