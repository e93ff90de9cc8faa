// SigV4 against AWS's published Signature Version 4 test suite
// (aws-sig-v4-test-suite: AKIDEXAMPLE, us-east-1, service "service",
// 20150830T123600Z) and the canonical forms it relies on.
#include "aws/sigv4.h"

#include <gtest/gtest.h>

namespace ingestd::aws {
namespace {

const Credentials kSuite{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "", 0};
constexpr const char *kDate = "20150830T123600Z";
constexpr int64_t kEpoch = 1440938160;  // 2015-08-30T12:36:00Z
const std::string kEmptyHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

struct Vector {
  const char *name;
  const char *method;
  const char *path;
  const char *query;
  HttpHeaders extra;
  const char *body;
  const char *signed_headers;
  const char *signature;
};

class SuiteVector : public ::testing::TestWithParam<Vector> {};

TEST_P(SuiteVector, MatchesThePublishedSignature) {
  const Vector &v = GetParam();
  CanonicalInput in;
  in.method = v.method;
  in.path = canonical_path(v.path, false);
  in.query = canonical_query(v.query);
  in.headers = {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", kDate}};
  for (const auto &h : v.extra)
    in.headers.push_back(h);
  in.payload_hash = sha256_hex(v.body);
  Signature s = sign_canonical(in, kSuite, "us-east-1", "service", kDate);
  EXPECT_EQ(s.signed_headers, v.signed_headers) << v.name;
  EXPECT_EQ(s.signature, v.signature) << v.name << "\n" << s.canonical_request;
  EXPECT_EQ(s.authorization,
            std::string("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
                        "aws4_request, SignedHeaders=") +
                v.signed_headers + ", Signature=" + v.signature);
}

INSTANTIATE_TEST_SUITE_P(
    AwsSigV4TestSuite, SuiteVector,
    ::testing::Values(
        Vector{"get-vanilla",
               "GET",
               "/",
               "",
               {},
               "",
               "host;x-amz-date",
               "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
        Vector{"get-vanilla-query-order-key-case",
               "GET",
               "/",
               "Param2=value2&Param1=value1",
               {},
               "",
               "host;x-amz-date",
               "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"},
        Vector{"get-vanilla-query-unreserved",
               "GET",
               "/",
               "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz=-._~"
               "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
               {},
               "",
               "host;x-amz-date",
               "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197"},
        Vector{"get-vanilla-utf8-query",
               "GET",
               "/",
               "\xe1\x88\xb4=bar",
               {},
               "",
               "host;x-amz-date",
               "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04"},
        Vector{"get-utf8",
               "GET",
               "/\xe1\x88\xb4",
               "",
               {},
               "",
               "host;x-amz-date",
               "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"},
        Vector{"get-unreserved",
               "GET",
               "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
               "",
               {},
               "",
               "host;x-amz-date",
               "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f"},
        Vector{"get-header-value-trim",
               "GET",
               "/",
               "",
               {{"My-Header1", " value1"}, {"My-Header2", " \"a   b   c\""}},
               "",
               "host;my-header1;my-header2;x-amz-date",
               "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"},
        Vector{"get-header-key-duplicate",
               "GET",
               "/",
               "",
               {{"My-Header1", "value2"}, {"My-Header1", "value2"}, {"My-Header1", "value1"}},
               "",
               "host;my-header1;x-amz-date",
               "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea"},
        Vector{"post-vanilla",
               "POST",
               "/",
               "",
               {},
               "",
               "host;x-amz-date",
               "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"},
        Vector{"post-vanilla-query",
               "POST",
               "/",
               "Param1=value1",
               {},
               "",
               "host;x-amz-date",
               "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11"},
        Vector{"post-header-value-case",
               "POST",
               "/",
               "",
               {{"My-Header1", "VALUE1"}},
               "",
               "host;my-header1;x-amz-date",
               "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d"},
        Vector{"post-x-www-form-urlencoded",
               "POST",
               "/",
               "",
               {{"Content-Type", "application/x-www-form-urlencoded"}},
               "Param1=value1",
               "content-type;host;x-amz-date",
               "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"},
        Vector{"post-x-www-form-urlencoded-parameters",
               "POST",
               "/",
               "",
               {{"Content-Type", "application/x-www-form-urlencoded; charset=utf8"}},
               "Param1=value1",
               "content-type;host;x-amz-date",
               "1a72ec8f64bd914b0e42e42607c7fbce7fb2c7465f63e3092b3b0d39fa77a6fe"}),
    [](const auto &info) {
      std::string n = info.param.name;
      for (char &c : n)
        if (c == '-') c = '_';
      return n;
    });

TEST(SigV4, GetVanillaCanonicalRequestAndStringToSign) {
  CanonicalInput in;
  in.method = "GET";
  in.path = canonical_path("/", false);
  in.query = canonical_query("");
  in.headers = {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", kDate}};
  in.payload_hash = kEmptyHash;
  Signature s = sign_canonical(in, kSuite, "us-east-1", "service", kDate);
  EXPECT_EQ(s.canonical_request,
            "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-"
            "date\n" +
                kEmptyHash);
  EXPECT_EQ(s.string_to_sign,
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
            "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63");
}

TEST(SigV4, CanonicalQuerySortsAndEncodes) {
  EXPECT_EQ(canonical_query("b=2&a=1&c"), "a=1&b=2&c=");
  EXPECT_EQ(canonical_query("refresh=false&pipeline=p"), "pipeline=p&refresh=false");
  EXPECT_EQ(canonical_query("Param2=value2&Param1=value1&param1=x"),
            "Param1=value1&Param2=value2&param1=x");
  // Decoded then RFC 3986 encoded: the same parameter encoded two ways
  // canonicalises to one form; '+', ' ', ':' and '/' are percent-encoded.
  EXPECT_EQ(canonical_query("k=a%20b"), "k=a%20b");
  EXPECT_EQ(canonical_query("k=a b"), "k=a%20b");
  EXPECT_EQ(canonical_query("arn=arn:aws:iam::1:role/x"), "arn=arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fx");
  EXPECT_EQ(canonical_query("k=%2b+"), "k=%2B%2B");
  EXPECT_EQ(canonical_query("a=2&a=1"), "a=1&a=2");  // same name: by value
  EXPECT_EQ(canonical_query("&&x=1&"), "x=1");
  EXPECT_EQ(canonical_query("k=%7e%41"), "k=~A");
}

TEST(SigV4, UriEncodeAndDecode) {
  EXPECT_EQ(uri_encode("a b/c~d_e.f-g", false), "a%20b%2Fc~d_e.f-g");
  EXPECT_EQ(uri_encode("a b/c", true), "a%20b/c");
  EXPECT_EQ(uri_encode("\xe1\x88\xb4", false), "%E1%88%B4");
  EXPECT_EQ(uri_decode("%E1%88%b4%zz%"), "\xe1\x88\xb4%zz%");
}

TEST(SigV4, CanonicalPathNormalisesAndDoubleEncodesExceptS3) {
  EXPECT_EQ(canonical_path("", false), "/");
  EXPECT_EQ(canonical_path("/a/./b/../c//d/", false), "/a/c/d/");
  EXPECT_EQ(canonical_path("/example space/", false), "/example%20space/");
  EXPECT_EQ(canonical_path("/a%20b", false), "/a%2520b");     // AWS double-encodes
  EXPECT_EQ(canonical_path("/a%20b//c", true), "/a%20b//c");  // S3 as sent
  EXPECT_EQ(canonical_path("/_bulk", false), "/_bulk");
}

TEST(SigV4, AmzDate) {
  EXPECT_EQ(amz_date(kEpoch), kDate);
  EXPECT_EQ(amz_date(0), "19700101T000000Z");
}

const std::string *find_header(const HttpRequest &r, std::string_view name) {
  for (const auto &[k, v] : r.headers)
    if (k == name) return &v;
  return nullptr;
}

TEST(SigV4, SignRequestGetVanillaEndToEnd) {
  HttpRequest req;
  req.method = "GET";
  req.url = "https://example.amazonaws.com/";
  ASSERT_TRUE(sign_request(&req, kSuite, "service", "us-east-1", kEpoch, nullptr));
  ASSERT_NE(find_header(req, "Authorization"), nullptr);
  EXPECT_EQ(*find_header(req, "Authorization"),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
            "SignedHeaders=host;x-amz-date, "
            "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
  EXPECT_EQ(*find_header(req, "Host"), "example.amazonaws.com");
  EXPECT_EQ(*find_header(req, "X-Amz-Date"), kDate);
  EXPECT_EQ(find_header(req, "X-Amz-Security-Token"), nullptr);
  EXPECT_EQ(find_header(req, "X-Amz-Content-Sha256"), nullptr);
}

TEST(SigV4, SignRequestPostFormAndQueryRewrite) {
  HttpRequest req;
  req.method = "POST";
  req.url = "https://example.amazonaws.com/?Param2=value2&Param1=value1";
  req.headers = {{"Content-Type", "application/x-www-form-urlencoded"},
                 {"Authorization", "stale"},
                 {"User-Agent", "unsigned"}};
  req.body = "Param1=value1";
  ASSERT_TRUE(sign_request(&req, kSuite, "service", "us-east-1", kEpoch, nullptr));
  // Sorted in the URL too, so what is sent is what was signed.
  EXPECT_EQ(req.url, "https://example.amazonaws.com/?Param1=value1&Param2=value2");
  int auths = 0;
  for (const auto &[k, v] : req.headers)
    auths += k == "Authorization" || k == "authorization";
  EXPECT_EQ(auths, 1);
  EXPECT_NE(find_header(req, "Authorization")->find("SignedHeaders=content-type;host;x-amz-date,"),
            std::string::npos);
}

TEST(SigV4, SessionTokenAndContentSha256AreSigned) {
  Credentials c = kSuite;
  c.session_token = "TOKEN/with+chars=";
  HttpRequest req;
  req.method = "POST";
  req.url = "http://127.0.0.1:9200/_bulk";
  req.body = "{}\n";
  ASSERT_TRUE(sign_request(&req, c, "aoss", "eu-west-1", kEpoch, nullptr));
  EXPECT_EQ(*find_header(req, "Host"), "127.0.0.1:9200");
  EXPECT_EQ(*find_header(req, "X-Amz-Security-Token"), c.session_token);
  EXPECT_EQ(*find_header(req, "X-Amz-Content-Sha256"), sha256_hex("{}\n"));
  EXPECT_NE(find_header(req, "Authorization")
                ->find("SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token,"),
            std::string::npos);
  // firehose: no content hash header.
  HttpRequest f;
  f.method = "POST";
  f.url = "https://firehose.eu-west-1.amazonaws.com/";
  f.headers = {{"X-Amz-Target", "Firehose_20150804.PutRecordBatch"},
               {"Content-Type", "application/x-amz-json-1.1"}};
  ASSERT_TRUE(sign_request(&f, c, "firehose", "eu-west-1", kEpoch, nullptr));
  EXPECT_EQ(find_header(f, "X-Amz-Content-Sha256"), nullptr);
  EXPECT_NE(find_header(f, "Authorization")
                ->find("SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-"
                       "target,"),
            std::string::npos);
}

TEST(SigV4, UnparsableUrlIsRefused) {
  HttpRequest req;
  req.url = "http://";
  std::string why;
  EXPECT_FALSE(sign_request(&req, kSuite, "service", "us-east-1", kEpoch, &why));
  EXPECT_FALSE(why.empty());
}

}  // namespace
}  // namespace ingestd::aws
