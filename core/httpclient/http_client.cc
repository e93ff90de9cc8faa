// libcurl multi on a uv loop: curl tells us which sockets to watch
// (on_socket) and when to wake it (on_timer); uv tells curl what is ready
// (curl_multi_socket_action). Finished calls are delivered from the loop,
// never from inside a curl callback or from start().
#include "httpclient/http_client.h"
#include "common/text.h"

#include <cerrno>
#include <cstring>

namespace ingestd {

using common::iequals;
using common::trim;
namespace {

struct PollCtx {
  uv_poll_t poll;  // first: the uv handle pointer is the context pointer
  curl_socket_t fd;
  HttpClient *client;
};

uint64_t mono_ms() {
  return uv_hrtime() / 1000000u;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char &c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

bool is_http_url(std::string_view url) {
  auto starts = [&](std::string_view p) {
    return url.size() > p.size() && iequals(url.substr(0, p.size()), p);
  };
  return starts("http://") || starts("https://");
}

}  // namespace

const char *error_kind_name(HttpErrorKind k) {
  switch (k) {
    case HttpErrorKind::None:
      return "none";
    case HttpErrorKind::Connect:
      return "connect";
    case HttpErrorKind::Dns:
      return "dns";
    case HttpErrorKind::Timeout:
      return "timeout";
    case HttpErrorKind::Tls:
      return "tls";
    case HttpErrorKind::TooLarge:
      return "too_large";
    case HttpErrorKind::Cancelled:
      return "cancelled";
    case HttpErrorKind::Prepare:
      return "credentials";
    case HttpErrorKind::Other:
      return "other";
  }
  return "other";
}

const std::string *HttpResponse::header(std::string_view lower_name) const {
  for (const auto &[k, v] : headers)
    if (k == lower_name) return &v;
  return nullptr;
}

// ---- HttpCallGroup

HttpCallGroup::~HttpCallGroup() {
  closed_ = true;
  if (!calls_.empty() && client_) client_->cancel_group(this);
}

void HttpCallGroup::close() {
  closed_ = true;
  if (!calls_.empty() && client_) client_->cancel_group(this);
}

// ---- HttpCall

HttpCall::~HttpCall() = default;

size_t HttpCall::on_body(char *p, size_t size, size_t n, void *userp) {
  auto *c = static_cast<HttpCall *>(userp);
  size_t len = size * n;
  if (c->resp_.body.size() + len > c->client_->opts_.max_response_bytes) {
    c->too_large_ = true;
    return 0;  // CURLE_WRITE_ERROR
  }
  c->resp_.body.append(p, len);
  return len;
}

size_t HttpCall::on_header(char *p, size_t size, size_t n, void *userp) {
  auto *c = static_cast<HttpCall *>(userp);
  size_t len = size * n;
  std::string_view line(p, len);
  if (line.size() >= 5 && line.substr(0, 5) == "HTTP/") {
    c->resp_.headers.clear();  // a new response (after 100 Continue, say)
    return len;
  }
  auto colon = line.find(':');
  if (colon == std::string_view::npos) return len;  // blank line or garbage
  c->resp_.headers.emplace_back(lower(trim(line.substr(0, colon))),
                                std::string(trim(line.substr(colon + 1))));
  return len;
}

// ---- HttpClient

bool HttpClient::global_init() {
  return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
}

void HttpClient::global_cleanup() {
  curl_global_cleanup();
}

HttpClient::HttpClient(uv_loop_t *loop, const Logger *log, MetricsRegistry *metrics, Options opts)
    : loop_(loop), log_(log), metrics_(metrics), opts_(opts), multi_(curl_multi_init()) {
  timer_.init(loop_);
  defer_.init(loop_);
  CURLM *m = multi_.get();
  curl_multi_setopt(m, CURLMOPT_SOCKETFUNCTION, &HttpClient::on_socket);
  curl_multi_setopt(m, CURLMOPT_SOCKETDATA, this);
  curl_multi_setopt(m, CURLMOPT_TIMERFUNCTION, &HttpClient::on_timer);
  curl_multi_setopt(m, CURLMOPT_TIMERDATA, this);
  curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, opts_.max_host_connections);
  curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, opts_.max_connections_cached);
  curl_multi_setopt(m, CURLMOPT_PIPELINING, static_cast<long>(CURLPIPE_NOTHING));
  if (metrics_) {
    requests_ = metrics_->counter("ingestd_http_client_requests_total",
                                  "Outgoing HTTP calls started by plugins and the AWS chain");
    latency_ = metrics_->histogram("ingestd_http_client_request_duration_seconds",
                                   "Time from starting an outgoing HTTP call to its callback");
  }
}

