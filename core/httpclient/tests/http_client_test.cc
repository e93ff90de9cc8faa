// HttpClient against a small HTTP/1.1 server on the same uv loop (loopback):
// responses, keep-alive, transport errors, cancellation, groups, limits.
#include "httpclient/http_client.h"

#include <gtest/gtest.h>
#include <uv.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace ingestd {
namespace {

// Runs the loop until `done()` or `timeout_ms` passed; false on timeout.
bool run_until(uv_loop_t *loop, const std::function<bool()> &done, uint64_t timeout_ms = 5000) {
  uint64_t deadline = uv_hrtime() / 1000000 + timeout_ms;
  Timer tick(loop);
  tick.start(10, 10, [] {});  // uv_run(ONCE) never blocks forever
  while (!done()) {
    if (uv_hrtime() / 1000000 > deadline) return false;
    uv_run(loop, UV_RUN_ONCE);
  }
  return true;
}

// Paths: /hang never answers; /big answers 2000 bytes; /status/N answers N;
// anything else echoes "METHOD PATH BODY" with X-Test: Yes.
class TestServer {
 public:
  explicit TestServer(uv_loop_t *loop) : loop_(loop) {
    auto *s = new uv_tcp_t;
    uv_tcp_init(loop, s);
    s->data = this;
    server_ = UvHandle<uv_tcp_t>(s);
    sockaddr_in addr{};
    uv_ip4_addr("127.0.0.1", 0, &addr);
    uv_tcp_bind(s, reinterpret_cast<const sockaddr *>(&addr), 0);
    uv_listen(reinterpret_cast<uv_stream_t *>(s), 16,
              [](uv_stream_t *srv, int) { static_cast<TestServer *>(srv->data)->accept(srv); });
    sockaddr_storage bound{};
    int len = sizeof bound;
    uv_tcp_getsockname(s, reinterpret_cast<sockaddr *>(&bound), &len);
    port_ = ntohs(reinterpret_cast<sockaddr_in *>(&bound)->sin_port);
  }
  ~TestServer() {
    for (auto &c : conns_)
      c->tcp.reset();
  }
  int port() const { return port_; }
  std::string url(const std::string &path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  int accepted = 0;
  std::vector<std::string> requests;  // raw head + body

 private:
  struct Conn {
    TestServer *server;
    UvHandle<uv_tcp_t> tcp;
    std::string buf;
  };
  void accept(uv_stream_t *srv) {
    auto conn = std::make_unique<Conn>();
    conn->server = this;
    auto *t = new uv_tcp_t;
    uv_tcp_init(loop_, t);
    t->data = conn.get();
    conn->tcp = UvHandle<uv_tcp_t>(t);
    if (uv_accept(srv, reinterpret_cast<uv_stream_t *>(t)) != 0) return;
    ++accepted;
    uv_read_start(
        reinterpret_cast<uv_stream_t *>(t),
        [](uv_handle_t *, size_t n, uv_buf_t *b) {
          b->base = new char[n];
          b->len = n;
        },
        [](uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
          auto *c = static_cast<Conn *>(st->data);
          if (n > 0) c->buf.append(b->base, static_cast<size_t>(n));
          delete[] b->base;
          if (n < 0) {
            uv_read_stop(st);
            return;
          }
          c->server->serve(c);
        });
    conns_.push_back(std::move(conn));
  }
  void serve(Conn *c) {
    for (;;) {
      size_t end = c->buf.find("\r\n\r\n");
      if (end == std::string::npos) return;
      std::string head = c->buf.substr(0, end);
      size_t len = 0;
      for (const char *h : {"Content-Length: ", "content-length: "}) {
        size_t p = head.find(h);
        if (p != std::string::npos) len = std::stoul(head.substr(p + strlen(h)));
      }
      if (c->buf.size() < end + 4 + len) return;
      std::string body = c->buf.substr(end + 4, len);
      c->buf.erase(0, end + 4 + len);
      requests.push_back(head + "\r\n\r\n" + body);
      std::string method = head.substr(0, head.find(' '));
      size_t p1 = head.find(' ') + 1;
      std::string path = head.substr(p1, head.find(' ', p1) - p1);
      if (path == "/hang") continue;
      int status = 200;
      std::string out = method + " " + path + " " + body;
      if (path == "/big") out.assign(2000, 'x');
      if (path.rfind("/status/", 0) == 0) status = std::stoi(path.substr(8));
      std::string resp = "HTTP/1.1 " + std::to_string(status) +
                         " X\r\nX-Test:  Yes \r\nContent-Length: " + std::to_string(out.size()) +
                         "\r\n\r\n" + out;
      auto *w = new uv_write_t;
      auto *data = new std::string(std::move(resp));
      w->data = data;
      uv_buf_t b = uv_buf_init(data->data(), static_cast<unsigned>(data->size()));
      uv_write(w, reinterpret_cast<uv_stream_t *>(c->tcp.get()), &b, 1, [](uv_write_t *w, int) {
        delete static_cast<std::string *>(w->data);
        delete w;
      });
    }
  }
  uv_loop_t *loop_;
  UvHandle<uv_tcp_t> server_;
  int port_ = 0;
  std::vector<std::unique_ptr<Conn>> conns_;
};

class HttpClientTest : public ::testing::Test {
 protected:
  void SetUp() override { uv_loop_init(&loop_); }
  void TearDown() override {
    server_.reset();
    client_.reset();
    uv_run(&loop_, UV_RUN_DEFAULT);  // close callbacks free the handles
    EXPECT_EQ(uv_loop_close(&loop_), 0) << "a handle was left open";
  }
  HttpClient &client(HttpClient::Options o = {}) {
    if (!client_) client_ = std::make_unique<HttpClient>(&loop_, &log_, &metrics_, o);
    return *client_;
  }
  TestServer &server() {
    if (!server_) server_ = std::make_unique<TestServer>(&loop_);
    return *server_;
  }
  // Starts a call and records its response into *out (count in *calls).
  HttpCall *call(HttpRequest req, HttpResponse *out, int *calls, HttpCallGroup *g = nullptr) {
    return client().start(
        std::move(req),
        [out, calls](const HttpResponse &r) {
          *out = r;
          ++*calls;
        },
        g);
  }

