// The HTTP client, the SigV4 signer and every source of the credentials chain
// against local peers: tests/peers/firehose_peer.py (botocore verifies each
// signature) and fake_aws.py (IMDSv2, STS, container credentials). Loopback
// only; every process started here is stopped (SIGTERM, waitpid).
#include <fcntl.h>
#include <gtest/gtest.h>

#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>
#include "testing/peer_process.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "aws/chain.h"

extern char **environ;

namespace ingestd::aws {
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

const char *kRegion = "eu-west-1";
const char *kStream = "trace";

class AwsPeerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    uv_loop_init(&loop_);
    http_ = std::make_unique<HttpClient>(&loop_, &log_, &metrics_);
    tmp_ = std::filesystem::temp_directory_path() /
           ("ingestd_aws_test_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(tmp_);
    // Nothing from the real environment leaks in; IMDS only where a test asks.
    env_ = {{"AWS_EC2_METADATA_DISABLED", "true"}, {"HOME", tmp_.string()}};
  }
  void TearDown() override {
    chain_.reset();
    http_.reset();
    uv_run(&loop_, UV_RUN_DEFAULT);
    EXPECT_EQ(uv_loop_close(&loop_), 0);
    std::filesystem::remove_all(tmp_);
  }

  std::unique_ptr<Peer> firehose(const std::vector<std::string> &creds) {
    std::vector<std::string> args = {INGESTD_PYTHON, PEERS_DIR "/firehose_peer.py",
                                     "--port",       "0",
                                     "--region",     kRegion,
                                     "--stream",     kStream};
    for (const auto &c : creds) {
      args.push_back("--credentials");
      args.push_back(c);
    }
    auto p = std::make_unique<Peer>(args);
    EXPECT_GT(p->port(), 0) << "firehose_peer.py did not start";
    return p;
  }
  std::unique_ptr<Peer> fake(const std::vector<std::string> &creds, double expires_in = 3600,
                             std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {
        INGESTD_PYTHON, FAKE_AWS, "--port", "0", "--expires-in", std::to_string(expires_in)};
    for (const auto &c : creds) {
      args.push_back("--credentials");
      args.push_back(c);
    }
    for (auto &e : extra)
      args.push_back(e);
    auto p = std::make_unique<Peer>(args);
    EXPECT_GT(p->port(), 0) << "fake_aws.py did not start";
    return p;
  }

  Chain &chain(ChainConfig cfg = {}, ChainOptions opts = {}) {
    auto env = env_;
    opts.getenv = [env](const char *name) -> std::optional<std::string> {
      auto it = env.find(name);
      if (it == env.end()) return std::nullopt;
      return it->second;
    };
    chain_ = std::make_unique<Chain>(std::move(cfg), http_.get(), &log_, &metrics_, opts);
    return *chain_;
  }

  // Plain (unsigned) request; waits for the answer.
  HttpResponse plain(const std::string &method, const std::string &url, const std::string &body) {
    HttpRequest r;
    r.method = method;
    r.url = url;
    r.body = body;
    r.headers = {{"Content-Type", "application/json"}};
    HttpResponse out;
    bool done = false;
    http_->start(
        r,
        [&](const HttpResponse &resp) {
          out = resp;
          done = true;
        },
        nullptr);
    EXPECT_TRUE(run_until(&loop_, [&] { return done; }));
    return out;
  }

  // A signed PutRecordBatch through the chain; waits for the answer.
  HttpResponse put_records(const Peer &fh, Chain &c, const std::string &path = "/") {
    HttpRequest r;
    r.method = "POST";
    r.url = fh.url() + path;
    r.headers = {{"Content-Type", "application/x-amz-json-1.1"},
                 {"X-Amz-Target", "Firehose_20150804.PutRecordBatch"}};
    r.body = std::string("{\"DeliveryStreamName\":\"") + kStream +
             "\",\"Records\":[{\"Data\":\"aGVsbG8K\"},{\"Data\":\"d29ybGQK\"}]}";
    r.prepare = c.signer("firehose", kRegion);
    HttpResponse out;
    bool done = false;
    http_->start(
        r,
        [&](const HttpResponse &resp) {
          out = resp;
          done = true;
        },
        nullptr);
    EXPECT_TRUE(run_until(
        &loop_, [&] { return done; }, 20000));
    return out;
  }

