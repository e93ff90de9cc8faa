// out_elasticsearch: records as documents through the _bulk API of
// Elasticsearch 7/8 and OpenSearch 1/2 (also Amazon OpenSearch Service and
// Serverless with SigV4), over the host's HTTP client (host->http_request);
// this plugin never links curl.
//
// One host batch is sent as one _bulk request of `create` actions (so a
// retried document is a 409, counted as delivered, never a duplicate), or as
// several when the cluster answered 413: the request is split in halves until
// it fits (a document refused alone is dead-lettered), and later batches are
// cut to half the refused size (at least 1 MiB). Requests of one
// batch go one after the other; max_inflight batches run side by side.
//
// Outcomes: items 2xx and 409 are delivered; 429/5xx items are retried alone
// (batch_retry_record); other 4xx items (mapping and parse errors) go to the
// dead-letter file with "<error.type>: <error.reason>". A whole request that
// fails (transport error, 429, 5xx) is retried after the host's backoff and
// cools its host down; other statuses (401, 403, 400...) are retried and
// logged. The details are in es_response.h.
//
// The worker's loop serves requests between the steps: a batch's NDJSON body
// is built kDocsPerSlice documents per loop turn (host->call_soon; all at once
// when another batch waits behind it, i.e. when the output falls behind), sent
// without a copy (body_lent), and the answer comes back filtered to each
// item's status and error (filter_path), about 25 bytes per document.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/aws_options.h"
#include "common/log_limiter.h"
#include "common/options.h"
#include "common/output.h"
#include "common/slices.h"
#include "es_bulk.h"
#include "es_hosts.h"
#include "es_response.h"
#include "ingestd/plugin.h"

