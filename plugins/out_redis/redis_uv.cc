// hiredis event hooks on a uv_poll_t (see redis_uv.h for why not the adapter).
#include "redis_uv.h"

#include <new>

namespace ingestd::redis {

namespace {

struct UvEvents {
  redisAsyncContext *ac = nullptr;  // nullptr once hiredis cleaned up
  uv_poll_t handle;
  int events = 0;
};

void on_poll(uv_poll_t *h, int status, int events) {
  auto *e = static_cast<UvEvents *>(h->data);
  if (status < 0) {
    // libuv stopped watching after POLLERR: let hiredis read the socket
    // error (a refused connect, a reset) and tear the context down.
    e->events = 0;
    events = UV_READABLE | UV_WRITABLE;
  }
  if (e->ac && (events & UV_READABLE)) redisAsyncHandleRead(e->ac);
  if (e->ac && (events & UV_WRITABLE)) redisAsyncHandleWrite(e->ac);
}

void update(UvEvents *e, int events) {
  if (events == e->events) return;
  e->events = events;
  if (events) {
    uv_poll_start(&e->handle, events, on_poll);
  } else {
    uv_poll_stop(&e->handle);
  }
}

void add_read(void *p) {
  auto *e = static_cast<UvEvents *>(p);
  update(e, e->events | UV_READABLE);
}
void del_read(void *p) {
  auto *e = static_cast<UvEvents *>(p);
  update(e, e->events & ~UV_READABLE);
}
void add_write(void *p) {
  auto *e = static_cast<UvEvents *>(p);
  update(e, e->events | UV_WRITABLE);
}
void del_write(void *p) {
  auto *e = static_cast<UvEvents *>(p);
  update(e, e->events & ~UV_WRITABLE);
}

void cleanup(void *p) {
  auto *e = static_cast<UvEvents *>(p);
  e->ac = nullptr;  // the context is being freed
  uv_close(reinterpret_cast<uv_handle_t *>(&e->handle),
           [](uv_handle_t *h) { delete static_cast<UvEvents *>(h->data); });
}

}  // namespace

int uv_attach(redisAsyncContext *ac, uv_loop_t *loop) {
  if (ac->ev.data != nullptr) return -1;
  auto *e = new (std::nothrow) UvEvents;
  if (!e) return -1;
  if (uv_poll_init(loop, &e->handle, ac->c.fd) != 0) {
    delete e;  // never registered with the loop: plain delete is right
    return -1;
  }
  e->handle.data = e;
  e->ac = ac;
  ac->ev.addRead = add_read;
  ac->ev.delRead = del_read;
  ac->ev.addWrite = add_write;
  ac->ev.delWrite = del_write;
  ac->ev.cleanup = cleanup;
  ac->ev.data = e;
  return 0;
}

}  // namespace ingestd::redis
