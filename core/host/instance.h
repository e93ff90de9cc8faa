// A plugin instance as the host sees it: the object behind ingestd_instance_t,
// plus batches (ingestd_batch_t) and the host-function table.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "host/record.h"
#include "httpclient/http_client.h"
#include "ingestd/plugin.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/uv_handle.h"

namespace ingestd {

namespace aws {
class Registry;
}
namespace net {
class Stream;
}
namespace tls {
class Context;
}

struct Instance;

// A timer a plugin started; owned by its instance until timer_stop.
struct PluginTimer {
  UvHandle<uv_timer_t> handle;
  ingestd_timer_cb cb = nullptr;
  void *arg = nullptr;
  Instance *owner = nullptr;
};

// A stream a plugin opened (the object behind ingestd_stream_t); owned by
// its instance until stream_close, until on_closed returns, or until
// destroy() closes what the plugin left.
struct PluginStream {
  net::Stream *stream = nullptr;  // frees itself once closed; null then
  Instance *owner = nullptr;
  ingestd_stream_callbacks_t cb{};  // the plugin's, fields past its struct_size null
  void *arg = nullptr;
  bool in_on_closed = false;  // stream_close from on_closed: freed after it anyway
  PluginStream() = default;
  PluginStream(const PluginStream &) = delete;
  PluginStream &operator=(const PluginStream &) = delete;
  ~PluginStream();  // closes the stream: no callback after

  ingestd_stream_t *abi() { return reinterpret_cast<ingestd_stream_t *>(this); }
  static PluginStream *from(ingestd_stream_t *s) { return reinterpret_cast<PluginStream *>(s); }
  static const PluginStream *from(const ingestd_stream_t *s) {
    return reinterpret_cast<const PluginStream *>(s);
  }
};

struct Instance {
  const ingestd_plugin_t *plugin = nullptr;
  std::string name;   // section name: "redis"
  std::string scope;  // "outputs.redis", for logs
  const ingestd_config_t *config = nullptr;
  uv_loop_t *loop = nullptr;
  const Logger *logger = nullptr;
  MetricsRegistry *metrics = nullptr;
  Labels labels;           // {output="redis"}
  std::string log_prefix;  // `ingestd -t`: "file:line:col: " of the section
  void *data = nullptr;    // the plugin's, from on_init
  bool initialized = false;
  bool started = false;
  std::string scratch;  // value_json's buffer
  std::vector<std::unique_ptr<PluginTimer>> timers;
  // call_soon: what runs on the next loop turn, from an idle handle.
  std::vector<std::pair<ingestd_timer_cb, void *>> soon;
  UvHandle<uv_idle_t> soon_idle;
  // Inputs: route a record built from JSON text (emit_json).
  std::function<int(std::string_view)> emit;
  // The worker's HTTP client and AWS credentials chains (http_request,
  // aws_credentials); both outlive the instance. Null: the service is absent.
  HttpClient *http = nullptr;
  aws::Registry *aws = nullptr;
  // The instance's calls in flight; stop() cancels what the plugin left.
  HttpCallGroup http_calls;
  // The instance's open streams; destroy() closes what the plugin left,
  // after on_destroy (like timers), so no stream callback runs on freed data.
  std::vector<std::unique_ptr<PluginStream>> streams;
  // TLS client contexts of stream_open, by (ca_file, verify, cert, key): a
  // reconnect does not read and parse the files again (a reload, which
  // makes new instances, does).
  std::map<std::string, std::shared_ptr<const tls::Context>> stream_tls;
  // A setter on a read-only (batched) record was refused: said once.
  bool warned_read_only = false;

  ingestd_instance_t *abi() { return reinterpret_cast<ingestd_instance_t *>(this); }
  static Instance *from(ingestd_instance_t *i) { return reinterpret_cast<Instance *>(i); }
  static const Instance *from(const ingestd_instance_t *i) {
    return reinterpret_cast<const Instance *>(i);
  }

  // Runs on_init; false (already logged) when the plugin refuses its config.
  // A failed on_init is torn down at once as destroy() does: calls in flight
  // cancelled, then on_destroy (when on_init stored instance data), then the
  // timers and call_soon calls it left, so none runs on freed data.
  bool init();
  bool start();
  // on_stop, then the HTTP calls still in flight end with "cancelled" (their
  // callbacks run before stop() returns, so before on_destroy).
  void stop();
  // on_destroy, then the timers, call_soon calls and streams the plugin left.
  void destroy();
  ~Instance() { destroy(); }
};

// What the output decided for each record of a batch.
enum class Mark : uint8_t { None, Retry, DeadLetter };

struct Batch {
  uint64_t id = 0;
  // The output it is handed to, if the dispatcher says: refused setters on its
  // (read-only) records are logged through it.
  Instance *output = nullptr;
  std::vector<RecordPtr> records;
  std::vector<Mark> marks;
  std::vector<std::string> reasons;  // dead-letter reasons, by record
  bool done = false;
  uint64_t started_ms = 0;
  std::function<void(Batch &, ingestd_batch_status_type)> on_done;

  ingestd_batch_t *abi() { return reinterpret_cast<ingestd_batch_t *>(this); }
  static Batch *from(ingestd_batch_t *b) { return reinterpret_cast<Batch *>(b); }
  static const Batch *from(const ingestd_batch_t *b) { return reinterpret_cast<const Batch *>(b); }
};

// The host-function table handed to every plugin (immutable, one per process).
const ingestd_host_t *host_table();

}  // namespace ingestd
