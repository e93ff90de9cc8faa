// The HTTP/1.1 protocol state of one connection, without sockets: bytes in,
// requests out to a handler, response bytes out, timer and close decisions.
// server.cc drives it from libuv; the fuzzer drives it from a byte array.
#pragma once

#include <llhttp.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "http/address.h"
#include "http/inflate.h"
#include "http/server.h"

namespace ingestd::http::detail {

// Shared by every connection of one Server; immutable once built.
struct CoreConfig {
  explicit CoreConfig(ServerLimits l);
  ServerLimits limits;
  TrustedProxies proxies;
};

// What the core asks of its transport. Contract: no call may re-enter the
// core synchronously except io_dispatch (the handler may respond at once);
// write completion is reported later through ConnectionCore::on_write_done.
class ConnectionIo {
 public:
  // Writes `data`, which stays valid and unchanged until the write completes.
  // `response`: completion must be reported with on_write_done; other writes
  // (100 Continue, a static string) need no report. 0 or a negative error.
  virtual int io_write(std::string_view data, bool response) = 0;
  virtual void io_read(bool on) = 0;
  virtual void io_timer(uint64_t timeout_ms) = 0;  // 0 disarms; re-arming replaces
  // Shut the write side down once queued writes are done; keep reading (the
  // core discards) until the core closes.
  virtual void io_linger() = 0;
  // Close the connection. The core makes no io_* call afterwards.
  virtual void io_close() = 0;
  virtual uint64_t io_now() = 0;
  virtual void io_dispatch(Request &request, uint64_t seq) = 0;
  virtual void io_observe(const Request *request, int status, size_t bytes_in,
                          uint64_t latency_ms) = 0;

 protected:
  ~ConnectionIo() = default;
};

class ConnectionCore {
 public:
  // Lingering close after an early error: read and discard for this long, or
  // this many bytes, so the client reads the answer instead of a reset.
  static constexpr uint64_t kLingerMs = 2000;
  // Graceful close: an idle keep-alive connection is closed once it has been
  // quiet this long, so a client practically never has a request in flight
  // on a socket the server closes (a busy one gets Connection: close on its
  // next answer instead).
  static constexpr uint64_t kDrainQuietMs = 1000;
  static constexpr size_t kLingerMaxBytes = 16 << 20;
  // Per-connection read buffer, allocated on the first read and kept.
  static constexpr size_t kReadBufferSize = 16 << 10;

  ConnectionCore(const CoreConfig &config, Inflater &inflater, ConnectionIo &io);
  ConnectionCore(const ConnectionCore &) = delete;
  ConnectionCore &operator=(const ConnectionCore &) = delete;

  // `peer` is the textual peer IP (may be empty when unknown).
  void start(std::string_view peer);
  // The TLS client certificate's subject (CN or first SAN), once the
  // handshake is done; Request::peer_identity() gives it.
  void set_peer_identity(std::string_view id) { peer_identity_.assign(id); }
  // Where the next read may put bytes; empty when the buffer is full.
  std::span<char> read_space();
  void on_read(size_t n);
  void on_eof();  // the peer shut down its write side
  void on_read_error();
  void on_write_done(int status);
  void on_timer();
  // The answer to request `seq`; ignored unless it is the one awaiting answer.
  void respond(uint64_t seq, Response &&response);
  // Graceful close: idle now, otherwise after the current answer.
  void shutdown();
  // Close now; an unanswered request is reported as 499.
  void abort();
  bool closed() const { return phase_ == Phase::kClosed; }

  // For Request::header().
  std::optional<std::string_view> find_header(std::string_view name) const;
  // For Request::decode_body(): inflates the body into the request, or gives
  // the refusal to send.
  std::optional<Response> decode_body();

 private:
  enum class Phase { kIdle, kHeaders, kBody, kHandler, kWriting, kLinger, kClosed };
  enum class Event { kNone, kHeadersComplete, kMessageComplete };
  struct Span {
    uint32_t off = 0, len = 0;
  };
  struct HeaderSpan {
    Span name, value;
  };

  static const llhttp_settings_t &settings();
  static int cb_message_begin(llhttp_t *p);
  static int cb_url(llhttp_t *p, const char *at, size_t len);
  static int cb_header_field(llhttp_t *p, const char *at, size_t len);
  static int cb_header_field_complete(llhttp_t *p);
  static int cb_header_value(llhttp_t *p, const char *at, size_t len);
  static int cb_header_value_complete(llhttp_t *p);
  static int cb_headers_complete(llhttp_t *p);
  static int cb_body(llhttp_t *p, const char *at, size_t len);
  static int cb_message_complete(llhttp_t *p);
  int append_head(const char *at, size_t len);

  bool parsing() const {
    return phase_ == Phase::kIdle || phase_ == Phase::kHeaders || phase_ == Phase::kBody;
  }
  void parse();
  void begin_request();
  bool headers_done();  // false: an error answer was sent
  void message_done();
  void materialize_request();
  std::string_view span(Span s) const { return std::string_view(head_).substr(s.off, s.len); }
  void send(const Response &r, bool force_close, bool linger);
  void send_error(int status, std::string_view message, size_t limit = 0, bool close = true);
  // {"error": message, "limit": limit (unless 0)}; a 413 in API Gateway's
  // words on a listener that answers as it does.
  Response error_response(int status, std::string_view message, size_t limit) const;
  void finish_request();
  void wait_for_quiet();
  void abandon_request();
  void close_now();
  void update_reading();

  const CoreConfig &config_;
  Inflater &inflater_;
  ConnectionIo &io_;
  llhttp_t parser_;

  Phase phase_ = Phase::kIdle;
  Event event_ = Event::kNone;
  std::unique_ptr<char[]> buf_;  // read buffer: [pos_, fill_) not parsed yet
  size_t pos_ = 0, fill_ = 0;
  bool reading_ = false;
  bool eof_ = false;
  bool shutting_down_ = false;
  bool served_ = false;      // a request was answered: idle now means between requests
  uint64_t idle_since_ = 0;  // io_now() when the last answer was written
  size_t linger_bytes_ = 0;

  // Per request; the containers keep their capacity from request to request.
  std::string head_;  // URL, header names and values, back to back
  Span url_;
  std::vector<HeaderSpan> headers_;
  bool in_value_ = false;
  std::string body_;
  std::string inflated_;
  std::vector<std::string_view> xff_;
  Request request_;
  uint64_t seq_ = 0;
  size_t header_bytes_ = 0;
  size_t req_bytes_ = 0;
  bool request_line_done_ = false;
  bool headers_complete_ = false;
  bool keep_alive_ = true;
  bool close_after_ = false;
  bool linger_after_ = false;
  bool is_head_ = false;
  bool body_too_large_ = false;
  bool trailers_too_large_ = false;
  Encoding encoding_ = Encoding::kIdentity;

  // Per connection.
  std::string peer_text_;
  std::string peer_identity_;
  IpAddress peer_;
  std::string out_;  // the response being written
};

}  // namespace ingestd::http::detail
