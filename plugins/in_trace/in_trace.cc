// in_trace: GPS fixes from the rider app (POST /v1/trace), checked, given a
// normalised ts, an arrival time and a geohash, then routed.
//
// Fields (anything else is kept, or rejected with "unknown field" when
// strict = true; an optional field sent as null counts as absent):
//   device_id  string, required, 1..max_device_id_bytes bytes
//   lat        number, required, -90..90
//   lon        number, required, -180..180
//   ts         required: epoch milliseconds (integer) or RFC 3339 text,
//              stored as epoch milliseconds; at most max_future_skew ahead
//   speed      number >= 0 (m/s as the phone reports it)
//   heading    number, 0 <= heading < 360
//   accuracy   number >= 0 (metres)
//   altitude   number
//   battery    number, 0..100 (percent)
//   order_id   string
// Added: geohash (geohash_precision characters, unless 0), received_at
// (received_at_field). A geohash or received_at sent by the phone is
// overwritten when the plugin adds its own.
//
// Options: strict, max_future_skew, max_device_id_bytes, received_at_field
// (common/schema.h) and geohash_precision.
#include <cmath>
#include <exception>
#include <string>

#include "common/schema.h"
#include "geohash.h"
#include "ingestd/plugin.h"

namespace {

using ingestd::common::Field;
using ingestd::common::number_field;
using ingestd::common::SchemaInput;
using ingestd::common::string_field;

constexpr const char *kGeohashField = "geohash";

const ingestd_option_t kOptions[] = {
    ingestd::common::kStrictOption,
    ingestd::common::kMaxFutureSkewOption,
    ingestd::common::kMaxDeviceIdBytesOption,
    ingestd::common::kReceivedAtFieldOption,
    {"geohash_precision", INGESTD_OPT_INT, "9", 0, nullptr, 0, 12,
     "Characters of the geohash added from lat/lon (9 is about 5 m); 0 adds none"},
};

struct TraceInput {
  SchemaInput schema;
  size_t geohash_precision = 0;
  size_t lat = 0, lon = 0;  // schema field indices
};

int on_init(const ingestd_host_t *host, ingestd_instance_t *inst, const ingestd_config_t *cfg,
            void **data) {
  try {
    auto *in = new TraceInput;
    *data = in;  // the host destroys it if init fails
    if (!in->schema.init(host, inst, cfg)) return -1;
    in->geohash_precision = static_cast<size_t>(host->option_int(cfg, "geohash_precision"));
    SchemaInput &s = in->schema;
    s.add_device_id();
    in->lat = s.add(number_field("lat", true, -90, 90, false, "must be a number from -90 to 90"));
    in->lon =
        s.add(number_field("lon", true, -180, 180, false, "must be a number from -180 to 180"));
    s.add(ingestd::common::time_field("ts"));
    s.add(number_field("speed", false, 0, HUGE_VAL, false, "must be a number >= 0"));
    s.add(number_field("heading", false, 0, 360, true, "must be a number from 0 to less than 360"));
    s.add(number_field("accuracy", false, 0, HUGE_VAL, false, "must be a number >= 0"));
    s.add(number_field("altitude", false, -HUGE_VAL, HUGE_VAL, false, "must be a number"));
    s.add(number_field("battery", false, 0, 100, false, "must be a number from 0 to 100"));
    s.add(string_field("order_id", false));
    if (in->geohash_precision > 0) {
      if (!s.finish({kGeohashField})) return -1;
    } else if (!s.finish()) {
      return -1;
    }
    return 0;
  } catch (const std::exception &e) {
    host->log(inst, INGESTD_LOG_ERROR, "cannot initialise: %s", e.what());
    return -1;
  }
}

void on_destroy(void *data) {
  delete static_cast<TraceInput *>(data);
}

int on_input_record(void *data, ingestd_record_t *rec, ingestd_reject_t *why) {
  auto *in = static_cast<TraceInput *>(data);
  try {
    int64_t ts_ms = 0;
    if (in->schema.check(rec, why, &ts_ms) != 0) return -1;
    const ingestd_host_t *h = in->schema.host();
    if (in->geohash_precision > 0) {
      // lat and lon as the check read them (both required, so present).
      std::string hash = ingestd::trace::geohash_encode(
          in->schema.number(in->lat), in->schema.number(in->lon), in->geohash_precision);
      h->record_set_string(rec, kGeohashField, hash.data(), hash.size());
    }
    return in->schema.stamp(rec, ts_ms, why);
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
    "trace",
    INGESTD_KIND_INPUT,
    "GPS fixes: checks device_id, lat, lon, ts and optional motion fields; adds a geohash",
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