HttpClient::~HttpClient() {
  destroying_ = true;
  while (!calls_.empty()) {
    HttpCall *c = calls_.front().get();
    detach(c);
    if (c->state_ != HttpCall::State::Finished) {
      c->state_ = HttpCall::State::Finished;
      c->resp_.error = "cancelled";
      c->kind_ = HttpErrorKind::Cancelled;
    }
    deliver(c);
  }
  multi_.reset();  // may report sockets to remove through on_socket
  for (uv_poll_t *p : std::vector<uv_poll_t *>(polls_.begin(), polls_.end()))
    close_poll(p);
}

HttpCall *HttpClient::start(HttpRequest req, Callback cb, HttpCallGroup *group, std::string *why) {
  auto refuse = [&](const char *reason) -> HttpCall * {
    if (why) *why = reason;
    return nullptr;
  };
  if (destroying_) return refuse("the HTTP client is shutting down");
  if (group && group->closed_) return refuse("the instance is stopped");
  if (req.method.empty()) return refuse("no method");
  if (!is_http_url(req.url)) return refuse("the URL must start with http:// or https://");
  if (!cb) return refuse("no callback");
  if (!multi_) return refuse("curl multi handle could not be created");
  for (const auto &[k, v] : req.headers) {
    if (k.empty() || k.find_first_of(":\r\n") != std::string::npos ||
        v.find_first_of("\r\n") != std::string::npos)
      return refuse("invalid header name or value");
  }
  if (req.timeout_ms == 0) req.timeout_ms = 30000;

  auto owned = std::unique_ptr<HttpCall>(new HttpCall());
  HttpCall *c = owned.get();
  c->client_ = this;
  c->req_ = std::move(req);
  c->cb_ = std::move(cb);
  c->started_ms_ = mono_ms();
  calls_.push_front(std::move(owned));
  c->self_ = calls_.begin();
  if (group) {
    group->client_ = this;
    group->calls_.push_front(c);
    c->group_ = group;
    c->in_group_ = group->calls_.begin();
  }
  if (requests_) requests_->add();

  if (!c->req_.prepare) {
    launch(c);
    return c;
  }
  // The call may wait here (credentials). `ready` may run inside prepare().
  auto ready_ran = std::make_shared<bool>(false);
  auto prepare = std::move(c->req_.prepare);
  auto abandon = prepare(c->req_, [this, c, ready_ran](std::string error) {
    *ready_ran = true;
    c->abandon_prepare_ = nullptr;
    if (c->state_ != HttpCall::State::Preparing) return;  // contract broken: ignore
    if (!error.empty()) {
      fail_later(c, std::move(error), HttpErrorKind::Prepare);
    } else {
      launch(c);
    }
  });
  if (!*ready_ran) c->abandon_prepare_ = std::move(abandon);
  return c;
}

