// JSON DOM, strict parser, compact serializer and request-body splitting (see json.h).
#include "json/json.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <new>
#include <utility>

namespace ingestd::json {

namespace {

constexpr bool is_ws(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}
constexpr bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

// Length of the valid UTF-8 sequence starting at p (p < end), or 0 if it is invalid.
size_t utf8_sequence(const unsigned char *p, const unsigned char *end) {
  unsigned char c = p[0];
  if (c < 0x80) return 1;
  size_t n;
  unsigned char lo = 0x80, hi = 0xBF;  // range of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;  // no UTF-16 surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
  } else {
    return 0;
  }
  if (static_cast<size_t>(end - p) < n) return 0;
  if (p[1] < lo || p[1] > hi) return 0;
  for (size_t i = 2; i < n; ++i) {
    if ((p[i] & 0xC0) != 0x80) return 0;
  }
  return n;
}

void append_utf8(std::string *out, uint32_t cp) {
  char buf[4];
  size_t n;
  if (cp < 0x80) {
    buf[0] = static_cast<char>(cp);
    n = 1;
  } else if (cp < 0x800) {
    buf[0] = static_cast<char>(0xC0 | (cp >> 6));
    buf[1] = static_cast<char>(0x80 | (cp & 0x3F));
    n = 2;
  } else if (cp < 0x10000) {
    buf[0] = static_cast<char>(0xE0 | (cp >> 12));
    buf[1] = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    buf[2] = static_cast<char>(0x80 | (cp & 0x3F));
    n = 3;
  } else {
    buf[0] = static_cast<char>(0xF0 | (cp >> 18));
    buf[1] = static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    buf[2] = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    buf[3] = static_cast<char>(0x80 | (cp & 0x3F));
    n = 4;
  }
  out->append(buf, n);
}

// s with every byte that does not start a valid UTF-8 sequence replaced by U+FFFD.
bool is_ascii(std::string_view s) {
  for (char c : s)
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  return true;
}

std::string sanitize_utf8(std::string_view s) {
  auto *p = reinterpret_cast<const unsigned char *>(s.data());
  auto *end = p + s.size();
  auto *q = p;
  while (q < end && *q < 0x80)
    ++q;
  if (q == end) return std::string(s);
  std::string out;
  out.reserve(s.size() + 8);
  out.append(s.data(), static_cast<size_t>(q - p));
  while (q < end) {
    size_t n = utf8_sequence(q, end);
    if (n == 0) {
      out.append("\xEF\xBF\xBD");
      ++q;
    } else {
      out.append(reinterpret_cast<const char *>(q), n);
      q += n;
    }
  }
  return out;
}

// End of the JSON number starting at p, or nullptr if [p, end) does not start with one.
// On failure *bad points at the offending character (or end).
const char *scan_number(const char *p, const char *end, const char **bad, const char **why) {
  if (p < end && *p == '-') ++p;
  if (p == end || !is_digit(*p)) {
    *bad = p;
    *why = "digit expected in number";
    return nullptr;
  }
  if (*p == '0') {
    ++p;
    if (p < end && is_digit(*p)) {
      *bad = p - 1;
      *why = "leading zero in number";
      return nullptr;
    }
  } else {
    while (p < end && is_digit(*p))
      ++p;
  }
  if (p < end && *p == '.') {
    ++p;
    if (p == end || !is_digit(*p)) {
      *bad = p;
      *why = "digit expected in number";
      return nullptr;
    }
    while (p < end && is_digit(*p))
      ++p;
  }
  if (p < end && (*p == 'e' || *p == 'E')) {
    ++p;
    if (p < end && (*p == '+' || *p == '-')) ++p;
    if (p == end || !is_digit(*p)) {
      *bad = p;
      *why = "digit expected in number";
      return nullptr;
    }
    while (p < end && is_digit(*p))
      ++p;
  }
  return p;
}

// Character classes for the string scanner: 0 plain, 1 needs a closer look.
constexpr std::array<uint8_t, 256> make_string_class() {
  std::array<uint8_t, 256> t{};
  for (int c = 0; c < 256; ++c)
    t[c] = (c < 0x20 || c == '"' || c == '\\' || c >= 0x80) ? 1 : 0;
  return t;
}
constexpr std::array<uint8_t, 256> kStringClass = make_string_class();

// True if any of the 8 bytes in w is < 0x20, '"', '\\' or >= 0x80.
inline bool has_special_byte(uint64_t w) {
  constexpr uint64_t ones = 0x0101010101010101ULL;
  constexpr uint64_t high = 0x8080808080808080ULL;
  uint64_t lt20 = (w - ones * 0x20) & ~w;
  uint64_t q = w ^ (ones * '"');
  uint64_t bs = w ^ (ones * '\\');
  uint64_t zq = (q - ones) & ~q;
  uint64_t zb = (bs - ones) & ~bs;
  return ((lt20 | zq | zb) & high) != 0 || (w & high) != 0;
}

std::string describe_char(char c) {
  auto u = static_cast<unsigned char>(c);
  if (u >= 0x20 && u < 0x7F) return std::string("'") + c + "'";
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s = "'\\x";
  s += kHex[u >> 4];
  s += kHex[u & 0xF];
  s += '\'';
  return s;
}

}  // namespace

