// out_firehose: Amazon Data Firehose PutRecordBatch over the host's HTTP
// client, signed with SigV4 from the host's AWS credentials chain. A host
// batch becomes one or more calls (500 records / 4 MiB each); with aggregate
// many NDJSON lines share one Firehose record. Calls are paced by token
// buckets (calls/s, records/s, bytes/s, per worker) and classified by AWS
// error code. README.md in this folder explains the cost effect.
#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "common/aws_options.h"
#include "common/backoff.h"
#include "common/log_limiter.h"
#include "common/options.h"
#include "common/output.h"
#include "common/slices.h"
#include "common/token_bucket.h"
#include "firehose_pack.h"
#include "firehose_protocol.h"
#include "ingestd/plugin.h"

namespace {

using namespace ingestd::firehose;

constexpr uint32_t kRequired = INGESTD_OPT_REQUIRED;
constexpr uint32_t kSecret = INGESTD_OPT_SECRET;
constexpr double kNoMin = 1, kNoMax = 0;
// Records serialised per loop turn while a batch is prepared (~20 µs).
constexpr size_t kRecordsPerSlice = 64;

const ingestd_option_t kOwnOptions[] = {
    {"region", INGESTD_OPT_STRING, nullptr, kRequired, nullptr, kNoMin, kNoMax,
     "AWS region of the delivery stream (SigV4 scope and default endpoint), e.g. "
     "\"ap-northeast-2\""},
    {"stream", INGESTD_OPT_STRING, nullptr, kRequired, nullptr, kNoMin, kNoMax,
     "Delivery stream name ([a-zA-Z0-9_.-], 1 to 64 characters)"},
    {"endpoint", INGESTD_OPT_STRING, nullptr, 0, nullptr, kNoMin, kNoMax,
     "Base URL instead of https://firehose.REGION.amazonaws.com (VPC endpoint, FIPS, tests)"},
    {"aggregate", INGESTD_OPT_BOOL, "false", 0, nullptr, kNoMin, kNoMax,
     "Pack many newline-delimited records into one Firehose record up to record_max_bytes: S3 "
     "gets the same NDJSON for far fewer billed 5 KB units (see FIREHOSE COSTS)"},
    {"record_max_bytes", INGESTD_OPT_SIZE, "1000KiB", 0, nullptr, 1, 1024000,
     "Largest Firehose record that aggregate packs (at most 1000KiB, the service limit)"},
    {"append_newline", INGESTD_OPT_BOOL, "true", 0, nullptr, kNoMin, kNoMax,
     "End each record's data with \"\\n\" (required with aggregate)"},
    {"calls_per_second", INGESTD_OPT_DOUBLE, "1000", 0, nullptr, 0, 1e9,
     "PutRecordBatch calls per second per worker (token bucket, 1 s burst); 0: unlimited"},
    {"records_per_second", INGESTD_OPT_DOUBLE, "100000", 0, nullptr, 0, 1e12,
     "Firehose records per second per worker (after packing); 0: unlimited"},
    {"bytes_per_second", INGESTD_OPT_SIZE, "1MiB", 0, nullptr, 0, 1e15,
     "Record data bytes per second per worker; 0: unlimited"},
    {"max_calls_inflight", INGESTD_OPT_INT, "4", 0, nullptr, 1, 256,
     "PutRecordBatch calls in flight at the same time per worker"},
    {"partial_retries", INGESTD_OPT_INT, "3", 0, nullptr, 0, 100,
     "Times the failed records of a call are resent by the output (after a growing pause) "
     "before they go back to the queue"},
    {"request_timeout", INGESTD_OPT_DURATION, "30s", 0, nullptr, 1, 3600000,
     "Longest time one PutRecordBatch call may take; then it is retried"},
    {"ca_file", INGESTD_OPT_STRING, nullptr, 0, nullptr, kNoMin, kNoMax,
     "CA bundle to verify the endpoint's certificate; default: the system's"},
    {"tls_verify", INGESTD_OPT_BOOL, "true", 0, nullptr, kNoMin, kNoMax,
     "Verify the endpoint's TLS certificate (turn off only for tests)"},
    // Core rows with Firehose defaults: a host batch may become several calls.
    {"batch_max_records", INGESTD_OPT_INT, "20000", 0, nullptr, kNoMin, kNoMax,
     "Most records per host batch; firehose default 20000 (split into calls of 500 records or 4 "
     "MiB)"},
};

constexpr auto kOptions = ingestd::common::join_options(kOwnOptions, ingestd::common::kAwsOptions);

struct FirehoseOutput;
struct Job;

enum ItemState : uint8_t { kPending = 0, kDelivered = 1, kRetry = 2, kDead = 3 };

// One host batch being delivered.
struct Job {
  ingestd_batch_t *batch = nullptr;
  size_t prepared = 0;        // records whose JSON was taken so far
  std::vector<Piece> pieces;  // each record's JSON, borrowed until batch_done
  std::vector<size_t> sizes;  // data bytes: JSON plus newline
  std::vector<uint8_t> state;
  size_t calls_outstanding = 0;  // queued + in flight
  bool aborted = false;          // a whole call failed: nothing more is sent
};

// One PutRecordBatch call, queued or in flight.
struct Call {
  FirehoseOutput *out = nullptr;  // nullptr: the instance is gone (detached)
  Job *job = nullptr;
  PlannedCall plan;
  uint32_t attempt = 0;  // resends of these records by this output so far
  uint64_t not_before_ms = 0;
  ingestd_http_call_t *handle = nullptr;
  // The PutRecordBatch request, lent to the host (body_lent) until the
  // callback: up to 4 MiB that is not copied.
  std::string body;
};

struct Metrics {
  ingestd_metric_t *calls, *records, *put_records, *billed_units, *bytes, *resent;
  ingestd_metric_t *failed_unavailable, *failed_internal, *failed_other;
  ingestd_metric_t *err_throttled, *err_transient, *err_transport, *err_auth, *err_config;
  ingestd_metric_t *throttle_waits, *dead_lettered, *inflight;
};

// The instance's options, read once in on_init (read_options).
struct FirehoseOptions {
  std::string region, stream, url;
  ingestd::common::AwsOptions aws_options;
  std::string ca_file;
  bool tls_verify = true;
  PackLimits limits;
  bool newline = true;
  double calls_rate = 0, records_rate = 0, bytes_rate = 0;
  size_t max_inflight = 4;
  uint32_t partial_retries = 3;
  uint64_t timeout_ms = 30000;
  uint64_t retry_initial_ms = 100, retry_max_ms = 30000;
};

// One output instance: constructed by on_init, start() / stop() from the
// hooks of the same names, destroyed by on_destroy.
struct FirehoseOutput final : ingestd::common::Instance {
  FirehoseOutput(const ingestd_host_t *host, ingestd_instance_t *inst, FirehoseOptions options);
  ~FirehoseOutput();
  int start();
  void stop();

