// Tests for the JSON DOM, parser, serializer and body splitting.
#include "json/json.h"

#include <cmath>
#include <cstdio>
#include <string>

#include <gtest/gtest.h>

namespace ingestd::json {
namespace {

using namespace std::string_literals;
using namespace std::string_view_literals;

Value must_parse(std::string_view text, const ParseOptions &opts = {}) {
  Value v;
  ParseError err;
  EXPECT_TRUE(parse(text, &v, &err, opts)) << text << ": " << err.message << " at " << err.offset;
  return v;
}

ParseError must_fail(std::string_view text, const ParseOptions &opts = {}) {
  Value v = Value::string("untouched");
  ParseError err;
  EXPECT_FALSE(parse(text, &v, &err, opts)) << text;
  EXPECT_EQ(v.as_string(), "untouched") << "output changed on failure";
  return err;
}

std::string round_trip(std::string_view text) {
  return to_string(must_parse(text));
}

// --- round trips and DOM -------------------------------------------------------------------

TEST(JsonParse, RoundTripsCompactText) {
  for (const char *text : {
           "null",
           "true",
           "false",
           "0",
           "-0",
           "1.5",
           "\"\"",
           "\"abc\"",
           "[]",
           "{}",
           "[1,2,[3,[]],{}]",
           R"({"a":1,"b":[true,false,null],"c":{"d":"e"}})",
           R"({"lat":52.5200066,"lon":13.404954,"alt":34.0,"ts":"2024-05-01T12:00:00Z"})",
       }) {
    EXPECT_EQ(round_trip(text), text);
  }
}

TEST(JsonParse, WhitespaceAroundAndInsideIsDropped) {
  EXPECT_EQ(round_trip(" \t\r\n{ \"a\" : [ 1 , 2 ] , \"b\" : { } }\n "), R"({"a":[1,2],"b":{}})");
}

TEST(JsonParse, NumbersAreLossless) {
  for (const char *text : {"1.0", "12345678901234567890", "127.000000000000001", "1e400", "-1E-5",
                           "0.1e+2", "-0.0", "1e400"}) {
    Value v = must_parse(text);
    ASSERT_EQ(v.kind(), Kind::Number) << text;
    EXPECT_EQ(v.number_text(), text);
    EXPECT_EQ(to_string(v), text);
  }
  EXPECT_EQ(round_trip("[1.0,2.50]"), "[1.0,2.50]");
}

TEST(JsonParse, NumbersAsDouble) {
  EXPECT_DOUBLE_EQ(must_parse("1.5").as_double(), 1.5);
  EXPECT_DOUBLE_EQ(must_parse("-2e3").as_double(), -2000.0);
  EXPECT_DOUBLE_EQ(must_parse("12345678901234567890").as_double(), 12345678901234567890.0);
  EXPECT_EQ(must_parse("1e400").as_double(), HUGE_VAL);
  EXPECT_EQ(must_parse("-1e400").as_double(), -HUGE_VAL);
  EXPECT_EQ(must_parse("0.00001e400").as_double(), HUGE_VAL);
  EXPECT_EQ(must_parse("1e-400").as_double(), 0.0);
  EXPECT_TRUE(std::signbit(must_parse("-1e-400").as_double()));
  EXPECT_EQ(must_parse("100000e-330").as_double(), 0.0);
  EXPECT_EQ(must_parse("0e999999999999999999").as_double(), 0.0);
  EXPECT_EQ(Value::string("1").as_double(), 0.0);
}

// A record parsed from a body has room for the two fields inputs add (the
// trace input's geohash and received_at): adding them allocates nothing.
// Exactly two: the member vector is cut back to that, also for a record
// that grew past the parser's first reservation.
TEST(JsonParse, RecordsHaveRoomForTwoAddedFields) {
  std::string wide = "{";
  for (int i = 0; i < 20; ++i)
    wide += (i ? ",\"k" : "\"k") + std::to_string(i) + "\":" + std::to_string(i);
  wide += "}";
  for (std::string_view body :
       {R"({"a":1,"b":2,"c":3})"sv, R"([{"a":1,"b":2,"c":3}])"sv, std::string_view(wide)}) {
    BodyResult r = parse_body(body);
    ASSERT_TRUE(r.ok) << body;
    Value &rec = r.items.at(0).value;
    size_t before = rec.heap_bytes();
    rec.set("geohash", Value::string("wydm9qyc1"));
    rec.set("received_at", Value::integer(1764000000000));
    EXPECT_EQ(rec.heap_bytes(), before) << body;
    rec.set("third", Value::integer(1));
    EXPECT_GT(rec.heap_bytes(), before) << body;
  }
}

// The serializer finds what to escape eight bytes at a time: at every
// position of strings around that width, each kind of byte gives what a plain
// byte-by-byte escaper gives, and serialized_size agrees.
TEST(JsonSerialize, EscapesAtEveryPositionOfLongStrings) {
  auto reference = [](const std::string &in) {
    std::string out = "\"";
    for (unsigned char c : in) {
      switch (c) {
        case '"':
          out += "\\\"";
          break;
        case '\\':
          out += "\\\\";
          break;
        case '\b':
          out += "\\b";
          break;
        case '\f':
          out += "\\f";
          break;
        case '\n':
          out += "\\n";
          break;
        case '\r':
          out += "\\r";
          break;
        case '\t':
          out += "\\t";
          break;
        default:
          if (c < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
          } else {
            out += static_cast<char>(c);
          }
      }
    }
    return out + "\"";
  };
  const std::string specials[] = {"\"", "\\", "\n", "\x01",     "\x1f", "\x7f",
                                  " ",  "!",  "#",  "\xc3\xa9", "\x5b", "\x5d"};
  for (size_t len = 0; len <= 40; ++len) {
    for (size_t at = 0; at <= len; ++at) {
      for (const std::string &sp : specials) {
        std::string text(len, 'a');
        text.insert(at, sp);
        Value v = Value::string(text);
        ASSERT_EQ(v.as_string(), text);
        std::string got;
        serialize(v, &got);
        ASSERT_EQ(got, reference(text)) << "len " << len << " at " << at;
        ASSERT_EQ(serialized_size(v), got.size()) << "len " << len << " at " << at;
      }
    }
  }
}

TEST(JsonValue, Constructors) {
  EXPECT_EQ(to_string(Value()), "null");
  EXPECT_EQ(to_string(Value::boolean(true)), "true");
  EXPECT_EQ(to_string(Value::integer(-9223372036854775807LL - 1)), "-9223372036854775808");
  EXPECT_EQ(to_string(Value::number(0.1)), "0.1");
  EXPECT_EQ(to_string(Value::number(1e21)), "1e+21");
  EXPECT_EQ(to_string(Value::number(3.0)), "3");
  EXPECT_EQ(Value::number(0.1).as_double(), 0.1);
  EXPECT_EQ(Value::number(NAN).kind(), Kind::Null);
  EXPECT_EQ(Value::number(INFINITY).kind(), Kind::Null);
  EXPECT_EQ(Value::number_text("1.50").number_text(), "1.50");
  EXPECT_EQ(Value::number_text("01").kind(), Kind::Null);
  EXPECT_EQ(Value::number_text("1.").kind(), Kind::Null);
  EXPECT_EQ(Value::number_text("").kind(), Kind::Null);
  EXPECT_EQ(Value::number_text("1 ").kind(), Kind::Null);
  EXPECT_EQ(to_string(Value::array()), "[]");
  EXPECT_EQ(to_string(Value::object()), "{}");
}

TEST(JsonValue, InvalidUtf8InBuiltStringsIsReplaced) {
  Value v = Value::string(
      "a\xff"
      "b\xc3");
  EXPECT_EQ(v.as_string(),
            "a\xEF\xBF\xBD"
            "b\xEF\xBF\xBD");
  EXPECT_EQ(Value::string("h\xC3\xA9").as_string(), "h\xC3\xA9");
  Value o = Value::object();
  o.set("k\xff", Value());
  EXPECT_EQ(o.key(0), "k\xEF\xBF\xBD");
  // Whatever is built parses back.
  Value back;
  ParseError err;
  EXPECT_TRUE(parse(to_string(o), &back, &err)) << err.message;
}

TEST(JsonValue, CopyIsDeepAndMoveLeavesNull) {
  Value a = must_parse(R"({"x":[1,{"y":"z"}]})");
  Value b = a;
  b.find("x")->at(1).set("y", Value::string("changed"));
  EXPECT_EQ(to_string(a), R"({"x":[1,{"y":"z"}]})");
  EXPECT_EQ(to_string(b), R"({"x":[1,{"y":"changed"}]})");
  EXPECT_FALSE(a == b);
  Value c = std::move(b);
  EXPECT_TRUE(b.is_null());
  EXPECT_EQ(to_string(c), R"({"x":[1,{"y":"changed"}]})");
  // Assigning a value its own descendant.
  c = c.find("x")->at(1);
  EXPECT_EQ(to_string(c), R"({"y":"changed"})");
  Value d = must_parse("[[1,2],3]");
  d = std::move(d.at(0));
  EXPECT_EQ(to_string(d), "[1,2]");
  Value &alias = d;
  d = alias;  // self-assignment
  EXPECT_EQ(to_string(d), "[1,2]");
}

TEST(JsonValue, Equality) {
  EXPECT_TRUE(must_parse(R"({"a":[1,"x",null]})") ==
              must_parse(R"( { "a" : [ 1 , "x" , null ] } )"));
  EXPECT_FALSE(must_parse("1.0") == must_parse("1"));
  EXPECT_FALSE(must_parse(R"({"a":1,"b":2})") == must_parse(R"({"b":2,"a":1})"));
  EXPECT_FALSE(must_parse("[]") == must_parse("{}"));
  EXPECT_FALSE(must_parse("true") == must_parse("false"));
}

TEST(JsonValue, ObjectMembers) {
  Value o = Value::object();
  o.set("b", Value::integer(1));
  o.set("a", Value::integer(2));
  o.set("b", Value::integer(3));  // replaced in place
  ASSERT_EQ(o.size(), 2u);
  EXPECT_EQ(o.key(0), "b");
  EXPECT_EQ(o.value_at(0).number_text(), "3");
  EXPECT_EQ(o.key(1), "a");
  EXPECT_EQ(o.find("a")->number_text(), "2");
  EXPECT_EQ(o.find("c"), nullptr);
  EXPECT_TRUE(o.erase("b"));
  EXPECT_FALSE(o.erase("b"));
  EXPECT_EQ(to_string(o), R"({"a":2})");
  // Lookups on other kinds are safe.
  Value n = Value::integer(1);
  EXPECT_EQ(n.find("a"), nullptr);
  EXPECT_EQ(n.size(), 0u);
  EXPECT_FALSE(n.erase("a"));
  EXPECT_EQ(n.as_string(), "");
  EXPECT_FALSE(n.as_bool());
  // set() on a non-object makes it an object.
  n.set("k", Value::boolean(true));
  EXPECT_EQ(to_string(n), R"({"k":true})");
}

TEST(JsonValue, Arrays) {
  Value a = Value::array();
  a.push_back(Value::integer(1));
  a.push_back(Value::string("two"));
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a.at(1).as_string(), "two");
  a.at(0) = Value::boolean(false);
  EXPECT_EQ(to_string(a), R"([false,"two"])");
}

TEST(JsonParse, DuplicateKeysLastWinsAtFirstPosition) {
  EXPECT_EQ(round_trip(R"({"a":1,"b":2,"a":3})"), R"({"a":3,"b":2})");
  EXPECT_EQ(round_trip(R"({"a":1,"a":2,"a":3})"), R"({"a":3})");
  // Large objects take the sorted path.
  std::string big = "{";
  std::string want = "{";
  for (int i = 0; i < 40; ++i) {
    big += "\"k" + std::to_string(i) + "\":" + std::to_string(i) + ",";
    want += std::string(i ? "," : "") + "\"k" + std::to_string(i) +
            "\":" + std::to_string(i % 10 == 0 ? 1000 + i : i);
  }
  big += R"("k0":1000,"k10":1010,"k20":1010,"k20":1020,"k30":1030})";
  want += "}";
  EXPECT_EQ(round_trip(big), want);
}

// --- strings -------------------------------------------------------------------------------

TEST(JsonString, Escapes) {
  Value v = must_parse(R"("q\" b\\ s\/ \b\f\n\r\t \u0041\u00e9\u20AC \ud83d\ude00 \u0000")");
  EXPECT_EQ(v.as_string(), "q\" b\\ s/ \b\f\n\r\t A\xC3\xA9\xE2\x82\xAC \xF0\x9F\x98\x80 \0"s);
  EXPECT_EQ(to_string(v),
            "\"q\\\" b\\\\ s/ \\b\\f\\n\\r\\t A\xC3\xA9\xE2\x82\xAC "
            "\xF0\x9F\x98\x80 \\u0000\"");
}

TEST(JsonString, SerializerEscapesControlCharacters) {
  EXPECT_EQ(to_string(Value::string(std::string("\x01\x1f\x7f/", 4))), "\"\\u0001\\u001f\x7f/\"");
  Value o = Value::object();
  o.set("k\"\n", Value::string("v"));
  EXPECT_EQ(to_string(o), R"({"k\"\n":"v"})");
}