// --- Value --------------------------------------------------------------------------------

Value::Value(Kind k) noexcept : kind_(Kind::Null) {
  reset(k);
}

void Value::reset(Kind k) noexcept {
  destroy();
  kind_ = k;
  switch (k) {
    case Kind::Null:
    case Kind::Bool:
      b_ = false;
      break;
    case Kind::Number:
    case Kind::String:
      new (&s_) std::string();
      break;
    case Kind::Array:
      new (&a_) std::vector<Value>();
      break;
    case Kind::Object:
      new (&o_) std::vector<Member>();
      break;
  }
}

void Value::destroy() noexcept {
  switch (kind_) {
    case Kind::Null:
    case Kind::Bool:
      break;
    case Kind::Number:
    case Kind::String:
      s_.~basic_string();
      break;
    case Kind::Array:
      a_.~vector();
      break;
    case Kind::Object:
      o_.~vector();
      break;
  }
  kind_ = Kind::Null;
  b_ = false;
}

void Value::move_from(Value &&other) noexcept {
  kind_ = other.kind_;
  switch (kind_) {
    case Kind::Null:
    case Kind::Bool:
      b_ = other.b_;
      break;
    case Kind::Number:
    case Kind::String:
      new (&s_) std::string(std::move(other.s_));
      break;
    case Kind::Array:
      new (&a_) std::vector<Value>(std::move(other.a_));
      break;
    case Kind::Object:
      new (&o_) std::vector<Member>(std::move(other.o_));
      break;
  }
  other.destroy();
}

void Value::copy_from(const Value &other) {
  switch (other.kind_) {
    case Kind::Null:
    case Kind::Bool:
      b_ = other.b_;
      break;
    case Kind::Number:
    case Kind::String:
      new (&s_) std::string(other.s_);
      break;
    case Kind::Array:
      new (&a_) std::vector<Value>(other.a_);
      break;
    case Kind::Object:
      new (&o_) std::vector<Member>(other.o_);
      break;
  }
  kind_ = other.kind_;  // only once the member is constructed (copies may throw bad_alloc)
}

Value::Value(const Value &other) : kind_(Kind::Null), b_(false) {
  copy_from(other);
}

Value::Value(Value &&other) noexcept : kind_(Kind::Null), b_(false) {
  move_from(std::move(other));
}

Value &Value::operator=(const Value &other) {
  if (this != &other) {
    Value tmp(other);  // strong guarantee; also safe when other is inside *this
    destroy();
    move_from(std::move(tmp));
  }
  return *this;
}

Value &Value::operator=(Value &&other) noexcept {
  if (this == &other) return *this;
  if (kind_ == Kind::Array || kind_ == Kind::Object) {
    Value tmp(std::move(other));  // other may live inside *this
    destroy();
    move_from(std::move(tmp));
  } else {
    destroy();
    move_from(std::move(other));
  }
  return *this;
}

Value Value::boolean(bool b) {
  Value v(Kind::Bool);
  v.b_ = b;
  return v;
}

// A number or string holding `s`, built in one step (no empty string first).
Value Value::text(Kind k, std::string_view s) {
  Value v;
  v.kind_ = k;
  new (&v.s_) std::string(s);
  return v;
}

Value Value::number(double d) {
  if (!std::isfinite(d)) return Value();
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, d);
  return text(Kind::Number, std::string_view(buf, static_cast<size_t>(r.ptr - buf)));
}

Value Value::integer(int64_t i) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, i);
  return text(Kind::Number, std::string_view(buf, static_cast<size_t>(r.ptr - buf)));
}

Value Value::number_text(std::string_view lexeme) {
  const char *bad = nullptr;
  const char *why = nullptr;
  const char *end = lexeme.data() + lexeme.size();
  if (lexeme.empty() || scan_number(lexeme.data(), end, &bad, &why) != end) return Value();
  Value v(Kind::Number);
  v.s_.assign(lexeme);
  return v;
}

Value Value::string(std::string_view s) {
  if (is_ascii(s)) return text(Kind::String, s);
  Value v(Kind::String);
  v.s_ = sanitize_utf8(s);
  return v;
}

Value Value::array() {
  return Value(Kind::Array);
}
Value Value::object() {
  return Value(Kind::Object);
}

