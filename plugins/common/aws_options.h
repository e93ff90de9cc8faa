// The AWS credential options of every output that signs with SigV4: one set
// of option rows and one reader, so the firehose and elasticsearch outputs
// cannot drift apart. Header-only: plugins concatenate the rows into their
// own table with join_options().
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/options.h"
#include "ingestd/plugin.h"

namespace ingestd::common {

inline constexpr ingestd_option_t kAwsOptions[] = {
    {"aws_access_key_id", INGESTD_OPT_STRING, nullptr, 0, nullptr, 1, 0,
     "AWS access key id; unset: the credentials chain (environment, web identity, container, "
     "profile, IMDSv2)"},
    {"aws_secret_access_key", INGESTD_OPT_STRING, nullptr, INGESTD_OPT_SECRET, nullptr, 1, 0,
     "AWS secret access key that goes with aws_access_key_id"},
    {"aws_session_token", INGESTD_OPT_STRING, nullptr, INGESTD_OPT_SECRET, nullptr, 1, 0,
     "AWS session token of temporary credentials given in the config"},
    {"aws_profile", INGESTD_OPT_STRING, nullptr, 0, nullptr, 1, 0,
     "Profile of the shared AWS credentials/config files; default AWS_PROFILE, else \"default\""},
    {"sts_endpoint", INGESTD_OPT_STRING, nullptr, 0, nullptr, 1, 0,
     "STS URL for web identity credentials and role_arn; default "
     "https://sts.REGION.amazonaws.com"},
    {"imds_endpoint", INGESTD_OPT_STRING, nullptr, 0, nullptr, 1, 0,
     "EC2 instance metadata URL; default http://169.254.169.254"},
    {"container_endpoint", INGESTD_OPT_STRING, nullptr, 0, nullptr, 1, 0,
     "Container credentials URL for AWS_CONTAINER_CREDENTIALS_RELATIVE_URI; default "
     "http://169.254.170.2"},
    {"role_arn", INGESTD_OPT_STRING, nullptr, 0, nullptr, 1, 0,
     "IAM role to assume (sts:AssumeRole, e.g. another account's) with the credentials the chain "
     "finds; requests are then signed with the role's temporary credentials, renewed before they "
     "expire"},
    // Not a secret, but a shared value that guards the role: never logged.
    {"external_id", INGESTD_OPT_STRING, nullptr, INGESTD_OPT_SECRET, nullptr, 1, 0,
     "ExternalId the role's trust policy requires (sts:ExternalId), sent with role_arn"},
    {"role_session_name", INGESTD_OPT_STRING, "ingestd", 0, nullptr, 1, 0,
     "RoleSessionName of the assumed role's sessions (shows in the other account's CloudTrail)"},
    {"role_duration", INGESTD_OPT_DURATION, "1h", 0, nullptr, 900000, 43200000,
     "DurationSeconds asked of STS for role_arn sessions (15 min to 12 h, at most the role's "
     "maximum session duration)"},
};

template <size_t N, size_t M>
constexpr std::array<ingestd_option_t, N + M> join_options(const ingestd_option_t (&a)[N],
                                                           const ingestd_option_t (&b)[M]) {
  std::array<ingestd_option_t, N + M> out{};
  for (size_t i = 0; i < N; ++i)
    out[i] = a[i];
  for (size_t i = 0; i < M; ++i)
    out[N + i] = b[i];
  return out;
}

// The values of kAwsOptions for one instance.
struct AwsOptions {
  std::string access_key_id, secret_access_key, session_token, profile, sts_endpoint, imds_endpoint,
      container_endpoint, role_arn, external_id, role_session_name;
  uint32_t role_duration_s = 0;

  // False (with *why) when the key pair is half set.
  bool read(const Options &opts, const char **why) {
    access_key_id = opts.string("aws_access_key_id");
    secret_access_key = opts.string("aws_secret_access_key");
    session_token = opts.string("aws_session_token");
    profile = opts.string("aws_profile");
    sts_endpoint = opts.string("sts_endpoint");
    imds_endpoint = opts.string("imds_endpoint");
    container_endpoint = opts.string("container_endpoint");
    role_arn = opts.string("role_arn");
    external_id = opts.string("external_id");
    role_session_name = opts.string("role_session_name");
    role_duration_s = static_cast<uint32_t>(opts.duration_ms("role_duration") / 1000);
    if (role_arn.empty() && !external_id.empty()) {
      *why = "external_id goes with role_arn: set role_arn too";
      return false;
    }
    if (!role_arn.empty() && role_arn.rfind("arn:", 0) != 0) {
      *why = "role_arn must be a role ARN (arn:aws:iam::ACCOUNT:role/NAME)";
      return false;
    }
    if (access_key_id.empty() != secret_access_key.empty()) {
      *why = "aws_access_key_id and aws_secret_access_key go together: set both or neither";
      return false;
    }
    return true;
  }

  // For host->aws_credentials; the strings stay this object's.
  ingestd_aws_config_t config(const std::string &region) const {
    auto c_str = [](const std::string &s) { return s.empty() ? nullptr : s.c_str(); };
    ingestd_aws_config_t c{};
    c.struct_size = sizeof c;
    c.access_key_id = c_str(access_key_id);
    c.secret_access_key = c_str(secret_access_key);
    c.session_token = c_str(session_token);
    c.profile = c_str(profile);
    c.region = c_str(region);
    c.sts_endpoint = c_str(sts_endpoint);
    c.imds_endpoint = c_str(imds_endpoint);
    c.container_endpoint = c_str(container_endpoint);
    c.role_arn = c_str(role_arn);
    if (!role_arn.empty()) {  // without a role these only split the chains
      c.external_id = c_str(external_id);
      c.role_session_name = c_str(role_session_name);
      c.role_duration_s = role_duration_s;
    }
    return c;
  }
};

}  // namespace ingestd::common
