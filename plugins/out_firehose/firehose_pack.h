// Splitting a host batch into PutRecordBatch calls, with optional packing of
// many newline-delimited host records into one Firehose record. Pure code:
// sizes in, plan out. (The calls are paced by common/token_bucket.h.)
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

}  // namespace ingestd::firehose
