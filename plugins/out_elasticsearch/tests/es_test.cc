// Unit tests of the elasticsearch output's pure parts: index patterns, ids,
// NDJSON, query strings, bulk response parsing and classification, host
// rotation with an injected clock, gzip.
#include <gtest/gtest.h>
#include <zlib.h>

#include <cstring>
#include <string>

#include "es_bulk.h"
#include "es_hosts.h"
#include "es_response.h"

namespace ingestd::es {
namespace {

// ---- index patterns

constexpr int64_t k2024_01_02_03h = 1704164400000;  // 2024-01-02T03:00:00Z

TEST(IndexPattern, FormatsUtcDates) {
  IndexPattern p;
  std::string err;
  ASSERT_TRUE(p.parse("metadata-%Y.%m.%d", &err)) << err;
  EXPECT_TRUE(p.has_date());
  EXPECT_EQ(p.format(k2024_01_02_03h), "metadata-2024.01.02");
  EXPECT_EQ(p.format(k2024_01_02_03h + 21 * 3600000LL - 1), "metadata-2024.01.02");
  EXPECT_EQ(p.format(k2024_01_02_03h + 21 * 3600000LL), "metadata-2024.01.03");
  EXPECT_EQ(p.format(0), "metadata-1970.01.01");
  EXPECT_EQ(p.format(-5), "metadata-1970.01.01");
}

TEST(IndexPattern, AllConversions) {
  IndexPattern p;
  std::string err;
  ASSERT_TRUE(p.parse("x-%Y-%y-%m-%d-%H-%j-%G-%V-100%%", &err)) << err;
  // 2021-01-01 is in ISO week 53 of 2020.
  EXPECT_EQ(p.format(1609470000000), "x-2021-21-01-01-03-001-2020-53-100%");
}

TEST(IndexPattern, LiteralWithoutDate) {
  IndexPattern p;
  std::string err;
  ASSERT_TRUE(p.parse("logs", &err));
  EXPECT_FALSE(p.has_date());
  EXPECT_EQ(p.format(k2024_01_02_03h), "logs");
  EXPECT_EQ(p.format(0), "logs");
}

TEST(IndexPattern, RejectsBadPatterns) {
  IndexPattern p;
  std::string err;
  EXPECT_FALSE(p.parse("", &err));
  EXPECT_FALSE(p.parse("logs-%b", &err));
  EXPECT_NE(err.find("%b"), std::string::npos) << err;
  EXPECT_FALSE(p.parse("Logs", &err));
  EXPECT_FALSE(p.parse("logs 1", &err));
  EXPECT_FALSE(p.parse("logs/1", &err));
  EXPECT_FALSE(p.parse("_logs", &err));
  EXPECT_FALSE(p.parse("logs-%", &err));
  EXPECT_FALSE(p.parse("..", &err));
}

TEST(IndexPattern, PlausibleTimes) {
  EXPECT_TRUE(plausible_epoch_ms(0));
  EXPECT_TRUE(plausible_epoch_ms(1704164400000.0));
  EXPECT_FALSE(plausible_epoch_ms(-1));
  EXPECT_FALSE(plausible_epoch_ms(1e300));
  EXPECT_FALSE(plausible_epoch_ms(0.0 / 0.0));
}

// ---- ids

// SMHasher's VerificationTest: hash keys {}, {0}, {0,1}, ... {0..254} with
// seed 256-i, then hash the concatenated results with seed 0; the first four
// bytes, little-endian, are MurmurHash3_x64_128's published value 0x6384BA69.
TEST(ContentId, Murmur3MatchesTheReference) {
  uint8_t key[256];
  uint8_t hashes[16 * 256];
  for (int i = 0; i < 256; ++i) {
    key[i] = static_cast<uint8_t>(i);
    Hash128 h = murmur3_x64_128(key, static_cast<size_t>(i), static_cast<uint32_t>(256 - i));
    for (int b = 0; b < 8; ++b) {
      hashes[i * 16 + b] = static_cast<uint8_t>(h.h1 >> (8 * b));
      hashes[i * 16 + 8 + b] = static_cast<uint8_t>(h.h2 >> (8 * b));
    }
  }
  Hash128 f = murmur3_x64_128(hashes, sizeof hashes, 0);
  uint32_t verification = static_cast<uint32_t>(f.h1 & 0xffffffffu);
  EXPECT_EQ(verification, 0x6384BA69u);
}

TEST(ContentId, StableHexOfTheJson) {
  EXPECT_EQ(content_id(""), std::string(32, '0'));
  std::string a = content_id(R"({"device_id":"d1","ts":1704164400000})");
  EXPECT_EQ(a.size(), 32u);
  EXPECT_EQ(a.find_first_not_of("0123456789abcdef"), std::string::npos);
  // Pinned: changing the hash changes every id and breaks deduplication of
  // documents retried across an upgrade.
  EXPECT_EQ(a, content_id(R"({"device_id":"d1","ts":1704164400000})"));
  Hash128 h = murmur3_x64_128("{\"a\":1}", 7, 0);
  char hex[33];
  std::snprintf(hex, sizeof hex, "%016llx%016llx", static_cast<unsigned long long>(h.h1),
                static_cast<unsigned long long>(h.h2));
  EXPECT_EQ(content_id("{\"a\":1}"), hex);
  EXPECT_NE(content_id("{\"a\":1}"), content_id("{\"a\":2}"));
  // Pinned values (also computed by the Python in test_elasticsearch.py).
  EXPECT_EQ(content_id("{\"a\":1}"), "75b4c446ea7e78a0ed33cf94515d0333");
  EXPECT_EQ(content_id("hello world, this is 31 bytes!!"), "9ccd69b3122c4c725fa35ad8fe9c9347");
  EXPECT_NE(content_id("{\"a\":1,\"b\":2}"), content_id("{\"b\":2,\"a\":1}"));
}

// ---- NDJSON

TEST(Ndjson, CreateActionAndDocument) {
  std::string out;
  append_create(&out, "metadata-2024.01.02", "abc", R"({"x":1})");
  append_create(&out, "i", "q\"\\\n\x01", "{}");
  EXPECT_EQ(out,
            "{\"create\":{\"_index\":\"metadata-2024.01.02\",\"_id\":\"abc\"}}\n{\"x\":1}\n"
            "{\"create\":{\"_index\":\"i\",\"_id\":\"q\\\"\\\\\\n\\u0001\"}}\n{}\n");
  EXPECT_EQ(out.back(), '\n');
  EXPECT_EQ(out.find("_type"), std::string::npos);
}

TEST(Ndjson, JsonStringKeepsUtf8) {
  std::string out;
  append_json_string(&out, "h\xc3\xa9llo\t");
  EXPECT_EQ(out, "\"h\xc3\xa9llo\\t\"");
}

// ---- URLs

TEST(Url, QueryStringIsSortedAndEncoded) {
  EXPECT_EQ(query_string({}), "");
  EXPECT_EQ(query_string({{"refresh", "false"}, {"pipeline", "p 1/x"}}),
            "?pipeline=p%201%2Fx&refresh=false");
  EXPECT_EQ(query_string({{"pipeline", "geo~ip-v1.2_x"}}), "?pipeline=geo~ip-v1.2_x");
  EXPECT_EQ(url_encode("a,b*c"), "a%2Cb%2Ac");
}

TEST(Url, BaseUrls) {
  std::string out, err;
  ASSERT_TRUE(normalize_base_url("http://127.0.0.1:9200/", &out, &err));
  EXPECT_EQ(out, "http://127.0.0.1:9200");
  ASSERT_TRUE(normalize_base_url("HTTPS://es.example.com/prefix//", &out, &err));
  EXPECT_EQ(out, "https://es.example.com/prefix");
  EXPECT_FALSE(normalize_base_url("es:9200", &out, &err));
  EXPECT_FALSE(normalize_base_url("ftp://x", &out, &err));
  EXPECT_FALSE(normalize_base_url("http://", &out, &err));
  EXPECT_FALSE(normalize_base_url("http://x/?a=b", &out, &err));
}

TEST(Url, RegionFromAwsHosts) {
  EXPECT_EQ(region_from_url("https://search-logs-abc123.eu-west-1.es.amazonaws.com"), "eu-west-1");
  EXPECT_EQ(region_from_url("https://abc.us-east-1.aoss.amazonaws.com:443/x"), "us-east-1");
  EXPECT_EQ(region_from_url("http://127.0.0.1:9200"), "");
  EXPECT_EQ(region_from_url("https://es.example.com"), "");
}

TEST(Encoders, Base64) {
  EXPECT_EQ(base64(""), "");
  EXPECT_EQ(base64("f"), "Zg==");
  EXPECT_EQ(base64("fo"), "Zm8=");
  EXPECT_EQ(base64("foo"), "Zm9v");
  EXPECT_EQ(base64("user:pass"), "dXNlcjpwYXNz");
}

TEST(Encoders, GzipRoundTrip) {
  std::string in;
  for (int i = 0; i < 5000; ++i)
    in += "{\"create\":{}}\n{\"n\":" + std::to_string(i) + "}\n";
  size_t previous = SIZE_MAX;
  for (int level : {1, 6, 9}) {
    std::string gz;
    Gzipper gzipper(level);
    ASSERT_TRUE(gzipper.compress(in, &gz));
    ASSERT_GT(gz.size(), 18u);
    EXPECT_EQ(static_cast<uint8_t>(gz[0]), 0x1f);
    EXPECT_EQ(static_cast<uint8_t>(gz[1]), 0x8b);
    EXPECT_LT(gz.size(), in.size() / 3);
    EXPECT_LE(gz.size(), previous) << "level " << level;  // a higher level is no larger
    previous = gz.size();
    // zlib, not libdeflate, reads it back: what Elasticsearch's side does.
    z_stream zs;
    std::memset(&zs, 0, sizeof zs);
    ASSERT_EQ(inflateInit2(&zs, 15 + 16), Z_OK);
    std::string back(in.size() + 16, '\0');
    zs.next_in = reinterpret_cast<Bytef *>(gz.data());
    zs.avail_in = static_cast<uInt>(gz.size());
    zs.next_out = reinterpret_cast<Bytef *>(back.data());
    zs.avail_out = static_cast<uInt>(back.size());
    EXPECT_EQ(inflate(&zs, Z_FINISH), Z_STREAM_END);
    back.resize(zs.total_out);
    inflateEnd(&zs);
    EXPECT_EQ(back, in) << "level " << level;
  }
}

// ---- bulk responses

TEST(BulkResponse, ItemsInOrderWithStatusesAndErrors) {
  const char *body = R"js({"took":30,"errors":true,"items":[
    {"create":{"_index":"i","_id":"1","_version":1,"result":"created","_shards":{"total":2,
      "successful":1,"failed":0},"_seq_no":0,"_primary_term":1,"status":201}},
    {"create":{"_index":"i","_id":"2","status":409,"error":{"type":"version_conflict_engine_exception",
      "reason":"[2]: version conflict, document already exists (current version [1])",
      "index_uuid":"x","shard":"0","index":"i"}}},
    {"create":{"_index":"i","_id":"3","status":429,"error":{"type":"es_rejected_execution_exception",
      "reason":"rejected execution of ..."}}},
    {"create":{"_index":"i","_id":"4","status":400,"error":{"type":"document_parsing_exception",
      "reason":"[1:15] failed to parse field [speed] of type [long] in document with id '4'. Preview of field's value: 'fast'",
      "caused_by":{"type":"illegal_argument_exception","reason":"For input string: \"fast\""}}}},
    {"index":{"_index":"i","_id":"5","status":503,"error":{"type":"unavailable_shards_exception","reason":"primary shard is not active"}}},
    {"create":{"status":400,"error":"MapperParsingException[failed to parse]"}},
    {"create":{"_index":"i","_id":"7","status":200,"_type":"_doc"}}
  ]})js";
  BulkResponse r;
  std::string err;
  ASSERT_TRUE(parse_bulk_response(body, &r, &err)) << err;
  EXPECT_TRUE(r.errors);
  ASSERT_EQ(r.items.size(), 7u);
  EXPECT_EQ(r.items[0].status, 201);
  EXPECT_EQ(classify_item(r.items[0]), ItemResult::Created);
  EXPECT_EQ(r.items[1].status, 409);
  EXPECT_EQ(classify_item(r.items[1]), ItemResult::Conflict);
  EXPECT_EQ(classify_item(r.items[2]), ItemResult::Retry);
  EXPECT_EQ(r.items[2].error_type, "es_rejected_execution_exception");
  EXPECT_EQ(classify_item(r.items[3]), ItemResult::DeadLetter);
  EXPECT_EQ(item_reason(r.items[3]),
            "document_parsing_exception: [1:15] failed to parse field [speed] of type [long] in "
            "document with id '4'. Preview of field's value: 'fast' (caused by "
            "illegal_argument_exception: For input string: \"fast\")");
  EXPECT_EQ(classify_item(r.items[4]), ItemResult::Retry);
  EXPECT_EQ(classify_item(r.items[5]), ItemResult::DeadLetter);
  EXPECT_EQ(item_reason(r.items[5]), "MapperParsingException[failed to parse]");
  EXPECT_EQ(classify_item(r.items[6]), ItemResult::Created);
}

