// Unit tests for the pure parts of out_firehose: base64 and request bodies,
// call planning and packing, answer parsing and error classes, token buckets.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <numeric>
#include <string>
#include <vector>

#include "firehose_pack.h"
#include "firehose_protocol.h"

namespace ingestd::firehose {
namespace {

using ::testing::ElementsAre;

TEST(Base64, Rfc4648Vectors) {
  EXPECT_EQ(base64(""), "");
  EXPECT_EQ(base64("f"), "Zg==");
  EXPECT_EQ(base64("fo"), "Zm8=");
  EXPECT_EQ(base64("foo"), "Zm9v");
  EXPECT_EQ(base64("foob"), "Zm9vYg==");
  EXPECT_EQ(base64("fooba"), "Zm9vYmE=");
  EXPECT_EQ(base64("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64(std::string("\xff\xfe\x00", 3)), "//4A");
}

TEST(Base64, PiecesEncodeLikeTheWhole) {
  std::string whole;
  for (int i = 0; i < 300; ++i)
    whole.push_back(static_cast<char>(i * 7));
  for (size_t a = 0; a < 8; ++a) {
    for (size_t b = a; b < 12; ++b) {
      std::string out;
      Base64Writer w(&out);
      w.write(whole.data(), a);
      w.write(whole.data() + a, b - a);
      w.write(whole.data() + b, whole.size() - b);
      w.finish();
      EXPECT_EQ(out, base64(whole)) << a << " " << b;
      EXPECT_EQ(out.size(), base64_len(whole.size()));
    }
  }
}

TEST(RequestBody, RecordsAreBase64WithNewlines) {
  std::string a = "{\"a\":1}", b = "{\"b\":2}";
  std::vector<std::vector<Piece>> recs = {{{a.data(), a.size()}},
                                          {{a.data(), a.size()}, {b.data(), b.size()}}};
  std::string out;
  build_put_record_batch("trace", recs, true, &out);
  EXPECT_EQ(out, "{\"DeliveryStreamName\":\"trace\",\"Records\":[{\"Data\":\"" + base64(a + "\n") +
                     "\"},{\"Data\":\"" + base64(a + "\n" + b + "\n") + "\"}]}");
  out.clear();
  build_put_record_batch("s", {{{b.data(), b.size()}}}, false, &out);
  EXPECT_EQ(out, "{\"DeliveryStreamName\":\"s\",\"Records\":[{\"Data\":\"" + base64(b) + "\"}]}");
  JsonValue v;
  ASSERT_TRUE(parse_json(out, &v));
  EXPECT_EQ(v.get("Records")->items[0].get("Data")->string, base64(b));
}

TEST(StreamName, Pattern) {
  EXPECT_TRUE(valid_stream_name("trace-training_1.x"));
  EXPECT_FALSE(valid_stream_name(""));
  EXPECT_FALSE(valid_stream_name("a b"));
  EXPECT_FALSE(valid_stream_name("a\"b"));
  EXPECT_FALSE(valid_stream_name(std::string(65, 'a')));
  EXPECT_TRUE(valid_stream_name(std::string(64, 'a')));
}

// ---- planning ---------------------------------------------------------------

std::vector<uint32_t> iota(size_t n) {
  std::vector<uint32_t> v(n);
  std::iota(v.begin(), v.end(), 0u);
  return v;
}

// Every index exactly once, in order, across calls and too_large.
void expect_covers(const Plan &p, const std::vector<uint32_t> &indices) {
  std::vector<uint32_t> seen;
  for (const auto &c : p.calls) {
    size_t bytes = 0, items = 0;
    for (const auto &r : c.records) {
      seen.insert(seen.end(), r.items.begin(), r.items.end());
      bytes += r.bytes;
      items += r.items.size();
    }
    EXPECT_EQ(bytes, c.bytes);
    EXPECT_EQ(items, c.items);
  }
  seen.insert(seen.end(), p.too_large.begin(), p.too_large.end());
  std::sort(seen.begin(), seen.end());
  std::vector<uint32_t> want = indices;
  std::sort(want.begin(), want.end());
  EXPECT_EQ(seen, want);
}

TEST(Plan, UnpackedSplitsAt500RecordsPerCall) {
  std::vector<size_t> sizes(1201, 200);
  auto idx = iota(sizes.size());
  Plan p = plan_calls(idx, sizes, PackLimits{});
  ASSERT_EQ(p.calls.size(), 3u);
  EXPECT_EQ(p.calls[0].records.size(), 500u);
  EXPECT_EQ(p.calls[1].records.size(), 500u);
  EXPECT_EQ(p.calls[2].records.size(), 201u);
  EXPECT_EQ(p.calls[2].records[0].items, std::vector<uint32_t>{1000});
  expect_covers(p, idx);
}

TEST(Plan, UnpackedSplitsAt4MiBPerCall) {
  std::vector<size_t> sizes(20, 900 * 1024);  // 4 fit in 4 MiB, the 5th does not
  auto idx = iota(sizes.size());
  Plan p = plan_calls(idx, sizes, PackLimits{});
  ASSERT_EQ(p.calls.size(), 5u);
  for (const auto &c : p.calls) {
    EXPECT_EQ(c.records.size(), 4u);
    EXPECT_LE(c.bytes, kMaxCallBytes);
  }
  expect_covers(p, idx);
}

TEST(Plan, OversizeRecordsAreSetAside) {
  std::vector<size_t> sizes = {10, kMaxRecordBytes + 1, 10, kMaxRecordBytes};
  auto idx = iota(sizes.size());
  PackLimits l;
  l.aggregate = true;
  Plan p = plan_calls(idx, sizes, l);
  EXPECT_THAT(p.too_large, ElementsAre(1u));
  ASSERT_EQ(p.calls.size(), 1u);
  ASSERT_EQ(p.calls[0].records.size(), 2u);
  EXPECT_THAT(p.calls[0].records[0].items, ElementsAre(0u, 2u));
  EXPECT_THAT(p.calls[0].records[1].items, ElementsAre(3u));
  expect_covers(p, idx);
}

TEST(Plan, AggregatePacksUpToRecordMaxBytes) {
  std::vector<size_t> sizes(100, 200);
  auto idx = iota(sizes.size());
  PackLimits l;
  l.aggregate = true;
  l.record_max_bytes = 1000;  // 5 records each
  Plan p = plan_calls(idx, sizes, l);
  ASSERT_EQ(p.calls.size(), 1u);
  ASSERT_EQ(p.calls[0].records.size(), 20u);
  for (size_t k = 0; k < 20; ++k) {
    EXPECT_EQ(p.calls[0].records[k].bytes, 1000u);
    EXPECT_THAT(p.calls[0].records[k].items,
                ElementsAre(5 * k, 5 * k + 1, 5 * k + 2, 5 * k + 3, 5 * k + 4));
  }
  expect_covers(p, idx);
}

TEST(Plan, AggregateRespectsRecordAndCallLimits) {
  // 30,000 records of 301 bytes: ~9 MB, so at least 3 calls of <= 4 MiB;
  // each Firehose record <= 1000 KiB.
  std::vector<size_t> sizes(30000, 301);
  auto idx = iota(sizes.size());
  PackLimits l;
  l.aggregate = true;
  l.record_max_bytes = 1000 * 1024;
  Plan p = plan_calls(idx, sizes, l);
  EXPECT_EQ(p.calls.size(), 3u);
  for (const auto &c : p.calls) {
    EXPECT_LE(c.bytes, kMaxCallBytes);
    EXPECT_LE(c.records.size(), kMaxCallRecords);
    for (const auto &r : c.records)
      EXPECT_LE(r.bytes, l.record_max_bytes);
  }
  expect_covers(p, idx);
}

TEST(Plan, AggregateLargeRecordGoesAloneAndPackingResumes) {
  std::vector<size_t> sizes = {100, 100, 5000, 100, 100};
  auto idx = iota(sizes.size());
  PackLimits l;
  l.aggregate = true;
  l.record_max_bytes = 1000;
  Plan p = plan_calls(idx, sizes, l);
  ASSERT_EQ(p.calls.size(), 1u);
  const auto &r = p.calls[0].records;
  ASSERT_EQ(r.size(), 3u);
  EXPECT_THAT(r[0].items, ElementsAre(0u, 1u));
  EXPECT_THAT(r[1].items, ElementsAre(2u));
  EXPECT_THAT(r[2].items, ElementsAre(3u, 4u));
}

TEST(Plan, SubsetOfIndicesForResends) {
  std::vector<size_t> sizes(10, 50);
  std::vector<uint32_t> failed = {2, 7, 9};
  PackLimits l;
  l.aggregate = true;
  Plan p = plan_calls(failed, sizes, l);
  ASSERT_EQ(p.calls.size(), 1u);
  ASSERT_EQ(p.calls[0].records.size(), 1u);
  EXPECT_THAT(p.calls[0].records[0].items, ElementsAre(2u, 7u, 9u));
  EXPECT_EQ(p.calls[0].bytes, 150u);
}

TEST(Plan, Empty) {
  std::vector<size_t> sizes;
  Plan p = plan_calls({}, sizes, PackLimits{});
  EXPECT_TRUE(p.calls.empty());
  EXPECT_TRUE(p.too_large.empty());
}

TEST(Billing, FiveKbUnits) {
  EXPECT_EQ(billed_units(1), 1u);
  EXPECT_EQ(billed_units(200), 1u);
  EXPECT_EQ(billed_units(5120), 1u);
  EXPECT_EQ(billed_units(5121), 2u);
  EXPECT_EQ(billed_units(1024000), 200u);
}

// ---- answers -------------------------------------------------------------------

TEST(Json, ParsesAwsShapes) {
  JsonValue v;
  ASSERT_TRUE(parse_json(
      " {\"a\": [1, -2.5e3, true, false, null], \"s\": \"x\\\"\\u00e9\\ud83d\\ude00\\n\"} ", &v));
  EXPECT_EQ(v.get("a")->items.size(), 5u);
  EXPECT_EQ(v.get("a")->items[1].number, -2500);
  EXPECT_EQ(v.get("s")->string, "x\"\xc3\xa9\xf0\x9f\x98\x80\n");
  EXPECT_EQ(v.get("missing"), nullptr);
  EXPECT_FALSE(parse_json("{\"a\":1,}", &v));
  EXPECT_FALSE(parse_json("{\"a\":1} x", &v));
  EXPECT_FALSE(parse_json("\"unterminated", &v));
  EXPECT_FALSE(parse_json(std::string(100, '[') + std::string(100, ']'), &v));
  EXPECT_FALSE(parse_json("", &v));
}

TEST(ErrorCode, ShortQualifiedAndHeader) {
  std::string msg;
  EXPECT_EQ(error_code("{\"__type\":\"ResourceNotFoundException\",\"message\":\"gone\"}", "", &msg),
            "ResourceNotFoundException");
  EXPECT_EQ(msg, "gone");
  EXPECT_EQ(
      error_code("{\"__type\":\"com.amazonaws.firehose.v20150804#ServiceUnavailableException\","
                 "\"Message\":\"Slow down.\"}",
                 "", &msg),
      "ServiceUnavailableException");
  EXPECT_EQ(msg, "Slow down.");
  EXPECT_EQ(
      error_code(
          "<html>oops</html>",
          "InvalidSignatureException:http://internal.amazon.com/coral/com.amazon.coral.service/",
          nullptr),
      "InvalidSignatureException");
  EXPECT_EQ(error_code("", "", nullptr), "");
  EXPECT_EQ(normalize_error_code(" a.b#Code:x "), "Code");
}

TEST(ErrorClass, ByCodeNotStatus) {
  // Firehose sends ServiceUnavailableException with HTTP 500: a throttle.
  EXPECT_EQ(classify_error("ServiceUnavailableException", 500), ErrorClass::kThrottle);
  EXPECT_EQ(classify_error("ThrottlingException", 400), ErrorClass::kThrottle);
  EXPECT_EQ(classify_error("LimitExceededException", 400), ErrorClass::kThrottle);
  EXPECT_EQ(classify_error("InternalFailure", 500), ErrorClass::kTransient);
  EXPECT_EQ(classify_error("ResourceNotFoundException", 400), ErrorClass::kConfig);
  EXPECT_EQ(classify_error("InvalidArgumentException", 400), ErrorClass::kConfig);
  EXPECT_EQ(classify_error("AccessDeniedException", 400), ErrorClass::kAuth);
  EXPECT_EQ(classify_error("UnrecognizedClientException", 400), ErrorClass::kAuth);
  EXPECT_EQ(classify_error("InvalidSignatureException", 400), ErrorClass::kAuth);
  EXPECT_EQ(classify_error("ExpiredTokenException", 400), ErrorClass::kAuth);
  // Unknown codes: the status decides.
  EXPECT_EQ(classify_error("", 503), ErrorClass::kTransient);
  EXPECT_EQ(classify_error("SomethingNew", 502), ErrorClass::kTransient);
  EXPECT_EQ(classify_error("", 429), ErrorClass::kThrottle);
  EXPECT_EQ(classify_error("", 403), ErrorClass::kAuth);
  EXPECT_EQ(classify_error("SomethingNew", 400), ErrorClass::kConfig);
}

TEST(PutResult, PerRecordOutcomesInOrder) {
  PutResult r;
  ASSERT_TRUE(parse_put_result(
      "{\"FailedPutCount\":2,\"Encrypted\":false,\"RequestResponses\":["
      "{\"RecordId\":\"abc\"},"
      "{\"ErrorCode\":\"ServiceUnavailableException\",\"ErrorMessage\":\"Slow down.\"},"
      "{\"RecordId\":\"def\"},"
      "{\"ErrorCode\":\"ns#InternalFailure\",\"ErrorMessage\":\"x\"},"
      "{}]}",
      &r));
  EXPECT_EQ(r.failed_put_count, 2);
  EXPECT_THAT(r.codes,
              ElementsAre("", "ServiceUnavailableException", "", "InternalFailure", "Unknown"));
  EXPECT_EQ(r.first_error_message, "Slow down.");
  EXPECT_FALSE(parse_put_result("{\"__type\":\"InternalFailure\"}", &r));
  EXPECT_FALSE(parse_put_result("not json", &r));
}

}  // namespace
}  // namespace ingestd::firehose
