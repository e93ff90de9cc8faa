// libuv transport for the HTTP server: listening socket, connections, timers.
// The protocol lives in connection_core.cc; this file moves bytes and owns
// handles. Every handle's memory is freed only in (or after) its close callback.
#include "http/server.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

#include "http/connection_core.h"
#include "http/tls_layer.h"

namespace ingestd::http {

namespace detail {

namespace {
constexpr int kBacklog = 511;  // nginx's default
}

class ServerImpl {
 public:
  ServerImpl(uv_loop_t *loop, ServerLimits limits, Handler handler, ServerObserver observer)
      : loop_(loop),
        config_(std::move(limits)),
        handler_(std::move(handler)),
        observer_(std::move(observer)) {}

  int listen(const std::string &host_port, bool reuse_port);
  int adopt(int fd);
  int local_port() const;
  void stop_accepting();
  void close(uint64_t deadline_ms, std::function<void()> done);
  void destroy();
  size_t connection_count() const { return connections_; }
  // A listener or deadline timer finished closing. May delete this.
  void handle_closed() {
    --open_handles_;
    after_close();
  }

 private:
  friend class Connection;
  int start_listening(uv_tcp_t *h, int rc);
  void accept();
  void reject();
  void force_close_all();
  void connection_closed(Connection *c);
  void after_close();  // may delete this; touch nothing after calling it

  uv_loop_t *loop_;
  CoreConfig config_;
  Handler handler_;
  ServerObserver observer_;
  Inflater inflater_;
  uv_tcp_t *listener_ = nullptr;  // heap: freed in its close callback
  uv_timer_t *deadline_ = nullptr;
  int open_handles_ = 0;  // listener and deadline timer, until their close callbacks
  Connection *head_ = nullptr;
  size_t connections_ = 0;
  bool closing_ = false;
  bool finished_ = false;
  bool destroyed_ = false;
  std::function<void()> done_;
};

// One accepted socket. Owned by itself (self_) from accept until its three
// handles have closed; Responders hold weak references.
class Connection final : public ConnectionIo, public std::enable_shared_from_this<Connection> {
 public:
  explicit Connection(ServerImpl &server)
      : server_(server), core_(server.config_, server.inflater_, *this) {
    tcp_.data = timer_.data = written_.data = write_req_.data = continue_req_.data =
        shutdown_req_.data = this;
  }

  void respond(uint64_t seq, Response &&r) {
    if (!closing_) core_.respond(seq, std::move(r));
  }

  // ConnectionIo
  int io_write(std::string_view data, bool response) override;
  void io_read(bool on) override;
  void io_timer(uint64_t timeout_ms) override;
  void arm_timer(uint64_t now);
  void io_linger() override;
  void io_close() override;
  uint64_t io_now() override { return uv_now(server_.loop_); }
  void io_dispatch(Request &request, uint64_t seq) override;
  void io_observe(const Request *request, int status, size_t bytes_in,
                  uint64_t latency_ms) override;

 private:
  friend class ServerImpl;
  void close();
  // Runs `f` and turns anything it throws into closing the connection: no
  // exception leaves a uv callback.
  template <class F>
  void guarded(F &&f) noexcept {
    try {
      f();
    } catch (...) {
      try {
        core_.abort();
      } catch (...) {
        close();
      }
    }
  }

  // TLS listeners: ciphertext in and out around the core (tls_layer.h).
  int tls_write(bool response);
  void tls_read(ssize_t nread);
  void tls_deliver();
  void tls_fail();
  void report_tls_timeout() {
    if (server_.destroyed_ || !server_.observer_.on_tls_error) return;
    try {
      server_.observer_.on_tls_error("timeout", "no TLS handshake within header_timeout");
    } catch (...) {
    }
  }
  void update_socket_reading();
  void defer(bool write_done, bool deliver);

