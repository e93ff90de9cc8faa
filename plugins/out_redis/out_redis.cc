// out_redis: records to Redis as commands built from templates, pipelined
// over one connection per worker (the host's stream service, optionally TLS:
// redis_connection.h).
//
// A batch is encoded into one buffer of RESP commands and queued whole, so it
// leaves in one write; replies are matched to commands in order. Batches wait inside the plugin
// (bounded by the core's max_inflight batches) while there is no ready connection or while
// max_inflight_commands are unanswered; they are sent as soon as the connection is back. A batch
// whose connection drops before every reply arrived, or that gets no reply within command_timeout,
// is answered INGESTD_BATCH_RETRY: the host resends it after its backoff, so delivery is at least
// once (templates should be idempotent; if_newer makes positions so).
#include <hiredis/hiredis.h>

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <deque>
#include <list>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/backoff.h"
#include "common/log_limiter.h"
#include "common/options.h"
#include "common/output.h"
#include "ingestd/plugin.h"
#include "redis_connection.h"
#include "redis_protocol.h"
#include "redis_templates.h"

namespace {

using namespace ingestd::redis;

constexpr uint32_t kSecret = INGESTD_OPT_SECRET;
constexpr double kNoMin = 1, kNoMax = 0;

const ingestd_option_t kOptions[] = {
    {"address", INGESTD_OPT_STRING, "127.0.0.1:6379", 0, nullptr, kNoMin, kNoMax,
     "Redis server: \"host:port\", \"[v6]:port\", or a unix socket path (\"/run/redis.sock\" or "
     "\"unix:/run/redis.sock\")"},
    {"username", INGESTD_OPT_STRING, nullptr, 0, nullptr, kNoMin, kNoMax,
     "ACL user for AUTH username password (needs password)"},
    {"password", INGESTD_OPT_STRING, nullptr, kSecret, nullptr, kNoMin, kNoMax,
     "Password sent with AUTH after every connect"},
    {"db", INGESTD_OPT_INT, "0", 0, nullptr, 0, 1000000,
     "Database number selected with SELECT after every connect"},
    {"connect_timeout", INGESTD_OPT_DURATION, "2s", 0, nullptr, 1, 3600000,
     "Longest time to resolve, connect, finish TLS and AUTH/SELECT/SCRIPT LOAD before trying "
     "again"},
    {"tls", INGESTD_OPT_BOOL, "false", 0, nullptr, kNoMin, kNoMax,
     "Speak TLS to the server (ElastiCache in-transit encryption); not with a unix socket"},
    {"ca_file", INGESTD_OPT_STRING, nullptr, 0, nullptr, kNoMin, kNoMax,
     "PEM file of the CAs that sign the server's certificate; default: the system's store"},
    {"tls_verify", INGESTD_OPT_BOOL, "true", 0, nullptr, kNoMin, kNoMax,
     "Check the server's certificate chain and name; false accepts any certificate"},
    {"client_cert", INGESTD_OPT_STRING, nullptr, 0, nullptr, kNoMin, kNoMax,
     "PEM client certificate shown to a server that asks for one (needs client_key)"},
    {"client_key", INGESTD_OPT_STRING, nullptr, kSecret, nullptr, kNoMin, kNoMax,
     "PEM private key of client_cert"},
    {"tls_server_name", INGESTD_OPT_STRING, nullptr, 0, nullptr, kNoMin, kNoMax,
     "Name sent as SNI and checked against the certificate; default: the host of address"},
    {"command_timeout", INGESTD_OPT_DURATION, "5s", 0, nullptr, 1, 3600000,
     "Longest wait for a batch's replies; then the connection is dropped and the batch retried"},
    {"commands", INGESTD_OPT_STRING_LIST_LIST, nullptr, INGESTD_OPT_REQUIRED, nullptr, kNoMin,
     kNoMax,
     "Command templates run for each record: [[\"GEOADD\", \"riders\", \"{lon}\", \"{lat}\", "
     "\"{device_id}\"]]; {field}, {a.b}, {_json}, {{ and }} for braces"},
    {"ttl", INGESTD_OPT_DURATION, "0ms", 0, nullptr, 0, 3153600000000.0,
     "Expiry set on the keys the commands write (EXPIRE, or PEXPIRE below a second); 0 keeps "
     "them"},
    {"key_prefix", INGESTD_OPT_STRING, nullptr, 0, nullptr, kNoMin, kNoMax,
     "Text put in front of every key argument of the commands; none when unset"},
    {"if_newer", INGESTD_OPT_STRING, nullptr, 0, nullptr, kNoMin, kNoMax,
     "Field (e.g. \"ts\") that orders records: a record runs its commands only if its value is "
     "greater than the newest stored under if_newer_key"},
    {"if_newer_key", INGESTD_OPT_STRING, nullptr, 0, nullptr, kNoMin, kNoMax,
     "Key template holding the newest if_newer value per entity, e.g. \"rider:{device_id}:ts\"; "
     "default: the first command key that names a field, plus \":if_newer\""},
    {"max_inflight_commands", INGESTD_OPT_INT, "20000", 0, nullptr, 1, 10000000,
     "Most commands sent and not yet answered on the connection; further batches wait"},
    // Core rows with defaults for live data: small, frequent, pipelined batches.
    {"batch_max_records", INGESTD_OPT_INT, "1000", 0, nullptr, kNoMin, kNoMax,
     "Most records per batch (one pipelined write); redis default 1000"},
    {"flush_interval", INGESTD_OPT_DURATION, "50ms", 0, nullptr, kNoMin, kNoMax,
     "Longest time a record waits for its batch to fill; redis default 50ms"},
    {"max_inflight", INGESTD_OPT_INT, "4", 0, nullptr, kNoMin, kNoMax,
     "Batches pipelined at the same time on the connection; redis default 4"},
};

struct RedisOutput;
struct PendingBatch;

// One command of a batch.
struct Cmd {
  PendingBatch *batch;
  uint32_t record;
  int tmpl;  // template index, kScript, kExpire or kEval
  const char *data;
  size_t len;
};
constexpr int kEval = -3;  // an EVALSHA resent as EVAL after NOSCRIPT

enum RecordState : uint8_t { kDelivered = 0, kRetry = 1, kDead = 2 };

struct PendingBatch {
  RedisOutput *out = nullptr;
  ingestd_batch_t *batch = nullptr;
  bool encoded = false;
  bool sent = false;
  bool lost = false;  // a reply will never come: the whole batch is retried
  uint64_t sent_ms = 0;
  size_t outstanding = 0;
  size_t replies_ok = 0, replies_err = 0, replies_nil = 0;  // counted per batch, not per reply
  std::string resp;
  std::vector<Cmd> cmds;   // fixed once sent: RedisOutput::expected points into it
  std::deque<Cmd> resent;  // EVALs after NOSCRIPT; a deque keeps pointers valid
  std::deque<std::string> resend_text;
  std::vector<uint8_t> state;
  std::unordered_map<uint32_t, std::string> reasons;
  std::list<std::unique_ptr<PendingBatch>>::iterator self;