double Value::as_double() const {
  if (kind_ != Kind::Number) return 0.0;
  const char *first = s_.data();
  const char *last = first + s_.size();
  double d = 0.0;
  auto r = std::from_chars(first, last, d);
  if (r.ec == std::errc()) return d;
  // Out of range: overflow or underflow. The decimal exponent of the leading significant
  // digit tells which.
  bool neg = *first == '-';
  const char *p = first + (neg ? 1 : 0);
  int64_t lead = 0;  // position of the leading significant digit relative to the point
  bool found = false;
  int64_t int_digits = 0;
  for (; p < last && is_digit(*p); ++p) {
    if (!found && *p != '0') {
      found = true;
      lead = 0;
    }
    if (found) ++int_digits;
  }
  lead = int_digits;
  if (p < last && *p == '.') {
    ++p;
    int64_t pos = 0;
    for (; p < last && is_digit(*p); ++p) {
      --pos;
      if (!found && *p != '0') {
        found = true;
        lead = pos + 1;
      }
    }
  }
  if (!found) return neg ? -0.0 : 0.0;
  int64_t exp = 0;
  if (p < last && (*p == 'e' || *p == 'E')) {
    ++p;
    bool eneg = false;
    if (p < last && (*p == '+' || *p == '-')) eneg = *p++ == '-';
    for (; p < last && is_digit(*p); ++p) {
      if (exp < 1000000000) exp = exp * 10 + (*p - '0');
    }
    if (eneg) exp = -exp;
  }
  bool overflow = lead + exp > 0;
  double r2 = overflow ? std::numeric_limits<double>::infinity() : 0.0;
  return neg ? -r2 : r2;
}

Value::Member *Value::find_member(std::string_view key) {
  if (kind_ != Kind::Object) return nullptr;
  for (auto &m : o_) {
    if (m.key.size() == key.size() && std::string_view(m.key) == key) return &m;
  }
  return nullptr;
}

const Value *Value::find(std::string_view key) const {
  Member *m = const_cast<Value *>(this)->find_member(key);
  return m ? &m->value : nullptr;
}

Value *Value::find(std::string_view key) {
  Member *m = find_member(key);
  return m ? &m->value : nullptr;
}

void Value::push_back(Value v) {
  assert(kind_ == Kind::Array);
  if (kind_ != Kind::Array) return;
  a_.push_back(std::move(v));
}

Value &Value::set(std::string_view key, Value &&v) {
  if (kind_ != Kind::Object) {
    destroy();
    new (&o_) std::vector<Member>();
    kind_ = Kind::Object;
  }
  // Keys are stored sanitized, so an ASCII key is looked up as it is (the
  // usual case: no string is built to replace a member).
  std::string sanitized;
  if (!is_ascii(key)) {
    sanitized = sanitize_utf8(key);
    key = sanitized;
  }
  if (Member *m = find_member(key)) {
    m->value = std::move(v);
    return m->value;
  }
  Member &m = o_.emplace_back();
  m.key.assign(key);
  m.value = std::move(v);
  return m.value;
}

bool Value::erase(std::string_view key) {
  Member *m = find_member(key);
  if (!m) return false;
  o_.erase(o_.begin() + (m - o_.data()));
  return true;
}

namespace {

// Splits off the first segment of a dotted path. False if the segment is empty.
bool next_segment(std::string_view *path, std::string_view *seg, bool *last) {
  size_t dot = path->find('.');
  *last = dot == std::string_view::npos;
  *seg = path->substr(0, dot);
  *path = *last ? std::string_view() : path->substr(dot + 1);
  return !seg->empty();
}

bool valid_path(std::string_view path) {
  if (path.empty() || path.front() == '.' || path.back() == '.') return false;
  return path.find("..") == std::string_view::npos;
}

}  // namespace

Value *Value::find_path(std::string_view path) {
  if (path.empty()) return nullptr;
  if (path.find('.') == std::string_view::npos) return find(path);
  if (!valid_path(path)) return nullptr;
  Value *cur = this;
  std::string_view seg;
  bool last = false;
  while (next_segment(&path, &seg, &last)) {
    cur = cur->find(seg);
    if (!cur || last) return cur;
  }
  return nullptr;
}

const Value *Value::find_path(std::string_view path) const {
  return const_cast<Value *>(this)->find_path(path);
}

Value *Value::set_path(std::string_view path, Value &&v) {
  if (kind_ != Kind::Object || path.empty()) return nullptr;
  if (path.find('.') == std::string_view::npos) return &set(path, std::move(v));
  if (!valid_path(path)) return nullptr;
  Value *cur = this;
  std::string_view seg;
  bool last = false;
  while (next_segment(&path, &seg, &last)) {
    if (last) return &cur->set(seg, std::move(v));
    Value *next = cur->find(seg);
    if (!next) {
      next = &cur->set(seg, Value::object());
    } else if (next->kind_ != Kind::Object) {
      return nullptr;  // nothing created yet: creation only starts at the first missing member
    }
    cur = next;
  }
  return nullptr;
}

