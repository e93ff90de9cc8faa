// A non-blocking hiredis redisContext on a uv_poll_t (see redis_uv.h for why
// not redisAsyncContext).
#include "redis_uv.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>
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

}  // namespace

Connection *Connection::open(uv_loop_t *loop, bool unix_socket, const std::string &host_or_path,
                             int port, Handler *handler, std::string *err) {
  if (!default_functions()) {
    *err = "out of memory";
    return nullptr;
  }
  redisContext *ctx = unix_socket ? redisConnectUnixNonBlock(host_or_path.c_str())
                                  : redisConnectNonBlock(host_or_path.c_str(), port);
  if (!ctx) {
    *err = "out of memory";
    return nullptr;
  }
  if (ctx->err) {
    *err = ctx->errstr;
    redisFree(ctx);
    return nullptr;
  }
  auto *c = new (std::nothrow) Connection;
  if (!c) {
    redisFree(ctx);
    *err = "out of memory";
    return nullptr;
  }
  if (uv_poll_init(loop, &c->poll_, ctx->fd) != 0) {
    redisFree(ctx);
    delete c;  // never registered with the loop: plain delete is right
    *err = "cannot watch the socket";
    return nullptr;
  }
  ctx->reader->fn = &kReplyFunctions;
  c->ctx_ = ctx;
  c->handler_ = handler;
  c->poll_.data = c;
  c->watch(UV_WRITABLE);  // writable: the connect finished, one way or the other
  return c;
}

Connection::~Connection() {
  if (ctx_) redisFree(ctx_);  // closes the socket, after the poll handle
}

void Connection::close() {
  if (closed_) return;
  closed_ = true;
  uv_close(reinterpret_cast<uv_handle_t *>(&poll_),
           [](uv_handle_t *h) { delete static_cast<Connection *>(h->data); });
}

void Connection::fail(const std::string &why) {
  if (closed_) return;
  close();
  handler_->on_closed(why);
}

void Connection::watch(int events) {
  if (closed_ || events == events_) return;
  events_ = events;
  if (events) {
    uv_poll_start(&poll_, events, on_poll);
  } else {
    uv_poll_stop(&poll_);
  }
}

bool Connection::write(const char *data, size_t len) {
  if (closed_) return false;
  if (redisAppendFormattedCommand(ctx_, data, len) != REDIS_OK) return false;
  watch(events_ | UV_WRITABLE);
  return true;
}

void Connection::on_poll(uv_poll_t *h, int status, int events) {
  auto *c = static_cast<Connection *>(h->data);
  if (c->closed_) return;
  if (status < 0) {
    // libuv stops watching after POLLERR (a refused connect shows as
    // UV_EBADF): read the socket's own error below.
    c->events_ = 0;
    events = UV_READABLE | UV_WRITABLE;
  }
  if (c->connecting_) {
    c->finish_connect();
    return;
  }
  if (events & UV_READABLE) c->read();
  if (!c->closed_ && (events & UV_WRITABLE)) c->flush();
  // After an error event that did not end the connection, watch again.
  if (!c->closed_ && c->events_ == 0) c->watch(UV_READABLE | UV_WRITABLE);
}

void Connection::finish_connect() {
  int so_error = 0;
  socklen_t len = sizeof so_error;
  if (getsockopt(ctx_->fd, SOL_SOCKET, SO_ERROR, &so_error, &len) != 0) so_error = errno;
  if (so_error != 0) {
    fail(std::strerror(so_error));
    return;
  }
  connecting_ = false;
  watch(UV_READABLE | UV_WRITABLE);  // the handshake is queued already
  handler_->on_connected();
}

void Connection::read() {
  if (redisBufferRead(ctx_) != REDIS_OK) {
    fail(ctx_->errstr);  // "Server closed the connection", or the errno's text
    return;
  }
  for (;;) {
    void *reply = nullptr;
    if (redisReaderGetReply(ctx_->reader, &reply) != REDIS_OK) {
      fail(std::string("protocol error: ") + ctx_->reader->errstr);
      return;
    }
    if (!reply) return;
    handler_->on_reply(static_cast<redisReply *>(reply));
    free_object(reply);
    if (closed_) return;
  }
}

void Connection::flush() {
  int done = 0;
  if (redisBufferWrite(ctx_, &done) != REDIS_OK) {
    fail(ctx_->errstr);
    return;
  }
  if (done) watch(events_ & ~UV_WRITABLE);
}

}  // namespace ingestd::redis
