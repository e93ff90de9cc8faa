// out_stdout: records as JSON lines on standard output. Pipes and terminals
// are written without blocking the loop (a batch is one uv_write; the next
// batch waits until it is written, so a stalled reader fills the queue and
// the phones get 503 instead of the worker freezing). Regular files are
// written directly.
#include <fcntl.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "common/log_limiter.h"
#include "ingestd/plugin.h"

namespace {

struct StdoutOutput;

struct WriteReq {
  uv_write_t req;
  std::string buf;
  ingestd_batch_t *batch;
  StdoutOutput *out;
};

struct StdoutOutput {
  const ingestd_host_t *host;
  ingestd_instance_t *inst;
  int fd = -1;                    // our dup of the target descriptor
  uv_stream_t *stream = nullptr;  // pipe or tty; nullptr: plain write(2)
  bool include_tag = false;
  ingestd::common::LogLimiter error_log{60000};  // a stalled reader fails every batch
  WriteReq *pending = nullptr;
};

const ingestd_option_t kOptions[] = {
    {"include_tag", INGESTD_OPT_BOOL, "false", 0, nullptr, 1, 0,
     "Write {\"tag\":...,\"record\":...} instead of the bare record"},
    {"target", INGESTD_OPT_ENUM, "stdout", 0, "stdout|stderr", 1, 0,
     "Which standard stream to write to"},
};

void log_write_error(StdoutOutput *o, const char *what) {
  if (!o->error_log.allow(o->host->now_ms(o->inst))) return;  // once a minute
  o->host->log(o->inst, INGESTD_LOG_ERROR, "write failed: %s; records are kept and retried", what);
}

int on_init(const ingestd_host_t *host, ingestd_instance_t *inst, const ingestd_config_t *cfg,
            void **data) {
  auto *o = new StdoutOutput;
  o->host = host;
  o->inst = inst;
  o->include_tag = host->option_bool(cfg, "include_tag") != 0;
  const char *target = host->option_string(cfg, "target");
  int src = (target && std::strcmp(target, "stderr") == 0) ? 2 : 1;
  // A handle closes its descriptor: work on a copy so fd 1 stays open.
  o->fd = ::fcntl(src, F_DUPFD_CLOEXEC, 3);
  if (o->fd < 0) {
    host->log(inst, INGESTD_LOG_ERROR, "cannot use %s: %s", target, std::strerror(errno));
    delete o;
    return -1;
  }
  *data = o;
  return 0;
}

int on_start(void *data) {
  auto *o = static_cast<StdoutOutput *>(data);
  auto *loop = static_cast<uv_loop_t *>(o->host->uv_loop(o->inst));
  switch (uv_guess_handle(o->fd)) {
    case UV_TTY: {
      auto *t = new uv_tty_t;
      if (uv_tty_init(loop, t, o->fd, 0) == 0) {
        o->stream = reinterpret_cast<uv_stream_t *>(t);
      } else {
        delete t;
      }
      break;
    }
    case UV_NAMED_PIPE: {
      auto *p = new uv_pipe_t;
      uv_pipe_init(loop, p, 0);
      if (uv_pipe_open(p, o->fd) == 0) {
        o->stream = reinterpret_cast<uv_stream_t *>(p);
      } else {
        uv_close(reinterpret_cast<uv_handle_t *>(p),
                 [](uv_handle_t *h) { delete reinterpret_cast<uv_pipe_t *>(h); });
      }
      break;
    }
    default:
      break;  // regular file or /dev/null: write(2) does not block on them
  }
  if (o->stream) o->stream->data = o;
  return 0;
}

void append_batch(StdoutOutput *o, ingestd_batch_t *batch, std::string *buf) {
  size_t n = o->host->batch_size(batch);
  for (size_t i = 0; i < n; ++i) {
    const ingestd_record_t *r = o->host->batch_record(batch, i);
    size_t len;
    const char *json = o->host->record_json(r, &len);
    if (o->include_tag) {
      *buf += "{\"tag\":\"";
      *buf += o->host->record_tag(r);  // tags are config names: no escaping needed
      *buf += "\",\"record\":";
      buf->append(json, len);
      *buf += "}\n";
    } else {
      buf->append(json, len);
      *buf += '\n';
    }
  }
}

void on_written(uv_write_t *req, int status) {
  auto *w = reinterpret_cast<WriteReq *>(req);
  StdoutOutput *o = w->out;
  if (o) o->pending = nullptr;
  if (status < 0 && o) log_write_error(o, uv_strerror(status));
  ingestd_batch_t *batch = w->batch;
  const ingestd_host_t *host = o ? o->host : nullptr;
  delete w;
  if (host) host->batch_done(batch, status < 0 ? INGESTD_BATCH_RETRY : INGESTD_BATCH_OK);
}

void on_flush(void *data, ingestd_batch_t *batch) {
  auto *o = static_cast<StdoutOutput *>(data);
  if (!o->stream) {
    std::string buf;
    append_batch(o, batch, &buf);
    const char *p = buf.data();
    size_t left = buf.size();
    while (left > 0) {
      ssize_t n = ::write(o->fd, p, left);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        log_write_error(o, std::strerror(errno));
        o->host->batch_done(batch, INGESTD_BATCH_RETRY);
        return;
      }
      p += n;
      left -= static_cast<size_t>(n);
    }
    o->host->batch_done(batch, INGESTD_BATCH_OK);
    return;
  }
  auto *w = new WriteReq;
  w->batch = batch;
  w->out = o;
  append_batch(o, batch, &w->buf);
  uv_buf_t b = uv_buf_init(w->buf.data(), static_cast<unsigned>(w->buf.size()));
  int rc = uv_write(&w->req, o->stream, &b, 1, on_written);
  if (rc < 0) {
    delete w;
    log_write_error(o, uv_strerror(rc));
    o->host->batch_done(batch, INGESTD_BATCH_RETRY);
    return;
  }
  o->pending = w;
}

void on_stop(void *data) {
  auto *o = static_cast<StdoutOutput *>(data);
  if (o->stream) {
    // Closing cancels a pending write: its callback reports the batch for retry.
    uv_close(reinterpret_cast<uv_handle_t *>(o->stream), [](uv_handle_t *h) {
      if (h->type == UV_TTY) {
        delete reinterpret_cast<uv_tty_t *>(h);
      } else {
        delete reinterpret_cast<uv_pipe_t *>(h);
      }
    });
    o->stream = nullptr;
    o->fd = -1;  // closed with the handle
  }
}

void on_destroy(void *data) {
  auto *o = static_cast<StdoutOutput *>(data);
  if (o->pending) o->pending->out = nullptr;  // its callback must not touch us
  if (o->stream) on_stop(o);
  if (o->fd >= 0) ::close(o->fd);
  delete o;
}

}  // namespace

extern "C" INGESTD_EXPORT const ingestd_plugin_t ingestd_plugin_v1 = {
    INGESTD_ABI_MAJOR,
    INGESTD_ABI_MINOR,
    sizeof(ingestd_plugin_t),
    "stdout",
    INGESTD_KIND_OUTPUT,
    "Records as JSON lines on standard output, without blocking the loop",
    "1.0.0",
    kOptions,
    sizeof kOptions / sizeof kOptions[0],
    on_init,
    on_start,
    on_stop,
    on_destroy,
    nullptr,
    nullptr,
    on_flush,
};