namespace {

using ingestd::es::BulkItem;
using ingestd::es::BulkResponse;
using ingestd::es::HostPool;
using ingestd::es::IndexPattern;
using ingestd::es::ItemResult;
using ingestd::es::RequestResult;

constexpr uint32_t kReload = INGESTD_OPT_RELOADABLE;
constexpr uint32_t kSecret = INGESTD_OPT_SECRET;
constexpr double kNoMin = 1;
constexpr double kNoMax = 0;
constexpr double kSizeMax = 1099511627776.0 * 1024;
constexpr size_t kMinLearnedBodyBytes = 1 << 20;
// Documents are turned into NDJSON this many at a time, one slice per loop
// turn: a whole 1,000-record batch takes ~0.5 ms, and every request arriving
// meanwhile would wait for it.
constexpr size_t kDocsPerSlice = 32;
// Finished bodies kept for reuse, and the largest kept.
constexpr size_t kSpareBodies = 2;
constexpr size_t kMaxSpareBodyBytes = 8 << 20;

const ingestd_option_t kOwnOptions[] = {
    {"hosts", INGESTD_OPT_STRING_LIST, nullptr, INGESTD_OPT_REQUIRED, nullptr, kNoMin, kNoMax,
     "Base URLs of the cluster's nodes (\"https://es1:9200\"), used round-robin"},
    {"index", INGESTD_OPT_STRING, "ingestd-%Y.%m.%d", 0, nullptr, kNoMin, kNoMax,
     "Index name; %Y %y %m %d %H %j %G %V are taken from index_time_field in UTC"},
    {"index_time_field", INGESTD_OPT_STRING, "ts", 0, nullptr, kNoMin, kNoMax,
     "Record field with the epoch-milliseconds time for the index date; the receive time when "
     "it is missing or invalid"},
    {"pipeline", INGESTD_OPT_STRING, nullptr, 0, nullptr, kNoMin, kNoMax,
     "Ingest pipeline the documents go through (the pipeline query parameter)"},
    {"id_field", INGESTD_OPT_STRING, nullptr, 0, nullptr, kNoMin, kNoMax,
     "Record field used as the document _id; unset (or missing in a record): a 128-bit hash "
     "of the record's JSON"},
    {"compress", INGESTD_OPT_BOOL, "false", 0, nullptr, kNoMin, kNoMax,
     "Gzip the bulk request bodies (Content-Encoding: gzip)"},
    {"compression_level", INGESTD_OPT_INT, "1", 0, nullptr, 1, 9,
     "Gzip level when compress is on; 1 is fastest and keeps the worker's loop responsive"},
    {"username", INGESTD_OPT_STRING, nullptr, 0, nullptr, kNoMin, kNoMax,
     "User for HTTP basic authentication (with password)"},
    {"password", INGESTD_OPT_STRING, nullptr, kSecret, nullptr, kNoMin, kNoMax,
     "Password for HTTP basic authentication"},
    {"api_key", INGESTD_OPT_STRING, nullptr, kSecret, nullptr, kNoMin, kNoMax,
     "Elasticsearch API key, sent as 'Authorization: ApiKey VALUE' (the base64 'encoded' form "
     "of id:key)"},
    {"aws_auth", INGESTD_OPT_BOOL, "false", 0, nullptr, kNoMin, kNoMax,
     "Sign requests with AWS SigV4 (Amazon OpenSearch Service or Serverless)"},
    {"aws_service", INGESTD_OPT_ENUM, "es", 0, "es|aoss", kNoMin, kNoMax,
     "SigV4 service name: es for OpenSearch Service domains, aoss for Serverless collections"},
    {"region", INGESTD_OPT_STRING, nullptr, 0, nullptr, kNoMin, kNoMax,
     "AWS region for SigV4; default: taken from an *.REGION.es|aoss.amazonaws.com host"},
    {"ca_file", INGESTD_OPT_STRING, nullptr, 0, nullptr, kNoMin, kNoMax,
     "PEM file of CA certificates to verify the cluster with, instead of the system's"},
    {"client_cert", INGESTD_OPT_STRING, nullptr, 0, nullptr, kNoMin, kNoMax,
     "PEM client certificate for mutual TLS (with client_key)"},
    {"client_key", INGESTD_OPT_STRING, nullptr, 0, nullptr, kNoMin, kNoMax,
     "PEM private key of client_cert"},
    {"tls_verify", INGESTD_OPT_BOOL, "true", 0, nullptr, kNoMin, kNoMax,
     "Verify the cluster's certificate and host name; false only for testing"},
    {"request_timeout", INGESTD_OPT_DURATION, "60s", 0, nullptr, 1, 3600000,
     "Longest time one bulk request may take before it is retried"},
    {"host_cooldown", INGESTD_OPT_DURATION, "30s", 0, nullptr, 0, 86400000,
     "How long a host that failed (transport error, 429, 5xx) is skipped"},
    {"health_check_interval", INGESTD_OPT_DURATION, "5s", 0, nullptr, 100, 3600000,
     "How often hosts that are cooling down get GET /; an answer returns them early"},
    {"batch_max_records", INGESTD_OPT_INT, "1000", kReload, nullptr, 1, 1000000,
     "Most documents in one bulk request"},
    {"batch_max_bytes", INGESTD_OPT_SIZE, "5MiB", kReload, nullptr, 1, kSizeMax,
     "Most document bytes in one bulk request (before compression)"},
    {"flush_interval", INGESTD_OPT_DURATION, "1s", kReload, nullptr, 1, 3600000,
     "Longest time a document waits for its bulk request to fill"},
};

constexpr auto kOptions = ingestd::common::join_options(kOwnOptions, ingestd::common::kAwsOptions);

struct Output;
struct Job;

// One HTTP exchange in flight: a bulk request of a job, or a health check.
struct Call {
  Output *out = nullptr;  // nullptr once orphaned by on_destroy
  Job *job = nullptr;     // nullptr for a health check
  size_t host = 0;
  size_t begin = 0;  // range of Job::docs
  size_t end = 0;
  size_t body_bytes = 0;  // uncompressed NDJSON
  ingestd_http_call_t *handle = nullptr;
};

// One document of a job: its record and where its action line and source
// are in Job::body.
struct Doc {
  size_t record;
  size_t begin;  // first byte of {"create":{...}}\n
  size_t end;    // one past the document's closing '\n'
  size_t bytes() const { return end - begin; }
};

// One host batch being delivered.
struct Job {
  ingestd_batch_t *batch = nullptr;
  size_t prepared = 0;  // records of the batch looked at so far
  std::string body;     // NDJSON of every document, in record order
  std::string gz;       // the request in flight, compressed (compress = true)
  std::vector<Doc> docs;
  std::vector<std::pair<size_t, size_t>> pending;  // ranges of docs still to send, in order
  bool answered = false;   // some outcome is already marked (delivered, dead-lettered...)
  bool abandoned = false;  // batch_done already called by on_stop
  Call *call = nullptr;
};

struct Metrics {
  ingestd_metric_t *bulk_requests;
  ingestd_metric_t *bulk_failures;
  ingestd_metric_t *bulk_splits;
  ingestd_metric_t *bulk_bytes;
  ingestd_metric_t *bulk_seconds;
  ingestd_metric_t *items_created;
  ingestd_metric_t *items_conflict;
  ingestd_metric_t *items_retried;
  ingestd_metric_t *items_dead;
  ingestd_metric_t *host_failures;
  ingestd_metric_t *hosts_available;
};

// The instance's options, read once in on_init (read_options).
struct EsOptions {
  std::vector<std::string> hosts;
  IndexPattern index;
  std::string time_field;
  std::string id_field;
  std::string query;  // "?pipeline=..." (sorted), or ""
  bool compress = false;
  int compression_level = 1;
  std::string authorization;  // full header value, or ""
  bool aws_auth = false;
  std::string aws_service;
  std::string region;
  ingestd::common::AwsOptions aws_options;
  std::string ca_file, client_cert, client_key;
  bool insecure = false;
  uint64_t timeout_ms = 60000;
  uint64_t cooldown_ms = 30000;
  uint64_t health_interval_ms = 5000;
};

// One output instance: constructed by on_init, start() / stop() from the
// hooks of the same names, destroyed by on_destroy.
struct Output final : ingestd::common::Instance {
  Output(const ingestd_host_t *host, ingestd_instance_t *inst, EsOptions options);
  ~Output();
  int start();
  void stop();
  void flush(ingestd_batch_t *batch);

