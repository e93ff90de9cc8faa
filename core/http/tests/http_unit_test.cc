// Unit tests of the socket-free parts: inflating, addresses, the connection core.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "http/address.h"
#include "http/connection_core.h"
#include "http/inflate.h"
#include "http/tests/http_test_util.h"

namespace ingestd::http::detail {
namespace {

TEST(Inflate, EncodingsAndCap) {
  EXPECT_EQ(parse_content_encoding(" GZip "), Encoding::kGzip);
  EXPECT_EQ(parse_content_encoding("x-gzip"), Encoding::kGzip);
  EXPECT_EQ(parse_content_encoding("deflate"), Encoding::kDeflate);
  EXPECT_EQ(parse_content_encoding("identity"), Encoding::kIdentity);
  EXPECT_EQ(parse_content_encoding("gzip, gzip"), Encoding::kUnsupported);
  EXPECT_EQ(parse_content_encoding("br"), Encoding::kUnsupported);

  Inflater inf;
  std::string out;
  std::string text(100000, 'z');
  auto gz = test::compress(text, 31);
  EXPECT_EQ(inf.inflate(Encoding::kGzip, gz, 1 << 20, out), Inflater::Result::kOk);
  EXPECT_EQ(out, text);
  EXPECT_EQ(inf.inflate(Encoding::kGzip, gz, text.size(), out), Inflater::Result::kOk);
  EXPECT_EQ(inf.inflate(Encoding::kGzip, gz, text.size() - 1, out), Inflater::Result::kTooLarge);
  EXPECT_LE(out.size(), text.size());
  // Two gzip members (RFC 1952), then trailing garbage.
  auto two = test::compress("ab", 31) + test::compress("cd", 31);
  EXPECT_EQ(inf.inflate(Encoding::kGzip, two, 100, out), Inflater::Result::kOk);
  EXPECT_EQ(out, "abcd");
  EXPECT_EQ(inf.inflate(Encoding::kGzip, two + "x", 100, out), Inflater::Result::kCorrupt);
  // deflate: zlib-wrapped and raw; gzip bytes are not deflate.
  EXPECT_EQ(inf.inflate(Encoding::kDeflate, test::compress("zz", 15), 100, out),
            Inflater::Result::kOk);
  EXPECT_EQ(out, "zz");
  EXPECT_EQ(inf.inflate(Encoding::kDeflate, test::compress("raw", -15), 100, out),
            Inflater::Result::kOk);
  EXPECT_EQ(out, "raw");
  EXPECT_EQ(inf.inflate(Encoding::kGzip, test::compress("zz", 15), 100, out),
            Inflater::Result::kCorrupt);
}

TEST(Address, CidrAndForwardedFor) {
  auto c = parse_cidr("10.1.0.0/16");
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->contains(*parse_ip("10.1.200.3")));
  EXPECT_FALSE(c->contains(*parse_ip("10.2.0.1")));
  EXPECT_TRUE(c->contains(*parse_ip("::ffff:10.1.0.9")));  // v4-mapped
  EXPECT_TRUE(parse_cidr("2001:db8::/32")->contains(*parse_ip("[2001:db8:1::5]:443")));
  EXPECT_TRUE(parse_cidr("10.0.0.0/7"));
  EXPECT_TRUE(parse_cidr("10.0.0.0/5")->contains(*parse_ip("12.0.0.1")));
  EXPECT_FALSE(parse_cidr("10.0.0.0/33"));
  EXPECT_FALSE(parse_cidr("10.0.0/8"));
  EXPECT_FALSE(parse_cidr("10.0.0.0/x"));
  EXPECT_FALSE(parse_ip("1.2.3.4.5"));
  EXPECT_EQ(parse_ip("1.2.3.4:80")->family, 4);

