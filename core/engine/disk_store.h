// The disk buffers of one worker's pipeline: where each input's log lives
// (storage_dir/<input>/w<worker>-<ms>-<pid>-g<generation>), its lock, the
// adoption of logs nobody holds (an earlier run, a retired generation, a
// worker that no longer exists) and their removal once read to the end.
// What a log does with records is in disk_buffer.h.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "engine/disk_buffer.h"
#include "engine/routing.h"
#include "util/uv_handle.h"

namespace ingestd {

class DiskStore {
 public:
  DiskStore(const DiskEnv &env, const config::Config &cfg, std::string storage_dir, int worker,
            uint64_t generation)
      : env_(env),
        cfg_(cfg),
        storage_dir_(std::move(storage_dir)),
        worker_(worker),
        generation_(generation) {}
  DiskStore(const DiskStore &) = delete;
  DiskStore &operator=(const DiskStore &) = delete;

  // Opens this worker's log of every input with disk outputs, adopts logs
  // nobody holds, and keeps adopting and retiring every second. False
  // (logged) when an own log cannot be opened.
  bool open(const std::vector<InputRuntime *> &inputs, bool warn_unread);
  // Every log is read to the end and nothing waits to be written.
  bool drained() const;
  // Shutdown: writes what is pending, saves every cursor, removes logs read
  // to the end; the rest stay for the next start.
  void close();

 private:
  bool open_own_logs();
  bool open_log(InputRuntime *in, const std::string &dir, UniqueFd lock, bool own);
  void adopt_logs();
  // Logs under storage_dir no configured disk output reads: said once at start.
  void warn_unread_logs();
  void retire_drained_logs(bool include_own);

  DiskEnv env_;
  const config::Config &cfg_;
  std::string storage_dir_;
  int worker_;
  uint64_t generation_;
  std::vector<InputRuntime *> inputs_;
  std::vector<std::unique_ptr<DiskLog>> logs_;
  Timer adopt_timer_;
};

}  // namespace ingestd
