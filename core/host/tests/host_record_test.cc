// Record and batch host functions through the plugin ABI: a failed rename
// leaves the record as it was; records in a batch are read-only to outputs
// (one output's change never reaches what another sends).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <string>

#include "host/instance.h"
#include "util/metrics.h"

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
  const char *s = h->record_json(r, &len);
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

// What a Logger wrote, through a pipe.
struct CapturedLog {
  int fds[2] = {-1, -1};
  std::unique_ptr<Logger> log;
  CapturedLog() {
    EXPECT_EQ(::pipe2(fds, O_NONBLOCK), 0);
    log = std::make_unique<Logger>(fds[1], LogLevel::Debug);
  }
  ~CapturedLog() {
    ::close(fds[0]);
    ::close(fds[1]);
  }
  std::string text() {
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fds[0], buf, sizeof buf)) > 0)
      out.append(buf, static_cast<size_t>(n));
    return out;
  }
};

size_t count(const std::string &hay, const std::string &needle) {
  size_t n = 0;
  for (size_t at = hay.find(needle); at != std::string::npos; at = hay.find(needle, at + 1))
    ++n;
  return n;
}

TEST(BatchRecord, RefusedSetterIsLoggedOncePerOutput) {
  const ingestd_host_t *h = host_table();
  CapturedLog cap;
  Instance out;
  out.name = "a";
  out.scope = "outputs.a";
  out.logger = cap.log.get();
  FanOut f;
  f.a.output = &out;
  auto *r = const_cast<ingestd_record_t *>(h->batch_record(f.a.abi(), 0));
  EXPECT_EQ(h->record_set_int(r, "n", 1), -1);
  EXPECT_EQ(h->record_remove(r, "k"), -1);
  std::string log = cap.text();
  EXPECT_EQ(count(log, "record setter was refused"), 1u) << log;
  EXPECT_NE(log.find("outputs.a"), std::string::npos) << log;
}

TEST(BatchRecord, ACopyIsThePluginsToChange) {
  const ingestd_host_t *h = host_table();
  ASSERT_TRUE(INGESTD_HOST_HAS(h, record_copy));
  ASSERT_TRUE(INGESTD_HOST_HAS(h, record_free));
  FanOut f;
  f.shared->received_ms = 42;
  const ingestd_record_t *shared = h->batch_record(f.a.abi(), 0);
  ingestd_record_t *mine = h->record_copy(nullptr, shared);
  ASSERT_NE(mine, nullptr);
  EXPECT_EQ(h->record_set_string(mine, "k", "mine", 4), 0);
  EXPECT_EQ(h->record_set_int(mine, "n", 7), 0);
  EXPECT_EQ(h->record_rename(mine, "n", "m"), 1);
  EXPECT_EQ(text(h, mine), R"({"k":"mine","m":7})");
  EXPECT_STREQ(h->record_tag(mine), "t");
  EXPECT_EQ(h->record_received_ms(mine), 42);
  EXPECT_EQ(text(h, h->batch_record(f.b.abi(), 0)), R"({"k":"v"})");
  h->record_free(const_cast<ingestd_record_t *>(shared));  // not the plugin's: left alone
  EXPECT_EQ(f.shared->refs, 3u);                           // f.shared, f.a, f.b
  h->record_free(mine);                                    // ASan: freed exactly once
  EXPECT_EQ(h->record_copy(nullptr, nullptr), nullptr);
  h->record_free(nullptr);
}

// on_destroy follows a failed on_init that stored its data, and what on_init
// started (timers, call_soon) never runs after.
struct Lifecycle {
  int destroyed = 0;
  int fired = 0;
  bool store = true;
};

// The test hands its Lifecycle through the config handle, which the host
// passes to on_init unread.
const ingestd_config_t *as_config(Lifecycle *l) {
  return reinterpret_cast<const ingestd_config_t *>(l);
}

int failing_init(const ingestd_host_t *host, ingestd_instance_t *inst, const ingestd_config_t *cfg,
                 void **data) {
  auto *l = reinterpret_cast<Lifecycle *>(const_cast<ingestd_config_t *>(cfg));
  if (!l->store) return -1;
  *data = l;  // stored first, then failing halfway
  host->timer_start(
      inst, 0, 0, [](void *a) { ++static_cast<Lifecycle *>(a)->fired; }, l);
  host->call_soon(
      inst, [](void *a) { ++static_cast<Lifecycle *>(a)->fired; }, l);
  return -1;
}
void count_destroy(void *d) {
  ++static_cast<Lifecycle *>(d)->destroyed;
}

