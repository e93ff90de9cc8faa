// Routing and the output runtime with test plugins on a real uv loop: filters
// run once per route on the route's own copy, admission is all or nothing,
// counters move only for what was kept, and outputs are driven once per loop
// turn, never inside the call that queued the record.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "engine/output_runtime.h"
#include "engine/routing.h"
#include "json/json.h"

namespace ingestd {
namespace {

// ---- a test output: keeps each batch until the test finishes it

struct Sink {
  const ingestd_host_t *host = nullptr;
  std::vector<ingestd_batch_t *> open;
  std::vector<std::string> seen;  // JSON of every record handed over
  int flushes = 0;
  bool finish_at_once = true;
};

int sink_init(const ingestd_host_t *host, ingestd_instance_t *, const ingestd_config_t *,
              void **data) {
  auto *s = new Sink;
  s->host = host;
  *data = s;
  return 0;
}
int ok_start(void *) {
  return 0;
}
void no_stop(void *) {}
void sink_destroy(void *d) {
  delete static_cast<Sink *>(d);
}
void sink_flush(void *d, ingestd_batch_t *b) {
  auto *s = static_cast<Sink *>(d);
  ++s->flushes;
  for (size_t i = 0; i < s->host->batch_size(b); ++i) {
    size_t len = 0;
    const char *json = s->host->record_json(s->host->batch_record(b, i), &len);
    s->seen.emplace_back(json, len);
  }
  if (s->finish_at_once)
    s->host->batch_done(b, INGESTD_BATCH_OK);
  else
    s->open.push_back(b);
}

const ingestd_plugin_t kSink = {INGESTD_ABI_MAJOR,
                                INGESTD_ABI_MINOR,
                                sizeof(ingestd_plugin_t),
                                "sink",
                                INGESTD_KIND_OUTPUT,
                                "test output",
                                "0",
                                nullptr,
                                0,
                                sink_init,
                                ok_start,
                                no_stop,
                                sink_destroy,
                                nullptr,
                                nullptr,
                                sink_flush};

// ---- a test filter: rename a -> b, then set a = "v" (not idempotent: a
// second run turns {"b":1,"a":"v"} into {"b":"v","a":"v"})

struct Shape {
  const ingestd_host_t *host = nullptr;
  int runs = 0;
};
int shape_init(const ingestd_host_t *host, ingestd_instance_t *, const ingestd_config_t *,
               void **data) {
  *data = new Shape{host, 0};
  return 0;
}
void shape_destroy(void *d) {
  delete static_cast<Shape *>(d);
}
ingestd_filter_result_type shape_filter(void *d, ingestd_record_t *rec) {
  auto *s = static_cast<Shape *>(d);
  ++s->runs;
  s->host->record_rename(rec, "a", "b");
  s->host->record_set_string(rec, "a", "v", 1);
  return INGESTD_FILTER_KEEP;
}
const ingestd_plugin_t kShape = {INGESTD_ABI_MAJOR,
                                 INGESTD_ABI_MINOR,
                                 sizeof(ingestd_plugin_t),
                                 "shape",
                                 INGESTD_KIND_FILTER,
                                 "test filter",
                                 "0",
                                 nullptr,
                                 0,
                                 shape_init,
                                 ok_start,
                                 no_stop,
                                 shape_destroy,
                                 nullptr,
                                 shape_filter,
                                 nullptr};

class RoutingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    uv_loop_init(&loop_);
    releaser_ = std::make_unique<RecordReleaser>(&loop_);
    pump_ = std::make_unique<OutputPump>(&loop_);
  }
  void TearDown() override {
    for (auto &o : outputs_) {
      o->halt();
      o->abandon();
      o->instance().destroy();
      o->close_timer();
    }
    outputs_.clear();
    for (auto &f : filters_)
      f->inst.destroy();
    pump_.reset();
    releaser_.reset();
    uv_run(&loop_, UV_RUN_DEFAULT);
    ASSERT_EQ(uv_loop_close(&loop_), 0);
  }

  void init(Instance &inst, const ingestd_plugin_t *p, const std::string &name) {
    inst.plugin = p;
    inst.name = name;
    inst.scope = name;
    inst.loop = &loop_;
    inst.logger = &log_;
    inst.metrics = &metrics_;
    ASSERT_TRUE(inst.init());
    ASSERT_TRUE(inst.start());
  }

  OutputRuntime *output(const std::string &name, size_t max_records = 1000) {
    OutputSettings s;
    s.limits.max_records = max_records;
    s.limits.batch_max_records = 1;  // every record fills a batch
    s.limits.flush_interval_ms = 1000;
    OutputEnv env{&loop_, &log_, &dead_letter_, releaser_.get(), pump_.get()};
    auto o = std::make_unique<OutputRuntime>(env, s);
    init(o->instance(), &kSink, name);
    o->setup_metrics(&metrics_);
    EXPECT_TRUE(o->start());
    outputs_.push_back(std::move(o));
    return outputs_.back().get();
  }
  Sink *sink(OutputRuntime *o) { return static_cast<Sink *>(o->instance().data); }

