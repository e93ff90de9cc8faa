// The response side of the elasticsearch output: see es_response.h.
#include "es_response.h"

#include <charconv>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <system_error>

namespace ingestd::es {

namespace {

constexpr int kMaxDepth = 64;

// A forward-only reader over one JSON text. Every method returns false on
// malformed input and leaves the reason in err_; nothing is allocated but the
// strings asked for.
class Reader {
 public:
  explicit Reader(std::string_view s) : s_(s) {}

  const std::string &error() const { return err_; }
  bool at_end() {
    ws();
    return pos_ == s_.size();
  }

  bool peek(char *c) {
    ws();
    if (pos_ >= s_.size()) return fail("unexpected end");
    *c = s_[pos_];
    return true;
  }

  bool expect(char c) {
    ws();
    if (pos_ >= s_.size() || s_[pos_] != c) return fail(std::string("expected '") + c + "'");
    ++pos_;
    return true;
  }

  // Inside an object or array after its opening bracket: true with *more set
  // when another member/item follows (its separating comma consumed).
  bool next(char close, bool first, bool *more) {
    ws();
    if (pos_ < s_.size() && s_[pos_] == close) {
      ++pos_;
      *more = false;
      return true;
    }
    if (!first && !expect(',')) return false;
    *more = true;
    return true;
  }

  // A string; appended to *out unless out is null. At most `limit` bytes
  // are kept (cut at a UTF-8 boundary).
  bool string(std::string *out, size_t limit = std::string::npos) {
    if (!expect('"')) return false;
    while (true) {
      size_t start = pos_;
      while (pos_ < s_.size() && s_[pos_] != '"' && s_[pos_] != '\\') {
        if (static_cast<unsigned char>(s_[pos_]) < 0x20) return fail("control character");
        ++pos_;
      }
      if (pos_ >= s_.size()) return fail("unterminated string");
      if (out) append_limited(out, s_.substr(start, pos_ - start), limit);
      if (s_[pos_] == '"') {
        ++pos_;
        return true;
      }
      ++pos_;  // backslash
      if (pos_ >= s_.size()) return fail("unterminated escape");
      char e = s_[pos_++];
      char c = 0;
      switch (e) {
        case '"':
        case '\\':
        case '/':
          c = e;
          break;
        case 'b':
          c = '\b';
          break;
        case 'f':
          c = '\f';
          break;
        case 'n':
          c = '\n';
          break;
        case 'r':
          c = '\r';
          break;
        case 't':
          c = '\t';
          break;
        case 'u': {
          uint32_t cp = 0;
          if (!hex4(&cp)) return false;
          if (cp >= 0xd800 && cp < 0xdc00 && pos_ + 6 <= s_.size() && s_[pos_] == '\\' &&
              s_[pos_ + 1] == 'u') {
            pos_ += 2;
            uint32_t lo = 0;
            if (!hex4(&lo)) return false;
            if (lo >= 0xdc00 && lo < 0xe000) {
              cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            } else {
              cp = 0xfffd;
            }
          } else if (cp >= 0xd800 && cp < 0xe000) {
            cp = 0xfffd;
          }
          if (out) append_limited(out, utf8(cp), limit);
          continue;
        }
        default:
          return fail("bad escape");
      }
      if (out) append_limited(out, std::string_view(&c, 1), limit);
    }
  }

  bool number(double *out) {
    std::string_view text;
    if (!number_text(&text)) return false;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
    if (end != text.data() + text.size() ||
        (ec != std::errc() && ec != std::errc::result_out_of_range))
      return fail("bad number");
    return true;
  }

  // The characters of a number, not converted (skipping one costs no strtod).
  bool number_text(std::string_view *text) {
    ws();
    size_t start = pos_;
    if (pos_ < s_.size() && s_[pos_] == '-') ++pos_;
    while (pos_ < s_.size() && (isdigit(s_[pos_]) || s_[pos_] == '.' || s_[pos_] == 'e' ||
                                s_[pos_] == 'E' || s_[pos_] == '+' || s_[pos_] == '-')) {
      ++pos_;
    }
    if (pos_ == start || !isdigit(s_[pos_ - 1])) return fail("expected a number");
    *text = s_.substr(start, pos_ - start);
    return true;
  }

  bool boolean(bool *out) {
    ws();
    if (s_.compare(pos_, 4, "true") == 0) {
      pos_ += 4;
      *out = true;
      return true;
    }
    if (s_.compare(pos_, 5, "false") == 0) {
      pos_ += 5;
      *out = false;
      return true;
    }
    return fail("expected true or false");
  }

  // Skips any value.
  bool skip(int depth = 0) {
    if (depth > kMaxDepth) return fail("nested too deeply");
    char c = 0;
    if (!peek(&c)) return false;
    if (c == '"') return string(nullptr);
    if (c == '{' || c == '[') {
      char close = c == '{' ? '}' : ']';
      ++pos_;
      bool more = true;
      for (bool first = true;; first = false) {
        if (!next(close, first, &more)) return false;
        if (!more) return true;
        if (close == '}') {
          if (!string(nullptr) || !expect(':')) return false;
        }
        if (!skip(depth + 1)) return false;
      }
    }
    if (c == 't' || c == 'f') {
      bool b;
      return boolean(&b);
    }
    if (c == 'n') {
      if (s_.compare(pos_, 4, "null") != 0) return fail("bad literal");
      pos_ += 4;
      return true;
    }
    std::string_view text;
    return number_text(&text);
  }

