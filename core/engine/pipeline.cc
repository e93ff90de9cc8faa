// The request path and the output pump of one worker's pipeline.
#include "engine/pipeline.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "engine/disk_buffer.h"
#include "host/plugin_loader.h"

namespace ingestd {

namespace {

int64_t wall_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

void append_json_string(std::string *out, std::string_view s) {
  json::serialize(json::Value::string(s), out);
}

http::Response json_error(int status, std::string_view message) {
  http::Response r;
  r.status = status;
  r.body = "{\"error\":";
  append_json_string(&r.body, message);
  r.body += "}";
  return r;
}

// At most this many rejected records are itemised in an answer.
constexpr size_t kMaxListedRejections = 100;

}  // namespace

// ---- OutputRuntime

void OutputRuntime::setup_metrics(MetricsRegistry *m) {
  Labels l = {{"output", inst.name}};
  records_out = m->counter("ingestd_output_records_total", "Records delivered by the output", l);
  records_retried =
      m->counter("ingestd_output_retried_records_total", "Records sent again after a failure", l);
  records_dead = m->counter("ingestd_output_dead_letter_records_total",
                            "Records written to the dead-letter file", l);
  batches = m->counter("ingestd_output_batches_total", "Batches handed to the output", l);
  queue_records = m->gauge("ingestd_output_queue_records", "Records queued or in flight", l);
  queue_bytes =
      m->gauge("ingestd_output_queue_bytes", "JSON bytes of the records queued or in flight", l);
  queue_memory = m->gauge("ingestd_output_queue_memory_bytes",
                          "Memory the records queued or in flight take (max_memory)", l);
  batch_latency = m->histogram("ingestd_output_batch_duration_seconds",
                               "Time from handing a batch to the output until it finished", l);
  if (disk) {
    disk_bytes_gauge = m->gauge("ingestd_output_disk_bytes",
                                "Bytes of the disk buffer logs the output reads (this worker)", l);
  }
}

void OutputRuntime::update_gauges() {
  queue_records->set(static_cast<double>(queue_.total_records()));
  queue_bytes->set(static_cast<double>(queue_.total_bytes()));
  queue_memory->set(static_cast<double>(memory_));
  if (disk_bytes_gauge) disk_bytes_gauge->set(static_cast<double>(disk_bytes()));
}

bool OutputRuntime::window_room(size_t *free_bytes) const {
  if (stopped_ || queue_.total_records() >= window_records_ ||
      queue_.total_bytes() >= window_bytes_)
    return false;
  *free_bytes = window_bytes_ - queue_.total_bytes();
  return true;
}

uint64_t OutputRuntime::disk_bytes() const {
  uint64_t n = 0;
  for (const DiskReader *r : readers)
    n += r->log()->segments().disk_bytes();
  return n;
}

void OutputRuntime::push_from_disk(RecordPtr r, DiskReader *reader, uint64_t seq) {
  origin_[r.get()] = {reader, seq};
  push(std::move(r), uv_now(pipeline_->env_.loop));
}

void OutputRuntime::pump() {
  if (stopped_) return;
  if (pumping_) {
    again_ = true;  // a batch finished inside on_flush: loop instead of recursing
    return;
  }
  pumping_ = true;
  uv_loop_t *loop = pipeline_->env_.loop;
  do {
    again_ = false;
    while (!stopped_) {
      auto b = queue_.take_batch(uv_now(loop));
      if (!b) break;
      dispatch(*b);
    }
  } while (again_ && !stopped_);
  pumping_ = false;
  update_gauges();
  schedule();
}

void OutputRuntime::schedule() {
  if (stopped_) return;
  uv_loop_t *loop = pipeline_->env_.loop;
  uint64_t now = uv_now(loop);
  auto when = queue_.next_wakeup(now);
  if (!when) return;  // a timer still armed fires once and finds nothing: cheaper than stopping
  // Keep an armed timer that fires no later than needed: firing early only
  // pumps and schedules again, and re-arming on every request is not free.
  if (timer_.active() && timer_due_ <= *when) return;
  timer_due_ = *when;
  timer_.start(*when > now ? *when - now : 0, 0, [this] { pump(); });
}

void OutputRuntime::dispatch(const OutputQueue<RecordPtr>::Batch &qb) {
  auto batch = std::make_unique<Batch>();
  Batch *b = batch.get();
  b->id = qb.id;
  b->output = &inst;  // logs a refused setter on its read-only records
  b->records.assign(qb.items.begin(), qb.items.end());
  b->marks.assign(qb.size(), Mark::None);
  b->reasons.resize(qb.size());
  b->started_ms = uv_now(pipeline_->env_.loop);
  b->on_done = [this](Batch &done, ingestd_batch_status_type status) { finish(done, status); };
  inflight_[b->id] = std::move(batch);
  batches->add();
  inst.plugin->on_flush(inst.data, b->abi());
}

void OutputRuntime::finish(Batch &b, ingestd_batch_status_type status) {
  auto it = inflight_.find(b.id);
  if (it == inflight_.end()) {
    pipeline_->env_.log->log(LogLevel::Warn, inst.scope, "batch_done for an unknown batch ignored");
    return;
  }
  std::unique_ptr<Batch> owned = std::move(it->second);
  inflight_.erase(it);
  uv_loop_t *loop = pipeline_->env_.loop;
  uint64_t now = uv_now(loop);
  batch_latency->observe(static_cast<double>(now - b.started_ms));

  OutputQueue<RecordPtr>::Completion c;
  if (status == INGESTD_BATCH_RETRY) {
    c = queue_.retry_all(b.id, now, rng_);
  } else {
    std::vector<ItemOutcome> outcomes(b.marks.size(), ItemOutcome::Delivered);
    for (size_t i = 0; i < b.marks.size(); ++i) {
      if (b.marks[i] == Mark::Retry) outcomes[i] = ItemOutcome::Retry;
      if (b.marks[i] == Mark::DeadLetter) outcomes[i] = ItemOutcome::DeadLetter;
    }
    c = queue_.complete(b.id, outcomes, now, rng_);
  }
  records_out->add(c.delivered.size());
  records_retried->add(c.retried);
  // Records read from a disk log are acked there once delivered or dead-lettered.
  auto acked = [this](const RecordPtr &r) {
    memory_ -= std::min(memory_, r->memory());
    if (origin_.empty()) return;
    auto it = origin_.find(r.get());
    if (it == origin_.end()) return;
    it->second.first->done(it->second.second);
    origin_.erase(it);
  };
  for (auto &r : c.delivered)
    acked(r);
  for (auto &d : c.dead_lettered) {
    std::string reason = d.cause == DeadLetterCause::RetriesExhausted
                             ? "retries exhausted after " + std::to_string(d.attempts) + " attempts"
                             : b.reasons[d.index];
    pipeline_->env_.dead_letter->write(inst.name, d.item->tag, reason, d.item->json());
    records_dead->add();
    acked(d.item);
  }
  // The cursor moves after every batch: a crash repeats at most the batches
  // in flight. Then the freed window is filled again.
  for (DiskReader *r : readers)
    r->persist();
  for (DiskReader *r : readers)
    r->fill();
  if (c.retried > 0) {
    pipeline_->env_.log->logf(LogLevel::Debug, inst.scope, "%zu records will be retried",
                              c.retried);
  }
  pipeline_->releaser_.release(owned->records);
  pump();
}

size_t OutputRuntime::abandon() {
  stopped_ = true;
  timer_.stop();
  // Records read from a disk log stay there for the next start.
  size_t lost = queue_.total_records() - origin_.size();
  origin_.clear();
  memory_ = 0;
  // Batches the plugin still holds after on_stop: their callbacks must not run.
  for (auto &[id, b] : inflight_)
    b->on_done = nullptr;
  inflight_.clear();
  return lost;
}

// ---- Pipeline

Pipeline::Pipeline(std::shared_ptr<const Setup> setup, PipelineEnv env)
    : setup_(std::move(setup)), cfg_(setup_->config.get()), env_(env), releaser_(env_.loop) {
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

bool Pipeline::init() {
  const config::Config &c = *cfg_;
  storage_dir_ = c.service.get_string("storage_dir");
  max_memory_ = static_cast<size_t>(c.service.get_size("max_memory")) /
                static_cast<size_t>(std::max(1, env_.worker_count));
  std::map<std::string, size_t> filter_index, output_index;
  bool ok = true;
  for (const auto &s : c.outputs) {
    QueueLimits l;
    const auto &o = s.options;
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
    auto out = std::make_unique<OutputRuntime>(this, l);
    out->disk = o.get_string("buffer") == "disk";
    out->max_disk = o.get_size("max_disk") / static_cast<uint64_t>(std::max(1, env_.worker_count));
    output_index[s.name] = outputs_.size();
    if (!make_instance(out->inst, s, INGESTD_KIND_OUTPUT)) ok = false;
    out->setup_metrics(env_.metrics);
    out->set_window(l);
    out->set_max_memory(static_cast<size_t>(o.get_size("max_memory")));
    outputs_.push_back(std::move(out));
  }
  for (const auto &s : c.filters) {
    auto f = std::make_unique<FilterRuntime>();
    filter_index[s.name] = filters_.size();
    if (!make_instance(f->inst, s, INGESTD_KIND_FILTER)) ok = false;
    f->dropped = env_.metrics->counter("ingestd_filter_dropped_records_total",
                                       "Records a filter dropped", {{"filter", s.name}});
    filters_.push_back(std::move(f));
  }
  std::vector<RouteSpec> specs;
  for (size_t r = 0; r < c.routes.size(); ++r) {
    const auto &route = c.routes[r];
    RouteSpec spec;
    spec.match = route.match;
    for (const auto &f : route.filters)
      spec.filters.push_back(filter_index.at(f));
    for (const auto &o : route.to)
      spec.outputs.push_back(output_index.at(o));
    specs.push_back(std::move(spec));
    route_records_.push_back(
        env_.metrics->counter("ingestd_route_records_total", "Records that took the route",
                              {{"route", std::to_string(r)}, {"match", route.match}}));
  }
  for (const auto &l : c.listeners) {
    ListenerRuntime &lr = listeners_[l.name];
    lr.name = l.name;
    const auto &o = l.options;
    if (auto k = setup_->api_keys.find(l.name); k != setup_->api_keys.end()) lr.keys = k->second;
    lr.key_header = o.get_string("api_key_header");
    lr.source_field = o.get_string("source_field");
    if (o.has("client_address_field"))
      lr.client_address_field = o.get_string("client_address_field");
    double workers = static_cast<double>(std::max(1, env_.worker_count));
    lr.rate_limit = o.get_double("rate_limit") / workers;
    double burst = static_cast<double>(o.get_int("rate_burst"));
    lr.rate_burst = (burst > 0 ? burst : o.get_double("rate_limit")) / workers;
    Labels ll = {{"listener", l.name}};
    lr.unauthorized =
        env_.metrics->counter("ingestd_http_unauthorized_total",
                              "Requests refused with 401 (missing or unknown API key)", ll);
    lr.rate_limited = env_.metrics->counter(
        "ingestd_http_rate_limited_total", "Requests refused with 429 (API key over its rate)", ll);
    lr.other_paths.labels = {{"listener", l.name}, {"path", "other"}};
  }
  for (const auto &s : c.inputs) {
    auto in = std::make_unique<InputRuntime>();
    in->listener = s.options.get_string("listener");
    in->path = s.options.get_string("path");
    in->tag = s.options.has("tag") ? s.options.get_string("tag") : s.name;
    in->targets = plan_routes(specs, in->tag);
    // Disk outputs are fed from the input's log, not from the request.
    for (auto &t : in->targets) {
      std::vector<size_t> memory;
      for (size_t o : t.outputs) {
        if (!outputs_[o]->disk) {
          memory.push_back(o);
          continue;
        }
        auto dr = std::find_if(in->disk_routes.begin(), in->disk_routes.end(),
                               [o](const auto &d) { return d.output == o; });
        if (dr == in->disk_routes.end()) {
          in->disk_routes.push_back({o, {}});
          dr = in->disk_routes.end() - 1;
        }
        dr->chains.push_back(t.filters);
      }
      t.outputs = std::move(memory);
    }
    Labels l = {{"input", s.name}};
    in->records_in =
        env_.metrics->counter("ingestd_input_records_total", "Records accepted by the input", l);
    in->records_rejected = env_.metrics->counter("ingestd_input_rejected_records_total",
                                                 "Invalid records answered as rejected", l);
    in->records_unrouted = env_.metrics->counter("ingestd_input_unrouted_records_total",
                                                 "Accepted records that matched no route", l);
    in->records_refused =
        env_.metrics->counter("ingestd_input_refused_records_total",
                              "Records refused with 503 because a queue was full", l);
    in->requests_shed = env_.metrics->counter(
        "ingestd_input_shed_requests_total",
        "Requests refused with 503 before parsing because a queue was already full", l);
    if (!make_instance(in->inst, s, INGESTD_KIND_INPUT)) ok = false;
    InputRuntime *raw = in.get();
    in->inst.emit = [this, raw](std::string_view text) -> int {
      json::Value v;
      json::ParseError err;
      if (!json::parse(text, &v, &err) || !v.is_object()) return -1;
      std::vector<RecordPtr> recs;
      RecordPtr r = RecordPtr::make();
      r->root = std::move(v);
      r->tag = raw->tag;
      r->received_ms = wall_ms();
      recs.push_back(std::move(r));
      IngestResult res = ingest(*raw, recs, nullptr);
      return res == IngestResult::Ok || res == IngestResult::Pending ? 0 : -2;
    };
    raw->http.labels = {{"listener", raw->listener}, {"path", raw->path}};
    listeners_[raw->listener].by_path[raw->path] = raw;
    inputs_.push_back(std::move(in));
  }
  return ok;
}

bool Pipeline::start() {
  for (auto &o : outputs_) {
    o->start_timer(env_.loop);
    if (!o->inst.start()) return false;
  }
  for (auto &f : filters_)
    if (!f->inst.start()) return false;
  for (auto &i : inputs_)
    if (!i->inst.start()) return false;
  if (env_.disk_logs && !env_.check_only) {
    if (!open_own_logs()) return false;
    adopt_logs();
    if (env_.worker == 0) warn_unread_logs();
    adopt_timer_.init(env_.loop);
    adopt_timer_.start(1000, 1000, [this] {
      retire_drained_logs(false);
      adopt_logs();
    });
  }
  return true;
}

bool Pipeline::run_filters(const std::vector<size_t> &chain, RecordPtr &r) {
  for (size_t f : chain) {
    FilterRuntime &fr = *filters_[f];
    if (fr.inst.plugin->on_filter(fr.inst.data, r->abi()) == INGESTD_FILTER_DROP) {
      fr.dropped->add();
      return false;
    }
  }
  return true;
}

void Pipeline::push_memory(std::vector<std::pair<size_t, RecordPtr>> &deliveries) {
  if (deliveries.empty()) return;
  uint64_t now = uv_now(env_.loop);
  std::vector<bool> touched(outputs_.size(), false);
  for (auto &[o, r] : deliveries) {
    outputs_[o]->push(std::move(r), now);
    touched[o] = true;
  }
  deliveries.clear();
  for (size_t o = 0; o < outputs_.size(); ++o)
    if (touched[o]) outputs_[o]->pump();
}

Pipeline::IngestResult Pipeline::ingest(InputRuntime &input, std::vector<RecordPtr> &records,
                                        Reply *reply) {
  deliveries_.clear();
  if (input.targets.empty()) {
    input.records_unrouted->add(records.size());
    if (!input.warned_unrouted && !records.empty()) {
      input.warned_unrouted = true;
      env_.log->logf(LogLevel::Warn, input.inst.scope,
                     "records tagged '%s' match no route; they are counted in "
                     "ingestd_input_unrouted_records_total and not kept (logged once)",
                     input.tag.c_str());
    }
    return IngestResult::Ok;
  }
  const bool single_target = input.targets.size() == 1;
  for (auto &rec : records) {
    for (const auto &t : input.targets) {
      if (t.outputs.empty()) {
        // Only disk outputs: their filters run when they read the log.
        route_records_[t.route]->add();
        continue;
      }
      RecordPtr r = rec;
      if (!t.filters.empty()) {
        // Filters modify the record: other routes must not see their changes.
        if (!single_target) r = rec.clone();
        if (!run_filters(t.filters, r)) continue;
      }
      route_records_[t.route]->add();
      for (size_t o : t.outputs)
        deliveries_.emplace_back(o, r);
    }
  }
  out_records_.assign(outputs_.size(), 0);
  out_bytes_.assign(outputs_.size(), 0);
  for (auto &[o, r] : deliveries_) {
    out_records_[o] += 1;
    out_bytes_[o] += r->memory();
  }
  size_t held = 0, adding = 0;
  for (size_t o = 0; o < outputs_.size(); ++o) {
    held += outputs_[o]->memory();
    adding += out_bytes_[o];
  }
  bool over_global = held + adding > max_memory_;
  for (size_t o = 0; o < outputs_.size(); ++o) {
    if (over_global ||
        (out_records_[o] && !outputs_[o]->can_accept(out_records_[o], out_bytes_[o]))) {
      deliveries_.clear();
      input.records_refused->add(records.size());
      return IngestResult::Full;
    }
  }
  if (input.log) {
    disk_payloads_.clear();
    uint64_t disk_adding = 0;
    for (auto &rec : records) {
      disk_payloads_.push_back(encode_disk_record(rec->received_ms, rec->json()));
      disk_adding += disk_payloads_.back().size() + 32;  // + frame header
    }
    bool refuse = input.log->segments().broken();
    for (const auto &dr : input.disk_routes) {
      OutputRuntime &out = *outputs_[dr.output];
      uint64_t used = out.disk_bytes();
      if (used + disk_adding > out.max_disk) {
        if (!out.warned_disk_full) {
          out.warned_disk_full = true;
          env_.log->logf(LogLevel::Warn, out.inst.scope,
                         "max_disk reached (%llu of %llu bytes on this worker): requests get "
                         "503 until the output catches up",
                         static_cast<unsigned long long>(used),
                         static_cast<unsigned long long>(out.max_disk));
        }
        refuse = true;
      } else {
        out.warned_disk_full = false;
      }
    }
    if (refuse) {
      deliveries_.clear();
      input.records_refused->add(records.size());
      return IngestResult::DiskFull;
    }
    CommitWaiter w;
    for (const auto &p : disk_payloads_)
      w.seq = input.log->append(p);  // bodies are far below the 256 MiB frame limit
    w.memory = std::move(deliveries_);
    deliveries_.clear();
    if (reply) {
      w.has_responder = true;
      w.responder = std::move(reply->responder);
      w.response = std::move(reply->response);
    }
    input.log->wait(std::move(w));
    return IngestResult::Pending;
  }
  push_memory(deliveries_);
  return IngestResult::Ok;
}

bool Pipeline::room_for(const InputRuntime &input) {
  size_t held = 0;
  for (const auto &o : outputs_)
    held += o->memory();
  if (held >= max_memory_) return false;
  for (const auto &t : input.targets) {
    for (size_t o : t.outputs)
      if (!outputs_[o]->can_accept(1, 0)) return false;
  }
  for (const auto &dr : input.disk_routes) {
    const OutputRuntime &out = *outputs_[dr.output];
    if (out.disk_bytes() >= out.max_disk) return false;
  }
  return true;
}

void PathMetrics::observe(MetricsRegistry *m, int status, size_t bytes, uint64_t latency_ms) {
  if (!bytes_in) {
    bytes_in = m->counter("ingestd_http_request_bytes_total", "Request bytes received", labels);
    latency = m->histogram("ingestd_http_request_duration_seconds",
                           "Time from a request's first byte to its answer", labels);
  }
  Counter *&c = by_status[status];
  if (!c) {
    Labels l = labels;
    l.emplace_back("code", std::to_string(status));
    c = m->counter("ingestd_http_requests_total", "HTTP answers by listener, path and status", l);
  }
  c->add();
  bytes_in->add(bytes);
  latency->observe(static_cast<double>(latency_ms));
}

void Pipeline::observe(const std::string &listener, const http::Request *req, int status,
                       size_t bytes_in, uint64_t latency_ms) {
  auto l = listeners_.find(listener);
  if (l == listeners_.end()) return;
  PathMetrics *pm = &l->second.other_paths;
  if (req) {
    if (auto it = l->second.by_path.find(req->path()); it != l->second.by_path.end())
      pm = &it->second->http;
  }
  pm->observe(env_.metrics, status, bytes_in, latency_ms);
}

bool Pipeline::admit(ListenerRuntime &l, http::Request &req, http::Responder &responder,
                     const std::string **source) {
  if (!l.keys) return true;
  auto key = req.header(l.key_header);
  if (!key || key->empty()) {
    l.unauthorized->add();
    responder.respond(
        json_error(401, "missing API key: send it in the " + l.key_header + " header"));
    return false;
  }
  *source = l.keys->find(*key);
  if (!*source) {
    l.unauthorized->add();
    responder.respond(json_error(401, "invalid API key"));
    return false;
  }
  return true;
}

void Pipeline::handle(const std::string &listener, http::Request &req, http::Responder responder) {
  auto lit = listeners_.find(listener);
  if (lit == listeners_.end()) {
    responder.respond(json_error(500, "listener not configured"));
    return;
  }
  ListenerRuntime &lr = lit->second;
  const std::string *source = nullptr;
  if (!admit(lr, req, responder, &source)) return;
  auto it = lr.by_path.find(req.path());
  if (it == lr.by_path.end()) {
    responder.respond(json_error(404, "no input at " + std::string(req.path())));
    return;
  }
  InputRuntime &input = *it->second;
  if (req.method() == "OPTIONS") {
    http::Response r;
    r.status = 204;
    r.headers.emplace_back("Allow", "POST, OPTIONS");
    responder.respond(std::move(r));
    return;
  }
  if (req.method() != "POST") {
    http::Response r = json_error(405, "method not allowed: use POST");
    r.headers.emplace_back("Allow", "POST, OPTIONS");
    responder.respond(std::move(r));
    return;
  }
  // Shed load before parsing: under overload a body that cannot be queued
  // costs nothing but this check (a malformed one then gets 503, not 400).
  if (!room_for(input)) {
    input.requests_shed->add();
    http::Response full = json_error(503, "queue full, retry later");
    full.headers.emplace_back("Retry-After", "1");
    responder.respond(std::move(full));
    return;
  }
  json::BodyResult body = json::parse_body(req.body());
  if (!body.ok) {
    responder.respond(json_error(
        400, body.items.empty() ? "empty body: send a JSON object, an array of objects or NDJSON"
                                : "invalid JSON: " + body.error));
    input.records_rejected->add(1);
    return;
  }
  if (source && lr.rate_limit > 0) {
    auto b = lr.buckets.find(*source);
    if (b == lr.buckets.end()) {
      b = lr.buckets.emplace(*source, TokenBucket(lr.rate_limit, lr.rate_burst, uv_now(env_.loop)))
              .first;
    }
    uint64_t retry_after = 1;
    if (!b->second.take(static_cast<double>(body.items.size()), uv_now(env_.loop), &retry_after)) {
      lr.rate_limited->add();
      http::Response r = json_error(429, "rate limit of this API key exceeded");
      r.headers.emplace_back("Retry-After", std::to_string(retry_after));
      responder.respond(std::move(r));
      return;
    }
  }
  int64_t now = wall_ms();
  std::vector<RecordPtr> accepted;
  accepted.reserve(body.items.size());
  std::string rejected;
  size_t rejected_count = 0;
  auto reject = [&](size_t index, const char *field, std::string_view reason) {
    if (++rejected_count > kMaxListedRejections) return;
    if (!rejected.empty()) rejected += ',';
    rejected += "{\"index\":" + std::to_string(index);
    if (field) {
      rejected += ",\"field\":";
      append_json_string(&rejected, field);
    }
    rejected += ",\"reason\":";
    append_json_string(&rejected, reason);
    rejected += '}';
  };
  for (auto &item : body.items) {
    if (!item.error.empty()) {
      reject(item.index, nullptr, item.error);
      continue;
    }
    RecordPtr r = RecordPtr::make();
    r->root = std::move(item.value);
    r->tag = input.tag;
    r->received_ms = now;
    ingestd_reject_t why{nullptr, nullptr};
    if (input.inst.plugin->on_input_record(input.inst.data, r->abi(), &why) != 0) {
      reject(item.index, why.field, why.reason ? why.reason : "rejected by the input");
      continue;
    }
    // Set by the server, after the input: a client cannot forge them.
    if (source && !lr.source_field.empty()) {
      r->root.set_path(lr.source_field, json::Value::string(*source));
      r->modified();
    }
    if (!lr.client_address_field.empty()) {
      r->root.set_path(lr.client_address_field, json::Value::string(req.client_address()));
      r->modified();
    }
    accepted.push_back(std::move(r));
  }
  input.records_rejected->add(rejected_count);
  size_t n = accepted.size();
  Reply reply{std::move(responder), {}};
  http::Response &r = reply.response;
  r.status = (n == 0 && rejected_count > 0) ? 400 : 200;
  r.body = "{\"accepted\":" + std::to_string(n);
  if (rejected_count > 0) {
    r.body += ",\"rejected_count\":" + std::to_string(rejected_count) + ",\"rejected\":[" +
              rejected + "]";
  }
  r.body += "}";
  IngestResult res = n > 0 ? ingest(input, accepted, &reply) : IngestResult::Ok;
  if (res == IngestResult::Full || res == IngestResult::DiskFull) {
    std::string why =
        res == IngestResult::Full ? "queue full, retry later" : "disk buffer full, retry later";
    if (res == IngestResult::DiskFull && input.log && input.log->segments().broken())
      why = "disk buffer cannot be written: " + input.log->segments().broken_reason();
    http::Response full = json_error(503, why);
    full.headers.emplace_back("Retry-After", "1");
    reply.responder.respond(std::move(full));
    return;
  }
  input.records_in->add(n);
  if (res == IngestResult::Ok) reply.responder.respond(std::move(reply.response));
}

// ---- disk logs

namespace {

// Log options of an input: the strictest fsync of the disk outputs reading
// it, and segments small enough that retention can free max_disk in steps.
SegmentLogOptions log_options(const config::Config &c, const InputRuntime &in,
                              const std::vector<std::unique_ptr<OutputRuntime>> &outputs) {
  SegmentLogOptions o;
  o.fsync = FsyncMode::Never;
  o.fsync_interval_ms = UINT64_MAX;
  uint64_t smallest_disk = UINT64_MAX;
  for (const auto &dr : in.disk_routes) {
    const OutputRuntime &out = *outputs[dr.output];
    const config::Section *s = c.find_output(out.inst.name);
    const std::string &mode = s->options.get_string("fsync");
    if (mode == "always") o.fsync = FsyncMode::Always;
    if (mode == "interval" && o.fsync != FsyncMode::Always) o.fsync = FsyncMode::Interval;
    o.fsync_interval_ms = std::min(
        o.fsync_interval_ms, static_cast<uint64_t>(s->options.get_duration_ms("fsync_interval")));
    smallest_disk = std::min(smallest_disk, out.max_disk);
  }
  if (o.fsync_interval_ms == UINT64_MAX) o.fsync_interval_ms = 1000;
  // Syncs run beside the commits: no request waits for an interval fdatasync.
  o.background_sync = o.fsync == FsyncMode::Interval;
  o.segment_bytes = std::clamp<uint64_t>(smallest_disk / 8, uint64_t{4} << 10, uint64_t{64} << 20);
  o.new_reader_start = ReaderStart::Oldest;
  return o;
}

// Opens dir + ".lock" and takes it; an invalid fd when another worker or
// process holds it.
UniqueFd lock_log(const std::string &dir, std::string *error) {
  std::string path = dir + ".lock";
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!fd.valid()) {
    *error = path + ": " + std::strerror(errno);
    return fd;
  }
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK) *error = path + ": flock: " + std::strerror(errno);
    return UniqueFd();
  }
  return fd;
}

}  // namespace

