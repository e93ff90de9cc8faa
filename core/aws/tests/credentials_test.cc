// Parsing of STS XML, container/IMDS JSON and shared ini files; refresh timing.
#include "aws/credentials.h"

#include <gtest/gtest.h>

namespace ingestd::aws {
namespace {

TEST(Iso8601, ParsesAwsForms) {
  int64_t ms = 0;
  ASSERT_TRUE(parse_iso8601("2015-08-30T12:36:00Z", &ms));
  EXPECT_EQ(ms, 1440938160000);
  ASSERT_TRUE(parse_iso8601("2015-08-30T12:36:00.250Z", &ms));
  EXPECT_EQ(ms, 1440938160250);
  ASSERT_TRUE(parse_iso8601("2015-08-30T14:36:00+02:00", &ms));
  EXPECT_EQ(ms, 1440938160000);
  EXPECT_FALSE(parse_iso8601("2015-08-30", &ms));
  EXPECT_FALSE(parse_iso8601("2015-13-30T12:36:00Z", &ms));
  EXPECT_FALSE(parse_iso8601("2015-08-30T12:36:00Zjunk", &ms));
}

TEST(StsResponse, AssumeRoleWithWebIdentity) {
  const char *xml =
      R"(<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>system:serviceaccount:ns:sa</SubjectFromWebIdentityToken>
    <Credentials>
      <SessionToken>IQoJb3JpZ2luX2VjE&amp;token</SessionToken>
      <SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY</SecretAccessKey>
      <Expiration>2024-05-01T12:00:00Z</Expiration>
      <AccessKeyId>ASIAEXAMPLE</AccessKeyId>
    </Credentials>
  </AssumeRoleWithWebIdentityResult>
</AssumeRoleWithWebIdentityResponse>)";
  Credentials c;
  std::string why;
  ASSERT_TRUE(parse_sts_response(xml, &c, &why)) << why;
  EXPECT_EQ(c.access_key_id, "ASIAEXAMPLE");
  EXPECT_EQ(c.secret_access_key, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY");
  EXPECT_EQ(c.session_token, "IQoJb3JpZ2luX2VjE&token");
  int64_t exp;
  parse_iso8601("2024-05-01T12:00:00Z", &exp);
  EXPECT_EQ(c.expiration_ms, exp);
}

TEST(StsResponse, ErrorResponseNamesCodeAndMessage) {
  const char *xml = R"(<ErrorResponse><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code>
<Message>Token is expired &lt;x&gt;</Message></Error><RequestId>1</RequestId></ErrorResponse>)";
  Credentials c;
  std::string why;
  EXPECT_FALSE(parse_sts_response(xml, &c, &why));
  EXPECT_EQ(why, "STS InvalidIdentityToken: Token is expired <x>");
  EXPECT_FALSE(parse_sts_response("<x/>", &c, &why));
  EXPECT_FALSE(
      parse_sts_response("<Credentials><AccessKeyId>A</AccessKeyId></Credentials>", &c, &why));
}

TEST(StsResponse, AssumeRole) {
  const char *xml = R"(<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <SourceIdentity>rider</SourceIdentity>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::111122223333:assumed-role/writer/ingestd</Arn>
      <AssumedRoleId>ARO123EXAMPLE123:ingestd</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <AccessKeyId>ASIAIOSFODNN7EXAMPLE</AccessKeyId>
      <SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY</SecretAccessKey>
      <SessionToken>AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQW</SessionToken>
      <Expiration>2019-11-09T13:34:41Z</Expiration>
    </Credentials>
    <PackedPolicySize>6</PackedPolicySize>
  </AssumeRoleResult>
  <ResponseMetadata><RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ResponseMetadata>
</AssumeRoleResponse>)";
  Credentials c;
  std::string why;
  ASSERT_TRUE(parse_sts_response(xml, &c, &why)) << why;
  EXPECT_EQ(c.access_key_id, "ASIAIOSFODNN7EXAMPLE");
  EXPECT_EQ(c.secret_access_key, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY");
  EXPECT_EQ(c.session_token, "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQW");
  int64_t exp;
  parse_iso8601("2019-11-09T13:34:41Z", &exp);
  EXPECT_EQ(c.expiration_ms, exp);
}

TEST(StsResponse, AssumeRoleAccessDenied) {
  // What STS answers (HTTP 403) for a role that does not trust the caller,
  // or a wrong or missing ExternalId.
  const char *xml = R"(<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <Error>
    <Type>Sender</Type>
    <Code>AccessDenied</Code>
    <Message>User: arn:aws:iam::000000000000:user/base is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::111122223333:role/writer</Message>
  </Error>
  <RequestId>4b2c6b7e-0000-0000-0000-000000000000</RequestId>
</ErrorResponse>)";
  Credentials c;
  std::string why;
  EXPECT_FALSE(parse_sts_response(xml, &c, &why));
  EXPECT_EQ(why,
            "STS AccessDenied: User: arn:aws:iam::000000000000:user/base is not authorized to "
            "perform: sts:AssumeRole on resource: arn:aws:iam::111122223333:role/writer");
}