  void write_file(const std::string &name, const std::string &text) {
    std::ofstream(tmp_ / name) << text;
  }
  std::string path(const std::string &name) const { return (tmp_ / name).string(); }

  uv_loop_t loop_{};
  Logger log_{2, LogLevel::Warn};
  MetricsRegistry metrics_;
  std::unique_ptr<HttpClient> http_;
  std::unique_ptr<Chain> chain_;
  std::map<std::string, std::string> env_;
  std::filesystem::path tmp_;
};

#define EXPECT_ACCEPTED(resp)                                                       \
  do {                                                                              \
    HttpResponse r_ = (resp);                                                       \
    EXPECT_EQ(r_.error, "");                                                        \
    EXPECT_EQ(r_.status, 200) << r_.body;                                           \
    EXPECT_NE(r_.body.find("\"FailedPutCount\": 0"), std::string::npos) << r_.body; \
  } while (0)

TEST_F(AwsPeerTest, ExplicitKeysSignedPutRecordBatchAccepted) {
  auto fh = firehose({"AKIDEXPLICIT:explicit/secret+key"});
  ChainConfig cfg;
  cfg.access_key_id = "AKIDEXPLICIT";
  cfg.secret_access_key = "explicit/secret+key";
  Chain &c = chain(cfg);
  EXPECT_EQ(c.source(), nullptr);
  EXPECT_ACCEPTED(put_records(*fh, c));
  EXPECT_STREQ(c.source(), "config");
  // Query parameters in any order: botocore sorts them, and so do we.
  EXPECT_ACCEPTED(put_records(*fh, c, "/?b=2&a=1&arn=arn:aws:x"));
}

TEST_F(AwsPeerTest, SessionTokenIsSentAndSigned) {
  auto fh = firehose({"ASIATEMP:tempsecret:the/session+token="});
  ChainConfig cfg;
  cfg.access_key_id = "ASIATEMP";
  cfg.secret_access_key = "tempsecret";
  cfg.session_token = "the/session+token=";
  EXPECT_ACCEPTED(put_records(*fh, chain(cfg)));
}

TEST_F(AwsPeerTest, WrongSecretReachesTheCallbackAs400InvalidSignature) {
  auto fh = firehose({"AKIDEXPLICIT:right-secret"});
  ChainConfig cfg;
  cfg.access_key_id = "AKIDEXPLICIT";
  cfg.secret_access_key = "wrong-secret";
  HttpResponse r = put_records(*fh, chain(cfg));
  EXPECT_EQ(r.error, "");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("InvalidSignatureException"), std::string::npos) << r.body;
  ASSERT_NE(r.header("x-amzn-errortype"), nullptr);
}

TEST_F(AwsPeerTest, EnvironmentSource) {
  auto fh = firehose({"AKIDENV:envsecret:envtoken"});
  env_["AWS_ACCESS_KEY_ID"] = "AKIDENV";
  env_["AWS_SECRET_ACCESS_KEY"] = "envsecret";
  env_["AWS_SESSION_TOKEN"] = "envtoken";
  Chain &c = chain();
  EXPECT_ACCEPTED(put_records(*fh, c));
  EXPECT_STREQ(c.source(), "environment");
}

TEST_F(AwsPeerTest, ExplicitKeysWinOverEnvironment) {
  auto fh = firehose({"AKIDEXPLICIT:s1"});
  env_["AWS_ACCESS_KEY_ID"] = "AKIDENV";
  env_["AWS_SECRET_ACCESS_KEY"] = "envsecret";
  ChainConfig cfg;
  cfg.access_key_id = "AKIDEXPLICIT";
  cfg.secret_access_key = "s1";
  EXPECT_ACCEPTED(put_records(*fh, chain(cfg)));
}