bool Pipeline::open_log(InputRuntime *in, const std::string &dir, UniqueFd lock, bool own) {
  SegmentLogOptions o = log_options(*cfg_, *in, outputs_);
  o.dir = dir;
  RecoveryReport report;
  std::string err;
  auto seg = SegmentLog::open(o, &report, &err);
  if (!seg) {
    env_.log->logf(LogLevel::Error, in->inst.scope, "disk buffer: %s", err.c_str());
    return false;
  }
  if (!report.clean()) {
    env_.log->logf(LogLevel::Warn, in->inst.scope,
                   "disk buffer %s was damaged; recovered %llu records:\n%s", dir.c_str(),
                   static_cast<unsigned long long>(report.records), report.summary().c_str());
  }
  auto log = std::make_unique<DiskLog>(this, in, dir, std::move(seg), std::move(lock), own);
  for (const auto &dr : in->disk_routes) {
    OutputRuntime *out = outputs_[dr.output].get();
    Reader &reader = log->segments().reader(out->inst.name);
    auto r = std::make_unique<DiskReader>(log.get(), out, dr.chains, &reader);
    out->readers.push_back(r.get());
    if (!own && reader.read_position() < log->segments().committed_through()) {
      env_.log->logf(LogLevel::Info, out->inst.scope,
                     "resuming disk buffer %s after record %llu (%s); records delivered after "
                     "the last saved position are sent again",
                     dir.c_str(), static_cast<unsigned long long>(reader.read_position()),
                     reader.open_note().c_str());
    }
    log->readers().push_back(std::move(r));
  }
  if (own) in->log = log.get();
  DiskLog *raw = log.get();
  logs_.push_back(std::move(log));
  raw->fill_all();
  return true;
}