void HttpClient::launch(HttpCall *c) {
  const HttpRequest &r = c->req_;
  uint64_t spent = mono_ms() - c->started_ms_;
  if (spent >= r.timeout_ms) {
    fail_later(c, "timeout after " + std::to_string(r.timeout_ms) + " ms", HttpErrorKind::Timeout);
    return;
  }
  CURL *e = curl_easy_init();
  if (!e) {
    fail_later(c, "curl_easy_init failed", HttpErrorKind::Other);
    return;
  }
  c->easy_.reset(e);
  c->state_ = HttpCall::State::Running;
  long remaining = static_cast<long>(r.timeout_ms - spent);
  curl_easy_setopt(e, CURLOPT_PRIVATE, c);
  curl_easy_setopt(e, CURLOPT_URL, r.url.c_str());
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1));
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, remaining);
  long connect = r.connect_timeout_ms ? static_cast<long>(r.connect_timeout_ms) : remaining;
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, std::min(connect, remaining));
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf_);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &HttpCall::on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &HttpCall::on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, c);
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(e, CURLOPT_USERAGENT, "ingestd");
  if (!r.ca_file.empty()) curl_easy_setopt(e, CURLOPT_CAINFO, r.ca_file.c_str());
  if (!r.client_cert.empty()) curl_easy_setopt(e, CURLOPT_SSLCERT, r.client_cert.c_str());
  if (!r.client_key.empty()) curl_easy_setopt(e, CURLOPT_SSLKEY, r.client_key.c_str());
  if (r.insecure) {
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
  }

  std::string_view payload = r.payload();
  bool with_body = !payload.empty();
  if (r.method == "GET" && !with_body) {
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
  } else if (r.method == "HEAD") {
    curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
  } else {
    if (r.method != "POST") curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r.method.c_str());
    if (with_body || r.method == "POST" || r.method == "PUT" || r.method == "PATCH") {
      // The body lives in the call until it is freed: no copy by curl.
      curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(payload.size()));
      curl_easy_setopt(e, CURLOPT_POSTFIELDS, payload.data());
    }
  }

  curl_slist *list = nullptr;
  bool has_content_type = false;
  auto append = [&](const std::string &line) {
    curl_slist *n = curl_slist_append(list, line.c_str());
    if (n) list = n;
  };
  for (const auto &[k, v] : r.headers) {
    if (iequals(k, "content-type")) has_content_type = true;
    // "Name;" sends a header with an empty value; "Name:" would remove it.
    append(v.empty() ? k + ";" : k + ": " + v);
  }
  // No default form content type nor "Expect: 100-continue" round trip.
  if (!has_content_type) append("Content-Type:");
  append("Expect:");
  c->header_list_.reset(list);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, list);

  CURLMcode mc = curl_multi_add_handle(multi_.get(), e);
  if (mc != CURLM_OK) {
    c->easy_.reset();
    c->state_ = HttpCall::State::Preparing;  // so fail_later accepts it
    fail_later(c, std::string("curl: ") + curl_multi_strerror(mc), HttpErrorKind::Other);
  }
}

void HttpClient::fail_later(HttpCall *c, std::string error, HttpErrorKind kind) {
  c->state_ = HttpCall::State::Finished;
  c->resp_.status = 0;
  c->resp_.error = std::move(error);
  c->kind_ = kind;
  if (!c->deferred_) {
    c->deferred_ = true;
    deferred_.push_back(c);
  }
  if (!destroying_ && !defer_.active()) defer_.start(0, 0, [this] { run_deferred(); });
}

void HttpClient::run_deferred() {
  // Only those queued now: a callback that fails again at once waits a turn.
  size_t n = deferred_.size();
  while (n-- > 0 && !deferred_.empty()) {
    HttpCall *c = deferred_.front();
    deliver(c);  // removes it from deferred_
  }
}

void HttpClient::detach(HttpCall *c) {
  if (c->state_ == HttpCall::State::Running && c->easy_) {
    curl_multi_remove_handle(multi_.get(), c->easy_.get());
  }
  if (c->state_ == HttpCall::State::Preparing && c->abandon_prepare_) {
    auto f = std::move(c->abandon_prepare_);
    c->abandon_prepare_ = nullptr;
    f();
  }
}

void HttpClient::cancel(HttpCall *c) {
  if (!c || c->state_ == HttpCall::State::Finished) return;  // its result is on its way
  detach(c);
  fail_later(c, "cancelled", HttpErrorKind::Cancelled);
}

