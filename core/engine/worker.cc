// Worker thread: loop setup, request dispatch, graceful retirement.
#include "engine/worker.h"

#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <future>

namespace ingestd {

http::ServerLimits listener_limits(const config::Section &l) {
  const auto &o = l.options;
  http::ServerLimits lim;
  lim.max_body = static_cast<size_t>(o.get_size("max_body"));
  lim.max_body_decompressed = static_cast<size_t>(o.get_size("max_body_decompressed"));
  lim.max_header = static_cast<size_t>(o.get_size("max_header"));
  lim.header_timeout_ms = static_cast<uint64_t>(o.get_duration_ms("header_timeout"));
  lim.body_timeout_ms = static_cast<uint64_t>(o.get_duration_ms("body_timeout"));
  lim.idle_timeout_ms = static_cast<uint64_t>(o.get_duration_ms("idle_timeout"));
  lim.max_connections = static_cast<size_t>(o.get_int("max_connections"));
  lim.trusted_proxies = o.get_list("trusted_proxies");
  lim.content_types = o.get_list("content_types");
  lim.api_gateway_answers = o.get_string("responses") == "api-gateway";
  lim.defer_decoding = true;  // HttpIngest::handle decodes once it takes the request
  return lim;
}

Worker::Worker(Options opts)
    : opts_(std::move(opts)),
      scope_("worker " + std::to_string(opts_.index) + "." + std::to_string(opts_.generation)) {}

Worker::~Worker() {
  if (thread_.joinable()) {
    retire(0);
    join();
  }
}

bool Worker::start() {
  std::promise<bool> ready;
  auto fut = ready.get_future();
  thread_ = std::thread([this, &ready] { run(&ready); });
  return fut.get();
}

void Worker::join() {
  if (thread_.joinable()) thread_.join();
}

void Worker::retire(uint64_t timeout_ms, bool hand_over) {
  std::lock_guard lock(mu_);
  if (retire_requested_) return;
  retire_requested_ = true;
  retire_timeout_ms_ = timeout_ms;
  hand_over_ = hand_over;
  if (wake_open_) uv_async_send(wake_.get());
}

bool Worker::setup() {
  auto *a = new uv_async_t;
  uv_async_init(&loop_, a, [](uv_async_t *h) { static_cast<Worker *>(h->data)->on_wake(); });
  a->data = this;
  wake_ = UvHandle<uv_async_t>(a);
  {
    std::lock_guard lock(mu_);
    wake_open_ = true;
  }
  retire_timer_.init(&loop_);

  PipelineEnv env;
  env.loop = &loop_;
  env.log = opts_.log;
  env.metrics = &metrics_;
  env.dead_letter = opts_.dead_letter;
  env.draining = opts_.draining;
  env.worker = opts_.index;
  env.worker_count = opts_.worker_count;
  env.generation = opts_.generation;
  pipeline_ = std::make_unique<Pipeline>(opts_.setup, env);
  if (!pipeline_->init() || !pipeline_->start()) {
    opts_.log->log(LogLevel::Error, scope_, "pipeline failed to start");
    return false;
  }
  requests_ = metrics_.counter("ingestd_worker_requests_total", "Requests answered by the worker",
                               {{"worker", std::to_string(opts_.index)}});
  for (const auto &l : opts_.setup->config->listeners) {
    auto fd = opts_.listen_fds.find(l.name);
    if (fd == opts_.listen_fds.end()) continue;
    std::string name = l.name;
    Pipeline *p = pipeline_.get();
    Counter *requests = requests_;
    http::ServerObserver obs;
    obs.on_response = [p, name](const http::Request *req, int status, size_t bytes_in,
                                uint64_t latency_ms) {
      p->observe(name, req, status, bytes_in, latency_ms);
    };
    auto limits = listener_limits(l);
    if (auto tls = opts_.setup->listener_tls.find(name); tls != opts_.setup->listener_tls.end()) {
      limits.tls = tls->second;
      obs.on_tls_error = [this, name](std::string_view kind, std::string_view detail) {
        tls_error(name, kind, detail);
      };
    }
    auto server = std::make_unique<http::Server>(
        &loop_, std::move(limits),
        [p, name, requests](http::Request &req, http::Responder r) {
          requests->add();
          p->handle(name, req, std::move(r));
        },
        std::move(obs));
    int rc = server->adopt(fd->second);
    if (rc != 0) {
      opts_.log->logf(LogLevel::Error, scope_, "listener %s: cannot accept: %s", name.c_str(),
                      uv_strerror(rc));
      return false;
    }
    servers_[name] = std::move(server);
  }
  return true;
}

// Scanners and misconfigured clients reach public ports all day: counted
// always, logged at most once a minute per listener with the last reason.
void Worker::tls_error(const std::string &listener, std::string_view kind,
                       std::string_view detail) {
  auto &c = tls_errors_[std::string(listener) + '\0' + std::string(kind)];
  if (!c) {
    c = metrics_.counter("ingestd_tls_handshake_errors_total",
                         "TLS connections closed without a usable session, by reason",
                         {{"listener", listener}, {"reason", std::string(kind)}});
  }
  c->add();
  uint64_t now = uv_now(&loop_);
  auto &last = tls_error_logged_[listener];
  if (last != 0 && now - last < 60000) return;
  last = now;
  opts_.log->logf(LogLevel::Info, scope_, "listener %s: TLS connection refused (%.*s): %.*s",
                  listener.c_str(), static_cast<int>(kind.size()), kind.data(),
                  static_cast<int>(detail.size()), detail.data());
}

void Worker::run(std::promise<bool> *ready) {
  // `top -H` and perf show which worker is busy.
  char name[16];
  std::snprintf(name, sizeof name, "ingestd-w%d", opts_.index);
  pthread_setname_np(pthread_self(), name);
  if (opts_.cpu_affinity) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores > 0) {
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(static_cast<int>(opts_.index % cores), &set);
      int rc = pthread_setaffinity_np(pthread_self(), sizeof set, &set);
      if (rc != 0) {
        opts_.log->logf(LogLevel::Warn, scope_, "cpu_affinity: cannot pin to CPU %ld: %s",
                        opts_.index % cores, std::strerror(rc));
      }
    }
  }
  uv_loop_init(&loop_);
  bool ok = setup();
  ready->set_value(ok);  // `ready` is gone after this line
  if (!ok) {
    finish();
  }
  uv_run(&loop_, UV_RUN_DEFAULT);
  // Nothing is active any more: free what we own (their close callbacks run
  // in the next loop turn), then close what a plugin may have left.
  servers_.clear();
  pipeline_.reset();
  retire_timer_ = Timer();
  {
    std::lock_guard lock(mu_);
    wake_open_ = false;
  }
  wake_.reset();
  uv_run(&loop_, UV_RUN_DEFAULT);
  uv_walk(
      &loop_,
      [](uv_handle_t *h, void *) {
        if (!uv_is_closing(h)) uv_close(h, nullptr);
      },
      nullptr);
  uv_run(&loop_, UV_RUN_DEFAULT);
  uv_loop_close(&loop_);
  exited_.store(true, std::memory_order_release);
  if (opts_.on_exit) opts_.on_exit();
}