  ServerImpl &server_;
  uv_tcp_t tcp_;
  uv_timer_t timer_;
  // Runs on the next loop turn what must not re-enter the core now: the
  // report of an answer written at once (uv_try_write), as a uv_write
  // callback would give it, and TLS plaintext left in the session when the
  // core starts reading again.
  uv_idle_t written_;
  bool write_done_due_ = false;
  bool deliver_due_ = false;
  uint64_t deadline_ms_ = 0;   // loop time the state machine's timeout ends; 0: none
  uint64_t timer_due_ms_ = 0;  // when the armed uv timer fires
  bool timer_armed_ = false;
  uv_write_t write_req_;
  uv_write_t continue_req_;
  uv_shutdown_t shutdown_req_;
  ConnectionCore core_;
  std::shared_ptr<Connection> self_;
  Connection *prev_ = nullptr, *next_ = nullptr;
  int open_handles_ = 0;
  bool closing_ = false;
  bool reading_ = false;         // the core wants bytes
  bool socket_reading_ = false;  // uv_read_start is on
  std::unique_ptr<TlsLayer> tls_;
  std::unique_ptr<char[]> cipher_in_;  // TLS: what the socket read
  std::string cipher_out_;             // TLS: what try_write could not take
  static constexpr size_t kCipherBufferSize = 16 << 10;
};

// One uv_write of ciphertext; owns its bytes until the callback.
struct TlsWrite {
  uv_write_t req;
  std::string bytes;
  bool response = false;
};

// --- Connection ----------------------------------------------------------------

void Connection::defer(bool write_done, bool deliver) {
  write_done_due_ |= write_done;
  deliver_due_ |= deliver;
  uv_idle_start(&written_, [](uv_idle_t *h) {
    uv_idle_stop(h);
    auto *c = static_cast<Connection *>(h->data);
    bool write_done = c->write_done_due_, deliver = c->deliver_due_;
    c->write_done_due_ = c->deliver_due_ = false;
    if (c->closing_) return;
    if (write_done) c->guarded([&] { c->core_.on_write_done(0); });
    if (deliver && !c->closing_) c->guarded([&] { c->tls_deliver(); });
  });
}

int Connection::io_write(std::string_view data, bool response) {
  if (closing_) return UV_ECANCELED;
  if (tls_) {
    // Before the handshake there is no channel to answer on (a header
    // timeout): the core closes at once.
    if (!tls_->handshake_done()) return UV_ENOTCONN;
    if (!tls_->write(data)) return UV_EPROTO;
    return tls_write(response);
  }
  uv_buf_t buf = uv_buf_init(const_cast<char *>(data.data()), static_cast<unsigned>(data.size()));
  auto *stream = reinterpret_cast<uv_stream_t *>(&tcp_);
  if (response) {
    // An answer nearly always fits the socket buffer. Written here, it needs
    // no write request, and libuv (1.44) then does not re-arm the socket in
    // epoll after the completion: one epoll_ctl per request saved. The core
    // still learns of the write on the next loop turn. (try_write refuses
    // while an earlier write, a 100 Continue, is queued: order is kept.)
    int n = uv_try_write(stream, &buf, 1);
    if (n == static_cast<int>(buf.len)) {
      defer(true, false);
      return 0;
    }
    if (n > 0) {
      buf.base += n;
      buf.len -= static_cast<unsigned>(n);
    } else if (n != UV_EAGAIN) {
      return n;
    }
  }
  uv_write_t *req = response ? &write_req_ : &continue_req_;
  return uv_write(req, stream, &buf, 1, [](uv_write_t *req, int status) {
    auto *c = static_cast<Connection *>(req->data);
    // 100 Continue needs no report: a broken socket fails the answer too.
    if (c->closing_ || req != &c->write_req_) return;
    c->guarded([&] { c->core_.on_write_done(status); });
  });
}

void Connection::io_read(bool on) {
  if (closing_ || on == reading_) return;
  reading_ = on;
  // The session may hold plaintext already decrypted: hand it over on the
  // next turn (the core must not be re-entered from io_read).
  if (on && tls_ && tls_->handshake_done()) defer(false, true);
  update_socket_reading();
}

// Plain: the socket is read while the core wants bytes. TLS: also during the
// handshake, which the core knows nothing of.
void Connection::update_socket_reading() {
  if (closing_) return;
  bool want = reading_ || (tls_ && !tls_->handshake_done());
  if (want == socket_reading_) return;
  auto *stream = reinterpret_cast<uv_stream_t *>(&tcp_);
  if (!want) {
    uv_read_stop(stream);
    socket_reading_ = false;
    return;
  }
  int rc = uv_read_start(
      stream,
      [](uv_handle_t *h, size_t, uv_buf_t *buf) {
        auto *c = static_cast<Connection *>(h->data);
        std::span<char> space;
        try {
          if (c->tls_) {
            if (!c->cipher_in_)
              c->cipher_in_ = std::make_unique_for_overwrite<char[]>(kCipherBufferSize);
            space = {c->cipher_in_.get(), kCipherBufferSize};
          } else {
            space = c->core_.read_space();
          }
        } catch (...) {  // no memory for the buffer: libuv reports UV_ENOBUFS
        }
        *buf = uv_buf_init(space.data(), static_cast<unsigned>(space.size()));
      },
      [](uv_stream_t *s, ssize_t nread, const uv_buf_t *) {
        auto *c = static_cast<Connection *>(s->data);
        if (c->closing_ || nread == 0) return;
        c->guarded([&] {
          if (c->tls_) {
            c->tls_read(nread);
          } else if (nread > 0) {
            c->core_.on_read(static_cast<size_t>(nread));
          } else if (nread == UV_EOF) {
            c->core_.on_eof();
          } else {
            c->core_.on_read_error();
          }
        });
      });
  socket_reading_ = rc == 0;
  if (rc != 0) close();
}

void Connection::tls_read(ssize_t nread) {
  if (nread < 0) {
    // A peer that leaves before finishing the handshake (a port scan, a TCP
    // health check) is no TLS error.
    if (!tls_->handshake_done()) {
      close();
    } else if (nread == UV_EOF) {
      core_.on_eof();
    } else {
      core_.on_read_error();
    }
    return;
  }
  tls_->feed(cipher_in_.get(), static_cast<size_t>(nread));
  tls_deliver();
}

void Connection::tls_deliver() {
  bool was_done = tls_->handshake_done();
  bool ok = tls_->deliver(core_, reading_);
  if (!ok) {
    tls_fail();
    return;
  }
  if (closing_) return;
  if (tls_->has_output() && tls_write(false) < 0) {
    close();
    return;
  }
  if (!was_done && tls_->handshake_done()) update_socket_reading();
}

// Says why, sends what the client can read (an alert, or a plain 400 to a
// plain request) and closes.
void Connection::tls_fail() {
  auto failure = tls_->failure();
  if (!server_.destroyed_ && server_.observer_.on_tls_error) {
    try {
      server_.observer_.on_tls_error(failure_name(failure),
                                     failure == TlsLayer::Failure::kPlainHttp
                                         ? "an HTTP request where a TLS ClientHello belongs"
                                         : std::string_view(tls_->error()));
    } catch (...) {
    }
  }
  auto *stream = reinterpret_cast<uv_stream_t *>(&tcp_);
  std::string bytes;
  if (failure == TlsLayer::Failure::kPlainHttp) {
    bytes.assign(TlsLayer::plain_http_answer());
  } else {
    tls_->take_output(&bytes);
  }
  if (!bytes.empty()) {
    // Into an empty socket buffer this nearly always goes at once; a client
    // too slow to take a few hundred bytes loses the explanation only.
    uv_buf_t buf = uv_buf_init(bytes.data(), static_cast<unsigned>(bytes.size()));
    uv_try_write(stream, &buf, 1);
  }
  close();
}

// Sends the session's ciphertext; `response`: the core learns when it left.
int Connection::tls_write(bool response) {
  auto *stream = reinterpret_cast<uv_stream_t *>(&tcp_);
  cipher_out_.clear();
  tls_->take_output(&cipher_out_);
  if (stream->write_queue_size == 0 && !cipher_out_.empty()) {
    uv_buf_t buf = uv_buf_init(cipher_out_.data(), static_cast<unsigned>(cipher_out_.size()));
    int n = uv_try_write(stream, &buf, 1);
    if (n > 0) {
      cipher_out_.erase(0, static_cast<size_t>(n));
    } else if (n != UV_EAGAIN) {
      return n;
    }
  }
  if (cipher_out_.empty()) {
    if (response) defer(true, false);
    return 0;
  }
  auto *w = new TlsWrite;
  w->bytes = std::move(cipher_out_);
  cipher_out_ = std::string();
  w->response = response;
  w->req.data = w;
  uv_buf_t buf = uv_buf_init(w->bytes.data(), static_cast<unsigned>(w->bytes.size()));
  int rc = uv_write(&w->req, stream, &buf, 1, [](uv_write_t *req, int status) {
    auto *w = static_cast<TlsWrite *>(req->data);
    // The connection outlives its write callbacks (libuv runs them, with
    // UV_ECANCELED, before the handle's close callback).
    auto *c = static_cast<Connection *>(req->handle->data);
    bool response = w->response;
    delete w;
    if (c->closing_ || !response) return;
    c->guarded([&] { c->core_.on_write_done(status); });
  });
  if (rc != 0) delete w;
  return rc;
}

void Connection::io_timer(uint64_t timeout_ms) {
  if (closing_) return;
  // Lazy deadlines: the state machine moves its deadline on every request
  // (header, body, answer, idle); re-arming the uv timer each time costs more
  // than the rest of a small request's bookkeeping. The timer stays armed at
  // its earliest due time and, when it fires early, re-arms for what is left.
  if (timeout_ms == 0) {
    deadline_ms_ = 0;  // disarmed: a pending fire is ignored
    return;
  }
  uint64_t now = uv_now(server_.loop_);
  deadline_ms_ = now + timeout_ms;
  if (!timer_armed_ || timer_due_ms_ > deadline_ms_) arm_timer(now);
}

void Connection::arm_timer(uint64_t now) {
  timer_armed_ = true;
  timer_due_ms_ = deadline_ms_;
  uv_timer_start(
      &timer_,
      [](uv_timer_t *t) {
        auto *c = static_cast<Connection *>(t->data);
        c->timer_armed_ = false;
        if (c->closing_ || c->deadline_ms_ == 0) return;
        uint64_t now = uv_now(c->server_.loop_);
        if (now < c->deadline_ms_) {
          c->arm_timer(now);  // the deadline moved later since this was armed
          return;
        }
        c->deadline_ms_ = 0;
        if (c->tls_ && !c->tls_->handshake_done()) {
          c->report_tls_timeout();
          c->close();
          return;
        }
        c->guarded([&] { c->core_.on_timer(); });
      },
      deadline_ms_ > now ? deadline_ms_ - now : 0, 0);
}

void Connection::io_linger() {
  if (closing_) return;
  if (tls_ && tls_->handshake_done()) {
    tls_->close_notify();
    if (tls_write(false) < 0) {
      close();
      return;
    }
  }
  int rc = uv_shutdown(&shutdown_req_, reinterpret_cast<uv_stream_t *>(&tcp_),
                       [](uv_shutdown_t *, int) {});
  if (rc != 0) close();
}

// The core ends the connection (an answer with Connection: close, a timeout,
// a client gone): a TLS session says so with close_notify first, as nginx
// does. Without it a client that reads to EOF sees a truncation, and
// OpenSSL then marks its session not resumable (openssl s_time -reuse
// resumed none); the server's cache drops the session too (SSL_free of a
// session that sent no close_notify). A few bytes into the socket buffer,
// without a write request: if they do not fit, the client only misses them.
void Connection::io_close() {
  if (closing_) return;
  if (tls_ && tls_->handshake_done()) {
    tls_->close_notify();
    std::string bytes;
    tls_->take_output(&bytes);
    auto *stream = reinterpret_cast<uv_stream_t *>(&tcp_);
    if (!bytes.empty() && stream->write_queue_size == 0) {
      uv_buf_t buf = uv_buf_init(bytes.data(), static_cast<unsigned>(bytes.size()));
      uv_try_write(stream, &buf, 1);
    }
  }
  close();
}

void Connection::io_dispatch(Request &request, uint64_t seq) {
  Responder responder(weak_from_this(), seq);
  if (server_.destroyed_ || !server_.handler_) return;  // the Responder answers 500
  // A throwing handler: the Responder, destroyed while unwinding, answers 500.
  try {
    server_.handler_(request, std::move(responder));
  } catch (...) {
  }
}

void Connection::io_observe(const Request *request, int status, size_t bytes_in,
                            uint64_t latency_ms) {
  if (server_.destroyed_ || !server_.observer_.on_response) return;
  try {
    server_.observer_.on_response(request, status, bytes_in, latency_ms);
  } catch (...) {
  }
}

void Connection::close() {
  if (closing_) return;
  closing_ = true;
  auto on_close = [](uv_handle_t *h) {
    auto *c = static_cast<Connection *>(h->data);
    if (--c->open_handles_ == 0) c->server_.connection_closed(c);
  };
  uv_close(reinterpret_cast<uv_handle_t *>(&tcp_), on_close);
  uv_close(reinterpret_cast<uv_handle_t *>(&timer_), on_close);
  uv_close(reinterpret_cast<uv_handle_t *>(&written_), on_close);
}

// --- ServerImpl ------------------------------------------------------------------

namespace {

// "host:port" or "[v6]:port" into a socket address.
int parse_host_port(const std::string &hp, sockaddr_storage &ss) {
  std::string host;
  std::string_view port;
  if (!hp.empty() && hp.front() == '[') {
    size_t end = hp.find("]:");
    if (end == std::string::npos) return UV_EINVAL;
    host = hp.substr(1, end - 1);
    port = std::string_view(hp).substr(end + 2);
  } else {
    size_t colon = hp.rfind(':');
    if (colon == std::string::npos) return UV_EINVAL;
    host = hp.substr(0, colon);
    port = std::string_view(hp).substr(colon + 1);
  }
  int p = -1;
  auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
  if (ec != std::errc() || ptr != port.data() + port.size() || p < 0 || p > 65535) {
    return UV_EINVAL;
  }
  if (uv_ip4_addr(host.c_str(), p, reinterpret_cast<sockaddr_in *>(&ss)) == 0) return 0;
  if (uv_ip6_addr(host.c_str(), p, reinterpret_cast<sockaddr_in6 *>(&ss)) == 0) return 0;
  return UV_EINVAL;
}

void close_listener_cb(uv_handle_t *h) {
  auto *impl = static_cast<ServerImpl *>(h->data);
  delete reinterpret_cast<uv_tcp_t *>(h);
  impl->handle_closed();
}

void close_timer_cb(uv_handle_t *h) {
  auto *impl = static_cast<ServerImpl *>(h->data);
  delete reinterpret_cast<uv_timer_t *>(h);
  impl->handle_closed();
}

}  // namespace

int ServerImpl::start_listening(uv_tcp_t *h, int rc) {
  if (rc == 0) {
    rc = uv_listen(reinterpret_cast<uv_stream_t *>(h), kBacklog, [](uv_stream_t *s, int status) {
      auto *impl = static_cast<ServerImpl *>(s->data);
      if (status < 0) return;  // e.g. EMFILE; libuv keeps the listener going
      try {
        impl->accept();
      } catch (...) {
      }
    });
  }
  if (rc != 0) stop_accepting();
  return rc;
}

int ServerImpl::listen(const std::string &host_port, bool reuse_port) {
  if (listener_ != nullptr || closing_) return UV_EBUSY;
  sockaddr_storage ss{};
  if (int rc = parse_host_port(host_port, ss); rc != 0) return rc;
  auto *h = new uv_tcp_t;
  if (int rc = uv_tcp_init_ex(loop_, h, ss.ss_family); rc != 0) {
    delete h;
    return rc;
  }
  h->data = this;
  listener_ = h;
  ++open_handles_;
  int rc = 0;
  if (reuse_port) {
    // libuv 1.44 has no UV_TCP_REUSEPORT: set it on the socket before bind.
    uv_os_fd_t fd;
    int one = 1;
    rc = uv_fileno(reinterpret_cast<uv_handle_t *>(h), &fd);
    if (rc == 0 && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) rc = -errno;
  }
  if (rc == 0) rc = uv_tcp_bind(h, reinterpret_cast<sockaddr *>(&ss), 0);
  return start_listening(h, rc);
}

int ServerImpl::adopt(int fd) {
  if (listener_ != nullptr || closing_) return UV_EBUSY;
  int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) return -errno;
  auto *h = new uv_tcp_t;
  uv_tcp_init(loop_, h);  // cannot fail: no socket is created
  h->data = this;
  listener_ = h;
  ++open_handles_;
  int rc = uv_tcp_open(h, copy);
  if (rc != 0) ::close(copy);  // not owned by the handle then
  return start_listening(h, rc);
}

int ServerImpl::local_port() const {
  if (listener_ == nullptr) return UV_EBADF;
  sockaddr_storage ss{};
  int len = sizeof(ss);
  int rc = uv_tcp_getsockname(listener_, reinterpret_cast<sockaddr *>(&ss), &len);
  if (rc != 0) return rc;
  if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in *>(&ss)->sin_port);
  return ntohs(reinterpret_cast<sockaddr_in6 *>(&ss)->sin6_port);
}

