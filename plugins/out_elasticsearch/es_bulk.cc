// The request side of the elasticsearch output: see es_bulk.h.
#include "es_bulk.h"

#include <libdeflate.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <ctime>

namespace ingestd::es {

// ---- index patterns

namespace {

bool is_index_char_forbidden(char c) {
  return std::strchr("\\/*?\"<>|,# ", c) != nullptr || (c >= 'A' && c <= 'Z') ||
         static_cast<unsigned char>(c) < 0x20;
}

constexpr int64_t kHourMs = 3600000;
// 9999-12-31T23:59:59.999Z
constexpr double kMaxEpochMs = 253402300799999.0;

}  // namespace

bool IndexPattern::parse(std::string_view pattern, std::string *err) {
  pieces_.clear();
  has_date_ = false;
  cached_hour_ = -1;
  if (pattern.empty()) {
    *err = "index is empty";
    return false;
  }
  std::string literal;
  auto flush = [&] {
    if (!literal.empty()) pieces_.push_back({0, std::move(literal)});
    literal.clear();
  };
  for (size_t i = 0; i < pattern.size(); ++i) {
    char c = pattern[i];
    if (c != '%') {
      if (is_index_char_forbidden(c)) {
        *err = "index \"" + std::string(pattern) + "\": '" + std::string(1, c) + "' at " +
               std::to_string(i + 1) +
               " is not allowed in an index name (lowercase, none of \\ / * ? \" < > | , # or "
               "space)";
        return false;
      }
      literal += c;
      continue;
    }
    if (i + 1 >= pattern.size()) {
      *err = "index \"" + std::string(pattern) + "\": lone '%' at the end";
      return false;
    }
    char conv = pattern[++i];
    if (conv == '%') {
      literal += '%';
      continue;
    }
    if (!std::strchr("YymdHjGV", conv)) {
      *err = "index \"" + std::string(pattern) + "\": unknown conversion %" + std::string(1, conv) +
             " at " + std::to_string(i) + " (supported: %Y %y %m %d %H %j %G %V %%)";
      return false;
    }
    flush();
    pieces_.push_back({conv, {}});
    has_date_ = true;
  }
  flush();
  const Piece &first = pieces_.front();
  if (first.conv == 0 && std::strchr("-_+", first.text[0])) {
    *err = "index \"" + std::string(pattern) + "\" must not start with '-', '_' or '+'";
    return false;
  }
  if (pattern == "." || pattern == "..") {
    *err = "index must not be \".\" or \"..\"";
    return false;
  }
  return true;
}

const std::string &IndexPattern::format(int64_t epoch_ms) {
  if (epoch_ms < 0) epoch_ms = 0;
  int64_t hour = epoch_ms / kHourMs;
  if (!has_date_) hour = 0;
  if (hour == cached_hour_) return cached_;
  cached_hour_ = hour;
  cached_.clear();
  time_t secs = static_cast<time_t>(hour * (kHourMs / 1000));
  struct tm tm;
  gmtime_r(&secs, &tm);
  for (const Piece &p : pieces_) {
    if (p.conv == 0) {
      cached_ += p.text;
      continue;
    }
    char fmt[3] = {'%', p.conv, 0};
    char buf[16];
    size_t n = std::strftime(buf, sizeof buf, fmt, &tm);
    cached_.append(buf, n);
  }
  return cached_;
}

bool plausible_epoch_ms(double ms) {
  return std::isfinite(ms) && ms >= 0 && ms <= kMaxEpochMs;
}

// ---- document ids

namespace {

inline uint64_t rotl64(uint64_t x, int r) {
  return (x << r) | (x >> (64 - r));
}

inline uint64_t fmix64(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdULL;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ULL;
  k ^= k >> 33;
  return k;
}

inline uint64_t load_le64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i)
    v = (v << 8) | p[i];
  return v;
}

}  // namespace

Hash128 murmur3_x64_128(const void *key, size_t len, uint32_t seed) {
  const auto *data = static_cast<const uint8_t *>(key);
  const size_t nblocks = len / 16;
  uint64_t h1 = seed;
  uint64_t h2 = seed;
  const uint64_t c1 = 0x87c37b91114253d5ULL;
  const uint64_t c2 = 0x4cf5ad432745937fULL;

  for (size_t i = 0; i < nblocks; ++i) {
    uint64_t k1 = load_le64(data + i * 16);
    uint64_t k2 = load_le64(data + i * 16 + 8);
    k1 *= c1;
    k1 = rotl64(k1, 31);
    k1 *= c2;
    h1 ^= k1;
    h1 = rotl64(h1, 27);
    h1 += h2;
    h1 = h1 * 5 + 0x52dce729;
    k2 *= c2;
    k2 = rotl64(k2, 33);
    k2 *= c1;
    h2 ^= k2;
    h2 = rotl64(h2, 31);
    h2 += h1;
    h2 = h2 * 5 + 0x38495ab5;
  }

  const uint8_t *tail = data + nblocks * 16;
  uint64_t k1 = 0;
  uint64_t k2 = 0;
  size_t rest = len & 15;
  for (size_t i = rest; i > 8; --i)
    k2 ^= static_cast<uint64_t>(tail[i - 1]) << ((i - 9) * 8);
  if (rest > 8) {
    k2 *= c2;
    k2 = rotl64(k2, 33);
    k2 *= c1;
    h2 ^= k2;
  }
  for (size_t i = std::min<size_t>(rest, 8); i > 0; --i) {
    k1 ^= static_cast<uint64_t>(tail[i - 1]) << ((i - 1) * 8);
  }
  if (rest > 0) {
    k1 *= c1;
    k1 = rotl64(k1, 31);
    k1 *= c2;
    h1 ^= k1;
  }

  h1 ^= len;
  h2 ^= len;
  h1 += h2;
  h2 += h1;
  h1 = fmix64(h1);
  h2 = fmix64(h2);
  h1 += h2;
  h2 += h1;
  return {h1, h2};
}