  // Batches are recycled: their buffers keep their capacity, so a steady
  // stream does not grow and shrink the heap on every batch.
  void reset() {
    batch = nullptr;
    encoded = sent = lost = false;
    sent_ms = 0;
    outstanding = 0;
    replies_ok = replies_err = replies_nil = 0;
    resp.clear();
    cmds.clear();
    resent.clear();
    resend_text.clear();
    state.clear();
    reasons.clear();
  }
};

// A record as the template encoder sees it.
class HostRecord final : public FieldSource {
 public:
  HostRecord(const ingestd_host_t *h, ingestd_instance_t *inst, const ingestd_record_t *rec)
      : h_(h), inst_(inst), rec_(rec) {}

  Kind append_field(const std::string &path, std::string *out) override {
    // A top-level field (the usual case) is one member lookup on the root;
    // record_get would first check and split the path.
    const ingestd_value_t *v;
    if (path.find('.') == std::string::npos) {
      if (!root_) root_ = h_->record_root(rec_);
      v = h_->value_get(root_, path.c_str());
    } else {
      v = h_->record_get(rec_, path.c_str());
    }
    if (!v) return Kind::Missing;
    size_t len = 0;
    switch (h_->value_kind(v)) {
      case INGESTD_VALUE_NULL:
        return Kind::Null;
      case INGESTD_VALUE_BOOL:
        *out += h_->value_bool(v) ? "true" : "false";
        return Kind::Bool;
      case INGESTD_VALUE_NUMBER: {
        const char *t = h_->value_number_text(v, &len);
        out->append(t, len);
        return Kind::Number;
      }
      case INGESTD_VALUE_STRING: {
        const char *s = h_->value_string(v, &len);
        out->append(s, len);
        return Kind::String;
      }
      case INGESTD_VALUE_ARRAY:
      case INGESTD_VALUE_OBJECT: {
        const char *j = h_->value_json(inst_, v, &len);
        out->append(j, len);
        return Kind::Json;
      }
    }
    return Kind::Missing;
  }

  void append_record_json(std::string *out) override {
    size_t len = 0;
    const char *j = h_->record_json(rec_, &len);
    out->append(j, len);
  }

 private:
  const ingestd_host_t *h_;
  ingestd_instance_t *inst_;
  const ingestd_record_t *rec_;
  const ingestd_value_t *root_ = nullptr;
};

enum class State { Down, Connecting, Ready };

// Replies still to come, in the order the commands were written: a run of
// one batch's commands, or (batch == nullptr) one handshake reply.
struct Expected {
  PendingBatch *batch;
  Cmd *next;
  Cmd *end;
};

// The instance's options, read once in on_init (read_options).
struct RedisOptions {
  std::string address;
  Target target;  // address, connect_timeout and TLS
  std::string username, password;
  int64_t db = 0;
  uint64_t connect_timeout_ms = 2000, command_timeout_ms = 5000;
  uint64_t retry_initial_ms = 100, retry_max_ms = 30000;
  size_t max_commands = 20000;
  EncoderConfig enc;
};

// One output instance: constructed by on_init, start() / stop() from the
// hooks of the same names, destroyed by on_destroy.
struct RedisOutput final : ingestd::common::Instance, Connection::Handler {
  RedisOutput(const ingestd_host_t *host, ingestd_instance_t *inst, RedisOptions options);
  ~RedisOutput();
  int start();
  void stop();

