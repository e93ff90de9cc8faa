// out_redis: records to Redis as commands built from templates, pipelined
// over one connection per worker (the host's stream service, optionally TLS:
// redis_connection.h), or with `cluster` one per primary of a Redis Cluster,
// each command routed by its key's slot (redis_cluster.h).
//
// A batch is encoded into one buffer of RESP commands and queued whole, so it
// leaves in one write; replies are matched to commands in order. Batches wait inside the plugin
// (bounded by the core's max_inflight batches) while there is no ready connection or while
// max_inflight_commands are unanswered; they are sent as soon as the connection is back. A batch
// whose connection drops before every reply arrived, or that gets no reply within command_timeout,
// is answered INGESTD_BATCH_RETRY: the host resends it after its backoff, so delivery is at least
// once (templates should be idempotent; if_newer makes positions so).
//
// Cluster: the slot map comes from CLUSTER SHARDS on any node; MOVED fixes
// one slot at once and asks for the whole map again, ASK sends ASKING and the
// command to the importing node, TRYAGAIN / CLUSTERDOWN retry the record. A
// command whose primary is down is retried by the host rather than held, so
// one failing shard does not stop the others. A record is acknowledged only
// when every one of its commands was answered.
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
#include "redis_cluster.h"
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
    {"cluster", INGESTD_OPT_BOOL, "false", 0, nullptr, kNoMin, kNoMax,
     "Redis Cluster (ElastiCache cluster mode, ElastiCache Serverless, MemoryDB): address and "
     "addresses are seed nodes, each command goes to the primary of its key's slot"},
    {"addresses", INGESTD_OPT_STRING_LIST, nullptr, 0, nullptr, kNoMin, kNoMax,
     "More seed nodes (\"host:port\") for cluster = true, tried with address"},
    {"cluster_refresh_interval", INGESTD_OPT_DURATION, "10s", 0, nullptr, 100, 3600000,
     "How often the cluster's slot map is read again; also at once after MOVED or a lost "
     "primary"},
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
struct Node;

// One command of a batch.
struct Cmd {
  PendingBatch *batch;
  uint32_t record;
  int tmpl;  // template index, kScript, kExpire or kEval
  const char *data;
  size_t len;
  int slot = -1;          // cluster: its key's slot; -1: no key, any primary
  uint32_t node = 0;      // cluster: the node it was first sent to (Node::id)
  uint8_t redirects = 0;  // MOVED / ASK followed so far
};
constexpr int kEval = -3;  // an EVALSHA resent as EVAL after NOSCRIPT
// A command bounced between nodes this often is retried by the host instead
// (a slot moving back and forth, or nodes that disagree).
constexpr uint8_t kMaxRedirects = 5;

enum RecordState : uint8_t { kDelivered = 0, kRetry = 1, kDead = 2 };

struct PendingBatch {
  RedisOutput *out = nullptr;
  ingestd_batch_t *batch = nullptr;
  bool encoded = false;
  bool lost = false;  // a reply will never come: the whole batch is retried
  size_t outstanding = 0;
  size_t replies_ok = 0, replies_err = 0, replies_nil = 0;  // counted per batch, not per reply
  std::string resp;
  std::vector<Cmd> cmds;   // fixed once sent: Node::expected points into it
  std::deque<Cmd> resent;  // EVALs after NOSCRIPT; a deque keeps pointers valid
  std::deque<std::string> resend_text;
  std::vector<uint8_t> state;
  std::unordered_map<uint32_t, std::string> reasons;
  std::list<std::unique_ptr<PendingBatch>>::iterator self;

