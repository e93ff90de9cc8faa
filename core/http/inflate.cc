// Capped gzip / deflate decoding; see inflate.h.
#include "http/inflate.h"

#include <algorithm>

#include "http/strings.h"

namespace ingestd::http::detail {

Encoding parse_content_encoding(std::string_view value) {
  value = trim(value);
  if (value.empty() || iequals(value, "identity")) return Encoding::kIdentity;
  if (iequals(value, "gzip") || iequals(value, "x-gzip")) return Encoding::kGzip;
  if (iequals(value, "deflate")) return Encoding::kDeflate;
  return Encoding::kUnsupported;
}

Inflater::~Inflater() {
  if (initialized_) inflateEnd(&zs_);
}

namespace {

// RFC 1950 header: CM = 8, CINFO <= 7, and the check bits make it a multiple of 31.
bool looks_like_zlib(std::string_view in) {
  if (in.size() < 2) return false;
  auto cmf = static_cast<unsigned char>(in[0]);
  auto flg = static_cast<unsigned char>(in[1]);
  return (cmf & 0x0f) == 8 && (cmf >> 4) <= 7 && ((cmf << 8) | flg) % 31 == 0;
}

}  // namespace

Inflater::Result Inflater::inflate(Encoding encoding, std::string_view in, size_t cap,
                                   std::string &out) {
  out.clear();
  if (in.empty()) return Result::kOk;
  int window_bits = 15 + 16;  // gzip only
  if (encoding == Encoding::kDeflate) window_bits = looks_like_zlib(in) ? 15 : -15;
  if (!initialized_) {
    zs_ = z_stream{};
    if (inflateInit2(&zs_, window_bits) != Z_OK) return Result::kCorrupt;
    initialized_ = true;
  } else if (inflateReset2(&zs_, window_bits) != Z_OK) {
    return Result::kCorrupt;
  }

  zs_.next_in = reinterpret_cast<Bytef *>(const_cast<char *>(in.data()));
  zs_.avail_in = static_cast<uInt>(in.size());  // bodies are far below 4 GiB (max_body)
  const size_t limit = cap + 1;                 // one byte more tells "too large"
  size_t produced = 0;
  for (;;) {
    if (produced == out.size()) {
      if (produced >= limit) return Result::kTooLarge;
      size_t want = std::max<size_t>({out.size() * 2, in.size() * 4, 16 << 10});
      out.resize(std::min(want, limit));
    }
    zs_.next_out = reinterpret_cast<Bytef *>(out.data() + produced);
    zs_.avail_out = static_cast<uInt>(out.size() - produced);
    int rc = ::inflate(&zs_, Z_NO_FLUSH);
    produced = out.size() - zs_.avail_out;
    if (produced > cap) return Result::kTooLarge;
    if (rc == Z_STREAM_END) {
      if (zs_.avail_in == 0) break;
      // Another gzip member may follow; anything else is garbage.
      if (encoding != Encoding::kGzip || inflateReset(&zs_) != Z_OK) return Result::kCorrupt;
      continue;
    }
    if (rc == Z_OK) continue;
    if (rc == Z_BUF_ERROR && zs_.avail_out == 0) continue;  // needs more room
    return Result::kCorrupt;  // data error, or input ended before the stream did
  }
  out.resize(produced);
  return Result::kOk;
}

}  // namespace ingestd::http::detail
