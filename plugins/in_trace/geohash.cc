// Geohash encoding and decoding (see geohash.h): longitude and latitude
// cells, their bits interleaved longitude first, five per base32 character.
#include "geohash.h"

#include <cstdint>
#include <cstring>

namespace ingestd::trace {
namespace {

constexpr char kBase32[] = "0123456789bcdefghjkmnpqrstuvwxyz";

}  // namespace

namespace {

// The cell of [lo, lo + span) cut into 2^bits that holds v, as bisection
// finds it (v on an edge belongs to the upper cell; lo + span to the last).
// Edge k is lo + width * k, an exact double (width is 180 or 360 over a
// power of two, k < 2^30), so one division estimates the cell and the exact
// edges correct it.
uint64_t cell_of(double v, double lo, double span, unsigned bits) {
  const uint64_t cells = uint64_t{1} << bits;
  const double width = span / static_cast<double>(cells);
  const double estimate = (v - lo) / width;
  uint64_t k = estimate <= 0                                ? 0
               : estimate >= static_cast<double>(cells - 1) ? cells - 1
                                                            : static_cast<uint64_t>(estimate);
  while (k > 0 && v < lo + width * static_cast<double>(k))
    --k;
  while (k + 1 < cells && v >= lo + width * static_cast<double>(k + 1))
    ++k;
  return k;
}

// x's low 32 bits moved to the even bit positions.
uint64_t spread(uint64_t x) {
  x &= 0xFFFFFFFFull;
  x = (x | (x << 16)) & 0x0000FFFF0000FFFFull;
  x = (x | (x << 8)) & 0x00FF00FF00FF00FFull;
  x = (x | (x << 4)) & 0x0F0F0F0F0F0F0F0Full;
  x = (x | (x << 2)) & 0x3333333333333333ull;
  return (x | (x << 1)) & 0x5555555555555555ull;
}

}  // namespace

// The same bits as bisecting the ranges, longitude first (the reference in
// tests/geohash_test.cc), without 5 x precision dependent branches.
std::string geohash_encode(double lat, double lon, size_t precision) {
  if (precision > kMaxGeohashPrecision) precision = kMaxGeohashPrecision;
  const auto total = static_cast<unsigned>(5 * precision);
  const unsigned lon_bits = (total + 1) / 2, lat_bits = total / 2;
  uint64_t lon_cell = cell_of(lon, -180, 360, lon_bits);
  uint64_t lat_cell = cell_of(lat, -90, 180, lat_bits);
  // Longitude takes the even bits counted from the top: with an odd total,
  // latitude is padded by one bit, dropped after interleaving.
  uint64_t code = (spread(lon_cell) << 1) | spread(lat_cell << (lon_bits - lat_bits));
  code >>= lon_bits - lat_bits;
  std::string out(precision, '0');
  for (size_t i = 0; i < precision; ++i)
    out[i] = kBase32[(code >> (5 * (precision - 1 - i))) & 31];
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