  FilterRuntime *filter() {
    auto f = std::make_unique<FilterRuntime>();
    init(f->inst, &kShape, "shape");
    f->dropped = metrics_.counter("dropped", "d");
    filters_.push_back(std::move(f));
    return filters_.back().get();
  }
  int runs(FilterRuntime *f) { return static_cast<Shape *>(f->inst.data)->runs; }

  std::unique_ptr<InputRuntime> input() {
    auto p = std::make_unique<InputRuntime>();
    InputRuntime &in = *p;
    in.tag = "t";
    in.inst.scope = "inputs.t";
    in.records_in = metrics_.counter("in", "x", {{"n", std::to_string(counters_++)}});
    in.records_rejected = metrics_.counter("rej", "x", {{"n", std::to_string(counters_++)}});
    in.records_unrouted = metrics_.counter("unr", "x", {{"n", std::to_string(counters_++)}});
    in.records_refused = metrics_.counter("ref", "x", {{"n", std::to_string(counters_++)}});
    in.requests_shed = metrics_.counter("shed", "x", {{"n", std::to_string(counters_++)}});
    return p;
  }
  Counter *route_counter() {
    return metrics_.counter("route", "x", {{"n", std::to_string(counters_++)}});
  }

  std::vector<RecordPtr> records(const std::vector<std::string> &texts) {
    std::vector<RecordPtr> out;
    for (const auto &t : texts) {
      RecordPtr r = RecordPtr::make();
      json::ParseError err;
      EXPECT_TRUE(json::parse(t, &r->root, &err));
      r->tag = "t";
      out.push_back(std::move(r));
    }
    return out;
  }

  Routing routing() {
    std::vector<OutputRuntime *> all;
    for (auto &o : outputs_)
      all.push_back(o.get());
    return Routing(&loop_, &log_, SIZE_MAX, all);
  }

  uv_loop_t loop_{};
  Logger log_{2, LogLevel::Error};
  MetricsRegistry metrics_;
  DeadLetter dead_letter_{"/dev/null", &log_};
  std::unique_ptr<RecordReleaser> releaser_;
  std::unique_ptr<OutputPump> pump_;
  std::vector<std::unique_ptr<OutputRuntime>> outputs_;
  std::vector<std::unique_ptr<FilterRuntime>> filters_;
  int counters_ = 0;
};

TEST_F(RoutingTest, OutputsAreDrivenOnTheLoopTurnNotInsideTheCallThatQueued) {
  OutputRuntime *o = output("o");
  auto inp = input();
  InputRuntime &in = *inp;
  in.targets.push_back({route_counter(), {}, {o}});
  Routing r = routing();
  auto recs = records({R"({"a":1})", R"({"a":2})"});
  ASSERT_EQ(r.deliver(in, recs, nullptr), Routing::Result::Ok);
  // Two full batches are due, none was handed over yet.
  EXPECT_EQ(sink(o)->flushes, 0);
  uv_run(&loop_, UV_RUN_NOWAIT);
  EXPECT_EQ(sink(o)->flushes, 2);
  EXPECT_EQ(o->delivered(), 2u);
}

TEST_F(RoutingTest, AFilteredRouteAfterAnUnfilteredOneChangesOnlyItsCopy) {
  OutputRuntime *plain = output("plain");
  OutputRuntime *shaped = output("shaped");
  FilterRuntime *f = filter();
  auto inp = input();
  InputRuntime &in = *inp;
  in.targets.push_back({route_counter(), {}, {plain}});
  in.targets.push_back({route_counter(), {f}, {shaped}});
  Routing r = routing();
  auto recs = records({R"({"a":1})"});
  ASSERT_EQ(r.deliver(in, recs, nullptr), Routing::Result::Ok);
  uv_run(&loop_, UV_RUN_NOWAIT);
  EXPECT_EQ(sink(shaped)->seen, std::vector<std::string>{R"({"b":1,"a":"v"})"});
  EXPECT_EQ(sink(plain)->seen, std::vector<std::string>{R"({"a":1})"});
}

TEST_F(RoutingTest, EachRouteFiltersItsOwnCopyOnce) {
  OutputRuntime *plain = output("plain");
  OutputRuntime *shaped = output("shaped");
  FilterRuntime *f = filter();
  auto inp = input();
  InputRuntime &in = *inp;
  in.targets.push_back({route_counter(), {f}, {shaped}});
  in.targets.push_back({route_counter(), {}, {plain}});
  Routing r = routing();
  auto recs = records({R"({"a":1})"});
  ASSERT_EQ(r.deliver(in, recs, nullptr), Routing::Result::Ok);
  uv_run(&loop_, UV_RUN_NOWAIT);
  EXPECT_EQ(runs(f), 1);
  EXPECT_EQ(sink(shaped)->seen, std::vector<std::string>{R"({"b":1,"a":"v"})"});
  EXPECT_EQ(sink(plain)->seen, std::vector<std::string>{R"({"a":1})"});
}