TEST(JsonSerialize, SizeWithoutWritingIsExact) {
  const char *texts[] = {
      "null",
      "true",
      "false",
      "-0.5e+10",
      "\"\"",
      "[]",
      "{}",
      "[1,[2,[]],{}]",
      R"({"a":"q\"b\\c\n\t\r\b\f","\u0001k":"\u001f","u":"\u00e9\u4e2d","n":[null,true]})",
  };
  for (const char *t : texts) {
    Value v;
    ParseError err;
    ASSERT_TRUE(parse(t, &v, &err)) << t << ": " << err.message;
    EXPECT_EQ(serialized_size(v), to_string(v).size()) << t;
    Value::Footprint f = v.footprint();
    EXPECT_EQ(f.serialized, to_string(v).size()) << t;
    EXPECT_EQ(f.heap, v.heap_bytes()) << t;
  }
}

TEST(JsonValue, HeapBytesCountWhatTheValueOwns) {
  EXPECT_EQ(Value::number(1).heap_bytes(), 0u);
  EXPECT_EQ(Value::string("short").heap_bytes(), 0u);  // inside the string object
  std::string long_text(1000, 'x');
  EXPECT_GE(Value::string(long_text).heap_bytes(), 1001u);
  Value obj;
  ParseError err;
  ASSERT_TRUE(
      parse(R"({"a":1,"b":"0123456789abcdefghij","c":[1,2,3],"d":{"e":null}})", &obj, &err));
  Value members_only;
  ASSERT_TRUE(parse(R"({"a":1,"b":2,"c":3,"d":4})", &members_only, &err));
  // Four members' storage at least, plus the long string, the array and the nested object.
  EXPECT_GE(members_only.heap_bytes(), 4 * sizeof(Value));
  EXPECT_GT(obj.heap_bytes(), members_only.heap_bytes() + 21 + 3 * sizeof(Value));
}

