// SigV4: canonical request -> string to sign -> derived key -> signature.
// https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html
#include "aws/sigv4.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <ctime>
#include <map>
#include <memory>
#include <utility>
#include <vector>

namespace ingestd::aws {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char &c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

// Trimmed, runs of spaces collapsed to one (as AWS and botocore do).
std::string header_value(std::string_view v) {
  std::string out;
  bool space = false;
  for (char c : v) {
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += c;
  }
  return out;
}

bool unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.' || c == '~';
}

int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

struct CurlUrlDeleter {
  void operator()(CURLU *u) const { curl_url_cleanup(u); }
};

std::string url_part(CURLU *u, CURLUPart part) {
  char *s = nullptr;
  if (curl_url_get(u, part, &s, 0) != CURLUE_OK || !s) return {};
  std::string out(s);
  curl_free(s);
  return out;
}

void erase_header(HttpHeaders *h, std::string_view lower_name) {
  h->erase(std::remove_if(h->begin(), h->end(),
                          [&](const auto &kv) { return lower(kv.first) == lower_name; }),
           h->end());
}

}  // namespace

std::string hex_encode(std::string_view raw) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(raw.size() * 2);
  for (unsigned char c : raw) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

std::string sha256_hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  return hex_encode(std::string_view(reinterpret_cast<const char *>(md), len));
}

std::string hmac_sha256(std::string_view key, std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char *>(data.data()), data.size(), md, &len);
  return std::string(reinterpret_cast<const char *>(md), len);
}

