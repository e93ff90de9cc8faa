// AWS Signature Version 4 (header signing) with OpenSSL's SHA-256 and HMAC.
// Our own signer because curl's CURLOPT_AWS_SIGV4 (7.88) neither sorts query
// parameters nor sends X-Amz-Security-Token.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "httpclient/http_client.h"

namespace ingestd::aws {

struct Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // empty for long-term keys
  int64_t expiration_ms = 0;  // epoch ms; 0: never expires
  bool valid() const { return !access_key_id.empty() && !secret_access_key.empty(); }
};

std::string sha256_hex(std::string_view data);
std::string hmac_sha256(std::string_view key, std::string_view data);  // raw 32 bytes
std::string hex_encode(std::string_view raw);

// RFC 3986: everything but A-Z a-z 0-9 - _ . ~ is %XX (upper case);
// `keep_slash` leaves '/' alone (paths).
std::string uri_encode(std::string_view s, bool keep_slash);
std::string uri_decode(std::string_view s);
// The canonical query: every name and value decoded then RFC 3986 encoded,
// sorted by name then value, joined with '&'. "b=2&a=1&c" -> "a=1&b=2&c=".
std::string canonical_query(std::string_view raw_query);
// The canonical URI: dot segments and empty segments removed, then encoded
// (a second time: AWS double-encodes for every service but S3, which takes
// the path as sent).
std::string canonical_path(std::string_view raw_path, bool s3);
// "20150830T123600Z" for epoch seconds.
std::string amz_date(int64_t epoch_seconds);

// One request already reduced to what SigV4 reads. Every header in
// `headers` is signed (names any case; same-name values are joined with ',').
struct CanonicalInput {
  std::string method;
  std::string path;   // raw, as sent
  std::string query;  // raw, without '?'
  HttpHeaders headers;
  std::string payload_hash;  // hex SHA-256 of the body
};

struct Signature {
  std::string canonical_request;
  std::string string_to_sign;
  std::string signed_headers;  // "host;x-amz-date"
  std::string signature;       // hex
  std::string authorization;   // the Authorization header value
};

Signature sign_canonical(const CanonicalInput &in, const Credentials &creds,
                         std::string_view region, std::string_view service,
                         std::string_view amz_date_value);

// Signs an outgoing request in place at `now_s`: sets Host, X-Amz-Date,
// X-Amz-Security-Token (with a session token), X-Amz-Content-Sha256 (for
// "s3" and "aoss") and Authorization, replacing any the caller set, and
// rewrites the URL's query in its canonical form so that what is sent is
// exactly what was signed. Signs host, content-type and every x-amz-* header.
// False (with `why`) when the URL cannot be parsed.
bool sign_request(HttpRequest *req, const Credentials &creds, std::string_view service,
                  std::string_view region, int64_t now_s, std::string *why);

}  // namespace ingestd::aws
