// Key slots, redirections, slot maps and the same-slot check of the redis
// output's cluster mode. Replies are parsed by hiredis's own reader from RESP
// text as a server sends it, so the shapes are the real ones.
#include "redis_cluster.h"

#include <gtest/gtest.h>
#include <hiredis/hiredis.h>

#include <memory>

#include "redis_protocol.h"

namespace ingestd::redis {
namespace {

struct ReplyFree {
  void operator()(redisReply *r) const { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyFree>;

Reply parse(const std::string &resp) {
  redisReader *reader = redisReaderCreate();
  redisReaderFeed(reader, resp.data(), resp.size());
  void *out = nullptr;
  EXPECT_EQ(redisReaderGetReply(reader, &out), REDIS_OK);
  redisReaderFree(reader);
  EXPECT_NE(out, nullptr) << "incomplete RESP";
  return Reply(static_cast<redisReply *>(out));
}

std::string bulk(const std::string &s) {
  return "$" + std::to_string(s.size()) + "\r\n" + s + "\r\n";
}

std::string command(std::initializer_list<std::string> argv) {
  std::string out;
  resp_array(&out, argv.size());
  for (const std::string &a : argv)
    resp_bulk(&out, a);
  return out;
}

ArgTemplate key(const std::string &text) {
  ArgTemplate a;
  std::string err;
  EXPECT_TRUE(parse_arg(text, &a, &err)) << err;
  return a;
}

TEST(KeySlot, MatchesRedisClusterSpecVectors) {
  // The spec's example checksum, and slots CLUSTER KEYSLOT gives.
  EXPECT_EQ(crc16("123456789"), 0x31C3);
  EXPECT_EQ(key_slot("123456789"), 12739);
  EXPECT_EQ(key_slot("foo"), 12182);
  EXPECT_EQ(key_slot("bar"), 5061);
  EXPECT_EQ(key_slot(""), 0);
}

TEST(KeySlot, HashTagRules) {
  EXPECT_EQ(hash_part("user:{1000}:following"), "1000");
  EXPECT_EQ(key_slot("{user1000}.following"), key_slot("{user1000}.followers"));
  EXPECT_EQ(hash_part("foo{}{bar}"), "foo{}{bar}");  // empty first tag: whole key
  EXPECT_EQ(hash_part("foo{{bar}}zap"), "{bar");     // up to the first '}'
  EXPECT_EQ(hash_part("foo{bar}{zap}"), "bar");
  EXPECT_EQ(hash_part("foo{bar"), "foo{bar");  // never closed
  EXPECT_EQ(key_slot("rider:{d42}"), key_slot("d42"));
}

TEST(CommandKey, FirstArgumentOrFirstScriptKey) {
  std::string_view k;
  std::string c = command({"HSET", "rider:{d1}", "lat", "1"});
  ASSERT_TRUE(command_key(c, &k));
  EXPECT_EQ(k, "rider:{d1}");
  c = command({"EVALSHA", "abc", "2", "guard:{d1}", "rider:{d1}", "v"});
  ASSERT_TRUE(command_key(c, &k));
  EXPECT_EQ(k, "guard:{d1}");
  c = command({"eval", "return 1", "0"});
  ASSERT_TRUE(command_key(c, &k));
  EXPECT_TRUE(k.empty());
  c = command({"PING"});
  ASSERT_TRUE(command_key(c, &k));
  EXPECT_TRUE(k.empty());
  EXPECT_FALSE(command_key("*2\r\n$4\r\nHSET\r\n$9\r\nshort\r\n", &k));
  EXPECT_FALSE(command_key("PING\r\n", &k));
}

TEST(Redirect, MovedAskAndOthers) {
  Redirect r = parse_redirect("MOVED 3999 127.0.0.1:6381");
  EXPECT_EQ(r.kind, Redirect::Moved);
  EXPECT_EQ(r.slot, 3999);
  EXPECT_EQ(r.host, "127.0.0.1");
  EXPECT_EQ(r.port, 6381);
  r = parse_redirect("ASK 12182 node-3.example:7000");
  EXPECT_EQ(r.kind, Redirect::Ask);
  EXPECT_EQ(r.host, "node-3.example");
  r = parse_redirect("MOVED 1 :6380");  // unknown endpoint: the host that answered
  EXPECT_EQ(r.kind, Redirect::Moved);
  EXPECT_EQ(r.host, "");
  r = parse_redirect("MOVED 2 [::1]:6380");
  EXPECT_EQ(r.host, "::1");
  EXPECT_EQ(parse_redirect("MOVED 16384 127.0.0.1:1").kind, Redirect::None);
  EXPECT_EQ(parse_redirect("MOVED x 127.0.0.1:1").kind, Redirect::None);
  EXPECT_EQ(parse_redirect("MOVED 5 127.0.0.1").kind, Redirect::None);
  EXPECT_EQ(parse_redirect("TRYAGAIN Multiple keys request during rehashing of slot").kind,
            Redirect::None);
}

std::string shard_node(const std::string &id, int port, int tls_port, const std::string &role,
                       const std::string &health, const std::string &endpoint = "127.0.0.1") {
  std::string n;
  int fields = tls_port ? 9 : 8;
  n += "*" + std::to_string(fields * 2) + "\r\n";
  n += bulk("id") + bulk(id);
  n += bulk("port") + ":" + std::to_string(port) + "\r\n";
  if (tls_port) n += bulk("tls-port") + ":" + std::to_string(tls_port) + "\r\n";
  n += bulk("ip") + bulk("127.0.0.1");
  n += bulk("endpoint") + bulk(endpoint);
  n += bulk("role") + bulk(role);
  n += bulk("replication-offset") + ":100\r\n";
  n += bulk("health") + bulk(health);
  n += bulk("hostname") + bulk("");
  return n;
}

std::string shard(const std::vector<int> &slots, const std::vector<std::string> &nodes) {
  std::string s = "*4\r\n" + bulk("slots") + "*" + std::to_string(slots.size()) + "\r\n";
  for (int x : slots)
    s += ":" + std::to_string(x) + "\r\n";
  s += bulk("nodes") + "*" + std::to_string(nodes.size()) + "\r\n";
  for (const std::string &n : nodes)
    s += n;
  return s;
}

TEST(ClusterShards, PrimariesAndTheirRanges) {
  std::string resp = "*3\r\n";
  resp += shard({0, 5460}, {shard_node("a", 7000, 0, "master", "online"),
                            shard_node("d", 7003, 0, "replica", "online")});
  // After a failover: the old primary still listed, failed; the new one online.
  resp += shard({5461, 10922, 12000, 12001}, {shard_node("b", 7001, 0, "master", "failed"),
                                              shard_node("e", 7004, 0, "master", "online")});
  resp += shard({10923, 11999, 12002, 16383}, {shard_node("c", 7002, 0, "master", "online", "?")});
  Reply r = parse(resp);
  std::vector<ShardNode> out;
  std::string err;
  ASSERT_TRUE(parse_cluster_shards(r.get(), false, "seed.example", &out, &err)) << err;
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].port, 7000);
  EXPECT_EQ(out[0].ranges, (std::vector<std::pair<int, int>>{{0, 5460}}));
  EXPECT_EQ(out[1].port, 7004);
  EXPECT_EQ(out[1].ranges.size(), 2u);
  EXPECT_EQ(out[2].host, "127.0.0.1");  // "?" endpoint: the ip
  EXPECT_EQ(out[2].ranges.back(), (std::pair<int, int>{12002, 16383}));
}

TEST(ClusterShards, TlsPortAndShapeErrors) {
  Reply r = parse("*1\r\n" + shard({0, 16383}, {shard_node("a", 7000, 7100, "master", "online")}));
  std::vector<ShardNode> out;
  std::string err;
  ASSERT_TRUE(parse_cluster_shards(r.get(), true, "h", &out, &err)) << err;
  EXPECT_EQ(out[0].port, 7100);
  r = parse("*1\r\n" + shard({0, 16383}, {shard_node("a", 7000, 0, "master", "online")}));
  EXPECT_FALSE(parse_cluster_shards(r.get(), true, "h", &out, &err));
  EXPECT_NE(err.find("tls-port"), std::string::npos) << err;
  r = parse("*1\r\n" + shard({0, 16384}, {shard_node("a", 7000, 0, "master", "online")}));
  EXPECT_FALSE(parse_cluster_shards(r.get(), false, "h", &out, &err));
  r = parse("-ERR This instance has cluster support disabled\r\n");
  EXPECT_FALSE(parse_cluster_shards(r.get(), false, "h", &out, &err));
  // A shard with no slots (an empty new primary) serves nothing.
  r = parse("*1\r\n" + shard({}, {shard_node("a", 7000, 0, "master", "online")}));
  ASSERT_TRUE(parse_cluster_shards(r.get(), false, "h", &out, &err)) << err;
  EXPECT_TRUE(out.empty());
}

TEST(ClusterSlots, OldServersFallback) {
  auto node = [](int port) {
    return "*3\r\n" + bulk("127.0.0.1") + ":" + std::to_string(port) + "\r\n" + bulk("id");
  };
  std::string resp = "*3\r\n";
  resp += "*4\r\n:0\r\n:5460\r\n" + node(7000) + node(7003);
  resp += "*3\r\n:5461\r\n:16383\r\n" + node(7001);
  resp += "*3\r\n:100\r\n:100\r\n*3\r\n" + bulk("") + ":7000\r\n" + bulk("id");
  Reply r = parse(resp);
  std::vector<ShardNode> out;
  std::string err;
  ASSERT_TRUE(parse_cluster_slots(r.get(), "127.0.0.1", &out, &err)) << err;
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].port, 7000);
  EXPECT_EQ(out[0].ranges.size(), 2u);  // the empty host is the one asked: same node
  EXPECT_EQ(out[1].ranges.front(), (std::pair<int, int>{5461, 16383}));
}