std::string content_id(std::string_view compact_json) {
  Hash128 h = murmur3_x64_128(compact_json.data(), compact_json.size(), 0);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(32, '0');
  for (int i = 0; i < 16; ++i) {
    out[15 - i] = kHex[(h.h1 >> (4 * i)) & 0xf];
    out[31 - i] = kHex[(h.h2 >> (4 * i)) & 0xf];
  }
  return out;
}

// ---- bulk body

void append_json_string(std::string *out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->push_back('"');
  size_t start = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out->append(s.data() + start, i - start);
    start = i + 1;
    switch (c) {
      case '"':
        *out += "\\\"";
        break;
      case '\\':
        *out += "\\\\";
        break;
      case '\n':
        *out += "\\n";
        break;
      case '\r':
        *out += "\\r";
        break;
      case '\t':
        *out += "\\t";
        break;
      default:
        *out += "\\u00";
        out->push_back(kHex[c >> 4]);
        out->push_back(kHex[c & 0xf]);
    }
  }
  out->append(s.data() + start, s.size() - start);
  out->push_back('"');
}

void append_create(std::string *out, std::string_view index, std::string_view id,
                   std::string_view doc) {
  *out += "{\"create\":{\"_index\":";
  append_json_string(out, index);
  *out += ",\"_id\":";
  append_json_string(out, id);
  *out += "}}\n";
  *out += doc;
  out->push_back('\n');
}

// ---- URLs and query strings

std::string url_encode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '_' || c == '.' || c == '~') {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
    }
  }
  return out;
}

std::string query_string(std::vector<std::pair<std::string, std::string>> params) {
  for (auto &[k, v] : params) {
    k = url_encode(k);
    v = url_encode(v);
  }
  // SigV4 sorts by the encoded key, then the encoded value.
  std::sort(params.begin(), params.end());
  std::string out;
  for (const auto &[k, v] : params) {
    out += out.empty() ? '?' : '&';
    out += k;
    out += '=';
    out += v;
  }
  return out;
}

bool normalize_base_url(std::string_view in, std::string *out, std::string *err) {
  std::string s(in);
  size_t colon = s.find("://");
  std::string scheme = colon == std::string::npos ? "" : s.substr(0, colon);
  std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (scheme != "http" && scheme != "https") {
    *err = "\"" + s + "\" is not an http:// or https:// URL";
    return false;
  }
  size_t host_start = colon + 3;
  size_t host_end = s.find_first_of("/?#", host_start);
  if (host_end == std::string::npos) host_end = s.size();
  if (host_end == host_start) {
    *err = "\"" + s + "\" has no host";
    return false;
  }
  if (s.find_first_of("?#", host_start) != std::string::npos) {
    *err = "\"" + s + "\": a base URL takes no query or fragment";
    return false;
  }
  std::string path = s.substr(host_end);
  while (!path.empty() && path.back() == '/')
    path.pop_back();
  *out = scheme + "://" + s.substr(host_start, host_end - host_start) + path;
  return true;
}

std::string region_from_url(std::string_view base_url) {
  size_t colon = base_url.find("://");
  if (colon == std::string_view::npos) return "";
  std::string_view host = base_url.substr(colon + 3);
  host = host.substr(0, host.find_first_of("/:"));
  std::vector<std::string_view> labels;
  while (!host.empty()) {
    size_t dot = host.find('.');
    labels.push_back(host.substr(0, dot));
    if (dot == std::string_view::npos) break;
    host.remove_prefix(dot + 1);
  }
  for (size_t i = 1; i + 1 < labels.size(); ++i) {
    if ((labels[i] == "es" || labels[i] == "aoss") && labels[i + 1] == "amazonaws") {
      return std::string(labels[i - 1]);
    }
  }
  return "";
}

// ---- small encoders

std::string base64(std::string_view in) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = (static_cast<uint8_t>(in[i]) << 16) | (static_cast<uint8_t>(in[i + 1]) << 8) |
                 static_cast<uint8_t>(in[i + 2]);
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(kAlphabet[(v >> 6) & 63]);
    out.push_back(kAlphabet[v & 63]);
  }
  if (i < in.size()) {
    uint32_t v = static_cast<uint8_t>(in[i]) << 16;
    if (i + 1 < in.size()) v |= static_cast<uint8_t>(in[i + 1]) << 8;
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(i + 1 < in.size() ? kAlphabet[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

Gzipper::Gzipper(int level) : compressor_(libdeflate_alloc_compressor(level)) {}

bool Gzipper::compress(std::string_view in, std::string *out) {
  if (!compressor_) return false;
  out->resize(libdeflate_gzip_compress_bound(compressor_.get(), in.size()));
  size_t n =
      libdeflate_gzip_compress(compressor_.get(), in.data(), in.size(), out->data(), out->size());
  out->resize(n);
  return n != 0;  // 0: no room, which the bound rules out
}

}  // namespace ingestd::es