TEST(BulkResponse, ClassifiesStatuses) {
  auto with = [](int s) {
    BulkItem i;
    i.status = s;
    return classify_item(i);
  };
  EXPECT_EQ(with(201), ItemResult::Created);
  EXPECT_EQ(with(200), ItemResult::Created);
  EXPECT_EQ(with(409), ItemResult::Conflict);
  EXPECT_EQ(with(429), ItemResult::Retry);
  EXPECT_EQ(with(500), ItemResult::Retry);
  EXPECT_EQ(with(503), ItemResult::Retry);
  EXPECT_EQ(with(0), ItemResult::Retry);  // no status: unknown outcome
  EXPECT_EQ(with(400), ItemResult::DeadLetter);
  EXPECT_EQ(with(404), ItemResult::DeadLetter);
  BulkItem none;
  none.status = 400;
  EXPECT_EQ(item_reason(none), "HTTP 400");
}

TEST(BulkResponse, EscapesAndUnicode) {
  BulkResponse r;
  std::string err;
  ASSERT_TRUE(parse_bulk_response(
      R"({"items":[{"create":{"status":400,"error":{"type":"t","reason":"a\"b\\c\n\u00e9\ud83d\ude00\/"}}}],"errors":true})",
      &r, &err))
      << err;
  ASSERT_EQ(r.items.size(), 1u);
  EXPECT_EQ(r.items[0].error_reason, "a\"b\\c\n\xc3\xa9\xf0\x9f\x98\x80/");
}