TEST_F(RoutingTest, OneFullOutputRefusesTheWholeRequestEverywhereAndCountsNothing) {
  OutputRuntime *roomy = output("roomy");
  OutputRuntime *small = output("small", 2);
  auto inp = input();
  InputRuntime &in = *inp;
  Counter *route = route_counter();
  in.targets.push_back({route, {}, {roomy, small}});
  Routing r = routing();
  auto recs = records({R"({"a":1})", R"({"a":2})", R"({"a":3})"});
  EXPECT_EQ(r.deliver(in, recs, nullptr), Routing::Result::Full);
  uv_run(&loop_, UV_RUN_NOWAIT);
  EXPECT_TRUE(sink(roomy)->seen.empty());
  EXPECT_TRUE(sink(small)->seen.empty());
  EXPECT_EQ(route->value(), 0u);
  EXPECT_EQ(in.records_in->value(), 0u);
  EXPECT_EQ(in.records_refused->value(), 3u);
  auto two = records({R"({"a":1})", R"({"a":2})"});
  EXPECT_EQ(r.deliver(in, two, nullptr), Routing::Result::Ok);
  EXPECT_EQ(route->value(), 2u);
  EXPECT_EQ(in.records_in->value(), 2u);
}

// Overload is shed before parsing: after a request was refused for room,
// room_for asks for as much room as it needed, so the requests that follow are
// refused without being parsed until the queue has drained that far.
TEST_F(RoutingTest, AfterARefusalRequestsAreShedUntilTheRefusedOneWouldFit) {
  OutputRuntime *small = output("small", 4);
  auto inp = input();
  InputRuntime &in = *inp;
  in.targets.push_back({route_counter(), {}, {small}});
  Routing r = routing();
  auto three = records({R"({"a":1})", R"({"a":2})", R"({"a":3})"});
  EXPECT_EQ(r.deliver(in, three, nullptr), Routing::Result::Ok);
  EXPECT_TRUE(r.room_for(in));  // one record of room left
  auto more = records({R"({"b":1})", R"({"b":2})", R"({"b":3})"});
  EXPECT_EQ(r.deliver(in, more, nullptr), Routing::Result::Full);
  EXPECT_FALSE(r.room_for(in)) << "a request smaller than the refused one is still shed";
  uv_run(&loop_, UV_RUN_NOWAIT);  // the sink takes the batch and the queue drains
  EXPECT_EQ(sink(small)->seen.size(), 3u);
  EXPECT_TRUE(r.room_for(in));
  EXPECT_EQ(r.deliver(in, more, nullptr), Routing::Result::Ok);
  EXPECT_TRUE(r.room_for(in));  // a success clears the refused need

  // A request larger than the queue can ever hold does not make the input
  // shed what follows it, not even while the queue holds records.
  uv_run(&loop_, UV_RUN_NOWAIT);
  auto one = records({"{}"});
  EXPECT_EQ(r.deliver(in, one, nullptr), Routing::Result::Ok);
  auto five = records({"{}", "{}", "{}", "{}", "{}"});
  EXPECT_EQ(r.deliver(in, five, nullptr), Routing::Result::Full);
  EXPECT_TRUE(r.room_for(in));
}

TEST_F(RoutingTest, UnroutedRecordsAreCountedAndKeptNowhere) {
  output("o");
  auto inp = input();
  InputRuntime &in = *inp;
  Routing r = routing();
  auto recs = records({R"({"a":1})", R"({"a":2})"});
  EXPECT_EQ(r.deliver(in, recs, nullptr), Routing::Result::Ok);
  EXPECT_EQ(in.records_unrouted->value(), 2u);
}

TEST_F(RoutingTest, ABatchFinishedLaterIsFollowedByTheNextOnTheSameTurn) {
  OutputRuntime *o = output("o");
  sink(o)->finish_at_once = false;
  auto inp = input();
  InputRuntime &in = *inp;
  in.targets.push_back({route_counter(), {}, {o}});
  Routing r = routing();
  // max_inflight defaults to one batch at a time.
  OutputSettings defaults;
  ASSERT_EQ(defaults.limits.max_inflight_batches, 1u);
  auto recs = records({R"({"a":1})", R"({"a":2})"});
  ASSERT_EQ(r.deliver(in, recs, nullptr), Routing::Result::Ok);
  uv_run(&loop_, UV_RUN_NOWAIT);
  ASSERT_EQ(sink(o)->open.size(), 1u);
  // Finished from a loop callback: the output is marked due, not pumped on
  // the finishing plugin's stack.
  ingestd_batch_t *b = sink(o)->open.back();
  sink(o)->open.clear();
  sink(o)->host->batch_done(b, INGESTD_BATCH_OK);
  EXPECT_EQ(sink(o)->flushes, 1);
  uv_run(&loop_, UV_RUN_NOWAIT);
  EXPECT_EQ(sink(o)->flushes, 2);
  ASSERT_EQ(sink(o)->open.size(), 1u);
  sink(o)->host->batch_done(sink(o)->open.back(), INGESTD_BATCH_OK);
  sink(o)->open.clear();
  uv_run(&loop_, UV_RUN_NOWAIT);
  EXPECT_EQ(o->delivered(), 2u);
}

}  // namespace
}  // namespace ingestd
