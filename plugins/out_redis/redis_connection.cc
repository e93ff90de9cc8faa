// A Redis connection over the host's stream service: a redisReader for the
// replies, the plugin's RESP bytes for the commands (see redis_connection.h
// for why not redisAsyncContext).
#include "redis_connection.h"

#include <algorithm>
#include <new>

namespace ingestd::redis {

namespace {

// ---- replies without allocations ---------------------------------------------
//
// hiredis builds replies through a table of functions. Ours hands out shared,
// never-written objects for top-level integer, status and nil replies (the
// answers to GEOADD, HSET, SET, EVALSHA...) and delegates the rest to
// hiredis's own functions, so errors, strings and arrays are as usual.

redisReply kIntegerReply = {REDIS_REPLY_INTEGER, 0, 0, nullptr, 0, nullptr};
redisReply kStatusReply = {REDIS_REPLY_STATUS, 0, 0, const_cast<char *>(""), 0, nullptr};
redisReply kNilReply = {REDIS_REPLY_NIL, 0, 0, nullptr, 0, nullptr};

const redisReplyObjectFunctions *default_functions() {
  static const redisReplyObjectFunctions *fn = [] {
    redisReader *r = redisReaderCreate();
    const redisReplyObjectFunctions *f = r ? r->fn : nullptr;
    if (r) redisReaderFree(r);
    return f;
  }();
  return fn;
}

bool shared(void *obj) {
  return obj == &kIntegerReply || obj == &kStatusReply || obj == &kNilReply;
}

void *create_string(const redisReadTask *t, char *s, size_t len) {
  if (!t->parent && t->type == REDIS_REPLY_STATUS) return &kStatusReply;
  return default_functions()->createString(t, s, len);
}
void *create_array(const redisReadTask *t, int n) {
  return default_functions()->createArray(t, n);
}
void *create_integer(const redisReadTask *t, long long v) {
  if (!t->parent) return &kIntegerReply;
  return default_functions()->createInteger(t, v);
}
void *create_nil(const redisReadTask *t) {
  if (!t->parent) return &kNilReply;
  return default_functions()->createNil(t);
}
void free_object(void *obj) {
  if (obj && !shared(obj)) default_functions()->freeObject(obj);
}

redisReplyObjectFunctions kReplyFunctions = {create_string, create_array, create_integer,
                                             create_nil, free_object};

// The stream refuses writes (FULL) above this many queued bytes, and we hand
// it at most kChunk at a time, so a FULL always means a full queue and an
// on_drain to come (never one write that alone is too big).
constexpr size_t kWriteLimit = 8u << 20;
constexpr size_t kChunk = 1u << 20;

const char *or_null(const std::string &s) {
  return s.empty() ? nullptr : s.c_str();
}

}  // namespace

ingestd_stream_config_t Target::stream_config() const {
  ingestd_stream_config_t c{};
  c.struct_size = sizeof c;
  if (unix_socket) {
    c.unix_path = host_or_path.c_str();
  } else {
    c.host = host_or_path.c_str();
    c.port = port;
  }
  c.connect_timeout_ms = connect_timeout_ms;
  c.tls = tls ? 1 : 0;
  c.ca_file = or_null(ca_file);
  c.server_name = or_null(server_name);
  c.client_cert = or_null(client_cert);
  c.client_key = or_null(client_key);
  c.tls_verify_off = tls_verify ? 0 : 1;
  c.write_limit = kWriteLimit;
  return c;
}

// Inside a stream callback: a close() there must not free the object under
// the callback's feet, so the last callback out frees it.
struct Connection::Entered {
  explicit Entered(Connection *c) : c_(c) { ++c_->depth_; }
  ~Entered() {
    if (--c_->depth_ == 0 && c_->closed_) delete c_;
  }
  Entered(const Entered &) = delete;
  Entered &operator=(const Entered &) = delete;
  Connection *c_;
};

Connection *Connection::open(const ingestd_host_t *host, ingestd_instance_t *inst,
                             const Target &target, Handler *handler, std::string *err) {
  if (!INGESTD_HOST_HAS(host, stream_open)) {
    *err = "the host has no stream service (ingestd older than ABI 1.2)";
    return nullptr;
  }
  if (!default_functions()) {
    *err = "out of memory";
    return nullptr;
  }
  static const ingestd_stream_callbacks_t callbacks = {sizeof(ingestd_stream_callbacks_t),
                                                       cb_connected, cb_data, cb_drain, cb_closed};
  auto *c = new (std::nothrow) Connection;
  if (!c) {
    *err = "out of memory";
    return nullptr;
  }
  c->reader_ = redisReaderCreateWithFunctions(&kReplyFunctions);
  if (!c->reader_) {
    delete c;
    *err = "out of memory";
    return nullptr;
  }
  c->host_ = host;
  c->handler_ = handler;
  ingestd_stream_config_t cfg = target.stream_config();
  c->stream_ = host->stream_open(inst, &cfg, &callbacks, c);
  if (!c->stream_) {
    delete c;
    *err = "the stream could not be opened (the reason is logged above)";
    return nullptr;
  }
  return c;
}

Connection::~Connection() {
  if (reader_) redisReaderFree(reader_);
}

void Connection::close() {
  if (closed_) return;
  closed_ = true;
  if (stream_) host_->stream_close(stream_);
  stream_ = nullptr;
  if (depth_ == 0) delete this;
}

void Connection::fail(const std::string &why) {
  if (closed_) return;
  Entered e(this);
  close();
  handler_->on_closed(why);
}

size_t Connection::pending() const {
  size_t n = held_.size() - held_off_;
  if (stream_) n += host_->stream_pending(stream_);
  return n;
}

bool Connection::write(const char *data, size_t len) {
  if (closed_ || !stream_) return false;
  if (held_off_ < held_.size()) {  // behind bytes the stream refused: keep the order
    held_.append(data, len);
    return true;
  }
  while (len > 0) {
    size_t n = std::min(len, kChunk);
    int r = host_->stream_write(stream_, data, n);
    if (r == INGESTD_FULL) {
      held_.assign(data, len);
      held_off_ = 0;
      return true;
    }
    if (r != INGESTD_OK) return false;  // closing: on_closed follows
    data += n;
    len -= n;
  }
  return true;
}

void Connection::drain() {
  while (held_off_ < held_.size() && stream_) {
    size_t n = std::min(held_.size() - held_off_, kChunk);
    int r = host_->stream_write(stream_, held_.data() + held_off_, n);
    if (r == INGESTD_FULL) return;  // another on_drain follows
    if (r != INGESTD_OK) return;    // closing: on_closed follows
    held_off_ += n;
  }
  held_.clear();
  held_off_ = 0;
}

void Connection::data(const char *p, size_t len) {
  if (redisReaderFeed(reader_, p, len) != REDIS_OK) {
    fail("out of memory");
    return;
  }
  for (;;) {
    void *reply = nullptr;
    if (redisReaderGetReply(reader_, &reply) != REDIS_OK) {
      fail(std::string("protocol error: ") + reader_->errstr);
      return;
    }
    if (!reply) return;
    handler_->on_reply(static_cast<redisReply *>(reply));
    free_object(reply);
    if (closed_) return;
  }
}

void Connection::cb_connected(void *arg) {
  auto *c = static_cast<Connection *>(arg);
  if (c->closed_) return;
  Entered e(c);
  c->connected_ = true;
  c->handler_->on_connected();
}

void Connection::cb_data(void *arg, const char *data, size_t len) {
  auto *c = static_cast<Connection *>(arg);
  if (c->closed_) return;
  Entered e(c);
  c->data(data, len);
}

void Connection::cb_drain(void *arg) {
  auto *c = static_cast<Connection *>(arg);
  if (c->closed_) return;
  Entered e(c);
  c->drain();
}

void Connection::cb_closed(void *arg, const char *reason) {
  auto *c = static_cast<Connection *>(arg);
  if (c->closed_) return;
  Entered e(c);
  c->stream_ = nullptr;  // the host frees it when this callback returns
  c->closed_ = true;
  c->handler_->on_closed(reason && *reason ? reason : "connection closed");
}

}  // namespace ingestd::redis