  // Skips an array or object checking only its structure: strings end and
  // brackets pair up. For the items of an answer that said errors:false,
  // where nothing inside is read: ~5x faster than skip().
  bool skip_structure() {
    ws();
    if (pos_ >= s_.size() || (s_[pos_] != '[' && s_[pos_] != '{')) return fail("expected '['");
    char closers[kMaxDepth + 1];
    int depth = 0;
    const char *p = s_.data() + pos_, *end = s_.data() + s_.size();
    while (p < end) {
      char c = *p++;
      if (c == '"') {
        for (;;) {
          auto *q = static_cast<const char *>(std::memchr(p, '"', static_cast<size_t>(end - p)));
          if (!q) {
            pos_ = s_.size();
            return fail("unterminated string");
          }
          size_t backslashes = 0;  // an escaped quote has an odd number before it
          while (q - backslashes > p && q[-1 - static_cast<ptrdiff_t>(backslashes)] == '\\')
            ++backslashes;
          p = q + 1;
          if (backslashes % 2 == 0) break;
        }
      } else if (c == '[' || c == '{') {
        if (depth == kMaxDepth) {
          pos_ = static_cast<size_t>(p - s_.data());
          return fail("nested too deeply");
        }
        closers[depth++] = c == '[' ? ']' : '}';
      } else if (c == ']' || c == '}') {
        pos_ = static_cast<size_t>(p - s_.data());
        if (closers[depth - 1] != c) return fail("mismatched bracket");
        if (--depth == 0) return true;
      }
    }
    pos_ = s_.size();
    return fail("unexpected end");
  }

  bool fail(std::string why) {
    if (err_.empty()) err_ = why + " at byte " + std::to_string(pos_);
    return false;
  }

 private:
  static bool isdigit(char c) { return c >= '0' && c <= '9'; }

  void ws() {
    while (pos_ < s_.size() &&
           (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\r' || s_[pos_] == '\t')) {
      ++pos_;
    }
  }

  bool hex4(uint32_t *out) {
    if (pos_ + 4 > s_.size()) return fail("short \\u escape");
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
        return fail("bad \\u escape");
      }
    }
    *out = v;
    return true;
  }

  static std::string utf8(uint32_t cp) {
    std::string o;
    if (cp < 0x80) {
      o += static_cast<char>(cp);
    } else if (cp < 0x800) {
      o += static_cast<char>(0xc0 | (cp >> 6));
      o += static_cast<char>(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      o += static_cast<char>(0xe0 | (cp >> 12));
      o += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      o += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
      o += static_cast<char>(0xf0 | (cp >> 18));
      o += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
      o += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      o += static_cast<char>(0x80 | (cp & 0x3f));
    }
    return o;
  }

  static void append_limited(std::string *out, std::string_view s, size_t limit) {
    if (out->size() >= limit) return;
    size_t room = limit - out->size();
    if (s.size() <= room) {
      out->append(s);
      return;
    }
    // Cut at a character boundary: back off continuation bytes.
    size_t n = room;
    while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xc0) == 0x80)
      --n;
    out->append(s.substr(0, n));
  }

  std::string_view s_;
  size_t pos_ = 0;
  std::string err_;
};

// {"type": T, "reason": R, "caused_by": {...}, ...} into *type / *reason.
bool read_error_object(Reader &r, std::string *type, std::string *reason, int depth) {
  bool more;
  if (!r.expect('{')) return false;
  std::string cause_type, cause_reason;
  for (bool first = true;; first = false) {
    if (!r.next('}', first, &more)) return false;
    if (!more) break;
    std::string key;
    if (!r.string(&key) || !r.expect(':')) return false;
    char c = 0;
    if (!r.peek(&c)) return false;
    if (key == "type" && c == '"') {
      type->clear();
      if (!r.string(type, 200)) return false;
    } else if (key == "reason" && c == '"') {
      reason->clear();
      if (!r.string(reason, kMaxReasonBytes)) return false;
    } else if (key == "caused_by" && c == '{' && depth < 2) {
      if (!read_error_object(r, &cause_type, &cause_reason, depth + 1)) return false;
    } else if (!r.skip()) {
      return false;
    }
  }
  if (!cause_type.empty() || !cause_reason.empty()) {
    std::string extra = " (caused by " + cause_type + ": " + cause_reason + ")";
    if (reason->size() + extra.size() <= kMaxReasonBytes) *reason += extra;
  }
  return true;
}