void ServerImpl::stop_accepting() {
  if (listener_ == nullptr) return;
  uv_close(reinterpret_cast<uv_handle_t *>(listener_), close_listener_cb);
  listener_ = nullptr;
}

void ServerImpl::accept() {
  if (connections_ >= config_.limits.max_connections || closing_) {
    reject();
    return;
  }
  auto c = std::make_shared<Connection>(*this);
  uv_tcp_init(loop_, &c->tcp_);
  uv_timer_init(loop_, &c->timer_);
  uv_idle_init(loop_, &c->written_);
  c->open_handles_ = 3;
  c->self_ = c;
  c->next_ = head_;
  if (head_ != nullptr) head_->prev_ = c.get();
  head_ = c.get();
  ++connections_;
  if (uv_accept(reinterpret_cast<uv_stream_t *>(listener_),
                reinterpret_cast<uv_stream_t *>(&c->tcp_)) != 0) {
    c->close();
    return;
  }
  if (config_.limits.tls) {
    c->tls_ = std::make_unique<TlsLayer>(config_.limits.tls);
    if (!c->tls_->valid()) {
      c->close();
      return;
    }
  }
  uv_tcp_nodelay(&c->tcp_, 1);
  sockaddr_storage ss{};
  int len = sizeof(ss);
  char text[64] = "";
  if (uv_tcp_getpeername(&c->tcp_, reinterpret_cast<sockaddr *>(&ss), &len) == 0) {
    if (ss.ss_family == AF_INET) {
      uv_ip4_name(reinterpret_cast<sockaddr_in *>(&ss), text, sizeof(text));
    } else {
      uv_ip6_name(reinterpret_cast<sockaddr_in6 *>(&ss), text, sizeof(text));
    }
  }
  c->guarded([&] { c->core_.start(text); });
  c->update_socket_reading();  // TLS: the handshake starts before the core reads
}