TEST(SameSlot, HashTagsAndWholeKeys) {
  // Doubled braces are literal ones: {{{device_id}}} is "{d42}".
  EXPECT_TRUE(keys_share_slot(key("rider:{{{device_id}}}"), key("rider:{{{device_id}}}:ts"), ""));
  EXPECT_TRUE(keys_share_slot(key("{{{device_id}}}"), key("pos:{{{device_id}}}"), ""));
  EXPECT_TRUE(keys_share_slot(key("rider:{device_id}"), key("rider:{device_id}"), ""));
  EXPECT_FALSE(keys_share_slot(key("rider:{device_id}"), key("rider:{device_id}:if_newer"), ""));
  EXPECT_FALSE(keys_share_slot(key("rider:{{{device_id}}}"), key("rider:{{{rider_id}}}:ts"), ""));
  // A field before the first brace may hold a brace itself.
  EXPECT_FALSE(keys_share_slot(key("{kind}:{{{device_id}}}"), key("x:{{{device_id}}}"), ""));
  // Literal keys and tags are computed.
  EXPECT_TRUE(keys_share_slot(key("riders"), key("{{riders}}:ts"), ""));
  EXPECT_FALSE(keys_share_slot(key("riders"), key("positions"), ""));
  EXPECT_TRUE(keys_share_slot(key("trail:{{hot}}:{seq}"), key("{{hot}}"), ""));
  // key_prefix with a tag puts every key in one slot.
  EXPECT_TRUE(keys_share_slot(key("rider:{device_id}"), key("other:{seq}"), "{app}:"));
}

}  // namespace
}  // namespace ingestd::redis