// {"status": N, "error": {...} | "text", ...}: the body of one item.
bool read_item_body(Reader &r, BulkItem *item) {
  bool more;
  if (!r.expect('{')) return false;
  for (bool first = true;; first = false) {
    if (!r.next('}', first, &more)) return false;
    if (!more) return true;
    std::string key;
    if (!r.string(&key) || !r.expect(':')) return false;
    char c = 0;
    if (!r.peek(&c)) return false;
    if (key == "status" && c != '"' && c != '{' && c != '[') {
      double d;
      if (!r.number(&d)) return false;
      item->status = (d >= 0 && d < 1000) ? static_cast<int>(d) : 0;
    } else if (key == "error" && c == '{') {
      if (!read_error_object(r, &item->error_type, &item->error_reason, 0)) return false;
    } else if (key == "error" && c == '"') {
      if (!r.string(&item->error_reason, kMaxReasonBytes)) return false;
    } else if (!r.skip()) {
      return false;
    }
  }
}

// {"create": {...}}: one element of `items` (any action name).
bool read_item(Reader &r, BulkItem *item) {
  bool more;
  if (!r.expect('{')) return false;
  for (bool first = true;; first = false) {
    if (!r.next('}', first, &more)) return false;
    if (!more) return true;
    if (!r.string(nullptr) || !r.expect(':')) return false;
    char c = 0;
    if (!r.peek(&c)) return false;
    if (c == '{') {
      if (!read_item_body(r, item)) return false;
    } else if (!r.skip()) {
      return false;
    }
  }
}

}  // namespace

bool parse_bulk_response(std::string_view body, BulkResponse *out, std::string *err) {
  *out = BulkResponse{};
  Reader r(body);
  bool more;
  bool have_items = false;
  if (!r.expect('{')) {
    *err = r.error();
    return false;
  }
  for (bool first = true;; first = false) {
    if (!r.next('}', first, &more)) break;
    if (!more) {
      if (!r.at_end()) {
        r.fail("data after the response object");
        break;
      }
      if (!have_items) {
        *err = "the response has no items array";
        return false;
      }
      return true;
    }
    std::string key;
    if (!r.string(&key) || !r.expect(':')) break;
    char c = 0;
    if (!r.peek(&c)) break;
    if (key == "errors" && (c == 't' || c == 'f')) {
      if (!r.boolean(&out->errors)) break;
      if (!out->errors && !have_items) out->all_succeeded = true;
    } else if (key == "items" && c == '[' && out->all_succeeded) {
      have_items = true;
      if (!r.skip_structure()) break;  // checked for structure, not read into items
    } else if (key == "items" && c == '[') {
      r.expect('[');
      have_items = true;
      bool ok = true;
      for (bool f = true;; f = false) {
        if (!r.next(']', f, &more)) {
          ok = false;
          break;
        }
        if (!more) break;
        out->items.emplace_back();
        if (!read_item(r, &out->items.back())) {
          ok = false;
          break;
        }
      }
      if (!ok) break;
    } else if (!r.skip()) {
      break;
    }
  }
  *err = r.error().empty() ? "malformed response" : r.error();
  return false;
}

ItemResult classify_item(const BulkItem &item) {
  int s = item.status;
  if (s >= 200 && s < 300) return ItemResult::Created;
  if (s == 409) return ItemResult::Conflict;
  if (s == 429 || s == 408 || s >= 500 || s < 200) return ItemResult::Retry;
  return ItemResult::DeadLetter;
}

std::string item_reason(const BulkItem &item) {
  if (item.error_type.empty() && item.error_reason.empty()) {
    return "HTTP " + std::to_string(item.status);
  }
  if (item.error_type.empty()) return item.error_reason;
  return item.error_type + ": " + item.error_reason;
}

RequestResult classify_request(int status, const char *transport_error) {
  if (transport_error || status == 0) return RequestResult::HostFailure;
  if (status >= 200 && status < 300) return RequestResult::Items;
  if (status == 413) return RequestResult::TooLarge;
  if (status == 429 || status >= 500 || status == 408) return RequestResult::HostFailure;
  return RequestResult::Refused;
}

std::string request_error_text(int status, std::string_view body) {
  std::string out = "HTTP " + std::to_string(status);
  Reader r(body);
  bool more;
  if (!body.empty() && body.front() == '{' && r.expect('{')) {
    std::string type, reason, message;
    for (bool first = true;; first = false) {
      if (!r.next('}', first, &more) || !more) break;
      std::string key;
      if (!r.string(&key) || !r.expect(':')) break;
      char c = 0;
      if (!r.peek(&c)) break;
      if (key == "error" && c == '{') {
        if (!read_error_object(r, &type, &reason, 0)) break;
      } else if ((key == "message" || key == "Message" || key == "error") && c == '"') {
        if (!r.string(&message, 500)) break;
      } else if (!r.skip()) {
        break;
      }
    }
    if (!type.empty() || !reason.empty()) return out + " " + type + ": " + reason;
    if (!message.empty()) return out + " " + message;
  }
  if (!body.empty()) {
    std::string_view head = body.substr(0, 200);
    std::string clean;
    for (char c : head)
      clean += (static_cast<unsigned char>(c) < 0x20) ? ' ' : c;
    out += " " + clean;
  }
  return out;
}

}  // namespace ingestd::es
