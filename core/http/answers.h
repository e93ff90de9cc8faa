// The answers a listener gives when it refuses a request, in one of two
// styles: ingestd's own ({"error":"..."} with the precise reason) or the
// exact answers of an AWS API Gateway REST API, so that during a migration
// behind a weighted load balancer a client cannot tell which backend
// answered. The API Gateway texts live here and nowhere else; ingestd.conf(5)
// documents them.
#pragma once

#include <string_view>

#include "http/server.h"

namespace ingestd::http {

enum class AnswerStyle { kIngestd, kApiGateway };

// What was refused, where the two styles differ.
enum class Refusal {
  kMissingKey,   // no API key header
  kInvalidKey,   // an API key not in the file
  kNoRoute,      // no input at that path, or not a method it serves
  kRateLimited,  // over the key's rate
  kTooLarge      // body over max_body (or max_body_decompressed)
};

// API Gateway's answer for `r`: status, {"message":...}, x-amzn-ErrorType
// and application/json. (kIngestd answers are built where the refusal is
// found, since they carry its details.)
Response api_gateway_answer(Refusal r);

// "ingestd" | "api-gateway"; false for anything else.
bool parse_answer_style(std::string_view text, AnswerStyle *out);

}  // namespace ingestd::http