  uv_loop_t loop_{};
  Logger log_{2, LogLevel::Warn};
  MetricsRegistry metrics_;
  std::unique_ptr<TestServer> server_;
  std::unique_ptr<HttpClient> client_;
};

TEST_F(HttpClientTest, GetReturnsStatusBodyAndLowerCaseHeaders) {
  HttpRequest req;
  req.url = server().url("/hello");
  HttpResponse r;
  int calls = 0;
  ASSERT_NE(call(req, &r, &calls), nullptr);
  EXPECT_EQ(calls, 0) << "the callback must not run inside start()";
  ASSERT_TRUE(run_until(&loop_, [&] { return calls == 1; }));
  EXPECT_EQ(r.error, "");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "GET /hello ");
  ASSERT_NE(r.header("x-test"), nullptr);
  EXPECT_EQ(*r.header("x-test"), "Yes");
  EXPECT_EQ(metrics_.counter("ingestd_http_client_requests_total", "")->value(), 1u);
}

TEST_F(HttpClientTest, PostBodyAndKeepAliveReuseOneConnection) {
  for (int i = 0; i < 3; ++i) {
    HttpRequest req;
    req.method = "POST";
    req.url = server().url("/post");
    req.body = "payload" + std::to_string(i);
    req.headers = {{"Content-Type", "text/plain"}, {"X-Empty", ""}};
    HttpResponse r;
    int calls = 0;
    ASSERT_NE(call(req, &r, &calls), nullptr);
    ASSERT_TRUE(run_until(&loop_, [&] { return calls == 1; }));
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "POST /post payload" + std::to_string(i));
  }
  EXPECT_EQ(server().accepted, 1) << "keep-alive: one connection for sequential calls";
  const std::string &raw = server().requests.back();
  EXPECT_NE(raw.find("HTTP/1.1"), std::string::npos);
  EXPECT_NE(raw.find("X-Empty:"), std::string::npos);
  EXPECT_EQ(raw.find("Expect:"), std::string::npos);
}

TEST_F(HttpClientTest, ManyConcurrentCallsAllComplete) {
  int done = 0;
  std::vector<HttpResponse> rs(40);
  for (int i = 0; i < 40; ++i) {
    HttpRequest req;
    req.url = server().url("/n" + std::to_string(i));
    client().start(
        req,
        [&, i](const HttpResponse &r) {
          rs[static_cast<size_t>(i)] = r;
          ++done;
        },
        nullptr);
  }
  ASSERT_TRUE(run_until(&loop_, [&] { return done == 40; }));
  for (int i = 0; i < 40; ++i)
    EXPECT_EQ(rs[static_cast<size_t>(i)].body, "GET /n" + std::to_string(i) + " ");
  EXPECT_LE(server().accepted, 8) << "CURLMOPT_MAX_HOST_CONNECTIONS";
}

