// The HTTP side of ingest: keys, rate limits, parsing, answers. See
// http_ingest.h.
#include "engine/http_ingest.h"

#include <algorithm>
#include <chrono>

#include "engine/disk_buffer.h"
#include "json/json.h"

namespace ingestd {

namespace {

int64_t wall_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

void append_json_string(std::string *out, std::string_view s) {
  json::serialize(json::Value::string(s), out);
}

http::Response json_error(int status, std::string_view message) {
  http::Response r;
  r.status = status;
  r.body = "{\"error\":";
  append_json_string(&r.body, message);
  r.body += "}";
  return r;
}

http::Response unavailable(std::string_view why) {
  http::Response r = json_error(503, why);
  r.headers.emplace_back("Retry-After", "1");
  return r;
}

// At most this many rejected records are itemised in an answer.
constexpr size_t kMaxListedRejections = 100;

}  // namespace

void PathMetrics::observe(MetricsRegistry *m, int status, size_t bytes, uint64_t latency_ms) {
  if (!bytes_in) {
    bytes_in = m->counter("ingestd_http_request_bytes_total", "Request bytes received", labels);
    latency = m->histogram("ingestd_http_request_duration_seconds",
                           "Time from a request's first byte to its answer", labels);
  }
  Counter *&c = by_status[status];
  if (!c) {
    Labels l = labels;
    l.emplace_back("code", std::to_string(status));
    c = m->counter("ingestd_http_requests_total", "HTTP answers by listener, path and status", l);
  }
  c->add();
  bytes_in->add(bytes);
  latency->observe(static_cast<double>(latency_ms));
}

void HttpIngest::add_listener(const config::Section &s, std::shared_ptr<const ApiKeys> keys) {
  Listener &l = listeners_[s.name];
  const auto &o = s.options;
  l.keys = std::move(keys);
  l.key_header = o.get_string("api_key_header");
  l.source_field = o.get_string("source_field");
  if (o.has("client_address_field")) l.client_address_field = o.get_string("client_address_field");
  if (o.has("client_cert_field")) l.client_cert_field = o.get_string("client_cert_field");
  double workers = static_cast<double>(std::max(1, worker_count_));
  l.rate_limit = o.get_double("rate_limit") / workers;
  double burst = static_cast<double>(o.get_int("rate_burst"));
  l.rate_burst = (burst > 0 ? burst : o.get_double("rate_limit")) / workers;
  Labels ll = {{"listener", s.name}};
  l.unauthorized = metrics_->counter("ingestd_http_unauthorized_total",
                                     "Requests refused with 401 (missing or unknown API key)", ll);
  l.rate_limited = metrics_->counter("ingestd_http_rate_limited_total",
                                     "Requests refused with 429 (API key over its rate)", ll);
  l.other_paths.labels = {{"listener", s.name}, {"path", "other"}};
  http::parse_answer_style(o.get_string("responses"), &l.style);  // the enum checked it
  if (o.has("health_path")) l.health_path = o.get_string("health_path");
}

void HttpIngest::refuse(const Listener &l, http::Refusal what, http::Response ours,
                        http::Responder &responder) {
  if (l.style == http::AnswerStyle::kApiGateway) {
    responder.respond(http::api_gateway_answer(what));
  } else {
    responder.respond(std::move(ours));
  }
}

// A target group's health check on the traffic port: no API key, and 503 as
// soon as the process drains, so the load balancer stops sending first.
void HttpIngest::answer_health(http::Request &req, http::Responder &responder) {
  http::Response r;
  bool draining = draining_ && draining_->load(std::memory_order_relaxed);
  if (req.method() != "GET" && req.method() != "HEAD") {
    r = json_error(405, "method not allowed: use GET");
    r.headers.emplace_back("Allow", "GET, HEAD");
  } else if (draining) {
    r.status = 503;
    r.body = R"({"status":"draining"})";
  } else {
    r.body = R"({"status":"ok"})";
  }
  responder.respond(std::move(r));
}

void HttpIngest::add_input(InputRuntime *input, const std::string &listener,
                           const std::string &path) {
  Path &p = listeners_[listener].paths[path];
  p.input = input;
  p.http.labels = {{"listener", listener}, {"path", path}};
}

void HttpIngest::observe(const std::string &listener, const http::Request *req, int status,
                         size_t bytes_in, uint64_t latency_ms) {
  auto l = listeners_.find(listener);
  if (l == listeners_.end()) return;
  PathMetrics *pm = &l->second.other_paths;
  if (req) {
    if (auto it = l->second.paths.find(req->path()); it != l->second.paths.end())
      pm = &it->second.http;
  }
  pm->observe(metrics_, status, bytes_in, latency_ms);
}

bool HttpIngest::authenticate(Listener &l, http::Request &req, http::Responder &responder,
                              const std::string **source) {
  if (!l.keys) return true;
  auto key = req.header(l.key_header);
  if (!key || key->empty()) {
    l.unauthorized->add();
    refuse(l, http::Refusal::kMissingKey,
           json_error(401, "missing API key: send it in the " + l.key_header + " header"),
           responder);
    return false;
  }
  *source = l.keys->find(*key);
  if (!*source) {
    l.unauthorized->add();
    refuse(l, http::Refusal::kInvalidKey, json_error(401, "invalid API key"), responder);
    return false;
  }
  return true;
}

bool HttpIngest::within_rate(Listener &l, const std::string &source, size_t records,
                             http::Responder &responder) {
  auto b = l.buckets.find(source);
  uint64_t now = uv_now(loop_);
  if (b == l.buckets.end())
    b = l.buckets.emplace(source, TokenBucket(l.rate_limit, l.rate_burst, now)).first;
  uint64_t retry_after = 1;
  if (b->second.take(static_cast<double>(records), now, &retry_after)) return true;
  l.rate_limited->add();
  http::Response r = json_error(429, "rate limit of this API key exceeded");
  r.headers.emplace_back("Retry-After", std::to_string(retry_after));
  refuse(l, http::Refusal::kRateLimited, std::move(r), responder);
  return false;
}

void HttpIngest::handle(const std::string &listener, http::Request &req,
                        http::Responder responder) {
  auto lit = listeners_.find(listener);
  if (lit == listeners_.end()) {
    responder.respond(json_error(500, "listener not configured"));
    return;
  }
  Listener &l = lit->second;
  if (!l.health_path.empty() && req.path() == l.health_path) {
    answer_health(req, responder);
    return;
  }
  const std::string *source = nullptr;
  auto it = l.paths.find(req.path());
  if (l.style == http::AnswerStyle::kApiGateway) {
    // API Gateway resolves the resource and its method before the key: an
    // unknown path is 403 Missing Authentication Token, with a key or not.
    if (it == l.paths.end() || req.method() != "POST") {
      responder.respond(http::api_gateway_answer(http::Refusal::kNoRoute));
      return;
    }
  }
  if (!authenticate(l, req, responder, &source)) return;
  if (it == l.paths.end()) {
    responder.respond(json_error(404, "no input at " + std::string(req.path())));
    return;
  }
  InputRuntime &input = *it->second.input;
  if (req.method() == "OPTIONS") {
    http::Response r;
    r.status = 204;
    r.headers.emplace_back("Allow", "POST, OPTIONS");
    responder.respond(std::move(r));
    return;
  }
  if (req.method() != "POST") {
    http::Response r = json_error(405, "method not allowed: use POST");
    r.headers.emplace_back("Allow", "POST, OPTIONS");
    responder.respond(std::move(r));
    return;
  }
  // Shed load before decoding and parsing: under overload a body that cannot
  // be queued costs nothing but this check (a malformed one then gets 503,
  // not 400).
  if (!routing_->room_for(input)) {
    input.requests_shed->add();
    responder.respond(unavailable("queue full, retry later"));
    return;
  }
  if (std::optional<http::Response> refusal = req.decode_body()) {
    responder.respond(std::move(*refusal));
    return;
  }
  json::BodyResult body = json::parse_body(req.body());
  if (!body.ok) {
    responder.respond(json_error(
        400, body.items.empty() ? "empty body: send a JSON object, an array of objects or NDJSON"
                                : "invalid JSON: " + body.error));
    input.records_rejected->add(1);
    return;
  }
  if (source && l.rate_limit > 0 && !within_rate(l, *source, body.items.size(), responder)) return;
  int64_t now = wall_ms();
  std::vector<RecordPtr> &accepted = accepted_;
  accepted.clear();
  accepted.reserve(body.items.size());
  // Released when the request is handled, whichever way it returns.
  struct Release {
    std::vector<RecordPtr> &records;
    ~Release() { records.clear(); }
  } release{accepted};
  std::string rejected;
  size_t rejected_count = 0;
  auto reject = [&](size_t index, const char *field, std::string_view reason) {
    if (++rejected_count > kMaxListedRejections) return;
    if (!rejected.empty()) rejected += ',';
    rejected += "{\"index\":" + std::to_string(index);
    if (field) {
      rejected += ",\"field\":";
      append_json_string(&rejected, field);
    }
    rejected += ",\"reason\":";
    append_json_string(&rejected, reason);
    rejected += '}';
  };
  for (auto &item : body.items) {
    if (!item.error.empty()) {
      reject(item.index, nullptr, item.error);
      continue;
    }
    RecordPtr r = RecordPtr::make();
    r->root = std::move(item.value);
    r->tag = input.tag;
    r->received_ms = now;
    ingestd_reject_t why{nullptr, nullptr};
    if (input.inst.plugin->on_input_record(input.inst.data, r->abi(), &why) != 0) {
      reject(item.index, why.field, why.reason ? why.reason : "rejected by the input");
      continue;
    }
    // Set by the server, after the input: a client cannot forge them.
    if (source && !l.source_field.empty()) {
      r->root.set_path(l.source_field, json::Value::string(*source));
      r->modified();
    }
    if (!l.client_address_field.empty()) {
      r->root.set_path(l.client_address_field, json::Value::string(req.client_address()));
      r->modified();
    }
    if (!l.client_cert_field.empty()) {
      r->root.set_path(l.client_cert_field, json::Value::string(req.peer_identity()));
      r->modified();
    }
    accepted.push_back(std::move(r));
  }
  input.records_rejected->add(rejected_count);
  size_t n = accepted.size();
  Reply reply{std::move(responder), {}};
  http::Response &r = reply.response;
  r.status = (n == 0 && rejected_count > 0) ? 400 : 200;
  r.body = "{\"accepted\":" + std::to_string(n);
  // Taken but kept nowhere: the client can tell, as the operator can (metrics, log).
  if (n > 0 && !input.routed()) r.body += ",\"unrouted\":" + std::to_string(n);
  if (rejected_count > 0) {
    r.body += ",\"rejected_count\":" + std::to_string(rejected_count) + ",\"rejected\":[" +
              rejected + "]";
  }
  r.body += "}";
  Routing::Result res = routing_->deliver(input, accepted, &reply);
  if (res == Routing::Result::Full) {
    reply.responder.respond(unavailable("queue full, retry later"));
  } else if (res == Routing::Result::DiskFull) {
    std::string why = "disk buffer full, retry later";
    if (input.log && input.log->segments().broken())
      why = "disk buffer cannot be written: " + input.log->segments().broken_reason();
    reply.responder.respond(unavailable(why));
  } else if (res == Routing::Result::Ok) {
    reply.responder.respond(std::move(reply.response));
  }
}

}  // namespace ingestd