  const RedisOptions opt;
  RecordEncoder encoder;

  // Connection.
  Connection *conn = nullptr;
  std::deque<Expected> expected;
  bool in_reply = false;      // inside on_reply: a drop fails `expected` after it
  bool fail_pending = false;  // ... and this says it has to
  State state = State::Down;
  int handshake_left = 0;
  std::vector<const char *> handshake_steps;
  uint64_t connect_started_ms = 0;
  // Reconnects: capped exponential with full jitter (every worker lost the
  // same server at once); seeded per instance in on_init.
  ingestd::common::Retry reconnect;
  bool attempted = false;
  bool failure_logged = false;
  ingestd::common::LogLimiter failure_log{60000};  // one failure line a minute
  bool ever_ready = false;
  std::string script_sha;

  // Work.
  std::list<std::unique_ptr<PendingBatch>> batches;  // all held batches, oldest first
  std::vector<std::unique_ptr<PendingBatch>> spare;  // finished ones, for reuse
  std::deque<PendingBatch *> waiting;                // not sent yet, in order
  size_t inflight_commands = 0;
  bool pumping = false, pump_again = false;
  bool stopping = false;  // on_stop ran: batches are answered, nothing is sent
  bool detached = false;  // on_destroy: the host's batches are gone
  bool retry_logged = false;
  ingestd::common::LogLimiter dead_log{60000};

  ingestd_timer_t *tick = nullptr;
  ingestd_timer_t *reconnect_timer = nullptr;

  ingestd_metric_t *m_sent = nullptr, *m_ok = nullptr, *m_err = nullptr, *m_nil = nullptr;
  ingestd_metric_t *m_reconnects = nullptr, *m_inflight = nullptr, *m_waiting = nullptr;
  ingestd_metric_t *m_connected = nullptr, *m_dead = nullptr, *m_reloads = nullptr;

  // Scratch reused across records and batches.
  std::vector<CommandExtent> extents;
  std::vector<std::string> ttl_keys;
  std::string reason;
  std::unordered_map<std::string, uint32_t> expire_keys;
  struct Extent {
    uint32_t record;
    int tmpl;
    size_t offset, len;
  };
  std::vector<Extent> all_extents;

  uint64_t now() { return host->now_ms(inst); }

  void connect();
  void on_connected() override {}
  void on_reply(redisReply *r) override;
  void on_closed(const std::string &why) override;
  void on_handshake_reply(redisReply *r);
  void ready();
  void drop(const std::string &why, bool error = false);
  void fail_expected();
  void connection_lost(const std::string &why, bool error);
  uint64_t schedule_reconnect();
  void on_tick();