TEST(BulkResponse, NoErrorsAndEmptyItems) {
  BulkResponse r;
  std::string err;
  ASSERT_TRUE(parse_bulk_response(R"( {"errors":false,"took":1,"items":[]} )", &r, &err));
  EXPECT_FALSE(r.errors);
  EXPECT_TRUE(r.all_succeeded);
  EXPECT_TRUE(r.items.empty());
}

TEST(BulkResponse, CleanAnswerIsSkippedButStillChecked) {
  BulkResponse r;
  std::string err;
  ASSERT_TRUE(parse_bulk_response(
      R"({"took":3,"errors":false,"items":[{"create":{"_id":"a","status":201}},{"create":{"status":201}}]})",
      &r, &err))
      << err;
  EXPECT_TRUE(r.all_succeeded);
  EXPECT_TRUE(r.items.empty());
  // `errors` after `items`: the items were read already.
  ASSERT_TRUE(
      parse_bulk_response(R"({"items":[{"create":{"status":201}}],"errors":false})", &r, &err));
  EXPECT_FALSE(r.all_succeeded);
  EXPECT_EQ(r.items.size(), 1u);
  // Skipping still checks the structure, and that there are items.
  EXPECT_FALSE(parse_bulk_response(R"({"errors":false,"items":[{"create":{]})", &r, &err));
  EXPECT_FALSE(parse_bulk_response(R"({"errors":false})", &r, &err));
  EXPECT_FALSE(parse_bulk_response(R"({"errors":false,"items":[{"create":{"status":201}})", &r,
                                   &err));  // cut short
  EXPECT_FALSE(parse_bulk_response(R"({"errors":false,"items":[{"a":"x\"}]})", &r, &err));
  ASSERT_TRUE(parse_bulk_response(
      R"({"errors":false,"items":[{"create":{"_id":"a\\","r":"]}\"[{"}}],"took":1})", &r, &err))
      << err;
  EXPECT_TRUE(r.all_succeeded);
  std::string deep =
      R"({"errors":false,"items":[)" + std::string(100, '[') + std::string(100, ']') + "]}";
  EXPECT_FALSE(parse_bulk_response(deep, &r, &err));
  EXPECT_NE(err.find("nested too deeply"), std::string::npos) << err;
}

