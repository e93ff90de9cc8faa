// RESP encoding, error classification and the if_newer script.
#include "redis_protocol.h"
#include "common/text.h"

#include <array>
#include <cctype>
#include <charconv>
#include <cstring>

namespace ingestd::redis {

using common::iequals;

namespace {

void append_number(std::string *out, uint64_t n) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, n);
  out->append(buf, static_cast<size_t>(r.ptr - buf));
}

}  // namespace

bool read_bulk(std::string_view s, size_t *pos, std::string_view *out) {
  if (*pos >= s.size() || s[*pos] != '$') return false;
  size_t eol = s.find("\r\n", *pos);
  if (eol == std::string_view::npos) return false;
  size_t len = 0;
  auto r = std::from_chars(s.data() + *pos + 1, s.data() + eol, len);
  if (r.ec != std::errc() || r.ptr != s.data() + eol) return false;
  size_t start = eol + 2;
  if (start + len + 2 > s.size() || s.compare(start + len, 2, "\r\n") != 0) return false;
  *out = s.substr(start, len);
  *pos = start + len + 2;
  return true;
}

namespace {

// "<c><n>\r\n" into buf (at least 24 bytes); its length.
size_t resp_head(char *buf, char c, size_t n) {
  buf[0] = c;
  char *p = std::to_chars(buf + 1, buf + 22, n).ptr;
  p[0] = '\r';
  p[1] = '\n';
  return static_cast<size_t>(p + 2 - buf);
}

}  // namespace

// Each writes its bytes with one resize of *out: commands are encoded for
// every record, and a handful of appends per argument was most of that cost.
void resp_array(std::string *out, size_t n) {
  char head[24];
  out->append(head, resp_head(head, '*', n));
}

void resp_bulk(std::string *out, std::string_view s) {
  char head[24];
  size_t hn = resp_head(head, '$', s.size());
  size_t old = out->size();
  out->resize(old + hn + s.size() + 2);
  char *w = out->data() + old;
  std::memcpy(w, head, hn);
  if (!s.empty()) std::memcpy(w + hn, s.data(), s.size());
  w[hn + s.size()] = '\r';
  w[hn + s.size() + 1] = '\n';
}

void resp_expire(std::string *out, std::string_view key, uint64_t ttl_ms) {
  resp_array(out, 3);
  std::string n;
  if (ttl_ms % 1000 == 0) {
    resp_bulk(out, "EXPIRE");
    append_number(&n, ttl_ms / 1000);
  } else {
    resp_bulk(out, "PEXPIRE");
    append_number(&n, ttl_ms);
  }
  resp_bulk(out, key);
  resp_bulk(out, n);
}

ErrorClass classify_error(std::string_view message) {
  std::string_view code = message.substr(0, message.find(' '));
  // Conditions of the server (loading, failover, memory, a busy script, a
  // cluster reshard) pass; the record is sent again after the host's backoff.
  // OOM is among them: memory frees as keys expire or get evicted, and
  // dead-lettering live positions for a transient condition would lose them.
  static constexpr std::array<std::string_view, 12> kRetry = {
      "LOADING",    "BUSY", "TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN", "READONLY",
      "NOREPLICAS", "OOM",  "MISCONF",  "MOVED",       "ASK",        "NOMASTERLINK"};
  for (std::string_view r : kRetry)
    if (iequals(code, r)) return ErrorClass::Retry;
  if (iequals(code, "NOSCRIPT")) return ErrorClass::NoScript;
  if (iequals(code, "NOAUTH")) return ErrorClass::NoAuth;
  if (iequals(code, "ERR") &&
      message.find("max number of clients reached") != std::string_view::npos)
    return ErrorClass::Retry;
  // WRONGTYPE, NOPERM, EXECABORT, ERR (arity, syntax, "not a valid float"...):
  // the same command fails the same way every time.
  return ErrorClass::Permanent;
}

const char kNewerScript[] =
    "local v = ARGV[1]\n"
    "local cur = redis.call('GET', KEYS[1])\n"
    "if cur then\n"
    "  local a, b = tonumber(v), tonumber(cur)\n"
    "  if a and b then\n"
    "    if a <= b then return 0 end\n"
    "  elseif v <= cur then\n"
    "    return 0\n"
    "  end\n"
    "end\n"
    "local i = 5\n"
    "for _ = 1, tonumber(ARGV[4]) do\n"
    "  local n = tonumber(ARGV[i])\n"
    "  redis.call(unpack(ARGV, i + 1, i + n))\n"
    "  i = i + n + 1\n"
    "end\n"
    "local ttl = tonumber(ARGV[2])\n"
    "if ttl > 0 then\n"
    "  redis.call('SET', KEYS[1], v, 'PX', ttl)\n"
    "  for k = 2, 1 + tonumber(ARGV[3]) do redis.call('PEXPIRE', KEYS[k], ttl) end\n"
    "else\n"
    "  redis.call('SET', KEYS[1], v)\n"
    "end\n"
    "return 1\n";

std::string evalsha_to_eval(std::string_view evalsha, std::string_view script) {
  size_t eol = evalsha.find("\r\n");
  if (evalsha.empty() || evalsha[0] != '*' || eol == std::string_view::npos) return {};
  size_t pos = eol + 2;
  std::string_view name, sha;
  if (!read_bulk(evalsha, &pos, &name) || !iequals(name, "EVALSHA")) return {};
  if (!read_bulk(evalsha, &pos, &sha)) return {};
  std::string out(evalsha.substr(0, eol + 2));
  resp_bulk(&out, "EVAL");
  resp_bulk(&out, script);
  out.append(evalsha.substr(pos));
  return out;
}

}  // namespace ingestd::redis
