// Geohash encoding and decoding (see geohash.h). Encoding bisects the
// ranges, longitude first, five bits per base32 character.
#include "geohash.h"

#include <cstring>

namespace ingestd::trace {
namespace {

constexpr char kBase32[] = "0123456789bcdefghjkmnpqrstuvwxyz";

}  // namespace

std::string geohash_encode(double lat, double lon, size_t precision) {
  if (precision > kMaxGeohashPrecision) precision = kMaxGeohashPrecision;
  double lat_lo = -90, lat_hi = 90, lon_lo = -180, lon_hi = 180;
  std::string out(precision, '0');
  bool even = true;  // even bits refine longitude
  for (size_t i = 0; i < precision; ++i) {
    unsigned ch = 0;
    for (int b = 0; b < 5; ++b) {
      double &lo = even ? lon_lo : lat_lo;
      double &hi = even ? lon_hi : lat_hi;
      double v = even ? lon : lat;
      double mid = (lo + hi) / 2;
      ch <<= 1;
      if (v >= mid) {
        ch |= 1;
        lo = mid;
      } else {
        hi = mid;
      }
      even = !even;
    }
    out[i] = kBase32[ch];
  }
  return out;
}

bool geohash_decode(std::string_view hash, GeohashCell *cell) {
  double lat_lo = -90, lat_hi = 90, lon_lo = -180, lon_hi = 180;
  bool even = true;
  for (char c : hash) {
    const char *p = c ? std::strchr(kBase32, c) : nullptr;
    if (!p) return false;
    auto bits = static_cast<unsigned>(p - kBase32);
    for (int b = 4; b >= 0; --b) {
      double &lo = even ? lon_lo : lat_lo;
      double &hi = even ? lon_hi : lat_hi;
      double mid = (lo + hi) / 2;
      if (bits >> b & 1) {
        lo = mid;
      } else {
        hi = mid;
      }
      even = !even;
    }
  }
  *cell = {lat_lo, lat_hi, lon_lo, lon_hi};
  return true;
}

}  // namespace ingestd::trace
