// The stream host functions through the plugin ABI against loopback peers:
// echo, FULL and on_drain, on_closed reasons, refused configs and
// stream_check naming the file, and Instance::destroy() closing the streams
// a plugin left so that no callback runs after on_destroy.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "host/instance.h"
#include "net/tests/loopback_peer.h"
#include "tls/test_certs.h"

namespace ingestd {
namespace {

using net::testing::Peer;
using net::testing::run_until;

struct Trace {
  std::vector<std::string> events;
  const ingestd_host_t *host = nullptr;
  bool destroyed = false;
};

int test_init(const ingestd_host_t *host, ingestd_instance_t *, const ingestd_config_t *,
              void **data) {
  auto *t = new Trace;
  t->host = host;
  *data = t;
  return 0;
}
int test_start(void *) {
  return 0;
}
void test_destroy(void *d) {
  static_cast<Trace *>(d)->destroyed = true;  // the test owns the trace
}

const ingestd_plugin_t kPlugin = {INGESTD_ABI_MAJOR,
                                  INGESTD_ABI_MINOR,
                                  sizeof(ingestd_plugin_t),
                                  "streamtest",
                                  INGESTD_KIND_OUTPUT,
                                  "test plugin for the stream host functions",
                                  "0",
                                  nullptr,
                                  0,
                                  test_init,
                                  test_start,
                                  nullptr,
                                  test_destroy,
                                  nullptr,
                                  nullptr,
                                  nullptr};

// What one stream reported through its ABI callbacks.
struct Conn {
  Trace *trace = nullptr;
  int connected = 0, drained = 0, closed = 0;
  std::string data, reason;
};
void on_connected(void *arg) {
  auto *c = static_cast<Conn *>(arg);
  ++c->connected;
  if (c->trace->destroyed) c->trace->events.push_back("callback after on_destroy");
}
void on_data(void *arg, const char *d, size_t n) {
  auto *c = static_cast<Conn *>(arg);
  c->data.append(d, n);
  if (c->trace->destroyed) c->trace->events.push_back("callback after on_destroy");
}
void on_drain(void *arg) {
  ++static_cast<Conn *>(arg)->drained;
}
void on_closed(void *arg, const char *reason) {
  auto *c = static_cast<Conn *>(arg);
  ++c->closed;
  c->reason = reason;
  if (c->trace->destroyed) c->trace->events.push_back("callback after on_destroy");
}
const ingestd_stream_callbacks_t kCallbacks = {sizeof(ingestd_stream_callbacks_t), on_connected,
                                               on_data, on_drain, on_closed};

class HostStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::signal(SIGPIPE, SIG_IGN);
    char tmpl[] = "/tmp/ingestd-hstream-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    tls::testing::write_test_pki(dir_);
    log_path_ = dir_ + "/log";
    log_fd_ = ::open(log_path_.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0600);
    ASSERT_GE(log_fd_, 0);
    log_ = std::make_unique<Logger>(log_fd_, LogLevel::Info);
    uv_loop_init(&loop_);
    inst_ = std::make_unique<Instance>();
    inst_->plugin = &kPlugin;
    inst_->name = "streamtest";
    inst_->scope = "outputs.streamtest";
    inst_->loop = &loop_;
    inst_->logger = log_.get();
    inst_->metrics = &metrics_;
    ASSERT_TRUE(inst_->init());
    ASSERT_TRUE(inst_->start());
    trace_ = static_cast<Trace *>(inst_->data);
    host_ = trace_->host;
  }
  void TearDown() override {
    inst_.reset();
    delete trace_;
    for (auto &p : peers_)
      p->stop();
    uv_run(&loop_, UV_RUN_DEFAULT);
    EXPECT_EQ(uv_loop_close(&loop_), 0);
    ::close(log_fd_);
    std::filesystem::remove_all(dir_);
  }
  std::string f(const char *name) const { return dir_ + "/" + name; }
  std::string logged() const {
    std::ifstream in(log_path_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  Peer &peer(Peer::Mode mode, std::shared_ptr<const tls::Context> ctx = nullptr) {
    peers_.push_back(std::make_unique<Peer>(&loop_, mode, std::move(ctx)));
    return *peers_.back();
  }
  ingestd_stream_config_t at(int port, const char *host = "127.0.0.1") {
    ingestd_stream_config_t c{};
    c.struct_size = sizeof c;
    c.host = host;
    c.port = port;
    return c;
  }
  ingestd_stream_t *open(const ingestd_stream_config_t &c, Conn *conn) {
    conn->trace = trace_;
    return host_->stream_open(inst_->abi(), &c, &kCallbacks, conn);
  }

  std::string dir_, log_path_;
  int log_fd_ = -1;
  std::unique_ptr<Logger> log_;
  uv_loop_t loop_{};
  MetricsRegistry metrics_;
  std::unique_ptr<Instance> inst_;
  Trace *trace_ = nullptr;
  const ingestd_host_t *host_ = nullptr;
  std::vector<std::unique_ptr<Peer>> peers_;
};

TEST_F(HostStreamTest, HostFunctionsAreWired) {
  EXPECT_TRUE(INGESTD_HOST_HAS(host_, stream_open));
  EXPECT_TRUE(INGESTD_HOST_HAS(host_, stream_write));
  EXPECT_TRUE(INGESTD_HOST_HAS(host_, stream_pending));
  EXPECT_TRUE(INGESTD_HOST_HAS(host_, stream_close));
  EXPECT_TRUE(INGESTD_HOST_HAS(host_, stream_check));
}

TEST_F(HostStreamTest, EchoThroughTheAbi) {
  int port = peer(Peer::Mode::kEcho).listen_tcp();
  Conn c;
  ingestd_stream_t *s = open(at(port), &c);
  ASSERT_NE(s, nullptr) << logged();
  EXPECT_EQ(host_->stream_write(s, "*1\r\n$4\r\nPING\r\n", 14), INGESTD_OK);
  EXPECT_EQ(host_->stream_pending(s), 14u);
  EXPECT_EQ(c.connected, 0);
  ASSERT_TRUE(run_until(&loop_, [&] { return c.data.size() >= 14 || c.closed; }));
  EXPECT_EQ(c.connected, 1);
  EXPECT_EQ(c.data, "*1\r\n$4\r\nPING\r\n");
  EXPECT_EQ(host_->stream_pending(s), 0u);
  EXPECT_EQ(inst_->streams.size(), 1u);
  host_->stream_close(s);
  EXPECT_TRUE(inst_->streams.empty());
  EXPECT_EQ(c.closed, 0);
}

TEST_F(HostStreamTest, TlsEchoThroughTheAbi) {
  tls::ServerConfig sc;
  sc.cert_file = f("server.pem");
  sc.key_file = f("server.key");
  std::string err;
  auto ctx = tls::Context::server(sc, &err);
  ASSERT_TRUE(ctx) << err;
  int port = peer(Peer::Mode::kEcho, ctx).listen_tcp();
  std::string ca = f("ca.pem");
  ingestd_stream_config_t cfg = at(port, "localhost");
  cfg.tls = 1;
  cfg.ca_file = ca.c_str();
  Conn c;
  ingestd_stream_t *s = open(cfg, &c);
  ASSERT_NE(s, nullptr) << logged();
  host_->stream_write(s, "secret", 6);
  ASSERT_TRUE(run_until(&loop_, [&] { return c.data.size() >= 6 || c.closed; }));
  EXPECT_EQ(c.data, "secret") << c.reason;
  host_->stream_close(s);
  // A reconnect with the same TLS files reuses the context.
  Conn again;
  ingestd_stream_t *t = open(cfg, &again);
  ASSERT_NE(t, nullptr);
  ASSERT_TRUE(run_until(&loop_, [&] { return again.connected == 1 || again.closed; }));
  EXPECT_EQ(again.closed, 0) << again.reason;
  EXPECT_EQ(inst_->stream_tls.size(), 1u);
  host_->stream_close(t);
}

TEST_F(HostStreamTest, FullThenDrain) {
  int port = peer(Peer::Mode::kEcho).listen_tcp();
  ingestd_stream_config_t cfg = at(port);
  cfg.write_limit = 100;
  Conn c;
  ingestd_stream_t *s = open(cfg, &c);
  ASSERT_NE(s, nullptr);
  std::string chunk(60, 'x');
  EXPECT_EQ(host_->stream_write(s, chunk.data(), chunk.size()), INGESTD_OK);
  EXPECT_EQ(host_->stream_write(s, chunk.data(), chunk.size()), INGESTD_FULL);
  EXPECT_EQ(host_->stream_pending(s), 60u);  // nothing taken
  ASSERT_TRUE(run_until(&loop_, [&] { return c.drained == 1 || c.closed; }));
  EXPECT_EQ(host_->stream_write(s, chunk.data(), chunk.size()), INGESTD_OK);
  ASSERT_TRUE(run_until(&loop_, [&] { return c.data.size() == 120 || c.closed; }));
  host_->stream_close(s);
}

TEST_F(HostStreamTest, RefusedIsReportedAndTheHandleFreed) {
  Peer p(&loop_, Peer::Mode::kSilent);
  int port = p.listen_tcp();
  p.stop();
  uv_run(&loop_, UV_RUN_NOWAIT);
  Conn c;
  ingestd_stream_t *s = open(at(port), &c);
  ASSERT_NE(s, nullptr);
  ASSERT_TRUE(run_until(&loop_, [&] { return c.closed == 1; }));
  EXPECT_EQ(c.reason, "connect to 127.0.0.1:" + std::to_string(port) + ": connection refused");
  EXPECT_TRUE(inst_->streams.empty());
}

TEST_F(HostStreamTest, InvalidConfigsAreRefusedAndLogged) {
  Conn c;
  ingestd_stream_config_t none{};
  none.struct_size = sizeof none;
  EXPECT_EQ(open(none, &c), nullptr);
  EXPECT_EQ(open(at(0), &c), nullptr);
  ingestd_stream_config_t unix_tls{};
  unix_tls.struct_size = sizeof unix_tls;
  unix_tls.unix_path = "/tmp/x.sock";
  unix_tls.tls = 1;
  EXPECT_EQ(open(unix_tls, &c), nullptr);
  std::string missing = f("missing-ca.pem");
  ingestd_stream_config_t bad_ca = at(6379, "localhost");
  bad_ca.tls = 1;
  bad_ca.ca_file = missing.c_str();
  EXPECT_EQ(open(bad_ca, &c), nullptr);
  std::string log = logged();
  EXPECT_NE(log.find("stream_open refused: no host and no unix_path"), std::string::npos) << log;
  EXPECT_NE(log.find("port 0 is out of range 1..65535"), std::string::npos) << log;
  EXPECT_NE(log.find("TLS is not available over a unix socket"), std::string::npos) << log;
  EXPECT_NE(log.find("TLS: ca_file " + missing + ": No such file or directory"), std::string::npos)
      << log;
  EXPECT_TRUE(inst_->streams.empty());
  uv_run(&loop_, UV_RUN_NOWAIT);
  EXPECT_EQ(c.closed, 0);
}

TEST_F(HostStreamTest, CheckValidatesWithoutConnecting) {
  std::string ca = f("ca.pem");
  std::string cert = f("client.pem");
  std::string key = f("client.key");
  ingestd_stream_config_t good = at(6379, "redis.internal");
  good.tls = 1;
  good.ca_file = ca.c_str();
  good.client_cert = cert.c_str();
  good.client_key = key.c_str();
  EXPECT_EQ(host_->stream_check(inst_->abi(), &good), INGESTD_OK) << logged();
  std::string missing = f("nope.pem");
  ingestd_stream_config_t bad = good;
  bad.ca_file = missing.c_str();
  EXPECT_EQ(host_->stream_check(inst_->abi(), &bad), INGESTD_ERROR);
  EXPECT_NE(logged().find(missing), std::string::npos) << logged();
  ingestd_stream_config_t no_key = good;
  no_key.client_key = nullptr;
  EXPECT_EQ(host_->stream_check(inst_->abi(), &no_key), INGESTD_ERROR);
  EXPECT_NE(logged().find("client_cert and client_key must be set together"), std::string::npos);
  EXPECT_EQ(host_->stream_check(inst_->abi(), nullptr), INGESTD_ERROR);
  EXPECT_TRUE(inst_->streams.empty());
}

TEST_F(HostStreamTest, DestroyClosesTheStreamsLeftOpen) {
  Peer &silent = peer(Peer::Mode::kSilent);
  int port = silent.listen_tcp();
  int echo_port = peer(Peer::Mode::kEcho).listen_tcp();
  Conn a, b;
  ingestd_stream_t *sa = open(at(port), &a);
  ingestd_stream_t *sb = open(at(echo_port), &b);
  ASSERT_NE(sa, nullptr);
  ASSERT_NE(sb, nullptr);
  ASSERT_TRUE(run_until(&loop_, [&] { return a.connected == 1 && b.connected == 1; }));
  host_->stream_write(sb, "late", 4);  // its echo would come after on_destroy
  inst_->destroy();
  EXPECT_TRUE(trace_->destroyed);
  EXPECT_TRUE(inst_->streams.empty());
  run_until(
      &loop_, [] { return false; }, 100);
  EXPECT_TRUE(trace_->events.empty());
  EXPECT_EQ(a.closed + b.closed, 0);
}

}  // namespace
}  // namespace ingestd