TEST(JsonString, Utf8PassesThrough) {
  const char *text = "\"gr\xC3\xBC\xC3\x9F \xE4\xB8\xAD \xF0\x9F\x9A\x80\"";
  EXPECT_EQ(round_trip(text), text);
}

TEST(JsonString, LongStringsAcrossTheFastPath) {
  std::string s(1000, 'x');
  s[500] = '"';
  std::string text = "\"" + std::string(499, 'a') + "\\\"" + std::string(300, 'b') + "\xC3\xA9\"";
  Value v = must_parse(text);
  EXPECT_EQ(v.as_string(), std::string(499, 'a') + "\"" + std::string(300, 'b') + "\xC3\xA9");
  EXPECT_EQ(to_string(v), text);
}

// --- strict rejections ---------------------------------------------------------------------

struct Reject {
  std::string_view text;
  size_t offset;
  const char *message;
};

TEST(JsonParse, StrictRejections) {
  const Reject cases[] = {
      {"", 0, "unexpected end of input"},
      {"   ", 3, "unexpected end of input"},
      {"x", 0, "unexpected character 'x'"},
      {"[1,]", 3, "unexpected character ']'"},
      {"{\"a\":1,}", 7, "unexpected character '}', expected a string key"},
      {"[1 2]", 3, "unexpected character '2', expected ',' or ']'"},
      {"{\"a\" 1}", 5, "unexpected character '1', expected ':'"},
      {"{\"a\":1 \"b\":2}", 7, "unexpected character '\"', expected ',' or '}'"},
      {"{a:1}", 1, "unexpected character 'a', expected a string key"},
      {"// c\n1", 0, "unexpected character '/'"},
      {"[1 /* c */]", 3, "unexpected character '/', expected ',' or ']'"},
      {"NaN", 0, "unexpected character 'N'"},
      {"-Infinity", 1, "digit expected in number"},
      {"Infinity", 0, "unexpected character 'I'"},
      {"01", 0, "leading zero in number"},
      {"-012", 1, "leading zero in number"},
      {"1.", 2, "unexpected end of input"},
      {"1.e5", 2, "digit expected in number"},
      {".5", 0, "unexpected character '.'"},
      {"1e", 2, "unexpected end of input"},
      {"1e+", 3, "unexpected end of input"},
      {"+1", 0, "unexpected character '+'"},
      {"0x10", 1, "trailing characters after JSON value"},
      {"tru", 3, "unexpected end of input"},
      {"trUe", 2, "unexpected character 'U'"},
      {"nul", 3, "unexpected end of input"},
      {"\"abc", 0, "unterminated string"},
      {"[\"abc\\", 1, "unterminated string"},
      {"\"a\nb\"", 2, "control character in string"},
      {"\"a\tb\"", 2, "control character in string"},
      {"\"\\x\"", 1, "invalid escape \\'x'"},
      {"\"\\u12\"", 1, "invalid \\u escape"},
      {"\"\\u12G4\"", 1, "invalid \\u escape"},
      {"\"\\ud83d\"", 1, "lone surrogate in \\u escape"},
      {"\"\\ud83dx\"", 1, "lone surrogate in \\u escape"},
      {"\"\\ud83d\\u0041\"", 1, "lone surrogate in \\u escape"},
      {"\"\\ud83d\\uZZZZ\"", 7, "invalid \\u escape"},
      {"\"\\ude00\"", 1, "lone surrogate in \\u escape"},
      {"\"a\xff\"", 2, "invalid UTF-8 in string"},
      {"\"a\xC3\"", 2, "invalid UTF-8 in string"},
      {"\"\xC0\xAF\"", 1, "invalid UTF-8 in string"},          // overlong
      {"\"\xED\xA0\x80\"", 1, "invalid UTF-8 in string"},      // encoded surrogate
      {"\"\xF4\x90\x80\x80\"", 1, "invalid UTF-8 in string"},  // above U+10FFFF
      {"\"\xE2\x82\"", 1, "invalid UTF-8 in string"},          // truncated
      {"\xEF\xBB\xBF{}", 0, "unexpected character '\\xef'"},   // BOM
      {"{} {}", 3, "trailing characters after JSON value"},
      {"1 2", 2, "trailing characters after JSON value"},
      {"[1,2", 4, "unexpected end of input"},
      {"{\"a\":", 5, "unexpected end of input"},
      {"{\"a\"", 4, "unexpected end of input"},
      {"[", 1, "unexpected end of input"},
      {"{", 1, "unexpected end of input"},
      {std::string_view("[\0]", 3), 1, "unexpected character '\\x00'"},
  };
  for (const Reject &c : cases) {
    ParseError err = must_fail(c.text);
    EXPECT_EQ(err.message, c.message) << "input: " << c.text;
    EXPECT_EQ(err.offset, c.offset) << "input: " << c.text;
  }
}

