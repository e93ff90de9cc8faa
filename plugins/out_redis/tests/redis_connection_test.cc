// Unit tests of the redis connection over a fake host stream: replies parsed
// by the redisReader (shared objects for top-level integer, status and nil),
// FULL held in order until on_drain, closing from inside a callback.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "redis_connection.h"

namespace ingestd::redis {
namespace {

// One fake stream: what the plugin wrote, and whether the next writes are
// refused. The test plays the host and calls the callbacks itself.
struct FakeStream {
  const ingestd_stream_callbacks_t *cb = nullptr;
  void *arg = nullptr;
  ingestd_stream_config_t cfg{};
  std::string host, ca_file;
  std::string written;
  int accept = -1;  // writes still taken before FULL; -1: all
  int closes = 0;
  bool open = false;
};

FakeStream *g_stream = nullptr;  // the one stream of the running test

ingestd_stream_t *fake_open(ingestd_instance_t *, const ingestd_stream_config_t *cfg,
                            const ingestd_stream_callbacks_t *cb, void *arg) {
  g_stream->cb = cb;
  g_stream->arg = arg;
  g_stream->cfg = *cfg;
  g_stream->host = cfg->host ? cfg->host : "";
  g_stream->ca_file = cfg->ca_file ? cfg->ca_file : "";
  g_stream->open = true;
  return reinterpret_cast<ingestd_stream_t *>(g_stream);
}
int fake_write(ingestd_stream_t *s, const char *data, size_t len) {
  auto *f = reinterpret_cast<FakeStream *>(s);
  if (!f->open) return INGESTD_ERROR;
  if (f->accept == 0) return INGESTD_FULL;
  if (f->accept > 0) --f->accept;
  f->written.append(data, len);
  return INGESTD_OK;
}
size_t fake_pending(const ingestd_stream_t *) {
  return 0;
}
void fake_close(ingestd_stream_t *s) {
  auto *f = reinterpret_cast<FakeStream *>(s);
  f->open = false;
  ++f->closes;
}

struct Recorder final : Connection::Handler {
  Connection *conn = nullptr;
  int connected = 0;
  std::vector<int> types;
  std::vector<redisReply *> replies;  // top-level pointers, compared only
  std::vector<std::string> texts;
  std::vector<std::string> closed;
  bool close_on_reply = false;

  void on_connected() override { ++connected; }
  void on_reply(redisReply *r) override {
    types.push_back(r->type);
    replies.push_back(r);
    texts.emplace_back(r->str ? std::string(r->str, r->len) : std::string());
    if (close_on_reply) conn->close();
  }
  void on_closed(const std::string &why) override { closed.push_back(why); }
};

class ConnectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    g_stream = &stream;
    host.struct_size = sizeof host;
    host.stream_open = fake_open;
    host.stream_write = fake_write;
    host.stream_pending = fake_pending;
    host.stream_close = fake_close;
    target.host_or_path = "cache.example";
    target.port = 6380;
    target.tls = true;
    target.ca_file = "/etc/ca.pem";
    std::string err;
    conn = Connection::open(&host, nullptr, target, &rec, &err);
    ASSERT_NE(conn, nullptr) << err;
    rec.conn = conn;
  }
  void TearDown() override {
    if (conn && stream.open) conn->close();
    g_stream = nullptr;
  }
  void data(const std::string &bytes) {
    stream.cb->on_data(stream.arg, bytes.data(), bytes.size());
  }

  FakeStream stream;
  ingestd_host_t host{};
  Target target;
  Recorder rec;
  Connection *conn = nullptr;
};

TEST_F(ConnectionTest, PassesTheTargetToTheStream) {
  EXPECT_EQ(stream.host, "cache.example");
  EXPECT_EQ(stream.cfg.port, 6380);
  EXPECT_EQ(stream.cfg.tls, 1);
  EXPECT_EQ(stream.cfg.tls_verify_off, 0);
  EXPECT_EQ(stream.ca_file, "/etc/ca.pem");
  EXPECT_EQ(stream.cfg.server_name, nullptr);  // unset: the host's name is checked
  EXPECT_EQ(stream.cfg.unix_path, nullptr);
}

