// HTTP/1.1 connection state machine over llhttp; see connection_core.h.
//
// The parser is paused at the end of the headers (to apply limits and send
// 100 Continue before the body is read) and at the end of each message (so a
// pipelined request is parsed only after the previous answer was written).
// Bytes that arrive meanwhile wait in the read buffer; reading stops when it is
// full, so a client cannot make the server run ahead without bound.
#include "http/connection_core.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

#include "http/answers.h"
#include "http/strings.h"

namespace ingestd::http {

std::optional<std::string_view> Request::header(std::string_view name) const {
  if (core_ == nullptr) return std::nullopt;
  return core_->find_header(name);
}

std::optional<Response> Request::decode_body() {
  if (!body_encoded_ || core_ == nullptr) return std::nullopt;
  body_encoded_ = false;
  return core_->decode_body();
}

namespace detail {

namespace {

constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
constexpr std::string_view kAllow = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";
// Body buffers above this are released after the request instead of kept.
constexpr size_t kKeepCapacity = 256 << 10;

std::string_view reason_phrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 304:
      return "Not Modified";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 411:
      return "Length Required";
    case 413:
      return "Content Too Large";
    case 415:
      return "Unsupported Media Type";
    case 417:
      return "Expectation Failed";
    case 422:
      return "Unprocessable Content";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

void append_uint(std::string &out, uint64_t v) {
  char buf[24];
  auto res = std::to_chars(buf, buf + sizeof(buf), v);
  out.append(buf, res.ptr);
}

bool has_crlf(std::string_view s) {
  return s.find_first_of("\r\n") != std::string_view::npos;
}

void release_if_big(std::string &s) {
  if (s.capacity() > kKeepCapacity) {
    std::string().swap(s);
  } else {
    s.clear();
  }
}

ConnectionCore *core_of(llhttp_t *p) {
  return static_cast<ConnectionCore *>(p->data);
}

}  // namespace

CoreConfig::CoreConfig(ServerLimits l) : limits(std::move(l)), proxies(limits.trusted_proxies) {}

ConnectionCore::ConnectionCore(const CoreConfig &config, Inflater &inflater, ConnectionIo &io)
    : config_(config), inflater_(inflater), io_(io) {
  llhttp_init(&parser_, HTTP_REQUEST, &settings());
  parser_.data = this;
}

const llhttp_settings_t &ConnectionCore::settings() {
  static const llhttp_settings_t s = [] {
    llhttp_settings_t st;
    llhttp_settings_init(&st);
    st.on_message_begin = cb_message_begin;
    st.on_url = cb_url;
    st.on_version_complete = [](llhttp_t *p) {
      core_of(p)->request_line_done_ = true;
      return 0;
    };
    st.on_header_field = cb_header_field;
    st.on_header_field_complete = cb_header_field_complete;
    st.on_header_value = cb_header_value;
    st.on_header_value_complete = cb_header_value_complete;
    st.on_headers_complete = cb_headers_complete;
    st.on_body = cb_body;
    st.on_message_complete = cb_message_complete;
    return st;
  }();
  return s;
}

// --- llhttp callbacks: they only record; decisions are taken in parse() ----

int ConnectionCore::cb_message_begin(llhttp_t *p) {
  auto *c = core_of(p);
  c->head_.clear();
  c->headers_.clear();
  c->url_ = {};
  c->in_value_ = false;
  return 0;
}

int ConnectionCore::append_head(const char *at, size_t len) {
  if (headers_complete_) {  // chunked trailers: counted, not kept
    header_bytes_ += len;
    if (header_bytes_ > config_.limits.max_header) {
      trailers_too_large_ = true;
      return HPE_USER;
    }
    return -2;  // "ignore": callers return 0
  }
  head_.append(at, len);
  return 0;
}

int ConnectionCore::cb_url(llhttp_t *p, const char *at, size_t len) {
  auto *c = core_of(p);
  if (c->url_.len == 0) c->url_.off = static_cast<uint32_t>(c->head_.size());
  c->head_.append(at, len);
  c->url_.len += static_cast<uint32_t>(len);
  return 0;
}

int ConnectionCore::cb_header_field(llhttp_t *p, const char *at, size_t len) {
  auto *c = core_of(p);
  if (!c->headers_complete_ && (c->headers_.empty() || c->in_value_)) {
    c->in_value_ = false;
    auto off = static_cast<uint32_t>(c->head_.size());
    c->headers_.push_back({{off, 0}, {off, 0}});
  }
  int rc = c->append_head(at, len);
  if (rc == HPE_USER) return rc;
  if (rc == 0) c->headers_.back().name.len += static_cast<uint32_t>(len);
  return 0;
}

int ConnectionCore::cb_header_field_complete(llhttp_t *p) {
  auto *c = core_of(p);
  if (c->headers_complete_) return 0;
  if (c->headers_.empty() || c->in_value_) {  // empty name (llhttp rejects it anyway)
    auto off = static_cast<uint32_t>(c->head_.size());
    c->headers_.push_back({{off, 0}, {off, 0}});
  }
  c->in_value_ = true;
  c->headers_.back().value = {static_cast<uint32_t>(c->head_.size()), 0};
  return 0;
}

int ConnectionCore::cb_header_value(llhttp_t *p, const char *at, size_t len) {
  auto *c = core_of(p);
  if (!c->headers_complete_ && !c->in_value_) cb_header_field_complete(p);
  int rc = c->append_head(at, len);
  if (rc == HPE_USER) return rc;
  if (rc == 0) c->headers_.back().value.len += static_cast<uint32_t>(len);
  return 0;
}

int ConnectionCore::cb_header_value_complete(llhttp_t *p) {
  auto *c = core_of(p);
  if (c->headers_complete_ || c->headers_.empty()) return 0;
  Span &v = c->headers_.back().value;
  while (v.len > 0 && (c->head_[v.off + v.len - 1] == ' ' || c->head_[v.off + v.len - 1] == '\t')) {
    --v.len;
  }
  return 0;
}

int ConnectionCore::cb_headers_complete(llhttp_t *p) {
  auto *c = core_of(p);
  c->headers_complete_ = true;
  c->event_ = Event::kHeadersComplete;
  return HPE_PAUSED;
}

int ConnectionCore::cb_body(llhttp_t *p, const char *at, size_t len) {
  auto *c = core_of(p);
  if (len > c->config_.limits.max_body - c->body_.size()) {
    c->body_too_large_ = true;
    return HPE_USER;
  }
  c->body_.append(at, len);
  return 0;
}

int ConnectionCore::cb_message_complete(llhttp_t *p) {
  auto *c = core_of(p);
  c->keep_alive_ = c->keep_alive_ && llhttp_should_keep_alive(p) != 0;
  c->event_ = Event::kMessageComplete;
  return HPE_PAUSED;
}

// --- transport events -----------------------------------------------------

void ConnectionCore::start(std::string_view peer) {
  peer_text_.assign(peer);
  if (auto ip = parse_ip(peer)) {
    peer_ = *ip;
    if (ip->family == 4 && peer.find(':') != std::string_view::npos) {
      char text[INET_ADDRSTRLEN];  // "::ffff:1.2.3.4" from a dual-stack socket
      if (inet_ntop(AF_INET, ip->bytes.data(), text, sizeof(text))) peer_text_ = text;
    }
  }
  phase_ = Phase::kIdle;
  // The first request of a connection gets header_timeout, as in nginx: a
  // connection that never sends a byte is not entitled to the idle time.
  io_.io_timer(config_.limits.header_timeout_ms);
  update_reading();
}

std::span<char> ConnectionCore::read_space() {
  if (!buf_) buf_ = std::make_unique_for_overwrite<char[]>(kReadBufferSize);
  if (pos_ == fill_) {
    pos_ = fill_ = 0;
  } else if (pos_ > 0 && fill_ == kReadBufferSize) {
    std::memmove(buf_.get(), buf_.get() + pos_, fill_ - pos_);
    fill_ -= pos_;
    pos_ = 0;
  }
  return {buf_.get() + fill_, kReadBufferSize - fill_};
}

void ConnectionCore::on_read(size_t n) {
  if (closed()) return;
  fill_ += n;
  if (phase_ == Phase::kLinger) {
    linger_bytes_ += n;
    pos_ = fill_ = 0;
    if (linger_bytes_ > kLingerMaxBytes) close_now();
    return;
  }
  if (parsing()) parse();
  update_reading();
}

void ConnectionCore::on_eof() {
  switch (phase_) {
    case Phase::kWriting:
      // Half-closed: the answer may still be read; close once it is written.
      eof_ = true;
      close_after_ = true;
      linger_after_ = false;
      update_reading();
      return;
    case Phase::kClosed:
      return;
    default:
      // Like nginx: a client that ends its side while its request is in
      // progress has left (499); idle and lingering connections just close.
      abort();
  }
}

void ConnectionCore::on_read_error() {
  abort();
}

void ConnectionCore::on_write_done(int status) {
  if (phase_ != Phase::kWriting) return;
  if (status < 0) {
    close_now();
    return;
  }
  if (close_after_) {
    if (!linger_after_ || eof_) {
      close_now();
      return;
    }
    phase_ = Phase::kLinger;
    linger_bytes_ = 0;
    pos_ = fill_ = 0;
    io_.io_timer(kLingerMs);
    io_.io_linger();
    update_reading();
    return;
  }
  finish_request();
  parse();
  update_reading();
}

void ConnectionCore::on_timer() {
  switch (phase_) {
    case Phase::kHeaders:
    case Phase::kBody:
      send_error(408, "request timeout");
      update_reading();
      return;
    case Phase::kHandler:  // the handler owns the time now
    case Phase::kClosed:
      return;
    default:  // idle, answer not taken by the client, lingering done
      close_now();
  }
}

void ConnectionCore::respond(uint64_t seq, Response &&response) {
  if (phase_ != Phase::kHandler || seq != seq_) return;
  send(response, false, false);
  update_reading();
}

void ConnectionCore::shutdown() {
  shutting_down_ = true;
  // Nothing is closed under a client that may be sending: a request already
  // on its way (in the socket buffer, or sent the moment the previous answer
  // arrived) is served and answered with Connection: close. An idle
  // connection closes once it has been quiet for kDrainQuietMs; one that is
  // answering goes idle after the answer (which said keep-alive) and follows
  // the same rule. A connection accepted a moment ago has its first request
  // on the way: it gets header_timeout, as before.
  if (phase_ == Phase::kIdle && served_) wait_for_quiet();
}

void ConnectionCore::wait_for_quiet() {
  uint64_t idle = io_.io_now() - idle_since_;
  if (idle >= kDrainQuietMs) {
    close_now();
    return;
  }
  io_.io_timer(kDrainQuietMs - idle);
}

void ConnectionCore::abort() {
  if (closed()) return;
  if (phase_ == Phase::kHeaders || phase_ == Phase::kBody || phase_ == Phase::kHandler) {
    abandon_request();
  }
  close_now();
}

std::optional<std::string_view> ConnectionCore::find_header(std::string_view name) const {
  for (const auto &h : headers_) {
    if (iequals(span(h.name), name)) return span(h.value);
  }
  return std::nullopt;
}

// --- parsing ----------------------------------------------------------------

void ConnectionCore::begin_request() {
  phase_ = Phase::kHeaders;
  request_.start_ms_ = io_.io_now();
  header_bytes_ = 0;
  req_bytes_ = 0;
  io_.io_timer(config_.limits.header_timeout_ms);  // once: trickling bytes do not extend it
}

void ConnectionCore::parse() {
  bool resume_empty = false;  // after a pause llhttp may finish a message with no new bytes
  while (parsing()) {
    size_t avail = fill_ - pos_;
    if (avail == 0 && !resume_empty) break;
    resume_empty = false;
    if (phase_ == Phase::kIdle) {
      // Stray CRLFs between requests (RFC 9112 2.2) do not start a request.
      while (pos_ < fill_ && (buf_[pos_] == '\r' || buf_[pos_] == '\n'))
        ++pos_;
      if (pos_ == fill_) break;
      avail = fill_ - pos_;
      begin_request();
    }
    const char *data = buf_.get() + pos_;
    const bool in_head = !headers_complete_;
    event_ = Event::kNone;
    llhttp_errno_t err = llhttp_execute(&parser_, data, avail);
    size_t used = avail;
    if (err != HPE_OK) {
      const char *at = llhttp_get_error_pos(&parser_);
      if (at >= data && at <= data + avail) used = static_cast<size_t>(at - data);
    }
    pos_ += used;
    req_bytes_ += used;
    if (in_head) {
      header_bytes_ += used;
      if (header_bytes_ > config_.limits.max_header) {
        send_error(431, "request header fields too large", config_.limits.max_header);
        return;
      }
    }
    if (err == HPE_OK) continue;
    if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
      if (err == HPE_PAUSED) llhttp_resume(&parser_);
      if (event_ == Event::kHeadersComplete && err == HPE_PAUSED) {
        if (!headers_done()) return;
        resume_empty = true;
        continue;
      }
      if (event_ == Event::kMessageComplete) {
        if (err == HPE_PAUSED_UPGRADE) keep_alive_ = false;  // the parser cannot go on
        message_done();
        continue;
      }
    }
    if (err == HPE_USER && body_too_large_) {
      send_error(413, "request body too large", config_.limits.max_body);
    } else if (err == HPE_USER && trailers_too_large_) {
      send_error(431, "request header fields too large", config_.limits.max_header);
    } else {
      send_error(400, "malformed request");
    }
    return;
  }
}

void ConnectionCore::materialize_request() {
  request_.core_ = this;
  request_.method_ = llhttp_method_name(static_cast<llhttp_method_t>(parser_.method));
  std::string_view url = span(url_);
  // absolute-form (RFC 9112 3.2.2): keep the path and query only.
  if (url.size() > 7 && (iequals(url.substr(0, 7), "http://") ||
                         (url.size() > 8 && iequals(url.substr(0, 8), "https://")))) {
    size_t slash = url.find('/', url.find("//") + 2);
    url = slash == std::string_view::npos ? std::string_view("/") : url.substr(slash);
  }
  size_t q = url.find('?');
  request_.path_ = url.substr(0, q);
  request_.query_ = q == std::string_view::npos ? std::string_view{} : url.substr(q + 1);
  request_.http_1_0_ = parser_.http_major == 1 && parser_.http_minor == 0;
  request_.body_ = {};
  is_head_ = parser_.method == HTTP_HEAD;
  request_.peer_identity_ = peer_identity_;
  if (config_.proxies.empty()) {
    request_.client_address_ = peer_text_;
  } else {
    xff_.clear();
    for (const auto &h : headers_) {
      if (iequals(span(h.name), "x-forwarded-for")) xff_.push_back(span(h.value));
    }
    request_.client_address_ = config_.proxies.client(peer_, peer_text_, xff_);
  }
}

bool ConnectionCore::headers_done() {
  materialize_request();
  const auto &limits = config_.limits;
  if (parser_.http_major != 1) {
    send_error(505, "http version not supported");
    return false;
  }
  const bool chunked = (parser_.flags & F_CHUNKED) != 0;
  const bool has_length = (parser_.flags & F_CONTENT_LENGTH) != 0;
  if (parser_.flags & F_TRANSFER_ENCODING) {
    // llhttp already refuses a request whose last coding is not chunked;
    // "gzip, chunked" would need a decoder we do not have (RFC 9112 6.1: 501).
    auto te = find_header("transfer-encoding");
    if (!te || !iequals(trim(*te), "chunked")) {
      send_error(501, "unsupported transfer encoding");
      return false;
    }
  }
  const uint64_t length = has_length ? parser_.content_length : 0;
  const bool has_body = chunked || length > 0;
  const auto method = parser_.method;
  if (!has_length && !chunked &&
      (method == HTTP_POST || method == HTTP_PUT || method == HTTP_PATCH)) {
    send_error(411, "length required");
    return false;
  }
  if (length > limits.max_body) {
    send_error(413, "request body too large", limits.max_body);
    return false;
  }
  encoding_ = Encoding::kIdentity;
  if (has_body) {
    if (auto ce = find_header("content-encoding")) {
      encoding_ = parse_content_encoding(*ce);
      if (encoding_ == Encoding::kUnsupported) {
        send_error(415, "unsupported content encoding");
        return false;
      }
    }
    if (!limits.content_types.empty()) {
      auto ct = find_header("content-type");
      bool ok = false;
      if (ct) {
        std::string_view media = trim(ct->substr(0, ct->find(';')));
        for (const auto &allowed : limits.content_types)
          ok = ok || iequals(media, trim(allowed));
      }
      if (!ok) {
        send_error(415, "unsupported content type");
        return false;
      }
    }
  }
  if (auto expect = find_header("expect"); expect && parser_.http_minor >= 1) {
    if (!iequals(*expect, "100-continue")) {
      send_error(417, "expectation failed");
      return false;
    }
    // Only when the body is not already on its way (the client did not wait).
    if (has_body && pos_ == fill_) io_.io_write(kContinue, false);
  }
  if (llhttp_get_upgrade(&parser_)) keep_alive_ = false;  // no protocol switch here
  if (has_length) body_.reserve(length);
  phase_ = Phase::kBody;
  io_.io_timer(limits.body_timeout_ms);
  return true;
}

void ConnectionCore::message_done() {
  io_.io_timer(0);
  request_.body_ = body_;
  request_.body_encoded_ = false;
  if (encoding_ != Encoding::kIdentity && !body_.empty()) {
    if (config_.limits.defer_decoding) {
      request_.body_encoded_ = true;
    } else if (std::optional<Response> refusal = decode_body()) {
      send(*refusal, false, false);  // the body was read whole: keep the connection
      return;
    }
  }
  if (parser_.method == HTTP_OPTIONS && span(url_) == "*") {
    Response r;
    r.status = 204;
    r.content_type = {};
    r.headers.emplace_back("Allow", kAllow);
    send(r, false, false);
    return;
  }
  phase_ = Phase::kHandler;
  io_.io_dispatch(request_, ++seq_);
}

std::optional<Response> ConnectionCore::decode_body() {
  auto r = inflater_.inflate(encoding_, body_, config_.limits.max_body_decompressed, inflated_);
  if (r == Inflater::Result::kTooLarge) {
    return error_response(413, "decompressed request body too large",
                          config_.limits.max_body_decompressed);
  }
  if (r == Inflater::Result::kCorrupt) {
    return error_response(
        400, encoding_ == Encoding::kGzip ? "invalid gzip body" : "invalid deflate body", 0);
  }
  request_.body_ = inflated_;
  return std::nullopt;
}

// --- answers ----------------------------------------------------------------

void ConnectionCore::send(const Response &r, bool force_close, bool linger) {
  // Draining: a pipelined request already read is served too, so this
  // answer keeps the connection; the last one says close.
  const bool more_read = pos_ < fill_;
  const bool close = force_close || !keep_alive_ || (shutting_down_ && !more_read) || eof_;
  int status = (r.status >= 200 && r.status <= 999) ? r.status : 500;
  const bool no_body = status == 204 || status == 304;
  out_.clear();
  if (status == 200 && r.content_type == "application/json") {
    // Nearly every answer: one append for what the lines below would write.
    out_ += "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ";
  } else {
    out_ += "HTTP/1.1 ";
    append_uint(out_, static_cast<uint64_t>(status));
    out_ += ' ';
    out_ += reason_phrase(status);
    out_ += "\r\n";
    if (!no_body && !r.content_type.empty() && !has_crlf(r.content_type)) {
      out_ += "Content-Type: ";
      out_ += r.content_type;
      out_ += "\r\n";
    }
    // RFC 9110 8.6: never on 204; on 304 it would have to be the 200's length
    if (!no_body) out_ += "Content-Length: ";
  }
  if (!no_body) {
    append_uint(out_, r.body.size());
    out_ += "\r\n";
  }
  for (const auto &[name, value] : r.headers) {
    if (name.empty() || has_crlf(name) || has_crlf(value) || name.find(':') != std::string::npos ||
        iequals(name, "content-length") || iequals(name, "transfer-encoding") ||
        iequals(name, "connection")) {
      continue;
    }
    out_ += name;
    out_ += ": ";
    out_ += value;
    out_ += "\r\n";
  }
  if (close) {
    out_ += "Connection: close\r\n";
  } else if (request_.http_1_0_) {
    out_ += "Connection: keep-alive\r\n";
  }
  out_ += "\r\n";
  if (!no_body && !is_head_) out_ += r.body;

  phase_ = Phase::kWriting;
  close_after_ = close;
  // Closing with unread bytes in the socket sends a reset, which can destroy
  // the answer in flight: after a drain's Connection: close, read and
  // discard until the client closes too.
  linger_after_ = close && (linger || shutting_down_);
  io_.io_observe(request_line_done_ ? &request_ : nullptr, status, req_bytes_,
                 io_.io_now() - request_.start_ms_);
  if (closed()) return;                          // the observer closed the server
  io_.io_timer(config_.limits.body_timeout_ms);  // the client must take the answer too
  if (io_.io_write(out_, true) < 0) close_now();
}

Response ConnectionCore::error_response(int status, std::string_view message, size_t limit) const {
  if (status == 413 && config_.limits.api_gateway_answers)
    return api_gateway_answer(Refusal::kTooLarge);
  Response r;
  r.status = status;
  r.body.reserve(64 + message.size());
  r.body += R"({"error":")";
  r.body += message;
  r.body += '"';
  if (limit != 0) {
    r.body += R"(,"limit":)";
    append_uint(r.body, limit);
  }
  r.body += '}';
  return r;
}