bool Value::erase_path(std::string_view path) {
  if (!valid_path(path)) return false;
  size_t dot = path.rfind('.');
  if (dot == std::string_view::npos) return erase(path);
  Value *parent = find_path(path.substr(0, dot));
  return parent && parent->erase(path.substr(dot + 1));
}

bool operator==(const Value &a, const Value &b) {
  if (a.kind_ != b.kind_) return false;
  switch (a.kind_) {
    case Kind::Null:
      return true;
    case Kind::Bool:
      return a.b_ == b.b_;
    case Kind::Number:
    case Kind::String:
      return a.s_ == b.s_;
    case Kind::Array:
      return a.a_ == b.a_;
    case Kind::Object:
      if (a.o_.size() != b.o_.size()) return false;
      for (size_t i = 0; i < a.o_.size(); ++i) {
        if (a.o_[i].key != b.o_[i].key || !(a.o_[i].value == b.o_[i].value)) return false;
      }
      return true;
  }
  return false;
}

// --- Parser -------------------------------------------------------------------------------

class Parser {
 public:
  explicit Parser(const ParseOptions &opts) : max_depth_(opts.max_depth) {}

  bool parse(std::string_view text, Value *out, ParseError *err, const char **value_end);

 private:
  bool fail(const char *at, std::string message) {
    if (!failed_) {
      failed_ = true;
      error_.offset = static_cast<size_t>(at - begin_);
      error_.message = std::move(message);
    }
    return false;
  }
  bool unexpected(const char *at) {
    if (at >= end_) return fail(end_, "unexpected end of input");
    return fail(at, "unexpected character " + describe_char(*at));
  }
  void skip_ws() {
    while (p_ < end_ && is_ws(*p_))
      ++p_;
  }

  bool parse_value(Value *out, size_t depth);
  bool parse_array(Value *out, size_t depth);
  bool parse_object(Value *out, size_t depth);
  bool parse_string(std::string *out);
  bool parse_escape(std::string *out, const char *open);
  bool parse_literal(const char *word, size_t len);
  bool parse_number(Value *out);
  static void dedupe_members(std::vector<Value::Member> &members);

  size_t max_depth_;
  const char *begin_ = nullptr;
  const char *p_ = nullptr;
  const char *end_ = nullptr;
  bool failed_ = false;
  bool top_array_ = false;  // the text is an array: its objects are the records
  ParseError error_;
};

bool Parser::parse(std::string_view text, Value *out, ParseError *err, const char **value_end) {
  begin_ = text.data();
  p_ = begin_;
  end_ = begin_ + text.size();
  failed_ = false;
  Value v;
  skip_ws();
  top_array_ = p_ < end_ && *p_ == '[';
  bool ok = parse_value(&v, 0);
  if (ok) {
    if (value_end) *value_end = p_;
    skip_ws();
    if (p_ != end_) ok = fail(p_, "trailing characters after JSON value");
  }
  if (!ok) {
    if (err) *err = error_;
    return false;
  }
  *out = std::move(v);
  return true;
}

bool Parser::parse_value(Value *out, size_t depth) {
  if (p_ >= end_) return unexpected(p_);
  switch (*p_) {
    case '{':
      return parse_object(out, depth + 1);
    case '[':
      return parse_array(out, depth + 1);
    case '"':
      out->reset(Kind::String);
      return parse_string(&out->s_);
    case 't':
      if (!parse_literal("true", 4)) return false;
      *out = Value::boolean(true);
      return true;
    case 'f':
      if (!parse_literal("false", 5)) return false;
      *out = Value::boolean(false);
      return true;
    case 'n':
      if (!parse_literal("null", 4)) return false;
      *out = Value();
      return true;
    default:
      if (*p_ == '-' || is_digit(*p_)) return parse_number(out);
      return unexpected(p_);
  }
}

bool Parser::parse_literal(const char *word, size_t len) {
  for (size_t i = 0; i < len; ++i) {
    if (p_ + i >= end_ || p_[i] != word[i]) return unexpected(p_ + i);
  }
  p_ += len;
  return true;
}

bool Parser::parse_number(Value *out) {
  const char *bad = nullptr;
  const char *why = nullptr;
  const char *e = scan_number(p_, end_, &bad, &why);
  if (!e) {
    if (bad >= end_) return fail(end_, "unexpected end of input");
    return fail(bad, why);
  }
  out->destroy();
  out->kind_ = Kind::Number;
  new (&out->s_) std::string(p_, static_cast<size_t>(e - p_));
  p_ = e;
  return true;
}

