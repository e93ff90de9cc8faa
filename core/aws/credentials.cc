// Parsing of credential documents, and the refresh rule.
#include "aws/credentials.h"

#include <algorithm>
#include <ctime>

#include "common/text.h"
#include "json/json.h"

namespace ingestd::aws {

using common::trim;
namespace {

bool digits(std::string_view s, size_t pos, size_t n, int *out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

std::string xml_unescape(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '&') {
      out += s[i];
      continue;
    }
    size_t semi = s.find(';', i);
    if (semi == std::string_view::npos) {
      out += s[i];
      continue;
    }
    std::string_view ent = s.substr(i + 1, semi - i - 1);
    if (ent == "amp") {
      out += '&';
    } else if (ent == "lt") {
      out += '<';
    } else if (ent == "gt") {
      out += '>';
    } else if (ent == "quot") {
      out += '"';
    } else if (ent == "apos") {
      out += '\'';
    } else {
      out.append(s.substr(i, semi - i + 1));
    }
    i = semi;
  }
  return out;
}

// The text of the first <tag>...</tag> inside `xml` (no attributes expected
// on these AWS elements), or nullopt.
std::optional<std::string_view> xml_element(std::string_view xml, std::string_view tag) {
  std::string open, close;  // built with append: g++ 12 -O3 misreports "<" + string
  open.append("<").append(tag).append(">");
  close.append("</").append(tag).append(">");
  size_t a = xml.find(open);
  if (a == std::string_view::npos) return std::nullopt;
  a += open.size();
  size_t b = xml.find(close, a);
  if (b == std::string_view::npos) return std::nullopt;
  return xml.substr(a, b - a);
}

std::string json_string(const json::Value &obj, std::string_view key) {
  const json::Value *v = obj.find(key);
  if (!v || v->kind() != json::Kind::String) return {};
  return std::string(v->as_string());
}

}  // namespace

bool parse_iso8601(std::string_view s, int64_t *epoch_ms) {
  s = trim(s);
  int Y, M, D, h, m, sec;
  if (!digits(s, 0, 4, &Y) || s.size() < 19 || s[4] != '-' || !digits(s, 5, 2, &M) || s[7] != '-' ||
      !digits(s, 8, 2, &D) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
      !digits(s, 11, 2, &h) || s[13] != ':' || !digits(s, 14, 2, &m) || s[16] != ':' ||
      !digits(s, 17, 2, &sec))
    return false;
  size_t i = 19;
  int64_t ms = 0;
  if (i < s.size() && s[i] == '.') {
    ++i;
    int64_t scale = 100;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      ms += (s[i] - '0') * scale;
      scale /= 10;
      ++i;
    }
  }
  int64_t offset_s = 0;
  if (i < s.size()) {
    if (s[i] == 'Z' || s[i] == 'z') {
      ++i;
    } else if (s[i] == '+' || s[i] == '-') {
      int oh, om;
      if (!digits(s, i + 1, 2, &oh) || i + 3 >= s.size() || s[i + 3] != ':' ||
          !digits(s, i + 4, 2, &om))
        return false;
      offset_s = (oh * 3600 + om * 60) * (s[i] == '+' ? 1 : -1);
      i += 6;
    }
  }
  if (i != s.size() || M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60)
    return false;
  struct tm tm {};
  tm.tm_year = Y - 1900;
  tm.tm_mon = M - 1;
  tm.tm_mday = D;
  tm.tm_hour = h;
  tm.tm_min = m;
  tm.tm_sec = sec;
  time_t t = timegm(&tm);
  *epoch_ms = (static_cast<int64_t>(t) - offset_s) * 1000 + ms;
  return true;
}

bool parse_sts_response(std::string_view xml, Credentials *out, std::string *why) {
  if (auto err = xml_element(xml, "Error")) {
    std::string code = xml_unescape(xml_element(*err, "Code").value_or("unknown error"));
    std::string msg = xml_unescape(xml_element(*err, "Message").value_or(""));
    if (why) *why = "STS " + code + (msg.empty() ? "" : ": " + msg);
    return false;
  }
  auto creds = xml_element(xml, "Credentials");
  if (!creds) {
    if (why) *why = "STS answer without Credentials";
    return false;
  }
  Credentials c;
  c.access_key_id = xml_unescape(trim(xml_element(*creds, "AccessKeyId").value_or("")));
  c.secret_access_key = xml_unescape(trim(xml_element(*creds, "SecretAccessKey").value_or("")));
  c.session_token = xml_unescape(trim(xml_element(*creds, "SessionToken").value_or("")));
  auto exp = xml_element(*creds, "Expiration");
  if (!c.valid()) {
    if (why) *why = "STS answer without AccessKeyId or SecretAccessKey";
    return false;
  }
  if (exp && !parse_iso8601(*exp, &c.expiration_ms)) {
    if (why) *why = "STS answer with an unreadable Expiration";
    return false;
  }
  *out = std::move(c);
  return true;
}

