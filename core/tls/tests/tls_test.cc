// Sessions against each other in memory: handshake, data, verification
// failures, mutual TLS, ALPN, garbage before the handshake.
#include "tls/tls.h"

#include <gtest/gtest.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "tls/test_certs.h"

namespace ingestd::tls {
namespace {

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ingestd-tls-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    testing::write_test_pki(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string f(const char *name) const { return dir_ + "/" + name; }

  std::shared_ptr<const Context> server(bool mtls = false) {
    ServerConfig c;
    c.cert_file = f("server.pem");
    c.key_file = f("server.key");
    if (mtls) c.client_ca_file = f("ca.pem");
    std::string err;
    auto ctx = Context::server(c, &err);
    EXPECT_TRUE(ctx) << err;
    return ctx;
  }
  std::shared_ptr<const Context> client(const std::string &ca, const std::string &cert = "",
                                        const std::string &key = "") {
    ClientConfig c;
    c.ca_file = ca;
    c.client_cert = cert;
    c.client_key = key;
    std::string err;
    auto ctx = Context::client(c, &err);
    EXPECT_TRUE(ctx) << err;
    return ctx;
  }

  // Moves bytes both ways until neither side has output; the final statuses.
  static void pump(Session &a, Session &b) {
    for (int i = 0; i < 20; ++i) {
      std::string ab, ba;
      a.take_output(&ab);
      b.feed(ab.data(), ab.size());
      if (!b.handshake_done()) b.handshake();
      b.take_output(&ba);
      a.feed(ba.data(), ba.size());
      if (!a.handshake_done()) a.handshake();
      if (ab.empty() && ba.empty() && !a.has_output() && !b.has_output()) return;
    }
  }
  static std::string drain(Session &s) {
    std::string out;
    char buf[4096];
    for (;;) {
      auto r = s.read(buf);
      if (r.n == 0) return out;
      out.append(buf, r.n);
    }
  }

  std::string dir_;
};

TEST_F(TlsTest, HandshakeAndDataBothWays) {
  Session srv(server());
  Session cli(client(f("ca.pem")), "localhost");
  ASSERT_TRUE(cli.write("GET / HTTP/1.1\r\n\r\n"));  // queued until the handshake
  cli.handshake();
  pump(cli, srv);
  ASSERT_TRUE(srv.handshake_done()) << srv.error();
  ASSERT_TRUE(cli.handshake_done()) << cli.error();
  pump(cli, srv);
  EXPECT_EQ(drain(srv), "GET / HTTP/1.1\r\n\r\n");
  ASSERT_TRUE(srv.write("HTTP/1.1 200 OK\r\n\r\n"));
  pump(srv, cli);
  EXPECT_EQ(drain(cli), "HTTP/1.1 200 OK\r\n\r\n");
  EXPECT_EQ(srv.peer_identity(), "");  // no client certificate asked for
  EXPECT_EQ(srv.version(), "TLSv1.3");
}

TEST_F(TlsTest, IpAddressIsVerifiedAgainstTheIpSan) {
  Session srv(server());
  Session cli(client(f("ca.pem")), "127.0.0.1");
  cli.handshake();
  pump(cli, srv);
  EXPECT_TRUE(cli.handshake_done()) << cli.error();
}

TEST_F(TlsTest, WrongCaIsRefusedWithTheReason) {
  Session srv(server());
  Session cli(client(f("other-ca.pem")), "localhost");
  cli.handshake();
  pump(cli, srv);
  EXPECT_FALSE(cli.handshake_done());
  EXPECT_NE(cli.error().find("certificate verify failed"), std::string::npos) << cli.error();
  EXPECT_NE(cli.error().find("unable to get local issuer certificate"), std::string::npos)
      << cli.error();
}

TEST_F(TlsTest, WrongHostNameIsRefused) {
  Session srv(server());
  Session cli(client(f("ca.pem")), "redis.example.com");
  cli.handshake();
  pump(cli, srv);
  EXPECT_FALSE(cli.handshake_done());
  EXPECT_NE(cli.error().find("hostname mismatch"), std::string::npos) << cli.error();
}

TEST_F(TlsTest, MutualTlsWantsACertificateFromTheRightCa) {
  {
    Session srv(server(true));
    Session cli(client(f("ca.pem"), f("client.pem"), f("client.key")), "localhost");
    cli.handshake();
    pump(cli, srv);
    ASSERT_TRUE(srv.handshake_done()) << srv.error();
    EXPECT_EQ(srv.peer_identity(), "rider-app");
  }
  {
    Session srv(server(true));
    Session cli(client(f("ca.pem")), "localhost");
    cli.write("x");
    cli.handshake();
    pump(cli, srv);
    char buf[16];
    pump(cli, srv);
    auto r = srv.read(buf);
    EXPECT_EQ(r.status, Session::Status::kError);
    EXPECT_NE(srv.error().find("peer did not return a certificate"), std::string::npos)
        << srv.error();
  }
  {
    Session srv(server(true));
    Session cli(client(f("ca.pem"), f("other-client.pem"), f("other-client.key")), "localhost");
    cli.write("x");
    cli.handshake();
    pump(cli, srv);
    char buf[16];
    auto r = srv.read(buf);
    EXPECT_EQ(r.status, Session::Status::kError);
    EXPECT_NE(srv.error().find("certificate verify failed"), std::string::npos) << srv.error();
  }
}

TEST_F(TlsTest, PlainHttpBeforeTheHandshakeIsAnError) {
  Session srv(server());
  std::string plain = "POST /v1/trace HTTP/1.1\r\nHost: x\r\n\r\n";
  srv.feed(plain.data(), plain.size());
  char buf[64];
  auto r = srv.read(buf);
  EXPECT_EQ(r.status, Session::Status::kError);
  EXPECT_FALSE(srv.error().empty());
}

TEST_F(TlsTest, ContextErrorsNameTheFile) {
  ServerConfig c;
  c.cert_file = f("server.pem");
  c.key_file = f("missing.key");
  std::string err;
  EXPECT_FALSE(Context::server(c, &err));
  EXPECT_EQ(err, "tls_key " + f("missing.key") + ": No such file or directory");
  c.key_file = f("client.key");  // another certificate's key
  EXPECT_FALSE(Context::server(c, &err));
  EXPECT_EQ(err, "tls_key " + f("client.key") + " does not match tls_cert " + f("server.pem"));
  std::ofstream(f("garbage.pem")) << "not a certificate\n";
  c.cert_file = f("garbage.pem");
  EXPECT_FALSE(Context::server(c, &err));
  EXPECT_EQ(err.rfind("tls_cert " + f("garbage.pem") + ": ", 0), 0u) << err;
  c.cert_file = f("server.pem");
  c.key_file = f("server.key");
  c.min_version = "1.1";
  EXPECT_FALSE(Context::server(c, &err));
  EXPECT_NE(err.find("tls_min_version"), std::string::npos);
}

TEST_F(TlsTest, ServerRefusesAlpnWithoutHttp11) {
  Session srv(server());
  Session cli(client(f("ca.pem")), "localhost");
  static const unsigned char kH2[] = {2, 'h', '2'};
  // The client context is shared and const: set ALPN on this session only.
  ASSERT_EQ(SSL_set_alpn_protos(cli.native(), kH2, sizeof kH2), 0);
  cli.handshake();
  pump(cli, srv);
  EXPECT_FALSE(srv.handshake_done());
}

TEST_F(TlsTest, ServerSelectsHttp11) {
  Session srv(server());
  Session cli(client(f("ca.pem")), "localhost");
  static const unsigned char kBoth[] = {2, 'h', '2', 8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  ASSERT_EQ(SSL_set_alpn_protos(cli.native(), kBoth, sizeof kBoth), 0);
  cli.handshake();
  pump(cli, srv);
  ASSERT_TRUE(srv.handshake_done()) << srv.error();
  EXPECT_EQ(srv.alpn(), "http/1.1");
  EXPECT_EQ(cli.alpn(), "http/1.1");
}

}  // namespace
}  // namespace ingestd::tls