TEST(JsonParse, NullPointerErrorIsAllowed) {
  Value v;
  EXPECT_FALSE(parse("[", &v, nullptr));
  EXPECT_TRUE(parse("[]", &v, nullptr));
}

TEST(JsonParse, DepthLimit) {
  auto nested = [](size_t n) { return std::string(n, '[') + std::string(n, ']'); };
  must_parse(nested(64));
  ParseError err = must_fail(nested(65));
  EXPECT_EQ(err.message, "nesting deeper than 64");
  EXPECT_EQ(err.offset, 64u);

  ParseOptions shallow;
  shallow.max_depth = 2;
  must_parse(R"({"a":[1]})", shallow);
  err = must_fail(R"({"a":[{"b":1}]})", shallow);
  EXPECT_EQ(err.message, "nesting deeper than 2");
  EXPECT_EQ(err.offset, 6u);
  shallow.max_depth = 0;
  must_parse("1", shallow);
  must_fail("[]", shallow);

  // Far too deep must fail cleanly, not overflow the stack.
  err = must_fail(std::string(100000, '['));
  EXPECT_EQ(err.message, "nesting deeper than 64");
}

TEST(JsonParse, LargeInput) {
  std::string text = "[";
  size_t n = 0;
  while (text.size() < (1u << 20)) {
    if (n) text += ',';
    text += R"({"i":)" + std::to_string(n) + R"(,"s":"some text \u00e9","f":1.25,"b":[true,null]})";
    ++n;
  }
  text += ']';
  Value v = must_parse(text);
  ASSERT_EQ(v.size(), n);
  EXPECT_EQ(v.at(n - 1).find("i")->as_double(), static_cast<double>(n - 1));
  std::string out = to_string(v);
  EXPECT_EQ(out.size(), text.size() - 4 * n);  // "\u00e9" (6 bytes) becomes 2 bytes of UTF-8 (-4)
  EXPECT_EQ(to_string(must_parse(out)), out);
}

