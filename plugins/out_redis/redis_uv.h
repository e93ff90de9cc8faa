// One Redis connection on a libuv loop: a non-blocking hiredis redisContext
// (connect, output buffer, reply reader) watched by a uv_poll_t.
//
// Why not hiredis's redisAsyncContext (and its libuv adapter): it mallocs a
// callback node for every command and a redisReply for every reply, and scans
// every command for SUBSCRIBE/MONITOR; at a few hundred thousand commands a
// second that was a third of a worker's CPU. Here the caller matches replies
// to its commands itself (Redis answers in order), a batch goes into the
// output buffer in one piece, and top-level integer, status and nil replies
// are shared static objects: only errors, bulk strings and arrays allocate.
//
// Every callback runs on the loop thread. The object frees itself in the
// poll handle's close callback (libuv's rule), after close().
#pragma once

#include <hiredis/hiredis.h>
#include <uv.h>

#include <string>

namespace ingestd::redis {

class Connection {
 public:
  class Handler {
   public:
    virtual void on_connected() = 0;
    // One reply, in the order of the commands written; `r` is borrowed for
    // the call. Top-level integer, status and nil replies carry their type
    // only (no value or text). The handler may write() or close() here.
    virtual void on_reply(redisReply *r) = 0;
    // The connection failed (refused, closed by the server, I/O or protocol
    // error) and is closed already; no callback follows. Not called after
    // close().
    virtual void on_closed(const std::string &why) = 0;

   protected:
    ~Handler() = default;
  };

  // Starts connecting to host:port, or to the unix socket `host_or_path`.
  // nullptr with *err when the attempt cannot even start (resolution, socket).
  static Connection *open(uv_loop_t *loop, bool unix_socket, const std::string &host_or_path,
                          int port, Handler *handler, std::string *err);

  // Queues RESP-encoded commands; they are written when the socket is
  // connected and writable, so what is queued in one loop turn leaves in one
  // write. false once closed (or out of memory).
  bool write(const char *data, size_t len);

  // Stops at once: no more callbacks; memory goes on the next loop turn.
  void close();

  bool connected() const { return !connecting_ && !closed_; }

 private:
  Connection() = default;
  ~Connection();
  static void on_poll(uv_poll_t *h, int status, int events);
  void watch(int events);
  void fail(const std::string &why);
  void finish_connect();
  void read();
  void flush();

  redisContext *ctx_ = nullptr;
  Handler *handler_ = nullptr;
  uv_poll_t poll_{};
  int events_ = 0;
  bool connecting_ = true;
  bool closed_ = false;
};

}  // namespace ingestd::redis