TEST(BulkResponse, LargeResponse) {
  std::string body = "{\"took\":5,\"errors\":true,\"items\":[";
  for (int i = 0; i < 20000; ++i) {
    if (i) body += ',';
    body += "{\"create\":{\"_index\":\"metadata-2024.01.02\",\"_id\":\"" + std::to_string(i) +
            "\",\"_version\":1,\"result\":\"created\",\"_shards\":{\"total\":2,\"successful\":1,"
            "\"failed\":0},\"_seq_no\":" +
            std::to_string(i) + ",\"_primary_term\":1,\"status\":" + (i % 7 ? "201" : "429") + "}}";
  }
  body += "]}";
  BulkResponse r;
  std::string err;
  ASSERT_TRUE(parse_bulk_response(body, &r, &err)) << err;
  ASSERT_EQ(r.items.size(), 20000u);
  EXPECT_EQ(r.items[0].status, 429);
  EXPECT_EQ(r.items[1].status, 201);
  EXPECT_EQ(r.items[19999].status, 19999 % 7 ? 201 : 429);
}

TEST(BulkResponse, FilteredAnswerAsTheOutputAsksForIt) {
  // ?filter_path=errors,items.*.status,items.*.error: statuses keep the
  // positions, errors keep type and reason.
  BulkResponse r;
  std::string err;
  ASSERT_TRUE(parse_bulk_response(
      R"({"errors":true,"items":[{"create":{"status":201}},{"create":{"status":409,"error":{"type":"version_conflict_engine_exception","reason":"[a]: version conflict"}}},{"create":{"status":400,"error":{"type":"document_parsing_exception","reason":"bad"}}},{"create":{"status":2.01e2}}]})",
      &r, &err))
      << err;
  ASSERT_EQ(r.items.size(), 4u);
  EXPECT_EQ(classify_item(r.items[0]), ItemResult::Created);
  EXPECT_EQ(classify_item(r.items[1]), ItemResult::Conflict);
  EXPECT_EQ(classify_item(r.items[2]), ItemResult::DeadLetter);
  EXPECT_EQ(item_reason(r.items[2]), "document_parsing_exception: bad");
  EXPECT_EQ(r.items[3].status, 201);
  EXPECT_STREQ(kBulkFilterPath, "errors,items.*.status,items.*.error");
  // Items that are read are checked to the number.
  EXPECT_FALSE(parse_bulk_response(R"({"items":[{"create":{"status":2e}}]})", &r, &err));
  EXPECT_FALSE(parse_bulk_response(R"({"items":[{"create":{"status":-}}]})", &r, &err));
}