void Worker::adopt(std::vector<HandedRecord> records) {
  std::lock_guard lock(mu_);
  for (auto &r : records)
    inbox_.push_back(std::move(r));
  if (wake_open_) uv_async_send(wake_.get());
}

void Worker::on_wake() {
  bool retire;
  uint64_t timeout;
  std::vector<HandedRecord> inbox;
  {
    std::lock_guard lock(mu_);
    retire = retire_requested_;
    timeout = retire_timeout_ms_;
    inbox.swap(inbox_);
  }
  if (!inbox.empty()) {
    size_t adopted = 0;
    for (auto &r : inbox) {
      if (pipeline_ && !finished_ && pipeline_->adopt(std::move(r))) ++adopted;
    }
    if (adopted < inbox.size()) {
      lost_.fetch_add(inbox.size() - adopted, std::memory_order_relaxed);
      opts_.log->logf(LogLevel::Error, scope_,
                      "%zu records handed over by the previous generation are lost: their "
                      "output is not in this configuration",
                      inbox.size() - adopted);
    }
  }
  if (retire && !retiring_) begin_retire(timeout);
}

void Worker::begin_retire(uint64_t timeout_ms) {
  retiring_ = true;
  retire_deadline_ = uv_now(&loop_) + timeout_ms;
  servers_open_ = servers_.size();
  for (auto &[name, s] : servers_) {
    s->close(timeout_ms, [this] {
      if (servers_open_ > 0) --servers_open_;
      check_retired();
    });
  }
  if (pipeline_) pipeline_->drain();
  retire_timer_.start(10, 10, [this] { check_retired(); });
  check_retired();
}

void Worker::check_retired() {
  if (finished_) return;
  bool done = servers_open_ == 0 && (!pipeline_ || pipeline_->idle());
  if (done || uv_now(&loop_) >= retire_deadline_) finish();
}

void Worker::finish() {
  if (finished_) return;
  finished_ = true;
  retire_timer_.stop();
  bool hand_over;
  {
    std::lock_guard lock(mu_);
    hand_over = hand_over_;
  }
  if (pipeline_) {
    lost_.fetch_add(pipeline_->stop(hand_over ? &handover_ : nullptr), std::memory_order_relaxed);
  }
  // Servers must be closed before they are destroyed; force any left.
  for (auto &[name, s] : servers_)
    s->close(0, [] {});
  // Closing the async handle lets uv_run return once the servers are closed;
  // run() frees the rest.
  {
    std::lock_guard lock(mu_);
    wake_open_ = false;
  }
  wake_.reset();
}

}  // namespace ingestd