bool Parser::parse_string(std::string *out) {
  const char *open = p_;
  const char *p = p_ + 1;
  const char *run = p;  // start of the bytes not yet copied to *out
  for (;;) {
    while (end_ - p >= 8) {
      uint64_t w;
      std::memcpy(&w, p, 8);
      if (has_special_byte(w)) break;
      p += 8;
    }
    while (p < end_ && kStringClass[static_cast<unsigned char>(*p)] == 0)
      ++p;
    if (p >= end_) return fail(open, "unterminated string");
    char c = *p;
    if (c == '"') {
      out->append(run, static_cast<size_t>(p - run));
      p_ = p + 1;
      return true;
    }
    if (c == '\\') {
      out->append(run, static_cast<size_t>(p - run));
      p_ = p;
      if (!parse_escape(out, open)) return false;
      p = p_;
      run = p;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      return fail(p, "control character in string");
    } else if (static_cast<unsigned char>(c) < 0x80) {
      ++p;  // a byte the SWAR check flagged but the table did not (cannot happen)
    } else {
      size_t n = utf8_sequence(reinterpret_cast<const unsigned char *>(p),
                               reinterpret_cast<const unsigned char *>(end_));
      if (n == 0) return fail(p, "invalid UTF-8 in string");
      p += n;
    }
  }
}

namespace {

// Value of 4 hex digits at p (p + 4 <= end checked by the caller), or -1.
int32_t hex4(const char *p) {
  int32_t v = 0;
  for (int i = 0; i < 4; ++i) {
    char c = p[i];
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else if (c >= 'A' && c <= 'F') {
      d = c - 'A' + 10;
    } else {
      return -1;
    }
    v = v * 16 + d;
  }
  return v;
}

}  // namespace

// p_ at a backslash inside the string opened at `open`; appends the unescaped text and moves p_
// past the escape.
bool Parser::parse_escape(std::string *out, const char *open) {
  const char *bs = p_;
  if (bs + 1 >= end_) return fail(open, "unterminated string");
  char c = bs[1];
  char simple = 0;
  switch (c) {
    case '"':
      simple = '"';
      break;
    case '\\':
      simple = '\\';
      break;
    case '/':
      simple = '/';
      break;
    case 'b':
      simple = '\b';
      break;
    case 'f':
      simple = '\f';
      break;
    case 'n':
      simple = '\n';
      break;
    case 'r':
      simple = '\r';
      break;
    case 't':
      simple = '\t';
      break;
    case 'u':
      break;
    default:
      return fail(bs, "invalid escape \\" + describe_char(c));
  }
  if (simple) {
    out->push_back(simple);
    p_ = bs + 2;
    return true;
  }
  if (end_ - bs < 6) return fail(bs, "invalid \\u escape");
  int32_t hi = hex4(bs + 2);
  if (hi < 0) return fail(bs, "invalid \\u escape");
  uint32_t cp = static_cast<uint32_t>(hi);
  const char *next = bs + 6;
  if (cp >= 0xDC00 && cp <= 0xDFFF) return fail(bs, "lone surrogate in \\u escape");
  if (cp >= 0xD800 && cp <= 0xDBFF) {
    if (end_ - next < 6 || next[0] != '\\' || next[1] != 'u') {
      return fail(bs, "lone surrogate in \\u escape");
    }
    int32_t lo = hex4(next + 2);
    if (lo < 0) return fail(next, "invalid \\u escape");
    if (lo < 0xDC00 || lo > 0xDFFF) return fail(bs, "lone surrogate in \\u escape");
    cp = 0x10000 + ((cp - 0xD800) << 10) + (static_cast<uint32_t>(lo) - 0xDC00);
    next += 6;
  }
  append_utf8(out, cp);
  p_ = next;
  return true;
}

// Containers are parsed straight into their final vectors (a member or item
// is never moved once parsed), reserved for what records usually hold.
constexpr size_t kArrayItems = 4;
constexpr size_t kBodyItems = 16;  // a body's array of records

bool Parser::parse_array(Value *out, size_t depth) {
  if (depth > max_depth_) return fail(p_, "nesting deeper than " + std::to_string(max_depth_));
  ++p_;  // '['
  out->reset(Kind::Array);
  std::vector<Value> &items = out->a_;
  skip_ws();
  if (p_ < end_ && *p_ == ']') {
    ++p_;
    return true;
  }
  items.reserve(depth == 1 ? kBodyItems : kArrayItems);
  for (;;) {
    skip_ws();
    if (!parse_value(&items.emplace_back(), depth)) return false;
    skip_ws();
    if (p_ >= end_) return unexpected(p_);
    if (*p_ == ',') {
      ++p_;
      continue;
    }
    if (*p_ == ']') {
      ++p_;
      break;
    }
    return fail(p_, "unexpected character " + describe_char(*p_) + ", expected ',' or ']'");
  }
  // As for objects: an array kept in a record is counted by capacity. (A
  // body's array of records is taken apart, not kept.)
  if (depth > 1 && items.capacity() > items.size() + 4) items.shrink_to_fit();
  return true;
}

