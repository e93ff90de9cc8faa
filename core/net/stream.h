// One outgoing byte stream on a uv loop: asynchronous resolution, one connect
// timeout over resolve + connect + TLS handshake, optional TLS client, a
// bounded write queue with drain notice. What the host stream service
// (plugin.h, stream_open) hands plugins; no protocol here.
//
// Threading: a Stream belongs to its loop's thread; nothing is shared.
// Process contract: the process must ignore SIGPIPE (libuv writes with
// write(2), so a peer gone away would otherwise kill it), as main.cc does.
#pragma once

#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tls/tls.h"

namespace ingestd::net {

struct StreamConfig {
  std::string host;
  int port = 0;
  std::string unix_path;  // set: a unix socket instead of host:port
  uint64_t connect_timeout_ms = 10000;
  // Set: a TLS client session; the certificate is checked against
  // server_name (empty: host) when the context verifies.
  std::shared_ptr<const tls::Context> tls;
  std::string server_name;
  size_t write_limit = 8u << 20;
};

// What a stream reports; every callback runs from the loop, never inside
// open / write / close. Any may be empty.
struct StreamCallbacks {
  std::function<void()> on_connected;
  std::function<void(const char *data, size_t len)> on_data;  // borrowed
  std::function<void()> on_drain;
  std::function<void(const std::string &reason)> on_closed;  // once, not after close()
};

// "no host and no unix_path", "port 0 is out of range 1..65535"; empty when
// the address part of cfg can work. TLS files are checked where the
// context is built (tls::Context::client).
std::string check_address(const StreamConfig &cfg);

class Stream {
 public:
  enum class Write { kOk, kFull, kClosed };

  // Starts connecting. The stream frees itself after on_closed returns, or
  // after close(): the pointer is invalid from then on. Null (with *err) for
  // a config check_address refuses.
  static Stream *open(uv_loop_t *loop, StreamConfig cfg, StreamCallbacks cb, std::string *err);

  // Copies `data`; queued until connected, then written in order. kFull:
  // the queue holds bytes and taking these would pass write_limit (nothing
  // taken; on_drain follows once it is below half). A write into an empty
  // queue is always taken, so one message larger than the limit can leave.
  Write write(std::string_view data);
  // Bytes taken and not yet written to the socket (ciphertext once encrypted).
  size_t pending() const { return pre_.size() + out_.size() + inflight_.size(); }
  // Closes now, drops what is queued; no callback after. Invalidates the pointer.
  void close();

  bool connected() const { return state_ == State::kOpen; }
  // "localhost:6379" or the unix path, for logs and reasons.
  const std::string &peer() const { return peer_; }

  Stream(const Stream &) = delete;
  Stream &operator=(const Stream &) = delete;

 private:
  enum class State { kResolving, kConnecting, kHandshaking, kOpen, kClosed };
  struct Socket;
  class Hold;

  Stream(uv_loop_t *loop, StreamConfig cfg, StreamCallbacks cb);
  ~Stream() = default;

  void start();
  void try_next_address();
  void on_socket_connected();
  void on_open();
  void on_bytes(const char *data, size_t n);
  void flush_tls();
  void start_write();
  void fail(std::string reason);
  void fail_soon(std::string reason);
  void teardown();
  void close_socket();
  void maybe_free();

  static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res);
  static void on_connect(uv_connect_t *req, int status);
  static void on_write(uv_write_t *req, int status);
  static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
  static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
  static void on_timeout(uv_timer_t *t);
  static void on_idle(uv_idle_t *h);
  static void on_handle_closed(uv_handle_t *h);
  static void on_socket_closed(uv_handle_t *h);

  uv_loop_t *loop_;
  StreamConfig cfg_;
  StreamCallbacks cb_;
  std::string peer_;
  State state_ = State::kResolving;
  bool closed_ = false;    // torn down: no callback any more
  bool released_ = false;  // the owner let go (close(), or on_closed returned)
  int outstanding_ = 0;    // uv requests and handles whose callbacks are due
  bool full_ = false;      // a write answered kFull: on_drain is owed
  std::string failure_;    // fail_soon's reason, reported from the idle handle

  uv_timer_t timer_{};
  uv_idle_t idle_{};
  uv_getaddrinfo_t resolve_{};
  bool resolving_ = false;
  uv_connect_t connect_{};
  uv_write_t write_req_{};
  Socket *sock_ = nullptr;  // the current attempt's socket
  std::vector<sockaddr_storage> addrs_;
  size_t next_addr_ = 0;
  std::string current_addr_;  // "127.0.0.1:6379" of the attempt, for reasons
  std::string last_error_;

  std::unique_ptr<tls::Session> session_;
  std::string pre_;       // plaintext taken before the stream was open
  std::string out_;       // bytes for the socket, not yet in a uv_write
  std::string inflight_;  // the bytes of the uv_write in flight
  bool writing_ = false;
  char rbuf_[64 * 1024];
  char plain_[16 * 1024];
};

}  // namespace ingestd::net