const ingestd_plugin_t kFailing = {INGESTD_ABI_MAJOR,
                                   INGESTD_ABI_MINOR,
                                   sizeof(ingestd_plugin_t),
                                   "failing",
                                   INGESTD_KIND_OUTPUT,
                                   "on_init fails after storing its data",
                                   "0",
                                   nullptr,
                                   0,
                                   failing_init,
                                   nullptr,
                                   nullptr,
                                   count_destroy,
                                   nullptr,
                                   nullptr,
                                   nullptr};

TEST(InstanceLifecycle, FailedInitIsFollowedByDestroyAndNothingItStartedRuns) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  Lifecycle l;
  {
    Instance in;
    in.plugin = &kFailing;
    in.config = as_config(&l);
    in.loop = &loop;
    EXPECT_FALSE(in.init());
    EXPECT_EQ(l.destroyed, 1);
    EXPECT_TRUE(in.timers.empty());
    EXPECT_TRUE(in.soon.empty());
    uv_run(&loop, UV_RUN_NOWAIT);
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  EXPECT_EQ(l.destroyed, 1) << "on_destroy ran twice";
  EXPECT_EQ(l.fired, 0) << "a timer or call_soon of a failed on_init ran";
  EXPECT_EQ(uv_loop_close(&loop), 0);
}

TEST(InstanceLifecycle, FailedInitThatStoredNothingGetsNoDestroy) {
  Lifecycle l;
  l.store = false;
  {
    Instance in;
    in.plugin = &kFailing;
    in.config = as_config(&l);
    EXPECT_FALSE(in.init());
  }
  EXPECT_EQ(l.destroyed, 0);
}

TEST(Metrics, LabeledSeriesAddTheirLabelsAfterTheInstances) {
  const ingestd_host_t *h = host_table();
  ASSERT_TRUE(INGESTD_HOST_HAS(h, counter_labeled));
  CapturedLog cap;
  MetricsRegistry reg;
  Instance out;
  out.name = "pos";
  out.scope = "outputs.pos";
  out.logger = cap.log.get();
  out.metrics = &reg;
  out.labels = {{"output", "pos"}};
  const char *a[] = {"node", "10.0.0.5:6379", nullptr};
  const char *b[] = {"node", "10.0.0.6:6379", "kind", "moved", nullptr};
  ingestd_metric_t *ca = h->counter_labeled(out.abi(), "redis_node_commands_total", "c", a);
  ingestd_metric_t *cb = h->counter_labeled(out.abi(), "redis_redirections_total", "r", b);
  ingestd_metric_t *g = h->gauge_labeled(out.abi(), "redis_node_up", "u", a);
  ASSERT_NE(ca, nullptr);
  ASSERT_NE(cb, nullptr);
  ASSERT_NE(g, nullptr);
  EXPECT_EQ(h->counter_labeled(out.abi(), "redis_node_commands_total", "c", a), ca);
  h->metric_add(ca, 3);
  h->metric_add(cb, 1);
  h->metric_set(g, 1);
  std::string text = render_prometheus({&reg});
  EXPECT_NE(text.find("ingestd_redis_node_commands_total{output=\"pos\",node=\"10.0.0.5:6379\"} 3"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("ingestd_redis_redirections_total{output=\"pos\",node=\"10.0.0.6:6379\","
                      "kind=\"moved\"} 1"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("ingestd_redis_node_up{output=\"pos\",node=\"10.0.0.5:6379\"} 1"),
            std::string::npos)
      << text;
  // Names the host owns, and ones that are no label names, are refused.
  const char *taken[] = {"output", "x", nullptr};
  const char *bad[] = {"9node", "x", nullptr};
  const char *novalue[] = {"node", nullptr};
  EXPECT_EQ(h->counter_labeled(out.abi(), "m", "", taken), nullptr);
  EXPECT_EQ(h->counter_labeled(out.abi(), "m", "", bad), nullptr);
  EXPECT_EQ(h->gauge_labeled(out.abi(), "m", "", novalue), nullptr);
  std::string log = cap.text();
  EXPECT_NE(log.find("label \"output\" is set by the host"), std::string::npos) << log;
  EXPECT_NE(log.find("label \"9node\" is not a label name"), std::string::npos) << log;
  EXPECT_NE(log.find("label \"node\" has no value"), std::string::npos) << log;
  // No labels of its own: the instance's.
  EXPECT_NE(h->counter_labeled(out.abi(), "plain_total", "", nullptr), nullptr);
}

}  // namespace
}  // namespace ingestd
