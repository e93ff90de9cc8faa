// Slots, slot maps and redirections of Redis Cluster (redis_cluster.h).
#include "redis_cluster.h"

#include <charconv>
#include <cstring>

#include "common/text.h"
#include "redis_protocol.h"

namespace ingestd::redis {

using common::iequals;

namespace {

// The table of CRC16/XMODEM (polynomial 0x1021, initial 0), built at compile
// time rather than written out.
constexpr std::array<uint16_t, 256> make_crc_table() {
  std::array<uint16_t, 256> t{};
  for (int i = 0; i < 256; ++i) {
    auto crc = static_cast<uint16_t>(i << 8);
    for (int b = 0; b < 8; ++b)
      crc = static_cast<uint16_t>((crc & 0x8000) ? (crc << 1) ^ 0x1021 : crc << 1);
    t[static_cast<size_t>(i)] = crc;
  }
  return t;
}
constexpr std::array<uint16_t, 256> kCrcTable = make_crc_table();

bool is(const redisReply *r, int type) {
  return r && r->type == type;
}

std::string_view text(const redisReply *r) {
  if (is(r, REDIS_REPLY_STRING) || is(r, REDIS_REPLY_STATUS)) return {r->str, r->len};
  return {};
}

bool integer(const redisReply *r, long long *v) {
  if (is(r, REDIS_REPLY_INTEGER)) {
    *v = r->integer;
    return true;
  }
  std::string_view s = text(r);
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *v);
  return !s.empty() && ec == std::errc() && p == s.data() + s.size();
}

// A RESP2 flat map ["k1", v1, "k2", v2...] (RESP2 only: hiredis 0.14 has no
// RESP3 maps).
const redisReply *field(const redisReply *map, std::string_view key) {
  if (!is(map, REDIS_REPLY_ARRAY)) return nullptr;
  for (size_t i = 0; i + 1 < map->elements; i += 2)
    if (text(map->element[i]) == key) return map->element[i + 1];
  return nullptr;
}

bool valid_slot(long long s) {
  return s >= 0 && s < kSlots;
}

// endpoint > hostname > ip; "?" and "" stand for the host that answered.
std::string node_host(const redisReply *node, const std::string &answered_by) {
  for (const char *k : {"endpoint", "hostname", "ip"}) {
    std::string_view v = text(field(node, k));
    if (!v.empty() && v != "?") return std::string(v);
  }
  return answered_by;
}

// Template pieces with neighbouring literals merged and `prefix` in front.
std::vector<Piece> normalized(const ArgTemplate &a, std::string_view prefix) {
  std::vector<Piece> out;
  auto literal = [&](std::string_view t) {
    if (t.empty()) return;
    if (out.empty() || out.back().is_field) out.push_back(Piece{});
    out.back().text.append(t);
  };
  literal(prefix);
  for (const Piece &p : a.pieces) {
    if (p.is_field) {
      out.push_back(p);
    } else {
      literal(p.text);
    }
  }
  return out;
}

bool same(const std::vector<Piece> &a, const std::vector<Piece> &b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].is_field != b[i].is_field || a[i].whole_record != b[i].whole_record ||
        a[i].text != b[i].text)
      return false;
  }
  return true;
}

// The hashed part of a key template as pieces, when it can be told at config
// time: no field before the first literal '{', a literal '}' closing it, and
// something in between. false: it depends on the record.
bool tag_pieces(const std::vector<Piece> &key, std::vector<Piece> *tag) {
  tag->clear();
  bool open = false;
  for (const Piece &p : key) {
    if (p.is_field) {
      if (!open) return false;  // the value may hold the first '{'
      tag->push_back(p);
      continue;
    }
    std::string_view t = p.text;
    if (!open) {
      size_t b = t.find('{');
      if (b == std::string_view::npos) continue;
      open = true;
      t.remove_prefix(b + 1);
    }
    size_t e = t.find('}');
    std::string_view inside = t.substr(0, e);
    if (!inside.empty()) tag->push_back(Piece{false, false, std::string(inside)});
    if (e != std::string_view::npos) return !tag->empty();
  }
  return false;  // no closing '}': the whole key, whose fields vary
}

