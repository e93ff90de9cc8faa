// The HTTP client and AWS credentials host functions through the plugin ABI:
// a signed PutRecordBatch accepted by tests/peers/firehose_peer.py, chain
// dedupe, cancel, and Instance::stop() ending calls still in flight before
// on_destroy; call_soon.
#include <gtest/gtest.h>

#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>
#include "testing/peer_process.h"

#include <cstddef>
#include <string>
#include <vector>

#include "aws/chain.h"
#include "host/instance.h"

extern char **environ;

namespace ingestd {
namespace {

using Peer = ingestd::testing::PeerProcess;

bool run_until(uv_loop_t *loop, const std::function<bool()> &done, uint64_t timeout_ms = 10000) {
  uint64_t deadline = uv_hrtime() / 1000000 + timeout_ms;
  Timer tick(loop);
  tick.start(10, 10, [] {});
  while (!done()) {
    if (uv_hrtime() / 1000000 > deadline) return false;
    uv_run(loop, UV_RUN_ONCE);
  }
  return true;
}

// What the test plugin saw, in order.
struct Trace {
  std::vector<std::string> events;
  const ingestd_host_t *host = nullptr;
};

int test_init(const ingestd_host_t *host, ingestd_instance_t *, const ingestd_config_t *,
              void **data) {
  static_assert(sizeof(void *) > 0);
  auto *t = new Trace;
  t->host = host;
  *data = t;
  return 0;
}
int test_start(void *) {
  return 0;
}
void test_stop(void *d) {
  static_cast<Trace *>(d)->events.push_back("on_stop");
}
void test_destroy(void *d) {
  // The events are read by the test through a pointer it kept.
  static_cast<Trace *>(d)->events.push_back("on_destroy");
}

const ingestd_plugin_t kPlugin = {INGESTD_ABI_MAJOR,
                                  INGESTD_ABI_MINOR,
                                  sizeof(ingestd_plugin_t),
                                  "httptest",
                                  INGESTD_KIND_OUTPUT,
                                  "test plugin for the HTTP host functions",
                                  "0",
                                  nullptr,
                                  0,
                                  test_init,
                                  test_start,
                                  test_stop,
                                  test_destroy,
                                  nullptr,
                                  nullptr,
                                  nullptr};

struct Result {
  int calls = 0;
  int status = -1;
  std::string error, body;
  std::vector<std::pair<std::string, std::string>> headers;
  std::vector<std::string> *events = nullptr;
};

void on_done(void *arg, const ingestd_http_response_t *r) {
  auto *res = static_cast<Result *>(arg);
  ++res->calls;
  res->status = r->status;
  res->error = r->error ? r->error : "";
  res->body.assign(r->body, r->body_len);
  res->headers.clear();
  for (size_t i = 0; i < r->header_count; ++i)
    res->headers.emplace_back(r->headers[i].name, r->headers[i].value);
  if (res->events) res->events->push_back("callback " + res->error);
}

class HostHttpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    uv_loop_init(&loop_);
    http_ = std::make_unique<HttpClient>(&loop_, &log_, &metrics_);
    aws_ = std::make_unique<aws::Registry>(http_.get(), &log_, &metrics_);
    inst_ = std::make_unique<Instance>();
    inst_->plugin = &kPlugin;
    inst_->name = "httptest";
    inst_->scope = "outputs.httptest";
    inst_->loop = &loop_;
    inst_->logger = &log_;
    inst_->metrics = &metrics_;
    inst_->http = http_.get();
    inst_->aws = aws_.get();
    ASSERT_TRUE(inst_->init());
    ASSERT_TRUE(inst_->start());
    trace_ = static_cast<Trace *>(inst_->data);
    host_ = trace_->host;
  }
  void TearDown() override {
    Trace *t = trace_;
    inst_.reset();
    delete t;  // on_destroy only records; the test owns the trace
    aws_.reset();
    http_.reset();
    hang_.reset();
    for (auto &c : hang_conns_)
      c.reset();
    uv_run(&loop_, UV_RUN_DEFAULT);
    EXPECT_EQ(uv_loop_close(&loop_), 0);
  }
  // A server that accepts and never answers.
  int hanging_server() {
    auto *s = new uv_tcp_t;
    uv_tcp_init(&loop_, s);
    s->data = this;
    hang_ = UvHandle<uv_tcp_t>(s);
    sockaddr_in addr{};
    uv_ip4_addr("127.0.0.1", 0, &addr);
    uv_tcp_bind(s, reinterpret_cast<const sockaddr *>(&addr), 0);
    uv_listen(reinterpret_cast<uv_stream_t *>(s), 16, [](uv_stream_t *srv, int) {
      auto *self = static_cast<HostHttpTest *>(srv->data);
      auto *c = new uv_tcp_t;
      uv_tcp_init(srv->loop, c);
      self->hang_conns_.emplace_back(c);
      uv_accept(srv, reinterpret_cast<uv_stream_t *>(c));
      ++self->accepted_;
    });
    sockaddr_storage bound{};
    int len = sizeof bound;
    uv_tcp_getsockname(s, reinterpret_cast<sockaddr *>(&bound), &len);
    return ntohs(reinterpret_cast<sockaddr_in *>(&bound)->sin_port);
  }

