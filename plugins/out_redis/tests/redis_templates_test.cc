// Unit tests of the redis output's templates, RESP encoding and error classes.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>

#include "redis_protocol.h"
#include "redis_templates.h"

namespace ingestd::redis {
namespace {

// A flat record: path -> (kind, text).
class FakeRecord : public FieldSource {
 public:
  std::map<std::string, std::pair<Kind, std::string>> fields;
  std::string json = "{\"whole\":1}";

  Kind append_field(const std::string &path, std::string *out) override {
    auto it = fields.find(path);
    if (it == fields.end()) return Kind::Missing;
    if (it->second.first != Kind::Null) *out += it->second.second;
    return it->second.first;
  }
  void append_record_json(std::string *out) override { *out += json; }
};

std::string parse_error(std::vector<std::vector<std::string>> in, bool need_keys = false) {
  std::vector<CommandTemplate> out;
  std::string err;
  EXPECT_FALSE(parse_commands(in, need_keys, &out, &err));
  return err;
}

// Decodes a RESP buffer of commands into lists of arguments.
std::vector<std::vector<std::string>> decode(std::string_view s) {
  std::vector<std::vector<std::string>> out;
  size_t pos = 0;
  auto line = [&] {
    size_t eol = s.find("\r\n", pos);
    std::string l(s.substr(pos, eol - pos));
    pos = eol + 2;
    return l;
  };
  while (pos < s.size()) {
    std::string h = line();
    EXPECT_EQ(h[0], '*');
    size_t n = std::stoul(h.substr(1));
    std::vector<std::string> cmd;
    for (size_t i = 0; i < n; ++i) {
      std::string b = line();
      size_t len = std::stoul(b.substr(1));
      cmd.emplace_back(s.substr(pos, len));
      pos += len + 2;
    }
    out.push_back(cmd);
  }
  return out;
}

using Cmds = std::vector<std::vector<std::string>>;

TEST(RedisTemplates, ParseErrorsNameTheirPosition) {
  EXPECT_EQ(parse_error({{"GEOADD", "riders", "{lon}"}, {"HSET", "rider:{device_id", "a", "b"}}),
            "commands[1][1]: unclosed '{' in \"rider:{device_id\"");
  EXPECT_EQ(parse_error({{"SET", "k{}", "v"}}), "commands[0][1]: empty field name in \"k{}\"");
  EXPECT_EQ(parse_error({{"SET", "k", "a}b"}}),
            "commands[0][2]: unmatched '}' in \"a}b\" (write '}}' for a literal brace)");
  EXPECT_EQ(parse_error({{"SET", "k", "{a..b}"}}),
            "commands[0][2]: empty path segment in field 'a..b' in \"{a..b}\"");
  EXPECT_EQ(parse_error({{"SET", "{a{b}"}}), "commands[0][1]: unclosed '{' in \"{a{b}\"");
  EXPECT_EQ(parse_error({{}}), "commands[0]: empty command");
  EXPECT_EQ(parse_error({{""}}), "commands[0][0]: empty command name");
  EXPECT_THAT(parse_error({{"{cmd}", "k"}}), testing::HasSubstr("must be plain text"));
  EXPECT_THAT(parse_error({{"HSET rider:{id}"}}), testing::HasSubstr("contains a space"));
  EXPECT_THAT(parse_error({}), testing::HasSubstr("at least one command"));
  EXPECT_THAT(parse_error({{"HSET"}}), testing::HasSubstr("'HSET' needs a key"));
  // Unknown commands are fine unless keys must be found.
  std::vector<CommandTemplate> out;
  std::string err;
  EXPECT_TRUE(parse_commands({{"CF.ADD", "f", "{x}"}}, false, &out, &err)) << err;
  EXPECT_EQ(parse_error({{"CF.ADD", "f", "{x}"}}, true),
            "commands[0][0]: ttl and key_prefix need to know which arguments of 'CF.ADD' are "
            "keys, and it is not a command they know");
}

TEST(RedisTemplates, KeyPositions) {
  std::vector<CommandTemplate> out;
  std::string err;
  ASSERT_TRUE(parse_commands({{"geoadd", "riders", "{lon}", "{lat}", "{id}"},
                              {"MSET", "a", "1", "b", "2"},
                              {"DEL", "x", "y"},
                              {"PUBLISH", "chan", "{_json}"},
                              {"EXPIRE", "k", "10"}},
                             true, &out, &err))
      << err;
  EXPECT_TRUE(out[0].args[0].ttl_key);
  EXPECT_FALSE(out[0].args[1].is_key);
  EXPECT_TRUE(out[1].args[0].ttl_key && out[1].args[2].ttl_key);
  EXPECT_FALSE(out[1].args[1].is_key || out[1].args[3].is_key);
  EXPECT_TRUE(out[2].args[0].is_key && out[2].args[1].is_key);
  EXPECT_FALSE(out[2].args[0].ttl_key);
  EXPECT_FALSE(out[3].args[0].is_key);
  EXPECT_TRUE(out[4].args[0].is_key);
  EXPECT_FALSE(out[4].args[0].ttl_key);
}

TEST(RedisTemplates, InterpolatesLosslesslyWithPrefixAndBraces) {
  EncoderConfig cfg;
  std::string err;
  ASSERT_TRUE(parse_commands({{"GEOADD", "riders", "{lon}", "{lat}", "{device_id}"},
                              {"HSET", "rider:{device_id}", "lat", "{lat}", "meta", "{m.x}", "ok",
                               "{ok}", "all", "{_json}", "lit", "{{x}}"}},
                             true, &cfg.commands, &err))
      << err;
  cfg.key_prefix = "p:";
  RecordEncoder enc(&cfg);
  FakeRecord r;
  using K = FieldSource::Kind;
  r.fields["lon"] = {K::Number, "126.97800000000001"};
  r.fields["lat"] = {K::Number, "37.5665"};
  r.fields["device_id"] = {K::String, "d 1"};
  r.fields["m.x"] = {K::Json, "{\"y\":[1,2]}"};
  r.fields["ok"] = {K::Bool, "true"};
  std::string out, reason;
  std::vector<CommandExtent> cmds;
  std::vector<std::string> keys;
  ASSERT_TRUE(enc.encode(r, "", &out, &cmds, &keys, &reason)) << reason;
  EXPECT_EQ(decode(out), (Cmds{{"GEOADD", "p:riders", "126.97800000000001", "37.5665", "d 1"},
                               {"HSET", "p:rider:d 1", "lat", "37.5665", "meta", "{\"y\":[1,2]}",
                                "ok", "true", "all", "{\"whole\":1}", "lit", "{x}"}}));
  ASSERT_EQ(cmds.size(), 2u);
  EXPECT_EQ(cmds[1].tmpl, 1);
  EXPECT_EQ(cmds[0].offset + cmds[0].len, cmds[1].offset);
  EXPECT_TRUE(keys.empty());  // ttl is 0
}

TEST(RedisTemplates, MissingFieldLeavesNothingAndSaysWhich) {
  EncoderConfig cfg;
  std::string err;
  ASSERT_TRUE(
      parse_commands({{"SET", "a", "{x}"}, {"SET", "b", "{lat}"}}, false, &cfg.commands, &err));
  cfg.ttl_ms = 1000;
  RecordEncoder enc(&cfg);
  FakeRecord r;
  r.fields["x"] = {FieldSource::Kind::String, "1"};
  std::string out = "before", reason;
  std::vector<CommandExtent> cmds;
  std::vector<std::string> keys;
  EXPECT_FALSE(enc.encode(r, "", &out, &cmds, &keys, &reason));
  EXPECT_EQ(reason, "template commands[1] needs field 'lat', the record has none");
  EXPECT_EQ(out, "before");
  EXPECT_TRUE(cmds.empty());
  r.fields["lat"] = {FieldSource::Kind::Null, ""};
  EXPECT_FALSE(enc.encode(r, "", &out, &cmds, &keys, &reason));
  EXPECT_EQ(reason, "template commands[1] needs field 'lat', it is null");
  r.fields["lat"] = {FieldSource::Kind::Number, "2"};
  EXPECT_TRUE(enc.encode(r, "", &out, &cmds, &keys, &reason));
  EXPECT_EQ(keys, (std::vector<std::string>{"a", "b"}));
}

TEST(RedisTemplates, IfNewerWrapsTheCommandsInOneEvalsha) {
  EncoderConfig cfg;
  std::string err;
  ASSERT_TRUE(parse_commands(
      {{"GEOADD", "riders", "{lon}", "{lat}", "{id}"}, {"HSET", "rider:{id}", "ts", "{ts}"}}, true,
      &cfg.commands, &err));
  cfg.ttl_ms = 60000;
  cfg.key_prefix = "x:";
  cfg.if_newer = "ts";
  ASSERT_TRUE(parse_arg("rider:{id}:ts", &cfg.if_newer_key, &err));
  cfg.if_newer_key.is_key = true;
  RecordEncoder enc(&cfg);
  FakeRecord r;
  using K = FieldSource::Kind;
  r.fields["lon"] = {K::Number, "1.5"};
  r.fields["lat"] = {K::Number, "2.5"};
  r.fields["id"] = {K::String, "d1"};
  r.fields["ts"] = {K::Number, "1700000000123"};
  std::string out, reason;
  std::vector<CommandExtent> cmds;
  std::vector<std::string> keys;
  std::string sha(40, 'a');
  ASSERT_TRUE(enc.encode(r, sha, &out, &cmds, &keys, &reason)) << reason;
  // The script call for this record: ttl and how many of its keys to expire
  // vary, the keys (all declared) and the commands do not.
  auto script_call = [&](const char *ttl, const char *n_expire) {
    return Cmds{{"EVALSHA",
                 sha,
                 "3",
                 "x:rider:d1:ts",
                 "x:riders",
                 "x:rider:d1",
                 "1700000000123",
                 ttl,
                 n_expire,
                 "2",
                 "5",
                 "GEOADD",
                 "x:riders",
                 "1.5",
                 "2.5",
                 "d1",
                 "4",
                 "HSET",
                 "x:rider:d1",
                 "ts",
                 "1700000000123"}};
  };
  EXPECT_EQ(decode(out), script_call("60000", "2"));
  EXPECT_EQ(cmds.size(), 1u);
  EXPECT_EQ(cmds[0].tmpl, kScript);
  EXPECT_TRUE(keys.empty());  // the script expires them

  std::string eval = evalsha_to_eval(out, "return 1");
  Cmds d = decode(eval);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0][0], "EVAL");
  EXPECT_EQ(d[0][1], "return 1");
  EXPECT_EQ(d[0][2], "3");
  EXPECT_EQ(d[0].size(), decode(out)[0].size());
  EXPECT_EQ(evalsha_to_eval("*1\r\n$4\r\nPING\r\n", "x"), "");

