// The response side of the elasticsearch output, as pure code: a small
// streaming JSON reader for _bulk answers (which can be megabytes: one item
// per document) and the classification of whole responses and items.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ingestd::es {

// One entry of a _bulk response's `items`, in request order.
struct BulkItem {
  int status = 0;            // items[i].ACTION.status; 0 when absent
  std::string error_type;    // items[i].ACTION.error.type ("" without error)
  std::string error_reason;  // .error.reason, plus " (caused by T: R)" when there is a caused_by
};

struct BulkResponse {
  bool errors = false;  // the top-level `errors` flag
  // `errors` was false before `items`: every item succeeded, so the items
  // were only skipped over, not read (Elasticsearch writes took, errors,
  // items in that order; reading a 1,000-item answer into items costs the
  // loop a few hundred microseconds for nothing).
  bool all_succeeded = false;
  std::vector<BulkItem> items;
};

// Parses a _bulk response body. Unknown members are skipped, nesting is
// limited (64), strings are unescaped (\uXXXX to UTF-8). Reasons longer than
// kMaxReasonBytes are cut. False with *err on malformed JSON or a body that
// is not an object with an `items` array. With all_succeeded (`errors` false
// before `items`) the items are skipped, not read.
bool parse_bulk_response(std::string_view body, BulkResponse *out, std::string *err);

constexpr size_t kMaxReasonBytes = 2000;

// The filter_path of every _bulk request: the top-level flag and each item's
// status and error, nothing else (ES and OpenSearch "response filtering").
inline constexpr const char *kBulkFilterPath = "errors,items.*.status,items.*.error";

// What becomes of one document.
enum class ItemResult {
  Created,     // 2xx
  Conflict,    // 409 on create: already there (a retry of a delivered one) -> delivered
  Retry,       // 429, 5xx, 408, or no status: sent again alone, after the host's backoff
  DeadLetter,  // other 4xx (mapping, parse, validation errors): never succeeds
};
ItemResult classify_item(const BulkItem &item);

// "<error.type>: <error.reason>", or "HTTP <status>" without an error object.
std::string item_reason(const BulkItem &item);

// What becomes of a whole _bulk request.
enum class RequestResult {
  Items,        // 2xx: classify the items
  HostFailure,  // transport error, 429 or 5xx: retry the batch; the host cools down
  TooLarge,     // 413: split the request in halves
  Refused,      // other statuses (401, 403, 400, 404...): retry the batch, log the reason
};
RequestResult classify_request(int status, const char *transport_error);

// The error of a non-2xx answer for logs: ES's {"error":{"type","reason"}},
// AWS's {"message"} / {"Message"}, or the start of the body.
std::string request_error_text(int status, std::string_view body);

}  // namespace ingestd::es
