// JSON for records: a DOM (Value), a strict RFC 8259 parser, a compact serializer, and the
// splitting of HTTP request bodies (object, array of objects, NDJSON) into records.
#pragma once

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ingestd::json {

enum class Kind : uint8_t { Null, Bool, Number, String, Array, Object };

// A JSON value with value semantics: copying copies deeply, moving leaves the source null.
//
// Numbers keep their text exactly as written ("1.0", "12345678901234567890", "1e400" stay as
// they are); as_double() converts on demand. Strings are always valid UTF-8: the parser rejects
// anything else, and Value::string() / set() replace each invalid byte with U+FFFD, so that
// whatever is built can always be serialized as valid JSON.
//
// Objects keep insertion order and unique keys; lookups are linear (records are small).
//
// Preconditions (checked by assert only): at()/value_at()/key() need an index < size() on a
// value of the right kind; push_back() needs an array. Read-only lookups (find, find_path,
// size, as_*) are safe on any kind and return nullptr / 0 / empty for the wrong one.
class Value {
 public:
  Value() noexcept : kind_(Kind::Null), b_(false) {}
  ~Value() { destroy(); }
  Value(const Value &other);
  Value(Value &&other) noexcept;
  Value &operator=(const Value &other);
  Value &operator=(Value &&other) noexcept;

  static Value boolean(bool b);
  // Shortest text that reads back as the same double; NaN and infinities give null.
  static Value number(double d);
  static Value integer(int64_t i);
  // `lexeme` must be a JSON number (RFC 8259 grammar); anything else gives null.
  static Value number_text(std::string_view lexeme);
  static Value string(std::string_view s);
  static Value array();
  static Value object();

  Kind kind() const { return kind_; }
  bool is_null() const { return kind_ == Kind::Null; }
  bool is_object() const { return kind_ == Kind::Object; }
  bool is_array() const { return kind_ == Kind::Array; }

  bool as_bool() const { return kind_ == Kind::Bool && b_; }
  // The number as a double (from_chars on the text; out of range gives +-inf or +-0); 0 for
  // non-numbers.
  double as_double() const;
  // The number exactly as written; empty for non-numbers.
  std::string_view number_text() const {
    return kind_ == Kind::Number ? std::string_view(s_) : std::string_view();
  }
  // Unescaped UTF-8 (may contain NUL bytes); empty for non-strings.
  std::string_view as_string() const {
    return kind_ == Kind::String ? std::string_view(s_) : std::string_view();
  }

  // Array items or object members; 0 for anything else.
  size_t size() const;

  // Arrays.
  const Value &at(size_t i) const;
  Value &at(size_t i);
  void push_back(Value v);

  // Objects: member i in insertion order.
  std::string_view key(size_t i) const;
  const Value &value_at(size_t i) const;
  Value &value_at(size_t i);
  const Value *find(std::string_view key) const;
  Value *find(std::string_view key);
  // Replaces the value of an existing member in place (keeping its position) or appends a new
  // member. On a value that is not an object, first makes it an empty object.
  Value &set(std::string_view key, Value &&v);
  bool erase(std::string_view key);  // true if the member existed

  // Dotted paths over nested objects: "a.b.c" is member c of member b of member a. There is no
  // escaping (keys containing '.' cannot be reached) and arrays are not traversed. An empty
  // path, or one with an empty segment ("a..b", ".a", "a."), is invalid: find_path and
  // set_path give nullptr, erase_path false.
  const Value *find_path(std::string_view path) const;
  Value *find_path(std::string_view path);
  // Stores v at path, creating missing intermediate objects. Gives nullptr, changing nothing,
  // if the path is invalid, this is not an object, or the path crosses an existing member that
  // is not an object.
  Value *set_path(std::string_view path, Value &&v);
  bool erase_path(std::string_view path);  // true if the member existed

  // Structural equality: same kind, same number text, same strings, same items, same members
  // in the same order.
  friend bool operator==(const Value &a, const Value &b);

  // Heap bytes this value owns (strings, arrays, members, recursively), with
  // malloc's per-block overhead: what keeping it in a queue costs beyond
  // sizeof(Value). An estimate of the allocator's view, not a measurement.
  size_t heap_bytes() const;
  // heap_bytes() and serialized_size(*this) in one walk (queue accounting
  // needs both).
  struct Footprint {
    size_t heap = 0, serialized = 0;
  };
  Footprint footprint() const;

 private:
  struct Member;
  friend class Parser;

  explicit Value(Kind k) noexcept;
  static Value text(Kind k, std::string_view s);
  void destroy() noexcept;
  void reset(Kind k) noexcept;  // destroys, then holds an empty value of kind k
  void move_from(Value &&other) noexcept;
  void copy_from(const Value &other);
  Member *find_member(std::string_view key);

  Kind kind_;
  union {
    bool b_;                 // Bool
    std::string s_;          // String, Number (the lexeme)
    std::vector<Value> a_;   // Array
    std::vector<Member> o_;  // Object
  };
};

struct Value::Member {
  std::string key;
  Value value;
};

struct ParseOptions {
  // Deepest nesting of arrays and objects accepted. The parser recurses once per level, so
  // keep this modest (the default, 64, is plenty for records).
  size_t max_depth = 64;
};

struct ParseError {
  size_t offset = 0;    // byte offset in the text where the problem was found
  std::string message;  // e.g. "unexpected character 'x'", "unterminated string"
};

// Parses exactly one JSON value, strictly per RFC 8259: no comments, trailing commas, NaN or
// Infinity, leading zeros, raw control characters in strings, invalid UTF-8 or lone surrogates
// (\u surrogate pairs are combined). Whitespace around the value is allowed. Duplicate keys in an
// object are not an error: the last value wins, at the position of the first.
// On failure returns false, fills *err (if not null) and leaves *out unchanged. Never throws
// except std::bad_alloc.
bool parse(std::string_view text, Value *out, ParseError *err, const ParseOptions &opts = {});

// Compact serialization, appended to *out. Strings escape '"', '\\' and control characters
// (\b \f \n \r \t, others as \u00XX); '/' and non-ASCII UTF-8 are written as they are. Numbers
// are written as number_text().
void serialize(const Value &v, std::string *out);
// Exactly out->size() growth serialize(v, out) would cause, without writing.
size_t serialized_size(const Value &v);
std::string to_string(const Value &v);

// Request bodies. One body gives one item per record it holds:
//
//   * If the first non-whitespace character is '[', the body is one JSON array: the items are
//     its elements (index = position in the array).
//   * Otherwise the body is parsed as one JSON value. If that works, it is the only item
//     (index 0).
//   * If that parse stops, after a complete value written on a single line, with "trailing
//     characters" that start on a later line, the body is NDJSON: one value per line, lines
//     end with "\n" or "\r\n", blank (whitespace-only) lines are ignored, and an item's index
//     is the ordinal of its line among the non-blank ones. A syntax error affects only its
//     line's item.
//   * Any other syntax error makes the body unusable: ok = false, and one item (index 0) holds
//     the error. An empty or whitespace-only body gives ok = false and no items.
//
// An element that is not an object is never dropped: its item carries the error "element is
// not an object" (and its value).
struct BodyItem {
  size_t index = 0;
  Value value;
  std::string error;  // empty: ok
};

struct BodyResult {
  bool ok = true;     // false: the body is unusable as a whole
  std::string error;  // why, when !ok
  std::vector<BodyItem> items;
};

BodyResult parse_body(std::string_view body, const ParseOptions &opts = {});

// --- inline definitions -------------------------------------------------------------------

inline size_t Value::size() const {
  if (kind_ == Kind::Array) return a_.size();
  if (kind_ == Kind::Object) return o_.size();
  return 0;
}

inline const Value &Value::at(size_t i) const {
  assert(kind_ == Kind::Array && i < a_.size());
  return a_[i];
}

inline Value &Value::at(size_t i) {
  assert(kind_ == Kind::Array && i < a_.size());
  return a_[i];
}

inline std::string_view Value::key(size_t i) const {
  assert(kind_ == Kind::Object && i < o_.size());
  return o_[i].key;
}

inline const Value &Value::value_at(size_t i) const {
  assert(kind_ == Kind::Object && i < o_.size());
  return o_[i].value;
}

inline Value &Value::value_at(size_t i) {
  assert(kind_ == Kind::Object && i < o_.size());
  return o_[i].value;
}

}  // namespace ingestd::json
