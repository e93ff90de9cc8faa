// Builds one worker's pipeline from a config generation and wires its parts.
#include "engine/pipeline.h"

#include <algorithm>
#include <chrono>
#include <map>

#include "engine/router.h"
#include "host/plugin_loader.h"

namespace ingestd {

namespace {

int64_t wall_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

}  // namespace

Pipeline::Pipeline(std::shared_ptr<const Setup> setup, PipelineEnv env)
    : setup_(std::move(setup)),
      cfg_(setup_->config.get()),
      env_(env),
      releaser_(env_.loop),
      pump_(env_.loop) {
  if (env_.loop) {
    http_ = std::make_unique<HttpClient>(env_.loop, env_.log, env_.metrics);
    aws_ = std::make_unique<aws::Registry>(http_.get(), env_.log, env_.metrics);
  }
}

Pipeline::~Pipeline() {
  stop();
}

bool Pipeline::make_instance(Instance &inst, const config::Section &s, ingestd_kind_type kind) {
  inst.plugin = s.descriptor;
  inst.name = s.name;
  inst.scope = std::string(kind_section(kind)) + "." + s.name;
  inst.config = s.options.abi();
  inst.loop = env_.loop;
  inst.logger = env_.log;
  inst.metrics = env_.metrics;
  inst.http = http_.get();
  inst.aws = aws_.get();
  inst.labels = {{kind_word(kind), s.name}};
  if (env_.check_only) inst.log_prefix = s.pos.str() + ": ";
  return inst.init();
}

bool Pipeline::init_outputs() {
  bool ok = true;
  int workers = std::max(1, env_.worker_count);
  OutputEnv oenv{env_.loop, env_.log, env_.dead_letter, &releaser_, &pump_};
  for (const auto &s : cfg_->outputs) {
    const auto &o = s.options;
    OutputSettings set;
    QueueLimits &l = set.limits;
    l.max_records = static_cast<size_t>(o.get_int("max_records"));
    // max_memory bounds what records take in memory (OutputRuntime::can_accept),
    // not their JSON bytes, which only size batches.
    l.max_bytes = SIZE_MAX;
    l.batch_max_records = static_cast<size_t>(o.get_int("batch_max_records"));
    l.batch_max_bytes = static_cast<size_t>(o.get_size("batch_max_bytes"));
    l.flush_interval_ms = static_cast<uint64_t>(o.get_duration_ms("flush_interval"));
    l.max_inflight_batches = static_cast<uint32_t>(o.get_int("max_inflight"));
    l.retry_initial_ms = static_cast<uint64_t>(o.get_duration_ms("retry_initial"));
    l.retry_max_ms = static_cast<uint64_t>(o.get_duration_ms("retry_max"));
    l.max_attempts = static_cast<uint32_t>(o.get_int("max_attempts"));
    set.max_memory = static_cast<size_t>(o.get_size("max_memory"));
    set.disk = o.get_string("buffer") == "disk";
    set.max_disk = o.get_size("max_disk") / static_cast<uint64_t>(workers);
    auto out = std::make_unique<OutputRuntime>(oenv, set);
    if (!make_instance(out->instance(), s, INGESTD_KIND_OUTPUT)) ok = false;
    out->setup_metrics(env_.metrics);
    outputs_.push_back(std::move(out));
  }
  return ok;
}

bool Pipeline::init_filters() {
  bool ok = true;
  for (const auto &s : cfg_->filters) {
    auto f = std::make_unique<FilterRuntime>();
    if (!make_instance(f->inst, s, INGESTD_KIND_FILTER)) ok = false;
    f->dropped = env_.metrics->counter("ingestd_filter_dropped_records_total",
                                       "Records a filter dropped", {{"filter", s.name}});
    filters_.push_back(std::move(f));
  }
  return ok;
}

bool Pipeline::init_inputs() {
  const config::Config &c = *cfg_;
  std::map<std::string, size_t> filter_index, output_index;
  for (size_t i = 0; i < c.filters.size(); ++i)
    filter_index[c.filters[i].name] = i;
  for (size_t i = 0; i < c.outputs.size(); ++i)
    output_index[c.outputs[i].name] = i;
  std::vector<RouteSpec> specs;
  std::vector<Counter *> route_records;
  for (size_t r = 0; r < c.routes.size(); ++r) {
    const auto &route = c.routes[r];
    RouteSpec spec;
    spec.match = route.match;
    for (const auto &f : route.filters)
      spec.filters.push_back(filter_index.at(f));
    for (const auto &o : route.to)
      spec.outputs.push_back(output_index.at(o));
    specs.push_back(std::move(spec));
    route_records.push_back(
        env_.metrics->counter("ingestd_route_records_total", "Records that took the route",
                              {{"route", std::to_string(r)}, {"match", route.match}}));
  }
  bool ok = true;
  for (const auto &s : c.inputs) {
    auto in = std::make_unique<InputRuntime>();
    in->tag = s.options.has("tag") ? s.options.get_string("tag") : s.name;
    for (const RouteTarget &t : plan_routes(specs, in->tag)) {
      FilterChain chain;
      for (size_t f : t.filters)
        chain.push_back(filters_[f].get());
      InputRuntime::Target target{route_records[t.route], chain, {}};
      // Disk outputs are fed from the input's log, not from the request.
      for (size_t o : t.outputs) {
        OutputRuntime *out = outputs_[o].get();
        if (!out->disk()) {
          target.outputs.push_back(out);
          continue;
        }
        auto dr = std::find_if(in->disk_routes.begin(), in->disk_routes.end(),
                               [out](const auto &d) { return d.output == out; });
        if (dr == in->disk_routes.end()) {
          in->disk_routes.push_back({out, {}});
          dr = in->disk_routes.end() - 1;
        }
        dr->chains.push_back(chain);
      }
      in->targets.push_back(std::move(target));
    }
    Labels l = {{"input", s.name}};
    in->records_in =
        env_.metrics->counter("ingestd_input_records_total", "Records accepted by the input", l);
    in->records_rejected = env_.metrics->counter("ingestd_input_rejected_records_total",
                                                 "Invalid records answered as rejected", l);
    in->records_unrouted = env_.metrics->counter(
        "ingestd_records_unrouted_total",
        "Valid records that matched no route: answered as unrouted, kept nowhere", l);
    in->records_refused =
        env_.metrics->counter("ingestd_input_refused_records_total",
                              "Records refused with 503 because a queue was full", l);
    in->requests_shed = env_.metrics->counter(
        "ingestd_input_shed_requests_total",
        "Requests refused with 503 before parsing because a queue was already full", l);
    if (!make_instance(in->inst, s, INGESTD_KIND_INPUT)) ok = false;
    InputRuntime *raw = in.get();
    Routing *routing = routing_.get();
    in->inst.emit = [routing, raw](std::string_view text) -> int {
      json::Value v;
      json::ParseError err;
      if (!json::parse(text, &v, &err) || !v.is_object()) return -1;
      std::vector<RecordPtr> recs;
      RecordPtr r = RecordPtr::make();
      r->root = std::move(v);
      r->tag = raw->tag;
      r->received_ms = wall_ms();
      recs.push_back(std::move(r));
      Routing::Result res = routing->deliver(*raw, recs, nullptr);
      return res == Routing::Result::Ok || res == Routing::Result::Pending ? 0 : -2;
    };
    ingest_->add_input(raw, s.options.get_string("listener"), s.options.get_string("path"));
    inputs_.push_back(std::move(in));
  }
  return ok;
}

bool Pipeline::init() {
  const config::Config &c = *cfg_;
  size_t max_memory = static_cast<size_t>(c.service.get_size("max_memory")) /
                      static_cast<size_t>(std::max(1, env_.worker_count));
  bool ok = init_outputs();
  ok = init_filters() && ok;
  std::vector<OutputRuntime *> outputs;
  for (auto &o : outputs_)
    outputs.push_back(o.get());
  routing_ = std::make_unique<Routing>(env_.loop, env_.log, max_memory, std::move(outputs));
  ingest_ = std::make_unique<HttpIngest>(env_.loop, env_.metrics, env_.worker_count, routing_.get(),
                                         env_.draining);
  for (const auto &l : c.listeners) {
    std::shared_ptr<const ApiKeys> keys;
    if (auto k = setup_->api_keys.find(l.name); k != setup_->api_keys.end()) keys = k->second;
    ingest_->add_listener(l, std::move(keys));
  }
  return init_inputs() && ok;
}

bool Pipeline::start() {
  for (auto &o : outputs_)
    if (!o->start()) return false;
  for (auto &f : filters_)
    if (!f->inst.start()) return false;
  for (auto &i : inputs_)
    if (!i->inst.start()) return false;
  if (env_.disk_logs && !env_.check_only) {
    disk_ = std::make_unique<DiskStore>(DiskEnv{env_.loop, env_.log, env_.metrics}, *cfg_,
                                        cfg_->service.get_string("storage_dir"), env_.worker,
                                        env_.generation);
    std::vector<InputRuntime *> inputs;
    for (auto &i : inputs_)
      inputs.push_back(i.get());
    if (!disk_->open(inputs, env_.worker == 0)) return false;
  }
  return true;
}

bool Pipeline::adopt(HandedRecord &&h) {
  json::Value v;
  json::ParseError err;
  if (!json::parse(h.json, &v, &err)) return false;  // it was serialised by us
  RecordPtr r = RecordPtr::make();
  r->root = std::move(v);
  r->tag = std::move(h.tag);
  r->received_ms = h.received_ms;
  return enqueue_to(h.output, std::move(r));
}

bool Pipeline::enqueue_to(std::string_view output, RecordPtr record) {
  for (auto &o : outputs_) {
    if (o->name() != output) continue;
    o->push(std::move(record), uv_now(env_.loop));
    return true;
  }
  return false;
}

uint64_t Pipeline::delivered(std::string_view output) const {
  for (const auto &o : outputs_)
    if (o->name() == output) return o->delivered();
  return 0;
}

void Pipeline::drain() {
  for (auto &o : outputs_)
    o->set_flushing();
}

bool Pipeline::idle() const {
  for (const auto &o : outputs_)
    if (!o->idle()) return false;
  return !disk_ || disk_->drained();
}

size_t Pipeline::pending_records() const {
  size_t n = 0;
  for (const auto &o : outputs_)
    n += o->pending_records();
  return n;
}

size_t Pipeline::stop(std::vector<HandedRecord> *hand_over) {
  if (stopped_) return 0;
  stopped_ = true;
  for (auto &i : inputs_)
    i->inst.stop();
  for (auto &f : filters_)
    f->inst.stop();
  size_t lost = 0;
  for (auto &o : outputs_) {
    o->halt();
    o->instance().stop();  // the plugin finishes or abandons its batches
    if (hand_over) {
      auto records = o->take_memory_records();
      for (auto &r : records)
        hand_over->push_back({o->name(), r->tag, r->received_ms, r->json()});
      if (!records.empty()) {
        env_.log->logf(LogLevel::Info, o->scope(),
                       "%zu queued records handed to the next generation", records.size());
      }
    }
    size_t n = o->abandon();
    if (n > 0) {
      env_.log->logf(LogLevel::Error, o->scope(),
                     "%zu records were not delivered before shutdown and are lost "
                     "(use buffer = \"disk\" to keep them across restarts)",
                     n);
    }
    lost += n;
    o->update_gauges();
  }
  if (disk_) disk_->close();
  for (auto &i : inputs_)
    i->inst.destroy();
  for (auto &f : filters_)
    f->inst.destroy();
  for (auto &o : outputs_) {
    o->instance().destroy();
    o->close_timer();
  }
  return lost;
}

}  // namespace ingestd