// --- paths ---------------------------------------------------------------------------------

TEST(JsonPath, FindSetErase) {
  Value r = must_parse(R"({"a":{"b":{"c":1}},"n":5,"arr":[{"x":1}]})");
  ASSERT_NE(r.find_path("a.b.c"), nullptr);
  EXPECT_EQ(r.find_path("a.b.c")->number_text(), "1");
  EXPECT_EQ(r.find_path("a.b")->kind(), Kind::Object);
  EXPECT_EQ(r.find_path("a.x"), nullptr);
  EXPECT_EQ(r.find_path("n.x"), nullptr);
  EXPECT_EQ(r.find_path("arr.0"), nullptr);  // arrays are not traversed
  for (const char *bad : {"", ".", "a.", ".a", "a..b"}) {
    EXPECT_EQ(r.find_path(bad), nullptr) << bad;
    EXPECT_EQ(r.set_path(bad, Value()), nullptr) << bad;
    EXPECT_FALSE(r.erase_path(bad)) << bad;
  }

  // Replace in place, create intermediates, create top-level.
  ASSERT_NE(r.set_path("a.b.c", Value::string("v")), nullptr);
  Value *made = r.set_path("a.new.deep", Value::integer(7));
  ASSERT_NE(made, nullptr);
  EXPECT_EQ(made->number_text(), "7");
  r.set_path("top", Value::boolean(true));
  EXPECT_EQ(to_string(r),
            R"({"a":{"b":{"c":"v"},"new":{"deep":7}},"n":5,"arr":[{"x":1}],"top":true})");

  // Crossing a non-object fails and changes nothing.
  std::string before = to_string(r);
  EXPECT_EQ(r.set_path("n.x", Value::integer(1)), nullptr);
  EXPECT_EQ(r.set_path("a.b.c.d", Value::integer(1)), nullptr);
  EXPECT_EQ(r.set_path("arr.x", Value::integer(1)), nullptr);
  EXPECT_EQ(to_string(r), before);

  EXPECT_TRUE(r.erase_path("a.b.c"));
  EXPECT_FALSE(r.erase_path("a.b.c"));
  EXPECT_FALSE(r.erase_path("n.x"));
  EXPECT_FALSE(r.erase_path("zz.y"));
  EXPECT_TRUE(r.erase_path("top"));
  EXPECT_EQ(to_string(r), R"({"a":{"b":{},"new":{"deep":7}},"n":5,"arr":[{"x":1}]})");

  // Paths on a non-object root.
  Value s = Value::string("x");
  EXPECT_EQ(s.set_path("a", Value()), nullptr);
  EXPECT_EQ(s.find_path("a"), nullptr);
  EXPECT_FALSE(s.erase_path("a"));
  const Value &cr = r;
  EXPECT_EQ(cr.find_path("a.new.deep")->number_text(), "7");
}

