// Parsers for what credential sources answer (STS XML, container and IMDS
// JSON, shared ini files) and the refresh timing rule. Pure functions: the
// chain (chain.h) does the I/O.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "aws/sigv4.h"

namespace ingestd::aws {

// "2024-05-01T12:34:56Z", with optional fractional seconds and a "+00:00"
// offset -> epoch ms.
bool parse_iso8601(std::string_view s, int64_t *epoch_ms);

// STS AssumeRoleWithWebIdentity (or AssumeRole) XML: Credentials/AccessKeyId,
// SecretAccessKey, SessionToken, Expiration. An ErrorResponse gives its Code
// and Message in `why` ("STS AccessDenied: User ... is not authorized ...").
bool parse_sts_response(std::string_view xml, Credentials *out, std::string *why);

// Container credentials and IMDS JSON: AccessKeyId, SecretAccessKey, Token,
// Expiration (and Code, which must be "Success" when present).
bool parse_credentials_json(std::string_view json, Credentials *out, std::string *why);

// ~/.aws/credentials and ~/.aws/config: sections of key = value. Comments
// start with '#' or ';'; indented lines (nested settings) are skipped.
using IniFile = std::map<std::string, std::map<std::string, std::string>>;
IniFile parse_ini(std::string_view text);

// The keys of `profile`: the credentials file's [profile] wins over the config
// file's [profile profile] ([default] in both for "default"). Plain keys and
// session tokens only (no credential_process, SSO or role chaining).
bool profile_credentials(const IniFile *credentials_file, const IniFile *config_file,
                         const std::string &profile, Credentials *out, std::string *why);

// When to refresh credentials obtained at `obtained_ms` that expire at
// `expiration_ms`: `margin_ms` or `fraction` of their lifetime before expiry,
// whichever is earlier, but at most `max_fraction` of their lifetime before
// it (0.5: at half life for credentials shorter than twice the margin), and
// never sooner than `min_interval_ms` (or that lead, when it is shorter, but
// at least 1 s) after `now_ms`, so that credentials shorter than the floor
// still refresh before they expire.
struct RefreshPolicy {
  int64_t margin_ms = 5 * 60 * 1000;
  double fraction = 0.1;
  int64_t min_interval_ms = 30 * 1000;
  double max_fraction = 1.0;
};
int64_t refresh_at_ms(int64_t now_ms, int64_t obtained_ms, int64_t expiration_ms,
                      const RefreshPolicy &p);

}  // namespace ingestd::aws
