// libFuzzer target: arbitrary bytes through the connection state machine
// (parser, limits, chunked, gzip, pipelining, answers), no sockets.
// Input: byte 0 seeds how the rest is cut into reads and when timers, EOF,
// async answers and write completions happen; the rest is the client stream.
//   build (clang): cmake --build . --target http_fuzz
//   run: ./core/http/http_fuzz -max_total_time=60 core/http/tests/corpus
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "http/connection_core.h"

namespace {

using namespace ingestd::http;
using namespace ingestd::http::detail;

struct Rng {
  uint32_t s;
  uint32_t next() {
    s ^= s << 13;
    s ^= s >> 17;
    s ^= s << 5;
    return s;
  }
};

struct FuzzIo final : ConnectionIo {
  Rng *rng = nullptr;
  ConnectionCore *core = nullptr;
  bool write_pending = false, closed = false;
  Request *pending = nullptr;
  uint64_t seq = 0, now = 0;
  size_t dispatched = 0, answered = 0, observed = 0;

  int io_write(std::string_view d, bool response) override {
    if (closed) std::abort();  // no call after io_close
    if (response) {
      if (write_pending) std::abort();  // one answer in flight at most
      if (d.substr(0, 9) != "HTTP/1.1 ") std::abort();
      write_pending = true;
      ++answered;
    }
    return 0;
  }
  void io_read(bool) override {}
  void io_timer(uint64_t) override {}
  void io_linger() override {}
  void io_close() override { closed = true; }
  uint64_t io_now() override { return now; }
  void io_dispatch(Request &r, uint64_t s) override {
    ++dispatched;
    pending = &r;
    seq = s;
    if (rng->next() % 2 == 0) answer();  // synchronously, from inside the handler
  }
  void io_observe(const Request *r, int status, size_t, uint64_t) override {
    if (status != 499) ++observed;
    if (r != nullptr) {
      (void)r->header("content-type");
      (void)r->client_address();
    }
  }
  void answer() {
    if (pending == nullptr) return;
    Request *r = pending;
    pending = nullptr;
    Response resp;
    resp.status = 200 + static_cast<int>(rng->next() % 299);  // 499 means "abandoned"
    resp.body.assign(r->body());
    if (auto h = r->header("x-h")) resp.headers.emplace_back("X-H", std::string(*h));
    core->respond(seq, std::move(resp));
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  Rng rng{0x9e3779b9u ^ (data[0] * 2654435761u)};
  ++data;
  --size;

  ServerLimits limits;
  limits.max_body = 4096;
  limits.max_body_decompressed = 65536;
  limits.max_header = 2048;
  limits.trusted_proxies = {"127.0.0.0/8", "::1"};
  if (rng.next() % 4 == 0) limits.content_types = {"application/json"};
  CoreConfig config(limits);
  Inflater inflater;
  FuzzIo io;
  io.rng = &rng;
  ConnectionCore core(config, inflater, io);
  io.core = &core;
  core.start("127.0.0.1");

  size_t off = 0;
  int stalls = 0;
  while (!io.closed && stalls < 4) {
    // transport events between reads
    switch (rng.next() % 16) {
      case 0:
        core.on_timer();
        break;
      case 1:
        io.now += 1000;
        break;
      case 2:
        core.shutdown();
        break;
      default:
        break;
    }
    if (io.closed) break;
    if (io.pending != nullptr && rng.next() % 2 == 0) io.answer();
    if (io.write_pending && rng.next() % 4 != 0) {
      io.write_pending = false;
      core.on_write_done(rng.next() % 64 == 0 ? -104 : 0);
      continue;
    }
    if (off == size) {
      if (io.pending == nullptr && !io.write_pending) break;
      ++stalls;
      continue;
    }
    auto space = core.read_space();
    if (space.empty()) {  // full while an answer is pending: the client waits
      ++stalls;
      if (io.pending) io.answer();
      continue;
    }
    size_t n = 1 + rng.next() % 700;
    n = std::min({n, space.size(), size - off});
    std::memcpy(space.data(), data + off, n);
    off += n;
    core.on_read(n);
  }
  if (!io.closed) {
    if (rng.next() % 2 == 0) core.on_eof();
    if (io.pending) io.answer();
    if (io.write_pending) {
      io.write_pending = false;
      core.on_write_done(0);
    }
    core.abort();
  }
  io.answer();  // after close: must be ignored
  // Every answer is reported to the observer exactly once (499s aside).
  if (io.answered != io.observed) std::abort();
  return 0;
}
