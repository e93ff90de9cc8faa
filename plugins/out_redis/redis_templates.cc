// Template parsing and per-record encoding for the redis output.
#include "redis_templates.h"

#include <algorithm>
#include <array>
#include <cctype>

#include "redis_protocol.h"

namespace ingestd::redis {

namespace {

std::string upper(std::string_view s) {
  std::string u(s);
  for (char &c : u)
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return u;
}

template <size_t N>
bool in(const std::array<std::string_view, N> &set, std::string_view s) {
  return std::find(set.begin(), set.end(), s) != set.end();
}

std::string quoted(std::string_view s) {
  std::string q;
  q.reserve(s.size() + 2);
  q += '"';
  q.append(s);
  q += '"';
  return q;
}

}  // namespace

KeySpec key_spec(std::string_view command) {
  static constexpr std::array<std::string_view, 45> kFirst = {"APPEND",
                                                              "DECR",
                                                              "DECRBY",
                                                              "GEOADD",
                                                              "GETSET",
                                                              "HDEL",
                                                              "HINCRBY",
                                                              "HINCRBYFLOAT",
                                                              "HMSET",
                                                              "HSET",
                                                              "HSETNX",
                                                              "INCR",
                                                              "INCRBY",
                                                              "INCRBYFLOAT",
                                                              "LINSERT",
                                                              "LPUSH",
                                                              "LPUSHX",
                                                              "LREM",
                                                              "LSET",
                                                              "LTRIM",
                                                              "PFADD",
                                                              "PSETEX",
                                                              "RPUSH",
                                                              "RPUSHX",
                                                              "SADD",
                                                              "SET",
                                                              "SETBIT",
                                                              "SETEX",
                                                              "SETNX",
                                                              "SETRANGE",
                                                              "SREM",
                                                              "XADD",
                                                              "XTRIM",
                                                              "ZADD",
                                                              "ZINCRBY",
                                                              "ZREM",
                                                              "ZREMRANGEBYLEX",
                                                              "ZREMRANGEBYRANK",
                                                              "ZREMRANGEBYSCORE",
                                                              "BITFIELD",
                                                              "LPOP",
                                                              "RPOP",
                                                              "SPOP",
                                                              "ZPOPMIN",
                                                              "ZPOPMAX"};
  static constexpr std::array<std::string_view, 7> kFirstNoTtl = {
      "EXPIRE", "PEXPIRE", "EXPIREAT", "PEXPIREAT", "PERSIST", "GETDEL", "GETEX"};
  static constexpr std::array<std::string_view, 2> kPairs = {"MSET", "MSETNX"};
  static constexpr std::array<std::string_view, 3> kAll = {"DEL", "UNLINK", "TOUCH"};
  static constexpr std::array<std::string_view, 4> kNone = {"PUBLISH", "SPUBLISH", "PING", "ECHO"};
  std::string u = upper(command);
  if (in(kFirst, u)) return KeySpec::First;
  if (in(kFirstNoTtl, u)) return KeySpec::FirstNoTtl;
  if (in(kPairs, u)) return KeySpec::Pairs;
  if (in(kAll, u)) return KeySpec::AllNoTtl;
  if (in(kNone, u)) return KeySpec::None;
  return KeySpec::Unknown;
}

bool parse_arg(std::string_view text, ArgTemplate *out, std::string *err) {
  out->pieces.clear();
  out->source = std::string(text);
  std::string literal;
  auto flush = [&] {
    if (literal.empty()) return;
    out->pieces.push_back(Piece{false, false, std::move(literal)});
    literal.clear();
  };
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '}') {
      if (i + 1 < text.size() && text[i + 1] == '}') {
        literal += '}';
        ++i;
        continue;
      }
      *err = "unmatched '}' in " + quoted(text) + " (write '}}' for a literal brace)";
      return false;
    }
    if (c != '{') {
      literal += c;
      continue;
    }
    if (i + 1 < text.size() && text[i + 1] == '{') {
      literal += '{';
      ++i;
      continue;
    }
    size_t close = text.find_first_of("{}", i + 1);
    if (close == std::string_view::npos || text[close] != '}') {
      *err = "unclosed '{' in " + quoted(text);
      return false;
    }
    std::string_view path = text.substr(i + 1, close - i - 1);
    if (path.empty()) {
      *err = "empty field name in " + quoted(text);
      return false;
    }
    if (path.front() == '.' || path.back() == '.' || path.find("..") != std::string_view::npos) {
      *err = "empty path segment in field '" + std::string(path) + "' in " + quoted(text);
      return false;
    }
    flush();
    out->pieces.push_back(Piece{true, path == "_json", std::string(path)});
    i = close;
  }
  flush();
  return true;
}

