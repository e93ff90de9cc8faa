// The firehose output's state machine against a fake host: calls per batch,
// exact per-record retries (also through packing), whole-call failures,
// pacing by token buckets, dead letters, stop. No network, no libuv: the
// test answers each HTTP call and fires timers by hand.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdarg>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "firehose_protocol.h"
#include "ingestd/plugin.h"

extern "C" const ingestd_plugin_t ingestd_plugin_v1;

namespace ingestd::firehose {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

struct Fake;
struct FakeTimer {
  Fake *fake = nullptr;
  uint64_t due = 0;
  bool armed = false;
  ingestd_timer_cb cb = nullptr;
  void *arg = nullptr;
};

struct FakeBatch {
  std::vector<std::string> json;
  std::set<size_t> retry;
  std::map<size_t, std::string> dead;
  int status = -1;
  int done_calls = 0;
};

struct FakeCall {
  std::string url, body, target;
  bool signed_firehose = false;
  ingestd_http_done_cb cb = nullptr;
  void *arg = nullptr;
  bool answered = false;
  std::vector<std::string> records;  // decoded Data
};

struct Fake {
  std::map<std::string, std::string> opts;
  uint64_t now = 1000;
  std::vector<std::string> logs;
  std::vector<std::unique_ptr<FakeTimer>> timers;
  std::map<std::string, double> metrics;
  std::vector<std::unique_ptr<FakeCall>> calls;
  bool no_http = false;
};

Fake *F(const void *p) {
  return const_cast<Fake *>(static_cast<const Fake *>(p));
}

std::string unbase64(const std::string &s) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
  };
  std::string out;
  int bits = 0, acc = 0;
  for (char c : s) {
    int v = val(c);
    if (v < 0) break;
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return out;
}

