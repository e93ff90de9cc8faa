// Record and batch host functions through the plugin ABI: a failed rename
// leaves the record as it was; records in a batch are read-only to outputs
// (one output's change never reaches what another sends).
#include <gtest/gtest.h>

#include <string>

#include "host/instance.h"

namespace ingestd {
namespace {

RecordPtr record(std::string_view text) {
  RecordPtr r = RecordPtr::make();
  json::ParseError err;
  EXPECT_TRUE(json::parse(text, &r->root, &err)) << text;
  r->tag = "t";
  return r;
}

std::string text(const ingestd_host_t *h, const ingestd_record_t *r) {
  size_t len = 0;
  const char *s = h->record_json(const_cast<ingestd_record_t *>(r), &len);
  return std::string(s, len);
}

TEST(RecordRename, TargetThatCannotBeSetLeavesTheRecordAsItWas) {
  const ingestd_host_t *h = host_table();
  RecordPtr r = record(R"({"a":1,"b":"x"})");
  EXPECT_EQ(text(h, r->abi()), R"({"a":1,"b":"x"})");  // cached before: the cache must stay right
  EXPECT_EQ(h->record_rename(r->abi(), "a", "b.c"), -1);
  EXPECT_NE(h->record_get(r->abi(), "a"), nullptr) << "the field was dropped";
  EXPECT_EQ(text(h, r->abi()), R"({"a":1,"b":"x"})");
  r->modified();  // what is stored, not a cached text
  EXPECT_EQ(text(h, r->abi()), R"({"a":1,"b":"x"})");
  EXPECT_EQ(h->record_rename(r->abi(), "a", "b..c"), -1);  // invalid path
  EXPECT_EQ(h->record_rename(r->abi(), "a", ""), -1);
  EXPECT_EQ(text(h, r->abi()), R"({"a":1,"b":"x"})");
}

TEST(RecordRename, RenamesAbsentAndNested) {
  const ingestd_host_t *h = host_table();
  RecordPtr r = record(R"({"a":{"x":1},"b":2,"c":3})");
  EXPECT_EQ(h->record_rename(r->abi(), "nope", "b"), 0);
  EXPECT_EQ(h->record_rename(r->abi(), "a", "a.inner"), 1);  // the source's own path is freed
  EXPECT_EQ(text(h, r->abi()), R"({"b":2,"c":3,"a":{"inner":{"x":1}}})");
  EXPECT_EQ(h->record_rename(r->abi(), "b", "c"), 1);  // a leaf target is replaced
  EXPECT_EQ(text(h, r->abi()), R"({"c":2,"a":{"inner":{"x":1}}})");
  EXPECT_EQ(h->record_rename(r->abi(), "a.inner.x", "a.y.z"), 1);
  EXPECT_EQ(text(h, r->abi()), R"({"c":2,"a":{"inner":{},"y":{"z":1}}})");
}

// Two outputs of a fan-out hold the same record in their batches.
struct FanOut {
  RecordPtr shared = record(R"({"k":"v"})");
  Batch a, b;
  FanOut() {
    for (Batch *x : {&a, &b}) {
      x->records.push_back(shared);
      x->marks.assign(1, Mark::None);
      x->reasons.resize(1);
    }
  }
};

TEST(BatchRecord, OneOutputCannotChangeWhatAnotherSends) {
  const ingestd_host_t *h = host_table();
  FanOut f;
  // C can cast the const away; the host still refuses.
  auto *ra = const_cast<ingestd_record_t *>(h->batch_record(f.a.abi(), 0));
  EXPECT_EQ(h->record_set_string(ra, "k", "changed", 7), -1);
  EXPECT_EQ(h->record_set_int(ra, "n", 1), -1);
  EXPECT_EQ(h->record_set_number(ra, "n", 1.5), -1);
  EXPECT_EQ(h->record_set_bool(ra, "n", 1), -1);
  EXPECT_EQ(h->record_set_null(ra, "n"), -1);
  EXPECT_EQ(h->record_set_json(ra, "n", "[1]", 3), -1);
  EXPECT_EQ(h->record_remove(ra, "k"), -1);
  EXPECT_EQ(h->record_rename(ra, "k", "j"), -1);
  EXPECT_EQ(text(h, h->batch_record(f.b.abi(), 0)), R"({"k":"v"})");
}

}  // namespace
}  // namespace ingestd
