// systemd readiness protocol (sd_notify): READY, RELOADING, STOPPING and the
// watchdog keep-alive. Every call is a no-op when ingestd was built without
// libsystemd or is not run by systemd (no NOTIFY_SOCKET).
#pragma once

#include <uv.h>

#include "util/uv_handle.h"

namespace ingestd {

class SystemdNotify {
 public:
  explicit SystemdNotify(uv_loop_t *loop) : loop_(loop) {}
  SystemdNotify(const SystemdNotify &) = delete;
  SystemdNotify &operator=(const SystemdNotify &) = delete;

  // READY=1, and starts the watchdog timer at half of WATCHDOG_USEC when the
  // unit sets WatchdogSec=. The timer runs on the engine's loop, so a stuck
  // main loop stops the keep-alives and systemd restarts the service.
  void ready();
  // RELOADING=1 (with MONOTONIC_USEC, as systemd 253 wants); call ready() after.
  void reloading();
  // STOPPING=1, and stops the watchdog: the drain may take up to
  // shutdown_timeout, which TimeoutStopSec= bounds instead.
  void stopping();
  // Closes the timer so the loop can end.
  void close() { watchdog_.reset(); }

 private:
  [[maybe_unused]] uv_loop_t *loop_;  // unused without libsystemd
  UvHandle<uv_timer_t> watchdog_;
};

}  // namespace ingestd