// --- bodies --------------------------------------------------------------------------------

TEST(JsonBody, SingleObject) {
  BodyResult r = parse_body(" {\"a\":1}\n");
  EXPECT_TRUE(r.ok);
  ASSERT_EQ(r.items.size(), 1u);
  EXPECT_EQ(r.items[0].index, 0u);
  EXPECT_EQ(r.items[0].error, "");
  EXPECT_EQ(to_string(r.items[0].value), R"({"a":1})");
}

TEST(JsonBody, PrettyPrintedObject) {
  BodyResult r = parse_body("{\n  \"a\": 1,\n  \"b\": [\n    2\n  ]\n}\n");
  EXPECT_TRUE(r.ok);
  ASSERT_EQ(r.items.size(), 1u);
  EXPECT_EQ(to_string(r.items[0].value), R"({"a":1,"b":[2]})");
}

TEST(JsonBody, ArrayOfObjects) {
  BodyResult r = parse_body("[{\"a\":1},\n {\"a\":2}, {}]");
  EXPECT_TRUE(r.ok);
  ASSERT_EQ(r.items.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(r.items[i].index, i);
    EXPECT_EQ(r.items[i].error, "");
  }
  EXPECT_EQ(to_string(r.items[1].value), R"({"a":2})");
  EXPECT_TRUE(parse_body("[]").ok);
  EXPECT_TRUE(parse_body("[]").items.empty());
}

