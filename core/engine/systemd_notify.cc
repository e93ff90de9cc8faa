// sd_notify calls for Type=notify units; compiled without libsystemd they do
// nothing (INGESTD_HAVE_SYSTEMD unset).
#include "engine/systemd_notify.h"

#include <time.h>

#include <cstdint>
#include <cstdio>

#ifdef INGESTD_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

namespace ingestd {

#ifdef INGESTD_HAVE_SYSTEMD

void SystemdNotify::ready() {
  sd_notify(0, "READY=1\nSTATUS=running");
  if (watchdog_) return;
  uint64_t usec = 0;
  // > 0 only when WATCHDOG_USEC is set (and WATCHDOG_PID, if set, is ours).
  if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return;
  uint64_t period_ms = usec / 2000;
  if (period_ms == 0) period_ms = 1;
  auto *t = new uv_timer_t;
  uv_timer_init(loop_, t);
  // The keep-alive alone must not hold the loop open at shutdown.
  uv_unref(reinterpret_cast<uv_handle_t *>(t));
  uv_timer_start(
      t, [](uv_timer_t *) { sd_notify(0, "WATCHDOG=1"); }, period_ms, period_ms);
  watchdog_ = UvHandle<uv_timer_t>(t);
  sd_notify(0, "WATCHDOG=1");
}

void SystemdNotify::reloading() {
  struct timespec ts {};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  char msg[96];
  std::snprintf(msg, sizeof msg, "RELOADING=1\nSTATUS=reloading\nMONOTONIC_USEC=%llu",
                static_cast<unsigned long long>(ts.tv_sec) * 1000000ULL +
                    static_cast<unsigned long long>(ts.tv_nsec) / 1000ULL);
  sd_notify(0, msg);
}

void SystemdNotify::stopping() {
  watchdog_.reset();
  sd_notify(0, "STOPPING=1\nSTATUS=draining queues");
}

#else

void SystemdNotify::ready() {}
void SystemdNotify::reloading() {}
void SystemdNotify::stopping() {}

#endif

}  // namespace ingestd
