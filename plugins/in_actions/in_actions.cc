// in_actions: delivery actions and metrics from the rider app
// (POST /v1/actions), checked, given a normalised ts and an arrival time, and
// capped in size.
//
// Fields (anything else is kept, or rejected with "unknown field" when
// strict = true; an optional field sent as null counts as absent):
//   device_id   string, required, 1..max_device_id_bytes bytes
//   action      string, required, 1..64 bytes ("picked_up", "delivered"...)
//   ts          required: epoch milliseconds (integer) or RFC 3339 text,
//               stored as epoch milliseconds; at most max_future_skew ahead
//   order_id    string
//   properties  object, free-form
// Added: received_at (received_at_field).
//
// Size cap: the record as it will be stored (compact JSON after ts is
// normalised and received_at added, the bytes every output sees) must be at
// most max_record_bytes; a larger one is rejected with
// "record is N bytes, the limit is M" and no field.
//
// Options: strict, max_future_skew, max_device_id_bytes, received_at_field
// (common/schema.h) and max_record_bytes.
#include <exception>
#include <string>

#include "common/schema.h"
#include "ingestd/plugin.h"

namespace {

using ingestd::common::RejectClass;
using ingestd::common::SchemaInput;

constexpr size_t kMaxActionBytes = 64;

const ingestd_option_t kOptions[] = {
    ingestd::common::kStrictOption,
    ingestd::common::kMaxFutureSkewOption,
    ingestd::common::kMaxDeviceIdBytesOption,
    ingestd::common::kReceivedAtFieldOption,
    {"max_record_bytes", INGESTD_OPT_SIZE, "64KiB", 0, nullptr, 64, 64.0 * 1024 * 1024,
     "Largest record accepted, as compact JSON after shaping; larger ones are rejected"},
};

struct ActionsInput {
  SchemaInput schema;
  size_t max_record_bytes = 0;
};

int on_init(const ingestd_host_t *host, ingestd_instance_t *inst, const ingestd_config_t *cfg,
            void **data) {
  try {
    auto *in = new ActionsInput;
    *data = in;  // the host destroys it if init fails
    if (!in->schema.init(host, inst, cfg, /*size_cap=*/true)) return -1;
    in->max_record_bytes = static_cast<size_t>(host->option_size(cfg, "max_record_bytes"));
    SchemaInput &s = in->schema;
    s.add_device_id();
    s.add(ingestd::common::string_field("action", true, true, kMaxActionBytes));
    s.add(ingestd::common::time_field("ts"));
    s.add(ingestd::common::string_field("order_id", false));
    s.add(ingestd::common::object_field("properties", false));
    return s.finish() ? 0 : -1;
  } catch (const std::exception &e) {
    host->log(inst, INGESTD_LOG_ERROR, "cannot initialise: %s", e.what());
    return -1;
  }
}

void on_destroy(void *data) {
  delete static_cast<ActionsInput *>(data);
}

int on_input_record(void *data, ingestd_record_t *rec, ingestd_reject_t *why) {
  auto *in = static_cast<ActionsInput *>(data);
  try {
    int64_t ts_ms = 0;
    if (in->schema.check(rec, why, &ts_ms) != 0) return -1;
    if (in->schema.stamp(rec, ts_ms, why) != 0) return -1;
    // Serialised once here and cached for every output the record reaches.
    size_t bytes = 0;
    in->schema.host()->record_json(rec, &bytes);
    if (bytes > in->max_record_bytes) {
      return in->schema.reject_with(why, nullptr,
                                    "record is " + std::to_string(bytes) + " bytes, the limit is " +
                                        std::to_string(in->max_record_bytes),
                                    RejectClass::TooLarge);
    }
    return 0;
  } catch (const std::exception &) {
    why->field = nullptr;
    why->reason = "internal error: out of memory";
    return -1;
  }
}

}  // namespace

extern "C" INGESTD_EXPORT const ingestd_plugin_t ingestd_plugin_v1 = {
    INGESTD_ABI_MAJOR,
    INGESTD_ABI_MINOR,
    sizeof(ingestd_plugin_t),
    "actions",
    INGESTD_KIND_INPUT,
    "Delivery actions: checks device_id, action and ts, caps the record size",
    "1.0.0",
    kOptions,
    sizeof kOptions / sizeof kOptions[0],
    on_init,
    nullptr,
    nullptr,
    on_destroy,
    on_input_record,
    nullptr,
    nullptr,
};