  // A signed PutRecordBatch through the ABI, accepted by firehose_peer.py.
  // `scribble` overwrites the body's buffer as soon as http_request returns:
  // what is sent must still be what was handed over (the host copied it).
  Result put(uint32_t struct_size, int body_lent, bool scribble);

  uv_loop_t loop_{};
  Logger log_{2, LogLevel::Error};
  MetricsRegistry metrics_;
  std::unique_ptr<HttpClient> http_;
  std::unique_ptr<aws::Registry> aws_;
  std::unique_ptr<Instance> inst_;
  Trace *trace_ = nullptr;
  const ingestd_host_t *host_ = nullptr;
  UvHandle<uv_tcp_t> hang_;
  std::vector<UvHandle<uv_tcp_t>> hang_conns_;
  int accepted_ = 0;
};

TEST_F(HostHttpTest, HostFunctionsAreWired) {
  EXPECT_TRUE(INGESTD_HOST_HAS(host_, http_request));
  EXPECT_TRUE(INGESTD_HOST_HAS(host_, http_cancel));
  EXPECT_TRUE(INGESTD_HOST_HAS(host_, aws_credentials));
  EXPECT_TRUE(INGESTD_HOST_HAS(host_, aws_credentials_source));
}

TEST_F(HostHttpTest, ChainsAreSharedByContent) {
  ingestd_aws_config_t a{};
  a.access_key_id = "AKID";
  a.secret_access_key = "S";
  ingestd_aws_config_t same{};
  std::string id = "AKID";  // different pointer, same content
  same.access_key_id = id.c_str();
  same.secret_access_key = "S";
  ingestd_aws_config_t other{};
  other.profile = "p";
  ingestd_aws_t *x = host_->aws_credentials(inst_->abi(), &a);
  ASSERT_NE(x, nullptr);
  EXPECT_EQ(host_->aws_credentials(inst_->abi(), &same), x);
  EXPECT_NE(host_->aws_credentials(inst_->abi(), &other), x);
  EXPECT_EQ(host_->aws_credentials(inst_->abi(), nullptr), nullptr);
  EXPECT_EQ(aws_->size(), 2u);
  EXPECT_EQ(host_->aws_credentials_source(x), nullptr);  // nothing resolved yet
}

TEST_F(HostHttpTest, RoleChainsShareTheirBaseAndHonourStructSize) {
  ingestd_aws_config_t plain{};
  plain.struct_size = sizeof plain;
  plain.access_key_id = "AKID";
  plain.secret_access_key = "S";
  ingestd_aws_config_t role = plain;
  role.role_arn = "arn:aws:iam::111122223333:role/writer";
  role.external_id = "x";
  ingestd_aws_config_t other_id = role;
  other_id.external_id = "y";
  ingestd_aws_t *p = host_->aws_credentials(inst_->abi(), &plain);
  ingestd_aws_t *r = host_->aws_credentials(inst_->abi(), &role);
  ASSERT_NE(r, nullptr);
  EXPECT_NE(r, p);
  EXPECT_EQ(aws::Chain::from(r)->base(), aws::Chain::from(p));  // one base chain
  EXPECT_EQ(host_->aws_credentials(inst_->abi(), &role), r);
  ingestd_aws_t *o = host_->aws_credentials(inst_->abi(), &other_id);
  EXPECT_NE(o, r);
  EXPECT_EQ(aws::Chain::from(o)->base(), aws::Chain::from(p));
  EXPECT_EQ(aws_->size(), 3u);
  // A plugin built before ABI 1.2 passes a struct that ends before role_arn:
  // what lies after it is not read.
  ingestd_aws_config_t old = role;
  old.struct_size = offsetof(ingestd_aws_config_t, role_arn);
  EXPECT_EQ(host_->aws_credentials(inst_->abi(), &old), p);
  old.struct_size = 0;  // the ABI 1.0 size
  EXPECT_EQ(host_->aws_credentials(inst_->abi(), &old), p);
}

