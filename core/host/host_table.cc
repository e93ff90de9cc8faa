// The host functions plugins call: options, logging, timers, metrics,
// records and batches, HTTP calls and streams. Each casts the opaque handle back to the host type.
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdarg>
#include <cstddef>
#include <cstring>

#include "aws/chain.h"
#include "config/config.h"
#include "host/instance.h"
#include "net/stream.h"
#include "tls/tls.h"

namespace ingestd {
namespace {

using json::Kind;
using json::Value;

const Value *V(const ingestd_value_t *v) {
  return reinterpret_cast<const Value *>(v);
}
const ingestd_value_t *A(const Value *v) {
  return reinterpret_cast<const ingestd_value_t *>(v);
}

// ---- logging, loop, time
void host_log(ingestd_instance_t *inst, ingestd_log_level_type level, const char *fmt, ...) {
  Instance *in = Instance::from(inst);
  auto lvl = static_cast<LogLevel>(level);
  if (!in->logger || !in->logger->enabled(lvl)) return;
  va_list ap;
  va_start(ap, fmt);
  char buf[1024];
  int n = std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  std::string msg = in->log_prefix;
  msg.append(buf, std::min<size_t>(static_cast<size_t>(n), sizeof buf - 1));
  in->logger->log(lvl, in->scope, msg);
}

const char *host_instance_name(const ingestd_instance_t *inst) {
  return Instance::from(inst)->name.c_str();
}

void *host_uv_loop(ingestd_instance_t *inst) {
  return Instance::from(inst)->loop;
}

void on_plugin_timer(uv_timer_t *t) {
  auto *pt = static_cast<PluginTimer *>(t->data);
  pt->cb(pt->arg);  // may call timer_stop(pt): touch nothing after this
}

ingestd_timer_t *host_timer_start(ingestd_instance_t *inst, uint64_t timeout_ms, uint64_t repeat_ms,
                                  ingestd_timer_cb cb, void *arg) {
  Instance *in = Instance::from(inst);
  if (!in->loop || !cb) return nullptr;
  auto pt = std::make_unique<PluginTimer>();
  auto *h = new uv_timer_t;
  uv_timer_init(in->loop, h);
  h->data = pt.get();
  pt->handle = UvHandle<uv_timer_t>(h);
  pt->cb = cb;
  pt->arg = arg;
  pt->owner = in;
  uv_timer_start(h, on_plugin_timer, timeout_ms, repeat_ms);
  auto *raw = pt.get();
  in->timers.push_back(std::move(pt));
  return reinterpret_cast<ingestd_timer_t *>(raw);
}

void host_timer_restart(ingestd_timer_t *timer, uint64_t timeout_ms, uint64_t repeat_ms) {
  auto *pt = reinterpret_cast<PluginTimer *>(timer);
  if (!pt) return;
  uv_timer_start(pt->handle.get(), on_plugin_timer, timeout_ms, repeat_ms);
}

void host_timer_stop(ingestd_timer_t *timer) {
  auto *pt = reinterpret_cast<PluginTimer *>(timer);
  if (!pt) return;
  auto &v = pt->owner->timers;
  for (auto it = v.begin(); it != v.end(); ++it) {
    if (it->get() == pt) {
      v.erase(it);  // closes the handle; memory goes in its close callback
      return;
    }
  }
}

void on_soon(uv_idle_t *h) {
  auto *in = static_cast<Instance *>(h->data);
  std::vector<std::pair<ingestd_timer_cb, void *>> calls;
  calls.swap(in->soon);
  uv_idle_stop(h);  // a callback that calls call_soon starts it again
  for (auto [cb, arg] : calls)
    cb(arg);
}

int host_call_soon(ingestd_instance_t *inst, ingestd_timer_cb cb, void *arg) {
  Instance *in = Instance::from(inst);
  if (!in->loop || !cb) return -1;
  if (!in->soon_idle) {
    auto *h = new uv_idle_t;
    uv_idle_init(in->loop, h);
    h->data = in;
    in->soon_idle = UvHandle<uv_idle_t>(h);
  }
  in->soon.emplace_back(cb, arg);
  uv_idle_start(in->soon_idle.get(), on_soon);
  return 0;
}

uint64_t host_now_ms(ingestd_instance_t *inst) {
  Instance *in = Instance::from(inst);
  return in->loop ? uv_now(in->loop) : 0;
}

int64_t host_wall_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

// ---- metrics: a metric handle is the Counter* or Gauge* tagged in bit 0
ingestd_metric_t *host_counter(ingestd_instance_t *inst, const char *name, const char *help) {
  Instance *in = Instance::from(inst);
  if (!in->metrics || !name) return nullptr;
  Counter *c = in->metrics->counter(std::string("ingestd_") + name, help ? help : "", in->labels);
  return reinterpret_cast<ingestd_metric_t *>(c);
}

ingestd_metric_t *host_gauge(ingestd_instance_t *inst, const char *name, const char *help) {
  Instance *in = Instance::from(inst);
  if (!in->metrics || !name) return nullptr;
  Gauge *g = in->metrics->gauge(std::string("ingestd_") + name, help ? help : "", in->labels);
  return reinterpret_cast<ingestd_metric_t *>(reinterpret_cast<uintptr_t>(g) | 1u);
}

// The instance's labels, then the plugin's pairs; false (logged) for a bad
// or host-owned name.
bool plugin_labels(Instance *in, const char *name, const char *const *pairs, Labels *out) {
  *out = in->labels;
  for (const char *const *p = pairs; p && *p; p += 2) {
    std::string_view key = p[0];
    const char *value = p[1];
    bool valid = !key.empty() && !std::isdigit(static_cast<unsigned char>(key[0]));
    for (char c : key)
      valid = valid && (std::isalnum(static_cast<unsigned char>(c)) || c == '_');
    bool taken = key == "le" || std::any_of(out->begin(), out->end(),
                                            [&](const auto &l) { return l.first == key; });
    if (!valid || taken || !value) {
      if (in->logger)
        in->logger->log(LogLevel::Error, in->scope,
                        "metric " + std::string(name) + ": label \"" + std::string(key) + "\" " +
                            (!value  ? "has no value"
                             : taken ? "is set by the host"
                                     : "is not a label name"));
      return false;
    }
    out->emplace_back(std::string(key), value);
  }
  return true;
}

ingestd_metric_t *host_counter_labeled(ingestd_instance_t *inst, const char *name, const char *help,
                                       const char *const *labels) {
  Instance *in = Instance::from(inst);
  Labels l;
  if (!in->metrics || !name || !plugin_labels(in, name, labels, &l)) return nullptr;
  Counter *c = in->metrics->counter(std::string("ingestd_") + name, help ? help : "", l);
  return reinterpret_cast<ingestd_metric_t *>(c);
}

ingestd_metric_t *host_gauge_labeled(ingestd_instance_t *inst, const char *name, const char *help,
                                     const char *const *labels) {
  Instance *in = Instance::from(inst);
  Labels l;
  if (!in->metrics || !name || !plugin_labels(in, name, labels, &l)) return nullptr;
  Gauge *g = in->metrics->gauge(std::string("ingestd_") + name, help ? help : "", l);
  return reinterpret_cast<ingestd_metric_t *>(reinterpret_cast<uintptr_t>(g) | 1u);
}

void host_metric_add(ingestd_metric_t *m, double delta) {
  auto p = reinterpret_cast<uintptr_t>(m);
  if (!p) return;
  if (p & 1u) {
    reinterpret_cast<Gauge *>(p & ~uintptr_t{1})->add(delta);
  } else if (delta > 0) {
    reinterpret_cast<Counter *>(p)->add(static_cast<uint64_t>(delta));
  }
}

void host_metric_set(ingestd_metric_t *m, double value) {
  auto p = reinterpret_cast<uintptr_t>(m);
  if (p & 1u) reinterpret_cast<Gauge *>(p & ~uintptr_t{1})->set(value);
}

// ---- records
const char *host_record_tag(const ingestd_record_t *rec) {
  return Record::from(rec)->tag.c_str();
}
int64_t host_record_received_ms(const ingestd_record_t *rec) {
  return Record::from(rec)->received_ms;
}
const ingestd_value_t *host_record_root(const ingestd_record_t *rec) {
  return A(&Record::from(rec)->root);
}
const ingestd_value_t *host_record_get(const ingestd_record_t *rec, const char *path) {
  return path ? A(Record::from(rec)->root.find_path(path)) : nullptr;
}

// Setters refuse a record handed to an output: outputs of a fan-out share it,
// and C can cast batch_record's const away. Logged once per output.
bool writable(Record *r) {
  if (!r->read_only()) return true;
  Instance *in = r->read_only_by();
  if (in && in->logger && !in->warned_read_only) {
    in->warned_read_only = true;
    in->logger->logf(LogLevel::Warn, in->scope,
                     "%sa record setter was refused: records of a batch are read-only (other "
                     "outputs may send the same record); change a record_copy() instead (logged "
                     "once)",
                     in->log_prefix.c_str());
  }
  return false;
}

int set_path(ingestd_record_t *rec, const char *path, Value v) {
  if (!path || !*path) return -1;
  Record *r = Record::from(rec);
  if (!writable(r)) return -1;
  if (!r->root.set_path(path, std::move(v))) return -1;
  r->modified();
  return 0;
}
int host_record_set_string(ingestd_record_t *rec, const char *path, const char *s, size_t len) {
  return set_path(rec, path, Value::string(std::string_view(s ? s : "", s ? len : 0)));
}
int host_record_set_number(ingestd_record_t *rec, const char *path, double v) {
  return set_path(rec, path, Value::number(v));
}
int host_record_set_int(ingestd_record_t *rec, const char *path, int64_t v) {
  return set_path(rec, path, Value::integer(v));
}
int host_record_set_bool(ingestd_record_t *rec, const char *path, int v) {
  return set_path(rec, path, Value::boolean(v != 0));
}
int host_record_set_null(ingestd_record_t *rec, const char *path) {
  return set_path(rec, path, Value());
}
int host_record_set_json(ingestd_record_t *rec, const char *path, const char *text, size_t len) {
  if (!text) return -1;
  Value v;
  json::ParseError err;
  if (!json::parse(std::string_view(text, len), &v, &err)) return -1;
  return set_path(rec, path, std::move(v));
}
int host_record_remove(ingestd_record_t *rec, const char *path) {
  Record *r = Record::from(rec);
  if (!writable(r)) return -1;
  if (!path || !r->root.erase_path(path)) return 0;
  r->modified();
  return 1;
}
// Whether set_path(to) succeeds once `from` is erased: `to` is a valid path
// and each member on the way to it is an object or missing (created then),
// or is `from` itself (erased, then created as an object). Checked before
// anything changes, so a failed rename leaves the record exactly as it was.
bool can_rename(const Value &root, std::string_view from, std::string_view to) {
  if (to.empty() || to.front() == '.' || to.back() == '.' || to.find("..") != to.npos) return false;
  if (root.kind() != Kind::Object) return false;
  for (size_t dot = to.find('.'); dot != to.npos; dot = to.find('.', dot + 1)) {
    std::string_view prefix = to.substr(0, dot);
    if (prefix == from) return true;
    const Value *v = root.find_path(prefix);
    if (!v) return true;
    if (v->kind() != Kind::Object) return false;
  }
  return true;
}

int host_record_rename(ingestd_record_t *rec, const char *from, const char *to) {
  Record *r = Record::from(rec);
  if (!writable(r)) return -1;
  if (!from || !to) return 0;
  const Value *v = r->root.find_path(from);
  if (!v) return 0;
  if (!can_rename(r->root, from, to)) return -1;
  Value moved = std::move(*r->root.find_path(from));
  r->root.erase_path(from);
  r->modified();
  r->root.set_path(to, std::move(moved));  // cannot fail: can_rename checked every step
  return 1;
}

// A copy the plugin owns and may change; never read-only.
ingestd_record_t *host_record_copy(ingestd_instance_t *, const ingestd_record_t *rec) {
  if (!rec) return nullptr;
  const Record *src = Record::from(rec);
  auto *r = new Record;
  r->root = src->root;
  r->tag = src->tag;
  r->received_ms = src->received_ms;
  r->refs = 1;  // the plugin's reference, dropped by record_free
  r->plugin_copy = true;
  return r->abi();
}

void host_record_free(ingestd_record_t *rec) {
  Record *r = Record::from(rec);
  if (!r || !r->plugin_copy) return;  // not the plugin's to free
  if (--r->refs == 0) delete r;
}

const char *host_record_json(const ingestd_record_t *rec, size_t *len) {
  const std::string &s = Record::from(rec)->json();
  if (len) *len = s.size();
  return s.c_str();
}

// ---- values
ingestd_value_kind_type host_value_kind(const ingestd_value_t *v) {
  if (!v) return INGESTD_VALUE_NULL;
  switch (V(v)->kind()) {
    case Kind::Null:
      return INGESTD_VALUE_NULL;
    case Kind::Bool:
      return INGESTD_VALUE_BOOL;
    case Kind::Number:
      return INGESTD_VALUE_NUMBER;
    case Kind::String:
      return INGESTD_VALUE_STRING;
    case Kind::Array:
      return INGESTD_VALUE_ARRAY;
    case Kind::Object:
      return INGESTD_VALUE_OBJECT;
  }
  return INGESTD_VALUE_NULL;
}
int host_value_bool(const ingestd_value_t *v) {
  return v && V(v)->kind() == Kind::Bool && V(v)->as_bool();
}
double host_value_number(const ingestd_value_t *v) {
  return v && V(v)->kind() == Kind::Number ? V(v)->as_double() : 0.0;
}
const char *host_value_number_text(const ingestd_value_t *v, size_t *len) {
  if (!v || V(v)->kind() != Kind::Number) return nullptr;
  std::string_view t = V(v)->number_text();
  if (len) *len = t.size();
  return t.data();
}
const char *host_value_string(const ingestd_value_t *v, size_t *len) {
  if (!v || V(v)->kind() != Kind::String) return nullptr;
  std::string_view s = V(v)->as_string();
  if (len) *len = s.size();
  return s.data();
}
size_t host_value_size(const ingestd_value_t *v) {
  if (!v) return 0;
  Kind k = V(v)->kind();
  return (k == Kind::Array || k == Kind::Object) ? V(v)->size() : 0;
}
const ingestd_value_t *host_value_item(const ingestd_value_t *v, size_t i) {
  if (!v || i >= host_value_size(v)) return nullptr;
  return V(v)->kind() == Kind::Array ? A(&V(v)->at(i)) : A(&V(v)->value_at(i));
}
const char *host_value_key(const ingestd_value_t *v, size_t i, size_t *len) {
  if (!v || V(v)->kind() != Kind::Object || i >= V(v)->size()) return nullptr;
  std::string_view k = V(v)->key(i);
  if (len) *len = k.size();
  return k.data();
}
const ingestd_value_t *host_value_get(const ingestd_value_t *v, const char *key) {
  if (!v || !key || V(v)->kind() != Kind::Object) return nullptr;
  return A(V(v)->find(key));
}
const char *host_value_json(ingestd_instance_t *inst, const ingestd_value_t *v, size_t *len) {
  Instance *in = Instance::from(inst);
  in->scratch.clear();
  if (v) {
    json::serialize(*V(v), &in->scratch);
  } else {
    in->scratch = "null";
  }
  if (len) *len = in->scratch.size();
  return in->scratch.c_str();
}

int host_emit_json(ingestd_instance_t *inst, const char *text, size_t len) {
  Instance *in = Instance::from(inst);
  if (!in->emit || !text) return -1;
  return in->emit(std::string_view(text, len));
}

// ---- batches
size_t host_batch_size(const ingestd_batch_t *b) {
  return Batch::from(b)->records.size();
}
const ingestd_record_t *host_batch_record(ingestd_batch_t *b, size_t i) {
  Batch *bt = Batch::from(b);
  if (i >= bt->records.size()) return nullptr;
  Record *r = bt->records[i].get();
  r->set_read_only(bt->output);  // other outputs may hold the same record
  return r->abi();
}
void host_batch_retry_record(ingestd_batch_t *b, size_t i) {
  Batch *bt = Batch::from(b);
  if (i < bt->marks.size() && !bt->done) bt->marks[i] = Mark::Retry;
}
void host_batch_dead_letter(ingestd_batch_t *b, size_t i, const char *reason) {
  Batch *bt = Batch::from(b);
  if (i >= bt->marks.size() || bt->done) return;
  bt->marks[i] = Mark::DeadLetter;
  bt->reasons[i] = reason ? reason : "dead-lettered by the output";
}
void host_batch_done(ingestd_batch_t *b, ingestd_batch_status_type status) {
  Batch *bt = Batch::from(b);
  if (bt->done) return;  // a second batch_done is ignored, never a double free
  bt->done = true;
  auto cb = std::move(bt->on_done);
  if (cb) cb(*bt, status);  // may free the batch
}

// ---- HTTP client and AWS credentials
ingestd_http_call_t *refuse_http(Instance *in, const char *why) {
  if (in->logger)
    in->logger->logf(LogLevel::Warn, in->scope, "%shttp_request refused: %s",
                     in->log_prefix.c_str(), why);
  return nullptr;
}

// The plugin's request as this host's struct: fields past the size the
// plugin was built with read as 0 (struct_size 0 is the ABI 1.0 size).
ingestd_http_request_t whole_request(const ingestd_http_request_t *req) {
  ingestd_http_request_t r{};
  size_t n = req->struct_size ? req->struct_size : offsetof(ingestd_http_request_t, body_lent);
  std::memcpy(&r, req, std::min<size_t>(n, sizeof r));
  return r;
}

ingestd_http_call_t *host_http_request(ingestd_instance_t *inst,
                                       const ingestd_http_request_t *plugin_req,
                                       ingestd_http_done_cb cb, void *arg) {
  Instance *in = Instance::from(inst);
  if (!plugin_req || !cb) return refuse_http(in, "no request or no callback");
  const ingestd_http_request_t whole = whole_request(plugin_req);
  const ingestd_http_request_t *req = &whole;
  if (!in->http) return refuse_http(in, "no HTTP client in this process");
  try {
    HttpRequest r;
    r.method = req->method ? req->method : "";
    r.url = req->url ? req->url : "";
    for (size_t i = 0; req->headers && i < req->header_count; ++i) {
      const ingestd_http_header_t &h = req->headers[i];
      if (h.name) r.headers.emplace_back(h.name, h.value ? h.value : "");
    }
    if (req->body && req->body_len) {
      if (req->body_lent) {
        r.lent_body = std::string_view(req->body, req->body_len);
      } else {
        r.body.assign(req->body, req->body_len);
      }
    }
    r.timeout_ms = req->timeout_ms ? req->timeout_ms : 30000;
    if (req->ca_file) r.ca_file = req->ca_file;
    if (req->client_cert) r.client_cert = req->client_cert;
    if (req->client_key) r.client_key = req->client_key;
    r.insecure = req->insecure != 0;
    if (req->aws && req->aws_service && *req->aws_service) {
      aws::Chain *chain = aws::Chain::from(req->aws);
      std::string region = req->aws_region ? req->aws_region : "";
      if (region.empty()) region = chain->config().region;
      if (region.empty()) return refuse_http(in, "aws_region is needed to sign the request");
      r.prepare = chain->signer(req->aws_service, region);
    }
    std::string why;
    HttpCall *call = in->http->start(
        std::move(r),
        [cb, arg](const HttpResponse &resp) {
          std::vector<ingestd_http_header_t> hs;
          hs.reserve(resp.headers.size());
          for (const auto &[k, v] : resp.headers)
            hs.push_back({k.c_str(), v.c_str()});
          ingestd_http_response_t out{};
          out.status = resp.status;
          out.error = resp.error.empty() ? nullptr : resp.error.c_str();
          out.body = resp.body.c_str();
          out.body_len = resp.body.size();
          out.headers = hs.data();
          out.header_count = hs.size();
          out.elapsed_ms = resp.elapsed_ms;
          cb(arg, &out);
        },
        &in->http_calls, &why);
    if (!call) return refuse_http(in, why.c_str());
    return reinterpret_cast<ingestd_http_call_t *>(call);
  } catch (const std::exception &e) {
    return refuse_http(in, e.what());
  }
}

void host_http_cancel(ingestd_http_call_t *call) {
  auto *c = reinterpret_cast<HttpCall *>(call);
  if (c) c->client()->cancel(c);
}

ingestd_aws_t *host_aws_credentials(ingestd_instance_t *inst, const ingestd_aws_config_t *cfg) {
  Instance *in = Instance::from(inst);
  if (!cfg) return nullptr;
  if (!in->aws) {
    if (in->logger)
      in->logger->log(LogLevel::Error, in->scope, "aws_credentials: no credentials service");
    return nullptr;
  }
  try {
    return in->aws->get(*cfg)->abi();
  } catch (const std::exception &e) {
    if (in->logger) in->logger->logf(LogLevel::Error, in->scope, "aws_credentials: %s", e.what());
    return nullptr;
  }
}

const char *host_aws_credentials_source(ingestd_aws_t *a) {
  return a ? aws::Chain::from(a)->source() : nullptr;
}

// ---- byte streams
// The plugin's config as this host's struct: fields past the size the plugin
// was built with read as 0; struct_size 0 means the 1.2 struct.
ingestd_stream_config_t whole_stream_config(const ingestd_stream_config_t *cfg) {
  ingestd_stream_config_t c{};
  size_t n = cfg->struct_size ? cfg->struct_size : sizeof c;
  std::memcpy(&c, cfg, std::min<size_t>(n, sizeof c));
  return c;
}

// The ABI config as a net::StreamConfig, its TLS context built (files read
// now: local files, read once per stream_open). false with *why.
bool stream_config(const ingestd_stream_config_t *plugin_cfg, net::StreamConfig *out,
                   std::string *why,
                   std::map<std::string, std::shared_ptr<const tls::Context>> *cache = nullptr) {
  if (!plugin_cfg) {
    *why = "no config";
    return false;
  }
  const ingestd_stream_config_t c = whole_stream_config(plugin_cfg);
  net::StreamConfig sc;
  if (c.host) sc.host = c.host;
  sc.port = c.port;
  if (c.unix_path) sc.unix_path = c.unix_path;
  if (c.connect_timeout_ms) sc.connect_timeout_ms = c.connect_timeout_ms;
  if (c.write_limit) sc.write_limit = c.write_limit;
  if (c.server_name) sc.server_name = c.server_name;
  if (c.tls && !sc.unix_path.empty()) {
    *why = "TLS is not available over a unix socket (unix_path " + sc.unix_path + ")";
    return false;
  }
  *why = net::check_address(sc);
  if (!why->empty()) return false;
  if (c.tls) {
    tls::ClientConfig tc;
    if (c.ca_file) tc.ca_file = c.ca_file;
    tc.verify = !c.tls_verify_off;
    if (c.client_cert) tc.client_cert = c.client_cert;
    if (c.client_key) tc.client_key = c.client_key;
    std::string key =
        tc.ca_file + '\n' + (tc.verify ? "1" : "0") + '\n' + tc.client_cert + '\n' + tc.client_key;
    if (cache) {
      auto it = cache->find(key);
      if (it != cache->end()) sc.tls = it->second;
    }
    if (!sc.tls) {
      std::string err;
      sc.tls = tls::Context::client(tc, &err);
      if (!sc.tls) {
        *why = "TLS: " + err;
        return false;
      }
      if (cache) (*cache)[key] = sc.tls;
    }
  }
  *out = std::move(sc);
  return true;
}

void log_stream(Instance *in, const char *what, const std::string &why) {
  if (in->logger)
    in->logger->logf(LogLevel::Error, in->scope, "%s%s: %s", in->log_prefix.c_str(), what,
                     why.c_str());
}

ingestd_stream_t *host_stream_open(ingestd_instance_t *inst, const ingestd_stream_config_t *cfg,
                                   const ingestd_stream_callbacks_t *cb, void *arg) {
  Instance *in = Instance::from(inst);
  try {
    if (!cb) {
      log_stream(in, "stream_open refused", "no callbacks");
      return nullptr;
    }
    if (!in->loop) {
      log_stream(in, "stream_open refused", "no loop in this process");
      return nullptr;
    }
    net::StreamConfig sc;
    std::string why;
    if (!stream_config(cfg, &sc, &why, &in->stream_tls)) {
      log_stream(in, "stream_open refused", why);
      return nullptr;
    }
    auto ps = std::make_unique<PluginStream>();
    PluginStream *raw = ps.get();
    raw->owner = in;
    raw->arg = arg;
    size_t n = cb->struct_size ? cb->struct_size : sizeof raw->cb;
    std::memcpy(&raw->cb, cb, std::min<size_t>(n, sizeof raw->cb));
    net::StreamCallbacks scb;
    scb.on_connected = [raw] {
      if (raw->cb.on_connected) raw->cb.on_connected(raw->arg);
    };
    scb.on_data = [raw](const char *data, size_t len) {
      if (raw->cb.on_data) raw->cb.on_data(raw->arg, data, len);
    };
    scb.on_drain = [raw] {
      if (raw->cb.on_drain) raw->cb.on_drain(raw->arg);
    };
    scb.on_closed = [raw](const std::string &reason) {
      raw->stream = nullptr;  // it frees itself after this returns
      raw->in_on_closed = true;
      if (raw->cb.on_closed) raw->cb.on_closed(raw->arg, reason.c_str());
      auto &v = raw->owner->streams;
      for (auto it = v.begin(); it != v.end(); ++it) {
        if (it->get() == raw) {
          v.erase(it);  // frees raw (and this closure's captures' target)
          return;
        }
      }
    };
    raw->stream = net::Stream::open(in->loop, std::move(sc), std::move(scb), &why);
    if (!raw->stream) {
      log_stream(in, "stream_open refused", why);
      return nullptr;
    }
    in->streams.push_back(std::move(ps));
    return raw->abi();
  } catch (const std::exception &e) {
    log_stream(in, "stream_open refused", e.what());
    return nullptr;
  }
}

int host_stream_write(ingestd_stream_t *s, const char *data, size_t len) {
  PluginStream *ps = PluginStream::from(s);
  if (!ps || !ps->stream || (len && !data)) return INGESTD_ERROR;
  try {
    switch (ps->stream->write(std::string_view(data ? data : "", len))) {
      case net::Stream::Write::kOk:
        return INGESTD_OK;
      case net::Stream::Write::kFull:
        return INGESTD_FULL;
      case net::Stream::Write::kClosed:
        return INGESTD_ERROR;
    }
  } catch (const std::exception &) {
  }
  return INGESTD_ERROR;
}

size_t host_stream_pending(const ingestd_stream_t *s) {
  const PluginStream *ps = PluginStream::from(s);
  return ps && ps->stream ? ps->stream->pending() : 0;
}

void host_stream_close(ingestd_stream_t *s) {
  PluginStream *ps = PluginStream::from(s);
  if (!ps || ps->in_on_closed) return;  // from on_closed: freed when it returns
  auto &v = ps->owner->streams;
  for (auto it = v.begin(); it != v.end(); ++it) {
    if (it->get() == ps) {
      v.erase(it);  // ~PluginStream closes the stream
      return;
    }
  }
}

int host_stream_check(ingestd_instance_t *inst, const ingestd_stream_config_t *cfg) {
  Instance *in = Instance::from(inst);
  try {
    net::StreamConfig sc;
    std::string why;
    if (!stream_config(cfg, &sc, &why)) {
      log_stream(in, "stream", why);
      return INGESTD_ERROR;
    }
    return INGESTD_OK;
  } catch (const std::exception &e) {
    log_stream(in, "stream", e.what());
    return INGESTD_ERROR;
  }
}

const ingestd_host_t kHost = {
    sizeof(ingestd_host_t),
    INGESTD_ABI_MAJOR,
    INGESTD_ABI_MINOR,
    config::has_option,
    config::option_string,
    config::option_int,
    config::option_size,
    config::option_double,
    config::option_bool,
    config::option_list_size,
    config::option_list_item,
    config::option_list_list_size,
    config::option_list_list_item,
    config::option_map_key,
    host_log,
    host_instance_name,
    host_uv_loop,
    host_timer_start,
    host_timer_restart,
    host_timer_stop,
    host_now_ms,
    host_wall_ms,
    host_counter,
    host_gauge,
    host_metric_add,
    host_metric_set,
    host_record_tag,
    host_record_received_ms,
    host_record_root,
    host_record_get,
    host_record_set_string,
    host_record_set_number,
    host_record_set_int,
    host_record_set_bool,
    host_record_set_null,
    host_record_set_json,
    host_record_remove,
    host_record_rename,
    host_record_json,
    host_value_kind,
    host_value_bool,
    host_value_number,
    host_value_number_text,
    host_value_string,
    host_value_size,
    host_value_item,
    host_value_key,
    host_value_get,
    host_value_json,
    host_emit_json,
    host_batch_size,
    host_batch_record,
    host_batch_retry_record,
    host_batch_dead_letter,
    host_batch_done,
    host_http_request,
    host_http_cancel,
    host_aws_credentials,
    host_aws_credentials_source,
    host_call_soon,
    host_record_copy,
    host_record_free,
    host_stream_open,
    host_stream_write,
    host_stream_pending,
    host_stream_close,
    host_stream_check,
    host_counter_labeled,
    host_gauge_labeled,
};

}  // namespace

const ingestd_host_t *host_table() {
  return &kHost;
}

PluginStream::~PluginStream() {
  if (stream) stream->close();
}

// ---- instance lifecycle
bool Instance::init() {
  void *d = nullptr;
  int rc = plugin->on_init(host_table(), abi(), config, &d);
  if (rc != 0) {
    // The same teardown as destroy(): what on_init started (HTTP calls,
    // timers, call_soon) must not run after on_destroy freed its data.
    data = d;
    initialized = d != nullptr;
    destroy();
    return false;
  }
  data = d;
  initialized = true;
  return true;
}

bool Instance::start() {
  if (!initialized) return false;
  if (plugin->on_start && plugin->on_start(data) != 0) return false;
  started = true;
  return true;
}

void Instance::stop() {
  if (started && plugin->on_stop) plugin->on_stop(data);
  started = false;
  http_calls.close();  // callbacks run now, while the plugin's data still exists
}

void Instance::destroy() {
  stop();
  if (initialized && plugin->on_destroy) plugin->on_destroy(data);
  initialized = false;
  data = nullptr;
  timers.clear();
  streams.clear();  // closed: no stream callback after on_destroy
  stream_tls.clear();
  soon.clear();
  soon_idle.reset();
}

}  // namespace ingestd