  // Batches are recycled: their buffers keep their capacity, so a steady
  // stream does not grow and shrink the heap on every batch.
  void reset() {
    batch = nullptr;
    encoded = lost = false;
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

// Replies still to come on a node, in the order the commands were written.
struct Expected {
  enum Kind : uint8_t {
    Handshake,  // AUTH, SELECT, SCRIPT LOAD or PING after connecting
    Commands,   // a run of one batch's commands, [next, end)
    Asking,     // the ASKING before a command sent after an ASK redirection
    Refresh,    // CLUSTER SHARDS / CLUSTER SLOTS
  } kind;
  PendingBatch *batch = nullptr;
  Cmd *next = nullptr;
  Cmd *end = nullptr;
  uint64_t sent_ms = 0;
};

// The instance's options, read once in on_init (read_options).
struct RedisOptions {
  std::string address;
  Target target;  // address, connect_timeout and TLS
  bool cluster = false;
  std::vector<std::pair<std::string, Target>> seeds;  // cluster: address, then addresses
  uint64_t refresh_ms = 10000;
  std::string username, password;
  int64_t db = 0;
  uint64_t connect_timeout_ms = 2000, command_timeout_ms = 5000;
  uint64_t retry_initial_ms = 100, retry_max_ms = 30000;
  size_t max_commands = 20000;
  EncoderConfig enc;
};

// One server: its connection, handshake, replies to come and reconnects.
// Without `cluster` the output has one, the address; with it, one per
// primary of the slot map, the seeds, and nodes named by redirections.
struct Node final : Connection::Handler {
  Node(RedisOutput *o, uint32_t id, std::string address, Target target, bool seed);
  ~Node();

  RedisOutput *const out;
  const uint32_t id;
  const std::string address;  // as logged and labelled: "host:port" or the socket path
  const Target target;
  const bool seed;
  bool in_map = false;  // owns slots in the current map

  Connection *conn = nullptr;
  std::deque<Expected> expected;
  bool in_reply = false;      // inside on_reply: a drop fails `expected` after it
  bool fail_pending = false;  // ... and this says it has to
  State state = State::Down;
  int handshake_left = 0;
  std::vector<const char *> handshake_steps;
  uint64_t connect_started_ms = 0;
  // Reconnects: capped exponential with full jitter (every worker lost the
  // same server at once); seeded per node.
  ingestd::common::Retry reconnect;
  bool attempted = false;
  bool failure_logged = false;
  ingestd::common::LogLimiter failure_log{60000};  // one failure line a minute
  bool ever_ready = false;
  ingestd_timer_t *reconnect_timer = nullptr;
  bool reconnect_due = false;

  // Cluster only (NULL otherwise): labelled with the node.
  ingestd_metric_t *m_commands = nullptr, *m_errors = nullptr, *m_moved = nullptr, *m_ask = nullptr;

  // Worth a connection: without cluster always; with it while it owns
  // slots, or is a seed while no primary is known to be up (to learn the
  // map, first or again).
  bool wanted() const;
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
  // Writes [first, end) of one batch (contiguous in its buffer or not);
  // false when the connection could not take them (it is dropped).
  bool send(PendingBatch *b, Cmd *first, Cmd *end, bool asking = false);
  bool send_refresh(bool slots);
};

// One output instance: constructed by on_init, start() / stop() from the
// hooks of the same names, destroyed by on_destroy.
struct RedisOutput final : ingestd::common::Instance {
  RedisOutput(const ingestd_host_t *host, ingestd_instance_t *inst, RedisOptions options);
  ~RedisOutput();
  int start();
  void stop();

  const RedisOptions opt;
  RecordEncoder encoder;
  std::string script_sha;  // the same on every server: SHA1 of the script

  std::vector<std::unique_ptr<Node>> nodes;  // without cluster: just nodes[0]
  uint32_t next_node_id = 0;

  // Cluster topology.
  std::vector<Node *> slot_owner;  // kSlots entries once a map is known
  bool map_known = false;
  bool refresh_in_flight = false;
  bool refresh_wanted = false;
  bool shards_unsupported = false;  // Redis < 7.0: CLUSTER SLOTS
  uint64_t last_refresh_ms = 0;
  size_t refresh_turn = 0;
  ingestd::common::LogLimiter refresh_log{60000};
  size_t logged_primaries = 0;
  bool moved_hint_logged = false;

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

  ingestd_metric_t *m_sent = nullptr, *m_ok = nullptr, *m_err = nullptr, *m_nil = nullptr;
  ingestd_metric_t *m_reconnects = nullptr, *m_inflight = nullptr, *m_waiting = nullptr;
  ingestd_metric_t *m_connected = nullptr, *m_dead = nullptr, *m_reloads = nullptr;
  ingestd_metric_t *m_refreshes = nullptr, *m_primaries = nullptr;

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
  Node *single() { return nodes.front().get(); }
  bool seeds_needed() const {
    if (!map_known) return true;
    for (auto &n : nodes)
      if (n->in_map && n->conn) return false;
    return true;
  }

  void on_tick();
  void on_node_ready();
  void on_node_lost(Node *n);
  void update_connected();

  // Cluster.
  Node *node_for(const std::string &host_name, int port);
  Node *route(int slot);
  void request_refresh();
  void maybe_refresh();
  void on_refresh_reply(Node *n, redisReply *r, bool slots);
  void apply_map(const std::vector<ShardNode> &shards);
  void collect_nodes();

  void flush(ingestd_batch_t *b);
  bool can_send();
  void pump();
  void encode(PendingBatch *b);
  void send(PendingBatch *b);
  void on_command_reply(Node *n, Cmd *cmd, redisReply *r);
  void on_error_reply(Node *n, Cmd *cmd, std::string_view msg);
  bool follow_redirect(Node *n, Cmd *cmd, const Redirect &rd);
  void commands_lost(Cmd *first, Cmd *end);
  void mark(PendingBatch *b, uint32_t record, RecordState s, std::string why = {});
  void finish(PendingBatch *b);
  void update_gauges();
};

std::string node_address(const std::string &host_name, int port) {
  if (host_name.find(':') != std::string::npos)
    return "[" + host_name + "]:" + std::to_string(port);
  return host_name + ":" + std::to_string(port);
}

// ---- a node's connection ---------------------------------------------------

Node::Node(RedisOutput *o, uint32_t node_id, std::string addr, Target t, bool is_seed)
    : out(o),
      id(node_id),
      address(std::move(addr)),
      target(std::move(t)),
      seed(is_seed),
      // Seeded apart per node and instance: every worker's output reconnects
      // on its own schedule.
      reconnect(ingestd::common::Backoff(o->opt.retry_initial_ms, o->opt.retry_max_ms),
                static_cast<uint64_t>(o->host->wall_ms()) ^ reinterpret_cast<uintptr_t>(this)) {
  const ingestd_host_t *h = o->host;
  if (!o->opt.cluster || !INGESTD_HOST_HAS(h, counter_labeled)) return;
  const char *node_label[] = {"node", address.c_str(), nullptr};
  const char *moved[] = {"node", address.c_str(), "kind", "moved", nullptr};
  const char *ask[] = {"node", address.c_str(), "kind", "ask", nullptr};
  m_commands = h->counter_labeled(o->inst, "redis_node_commands_total",
                                  "Commands written to this cluster node", node_label);
  m_errors =
      h->counter_labeled(o->inst, "redis_node_errors_total",
                         "Error replies of this cluster node, redirections included", node_label);
  m_moved = h->counter_labeled(o->inst, "redis_redirections_total",
                               "MOVED and ASK replies of this cluster node", moved);
  m_ask = h->counter_labeled(o->inst, "redis_redirections_total",
                             "MOVED and ASK replies of this cluster node", ask);
}

Node::~Node() {
  if (reconnect_timer) out->host->timer_stop(reconnect_timer);
  if (conn) {
    Connection *c = conn;
    conn = nullptr;
    c->close();
  }
}

bool Node::wanted() const {
  return !out->opt.cluster || in_map || (seed && out->seeds_needed());
}

void Node::connect() {
  reconnect_due = false;
  if (out->stopping || conn || !wanted()) return;
  const ingestd_host_t *host = out->host;
  if (attempted) host->metric_add(out->m_reconnects, 1);
  attempted = true;
  state = State::Connecting;
  connect_started_ms = out->now();
  std::string err;
  Connection *c = Connection::open(host, out->inst, target, this, &err);
  if (!c) {
    connection_lost(err, false);
    return;
  }
  conn = c;
  // The handshake is queued now and written once connected; what is written
  // after it (a cluster's commands) leaves behind it.
  handshake_steps.clear();
  std::string cmds;
  auto command = [&](std::initializer_list<std::string_view> argv, const char *step) {
    resp_array(&cmds, argv.size());
    for (std::string_view a : argv)
      resp_bulk(&cmds, a);
    handshake_steps.push_back(step);
    expected.push_back(Expected{Expected::Handshake});
  };
  const RedisOptions &opt = out->opt;
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

void Node::on_reply(redisReply *r) {
  if (expected.empty()) {
    drop(r->type == REDIS_REPLY_ERROR ? std::string(r->str, r->len)
                                      : std::string("a reply to no command"),
         r->type != REDIS_REPLY_ERROR);
    return;
  }
  Expected &e = expected.front();
  switch (e.kind) {
    case Expected::Handshake:
      expected.pop_front();
      on_handshake_reply(r);
      return;
    case Expected::Asking:
      // An error here shows in the command's own reply, which follows.
      expected.pop_front();
      return;
    case Expected::Refresh: {
      expected.pop_front();
      in_reply = true;
      out->on_refresh_reply(this, r, out->shards_unsupported);
      in_reply = false;
      if (fail_pending) fail_expected();
      return;
    }
    case Expected::Commands:
      break;
  }
  Cmd *cmd = e.next++;
  if (e.next == e.end) expected.pop_front();
  in_reply = true;
  out->on_command_reply(this, cmd, r);
  in_reply = false;
  if (fail_pending) fail_expected();
}

void Node::on_closed(const std::string &why) {
  conn = nullptr;
  connection_lost(why, false);
  fail_expected();
}

void Node::on_handshake_reply(redisReply *r) {
  if (handshake_left <= 0) return;
  const char *step = handshake_steps[handshake_steps.size() - static_cast<size_t>(handshake_left)];
  if (r->type == REDIS_REPLY_ERROR) {
    drop(std::string(step) + " failed: " + std::string(r->str, r->len), true);
    return;
  }
  if (std::strcmp(step, "SCRIPT LOAD") == 0 && r->type == REDIS_REPLY_STRING) {
    out->script_sha.assign(r->str, r->len);
  }
  if (--handshake_left == 0) ready();
}

void Node::ready() {
  state = State::Ready;
  reconnect.succeeded();
  if (failure_logged || !ever_ready) {
    // A cluster's first connects are said by the map line; coming back is news.
    bool cluster = out->opt.cluster;
    out->host->log(out->inst, cluster && !failure_logged ? INGESTD_LOG_DEBUG : INGESTD_LOG_INFO,
                   cluster && failure_logged ? "connected to %s again" : "connected to %s",
                   address.c_str());
  }
  failure_logged = false;
  failure_log.reset();
  ever_ready = true;
  out->on_node_ready();
}

// Closes the connection and goes down; the commands without a reply are
// retried.
void Node::drop(const std::string &why, bool error) {
  Connection *c = conn;
  if (!c) return;
  conn = nullptr;
  c->close();
  connection_lost(why, error);
  fail_expected();
}

// Every command still waiting for a reply gets none. Inside on_reply this
// waits until the reply is handled, so that the batch being answered is not
// finished twice.
void Node::fail_expected() {
  if (in_reply) {
    fail_pending = true;
    return;
  }
  fail_pending = false;
  std::deque<Expected> gone;
  gone.swap(expected);
  for (const Expected &e : gone) {
    if (e.kind == Expected::Refresh) {
      out->refresh_in_flight = false;
      out->refresh_wanted = true;  // ask another node (on_tick)
    }
    if (e.kind == Expected::Commands) out->commands_lost(e.next, e.end);
  }
}

void Node::connection_lost(const std::string &why, bool error) {
  bool was_ready = state == State::Ready;
  state = State::Down;
  handshake_left = 0;
  out->on_node_lost(this);
  if (out->stopping) return;
  const ingestd_host_t *host = out->host;
  ingestd_instance_t *inst = out->inst;
  if (!wanted()) {
    if (was_ready)
      host->log(inst, INGESTD_LOG_DEBUG, "connection to %s closed: %s", address.c_str(),
                why.c_str());
    return;
  }
  uint64_t delay = schedule_reconnect();
  ingestd_log_level_type level = error ? INGESTD_LOG_ERROR : INGESTD_LOG_WARN;
  auto ms = static_cast<unsigned long long>(delay);
  if (was_ready) {
    host->log(inst, level, "connection to %s lost: %s; reconnecting in %llu ms, %s",
              address.c_str(), why.c_str(), ms,
              out->opt.cluster ? "the cluster map is read again, records are retried"
                               : "records wait in the queue");
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
  if (failure_log.allow(out->now())) {
    unsigned long long skipped = failure_log.skipped();
    host->log(inst, level, "connect to %s failed: %.*s; retrying in %llu ms%s", address.c_str(), n,
              reason.data(), ms,
              skipped ? (" (" + std::to_string(skipped) + " more like it)").c_str() : "");
    failure_logged = true;
  } else {
    host->log(inst, INGESTD_LOG_DEBUG, "connect to %s failed: %.*s; retrying in %llu ms",
              address.c_str(), n, reason.data(), ms);
  }
}

uint64_t Node::schedule_reconnect() {
  // Full backoff on the first try too: a server that just closed on us is
  // often restarting, and every worker reconnects at once.
  uint64_t delay = reconnect.failed();
  auto cb = [](void *p) { static_cast<Node *>(p)->connect(); };
  reconnect_due = true;
  if (reconnect_timer) {
    out->host->timer_restart(reconnect_timer, delay, 0);
  } else {
    reconnect_timer = out->host->timer_start(out->inst, delay, 0, cb, this);
  }
  return delay;
}

bool Node::send(PendingBatch *b, Cmd *first, Cmd *end, bool asking) {
  static constexpr std::string_view kAsking = "*1\r\n$6\r\nASKING\r\n";
  bool ok = !asking || conn->write(kAsking.data(), kAsking.size());
  if (ok && asking) expected.push_back(Expected{Expected::Asking, b, nullptr, nullptr, out->now()});
  // Commands that lie back to back in the batch's buffer leave in one write.
  for (Cmd *c = first; ok && c != end;) {
    const char *start = c->data;
    size_t len = 0;
    Cmd *d = c;
    for (; d != end && d->data == start + len; ++d)
      len += d->len;
    ok = conn->write(start, len);
    c = d;
  }
  if (!ok) {
    // Out of memory: part of it may have been queued, which leaves the
    // connection unusable. None of it was counted as owed yet.
    for (Cmd *c = first; c != end; ++c) {
      if (out->opt.cluster && !out->stopping) {
        out->mark(b, c->record, kRetry);
      } else {
        b->lost = true;
      }
    }
    drop("out of memory", true);
    return false;
  }
  auto n = static_cast<size_t>(end - first);
  expected.push_back(Expected{Expected::Commands, b, first, end, out->now()});
  b->outstanding += n;
  out->inflight_commands += n;
  out->host->metric_add(out->m_sent, static_cast<double>(n));
  out->host->metric_add(m_commands, static_cast<double>(n));
  return true;
}

bool Node::send_refresh(bool slots) {
  static constexpr std::string_view kShards = "*2\r\n$7\r\nCLUSTER\r\n$6\r\nSHARDS\r\n";
  static constexpr std::string_view kSlotsCmd = "*2\r\n$7\r\nCLUSTER\r\n$5\r\nSLOTS\r\n";
  std::string_view c = slots ? kSlotsCmd : kShards;
  if (!conn || !conn->write(c.data(), c.size())) return false;
  expected.push_back(Expected{Expected::Refresh, nullptr, nullptr, nullptr, out->now()});
  return true;
}

// ---- the output: nodes and topology ------------------------------------------

void RedisOutput::on_node_ready() {
  update_connected();
  if (opt.cluster && (!map_known || refresh_wanted)) maybe_refresh();
  pump();
}

// Called inside the node's own teardown: the refresh it asks for is sent
// from the tick, not from here.
void RedisOutput::on_node_lost(Node *n) {
  update_connected();
  // A primary that stops answering: the others know whether it failed over.
  if (opt.cluster && n->in_map) refresh_wanted = true;
}

void RedisOutput::update_connected() {
  bool all;
  if (opt.cluster) {
    all = map_known;
    for (auto &n : nodes)
      if (n->in_map && n->state != State::Ready) all = false;
  } else {
    all = single()->state == State::Ready;
  }
  host->metric_set(m_connected, all ? 1 : 0);
}

Node *RedisOutput::node_for(const std::string &host_name, int port) {
  std::string addr = node_address(host_name, port);
  for (auto &n : nodes)
    if (n->address == addr) return n.get();
  Target t = opt.target;
  t.unix_socket = false;
  t.host_or_path = host_name;
  t.port = port;
  nodes.push_back(std::make_unique<Node>(this, next_node_id++, addr, std::move(t), false));
  Node *n = nodes.back().get();
  n->in_map = true;  // named by the map or a redirection: it serves slots
  n->connect();
  return n;
}

Node *RedisOutput::route(int slot) {
  if (slot >= 0) return slot_owner[static_cast<size_t>(slot)];
  for (auto &n : nodes)  // no key: any primary that is up
    if (n->in_map && n->conn) return n.get();
  return nullptr;
}

void RedisOutput::request_refresh() {
  refresh_wanted = true;
  maybe_refresh();
}

// At most one CLUSTER SHARDS in flight, and a pause between them: during a
// reshard every MOVED asks for one, and each MOVED fixes its slot already.
void RedisOutput::maybe_refresh() {
  constexpr uint64_t kRefreshGapMs = 250;
  if (!opt.cluster || stopping || refresh_in_flight) return;
  uint64_t t = now();
  bool due = refresh_wanted || !map_known || t - last_refresh_ms >= opt.refresh_ms;
  if (!due || (last_refresh_ms && t - last_refresh_ms < kRefreshGapMs)) return;
  // Ask the primaries in turn, else a seed; only nodes past their handshake.
  std::vector<Node *> ready_nodes;
  for (auto &n : nodes)
    if (n->state == State::Ready && n->conn && (n->in_map || !map_known))
      ready_nodes.push_back(n.get());
  if (ready_nodes.empty())
    for (auto &n : nodes)
      if (n->state == State::Ready && n->conn) ready_nodes.push_back(n.get());
  if (ready_nodes.empty()) {
    // The primaries reconnect on their own timers; seeds that gave up
    // (they were not needed then) start again.
    for (auto &s : nodes)
      if (s->seed && !s->conn && !s->reconnect_due && s->wanted()) s->connect();
    return;
  }
  Node *n = ready_nodes[refresh_turn++ % ready_nodes.size()];
  if (!n->send_refresh(shards_unsupported)) return;
  refresh_in_flight = true;
  refresh_wanted = false;
  last_refresh_ms = t;
}

void RedisOutput::on_refresh_reply(Node *n, redisReply *r, bool slots) {
  refresh_in_flight = false;
  if (r->type == REDIS_REPLY_ERROR) {
    std::string_view msg(r->str, r->len);
    if (!slots && (msg.find("unknown subcommand") != std::string_view::npos ||
                   msg.find("unknown command") != std::string_view::npos)) {
      shards_unsupported = true;  // before Redis 7.0
      last_refresh_ms = 0;
      request_refresh();
      return;
    }
    refresh_wanted = true;
    if (refresh_log.allow(now())) {
      if (msg.find("cluster support disabled") != std::string_view::npos) {
        host->log(inst, INGESTD_LOG_ERROR,
                  "%s is not a Redis Cluster node (cluster support disabled): set cluster = "
                  "false for a single server, or give a cluster node's address; records wait",
                  n->address.c_str());
      } else {
        host->log(inst, INGESTD_LOG_WARN, "cannot read the cluster map from %s: %.*s",
                  n->address.c_str(), static_cast<int>(msg.size()), msg.data());
      }
    }
    return;
  }
  std::vector<ShardNode> shards;
  std::string err;
  bool ok = slots ? parse_cluster_slots(r, n->target.host_or_path, &shards, &err)
                  : parse_cluster_shards(r, opt.target.tls, n->target.host_or_path, &shards, &err);
  if (!ok || shards.empty()) {
    refresh_wanted = true;
    if (refresh_log.allow(now()))
      host->log(inst, INGESTD_LOG_WARN, "cannot use the cluster map from %s: %s",
                n->address.c_str(), ok ? "no slot is served yet" : err.c_str());
    return;
  }
  apply_map(shards);
}

void RedisOutput::apply_map(const std::vector<ShardNode> &shards) {
  for (auto &n : nodes)
    n->in_map = false;
  slot_owner.assign(kSlots, nullptr);
  size_t covered = 0;
  for (const ShardNode &s : shards) {
    Node *n = node_for(s.host, s.port);
    n->in_map = true;
    if (!n->conn && !n->reconnect_due) n->connect();
    for (auto [a, b] : s.ranges) {
      for (int i = a; i <= b; ++i)
        slot_owner[static_cast<size_t>(i)] = n;
      covered += static_cast<size_t>(b - a + 1);
    }
  }
  map_known = true;
  host->metric_add(m_refreshes, 1);
  host->metric_set(m_primaries, static_cast<double>(shards.size()));
  if (shards.size() != logged_primaries) {
    host->log(inst, INGESTD_LOG_INFO, "cluster map: %zu primaries serving %zu of %d slots",
              shards.size(), covered, kSlots);
    logged_primaries = shards.size();
  }
  // Connections to nodes that left the map close once nothing is owed.
  for (auto &n : nodes)
    if (!n->wanted() && n->conn && n->expected.empty()) n->drop("no longer a primary");
  update_connected();
  pump();
}

// Nodes out of the map, unconnected and owed nothing are forgotten (on the
// tick, never inside one of their callbacks); seeds are kept.
void RedisOutput::collect_nodes() {
  std::erase_if(nodes, [](const std::unique_ptr<Node> &n) {
    return !n->seed && !n->wanted() && !n->conn && n->expected.empty();
  });
}

void RedisOutput::on_tick() {
  uint64_t t = now();
  for (auto &np : nodes) {
    Node *n = np.get();
    if (n->state == State::Connecting && n->conn &&
        t - n->connect_started_ms > opt.connect_timeout_ms) {
      n->drop("not connected within connect_timeout (" + std::to_string(opt.connect_timeout_ms) +
              "ms)");
      continue;
    }
    if (n->state != State::Ready || n->expected.empty()) continue;
    // The oldest command owed decides.
    if (t - n->expected.front().sent_ms > opt.command_timeout_ms) {
      n->drop("no reply within command_timeout (" + std::to_string(opt.command_timeout_ms) + "ms)");
    }
  }
  if (opt.cluster) {
    maybe_refresh();
    collect_nodes();
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

// Without cluster, batches wait for the connection; with it, for a slot map
// (a command whose node is down is retried by the host, the rest go on).
bool RedisOutput::can_send() {
  if (stopping) return false;
  if (opt.cluster) return map_known;
  Node *n = single();
  return n->state == State::Ready && n->conn;
}

void RedisOutput::pump() {
  if (pumping) {
    pump_again = true;  // a batch finished while we were sending: loop, don't recurse
    return;
  }
  pumping = true;
  do {
    pump_again = false;
    while (!waiting.empty() && can_send()) {
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
  for (const Extent &e : all) {
    b->cmds.push_back(Cmd{b, e.record, e.tmpl, b->resp.data() + e.offset, e.len});
    if (opt.cluster) {
      std::string_view key;
      command_key(std::string_view(b->cmds.back().data, e.len), &key);
      b->cmds.back().slot = key.empty() ? -1 : key_slot(key);
    }
  }
}

void RedisOutput::send(PendingBatch *b) {
  ++b->outstanding;  // held while sending: finish() must not run half-way
  if (!opt.cluster) {
    single()->send(b, b->cmds.data(), b->cmds.data() + b->cmds.size());
    if (--b->outstanding == 0) finish(b);
    return;
  }
  // One run per node, each key's commands in their order (a stable sort).
  bool unrouted = false;
  for (Cmd &c : b->cmds) {
    Node *n = route(c.slot);
    c.node = n && n->conn ? n->id : UINT32_MAX;
    unrouted = unrouted || c.node == UINT32_MAX;
  }
  std::stable_sort(b->cmds.begin(), b->cmds.end(),
                   [](const Cmd &x, const Cmd &y) { return x.node < y.node; });
  for (size_t i = 0; i < b->cmds.size();) {
    size_t j = i;
    while (j < b->cmds.size() && b->cmds[j].node == b->cmds[i].node)
      ++j;
    Cmd *first = b->cmds.data() + i, *end = b->cmds.data() + j;
    Node *n = nullptr;
    if (first->node != UINT32_MAX) {
      for (auto &np : nodes)
        if (np->id == first->node) n = np.get();
    }
    if (n && n->conn) {
      n->send(b, first, end);
    } else {
      for (Cmd *c = first; c != end; ++c)
        mark(b, c->record, kRetry);
    }
    i = j;
  }
  if (unrouted) request_refresh();
  if (--b->outstanding == 0) finish(b);
}

// Commands that will get no reply (their connection dropped): with cluster
// their records are retried (the rest of the batch may have landed), without
// it the batch is.
void RedisOutput::commands_lost(Cmd *first, Cmd *end) {
  // Counts only: finish() recycles the batch, and its commands with it.
  for (Cmd *c = first; c != end; ++c) {
    PendingBatch *b = c->batch;
    if (opt.cluster && !stopping) {
      mark(b, c->record, kRetry);
    } else {
      b->lost = true;
    }
    --b->outstanding;
    --inflight_commands;
    if (b->outstanding == 0) {
      finish(b);
      return;  // the batch's last commands: nothing after c belongs to a live batch
    }
  }
}

// The batch's count drops after the reply is handled: a resend counts again
// first, and nothing handled here can finish the batch under us.
void RedisOutput::on_command_reply(Node *n, Cmd *cmd, redisReply *r) {
  PendingBatch *b = cmd->batch;
  --inflight_commands;
  if (r->type == REDIS_REPLY_ERROR) {
    ++b->replies_err;
    host->metric_add(n->m_errors, 1);
    on_error_reply(n, cmd, std::string_view(r->str, r->len));
  } else if (r->type == REDIS_REPLY_NIL) {
    ++b->replies_nil;
  } else {
    ++b->replies_ok;
  }
  if (--b->outstanding == 0) finish(b);
}

// MOVED: the slot lives elsewhere now (fix the map, send it there, read the
// whole map again soon). ASK: this one key is being migrated; ASKING and the
// command go to the importing node, the map stays.
bool RedisOutput::follow_redirect(Node *n, Cmd *cmd, const Redirect &rd) {
  host->metric_add(rd.kind == Redirect::Moved ? n->m_moved : n->m_ask, 1);
  Node *to = node_for(rd.host.empty() ? n->target.host_or_path : rd.host, rd.port);
  if (rd.kind == Redirect::Moved) {
    slot_owner[static_cast<size_t>(rd.slot)] = to;
    to->in_map = true;
    request_refresh();
  }
  if (stopping || cmd->redirects >= kMaxRedirects || !to->conn) return false;
  ++cmd->redirects;
  return to->send(cmd->batch, cmd, cmd + 1, rd.kind == Redirect::Ask);
}

void RedisOutput::on_error_reply(Node *n, Cmd *cmd, std::string_view msg) {
  PendingBatch *b = cmd->batch;
  if (opt.cluster) {
    Redirect rd = parse_redirect(msg);
    if (rd.kind != Redirect::None) {
      if (!follow_redirect(n, cmd, rd)) mark(b, cmd->record, kRetry);
      return;
    }
  }
  ErrorClass cls = classify_error(msg);
  if (cls == ErrorClass::NoScript && cmd->tmpl == kScript) {
    // The server lost its scripts (restart, SCRIPT FLUSH, failover): EVAL
    // carries the script and caches it again. The outcome does not depend on
    // order, so the resend may run after later commands.
    if (n->conn && !stopping) {
      std::string eval = evalsha_to_eval(std::string_view(cmd->data, cmd->len), kNewerScript);
      if (!eval.empty()) {
        b->resend_text.push_back(std::move(eval));
        const std::string &text = b->resend_text.back();
        b->resent.push_back(Cmd{b, cmd->record, kEval, text.data(), text.size(), cmd->slot});
        Cmd &nc = b->resent.back();
        if (n->send(b, &nc, &nc + 1)) {
          host->metric_add(m_reloads, 1);
          return;
        }
        return;  // the record was marked for retry with the connection
      }
    }
    mark(b, cmd->record, kRetry);
    return;
  }
  if (cls == ErrorClass::NoAuth) {
    mark(b, cmd->record, kRetry);
    n->drop("the server asks for authentication again (" + std::string(msg) + ")");
    return;
  }
  if (cls == ErrorClass::Retry || cls == ErrorClass::NoScript) {
    bool redirect = msg.starts_with("MOVED ") || msg.starts_with("ASK ");
    if (redirect && !opt.cluster && !moved_hint_logged) {
      host->log(inst, INGESTD_LOG_ERROR,
                "%s answers \"%.*s\": it is a Redis Cluster node; set cluster = true on this "
                "output. Records are retried",
                n->address.c_str(), static_cast<int>(msg.size()), msg.data());
      moved_hint_logged = retry_logged = true;
    }
    if (!retry_logged) {
      host->log(inst, INGESTD_LOG_WARN, "redis answers \"%.*s\"; records are retried with backoff",
                static_cast<int>(msg.size()), msg.data());
      retry_logged = true;
    }
    // The cluster is failing over or resharding: the map is stale.
    if (opt.cluster && (msg.starts_with("CLUSTERDOWN") || msg.starts_with("READONLY") ||
                        msg.starts_with("MASTERDOWN")))
      request_refresh();
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

bool parse_address(const std::string &a, Target *t, std::string *err) {
  if (a.rfind("unix:", 0) == 0 || (!a.empty() && a[0] == '/')) {
    t->unix_socket = true;
    t->host_or_path = a[0] == '/' ? a : a.substr(5);
    if (t->host_or_path.empty()) {
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
  t->host_or_path = h;
  if (!p.empty()) {
    int port = 0;
    auto r = std::from_chars(p.data(), p.data() + p.size(), port);
    if (r.ec != std::errc() || r.ptr != p.data() + p.size() || port < 1 || port > 65535) {
      *err = "address: invalid port '" + p + "' in \"" + a + "\"";
      return false;
    }
    t->port = port;
  }
  return true;
}

bool read_cluster_options(const ingestd::common::Options &opts, RedisOptions *o, std::string *err);

bool read_options(const ingestd::common::Options &opts, RedisOptions *o, std::string *err) {
  o->address = opts.string("address");
  if (!parse_address(o->address, &o->target, err)) return false;
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
  if (!read_cluster_options(opts, o, err)) return false;
  return true;
}

// cluster = true: the seeds, and what Redis Cluster cannot do (SELECT, keys
// of one script or command in different slots), refused here so that `-t`
// says it.
bool read_cluster_options(const ingestd::common::Options &opts, RedisOptions *o, std::string *err) {
  o->cluster = opts.flag("cluster");
  o->refresh_ms = opts.duration_ms("cluster_refresh_interval");
  std::vector<std::string> more = opts.strings("addresses");
  if (!o->cluster) {
    if (!more.empty()) {
      *err = "addresses (more seed nodes) needs cluster = true; a single server takes address";
      return false;
    }
    return true;
  }
  if (o->db != 0) {
    *err = "db = " + std::to_string(o->db) +
           ": Redis Cluster has only database 0 (it refuses SELECT); remove db, or set cluster = "
           "false";
    return false;
  }
  more.insert(more.begin(), o->address);
  for (size_t i = 0; i < more.size(); ++i) {
    Target t = o->target;
    t.unix_socket = false;
    t.port = 6379;
    std::string why;
    if (!parse_address(more[i], &t, &why)) {
      *err = i == 0 ? why : "addresses[" + std::to_string(i - 1) + "]" + why.substr(7);
      return false;
    }
    if (t.tls && t.unix_socket) {
      *err = "tls = true needs TCP seed nodes: \"" + more[i] + "\" is a unix socket";
      return false;
    }
    o->seeds.emplace_back(more[i], std::move(t));
  }
  // Keys that one command or the if_newer script touch together must hash to
  // one slot, or Redis answers CROSSSLOT for every record.
  auto key_args = [](const CommandTemplate &c) {
    std::vector<const ArgTemplate *> keys;
    for (const ArgTemplate &a : c.args)
      if (a.declared) keys.push_back(&a);
    return keys;
  };
  const std::string &prefix = o->enc.key_prefix;
  const auto &cmds = o->enc.commands;
  for (size_t i = 0; i < cmds.size(); ++i) {
    std::vector<const ArgTemplate *> keys = key_args(cmds[i]);
    for (const ArgTemplate *k : keys) {
      if (!o->enc.if_newer.empty() && !keys_share_slot(o->enc.if_newer_key, *k, prefix)) {
        *err = "if_newer with cluster = true: the script writes commands[" + std::to_string(i) +
               "]'s key \"" + k->source + "\" and reads if_newer_key \"" +
               o->enc.if_newer_key.source +
               "\", which can hash to different slots. Give both the same hash tag, written "
               "with doubled braces: \"rider:{{{device_id}}}\" and if_newer_key = "
               "\"rider:{{{device_id}}}:ts\" both hash on the device id";
        return false;
      }
      if (k != keys.front() && !keys_share_slot(*keys.front(), *k, prefix)) {
        *err = "commands[" + std::to_string(i) + "] " + cmds[i].name + ": keys \"" +
               keys.front()->source + "\" and \"" + k->source +
               "\" can hash to different slots, which Redis Cluster refuses (CROSSSLOT); give "
               "them the same hash tag, e.g. \"{{{device_id}}}:a\" and \"{{{device_id}}}:b\"";
        return false;
      }
    }
  }
  return true;
}

// ---- lifecycle -----------------------------------------------------------------

RedisOutput::RedisOutput(const ingestd_host_t *h, ingestd_instance_t *in, RedisOptions options)
    : Instance(h, in), opt(std::move(options)), encoder(&opt.enc) {
  m_sent = host->counter(inst, "redis_commands_sent_total", "Commands written to Redis");
  m_ok = host->counter(inst, "redis_replies_ok_total", "Replies that were not errors or nil");
  m_err = host->counter(inst, "redis_replies_error_total", "Error replies");
  m_nil = host->counter(inst, "redis_replies_nil_total", "Nil replies");
  m_reconnects =
      host->counter(inst, "redis_reconnects_total", "Connection attempts after the first one");
  m_inflight = host->gauge(inst, "redis_inflight_commands", "Commands sent and not answered");
  m_waiting = host->gauge(inst, "redis_waiting_batches",
                          "Batches held until the connection is ready or has room");
  m_connected = host->gauge(inst, "redis_connected",
                            "1 while the connection is ready (cluster: every primary's)");
  m_dead = host->counter(inst, "redis_dead_letter_records_total",
                         "Records the redis output sent to the dead-letter file");
  m_reloads = host->counter(inst, "redis_script_reloads_total",
                            "if_newer commands resent as EVAL after NOSCRIPT");
  if (opt.cluster) {
    m_refreshes = host->counter(inst, "redis_cluster_refreshes_total",
                                "Slot maps read from the cluster (CLUSTER SHARDS or SLOTS)");
    m_primaries = host->gauge(inst, "redis_cluster_primaries", "Primaries in the current slot map");
    for (const auto &[address, target] : opt.seeds)
      nodes.push_back(std::make_unique<Node>(this, next_node_id++, address, target, true));
  } else {
    nodes.push_back(std::make_unique<Node>(this, next_node_id++, opt.address, opt.target, true));
  }
}

int RedisOutput::start() {
  uint64_t every =
      std::clamp<uint64_t>(std::min(opt.connect_timeout_ms, opt.command_timeout_ms) / 4, 5, 1000);
  if (opt.cluster) every = std::min<uint64_t>(every, 250);  // refreshes are paced by the tick
  tick = host->timer_start(
      inst, every, every, [](void *p) { static_cast<RedisOutput *>(p)->on_tick(); }, this);
  for (size_t i = 0; i < nodes.size(); ++i)
    nodes[i]->connect();
  return 0;
}

void RedisOutput::stop() {
  if (stopping) return;
  stopping = true;
  if (tick) host->timer_stop(tick);
  tick = nullptr;
  for (auto &n : nodes) {
    if (n->reconnect_timer) host->timer_stop(n->reconnect_timer);
    n->reconnect_timer = nullptr;
    // Sent batches get no replies now: retried by the host (or kept on disk).
    n->drop("stopping");
  }
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
  for (auto &n : nodes) {
    if (n->reconnect_timer) host->timer_stop(n->reconnect_timer);
    n->reconnect_timer = nullptr;
    if (n->conn) {
      Connection *c = n->conn;
      n->conn = nullptr;
      c->close();
    }
    n->fail_expected();  // finishes the batches without telling the host
  }
  nodes.clear();
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
    "Redis commands from templates, pipelined per worker to one server or to each primary of a "
    "Redis Cluster, TLS optional",
    "1.1.0",
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