void fake_log(ingestd_instance_t *inst, ingestd_log_level_type, const char *fmt, ...) {
  char buf[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  F(inst)->logs.emplace_back(buf);
}

ingestd_host_t make_host() {
  ingestd_host_t h{};
  h.struct_size = sizeof h;
  h.abi_major = INGESTD_ABI_MAJOR;
  h.abi_minor = INGESTD_ABI_MINOR;
  h.has_option = [](const ingestd_config_t *c, const char *n) {
    return F(c)->opts.count(n) ? 1 : 0;
  };
  h.option_string = [](const ingestd_config_t *c, const char *n) -> const char * {
    auto it = F(c)->opts.find(n);
    return it == F(c)->opts.end() ? nullptr : it->second.c_str();
  };
  h.option_int = [](const ingestd_config_t *c, const char *n) -> int64_t {
    return std::stoll(F(c)->opts.at(n));
  };
  h.option_size = [](const ingestd_config_t *c, const char *n) -> uint64_t {
    return std::stoull(F(c)->opts.at(n));
  };
  h.option_double = [](const ingestd_config_t *c, const char *n) -> double {
    return std::stod(F(c)->opts.at(n));
  };
  h.option_bool = [](const ingestd_config_t *c, const char *n) -> int {
    return F(c)->opts.at(n) == "true";
  };
  h.log = fake_log;
  h.timer_start = [](ingestd_instance_t *inst, uint64_t t, uint64_t, ingestd_timer_cb cb,
                     void *arg) {
    auto tm = std::make_unique<FakeTimer>();
    tm->fake = F(inst);
    tm->due = F(inst)->now + t;
    tm->armed = true;
    tm->cb = cb;
    tm->arg = arg;
    F(inst)->timers.push_back(std::move(tm));
    return reinterpret_cast<ingestd_timer_t *>(F(inst)->timers.back().get());
  };
  h.timer_restart = [](ingestd_timer_t *t, uint64_t timeout, uint64_t) {
    auto *tm = reinterpret_cast<FakeTimer *>(t);
    tm->armed = true;
    tm->due = tm->fake->now + timeout;
  };
  h.timer_stop = [](ingestd_timer_t *t) { reinterpret_cast<FakeTimer *>(t)->armed = false; };
  h.now_ms = [](ingestd_instance_t *inst) { return F(inst)->now; };
  h.counter = [](ingestd_instance_t *inst, const char *name, const char *) {
    F(inst)->metrics[name] = 0;
    return reinterpret_cast<ingestd_metric_t *>(&F(inst)->metrics[name]);
  };
  h.gauge = h.counter;
  h.metric_add = [](ingestd_metric_t *m, double d) { *reinterpret_cast<double *>(m) += d; };
  h.metric_set = [](ingestd_metric_t *m, double v) { *reinterpret_cast<double *>(m) = v; };
  h.record_json = [](const ingestd_record_t *r, size_t *len) {
    auto *s = reinterpret_cast<const std::string *>(r);
    *len = s->size();
    return static_cast<const char *>(s->c_str());
  };
  h.batch_size = [](const ingestd_batch_t *b) {
    return reinterpret_cast<const FakeBatch *>(b)->json.size();
  };
  h.batch_record = [](ingestd_batch_t *b, size_t i) {
    return reinterpret_cast<const ingestd_record_t *>(&reinterpret_cast<FakeBatch *>(b)->json[i]);
  };
  h.batch_retry_record = [](ingestd_batch_t *b, size_t i) {
    reinterpret_cast<FakeBatch *>(b)->retry.insert(i);
  };
  h.batch_dead_letter = [](ingestd_batch_t *b, size_t i, const char *why) {
    reinterpret_cast<FakeBatch *>(b)->dead[i] = why;
  };
  h.batch_done = [](ingestd_batch_t *b, ingestd_batch_status_type s) {
    auto *fb = reinterpret_cast<FakeBatch *>(b);
    fb->status = s;
    ++fb->done_calls;
  };
  h.http_request = [](ingestd_instance_t *inst, const ingestd_http_request_t *req,
                      ingestd_http_done_cb cb, void *arg) {
    auto c = std::make_unique<FakeCall>();
    c->url = req->url;
    c->body.assign(req->body, req->body_len);
    for (size_t i = 0; i < req->header_count; ++i) {
      if (std::string(req->headers[i].name) == "X-Amz-Target") c->target = req->headers[i].value;
    }
    c->signed_firehose = req->aws != nullptr && std::string(req->aws_service) == "firehose";
    c->cb = cb;
    c->arg = arg;
    JsonValue v;
    if (parse_json(c->body, &v)) {
      for (const JsonValue &r : v.get("Records")->items)
        c->records.push_back(unbase64(r.get("Data")->string));
    }
    F(inst)->calls.push_back(std::move(c));
    return reinterpret_cast<ingestd_http_call_t *>(F(inst)->calls.back().get());
  };
  h.aws_credentials = [](ingestd_instance_t *inst, const ingestd_aws_config_t *) {
    return reinterpret_cast<ingestd_aws_t *>(F(inst));  // any non-null handle
  };
  return h;
}

class FirehoseOutputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    host_ = make_host();
    fake_.opts = {{"region", "eu-west-1"},         {"stream", "trace"},
                  {"endpoint", "http://peer"},     {"aggregate", "false"},
                  {"record_max_bytes", "1024000"}, {"append_newline", "true"},
                  {"calls_per_second", "0"},       {"records_per_second", "0"},
                  {"bytes_per_second", "0"},       {"max_calls_inflight", "4"},
                  {"partial_retries", "1"},        {"request_timeout", "30000"},
                  {"tls_verify", "true"},          {"retry_initial", "100"},
                  {"retry_max", "1000"},           {"aws_access_key_id", "AKID"},
                  {"aws_secret_access_key", "S"},  {"role_session_name", "ingestd"},
                  {"role_duration", "3600000"}};
  }
  void TearDown() override {
    if (data_) {
      ingestd_plugin_v1.on_stop(data_);
      for (auto &c : fake_.calls)
        if (!c->answered) answer_error(c.get(), "cancelled");
      ingestd_plugin_v1.on_destroy(data_);
    }
  }

  ingestd_instance_t *inst() { return reinterpret_cast<ingestd_instance_t *>(&fake_); }

  void start() {
    ASSERT_EQ(ingestd_plugin_v1.on_init(&host_, inst(),
                                        reinterpret_cast<const ingestd_config_t *>(&fake_), &data_),
              0)
        << (fake_.logs.empty() ? "" : fake_.logs.back());
    ASSERT_EQ(ingestd_plugin_v1.on_start(data_), 0);
  }

  FakeBatch batch(size_t n, size_t pad = 0) {
    FakeBatch b;
    for (size_t i = 0; i < n; ++i)
      b.json.push_back("{\"i\":" + std::to_string(i) + ",\"p\":\"" + std::string(pad, 'x') + "\"}");
    return b;
  }
  void flush(FakeBatch *b) {
    ingestd_plugin_v1.on_flush(data_, reinterpret_cast<ingestd_batch_t *>(b));
  }

  std::vector<FakeCall *> open_calls() {
    std::vector<FakeCall *> out;
    for (auto &c : fake_.calls)
      if (!c->answered) out.push_back(c.get());
    return out;
  }

  void answer(FakeCall *c, int status, const std::string &body,
              std::vector<ingestd_http_header_t> headers = {}) {
    c->answered = true;
    ingestd_http_response_t r{};
    r.status = status;
    r.body = body.c_str();
    r.body_len = body.size();
    r.headers = headers.data();
    r.header_count = headers.size();
    c->cb(c->arg, &r);
  }
  void answer_error(FakeCall *c, const char *err) {
    c->answered = true;
    ingestd_http_response_t r{};
    r.error = err;
    r.body = "";
    c->cb(c->arg, &r);
  }
  // 200 with the entries at `failed` positions refused.
  void answer_ok(FakeCall *c, std::set<size_t> failed = {}) {
    std::string body = "{\"FailedPutCount\":" + std::to_string(failed.size()) +
                       ",\"Encrypted\":false,\"RequestResponses\":[";
    for (size_t k = 0; k < c->records.size(); ++k) {
      if (k) body += ",";
      body += failed.count(k) ? "{\"ErrorCode\":\"ServiceUnavailableException\","
                                "\"ErrorMessage\":\"Slow down.\"}"
                              : "{\"RecordId\":\"r" + std::to_string(k) + "\"}";
    }
    answer(c, 200, body + "]}");
  }

  // Advances the clock to `t` and runs the timers due by then.
  void advance(uint64_t to) {
    fake_.now = to;
    bool fired = true;
    while (fired) {
      fired = false;
      for (auto &t : fake_.timers) {
        if (t->armed && t->due <= fake_.now) {
          t->armed = false;
          t->cb(t->arg);
          fired = true;
        }
      }
    }
  }

  double metric(const std::string &name) { return fake_.metrics.at(name); }

  ingestd_host_t host_{};
  Fake fake_;
  void *data_ = nullptr;
};