TEST_F(AwsPeerTest, SharedFilesWithProfile) {
  auto fh = firehose({"ASIAPROFILE:profsecret:proftoken"});
  write_file("credentials",
             "[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = nope\n"
             "[ingest]\naws_access_key_id = ASIAPROFILE\naws_secret_access_key = profsecret\n"
             "aws_session_token = proftoken\n");
  env_["AWS_SHARED_CREDENTIALS_FILE"] = path("credentials");
  env_["AWS_CONFIG_FILE"] = path("config-missing");
  env_["AWS_PROFILE"] = "ingest";
  Chain &c = chain();
  EXPECT_ACCEPTED(put_records(*fh, c));
  EXPECT_STREQ(c.source(), "profile");
}

TEST_F(AwsPeerTest, ProfileFromTheConfigStructAndHomeConfigFile) {
  auto fh = firehose({"AKIDCFG:cfgsecret"});
  std::filesystem::create_directories(tmp_ / ".aws");
  write_file(".aws/config",
             "[profile batch]\naws_access_key_id = AKIDCFG\naws_secret_access_key = cfgsecret\n");
  ChainConfig cfg;
  cfg.profile = "batch";
  EXPECT_ACCEPTED(put_records(*fh, chain(cfg)));
}

TEST_F(AwsPeerTest, WebIdentityThroughSts) {
  auto fk = fake({"ASIASTS:stssecret:ststoken"}, 3600,
                 {"--web-identity-token", "jwt.token.here", "--role-arn",
                  "arn:aws:iam::123456789012:role/ingest"});
  auto fh = firehose({"ASIASTS:stssecret:ststoken"});
  write_file("token", "jwt.token.here\n");
  env_["AWS_WEB_IDENTITY_TOKEN_FILE"] = path("token");
  env_["AWS_ROLE_ARN"] = "arn:aws:iam::123456789012:role/ingest";
  ChainConfig cfg;
  cfg.sts_endpoint = fk->url();
  Chain &c = chain(cfg);
  EXPECT_ACCEPTED(put_records(*fh, c));
  EXPECT_STREQ(c.source(), "web identity");
  ASSERT_NE(c.current(), nullptr);
  EXPECT_GT(c.current()->expiration_ms, 0);
}

TEST_F(AwsPeerTest, WebIdentityRejectedTokenFallsThroughAndReportsWhy) {
  auto fk = fake({"ASIASTS:s:t"}, 3600, {"--web-identity-token", "expected"});
  write_file("token", "something-else");
  env_["AWS_WEB_IDENTITY_TOKEN_FILE"] = path("token");
  env_["AWS_ROLE_ARN"] = "arn:aws:iam::123456789012:role/ingestd";
  ChainConfig cfg;
  cfg.sts_endpoint = fk->url();
  auto fh = firehose({"AKID:S"});
  HttpResponse r = put_records(*fh, chain(cfg));
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.error.rfind("credentials: no source in the chain had credentials (tried: ", 0), 0u)
      << r.error;
  EXPECT_NE(r.error.find("web identity: HTTP 400: STS InvalidIdentityToken"), std::string::npos)
      << r.error;
}

