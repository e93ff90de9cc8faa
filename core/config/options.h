// Option values: the typed result of validating one config section against
// its option table, plus the parsers for the value syntaxes (sizes,
// durations, addresses) that other areas reuse.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ingestd/plugin.h"

namespace ingestd::config {

// Where something was written. line and col are 1-based; 0 means "the whole
// file" (e.g. it cannot be opened).
struct Position {
  std::string file;
  uint32_t line = 0;
  uint32_t col = 0;
  std::string str() const;  // "file:line:col", or "file" when line is 0
};

// One option of a section after validation. Only the member that matches
// `row.type` is meaningful:
//   STRING, ENUM -> str        INT -> i          DURATION -> i (milliseconds)
//   SIZE -> size (bytes)       DOUBLE -> d       BOOL -> b
//   STRING_LIST -> list        STRING_LIST_LIST -> list_list
//   STRING_MAP -> map (in file order)
struct OptionValue {
  // The effective row: the core's or the plugin's, with a plugin's default
  // override applied. Its strings are static or owned by the loaded plugin.
  ingestd_option_t row{};
  bool has_value = false;          // set in config or by a default
  bool explicitly_set = false;     // written in a config file
  Position pos;                    // of the value when explicitly set, else empty
  std::vector<Position> item_pos;  // STRING_LIST / _LIST_LIST / MAP: one per item when set

  std::string str;
  int64_t i = 0;
  uint64_t size = 0;
  double d = 0;
  bool b = false;
  std::vector<std::string> list;
  std::vector<std::vector<std::string>> list_list;
  std::vector<std::pair<std::string, std::string>> map;

  std::string_view name() const { return row.name; }
  ingestd_option_kind_type type() const { return row.type; }
};

// All options of one section's merged table (core rows first, then the
// plugin's own rows, in table order), with defaults applied.
//
// Getters return a zero value ("" / 0 / false / empty list) for an unknown
// name, a wrong type, or an option without value. The object doubles as the
// plugin ABI's `ingestd_config_t`: abi() pointers and every string handed out
// stay valid as long as this object is neither destroyed nor moved.
class OptionValues {
 public:
  bool has(std::string_view name) const;
  const OptionValue *find(std::string_view name) const;

  const std::string &get_string(std::string_view name) const;  // STRING, ENUM
  int64_t get_int(std::string_view name) const;                // INT
  uint64_t get_size(std::string_view name) const;              // SIZE, bytes
  int64_t get_duration_ms(std::string_view name) const;        // DURATION
  bool get_bool(std::string_view name) const;
  double get_double(std::string_view name) const;
  const std::vector<std::string> &get_list(std::string_view name) const;
  const std::vector<std::vector<std::string>> &get_list_list(std::string_view name) const;
  const std::vector<std::pair<std::string, std::string>> &get_map(std::string_view name) const;

  const std::vector<OptionValue> &values() const { return values_; }
  std::vector<OptionValue> &mutable_values() { return values_; }

  const ingestd_config_t *abi() const { return reinterpret_cast<const ingestd_config_t *>(this); }
  static const OptionValues *from_abi(const ingestd_config_t *cfg) {
    return reinterpret_cast<const OptionValues *>(cfg);
  }

 private:
  const OptionValue *find_typed(std::string_view name, ingestd_option_kind_type type) const;

  std::vector<OptionValue> values_;
};

// "1MiB", "512 KiB", "1024" (bytes). Units B, KB, KiB, MB, MiB, GB, GiB (any
// case; KB = 1000, KiB = 1024). On failure `err` gets
// "invalid size '1XB': units are B, KB, KiB, MB, MiB, GB, GiB".
bool parse_size(std::string_view text, uint64_t *out, std::string *err);

// "500ms", "10s", "5m", "1h", combined from larger to smaller units: "1m30s",
// "1h5m10s500ms". A unit is required. Result in milliseconds.
bool parse_duration_ms(std::string_view text, int64_t *out, std::string *err);

// "host:port" with host an IPv4 literal or "localhost", or "[IPv6]:port";
// port 1..65535. `host` gets the host without brackets.
bool parse_listen_address(std::string_view text, std::string *host, uint16_t *port,
                          std::string *err);

// "10.0.0.0/8", "fd00::/8", or a bare address (a /32 or /128 network).
bool parse_cidr(std::string_view text, std::string *err);

// Levenshtein distance, for "did you mean" suggestions.
size_t edit_distance(std::string_view a, std::string_view b);

// "string", "integer", "size", "duration", ... as used in messages and docs.
const char *option_type_name(ingestd_option_kind_type type);

}  // namespace ingestd::config
