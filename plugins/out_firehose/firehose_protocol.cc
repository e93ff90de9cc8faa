// PutRecordBatch request bodies, a small JSON reader and AWS error codes.
#include "firehose_protocol.h"
#include "common/text.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace ingestd::firehose {

using common::trim;

namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

inline void encode3(const unsigned char *in, char *out) {
  out[0] = kAlphabet[in[0] >> 2];
  out[1] = kAlphabet[((in[0] & 0x03) << 4) | (in[1] >> 4)];
  out[2] = kAlphabet[((in[1] & 0x0f) << 2) | (in[2] >> 6)];
  out[3] = kAlphabet[in[2] & 0x3f];
}

// Recursive descent over a string_view; depth-limited, no exceptions.
class Parser {
 public:
  explicit Parser(std::string_view s) : s_(s) {}

  bool document(JsonValue *out) {
    if (!value(out, 0)) return false;
    ws();
    return pos_ == s_.size();
  }

 private:
  void ws() {
    while (pos_ < s_.size() &&
           (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r'))
      ++pos_;
  }
  bool lit(std::string_view w) {
    if (s_.substr(pos_, w.size()) != w) return false;
    pos_ += w.size();
    return true;
  }
  bool value(JsonValue *v, int depth) {
    if (depth > 64) return false;
    ws();
    if (pos_ >= s_.size()) return false;
    char c = s_[pos_];
    switch (c) {
      case '{':
        return object(v, depth);
      case '[':
        return array(v, depth);
      case '"':
        v->kind = JsonValue::Kind::kString;
        return string(&v->string);
      case 't':
        v->kind = JsonValue::Kind::kBool;
        v->boolean = true;
        return lit("true");
      case 'f':
        v->kind = JsonValue::Kind::kBool;
        v->boolean = false;
        return lit("false");
      case 'n':
        v->kind = JsonValue::Kind::kNull;
        return lit("null");
      default:
        return number(v);
    }
  }
  bool number(JsonValue *v) {
    size_t start = pos_;
    if (pos_ < s_.size() && s_[pos_] == '-') ++pos_;
    size_t digits = pos_;
    while (pos_ < s_.size() && (std::strchr("0123456789.eE+-", s_[pos_]) != nullptr))
      ++pos_;
    if (pos_ == digits) return false;
    std::string text(s_.substr(start, pos_ - start));
    char *end = nullptr;
    v->number = std::strtod(text.c_str(), &end);
    v->kind = JsonValue::Kind::kNumber;
    return end == text.c_str() + text.size();
  }
  static void put_utf8(uint32_t cp, std::string *out) {
    if (cp < 0x80) {
      out->push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out->push_back(static_cast<char>(0xc0 | (cp >> 6)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    } else if (cp < 0x10000) {
      out->push_back(static_cast<char>(0xe0 | (cp >> 12)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    } else {
      out->push_back(static_cast<char>(0xf0 | (cp >> 18)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    }
  }
  bool hex4(uint32_t *cp) {
    if (pos_ + 4 > s_.size()) return false;
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      char c = s_[pos_++];
      v <<= 4;
      if (c >= '0' && c <= '9') {
        v |= static_cast<uint32_t>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        v |= static_cast<uint32_t>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        v |= static_cast<uint32_t>(c - 'A' + 10);
      } else {
        return false;
      }
    }
    *cp = v;
    return true;
  }
  bool string(std::string *out) {
    ++pos_;  // opening quote
    while (pos_ < s_.size()) {
      char c = s_[pos_++];
      if (c == '"') return true;
      if (c != '\\') {
        out->push_back(c);
        continue;
      }
      if (pos_ >= s_.size()) return false;
      char e = s_[pos_++];
      switch (e) {
        case '"':
        case '\\':
        case '/':
          out->push_back(e);
          break;
        case 'b':
          out->push_back('\b');
          break;
        case 'f':
          out->push_back('\f');
          break;
        case 'n':
          out->push_back('\n');
          break;
        case 'r':
          out->push_back('\r');
          break;
        case 't':
          out->push_back('\t');
          break;
        case 'u': {
          uint32_t cp;
          if (!hex4(&cp)) return false;
          if (cp >= 0xd800 && cp < 0xdc00 && s_.substr(pos_, 2) == "\\u") {
            size_t save = pos_;
            pos_ += 2;
            uint32_t lo;
            if (hex4(&lo) && lo >= 0xdc00 && lo < 0xe000) {
              cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            } else {
              pos_ = save;
            }
          }
          put_utf8(cp, out);
          break;
        }
        default:
          return false;
      }
    }
    return false;
  }
  bool array(JsonValue *v, int depth) {
    v->kind = JsonValue::Kind::kArray;
    ++pos_;
    ws();
    if (pos_ < s_.size() && s_[pos_] == ']') {
      ++pos_;
      return true;
    }
    for (;;) {
      v->items.emplace_back();
      if (!value(&v->items.back(), depth + 1)) return false;
      ws();
      if (pos_ >= s_.size()) return false;
      char c = s_[pos_++];
      if (c == ']') return true;
      if (c != ',') return false;
    }
  }
  bool object(JsonValue *v, int depth) {
    v->kind = JsonValue::Kind::kObject;
    ++pos_;
    ws();
    if (pos_ < s_.size() && s_[pos_] == '}') {
      ++pos_;
      return true;
    }
    for (;;) {
      ws();
      if (pos_ >= s_.size() || s_[pos_] != '"') return false;
      v->members.emplace_back();
      if (!string(&v->members.back().first)) return false;
      ws();
      if (pos_ >= s_.size() || s_[pos_++] != ':') return false;
      if (!value(&v->members.back().second, depth + 1)) return false;
      ws();
      if (pos_ >= s_.size()) return false;
      char c = s_[pos_++];
      if (c == '}') return true;
      if (c != ',') return false;
    }
  }

  std::string_view s_;
  size_t pos_ = 0;
};

bool any_of(std::string_view code, std::initializer_list<std::string_view> list) {
  return std::find(list.begin(), list.end(), code) != list.end();
}

}  // namespace

void Base64Writer::write(const char *p, size_t n) {
  auto *u = reinterpret_cast<const unsigned char *>(p);
  if (carried_ > 0) {
    while (carried_ < 2 && n > 0) {
      carry_[carried_++] = *u++;
      --n;
    }
    if (n == 0) return;
    unsigned char block[3] = {carry_[0], carry_[1], *u++};
    --n;
    char o[4];
    encode3(block, o);
    out_->append(o, 4);
    carried_ = 0;
  }
  size_t whole = n / 3 * 3;
  size_t at = out_->size();
  out_->resize(at + whole / 3 * 4);
  char *dst = out_->data() + at;
  for (size_t i = 0; i < whole; i += 3, dst += 4)
    encode3(u + i, dst);
  for (size_t i = whole; i < n; ++i)
    carry_[carried_++] = u[i];
}

void Base64Writer::finish() {
  if (carried_ == 0) return;
  unsigned char block[3] = {carry_[0], carried_ == 2 ? carry_[1] : static_cast<unsigned char>(0),
                            0};
  char o[4];
  encode3(block, o);
  if (carried_ == 1) o[2] = '=';
  o[3] = '=';
  out_->append(o, 4);
  carried_ = 0;
}

std::string base64(std::string_view s) {
  std::string out;
  out.reserve(base64_len(s.size()));
  Base64Writer w(&out);
  w.write(s.data(), s.size());
  w.finish();
  return out;
}

bool valid_stream_name(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
  });
}

void build_put_record_batch(std::string_view stream, const std::vector<std::vector<Piece>> &records,
                            bool newline, std::string *out) {
  size_t estimate = 64 + stream.size();
  for (const auto &r : records) {
    size_t n = 0;
    for (const Piece &p : r)
      n += p.len + (newline ? 1 : 0);
    estimate += base64_len(n) + 12;
  }
  out->reserve(out->size() + estimate);
  out->append("{\"DeliveryStreamName\":\"");
  out->append(stream);
  out->append("\",\"Records\":[");
  for (size_t k = 0; k < records.size(); ++k) {
    if (k > 0) out->push_back(',');
    out->append("{\"Data\":\"");
    Base64Writer w(out);
    for (const Piece &p : records[k]) {
      w.write(p.data, p.len);
      if (newline) w.write("\n", 1);
    }
    w.finish();
    out->append("\"}");
  }
  out->append("]}");
}

const JsonValue *JsonValue::get(std::string_view key) const {
  if (kind != Kind::kObject) return nullptr;
  for (const auto &m : members)
    if (m.first == key) return &m.second;
  return nullptr;
}

bool parse_json(std::string_view text, JsonValue *out) {
  *out = JsonValue{};
  return Parser(text).document(out);
}

std::string normalize_error_code(std::string_view raw) {
  std::string_view s = trim(raw);
  if (size_t hash = s.rfind('#'); hash != std::string_view::npos) s = s.substr(hash + 1);
  if (size_t colon = s.find(':'); colon != std::string_view::npos) s = s.substr(0, colon);
  return std::string(trim(s));
}

std::string error_code(std::string_view body, std::string_view error_type_header,
                       std::string *message) {
  JsonValue v;
  std::string code;
  if (parse_json(body, &v) && v.kind == JsonValue::Kind::kObject) {
    for (const char *key : {"__type", "code", "Code"}) {
      const JsonValue *t = v.get(key);
      if (t && t->kind == JsonValue::Kind::kString && !t->string.empty()) {
        code = normalize_error_code(t->string);
        break;
      }
    }
    if (message) {
      for (const char *key : {"message", "Message", "errorMessage"}) {
        const JsonValue *m = v.get(key);
        if (m && m->kind == JsonValue::Kind::kString) {
          *message = m->string;
          break;
        }
      }
    }
  }
  if (code.empty()) code = normalize_error_code(error_type_header);
  return code;
}

ErrorClass classify_error(std::string_view code, int status) {
  if (any_of(code, {"ServiceUnavailableException", "ServiceUnavailable", "ThrottlingException",
                    "Throttling", "ThrottledException", "LimitExceededException",
                    "TooManyRequestsException", "RequestLimitExceeded",
                    "ProvisionedThroughputExceededException", "SlowDown", "RequestThrottled",
                    "RequestThrottledException"}))
    return ErrorClass::kThrottle;
  if (any_of(code, {"InternalFailure", "InternalFailureException", "InternalServerError",
                    "InternalServerException", "ServiceFailure", "InternalError", "RequestTimeout",
                    "RequestTimeoutException", "IDPCommunicationError"}))
    return ErrorClass::kTransient;
  if (any_of(code, {"UnrecognizedClientException", "InvalidSignatureException",
                    "ExpiredTokenException", "ExpiredToken", "MissingAuthenticationTokenException",
                    "IncompleteSignatureException", "AccessDeniedException", "AccessDenied",
                    "InvalidClientTokenId", "SignatureDoesNotMatch", "NotAuthorized",
                    "RequestExpired", "InvalidKMSResourceException"}))
    return ErrorClass::kAuth;
  if (any_of(code, {"ResourceNotFoundException", "InvalidArgumentException", "ValidationException",
                    "SerializationException", "UnknownOperationException",
                    "RequestEntityTooLargeException", "ResourceInUseException",
                    "InvalidSourceException", "MalformedQueryString"}))
    return ErrorClass::kConfig;
  // A code we do not know: the status decides (429 throttles; 4xx is ours).
  if (status == 429) return ErrorClass::kThrottle;
  if (status >= 400 && status < 500) {
    if (status == 401 || status == 403) return ErrorClass::kAuth;
    if (status == 408) return ErrorClass::kTransient;
    return ErrorClass::kConfig;
  }
  return ErrorClass::kTransient;
}

const char *error_class_name(ErrorClass c) {
  switch (c) {
    case ErrorClass::kThrottle:
      return "throttled";
    case ErrorClass::kTransient:
      return "transient";
    case ErrorClass::kAuth:
      return "authentication";
    case ErrorClass::kConfig:
      return "configuration";
  }
  return "unknown";
}

bool parse_put_result(std::string_view body, PutResult *out) {
  *out = PutResult{};
  JsonValue v;
  if (!parse_json(body, &v) || v.kind != JsonValue::Kind::kObject) return false;
  const JsonValue *responses = v.get("RequestResponses");
  if (!responses || responses->kind != JsonValue::Kind::kArray) return false;
  if (const JsonValue *f = v.get("FailedPutCount"); f && f->kind == JsonValue::Kind::kNumber)
    out->failed_put_count = static_cast<int64_t>(f->number);
  out->codes.reserve(responses->items.size());
  for (const JsonValue &r : responses->items) {
    const JsonValue *code = r.get("ErrorCode");
    const JsonValue *id = r.get("RecordId");
    bool has_code = code && code->kind == JsonValue::Kind::kString && !code->string.empty();
    bool has_id = id && id->kind == JsonValue::Kind::kString && !id->string.empty();
    if (has_code) {
      out->codes.push_back(normalize_error_code(code->string));
      if (out->first_error_message.empty()) {
        if (const JsonValue *m = r.get("ErrorMessage"); m && m->kind == JsonValue::Kind::kString)
          out->first_error_message = m->string;
      }
    } else if (has_id) {
      out->codes.emplace_back();
    } else {
      out->codes.emplace_back("Unknown");  // neither accepted nor explained: resend it
    }
  }
  return true;
}

}  // namespace ingestd::firehose