  void flush(ingestd_batch_t *b);
  void pump();
  void encode(PendingBatch *b);
  void send(PendingBatch *b);
  void on_command_reply(Cmd *cmd, redisReply *r);
  void on_error_reply(Cmd *cmd, std::string_view msg);
  void mark(PendingBatch *b, uint32_t record, RecordState s, std::string why = {});
  void finish(PendingBatch *b);
  void update_gauges();
};

// ---- connection ------------------------------------------------------------

void RedisOutput::connect() {
  if (stopping || conn) return;
  if (attempted) host->metric_add(m_reconnects, 1);
  attempted = true;
  state = State::Connecting;
  connect_started_ms = now();
  std::string err;
  Connection *c = Connection::open(host, inst, opt.target, this, &err);
  if (!c) {
    connection_lost(err, false);
    return;
  }
  conn = c;
  // The handshake is queued now and written once connected; batches wait
  // until its last reply.
  handshake_steps.clear();
  std::string cmds;
  auto command = [&](std::initializer_list<std::string_view> argv, const char *step) {
    resp_array(&cmds, argv.size());
    for (std::string_view a : argv)
      resp_bulk(&cmds, a);
    handshake_steps.push_back(step);
    expected.push_back(Expected{nullptr, nullptr, nullptr});
  };
  if (!opt.password.empty()) {
    if (!opt.username.empty()) {
      command({"AUTH", opt.username, opt.password}, "AUTH");
    } else {
      command({"AUTH", opt.password}, "AUTH");
    }
  }
  if (opt.db != 0) command({"SELECT", std::to_string(opt.db)}, "SELECT");
  if (!opt.enc.if_newer.empty()) command({"SCRIPT", "LOAD", kNewerScript}, "SCRIPT LOAD");
  if (handshake_steps.empty()) command({"PING"}, "PING");
  handshake_left = static_cast<int>(handshake_steps.size());
  if (!conn->write(cmds.data(), cmds.size())) drop("out of memory", true);
}

void RedisOutput::on_reply(redisReply *r) {
  if (expected.empty()) {
    drop(r->type == REDIS_REPLY_ERROR ? std::string(r->str, r->len)
                                      : std::string("a reply to no command"),
         r->type != REDIS_REPLY_ERROR);
    return;
  }
  Expected &e = expected.front();
  if (!e.batch) {
    expected.pop_front();
    on_handshake_reply(r);
    return;
  }
  Cmd *cmd = e.next++;
  if (e.next == e.end) expected.pop_front();
  in_reply = true;
  on_command_reply(cmd, r);
  in_reply = false;
  if (fail_pending) fail_expected();
}

void RedisOutput::on_closed(const std::string &why) {
  conn = nullptr;
  connection_lost(why, false);
  fail_expected();
}

void RedisOutput::on_handshake_reply(redisReply *r) {
  if (handshake_left <= 0) return;
  const char *step = handshake_steps[handshake_steps.size() - static_cast<size_t>(handshake_left)];
  if (r->type == REDIS_REPLY_ERROR) {
    drop(std::string(step) + " failed: " + std::string(r->str, r->len), true);
    return;
  }
  if (std::strcmp(step, "SCRIPT LOAD") == 0 && r->type == REDIS_REPLY_STRING) {
    script_sha.assign(r->str, r->len);
  }
  if (--handshake_left == 0) ready();
}

void RedisOutput::ready() {
  state = State::Ready;
  reconnect.succeeded();
  host->metric_set(m_connected, 1);
  if (failure_logged || !ever_ready) {
    host->log(inst, INGESTD_LOG_INFO, "connected to %s", opt.address.c_str());
  }
  failure_logged = false;
  failure_log.reset();
  ever_ready = true;
  pump();
}

// Closes the connection and goes down; the commands without a reply make
// their batches retried.
void RedisOutput::drop(const std::string &why, bool error) {
  Connection *c = conn;
  if (!c) return;
  conn = nullptr;
  c->close();
  connection_lost(why, error);
  fail_expected();
}

// Every command still waiting for a reply gets none: its batch is retried
// (lost). Inside on_reply this waits until the reply is handled, so that the
// batch being answered is not finished twice.
void RedisOutput::fail_expected() {
  if (in_reply) {
    fail_pending = true;
    return;
  }
  fail_pending = false;
  std::deque<Expected> gone;
  gone.swap(expected);
  for (const Expected &e : gone) {
    PendingBatch *b = e.batch;
    if (!b) continue;
    // Counts only: finish() recycles the batch, and its commands with it.
    for (auto n = e.end - e.next; n > 0; --n) {
      --b->outstanding;
      --inflight_commands;
      b->lost = true;
      if (b->outstanding == 0) finish(b);
    }
  }
}

void RedisOutput::connection_lost(const std::string &why, bool error) {
  bool was_ready = state == State::Ready;
  state = State::Down;
  handshake_left = 0;
  host->metric_set(m_connected, 0);
  if (stopping) return;
  uint64_t delay = schedule_reconnect();
  ingestd_log_level_type level = error ? INGESTD_LOG_ERROR : INGESTD_LOG_WARN;
  auto ms = static_cast<unsigned long long>(delay);
  if (was_ready) {
    host->log(inst, level,
              "connection to %s lost: %s; reconnecting in %llu ms, records wait in the queue",
              opt.address.c_str(), why.c_str(), ms);
    failure_log.reset();  // the first failure to reconnect is logged too
    failure_logged = true;
    return;
  }
  // The stream's reason may name the address already ("connect to
  // 10.0.0.5:6379: connection refused"): say it once.
  std::string_view reason = why;
  if (reason.starts_with("connect to ")) {
    if (size_t colon = reason.find(": "); colon != std::string_view::npos) {
      reason.remove_prefix(colon + 2);
    }
  }
  int n = static_cast<int>(reason.size());
  if (failure_log.allow(now())) {
    unsigned long long skipped = failure_log.skipped();
    host->log(inst, level, "connect to %s failed: %.*s; retrying in %llu ms%s", opt.address.c_str(),
              n, reason.data(), ms,
              skipped ? (" (" + std::to_string(skipped) + " more like it)").c_str() : "");
    failure_logged = true;
  } else {
    host->log(inst, INGESTD_LOG_DEBUG, "connect to %s failed: %.*s; retrying in %llu ms",
              opt.address.c_str(), n, reason.data(), ms);
  }
}

uint64_t RedisOutput::schedule_reconnect() {
  // Full backoff on the first try too: a server that just closed on us is
  // often restarting, and every worker reconnects at once.
  uint64_t delay = reconnect.failed();
  auto cb = [](void *p) { static_cast<RedisOutput *>(p)->connect(); };
  if (reconnect_timer) {
    host->timer_restart(reconnect_timer, delay, 0);
  } else {
    reconnect_timer = host->timer_start(inst, delay, 0, cb, this);
  }
  return delay;
}

void RedisOutput::on_tick() {
  uint64_t t = now();
  if (state == State::Connecting && conn && t - connect_started_ms > opt.connect_timeout_ms) {
    drop("not connected within connect_timeout (" + std::to_string(opt.connect_timeout_ms) + "ms)");
    return;
  }
  if (state != State::Ready) return;
  for (auto &b : batches) {
    if (!b->sent) continue;
    if (t - b->sent_ms > opt.command_timeout_ms) {
      drop("no reply within command_timeout (" + std::to_string(opt.command_timeout_ms) + "ms)");
    }
    break;  // the oldest sent batch decides
  }
}

// ---- batches ----------------------------------------------------------------

void RedisOutput::flush(ingestd_batch_t *hb) {
  if (stopping) {
    host->batch_done(hb, INGESTD_BATCH_RETRY);
    return;
  }
  std::unique_ptr<PendingBatch> owned;
  if (spare.empty()) {
    owned = std::make_unique<PendingBatch>();
  } else {
    owned = std::move(spare.back());
    spare.pop_back();
  }
  PendingBatch *b = owned.get();
  b->out = this;
  b->batch = hb;
  b->state.assign(host->batch_size(hb), kDelivered);
  batches.push_back(std::move(owned));
  b->self = std::prev(batches.end());
  waiting.push_back(b);
  pump();
}

void RedisOutput::pump() {
  if (pumping) {
    pump_again = true;  // a batch finished while we were sending: loop, don't recurse
    return;
  }
  pumping = true;
  do {
    pump_again = false;
    while (!waiting.empty() && state == State::Ready && conn && !stopping) {
      PendingBatch *b = waiting.front();
      if (!b->encoded) encode(b);
      if (b->cmds.empty()) {  // every record dead-lettered
        waiting.pop_front();
        finish(b);
        continue;
      }
      if (inflight_commands > 0 && inflight_commands + b->cmds.size() > opt.max_commands) break;
      waiting.pop_front();
      send(b);
    }
  } while (pump_again);
  pumping = false;
  update_gauges();
}

void RedisOutput::encode(PendingBatch *b) {
  b->encoded = true;
  size_t n = host->batch_size(b->batch);
  expire_keys.clear();
  std::vector<Extent> &all = all_extents;
  all.clear();
  for (size_t i = 0; i < n; ++i) {
    HostRecord rec(host, inst, host->batch_record(b->batch, i));
    extents.clear();
    ttl_keys.clear();
    if (!encoder.encode(rec, script_sha, &b->resp, &extents, &ttl_keys, &reason)) {
      mark(b, static_cast<uint32_t>(i), kDead, reason);
      continue;
    }
    for (const CommandExtent &e : extents)
      all.push_back(Extent{static_cast<uint32_t>(i), e.tmpl, e.offset, e.len});
    for (std::string &k : ttl_keys)
      expire_keys[std::move(k)] = static_cast<uint32_t>(i);
  }
  // One expiry per key and batch, after its last write; its failure is the
  // failure of the last record that wrote the key.
  for (const auto &[key, record] : expire_keys) {
    size_t off = b->resp.size();
    resp_expire(&b->resp, key, opt.enc.ttl_ms);
    all.push_back(Extent{record, kExpire, off, b->resp.size() - off});
  }
  // Pointers only now: the buffer no longer grows.
  b->cmds.reserve(all.size());
  for (const Extent &e : all)
    b->cmds.push_back(Cmd{b, e.record, e.tmpl, b->resp.data() + e.offset, e.len});
}

void RedisOutput::send(PendingBatch *b) {
  b->sent = true;
  b->sent_ms = now();
  // The commands lie back to back in b->resp (a record that failed to encode
  // left nothing); write each contiguous run at once.
  bool ok = true;
  for (size_t i = 0; ok && i < b->cmds.size();) {
    const char *start = b->cmds[i].data;
    size_t len = 0;
    size_t j = i;
    for (; j < b->cmds.size() && b->cmds[j].data == start + len; ++j)
      len += b->cmds[j].len;
    ok = conn->write(start, len);
    i = j;
  }
  if (!ok) {
    // Out of memory: nothing of it may have been queued; drop the connection
    // (anything partly queued is unusable) and retry the batch.
    b->lost = true;
    finish(b);
    drop("out of memory", true);
    return;
  }
  size_t n = b->cmds.size();
  expected.push_back(Expected{b, b->cmds.data(), b->cmds.data() + n});
  b->outstanding += n;
  inflight_commands += n;
  host->metric_add(m_sent, static_cast<double>(n));
}

void RedisOutput::on_command_reply(Cmd *cmd, redisReply *r) {
  PendingBatch *b = cmd->batch;
  --b->outstanding;
  --inflight_commands;
  if (r->type == REDIS_REPLY_ERROR) {
    ++b->replies_err;
    on_error_reply(cmd, std::string_view(r->str, r->len));
  } else if (r->type == REDIS_REPLY_NIL) {
    ++b->replies_nil;
  } else {
    ++b->replies_ok;
  }
  if (b->outstanding == 0) finish(b);
}

void RedisOutput::on_error_reply(Cmd *cmd, std::string_view msg) {
  PendingBatch *b = cmd->batch;
  ErrorClass cls = classify_error(msg);
  if (cls == ErrorClass::NoScript && cmd->tmpl == kScript) {
    // The server lost its scripts (restart, SCRIPT FLUSH, failover): EVAL
    // carries the script and caches it again. The outcome does not depend on
    // order, so the resend may run after later commands.
    if (conn && !stopping) {
      std::string eval = evalsha_to_eval(std::string_view(cmd->data, cmd->len), kNewerScript);
      if (!eval.empty()) {
        b->resend_text.push_back(std::move(eval));
        const std::string &text = b->resend_text.back();
        b->resent.push_back(Cmd{b, cmd->record, kEval, text.data(), text.size()});
        Cmd &nc = b->resent.back();
        if (conn->write(nc.data, nc.len)) {
          expected.push_back(Expected{b, &nc, &nc + 1});
          ++b->outstanding;
          ++inflight_commands;
          host->metric_add(m_sent, 1);
          host->metric_add(m_reloads, 1);
          return;
        }
      }
    }
    mark(b, cmd->record, kRetry);
    return;
  }
  if (cls == ErrorClass::NoAuth) {
    mark(b, cmd->record, kRetry);
    drop("the server asks for authentication again (" + std::string(msg) + ")");
    return;
  }
  if (cls == ErrorClass::Retry || cls == ErrorClass::NoScript) {
    if (!retry_logged) {
      host->log(inst, INGESTD_LOG_WARN, "redis answers \"%.*s\"; records are retried with backoff",
                static_cast<int>(msg.size()), msg.data());
      retry_logged = true;
    }
    mark(b, cmd->record, kRetry);
    return;
  }
  std::string what;
  if (cmd->tmpl >= 0) {
    what = "commands[" + std::to_string(cmd->tmpl) + "] " +
           opt.enc.commands[static_cast<size_t>(cmd->tmpl)].name;
  } else if (cmd->tmpl == kExpire) {
    what = "ttl expiry";
  } else {
    what = "if_newer script";
  }
  mark(b, cmd->record, kDead, what + ": " + std::string(msg));
}

void RedisOutput::mark(PendingBatch *b, uint32_t record, RecordState s, std::string why) {
  if (record >= b->state.size() || b->state[record] >= s) return;  // dead beats retry
  b->state[record] = s;
  if (s == kDead) b->reasons[record] = std::move(why);
}

void RedisOutput::finish(PendingBatch *b) {
  ingestd_batch_t *hb = b->batch;
  ingestd_batch_status_type status = b->lost ? INGESTD_BATCH_RETRY : INGESTD_BATCH_OK;
  bool any_retry = false;
  if (!detached) {
    host->metric_add(m_ok, static_cast<double>(b->replies_ok));
    host->metric_add(m_err, static_cast<double>(b->replies_err));
    host->metric_add(m_nil, static_cast<double>(b->replies_nil));
  }
  if (!detached && status == INGESTD_BATCH_OK) {
    for (size_t i = 0; i < b->state.size(); ++i) {
      if (b->state[i] == kRetry) {
        host->batch_retry_record(hb, i);
        any_retry = true;
      } else if (b->state[i] == kDead) {
        const std::string &why = b->reasons[static_cast<uint32_t>(i)];
        host->batch_dead_letter(hb, i, why.c_str());
        host->metric_add(m_dead, 1);
        if (dead_log.allow(now())) {
          host->log(inst, INGESTD_LOG_WARN,
                    "records go to the dead-letter file, e.g.: %s (logged at most once a minute)",
                    why.c_str());
        }
      }
    }
    if (!any_retry) retry_logged = false;
  }
  std::unique_ptr<PendingBatch> owned = std::move(*b->self);
  batches.erase(b->self);
  if (spare.size() < 8) {
    owned->reset();
    spare.push_back(std::move(owned));
  }
  if (!detached) host->batch_done(hb, status);
  update_gauges();
}

void RedisOutput::update_gauges() {
  if (detached) return;
  host->metric_set(m_inflight, static_cast<double>(inflight_commands));
  host->metric_set(m_waiting, static_cast<double>(waiting.size()));
}

// ---- configuration -----------------------------------------------------------

bool parse_address(const std::string &a, RedisOptions *o, std::string *err) {
  o->address = a;
  if (a.rfind("unix:", 0) == 0 || (!a.empty() && a[0] == '/')) {
    o->target.unix_socket = true;
    o->target.host_or_path = a[0] == '/' ? a : a.substr(5);
    if (o->target.host_or_path.empty()) {
      *err = "address: empty unix socket path";
      return false;
    }
    return true;
  }
  std::string h = a;
  std::string p;
  if (!a.empty() && a[0] == '[') {
    size_t close = a.find(']');
    if (close == std::string::npos) {
      *err = "address: unclosed '[' in \"" + a + "\"";
      return false;
    }
    h = a.substr(1, close - 1);
    if (close + 1 < a.size()) {
      if (a[close + 1] != ':') {
        *err = "address: expected ':' after ']' in \"" + a + "\"";
        return false;
      }
      p = a.substr(close + 2);
    }
  } else if (size_t colon = a.rfind(':'); colon != std::string::npos) {
    h = a.substr(0, colon);
    p = a.substr(colon + 1);
  }
  if (h.empty()) {
    *err = "address: no host in \"" + a + "\" (use \"host:port\" or a socket path)";
    return false;
  }
  o->target.host_or_path = h;
  if (!p.empty()) {
    int port = 0;
    auto r = std::from_chars(p.data(), p.data() + p.size(), port);
    if (r.ec != std::errc() || r.ptr != p.data() + p.size() || port < 1 || port > 65535) {
      *err = "address: invalid port '" + p + "' in \"" + a + "\"";
      return false;
    }
    o->target.port = port;
  }
  return true;
}

bool read_options(const ingestd::common::Options &opts, RedisOptions *o, std::string *err) {
  if (!parse_address(opts.string("address"), o, err)) return false;
  o->username = opts.string("username");
  o->password = opts.string("password");
  if (!o->username.empty() && o->password.empty()) {
    *err = "username needs password (AUTH username password)";
    return false;
  }
  o->db = opts.integer("db");
  o->connect_timeout_ms = opts.duration_ms("connect_timeout");
  o->target.connect_timeout_ms = o->connect_timeout_ms;
  Target &t = o->target;
  t.tls = opts.flag("tls");
  t.tls_verify = opts.flag("tls_verify");
  t.ca_file = opts.string("ca_file");
  t.client_cert = opts.string("client_cert");
  t.client_key = opts.string("client_key");
  t.server_name = opts.string("tls_server_name");
  bool any_tls_file = !t.ca_file.empty() || !t.client_cert.empty() || !t.client_key.empty() ||
                      !t.server_name.empty();
  if (t.tls && t.unix_socket) {
    *err = "tls = true needs a TCP address (\"host:port\"): \"" + o->address +
           "\" is a unix socket, which never speaks TLS";
    return false;
  }
  if (!t.tls && any_tls_file) {
    *err = "ca_file, client_cert, client_key and tls_server_name need tls = true";
    return false;
  }
  if (t.client_cert.empty() != t.client_key.empty()) {
    *err = "client_cert and client_key go together: set both or neither";
    return false;
  }
  // Named here so that `ingestd -t` says which file; stream_check (on_init)
  // then parses them.
  for (auto [name, path] : {std::pair<const char *, const std::string *>{"ca_file", &t.ca_file},
                            {"client_cert", &t.client_cert},
                            {"client_key", &t.client_key}}) {
    if (!path->empty() && access(path->c_str(), R_OK) != 0) {
      *err = std::string(name) + " " + *path + ": " + std::strerror(errno);
      return false;
    }
  }
  o->command_timeout_ms = opts.duration_ms("command_timeout");
  o->max_commands = static_cast<size_t>(opts.integer("max_inflight_commands"));
  o->retry_initial_ms = opts.retry_initial_ms();
  o->retry_max_ms = opts.retry_max_ms();
  o->enc.ttl_ms = opts.duration_ms("ttl");
  o->enc.key_prefix = opts.string("key_prefix");

  std::vector<std::vector<std::string>> commands = opts.string_lists("commands");
  bool need_keys = o->enc.ttl_ms > 0 || !o->enc.key_prefix.empty();
  if (!parse_commands(commands, need_keys, &o->enc.commands, err)) return false;

  bool newer = opts.has("if_newer");
  bool newer_key = opts.has("if_newer_key");
  if (newer) {
    o->enc.if_newer = opts.string("if_newer");
    if (o->enc.if_newer.empty() || o->enc.if_newer.find_first_of("{}") != std::string::npos) {
      *err = "if_newer: give a field name such as \"ts\" (no braces)";
      return false;
    }
    std::string key_template;
    if (newer_key) {
      key_template = opts.string("if_newer_key");
    } else {
      // Default: the first key argument that names a field (the entity),
      // e.g. "rider:{device_id}" -> "rider:{device_id}:if_newer".
      for (const auto &cmd : o->enc.commands) {
        for (const auto &a : cmd.args) {
          bool has_field = std::any_of(a.pieces.begin(), a.pieces.end(),
                                       [](const Piece &p) { return p.is_field; });
          if (a.is_key && has_field && key_template.empty()) key_template = a.source + ":if_newer";
        }
      }
      if (key_template.empty()) {
        *err =
            "if_newer needs if_newer_key, the key that keeps the newest value per entity "
            "(e.g. \"rider:{device_id}:ts\"): no command has a key that names a field";
        return false;
      }
    }
    std::string why;
    if (!parse_arg(key_template, &o->enc.if_newer_key, &why)) {
      *err = "if_newer_key: " + why;
      return false;
    }
    o->enc.if_newer_key.is_key = true;
  } else if (newer_key) {
    *err = "if_newer_key is set but if_newer is not";
    return false;
  }
  return true;
}

// ---- lifecycle -----------------------------------------------------------------

RedisOutput::RedisOutput(const ingestd_host_t *h, ingestd_instance_t *in, RedisOptions options)
    : Instance(h, in),
      opt(std::move(options)),
      encoder(&opt.enc),
      // Seeded apart per instance: every worker's output reconnects on its own schedule.
      reconnect(ingestd::common::Backoff(opt.retry_initial_ms, opt.retry_max_ms),
                static_cast<uint64_t>(h->wall_ms()) ^ reinterpret_cast<uintptr_t>(this)) {
  m_sent = host->counter(inst, "redis_commands_sent_total", "Commands written to Redis");
  m_ok = host->counter(inst, "redis_replies_ok_total", "Replies that were not errors or nil");
  m_err = host->counter(inst, "redis_replies_error_total", "Error replies");
  m_nil = host->counter(inst, "redis_replies_nil_total", "Nil replies");
  m_reconnects =
      host->counter(inst, "redis_reconnects_total", "Connection attempts after the first one");
  m_inflight = host->gauge(inst, "redis_inflight_commands", "Commands sent and not answered");
  m_waiting = host->gauge(inst, "redis_waiting_batches",
                          "Batches held until the connection is ready or has room");
  m_connected = host->gauge(inst, "redis_connected", "1 while the connection is ready");
  m_dead = host->counter(inst, "redis_dead_letter_records_total",
                         "Records the redis output sent to the dead-letter file");
  m_reloads = host->counter(inst, "redis_script_reloads_total",
                            "if_newer commands resent as EVAL after NOSCRIPT");
}

int RedisOutput::start() {
  uint64_t every =
      std::clamp<uint64_t>(std::min(opt.connect_timeout_ms, opt.command_timeout_ms) / 4, 5, 1000);
  tick = host->timer_start(
      inst, every, every, [](void *p) { static_cast<RedisOutput *>(p)->on_tick(); }, this);
  connect();
  return 0;
}

void RedisOutput::stop() {
  if (stopping) return;
  stopping = true;
  if (tick) host->timer_stop(tick);
  if (reconnect_timer) host->timer_stop(reconnect_timer);
  tick = reconnect_timer = nullptr;
  // Sent batches get no replies now: retried by the host (or kept on disk).
  drop("stopping");
  while (!waiting.empty()) {
    PendingBatch *b = waiting.front();
    waiting.pop_front();
    b->lost = true;
    finish(b);
  }
}

RedisOutput::~RedisOutput() {
  detached = true;
  stopping = true;
  if (tick) host->timer_stop(tick);
  if (reconnect_timer) host->timer_stop(reconnect_timer);
  if (conn) {
    Connection *c = conn;
    conn = nullptr;
    c->close();
  }
  fail_expected();  // finishes the batches without telling the host
}

// ---- hooks ---------------------------------------------------------------------

int on_init(const ingestd_host_t *host, ingestd_instance_t *inst, const ingestd_config_t *cfg,
            void **data) {
  RedisOptions options;
  std::string err;
  if (!read_options(ingestd::common::Options(host, cfg), &options, &err)) {
    host->log(inst, INGESTD_LOG_ERROR, "%s", err.c_str());
    return -1;
  }
  if (!INGESTD_HOST_HAS(host, stream_open)) {
    host->log(inst, INGESTD_LOG_ERROR,
              "this ingestd has no stream service (plugin ABI 1.2), which the redis output needs");
    return -1;
  }
  // The CA, certificate and key must load now, for `ingestd -t` and before
  // a reload replaces a working output (the host logs which file and why).
  if (options.target.tls && INGESTD_HOST_HAS(host, stream_check)) {
    ingestd_stream_config_t sc = options.target.stream_config();
    if (host->stream_check(inst, &sc) != INGESTD_OK) {
      host->log(inst, INGESTD_LOG_ERROR,
                "tls: ca_file, client_cert or client_key cannot be used (see above)");
      return -1;
    }
  }
  *data = new RedisOutput(host, inst, std::move(options));
  return 0;
}

using Hooks = ingestd::common::OutputHooks<RedisOutput>;

}  // namespace

extern "C" INGESTD_EXPORT const ingestd_plugin_t ingestd_plugin_v1 = {
    INGESTD_ABI_MAJOR,
    INGESTD_ABI_MINOR,
    sizeof(ingestd_plugin_t),
    "redis",
    INGESTD_KIND_OUTPUT,
    "Redis commands from templates, pipelined over one connection per worker, TLS optional",
    "1.0.0",
    kOptions,
    sizeof kOptions / sizeof kOptions[0],
    on_init,
    Hooks::on_start,
    Hooks::on_stop,
    Hooks::on_destroy,
    nullptr,
    nullptr,
    Hooks::on_flush,
};