TEST(BulkResponse, LongReasonsAreCut) {
  std::string reason(5000, 'x');
  std::string body =
      R"({"items":[{"create":{"status":400,"error":{"type":"t","reason":")" + reason + R"("}}}]})";
  BulkResponse r;
  std::string err;
  ASSERT_TRUE(parse_bulk_response(body, &r, &err)) << err;
  EXPECT_EQ(r.items[0].error_reason.size(), kMaxReasonBytes);
}

TEST(BulkResponse, RejectsMalformedBodies) {
  BulkResponse r;
  std::string err;
  EXPECT_FALSE(parse_bulk_response("", &r, &err));
  EXPECT_FALSE(parse_bulk_response("[]", &r, &err));
  EXPECT_FALSE(parse_bulk_response("{\"errors\":false}", &r, &err));  // no items
  EXPECT_FALSE(parse_bulk_response("{\"items\":[{\"create\":{\"status\":201}}", &r, &err));
  EXPECT_FALSE(parse_bulk_response("{\"items\":[]} x", &r, &err));
  EXPECT_FALSE(parse_bulk_response("{\"items\":[\"a\\q\"]}", &r, &err));
  std::string deep = "{\"items\":[],\"x\":" + std::string(200, '[') + std::string(200, ']') + "}";
  EXPECT_FALSE(parse_bulk_response(deep, &r, &err));
  EXPECT_NE(err.find("deep"), std::string::npos) << err;
}

