// Async HTTP/1.1 client on a worker's uv loop: libcurl's multi interface
// driven by uv_poll (one per socket) and one uv_timer, keep-alive connections
// shared by every user of the worker. No call here blocks the loop.
//
// Contract of a call: its callback runs exactly once, on the loop thread, and
// never inside start() (failures found at once are delivered from the loop).
// A call may wait before it is sent (HttpHttpRequest::prepare: SigV4 signing that
// needs credentials first). Calls belong to a HttpCallGroup (one per plugin
// instance): closing the group cancels what is left, synchronously.
#pragma once

#include <curl/curl.h>
#include <uv.h>

#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include "util/log.h"
#include "util/metrics.h"
#include "util/uv_handle.h"

namespace ingestd {

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
  std::string method = "GET";
  std::string url;  // absolute http:// or https://
  HttpHeaders headers;
  std::string body;
  // A body the caller keeps valid and unchanged until the callback has run,
  // sent instead of `body` (no copy of a large request) when not empty.
  std::string_view lent_body;
  std::string_view payload() const {
    return lent_body.empty() ? std::string_view(body) : lent_body;
  }
  uint64_t timeout_ms = 30000;      // whole exchange, from start(); 0 means 30 s
  uint64_t connect_timeout_ms = 0;  // 0: the whole timeout
  std::string ca_file, client_cert, client_key;
  bool insecure = false;
  // Runs before the request is sent and may wait. It must call `ready`
  // exactly once, later or at once: an empty error sends the request (which
  // it may have changed, e.g. signed), an error fails the call with it. It
  // returns what abandons the wait if the call is cancelled first (may be
  // empty); after `ready` ran, that function is never called.
  using Ready = std::function<void(std::string error)>;
  std::function<std::function<void()>(HttpRequest &req, Ready ready)> prepare;
};

struct HttpResponse {
  int status = 0;     // 0 when no response arrived
  std::string error;  // empty with a response; else a short reason
  std::string body;
  HttpHeaders headers;  // names lower-case, values trimmed, in arrival order
  uint64_t elapsed_ms = 0;
  const std::string *header(std::string_view lower_name) const;
};

// Why a call failed, for metrics and tests.
enum class HttpErrorKind { None, Connect, Dns, Timeout, Tls, TooLarge, Cancelled, Prepare, Other };
const char *error_kind_name(HttpErrorKind k);

class HttpClient;
class HttpCall;

// The calls of one owner (a plugin instance, a credentials chain). Not movable:
// calls point at it.
class HttpCallGroup {
 public:
  HttpCallGroup() = default;
  HttpCallGroup(const HttpCallGroup &) = delete;
  HttpCallGroup &operator=(const HttpCallGroup &) = delete;
  ~HttpCallGroup();
  // Cancels every call left (their callbacks run now, with "cancelled") and
  // refuses new ones from then on.
  void close();
  bool closed() const { return closed_; }
  size_t size() const { return calls_.size(); }

 private:
  friend class HttpClient;
  std::list<HttpCall *> calls_;
  HttpClient *client_ = nullptr;
  bool closed_ = false;
};

class HttpClient {
 public:
  struct Options {
    long max_host_connections = 8;
    long max_connections_cached = 64;
    size_t max_response_bytes = 64u << 20;
  };
  using Callback = std::function<void(const HttpResponse &)>;

  // `metrics` may be null. curl_global_init must have run (main does it; see
  // global_init()).
  HttpClient(uv_loop_t *loop, const Logger *log, MetricsRegistry *metrics, Options opts);
  HttpClient(uv_loop_t *loop, const Logger *log, MetricsRegistry *metrics)
      : HttpClient(loop, log, metrics, Options{}) {}
  ~HttpClient();  // cancels what is left (callbacks run), then closes handles
  HttpClient(const HttpClient &) = delete;
  HttpClient &operator=(const HttpClient &) = delete;

