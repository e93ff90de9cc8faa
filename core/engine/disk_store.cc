// Naming, locking, adoption and removal of disk buffer logs. See disk_store.h.
#include "engine/disk_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "engine/output_runtime.h"

namespace ingestd {

namespace {

int64_t wall_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

// Log options of an input: the strictest fsync of the disk outputs reading
// it, and segments small enough that retention can free max_disk (or the
// file system under `dir`, if smaller) in steps.
SegmentLogOptions log_options(const config::Config &c, const InputRuntime &in,
                              const std::string &dir) {
  SegmentLogOptions o;
  o.fsync = FsyncMode::Never;
  o.fsync_interval_ms = UINT64_MAX;
  uint64_t smallest_disk = UINT64_MAX;
  for (const auto &dr : in.disk_routes) {
    const OutputRuntime &out = *dr.output;
    const config::Section *s = c.find_output(out.name());
    const std::string &mode = s->options.get_string("fsync");
    if (mode == "always") o.fsync = FsyncMode::Always;
    if (mode == "interval" && o.fsync != FsyncMode::Always) o.fsync = FsyncMode::Interval;
    o.fsync_interval_ms = std::min(
        o.fsync_interval_ms, static_cast<uint64_t>(s->options.get_duration_ms("fsync_interval")));
    smallest_disk = std::min(smallest_disk, out.max_disk());
  }
  if (o.fsync_interval_ms == UINT64_MAX) o.fsync_interval_ms = 1000;
  // Syncs run beside the commits: no request waits for an interval fdatasync.
  o.background_sync = o.fsync == FsyncMode::Interval;
  // A file system with less room than max_disk fills first; segments an
  // eighth of its free space can still be given back a step at a time.
  uint64_t room = smallest_disk;
  struct statvfs st;
  if (::statvfs(dir.c_str(), &st) == 0)
    room = std::min(room, static_cast<uint64_t>(st.f_bavail) * st.f_frsize);
  o.segment_bytes = std::clamp<uint64_t>(room / 8, uint64_t{4} << 10, uint64_t{64} << 20);
  o.new_reader_start = ReaderStart::Oldest;
  return o;
}

// Opens dir + ".lock" and takes it; an invalid fd when another worker or
// process holds it.
UniqueFd lock_log(const std::string &dir, std::string *error) {
  std::string path = dir + ".lock";
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!fd.valid()) {
    *error = path + ": " + std::strerror(errno);
    return fd;
  }
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK) *error = path + ": flock: " + std::strerror(errno);
    return UniqueFd();
  }
  return fd;
}

}  // namespace

bool DiskStore::open(const std::vector<InputRuntime *> &inputs, bool warn_unread) {
  for (InputRuntime *in : inputs)
    if (!in->disk_routes.empty()) inputs_.push_back(in);
  if (!open_own_logs()) return false;
  adopt_logs();
  if (warn_unread) warn_unread_logs();
  adopt_timer_.init(env_.loop);
  adopt_timer_.start(1000, 1000, [this] {
    retire_drained_logs(false);
    adopt_logs();
  });
  return true;
}

bool DiskStore::open_log(InputRuntime *in, const std::string &dir, UniqueFd lock, bool own) {
  SegmentLogOptions o = log_options(cfg_, *in, storage_dir_);
  o.dir = dir;
  RecoveryReport report;
  std::string err;
  auto seg = SegmentLog::open(o, &report, &err);
  if (!seg) {
    env_.log->logf(LogLevel::Error, in->inst.scope, "disk buffer: %s", err.c_str());
    return false;
  }
  if (!report.clean()) {
    env_.log->logf(LogLevel::Warn, in->inst.scope,
                   "disk buffer %s was damaged; recovered %llu records:\n%s", dir.c_str(),
                   static_cast<unsigned long long>(report.records), report.summary().c_str());
  }
  auto log = std::make_unique<DiskLog>(env_, in, dir, std::move(seg), std::move(lock), own);
  for (const auto &dr : in->disk_routes) {
    OutputRuntime *out = dr.output;
    Reader &reader = log->segments().reader(out->name());
    auto r = std::make_unique<DiskReader>(log.get(), out, dr.chains, &reader);
    out->add_reader(r.get());
    if (!own && reader.read_position() < log->segments().committed_through()) {
      env_.log->logf(LogLevel::Info, out->scope(),
                     "resuming disk buffer %s after record %llu (%s); records delivered after "
                     "the last saved position are sent again",
                     dir.c_str(), static_cast<unsigned long long>(reader.read_position()),
                     reader.open_note().c_str());
    }
    log->readers().push_back(std::move(r));
  }
  if (own) in->log = log.get();
  DiskLog *raw = log.get();
  logs_.push_back(std::move(log));
  raw->fill_all();
  return true;
}