TEST_F(HttpClientTest, ConnectionRefused) {
  // A port that was just free: bind, read it, close.
  uv_tcp_t probe;
  uv_tcp_init(&loop_, &probe);
  sockaddr_in addr{};
  uv_ip4_addr("127.0.0.1", 0, &addr);
  uv_tcp_bind(&probe, reinterpret_cast<const sockaddr *>(&addr), 0);
  sockaddr_storage bound{};
  int len = sizeof bound;
  uv_tcp_getsockname(&probe, reinterpret_cast<sockaddr *>(&bound), &len);
  int port = ntohs(reinterpret_cast<sockaddr_in *>(&bound)->sin_port);
  uv_close(reinterpret_cast<uv_handle_t *>(&probe), nullptr);
  uv_run(&loop_, UV_RUN_NOWAIT);

  HttpRequest req;
  req.url = "http://127.0.0.1:" + std::to_string(port) + "/";
  HttpResponse r;
  int calls = 0;
  ASSERT_NE(call(req, &r, &calls), nullptr);
  ASSERT_TRUE(run_until(&loop_, [&] { return calls == 1; }));
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.error, "connection refused");
  EXPECT_EQ(
      metrics_.counter("ingestd_http_client_errors_total", "", {{"kind", "connect"}})->value(), 1u);
}

TEST_F(HttpClientTest, TimeoutNamesTheLimit) {
  HttpRequest req;
  req.url = server().url("/hang");
  req.timeout_ms = 200;
  HttpResponse r;
  int calls = 0;
  uint64_t t0 = uv_hrtime();
  ASSERT_NE(call(req, &r, &calls), nullptr);
  ASSERT_TRUE(run_until(&loop_, [&] { return calls == 1; }));
  uint64_t ms = (uv_hrtime() - t0) / 1000000;
  EXPECT_EQ(r.error, "timeout after 200 ms");
  EXPECT_GE(ms, 190u);
  EXPECT_LT(ms, 3000u);
}

TEST_F(HttpClientTest, CancelDeliversCancelledLaterExactlyOnce) {
  HttpRequest req;
  req.url = server().url("/hang");
  HttpResponse r;
  int calls = 0;
  HttpCall *c = call(req, &r, &calls);
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(run_until(&loop_, [&] { return server().requests.size() == 1; }));
  client().cancel(c);
  EXPECT_EQ(calls, 0) << "cancel defers the callback to the loop";
  ASSERT_TRUE(run_until(&loop_, [&] { return calls == 1; }));
  EXPECT_EQ(r.error, "cancelled");
  run_until(
      &loop_, [] { return false; }, 100);
  EXPECT_EQ(calls, 1);
}

TEST_F(HttpClientTest, ClosingAGroupCancelsItsCallsSynchronously) {
  HttpCallGroup group;
  HttpCallGroup other;
  int cancelled = 0, other_done = 0;
  for (int i = 0; i < 3; ++i) {
    HttpRequest req;
    req.url = server().url("/hang");
    ASSERT_NE(client().start(
                  req,
                  [&](const HttpResponse &r) {
                    EXPECT_EQ(r.error, "cancelled");
                    ++cancelled;
                  },
                  &group),
              nullptr);
  }
  HttpRequest ok;
  ok.url = server().url("/fine");
  client().start(
      ok,
      [&](const HttpResponse &r) {
        EXPECT_EQ(r.status, 200);
        ++other_done;
      },
      &other);
  ASSERT_TRUE(run_until(&loop_, [&] { return server().requests.size() == 4; }));
  group.close();
  EXPECT_EQ(cancelled, 3);
  EXPECT_EQ(group.size(), 0u);
  std::string why;
  HttpRequest late;
  late.url = server().url("/late");
  EXPECT_EQ(client().start(
                late, [](const HttpResponse &) { FAIL(); }, &group, &why),
            nullptr);
  EXPECT_EQ(why, "the instance is stopped");
  ASSERT_TRUE(run_until(&loop_, [&] { return other_done == 1; }));
}