  EsOptions opt;  // not const: opt.index caches its formatted names
  ingestd_aws_t *aws = nullptr;

  std::unique_ptr<HostPool> pool;
  ingestd::es::Gzipper gzipper;
  std::vector<bool> health_in_flight;
  ingestd_timer_t *health_timer = nullptr;
  // Largest NDJSON body that may be sent; lowered to half a body that got 413.
  size_t max_body_bytes = SIZE_MAX;

  bool stopping = false;
  std::set<Job *> jobs;
  std::deque<Job *> preparing;     // jobs whose body is still being built, oldest first
  ingestd::common::Slices slices;  // runs prepare_slice
  size_t doc_bytes = 0;            // NDJSON bytes per document in the last job: sizes the next body
  // Bodies of finished jobs, kept for the next ones: freeing and allocating
  // a few hundred KiB each time costs an munmap and fresh pages.
  std::vector<std::string> spare_bodies;
  std::set<Call *> calls;
  Metrics m{};
  ingestd::common::LogLimiter refused_log{30000};
};

// ---- helpers

const char *or_null(const std::string &s) {
  return s.empty() ? nullptr : s.c_str();
}

uint64_t now_ms(Output *o) {
  return o->host->now_ms(o->inst);
}

void update_available(Output *o) {
  o->host->metric_set(o->m.hosts_available, static_cast<double>(o->pool->available(now_ms(o))));
}

void send_next(Output *o, Job *job);
bool prepare_slice(void *arg);

// Appends the action line and source of a record to job->body; false with
// *why (and nothing appended) when the record can never be indexed (it is
// dead-lettered).
bool prepare_doc(Output *o, size_t i, Job *job, std::string *why) {
  const ingestd_host_t *h = o->host;
  const ingestd_record_t *rec = h->batch_record(job->batch, i);
  size_t json_len = 0;
  const char *json = h->record_json(rec, &json_len);
  int64_t when = h->record_received_ms(rec);
  if (o->opt.index.has_date()) {
    const ingestd_value_t *v = h->record_get(rec, o->opt.time_field.c_str());
    double ms = -1;
    if (v && h->value_kind(v) == INGESTD_VALUE_NUMBER) {
      ms = h->value_number(v);
    } else if (v && h->value_kind(v) == INGESTD_VALUE_STRING) {
      size_t len;
      const char *s = h->value_string(v, &len);
      std::string text(s, len);
      char *end = nullptr;
      double parsed = std::strtod(text.c_str(), &end);
      if (!text.empty() && end == text.c_str() + text.size()) ms = parsed;
    }
    if (ingestd::es::plausible_epoch_ms(ms)) when = static_cast<int64_t>(ms);
  }
  const std::string &index = o->opt.index.format(when);

  std::string id;
  const ingestd_value_t *idv =
      o->opt.id_field.empty() ? nullptr : h->record_get(rec, o->opt.id_field.c_str());
  ingestd_value_kind_type kind = idv ? h->value_kind(idv) : INGESTD_VALUE_NULL;
  if (kind == INGESTD_VALUE_STRING) {
    size_t len;
    const char *s = h->value_string(idv, &len);
    id.assign(s, len);
  } else if (kind == INGESTD_VALUE_NUMBER) {
    size_t len;
    const char *s = h->value_number_text(idv, &len);
    id.assign(s, len);
  } else if (kind != INGESTD_VALUE_NULL) {
    *why = "id_field " + o->opt.id_field + " is not a string or a number";
    return false;
  } else {
    id = ingestd::es::content_id(std::string_view(json, json_len));
  }
  if (id.empty()) {
    *why = "id_field " + o->opt.id_field + " is empty";
    return false;
  }
  if (id.size() > ingestd::es::kMaxIdBytes) {
    *why = "id_field " + o->opt.id_field + " is longer than 512 bytes";
    return false;
  }
  size_t begin = job->body.size();
  ingestd::es::append_create(&job->body, index, id, std::string_view(json, json_len));
  job->docs.push_back({i, begin, job->body.size()});
  return true;
}

// Splits docs [0, n) into ranges whose NDJSON fits max_body_bytes.
void plan_ranges(Output *o, Job *job) {
  job->pending.clear();
  size_t start = 0, bytes = 0;
  for (size_t i = 0; i < job->docs.size(); ++i) {
    size_t sz = job->docs[i].bytes();
    if (i > start && bytes + sz > o->max_body_bytes) {
      job->pending.emplace_back(start, i);
      start = i;
      bytes = 0;
    }
    bytes += sz;
  }
  if (start < job->docs.size()) job->pending.emplace_back(start, job->docs.size());
}

void finish_job(Output *o, Job *job, ingestd_batch_status_type status) {
  o->jobs.erase(job);
  ingestd_batch_t *b = job->batch;
  if (o->spare_bodies.size() < kSpareBodies && job->body.capacity() <= kMaxSpareBodyBytes) {
    job->body.clear();
    o->spare_bodies.push_back(std::move(job->body));
  }
  delete job;
  o->host->batch_done(b, status);
}

// A whole request (range [begin, end)) failed: this range and every one not
// yet sent are retried. The host backs off before the next attempt.
void fail_job(Output *o, Job *job, size_t begin, size_t end) {
  if (!job->answered) {
    o->host->metric_add(o->m.items_retried, static_cast<double>(job->docs.size()));
    finish_job(o, job, INGESTD_BATCH_RETRY);
    return;
  }
  auto mark = [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i)
      o->host->batch_retry_record(job->batch, job->docs[i].record);
    o->host->metric_add(o->m.items_retried, static_cast<double>(e - b));
  };
  mark(begin, end);
  for (auto [b, e] : job->pending)
    mark(b, e);
  job->pending.clear();
  finish_job(o, job, INGESTD_BATCH_OK);
}