TEST_F(FirehoseOutputTest, NoHttpClientFailsInitClearly) {
  host_.http_request = nullptr;
  void *d = nullptr;
  EXPECT_EQ(ingestd_plugin_v1.on_init(&host_, inst(),
                                      reinterpret_cast<const ingestd_config_t *>(&fake_), &d),
            -1);
  ASSERT_FALSE(fake_.logs.empty());
  EXPECT_THAT(fake_.logs.back(), HasSubstr("no HTTP client"));
}

TEST_F(FirehoseOutputTest, AggregateWithoutNewlineIsRefused) {
  fake_.opts["aggregate"] = "true";
  fake_.opts["append_newline"] = "false";
  void *d = nullptr;
  EXPECT_EQ(ingestd_plugin_v1.on_init(&host_, inst(),
                                      reinterpret_cast<const ingestd_config_t *>(&fake_), &d),
            -1);
  EXPECT_THAT(fake_.logs.back(), HasSubstr("append_newline"));
}

TEST_F(FirehoseOutputTest, BatchSplitsIntoSignedCallsAndAllDelivered) {
  start();
  FakeBatch b = batch(1200);
  flush(&b);
  auto calls = open_calls();
  ASSERT_EQ(calls.size(), 3u);
  EXPECT_EQ(calls[0]->url, "http://peer/");
  EXPECT_EQ(calls[0]->target, "Firehose_20150804.PutRecordBatch");
  EXPECT_TRUE(calls[0]->signed_firehose);
  EXPECT_EQ(calls[0]->records.size(), 500u);
  EXPECT_EQ(calls[2]->records.size(), 200u);
  EXPECT_EQ(calls[2]->records[0], b.json[1000] + "\n");
  for (FakeCall *c : calls)
    answer_ok(c);
  EXPECT_EQ(b.done_calls, 1);
  EXPECT_EQ(b.status, INGESTD_BATCH_OK);
  EXPECT_TRUE(b.retry.empty());
  EXPECT_EQ(metric("firehose_records_total"), 1200);
  EXPECT_EQ(metric("firehose_billed_units_total"), 1200);
  EXPECT_EQ(metric("firehose_calls_total"), 3);
}

