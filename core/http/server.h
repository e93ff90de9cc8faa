// HTTP/1.1 server for ingestd listeners: keep-alive, pipelining, chunked and
// gzip/deflate request bodies, limits and timeouts, on one libuv loop.
//
// Threading: everything here runs on the loop thread of the Server. Nothing is
// thread-safe; the only cross-thread use is "none".
//
// Process contract: the process must ignore SIGPIPE (libuv writes with
// write(2), so a peer reset would otherwise kill the process).
#pragma once

#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ingestd::tls {
class Context;
}

namespace ingestd::http {

struct ServerLimits {
  // Request body as it arrives on the wire (compressed). Content-Length above
  // it: 413 at once, before the body is read; chunked: 413 as soon as exceeded.
  size_t max_body = 1 << 20;
  // Output cap for gzip/deflate bodies: 413 as soon as inflating passes it.
  size_t max_body_decompressed = 8 << 20;
  // Request line + headers (and chunked trailers): 431.
  size_t max_header = 16 << 10;
  // header: from the request's first byte until its headers are complete.
  // body: from the headers until the whole body arrived (a total, not per
  // read, so a trickled body cannot hold a connection). Both answer 408 then
  // close. idle: keep-alive wait between requests; closes without an answer.
  // body_timeout_ms also bounds how long a response may take to be written.
  uint64_t header_timeout_ms = 10000;
  uint64_t body_timeout_ms = 30000;
  uint64_t idle_timeout_ms = 60000;
  // Open connections per Server. Over it a new connection is accepted and
  // closed at once (what nginx does when worker_connections run out), so the
  // kernel backlog never fills with clients that would wait forever.
  size_t max_connections = 10000;
  // CIDRs ("10.0.0.0/8", "::1", "2001:db8::/32"). X-Forwarded-For is honoured
  // only when the peer is in one of them; the client is the rightmost address
  // that is not a trusted proxy.
  std::vector<std::string> trusted_proxies;
  // Media types allowed for request bodies ("application/json"); parameters
  // such as charset are ignored; empty = any. Other types, or a body without
  // Content-Type: 415.
  std::vector<std::string> content_types;
  // Set: the listener speaks HTTPS with this server context (shared by the
  // workers). The TLS handshake must finish within header_timeout.
  std::shared_ptr<const tls::Context> tls;
  // Refusals the server itself answers (413) in API Gateway's words
  // (answers.h) instead of ingestd's.
  bool api_gateway_answers = false;
  // The handler decodes gzip/deflate bodies itself (Request::decode_body),
  // once it has decided to take the request: a body refused unread (503 under
  // overload, 401, 404) then costs no inflating.
  bool defer_decoding = false;
};

namespace detail {
class ConnectionCore;
class Connection;
class ServerImpl;
}  // namespace detail

struct Response;

// One parsed request. Valid until its Responder is used (or destroyed); all
// views point into per-connection buffers that the next request reuses.
class Request {
 public:
  std::string_view method() const { return method_; }
  std::string_view path() const { return path_; }
  std::string_view query() const { return query_; }  // without '?'
  // Case-insensitive; the first header of that name; value without
  // surrounding whitespace. O(number of headers).
  std::optional<std::string_view> header(std::string_view name) const;
  // De-chunked and decompressed; with ServerLimits::defer_decoding, still
  // compressed until decode_body().
  std::string_view body() const { return body_; }
  // The body is gzip/deflate and not decoded yet (only with defer_decoding).
  bool body_encoded() const { return body_encoded_; }
  // Decodes such a body, after which body() gives the decoded bytes. Returns
  // nullopt, or the answer to send instead: 400 (invalid gzip or deflate) or
  // 413 (past max_body_decompressed), which keep the connection, as when the
  // server decodes. Does nothing for a body that is not encoded.
  std::optional<Response> decode_body();
  // Peer IP, or the client from X-Forwarded-For when the peer is trusted.
  std::string_view client_address() const { return client_address_; }
  // The TLS client certificate's subject (CN, else the first subjectAltName)
  // on a listener that verifies client certificates; empty otherwise.
  std::string_view peer_identity() const { return peer_identity_; }
  // Loop time (uv_now) when the request's first byte arrived.
  uint64_t start_ms() const { return start_ms_; }
  bool http_1_0() const { return http_1_0_; }

