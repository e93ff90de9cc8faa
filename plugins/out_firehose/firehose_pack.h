// Splitting a host batch into PutRecordBatch calls, with optional packing of
// many newline-delimited host records into one Firehose record, and the token
// buckets that pace the calls. Pure code: sizes in, plan out; time is passed in.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "firehose_protocol.h"

namespace ingestd::firehose {

struct PackLimits {
  bool aggregate = false;
  size_t record_max_bytes = kMaxRecordBytes;  // packing target (aggregate only)
  size_t call_max_records = kMaxCallRecords;
  size_t call_max_bytes = kMaxCallBytes;
  size_t hard_record_max = kMaxRecordBytes;  // above: can never be sent
};

// One Firehose record: the host records packed into it, in order.
struct PackedRecord {
  std::vector<uint32_t> items;  // host batch indices
  size_t bytes = 0;             // decoded data bytes (record sizes as given)
};

struct PlannedCall {
  std::vector<PackedRecord> records;
  size_t bytes = 0;  // decoded data of the whole call
  size_t items = 0;  // host records in the call
};

struct Plan {
  std::vector<PlannedCall> calls;
  std::vector<uint32_t> too_large;  // host indices over hard_record_max
};

// Plans the calls for the host records `indices` (in that order), whose data
// sizes (JSON plus the newline, when one is appended) are sizes[index].
// Every index ends up in exactly one call's record or in too_large. Order is
// kept: concatenating the calls' records gives the input order.
// Without aggregate every host record is its own Firehose record. With it,
// consecutive records share one Firehose record while it stays within
// record_max_bytes; a single record larger than record_max_bytes (but within
// hard_record_max) goes alone. Calls hold at most call_max_records Firehose
// records and call_max_bytes bytes. O(n).
Plan plan_calls(std::span<const uint32_t> indices, std::span<const size_t> sizes,
                const PackLimits &limits);

// A token bucket: `rate` tokens per second, holding at most one second's worth
// (the burst). A request for more than the burst is admitted when the bucket
// is full and drives it negative, so a 4 MiB call at 1 MiB/s waits ~4 s
// before the next one instead of never going out. rate <= 0: unlimited.
class TokenBucket {
 public:
  TokenBucket() = default;
  TokenBucket(double rate, uint64_t now_ms) : rate_(rate), tokens_(rate), last_ms_(now_ms) {}

  bool unlimited() const { return rate_ <= 0; }
  double tokens(uint64_t now_ms) {
    refill(now_ms);
    return tokens_;
  }
  // Milliseconds until take(n) would be admitted; 0: now.
  uint64_t wait_ms(double n, uint64_t now_ms) {
    if (unlimited()) return 0;
    refill(now_ms);
    double need = n < rate_ ? n : rate_;
    if (tokens_ >= need) return 0;
    double ms = (need - tokens_) * 1000.0 / rate_;
    auto w = static_cast<uint64_t>(ms);
    return static_cast<double>(w) < ms ? w + 1 : w;
  }
  void take(double n, uint64_t now_ms) {
    if (unlimited()) return;
    refill(now_ms);
    tokens_ -= n;
  }
  // Empties the bucket (after the service said "slow down").
  void drain(uint64_t now_ms) {
    if (unlimited()) return;
    refill(now_ms);
    if (tokens_ > 0) tokens_ = 0;
  }

 private:
  void refill(uint64_t now_ms) {
    if (now_ms > last_ms_) {
      tokens_ += static_cast<double>(now_ms - last_ms_) * rate_ / 1000.0;
      if (tokens_ > rate_) tokens_ = rate_;
    }
    last_ms_ = now_ms > last_ms_ ? now_ms : last_ms_;
  }

  double rate_ = 0;
  double tokens_ = 0;
  uint64_t last_ms_ = 0;
};

}  // namespace ingestd::firehose