void log_refused(Output *o, const std::string &host, const std::string &what) {
  if (!o->refused_log.allow(now_ms(o))) return;
  o->host->log(o->inst, INGESTD_LOG_ERROR, "%s refused the bulk request: %s; the batch is retried",
               host.c_str(), what.c_str());
}

void host_failed(Output *o, size_t i, const std::string &what) {
  bool was_cooling = o->pool->cooling(i, now_ms(o));
  o->pool->failed(i, now_ms(o));
  o->host->metric_add(o->m.host_failures, 1);
  update_available(o);
  if (!was_cooling) {
    o->host->log(o->inst, INGESTD_LOG_WARN, "%s failed (%s); skipping it for %llums",
                 o->opt.hosts[i].c_str(), what.c_str(),
                 static_cast<unsigned long long>(o->opt.cooldown_ms));
  }
}

// Request headers shared by bulk requests and health checks. The strings
// live in `o` (or are literals) for the duration of http_request.
void auth_headers(Output *o, std::vector<ingestd_http_header_t> *h) {
  if (!o->opt.authorization.empty()) h->push_back({"Authorization", o->opt.authorization.c_str()});
}

void fill_request(Output *o, ingestd_http_request_t *req) {
  req->timeout_ms = o->opt.timeout_ms;
  if (o->opt.aws_auth) {
    req->aws = o->aws;
    req->aws_service = o->opt.aws_service.c_str();
    req->aws_region = o->opt.region.c_str();
  }
  req->ca_file = or_null(o->opt.ca_file);
  req->client_cert = or_null(o->opt.client_cert);
  req->client_key = or_null(o->opt.client_key);
  req->insecure = o->opt.insecure ? 1 : 0;
}

void on_bulk_done(void *arg, const ingestd_http_response_t *resp);