TEST_F(AwsPeerTest, ContainerRelativeUriWithTokenFile) {
  auto fk = fake({"ASIACONT:contsecret:conttoken"}, 3600, {"--container-token", "Bearer xyz"});
  auto fh = firehose({"ASIACONT:contsecret:conttoken"});
  write_file("auth", "Bearer xyz\n");
  env_["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"] = "/creds";
  env_["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] = path("auth");
  env_["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = "ignored: the file wins";
  ChainConfig cfg;
  cfg.container_endpoint = fk->url();
  Chain &c = chain(cfg);
  EXPECT_ACCEPTED(put_records(*fh, c));
  EXPECT_STREQ(c.source(), "container");
}

TEST_F(AwsPeerTest, ContainerFullUriWithToken) {
  auto fk = fake({"ASIAPOD:podsecret:podtoken"}, 3600, {"--container-token", "pod-identity"});
  auto fh = firehose({"ASIAPOD:podsecret:podtoken"});
  env_["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = fk->url() + "/creds";
  env_["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = "pod-identity";
  EXPECT_ACCEPTED(put_records(*fh, chain()));
}

TEST_F(AwsPeerTest, ImdsV2) {
  auto fk = fake({"ASIAIMDS:imdssecret:imdstoken"});
  auto fh = firehose({"ASIAIMDS:imdssecret:imdstoken"});
  env_.erase("AWS_EC2_METADATA_DISABLED");
  env_["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = fk->url();
  Chain &c = chain();
  EXPECT_ACCEPTED(put_records(*fh, c));
  EXPECT_STREQ(c.source(), "imds");
  // Credentials are cached: a second call does not fetch again.
  EXPECT_ACCEPTED(put_records(*fh, c));
  HttpResponse st = plain("GET", fk->url() + "/_stats", "");
  EXPECT_NE(st.body.find("\"imds_creds\": 1"), std::string::npos) << st.body;
}

TEST_F(AwsPeerTest, NoSourceFailsFastWithTheListOfSourcesTried) {
  auto fh = firehose({"AKID:S"});
  Chain &c = chain();
  HttpResponse r = put_records(*fh, c);
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.error,
            "credentials: no source in the chain had credentials (tried: config: no keys in the "
            "config; environment: AWS_ACCESS_KEY_ID not set; web identity: "
            "AWS_WEB_IDENTITY_TOKEN_FILE not set; container: "
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI/FULL_URI not set; profile: no " +
                path(".aws/credentials") + " nor " + path(".aws/config") +
                "; imds: AWS_EC2_METADATA_DISABLED=true)");
  EXPECT_EQ(c.source(), nullptr);
}

TEST_F(AwsPeerTest, UnreachableStsIsATransportErrorInTheChainReport) {
  // A port nobody listens on: bind one, then close it.
  int port;
  {
    auto fk = fake({"A:B"});
    port = fk->port();
  }
  write_file("token", "t");
  env_["AWS_WEB_IDENTITY_TOKEN_FILE"] = path("token");
  env_["AWS_ROLE_ARN"] = "arn:aws:iam::1:role/x";
  ChainConfig cfg;
  cfg.sts_endpoint = "http://127.0.0.1:" + std::to_string(port);
  auto fh = firehose({"AKID:S"});
  HttpResponse r = put_records(*fh, chain(cfg));
  EXPECT_NE(r.error.find("web identity: STS: connection refused"), std::string::npos) << r.error;
}

// Temporary credentials that expire in 30 s, refreshed after about 2 s: the
// old key is then expired at the peer, and requests keep being accepted.
TEST_F(AwsPeerTest, ExpiringCredentialsAreRefreshedInTheBackground) {
  auto fk = fake({"ASIAOLD:oldsecret:oldtoken", "ASIANEW:newsecret:newtoken"}, 30);
  auto fh = firehose({"ASIAOLD:oldsecret:oldtoken", "ASIANEW:newsecret:newtoken"});
  env_.erase("AWS_EC2_METADATA_DISABLED");
  ChainConfig cfg;
  cfg.imds_endpoint = fk->url();
  ChainOptions o;
  o.refresh = RefreshPolicy{28000, 0.1, 1000};
  Chain &c = chain(cfg, o);
  EXPECT_ACCEPTED(put_records(*fh, c));
  ASSERT_NE(c.current(), nullptr);
  EXPECT_EQ(c.current()->access_key_id, "ASIAOLD");
  ASSERT_TRUE(run_until(
      &loop_, [&] { return c.current()->access_key_id == "ASIANEW"; }, 15000))
      << "no refresh before expiry";
  EXPECT_EQ(c.refreshes(), 1u);
  HttpResponse ctl =
      plain("POST", fh->url() + "/_control", R"({"expire_access_keys":["ASIAOLD"]})");
  EXPECT_EQ(ctl.status, 200) << ctl.body;
  EXPECT_ACCEPTED(put_records(*fh, c));
  EXPECT_STREQ(c.source(), "imds");
}

// A failing refresh keeps the current credentials and retries with backoff.
TEST_F(AwsPeerTest, FailedRefreshKeepsCredentialsAndRetries) {
  auto fk = fake({"ASIAOLD:oldsecret:oldtoken", "ASIANEW:newsecret:newtoken"}, 30,
                 {"--container-token", "tok"});
  auto fh = firehose({"ASIAOLD:oldsecret:oldtoken", "ASIANEW:newsecret:newtoken"});
  env_["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = fk->url() + "/creds";
  env_["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = "tok";
  ChainOptions o;
  o.refresh = RefreshPolicy{28000, 0.1, 1000};
  o.retry_initial_ms = 200;
  o.retry_max_ms = 400;
  Chain &c = chain({}, o);
  EXPECT_ACCEPTED(put_records(*fh, c));
  EXPECT_EQ(plain("POST", fk->url() + "/_control", R"({"fail":true})").status, 200);
  Counter *failed =
      metrics_.counter("ingestd_aws_credentials_fetches_total", "", {{"result", "error"}});
  ASSERT_TRUE(run_until(
      &loop_, [&] { return failed->value() >= 2; }, 15000))
      << "refresh should have failed and been retried";
  EXPECT_EQ(c.current()->access_key_id, "ASIAOLD");
  EXPECT_ACCEPTED(put_records(*fh, c));  // still signed with the old, valid key
  EXPECT_EQ(plain("POST", fk->url() + "/_control", R"({"fail":false})").status, 200);
  ASSERT_TRUE(run_until(
      &loop_, [&] { return c.current()->access_key_id == "ASIANEW"; }, 5000));
  EXPECT_ACCEPTED(put_records(*fh, c));
}

// Requests that arrive while the chain resolves wait, then all go out.
TEST_F(AwsPeerTest, ConcurrentRequestsWaitForOneResolution) {
  auto fk = fake({"ASIAIMDS:imdssecret:imdstoken"});
  auto fh = firehose({"ASIAIMDS:imdssecret:imdstoken"});
  env_.erase("AWS_EC2_METADATA_DISABLED");
  ChainConfig cfg;
  cfg.imds_endpoint = fk->url();
  Chain &c = chain(cfg);
  int ok = 0, done = 0;
  for (int i = 0; i < 10; ++i) {
    HttpRequest r;
    r.method = "POST";
    r.url = fh->url() + "/";
    r.headers = {{"Content-Type", "application/x-amz-json-1.1"},
                 {"X-Amz-Target", "Firehose_20150804.PutRecordBatch"}};
    r.body = std::string("{\"DeliveryStreamName\":\"") + kStream +
             "\",\"Records\":[{\"Data\":\"aGVsbG8K\"}]}";
    r.prepare = c.signer("firehose", kRegion);
    http_->start(
        r,
        [&](const HttpResponse &resp) {
          ok += resp.status == 200;
          ++done;
        },
        nullptr);
  }
  ASSERT_TRUE(run_until(
      &loop_, [&] { return done == 10; }, 20000));
  EXPECT_EQ(ok, 10);
  HttpResponse st = plain("GET", fk->url() + "/_stats", "");
  EXPECT_NE(st.body.find("\"imds_creds\": 1"), std::string::npos) << st.body;
}

// Calls waiting for credentials are cancelled cleanly (no callback twice, no leak).
TEST_F(AwsPeerTest, CancelWhileWaitingForCredentials) {
  auto fk = fake({"ASIAIMDS:s:t"});
  env_.erase("AWS_EC2_METADATA_DISABLED");
  ChainConfig cfg;
  cfg.imds_endpoint = fk->url();
  Chain &c = chain(cfg);
  HttpCallGroup group;
  int cancelled = 0;
  for (int i = 0; i < 3; ++i) {
    HttpRequest r;
    r.method = "POST";
    r.url = fk->url() + "/never";
    r.prepare = c.signer("firehose", kRegion);
    http_->start(
        r,
        [&](const HttpResponse &resp) {
          EXPECT_EQ(resp.error, "cancelled");
          ++cancelled;
        },
        &group);
  }
  group.close();
  EXPECT_EQ(cancelled, 3);
  // The resolution still completes for later users.
  ASSERT_TRUE(run_until(&loop_, [&] { return c.current() != nullptr; }));
}

// ---- AssumeRole against tests/peers/sts_peer.py, which checks the base
// signature with botocore and hands the credentials it issues (and their
// expiry) to the Firehose peer: that peer accepts nothing else.

const char *kRole = "arn:aws:iam::111122223333:role/writer";

std::unique_ptr<Peer> sts_peer(const Peer &notify, double expires_in,
                               const std::string &external_id = "ext-1") {
  auto p = std::make_unique<Peer>(std::vector<std::string>{
      INGESTD_PYTHON, PEERS_DIR "/sts_peer.py", "--port", "0", "--region", kRegion, "--credentials",
      "AKIDBASE:base/secret", "--role-arn", kRole, "--external-id", external_id, "--session-name",
      "ingestd", "--expires-in", std::to_string(expires_in), "--notify",
      notify.url() + "/_control"});
  EXPECT_GT(p->port(), 0) << "sts_peer.py did not start";
  return p;
}

ChainConfig role_config(const Peer &sts, const std::string &external_id) {
  ChainConfig cfg;
  cfg.access_key_id = "AKIDBASE";
  cfg.secret_access_key = "base/secret";
  cfg.region = kRegion;
  cfg.sts_endpoint = sts.url();
  cfg.role_arn = kRole;
  cfg.external_id = external_id;
  return cfg;
}

TEST_F(AwsPeerTest, AssumeRoleSignsWithTheBaseAndRefreshesAtHalfLife) {
  auto fh = firehose({});
  auto sts = sts_peer(*fh, 4);
  Chain &c = chain(role_config(*sts, "ext-1"));
  EXPECT_ACCEPTED(put_records(*fh, c));
  ASSERT_NE(c.current(), nullptr);
  std::string first = c.current()->access_key_id;
  EXPECT_EQ(first.rfind("ASIA", 0), 0u) << first;
  EXPECT_FALSE(c.current()->session_token.empty());
  EXPECT_STREQ(c.source(), "assumed role arn:aws:iam::111122223333:role/writer via config");
  ASSERT_NE(c.base(), nullptr);
  EXPECT_STREQ(c.base()->source(), "config");
  // 4 s credentials: renewed at half life, before they expire.
  ASSERT_TRUE(run_until(
      &loop_, [&] { return c.refreshes() >= 1; }, 4000))
      << "no refresh before expiry";
  EXPECT_NE(c.current()->access_key_id, first);
  EXPECT_ACCEPTED(put_records(*fh, c));
  HttpResponse st = plain("GET", sts->url() + "/_stats", "");
  EXPECT_NE(st.body.find("\"assume_role_calls\": 2"), std::string::npos) << st.body;
  EXPECT_NE(st.body.find("\"refusals\": {}"), std::string::npos) << st.body;
}

TEST_F(AwsPeerTest, AssumeRoleRefusalIsReportedAndBackedOff) {
  auto fh = firehose({});
  auto sts = sts_peer(*fh, 3600);
  ChainOptions o;
  o.retry_initial_ms = 400;
  o.retry_max_ms = 800;
  Chain &c = chain(role_config(*sts, "wrong"), o);
  HttpResponse r = put_records(*fh, c);
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.error.find("credentials: assuming role arn:aws:iam::111122223333:role/writer "
                         "failed: HTTP 403: STS AccessDenied: User: "
                         "arn:aws:iam::000000000000:user/AKIDBASE is not authorized to perform: "
                         "sts:AssumeRole on resource: arn:aws:iam::111122223333:role/writer"),
            std::string::npos)
      << r.error;
  // Within the backoff: the same error at once, STS is not asked again.
  uint64_t failed_at = uv_now(&loop_);
  HttpResponse again = put_records(*fh, c);
  EXPECT_EQ(again.error, r.error);
  if (uv_now(&loop_) - failed_at < 200) {  // [200, 400] ms: still inside it
    HttpResponse st = plain("GET", sts->url() + "/_stats", "");
    EXPECT_NE(st.body.find("\"AccessDenied\": 1"), std::string::npos) << st.body;
  }
  // After it: asked again (and refused again).
  Timer wait(&loop_);
  bool waited = false;
  wait.start(450, 0, [&] { waited = true; });
  ASSERT_TRUE(run_until(&loop_, [&] { return waited; }));
  put_records(*fh, c);
  HttpResponse st = plain("GET", sts->url() + "/_stats", "");
  EXPECT_NE(st.body.find("\"AccessDenied\": 2"), std::string::npos) << st.body;
  EXPECT_EQ(c.current(), nullptr);
}

}  // namespace
}  // namespace ingestd::aws

int main(int argc, char **argv) {
  ingestd::HttpClient::global_init();
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