TEST_F(HttpClientTest, ResponseLargerThanTheCapIsAnError) {
  HttpClient::Options o;
  o.max_response_bytes = 1000;
  client(o);
  HttpRequest req;
  req.url = server().url("/big");
  HttpResponse r;
  int calls = 0;
  call(req, &r, &calls);
  ASSERT_TRUE(run_until(&loop_, [&] { return calls == 1; }));
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.error.find("response body larger than"), std::string::npos) << r.error;
}

TEST_F(HttpClientTest, InvalidRequestsAreRefusedWithoutCallback) {
  std::string why;
  HttpRequest req;
  req.url = "ftp://127.0.0.1/";
  EXPECT_EQ(client().start(
                req, [](const HttpResponse &) { FAIL(); }, nullptr, &why),
            nullptr);
  EXPECT_NE(why.find("http://"), std::string::npos);
  req.url = "http://127.0.0.1/";
  req.method = "";
  EXPECT_EQ(client().start(
                req, [](const HttpResponse &) { FAIL(); }, nullptr, &why),
            nullptr);
  req.method = "GET";
  req.headers = {{"Bad\r\nHeader", "x"}};
  EXPECT_EQ(client().start(
                req, [](const HttpResponse &) { FAIL(); }, nullptr, &why),
            nullptr);
}

TEST_F(HttpClientTest, PrepareCanFailAtOnceOrWaitThenSend) {
  // Fails at once: delivered from the loop, not inside start().
  HttpRequest bad;
  bad.url = server().url("/x");
  bad.prepare = [](HttpRequest &, HttpRequest::Ready ready) -> std::function<void()> {
    ready("credentials: none");
    return {};
  };
  HttpResponse r1;
  int c1 = 0;
  call(bad, &r1, &c1);
  EXPECT_EQ(c1, 0);
  ASSERT_TRUE(run_until(&loop_, [&] { return c1 == 1; }));
  EXPECT_EQ(r1.error, "credentials: none");

  // Waits 50 ms, adds a header, then the request goes out.
  Timer later(&loop_);
  HttpRequest good;
  good.url = server().url("/signed");
  good.prepare = [&later](HttpRequest &req, HttpRequest::Ready ready) -> std::function<void()> {
    HttpRequest *r = &req;
    later.start(50, 0, [r, ready] {
      r->headers.emplace_back("X-Signed", "1");
      ready("");
    });
    return [&later] { later.stop(); };
  };
  HttpResponse r2;
  int c2 = 0;
  call(good, &r2, &c2);
  ASSERT_TRUE(run_until(&loop_, [&] { return c2 == 1; }));
  EXPECT_EQ(r2.status, 200);
  EXPECT_NE(server().requests.back().find("X-Signed: 1"), std::string::npos);

  // Cancelled while waiting: the wait is abandoned, "cancelled" delivered.
  bool abandoned = false;
  HttpRequest waits;
  waits.url = server().url("/never");
  waits.prepare = [&abandoned](HttpRequest &, HttpRequest::Ready) -> std::function<void()> {
    return [&abandoned] { abandoned = true; };
  };
  HttpResponse r3;
  int c3 = 0;
  HttpCall *c = call(waits, &r3, &c3);
  client().cancel(c);
  EXPECT_TRUE(abandoned);
  ASSERT_TRUE(run_until(&loop_, [&] { return c3 == 1; }));
  EXPECT_EQ(r3.error, "cancelled");
}

TEST_F(HttpClientTest, DestroyingTheClientCancelsCallsInFlight) {
  HttpRequest req;
  req.url = server().url("/hang");
  HttpResponse r;
  int calls = 0;
  call(req, &r, &calls);
  ASSERT_TRUE(run_until(&loop_, [&] { return server().requests.size() == 1; }));
  client_.reset();
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(r.error, "cancelled");
}

TEST_F(HttpClientTest, CallbackMayStartAnotherCall) {
  int done = 0;
  HttpRequest req;
  req.url = server().url("/first");
  client().start(
      req,
      [&](const HttpResponse &) {
        HttpRequest again;
        again.url = server().url("/second");
        client().start(
            again,
            [&](const HttpResponse &r) {
              EXPECT_EQ(r.body, "GET /second ");
              ++done;
            },
            nullptr);
      },
      nullptr);
  ASSERT_TRUE(run_until(&loop_, [&] { return done == 1; }));
}

}  // namespace
}  // namespace ingestd

int main(int argc, char **argv) {
  ingestd::HttpClient::global_init();
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
