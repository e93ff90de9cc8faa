// Redis Cluster without a cluster client library: key slots, the slot map
// from CLUSTER SHARDS (or CLUSTER SLOTS before 7.0), MOVED / ASK replies, and
// the config-time check that a record's keys can share a slot. Pure code over
// hiredis reply objects and template pieces, unit-tested without a server.
#pragma once

#include <hiredis/hiredis.h>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "redis_templates.h"

namespace ingestd::redis {

constexpr int kSlots = 16384;

// CRC16/XMODEM, the checksum Redis Cluster hashes keys with.
uint16_t crc16(std::string_view data);
// The part of `key` that is hashed: the text between the first '{' and the
// next '}' when that is not empty, else the whole key.
std::string_view hash_part(std::string_view key);
int key_slot(std::string_view key);

// The key an encoded command (one RESP array of bulk strings) is routed by:
// argument 1, or for EVAL / EVALSHA the first key after numkeys. Empty when
// the command has none (it may go to any primary); false when `cmd` is not
// well-formed RESP.
bool command_key(std::string_view cmd, std::string_view *key);

// "MOVED 3999 127.0.0.1:6381" / "ASK 3999 127.0.0.1:6381". An empty host
// ("MOVED 3999 :6380", cluster-preferred-endpoint-type unknown-endpoint)
// means the host of the node that answered.
struct Redirect {
  enum Kind { None, Moved, Ask } kind = None;
  int slot = -1;
  std::string host;
  int port = 0;
};
Redirect parse_redirect(std::string_view error);

// One primary and the slots it serves.
struct ShardNode {
  std::string host;
  int port = 0;
  std::vector<std::pair<int, int>> ranges;  // inclusive slot ranges
};

// The primaries of a CLUSTER SHARDS reply (online ones preferred over a
// failed one of the same shard). `tls`: use the node's tls-port. A node's
// host is its endpoint, else hostname, else ip ("?" and "" count as none);
// with none of them, `answered_by` (the host that was asked). false with *err for
// a reply of another shape.
bool parse_cluster_shards(const redisReply *r, bool tls, const std::string &answered_by,
                          std::vector<ShardNode> *out, std::string *err);
// The same from CLUSTER SLOTS (Redis < 7.0): the first node of each range is
// its primary; the port given is whichever the server is configured to
// announce (tls-cluster decides).
bool parse_cluster_slots(const redisReply *r, const std::string &answered_by,
                         std::vector<ShardNode> *out, std::string *err);

// Whether two key templates hash to the same slot for every record: their
// hashed parts are the same template. A key with a `{{...}}` hash tag hashes
// the tag; one without hashes whole, so it matches only an identical key.
// Tags that cannot be told at config time (a field value may hold braces
// itself) are not the same. `prefix` (key_prefix) goes in front of both. A
// record whose tag comes out empty (`{{}}`) hashes whole and may still land
// apart: Redis answers CROSSSLOT and the record is dead-lettered.
bool keys_share_slot(const ArgTemplate &a, const ArgTemplate &b, std::string_view prefix);

}  // namespace ingestd::redis