TEST_F(ConnectionTest, RepliesInOrderWithSharedTopLevelObjects) {
  ASSERT_TRUE(conn->write("*1\r\n$4\r\nPING\r\n", 14));  // before on_connected: queued
  EXPECT_EQ(stream.written, "*1\r\n$4\r\nPING\r\n");
  stream.cb->on_connected(stream.arg);
  EXPECT_EQ(rec.connected, 1);
  EXPECT_TRUE(conn->connected());
  // Split across two reads, as TLS records may cut it.
  data(":1\r\n+OK\r\n$-1\r\n-ERR bad\r\n*2\r\n:7\r\n$1");
  data("\r\na\r\n:2\r\n+PONG\r\n$-1\r\n");
  ASSERT_EQ(rec.types.size(), 8u);
  EXPECT_EQ(rec.types[0], REDIS_REPLY_INTEGER);
  EXPECT_EQ(rec.types[1], REDIS_REPLY_STATUS);
  EXPECT_EQ(rec.types[2], REDIS_REPLY_NIL);
  EXPECT_EQ(rec.types[3], REDIS_REPLY_ERROR);
  EXPECT_EQ(rec.texts[3], "ERR bad");
  EXPECT_EQ(rec.types[4], REDIS_REPLY_ARRAY);
  EXPECT_EQ(rec.types[5], REDIS_REPLY_INTEGER);
  // No allocation for top-level integer, status and nil replies.
  EXPECT_EQ(rec.replies[0], rec.replies[5]);
  EXPECT_EQ(rec.replies[1], rec.replies[6]);
  EXPECT_EQ(rec.replies[2], rec.replies[7]);
  EXPECT_TRUE(rec.closed.empty());
}

TEST_F(ConnectionTest, FullIsHeldInOrderAndWrittenOnDrain) {
  ASSERT_TRUE(conn->write("a", 1));
  stream.accept = 0;
  ASSERT_TRUE(conn->write("b", 1));  // refused: held
  stream.accept = -1;
  ASSERT_TRUE(conn->write("c", 1));  // behind "b": held too, never overtakes it
  EXPECT_EQ(stream.written, "a");
  EXPECT_EQ(conn->pending(), 2u);
  stream.cb->on_drain(stream.arg);
  EXPECT_EQ(stream.written, "abc");
  EXPECT_EQ(conn->pending(), 0u);
  ASSERT_TRUE(conn->write("d", 1));
  EXPECT_EQ(stream.written, "abcd");
}

TEST_F(ConnectionTest, LargeWritesGoInChunksAndResumeWhereTheStreamStopped) {
  std::string big(3u << 20, 'x');
  for (size_t i = 0; i < big.size(); i += 4096)
    big[i] = static_cast<char>('a' + (i / 4096) % 26);
  stream.accept = 1;  // the first chunk only
  ASSERT_TRUE(conn->write(big.data(), big.size()));
  EXPECT_EQ(stream.written.size(), 1u << 20);
  stream.accept = 1;  // one more, then FULL again: the next on_drain resumes
  stream.cb->on_drain(stream.arg);
  EXPECT_EQ(stream.written.size(), 2u << 20);
  stream.accept = -1;
  stream.cb->on_drain(stream.arg);
  EXPECT_EQ(stream.written, big);
}

TEST_F(ConnectionTest, CloseInsideOnReplyStopsTheCallbacks) {
  rec.close_on_reply = true;
  stream.cb->on_connected(stream.arg);
  data(":1\r\n:2\r\n");
  EXPECT_EQ(rec.types.size(), 1u);  // the second reply is never delivered
  EXPECT_EQ(stream.closes, 1);
  EXPECT_TRUE(rec.closed.empty());  // close() gives no on_closed
  conn = nullptr;                   // freed as the callback returned
}

TEST_F(ConnectionTest, TheHostEndingTheStreamReportsItsReason) {
  ASSERT_TRUE(conn->write("x", 1));
  stream.cb->on_closed(stream.arg,
                       "TLS: certificate verify failed: unable to get local issuer certificate");
  ASSERT_EQ(rec.closed.size(), 1u);
  EXPECT_EQ(rec.closed[0],
            "TLS: certificate verify failed: unable to get local issuer certificate");
  EXPECT_EQ(stream.closes, 0);  // the host freed it; closing it again would be wrong
  conn = nullptr;
}

TEST_F(ConnectionTest, AProtocolErrorClosesTheStream) {
  data("?what\r\n");
  ASSERT_EQ(rec.closed.size(), 1u);
  EXPECT_EQ(rec.closed[0].rfind("protocol error: ", 0), 0u) << rec.closed[0];
  EXPECT_EQ(stream.closes, 1);
  conn = nullptr;
}

TEST(ConnectionOpen, WithoutAStreamServiceSaysSo) {
  ingestd_host_t host{};
  host.struct_size = offsetof(ingestd_host_t, stream_open);  // an ABI 1.1 host
  Target target;
  Recorder rec;
  std::string err;
  EXPECT_EQ(Connection::open(&host, nullptr, target, &rec, &err), nullptr);
  EXPECT_NE(err.find("no stream service"), std::string::npos) << err;
}

}  // namespace
}  // namespace ingestd::redis