  // Starts a call. Null only when `group` is closed or the request is
  // invalid (no method, not an http(s) URL); `why` then says so and the
  // callback never runs.
  HttpCall *start(HttpRequest req, Callback cb, HttpCallGroup *group, std::string *why = nullptr);
  // The callback runs from the loop soon after, with error "cancelled".
  void cancel(HttpCall *call);
  // Cancels every call of `group` now: callbacks run before this returns.
  void cancel_group(HttpCallGroup *group);

  size_t active_calls() const { return calls_.size(); }
  uv_loop_t *loop() const { return loop_; }
  const Logger *logger() const { return log_; }

  // Once per process, before any thread starts (curl_global_init is not
  // thread-safe). main() calls it; tests call it in their main.
  static bool global_init();
  // At exit, after every client is gone.
  static void global_cleanup();

 private:
  friend class HttpCall;
  friend class HttpCallGroup;
  struct MultiDeleter {
    void operator()(CURLM *m) const { curl_multi_cleanup(m); }
  };

  void launch(HttpCall *c);
  void fail_later(HttpCall *c, std::string error, HttpErrorKind kind);
  void deliver(HttpCall *c);
  void run_deferred();
  void check_done();
  void finish_transfer(HttpCall *c, CURLcode code);
  void detach(HttpCall *c);  // out of curl and of the prepare wait, not delivered
  void count(const HttpResponse &r, HttpErrorKind kind);

  static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp);
  static int on_timer(CURLM *multi, long timeout_ms, void *userp);
  static void on_poll(uv_poll_t *h, int status, int events);
  void close_poll(uv_poll_t *p);

  uv_loop_t *loop_;
  const Logger *log_;
  MetricsRegistry *metrics_;
  Options opts_;
  std::unique_ptr<CURLM, MultiDeleter> multi_;
  Timer timer_;  // curl's timeout
  Timer defer_;  // delivers failures found at once and cancellations
  std::list<std::unique_ptr<HttpCall>> calls_;
  std::list<HttpCall *> deferred_;
  std::unordered_set<uv_poll_t *> polls_;
  bool destroying_ = false;
  // metrics
  Counter *requests_ = nullptr;
  Histogram *latency_ = nullptr;
  std::map<int, Counter *> responses_;  // by status class (2, 3, 4, 5)
  std::map<HttpErrorKind, Counter *> errors_;
};

// One request in flight (opaque to users; the ABI's ingestd_http_call_t).
class HttpCall {
 public:
  ~HttpCall();
  HttpCall(const HttpCall &) = delete;
  HttpCall &operator=(const HttpCall &) = delete;
  HttpClient *client() const { return client_; }

 private:
  friend class HttpClient;
  friend class HttpCallGroup;
  HttpCall() = default;
  struct EasyDeleter {
    void operator()(CURL *e) const { curl_easy_cleanup(e); }
  };
  struct SlistDeleter {
    void operator()(curl_slist *l) const { curl_slist_free_all(l); }
  };
  enum class State { Preparing, Running, Finished };

  static size_t on_body(char *p, size_t size, size_t n, void *userp);
  static size_t on_header(char *p, size_t size, size_t n, void *userp);

  HttpClient *client_ = nullptr;
  HttpCallGroup *group_ = nullptr;
  std::list<std::unique_ptr<HttpCall>>::iterator self_;
  std::list<HttpCall *>::iterator in_group_;
  State state_ = State::Preparing;
  bool deferred_ = false;
  bool too_large_ = false;
  HttpErrorKind kind_ = HttpErrorKind::None;
  HttpRequest req_;
  HttpClient::Callback cb_;
  HttpResponse resp_;
  uint64_t started_ms_ = 0;
  std::function<void()> abandon_prepare_;
  std::unique_ptr<CURL, EasyDeleter> easy_;
  std::unique_ptr<curl_slist, SlistDeleter> header_list_;
  char errbuf_[CURL_ERROR_SIZE] = {};
};

}  // namespace ingestd
