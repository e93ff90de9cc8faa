// Frame encoding and the recovery scanner of the segment log.
#include "storage/segment_format.h"

#include <cstring>

#include "storage/crc32c.h"

namespace ingestd {
namespace {

void put_u32(char *p, uint32_t v) {
  for (int i = 0; i < 4; ++i)
    p[i] = static_cast<char>(v >> (8 * i));
}
void put_u64(char *p, uint64_t v) {
  for (int i = 0; i < 8; ++i)
    p[i] = static_cast<char>(v >> (8 * i));
}
uint32_t get_u32(const char *p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i)
    v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}
uint64_t get_u64(const char *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i)
    v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

uint32_t frame_crc(const char *header, const char *payload, size_t len) {
  return crc32c_extend(crc32c_extend(0, header, 13), payload, len);
}

const char *status_text(FrameStatus s) {
  switch (s) {
    case FrameStatus::Ok:
      return "ok";
    case FrameStatus::ShortHeader:
      return "truncated frame header";
    case FrameStatus::BadMagic:
      return "bad magic byte";
    case FrameStatus::TooLong:
      return "impossible length";
    case FrameStatus::Truncated:
      return "truncated frame";
    case FrameStatus::BadChecksum:
      return "bad checksum";
    case FrameStatus::BadSequence:
      return "out-of-order sequence number";
  }
  return "?";
}

bool all_zero(const char *p, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (p[i] != 0) return false;
  return true;
}

}  // namespace

void encode_frame(std::string &out, uint64_t seq, std::string_view payload) {
  const size_t at = out.size();
  out.resize(at + kFrameHeaderBytes + payload.size());
  char *h = out.data() + at;
  h[0] = static_cast<char>(kFrameMagicV1);
  put_u32(h + 1, static_cast<uint32_t>(payload.size()));
  put_u64(h + 5, seq);
  if (!payload.empty()) std::memcpy(h + kFrameHeaderBytes, payload.data(), payload.size());
  put_u32(h + 13, frame_crc(h, h + kFrameHeaderBytes, payload.size()));
}

uint32_t frame_length(const char *data, size_t off) {
  return get_u32(data + off + 1);
}
uint64_t frame_seq(const char *data, size_t off) {
  return get_u64(data + off + 5);
}

FrameCheck check_frame(const char *data, size_t n, size_t off, uint64_t after_seq,
                       bool verify_crc) {
  FrameCheck c;
  if (n - off < kFrameHeaderBytes) {
    c.status = FrameStatus::ShortHeader;
    return c;
  }
  const char *h = data + off;
  if (static_cast<uint8_t>(h[0]) != kFrameMagicV1) {
    c.status = FrameStatus::BadMagic;
    return c;
  }
  c.length = get_u32(h + 1);
  if (c.length > kMaxRecordBytes) {
    c.status = FrameStatus::TooLong;
    return c;
  }
  if (n - off - kFrameHeaderBytes < c.length) {
    c.status = FrameStatus::Truncated;
    return c;
  }
  c.seq = get_u64(h + 5);
  if (verify_crc && get_u32(h + 13) != frame_crc(h, h + kFrameHeaderBytes, c.length)) {
    c.status = FrameStatus::BadChecksum;
    return c;
  }
  if (c.seq <= after_seq) c.status = FrameStatus::BadSequence;
  return c;
}

SegmentScan scan_segment(const char *data, size_t n, uint64_t after_seq) {
  SegmentScan s;
  uint64_t last = after_seq;
  uint64_t next_index = 0;
  size_t off = 0;
  auto accept = [&](size_t at, const FrameCheck &c) {
    if (at >= next_index) {
      s.index.push_back(IndexEntry{c.seq, at});
      next_index = at + kIndexStride;
    }
    if (s.records == 0) s.first_seq = c.seq;
    ++s.records;
    s.last_seq = last = c.seq;
    s.valid_end = at + c.frame_bytes();
  };
  while (off < n) {
    const FrameCheck c = check_frame(data, n, off, last);
    if (c.status == FrameStatus::Ok) {
      accept(off, c);
      off += c.frame_bytes();
      continue;
    }
    // Resynchronise: the next offset holding a valid frame after `last`.
    size_t next = off + 1;
    FrameCheck found;
    for (;; ++next) {
      const void *m = next < n ? std::memchr(data + next, kFrameMagicV1, n - next) : nullptr;
      if (m == nullptr) {
        next = n;
        break;
      }
      next = static_cast<size_t>(static_cast<const char *>(m) - data);
      found = check_frame(data, n, next, last);
      if (found.status == FrameStatus::Ok) break;
    }
    if (next < n) {
      s.holes.push_back(SegmentHole{off, next - off});
      s.issues.push_back(std::string(status_text(c.status)) + " at offset " + std::to_string(off) +
                         ": skipped " + std::to_string(next - off) +
                         " bytes up to the next good frame (sequence " + std::to_string(found.seq) +
                         (found.seq > last + 1
                              ? "; sequence numbers " + std::to_string(last + 1) + ".." +
                                    std::to_string(found.seq - 1) + " are lost)"
                              : ")"));
      off = next;
      continue;
    }
    // Nothing valid after it: the tail to cut.
    if (c.status == FrameStatus::BadMagic && all_zero(data + off, n - off)) {
      s.tail_issue = "zero-filled tail at offset " + std::to_string(off);
    } else if (c.status == FrameStatus::BadMagic) {
      s.tail_issue = "garbage after the last good frame at offset " + std::to_string(off);
    } else {
      s.tail_issue = std::string(status_text(c.status)) + " at offset " + std::to_string(off);
    }
    s.issues.push_back(s.tail_issue + ": cut " + std::to_string(n - off) + " bytes");
    break;
  }
  return s;
}

}  // namespace ingestd