// Over max_connections: accept and close at once, as nginx does when its
// worker_connections are exhausted. Leaving the socket in the backlog instead
// would make clients hang and libuv would stop polling the listener.
void ServerImpl::reject() {
  auto *h = new uv_tcp_t;
  uv_tcp_init(loop_, h);
  uv_accept(reinterpret_cast<uv_stream_t *>(listener_), reinterpret_cast<uv_stream_t *>(h));
  uv_close(reinterpret_cast<uv_handle_t *>(h),
           [](uv_handle_t *h) { delete reinterpret_cast<uv_tcp_t *>(h); });
}

void ServerImpl::force_close_all() {
  for (Connection *c = head_; c != nullptr; c = c->next_) {
    if (!c->closing_) c->guarded([&] { c->core_.abort(); });
  }
}

void ServerImpl::close(uint64_t deadline_ms, std::function<void()> done) {
  if (finished_) {
    if (done) done();
    return;
  }
  done_ = std::move(done);
  if (closing_) return;
  closing_ = true;
  stop_accepting();
  for (Connection *c = head_; c != nullptr; c = c->next_) {
    if (!c->closing_) c->guarded([&] { c->core_.shutdown(); });
  }
  if (deadline_ms == 0) {
    force_close_all();
  } else {
    deadline_ = new uv_timer_t;
    uv_timer_init(loop_, deadline_);
    deadline_->data = this;
    ++open_handles_;
    uv_timer_start(
        deadline_, [](uv_timer_t *t) { static_cast<ServerImpl *>(t->data)->force_close_all(); },
        deadline_ms, 0);
  }
  after_close();
}