  // Without ttl the keys are declared all the same (Redis Cluster routes a
  // script, and holds it back during a migration, by them), none expired.
  cfg.ttl_ms = 0;
  out.clear();
  cmds.clear();
  ASSERT_TRUE(enc.encode(r, sha, &out, &cmds, &keys, &reason)) << reason;
  EXPECT_EQ(decode(out), script_call("0", "0"));
  cfg.ttl_ms = 60000;

  r.fields.erase("ts");
  EXPECT_FALSE(enc.encode(r, sha, &out, &cmds, &keys, &reason));
  EXPECT_EQ(reason, "if_newer needs field 'ts', the record has none");
  r.fields["ts"] = {K::Json, "{}"};
  EXPECT_FALSE(enc.encode(r, sha, &out, &cmds, &keys, &reason));
  EXPECT_EQ(reason, "if_newer field 'ts' must be a number or a string");
}

TEST(RedisProtocol, Expire) {
  std::string out;
  resp_expire(&out, "k", 60000);
  resp_expire(&out, "k", 1500);
  EXPECT_EQ(decode(out), (Cmds{{"EXPIRE", "k", "60"}, {"PEXPIRE", "k", "1500"}}));
}

TEST(RedisProtocol, ClassifiesErrors) {
  for (const char *m :
       {"LOADING Redis is loading the dataset in memory", "BUSY Redis is busy running a script",
        "TRYAGAIN Multiple keys", "CLUSTERDOWN The cluster is down",
        "MASTERDOWN Link with MASTER is down",
        "READONLY You can't write against a read only replica.",
        "OOM command not allowed when used memory > 'maxmemory'.",
        "MISCONF Redis is configured to save RDB snapshots", "ERR max number of clients reached"})
    EXPECT_EQ(classify_error(m), ErrorClass::Retry) << m;
  for (const char *m : {"WRONGTYPE Operation against a key holding the wrong kind of value",
                        "NOPERM this user has no permissions to run the 'hset' command",
                        "ERR wrong number of arguments for 'hset' command", "ERR syntax error",
                        "ERR value is not a valid float", "EXECABORT", "SOMETHINGNEW x"})
    EXPECT_EQ(classify_error(m), ErrorClass::Permanent) << m;
  EXPECT_EQ(classify_error("NOSCRIPT No matching script."), ErrorClass::NoScript);
  EXPECT_EQ(classify_error("NOAUTH Authentication required."), ErrorClass::NoAuth);
}

}  // namespace
}  // namespace ingestd::redis
