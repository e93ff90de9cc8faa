// Schema checking shared by the trace, actions and metadata inputs, built
// only on the host API of ingestd/plugin.h (a plugin never links core code).
//
// A SchemaInput holds a plugin instance's schema (the fields it knows), the
// options every schema input has, its rejection counters and the buffers
// that keep dynamic rejection text alive after on_input_record returns.
//
// Common options (rows below, included in each plugin's table):
//   strict               BOOL      false          reject fields outside the schema
//   max_future_skew      DURATION  "24h"          how far ts may lie ahead of arrival
//   max_device_id_bytes  INT       128            longest device_id
//   received_at_field    STRING    "received_at"  arrival time field; "" disables
//
// Counters (host->counter, labelled with the input; each rejection by the
// schema counts in exactly one of them; the core's
// ingestd_input_rejected_records_total also counts non-objects and bad JSON):
//   ingestd_input_rejected_missing_field_total  a required field is absent or null
//   ingestd_input_rejected_invalid_field_total  wrong type, range, length or choice
//   ingestd_input_rejected_bad_ts_total         ts unreadable, in seconds, or too far ahead
//   ingestd_input_rejected_unknown_field_total  strict mode met a field outside the schema
//   ingestd_input_rejected_too_large_total      the record exceeds the plugin's size cap
#pragma once

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "ingestd/plugin.h"

namespace ingestd::common {

inline constexpr ingestd_option_t kStrictOption = {
    "strict",
    INGESTD_OPT_BOOL,
    "false",
    0,
    nullptr,
    1,
    0,
    "Reject records with fields outside the schema (reason \"unknown field\"); false keeps them"};
inline constexpr ingestd_option_t kMaxFutureSkewOption = {
    "max_future_skew",
    INGESTD_OPT_DURATION,
    "24h",
    0,
    nullptr,
    0,
    315360000000.0,
    "Reject a ts further than this ahead of the request's arrival (clock skew allowance)"};
inline constexpr ingestd_option_t kMaxDeviceIdBytesOption = {
    "max_device_id_bytes",
    INGESTD_OPT_INT,
    "128",
    0,
    nullptr,
    1,
    4096,
    "Longest device_id accepted, in bytes"};
inline constexpr ingestd_option_t kReceivedAtFieldOption = {
    "received_at_field",
    INGESTD_OPT_STRING,
    "received_at",
    0,
    nullptr,
    1,
    0,
    "Field that gets the request's arrival time in epoch milliseconds; \"\" adds none"};

// Epoch milliseconds below this are taken for epoch seconds sent by mistake
// (10^11 ms is 1973-03-03; 10^11 s is the year 5138).
inline constexpr double kMinEpochMs = 1e11;

enum class FieldType { String, Number, Object, Time };

// Why a record was rejected, for the counters above.
enum class RejectClass { Missing, Invalid, BadTs, Unknown, TooLarge };

struct Field {
  std::string name;
  FieldType type = FieldType::String;
  bool required = false;
  // String: reject "" and strings longer than max_bytes (0: no limit).
  bool non_empty = false;
  size_t max_bytes = 0;
  // Number: accepted range; max is exclusive when max_exclusive.
  double min = -HUGE_VAL;
  double max = HUGE_VAL;
  bool max_exclusive = false;
  std::string reason;           // type (and, for numbers, range) error
  std::string too_long_reason;  // String: longer than max_bytes
};

Field string_field(std::string name, bool required, bool non_empty = false, size_t max_bytes = 0);
// reason: e.g. "must be a number from -90 to 90" (used for type and range errors).
Field number_field(std::string name, bool required, double min, double max, bool max_exclusive,
                   std::string reason);
Field object_field(std::string name, bool required);
// The record's time: epoch ms (integer) or RFC 3339, normalised to epoch ms.
Field time_field(std::string name);

// Checks a record against a fixed schema. Use: init, add fields, finish;
// per record: check (read-only), the plugin's own checks, then stamp.
class SchemaInput {
 public:
  // Reads the common options and creates the counters (too_large only for
  // an input with a size cap). Never throws.
  bool init(const ingestd_host_t *host, ingestd_instance_t *inst, const ingestd_config_t *cfg,
            bool size_cap = false);
  // Adds device_id (required, non-empty, at most max_device_id_bytes).
  void add_device_id();
  // Returns the field's index, for number() after a check. At most 32
  // fields (std::length_error beyond).
  size_t add(Field f);
  // Names the plugin adds itself (geohash...): received_at_field must not
  // collide with them. Returns false after logging a bad configuration.
  bool finish(std::initializer_list<const char *> derived = {});

  // Validates every schema field and, in strict mode, rejects fields outside
  // the schema. Does not modify the record; on success *ts_ms holds the
  // normalised time. Returns 0, or -1 with `why` filled and counted.
  int check(const ingestd_record_t *rec, ingestd_reject_t *why, int64_t *ts_ms);
  // The value of number field `field` (add's index) that the last successful
  // check read; 0 when the record had none. Saves reading it again.
  double number(size_t field) const { return numbers_[field]; }
  // Writes the normalised ts and received_at. Returns 0, or -1 with `why`
  // filled when a dotted received_at_field crosses a non-object.
  int stamp(ingestd_record_t *rec, int64_t ts_ms, ingestd_reject_t *why);

  // Fills `why` with text that outlives the call and counts the rejection.
  // field and reason must stay valid (static text or owned by this object).
  int reject(ingestd_reject_t *why, const char *field, const char *reason, RejectClass c);
  // Same with a reason built per record, copied into this instance's buffer.
  int reject_with(ingestd_reject_t *why, const char *field, std::string_view reason, RejectClass c);

  const ingestd_host_t *host() const { return host_; }
  ingestd_instance_t *instance() const { return inst_; }
  bool strict() const { return strict_; }

 private:
  int check_field(const Field &f, const ingestd_value_t *v, ingestd_reject_t *why,
                  int64_t received_ms, int64_t *ts_ms, double *number);
  int check_time(const Field &f, const ingestd_value_t *v, ingestd_reject_t *why,
                 int64_t received_ms, int64_t *ts_ms);
  bool known(std::string_view key) const;
  size_t field_index(std::string_view key) const;  // SIZE_MAX: not in the schema

  const ingestd_host_t *host_ = nullptr;
  ingestd_instance_t *inst_ = nullptr;
  std::vector<Field> fields_;
  static constexpr size_t kFieldSlots = 64;
  uint8_t slots_[kFieldSlots] = {};             // field_index's table: field index + 1, 0 for empty
  std::vector<double> numbers_;                 // per field, what the last check read
  std::vector<const ingestd_value_t *> found_;  // per field, the member check found
  const Field *time_ = nullptr;
  bool ts_as_stamped_ = false;  // the last check's ts was already epoch-ms digits
  bool strict_ = false;
  int64_t max_future_skew_ms_ = 0;
  size_t max_device_id_bytes_ = 0;
  std::string received_at_field_;
  std::string future_reason_;
  std::string field_buf_, reason_buf_;
  ingestd_metric_t *counters_[5] = {};
};

}  // namespace ingestd::common