TEST(Request, Classification) {
  EXPECT_EQ(classify_request(200, nullptr), RequestResult::Items);
  EXPECT_EQ(classify_request(0, "connection refused"), RequestResult::HostFailure);
  EXPECT_EQ(classify_request(0, "timeout"), RequestResult::HostFailure);
  EXPECT_EQ(classify_request(429, nullptr), RequestResult::HostFailure);
  EXPECT_EQ(classify_request(503, nullptr), RequestResult::HostFailure);
  EXPECT_EQ(classify_request(502, nullptr), RequestResult::HostFailure);
  EXPECT_EQ(classify_request(413, nullptr), RequestResult::TooLarge);
  EXPECT_EQ(classify_request(401, nullptr), RequestResult::Refused);
  EXPECT_EQ(classify_request(403, nullptr), RequestResult::Refused);
  EXPECT_EQ(classify_request(400, nullptr), RequestResult::Refused);
}

TEST(Request, ErrorText) {
  EXPECT_EQ(request_error_text(
                429, R"({"error":{"root_cause":[],"type":"es_rejected_execution_exception",)"
                     R"("reason":"rejected"},"status":429})"),
            "HTTP 429 es_rejected_execution_exception: rejected");
  EXPECT_EQ(request_error_text(403, R"({"message":"The request signature we calculated..."})"),
            "HTTP 403 The request signature we calculated...");
  EXPECT_EQ(request_error_text(413, ""), "HTTP 413");
  EXPECT_EQ(request_error_text(502, "<html>\nbad gateway</html>"),
            "HTTP 502 <html> bad gateway</html>");
}

// ---- host rotation

TEST(HostPool, RoundRobin) {
  HostPool p(3, 30000);
  EXPECT_EQ(p.pick(0), 0u);
  EXPECT_EQ(p.pick(0), 1u);
  EXPECT_EQ(p.pick(0), 2u);
  EXPECT_EQ(p.pick(0), 0u);
  EXPECT_EQ(p.available(0), 3u);
}

TEST(HostPool, FailedHostIsSkippedUntilItsCooldownEnds) {
  HostPool p(3, 30000);
  p.failed(1, 1000);
  EXPECT_TRUE(p.cooling(1, 1000));
  EXPECT_EQ(p.available(1000), 2u);
  std::vector<size_t> seen;
  for (int i = 0; i < 6; ++i)
    seen.push_back(p.pick(2000));
  EXPECT_EQ(seen, (std::vector<size_t>{0, 2, 0, 2, 0, 2}));
  EXPECT_EQ(p.cooling_hosts(2000), (std::vector<size_t>{1}));
  // 30 s later it is back.
  EXPECT_FALSE(p.cooling(1, 31000));
  std::vector<size_t> later;
  for (int i = 0; i < 3; ++i)
    later.push_back(p.pick(31000));
  EXPECT_EQ(later, (std::vector<size_t>{0, 1, 2}));
}

TEST(HostPool, HealthReturnsAHostEarly) {
  HostPool p(2, 30000);
  p.failed(0, 0);
  EXPECT_EQ(p.pick(10), 1u);
  EXPECT_EQ(p.pick(10), 1u);
  p.healthy(0);
  EXPECT_EQ(p.available(10), 2u);
  EXPECT_EQ(p.pick(10), 0u);
}

TEST(HostPool, AllCoolingUsesTheOneThatEndsFirst) {
  HostPool p(3, 30000);
  p.failed(0, 5000);
  p.failed(1, 1000);
  p.failed(2, 3000);
  EXPECT_EQ(p.available(6000), 0u);
  EXPECT_EQ(p.pick(6000), 1u);
  EXPECT_EQ(p.pick(6000), 1u);  // still the earliest end
  p.failed(1, 7000);            // failed again: now ends at 37000
  EXPECT_EQ(p.pick(7000), 2u);
}

TEST(HostPool, SingleHost) {
  HostPool p(1, 30000);
  p.failed(0, 0);
  EXPECT_EQ(p.pick(1), 0u);
  EXPECT_EQ(p.cooling_hosts(1), (std::vector<size_t>{0}));
}

}  // namespace
}  // namespace ingestd::es