bool Pipeline::open_own_logs() {
  for (auto &in : inputs_) {
    if (in->disk_routes.empty()) continue;
    std::string parent = storage_dir_ + "/" + in->inst.name;
    std::error_code ec;
    std::filesystem::create_directories(parent, ec);
    if (ec) {
      env_.log->logf(LogLevel::Error, in->inst.scope, "disk buffer: cannot create %s: %s",
                     parent.c_str(), ec.message().c_str());
      return false;
    }
    // Never reused: a new directory per worker, generation and start.
    std::string dir = parent + "/w" + std::to_string(env_.worker) + "-" +
                      std::to_string(wall_ms()) + "-" + std::to_string(::getpid()) + "-g" +
                      std::to_string(env_.generation);
    std::string err;
    UniqueFd lock = lock_log(dir, &err);
    if (!lock.valid()) {
      env_.log->logf(LogLevel::Error, in->inst.scope, "disk buffer: cannot lock %s: %s",
                     dir.c_str(), err.empty() ? "held by another worker" : err.c_str());
      return false;
    }
    if (!open_log(in.get(), dir, std::move(lock), true)) return false;
  }
  return true;
}

void Pipeline::adopt_logs() {
  for (auto &in : inputs_) {
    if (in->disk_routes.empty()) continue;
    std::string parent = storage_dir_ + "/" + in->inst.name;
    std::error_code ec;
    std::vector<std::string> dirs;
    for (const auto &e : std::filesystem::directory_iterator(parent, ec)) {
      std::error_code ec2;
      if (e.is_directory(ec2)) dirs.push_back(e.path().string());
    }
    std::sort(dirs.begin(), dirs.end());
    for (const auto &dir : dirs) {
      bool open =
          std::any_of(logs_.begin(), logs_.end(), [&](const auto &l) { return l->dir() == dir; });
      if (open) continue;
      std::string err;
      UniqueFd lock = lock_log(dir, &err);
      if (!lock.valid()) {
        if (!err.empty())
          env_.log->logf(LogLevel::Warn, in->inst.scope, "disk buffer: %s", err.c_str());
        continue;
      }
      // Removed by its last reader between the listing and the lock.
      std::error_code ec3;
      if (!std::filesystem::is_directory(dir, ec3)) continue;
      open_log(in.get(), dir, std::move(lock), false);
    }
  }
}