constexpr size_t kRecordSlack = 2;

// Records (the objects at the top of a body or of its array) get room for
// the members they usually hold plus the fields inputs add (a geohash,
// received_at): adding those then moves no member.
constexpr size_t kRecordMembers = 8;
constexpr size_t kObjectMembers = 4;

bool Parser::parse_object(Value *out, size_t depth) {
  if (depth > max_depth_) return fail(p_, "nesting deeper than " + std::to_string(max_depth_));
  ++p_;  // '{'
  out->reset(Kind::Object);
  std::vector<Value::Member> &members = out->o_;
  skip_ws();
  if (p_ < end_ && *p_ == '}') {
    ++p_;
    return true;
  }
  const bool record = depth == 1 || (depth == 2 && top_array_);
  members.reserve(record ? kRecordMembers + kRecordSlack : kObjectMembers);
  for (;;) {
    skip_ws();
    if (p_ >= end_) return unexpected(p_);
    if (*p_ != '"') {
      return fail(p_, "unexpected character " + describe_char(*p_) + ", expected a string key");
    }
    // A nested container fills its own vector, never this one: the reference
    // stays valid while the member's value is parsed.
    Value::Member &m = members.emplace_back();
    if (!parse_string(&m.key)) return false;
    skip_ws();
    if (p_ >= end_) return unexpected(p_);
    if (*p_ != ':') {
      return fail(p_, "unexpected character " + describe_char(*p_) + ", expected ':'");
    }
    ++p_;
    skip_ws();
    if (!parse_value(&m.value, depth)) return false;
    skip_ws();
    if (p_ >= end_) return unexpected(p_);
    if (*p_ == ',') {
      ++p_;
      continue;
    }
    if (*p_ == '}') {
      ++p_;
      break;
    }
    return fail(p_, "unexpected character " + describe_char(*p_) + ", expected ',' or '}'");
  }
  dedupe_members(members);
  // Queued records are counted by capacity: a vector that grew past what it
  // holds is cut back to size (plus a record's slack).
  size_t want = members.size() + (record ? kRecordSlack : 0);
  if (members.capacity() < want || members.capacity() > want + 4) {
    std::vector<Value::Member> exact;
    exact.reserve(want);
    for (Value::Member &m : members)
      exact.push_back(std::move(m));
    members = std::move(exact);
  }
  return true;
}

// Makes the keys of `members` unique: the last value of a key replaces the first one's, later
// duplicates are removed.
void Parser::dedupe_members(std::vector<Value::Member> &members) {
  size_t n = members.size();
  if (n < 2) return;
  Value::Member *m = members.data();
  std::vector<bool> drop;
  if (n <= 16) {
    // A bit per (length, first byte) seen so far: most keys cannot repeat an
    // earlier one, and skip the comparisons.
    auto bit = [](const std::string &k) {
      return uint64_t{1} << ((k.size() * 7 + (k.empty() ? 0 : static_cast<unsigned char>(k[0]))) &
                             63);
    };
    uint64_t seen = bit(m[0].key);
    for (size_t i = 1; i < n; ++i) {
      uint64_t b = bit(m[i].key);
      bool maybe = (seen & b) != 0;
      seen |= b;
      if (!maybe) continue;
      for (size_t j = 0; j < i; ++j) {
        if (m[j].key == m[i].key) {
          if (drop.empty()) drop.assign(n, false);
          m[j].value = std::move(m[i].value);
          drop[i] = true;
          break;
        }
      }
    }
  } else {
    std::vector<uint32_t> order(n);
    for (size_t i = 0; i < n; ++i)
      order[i] = static_cast<uint32_t>(i);
    std::stable_sort(order.begin(), order.end(),
                     [m](uint32_t a, uint32_t b) { return m[a].key < m[b].key; });
    size_t head = order[0];  // first (lowest) position of the current group of equal keys
    for (size_t i = 1; i < n; ++i) {
      if (m[order[i]].key != m[head].key) {
        head = order[i];
        continue;
      }
      if (drop.empty()) drop.assign(n, false);
      m[head].value = std::move(m[order[i]].value);
      drop[order[i]] = true;
    }
  }
  if (drop.empty()) return;
  size_t w = 0;
  for (size_t i = 0; i < n; ++i) {
    if (drop[i]) continue;
    if (i != w) members[w] = std::move(members[i]);
    ++w;
  }
  members.resize(w);
}

bool parse(std::string_view text, Value *out, ParseError *err, const ParseOptions &opts) {
  Parser parser(opts);
  return parser.parse(text, out, err, nullptr);
}

// --- Serializer ---------------------------------------------------------------------------

