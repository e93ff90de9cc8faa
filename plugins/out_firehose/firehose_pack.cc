// Call planning for PutRecordBatch: limits per call and per record, packing.
#include "firehose_pack.h"

namespace ingestd::firehose {

Plan plan_calls(std::span<const uint32_t> indices, std::span<const size_t> sizes,
                const PackLimits &limits) {
  Plan plan;
  const size_t call_records = limits.call_max_records > 0 ? limits.call_max_records : 1;
  PlannedCall *call = nullptr;
  bool record_open = false;  // may the last record of `call` take more items?
  for (uint32_t idx : indices) {
    const size_t size = sizes[idx];
    if (size > limits.hard_record_max) {
      plan.too_large.push_back(idx);
      continue;
    }
    if (limits.aggregate && call && record_open) {
      PackedRecord &r = call->records.back();
      if (r.bytes + size <= limits.record_max_bytes &&
          call->bytes + size <= limits.call_max_bytes) {
        r.items.push_back(idx);
        r.bytes += size;
        call->bytes += size;
        ++call->items;
        continue;
      }
    }
    // A new Firehose record, in this call if it fits, else in a new call.
    if (!call || call->records.size() >= call_records ||
        (call->bytes > 0 && call->bytes + size > limits.call_max_bytes)) {
      plan.calls.emplace_back();
      call = &plan.calls.back();
    }
    call->records.push_back(PackedRecord{{idx}, size});
    call->bytes += size;
    ++call->items;
    record_open = size < limits.record_max_bytes;
  }
  return plan;
}

}  // namespace ingestd::firehose