void Pipeline::warn_unread_logs() {
  std::error_code ec;
  for (const auto &e : std::filesystem::directory_iterator(storage_dir_, ec)) {
    std::error_code ec2;
    if (!e.is_directory(ec2)) continue;
    std::string name = e.path().filename().string();
    auto in = std::find_if(inputs_.begin(), inputs_.end(),
                           [&](const auto &i) { return i->inst.name == name; });
    if (in != inputs_.end() && !(*in)->disk_routes.empty()) continue;
    bool has_logs = false;
    for (const auto &sub : std::filesystem::directory_iterator(e.path(), ec2))
      has_logs = has_logs || sub.is_directory(ec2);
    if (!has_logs) continue;
    env_.log->logf(LogLevel::Warn, "main",
                   "disk buffer logs in %s are not read: no input '%s' routes to a disk "
                   "output now; they are kept until one does",
                   e.path().c_str(), name.c_str());
  }
}

void Pipeline::retire_drained_logs(bool include_own) {
  for (auto it = logs_.begin(); it != logs_.end();) {
    DiskLog &l = **it;
    if ((l.own() && !include_own) || !l.drained()) {
      ++it;
      continue;
    }
    for (auto &r : l.readers()) {
      auto &v = r->output()->readers;
      v.erase(std::remove(v.begin(), v.end(), r.get()), v.end());
    }
    if (l.input()->log == &l) l.input()->log = nullptr;
    l.close();
    std::string dir = l.dir();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    if (ec) {
      env_.log->logf(LogLevel::Warn, l.input()->inst.scope, "disk buffer: cannot remove %s: %s",
                     dir.c_str(), ec.message().c_str());
    } else {
      ::unlink((dir + ".lock").c_str());  // still locked by us: nobody adopts it meanwhile
    }
    it = logs_.erase(it);
  }
}