std::string uri_encode(std::string_view s, bool keep_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (unreserved(c) || (keep_slash && c == '/')) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string uri_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      int h = hexval(s[i + 1]), l = hexval(s[i + 2]);
      if (h >= 0 && l >= 0) {
        out += static_cast<char>(h * 16 + l);
        i += 2;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

std::string canonical_query(std::string_view raw) {
  std::vector<std::pair<std::string, std::string>> params;
  while (!raw.empty()) {
    size_t amp = raw.find('&');
    std::string_view item = raw.substr(0, amp);
    raw = amp == std::string_view::npos ? std::string_view() : raw.substr(amp + 1);
    if (item.empty()) continue;
    size_t eq = item.find('=');
    std::string_view k = item.substr(0, eq);
    std::string_view v = eq == std::string_view::npos ? std::string_view() : item.substr(eq + 1);
    params.emplace_back(uri_encode(uri_decode(k), false), uri_encode(uri_decode(v), false));
  }
  std::sort(params.begin(), params.end());
  std::string out;
  for (const auto &[k, v] : params) {
    if (!out.empty()) out += '&';
    out += k;
    out += '=';
    out += v;
  }
  return out;
}

std::string canonical_path(std::string_view raw, bool s3) {
  if (raw.empty()) return "/";
  if (s3) return std::string(raw);
  std::vector<std::string_view> segs;
  std::string_view rest = raw;
  while (!rest.empty()) {
    size_t slash = rest.find('/');
    std::string_view seg = rest.substr(0, slash);
    rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
    if (seg.empty() || seg == ".") continue;
    if (seg == "..") {
      if (!segs.empty()) segs.pop_back();
      continue;
    }
    segs.push_back(seg);
  }
  std::string path = "/";
  for (size_t i = 0; i < segs.size(); ++i) {
    if (i) path += '/';
    path += segs[i];
  }
  if (raw.back() == '/' && !segs.empty()) path += '/';
  return uri_encode(path, true);
}

std::string amz_date(int64_t epoch_seconds) {
  time_t t = static_cast<time_t>(epoch_seconds);
  struct tm tm {};
  gmtime_r(&t, &tm);
  char buf[32];
  strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

Signature sign_canonical(const CanonicalInput &in, const Credentials &creds,
                         std::string_view region, std::string_view service, std::string_view date) {
  // Lower-case names, sorted; values of the same name joined with ','.
  std::map<std::string, std::string> hdrs;
  for (const auto &[k, v] : in.headers) {
    std::string name = lower(k);
    auto [it, fresh] = hdrs.emplace(name, header_value(v));
    if (!fresh) it->second.append(",").append(header_value(v));
  }
  Signature s;
  std::string canonical_headers;
  for (const auto &[k, v] : hdrs) {
    canonical_headers += k + ":" + v + "\n";
    if (!s.signed_headers.empty()) s.signed_headers += ';';
    s.signed_headers += k;
  }
  s.canonical_request = in.method + "\n" + in.path + "\n" + in.query + "\n" + canonical_headers +
                        "\n" + s.signed_headers + "\n" + in.payload_hash;
  std::string day(date.substr(0, 8));
  std::string scope =
      day + "/" + std::string(region) + "/" + std::string(service) + "/aws4_request";
  s.string_to_sign = "AWS4-HMAC-SHA256\n" + std::string(date) + "\n" + scope + "\n" +
                     sha256_hex(s.canonical_request);
  std::string k = hmac_sha256("AWS4" + creds.secret_access_key, day);
  k = hmac_sha256(k, region);
  k = hmac_sha256(k, service);
  k = hmac_sha256(k, "aws4_request");
  s.signature = hex_encode(hmac_sha256(k, s.string_to_sign));
  s.authorization = "AWS4-HMAC-SHA256 Credential=" + creds.access_key_id + "/" + scope +
                    ", SignedHeaders=" + s.signed_headers + ", Signature=" + s.signature;
  return s;
}

bool sign_request(HttpRequest *req, const Credentials &creds, std::string_view service,
                  std::string_view region, int64_t now_s, std::string *why) {
  std::unique_ptr<CURLU, CurlUrlDeleter> u(curl_url());
  if (!u || curl_url_set(u.get(), CURLUPART_URL, req->url.c_str(), 0) != CURLUE_OK) {
    if (why) *why = "cannot parse URL " + req->url;
    return false;
  }
  std::string host = url_part(u.get(), CURLUPART_HOST);
  std::string port = url_part(u.get(), CURLUPART_PORT);  // only when the URL names one
  std::string path = url_part(u.get(), CURLUPART_PATH);
  std::string query = canonical_query(url_part(u.get(), CURLUPART_QUERY));
  if (host.empty()) {
    if (why) *why = "no host in URL " + req->url;
    return false;
  }
  // Send the query exactly as it is signed (sorted, RFC 3986 with upper-case
  // hex). Built by hand: curl_url_get would lower-case the %XX escapes.
  size_t cut = req->url.find_first_of("?#", req->url.find("://") + 3);
  if (cut != std::string::npos) req->url.resize(cut);
  if (!query.empty()) req->url += "?" + query;

  const bool s3 = service == "s3";
  const bool wants_content_sha = s3 || service == "aoss";
  std::string payload_hash = sha256_hex(req->payload());
  std::string date = amz_date(now_s);
  for (auto name :
       {"authorization", "host", "x-amz-date", "x-amz-security-token", "x-amz-content-sha256"}) {
    erase_header(&req->headers, name);
  }
  req->headers.emplace_back("Host", port.empty() ? host : host + ":" + port);
  req->headers.emplace_back("X-Amz-Date", date);
  if (!creds.session_token.empty())
    req->headers.emplace_back("X-Amz-Security-Token", creds.session_token);
  if (wants_content_sha) req->headers.emplace_back("X-Amz-Content-Sha256", payload_hash);

  CanonicalInput in;
  in.method = req->method;
  in.path = canonical_path(path, s3);
  in.query = query;
  in.payload_hash = payload_hash;
  for (const auto &[k, v] : req->headers) {
    std::string n = lower(k);
    if (n == "host" || n == "content-type" || n.rfind("x-amz-", 0) == 0)
      in.headers.emplace_back(k, v);
  }
  Signature sig = sign_canonical(in, creds, region, service, date);
  req->headers.emplace_back("Authorization", sig.authorization);
  return true;
}

}  // namespace ingestd::aws