 private:
  friend class detail::ConnectionCore;
  detail::ConnectionCore *core_ = nullptr;
  std::string_view method_, path_, query_, body_, client_address_, peer_identity_;
  uint64_t start_ms_ = 0;
  bool http_1_0_ = false;
  bool body_encoded_ = false;
};

struct Response {
  int status = 200;
  std::string body;
  // Static text (a literal): a std::string of 16 bytes would be one heap
  // block per answer. Empty: no Content-Type.
  std::string_view content_type = "application/json";
  // Extra headers. Content-Length, Transfer-Encoding and Connection are the
  // server's and are dropped, as is any header containing CR or LF.
  std::vector<std::pair<std::string, std::string>> headers;
};

// The right (and duty) to answer one request. Move-only.
// respond() at most once, now or later from any callback on the Server's loop;
// it is a no-op when the connection is gone (client left, timeout, close()).
// Destroying a Responder that has not responded answers 500
// {"error":"internal error"} and logs nothing (the observer still sees the
// 500); so a handler that throws or forgets still answers exactly once.
class Responder {
 public:
  Responder() = default;
  Responder(Responder &&other) noexcept = default;
  Responder &operator=(Responder &&other) noexcept;
  Responder(const Responder &) = delete;
  Responder &operator=(const Responder &) = delete;
  ~Responder();

  void respond(Response r);
  // False once respond() was called, the Responder was moved from, or the
  // connection is gone.
  bool pending() const { return !conn_.expired(); }

 private:
  friend class detail::Connection;
  Responder(std::weak_ptr<detail::Connection> conn, uint64_t seq)
      : conn_(std::move(conn)), seq_(seq) {}
  std::weak_ptr<detail::Connection> conn_;
  uint64_t seq_ = 0;
};

using Handler = std::function<void(Request &, Responder)>;

struct ServerObserver {
  // Once per answered request, server-generated errors included, when the
  // answer is queued for writing. request is null when the request line never
  // parsed. Status 499 (nginx's "client closed request"): a request abandoned
  // without an answer (client left, or close() forced it).
  std::function<void(const Request *request, int status, size_t bytes_in, uint64_t latency_ms)>
      on_response;
  // A TLS connection ended without a usable session: `kind` is plain_http,
  // handshake, protocol or timeout; `detail` is OpenSSL's reason.
  std::function<void(std::string_view kind, std::string_view detail)> on_tls_error;
};

class Server {
 public:
  // Throws std::invalid_argument for an invalid trusted_proxies entry.
  Server(uv_loop_t *loop, ServerLimits limits, Handler handler, ServerObserver observer = {});
  // Runs on the loop thread (or after the loop stopped). If close() has
  // completed (done ran), or nothing was ever opened, memory is freed at once.
  // Otherwise everything is force-closed without further callbacks (handler,
  // observer, done) and the memory is freed in the close callbacks: the loop
  // must run again (uv_run) before uv_loop_close, as for any uv handle.
  ~Server();
  Server(const Server &) = delete;
  Server &operator=(const Server &) = delete;

  // "127.0.0.1:8080", "[::1]:0", "0.0.0.0:0". 0 or a negative uv error.
  // One listening socket per Server: a second listen/adopt is UV_EBUSY.
  int listen(const std::string &host_port, bool reuse_port = false);
  // Accepts on an already listening socket. The fd is dup'ed: the caller keeps
  // its own fd (note: the shared file description becomes non-blocking).
  int adopt(int listen_fd);
  // The bound port, or a negative uv error.
  int local_port() const;
  // Closes the listening socket; open connections continue.
  void stop_accepting();
  // Graceful close: stop accepting; idle keep-alive connections close at once;
  // requests in progress finish and are answered with "Connection: close";
  // after deadline_ms everything left is closed (0: at once). `done` runs on
  // the loop once every handle of this Server is closed (the Server may be
  // destroyed from inside it); with nothing open it may run before close()
  // returns. A second call replaces `done`, or runs it at once if the close
  // already completed.
  void close(uint64_t deadline_ms, std::function<void()> done);
  // Connections not yet fully closed.
  size_t connection_count() const;

 private:
  detail::ServerImpl *impl_;  // freed in the last close callback when destroyed while open
};

}  // namespace ingestd::http
