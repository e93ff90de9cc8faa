// in_metadata: app logs from the rider app (POST /v1/metadata), checked,
// given a normalised ts and an arrival time; overlong messages are truncated
// and flagged rather than rejected, so the log line still reaches
// Elasticsearch.
//
// Fields (anything else is kept, or rejected with "unknown field" when
// strict = true; an optional field sent as null counts as absent):
//   device_id    string, required, 1..max_device_id_bytes bytes
//   level        string, required: debug, info, warn, error or fatal. Matched
//                without regard to case and stored in lower case; "warning"
//                (Python, java.util.logging, syslog) is stored as "warn".
//   message      string, required (may be empty)
//   ts           required: epoch milliseconds (integer) or RFC 3339 text,
//                stored as epoch milliseconds; at most max_future_skew ahead
//   app_version  string
//   os           string
//   model        string
//   context      object, free-form
// Added: received_at (received_at_field). A message longer than
// max_message_bytes is cut at a UTF-8 character boundary to at most that
// many bytes, and the record gets "message_truncated": true and
// "message_bytes": <original length in bytes>. Those two fields belong to the
// plugin: when a phone sends them and nothing was truncated they are removed.
// Counter ingestd_input_messages_truncated_total counts truncated messages
// (rejections are counted as described in common/schema.h).
//
// Options: strict, max_future_skew, max_device_id_bytes, received_at_field
// (common/schema.h) and max_message_bytes.
#include <cctype>
#include <cstring>
#include <exception>
#include <string>
#include <string_view>

#include "common/schema.h"
#include "common/text.h"
#include "ingestd/plugin.h"

namespace {

using ingestd::common::RejectClass;
using ingestd::common::SchemaInput;
using ingestd::common::string_field;

constexpr const char *kLevelReason = "must be one of debug, info, warn, error, fatal";
constexpr const char *kTruncatedField = "message_truncated";
constexpr const char *kBytesField = "message_bytes";

const ingestd_option_t kOptions[] = {
    ingestd::common::kStrictOption,
    ingestd::common::kMaxFutureSkewOption,
    ingestd::common::kMaxDeviceIdBytesOption,
    ingestd::common::kReceivedAtFieldOption,
    {"max_message_bytes", INGESTD_OPT_SIZE, "16KiB", 0, nullptr, 1, 64.0 * 1024 * 1024,
     "Longer messages are cut to this many bytes (at a UTF-8 boundary) and flagged"},
};

struct MetadataInput {
  SchemaInput schema;
  size_t max_message_bytes = 0;
  ingestd_metric_t *truncated = nullptr;
  std::string message;  // the truncated copy, reused between records
};

// The stored spelling of a level, or nullptr when it is none of them.
const char *normalise_level(std::string_view s) {
  static constexpr std::string_view kLevels[][2] = {
      {"debug", "debug"},  {"info", "info"},   {"warn", "warn"},
      {"warning", "warn"}, {"error", "error"}, {"fatal", "fatal"},
  };
  for (const auto &[spelling, stored] : kLevels) {
    if (s.size() != spelling.size()) continue;
    bool same = true;
    for (size_t i = 0; i < s.size() && same; ++i)
      same = std::tolower(static_cast<unsigned char>(s[i])) == spelling[i];
    if (same) return stored.data();
  }
  return nullptr;
}

int on_init(const ingestd_host_t *host, ingestd_instance_t *inst, const ingestd_config_t *cfg,
            void **data) {
  try {
    auto *in = new MetadataInput;
    *data = in;  // the host destroys it if init fails
    if (!in->schema.init(host, inst, cfg)) return -1;
    in->max_message_bytes = static_cast<size_t>(host->option_size(cfg, "max_message_bytes"));
    in->truncated = host->counter(inst, "input_messages_truncated_total",
                                  "Log messages cut to max_message_bytes");
    SchemaInput &s = in->schema;
    s.add_device_id();
    ingestd::common::Field level = string_field("level", true);
    level.reason = kLevelReason;
    s.add(std::move(level));
    s.add(string_field("message", true));
    s.add(ingestd::common::time_field("ts"));
    s.add(string_field("app_version", false));
    s.add(string_field("os", false));
    s.add(string_field("model", false));
    s.add(ingestd::common::object_field("context", false));
    return s.finish({kTruncatedField, kBytesField}) ? 0 : -1;
  } catch (const std::exception &e) {
    host->log(inst, INGESTD_LOG_ERROR, "cannot initialise: %s", e.what());
    return -1;
  }
}

void on_destroy(void *data) {
  delete static_cast<MetadataInput *>(data);
}

int on_input_record(void *data, ingestd_record_t *rec, ingestd_reject_t *why) {
  auto *in = static_cast<MetadataInput *>(data);
  try {
    SchemaInput &s = in->schema;
    const ingestd_host_t *h = s.host();
    int64_t ts_ms = 0;
    if (s.check(rec, why, &ts_ms) != 0) return -1;

    // check() guarantees both are strings. Everything read here is copied
    // before the first write: values are borrowed until the record changes.
    size_t len = 0;
    const char *lv = h->value_string(h->record_get(rec, "level"), &len);
    std::string_view level(lv, len);
    const char *stored = normalise_level(level);
    if (!stored) return s.reject(why, "level", kLevelReason, RejectClass::Invalid);
    bool level_changed = level != stored;

    const char *msg = h->value_string(h->record_get(rec, "message"), &len);
    size_t original = len;
    size_t keep =
        ingestd::common::utf8_prefix_length(std::string_view(msg, len), in->max_message_bytes);
    bool truncated = keep < original;
    if (truncated) in->message.assign(msg, keep);

    if (level_changed) h->record_set_string(rec, "level", stored, std::strlen(stored));
    if (truncated) {
      h->record_set_string(rec, "message", in->message.data(), in->message.size());
      h->record_set_bool(rec, kTruncatedField, 1);
      h->record_set_int(rec, kBytesField, static_cast<int64_t>(original));
      if (in->truncated) h->metric_add(in->truncated, 1);
    } else {
      h->record_remove(rec, kTruncatedField);
      h->record_remove(rec, kBytesField);
    }
    return s.stamp(rec, ts_ms, why);
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
    "metadata",
    INGESTD_KIND_INPUT,
    "App logs: checks device_id, level, message and ts; truncates overlong messages",
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