void HttpClient::cancel_group(HttpCallGroup *g) {
  while (!g->calls_.empty()) {
    HttpCall *c = g->calls_.front();
    if (c->state_ != HttpCall::State::Finished) {
      detach(c);
      c->state_ = HttpCall::State::Finished;
      c->resp_.status = 0;
      c->resp_.error = "cancelled";
      c->kind_ = HttpErrorKind::Cancelled;
    }
    deliver(c);
  }
}

void HttpClient::count(const HttpResponse &r, HttpErrorKind kind) {
  if (!metrics_) return;
  if (latency_) latency_->observe(static_cast<double>(r.elapsed_ms));
  if (kind == HttpErrorKind::None) {
    int cls = r.status / 100;
    Counter *&c = responses_[cls];
    if (!c)
      c = metrics_->counter("ingestd_http_client_responses_total",
                            "Responses to outgoing HTTP calls, by status class",
                            {{"class", std::to_string(cls) + "xx"}});
    if (c) c->add();
    return;
  }
  Counter *&c = errors_[kind];
  if (!c)
    c = metrics_->counter("ingestd_http_client_errors_total",
                          "Outgoing HTTP calls that got no response, by reason",
                          {{"kind", error_kind_name(kind)}});
  if (c) c->add();
}

void HttpClient::deliver(HttpCall *c) {
  if (c->deferred_) {
    deferred_.remove(c);
    c->deferred_ = false;
  }
  if (c->group_) {
    c->group_->calls_.erase(c->in_group_);
    if (c->group_->calls_.empty()) c->group_->client_ = nullptr;
    c->group_ = nullptr;
  }
  std::unique_ptr<HttpCall> owned = std::move(*c->self_);
  calls_.erase(c->self_);
  c->resp_.elapsed_ms = mono_ms() - c->started_ms_;
  count(c->resp_, c->kind_);
  auto cb = std::move(c->cb_);
  try {
    cb(c->resp_);
  } catch (const std::exception &ex) {
    if (log_) log_->logf(LogLevel::Error, "http client", "callback threw: %s", ex.what());
  } catch (...) {
    if (log_) log_->log(LogLevel::Error, "http client", "callback threw");
  }
  // `owned` frees the easy handle (already out of the multi handle).
}

void HttpClient::finish_transfer(HttpCall *c, CURLcode code) {
  CURL *e = c->easy_.get();
  curl_multi_remove_handle(multi_.get(), e);
  HttpResponse &r = c->resp_;
  if (code == CURLE_OK) {
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    r.status = static_cast<int>(status);
    c->kind_ = HttpErrorKind::None;
  } else {
    long os_errno = 0;
    curl_easy_getinfo(e, CURLINFO_OS_ERRNO, &os_errno);
    std::string detail = c->errbuf_[0] ? c->errbuf_ : curl_easy_strerror(code);
    r.status = 0;
    r.body.clear();
    r.headers.clear();
    switch (code) {
      case CURLE_COULDNT_CONNECT:
        c->kind_ = HttpErrorKind::Connect;
        r.error = os_errno == ECONNREFUSED ? "connection refused" : "connect: " + detail;
        break;
      case CURLE_COULDNT_RESOLVE_HOST:
      case CURLE_COULDNT_RESOLVE_PROXY:
        c->kind_ = HttpErrorKind::Dns;
        r.error = "dns: " + detail;
        break;
      case CURLE_OPERATION_TIMEDOUT:
        c->kind_ = HttpErrorKind::Timeout;
        r.error = "timeout after " + std::to_string(c->req_.timeout_ms) + " ms";
        break;
      case CURLE_SSL_CONNECT_ERROR:
      case CURLE_PEER_FAILED_VERIFICATION:
      case CURLE_SSL_CERTPROBLEM:
      case CURLE_SSL_CIPHER:
      case CURLE_SSL_CACERT_BADFILE:
      case CURLE_SSL_ENGINE_NOTFOUND:
      case CURLE_SSL_ENGINE_SETFAILED:
      case CURLE_SSL_ISSUER_ERROR:
      case CURLE_SSL_CRL_BADFILE:
      case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
      case CURLE_SSL_INVALIDCERTSTATUS:
      case CURLE_SSL_SHUTDOWN_FAILED:
        c->kind_ = HttpErrorKind::Tls;
        r.error = "tls: " + detail;
        break;
      case CURLE_WRITE_ERROR:
        if (c->too_large_) {
          c->kind_ = HttpErrorKind::TooLarge;
          r.error = "response body larger than " + std::to_string(opts_.max_response_bytes >> 20) +
                    " MiB";
          break;
        }
        [[fallthrough]];
      default:
        c->kind_ = HttpErrorKind::Other;
        if (code == CURLE_GOT_NOTHING) {
          r.error = "empty reply from server";
        } else if (code == CURLE_RECV_ERROR || code == CURLE_SEND_ERROR) {
          r.error = "connection reset: " + detail;
        } else {
          r.error = detail;
        }
    }
  }
  c->state_ = HttpCall::State::Finished;
  if (!c->deferred_) {
    c->deferred_ = true;
    deferred_.push_back(c);
  }
}