bool parse_commands(const std::vector<std::vector<std::string>> &in, bool need_keys,
                    std::vector<CommandTemplate> *out, std::string *err) {
  out->clear();
  if (in.empty()) {
    *err =
        "commands: give at least one command, e.g. [[\"HSET\", \"rider:{device_id}\", "
        "\"lat\", \"{lat}\"]]";
    return false;
  }
  for (size_t i = 0; i < in.size(); ++i) {
    std::string at = "commands[" + std::to_string(i) + "]";
    const auto &items = in[i];
    if (items.empty()) {
      *err = at + ": empty command";
      return false;
    }
    CommandTemplate cmd;
    cmd.name = items[0];
    std::string name_at = at + "[0]";
    if (cmd.name.empty()) {
      *err = name_at + ": empty command name";
      return false;
    }
    if (cmd.name.find_first_of(" \t\r\n") != std::string::npos) {
      *err = name_at + ": command name " + quoted(cmd.name) +
             " contains a space; give each argument its own string";
      return false;
    }
    if (cmd.name.find_first_of("{}") != std::string::npos) {
      *err = name_at + ": the command name must be plain text, not a template: " + quoted(cmd.name);
      return false;
    }
    KeySpec spec = key_spec(cmd.name);
    if (need_keys && spec == KeySpec::Unknown) {
      *err = name_at + ": ttl and key_prefix need to know which arguments of '" + cmd.name +
             "' are keys, and it is not a command they know";
      return false;
    }
    for (size_t j = 1; j < items.size(); ++j) {
      ArgTemplate a;
      std::string why;
      if (!parse_arg(items[j], &a, &why)) {
        *err = at + "[" + std::to_string(j) + "]: " + why;
        return false;
      }
      switch (spec) {
        case KeySpec::First:
          a.is_key = a.ttl_key = j == 1;
          break;
        case KeySpec::FirstNoTtl:
          a.is_key = j == 1;
          break;
        case KeySpec::Pairs:
          a.is_key = a.ttl_key = j % 2 == 1;
          break;
        case KeySpec::AllNoTtl:
          a.is_key = true;
          break;
        case KeySpec::None:
          break;
        case KeySpec::Unknown:
          a.declared = j == 1;
          break;
      }
      a.declared = a.declared || a.is_key;
      cmd.args.push_back(std::move(a));
    }
    if ((spec == KeySpec::First || spec == KeySpec::FirstNoTtl) && cmd.args.empty()) {
      *err = at + ": '" + cmd.name + "' needs a key";
      return false;
    }
    out->push_back(std::move(cmd));
  }
  return true;
}

bool RecordEncoder::render(FieldSource &rec, const ArgTemplate &a, std::string *out,
                           std::string *reason, size_t tmpl) {
  out->clear();
  if (a.is_key) *out += cfg_->key_prefix;
  for (const Piece &p : a.pieces) {
    if (!p.is_field) {
      *out += p.text;
      continue;
    }
    if (p.whole_record) {
      rec.append_record_json(out);
      continue;
    }
    FieldSource::Kind k = rec.append_field(p.text, out);
    if (k == FieldSource::Kind::Missing || k == FieldSource::Kind::Null) {
      *reason = (tmpl == kIfNewerKey ? std::string("if_newer_key")
                                     : "template commands[" + std::to_string(tmpl) + "]") +
                " needs field '" + p.text + "', " +
                (k == FieldSource::Kind::Missing ? "the record has none" : "it is null");
      return false;
    }
  }
  return true;
}

