// Throughput of the segment log on this disk: 200-byte records appended as
// fast as one loop thread can, committed by a second thread the way the
// engine does it (uv_queue_work): the loop keeps appending while a CommitJob
// runs, and starts the next job as soon as the previous one finished. Then a
// reader reads everything back from the files. Not a ctest test.
//
//   segment_log_bench [DIR] [SECONDS_PER_MODE]
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <string>

#include "storage/segment_format.h"
#include "storage/segment_log.h"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

int run(const std::string &dir, ingestd::FsyncMode mode, const char *label, double seconds) {
  std::filesystem::remove_all(dir);
  ingestd::SegmentLogOptions o;
  o.dir = dir;
  o.fsync = mode;
  o.fsync_interval_ms = 100;
  o.tail_cache_bytes = 0;  // the read-back below measures file reads
  std::string err;
  auto log = ingestd::SegmentLog::open(o, nullptr, &err);
  if (!log) {
    std::fprintf(stderr, "open: %s\n", err.c_str());
    return 1;
  }
  ingestd::Reader &reader = log->reader("bench");
  const std::string payload(200, 'x');
  const auto start = Clock::now();
  std::unique_ptr<ingestd::CommitJob> job;
  std::future<void> done;
  uint64_t appended = 0, commits = 0, syncs = 0;
  auto now_ms = [&] { return static_cast<uint64_t>(seconds_since(start) * 1000); };
  auto finish = [&] {
    done.get();
    const ingestd::CommitResult r = log->finish_commit(std::move(job));
    if (!r.ok) {
      std::fprintf(stderr, "commit: %s\n", r.error.c_str());
      std::exit(1);
    }
    ++commits;
    syncs += r.synced;
  };
  while (true) {
    for (int i = 0; i < 64; ++i)
      log->append(payload);
    appended += 64;
    if (job && done.wait_for(std::chrono::seconds(0)) == std::future_status::ready) finish();
    if (!job) {
      if (seconds_since(start) >= seconds) break;
      job = log->begin_commit(now_ms());
      if (job) done = std::async(std::launch::async, [j = job.get()] { j->run(); });
    }
    // Bound the backlog like max_disk would: wait for the disk when far ahead.
    if (job && log->pending_bytes() > (size_t{64} << 20)) finish();
  }
  if (job) finish();
  while (log->pending_records() > 0) {
    if (!log->commit_now(now_ms()).ok) return 1;
    ++commits;
  }
  const double wt = seconds_since(start);
  const double mb = static_cast<double>(log->disk_bytes()) / 1e6;
  std::printf(
      "%-14s write: %9.0f appends/s %7.1f MB/s  (%llu records, %llu commits, %llu syncs, "
      "avg %.0f records/commit)\n",
      label, static_cast<double>(appended) / wt, mb / wt, static_cast<unsigned long long>(appended),
      static_cast<unsigned long long>(commits), static_cast<unsigned long long>(syncs),
      static_cast<double>(appended) / static_cast<double>(commits));
  const auto rstart = Clock::now();
  std::vector<ingestd::RecordView> out;
  uint64_t got = 0;
  while (true) {
    if (std::string e = reader.read(500, 1 << 20, &out); !e.empty()) {
      std::fprintf(stderr, "read: %s\n", e.c_str());
      return 1;
    }
    if (out.empty()) break;
    got += out.size();
  }
  const double rt = seconds_since(rstart);
  std::printf("%-14s read:  %9.0f records/s %7.1f MB/s  (%llu records)\n", label,
              static_cast<double>(got) / rt, mb / rt, static_cast<unsigned long long>(got));
  std::filesystem::remove_all(dir);
  return got == appended ? 0 : 1;
}

// Commit latency: batches of `batch` records committed synchronously, as a
// lightly loaded worker would (every request waits for one commit).
int latency(const std::string &dir, ingestd::FsyncMode mode, const char *label, size_t batch,
            int commits) {
  std::filesystem::remove_all(dir);
  ingestd::SegmentLogOptions o;
  o.dir = dir;
  o.fsync = mode;
  o.fsync_interval_ms = 100;
  std::string err;
  auto log = ingestd::SegmentLog::open(o, nullptr, &err);
  if (!log) return 1;
  log->reader("bench");
  const std::string payload(200, 'x');
  const auto start = Clock::now();
  for (int c = 0; c < commits; ++c) {
    for (size_t i = 0; i < batch; ++i)
      log->append(payload);
    if (!log->commit_now(static_cast<uint64_t>(seconds_since(start) * 1000)).ok) return 1;
  }
  const double t = seconds_since(start);
  std::printf("%-14s %4zu records/commit: %8.0f commits/s, %7.3f ms/commit, %9.0f records/s\n",
              label, batch, commits / t, t * 1000 / commits,
              static_cast<double>(batch) * commits / t);
  std::filesystem::remove_all(dir);
  return 0;
}

// The loop thread's own cost: encoding + checksumming into the pending buffer.
void append_cpu() {
  ingestd::SegmentLogOptions o;
  o.dir = "/nonexistent-unused";
  const std::string payload(200, 'x');
  std::string buf;
  const auto start = Clock::now();
  const uint64_t n = 5'000'000;
  for (uint64_t i = 0; i < n; ++i) {
    if (buf.size() > (64 << 20)) buf.clear();
    ingestd::encode_frame(buf, i + 1, payload);
  }
  const double t = seconds_since(start);
  std::printf("append (encode+crc, in memory): %.0f appends/s, %.0f MB/s\n", n / t,
              n * 217.0 / 1e6 / t);
}

}  // namespace

int main(int argc, char **argv) {
  const std::string dir =
      argc > 1 ? argv[1] : "/tmp/ingestd-segment-bench-" + std::to_string(::getpid());
  const double seconds = argc > 2 ? std::atof(argv[2]) : 3.0;
  int rc = 0;
  rc |= run(dir, ingestd::FsyncMode::Never, "never", seconds);
  rc |= run(dir, ingestd::FsyncMode::Interval, "interval=100ms", seconds);
  rc |= run(dir, ingestd::FsyncMode::Always, "always", seconds);
  for (size_t batch : {size_t{1}, size_t{100}, size_t{1000}}) {
    rc |= latency(dir, ingestd::FsyncMode::Never, "never", batch, 300);
    rc |= latency(dir, ingestd::FsyncMode::Interval, "interval=100ms", batch, 300);
    rc |= latency(dir, ingestd::FsyncMode::Always, "always", batch, 300);
  }
  append_cpu();
  return rc;
}