bool DiskStore::open_own_logs() {
  for (InputRuntime *in : inputs_) {
    std::string parent = storage_dir_ + "/" + in->inst.name;
    std::error_code ec;
    std::filesystem::create_directories(parent, ec);
    if (ec) {
      env_.log->logf(LogLevel::Error, in->inst.scope, "disk buffer: cannot create %s: %s",
                     parent.c_str(), ec.message().c_str());
      return false;
    }
    // Never reused: a new directory per worker, generation and start.
    std::string dir = parent + "/w" + std::to_string(worker_) + "-" + std::to_string(wall_ms()) +
                      "-" + std::to_string(::getpid()) + "-g" + std::to_string(generation_);
    std::string err;
    UniqueFd lock = lock_log(dir, &err);
    if (!lock.valid()) {
      env_.log->logf(LogLevel::Error, in->inst.scope, "disk buffer: cannot lock %s: %s",
                     dir.c_str(), err.empty() ? "held by another worker" : err.c_str());
      return false;
    }
    if (!open_log(in, dir, std::move(lock), true)) return false;
  }
  return true;
}

void DiskStore::adopt_logs() {
  for (InputRuntime *in : inputs_) {
    std::string parent = storage_dir_ + "/" + in->inst.name;
    std::error_code ec;
    std::vector<std::string> dirs;
    for (const auto &e : std::filesystem::directory_iterator(parent, ec)) {
      std::error_code ec2;
      if (e.is_directory(ec2)) dirs.push_back(e.path().string());
    }
    std::sort(dirs.begin(), dirs.end());
    for (const auto &dir : dirs) {
      bool open =
          std::any_of(logs_.begin(), logs_.end(), [&](const auto &l) { return l->dir() == dir; });
      if (open) continue;
      std::string err;
      UniqueFd lock = lock_log(dir, &err);
      if (!lock.valid()) {
        if (!err.empty())
          env_.log->logf(LogLevel::Warn, in->inst.scope, "disk buffer: %s", err.c_str());
        continue;
      }
      // Removed by its last reader between the listing and the lock.
      std::error_code ec3;
      if (!std::filesystem::is_directory(dir, ec3)) continue;
      open_log(in, dir, std::move(lock), false);
    }
  }
}

void DiskStore::warn_unread_logs() {
  std::error_code ec;
  for (const auto &e : std::filesystem::directory_iterator(storage_dir_, ec)) {
    std::error_code ec2;
    if (!e.is_directory(ec2)) continue;
    std::string name = e.path().filename().string();
    bool read = std::any_of(inputs_.begin(), inputs_.end(),
                            [&](const InputRuntime *i) { return i->inst.name == name; });
    if (read) continue;
    bool has_logs = false;
    for (const auto &sub : std::filesystem::directory_iterator(e.path(), ec2))
      has_logs = has_logs || sub.is_directory(ec2);
    if (!has_logs) continue;
    env_.log->logf(LogLevel::Warn, "main",
                   "disk buffer logs in %s are not read: no input '%s' routes to a disk "
                   "output now; they are kept until one does",
                   e.path().c_str(), name.c_str());
  }
}

void DiskStore::retire_drained_logs(bool include_own) {
  for (auto it = logs_.begin(); it != logs_.end();) {
    DiskLog &l = **it;
    if ((l.own() && !include_own) || !l.drained()) {
      ++it;
      continue;
    }
    for (auto &r : l.readers())
      r->output()->remove_reader(r.get());
    if (l.input()->log == &l) l.input()->log = nullptr;
    l.close();
    std::string dir = l.dir();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    if (ec) {
      env_.log->logf(LogLevel::Warn, l.input()->inst.scope, "disk buffer: cannot remove %s: %s",
                     dir.c_str(), ec.message().c_str());
    } else {
      ::unlink((dir + ".lock").c_str());  // still locked by us: nobody adopts it meanwhile
    }
    it = logs_.erase(it);
  }
}

bool DiskStore::drained() const {
  for (const auto &l : logs_)
    if (!l->drained()) return false;
  return true;
}

void DiskStore::close() {
  adopt_timer_.stop();
  for (auto &l : logs_) {
    uint64_t kept = l->close();
    if (kept > 0) {
      env_.log->logf(LogLevel::Info, l->input()->inst.scope,
                     "%llu records stay in the disk buffer %s for the next start",
                     static_cast<unsigned long long>(kept), l->dir().c_str());
    }
  }
  retire_drained_logs(true);
}

}  // namespace ingestd