bool all_literal(const std::vector<Piece> &pieces) {
  for (const Piece &p : pieces)
    if (p.is_field) return false;
  return true;
}

}  // namespace

uint16_t crc16(std::string_view data) {
  uint16_t crc = 0;
  for (char c : data)
    crc = static_cast<uint16_t>((crc << 8) ^
                                kCrcTable[((crc >> 8) ^ static_cast<uint8_t>(c)) & 0xff]);
  return crc;
}

std::string_view hash_part(std::string_view key) {
  size_t open = key.find('{');
  if (open == std::string_view::npos) return key;
  size_t close = key.find('}', open + 1);
  if (close == std::string_view::npos || close == open + 1) return key;
  return key.substr(open + 1, close - open - 1);
}

int key_slot(std::string_view key) {
  return crc16(hash_part(key)) & (kSlots - 1);
}

bool command_key(std::string_view cmd, std::string_view *key) {
  *key = {};
  if (cmd.empty() || cmd[0] != '*') return false;
  size_t eol = cmd.find("\r\n");
  if (eol == std::string_view::npos) return false;
  size_t argc = 0;
  auto [q, ec] = std::from_chars(cmd.data() + 1, cmd.data() + eol, argc);
  if (ec != std::errc() || q != cmd.data() + eol) return false;
  size_t p = eol + 2;
  std::string_view name, arg;
  if (argc == 0 || !read_bulk(cmd, &p, &name)) return false;
  if (argc < 2) return true;
  if (!read_bulk(cmd, &p, &arg)) return false;
  if (iequals(name, "EVAL") || iequals(name, "EVALSHA")) {
    std::string_view numkeys;
    if (argc < 4 || !read_bulk(cmd, &p, &numkeys)) return argc < 4;
    if (numkeys == "0") return true;
    return read_bulk(cmd, &p, key);
  }
  *key = arg;
  return true;
}

Redirect parse_redirect(std::string_view error) {
  Redirect r;
  Redirect::Kind kind;
  if (error.starts_with("MOVED ")) {
    kind = Redirect::Moved;
  } else if (error.starts_with("ASK ")) {
    kind = Redirect::Ask;
  } else {
    return r;
  }
  std::string_view rest = error.substr(error.find(' ') + 1);
  size_t sp = rest.find(' ');
  if (sp == std::string_view::npos) return r;
  int slot = -1;
  auto [q, ec] = std::from_chars(rest.data(), rest.data() + sp, slot);
  if (ec != std::errc() || q != rest.data() + sp || !valid_slot(slot)) return r;
  std::string_view addr = rest.substr(sp + 1);
  size_t colon = addr.rfind(':');
  if (colon == std::string_view::npos) return r;
  int port = 0;
  auto [pe, ec2] = std::from_chars(addr.data() + colon + 1, addr.data() + addr.size(), port);
  if (ec2 != std::errc() || pe != addr.data() + addr.size() || port < 1 || port > 65535) return r;
  std::string_view host = addr.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  r.kind = kind;
  r.slot = slot;
  r.host = std::string(host);
  r.port = port;
  return r;
}

