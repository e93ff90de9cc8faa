// Drives a hiredis async context from a libuv loop.
//
// This replaces <hiredis/adapters/libuv.h> from hiredis 0.14.1, which
//  - leaks its wrapper when uv_poll_init fails, and leaves the hooks set
//    without data, so the later redisAsyncFree calls cleanup(NULL) and crashes;
//  - ignores poll errors (status != 0): libuv reports a refused TCP connect
//    as UV_EBADF and stops watching, so the context hangs forever;
//  - calls uv_poll_start on every addRead/addWrite, i.e. once per command
//    issued, and each uv_poll_start costs an epoll_ctl round trip: hooks here
//    are idempotent, so a pipelined batch of N commands arms the poll once.
// The wrapper is freed in the handle's close callback (libuv's rule), which
// runs on the next loop turn after hiredis frees the context.
#pragma once

#include <hiredis/async.h>
#include <uv.h>

namespace ingestd::redis {

// 0, or -1 when the context cannot be watched (nothing is left allocated; the
// caller frees the context with redisAsyncFree).
int uv_attach(redisAsyncContext *ac, uv_loop_t *loop);

}  // namespace ingestd::redis
