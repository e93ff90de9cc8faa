// The engine: the main thread. It loads and checks config, owns the listen
// sockets, starts a generation of workers per config, serves the admin
// endpoint and turns signals into reloads and shutdown.
//
// Reload builds a new generation beside the running one (as nginx does): the
// new workers take over the same listen sockets (SO_REUSEPORT sockets kept by
// the engine, so no connection is refused), then the old generation stops
// accepting, answers what it has, drains its queues and exits. If the new
// config is invalid or a new worker fails to start, the old one keeps running.
#pragma once

#include <uv.h>

#include <atomic>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "engine/dead_letter.h"
#include "engine/setup.h"
#include "engine/systemd_notify.h"  // systemd (issue 9)
#include "engine/worker.h"
#include "host/plugin_loader.h"
#include "http/server.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/uv_handle.h"

namespace ingestd {

struct EngineOptions {
  std::string config_path;
  std::string plugins_dir;  // --plugins-dir; empty: service.plugins_dir or the built-in default
  std::optional<LogLevel> log_level;  // --log-level overrides service.log_level
};

// Loads and validates the config with its plugins, and the files it names
// (API keys). On failure, *errors holds "file:line:col: message" lines.
// `catalog` is replaced when the config names another plugins_dir; the Setup
// holds the libraries its sections use, so a running generation keeps its own.
bool load_setup(const EngineOptions &opts, std::unique_ptr<PluginCatalog> *catalog,
                std::shared_ptr<const Setup> *out, std::vector<std::string> *errors);

std::unique_ptr<DeadLetter> make_dead_letter(const config::Config &cfg, const Logger *log);

// `ingestd -t`: load, validate, initialise every plugin once (never start it).
int check_config(const EngineOptions &opts, Logger *log);

// `ingestd --replay FILE --to OUTPUT`: sends the records of a dead-letter
// file to one output of the config, waits until each is delivered or
// dead-lettered again, prints a summary. Exit 0 when every record was
// delivered.
int replay_dead_letters(const EngineOptions &opts, const std::string &file,
                        const std::string &output, Logger *log);

class Engine {
 public:
  Engine(EngineOptions opts, Logger *log);
  ~Engine();
  // Runs until SIGTERM/SIGINT and the drain finish. Exit code.
  int run();

 private:
  struct Listen {
    std::string address;
    std::vector<int> fds;  // one SO_REUSEPORT socket per worker
  };
  struct Generation {
    uint64_t id = 0;
    std::shared_ptr<const Setup> setup;
    const config::Config *config = nullptr;
    std::vector<std::unique_ptr<Worker>> workers;
  };

  bool start_generation(std::shared_ptr<const Setup> setup, std::string *why);
  static std::string listen_key(const config::Section &listener);
  bool ensure_listen_sockets(const config::Config &cfg, int workers, std::string *why);
  void close_unused_sockets();
  int worker_count(const config::Config &cfg) const;
  void reload();
  void shutdown();
  void stop_generations();
  void hand_over(std::vector<HandedRecord> records);
  void reap();
  bool start_admin(const config::Config &cfg);
  void handle_admin(http::Request &req, http::Responder r);
  void maybe_finish();
  // watch_config: reload when a config file (or a directory holding one, as a
  // Kubernetes ConfigMap's symlink swap changes) changes content.
  void arm_config_watch(const Setup &setup);
  void on_config_event();
  static std::string config_fingerprint(const Setup &setup);

  EngineOptions opts_;
  Logger *log_;
  std::unique_ptr<PluginCatalog> catalog_;
  std::unique_ptr<DeadLetter> dead_letter_;
  uv_loop_t loop_{};
  SystemdNotify notify_{&loop_};  // systemd (issue 9): sd_notify, watchdog
  UvHandle<uv_signal_t> sigterm_, sigint_, sighup_;
  UvHandle<uv_async_t> wake_;
  std::unique_ptr<http::Server> admin_;
  std::map<std::string, Listen> listen_;  // by address
  std::unique_ptr<Generation> current_;
  std::list<std::unique_ptr<Generation>> retiring_;
  uint64_t next_generation_ = 1;
  bool shutting_down_ = false;
  bool admin_closing_ = false;
  // SIGTERM with drain_delay: readiness fails while listeners still serve;
  // read by the workers (health_path), written here only.
  std::atomic<bool> draining_{false};
  Timer drain_timer_;
  MetricsRegistry metrics_;  // the engine's own
  std::map<std::string, Snapshot> retired_metrics_;
  Counter *reloads_ = nullptr;
  Counter *reload_failures_ = nullptr;
  Counter *lost_ = nullptr;
  std::vector<UvHandle<uv_fs_event_t>> watchers_;
  Timer watch_debounce_;
  std::string fingerprint_;  // contents of every file of the running setup
};

}  // namespace ingestd
