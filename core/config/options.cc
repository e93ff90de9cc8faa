// Typed option values and the parsers for sizes, durations and addresses.
#include "config/options.h"
#include "common/text.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <limits>

namespace ingestd::config {

using common::iequals;
using common::trim;

std::string Position::str() const {
  if (line == 0) return file;
  return file + ":" + std::to_string(line) + ":" + std::to_string(col);
}

// ---- OptionValues ----------------------------------------------------------

const OptionValue *OptionValues::find(std::string_view name) const {
  // Linear: tables have tens of rows and lookups happen at init time.
  for (const OptionValue &v : values_) {
    if (v.row.name != nullptr && name == v.row.name) return &v;
  }
  return nullptr;
}

bool OptionValues::has(std::string_view name) const {
  const OptionValue *v = find(name);
  return v != nullptr && v->has_value;
}

const OptionValue *OptionValues::find_typed(std::string_view name,
                                            ingestd_option_kind_type type) const {
  const OptionValue *v = find(name);
  if (v == nullptr || !v->has_value) return nullptr;
  if (v->row.type == type) return v;
  if (type == INGESTD_OPT_STRING && v->row.type == INGESTD_OPT_ENUM) return v;
  return nullptr;
}

const std::string &OptionValues::get_string(std::string_view name) const {
  static const std::string kEmpty;
  const OptionValue *v = find_typed(name, INGESTD_OPT_STRING);
  return v ? v->str : kEmpty;
}

int64_t OptionValues::get_int(std::string_view name) const {
  const OptionValue *v = find_typed(name, INGESTD_OPT_INT);
  return v ? v->i : 0;
}

uint64_t OptionValues::get_size(std::string_view name) const {
  const OptionValue *v = find_typed(name, INGESTD_OPT_SIZE);
  return v ? v->size : 0;
}

int64_t OptionValues::get_duration_ms(std::string_view name) const {
  const OptionValue *v = find_typed(name, INGESTD_OPT_DURATION);
  return v ? v->i : 0;
}

bool OptionValues::get_bool(std::string_view name) const {
  const OptionValue *v = find_typed(name, INGESTD_OPT_BOOL);
  return v ? v->b : false;
}

double OptionValues::get_double(std::string_view name) const {
  const OptionValue *v = find_typed(name, INGESTD_OPT_DOUBLE);
  return v ? v->d : 0;
}

const std::vector<std::string> &OptionValues::get_list(std::string_view name) const {
  static const std::vector<std::string> kEmpty;
  const OptionValue *v = find_typed(name, INGESTD_OPT_STRING_LIST);
  return v ? v->list : kEmpty;
}

const std::vector<std::vector<std::string>> &OptionValues::get_list_list(
    std::string_view name) const {
  static const std::vector<std::vector<std::string>> kEmpty;
  const OptionValue *v = find_typed(name, INGESTD_OPT_STRING_LIST_LIST);
  return v ? v->list_list : kEmpty;
}

const std::vector<std::pair<std::string, std::string>> &OptionValues::get_map(
    std::string_view name) const {
  static const std::vector<std::pair<std::string, std::string>> kEmpty;
  const OptionValue *v = find_typed(name, INGESTD_OPT_STRING_MAP);
  return v ? v->map : kEmpty;
}

// ---- value syntaxes --------------------------------------------------------

namespace {

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

// Reads leading decimal digits into *out; returns how many were read, or
// SIZE_MAX on overflow.
size_t read_uint(std::string_view s, uint64_t *out) {
  size_t n = 0;
  while (n < s.size() && is_digit(s[n]))
    ++n;
  if (n == 0) return 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + n, *out);
  (void)p;
  if (ec != std::errc()) return std::numeric_limits<size_t>::max();
  return n;
}

struct Unit {
  const char *name;
  uint64_t factor;
};

constexpr Unit kSizeUnits[] = {
    {"B", 1},
    {"KB", 1000},
    {"KiB", uint64_t{1} << 10},
    {"MB", 1000 * 1000},
    {"MiB", uint64_t{1} << 20},
    {"GB", 1000 * 1000 * 1000},
    {"GiB", uint64_t{1} << 30},
};

// Largest unit first: "1h30m" must be written in this order.
constexpr Unit kDurationUnits[] = {
    {"h", 3600 * 1000},
    {"m", 60 * 1000},
    {"s", 1000},
    {"ms", 1},
};

}  // namespace

bool parse_size(std::string_view text, uint64_t *out, std::string *err) {
  const std::string units = "units are B, KB, KiB, MB, MiB, GB, GiB";
  auto fail = [&](const std::string &why) {
    if (err) *err = "invalid size '" + std::string(text) + "': " + why;
    return false;
  };
  std::string_view s = trim(text);
  uint64_t n = 0;
  size_t used = read_uint(s, &n);
  if (used == 0) return fail(units);
  if (used == std::numeric_limits<size_t>::max()) return fail("too large");
  std::string_view unit = trim(s.substr(used));
  uint64_t factor = 1;
  if (!unit.empty()) {
    const Unit *found = nullptr;
    for (const Unit &u : kSizeUnits) {
      if (iequals(unit, u.name)) found = &u;
    }
    if (found == nullptr) return fail(units);
    factor = found->factor;
  }
  if (n > std::numeric_limits<uint64_t>::max() / factor) return fail("too large");
  *out = n * factor;
  return true;
}

