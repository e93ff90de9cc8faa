// End-to-end tests of the HTTP server over real sockets: exact status lines
// and bodies for every answer the server generates.
#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <vector>

#include "http/tests/http_test_util.h"

namespace ingestd::http::test {
namespace {

// Echoes the request: body as body, the rest in X- headers.
void echo(Request &req, Responder res) {
  Response r;
  r.content_type = "text/plain";
  r.body = std::string(req.body());
  r.headers.emplace_back("X-Method", std::string(req.method()));
  r.headers.emplace_back("X-Path", std::string(req.path()));
  r.headers.emplace_back("X-Query", std::string(req.query()));
  r.headers.emplace_back("X-Client", std::string(req.client_address()));
  if (auto h = req.header("x-echo")) r.headers.emplace_back("X-Echo", std::string(*h));
  res.respond(std::move(r));
}

std::string post(std::string_view path, std::string_view body, std::string_view extra = "") {
  std::string s = "POST " + std::string(path) + " HTTP/1.1\r\nHost: t\r\n";
  s += extra;
  s += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n";
  s += body;
  return s;
}

ServerLimits small_timeouts() {
  ServerLimits l;
  l.header_timeout_ms = 200;
  l.body_timeout_ms = 200;
  l.idle_timeout_ms = 200;
  return l;
}

struct Observed {
  std::mutex mu;
  std::vector<int> statuses;
  void add(int s) {
    std::lock_guard lock(mu);
    statuses.push_back(s);
  }
  std::vector<int> get() {
    std::lock_guard lock(mu);
    return statuses;
  }
};

TEST(HttpServer, EchoOk) {
  LoopServer s({}, echo);
  Client c(s.port());
  ASSERT_TRUE(c.send(post("/v1/trace?a=b", "hello")));
  auto r = c.read_response();
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.status_line, "HTTP/1.1 200 OK");
  EXPECT_EQ(r.body, "hello");
  EXPECT_EQ(r.header("Content-Length"), "5");
  EXPECT_EQ(r.header("Content-Type"), "text/plain");
  EXPECT_EQ(r.header("X-Path"), "/v1/trace");
  EXPECT_EQ(r.header("X-Query"), "a=b");
  EXPECT_EQ(r.header("X-Client"), "127.0.0.1");
  EXPECT_FALSE(r.has_header("Server"));
  EXPECT_FALSE(r.has_header("Connection"));
  // keep-alive: the same connection serves a second request
  ASSERT_TRUE(c.send(post("/again", "x")));
  r = c.read_response();
  EXPECT_EQ(r.status_line, "HTTP/1.1 200 OK");
  EXPECT_EQ(r.header("X-Path"), "/again");
  s.stop();
  EXPECT_EQ(s.loop_close_rc(), 0);
}

TEST(HttpServer, PipelinedInOnePacket) {
  Observed seen;
  LoopServer s({}, echo, {[&](const Request *, int st, size_t, uint64_t) { seen.add(st); }, {}});
  Client c(s.port());
  std::string all = post("/1", "one") + "GET /2 HTTP/1.1\r\nHost: t\r\n\r\n" + post("/3", "three");
  ASSERT_TRUE(c.send(all));
  auto r1 = c.read_response();
  auto r2 = c.read_response();
  auto r3 = c.read_response();
  EXPECT_EQ(r1.status_line, "HTTP/1.1 200 OK");
  EXPECT_EQ(r1.body, "one");
  EXPECT_EQ(r2.status_line, "HTTP/1.1 200 OK");
  EXPECT_EQ(r2.header("X-Path"), "/2");
  EXPECT_EQ(r2.body, "");
  EXPECT_EQ(r3.status_line, "HTTP/1.1 200 OK");
  EXPECT_EQ(r3.body, "three");
  EXPECT_TRUE(wait_until([&] { return seen.get().size() == 3; }));
}

TEST(HttpServer, ManyPipelinedRequestsBeyondTheReadBuffer) {
  LoopServer s({}, echo);
  Client c(s.port());
  std::string all;
  const int n = 2000;  // ~100 KB: more than the read buffer holds
  for (int i = 0; i < n; ++i)
    all += post("/p", std::to_string(i));
  std::thread sender([&] { c.send(all); });
  int good = 0;
  for (int i = 0; i < n; ++i) {
    auto r = c.read_response();
    if (r.ok && r.body == std::to_string(i)) ++good;
  }
  sender.join();
  EXPECT_EQ(good, n);
}

TEST(HttpServer, AnswersLargerThanTheSocketBuffersArriveWholeAndInOrder) {
  // An 8 MB answer cannot be written at once (try_write takes what fits and
  // the rest goes through uv_write); the pipelined requests behind it are
  // answered only after it, and the small ones in between are written at once.
  ServerLimits l;
  l.max_body = 16 << 20;
  l.body_timeout_ms = 30000;
  LoopServer s(l, echo);
  Client c(s.port());
  std::string big(8 << 20, 'b');
  for (size_t i = 0; i < big.size(); i += 4096)
    big[i] = static_cast<char>('a' + (i / 4096) % 26);
  std::string all = post("/big1", big) + post("/small", "s") + post("/big2", big);
  std::thread sender([&] { c.send(all); });
  auto r1 = c.read_response();
  auto r2 = c.read_response();
  auto r3 = c.read_response();
  sender.join();
  EXPECT_EQ(r1.status_line, "HTTP/1.1 200 OK");
  EXPECT_EQ(r1.header("X-Path"), "/big1");
  EXPECT_TRUE(r1.body == big);
  EXPECT_EQ(r2.header("X-Path"), "/small");
  EXPECT_EQ(r2.body, "s");
  EXPECT_EQ(r3.header("X-Path"), "/big2");
  EXPECT_TRUE(r3.body == big);
}

TEST(HttpServer, RequestSplitByteByByte) {
  LoopServer s({}, echo);
  Client c(s.port());
  std::string req = post("/bytes?x=1", "hello", "X-Echo: split\r\n");
  for (char ch : req) {
    ASSERT_TRUE(c.send(std::string_view(&ch, 1)));
    std::this_thread::sleep_for(1ms);  // separate segments, not a wait for a condition
  }
  auto r = c.read_response();
  EXPECT_EQ(r.status_line, "HTTP/1.1 200 OK");
  EXPECT_EQ(r.body, "hello");
  EXPECT_EQ(r.header("X-Query"), "x=1");
  EXPECT_EQ(r.header("X-Echo"), "split");
}

TEST(HttpServer, ChunkedBody) {
  LoopServer s({}, echo);
  Client c(s.port());
  ASSERT_TRUE(c.send("POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel"));
  std::this_thread::sleep_for(5ms);
  ASSERT_TRUE(c.send("lo\r\n6\r\n world\r\n0\r\n\r\n"));
  auto r = c.read_response();
  EXPECT_EQ(r.status_line, "HTTP/1.1 200 OK");
  EXPECT_EQ(r.body, "hello world");
}

TEST(HttpServer, ExpectContinue) {
  LoopServer s({}, echo);
  Client c(s.port());
  ASSERT_TRUE(
      c.send("POST /e HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"));
  EXPECT_EQ(c.read_head(), "HTTP/1.1 100 Continue\r\n\r\n");
  ASSERT_TRUE(c.send("hello"));
  auto r = c.read_response();
  EXPECT_EQ(r.status_line, "HTTP/1.1 200 OK");
  EXPECT_EQ(r.body, "hello");
}

TEST(HttpServer, ExpectContinueTooLargeGets413Instead) {
  LoopServer s({}, echo);
  Client c(s.port());
  ASSERT_TRUE(c.send(
      "POST /e HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 2000000\r\n\r\n"));
  auto r = c.read_response();
  EXPECT_EQ(r.status_line, "HTTP/1.1 413 Content Too Large");
  EXPECT_EQ(r.body, R"({"error":"request body too large","limit":1048576})");
  EXPECT_TRUE(c.wait_eof());
}

TEST(HttpServer, UnknownExpectation417) {
  LoopServer s({}, echo);
  Client c(s.port());
  ASSERT_TRUE(c.send(post("/e", "x", "Expect: teapot\r\n")));
  auto r = c.read_response();
  EXPECT_EQ(r.status_line, "HTTP/1.1 417 Expectation Failed");
  EXPECT_EQ(r.body, R"({"error":"expectation failed"})");
}

TEST(HttpServer, ConnectionClose) {
  LoopServer s({}, echo);
  Client c(s.port());
  ASSERT_TRUE(c.send(post("/x", "bye", "Connection: close\r\n")));
  auto r = c.read_response();
  EXPECT_EQ(r.status_line, "HTTP/1.1 200 OK");
  EXPECT_EQ(r.body, "bye");
  EXPECT_EQ(r.header("Connection"), "close");
  EXPECT_TRUE(c.wait_eof());
}

TEST(HttpServer, Http10ClosesUnlessKeepAlive) {
  LoopServer s({}, echo);
  {
    Client c(s.port());
    ASSERT_TRUE(c.send("GET /old HTTP/1.0\r\n\r\n"));
    auto r = c.read_response();
    EXPECT_EQ(r.status_line, "HTTP/1.1 200 OK");
    EXPECT_EQ(r.header("Connection"), "close");
    EXPECT_TRUE(c.wait_eof());
  }
  {
    Client c(s.port());
    ASSERT_TRUE(c.send("GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    auto r = c.read_response();
    EXPECT_EQ(r.status_line, "HTTP/1.1 200 OK");
    EXPECT_EQ(r.header("Connection"), "keep-alive");
    ASSERT_TRUE(c.send("GET /b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    r = c.read_response();
    EXPECT_EQ(r.header("X-Path"), "/b");
  }
}

TEST(HttpServer, HeadStripsBodyOptionsStar) {
  LoopServer s({}, [](Request &req, Responder res) {
    Response r;
    r.body = R"({"hello":"world"})";
    if (req.method() == "OPTIONS") r.status = 204;
    res.respond(std::move(r));
  });
  Client c(s.port());
  ASSERT_TRUE(c.send("HEAD /h HTTP/1.1\r\nHost: t\r\n\r\n"));
  auto r = c.read_response(true);
  EXPECT_EQ(r.status_line, "HTTP/1.1 200 OK");
  EXPECT_EQ(r.header("Content-Length"), "17");
  ASSERT_TRUE(c.send("OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n"));
  r = c.read_response();  // would read the HEAD body here had it been sent
  EXPECT_EQ(r.status_line, "HTTP/1.1 204 No Content");
  EXPECT_EQ(r.header("Allow"), "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS");
  EXPECT_FALSE(r.has_header("Content-Length"));
  ASSERT_TRUE(c.send("OPTIONS /path HTTP/1.1\r\nHost: t\r\n\r\n"));
  r = c.read_response();
  EXPECT_EQ(r.status_line, "HTTP/1.1 204 No Content");
}

TEST(HttpServer, Malformed400) {
  Observed seen;
  LoopServer s(
      {}, echo,
      {[&](const Request *req, int st, size_t, uint64_t) { seen.add(req == nullptr ? -st : st); },
       {}});
  {
    Client c(s.port());
    ASSERT_TRUE(c.send("HELLO WORLD\r\n\r\n"));
    auto r = c.read_response();
    EXPECT_EQ(r.status_line, "HTTP/1.1 400 Bad Request");
    EXPECT_EQ(r.body, R"({"error":"malformed request"})");
    EXPECT_EQ(r.header("Connection"), "close");
    EXPECT_TRUE(c.wait_eof());
  }
  {
    Client c(s.port());
    ASSERT_TRUE(c.send("GET / HTTP/1.1\r\nBad Header\r\n\r\n"));
    auto r = c.read_response();
    EXPECT_EQ(r.status_line, "HTTP/1.1 400 Bad Request");
    EXPECT_EQ(r.body, R"({"error":"malformed request"})");
  }
  {
    Client c(s.port());  // both framings: request smuggling shape
    ASSERT_TRUE(c.send(
        "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"));
    auto r = c.read_response();
    EXPECT_EQ(r.status_line, "HTTP/1.1 400 Bad Request");
  }
  EXPECT_TRUE(wait_until([&] { return seen.get().size() == 3; }));
  EXPECT_EQ(seen.get()[0], -400);  // no request line: null Request
  EXPECT_EQ(seen.get()[1], 400);
}

TEST(HttpServer, LengthRequired411) {
  LoopServer s({}, echo);
  Client c(s.port());
  ASSERT_TRUE(c.send("POST /x HTTP/1.1\r\nHost: t\r\n\r\n"));
  auto r = c.read_response();
  EXPECT_EQ(r.status_line, "HTTP/1.1 411 Length Required");
  EXPECT_EQ(r.body, R"({"error":"length required"})");
  EXPECT_TRUE(c.wait_eof());
}

TEST(HttpServer, EarlyTooLarge413BeforeBodyAndLingers) {
  LoopServer s({}, echo);
  Client c(s.port());
  ASSERT_TRUE(c.send("POST /big HTTP/1.1\r\nHost: t\r\nContent-Length: 104857600\r\n\r\n"));
  // No body byte was sent: the answer comes anyway.
  auto r = c.read_response();
  EXPECT_EQ(r.status_line, "HTTP/1.1 413 Content Too Large");
  EXPECT_EQ(r.body, R"({"error":"request body too large","limit":1048576})");
  EXPECT_EQ(r.header("Connection"), "close");
  // Lingering close: the server shut its write side (an orderly FIN, not a
  // reset) and keeps reading and discarding what the client still sends.
  std::string chunk(256 << 10, 'x');
  EXPECT_TRUE(c.send(chunk));
  EXPECT_TRUE(c.wait_clean_eof());
  EXPECT_TRUE(c.send(chunk));
  EXPECT_TRUE(c.send(chunk));
}

TEST(HttpServer, ChunkedOverflow413) {
  ServerLimits l;
  l.max_body = 1000;
  LoopServer s(l, echo);
  Client c(s.port());
  std::string chunk(800, 'a');
  ASSERT_TRUE(c.send("POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n320\r\n" +
                     chunk + "\r\n320\r\n" + chunk + "\r\n"));
  auto r = c.read_response();
  EXPECT_EQ(r.status_line, "HTTP/1.1 413 Content Too Large");
  EXPECT_EQ(r.body, R"({"error":"request body too large","limit":1000})");
  EXPECT_TRUE(c.wait_eof());
}

TEST(HttpServer, UnsupportedEncoding415) {
  LoopServer s({}, echo);
  Client c(s.port());
  ASSERT_TRUE(c.send(post("/x", "abc", "Content-Encoding: br\r\n")));
  auto r = c.read_response();
  EXPECT_EQ(r.status_line, "HTTP/1.1 415 Unsupported Media Type");
  EXPECT_EQ(r.body, R"({"error":"unsupported content encoding"})");
}

TEST(HttpServer, ContentType415) {
  ServerLimits l;
  l.content_types = {"application/json", "application/x-ndjson"};
  LoopServer s(l, echo);
  {
    Client c(s.port());
    ASSERT_TRUE(c.send(post("/x", "{}", "Content-Type: text/plain\r\n")));
    auto r = c.read_response();
    EXPECT_EQ(r.status_line, "HTTP/1.1 415 Unsupported Media Type");
    EXPECT_EQ(r.body, R"({"error":"unsupported content type"})");
  }
  {
    Client c(s.port());
    ASSERT_TRUE(c.send(post("/x", "{}")));  // a body without a type
    EXPECT_EQ(c.read_response().status, 415);
  }
  {
    Client c(s.port());
    ASSERT_TRUE(c.send(post("/x", "{}", "Content-Type: Application/JSON; charset=utf-8\r\n")));
    auto r = c.read_response();
    EXPECT_EQ(r.status_line, "HTTP/1.1 200 OK");
    EXPECT_EQ(r.body, "{}");
    ASSERT_TRUE(c.send("GET /no-body HTTP/1.1\r\nHost: t\r\n\r\n"));  // no body: no type needed
    EXPECT_EQ(c.read_response().status, 200);
  }
}

TEST(HttpServer, HeaderTooLarge431) {
  LoopServer s({}, echo);
  Client c(s.port());
  std::string big = "GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + std::string(20000, 'a') + "\r\n\r\n";
  c.send(big);  // the server may answer and close before taking it all
  auto r = c.read_response();
  EXPECT_EQ(r.status_line, "HTTP/1.1 431 Request Header Fields Too Large");
  EXPECT_EQ(r.body, R"({"error":"request header fields too large","limit":16384})");
  EXPECT_TRUE(c.wait_eof());
}

TEST(HttpServer, HeaderTimeout408) {
  LoopServer s(small_timeouts(), echo);
  Client c(s.port());
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(c.send("GET / HTTP/1.1\r\nHost: t\r\n"));
  auto r = c.read_response();
  auto elapsed = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(r.status_line, "HTTP/1.1 408 Request Timeout");
  EXPECT_EQ(r.body, R"({"error":"request timeout"})");
  EXPECT_EQ(r.header("Connection"), "close");
  EXPECT_GE(elapsed, 150ms);
  EXPECT_LT(elapsed, 2000ms);
  EXPECT_TRUE(c.wait_eof());
}

TEST(HttpServer, BodyTimeout408) {
  LoopServer s(small_timeouts(), echo);
  Client c(s.port());
  ASSERT_TRUE(c.send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nhello"));
  auto r = c.read_response();
  EXPECT_EQ(r.status_line, "HTTP/1.1 408 Request Timeout");
  EXPECT_EQ(r.body, R"({"error":"request timeout"})");
  EXPECT_TRUE(c.wait_eof());
}

TEST(HttpServer, IdleKeepAliveClosesSilently) {
  LoopServer s(small_timeouts(), echo);
  Client c(s.port());
  ASSERT_TRUE(c.send(post("/x", "a")));
  EXPECT_EQ(c.read_response().status, 200);
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(c.wait_eof());  // no 408, just the close
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 150ms);
  // A connection that never sends a byte is closed silently too.
  Client idle(s.port());
  EXPECT_TRUE(idle.wait_eof());
}

TEST(HttpServer, SlowlorisIsCutAtHeaderTimeout) {
  ServerLimits l;
  l.header_timeout_ms = 300;
  LoopServer s(l, echo);
  Client c(s.port());
  std::string req = "GET / HTTP/1.1\r\nHost: t\r\n";
  for (int i = 0; i < 1000; ++i)
    req += "X-" + std::to_string(i) + ": v\r\n";
  auto t0 = std::chrono::steady_clock::now();
  size_t sent = 0;
  while (sent < req.size() && !c.readable(50)) {  // one byte every 50 ms
    if (!c.send(std::string_view(&req[sent], 1))) break;
    ++sent;
    if (std::chrono::steady_clock::now() - t0 > 5s) break;
  }
  auto r = c.read_response();
  auto elapsed = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(r.status_line, "HTTP/1.1 408 Request Timeout");
  EXPECT_GE(elapsed, 250ms);
  EXPECT_LT(elapsed, 1500ms);  // not extended by each byte
  EXPECT_TRUE(c.wait_eof());
}

TEST(HttpServer, GzipAndDeflateBodies) {
  LoopServer s({}, echo);
  Client c(s.port());
  std::string text;
  for (int i = 0; i < 1000; ++i)
    text += R"({"device_id":"d)" + std::to_string(i) + "\"}\n";
  struct Case {
    const char *encoding;
    int bits;
  } cases[] = {{"gzip", 31}, {"x-gzip", 31}, {"deflate", 15}, {"deflate", -15}, {"GZIP", 31}};
  for (const auto &k : cases) {
    ASSERT_TRUE(c.send(post("/z", compress(text, k.bits),
                            "Content-Encoding: " + std::string(k.encoding) + "\r\n")));
    auto r = c.read_response();
    EXPECT_EQ(r.status_line, "HTTP/1.1 200 OK") << k.encoding << " " << k.bits;
    EXPECT_EQ(r.body, text) << k.encoding << " " << k.bits;
  }
  // gzip over chunked transfer coding
  std::string gz = compress("chunked gzip", 31);
  char size[16];
  snprintf(size, sizeof(size), "%zx", gz.size());
  ASSERT_TRUE(
      c.send("POST /z HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Encoding: "
             "gzip\r\n\r\n" +
             std::string(size) + "\r\n" + gz + "\r\n0\r\n\r\n"));
  auto r = c.read_response();
  EXPECT_EQ(r.body, "chunked gzip");
}

TEST(HttpServer, GzipBomb413WithLittleMemory) {
  // 50 MB of zeros, compressed as a stream (the test itself stays small).
  std::string gz;
  {
    z_stream zs{};
    deflateInit2(&zs, 9, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY);
    std::string zeros(1 << 20, '\0');
    char out[1 << 16];
    for (int i = 0; i < 50; ++i) {
      zs.next_in = reinterpret_cast<Bytef *>(zeros.data());
      zs.avail_in = static_cast<uInt>(zeros.size());
      do {
        zs.next_out = reinterpret_cast<Bytef *>(out);
        zs.avail_out = sizeof(out);
        deflate(&zs, i == 49 ? Z_FINISH : Z_NO_FLUSH);
        gz.append(out, sizeof(out) - zs.avail_out);
      } while (zs.avail_out == 0);
    }
    deflateEnd(&zs);
  }
  ASSERT_LT(gz.size(), 1u << 20);  // fits max_body: only the decompressed cap can stop it
  LoopServer s({}, echo);
  {
    std::ofstream("/proc/self/clear_refs") << "5";  // reset the peak RSS (VmHWM)
  }
  long before = proc_status_kb("VmHWM");
  Client c(s.port());
  ASSERT_TRUE(c.send(post("/bomb", gz, "Content-Encoding: gzip\r\n")));
  auto r = c.read_response();
  EXPECT_EQ(r.status_line, "HTTP/1.1 413 Content Too Large");
  EXPECT_EQ(r.body, R"({"error":"decompressed request body too large","limit":8388608})");
  long grown_mb = (proc_status_kb("VmHWM") - before) / 1024;
  EXPECT_LT(grown_mb, 30) << "inflating 50 MB must stop at the 8 MiB cap";
  // The body was read whole: the connection stays usable.
  ASSERT_TRUE(c.send(post("/after", "ok")));
  EXPECT_EQ(c.read_response().body, "ok");
}

TEST(HttpServer, CorruptGzip400) {
  LoopServer s({}, echo);
  Client c(s.port());
  std::string gz = compress(std::string(5000, 'q') + "tail", 31);
  gz[gz.size() / 2] ^= 0x55;
  ASSERT_TRUE(c.send(post("/z", gz, "Content-Encoding: gzip\r\n")));
  auto r = c.read_response();
  EXPECT_EQ(r.status_line, "HTTP/1.1 400 Bad Request");
  EXPECT_EQ(r.body, R"({"error":"invalid gzip body"})");
  std::string truncated = compress("hello", 31);
  truncated.resize(truncated.size() - 3);
  ASSERT_TRUE(c.send(post("/z", truncated, "Content-Encoding: gzip\r\n")));
  r = c.read_response();
  EXPECT_EQ(r.body, R"({"error":"invalid gzip body"})");
  ASSERT_TRUE(c.send(post("/z", "not deflate at all", "Content-Encoding: deflate\r\n")));
  r = c.read_response();
  EXPECT_EQ(r.body, R"({"error":"invalid deflate body"})");
}

TEST(HttpServer, DeferredDecodingIsTheHandlersChoice) {
  ServerLimits lim;
  lim.defer_decoding = true;
  lim.max_body_decompressed = 4096;
  // "/refuse" answers without decoding; anything else decodes, then echoes.
  LoopServer s(lim, [](Request &req, Responder res) {
    Response r;
    r.content_type = "text/plain";
    r.body = req.body_encoded() ? "encoded:" : "plain:";
    if (req.path() == "/refuse") {
      r.status = 503;
    } else if (std::optional<Response> refusal = req.decode_body()) {
      r = std::move(*refusal);
    } else {
      r.body += std::string(req.body());
    }
    res.respond(std::move(r));
  });
  Client c(s.port());
  std::string gz = compress("hello, deferred", 31);
  ASSERT_TRUE(c.send(post("/z", gz, "Content-Encoding: gzip\r\n")));
  EXPECT_EQ(c.read_response().body, "encoded:hello, deferred");
  ASSERT_TRUE(c.send(post("/z", "identity")));
  EXPECT_EQ(c.read_response().body, "plain:identity");
  // Refused unread: a corrupt body is never looked at.
  ASSERT_TRUE(c.send(post("/refuse", "not gzip", "Content-Encoding: gzip\r\n")));
  auto r = c.read_response();
  EXPECT_EQ(r.status_line, "HTTP/1.1 503 Service Unavailable");
  EXPECT_EQ(r.body, "encoded:");
  // Decoded on demand, the same answers as when the server decodes, on the
  // same connection.
  ASSERT_TRUE(c.send(post("/z", "not gzip", "Content-Encoding: gzip\r\n")));
  r = c.read_response();
  EXPECT_EQ(r.status_line, "HTTP/1.1 400 Bad Request");
  EXPECT_EQ(r.body, R"({"error":"invalid gzip body"})");
  ASSERT_TRUE(
      c.send(post("/z", compress(std::string(5000, 'x'), 31), "Content-Encoding: gzip\r\n")));
  r = c.read_response();
  EXPECT_EQ(r.status_line, "HTTP/1.1 413 Content Too Large");
  EXPECT_EQ(r.body, R"({"error":"decompressed request body too large","limit":4096})");
}

TEST(HttpServer, AsyncRespondFromTimer) {
  LoopServer *sp = nullptr;
  struct Pending {
    uv_timer_t timer;
    Responder responder;
    std::string body;
  };
  LoopServer s({}, [&](Request &req, Responder res) {
    auto *p = new Pending{{}, std::move(res), "later:" + std::string(req.body())};
    uv_timer_init(sp->loop(), &p->timer);
    p->timer.data = p;
    uv_timer_start(
        &p->timer,
        [](uv_timer_t *t) {
          auto *p = static_cast<Pending *>(t->data);
          Response r;
          r.status = 202;
          r.body = p->body;
          p->responder.respond(std::move(r));
          uv_close(reinterpret_cast<uv_handle_t *>(t),
                   [](uv_handle_t *h) { delete static_cast<Pending *>(h->data); });
        },
        50, 0);
  });
  sp = &s;
  Client c(s.port());
  ASSERT_TRUE(c.send(post("/a", "x") + post("/b", "y")));  // pipelined behind a slow answer
  auto r = c.read_response();
  EXPECT_EQ(r.status_line, "HTTP/1.1 202 Accepted");
  EXPECT_EQ(r.body, "later:x");
  r = c.read_response();
  EXPECT_EQ(r.body, "later:y");
}

TEST(HttpServer, DroppedResponderAnswers500AndThrowingHandlerToo) {
  LoopServer s({}, [](Request &req, Responder) {
    if (req.path() == "/throw") throw std::runtime_error("boom");
  });
  Client c(s.port());
  ASSERT_TRUE(c.send(post("/drop", "x")));
  auto r = c.read_response();
  EXPECT_EQ(r.status_line, "HTTP/1.1 500 Internal Server Error");
  EXPECT_EQ(r.body, R"({"error":"internal error"})");
  ASSERT_TRUE(c.send(post("/throw", "x")));
  r = c.read_response();
  EXPECT_EQ(r.status_line, "HTTP/1.1 500 Internal Server Error");
}

TEST(HttpServer, HandlerNeverRespondsClientLeaves) {
  std::vector<Responder> held;  // outlives the server: its Responders must be no-ops
  std::atomic<int> called{0};
  Observed seen;
  auto s = std::make_unique<LoopServer>(
      ServerLimits{},
      [&](Request &, Responder res) {
        held.push_back(std::move(res));
        ++called;
      },
      ServerObserver{[&](const Request *, int st, size_t, uint64_t) { seen.add(st); }, {}});
  {
    Client c(s->port());
    ASSERT_TRUE(c.send(post("/never", "x")));
    ASSERT_TRUE(wait_until([&] { return called == 1; }));
  }
  EXPECT_TRUE(wait_until([&] { return s->connection_count() == 0; }));
  EXPECT_EQ(seen.get(), std::vector<int>{499});
  // Responding now is a no-op.
  s->run([&] { held[0].respond(Response{}); });
  {
    Client c(s->port());  // a second one is still pending when the server closes
    ASSERT_TRUE(c.send(post("/never", "y")));
    ASSERT_TRUE(wait_until([&] { return called == 2; }));
    s->stop(100);
  }
  EXPECT_EQ(s->loop_close_rc(), 0);
  s.reset();
  held.clear();  // after the server: the Connection is gone, nothing to answer
}

TEST(HttpServer, ForwardedForTrustedAndUntrusted) {
  auto client_of = [](std::vector<std::string> trusted, std::string xff) {
    ServerLimits l;
    l.trusted_proxies = std::move(trusted);
    LoopServer s(l, echo);
    Client c(s.port());
    c.send(post("/", "", xff.empty() ? "" : "X-Forwarded-For: " + xff + "\r\n"));
    return c.read_response().header("X-Client");
  };
  // peer trusted: rightmost untrusted address wins
  EXPECT_EQ(client_of({"127.0.0.0/8"}, "198.51.100.1, 203.0.113.7"), "203.0.113.7");
  EXPECT_EQ(client_of({"127.0.0.1", "203.0.113.0/24"}, "198.51.100.1, 203.0.113.7"),
            "198.51.100.1");
  EXPECT_EQ(client_of({"127.0.0.0/8"}, "2001:db8::1"), "2001:db8::1");
  EXPECT_EQ(client_of({"127.0.0.0/8"}, "garbage, 198.51.100.9"), "198.51.100.9");
  EXPECT_EQ(client_of({"127.0.0.0/8"}, ""), "127.0.0.1");
  // peer not trusted: the header is ignored
  EXPECT_EQ(client_of({"10.0.0.0/8"}, "198.51.100.1"), "127.0.0.1");
  EXPECT_EQ(client_of({}, "198.51.100.1"), "127.0.0.1");
  ServerLimits bad;
  bad.trusted_proxies = {"10.0.0.0/33"};
  EXPECT_THROW(Server(uv_default_loop(), bad, echo), std::invalid_argument);
}

TEST(HttpServer, MaxConnections) {
  ServerLimits l;
  l.max_connections = 2;
  LoopServer s(l, echo);
  auto c1 = std::make_unique<Client>(s.port());
  Client c2(s.port());
  for (Client *c : {c1.get(), &c2}) {
    ASSERT_TRUE(c->send(post("/", "k")));
    ASSERT_EQ(c->read_response().status, 200);
  }
  Client c3(s.port());  // the kernel accepts; the server closes it at once
  c3.send(post("/", "k"));
  EXPECT_TRUE(c3.wait_eof());
  EXPECT_EQ(s.connection_count(), 2u);
  c1.reset();
  ASSERT_TRUE(wait_until([&] { return s.connection_count() == 1; }));
  Client c4(s.port());
  ASSERT_TRUE(c4.send(post("/", "again")));
  EXPECT_EQ(c4.read_response().body, "again");
}

TEST(HttpServer, GracefulCloseFinishesRequestInProgress) {
  LoopServer *sp = nullptr;
  std::atomic<bool> in_handler{false}, done{false};
  struct Pending {
    uv_timer_t timer;
    Responder responder;
  };
  LoopServer s({}, [&](Request &req, Responder res) {
    if (req.path() != "/slow") return echo(req, std::move(res));
    auto *p = new Pending{{}, std::move(res)};
    uv_timer_init(sp->loop(), &p->timer);
    p->timer.data = p;
    uv_timer_start(
        &p->timer,
        [](uv_timer_t *t) {
          auto *p = static_cast<Pending *>(t->data);
          Response r;
          r.body = "finished";
          p->responder.respond(std::move(r));
          uv_close(reinterpret_cast<uv_handle_t *>(t),
                   [](uv_handle_t *h) { delete static_cast<Pending *>(h->data); });
        },
        300, 0);
    in_handler = true;
  });
  sp = &s;
  Client idle(s.port());
  ASSERT_TRUE(idle.send(post("/", "x")));
  ASSERT_EQ(idle.read_response().status, 200);
  Client busy(s.port());
  ASSERT_TRUE(busy.send(post("/slow", "x")));
  ASSERT_TRUE(wait_until([&] { return in_handler.load(); }));
  s.close(5000, [&] { done = true; });
  EXPECT_TRUE(idle.wait_eof());  // idle keep-alive: closed once quiet
  auto r = busy.read_response();
  EXPECT_EQ(r.status_line, "HTTP/1.1 200 OK");
  EXPECT_EQ(r.body, "finished");
  EXPECT_EQ(r.header("Connection"), "close");
  EXPECT_TRUE(busy.wait_eof());
  EXPECT_TRUE(wait_until([&] { return done.load(); }));
  Client late(s.port());
  EXPECT_FALSE(late.connected());  // no longer listening
  s.stop();
  EXPECT_EQ(s.loop_close_rc(), 0);
}

TEST(HttpServer, GracefulCloseServesTheFirstRequestOfAFreshConnection) {
  // Accepted a moment before the close, its request already on the way: a
  // reset would lose a request the client sent (found under SIGHUP storms).
  LoopServer s({}, echo);
  Client fresh(s.port());
  ASSERT_TRUE(wait_until([&] { return s.connection_count() == 1; }));
  std::atomic<bool> done{false};
  s.close(5000, [&] { done = true; });
  ASSERT_TRUE(fresh.send(post("/", "first")));
  auto r = fresh.read_response();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "first");
  EXPECT_EQ(r.header("Connection"), "close");
  EXPECT_TRUE(fresh.wait_eof());
  EXPECT_TRUE(wait_until([&] { return done.load(); }));
  s.stop();
  EXPECT_EQ(s.loop_close_rc(), 0);
}

TEST(HttpServer, GracefulCloseServesARequestSentOnAnIdleConnection) {
  // The race behind resets on reload: the client reuses its keep-alive
  // connection just as the drain begins. Its request is served, answered
  // with Connection: close, and only then is the connection closed.
  LoopServer s({}, echo);
  Client c(s.port());
  ASSERT_TRUE(c.send(post("/", "one")));
  ASSERT_EQ(c.read_response().header("Connection"), "");
  std::atomic<bool> done{false};
  s.close(5000, [&] { done = true; });
  ASSERT_TRUE(c.send(post("/", "two")));
  auto r = c.read_response();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "two");
  EXPECT_EQ(r.header("Connection"), "close");
  EXPECT_TRUE(c.wait_eof());
  EXPECT_TRUE(wait_until([&] { return done.load(); }));
  s.stop();
  EXPECT_EQ(s.loop_close_rc(), 0);
}

TEST(HttpServer, GracefulCloseServesPipelinedRequestsAfterTheDrainBegins) {
  // Two requests in one write, the drain between them: both are answered,
  // the second with Connection: close; the bytes after it are read and
  // dropped (a lingering close), never a reset under the answers.
  LoopServer *sp = nullptr;
  std::atomic<bool> closing{false}, done{false};
  LoopServer s({}, [&](Request &req, Responder res) {
    if (!closing.exchange(true)) sp->server().close(5000, [&] { done = true; });
    echo(req, std::move(res));
  });
  sp = &s;
  Client c(s.port());
  ASSERT_TRUE(c.send(post("/", "a") + post("/", "b")));
  auto a = c.read_response();
  EXPECT_EQ(a.body, "a");
  auto b = c.read_response();
  EXPECT_EQ(b.body, "b");
  EXPECT_EQ(b.header("Connection"), "close");
  EXPECT_TRUE(c.wait_eof());
  EXPECT_TRUE(wait_until([&] { return done.load(); }));
  s.stop();
  EXPECT_EQ(s.loop_close_rc(), 0);
}

TEST(HttpServer, GracefulCloseDeadlineForcesClose) {
  std::atomic<int> called{0};
  std::vector<Responder> held;
  {
    LoopServer s({}, [&](Request &, Responder res) {
      held.push_back(std::move(res));
      ++called;
    });
    Client c(s.port());
    ASSERT_TRUE(c.send(post("/never", "x")));
    ASSERT_TRUE(wait_until([&] { return called == 1; }));
    auto t0 = std::chrono::steady_clock::now();
    std::atomic<bool> done{false};
    s.close(200, [&] { done = true; });
    EXPECT_TRUE(c.wait_eof());
    EXPECT_TRUE(wait_until([&] { return done.load(); }));
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 150ms);
    s.stop();
    EXPECT_EQ(s.loop_close_rc(), 0);
  }
}

TEST(HttpServer, TenThousandSequentialConnectionsNoFdGrowth) {
  LoopServer s({}, echo);
  {  // warm up lazily created things (loop internals, the client side)
    Client c(s.port());
    c.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    c.read_response();
  }
  ASSERT_TRUE(wait_until([&] { return s.connection_count() == 0; }));
  size_t before = count_fds();
  int ok = 0;
  for (int i = 0; i < 10000; ++i) {
    Client c(s.port());
    if (!c.send("GET /n HTTP/1.1\r\nHost: t\r\n\r\n")) continue;
    if (c.read_response().status == 200) ++ok;
  }
  EXPECT_EQ(ok, 10000);
  EXPECT_TRUE(wait_until([&] { return s.connection_count() == 0; }, 10000ms));
  EXPECT_EQ(count_fds(), before);
}

TEST(HttpServer, AdoptAndReusePort) {
  // listen with SO_REUSEPORT twice on one port, then adopt an fd.
  uv_loop_t loop;
  uv_loop_init(&loop);
  {
    Server a(&loop, {}, echo), b(&loop, {}, echo);
    ASSERT_EQ(a.listen("127.0.0.1:0", true), 0);
    int port = a.local_port();
    ASSERT_GT(port, 0);
    EXPECT_EQ(b.listen("127.0.0.1:" + std::to_string(port), true), 0);
    EXPECT_EQ(a.listen("127.0.0.1:0", false), UV_EBUSY);
    EXPECT_EQ(Server(&loop, {}, echo).listen("nonsense", false), UV_EINVAL);
    Server v6(&loop, {}, echo);
    if (v6.listen("[::1]:0", false) == 0) {
      EXPECT_GT(v6.local_port(), 0);
    }
  }
  uv_run(&loop, UV_RUN_DEFAULT);  // destroyed while open: memory freed in close callbacks
  EXPECT_EQ(uv_loop_close(&loop), 0);

  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof(a)), 0);
  ASSERT_EQ(::listen(fd, 16), 0);
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len);
  LoopServer s({}, echo);  // its own listener is irrelevant here
  int rc = -1;
  std::unique_ptr<Server> adopted;
  s.run([&] {
    adopted = std::make_unique<Server>(s.loop(), ServerLimits{}, echo);
    rc = adopted->adopt(fd);
  });
  ASSERT_EQ(rc, 0);
  {
    Client c(ntohs(a.sin_port));
    ASSERT_TRUE(c.send(post("/adopted", "yes")));
    EXPECT_EQ(c.read_response().body, "yes");
  }
  std::atomic<bool> closed{false};
  s.run([&] { adopted->close(1000, [&] { closed = true; }); });
  ASSERT_TRUE(wait_until([&] { return closed.load(); }));
  s.run([&] { adopted.reset(); });
  EXPECT_EQ(fcntl(fd, F_GETFD), 0) << "the caller's fd stays open";
  ::close(fd);
}

}  // namespace
}  // namespace ingestd::http::test