namespace {

constexpr std::array<uint8_t, 256> make_escape_class() {
  std::array<uint8_t, 256> t{};
  for (int c = 0; c < 0x20; ++c)
    t[c] = 1;
  t['"'] = 1;
  t['\\'] = 1;
  return t;
}
constexpr std::array<uint8_t, 256> kEscapeClass = make_escape_class();

// The first byte of [p, end) that needs escaping, or end. Eight bytes at a
// time: app-log messages run to kilobytes with nothing to escape, and the
// queue's accounting measures every record once, the serializer again.
const char *next_escape(const char *p, const char *end) {
  constexpr uint64_t kOnes = 0x0101010101010101ull, kHighs = 0x8080808080808080ull;
  for (; end - p >= 8; p += 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    uint64_t quote = w ^ (kOnes * '"'), backslash = w ^ (kOnes * '\\');
    // A byte below 0x20, or one equal to '"' or '\\' (then its xor is zero).
    uint64_t hit = (((w - kOnes * 0x20) & ~w) | ((quote - kOnes) & ~quote) |
                    ((backslash - kOnes) & ~backslash)) &
                   kHighs;
    if (hit) break;
  }
  while (p < end && !kEscapeClass[static_cast<unsigned char>(*p)])
    ++p;
  return p;
}

void serialize_string(std::string_view s, std::string *out) {
  const char *p = s.data();
  const char *end = p + s.size();
  p = next_escape(p, end);
  if (p == end) {  // the common case: nothing to escape, one append
    size_t n = out->size();
    out->resize(n + s.size() + 2);
    char *w = out->data() + n;
    w[0] = '"';
    std::memcpy(w + 1, s.data(), s.size());
    w[s.size() + 1] = '"';
    return;
  }
  out->push_back('"');
  const char *run = s.data();
  for (; p < end; ++p) {
    auto c = static_cast<unsigned char>(*p);
    if (!kEscapeClass[c]) continue;
    out->append(run, static_cast<size_t>(p - run));
    run = p + 1;
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\b':
        out->append("\\b");
        break;
      case '\f':
        out->append("\\f");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default: {
        static constexpr char kHex[] = "0123456789abcdef";
        char buf[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xF]};
        out->append(buf, 6);
      }
    }
  }
  out->append(run, static_cast<size_t>(end - run));
  out->push_back('"');
}

size_t serialized_string_size(std::string_view s) {
  size_t n = s.size() + 2;
  const char *end = s.data() + s.size();
  for (const char *p = next_escape(s.data(), end); p < end; p = next_escape(p + 1, end)) {
    switch (static_cast<unsigned char>(*p)) {
      case '"':
      case '\\':
      case '\b':
      case '\f':
      case '\n':
      case '\r':
      case '\t':
        n += 1;
        break;
      default:
        n += 5;
    }
  }
  return n;
}

}  // namespace

namespace {

// A heap block as glibc's malloc sees it: 16-byte granules plus a header.
size_t block(size_t bytes) {
  return bytes == 0 ? 0 : ((bytes + 15) & ~size_t{15}) + 16;
}

size_t string_heap(const std::string &s) {
  // Short strings live inside the object (libstdc++'s small-string buffer).
  return s.capacity() > 15 ? block(s.capacity() + 1) : 0;
}

}  // namespace

size_t Value::heap_bytes() const {
  switch (kind_) {
    case Kind::String:
    case Kind::Number:
      return string_heap(s_);
    case Kind::Array: {
      size_t n = block(a_.capacity() * sizeof(Value));
      for (const Value &e : a_)
        n += e.heap_bytes();
      return n;
    }
    case Kind::Object: {
      size_t n = block(o_.capacity() * sizeof(Member));
      for (const Member &m : o_)
        n += string_heap(m.key) + m.value.heap_bytes();
      return n;
    }
    default:
      return 0;
  }
}

Value::Footprint Value::footprint() const {
  switch (kind_) {
    case Kind::Null:
      return {0, 4};
    case Kind::Bool:
      return {0, b_ ? size_t{4} : size_t{5}};
    case Kind::Number:
      return {string_heap(s_), s_.size()};
    case Kind::String:
      return {string_heap(s_), serialized_string_size(s_)};
    case Kind::Array: {
      Footprint f{block(a_.capacity() * sizeof(Value)), 2 + (a_.empty() ? 0 : a_.size() - 1)};
      for (const Value &e : a_) {
        Footprint g = e.footprint();
        f.heap += g.heap;
        f.serialized += g.serialized;
      }
      return f;
    }
    case Kind::Object: {
      Footprint f{block(o_.capacity() * sizeof(Member)), 2 + (o_.empty() ? 0 : o_.size() - 1)};
      for (const Member &m : o_) {
        Footprint g = m.value.footprint();
        f.heap += string_heap(m.key) + g.heap;
        f.serialized += serialized_string_size(m.key) + 1 + g.serialized;
      }
      return f;
    }
  }
  return {};
}

