// The segment-log frame: encoding, checking and scanning (pure, no I/O).
//
// A segment is a sequence of frames, all integers little-endian:
//
//   offset  size  field
//   0       1     magic/version: 0xF9 (format 1). 0xF5..0xFF never occur in
//                 UTF-8, so a JSON payload cannot hold a false frame start.
//   1       4     payload length L (<= kMaxRecordBytes)
//   5       8     sequence number (> every earlier frame's in the log)
//   13      4     CRC-32C over bytes [0, 13) and the payload
//   17      L     payload
//
// Sequence numbers start at 1 and increase by one per append; a gap means
// records that were never acknowledged (a failed commit) or were lost to
// corruption. A frame is valid when its magic, length, checksum and sequence
// number (greater than the frame before it) all hold.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ingestd {

inline constexpr uint8_t kFrameMagicV1 = 0xF9;
inline constexpr size_t kFrameHeaderBytes = 17;
inline constexpr uint32_t kMaxRecordBytes = uint32_t{256} << 20;

// Appends one frame to `out`.
void encode_frame(std::string &out, uint64_t seq, std::string_view payload);

enum class FrameStatus : uint8_t {
  Ok,
  ShortHeader,  // fewer than kFrameHeaderBytes bytes left
  BadMagic,
  TooLong,    // length > kMaxRecordBytes
  Truncated,  // the payload runs past the end of the data
  BadChecksum,
  BadSequence,  // sequence number not greater than `after_seq`
};

struct FrameCheck {
  FrameStatus status = FrameStatus::Ok;
  uint32_t length = 0;  // payload length (meaningful from TooLong on)
  uint64_t seq = 0;     // meaningful from BadChecksum on
  size_t frame_bytes() const { return kFrameHeaderBytes + length; }
};

// Checks the frame at data[off] (data holds n bytes). `verify_crc` false
// skips the checksum (for bytes this process wrote and still holds).
FrameCheck check_frame(const char *data, size_t n, size_t off, uint64_t after_seq,
                       bool verify_crc = true);

// Reads the header fields without any check (off + kFrameHeaderBytes <= n).
uint32_t frame_length(const char *data, size_t off);
uint64_t frame_seq(const char *data, size_t off);

// A corrupt range inside a segment that readers skip: the bytes between the
// end of the last good frame and the next good frame.
struct SegmentHole {
  uint64_t offset = 0;
  uint64_t length = 0;
};

// The sparse seq -> offset index: one entry per kIndexStride bytes of frames.
struct IndexEntry {
  uint64_t seq = 0;
  uint64_t offset = 0;
};
inline constexpr uint64_t kIndexStride = 64 * 1024;

// What scan_segment found in one segment's bytes.
struct SegmentScan {
  uint64_t records = 0;
  uint64_t first_seq = 0;  // 0: no record
  uint64_t last_seq = 0;   // 0: no record
  uint64_t valid_end = 0;  // offset just after the last good frame
  std::vector<SegmentHole> holes;
  std::vector<IndexEntry> index;
  std::vector<std::string> issues;  // one line per hole, and one for a bad tail
  std::string tail_issue;           // why [valid_end, n) is not frames ("" when clean)
};

// Validates every frame in data[0, n). At a bad frame it searches forward for
// the next valid frame (magic, length, checksum, sequence > the last good one):
// if one exists the bad range becomes a hole and the scan goes on; otherwise
// everything from the bad frame on is the tail to cut. Costs O(n), plus a
// checksum per magic byte inside a corrupt range.
SegmentScan scan_segment(const char *data, size_t n, uint64_t after_seq);

}  // namespace ingestd