bool parse_credentials_json(std::string_view text, Credentials *out, std::string *why) {
  json::Value v;
  json::ParseError err;
  if (!json::parse(text, &v, &err) || !v.is_object()) {
    if (why) *why = "not a JSON object";
    return false;
  }
  std::string code = json_string(v, "Code");
  if (!code.empty() && code != "Success") {
    std::string msg = json_string(v, "Message");
    if (why) *why = "Code " + code + (msg.empty() ? "" : ": " + msg);
    return false;
  }
  Credentials c;
  c.access_key_id = json_string(v, "AccessKeyId");
  c.secret_access_key = json_string(v, "SecretAccessKey");
  c.session_token = json_string(v, "Token");
  if (c.session_token.empty()) c.session_token = json_string(v, "SessionToken");
  if (!c.valid()) {
    if (why) *why = "no AccessKeyId or SecretAccessKey";
    return false;
  }
  std::string exp = json_string(v, "Expiration");
  if (!exp.empty() && !parse_iso8601(exp, &c.expiration_ms)) {
    if (why) *why = "unreadable Expiration '" + exp + "'";
    return false;
  }
  *out = std::move(c);
  return true;
}

IniFile parse_ini(std::string_view text) {
  IniFile out;
  std::string section;
  bool in_section = false;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view raw = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    if (!raw.empty() && (raw.front() == ' ' || raw.front() == '\t')) {
      continue;  // a nested setting ("s3 =\n  max_concurrent_requests = 10")
    }
    std::string_view line = trim(raw);
    if (line.empty() || line.front() == '#' || line.front() == ';') continue;
    if (line.front() == '[') {
      size_t close = line.find(']');
      if (close == std::string_view::npos) {
        in_section = false;
        continue;
      }
      // "[profile  name]" -> "profile name"
      std::string_view inner = trim(line.substr(1, close - 1));
      std::string name;
      bool space = false;
      for (char c : inner) {
        if (c == ' ' || c == '\t') {
          space = true;
          continue;
        }
        if (space && !name.empty()) name += ' ';
        space = false;
        name += c;
      }
      section = name;
      in_section = true;
      out[section];
      continue;
    }
    if (!in_section) continue;
    size_t eq = line.find('=');
    if (eq == std::string_view::npos) continue;
    std::string key(trim(line.substr(0, eq)));
    std::string value(trim(line.substr(eq + 1)));
    for (char &c : key)
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    out[section][key] = value;
  }
  return out;
}

bool profile_credentials(const IniFile *credentials_file, const IniFile *config_file,
                         const std::string &profile, Credentials *out, std::string *why) {
  auto from = [&](const std::map<std::string, std::string> &sec) -> bool {
    auto get = [&](const char *k) {
      auto it = sec.find(k);
      return it == sec.end() ? std::string() : it->second;
    };
    Credentials c;
    c.access_key_id = get("aws_access_key_id");
    c.secret_access_key = get("aws_secret_access_key");
    c.session_token = get("aws_session_token");
    if (!c.valid()) return false;
    *out = std::move(c);
    return true;
  };
  bool found_section = false;
  if (credentials_file) {
    auto it = credentials_file->find(profile);
    if (it != credentials_file->end()) {
      found_section = true;
      if (from(it->second)) return true;
    }
  }
  if (config_file) {
    for (const std::string &name : {"profile " + profile, profile}) {
      if (name == profile && profile != "default") continue;  // only [default] is bare
      auto it = config_file->find(name);
      if (it == config_file->end()) continue;
      found_section = true;
      if (from(it->second)) return true;
      if (it->second.count("credential_process") || it->second.count("role_arn") ||
          it->second.count("sso_start_url") || it->second.count("sso_session")) {
        if (why)
          *why = "profile " + profile +
                 " uses credential_process, role_arn or SSO, which ingestd does not support";
        return false;
      }
    }
  }
  if (why)
    *why = found_section ? "profile " + profile + " has no aws_access_key_id/aws_secret_access_key"
                         : "no profile " + profile;
  return false;
}

int64_t refresh_at_ms(int64_t now_ms, int64_t obtained_ms, int64_t expiration_ms,
                      const RefreshPolicy &p) {
  int64_t lifetime = std::max<int64_t>(0, expiration_ms - obtained_ms);
  int64_t before = std::max<int64_t>(p.margin_ms, static_cast<int64_t>(lifetime * p.fraction));
  before = std::min<int64_t>(before, static_cast<int64_t>(lifetime * p.max_fraction));
  // The floor shrinks with the lead, but stays 1 s (or min_interval_ms when
  // smaller): credentials that come back expired are not fetched in a loop.
  int64_t floor_ms =
      std::max(std::min(p.min_interval_ms, before), std::min<int64_t>(p.min_interval_ms, 1000));
  return std::max(expiration_ms - before, now_ms + floor_ms);
}

}  // namespace ingestd::aws