TEST_F(FirehoseOutputTest, FailedEntriesAreResentThenHandedBackExactly) {
  start();  // partial_retries = 1
  FakeBatch b = batch(1000);
  flush(&b);
  auto calls = open_calls();
  ASSERT_EQ(calls.size(), 2u);
  answer_ok(calls[0]);
  answer_ok(calls[1], {3, 7, 499});  // host records 503, 507, 999
  EXPECT_EQ(b.done_calls, 0);
  EXPECT_TRUE(open_calls().empty());  // the resend waits retry_initial
  advance(fake_.now + 100);
  calls = open_calls();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_THAT(calls[0]->records,
              ElementsAre(b.json[503] + "\n", b.json[507] + "\n", b.json[999] + "\n"));
  answer_ok(calls[0], {1});  // 507 fails again: out of resends, back to the host
  EXPECT_EQ(b.done_calls, 1);
  EXPECT_EQ(b.status, INGESTD_BATCH_OK);
  EXPECT_THAT(b.retry, ElementsAre(507u));
  EXPECT_EQ(metric("firehose_records_total"), 999);
  EXPECT_EQ(metric("firehose_failed_records_service_unavailable_total"), 4);
}

TEST_F(FirehoseOutputTest, PackedRecordFailureRetriesItsHostRecords) {
  fake_.opts["aggregate"] = "true";
  fake_.opts["record_max_bytes"] = "100";
  fake_.opts["partial_retries"] = "0";
  start();
  FakeBatch b = batch(10, 5);  // 19 bytes + newline = 20 each: 5 per Firehose record
  ASSERT_EQ(b.json[0].size(), 19u);
  flush(&b);
  auto calls = open_calls();
  ASSERT_EQ(calls.size(), 1u);
  ASSERT_EQ(calls[0]->records.size(), 2u);
  EXPECT_EQ(calls[0]->records[1], b.json[5] + "\n" + b.json[6] + "\n" + b.json[7] + "\n" +
                                      b.json[8] + "\n" + b.json[9] + "\n");
  answer_ok(calls[0], {1});
  EXPECT_EQ(b.status, INGESTD_BATCH_OK);
  EXPECT_THAT(b.retry, ElementsAre(5u, 6u, 7u, 8u, 9u));
  EXPECT_EQ(metric("firehose_put_records_total"), 1);
  EXPECT_EQ(metric("firehose_records_total"), 5);
  EXPECT_EQ(metric("firehose_billed_units_total"), 1);
}

TEST_F(FirehoseOutputTest, ServiceUnavailable500IsAThrottleWholeBatchRetried) {
  fake_.opts["max_calls_inflight"] = "1";
  start();
  FakeBatch b = batch(1200);
  flush(&b);
  auto calls = open_calls();
  ASSERT_EQ(calls.size(), 1u);
  answer(calls[0], 500,
         "{\"__type\":\"com.amazonaws.firehose.v20150804#ServiceUnavailableException\","
         "\"message\":\"Slow down.\"}");
  // The unsent calls of the batch went back with it: nothing was delivered.
  EXPECT_TRUE(open_calls().empty());
  EXPECT_EQ(b.status, INGESTD_BATCH_RETRY);
  EXPECT_EQ(metric("firehose_call_errors_throttled_total"), 1);
  // The output's own pause holds the next batch back for retry_initial.
  FakeBatch b2 = batch(10);
  flush(&b2);
  EXPECT_TRUE(open_calls().empty());
  advance(fake_.now + 100);
  ASSERT_EQ(open_calls().size(), 1u);
  // b2 lives on this stack: finish its call before the test returns.
  answer_ok(open_calls()[0]);
  EXPECT_EQ(b2.status, INGESTD_BATCH_OK);
}

