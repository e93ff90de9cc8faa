// Redis wire details the redis output needs and that do not depend on a
// connection: RESP encoding of commands, the classification of error replies,
// and the server-side script behind `if_newer`. Pure code, unit-tested.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace ingestd::redis {

// Reads "$len\r\nDATA\r\n" at *pos into *out and moves *pos past it; false
// if `s` does not hold one there.
bool read_bulk(std::string_view s, size_t *pos, std::string_view *out);

// "*N\r\n": the header of a command of N bulk strings (the name counts).
void resp_array(std::string *out, size_t n);
// "$len\r\nDATA\r\n".
void resp_bulk(std::string *out, std::string_view s);

// EXPIRE key seconds when ttl_ms is a whole number of seconds, else PEXPIRE.
void resp_expire(std::string *out, std::string_view key, uint64_t ttl_ms);

// What to do with a record whose command got an error reply.
enum class ErrorClass {
  Retry,      // the server's state, not the record: retry with the host's backoff
  Permanent,  // the record or template cannot succeed: dead-letter with the message
  NoScript,   // EVALSHA of a script the server forgot: send it again as EVAL
  NoAuth,     // the connection lost its authentication: retry and reconnect
};
ErrorClass classify_error(std::string_view message);

// The `if_newer` script. KEYS[1] holds the newest value stored so far;
// KEYS[2..] are the keys the record's commands touch, the ARGV[3] to expire
// (when ttl > 0) first. ARGV: value, ttl_ms ("0": none), how many keys to
// expire, command count, then per command its argument count and arguments
// (name first). Returns 1 when the commands ran,
// 0 when the stored value was newer or equal. Values that both read as numbers
// are compared as numbers, else as byte strings.
extern const char kNewerScript[];

// Turns one encoded "EVALSHA sha ..." command into "EVAL script ..." with the
// same remaining arguments (after NOSCRIPT). Empty if `evalsha` is not one.
std::string evalsha_to_eval(std::string_view evalsha, std::string_view script);

}  // namespace ingestd::redis
