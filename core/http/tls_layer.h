// The TLS side of one server connection, without sockets: ciphertext in,
// plaintext into the ConnectionCore, ciphertext out. server.cc drives it from
// libuv; the fuzzer drives it from a byte array.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "http/connection_core.h"
#include "tls/tls.h"

namespace ingestd::http::detail {

class TlsLayer {
 public:
  enum class Failure {
    kNone,
    kPlainHttp,  // an HTTP request line where a ClientHello belongs
    kHandshake,  // not TLS, a version or cipher we refuse, no or a bad client certificate
    kProtocol    // a TLS error after the handshake
  };

  explicit TlsLayer(std::shared_ptr<const tls::Context> ctx) : session_(std::move(ctx)) {}

  bool valid() const { return session_.valid(); }
  // Ciphertext from the socket; deliver() next.
  void feed(const char *data, size_t n);
  // Moves decrypted bytes into `core` while `core_reading` (the transport's
  // flag, which the core switches through io_read) holds, and reports the
  // peer's close_notify as EOF. false: close the connection (failure() says
  // why; take_output() may hold an alert, or plain_http_answer() is due).
  bool deliver(ConnectionCore &core, const bool &core_reading);
  // Plaintext to send (answers); false on failure.
  bool write(std::string_view plain) { return session_.write(plain); }
  void close_notify() { session_.shutdown(); }
  size_t take_output(std::string *out) { return session_.take_output(out); }
  bool has_output() const { return session_.has_output(); }
  bool handshake_done() const { return session_.handshake_done(); }
  Failure failure() const { return failure_; }
  const std::string &error() const { return session_.error(); }
  const tls::Session &session() const { return session_; }

  // What nginx does for plain HTTP on an HTTPS port: a readable 400 instead
  // of an alert the client cannot show.
  static std::string_view plain_http_answer();

 private:
  tls::Session session_;
  Failure failure_ = Failure::kNone;
  bool sniffed_ = false;
  bool identity_set_ = false;
};

const char *failure_name(TlsLayer::Failure f);

}  // namespace ingestd::http::detail
