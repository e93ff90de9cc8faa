// Plaintext between a tls::Session and the HTTP state machine (tls_layer.h).
#include "http/tls_layer.h"

namespace ingestd::http::detail {

namespace {
// A TLS record starts with its content type; a ClientHello is a handshake
// record (22). Upper-case letters there are an HTTP method.
constexpr unsigned char kHandshakeRecord = 0x16;
}  // namespace

const char *failure_name(TlsLayer::Failure f) {
  switch (f) {
    case TlsLayer::Failure::kNone:
      return "none";
    case TlsLayer::Failure::kPlainHttp:
      return "plain_http";
    case TlsLayer::Failure::kHandshake:
      return "handshake";
    case TlsLayer::Failure::kProtocol:
      return "protocol";
  }
  return "unknown";
}

std::string_view TlsLayer::plain_http_answer() {
  static constexpr std::string_view kAnswer =
      "HTTP/1.1 400 Bad Request\r\n"
      "Content-Type: application/json\r\n"
      "Content-Length: 54\r\n"
      "Connection: close\r\n"
      "\r\n"
      R"({"error":"plain HTTP request sent to an HTTPS port"})"
      "\r\n";
  return kAnswer;
}

void TlsLayer::feed(const char *data, size_t n) {
  if (n == 0) return;
  if (!sniffed_) {
    sniffed_ = true;
    auto first = static_cast<unsigned char>(data[0]);
    if (first != kHandshakeRecord && first >= 'A' && first <= 'Z') {
      failure_ = Failure::kPlainHttp;
      return;
    }
  }
  if (failure_ == Failure::kNone) session_.feed(data, n);
}

bool TlsLayer::deliver(ConnectionCore &core, const bool &core_reading) {
  if (failure_ != Failure::kNone) return false;
  if (!session_.handshake_done()) {
    auto s = session_.handshake();
    if (s == tls::Session::Status::kError) {
      failure_ = Failure::kHandshake;
      return false;
    }
    if (s != tls::Session::Status::kOk) return s != tls::Session::Status::kClosed;
  }
  if (!identity_set_) {
    identity_set_ = true;
    core.set_peer_identity(session_.peer_identity());
  }
  while (core_reading && !core.closed()) {
    auto space = core.read_space();
    if (space.empty()) return true;  // the core stops reading until it answers
    auto r = session_.read(space);
    if (r.n > 0) {
      core.on_read(r.n);
      continue;
    }
    switch (r.status) {
      case tls::Session::Status::kOk:
      case tls::Session::Status::kWantMore:
        return true;
      case tls::Session::Status::kClosed:
        core.on_eof();
        return true;
      case tls::Session::Status::kError:
        failure_ = Failure::kProtocol;
        return false;
    }
  }
  return true;
}

}  // namespace ingestd::http::detail