bool parse_duration_ms(std::string_view text, int64_t *out, std::string *err) {
  auto fail = [&](const std::string &why) {
    if (err) *err = "invalid duration '" + std::string(text) + "': " + why;
    return false;
  };
  const std::string units = "units are ms, s, m, h, combined like \"1m30s\"";
  std::string_view s = trim(text);
  if (s.empty()) return fail(units);
  uint64_t total = 0;
  size_t next_unit = 0;  // index into kDurationUnits: units must get smaller
  while (!s.empty()) {
    uint64_t n = 0;
    size_t used = read_uint(s, &n);
    if (used == 0) return fail(units);
    if (used == std::numeric_limits<size_t>::max()) return fail("too large");
    s.remove_prefix(used);
    size_t ulen = 0;
    while (ulen < s.size() && std::isalpha(static_cast<unsigned char>(s[ulen])))
      ++ulen;
    std::string_view unit = s.substr(0, ulen);
    s.remove_prefix(ulen);
    if (unit.empty()) {
      if (total == 0 && s.empty()) {
        return fail("add a unit (ms, s, m or h), e.g. \"" + std::to_string(n) + "s\"");
      }
      return fail(units);
    }
    size_t k = 0;
    while (k < std::size(kDurationUnits) && unit != kDurationUnits[k].name)
      ++k;
    if (k == std::size(kDurationUnits)) return fail(units);
    if (k < next_unit) return fail("write units from largest to smallest, each once");
    next_unit = k + 1;
    uint64_t factor = kDurationUnits[k].factor;
    constexpr uint64_t kMax = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
    if (n > kMax / factor || total > kMax - n * factor) return fail("too large");
    total += n * factor;
  }
  *out = static_cast<int64_t>(total);
  return true;
}

bool parse_listen_address(std::string_view text, std::string *host, uint16_t *port,
                          std::string *err) {
  auto fail = [&](const std::string &why) {
    if (err) {
      *err = "invalid address '" + std::string(text) + "': " + why;
    }
    return false;
  };
  std::string h;
  std::string_view rest;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos) return fail("missing ']' after the IPv6 address");
    h = std::string(text.substr(1, close - 1));
    in6_addr a6;
    if (inet_pton(AF_INET6, h.c_str(), &a6) != 1) {
      return fail("'" + h + "' is not an IPv6 address");
    }
    rest = text.substr(close + 1);
    if (rest.empty() || rest.front() != ':') return fail("expected ':port' after ']'");
    rest.remove_prefix(1);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      return fail("expected host:port (e.g. \"0.0.0.0:8080\" or \"[::1]:8080\")");
    }
    h = std::string(text.substr(0, colon));
    rest = text.substr(colon + 1);
    in_addr a4;
    if (h.find(':') != std::string::npos) {
      return fail("write an IPv6 address in brackets, e.g. \"[::1]:8080\"");
    }
    if (h != "localhost" && inet_pton(AF_INET, h.c_str(), &a4) != 1) {
      return fail("host must be an IPv4 address, [IPv6 address] or localhost");
    }
  }
  uint64_t p = 0;
  size_t used = read_uint(rest, &p);
  if (used == 0 || used != rest.size() || p > 65535) {
    return fail("port must be a number from 0 to 65535 (0: any free port)");
  }
  if (host) *host = std::move(h);
  if (port) *port = static_cast<uint16_t>(p);
  return true;
}

bool parse_cidr(std::string_view text, std::string *err) {
  auto fail = [&](const std::string &why) {
    if (err) *err = "invalid CIDR '" + std::string(text) + "': " + why;
    return false;
  };
  size_t slash = text.find('/');
  std::string addr(text.substr(0, slash));
  unsigned char buf[sizeof(in6_addr)];
  uint64_t max_bits = 0;
  if (inet_pton(AF_INET, addr.c_str(), buf) == 1) {
    max_bits = 32;
  } else if (inet_pton(AF_INET6, addr.c_str(), buf) == 1) {
    max_bits = 128;
  } else {
    return fail("'" + addr + "' is not an IPv4 or IPv6 address");
  }
  if (slash == std::string_view::npos) return true;
  std::string_view bits_text = text.substr(slash + 1);
  uint64_t bits = 0;
  size_t used = read_uint(bits_text, &bits);
  if (used == 0 || used != bits_text.size() || bits > max_bits) {
    return fail("prefix length must be 0 to " + std::to_string(max_bits));
  }
  return true;
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j)
    prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

const char *option_type_name(ingestd_option_kind_type type) {
  switch (type) {
    case INGESTD_OPT_STRING:
      return "string";
    case INGESTD_OPT_INT:
      return "integer";
    case INGESTD_OPT_DOUBLE:
      return "number";
    case INGESTD_OPT_BOOL:
      return "boolean";
    case INGESTD_OPT_SIZE:
      return "size";
    case INGESTD_OPT_DURATION:
      return "duration";
    case INGESTD_OPT_ENUM:
      return "enum";
    case INGESTD_OPT_STRING_LIST:
      return "list of strings";
    case INGESTD_OPT_STRING_LIST_LIST:
      return "list of lists of strings";
    case INGESTD_OPT_STRING_MAP:
      return "table of strings";
  }
  return "unknown";
}

}  // namespace ingestd::config