TEST(JsonBody, ArrayOfScalarsGivesErrorItems) {
  BodyResult r = parse_body("[1,2,3]");
  EXPECT_TRUE(r.ok);
  ASSERT_EQ(r.items.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(r.items[i].index, i);
    EXPECT_EQ(r.items[i].error, "element is not an object");
    EXPECT_EQ(r.items[i].value.number_text(), std::to_string(i + 1));
  }
  r = parse_body("[{\"a\":1},[],\"s\"]");
  ASSERT_EQ(r.items.size(), 3u);
  EXPECT_EQ(r.items[0].error, "");
  EXPECT_EQ(r.items[1].error, "element is not an object");
  EXPECT_EQ(r.items[2].error, "element is not an object");
}

TEST(JsonBody, SingleScalarIsAnErrorItem) {
  BodyResult r = parse_body("42");
  EXPECT_TRUE(r.ok);
  ASSERT_EQ(r.items.size(), 1u);
  EXPECT_EQ(r.items[0].error, "element is not an object");
}

TEST(JsonBody, Ndjson) {
  BodyResult r = parse_body("{\"a\":1}\n{\"a\":2}\r\n\n  \r\n{\"a\":3}");
  EXPECT_TRUE(r.ok);
  ASSERT_EQ(r.items.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(r.items[i].index, i);
    EXPECT_EQ(r.items[i].error, "");
    EXPECT_EQ(r.items[i].value.find("a")->as_double(), static_cast<double>(i + 1));
  }
  r = parse_body("{\"a\":1}\n{\"a\":2}\n");
  EXPECT_EQ(r.items.size(), 2u);
}