TEST(CredentialsJson, ContainerAndImds) {
  Credentials c;
  std::string why;
  ASSERT_TRUE(parse_credentials_json(
      R"({"AccessKeyId":"ASIA1","SecretAccessKey":"s","Token":"t","Expiration":"2024-05-01T12:00:00Z","RoleArn":"x"})",
      &c, &why))
      << why;
  EXPECT_EQ(c.access_key_id, "ASIA1");
  EXPECT_EQ(c.session_token, "t");
  EXPECT_GT(c.expiration_ms, 0);
  ASSERT_TRUE(parse_credentials_json(
      R"({"Code":"Success","LastUpdated":"2024-05-01T06:00:00Z","Type":"AWS-HMAC","AccessKeyId":"A","SecretAccessKey":"S","Token":"T","Expiration":"2024-05-01T12:00:00Z"})",
      &c, &why));
  EXPECT_FALSE(parse_credentials_json(R"({"Code":"Failure","Message":"no role"})", &c, &why));
  EXPECT_EQ(why, "Code Failure: no role");
  EXPECT_FALSE(parse_credentials_json(R"({"AccessKeyId":"A"})", &c, &why));
  EXPECT_FALSE(parse_credentials_json("not json", &c, &why));
  EXPECT_FALSE(parse_credentials_json(
      R"({"AccessKeyId":"A","SecretAccessKey":"S","Expiration":"tomorrow"})", &c, &why));
}

TEST(SharedFiles, ProfilesFromCredentialsAndConfig) {
  IniFile creds = parse_ini(R"(# comment
[default]
aws_access_key_id = AKIDDEFAULT
aws_secret_access_key=SECRETDEFAULT

[temp]
aws_access_key_id = ASIATEMP
aws_secret_access_key = SECRETTEMP
aws_session_token = TOKENTEMP
; another comment
[empty]
region = eu-west-1
)");
  IniFile config = parse_ini(R"([default]
region = us-east-1
[profile   cfgonly]
aws_access_key_id = AKIDCFG
aws_secret_access_key = SECRETCFG
s3 =
  max_concurrent_requests = 10
[profile proc]
credential_process = /bin/creds
)");
  Credentials c;
  std::string why;
  ASSERT_TRUE(profile_credentials(&creds, &config, "default", &c, &why));
  EXPECT_EQ(c.access_key_id, "AKIDDEFAULT");
  EXPECT_EQ(c.secret_access_key, "SECRETDEFAULT");
  EXPECT_EQ(c.session_token, "");
  ASSERT_TRUE(profile_credentials(&creds, &config, "temp", &c, &why));
  EXPECT_EQ(c.session_token, "TOKENTEMP");
  ASSERT_TRUE(profile_credentials(&creds, &config, "cfgonly", &c, &why));
  EXPECT_EQ(c.access_key_id, "AKIDCFG");
  EXPECT_FALSE(profile_credentials(&creds, &config, "empty", &c, &why));
  EXPECT_NE(why.find("has no aws_access_key_id"), std::string::npos) << why;
  EXPECT_FALSE(profile_credentials(&creds, &config, "missing", &c, &why));
  EXPECT_EQ(why, "no profile missing");
  EXPECT_FALSE(profile_credentials(&creds, &config, "proc", &c, &why));
  EXPECT_NE(why.find("credential_process"), std::string::npos);
  EXPECT_FALSE(profile_credentials(nullptr, &config, "temp", &c, &why));
  EXPECT_TRUE(profile_credentials(nullptr, &config, "cfgonly", &c, &why));
  // A bare [name] in the config file is not a profile (only [default] is).
  IniFile bare = parse_ini("[cfgonly]\naws_access_key_id = X\naws_secret_access_key = Y\n");
  EXPECT_FALSE(profile_credentials(nullptr, &bare, "cfgonly", &c, &why));
}

TEST(RefreshTiming, MarginFractionAndFloor) {
  RefreshPolicy p;  // 5 min, 10 %, at least 30 s from now
  const int64_t h = 3600 * 1000;
  // 1 h credentials: 6 min (10 %) before expiry beats the 5 min margin.
  EXPECT_EQ(refresh_at_ms(0, 0, h, p), h - 6 * 60 * 1000);
  // 15 min credentials: the 5 min margin.
  EXPECT_EQ(refresh_at_ms(0, 0, 15 * 60 * 1000, p), 10 * 60 * 1000);
  // 2 min credentials: would be "before they were obtained": floor at now + 30 s.
  EXPECT_EQ(refresh_at_ms(0, 0, 2 * 60 * 1000, p), 30 * 1000);
  // Test settings: 30 s credentials, 28 s margin, 1 s floor -> after 2 s.
  RefreshPolicy t{28000, 0.1, 1000};
  EXPECT_EQ(refresh_at_ms(1000, 1000, 31000, t), 3000);
  EXPECT_EQ(refresh_at_ms(5000, 1000, 31000, t), 6000);
}

TEST(Refresh, AssumedRoleHalfLifeForShortCredentials) {
  RefreshPolicy p;  // as a role chain uses it: at half life at the latest
  p.max_fraction = 0.5;
  const int64_t s = 1000, m = 60 * s, h = 60 * m;
  // 1 h (STS's default): 6 min before expiry, as the chain.
  EXPECT_EQ(refresh_at_ms(0, 0, h, p), h - 6 * m);
  // 15 min (STS's minimum): the 5 min margin.
  EXPECT_EQ(refresh_at_ms(0, 0, 15 * m, p), 10 * m);
  // 8 min: half life, not 5 min before.
  EXPECT_EQ(refresh_at_ms(0, 0, 8 * m, p), 4 * m);
  // 20 s (a test peer): at 10 s, before expiry although the floor is 30 s.
  EXPECT_EQ(refresh_at_ms(0, 0, 20 * s, p), 10 * s);
  EXPECT_EQ(refresh_at_ms(1000, 1000, 21 * s, p), 11 * s);
  // Without max_fraction (base chains): at expiry at the latest (the floor
  // shrinks to the lifetime; it used to be 10 s after expiry).
  RefreshPolicy chain;
  EXPECT_EQ(refresh_at_ms(0, 0, 20 * s, chain), 20 * s);
  // Credentials that came back already expired: not again at once.
  EXPECT_EQ(refresh_at_ms(5000, 5000, 4000, p), 6000);
}

}  // namespace
}  // namespace ingestd::aws
