// Geohash (Niemeyer's base32 interleaving of longitude and latitude bits),
// as Redis GEO, Elasticsearch geohash_grid and most libraries spell it.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace ingestd::trace {

inline constexpr size_t kMaxGeohashPrecision = 12;

// Encodes lat in [-90, 90], lon in [-180, 180] into `precision` (1..12)
// characters. A point on a cell edge belongs to the upper/eastern cell,
// except the +90 / +180 edges, which belong to the last cell.
std::string geohash_encode(double lat, double lon, size_t precision);

// The cell a geohash names; false for a character outside the alphabet.
struct GeohashCell {
  double lat_min, lat_max, lon_min, lon_max;
};
bool geohash_decode(std::string_view hash, GeohashCell *cell);

}  // namespace ingestd::trace