void ServerImpl::destroy() {
  destroyed_ = true;
  done_ = nullptr;
  closing_ = true;
  stop_accepting();
  if (deadline_ != nullptr) {
    uv_close(reinterpret_cast<uv_handle_t *>(deadline_), close_timer_cb);
    deadline_ = nullptr;
  }
  force_close_all();
  if (open_handles_ == 0 && connections_ == 0) delete this;
}

void ServerImpl::connection_closed(Connection *c) {
  if (c->prev_ != nullptr) c->prev_->next_ = c->next_;
  if (c->next_ != nullptr) c->next_->prev_ = c->prev_;
  if (head_ == c) head_ = c->next_;
  --connections_;
  c->self_.reset();  // frees c unless a Responder is using it right now
  after_close();
}

void ServerImpl::after_close() {
  if (destroyed_) {
    if (open_handles_ == 0 && connections_ == 0) delete this;
    return;
  }
  if (!closing_ || finished_ || connections_ > 0 || listener_ != nullptr) return;
  if (deadline_ != nullptr) {
    uv_close(reinterpret_cast<uv_handle_t *>(deadline_), close_timer_cb);
    deadline_ = nullptr;
    return;  // its close callback comes back here
  }
  if (open_handles_ > 0) return;
  finished_ = true;
  auto done = std::move(done_);
  done_ = nullptr;
  if (done) done();  // may destroy the Server, and so this
}

}  // namespace detail

