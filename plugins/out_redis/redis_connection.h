// One Redis connection on the host's stream service (plugin.h, stream_open):
// the host resolves, connects, speaks TLS and queues bytes; hiredis keeps the
// protocol (a redisReader for replies; commands come RESP-encoded).
//
// Why not hiredis's redisAsyncContext: it mallocs a callback node for every
// command and a redisReply for every reply, and scans every command for
// SUBSCRIBE/MONITOR; at a few hundred thousand commands a second that was a
// third of a worker's CPU. Here the caller matches replies to its commands
// itself (Redis answers in order), a batch goes to the stream in one piece,
// and top-level integer, status and nil replies are shared static objects:
// only errors, bulk strings and arrays allocate.
//
// Every callback runs on the loop thread. The object frees itself: at once
// in close(), or, when close() runs inside one of its callbacks, as that
// callback returns.
#pragma once

#include <hiredis/hiredis.h>

#include <cstdint>
#include <string>

#include "ingestd/plugin.h"

namespace ingestd::redis {

// Where to connect, as the options say it.
struct Target {
  bool unix_socket = false;
  std::string host_or_path;
  int port = 6379;
  uint64_t connect_timeout_ms = 0;  // 0: the host's default
  bool tls = false;
  bool tls_verify = true;
  std::string ca_file, server_name, client_cert, client_key;  // empty: unset

  // The stream config naming this target's strings: valid while *this is.
  ingestd_stream_config_t stream_config() const;
};

class Connection {
 public:
  class Handler {
   public:
    // Connected (TLS handshake done); what was written before leaves now.
    virtual void on_connected() = 0;
    // One reply, in the order of the commands written; `r` is borrowed for
    // the call. Top-level integer, status and nil replies carry their type
    // only (no value or text). The handler may write() or close() here.
    virtual void on_reply(redisReply *r) = 0;
    // The connection failed (resolution, refused, timeout, TLS, closed by
    // the server, I/O or protocol error) and is closed already; no callback
    // follows. Not called after close().
    virtual void on_closed(const std::string &why) = 0;

   protected:
    ~Handler() = default;
  };

  // Starts connecting. nullptr with *err when the attempt cannot even start
  // (the host refused the config, or has no stream service).
  static Connection *open(const ingestd_host_t *host, ingestd_instance_t *inst,
                          const Target &target, Handler *handler, std::string *err);

  // Queues RESP-encoded commands to leave in order (also before
  // on_connected). What the stream does not take (FULL) is held here and
  // written on its on_drain, so nothing is dropped while the connection
  // lives. false once closed.
  bool write(const char *data, size_t len);

  // Stops at once: no more callbacks; queued bytes are dropped.
  void close();

  bool connected() const { return connected_ && !closed_; }
  // Bytes not yet on the socket: the stream's queue and what it refused.
  size_t pending() const;

 private:
  Connection() = default;
  ~Connection();
  static void cb_connected(void *arg);
  static void cb_data(void *arg, const char *data, size_t len);
  static void cb_drain(void *arg);
  static void cb_closed(void *arg, const char *reason);
  void data(const char *p, size_t len);
  void drain();
  void fail(const std::string &why);
  // Counts a callback in progress; the last one out deletes a closed object.
  struct Entered;

  const ingestd_host_t *host_ = nullptr;
  ingestd_stream_t *stream_ = nullptr;
  redisReader *reader_ = nullptr;
  Handler *handler_ = nullptr;
  std::string held_;  // refused by the stream (FULL), from held_off_ on
  size_t held_off_ = 0;
  int depth_ = 0;
  bool connected_ = false;
  bool closed_ = false;
};

}  // namespace ingestd::redis
