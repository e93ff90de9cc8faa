// libFuzzer target: arbitrary bytes at a TLS listener before (and, when a
// seed carries a real ClientHello, during) the handshake: the plain-HTTP
// sniff, OpenSSL's record and handshake parsing, the alerts we send, and
// whatever plaintext reaches the HTTP state machine. No sockets.
// Input: byte 0 picks the context (mutual TLS or not) and seeds how the rest
// is cut into reads; the rest is the client stream.
//   run: tests/fuzz/run_fuzz.sh ./core/http/tls_fuzz tests/fuzz/tls 60
#include <openssl/ssl.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "http/tls_layer.h"
#include "tls/test_certs.h"

namespace {

using namespace ingestd;
using namespace ingestd::http;
using namespace ingestd::http::detail;

struct Contexts {
  std::shared_ptr<const tls::Context> plain, mutual;
};

Contexts *contexts() {
  static Contexts *c = [] {
    char tmpl[] = "/tmp/ingestd-tls-fuzz-XXXXXX";
    if (!mkdtemp(tmpl)) std::abort();
    std::string dir = tmpl;
    tls::testing::write_test_pki(dir);
    tls::ServerConfig sc;
    sc.cert_file = dir + "/server.pem";
    sc.key_file = dir + "/server.key";
    std::string err;
    auto *out = new Contexts;
    out->plain = tls::Context::server(sc, &err);
    sc.client_ca_file = dir + "/ca.pem";
    out->mutual = tls::Context::server(sc, &err);
    std::filesystem::remove_all(dir);
    if (!out->plain || !out->mutual) std::abort();
    return out;
  }();
  return c;
}

struct Io final : ConnectionIo {
  ConnectionCore *core = nullptr;
  TlsLayer *tls = nullptr;
  bool closed = false, reading = false;
  int io_write(std::string_view d, bool) override {
    if (closed) std::abort();
    if (!tls->handshake_done()) return -107;  // as server.cc: no channel yet
    return tls->write(d) ? 0 : -71;
  }
  void io_read(bool on) override { reading = on; }
  void io_timer(uint64_t) override {}
  void io_linger() override {}
  void io_close() override { closed = true; }
  uint64_t io_now() override { return 0; }
  void io_dispatch(Request &, uint64_t seq) override {
    Response r;
    core->respond(seq, std::move(r));
  }
  void io_observe(const Request *, int, size_t, uint64_t) override {}
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  uint32_t rng = 0x9e3779b9u ^ (data[0] * 2654435761u);
  auto next = [&rng] {
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
  };
  auto ctx = (data[0] & 1) ? contexts()->mutual : contexts()->plain;
  ++data;
  --size;

  ServerLimits limits;
  limits.max_body = 4096;
  limits.max_header = 2048;
  CoreConfig config(limits);
  Inflater inflater;
  TlsLayer layer(ctx);
  if (!layer.valid()) return 0;
  Io io;
  ConnectionCore core(config, inflater, io);
  io.core = &core;
  io.tls = &layer;
  core.start("127.0.0.1");

  std::string out;
  size_t off = 0;
  while (off < size && !io.closed) {
    size_t n = std::min<size_t>(1 + next() % 600, size - off);
    layer.feed(reinterpret_cast<const char *>(data) + off, n);
    off += n;
    if (!layer.deliver(core, io.reading)) {
      // What server.cc sends before it closes: an alert or the plain 400.
      if (layer.failure() == TlsLayer::Failure::kNone) std::abort();
      layer.take_output(&out);
      break;
    }
    out.clear();
    layer.take_output(&out);  // the server's flight, sent and forgotten
    if (next() % 8 == 0 && layer.handshake_done()) core.on_write_done(0);
  }
  if (!core.closed()) core.abort();
  return 0;
}