  const FirehoseOptions opt;

  ingestd_aws_t *aws = nullptr;
  ingestd::common::TokenBucket calls_bucket, records_bucket, bytes_bucket;
  uint64_t paused_until_ms = 0;
  // The own pause after whole-call failures (capped exponential, full
  // jitter: the workers that failed together resume apart); its generator
  // also spaces the resends of failed records.
  ingestd::common::Retry pause;
  ingestd_timer_t *timer = nullptr;
  uint64_t timer_due_ms = 0;  // 0: not armed
  bool stopping = false;
  bool pumping = false;

  std::deque<Call *> ready;
  std::unordered_set<Call *> inflight;
  std::unordered_set<Job *> jobs;
  // Jobs whose records are still being serialised, oldest first: a slice
  // per loop turn (call_soon), as a 500-record batch would hold every request
  // arriving meanwhile for ~0.2 ms.
  std::deque<Job *> preparing;
  ingestd::common::Slices slices;  // runs prepare_slice
  Metrics m{};

  // Rate-limited logging: one line per class a minute at most.
  std::array<ingestd::common::LogLimiter, 4> log_limits{};

  void flush(ingestd_batch_t *b);
  bool prepare_slice();
  void pump();
  void send(Call *c);
  void done(Call *c, const ingestd_http_response_t *resp);
  void call_failed(Call *c, ErrorClass cls, const std::string &what);
  void records_failed(Call *c, const std::vector<uint32_t> &items);
  void enqueue_plan(Job *job, Plan &&plan, uint32_t attempt, uint64_t not_before);
  void finish_call(Call *c);
  void finish_job(Job *job);
  void abort_queued(Job *job);
  void schedule(uint64_t at_ms);
  void pause_sending();
  void log_limited(int slot, ingestd_log_level_type level, const std::string &msg);
};

void on_timer(void *arg) {
  auto *o = static_cast<FirehoseOutput *>(arg);
  o->timer_due_ms = 0;
  o->pump();
}

void on_http_done(void *arg, const ingestd_http_response_t *resp) {
  auto *c = static_cast<Call *>(arg);
  FirehoseOutput *o = c->out;
  if (!o) {  // the instance was destroyed first: nothing left to report to
    delete c;
    return;
  }
  o->inflight.erase(c);
  o->host->metric_set(o->m.inflight, static_cast<double>(o->inflight.size()));
  o->done(c, resp);
  o->pump();
}

void FirehoseOutput::log_limited(int slot, ingestd_log_level_type level, const std::string &msg) {
  ingestd::common::LogLimiter &limit = log_limits[static_cast<size_t>(slot)];
  if (!limit.allow(host->now_ms(inst))) return;
  if (limit.skipped() > 0) {
    host->log(inst, level, "%s (%llu more like it in the last minute)", msg.c_str(),
              static_cast<unsigned long long>(limit.skipped()));
  } else {
    host->log(inst, level, "%s", msg.c_str());
  }
}

void FirehoseOutput::schedule(uint64_t at_ms) {
  uint64_t now = host->now_ms(inst);
  if (timer_due_ms != 0 && timer_due_ms <= at_ms) return;
  uint64_t delay = at_ms > now ? at_ms - now : 0;
  if (!timer) {
    timer = host->timer_start(inst, delay, 0, on_timer, this);
  } else {
    host->timer_restart(timer, delay, 0);
  }
  timer_due_ms = now + delay;
  if (timer_due_ms == 0) timer_due_ms = 1;
}

void FirehoseOutput::pause_sending() {
  uint64_t now = host->now_ms(inst);
  paused_until_ms = std::max(paused_until_ms, now + pause.failed());
  calls_bucket.drain(now);
  records_bucket.drain(now);
  bytes_bucket.drain(now);
}

void FirehoseOutput::enqueue_plan(Job *job, Plan &&plan, uint32_t attempt, uint64_t not_before) {
  for (uint32_t i : plan.too_large) {
    char why[128];
    std::snprintf(why, sizeof why, "record of %zu bytes exceeds the Firehose limit of %zu bytes",
                  job->sizes[i], opt.limits.hard_record_max);
    host->batch_dead_letter(job->batch, i, why);
    host->metric_add(m.dead_lettered, 1);
    job->state[i] = kDead;
  }
  for (PlannedCall &p : plan.calls) {
    auto *c = new Call;
    c->out = this;
    c->job = job;
    c->plan = std::move(p);
    c->attempt = attempt;
    c->not_before_ms = not_before;
    ready.push_back(c);
    ++job->calls_outstanding;
  }
}

void FirehoseOutput::flush(ingestd_batch_t *b) {
  if (stopping) {
    host->batch_done(b, INGESTD_BATCH_RETRY);
    return;
  }
  auto *job = new Job;
  job->batch = b;
  size_t n = host->batch_size(b);
  job->pieces.resize(n);
  job->sizes.resize(n);
  job->state.assign(n, kPending);
  jobs.insert(job);
  preparing.push_back(job);
  // Not even a first slice now: flush runs inside the request that filled
  // the batch.
  slices.schedule();
}

bool FirehoseOutput::prepare_slice() {
  if (preparing.empty() || stopping) return false;
  Job *job = preparing.front();
  size_t n = job->pieces.size();
  size_t stop =
      ingestd::common::Slices::end(job->prepared, n, kRecordsPerSlice, preparing.size() > 1);
  for (; job->prepared < stop; ++job->prepared) {
    size_t i = job->prepared, len = 0;
    const char *json = host->record_json(host->batch_record(job->batch, i), &len);
    job->pieces[i] = Piece{json, len};
    job->sizes[i] = len + (opt.newline ? 1 : 0);
  }
  if (job->prepared == n) {
    preparing.pop_front();
    std::vector<uint32_t> all(n);
    for (size_t i = 0; i < n; ++i)
      all[i] = static_cast<uint32_t>(i);
    enqueue_plan(job, plan_calls(all, job->sizes, opt.limits), 0, 0);
    if (job->calls_outstanding == 0) {
      finish_job(job);
    } else {
      pump();
    }
  }
  return !preparing.empty() && !stopping;
}

void FirehoseOutput::pump() {
  if (stopping || pumping) return;
  pumping = true;
  while (inflight.size() < opt.max_inflight && !ready.empty()) {
    uint64_t now = host->now_ms(inst);
    if (now < paused_until_ms) {
      schedule(paused_until_ms);
      break;
    }
    // The oldest call that may go now (resends wait for their pause).
    auto it = std::find_if(ready.begin(), ready.end(),
                           [now](const Call *c) { return c->not_before_ms <= now; });
    if (it == ready.end()) {
      uint64_t soonest = UINT64_MAX;
      for (const Call *c : ready)
        soonest = std::min(soonest, c->not_before_ms);
      schedule(soonest);
      break;
    }
    Call *c = *it;
    double recs = static_cast<double>(c->plan.records.size());
    double bytes = static_cast<double>(c->plan.bytes);
    uint64_t wait = std::max({calls_bucket.wait_ms(1, now), records_bucket.wait_ms(recs, now),
                              bytes_bucket.wait_ms(bytes, now)});
    if (wait > 0) {
      host->metric_add(m.throttle_waits, 1);
      schedule(now + wait);
      break;
    }
    calls_bucket.take(1, now);
    records_bucket.take(recs, now);
    bytes_bucket.take(bytes, now);
    ready.erase(it);
    send(c);
  }
  pumping = false;
}

void FirehoseOutput::send(Call *c) {
  std::vector<std::vector<Piece>> records(c->plan.records.size());
  for (size_t k = 0; k < records.size(); ++k) {
    records[k].reserve(c->plan.records[k].items.size());
    for (uint32_t i : c->plan.records[k].items)
      records[k].push_back(c->job->pieces[i]);
  }
  std::string &body = c->body;
  body.clear();
  build_put_record_batch(opt.stream, records, opt.newline, &body);

  const ingestd_http_header_t headers[] = {
      {"Content-Type", kContentType},
      {"X-Amz-Target", kTarget},
  };
  ingestd_http_request_t req{};
  req.struct_size = sizeof req;
  req.method = "POST";
  req.url = opt.url.c_str();
  req.headers = headers;
  req.header_count = sizeof headers / sizeof headers[0];
  req.body = body.data();
  req.body_len = body.size();
  req.body_lent = 1;
  req.timeout_ms = opt.timeout_ms;
  req.aws = aws;
  req.aws_service = "firehose";
  req.aws_region = opt.region.c_str();
  req.ca_file = opt.ca_file.empty() ? nullptr : opt.ca_file.c_str();
  req.insecure = opt.tls_verify ? 0 : 1;

  host->metric_add(m.calls, 1);
  c->handle = host->http_request(inst, &req, on_http_done, c);
  if (!c->handle) {  // an invalid request (logged by the host): no callback follows
    call_failed(c, ErrorClass::kConfig, "the HTTP client refused the request");
    finish_call(c);
    return;
  }
  inflight.insert(c);
  host->metric_set(m.inflight, static_cast<double>(inflight.size()));
}

void FirehoseOutput::done(Call *c, const ingestd_http_response_t *resp) {
  if (resp->error != nullptr || resp->status == 0) {
    const char *err = resp->error ? resp->error : "no response";
    if (std::strcmp(err, "cancelled") != 0) {
      host->metric_add(m.err_transport, 1);
      bool creds = std::strncmp(err, "credentials", 11) == 0;
      log_limited(creds ? 2 : 1, INGESTD_LOG_WARN,
                  "stream " + opt.stream + ": " + (creds ? "" : "transport error: ") + err +
                      "; the records are retried with backoff");
      call_failed(c, creds ? ErrorClass::kAuth : ErrorClass::kTransient, err);
    } else {
      call_failed(c, ErrorClass::kTransient, err);
    }
    finish_call(c);
    return;
  }

  if (resp->status >= 200 && resp->status < 300) {
    PutResult r;
    if (parse_put_result(std::string_view(resp->body ? resp->body : "", resp->body_len), &r)) {
      pause.succeeded();  // the service answered: the own pause starts small again
      std::vector<uint32_t> failed;
      uint64_t recs = 0, put = 0, units = 0, bytes = 0;
      for (size_t k = 0; k < c->plan.records.size(); ++k) {
        const PackedRecord &pr = c->plan.records[k];
        const std::string *code = k < r.codes.size() ? &r.codes[k] : nullptr;
        if (code && code->empty()) {
          for (uint32_t i : pr.items)
            c->job->state[i] = kDelivered;
          recs += pr.items.size();
          ++put;
          units += billed_units(pr.bytes);
          bytes += pr.bytes;
          continue;
        }
        // Failed (or missing from the answer): exactly these records again.
        if (code && *code == "ServiceUnavailableException") {
          host->metric_add(m.failed_unavailable, 1);
        } else if (code && *code == "InternalFailure") {
          host->metric_add(m.failed_internal, 1);
        } else {
          host->metric_add(m.failed_other, 1);
        }
        failed.insert(failed.end(), pr.items.begin(), pr.items.end());
      }
      host->metric_add(m.records, static_cast<double>(recs));
      host->metric_add(m.put_records, static_cast<double>(put));
      host->metric_add(m.billed_units, static_cast<double>(units));
      host->metric_add(m.bytes, static_cast<double>(bytes));
      if (!failed.empty()) records_failed(c, failed);
      finish_call(c);
      return;
    }
    // A 2xx we cannot read: the records may or may not be in; resending them
    // risks a duplicate, never a loss.
    host->metric_add(m.err_transient, 1);
    log_limited(1, INGESTD_LOG_WARN,
                "stream " + opt.stream + ": unreadable PutRecordBatch answer (HTTP " +
                    std::to_string(resp->status) + "); the records are sent again");
    call_failed(c, ErrorClass::kTransient, "unreadable answer");
    finish_call(c);
    return;
  }

  std::string header;
  for (size_t i = 0; i < resp->header_count; ++i) {
    if (std::strcmp(resp->headers[i].name, "x-amzn-errortype") == 0)
      header = resp->headers[i].value;
  }
  std::string message;
  std::string code =
      error_code(std::string_view(resp->body ? resp->body : "", resp->body_len), header, &message);
  ErrorClass cls = classify_error(code, resp->status);
  std::string what = "HTTP " + std::to_string(resp->status) + " " +
                     (code.empty() ? std::string("(no error code)") : code) +
                     (message.empty() ? "" : ": " + message);
  switch (cls) {
    case ErrorClass::kThrottle:
      host->metric_add(m.err_throttled, 1);
      log_limited(
          0, INGESTD_LOG_WARN,
          "stream " + opt.stream + ": " + what + "; slowing down and retrying with backoff");
      break;
    case ErrorClass::kTransient:
      host->metric_add(m.err_transient, 1);
      log_limited(1, INGESTD_LOG_WARN,
                  "stream " + opt.stream + ": " + what + "; the records are retried with backoff");
      break;
    case ErrorClass::kAuth:
      host->metric_add(m.err_auth, 1);
      log_limited(2, INGESTD_LOG_ERROR,
                  "stream " + opt.stream + ": credentials rejected: " + what +
                      "; data stays queued and is retried with backoff until this is fixed");
      break;
    case ErrorClass::kConfig:
      host->metric_add(m.err_config, 1);
      log_limited(3, INGESTD_LOG_ERROR,
                  "stream " + opt.stream + ": request refused: " + what +
                      "; data stays queued and is retried with backoff until this is fixed");
      break;
  }
  call_failed(c, cls, what);
  finish_call(c);
}

// The whole call failed: its records and the rest of its job go back to the
// host queue (whose backoff spaces the retries); our own pacing pauses too,
// so other queued calls do not hammer a struggling or refusing service.
void FirehoseOutput::call_failed(Call *c, ErrorClass, const std::string &) {
  for (const PackedRecord &pr : c->plan.records)
    for (uint32_t i : pr.items)
      c->job->state[i] = kRetry;
  if (!stopping) pause_sending();
  abort_queued(c->job);
}

// Some records of an answered call failed: resend exactly those, a few times
// with a growing pause, then hand them to the host queue.
void FirehoseOutput::records_failed(Call *c, const std::vector<uint32_t> &items) {
  Job *job = c->job;
  if (stopping || job->aborted || c->attempt >= opt.partial_retries) {
    for (uint32_t i : items)
      job->state[i] = kRetry;
    return;
  }
  host->metric_add(m.resent, static_cast<double>(items.size()));
  uint64_t delay = pause.backoff().next_delay_ms(c->attempt + 1, pause.rng());
  enqueue_plan(job, plan_calls(items, job->sizes, opt.limits), c->attempt + 1,
               host->now_ms(inst) + delay);
}

void FirehoseOutput::abort_queued(Job *job) {
  job->aborted = true;
  for (auto it = ready.begin(); it != ready.end();) {
    Call *q = *it;
    if (q->job != job) {
      ++it;
      continue;
    }
    for (const PackedRecord &pr : q->plan.records)
      for (uint32_t i : pr.items)
        job->state[i] = kRetry;
    it = ready.erase(it);
    --job->calls_outstanding;
    delete q;
  }
}

void FirehoseOutput::finish_call(Call *c) {
  Job *job = c->job;
  delete c;
  if (--job->calls_outstanding == 0) finish_job(job);
}

void FirehoseOutput::finish_job(Job *job) {
  jobs.erase(job);
  bool any_done = false;
  for (uint8_t s : job->state) {
    if (s == kDelivered || s == kDead) any_done = true;
  }
  if (!any_done && !job->state.empty()) {
    host->batch_done(job->batch, INGESTD_BATCH_RETRY);
  } else {
    for (size_t i = 0; i < job->state.size(); ++i) {
      // kPending cannot remain here; treat it as a retry, never as delivered.
      if (job->state[i] == kRetry || job->state[i] == kPending)
        host->batch_retry_record(job->batch, i);
    }
    host->batch_done(job->batch, INGESTD_BATCH_OK);
  }
  delete job;
}

// ---- lifecycle ---------------------------------------------------------------

// False with *err when the options cannot work together.
bool read_options(const ingestd_host_t *host, const ingestd_config_t *cfg, FirehoseOptions *o,
                  std::string *err) {
  const ingestd::common::Options opts(host, cfg);
  o->region = opts.string("region");
  o->stream = opts.string("stream");
  if (o->region.empty()) {
    *err = "region must not be empty";
    return false;
  }
  if (!valid_stream_name(o->stream)) {
    *err = "stream \"" + o->stream + "\": a delivery stream name is 1 to 64 of [a-zA-Z0-9_.-]";
    return false;
  }
  o->url = opts.string("endpoint");
  if (o->url.empty()) {
    o->url = "https://firehose." + o->region + ".amazonaws.com" +
             (o->region.rfind("cn-", 0) == 0 ? ".cn" : "") + "/";
  } else if (o->url.rfind("http://", 0) != 0 && o->url.rfind("https://", 0) != 0) {
    *err = "endpoint \"" + o->url + "\": give an http:// or https:// URL";
    return false;
  } else if (o->url.find('/', o->url.find("://") + 3) == std::string::npos) {
    o->url += "/";  // PutRecordBatch is POST /
  }
  o->limits.aggregate = opts.flag("aggregate");
  o->limits.record_max_bytes = static_cast<size_t>(opts.size("record_max_bytes"));
  o->newline = opts.flag("append_newline");
  if (o->limits.aggregate && !o->newline) {
    *err = "aggregate needs append_newline = true: packed records are separated by newlines";
    return false;
  }
  o->calls_rate = opts.number("calls_per_second");
  o->records_rate = opts.number("records_per_second");
  o->bytes_rate = static_cast<double>(opts.size("bytes_per_second"));
  o->max_inflight = static_cast<size_t>(opts.integer("max_calls_inflight"));
  o->partial_retries = static_cast<uint32_t>(opts.integer("partial_retries"));
  o->timeout_ms = opts.duration_ms("request_timeout");
  o->retry_initial_ms = opts.retry_initial_ms();
  o->retry_max_ms = opts.retry_max_ms();
  const char *aws_why = nullptr;
  if (!o->aws_options.read(opts, &aws_why)) {
    *err = aws_why;
    return false;
  }
  o->ca_file = opts.string("ca_file");
  o->tls_verify = opts.flag("tls_verify");
  return true;
}

FirehoseOutput::FirehoseOutput(const ingestd_host_t *h, ingestd_instance_t *in,
                               FirehoseOptions options)
    : Instance(h, in),
      opt(std::move(options)),
      // Seeded apart per instance, so the workers' outputs pause and resend apart.
      pause(ingestd::common::Backoff(opt.retry_initial_ms, opt.retry_max_ms),
            h->now_ms(in) ^ reinterpret_cast<uintptr_t>(this)) {
  slices.init(
      host, inst, [](void *arg) { return static_cast<FirehoseOutput *>(arg)->prepare_slice(); },
      this);
  m.calls = host->counter(inst, "firehose_calls_total", "PutRecordBatch calls sent");
  m.records = host->counter(inst, "firehose_records_total", "Records delivered to Firehose");
  m.put_records = host->counter(inst, "firehose_put_records_total",
                                "Firehose records accepted (after aggregate packing)");
  m.billed_units = host->counter(inst, "firehose_billed_units_total",
                                 "Billed 5 KB units of the accepted Firehose records");
  m.bytes = host->counter(inst, "firehose_bytes_total", "Record data bytes accepted");
  m.resent = host->counter(inst, "firehose_records_resent_total",
                           "Records resent by the output after a per-record failure");
  m.failed_unavailable =
      host->counter(inst, "firehose_failed_records_service_unavailable_total",
                    "Firehose records refused with ServiceUnavailableException (Slow down.)");
  m.failed_internal = host->counter(inst, "firehose_failed_records_internal_failure_total",
                                    "Firehose records refused with InternalFailure");
  m.failed_other = host->counter(inst, "firehose_failed_records_other_total",
                                 "Firehose records refused with another or no error code");
  m.err_throttled = host->counter(inst, "firehose_call_errors_throttled_total",
                                  "Whole calls refused with ServiceUnavailable or throttling");
  m.err_transient = host->counter(inst, "firehose_call_errors_transient_total",
                                  "Whole calls failed with InternalFailure or another 5xx");
  m.err_transport = host->counter(inst, "firehose_call_errors_transport_total",
                                  "Calls without an answer (connection, timeout, credentials)");
  m.err_auth = host->counter(inst, "firehose_call_errors_auth_total",
                             "Calls refused for their signature or credentials");
  m.err_config = host->counter(inst, "firehose_call_errors_config_total",
                               "Calls refused as invalid (stream not found, bad request)");
  m.throttle_waits = host->counter(inst, "firehose_throttle_waits_total",
                                   "Times the rate limits held a call back");
  m.dead_lettered = host->counter(inst, "firehose_records_too_large_total",
                                  "Records dead-lettered as larger than 1,000 KiB");
  m.inflight = host->gauge(inst, "firehose_calls_inflight", "PutRecordBatch calls in flight");
}

int FirehoseOutput::start() {
  ingestd_aws_config_t ac = opt.aws_options.config(opt.region);
  aws = host->aws_credentials(inst, &ac);
  if (!aws) {
    host->log(inst, INGESTD_LOG_ERROR, "the host gave no AWS credentials chain");
    return -1;
  }
  uint64_t now = host->now_ms(inst);
  // One second's worth of burst each.
  calls_bucket = ingestd::common::TokenBucket(opt.calls_rate, opt.calls_rate, now);
  records_bucket = ingestd::common::TokenBucket(opt.records_rate, opt.records_rate, now);
  bytes_bucket = ingestd::common::TokenBucket(opt.bytes_rate, opt.bytes_rate, now);
  const std::string &role = opt.aws_options.role_arn;
  host->log(inst, INGESTD_LOG_INFO, "stream %s in %s via %s, aggregate %s%s%s", opt.stream.c_str(),
            opt.region.c_str(), opt.url.c_str(), opt.limits.aggregate ? "on" : "off",
            role.empty() ? "" : ", as role ", role.c_str());
  return 0;
}

// Queued calls go back to the host at once; calls in flight complete through
// the host (which cancels them as the instance stops: their records are
// retried, or kept on disk, like any failed call).
void FirehoseOutput::stop() {
  stopping = true;
  if (timer) {
    host->timer_stop(timer);
    timer = nullptr;
    timer_due_ms = 0;
  }
  preparing.clear();  // their jobs have no calls: given back below
  std::vector<Job *> open(jobs.begin(), jobs.end());
  for (Job *job : open) {
    abort_queued(job);
    if (job->calls_outstanding == 0) finish_job(job);
  }
}

FirehoseOutput::~FirehoseOutput() {
  if (timer) host->timer_stop(timer);
  for (Call *c : ready)
    delete c;
  // The host completes every call before destroy; should one still be out,
  // its callback must find nothing of ours.
  for (Call *c : inflight)
    c->out = nullptr;
  for (Job *job : jobs)
    delete job;
}

int on_init(const ingestd_host_t *host, ingestd_instance_t *inst, const ingestd_config_t *cfg,
            void **data) {
  FirehoseOptions options;
  std::string err;
  if (!read_options(host, cfg, &options, &err)) {
    host->log(inst, INGESTD_LOG_ERROR, "%s", err.c_str());
    return -1;
  }
  if (!INGESTD_HOST_HAS(host, http_request) || !INGESTD_HOST_HAS(host, aws_credentials)) {
    host->log(inst, INGESTD_LOG_ERROR,
              "this ingestd has no HTTP client / AWS credentials service (host ABI %u.%u): the "
              "firehose output cannot run; use an ingestd built with core/httpclient",
              host->abi_major, host->abi_minor);
    return -1;
  }
  *data = new FirehoseOutput(host, inst, std::move(options));
  return 0;
}

using Hooks = ingestd::common::OutputHooks<FirehoseOutput>;

}  // namespace

extern "C" INGESTD_EXPORT const ingestd_plugin_t ingestd_plugin_v1 = {
    INGESTD_ABI_MAJOR,
    INGESTD_ABI_MINOR,
    sizeof(ingestd_plugin_t),
    "firehose",
    INGESTD_KIND_OUTPUT,
    "Amazon Data Firehose PutRecordBatch with SigV4, packing and rate shaping",
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