bool Pipeline::enqueue_to(std::string_view output, RecordPtr record) {
  for (auto &o : outputs_) {
    if (o->inst.name != output) continue;
    o->push(std::move(record), uv_now(env_.loop));
    o->pump();
    return true;
  }
  return false;
}

uint64_t Pipeline::delivered(std::string_view output) const {
  for (const auto &o : outputs_)
    if (o->inst.name == output) return o->records_out->value();
  return 0;
}

void Pipeline::drain() {
  for (auto &o : outputs_)
    o->set_flushing();
}

bool Pipeline::idle() const {
  for (const auto &o : outputs_)
    if (!o->idle()) return false;
  for (const auto &l : logs_)
    if (!l->drained()) return false;
  return true;
}

size_t Pipeline::pending_records() const {
  size_t n = 0;
  for (const auto &o : outputs_)
    n += o->pending_records();
  return n;
}

size_t Pipeline::stop() {
  if (stopped_) return 0;
  stopped_ = true;
  for (auto &i : inputs_)
    i->inst.stop();
  for (auto &f : filters_)
    f->inst.stop();
  adopt_timer_.stop();
  size_t lost = 0;
  for (auto &o : outputs_) {
    o->halt();
    o->inst.stop();  // the plugin finishes or abandons its batches
    size_t n = o->abandon();
    if (n > 0) {
      env_.log->logf(LogLevel::Error, o->inst.scope,
                     "%zu records were not delivered before shutdown and are lost "
                     "(use buffer = \"disk\" to keep them across restarts)",
                     n);
    }
    lost += n;
    o->update_gauges();
  }
  for (auto &l : logs_) {
    uint64_t kept = l->close();
    if (kept > 0) {
      env_.log->logf(LogLevel::Info, l->input()->inst.scope,
                     "%llu records stay in the disk buffer %s for the next start",
                     static_cast<unsigned long long>(kept), l->dir().c_str());
    }
  }
  retire_drained_logs(true);
  for (auto &i : inputs_)
    i->inst.destroy();
  for (auto &f : filters_)
    f->inst.destroy();
  for (auto &o : outputs_) {
    o->inst.destroy();
    o->close_timer();
  }
  return lost;
}

}  // namespace ingestd
