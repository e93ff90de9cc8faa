// API Gateway's refusals, byte for byte (see answers.h).
#include "http/answers.h"

namespace ingestd::http {

namespace {

struct GatewayAnswer {
  int status;
  const char *body;
  const char *error_type;
};

// What an API Gateway REST API with a usage-plan API key answers today.
// A missing or unknown x-api-key is 403 Forbidden (not 401); a path or
// method no resource serves is 403 Missing Authentication Token (not 404 /
// 405); the key's throttle is 429; a body over the limit is 413.
constexpr GatewayAnswer kGatewayAnswers[] = {
    /* kMissingKey  */ {403, R"({"message":"Forbidden"})", "ForbiddenException"},
    /* kInvalidKey  */ {403, R"({"message":"Forbidden"})", "ForbiddenException"},
    /* kNoRoute     */
    {403, R"({"message":"Missing Authentication Token"})", "MissingAuthenticationTokenException"},
    /* kRateLimited */ {429, R"({"message":"Too Many Requests"})", "TooManyRequestsException"},
    /* kTooLarge    */ {413, R"({"message":"Request Too Long"})", "RequestTooLongException"},
};

}  // namespace

Response api_gateway_answer(Refusal r) {
  const GatewayAnswer &a = kGatewayAnswers[static_cast<int>(r)];
  Response resp;
  resp.status = a.status;
  resp.body = a.body;
  resp.content_type = "application/json";
  resp.headers.emplace_back("x-amzn-ErrorType", a.error_type);
  return resp;
}

bool parse_answer_style(std::string_view text, AnswerStyle *out) {
  if (text == "ingestd") {
    *out = AnswerStyle::kIngestd;
  } else if (text == "api-gateway") {
    *out = AnswerStyle::kApiGateway;
  } else {
    return false;
  }
  return true;
}

}  // namespace ingestd::http