TEST_F(HostHttpTest, InvalidRequestIsRefusedWithoutCallback) {
  Result res;
  ingestd_http_request_t req{};
  req.method = "GET";
  req.url = "not a url";
  EXPECT_EQ(host_->http_request(inst_->abi(), &req, on_done, &res), nullptr);
  req.url = nullptr;
  EXPECT_EQ(host_->http_request(inst_->abi(), &req, on_done, &res), nullptr);
  req.url = "http://127.0.0.1:1/";
  req.method = nullptr;
  EXPECT_EQ(host_->http_request(inst_->abi(), &req, on_done, &res), nullptr);
  // Signing without any region.
  ingestd_aws_config_t cfg{};
  req.method = "GET";
  req.aws = host_->aws_credentials(inst_->abi(), &cfg);
  req.aws_service = "firehose";
  EXPECT_EQ(host_->http_request(inst_->abi(), &req, on_done, &res), nullptr);
  run_until(
      &loop_, [] { return false; }, 50);
  EXPECT_EQ(res.calls, 0);
}

TEST_F(HostHttpTest, CancelRunsTheCallbackLaterWithCancelled) {
  int port = hanging_server();
  std::string url = "http://127.0.0.1:" + std::to_string(port) + "/";
  Result res;
  ingestd_http_request_t req{};
  req.method = "GET";
  req.url = url.c_str();
  ingestd_http_call_t *c = host_->http_request(inst_->abi(), &req, on_done, &res);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(res.calls, 0);
  ASSERT_TRUE(run_until(&loop_, [&] { return accepted_ == 1; }));
  host_->http_cancel(c);
  EXPECT_EQ(res.calls, 0);
  ASSERT_TRUE(run_until(&loop_, [&] { return res.calls == 1; }));
  EXPECT_EQ(res.error, "cancelled");
  EXPECT_EQ(res.status, 0);
}

TEST_F(HostHttpTest, StopEndsCallsInFlightBeforeOnDestroy) {
  int port = hanging_server();
  std::string url = "http://127.0.0.1:" + std::to_string(port) + "/slow";
  std::vector<Result> res(3);
  for (auto &r : res) {
    r.events = &trace_->events;
    ingestd_http_request_t req{};
    req.method = "POST";
    req.url = url.c_str();
    req.body = "x";
    req.body_len = 1;
    ASSERT_NE(host_->http_request(inst_->abi(), &req, on_done, &r), nullptr);
  }
  ASSERT_TRUE(run_until(&loop_, [&] { return accepted_ >= 1; }));
  inst_->stop();
  for (auto &r : res) {
    EXPECT_EQ(r.calls, 1);
    EXPECT_EQ(r.error, "cancelled");
  }
  // After stop, new calls are refused (their callbacks could outlive the plugin).
  Result late;
  ingestd_http_request_t req{};
  req.method = "GET";
  req.url = url.c_str();
  EXPECT_EQ(host_->http_request(inst_->abi(), &req, on_done, &late), nullptr);
  inst_->destroy();
  EXPECT_EQ(trace_->events,
            (std::vector<std::string>{"on_stop", "callback cancelled", "callback cancelled",
                                      "callback cancelled", "on_destroy"}));
}

TEST_F(HostHttpTest, SignedPutRecordBatchThroughTheAbi) {
  Result res = put(sizeof(ingestd_http_request_t), 0, true);
  EXPECT_EQ(res.error, "");
  EXPECT_EQ(res.status, 200) << res.body;
  EXPECT_NE(res.body.find("\"FailedPutCount\": 0"), std::string::npos) << res.body;
  bool lower = !res.headers.empty();
  for (const auto &[k, v] : res.headers)
    for (char ch : k)
      lower = lower && !(ch >= 'A' && ch <= 'Z');
  EXPECT_TRUE(lower);
}

TEST_F(HostHttpTest, LentBodyIsSentWithoutACopyAndSigned) {
  Result res = put(sizeof(ingestd_http_request_t), 1, false);
  EXPECT_EQ(res.error, "");
  EXPECT_EQ(res.status, 200) << res.body;
  EXPECT_NE(res.body.find("\"FailedPutCount\": 0"), std::string::npos) << res.body;
}

