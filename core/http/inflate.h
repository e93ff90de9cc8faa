// Request body decoding for Content-Encoding gzip / deflate, with a cap on the
// output so a small "bomb" costs at most the cap in memory.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include <zlib.h>

namespace ingestd::http::detail {

enum class Encoding { kIdentity, kGzip, kDeflate, kUnsupported };

// "" / "identity" / "gzip" / "x-gzip" / "deflate", case-insensitive. Anything
// else, including a list of codings, is kUnsupported.
Encoding parse_content_encoding(std::string_view value);

// One zlib stream reused for every body decoded on a loop: decoding runs to the
// end in one call, so connections never hold a stream (~40 KiB each) between
// requests. Not thread-safe.
class Inflater {
 public:
  enum class Result { kOk, kTooLarge, kCorrupt };

  Inflater() = default;
  ~Inflater();
  Inflater(const Inflater &) = delete;
  Inflater &operator=(const Inflater &) = delete;

  // Decodes `in` into `out` (replacing its content). kTooLarge as soon as the
  // output would pass `cap` bytes; out never grows beyond cap + 1.
  // gzip: several members are accepted (RFC 1952). deflate: zlib-wrapped
  // (RFC 1950) or raw (RFC 1951), as browsers send both. Truncated input or
  // trailing garbage is kCorrupt.
  Result inflate(Encoding encoding, std::string_view in, size_t cap, std::string &out);

 private:
  z_stream zs_{};
  bool initialized_ = false;
};

}  // namespace ingestd::http::detail