void ConnectionCore::send_error(int status, std::string_view message, size_t limit, bool close) {
  if (request_line_done_ && !headers_complete_) materialize_request();
  // An answer sent before the body was read ends the connection, after a
  // lingering close so the client reads it rather than a reset.
  send(error_response(status, message, limit), close, close);
}

void ConnectionCore::finish_request() {
  phase_ = Phase::kIdle;
  served_ = true;
  head_.clear();
  headers_.clear();
  url_ = {};
  in_value_ = false;
  release_if_big(body_);
  release_if_big(inflated_);
  release_if_big(out_);
  request_ = Request{};
  request_line_done_ = false;
  headers_complete_ = false;
  body_too_large_ = false;
  trailers_too_large_ = false;
  is_head_ = false;
  keep_alive_ = true;
  encoding_ = Encoding::kIdentity;
  idle_since_ = io_.io_now();
  if (shutting_down_) {
    wait_for_quiet();
  } else {
    io_.io_timer(config_.limits.idle_timeout_ms);
  }
}

void ConnectionCore::abandon_request() {
  if (!request_line_done_) return;
  if (!headers_complete_) materialize_request();
  io_.io_observe(&request_, 499, req_bytes_, io_.io_now() - request_.start_ms_);
}

void ConnectionCore::close_now() {
  if (closed()) return;
  phase_ = Phase::kClosed;
  io_.io_close();
}

void ConnectionCore::update_reading() {
  if (closed()) return;
  bool want = !eof_ && (phase_ == Phase::kLinger || fill_ - pos_ < kReadBufferSize);
  if (want != reading_) {
    reading_ = want;
    io_.io_read(want);
  }
}

}  // namespace detail
}  // namespace ingestd::http