// Sends the next range of the job, or finishes it when none is left.
void send_next(Output *o, Job *job) {
  if (o->stopping) {
    fail_job(o, job, 0, 0);
    return;
  }
  if (job->pending.empty()) {
    finish_job(o, job, INGESTD_BATCH_OK);
    return;
  }
  auto [b, e] = job->pending.front();
  job->pending.erase(job->pending.begin());

  std::string_view body(job->body.data() + job->docs[b].begin,
                        job->docs[e - 1].end - job->docs[b].begin);
  std::string_view payload = body;
  std::string &gz = job->gz;
  gz.clear();
  if (o->opt.compress) {
    if (o->gzipper.compress(body, &gz)) {
      payload = gz;
    } else {
      o->host->log(o->inst, INGESTD_LOG_WARN, "gzip failed; sending the bulk body uncompressed");
    }
  }

  std::vector<ingestd_http_header_t> headers;
  headers.push_back({"Content-Type", "application/x-ndjson"});
  if (!gz.empty() && payload.data() == gz.data()) headers.push_back({"Content-Encoding", "gzip"});
  auth_headers(o, &headers);

  size_t host = o->pool->pick(now_ms(o));
  std::string url = o->opt.hosts[host] + "/_bulk" + o->opt.query;
  ingestd_http_request_t req{};
  req.struct_size = sizeof req;
  req.method = "POST";
  req.url = url.c_str();
  req.headers = headers.data();
  req.header_count = headers.size();
  req.body = payload.data();
  req.body_len = payload.size();
  req.body_lent = 1;  // the job outlives the call (on_stop cancels calls first)
  fill_request(o, &req);

  auto *call = new Call;
  call->out = o;
  call->job = job;
  call->host = host;
  call->begin = b;
  call->end = e;
  call->body_bytes = body.size();
  o->calls.insert(call);
  job->call = call;
  o->host->metric_add(o->m.bulk_requests, 1);
  o->host->metric_add(o->m.bulk_bytes, static_cast<double>(payload.size()));
  call->handle = o->host->http_request(o->inst, &req, on_bulk_done, call);
  if (!call->handle) {  // an invalid request; the host logged why
    o->calls.erase(call);
    job->call = nullptr;
    delete call;
    o->host->metric_add(o->m.bulk_failures, 1);
    fail_job(o, job, b, e);
  }
}

// Applies the items of a 2xx answer to the records of [b, e).
void apply_items(Output *o, Job *job, size_t b, size_t e, const BulkResponse &r,
                 const std::string &host) {
  const ingestd_host_t *h = o->host;
  size_t n = e - b;
  if (r.all_succeeded) {
    h->metric_add(o->m.items_created, static_cast<double>(n));
    job->answered = true;
    return;
  }
  if (r.items.size() != n) {
    h->log(o->inst, INGESTD_LOG_WARN,
           "%s answered %zu bulk items for %zu documents; the unanswered ones are retried",
           host.c_str(), r.items.size(), n);
  }
  double created = 0, conflict = 0, retried = 0, dead = 0;
  for (size_t k = 0; k < n; ++k) {
    size_t rec = job->docs[b + k].record;
    if (k >= r.items.size()) {
      h->batch_retry_record(job->batch, rec);
      ++retried;
      continue;
    }
    const BulkItem &item = r.items[k];
    switch (ingestd::es::classify_item(item)) {
      case ItemResult::Created:
        ++created;
        break;
      case ItemResult::Conflict:
        ++conflict;
        break;
      case ItemResult::Retry:
        h->batch_retry_record(job->batch, rec);
        ++retried;
        break;
      case ItemResult::DeadLetter:
        h->batch_dead_letter(job->batch, rec, ingestd::es::item_reason(item).c_str());
        ++dead;
        break;
    }
  }
  h->metric_add(o->m.items_created, created);
  h->metric_add(o->m.items_conflict, conflict);
  h->metric_add(o->m.items_retried, retried);
  h->metric_add(o->m.items_dead, dead);
  job->answered = true;
}

void on_bulk_done(void *arg, const ingestd_http_response_t *resp) {
  auto *call = static_cast<Call *>(arg);
  Output *o = call->out;
  Job *job = call->job;
  size_t b = call->begin, e = call->end, host = call->host, body_bytes = call->body_bytes;
  if (o) o->calls.erase(call);
  if (job) job->call = nullptr;
  delete call;
  if (!o || !job) return;  // orphaned by on_destroy
  if (job->abandoned) {    // on_stop already gave the batch back
    o->jobs.erase(job);
    delete job;
    return;
  }
  const ingestd_host_t *h = o->host;
  double secs = static_cast<double>(resp->elapsed_ms) / 1000.0;
  h->metric_add(o->m.bulk_seconds, secs);
  if (o->stopping || (resp->error && std::strcmp(resp->error, "cancelled") == 0)) {
    fail_job(o, job, b, e);
    return;
  }
  std::string_view body(resp->body ? resp->body : "", resp->body ? resp->body_len : 0);
  switch (ingestd::es::classify_request(resp->status, resp->error)) {
    case RequestResult::HostFailure:
      h->metric_add(o->m.bulk_failures, 1);
      host_failed(o, host,
                  resp->error ? std::string(resp->error)
                              : ingestd::es::request_error_text(resp->status, body));
      fail_job(o, job, b, e);
      return;
    case RequestResult::Refused:
      h->metric_add(o->m.bulk_failures, 1);
      log_refused(o, o->opt.hosts[host], ingestd::es::request_error_text(resp->status, body));
      fail_job(o, job, b, e);
      return;
    case RequestResult::TooLarge:
      h->metric_add(o->m.bulk_splits, 1);
      if (e - b == 1) {
        h->batch_dead_letter(job->batch, job->docs[b].record,
                             "HTTP 413: the document alone is larger than the cluster accepts "
                             "(http.max_content_length)");
        h->metric_add(o->m.items_dead, 1);
        job->answered = true;
      } else {
        size_t mid = b + (e - b) / 2;
        job->pending.insert(job->pending.begin(), {{b, mid}, {mid, e}});
        // Later batches are cut to half of what was refused, but never below
        // kMinLearnedBodyBytes: one oversized document must not shrink every
        // future request (a request above the limit is still split here).
        size_t half = std::max(body_bytes / 2, kMinLearnedBodyBytes);
        if (half < o->max_body_bytes) {
          o->max_body_bytes = half;
          h->log(o->inst, INGESTD_LOG_WARN,
                 "%s answered 413 to a %zu-byte bulk request; sending at most %zu bytes per "
                 "request from now on",
                 o->opt.hosts[host].c_str(), body_bytes, half);
        }
      }
      send_next(o, job);
      return;
    case RequestResult::Items:
      break;
  }
  if (o->pool->cooling(host, now_ms(o))) {
    o->pool->healthy(host);
    update_available(o);
  }
  BulkResponse r;
  std::string err;
  if (!ingestd::es::parse_bulk_response(body, &r, &err)) {
    h->metric_add(o->m.bulk_failures, 1);
    h->log(o->inst, INGESTD_LOG_WARN, "unreadable bulk response from %s (%s); the batch is retried",
           o->opt.hosts[host].c_str(), err.c_str());
    fail_job(o, job, b, e);
    return;
  }
  apply_items(o, job, b, e, r, o->opt.hosts[host]);
  send_next(o, job);
}

