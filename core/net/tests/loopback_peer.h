// Loopback peers for the stream tests (net and host): plain or TLS echo over
// TCP or a unix socket, a silent one, one that closes at accept; and
// run_until, which runs a loop until a condition holds or a deadline passes.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tls/tls.h"
#include "util/uv_handle.h"

namespace ingestd::net::testing {

inline bool run_until(uv_loop_t *loop, const std::function<bool()> &done,
                      uint64_t timeout_ms = 10000) {
  uint64_t deadline = uv_now(loop) + timeout_ms;
  Timer tick(loop);
  tick.start(5, 5, [] {});
  while (!done()) {
    uv_update_time(loop);
    if (uv_now(loop) > deadline) return false;
    uv_run(loop, UV_RUN_ONCE);
  }
  return true;
}

// A loopback peer: plain or TLS echo, or one that accepts and then stays
// silent (never reads: no TLS answer, no drain), or closes at once.
class Peer {
 public:
  enum class Mode { kEcho, kSilent, kCloseAtAccept };

  Peer(uv_loop_t *loop, Mode mode, std::shared_ptr<const tls::Context> tls = nullptr)
      : loop_(loop), mode_(mode), tls_(std::move(tls)) {}
  ~Peer() { stop(); }

  int listen_tcp() {
    auto *s = new uv_tcp_t;
    uv_tcp_init(loop_, s);
    s->data = this;
    listener_ = UvHandle<uv_tcp_t>(s);
    sockaddr_in addr{};
    uv_ip4_addr("127.0.0.1", 0, &addr);
    EXPECT_EQ(uv_tcp_bind(s, reinterpret_cast<const sockaddr *>(&addr), 0), 0);
    EXPECT_EQ(uv_listen(reinterpret_cast<uv_stream_t *>(s), 16, on_connection), 0);
    sockaddr_storage bound{};
    int len = sizeof bound;
    uv_tcp_getsockname(s, reinterpret_cast<sockaddr *>(&bound), &len);
    return ntohs(reinterpret_cast<sockaddr_in *>(&bound)->sin_port);
  }
  void listen_unix(const std::string &path) {
    auto *p = new uv_pipe_t;
    uv_pipe_init(loop_, p, 0);
    p->data = this;
    pipe_listener_ = UvHandle<uv_pipe_t>(p);
    ASSERT_EQ(uv_pipe_bind(p, path.c_str()), 0);
    ASSERT_EQ(uv_listen(reinterpret_cast<uv_stream_t *>(p), 16, on_connection), 0);
  }
  // The silent peer starts reading (and echoing).
  void start_reading() {
    mode_ = Mode::kEcho;
    for (auto &c : conns_)
      if (c->sock) uv_read_start(c->stream(), on_alloc, on_read);
  }
  void stop() {
    listener_.reset();
    pipe_listener_.reset();
    for (auto &c : conns_)
      c->sock.reset();
  }
  int accepted() const { return accepted_; }
  size_t received() const { return received_; }

 private:
  // A TCP or pipe connection, allocated and freed as one type.
  struct AnySock {
    union {
      uv_stream_t stream;
      uv_tcp_t tcp;
      uv_pipe_t pipe;
    };
  };
  struct Conn {
    Peer *peer = nullptr;
    UvHandle<AnySock> sock;
    std::unique_ptr<tls::Session> session;
    uv_stream_t *stream() const { return &sock.get()->stream; }
  };
  struct WriteReq {
    uv_write_t req;
    std::string data;
  };

  static void on_connection(uv_stream_t *srv, int status) {
    auto *self = static_cast<Peer *>(srv->data);
    if (status < 0) return;
    auto c = std::make_unique<Conn>();
    c->peer = self;
    auto *any = new AnySock;
    if (srv->type == UV_NAMED_PIPE) {
      uv_pipe_init(srv->loop, &any->pipe, 0);
    } else {
      uv_tcp_init(srv->loop, &any->tcp);
    }
    c->sock = UvHandle<AnySock>(any);
    uv_stream_t *h = &any->stream;
    h->data = c.get();
    if (uv_accept(srv, h) != 0) return;
    ++self->accepted_;
    if (self->tls_) c->session = std::make_unique<tls::Session>(self->tls_);
    if (self->mode_ == Mode::kCloseAtAccept) {
      c->sock.reset();
    } else if (self->mode_ == Mode::kEcho) {
      uv_read_start(h, on_alloc, on_read);
    }
    self->conns_.push_back(std::move(c));
  }
  static void on_alloc(uv_handle_t *, size_t suggested, uv_buf_t *buf) {
    *buf = uv_buf_init(new char[suggested], static_cast<unsigned>(suggested));
  }
  static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
    std::unique_ptr<char[]> owned(buf->base);
    auto *c = static_cast<Conn *>(s->data);
    if (n < 0) {
      c->sock.reset();
      return;
    }
    c->peer->received_ += static_cast<size_t>(n);
    if (!c->session) {
      send(c, std::string(buf->base, static_cast<size_t>(n)));
      return;
    }
    c->session->feed(buf->base, static_cast<size_t>(n));
    if (!c->session->handshake_done() && c->session->handshake() == tls::Session::Status::kError) {
      std::string out;
      c->session->take_output(&out);
      send(c, out);
      c->sock.reset();
      return;
    }
    char plain[16384];
    for (;;) {
      auto r = c->session->read(plain);
      if (r.n == 0) {
        if (r.status == tls::Session::Status::kError) c->sock.reset();
        break;
      }
      c->session->write(std::string_view(plain, r.n));
    }
    std::string out;
    c->session->take_output(&out);
    if (c->sock) send(c, out);
  }
  static void send(Conn *c, std::string data) {
    if (data.empty() || !c->sock) return;
    auto *w = new WriteReq;
    w->data = std::move(data);
    uv_buf_t b = uv_buf_init(w->data.data(), static_cast<unsigned>(w->data.size()));
    if (uv_write(&w->req, c->stream(), &b, 1,
                 [](uv_write_t *r, int) { delete reinterpret_cast<WriteReq *>(r); }) != 0)
      delete w;
  }

  uv_loop_t *loop_;
  Mode mode_;
  std::shared_ptr<const tls::Context> tls_;
  UvHandle<uv_tcp_t> listener_;
  UvHandle<uv_pipe_t> pipe_listener_;
  std::vector<std::unique_ptr<Conn>> conns_;
  int accepted_ = 0;
  size_t received_ = 0;
};

}  // namespace ingestd::net::testing