TEST_F(HostHttpTest, AbiOneZeroRequestNeverReadsBodyLent) {
  // Built for ABI 1.0: body_lent lies past struct_size and must read as 0,
  // whatever the memory there holds, so the body is copied.
  Result res = put(offsetof(ingestd_http_request_t, body_lent), 1, true);
  EXPECT_EQ(res.error, "");
  EXPECT_EQ(res.status, 200) << res.body;
  EXPECT_NE(res.body.find("\"FailedPutCount\": 0"), std::string::npos) << res.body;
}

void count_call(void *arg) {
  ++*static_cast<int *>(arg);
}

struct Again {
  const ingestd_host_t *host;
  ingestd_instance_t *inst;
  int runs = 0;
};
void run_again(void *arg) {
  auto *a = static_cast<Again *>(arg);
  if (++a->runs < 3) a->host->call_soon(a->inst, run_again, a);
}

TEST_F(HostHttpTest, CallSoonRunsOnceOnALaterTurn) {
  ASSERT_TRUE(INGESTD_HOST_HAS(host_, call_soon));
  int runs = 0;
  EXPECT_EQ(host_->call_soon(inst_->abi(), count_call, &runs), 0);
  EXPECT_EQ(host_->call_soon(inst_->abi(), nullptr, &runs), -1);
  EXPECT_EQ(runs, 0);  // never inside call_soon
  uv_run(&loop_, UV_RUN_NOWAIT);
  EXPECT_EQ(runs, 1);
  uv_run(&loop_, UV_RUN_NOWAIT);
  EXPECT_EQ(runs, 1);  // once

  // One scheduled from its own callback waits for the next turn (a 0 ms
  // timer restarted from its callback runs again in the same turn).
  Again a{host_, inst_->abi()};
  host_->call_soon(inst_->abi(), run_again, &a);
  uv_run(&loop_, UV_RUN_NOWAIT);
  EXPECT_EQ(a.runs, 1);
  uv_run(&loop_, UV_RUN_NOWAIT);
  EXPECT_EQ(a.runs, 2);
  uv_run(&loop_, UV_RUN_NOWAIT);
  uv_run(&loop_, UV_RUN_NOWAIT);
  EXPECT_EQ(a.runs, 3);
}

TEST_F(HostHttpTest, CallSoonPendingAtDestroyIsDropped) {
  int runs = 0;
  host_->call_soon(inst_->abi(), count_call, &runs);
  inst_->destroy();
  uv_run(&loop_, UV_RUN_NOWAIT);
  uv_run(&loop_, UV_RUN_NOWAIT);
  EXPECT_EQ(runs, 0);
}

Result HostHttpTest::put(uint32_t struct_size, int body_lent, bool scribble) {
  Peer fh({INGESTD_PYTHON, PEERS_DIR "/firehose_peer.py", "--port", "0", "--region",
           "ap-northeast-2", "--stream", "trace", "--credentials", "ASIAABI:abisecret:abitoken"});
  EXPECT_GT(fh.port(), 0);
  ingestd_aws_config_t cfg{};
  cfg.access_key_id = "ASIAABI";
  cfg.secret_access_key = "abisecret";
  cfg.session_token = "abitoken";
  ingestd_aws_t *aws = host_->aws_credentials(inst_->abi(), &cfg);
  std::string url = "http://127.0.0.1:" + std::to_string(fh.port()) + "/";
  std::string body = R"({"DeliveryStreamName":"trace","Records":[{"Data":"eyJhIjoxfQo="}]})";
  ingestd_http_header_t headers[] = {{"Content-Type", "application/x-amz-json-1.1"},
                                     {"X-Amz-Target", "Firehose_20150804.PutRecordBatch"}};
  ingestd_http_request_t req{};
  req.struct_size = struct_size;
  req.method = "POST";
  req.url = url.c_str();
  req.headers = headers;
  req.header_count = 2;
  req.body = body.data();
  req.body_len = body.size();
  req.timeout_ms = 10000;
  req.aws = aws;
  req.aws_service = "firehose";
  req.aws_region = "ap-northeast-2";
  req.body_lent = body_lent;
  Result res;
  EXPECT_NE(host_->http_request(inst_->abi(), &req, on_done, &res), nullptr);
  if (scribble) body.assign(body.size(), 'x');
  EXPECT_EQ(res.calls, 0);
  EXPECT_TRUE(run_until(&loop_, [&] { return res.calls == 1; }));
  EXPECT_STREQ(host_->aws_credentials_source(aws), "config");
  return res;
}

}  // namespace
}  // namespace ingestd

int main(int argc, char **argv) {
  ingestd::HttpClient::global_init();
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