void HttpClient::check_done() {
  CURLMsg *msg;
  int left = 0;
  while ((msg = curl_multi_info_read(multi_.get(), &left))) {
    if (msg->msg != CURLMSG_DONE) continue;
    void *priv = nullptr;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
    CURLcode code = msg->data.result;
    auto *c = static_cast<HttpCall *>(priv);
    if (c && c->state_ == HttpCall::State::Running) finish_transfer(c, code);
  }
  run_deferred();
}

int HttpClient::on_socket(CURL *, curl_socket_t s, int what, void *userp, void *socketp) {
  auto *self = static_cast<HttpClient *>(userp);
  auto *ctx = static_cast<PollCtx *>(socketp);
  if (what == CURL_POLL_REMOVE) {
    if (ctx) {
      self->close_poll(&ctx->poll);
      if (self->multi_) curl_multi_assign(self->multi_.get(), s, nullptr);
    }
    return 0;
  }
  if (!ctx) {
    ctx = new PollCtx{};
    if (uv_poll_init_socket(self->loop_, &ctx->poll, s) != 0) {
      delete ctx;
      return -1;
    }
    ctx->fd = s;
    ctx->client = self;
    ctx->poll.data = ctx;
    self->polls_.insert(&ctx->poll);
    curl_multi_assign(self->multi_.get(), s, ctx);
  }
  int events = 0;
  if (what & CURL_POLL_IN) events |= UV_READABLE;
  if (what & CURL_POLL_OUT) events |= UV_WRITABLE;
  uv_poll_start(&ctx->poll, events, &HttpClient::on_poll);
  return 0;
}

void HttpClient::close_poll(uv_poll_t *p) {
  polls_.erase(p);
  uv_poll_stop(p);
  uv_close(reinterpret_cast<uv_handle_t *>(p),
           [](uv_handle_t *h) { delete reinterpret_cast<PollCtx *>(h); });
}

void HttpClient::on_poll(uv_poll_t *h, int status, int events) {
  auto *ctx = reinterpret_cast<PollCtx *>(h);
  HttpClient *self = ctx->client;
  int flags = 0;
  if (status < 0) {
    flags = CURL_CSELECT_ERR;
  } else {
    if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
  }
  int running = 0;
  curl_multi_socket_action(self->multi_.get(), ctx->fd, flags, &running);
  self->check_done();  // `ctx` may be closing now; not touched again
}

int HttpClient::on_timer(CURLM *, long timeout_ms, void *userp) {
  auto *self = static_cast<HttpClient *>(userp);
  if (timeout_ms < 0) {
    self->timer_.stop();
    return 0;
  }
  // Never call curl back from inside this callback: a 0 ms timer does it.
  self->timer_.start(static_cast<uint64_t>(timeout_ms), 0, [self] {
    int running = 0;
    curl_multi_socket_action(self->multi_.get(), CURL_SOCKET_TIMEOUT, 0, &running);
    self->check_done();
  });
  return 0;
}

}  // namespace ingestd
