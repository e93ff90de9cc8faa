// Engine: config loading, `-t`, generations of workers, admin, signals.
#include "engine/engine.h"

#include "engine/router.h"

#include <limits.h>
#include <stdlib.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include <algorithm>
#include <iterator>
#include <set>
#include <thread>

#include "engine/listen_socket.h"

#ifndef INGESTD_DEFAULT_PLUGINS_DIR
#define INGESTD_DEFAULT_PLUGINS_DIR "/usr/lib/ingestd/plugins"
#endif

namespace ingestd {

namespace {
constexpr const char *kScope = "main";

std::string default_plugins_dir(const EngineOptions &o) {
  return o.plugins_dir.empty() ? INGESTD_DEFAULT_PLUGINS_DIR : o.plugins_dir;
}

// "1 GiB", "7.9 MiB", "512 B".
std::string human_bytes(uint64_t n) {
  static constexpr const char *kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  size_t u = 0;
  double v = static_cast<double>(n);
  while (v >= 1024 && u + 1 < std::size(kUnits)) {
    v /= 1024;
    ++u;
  }
  char buf[48];
  if (u == 0 || v >= 100 || v == static_cast<double>(static_cast<uint64_t>(v)))
    std::snprintf(buf, sizeof buf, "%.0f %s", v, kUnits[u]);
  else
    std::snprintf(buf, sizeof buf, "%.1f %s", v, kUnits[u]);
  return buf;
}

// A disk output whose max_disk the file system under storage_dir cannot hold
// would meet ENOSPC before its own limit: worth a warning at -t and at start
// (not an error: the space may be freed, or other files may shrink).
void warn_disk_space(const config::Config &cfg, const Logger *log) {
  std::string dir = cfg.service.get_string("storage_dir");
  struct statvfs st;
  // storage_dir may not exist yet: the nearest existing parent is on the same
  // file system as it will be, unless a mount comes between.
  while (::statvfs(dir.c_str(), &st) != 0) {
    if (errno != ENOENT || dir.empty() || dir == "/") return;
    auto slash = dir.find_last_of('/');
    dir = slash == std::string::npos ? "." : slash == 0 ? "/" : dir.substr(0, slash);
  }
  const uint64_t free_bytes = static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
  for (const auto &o : cfg.outputs) {
    if (o.options.get_string("buffer") != "disk") continue;
    const uint64_t max_disk = o.options.get_size("max_disk");
    if (max_disk <= free_bytes) continue;
    log->logf(LogLevel::Warn, kScope,
              "max_disk %s of output '%s' exceeds the %s free on the file system of %s: when it "
              "fills first, requests get 503 until delivered records free space",
              human_bytes(max_disk).c_str(), o.name.c_str(), human_bytes(free_bytes).c_str(),
              dir.c_str());
  }
}
// A relative path is relative to the file that names it, as include is.
std::string config_relative_path(const config::Section &section, const char *option) {
  std::string path = section.options.get_string(option);
  if (!path.empty() && path[0] != '/') {
    const auto *v = section.options.find(option);
    auto slash = v->pos.file.rfind('/');
    if (slash != std::string::npos) path = v->pos.file.substr(0, slash + 1) + path;
  }
  return path;
}

// An HTTPS listener's certificate, key and client CA, read now, so `-t`, the
// start and a reload refuse a missing or mismatched pair alike (a reload
// then keeps the running certificate).
void load_listener_tls(const config::Section &l, Setup *setup, std::vector<std::string> *errors) {
  const auto &o = l.options;
  bool cert = o.has("tls_cert"), key = o.has("tls_key");
  auto where = [&](const char *option) {
    const auto *v = o.find(option);
    return (v ? v->pos.str() : l.pos.str()) + ": ";
  };
  if (!cert && !key) {
    for (const char *option : {"tls_client_ca", "client_cert_field"}) {
      if (o.has(option)) {
        errors->push_back(where(option) + "listeners." + l.name + ": " + option +
                          " needs tls_cert and tls_key");
      }
    }
    return;
  }
  if (cert != key) {
    errors->push_back(where(cert ? "tls_cert" : "tls_key") + "listeners." + l.name +
                      ": tls_cert and tls_key must be set together");
    return;
  }
  if (o.has("client_cert_field") && !o.has("tls_client_ca")) {
    errors->push_back(where("client_cert_field") + "listeners." + l.name +
                      ": client_cert_field needs tls_client_ca (no client certificate is "
                      "asked for without it)");
    return;
  }
  tls::ServerConfig tc;
  tc.cert_file = config_relative_path(l, "tls_cert");
  tc.key_file = config_relative_path(l, "tls_key");
  if (o.has("tls_client_ca")) tc.client_ca_file = config_relative_path(l, "tls_client_ca");
  tc.min_version = o.get_string("tls_min_version");
  for (const auto *f : {&tc.cert_file, &tc.key_file, &tc.client_ca_file}) {
    if (!f->empty()) setup->external_files.push_back(*f);
  }
  std::string err;
  auto ctx = tls::Context::server(tc, &err);
  if (!ctx) {
    errors->push_back(where("tls_cert") + "listeners." + l.name + ": " + err);
    return;
  }
  setup->listener_tls[l.name] = std::move(ctx);
}

}  // namespace

bool load_setup(const EngineOptions &opts, std::unique_ptr<PluginCatalog> *catalog,
                std::shared_ptr<const Setup> *out, std::vector<std::string> *errors) {
  if (!*catalog) *catalog = std::make_unique<PluginCatalog>(default_plugins_dir(opts));
  for (int pass = 0; pass < 2; ++pass) {
    auto cfg = std::make_shared<config::Config>();
    std::vector<config::Error> errs;
    PluginCatalog *cat = catalog->get();
    std::vector<std::shared_ptr<const PluginLibrary>> libs;  // what this config points into
    auto lookup = [cat, &libs](ingestd_kind_type kind, const std::string &name, std::string *why) {
      auto lib = cat->library(kind, name, why);
      if (!lib) return static_cast<const ingestd_plugin_t *>(nullptr);
      if (std::find(libs.begin(), libs.end(), lib) == libs.end()) libs.push_back(lib);
      return lib->descriptor();
    };
    bool ok = config::load(opts.config_path, lookup, cfg.get(), &errs);
    // service.plugins_dir is known only after parsing: load again from there.
    if (pass == 0 && opts.plugins_dir.empty() && cfg->service.has("plugins_dir")) {
      std::string dir = cfg->service.get_string("plugins_dir");
      if (!dir.empty() && dir != (*catalog)->dir()) {
        *catalog = std::make_unique<PluginCatalog>(dir);
        continue;
      }
    }
    if (!ok) {
      for (const auto &e : errs)
        errors->push_back(e.str());
      return false;
    }
    auto setup = std::make_shared<Setup>();
    for (const auto &l : cfg->listeners) {
      if (l.options.has("api_keys_file")) {
        std::string path = config_relative_path(l, "api_keys_file");
        setup->external_files.push_back(path);
        auto keys = ApiKeys::load(path, errors);
        if (keys) setup->api_keys[l.name] = std::move(keys);
      }
      load_listener_tls(l, setup.get(), errors);
    }
    if (!errors->empty()) return false;
    setup->libraries = std::move(libs);
    setup->config = std::move(cfg);
    *out = std::move(setup);
    return true;
  }
  return false;
}

std::unique_ptr<DeadLetter> make_dead_letter(const config::Config &cfg, const Logger *log) {
  return std::make_unique<DeadLetter>(cfg.service.get_string("storage_dir") + "/dead-letter.ndjson",
                                      log, cfg.service.get_size("dead_letter_max_size"),
                                      static_cast<int>(cfg.service.get_int("dead_letter_files")));
}

int check_config(const EngineOptions &opts, Logger *log) {
  std::unique_ptr<PluginCatalog> catalog;
  std::shared_ptr<const Setup> setup;
  std::vector<std::string> errors;
  if (!load_setup(opts, &catalog, &setup, &errors)) {
    for (const auto &e : errors)
      std::fprintf(stderr, "%s\n", e.c_str());
    std::fprintf(stderr, "ingestd: configuration %s: %zu error%s\n", opts.config_path.c_str(),
                 errors.size(), errors.size() == 1 ? "" : "s");
    return 1;
  }
  // Valid, but the records of such an input are kept nowhere.
  for (const auto &in : setup->config->inputs) {
    std::string tag = in.options.has("tag") ? in.options.get_string("tag") : in.name;
    bool routed = std::any_of(setup->config->routes.begin(), setup->config->routes.end(),
                              [&](const config::Route &r) { return glob_match(r.match, tag); });
    if (!routed) {
      std::fprintf(stderr,
                   "%s: warning: input '%s' (tag '%s') matches no route: its records are "
                   "answered as unrouted and kept nowhere\n",
                   in.pos.str().c_str(), in.name.c_str(), tag.c_str());
    }
  }
  // Plugins check what their option table cannot (templates, combinations).
  uv_loop_t loop;
  uv_loop_init(&loop);
  MetricsRegistry metrics;
  DeadLetter dl("/dev/null", log);
  PipelineEnv env;
  env.loop = &loop;
  env.log = log;
  env.metrics = &metrics;
  env.dead_letter = &dl;
  env.check_only = true;
  bool ok;
  {
    Pipeline p(setup, env);
    ok = p.init();
    p.stop();
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  if (!ok) {
    std::fprintf(stderr, "ingestd: configuration %s: a plugin refused its options\n",
                 opts.config_path.c_str());
    return 1;
  }
  warn_disk_space(*setup->config, log);
  std::fprintf(stderr, "ingestd: configuration %s is valid (%zu files)\n", opts.config_path.c_str(),
               setup->config->files.size());
  return 0;
}

int replay_dead_letters(const EngineOptions &opts, const std::string &file,
                        const std::string &output, Logger *log) {
  std::unique_ptr<PluginCatalog> catalog;
  std::shared_ptr<const Setup> setup;
  std::vector<std::string> errors;
  if (!load_setup(opts, &catalog, &setup, &errors)) {
    for (const auto &e : errors)
      std::fprintf(stderr, "%s\n", e.c_str());
    return 1;
  }
  const config::Config &cfg = *setup->config;
  if (!cfg.find_output(output)) {
    std::fprintf(stderr, "ingestd: --to %s: no [outputs.%s] in %s\n", output.c_str(),
                 output.c_str(), opts.config_path.c_str());
    return 1;
  }
  auto dead_letter = make_dead_letter(cfg, log);
  char real_in[PATH_MAX], real_dl[PATH_MAX];
  if (::realpath(file.c_str(), real_in) && ::realpath(dead_letter->path().c_str(), real_dl) &&
      std::string(real_in) == real_dl) {
    std::fprintf(stderr,
                 "ingestd: %s is the live dead-letter file: move it aside first "
                 "(mv %s %s.replay) and replay the moved file\n",
                 file.c_str(), file.c_str(), file.c_str());
    return 1;
  }
  // Read and check everything before sending anything.
  FILE *in = std::fopen(file.c_str(), "r");
  if (!in) {
    std::fprintf(stderr, "ingestd: %s: %s\n", file.c_str(), std::strerror(errno));
    return 1;
  }
  std::vector<RecordPtr> records;
  std::string line;
  size_t lineno = 0;
  bool bad = false;
  char buf[65536];
  while (std::fgets(buf, sizeof buf, in)) {
    line += buf;
    if (line.empty() || (line.back() != '\n' && !std::feof(in))) continue;
    ++lineno;
    json::Value v;
    json::ParseError err;
    std::string_view text = line;
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r'))
      text.remove_suffix(1);
    if (!text.empty()) {
      const json::Value *rec = nullptr;
      if (!json::parse(text, &v, &err) || !(rec = v.find("record")) || !rec->is_object()) {
        std::fprintf(stderr, "%s:%zu: not a dead-letter line (%s)\n", file.c_str(), lineno,
                     err.message.empty() ? "no \"record\" object" : err.message.c_str());
        bad = true;
      } else {
        RecordPtr r = RecordPtr::make();
        r->root = *rec;
        if (const json::Value *tag = v.find("tag")) r->tag = std::string(tag->as_string());
        records.push_back(std::move(r));
      }
    }
    line.clear();
  }
  std::fclose(in);
  if (bad) return 1;

  uv_loop_t loop;
  uv_loop_init(&loop);
  MetricsRegistry metrics;
  PipelineEnv env;
  env.loop = &loop;
  env.log = log;
  env.metrics = &metrics;
  env.dead_letter = dead_letter.get();
  env.disk_logs = false;  // replay sends the file only; disk buffers wait for the daemon
  uint64_t dead_before = dead_letter->lines_written();
  size_t total = records.size();
  uint64_t delivered = 0;
  bool ok;
  {
    Pipeline p(setup, env);
    ok = p.init() && p.start();
    if (ok) {
      for (auto &r : records)
        p.enqueue_to(output, std::move(r));
      records.clear();
      p.drain();
      Timer check(&loop);
      check.start(10, 10, [&] {
        // Plugins may keep handles open (connections): stop the loop here.
        if (p.idle()) uv_stop(&loop);
      });
      uv_run(&loop, UV_RUN_DEFAULT);
      delivered = p.delivered(output);
    }
    p.stop();
    // Let the plugins' close callbacks run before the pipeline goes.
    uv_run(&loop, UV_RUN_NOWAIT);
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  if (!ok) return 1;
  uint64_t dead = dead_letter->lines_written() - dead_before;
  std::fprintf(stderr,
               "ingestd: replayed %zu records from %s to %s: %llu delivered, %llu dead-lettered "
               "again%s%s\n",
               total, file.c_str(), output.c_str(), static_cast<unsigned long long>(delivered),
               static_cast<unsigned long long>(dead), dead ? " into " : "",
               dead ? dead_letter->path().c_str() : "");
  return dead == 0 && delivered == total ? 0 : 1;
}

Engine::Engine(EngineOptions opts, Logger *log) : opts_(std::move(opts)), log_(log) {
  uv_loop_init(&loop_);
  reloads_ = metrics_.counter("ingestd_reloads_total", "Configuration reloads that took effect");
  reload_failures_ = metrics_.counter("ingestd_reload_failures_total",
                                      "Reloads refused (invalid config or failed start)");
  lost_ = metrics_.counter("ingestd_lost_records_total",
                           "Records in memory queues when a worker had to stop before delivering");
}

Engine::~Engine() {
  notify_.close();  // systemd (issue 9)
  watchers_.clear();
  watch_debounce_ = Timer();
  drain_timer_ = Timer();
  current_.reset();
  retiring_.clear();
  admin_.reset();
  sigterm_.reset();
  sigint_.reset();
  sighup_.reset();
  wake_.reset();
  uv_run(&loop_, UV_RUN_DEFAULT);
  uv_loop_close(&loop_);
  for (auto &[addr, l] : listen_)
    for (int fd : l.fds)
      ::close(fd);
}

int Engine::worker_count(const config::Config &cfg) const {
  int64_t n = cfg.service.get_int("workers");
  if (n <= 0) n = std::max(1u, std::thread::hardware_concurrency());
  return static_cast<int>(n);
}

// Sockets are kept across reloads by address; two listeners on port 0 (each
// wanting a port of its own) by name too.
std::string Engine::listen_key(const config::Section &l) {
  std::string addr = l.options.get_string("listen");
  std::string host;
  int port = 0;
  if (split_host_port(addr, &host, &port) && port == 0) return l.name + "@" + addr;
  return addr;
}

bool Engine::ensure_listen_sockets(const config::Config &cfg, int workers, std::string *why) {
  for (const auto &l : cfg.listeners) {
    std::string addr = l.options.get_string("listen");
    std::string key = listen_key(l);
    Listen &ls = listen_[key];
    ls.address = addr;
    std::string host;
    int port = 0;
    if (!split_host_port(addr, &host, &port)) {
      *why = l.pos.str() + ": listener " + l.name + ": bad address '" + addr + "'";
      return false;
    }
    if (!ls.fds.empty()) {
      // Reuse the port the first socket got (matters for port 0).
      sockaddr_storage ss{};
      socklen_t len = sizeof ss;
      ::getsockname(ls.fds[0], reinterpret_cast<sockaddr *>(&ss), &len);
      port = ss.ss_family == AF_INET ? ntohs(reinterpret_cast<sockaddr_in *>(&ss)->sin_port)
                                     : ntohs(reinterpret_cast<sockaddr_in6 *>(&ss)->sin6_port);
    }
    while (static_cast<int>(ls.fds.size()) < workers) {
      std::string err;
      bool first = ls.fds.empty();
      int fd = open_listen_socket(host, &port, first, &err);
      if (fd < 0) {
        *why = "listener " + l.name + ": cannot listen on " + addr + ": " + err;
        if (ls.fds.empty()) listen_.erase(key);
        return false;
      }
      if (first) {
        log_->logf(LogLevel::Info, kScope, "listener %s: listening on %s:%d", l.name.c_str(),
                   host.find(':') != std::string::npos ? ("[" + host + "]").c_str() : host.c_str(),
                   port);
      }
      ls.fds.push_back(fd);
    }
  }
  return true;
}

void Engine::close_unused_sockets() {
  std::set<std::string> used;
  size_t workers = 0;
  auto note = [&](const Generation &g) {
    workers = std::max(workers, g.workers.size());
    for (const auto &l : g.config->listeners)
      used.insert(listen_key(l));
  };
  if (current_) note(*current_);
  for (const auto &g : retiring_)
    note(*g);
  for (auto it = listen_.begin(); it != listen_.end();) {
    if (!used.count(it->first)) {
      for (int fd : it->second.fds)
        ::close(fd);
      it = listen_.erase(it);
      continue;
    }
    while (it->second.fds.size() > std::max<size_t>(workers, 1)) {
      ::close(it->second.fds.back());
      it->second.fds.pop_back();
    }
    ++it;
  }
}

bool Engine::start_generation(std::shared_ptr<const Setup> setup, std::string *why) {
  const config::Config *cfg = setup->config.get();
  int n = worker_count(*cfg);
  if (!ensure_listen_sockets(*cfg, n, why)) return false;
  auto gen = std::make_unique<Generation>();
  gen->id = next_generation_++;
  gen->setup = setup;
  gen->config = cfg;
  for (int i = 0; i < n; ++i) {
    Worker::Options wo;
    wo.index = i;
    wo.worker_count = n;
    wo.cpu_affinity = cfg->service.get_bool("cpu_affinity");
    wo.generation = gen->id;
    wo.setup = setup;
    wo.log = log_;
    wo.dead_letter = dead_letter_.get();
    wo.draining = &draining_;
    for (const auto &l : cfg->listeners)
      wo.listen_fds[l.name] = listen_[listen_key(l)].fds[static_cast<size_t>(i)];
    uv_async_t *wake = wake_.get();
    wo.on_exit = [wake] { uv_async_send(wake); };
    auto w = std::make_unique<Worker>(std::move(wo));
    bool ok = w->start();
    gen->workers.push_back(std::move(w));
    if (!ok) {
      *why = "worker " + std::to_string(i) + " failed to start";
      for (auto &x : gen->workers)
        x->retire(0);
      retiring_.push_back(std::move(gen));
      return false;
    }
  }
  if (current_) {
    uint64_t timeout =
        static_cast<uint64_t>(current_->config->service.get_duration_ms("shutdown_timeout"));
    for (auto &w : current_->workers)
      w->retire(timeout, /*hand_over=*/true);
    retiring_.push_back(std::move(current_));
  }
  current_ = std::move(gen);
  return true;
}

void Engine::reap() {
  for (auto it = retiring_.begin(); it != retiring_.end();) {
    auto &g = **it;
    bool all =
        std::all_of(g.workers.begin(), g.workers.end(), [](const auto &w) { return w->exited(); });
    if (!all) {
      ++it;
      continue;
    }
    for (auto &w : g.workers) {
      w->join();
      w->metrics().accumulate(&retired_metrics_, false);
      lost_->add(w->lost_records());
      hand_over(w->take_handover());
    }
    log_->logf(LogLevel::Info, kScope, "generation %llu stopped",
               static_cast<unsigned long long>(g.id));
    it = retiring_.erase(it);
  }
  close_unused_sockets();
  maybe_finish();
}

// What a generation retired by a reload still held in memory queues goes to
// the running one, spread over its workers: a reload loses no record, even
// when the old generation could not deliver (a wrong CA fixed by the reload).
void Engine::hand_over(std::vector<HandedRecord> records) {
  if (records.empty()) return;
  if (!current_ || shutting_down_ || current_->workers.empty()) {
    lost_->add(records.size());
    log_->logf(LogLevel::Error, kScope,
               "%zu records handed over by a retired generation are lost: shutting down",
               records.size());
    return;
  }
  auto &workers = current_->workers;
  std::vector<std::vector<HandedRecord>> parts(workers.size());
  for (size_t i = 0; i < records.size(); ++i)
    parts[i % parts.size()].push_back(std::move(records[i]));
  for (size_t i = 0; i < parts.size(); ++i)
    if (!parts[i].empty()) workers[i]->adopt(std::move(parts[i]));
  log_->logf(LogLevel::Info, kScope, "%zu queued records carried over to generation %llu",
             records.size(), static_cast<unsigned long long>(current_->id));
}

void Engine::maybe_finish() {
  if (!shutting_down_ || !retiring_.empty() || current_) return;
  if (admin_closing_) return;
  admin_closing_ = true;
  auto done = [this] {
    notify_.close();  // systemd (issue 9)
    watchers_.clear();
    watch_debounce_ = Timer();
    drain_timer_ = Timer();
    sigterm_.reset();
    sigint_.reset();
    sighup_.reset();
    wake_.reset();
  };
  if (admin_) {
    admin_->close(0, done);
  } else {
    done();
  }
}

std::string Engine::config_fingerprint(const Setup &setup) {
  std::vector<std::string> paths = setup.config->files;
  paths.insert(paths.end(), setup.external_files.begin(), setup.external_files.end());
  std::string all;
  for (const auto &p : paths) {
    all += p;
    all += '\0';
    if (FILE *f = std::fopen(p.c_str(), "rb")) {
      char buf[8192];
      size_t n;
      while ((n = std::fread(buf, 1, sizeof buf, f)) > 0)
        all.append(buf, n);
      std::fclose(f);
    }
    all += '\0';
  }
  return all;
}

void Engine::arm_config_watch(const Setup &setup) {
  watchers_.clear();
  fingerprint_ = config_fingerprint(setup);
  if (!setup.config->service.get_bool("watch_config")) return;
  std::set<std::string> dirs(setup.config->watch_dirs.begin(), setup.config->watch_dirs.end());
  std::vector<std::string> files = setup.config->files;
  files.insert(files.end(), setup.external_files.begin(), setup.external_files.end());
  for (const auto &f : files) {
    auto slash = f.rfind('/');
    dirs.insert(slash == std::string::npos ? "." : f.substr(0, slash == 0 ? 1 : slash));
  }
  for (const auto &d : dirs) {
    auto *h = new uv_fs_event_t;
    uv_fs_event_init(&loop_, h);
    h->data = this;
    int rc = uv_fs_event_start(
        h,
        [](uv_fs_event_t *e, const char *, int, int) {
          static_cast<Engine *>(e->data)->on_config_event();
        },
        d.c_str(), 0);
    watchers_.emplace_back(h);
    if (rc != 0) {
      log_->logf(LogLevel::Warn, kScope, "watch_config: cannot watch %s: %s", d.c_str(),
                 uv_strerror(rc));
    }
  }
}

void Engine::on_config_event() {
  // Editors and ConfigMap updates touch several files in a burst: wait for
  // quiet, then reload only if some content really changed.
  watch_debounce_.start(300, 0, [this] {
    if (!current_ || shutting_down_) return;
    if (config_fingerprint(*current_->setup) == fingerprint_) {
      log_->log(LogLevel::Info, kScope, "watch_config: files were touched, no content changed");
      return;
    }
    log_->log(LogLevel::Info, kScope, "watch_config: a configuration file changed");
    reload();
  });
}

void Engine::reload() {
  if (shutting_down_ || draining_.load(std::memory_order_relaxed)) return;
  log_->log(LogLevel::Info, kScope, "reloading configuration (SIGHUP)");
  // systemd (issue 9): RELOADING=1 now, READY=1 however the reload ends.
  notify_.reloading();
  struct ReadyAgain {
    SystemdNotify *n;
    ~ReadyAgain() { n->ready(); }
  } ready_again{&notify_};
  std::shared_ptr<const Setup> setup;
  std::vector<std::string> errors;
  if (!load_setup(opts_, &catalog_, &setup, &errors)) {
    for (const auto &e : errors)
      log_->log(LogLevel::Error, kScope, e);
    log_->logf(LogLevel::Error, kScope,
               "reload refused: %zu error%s in the new configuration; the running one stays",
               errors.size(), errors.size() == 1 ? "" : "s");
    reload_failures_->add();
    if (current_) fingerprint_ = config_fingerprint(*current_->setup);
    return;
  }
  if (!opts_.log_level) {
    LogLevel lvl;
    if (parse_log_level(setup->config->service.get_string("log_level"), &lvl)) log_->set_level(lvl);
  }
  warn_disk_space(*setup->config, log_);
  std::string why;
  if (!start_generation(setup, &why)) {
    log_->logf(LogLevel::Error, kScope, "reload refused: %s; the running configuration stays",
               why.c_str());
    reload_failures_->add();
    close_unused_sockets();
    return;
  }
  reloads_->add();
  arm_config_watch(*setup);
  log_->logf(LogLevel::Info, kScope, "configuration reloaded (generation %llu)",
             static_cast<unsigned long long>(current_->id));
  close_unused_sockets();
}

void Engine::shutdown() {
  if (draining_.load(std::memory_order_relaxed) && !shutting_down_) {
    // A second signal during drain_delay: the operator means now.
    log_->log(LogLevel::Info, kScope, "second stop signal: ending drain_delay early");
    drain_timer_.stop();
    stop_generations();
    return;
  }
  if (shutting_down_) {
    log_->log(LogLevel::Warn, kScope, "already shutting down");
    return;
  }
  notify_.stopping();  // systemd (issue 9)
  watchers_.clear();
  watch_debounce_ = Timer();
  uint64_t delay =
      current_ ? static_cast<uint64_t>(current_->config->service.get_duration_ms("drain_delay"))
               : 0;
  if (delay > 0) {
    // Readiness (and every listener's health_path) fails now; listeners keep
    // accepting and serving, so a load balancer deregisters the target
    // before anything closes.
    draining_.store(true, std::memory_order_relaxed);
    log_->logf(LogLevel::Info, kScope,
               "shutting down: readiness fails, serving for drain_delay %llums before stopping",
               static_cast<unsigned long long>(delay));
    drain_timer_.start(delay, 0, [this] { stop_generations(); });
    return;
  }
  stop_generations();
}

void Engine::stop_generations() {
  if (shutting_down_) return;
  shutting_down_ = true;
  draining_.store(true, std::memory_order_relaxed);
  log_->log(LogLevel::Info, kScope, "shutting down: draining queues");
  if (current_) {
    uint64_t timeout =
        static_cast<uint64_t>(current_->config->service.get_duration_ms("shutdown_timeout"));
    for (auto &w : current_->workers)
      w->retire(timeout);
    retiring_.push_back(std::move(current_));
  }
  reap();
}

bool Engine::start_admin(const config::Config &cfg) {
  std::string addr = cfg.service.get_string("admin");
  if (addr.empty()) return true;
  http::ServerLimits lim;
  lim.max_body = 0;
  admin_ = std::make_unique<http::Server>(
      &loop_, lim,
      [this](http::Request &req, http::Responder r) { handle_admin(req, std::move(r)); });
  std::string host;
  int port;
  if (!split_host_port(addr, &host, &port)) {
    log_->logf(LogLevel::Error, kScope, "admin: bad address '%s'", addr.c_str());
    return false;
  }
  std::string why;
  int fd = open_listen_socket(host, &port, true, &why);
  if (fd < 0) {
    log_->logf(LogLevel::Error, kScope, "admin: cannot listen on %s: %s", addr.c_str(),
               why.c_str());
    return false;
  }
  int rc = admin_->adopt(fd);
  ::close(fd);  // the server holds its own descriptor
  if (rc != 0) {
    log_->logf(LogLevel::Error, kScope, "admin: %s", uv_strerror(rc));
    return false;
  }
  log_->logf(LogLevel::Info, kScope, "admin: listening on %s:%d", host.c_str(), port);
  return true;
}

void Engine::handle_admin(http::Request &req, http::Responder r) {
  http::Response resp;
  std::string path(req.path());
  if (req.method() != "GET" && req.method() != "HEAD") {
    resp.status = 405;
    resp.headers.emplace_back("Allow", "GET, HEAD");
    resp.body = "{\"error\":\"method not allowed\"}";
  } else if (path == "/healthz") {
    resp.body = "{\"status\":\"ok\"}";
  } else if (path == "/readyz") {
    bool ready = current_ && !shutting_down_ && !draining_.load(std::memory_order_relaxed);
    resp.status = ready ? 200 : 503;
    resp.body = ready ? "{\"status\":\"ready\"}"
                      : "{\"status\":\"not ready\",\"reason\":\"shutting down\"}";
  } else if (path == "/metrics") {
    std::vector<const MetricsRegistry *> regs = {&metrics_};
    if (current_)
      for (auto &w : current_->workers)
        regs.push_back(&w->metrics());
    for (auto &g : retiring_)
      for (auto &w : g->workers)
        regs.push_back(&w->metrics());
    resp.content_type = "text/plain; version=0.0.4";
    resp.body = render_prometheus(regs, &retired_metrics_);
  } else {
    resp.status = 404;
    resp.body = "{\"error\":\"not found: try /healthz, /readyz or /metrics\"}";
  }
  r.respond(std::move(resp));
}

int Engine::run() {
  std::shared_ptr<const Setup> setup;
  std::vector<std::string> errors;
  if (!load_setup(opts_, &catalog_, &setup, &errors)) {
    for (const auto &e : errors)
      log_->log(LogLevel::Error, kScope, e);
    log_->logf(LogLevel::Error, kScope, "%zu configuration error%s; not starting", errors.size(),
               errors.size() == 1 ? "" : "s");
    return 1;
  }
  const config::Config *cfg = setup->config.get();
  if (opts_.log_level) {
    log_->set_level(*opts_.log_level);
  } else {
    LogLevel lvl;
    if (parse_log_level(cfg->service.get_string("log_level"), &lvl)) log_->set_level(lvl);
  }
  dead_letter_ = make_dead_letter(*cfg, log_);
  warn_disk_space(*cfg, log_);

  auto signal_handle = [this](int signum, void (*cb)(uv_signal_t *, int)) {
    auto *s = new uv_signal_t;
    uv_signal_init(&loop_, s);
    s->data = this;
    uv_signal_start(s, cb, signum);
    return UvHandle<uv_signal_t>(s);
  };
  sigterm_ = signal_handle(SIGTERM,
                           [](uv_signal_t *s, int) { static_cast<Engine *>(s->data)->shutdown(); });
  sigint_ = signal_handle(SIGINT,
                          [](uv_signal_t *s, int) { static_cast<Engine *>(s->data)->shutdown(); });
  sighup_ =
      signal_handle(SIGHUP, [](uv_signal_t *s, int) { static_cast<Engine *>(s->data)->reload(); });
  auto *a = new uv_async_t;
  uv_async_init(&loop_, a, [](uv_async_t *h) { static_cast<Engine *>(h->data)->reap(); });
  a->data = this;
  wake_ = UvHandle<uv_async_t>(a);
  watch_debounce_.init(&loop_);
  drain_timer_.init(&loop_);

  if (!start_admin(*cfg)) return 1;
  std::string why;
  if (!start_generation(setup, &why)) {
    log_->logf(LogLevel::Error, kScope, "%s; not starting", why.c_str());
    shutting_down_ = true;
    reap();
    uv_run(&loop_, UV_RUN_DEFAULT);
    return 1;
  }
  arm_config_watch(*setup);
  log_->logf(LogLevel::Info, kScope, "ingestd started: %zu workers, config %s",
             current_->workers.size(), opts_.config_path.c_str());
  notify_.ready();  // systemd (issue 9): READY=1, watchdog keep-alives
  uv_run(&loop_, UV_RUN_DEFAULT);
  log_->log(LogLevel::Info, kScope, "stopped");
  return 0;
}

}  // namespace ingestd