// ---- health checks

void on_health_done(void *arg, const ingestd_http_response_t *resp) {
  auto *call = static_cast<Call *>(arg);
  Output *o = call->out;
  size_t host = call->host;
  if (o) o->calls.erase(call);
  delete call;
  if (!o) return;
  o->health_in_flight[host] = false;
  if (o->stopping || resp->error) return;
  int s = resp->status;
  if (s >= 200 && s < 500 && s != 429 && s != 408 && o->pool->cooling(host, now_ms(o))) {
    o->pool->healthy(host);
    update_available(o);
    o->host->log(o->inst, INGESTD_LOG_INFO, "%s answers again (HTTP %d); back in rotation",
                 o->opt.hosts[host].c_str(), s);
  }
}

void on_health_timer(void *arg) {
  auto *o = static_cast<Output *>(arg);
  if (o->stopping) return;
  update_available(o);
  for (size_t i : o->pool->cooling_hosts(now_ms(o))) {
    if (o->health_in_flight[i]) continue;
    std::vector<ingestd_http_header_t> headers;
    auth_headers(o, &headers);
    std::string url = o->opt.hosts[i] + "/";
    ingestd_http_request_t req{};
    req.struct_size = sizeof req;
    req.method = "GET";
    req.url = url.c_str();
    req.headers = headers.data();
    req.header_count = headers.size();
    fill_request(o, &req);
    req.timeout_ms = o->opt.health_interval_ms < 10000 ? 10000 : o->opt.health_interval_ms;
    auto *call = new Call;
    call->out = o;
    call->host = i;
    o->calls.insert(call);
    call->handle = o->host->http_request(o->inst, &req, on_health_done, call);
    if (!call->handle) {
      o->calls.erase(call);
      delete call;
      continue;
    }
    o->health_in_flight[i] = true;
  }
}

// ---- lifecycle

