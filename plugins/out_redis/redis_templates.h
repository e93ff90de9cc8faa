// Command templates of the redis output: parsing and checking them at config
// load, and turning one record into RESP-encoded commands. Pure code over a
// small record interface (FieldSource), so it is unit-tested without a host.
//
// Template syntax, per argument: literal text, `{path}` for a record field
// (`{a.b}` for nested objects), `{_json}` for the whole record, `{{` and `}}`
// for literal braces. The command name (first item) is plain text.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ingestd::redis {

// Which arguments of a command are keys: they get key_prefix, and `ttl`
// expires the ones a command writes.
enum class KeySpec : uint8_t {
  Unknown,     // not in our table: no key_prefix or ttl possible
  None,        // no keys (PUBLISH, PING...)
  First,       // argument 1 is the key written (SET, HSET, GEOADD, ZADD, XADD...)
  FirstNoTtl,  // argument 1 is a key, but expiring it makes no sense (DEL-like, EXPIRE)
  Pairs,       // MSET/MSETNX: arguments 1, 3, 5... are keys written
  AllNoTtl,    // DEL/UNLINK: every argument is a key
};
KeySpec key_spec(std::string_view command);

struct Piece {
  bool is_field = false;
  bool whole_record = false;  // {_json}
  std::string text;           // literal text, or the field path
};

struct ArgTemplate {
  std::vector<Piece> pieces;
  bool is_key = false;    // gets key_prefix
  bool ttl_key = false;   // expired when ttl > 0
  bool declared = false;  // a key the if_newer script declares (KEYS): is_key, or the first
                          // argument of a command not in the table (most take their key first)
  std::string source;     // as written, for messages
};

struct CommandTemplate {
  std::string name;
  std::vector<ArgTemplate> args;  // after the name
};

// Parses one argument; false with `*err` ("unclosed '{' in \"x{y\"").
bool parse_arg(std::string_view text, ArgTemplate *out, std::string *err);

// Parses `commands` (list i, item j) and marks key arguments. `need_keys`:
// ttl or key_prefix is set, so every command must be one whose keys we know.
// Errors name their position: "commands[1][1]: unclosed '{' in \"rider:{id\"".
bool parse_commands(const std::vector<std::vector<std::string>> &in, bool need_keys,
                    std::vector<CommandTemplate> *out, std::string *err);

// What the encoder reads from a record.
class FieldSource {
 public:
  enum class Kind { Missing, Null, Bool, Number, String, Json };
  virtual ~FieldSource() = default;
  // Appends the value at `path` as text (strings raw, numbers exactly as
  // written, true/false, objects and arrays as compact JSON) unless it is
  // Missing or Null, and says which it was.
  virtual Kind append_field(const std::string &path, std::string *out) = 0;
  virtual void append_record_json(std::string *out) = 0;
};

struct EncoderConfig {
  std::vector<CommandTemplate> commands;
  std::string key_prefix;
  uint64_t ttl_ms = 0;
  std::string if_newer;      // field path; empty: plain commands
  ArgTemplate if_newer_key;  // where the newest if_newer value is kept
};

// One encoded command inside an encoder's output buffer.
struct CommandExtent {
  size_t offset = 0;
  size_t len = 0;
  int tmpl = 0;  // index into commands, kScript for the if_newer EVALSHA
};
constexpr int kScript = -1;
constexpr int kExpire = -2;

class RecordEncoder {
 public:
  explicit RecordEncoder(const EncoderConfig *cfg) : cfg_(cfg) {}

  // Appends the record's commands to *out and their extents to *cmds. Without
  // if_newer, the keys to expire (ttl > 0) are appended to *ttl_keys for the
  // caller to expire once per batch; with it, one EVALSHA `sha` carries all
  // commands and the expiry. On failure nothing is appended and *reason says
  // why ("template commands[0] needs field 'lat', the record has none").
  bool encode(FieldSource &rec, std::string_view sha, std::string *out,
              std::vector<CommandExtent> *cmds, std::vector<std::string> *ttl_keys,
              std::string *reason);

 private:
  static constexpr size_t kIfNewerKey = ~size_t{0};
  // `tmpl` names the template in the reason (kIfNewerKey: if_newer_key).
  bool render(FieldSource &rec, const ArgTemplate &a, std::string *out, std::string *reason,
              size_t tmpl);

  const EncoderConfig *cfg_;
  std::vector<std::string> args_;  // scratch, reused across records
};

}  // namespace ingestd::redis