TEST(JsonBody, NdjsonMixedValidAndInvalidLines) {
  BodyResult r = parse_body("{\"a\":1}\n{\"a\":}\n\n42\n{\"a\":4}\n[1]\n{\"a\" 5}\n");
  EXPECT_TRUE(r.ok);
  ASSERT_EQ(r.items.size(), 6u);
  EXPECT_EQ(r.items[0].error, "");
  EXPECT_EQ(r.items[1].index, 1u);
  EXPECT_EQ(r.items[1].error, "line 2, column 6: unexpected character '}'");
  EXPECT_EQ(r.items[2].index, 2u);
  EXPECT_EQ(r.items[2].error, "element is not an object");
  EXPECT_EQ(r.items[3].index, 3u);
  EXPECT_EQ(r.items[3].error, "");
  EXPECT_EQ(to_string(r.items[3].value), R"({"a":4})");
  EXPECT_EQ(r.items[4].error, "element is not an object");
  EXPECT_EQ(r.items[5].index, 5u);
  EXPECT_EQ(r.items[5].error, "line 7, column 6: unexpected character '5', expected ':'");
}

TEST(JsonBody, SyntaxErrorInSingleValue) {
  BodyResult r = parse_body("{\"a\":1,}");
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error, "unexpected character '}', expected a string key at offset 7");
  ASSERT_EQ(r.items.size(), 1u);
  EXPECT_EQ(r.items[0].index, 0u);
  EXPECT_EQ(r.items[0].error, r.error);

  // Two values on one line are not NDJSON.
  r = parse_body("{} {}");
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error, "trailing characters after JSON value at offset 3");

  // An array body followed by more lines is not NDJSON.
  r = parse_body("[{}]\n[{}]");
  EXPECT_FALSE(r.ok);
  ASSERT_EQ(r.items.size(), 1u);

  // A multi-line first value followed by more is not NDJSON either.
  r = parse_body("{\n\"a\":1}\n{\"b\":2}");
  EXPECT_FALSE(r.ok);

  // A broken pretty-printed object stays one error.
  r = parse_body("{\n  \"a\": 1,\n}\n");
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.items.size(), 1u);
}

TEST(JsonBody, EmptyBodies) {
  for (const char *body : {"", " \r\n\t\n"}) {
    BodyResult r = parse_body(body);
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.error, "empty body");
    EXPECT_TRUE(r.items.empty());
  }
}

TEST(JsonBody, DepthLimitApplies) {
  ParseOptions o;
  o.max_depth = 1;
  EXPECT_TRUE(parse_body("{\"a\":1}", o).ok);
  EXPECT_FALSE(parse_body("{\"a\":{}}", o).ok);
  BodyResult r = parse_body("{\"a\":1}\n{\"a\":{}}", o);
  ASSERT_EQ(r.items.size(), 2u);
  EXPECT_EQ(r.items[1].error, "line 2, column 6: nesting deeper than 1");
}

}  // namespace
}  // namespace ingestd::json
