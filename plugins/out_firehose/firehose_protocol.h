// The Firehose PutRecordBatch wire format (AWS JSON 1.1): base64, the request
// body, a small tolerant JSON reader for the answers, and the classification
// of AWS error codes. Pure code: no libuv, no host, no allocation owned
// across calls.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ingestd::firehose {

// Hard PutRecordBatch limits (API Reference; botocore's model: Data max 1024000).
constexpr size_t kMaxCallRecords = 500;
constexpr size_t kMaxCallBytes = size_t{4} << 20;  // decoded data of one call
constexpr size_t kMaxRecordBytes = 1024000;        // 1,000 KiB per record
constexpr size_t kBillUnitBytes = 5120;            // Firehose rounds each record up to 5 KB

constexpr const char *kTarget = "Firehose_20150804.PutRecordBatch";
constexpr const char *kContentType = "application/x-amz-json-1.1";

// Billed 5 KB units of one Firehose record: max(1, ceil(bytes / 5120)).
constexpr uint64_t billed_units(size_t bytes) {
  return bytes == 0 ? 1 : (bytes + kBillUnitBytes - 1) / kBillUnitBytes;
}

// Standard base64 (RFC 4648, padded) over data that arrives in pieces.
class Base64Writer {
 public:
  explicit Base64Writer(std::string *out) : out_(out) {}
  void write(const char *p, size_t n);
  void finish();  // flushes the last 1-2 bytes with padding

 private:
  std::string *out_;
  unsigned char carry_[2] = {0, 0};
  size_t carried_ = 0;
};

constexpr size_t base64_len(size_t n) {
  return (n + 2) / 3 * 4;
}
std::string base64(std::string_view s);

// One piece of a Firehose record's data: a host record's JSON, borrowed.
struct Piece {
  const char *data;
  size_t len;
};

// Appends {"DeliveryStreamName":STREAM,"Records":[{"Data":"..."},...]} to out.
// records[k] is the list of pieces packed into Firehose record k; with
// `newline` each piece is followed by "\n". `stream` must already be a valid
// stream name ([a-zA-Z0-9_.-]{1,64}: nothing to escape).
void build_put_record_batch(std::string_view stream, const std::vector<std::vector<Piece>> &records,
                            bool newline, std::string *out);

bool valid_stream_name(std::string_view s);

// ---- reading answers -------------------------------------------------------

// A parsed JSON value; enough of JSON for AWS answers (depth-limited).
struct JsonValue {
  enum class Kind : uint8_t { kNull, kBool, kNumber, kString, kArray, kObject };
  Kind kind = Kind::kNull;
  bool boolean = false;
  double number = 0;
  std::string string;
  std::vector<JsonValue> items;
  std::vector<std::pair<std::string, JsonValue>> members;

  const JsonValue *get(std::string_view key) const;  // object member or nullptr
};

// Parses one JSON document (surrounding whitespace allowed). False on any
// syntax error or nesting deeper than 64.
bool parse_json(std::string_view text, JsonValue *out);

// "com.amazonaws.firehose.v20150804#ResourceNotFoundException" -> the part
// after '#'; "Code:http://internal.amazon.com/..." (x-amzn-ErrorType) -> the
// part before ':'; whitespace trimmed.
std::string normalize_error_code(std::string_view raw);

// The AWS error code of an error answer: the body's `__type` (or `code`), else
// the x-amzn-ErrorType header (pass "" when absent). Empty when neither says.
// `message` (may be nullptr) receives the body's message/Message.
std::string error_code(std::string_view body, std::string_view error_type_header,
                       std::string *message);

// What the output does about a failed call.
enum class ErrorClass : uint8_t {
  kThrottle,   // ServiceUnavailableException (HTTP 500!), Throttling*, LimitExceeded*:
               // pause sending, retry with backoff
  kTransient,  // InternalFailure, unknown 5xx, transport errors: retry with backoff
  kAuth,       // signature/credentials rejected: keep data, retry, log once a minute
  kConfig,     // stream missing, request invalid: keep data, retry, log once a minute
};
// By code first; the HTTP status only decides for codes we do not know.
ErrorClass classify_error(std::string_view code, int status);
const char *error_class_name(ErrorClass c);

// A PutRecordBatch 200 answer.
struct PutResult {
  int64_t failed_put_count = 0;
  // One entry per request record, in request order: "" when it was accepted,
  // else its ErrorCode (normalised; "Unknown" when a failed entry has none).
  std::vector<std::string> codes;
  std::string first_error_message;
};
// False when the body is not a PutRecordBatch answer (no RequestResponses).
bool parse_put_result(std::string_view body, PutResult *out);

}  // namespace ingestd::firehose
