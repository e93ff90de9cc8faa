#include "storage/segment_format.h"

#include <random>
#include <string>

#include <gtest/gtest.h>

#include "storage/crc32c.h"

namespace ingestd {
namespace {

TEST(Crc32c, KnownVectors) {
  EXPECT_EQ(crc32c(""), 0u);
  EXPECT_EQ(crc32c("123456789"), 0xE3069283u);  // the CRC-32C check value
  const std::string zeros(32, '\0');
  EXPECT_EQ(crc32c(zeros), 0x8A9136AAu);  // RFC 3720 B.4
}

TEST(Crc32c, HardwareAndPortableAgreeAndExtend) {
  std::mt19937_64 rng(7);
  std::string data(4099, '\0');
  for (char &c : data)
    c = static_cast<char>(rng());
  for (size_t len : {0, 1, 7, 8, 9, 63, 64, 65, 1000, 4099}) {
    const uint32_t a = crc32c_extend(0, data.data(), len);
    EXPECT_EQ(a, crc32c_extend_portable(0, data.data(), len)) << len;
    for (size_t split : {size_t{0}, len / 3, len}) {
      EXPECT_EQ(
          a, crc32c_extend(crc32c_extend(0, data.data(), split), data.data() + split, len - split));
    }
  }
}

TEST(SegmentFormat, EncodeThenCheck) {
  std::string buf;
  encode_frame(buf, 42, "hello");
  encode_frame(buf, 43, "");
  ASSERT_EQ(buf.size(), 2 * kFrameHeaderBytes + 5);
  EXPECT_EQ(static_cast<uint8_t>(buf[0]), kFrameMagicV1);
  FrameCheck c = check_frame(buf.data(), buf.size(), 0, 41);
  EXPECT_EQ(c.status, FrameStatus::Ok);
  EXPECT_EQ(c.seq, 42u);
  EXPECT_EQ(c.length, 5u);
  EXPECT_EQ(check_frame(buf.data(), buf.size(), 0, 42).status, FrameStatus::BadSequence);
  c = check_frame(buf.data(), buf.size(), c.frame_bytes(), 42);
  EXPECT_EQ(c.status, FrameStatus::Ok);
  EXPECT_EQ(c.seq, 43u);
  EXPECT_EQ(check_frame(buf.data(), 10, 0, 0).status, FrameStatus::ShortHeader);
  EXPECT_EQ(check_frame(buf.data(), kFrameHeaderBytes + 4, 0, 0).status, FrameStatus::Truncated);
  std::string bad = buf;
  bad[kFrameHeaderBytes + 1] ^= 1;
  EXPECT_EQ(check_frame(bad.data(), bad.size(), 0, 0).status, FrameStatus::BadChecksum);
  bad = buf;
  bad[0] = 'x';
  EXPECT_EQ(check_frame(bad.data(), bad.size(), 0, 0).status, FrameStatus::BadMagic);
  bad = buf;
  bad[4] = static_cast<char>(0x7F);  // length's top byte
  EXPECT_EQ(check_frame(bad.data(), bad.size(), 0, 0).status, FrameStatus::TooLong);
}

TEST(SegmentFormat, ScanCleanBuildsSparseIndex) {
  std::string buf;
  for (uint64_t s = 1; s <= 2000; ++s)
    encode_frame(buf, s, std::string(100, 'a'));
  const SegmentScan scan = scan_segment(buf.data(), buf.size(), 0);
  EXPECT_EQ(scan.records, 2000u);
  EXPECT_EQ(scan.first_seq, 1u);
  EXPECT_EQ(scan.last_seq, 2000u);
  EXPECT_EQ(scan.valid_end, buf.size());
  EXPECT_TRUE(scan.issues.empty());
  EXPECT_TRUE(scan.tail_issue.empty());
  ASSERT_GE(scan.index.size(), 3u);
  EXPECT_EQ(scan.index[0].seq, 1u);
  EXPECT_EQ(scan.index[0].offset, 0u);
  for (size_t i = 1; i < scan.index.size(); ++i)
    EXPECT_GE(scan.index[i].offset, scan.index[i - 1].offset + kIndexStride);
}

TEST(SegmentFormat, ScanResynchronisesAfterAMiddleCorruption) {
  std::string buf;
  std::vector<size_t> at;
  for (uint64_t s = 1; s <= 10; ++s) {
    at.push_back(buf.size());
    encode_frame(buf, s, "payload-" + std::to_string(s));
  }
  buf[at[4] + kFrameHeaderBytes + 2] ^= 0x40;  // record 5's payload
  const SegmentScan scan = scan_segment(buf.data(), buf.size(), 0);
  EXPECT_EQ(scan.records, 9u);
  EXPECT_EQ(scan.valid_end, buf.size());
  ASSERT_EQ(scan.holes.size(), 1u);
  EXPECT_EQ(scan.holes[0].offset, at[4]);
  EXPECT_EQ(scan.holes[0].length, at[5] - at[4]);
  ASSERT_EQ(scan.issues.size(), 1u);
  EXPECT_NE(scan.issues[0].find("bad checksum at offset " + std::to_string(at[4])),
            std::string::npos)
      << scan.issues[0];
  EXPECT_NE(scan.issues[0].find("sequence numbers 5..5 are lost"), std::string::npos)
      << scan.issues[0];
}

}  // namespace
}  // namespace ingestd