bool RecordEncoder::encode(FieldSource &rec, std::string_view sha, std::string *out,
                           std::vector<CommandExtent> *cmds, std::vector<std::string> *ttl_keys,
                           std::string *reason) {
  const EncoderConfig &c = *cfg_;
  // Render every argument first: a missing field must leave nothing behind.
  size_t total = 0;
  for (const auto &cmd : c.commands)
    total += cmd.args.size();
  if (args_.size() < total + 2) args_.resize(total + 2);
  std::string &guard = args_[total];
  std::string &value = args_[total + 1];
  if (!c.if_newer.empty()) {
    value.clear();
    FieldSource::Kind vk = rec.append_field(c.if_newer, &value);
    if (vk == FieldSource::Kind::Missing || vk == FieldSource::Kind::Null) {
      *reason = "if_newer needs field '" + c.if_newer + "', " +
                (vk == FieldSource::Kind::Missing ? "the record has none" : "it is null");
      return false;
    }
    if (vk != FieldSource::Kind::Number && vk != FieldSource::Kind::String) {
      *reason = "if_newer field '" + c.if_newer + "' must be a number or a string";
      return false;
    }
    if (!render(rec, c.if_newer_key, &guard, reason, kIfNewerKey)) return false;
  }
  size_t k = 0;
  size_t ttl_count = 0, declared = 0;
  for (size_t i = 0; i < c.commands.size(); ++i) {
    for (const ArgTemplate &a : c.commands[i].args) {
      if (!render(rec, a, &args_[k++], reason, i)) return false;
      if (a.ttl_key && c.ttl_ms > 0) ++ttl_count;
      if (a.declared) ++declared;
    }
  }
  if (c.if_newer.empty()) {
    k = 0;
    for (size_t i = 0; i < c.commands.size(); ++i) {
      const CommandTemplate &cmd = c.commands[i];
      size_t start = out->size();
      resp_array(out, cmd.args.size() + 1);
      resp_bulk(out, cmd.name);
      for (const ArgTemplate &a : cmd.args) {
        resp_bulk(out, args_[k]);
        if (a.ttl_key && c.ttl_ms > 0) ttl_keys->push_back(args_[k]);
        ++k;
      }
      cmds->push_back(CommandExtent{start, out->size() - start, static_cast<int>(i)});
    }
    return true;
  }
  // if_newer: one EVALSHA with the guard key and value (rendered above).
  // Every key the commands touch is declared (KEYS), the ones to expire
  // first: Redis Cluster routes a script, and refuses it during a slot
  // migration (TRYAGAIN), by its declared keys only.
  auto expires = [&](const ArgTemplate &a) { return a.ttl_key && c.ttl_ms > 0; };
  size_t nkeys = 1 + declared;  // the keys to expire are among the declared
  size_t nargs = 3 + nkeys + 4;
  for (const auto &cmd : c.commands)
    nargs += 2 + cmd.args.size();
  size_t start = out->size();
  resp_array(out, nargs);
  resp_bulk(out, "EVALSHA");
  resp_bulk(out, sha);
  resp_bulk(out, std::to_string(nkeys));
  resp_bulk(out, guard);
  for (int pass = 0; pass < 2; ++pass) {
    k = 0;
    for (const auto &cmd : c.commands) {
      for (const ArgTemplate &a : cmd.args) {
        bool listed = pass == 0 ? expires(a) : a.declared && !expires(a);
        if (listed) resp_bulk(out, args_[k]);
        ++k;
      }
    }
  }
  resp_bulk(out, value);
  resp_bulk(out, std::to_string(c.ttl_ms));
  resp_bulk(out, std::to_string(ttl_count));
  resp_bulk(out, std::to_string(c.commands.size()));
  k = 0;
  for (const auto &cmd : c.commands) {
    resp_bulk(out, std::to_string(cmd.args.size() + 1));
    resp_bulk(out, cmd.name);
    for (size_t j = 0; j < cmd.args.size(); ++j)
      resp_bulk(out, args_[k++]);
  }
  cmds->push_back(CommandExtent{start, out->size() - start, kScript});
  return true;
}

}  // namespace ingestd::redis
