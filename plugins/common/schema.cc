// The shared schema checker (see schema.h). Runs once per record on the hot
// path: a schema is a handful of fields, looked up linearly in the object.
#include "common/schema.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
#include <stdexcept>

#include "common/text.h"
#include "common/timestamp.h"

namespace ingestd::common {
namespace {

constexpr const char *kIsRequired = "is required";
constexpr const char *kMustBeString = "must be a string";
constexpr const char *kMustNotBeEmpty = "must not be empty";
constexpr const char *kBadTs = "must be epoch milliseconds or an RFC 3339 time";
constexpr const char *kNotInteger = "must be an integer";
constexpr const char *kLooksLikeSeconds = "looks like epoch seconds; send milliseconds";
constexpr const char *kUnknownField = "unknown field";

struct CounterRow {
  const char *name;
  const char *help;
};
// Indexed by RejectClass.
constexpr CounterRow kCounters[] = {
    {"input_rejected_missing_field_total", "Records rejected because a required field is missing"},
    {"input_rejected_invalid_field_total",
     "Records rejected for a field of the wrong type, range, length or choice"},
    {"input_rejected_bad_ts_total",
     "Records rejected for a ts that is unreadable, in seconds or too far in the future"},
    {"input_rejected_unknown_field_total",
     "Records rejected in strict mode for a field outside the schema"},
    {"input_rejected_too_large_total", "Records rejected for exceeding the input's size cap"},
};

}  // namespace

Field string_field(std::string name, bool required, bool non_empty, size_t max_bytes) {
  Field f;
  f.name = std::move(name);
  f.type = FieldType::String;
  f.required = required;
  f.non_empty = non_empty;
  f.max_bytes = max_bytes;
  f.reason = kMustBeString;
  if (max_bytes) f.too_long_reason = "must be at most " + std::to_string(max_bytes) + " bytes";
  return f;
}

Field number_field(std::string name, bool required, double min, double max, bool max_exclusive,
                   std::string reason) {
  Field f;
  f.name = std::move(name);
  f.type = FieldType::Number;
  f.required = required;
  f.min = min;
  f.max = max;
  f.max_exclusive = max_exclusive;
  f.reason = std::move(reason);
  return f;
}

Field object_field(std::string name, bool required) {
  Field f;
  f.name = std::move(name);
  f.type = FieldType::Object;
  f.required = required;
  f.reason = "must be an object";
  return f;
}

Field time_field(std::string name) {
  Field f;
  f.name = std::move(name);
  f.type = FieldType::Time;
  f.required = true;
  f.reason = kBadTs;
  return f;
}

bool SchemaInput::init(const ingestd_host_t *host, ingestd_instance_t *inst,
                       const ingestd_config_t *cfg, bool size_cap) {
  host_ = host;
  inst_ = inst;
  try {
    strict_ = host->option_bool(cfg, kStrictOption.name) != 0;
    max_future_skew_ms_ = host->option_int(cfg, kMaxFutureSkewOption.name);
    max_device_id_bytes_ = static_cast<size_t>(host->option_int(cfg, kMaxDeviceIdBytesOption.name));
    const char *ra = host->option_string(cfg, kReceivedAtFieldOption.name);
    received_at_field_ = ra ? ra : "";
    future_reason_ = "is more than " + format_duration_ms(max_future_skew_ms_) + " in the future";
    static_assert(sizeof kCounters / sizeof kCounters[0] == sizeof counters_ / sizeof counters_[0]);
    for (size_t i = 0; i < sizeof kCounters / sizeof kCounters[0]; ++i) {
      if (i == static_cast<size_t>(RejectClass::TooLarge) && !size_cap) continue;
      counters_[i] = host->counter(inst, kCounters[i].name, kCounters[i].help);
    }
  } catch (const std::exception &e) {
    host->log(inst, INGESTD_LOG_ERROR, "cannot initialise: %s", e.what());
    return false;
  }
  return true;
}

void SchemaInput::add_device_id() {
  add(string_field("device_id", true, true, max_device_id_bytes_));
}

bool SchemaInput::finish(std::initializer_list<const char *> derived) {
  time_ = nullptr;
  for (const Field &f : fields_)
    if (f.type == FieldType::Time) time_ = &f;
  if (received_at_field_.empty()) return true;
  std::string_view top = received_at_field_;
  top = top.substr(0, top.find('.'));
  bool clash = known(top);
  for (const char *d : derived)
    clash = clash || top == d;
  if (clash) {
    host_->log(inst_, INGESTD_LOG_ERROR,
               "option 'received_at_field': '%s' would overwrite a field this input checks or "
               "adds; choose another name",
               received_at_field_.c_str());
    return false;
  }
  return true;
}

bool SchemaInput::known(std::string_view key) const {
  return field_index(key) != SIZE_MAX;
}

int SchemaInput::reject(ingestd_reject_t *why, const char *field, const char *reason,
                        RejectClass c) {
  why->field = field;
  why->reason = reason;
  if (ingestd_metric_t *m = counters_[static_cast<size_t>(c)]) host_->metric_add(m, 1);
  return -1;
}

int SchemaInput::reject_with(ingestd_reject_t *why, const char *field, std::string_view reason,
                             RejectClass c) {
  reason_buf_.assign(reason.data(), reason.size());
  return reject(why, field, reason_buf_.c_str(), c);
}

int SchemaInput::check(const ingestd_record_t *rec, ingestd_reject_t *why, int64_t *ts_ms) {
  const ingestd_value_t *root = host_->record_root(rec);
  int64_t received_ms = host_->record_received_ms(rec);
  // One pass over the record's members finds the schema's fields (keys are
  // unique), instead of one lookup per field.
  std::fill(found_.begin(), found_.end(), nullptr);
  size_t unknown = SIZE_MAX;  // the first member outside the schema
  size_t n = host_->value_size(root);
  for (size_t i = 0; i < n; ++i) {
    size_t len = 0;
    const char *key = host_->value_key(root, i, &len);
    size_t f = field_index(std::string_view(key, len));
    if (f < fields_.size()) {
      found_[f] = host_->value_item(root, i);
    } else if (unknown == SIZE_MAX) {
      unknown = i;
    }
  }
  for (size_t i = 0; i < fields_.size(); ++i) {
    numbers_[i] = 0;
    if (check_field(fields_[i], found_[i], why, received_ms, ts_ms, &numbers_[i]) != 0) return -1;
  }
  if (strict_ && unknown != SIZE_MAX) {
    size_t len = 0;
    const char *key = host_->value_key(root, unknown, &len);
    field_buf_.assign(key, len);
    return reject(why, field_buf_.c_str(), kUnknownField, RejectClass::Unknown);
  }
  return 0;
}

namespace {

size_t key_hash(std::string_view key) {
  if (key.empty()) return 0;
  auto byte = [&](size_t i) { return static_cast<size_t>(static_cast<unsigned char>(key[i])); };
  return key.size() * 31 + byte(0) * 7 + byte(key.size() - 1) * 3 + byte(key.size() / 2);
}

}  // namespace

// An open-addressed table (kFieldSlots slots, at most half full) from key to
// field: most members cost one hash and one comparison.
size_t SchemaInput::field_index(std::string_view key) const {
  for (size_t h = key_hash(key);; ++h) {
    uint8_t slot = slots_[h % kFieldSlots];
    if (slot == 0) return SIZE_MAX;
    const std::string &name = fields_[slot - 1].name;
    if (name.size() == key.size() && std::memcmp(name.data(), key.data(), key.size()) == 0)
      return slot - 1;
  }
}

size_t SchemaInput::add(Field f) {
  if (fields_.size() >= kFieldSlots / 2) throw std::length_error("too many schema fields");
  size_t h = key_hash(f.name);
  while (slots_[h % kFieldSlots] != 0)
    ++h;
  slots_[h % kFieldSlots] = static_cast<uint8_t>(fields_.size() + 1);
  fields_.push_back(std::move(f));
  numbers_.push_back(0);
  found_.push_back(nullptr);
  return fields_.size() - 1;
}

int SchemaInput::check_field(const Field &f, const ingestd_value_t *v, ingestd_reject_t *why,
                             int64_t received_ms, int64_t *ts_ms, double *number) {
  const char *name = f.name.c_str();
  ingestd_value_kind_type kind = host_->value_kind(v);  // NULL for an absent field
  if (kind == INGESTD_VALUE_NULL) {
    // An optional field sent as null counts as absent (and is kept as null).
    return f.required ? reject(why, name, kIsRequired, RejectClass::Missing) : 0;
  }
  switch (f.type) {
    case FieldType::String: {
      if (kind != INGESTD_VALUE_STRING)
        return reject(why, name, f.reason.c_str(), RejectClass::Invalid);
      size_t len = 0;
      host_->value_string(v, &len);
      if (f.non_empty && len == 0) return reject(why, name, kMustNotBeEmpty, RejectClass::Invalid);
      if (f.max_bytes && len > f.max_bytes)
        return reject(why, name, f.too_long_reason.c_str(), RejectClass::Invalid);
      return 0;
    }
    case FieldType::Number: {
      if (kind != INGESTD_VALUE_NUMBER)
        return reject(why, name, f.reason.c_str(), RejectClass::Invalid);
      double x = host_->value_number(v);
      bool above = f.max_exclusive ? x >= f.max : x > f.max;
      if (!std::isfinite(x) || x < f.min || above)
        return reject(why, name, f.reason.c_str(), RejectClass::Invalid);
      *number = x;
      return 0;
    }
    case FieldType::Object:
      return kind == INGESTD_VALUE_OBJECT
                 ? 0
                 : reject(why, name, f.reason.c_str(), RejectClass::Invalid);
    case FieldType::Time:
      return check_time(f, v, why, received_ms, ts_ms);
  }
  return 0;
}

int SchemaInput::check_time(const Field &f, const ingestd_value_t *v, ingestd_reject_t *why,
                            int64_t received_ms, int64_t *ts_ms) {
  const char *name = f.name.c_str();
  ingestd_value_kind_type kind = host_->value_kind(v);
  int64_t ms = 0;
  ts_as_stamped_ = false;
  if (kind == INGESTD_VALUE_NUMBER) {
    double x = host_->value_number(v);
    if (!std::isfinite(x) || std::floor(x) != x)
      return reject(why, name, kNotInteger, RejectClass::BadTs);
    if (x < kMinEpochMs) return reject(why, name, kLooksLikeSeconds, RejectClass::BadTs);
    // Compared as doubles first: x may be far beyond int64.
    if (x > static_cast<double>(received_ms) + static_cast<double>(max_future_skew_ms_))
      return reject(why, name, future_reason_.c_str(), RejectClass::BadTs);
    ms = static_cast<int64_t>(x);
    // Sent as plain digits ("1764000000000"), it is already in the form
    // stamp() would write: the record keeps it.
    size_t len = 0;
    const char *text = host_->value_number_text(v, &len);
    ts_as_stamped_ = text && len > 0 && len <= 18;
    for (size_t i = 0; ts_as_stamped_ && i < len; ++i)
      ts_as_stamped_ = text[i] >= '0' && text[i] <= '9';
  } else if (kind == INGESTD_VALUE_STRING) {
    size_t len = 0;
    const char *s = host_->value_string(v, &len);
    if (!s || !parse_rfc3339_ms(std::string_view(s, len), &ms))
      return reject(why, name, kBadTs, RejectClass::BadTs);
  } else {
    return reject(why, name, kBadTs, RejectClass::BadTs);
  }
  if (ms - received_ms > max_future_skew_ms_)
    return reject(why, name, future_reason_.c_str(), RejectClass::BadTs);
  *ts_ms = ms;
  return 0;
}

int SchemaInput::stamp(ingestd_record_t *rec, int64_t ts_ms, ingestd_reject_t *why) {
  if (time_ && !ts_as_stamped_ && host_->record_set_int(rec, time_->name.c_str(), ts_ms) != 0)
    return reject(why, time_->name.c_str(), "cannot be set", RejectClass::Invalid);
  if (!received_at_field_.empty() &&
      host_->record_set_int(rec, received_at_field_.c_str(), host_->record_received_ms(rec)) != 0) {
    return reject(why, received_at_field_.c_str(), "cannot be set: a parent is not an object",
                  RejectClass::Invalid);
  }
  return 0;
}

}  // namespace ingestd::common
