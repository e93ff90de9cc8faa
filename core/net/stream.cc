// Stream: resolve, connect (each address in turn), TLS handshake, then a
// write queue and a read loop. Memory: the Stream counts the uv requests and
// handles whose callbacks are still due and frees itself when that count is
// zero, it is torn down and its owner let go (close(), or on_closed returned).
#include "net/stream.h"

#include <sys/un.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <utility>

namespace ingestd::net {

// One connection attempt's handle; freed in its close callback.
struct Stream::Socket {
  union {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  };
  Stream *owner = nullptr;
};

// Keeps the Stream alive for the span of a uv callback: a user callback may
// close() it, and the memory must outlast the code that still runs after.
class Stream::Hold {
 public:
  explicit Hold(Stream *s) : s_(s) { ++s_->outstanding_; }
  ~Hold() {
    --s_->outstanding_;
    s_->maybe_free();
  }
  Hold(const Hold &) = delete;
  Hold &operator=(const Hold &) = delete;

 private:
  Stream *s_;
};

namespace {

std::string address_name(const sockaddr *sa) {
  char ip[INET6_ADDRSTRLEN] = {0};
  if (sa->sa_family == AF_INET6) {
    const auto *a = reinterpret_cast<const sockaddr_in6 *>(sa);
    uv_ip6_name(a, ip, sizeof ip);
    return "[" + std::string(ip) + "]:" + std::to_string(ntohs(a->sin6_port));
  }
  const auto *a = reinterpret_cast<const sockaddr_in *>(sa);
  uv_ip4_name(a, ip, sizeof ip);
  return std::string(ip) + ":" + std::to_string(ntohs(a->sin_port));
}

}  // namespace

std::string check_address(const StreamConfig &cfg) {
  if (!cfg.unix_path.empty()) {
    if (cfg.tls) return "TLS is not available over a unix socket (unix_path " + cfg.unix_path + ")";
    if (cfg.unix_path.size() >= sizeof(sockaddr_un::sun_path))
      return "unix_path " + cfg.unix_path + " is too long";
    return {};
  }
  if (cfg.host.empty()) return "no host and no unix_path";
  if (cfg.port < 1 || cfg.port > 65535)
    return "port " + std::to_string(cfg.port) + " is out of range 1..65535";
  return {};
}

Stream *Stream::open(uv_loop_t *loop, StreamConfig cfg, StreamCallbacks cb, std::string *err) {
  std::string why = check_address(cfg);
  if (!why.empty()) {
    if (err) *err = std::move(why);
    return nullptr;
  }
  if (cfg.connect_timeout_ms == 0) cfg.connect_timeout_ms = 10000;
  if (cfg.write_limit == 0) cfg.write_limit = 8u << 20;
  auto *s = new Stream(loop, std::move(cfg), std::move(cb));
  s->start();
  return s;
}

Stream::Stream(uv_loop_t *loop, StreamConfig cfg, StreamCallbacks cb)
    : loop_(loop), cfg_(std::move(cfg)), cb_(std::move(cb)) {
  if (!cfg_.unix_path.empty()) {
    peer_ = cfg_.unix_path;
  } else if (cfg_.host.find(':') != std::string::npos) {
    peer_ = "[" + cfg_.host + "]:" + std::to_string(cfg_.port);
  } else {
    peer_ = cfg_.host + ":" + std::to_string(cfg_.port);
  }
  uv_timer_init(loop_, &timer_);
  timer_.data = this;
  uv_idle_init(loop_, &idle_);
  idle_.data = this;
  outstanding_ += 2;  // their close callbacks
}

// Never calls a callback: failures found here are reported from the loop.
void Stream::start() {
  uv_timer_start(&timer_, on_timeout, cfg_.connect_timeout_ms, 0);
  if (!cfg_.unix_path.empty()) {
    state_ = State::kConnecting;
    current_addr_ = cfg_.unix_path;
    sock_ = new Socket();
    uv_pipe_init(loop_, &sock_->pipe, 0);
    sock_->handle.data = sock_;
    sock_->owner = this;
    ++outstanding_;
    uv_pipe_connect(&connect_, &sock_->pipe, cfg_.unix_path.c_str(), on_connect);
    ++outstanding_;
    return;
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  resolve_.data = this;
  std::string port = std::to_string(cfg_.port);
  int rc = uv_getaddrinfo(loop_, &resolve_, on_resolved, cfg_.host.c_str(), port.c_str(), &hints);
  if (rc < 0) {
    fail_soon("resolve " + cfg_.host + ": " + uv_strerror(rc));
    return;
  }
  resolving_ = true;
  ++outstanding_;
}

void Stream::on_resolved(uv_getaddrinfo_t *req, int status, addrinfo *res) {
  std::unique_ptr<addrinfo, void (*)(addrinfo *)> owned(res, uv_freeaddrinfo);
  auto *self = static_cast<Stream *>(req->data);
  Hold hold(self);
  --self->outstanding_;
  self->resolving_ = false;
  if (self->closed_) return;
  if (status < 0) {
    self->fail("resolve " + self->cfg_.host + ": " + uv_strerror(status));
    return;
  }
  try {
    for (addrinfo *a = res; a; a = a->ai_next) {
      if (a->ai_family != AF_INET && a->ai_family != AF_INET6) continue;
      sockaddr_storage ss{};
      std::memcpy(&ss, a->ai_addr, std::min<size_t>(a->ai_addrlen, sizeof ss));
      self->addrs_.push_back(ss);
    }
    owned.reset();
    self->state_ = State::kConnecting;
    self->try_next_address();
  } catch (const std::exception &e) {  // out of memory: never past a uv callback
    self->fail(std::string("resolve: ") + e.what());
  }
}

// From uv callbacks only (it may fail the stream).
void Stream::try_next_address() {
  while (next_addr_ < addrs_.size()) {
    const auto *sa = reinterpret_cast<const sockaddr *>(&addrs_[next_addr_++]);
    current_addr_ = address_name(sa);
    sock_ = new Socket();
    uv_tcp_init(loop_, &sock_->tcp);
    sock_->handle.data = sock_;
    sock_->owner = this;
    ++outstanding_;
    uv_tcp_nodelay(&sock_->tcp, 1);        // protocols of small requests and replies
    uv_tcp_keepalive(&sock_->tcp, 1, 60);  // a peer gone silently is found out
    int rc = uv_tcp_connect(&connect_, &sock_->tcp, sa, on_connect);
    if (rc == 0) {
      ++outstanding_;
      return;
    }
    last_error_ = "connect to " + current_addr_ + ": " + uv_strerror(rc);
    close_socket();
  }
  fail(last_error_.empty() ? "resolve " + cfg_.host + ": no address" : last_error_);
}

void Stream::on_connect(uv_connect_t *req, int status) {
  auto *sock = reinterpret_cast<Socket *>(req->handle->data);
  Stream *self = sock->owner;
  Hold hold(self);
  --self->outstanding_;
  if (self->closed_) return;
  if (status < 0) {
    self->last_error_ = "connect to " + self->current_addr_ + ": " + uv_strerror(status);
    self->close_socket();
    self->try_next_address();
    return;
  }
  try {
    self->on_socket_connected();
  } catch (const std::exception &e) {
    self->fail(std::string("connect: ") + e.what());
  }
}

void Stream::on_socket_connected() {
  int rc = uv_read_start(&sock_->stream, on_alloc, on_read);
  if (rc < 0) {
    fail("read from " + current_addr_ + ": " + uv_strerror(rc));
    return;
  }
  if (!cfg_.tls) {
    on_open();
    return;
  }
  state_ = State::kHandshaking;
  session_ = std::make_unique<tls::Session>(
      cfg_.tls, cfg_.server_name.empty() ? cfg_.host : cfg_.server_name);
  if (!session_->valid()) {
    fail("TLS: cannot create a session (out of memory)");
    return;
  }
  auto st = session_->handshake();
  flush_tls();
  if (st == tls::Session::Status::kError) fail("TLS: " + session_->error());
}

void Stream::on_open() {
  state_ = State::kOpen;
  uv_timer_stop(&timer_);
  if (!pre_.empty()) {
    if (session_) {
      if (!session_->write(pre_)) {
        fail("TLS: " + session_->error());
        return;
      }
      pre_.clear();
      flush_tls();
    } else {
      out_.append(pre_);
      pre_.clear();
      start_write();
    }
  }
  if (cb_.on_connected) cb_.on_connected();
}

Stream::Write Stream::write(std::string_view data) {
  if (closed_) return Write::kClosed;
  if (data.empty()) return Write::kOk;
  size_t queued = pending();
  if (queued > 0 && queued + data.size() > cfg_.write_limit) {
    full_ = true;
    return Write::kFull;
  }
  if (state_ != State::kOpen) {
    pre_.append(data);
  } else if (session_) {
    if (!session_->write(data)) {
      fail_soon("TLS: " + session_->error());
      return Write::kOk;  // taken; the stream ends from the loop
    }
    flush_tls();
  } else {
    out_.append(data);
    start_write();
  }
  return Write::kOk;
}

void Stream::flush_tls() {
  if (session_) session_->take_output(&out_);
  start_write();
}

// One uv_write at a time; what is written meanwhile collects in out_ and
// leaves in one uv_write when the previous completes.
void Stream::start_write() {
  if (writing_ || out_.empty() || closed_ || !sock_) return;
  inflight_.swap(out_);
  out_.clear();
  uv_buf_t buf = uv_buf_init(inflight_.data(), static_cast<unsigned>(inflight_.size()));
  write_req_.data = this;
  int rc = uv_write(&write_req_, &sock_->stream, &buf, 1, on_write);
  if (rc < 0) {
    fail_soon("write to " + current_addr_ + ": " + uv_strerror(rc));
    return;
  }
  writing_ = true;
  ++outstanding_;
}

void Stream::on_write(uv_write_t *req, int status) {
  auto *self = static_cast<Stream *>(req->data);
  Hold hold(self);
  --self->outstanding_;
  self->writing_ = false;
  if (self->closed_) return;
  self->inflight_.clear();
  if (status < 0) {
    self->fail("write to " + self->current_addr_ + ": " + uv_strerror(status));
    return;
  }
  self->start_write();
  if (self->full_ && self->pending() < self->cfg_.write_limit / 2) {
    self->full_ = false;
    if (self->cb_.on_drain) self->cb_.on_drain();
  }
}

void Stream::on_alloc(uv_handle_t *h, size_t, uv_buf_t *buf) {
  Stream *self = static_cast<Socket *>(h->data)->owner;
  *buf = uv_buf_init(self->rbuf_, sizeof self->rbuf_);
}

void Stream::on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  Stream *self = static_cast<Socket *>(s->data)->owner;
  Hold hold(self);
  if (self->closed_ || nread == 0) return;
  if (nread == UV_EOF) {
    self->fail(self->state_ == State::kOpen ? "closed by the peer"
                                            : "TLS: closed by the peer during the handshake");
    return;
  }
  if (nread < 0) {
    self->fail("read from " + self->current_addr_ + ": " + uv_strerror(static_cast<int>(nread)));
    return;
  }
  try {
    self->on_bytes(buf->base, static_cast<size_t>(nread));
  } catch (const std::exception &e) {  // out of memory: never past a uv callback
    self->fail(std::string("read: ") + e.what());
  }
}

void Stream::on_bytes(const char *data, size_t n) {
  if (!session_) {
    if (cb_.on_data) cb_.on_data(data, n);
    return;
  }
  session_->feed(data, n);
  if (!session_->handshake_done()) {
    auto st = session_->handshake();
    flush_tls();
    if (st == tls::Session::Status::kError) {
      fail("TLS: " + session_->error());
      return;
    }
    if (!session_->handshake_done()) return;
    on_open();
    if (closed_) return;
  }
  for (;;) {
    auto r = session_->read(plain_);
    if (r.n > 0) {
      if (cb_.on_data) cb_.on_data(plain_, r.n);
      if (closed_) return;
      continue;
    }
    if (r.status == tls::Session::Status::kClosed) {
      fail("closed by the peer");
      return;
    }
    if (r.status == tls::Session::Status::kError) {
      fail("TLS: " + session_->error());
      return;
    }
    break;
  }
  flush_tls();  // post-handshake messages (key updates)
}

void Stream::on_timeout(uv_timer_t *t) {
  auto *self = static_cast<Stream *>(t->data);
  Hold hold(self);
  self->fail("connect to " + self->peer_ + ": timed out after " +
             std::to_string(self->cfg_.connect_timeout_ms) + " ms");
}

void Stream::on_idle(uv_idle_t *h) {
  auto *self = static_cast<Stream *>(h->data);
  Hold hold(self);
  uv_idle_stop(h);
  self->fail(self->failure_);
}

void Stream::fail_soon(std::string reason) {
  if (closed_ || !failure_.empty()) return;
  failure_ = std::move(reason);
  uv_idle_start(&idle_, on_idle);
}

// From uv callbacks only: on_closed runs here.
void Stream::fail(std::string reason) {
  if (closed_) return;
  teardown();
  if (cb_.on_closed && !released_) cb_.on_closed(reason);
  released_ = true;  // the handle is invalid once on_closed returned
}

void Stream::close() {
  released_ = true;
  if (!closed_) teardown();
  // Freed by the close callbacks teardown started (never synchronously).
}

void Stream::teardown() {
  closed_ = true;
  state_ = State::kClosed;
  uv_timer_stop(&timer_);
  uv_close(reinterpret_cast<uv_handle_t *>(&timer_), on_handle_closed);
  uv_close(reinterpret_cast<uv_handle_t *>(&idle_), on_handle_closed);
  if (resolving_) uv_cancel(reinterpret_cast<uv_req_t *>(&resolve_));  // its callback still runs
  close_socket();
  session_.reset();
  pre_.clear();
  out_.clear();
  // inflight_ stays until its write callback (ECANCELED) ran.
}

void Stream::close_socket() {
  if (!sock_) return;
  uv_close(&sock_->handle, on_socket_closed);
  sock_ = nullptr;
}

void Stream::on_handle_closed(uv_handle_t *h) {
  auto *self = static_cast<Stream *>(h->data);
  --self->outstanding_;
  self->maybe_free();
}

void Stream::on_socket_closed(uv_handle_t *h) {
  auto *sock = static_cast<Socket *>(h->data);
  Stream *self = sock->owner;
  delete sock;
  --self->outstanding_;
  self->maybe_free();
}

void Stream::maybe_free() {
  if (closed_ && released_ && outstanding_ == 0) delete this;
}

}  // namespace ingestd::net