// False with *err when the options cannot work together.
bool read_options(const ingestd_host_t *host, const ingestd_config_t *cfg, EsOptions *o,
                  std::string *err) {
  const ingestd::common::Options opts(host, cfg);
  std::vector<std::string> hosts = opts.strings("hosts");
  if (hosts.empty()) {
    *err = "hosts: at least one URL is needed";
    return false;
  }
  for (size_t i = 0; i < hosts.size(); ++i) {
    std::string url;
    if (!ingestd::es::normalize_base_url(hosts[i].c_str(), &url, err)) {
      *err = "hosts[" + std::to_string(i) + "]: " + *err;
      return false;
    }
    o->hosts.push_back(url);
  }
  if (!o->index.parse(opts.string("index"), err)) return false;
  o->time_field = opts.string("index_time_field");
  if (o->time_field.empty()) o->time_field = "ts";
  o->id_field = opts.string("id_field");
  std::vector<std::pair<std::string, std::string>> params;
  if (const char *p = opts.c_str("pipeline")) params.emplace_back("pipeline", p);
  // Only what per-item handling reads: an answer for 1,000 documents is
  // ~25 KB instead of ~200 KB to receive and check. Every item keeps its
  // status, so items still line up with documents; a server that ignores
  // the parameter sends the full answer, which reads the same.
  params.emplace_back("filter_path", ingestd::es::kBulkFilterPath);
  o->query = ingestd::es::query_string(params);
  o->compress = opts.flag("compress");
  o->compression_level = static_cast<int>(opts.integer("compression_level"));

  std::string user = opts.string("username");
  std::string pass = opts.string("password");
  std::string api_key = opts.string("api_key");
  o->aws_auth = opts.flag("aws_auth");
  int schemes = (!user.empty() || !pass.empty()) + !api_key.empty() + o->aws_auth;
  if (schemes > 1) {
    *err = "choose one authentication: username/password, api_key or aws_auth";
    return false;
  }
  if (user.empty() != pass.empty()) {
    *err = "username and password go together";
    return false;
  }
  if (!user.empty()) o->authorization = "Basic " + ingestd::es::base64(user + ":" + pass);
  if (!api_key.empty()) o->authorization = "ApiKey " + api_key;
  if (o->aws_auth) {
    if (!INGESTD_HOST_HAS(host, aws_credentials)) {
      *err =
          "aws_auth needs the host's AWS credentials service, which this ingestd does not "
          "provide";
      return false;
    }
    o->aws_service = opts.string("aws_service");
    o->region = opts.string("region");
    if (o->region.empty()) o->region = ingestd::es::region_from_url(o->hosts[0]);
    if (o->region.empty()) {
      *err = "aws_auth: set region (it cannot be read from the host name " + o->hosts[0] + ")";
      return false;
    }
    const char *aws_why = nullptr;
    if (!o->aws_options.read(opts, &aws_why)) {
      *err = aws_why;
      return false;
    }
  } else if (!opts.string("role_arn").empty()) {
    *err = "role_arn signs with SigV4: set aws_auth = true";
    return false;
  }
  o->ca_file = opts.string("ca_file");
  o->client_cert = opts.string("client_cert");
  o->client_key = opts.string("client_key");
  if (o->client_cert.empty() != o->client_key.empty()) {
    *err = "client_cert and client_key go together";
    return false;
  }
  o->insecure = !opts.flag("tls_verify");
  o->timeout_ms = opts.duration_ms("request_timeout");
  o->cooldown_ms = opts.duration_ms("host_cooldown");
  o->health_interval_ms = opts.duration_ms("health_check_interval");
  return true;
}

Output::Output(const ingestd_host_t *h, ingestd_instance_t *in, EsOptions options)
    : Instance(h, in),
      opt(std::move(options)),
      pool(std::make_unique<HostPool>(opt.hosts.size(), opt.cooldown_ms)),
      gzipper(opt.compression_level),
      health_in_flight(opt.hosts.size(), false) {
  slices.init(host, inst, prepare_slice, this);
  m.bulk_requests = host->counter(inst, "elasticsearch_bulk_requests_total", "Bulk requests sent");
  m.bulk_failures = host->counter(
      inst, "elasticsearch_bulk_failures_total",
      "Bulk requests that failed as a whole (transport error, 429, 5xx, refused) and are retried");
  m.bulk_splits = host->counter(inst, "elasticsearch_bulk_too_large_total",
                                "Bulk requests answered 413 (split in halves)");
  m.bulk_bytes = host->counter(inst, "elasticsearch_bulk_sent_bytes_total",
                               "Bytes of bulk request bodies sent (after compression)");
  m.bulk_seconds = host->counter(inst, "elasticsearch_bulk_duration_seconds_total",
                                 "Total time of bulk requests; divide by requests for the mean");
  m.items_created = host->counter(inst, "elasticsearch_items_created_total",
                                  "Documents the cluster created (2xx)");
  m.items_conflict =
      host->counter(inst, "elasticsearch_items_conflict_total",
                    "Documents answered 409 on create: already indexed, counted as delivered");
  m.items_retried = host->counter(inst, "elasticsearch_items_retried_total",
                                  "Documents sent again: item 429/5xx or a failed request");
  m.items_dead = host->counter(inst, "elasticsearch_items_dead_lettered_total",
                               "Documents written to the dead-letter file (mapping errors...)");
  m.host_failures = host->counter(inst, "elasticsearch_host_failures_total",
                                  "Requests that put a host into cool-down");
  m.hosts_available = host->gauge(inst, "elasticsearch_hosts_available",
                                  "Hosts not cooling down (summed over workers)");
  host->metric_set(m.hosts_available, static_cast<double>(opt.hosts.size()));
}

int Output::start() {
  if (opt.aws_auth) {
    ingestd_aws_config_t c = opt.aws_options.config(opt.region);
    aws = host->aws_credentials(inst, &c);
    if (!aws) {
      host->log(inst, INGESTD_LOG_ERROR, "no AWS credentials chain");
      return -1;
    }
  }
  health_timer = host->timer_start(inst, opt.health_interval_ms, opt.health_interval_ms,
                                   on_health_timer, this);
  return 0;
}

