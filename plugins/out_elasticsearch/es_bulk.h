// The request side of the elasticsearch output, as pure code: dated index
// patterns, deterministic document ids, the _bulk NDJSON body, query strings,
// URLs, Basic auth and gzip. Unit-tested without a host (tests/es_test.cc).
#pragma once

#include <libdeflate.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace ingestd::es {

// ---- index patterns

// An index name pattern with strftime-style conversions, evaluated in UTC:
//   %Y year (2024)  %y two-digit year  %m month 01-12  %d day 01-31
//   %H hour 00-23   %j day of year 001-366
//   %G ISO-8601 week-based year  %V ISO-8601 week 01-53  %% a literal '%'
// Nothing finer than an hour, so formatted names are cached per hour.
// Elasticsearch's own rules apply to the literal text: lowercase, none of
// \ / * ? " < > | , # space, not starting with - _ +, not "." or "..".
class IndexPattern {
 public:
  // False with *err ("unknown conversion %b at 7") when the pattern is invalid.
  bool parse(std::string_view pattern, std::string *err);
  bool has_date() const { return has_date_; }
  // The index name for a time (epoch milliseconds; negative clamps to 0).
  // Borrowed until the next call.
  const std::string &format(int64_t epoch_ms);

 private:
  struct Piece {
    char conv = 0;     // 0: literal
    std::string text;  // literal text
  };
  std::vector<Piece> pieces_;
  bool has_date_ = false;
  int64_t cached_hour_ = -1;
  std::string cached_;
};

// True when `ms` is a plausible epoch-milliseconds time (1970 .. 9999).
bool plausible_epoch_ms(double ms);

// ---- document ids

// MurmurHash3 x64 128 (Austin Appleby's public-domain reference,
// MurmurHash3_x64_128) of `data` with `seed`: h1, h2.
struct Hash128 {
  uint64_t h1 = 0;
  uint64_t h2 = 0;
};
Hash128 murmur3_x64_128(const void *data, size_t len, uint32_t seed);

// The id of a document without id_field: 32 lowercase hex digits, h1 then h2
// (each most significant digit first) of murmur3_x64_128(seed 0) over the
// record's compact JSON exactly as the host serialises it (members in the
// order received, numbers as written). It depends on nothing else, so it is
// stable across restarts, workers and versions; identical records share an
// id, and with op_type create the second one is a 409 (delivered, not
// duplicated).
std::string content_id(std::string_view compact_json);

// Elasticsearch refuses _id values longer than 512 bytes.
constexpr size_t kMaxIdBytes = 512;

// ---- bulk body

// Appends `s` as a JSON string literal (quotes included).
void append_json_string(std::string *out, std::string_view s);

// Appends one create action and its document:
//   {"create":{"_index":"INDEX","_id":"ID"}}\n DOC \n
// `doc` is compact JSON without newlines (the host's serialisation).
void append_create(std::string *out, std::string_view index, std::string_view id,
                   std::string_view doc);

// ---- URLs and query strings

// RFC 3986 percent-encoding of everything but unreserved characters, with
// uppercase hex: the form SigV4 canonicalises to, so the URL as sent is
// already canonical.
std::string url_encode(std::string_view s);

// "?k1=v1&k2=v2" with the parameters sorted by key (SigV4's canonical order;
// Debian's curl 7.88 signs the query as written), both sides percent-encoded;
// "" when there are none.
std::string query_string(std::vector<std::pair<std::string, std::string>> params);

// A base URL from `hosts`: scheme http or https, a host, an optional path
// prefix; the trailing '/' is removed. False with *err.
bool normalize_base_url(std::string_view in, std::string *out, std::string *err);

// The AWS region in an Amazon OpenSearch endpoint
// (search-x-abc.eu-west-1.es.amazonaws.com, abc.us-east-1.aoss.amazonaws.com),
// or "" when the host name is not one.
std::string region_from_url(std::string_view base_url);

// ---- small encoders

std::string base64(std::string_view in);

// Gzip (RFC 1952) with libdeflate: whole-buffer, about three times zlib's
// speed at level 1 for the same size. One per output instance, so the
// compressor's state is allocated once, not per bulk body.
class Gzipper {
 public:
  explicit Gzipper(int level);  // 1..9, as zlib's levels
  // The gzip of `in` into *out (replacing it). False when out of memory.
  bool compress(std::string_view in, std::string *out);

 private:
  struct Free {
    void operator()(libdeflate_compressor *c) const { libdeflate_free_compressor(c); }
  };
  std::unique_ptr<libdeflate_compressor, Free> compressor_;
};

}  // namespace ingestd::es