size_t serialized_size(const Value &v) {
  switch (v.kind()) {
    case Kind::Null:
      return 4;
    case Kind::Bool:
      return v.as_bool() ? 4 : 5;
    case Kind::Number:
      return v.number_text().size();
    case Kind::String:
      return serialized_string_size(v.as_string());
    case Kind::Array: {
      size_t n = 2 + (v.size() ? v.size() - 1 : 0);
      for (size_t i = 0; i < v.size(); ++i)
        n += serialized_size(v.at(i));
      return n;
    }
    case Kind::Object: {
      size_t n = 2 + (v.size() ? v.size() - 1 : 0);
      for (size_t i = 0; i < v.size(); ++i)
        n += serialized_string_size(v.key(i)) + 1 + serialized_size(v.value_at(i));
      return n;
    }
  }
  return 0;
}

void serialize(const Value &v, std::string *out) {
  switch (v.kind()) {
    case Kind::Null:
      out->append("null");
      break;
    case Kind::Bool:
      out->append(v.as_bool() ? "true" : "false");
      break;
    case Kind::Number:
      out->append(v.number_text());
      break;
    case Kind::String:
      serialize_string(v.as_string(), out);
      break;
    case Kind::Array: {
      out->push_back('[');
      for (size_t i = 0; i < v.size(); ++i) {
        if (i) out->push_back(',');
        serialize(v.at(i), out);
      }
      out->push_back(']');
      break;
    }
    case Kind::Object: {
      out->push_back('{');
      for (size_t i = 0; i < v.size(); ++i) {
        if (i) out->push_back(',');
        serialize_string(v.key(i), out);
        out->push_back(':');
        serialize(v.value_at(i), out);
      }
      out->push_back('}');
      break;
    }
  }
}

std::string to_string(const Value &v) {
  std::string s;
  serialize(v, &s);
  return s;
}

// --- Request bodies -----------------------------------------------------------------------

namespace {

constexpr const char *kNotObject = "element is not an object";

std::string with_offset(const ParseError &e) {
  return e.message + " at offset " + std::to_string(e.offset);
}

void add_item(BodyResult *r, size_t index, Value v) {
  BodyItem item;
  item.index = index;
  if (!v.is_object()) item.error = kNotObject;
  item.value = std::move(v);
  r->items.push_back(std::move(item));
}

}  // namespace

BodyResult parse_body(std::string_view body, const ParseOptions &opts) {
  BodyResult r;
  size_t start = 0;
  while (start < body.size() && is_ws(body[start]))
    ++start;
  if (start == body.size()) {
    r.ok = false;
    r.error = "empty body";
    return r;
  }
  Parser parser(opts);
  Value v;
  ParseError err;
  const char *value_end = nullptr;
  if (parser.parse(body, &v, &err, &value_end)) {
    if (v.is_array()) {
      r.items.reserve(v.size());
      for (size_t i = 0; i < v.size(); ++i)
        add_item(&r, i, std::move(v.at(i)));
    } else {
      add_item(&r, 0, std::move(v));
    }
    return r;
  }
  // NDJSON? Only if a complete value, written on one line, is followed on a later line.
  bool ndjson = false;
  if (body[start] != '[' && value_end != nullptr) {
    size_t vend = static_cast<size_t>(value_end - body.data());
    std::string_view value_text = body.substr(start, vend - start);
    std::string_view gap = body.substr(vend, err.offset - vend);
    ndjson =
        value_text.find('\n') == std::string_view::npos && gap.find('\n') != std::string_view::npos;
  }
  if (!ndjson) {
    r.ok = false;
    r.error = with_offset(err);
    BodyItem item;
    item.index = 0;
    item.error = r.error;
    r.items.push_back(std::move(item));
    return r;
  }
  size_t index = 0;
  size_t line_no = 0;
  size_t pos = 0;
  while (pos < body.size()) {
    size_t nl = body.find('\n', pos);
    size_t line_end = nl == std::string_view::npos ? body.size() : nl;
    std::string_view line = body.substr(pos, line_end - pos);
    pos = line_end + 1;
    ++line_no;
    bool blank = true;
    for (char c : line) {
      if (!is_ws(c)) {
        blank = false;
        break;
      }
    }
    if (blank) continue;
    Value lv;
    ParseError lerr;
    if (parser.parse(line, &lv, &lerr, nullptr)) {
      add_item(&r, index, std::move(lv));
    } else {
      BodyItem item;
      item.index = index;
      item.error = "line " + std::to_string(line_no) + ", column " +
                   std::to_string(lerr.offset + 1) + ": " + lerr.message;
      r.items.push_back(std::move(item));
    }
    ++index;
  }
  return r;
}

}  // namespace ingestd::json