bool parse_cluster_shards(const redisReply *r, bool tls, const std::string &answered_by,
                          std::vector<ShardNode> *out, std::string *err) {
  out->clear();
  if (!is(r, REDIS_REPLY_ARRAY)) {
    *err = "CLUSTER SHARDS: not an array";
    return false;
  }
  for (size_t i = 0; i < r->elements; ++i) {
    const redisReply *shard = r->element[i];
    const redisReply *slots = field(shard, "slots");
    const redisReply *nodes = field(shard, "nodes");
    if (!is(slots, REDIS_REPLY_ARRAY) || !is(nodes, REDIS_REPLY_ARRAY) || slots->elements % 2) {
      *err = "CLUSTER SHARDS: a shard without slots or nodes";
      return false;
    }
    if (slots->elements == 0) continue;  // a shard that serves nothing (yet)
    const redisReply *primary = nullptr;
    for (size_t n = 0; n < nodes->elements; ++n) {
      const redisReply *node = nodes->element[n];
      if (text(field(node, "role")) != "master") continue;
      // After a failover the old primary may still be listed, failed.
      if (!primary || text(field(node, "health")) == "online") primary = node;
    }
    if (!primary) continue;  // the shard has lost its primary: no writes there now
    ShardNode sn;
    sn.host = node_host(primary, answered_by);
    long long port = 0;
    if (!integer(field(primary, tls ? "tls-port" : "port"), &port) || port < 1 || port > 65535) {
      *err = std::string("CLUSTER SHARDS: a primary without a ") + (tls ? "tls-port" : "port") +
             (tls ? " (the cluster's nodes do not listen for TLS)" : "");
      return false;
    }
    sn.port = static_cast<int>(port);
    for (size_t s = 0; s + 1 < slots->elements; s += 2) {
      long long a = 0, b = 0;
      if (!integer(slots->element[s], &a) || !integer(slots->element[s + 1], &b) ||
          !valid_slot(a) || !valid_slot(b) || a > b) {
        *err = "CLUSTER SHARDS: a slot range out of 0-16383";
        return false;
      }
      sn.ranges.emplace_back(static_cast<int>(a), static_cast<int>(b));
    }
    out->push_back(std::move(sn));
  }
  return true;
}

bool parse_cluster_slots(const redisReply *r, const std::string &answered_by,
                         std::vector<ShardNode> *out, std::string *err) {
  out->clear();
  if (!is(r, REDIS_REPLY_ARRAY)) {
    *err = "CLUSTER SLOTS: not an array";
    return false;
  }
  for (size_t i = 0; i < r->elements; ++i) {
    const redisReply *range = r->element[i];
    long long a = 0, b = 0, port = 0;
    if (!is(range, REDIS_REPLY_ARRAY) || range->elements < 3 || !integer(range->element[0], &a) ||
        !integer(range->element[1], &b) || !valid_slot(a) || !valid_slot(b) || a > b) {
      *err = "CLUSTER SLOTS: an entry without a slot range";
      return false;
    }
    const redisReply *node = range->element[2];
    if (!is(node, REDIS_REPLY_ARRAY) || node->elements < 2 || !integer(node->element[1], &port) ||
        port < 1 || port > 65535) {
      *err = "CLUSTER SLOTS: a range without its primary";
      return false;
    }
    std::string host(text(node->element[0]));
    if (host.empty() || host == "?") host = answered_by;
    auto p = static_cast<int>(port);
    ShardNode *sn = nullptr;
    for (ShardNode &s : *out)
      if (s.host == host && s.port == p) sn = &s;
    if (!sn) {
      out->push_back(ShardNode{host, p, {}});
      sn = &out->back();
    }
    sn->ranges.emplace_back(static_cast<int>(a), static_cast<int>(b));
  }
  return true;
}

bool keys_share_slot(const ArgTemplate &a, const ArgTemplate &b, std::string_view prefix) {
  std::vector<Piece> ka = normalized(a, prefix), kb = normalized(b, prefix);
  if (same(ka, kb)) return true;
  std::vector<Piece> ta, tb;
  bool has_a = tag_pieces(ka, &ta), has_b = tag_pieces(kb, &tb);
  // What each key hashes, as pieces: its tag, or the whole key when that is
  // literal (it hashes to one known slot).
  auto hashed = [](bool has_tag, std::vector<Piece> &tag, const std::vector<Piece> &key) {
    if (has_tag) return true;
    if (!all_literal(key)) return false;
    std::string whole = key.empty() ? std::string() : key[0].text;
    std::string part(hash_part(whole));
    tag.assign(1, Piece{false, false, part});
    return true;
  };
  if (!hashed(has_a, ta, ka) || !hashed(has_b, tb, kb)) return false;
  if (all_literal(ta) && all_literal(tb)) {
    auto joined = [](const std::vector<Piece> &t) {
      std::string s;
      for (const Piece &p : t)
        s += p.text;
      return s;
    };
    return crc16(joined(ta)) % kSlots == crc16(joined(tb)) % kSlots;
  }
  return same(ta, tb);
}

}  // namespace ingestd::redis