TEST_F(FirehoseOutputTest, PartialDeliveryThenWholeCallFailureMarksOnlyTheRest) {
  fake_.opts["max_calls_inflight"] = "1";
  start();
  FakeBatch b = batch(1200);
  flush(&b);
  answer_ok(open_calls()[0]);  // 0..499 delivered
  auto calls = open_calls();
  ASSERT_EQ(calls.size(), 1u);
  answer(calls[0], 500, "{\"__type\":\"InternalFailure\"}");
  EXPECT_EQ(b.status, INGESTD_BATCH_OK);
  EXPECT_EQ(b.retry.size(), 700u);
  EXPECT_EQ(*b.retry.begin(), 500u);
  EXPECT_EQ(metric("firehose_call_errors_transient_total"), 1);
}

TEST_F(FirehoseOutputTest, PermanentErrorsLogOnceAMinute) {
  start();
  for (int i = 0; i < 5; ++i) {
    FakeBatch b = batch(3);
    flush(&b);
    advance(fake_.now + 2000);
    auto calls = open_calls();
    ASSERT_EQ(calls.size(), 1u);
    answer(calls[0], 400, "{\"message\":\"gone\"}",
           {{"x-amzn-errortype", "ResourceNotFoundException:http://internal.amazon.com/"}});
    EXPECT_EQ(b.status, INGESTD_BATCH_RETRY);
  }
  int lines = 0;
  for (const auto &l : fake_.logs)
    if (l.find("ResourceNotFoundException") != std::string::npos) ++lines;
  EXPECT_EQ(lines, 1);
  EXPECT_EQ(metric("firehose_call_errors_config_total"), 5);
}

TEST_F(FirehoseOutputTest, TokenBucketsPaceCallsInsteadOfSending) {
  fake_.opts["calls_per_second"] = "2";
  start();
  FakeBatch b = batch(2000);  // 4 calls
  flush(&b);
  EXPECT_EQ(open_calls().size(), 2u);  // the burst: one second's worth
  EXPECT_EQ(metric("firehose_throttle_waits_total"), 1);
  advance(fake_.now + 500);
  EXPECT_EQ(fake_.calls.size(), 3u);
  advance(fake_.now + 500);
  EXPECT_EQ(fake_.calls.size(), 4u);
  for (FakeCall *c : open_calls())
    answer_ok(c);
  EXPECT_EQ(b.status, INGESTD_BATCH_OK);
}

TEST_F(FirehoseOutputTest, OversizeRecordIsDeadLettered) {
  start();
  FakeBatch b = batch(3);
  b.json[1] = "\"" + std::string(1024000, 'x') + "\"";
  flush(&b);
  auto calls = open_calls();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0]->records.size(), 2u);
  answer_ok(calls[0]);
  EXPECT_EQ(b.status, INGESTD_BATCH_OK);
  ASSERT_EQ(b.dead.count(1), 1u);
  EXPECT_THAT(b.dead[1], HasSubstr("exceeds the Firehose limit"));
  EXPECT_TRUE(b.retry.empty());
}

TEST_F(FirehoseOutputTest, StopReturnsQueuedCallsAndCancelledOnesRetry) {
  fake_.opts["max_calls_inflight"] = "1";
  start();
  FakeBatch b = batch(1000);
  flush(&b);
  ASSERT_EQ(open_calls().size(), 1u);
  ingestd_plugin_v1.on_stop(data_);
  EXPECT_EQ(b.done_calls, 0);  // one call still in flight
  answer_error(open_calls()[0], "cancelled");
  EXPECT_EQ(b.done_calls, 1);
  EXPECT_EQ(b.status, INGESTD_BATCH_RETRY);
  FakeBatch late = batch(1);
  flush(&late);
  EXPECT_EQ(late.status, INGESTD_BATCH_RETRY);
  EXPECT_TRUE(open_calls().empty());
}

}  // namespace
}  // namespace ingestd::firehose
