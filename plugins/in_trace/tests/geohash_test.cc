// Geohash against published values (Wikipedia, the Redis GEOHASH docs) and,
// for many points, against decoding: the cell a hash names must contain the
// point, and each added character must narrow the previous cell.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <iomanip>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "geohash.h"

namespace ingestd::trace {
namespace {

bool inside(const GeohashCell &c, double lat, double lon) {
  return lat >= c.lat_min && lat <= c.lat_max && lon >= c.lon_min && lon <= c.lon_max;
}

// Niemeyer's bisection, as geohash_encode computed it before it took cells
// and interleaved their bits: the encoder must give exactly these characters.
std::string bisection(double lat, double lon, size_t precision) {
  const char *base32 = "0123456789bcdefghjkmnpqrstuvwxyz";
  double lat_lo = -90, lat_hi = 90, lon_lo = -180, lon_hi = 180;
  std::string out;
  bool even = true;
  for (size_t i = 0; i < precision; ++i) {
    unsigned ch = 0;
    for (int b = 0; b < 5; ++b) {
      double &lo = even ? lon_lo : lat_lo, &hi = even ? lon_hi : lat_hi;
      double v = even ? lon : lat, mid = (lo + hi) / 2;
      ch = ch << 1 | (v >= mid ? 1 : 0);
      (v >= mid ? lo : hi) = mid;
      even = !even;
    }
    out += base32[ch];
  }
  return out;
}

TEST(Geohash, SameCharactersAsBisection) {
  std::mt19937_64 rng(20261203);
  std::uniform_real_distribution<double> lat_d(-90, 90), lon_d(-180, 180);
  std::vector<std::pair<double, double>> points = {
      {0, 0},
      {-1e-300, -1e-300},
      {1e-300, 1e-300},
      {-0.0, -0.0},
      {90, 180},
      {-90, -180},
      {90, -180},
      {-90, 180},
      {std::nextafter(90.0, 0.0), std::nextafter(180.0, 0.0)},
      {std::nextafter(-90.0, 0.0), std::nextafter(-180.0, 0.0)}};
  for (int i = 0; i < 20000; ++i)
    points.emplace_back(lat_d(rng), lon_d(rng));
  // Cell edges at every level, and the doubles either side of them.
  for (int bits = 1; bits <= 30; ++bits) {
    for (int i = 0; i < 40; ++i) {
      uint64_t k = rng() % (uint64_t{1} << bits);
      double lat = -90 + 180.0 / static_cast<double>(uint64_t{1} << bits) * static_cast<double>(k);
      double lon = -180 + 360.0 / static_cast<double>(uint64_t{1} << bits) * static_cast<double>(k);
      for (double dl : {-1.0, 0.0, 1.0}) {
        double a = dl == 0 ? lat : std::nextafter(lat, dl * HUGE_VAL);
        double o = dl == 0 ? lon : std::nextafter(lon, dl * HUGE_VAL);
        points.emplace_back(a, o);
        points.emplace_back(a, lon_d(rng));
        points.emplace_back(lat_d(rng), o);
      }
    }
  }
  for (auto [lat, lon] : points) {
    for (size_t p = 1; p <= kMaxGeohashPrecision; ++p)
      ASSERT_EQ(geohash_encode(lat, lon, p), bisection(lat, lon, p))
          << std::setprecision(17) << lat << "," << lon << " precision " << p;
  }
}

TEST(Geohash, PublishedValues) {
  // Wikipedia "Geohash": Jutland and the ezs42 example.
  EXPECT_EQ(geohash_encode(57.64911, 10.40744, 11), "u4pruydqqvj");
  EXPECT_EQ(geohash_encode(42.6, -5.6, 5), "ezs42");
  // Redis GEOHASH docs (Redis computes 52 bits, so only 10 characters agree).
  EXPECT_EQ(geohash_encode(38.115556, 13.361389, 10), "sqc8b49rny");  // Palermo
  EXPECT_EQ(geohash_encode(37.502669, 15.087269, 10), "sqdtr74hyu");  // Catania
  // Seoul City Hall.
  EXPECT_EQ(geohash_encode(37.5665, 126.9780, 7), "wydm9qy");
}

TEST(Geohash, CornersAndOrigin) {
  EXPECT_EQ(geohash_encode(0, 0, 12), "s00000000000");
  EXPECT_EQ(geohash_encode(-90, -180, 12), "000000000000");
  EXPECT_EQ(geohash_encode(90, 180, 12), "zzzzzzzzzzzz");
  EXPECT_EQ(geohash_encode(-90, 180, 1), "p");
  EXPECT_EQ(geohash_encode(90, -180, 1), "b");
}

TEST(Geohash, PrecisionIsLengthAndPrefix) {
  std::string full = geohash_encode(37.5665, 126.9780, 12);
  ASSERT_EQ(full.size(), 12u);
  for (size_t p = 1; p <= 12; ++p)
    EXPECT_EQ(geohash_encode(37.5665, 126.9780, p), full.substr(0, p));
  EXPECT_EQ(geohash_encode(37.5665, 126.9780, 40), full);  // capped at 12
  EXPECT_EQ(geohash_encode(37.5665, 126.9780, 0), "");
}

TEST(Geohash, DecodedCellContainsThePoint) {
  std::mt19937_64 rng(20261125);
  std::uniform_real_distribution<double> lat_d(-90, 90), lon_d(-180, 180);
  for (int i = 0; i < 20000; ++i) {
    double lat = lat_d(rng), lon = lon_d(rng);
    std::string h = geohash_encode(lat, lon, 12);
    GeohashCell prev{-90, 90, -180, 180};
    for (size_t p = 1; p <= h.size(); ++p) {
      GeohashCell c;
      ASSERT_TRUE(geohash_decode(h.substr(0, p), &c));
      ASSERT_TRUE(inside(c, lat, lon)) << lat << "," << lon << " " << h.substr(0, p);
      ASSERT_TRUE(c.lat_min >= prev.lat_min && c.lat_max <= prev.lat_max &&
                  c.lon_min >= prev.lon_min && c.lon_max <= prev.lon_max);
      prev = c;
    }
    // 12 characters: 30 longitude bits, 30 latitude bits.
    EXPECT_DOUBLE_EQ(prev.lat_max - prev.lat_min, 180.0 / (1 << 30));
    EXPECT_DOUBLE_EQ(prev.lon_max - prev.lon_min, 360.0 / (1 << 30));
  }
}

TEST(Geohash, KnownCellOfSeoul) {
  GeohashCell c;
  ASSERT_TRUE(geohash_decode("wydm9qy", &c));
  EXPECT_TRUE(inside(c, 37.5665, 126.9780));
  EXPECT_FALSE(inside(c, 37.5665, 126.99));  // about 1 km east: another cell
}

TEST(Geohash, DecodeRejectsCharactersOutsideTheAlphabet) {
  GeohashCell c;
  for (const char *bad : {"a", "i", "l", "o", "U4", "u4p ", "-"})
    EXPECT_FALSE(geohash_decode(bad, &c)) << bad;
  EXPECT_FALSE(geohash_decode(std::string_view("u\0", 2), &c));
}

}  // namespace
}  // namespace ingestd::trace
