// HTTP ingest policy of one worker: which input serves a listener's path,
// API keys (401) and per-key rate limits (429), methods, load shedding before
// parsing, the body split into records for the input plugin, the fields the
// server sets, and every answer's text. Accepted records go to Routing.
#pragma once

#include <uv.h>

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "config/config.h"
#include "engine/api_keys.h"
#include "engine/routing.h"
#include "http/answers.h"
#include "http/server.h"
#include "util/metrics.h"

namespace ingestd {

// HTTP answers of one path (or of every unknown path of a listener).
struct PathMetrics {
  Labels labels;
  std::map<int, Counter *> by_status;  // filled on first use of a status
  Counter *bytes_in = nullptr;
  Histogram *latency = nullptr;
  void observe(MetricsRegistry *m, int status, size_t bytes, uint64_t latency_ms);
};

class HttpIngest {
 public:
  HttpIngest(uv_loop_t *loop, MetricsRegistry *metrics, int worker_count, Routing *routing,
             const std::atomic<bool> *draining = nullptr)
      : loop_(loop),
        metrics_(metrics),
        worker_count_(worker_count),
        routing_(routing),
        draining_(draining) {}
  HttpIngest(const HttpIngest &) = delete;
  HttpIngest &operator=(const HttpIngest &) = delete;

  void add_listener(const config::Section &listener, std::shared_ptr<const ApiKeys> keys);
  void add_input(InputRuntime *input, const std::string &listener, const std::string &path);

  // Answers one request on `listener`.
  void handle(const std::string &listener, http::Request &req, http::Responder responder);
  // Counts an answer (from the HTTP server's observer).
  void observe(const std::string &listener, const http::Request *req, int status, size_t bytes_in,
               uint64_t latency_ms);

 private:
  struct Path {
    InputRuntime *input = nullptr;
    PathMetrics http;
  };
  struct Listener {
    std::map<std::string, Path, std::less<>> paths;
    std::shared_ptr<const ApiKeys> keys;
    std::string key_header;
    std::string source_field;
    std::string client_address_field;
    std::string client_cert_field;
    double rate_limit = 0;  // records/s per key and worker
    double rate_burst = 0;
    std::map<std::string, TokenBucket, std::less<>> buckets;  // by key name
    PathMetrics other_paths;
    Counter *unauthorized = nullptr;
    Counter *rate_limited = nullptr;
    http::AnswerStyle style = http::AnswerStyle::kIngestd;
    std::string health_path;  // empty: none
  };

  // 401 checks; false when the request was answered.
  bool authenticate(Listener &l, http::Request &req, http::Responder &responder,
                    const std::string **source);
  // 429 checks; false when the request was answered.
  bool within_rate(Listener &l, const std::string &source, size_t records,
                   http::Responder &responder);

  uv_loop_t *loop_;
  MetricsRegistry *metrics_;
  int worker_count_;
  // A refusal in the listener's style: ingestd's `ours`, or API Gateway's.
  void refuse(const Listener &l, http::Refusal what, http::Response ours,
              http::Responder &responder);
  void answer_health(http::Request &req, http::Responder &responder);

  Routing *routing_;
  const std::atomic<bool> *draining_;
  std::map<std::string, Listener, std::less<>> listeners_;
  // The records of the request being handled; kept for its capacity (one
  // allocation less per request).
  std::vector<RecordPtr> accepted_;
};

}  // namespace ingestd