  TrustedProxies t({"10.0.0.0/8", "192.168.0.1"});
  auto peer = *parse_ip("10.0.0.1");
  std::vector<std::string_view> xff = {"1.1.1.1, 10.9.9.9", " 192.168.0.1 , 10.0.0.2"};
  EXPECT_EQ(t.client(peer, "10.0.0.1", xff), "1.1.1.1");
  xff = {"10.1.1.1, 10.2.2.2"};
  EXPECT_EQ(t.client(peer, "10.0.0.1", xff), "10.1.1.1");  // all trusted: leftmost
  xff = {"1.1.1.1:5555"};
  EXPECT_EQ(t.client(peer, "10.0.0.1", xff), "1.1.1.1");
  xff = {"1.1.1.1"};
  EXPECT_EQ(t.client(*parse_ip("8.8.8.8"), "8.8.8.8", xff), "8.8.8.8");
  EXPECT_THROW(TrustedProxies({"nope"}), std::invalid_argument);
}

// A transport that records what the core asks for.
struct FakeIo final : ConnectionIo {
  std::string written;
  bool write_pending = false;
  bool closed = false, lingering = false, reading = false;
  uint64_t timer = 0, now = 1000;
  std::vector<uint64_t> dispatched;
  std::vector<int> observed;
  int io_write(std::string_view d, bool response) override {
    written += d;
    if (response) write_pending = true;
    return 0;
  }
  void io_read(bool on) override { reading = on; }
  void io_timer(uint64_t ms) override { timer = ms; }
  void io_linger() override { lingering = true; }
  void io_close() override { closed = true; }
  uint64_t io_now() override { return now; }
  void io_dispatch(Request &, uint64_t seq) override { dispatched.push_back(seq); }
  void io_observe(const Request *, int status, size_t, uint64_t) override {
    observed.push_back(status);
  }
};

struct CoreFixture {
  CoreConfig config{ServerLimits{}};
  Inflater inflater;
  FakeIo io;
  ConnectionCore core{config, inflater, io};
  void feed(std::string_view s) {
    while (!s.empty()) {
      auto space = core.read_space();
      if (space.empty()) return;
      size_t n = std::min(space.size(), s.size());
      std::memcpy(space.data(), s.data(), n);
      s.remove_prefix(n);
      core.on_read(n);
    }
  }
  void complete_write() {
    io.write_pending = false;
    core.on_write_done(0);
  }
};

TEST(ConnectionCore, PipelineWaitsForEachAnswerAndBoundsReading) {
  CoreFixture f;
  f.core.start("127.0.0.1");
  EXPECT_TRUE(f.io.reading);
  EXPECT_EQ(f.io.timer, 10000u);  // header timeout before the first byte
  std::string many;
  for (int i = 0; i < 1000; ++i)
    many += "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  f.feed(many);  // more than the read buffer
  ASSERT_EQ(f.io.dispatched.size(), 1u);
  EXPECT_FALSE(f.io.reading) << "buffer full while an answer is pending: stop reading";
  f.core.respond(f.io.dispatched[0], Response{});
  f.core.respond(f.io.dispatched[0], Response{});  // a second answer is ignored
  EXPECT_EQ(f.io.observed.size(), 1u);
  EXPECT_EQ(f.io.dispatched.size(), 1u) << "no parsing before the write completed";
  f.complete_write();
  EXPECT_EQ(f.io.dispatched.size(), 2u);
  EXPECT_TRUE(f.io.reading);
  EXPECT_EQ(f.io.written.find("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                              "Content-Length: 0\r\n\r\n"),
            0u);
}

TEST(ConnectionCore, EofWhileHandlerPendingIs499) {
  CoreFixture f;
  f.core.start("127.0.0.1");
  f.feed("GET / HTTP/1.1\r\n\r\n");
  ASSERT_EQ(f.io.dispatched.size(), 1u);
  f.core.on_eof();
  EXPECT_TRUE(f.io.closed);
  EXPECT_EQ(f.io.observed, std::vector<int>{499});
  f.core.respond(f.io.dispatched[0], Response{});
  EXPECT_EQ(f.io.written, "");
}

TEST(ConnectionCore, StrayCrlfBetweenRequestsKeepsTheIdleTimer) {
  CoreFixture f;
  f.core.start("127.0.0.1");
  f.feed("POST / HTTP/1.1\r\nContent-Length: 1\r\n\r\nx");
  ASSERT_EQ(f.io.dispatched.size(), 1u);
  f.core.respond(f.io.dispatched[0], Response{});
  f.complete_write();
  EXPECT_EQ(f.io.timer, 60000u);
  f.feed("\r\n");
  EXPECT_EQ(f.io.timer, 60000u) << "CRLF alone does not start a request";
  f.feed("GET / HTTP/1.1\r\n");
  EXPECT_EQ(f.io.timer, 10000u);
  f.io.now += 10000;
  f.core.on_timer();
  EXPECT_NE(f.io.written.find("HTTP/1.1 408 Request Timeout\r\n"), std::string::npos);
  EXPECT_EQ(f.io.observed, (std::vector<int>{200, 408}));
  f.complete_write();
  EXPECT_TRUE(f.io.lingering);
  EXPECT_FALSE(f.io.closed);
  f.core.on_timer();  // linger time over
  EXPECT_TRUE(f.io.closed);
}

}  // namespace
}  // namespace ingestd::http::detail