int on_init(const ingestd_host_t *host, ingestd_instance_t *inst, const ingestd_config_t *cfg,
            void **data) {
  if (!INGESTD_HOST_HAS(host, http_request) || !INGESTD_HOST_HAS(host, http_cancel)) {
    host->log(inst, INGESTD_LOG_ERROR,
              "the elasticsearch output needs the host's HTTP client service "
              "(host->http_request), which this ingestd does not provide");
    return -1;
  }
  EsOptions options;
  std::string err;
  if (!read_options(host, cfg, &options, &err)) {
    host->log(inst, INGESTD_LOG_ERROR, "%s", err.c_str());
    return -1;
  }
  *data = new Output(host, inst, std::move(options));
  return 0;
}

// Builds the next slice of the oldest job still being prepared and sends a
// job whose body is complete. True when slices remain.
bool prepare_slice(void *arg) {
  auto *o = static_cast<Output *>(arg);
  const ingestd_host_t *h = o->host;
  if (o->preparing.empty() || o->stopping) return false;
  Job *job = o->preparing.front();
  size_t n = h->batch_size(job->batch);
  size_t stop =
      ingestd::common::Slices::end(job->prepared, n, kDocsPerSlice, o->preparing.size() > 1);
  std::string why;
  for (; job->prepared < stop; ++job->prepared) {
    if (!prepare_doc(o, job->prepared, job, &why)) {
      h->batch_dead_letter(job->batch, job->prepared, why.c_str());
      h->metric_add(o->m.items_dead, 1);
      job->answered = true;
    }
  }
  if (job->prepared == n) {
    o->preparing.pop_front();
    if (!job->docs.empty()) o->doc_bytes = job->body.size() / job->docs.size();
    plan_ranges(o, job);
    send_next(o, job);  // may finish (and free) the job
  }
  return !o->preparing.empty() && !o->stopping;
}

void Output::flush(ingestd_batch_t *batch) {
  if (stopping) {
    host->batch_done(batch, INGESTD_BATCH_RETRY);
    return;
  }
  auto *job = new Job;
  job->batch = batch;
  size_t n = host->batch_size(batch);
  job->docs.reserve(n);
  // Growing a body of 200 KB and more by doubling copies it and touches
  // fresh pages on the way, in the middle of a slice.
  if (!spare_bodies.empty()) {
    job->body = std::move(spare_bodies.back());
    spare_bodies.pop_back();
  }
  if (doc_bytes) job->body.reserve(n * (doc_bytes + doc_bytes / 8));
  jobs.insert(job);
  preparing.push_back(job);
  // Not even a first slice now: on_flush runs inside the request that filled
  // the batch, and the requests that came with it would wait for the slice.
  slices.schedule();
}

void Output::stop() {
  stopping = true;
  if (health_timer) {
    host->timer_stop(health_timer);
    health_timer = nullptr;
  }
  preparing.clear();  // abandoned below with the other jobs
  // A cancelled call's callback may run inside http_cancel (and free it) or
  // later: look each one up again before touching it.
  std::vector<Call *> open(calls.begin(), calls.end());
  for (Call *c : open) {
    if (calls.count(c)) host->http_cancel(c->handle);
  }
  // Batches whose callback has not run yet go back to the host now: after
  // on_stop the host no longer accepts batch_done for them.
  for (Job *job : jobs) {
    if (job->abandoned) continue;
    job->abandoned = true;
    host->batch_done(job->batch, INGESTD_BATCH_RETRY);
  }
}

Output::~Output() {
  if (!stopping) stop();
  // Callbacks still owed by the host find their call orphaned.
  for (Call *c : calls) {
    c->out = nullptr;
    c->job = nullptr;
  }
  for (Job *job : jobs)
    delete job;
}

using Hooks = ingestd::common::OutputHooks<Output>;

}  // namespace

extern "C" INGESTD_EXPORT const ingestd_plugin_t ingestd_plugin_v1 = {
    INGESTD_ABI_MAJOR,
    INGESTD_ABI_MINOR,
    sizeof(ingestd_plugin_t),
    "elasticsearch",
    INGESTD_KIND_OUTPUT,
    "Documents through the _bulk API of Elasticsearch 7/8 and OpenSearch 1/2 (basic, API key or "
    "SigV4 auth), with per-item retries and dead letters",
    "1.0.0",
    kOptions.data(),
    kOptions.size(),
    on_init,
    Hooks::on_start,
    Hooks::on_stop,
    Hooks::on_destroy,
    nullptr,
    nullptr,
    Hooks::on_flush,
};