// --- public wrappers -----------------------------------------------------------

namespace {
Response internal_error() {
  Response r;
  r.status = 500;
  r.body = R"({"error":"internal error"})";
  return r;
}
}  // namespace

Responder &Responder::operator=(Responder &&other) noexcept {
  if (this != &other) {
    if (pending()) {
      try {
        respond(internal_error());
      } catch (...) {
      }
    }
    conn_ = std::move(other.conn_);
    seq_ = other.seq_;
  }
  return *this;
}

Responder::~Responder() {
  if (!pending()) return;
  try {
    respond(internal_error());
  } catch (...) {
  }
}

void Responder::respond(Response r) {
  auto conn = conn_.lock();
  conn_.reset();
  if (conn) conn->respond(seq_, std::move(r));
}

Server::Server(uv_loop_t *loop, ServerLimits limits, Handler handler, ServerObserver observer)
    : impl_(new detail::ServerImpl(loop, std::move(limits), std::move(handler),
                                   std::move(observer))) {}

Server::~Server() {
  impl_->destroy();
}

int Server::listen(const std::string &host_port, bool reuse_port) {
  return impl_->listen(host_port, reuse_port);
}
int Server::adopt(int listen_fd) {
  return impl_->adopt(listen_fd);
}
int Server::local_port() const {
  return impl_->local_port();
}
void Server::stop_accepting() {
  impl_->stop_accepting();
}
void Server::close(uint64_t deadline_ms, std::function<void()> done) {
  impl_->close(deadline_ms, std::move(done));
}
size_t Server::connection_count() const {
  return impl_->connection_count();
}

}  // namespace ingestd::http
