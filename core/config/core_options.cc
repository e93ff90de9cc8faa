// The core's option tables: [service], [listeners.*], the rows every input,
// filter and output has, and [[routes]]. The single source for validation,
// defaults, `ingestd --list-plugins -v` and ingestd.conf(5).
#include "config/config.h"

namespace ingestd::config {

namespace {

constexpr uint32_t kRequired = INGESTD_OPT_REQUIRED;
constexpr uint32_t kReload = INGESTD_OPT_RELOADABLE;
// min > max: no range check.
constexpr double kNoMin = 1;
constexpr double kNoMax = 0;
constexpr double kSizeMax = 1099511627776.0 * 1024;  // 1 PiB: any sane size

constexpr ingestd_option_t kService[] = {
    {"workers", INGESTD_OPT_INT, "0", 0, nullptr, 0, 256,
     "Worker threads, each with its own loop and listeners; 0 means one per CPU core"},
    {"cpu_affinity", INGESTD_OPT_BOOL, "false", 0, nullptr, kNoMin, kNoMax,
     "Pin worker N to CPU N (modulo the cores online); threads are named ingestd-wN"},
    {"admin", INGESTD_OPT_STRING, "127.0.0.1:2020", 0, nullptr, kNoMin, kNoMax,
     "host:port of the admin endpoint (/healthz, /readyz, /metrics); \"\" disables it"},
    {"storage_dir", INGESTD_OPT_STRING, "/var/lib/ingestd", 0, nullptr, kNoMin, kNoMax,
     "Directory for the dead-letter file and disk-buffered output queues"},
    {"shutdown_timeout", INGESTD_OPT_DURATION, "10s", kReload, nullptr, 0, 86400000,
     "How long SIGTERM waits for queues to drain before exiting"},
    {"drain_delay", INGESTD_OPT_DURATION, "0s", kReload, nullptr, 0, 3600000,
     "On SIGTERM, fail /readyz and health_path at once but keep accepting and serving this long "
     "(so a load balancer deregisters the target first), then stop as usual"},
    {"watch_config", INGESTD_OPT_BOOL, "false", kReload, nullptr, kNoMin, kNoMax,
     "Reload automatically when a config file changes, as on SIGHUP"},
    {"plugins_dir", INGESTD_OPT_STRING, nullptr, 0, nullptr, kNoMin, kNoMax,
     "Directory to load plugins from instead of the built-in one"},
    {"max_memory", INGESTD_OPT_SIZE, "1GiB", kReload, nullptr, 1, kSizeMax,
     "Most memory the records of all output queues together may take, parsed form and JSON "
     "text (split evenly among workers); above it requests get 503"},
    {"dead_letter_max_size", INGESTD_OPT_SIZE, "100MiB", 0, nullptr, 1, kSizeMax,
     "Size at which storage_dir/dead-letter.ndjson rotates to dead-letter.ndjson.1"},
    {"dead_letter_files", INGESTD_OPT_INT, "5", 0, nullptr, 0, 1000,
     "Rotated dead-letter files kept (.1 is the newest); 0 keeps none"},
    {"log_level", INGESTD_OPT_ENUM, "info", kReload, "error|warn|info|debug", kNoMin, kNoMax,
     "Least severe log messages written to stderr"},
};

constexpr ingestd_option_t kListener[] = {
    {"listen", INGESTD_OPT_STRING, nullptr, kRequired, nullptr, kNoMin, kNoMax,
     "Address to accept HTTP on: \"0.0.0.0:8080\", \"[::1]:8080\" or \"localhost:8080\""},
    {"api_keys_file", INGESTD_OPT_STRING, nullptr, kReload, nullptr, kNoMin, kNoMax,
     "File of accepted API keys, one 'KEY NAME' pair a line (relative to the config file), re-read "
     "on reload; unset: no key "
     "is required"},
    {"api_key_header", INGESTD_OPT_STRING, "x-api-key", kReload, nullptr, kNoMin, kNoMax,
     "Request header that carries the API key"},
    {"source_field", INGESTD_OPT_STRING, "source", kReload, nullptr, kNoMin, kNoMax,
     "Record field set to the API key's name (overwriting what the client sent); \"\" disables"},
    {"client_address_field", INGESTD_OPT_STRING, nullptr, kReload, nullptr, kNoMin, kNoMax,
     "Record field set to the client's address (after trusted_proxies); unset: not recorded"},
    {"rate_limit", INGESTD_OPT_DOUBLE, "0", kReload, nullptr, 0, 1e9,
     "Records per second each API key may send (429 + Retry-After above it); 0: no limit"},
    {"rate_burst", INGESTD_OPT_INT, "0", kReload, nullptr, 0, 1e9,
     "Records an API key may send at once above its rate; 0: one second's worth"},
    {"max_body", INGESTD_OPT_SIZE, "1MiB", kReload, nullptr, 1, kSizeMax,
     "Largest request body accepted as sent (413 above it)"},
    {"max_body_decompressed", INGESTD_OPT_SIZE, "8MiB", kReload, nullptr, 1, kSizeMax,
     "Largest request body after gzip/deflate decompression (413 above it); a body is "
     "decompressed only once its request is taken (401, 404, 503 cost no inflating)"},
    {"max_header", INGESTD_OPT_SIZE, "16KiB", kReload, nullptr, 1, kSizeMax,
     "Largest total size of the request line and headers (431 above it)"},
    {"header_timeout", INGESTD_OPT_DURATION, "10s", kReload, nullptr, 1, 3600000,
     "Time allowed to receive the request headers (408 after it)"},
    {"body_timeout", INGESTD_OPT_DURATION, "30s", kReload, nullptr, 1, 3600000,
     "Time allowed to receive the request body (408 after it)"},
    {"idle_timeout", INGESTD_OPT_DURATION, "75s", kReload, nullptr, 1, 86400000,
     "How long an idle keep-alive connection stays open (longer than a load balancer's idle "
     "timeout, 60 s on an ALB, so the balancer closes first)"},
    {"max_connections", INGESTD_OPT_INT, "10000", kReload, nullptr, 1, 1000000,
     "Open connections per worker; further ones wait in the accept queue"},
    {"trusted_proxies", INGESTD_OPT_STRING_LIST, "[]", kReload, nullptr, kNoMin, kNoMax,
     "CIDRs of proxies whose X-Forwarded-For header is believed"},
    {"responses", INGESTD_OPT_ENUM, "ingestd", kReload, "ingestd|api-gateway", kNoMin, kNoMax,
     "Words of the refusals: ingestd's own, or api-gateway for exactly what an API Gateway REST "
     "API answers (403 Forbidden, 403 Missing Authentication Token, 429, 413)"},
    {"health_path", INGESTD_OPT_STRING, nullptr, kReload, nullptr, kNoMin, kNoMax,
     "Path answered 200 {\"status\":\"ok\"} to GET without an API key (503 once draining), for a "
     "load balancer's health check on the traffic port; unset: none"},
    {"tls_cert", INGESTD_OPT_STRING, nullptr, kReload, nullptr, kNoMin, kNoMax,
     "PEM certificate chain served over HTTPS (relative to the config file); with tls_key the "
     "listener speaks TLS only; re-read on reload"},
    {"tls_key", INGESTD_OPT_STRING, nullptr, kReload | INGESTD_OPT_SECRET, nullptr, kNoMin, kNoMax,
     "PEM private key of tls_cert (relative to the config file)"},
    {"tls_client_ca", INGESTD_OPT_STRING, nullptr, kReload, nullptr, kNoMin, kNoMax,
     "PEM CA certificates: set, every client must present a certificate signed by one (mutual "
     "TLS)"},
    {"tls_min_version", INGESTD_OPT_ENUM, "1.2", kReload, "1.2|1.3", kNoMin, kNoMax,
     "Oldest TLS version a client may use"},
    {"client_cert_field", INGESTD_OPT_STRING, nullptr, kReload, nullptr, kNoMin, kNoMax,
     "With tls_client_ca: record field set to the client certificate's subject CN (else its "
     "first subjectAltName); unset: not recorded"},
    {"content_types", INGESTD_OPT_STRING_LIST,
     "[\"application/json\", \"application/x-ndjson\", \"text/plain\", "
     "\"application/x-www-form-urlencoded\"]",
     kReload, nullptr, kNoMin, kNoMax,
     "Media types a request body may declare (415 otherwise); the body is parsed as JSON "
     "whatever it says, so curl -d works; [] accepts any"},
};

constexpr ingestd_option_t kInput[] = {
    {"plugin", INGESTD_OPT_STRING, nullptr, kRequired, nullptr, kNoMin, kNoMax,
     "Input plugin that validates and shapes the records (in_NAME.so)"},
    {"listener", INGESTD_OPT_STRING, nullptr, kRequired | kReload, nullptr, kNoMin, kNoMax,
     "Name of the [listeners.NAME] section this input is served on"},
    {"path", INGESTD_OPT_STRING, nullptr, kRequired | kReload, nullptr, kNoMin, kNoMax,
     "URL path that POST requests are sent to, starting with '/'"},
    {"tag", INGESTD_OPT_STRING, nullptr, kReload, nullptr, kNoMin, kNoMax,
     "Tag given to the records, matched by routes; defaults to the input's name"},
};

constexpr ingestd_option_t kFilter[] = {
    {"plugin", INGESTD_OPT_STRING, nullptr, kRequired, nullptr, kNoMin, kNoMax,
     "Filter plugin that modifies or drops records (filter_NAME.so)"},
};

constexpr ingestd_option_t kOutput[] = {
    {"plugin", INGESTD_OPT_STRING, nullptr, kRequired, nullptr, kNoMin, kNoMax,
     "Output plugin that delivers the batches (out_NAME.so)"},
    {"buffer", INGESTD_OPT_ENUM, "memory", 0, "memory|disk", kNoMin, kNoMax,
     "Where the queue lives: memory, or disk to survive crashes and restarts"},
    {"max_memory", INGESTD_OPT_SIZE, "64MiB", kReload, nullptr, 1, kSizeMax,
     "Most memory the output's queued and in-flight records may take (parsed form and JSON "
     "text) before requests get 503"},
    {"max_records", INGESTD_OPT_INT, "100000", kReload, nullptr, 1, 1e12,
     "Most records queued before requests get 503"},
    {"max_disk", INGESTD_OPT_SIZE, "1GiB", kReload, nullptr, 1 << 20, kSizeMax,
     "buffer = disk: most bytes of the logs this output reads before requests get 503 (split "
     "evenly among workers); -t and the start warn when it exceeds the free space under "
     "storage_dir, which then fills first (also 503, until delivered records free it)"},
    {"fsync", INGESTD_OPT_ENUM, "interval", kReload, "always|interval|never", kNoMin, kNoMax,
     "buffer = disk: always syncs before answering; interval syncs every fsync_interval; never "
     "leaves it to the kernel (all three survive a crash of ingestd)"},
    {"fsync_interval", INGESTD_OPT_DURATION, "1s", kReload, nullptr, 1, 3600000,
     "buffer = disk, fsync = interval: most time between two syncs of the log"},
    {"batch_max_records", INGESTD_OPT_INT, "500", kReload, nullptr, 1, 1000000,
     "Most records handed to the plugin in one batch"},
    {"batch_max_bytes", INGESTD_OPT_SIZE, "4MiB", kReload, nullptr, 1, kSizeMax,
     "Most record bytes handed to the plugin in one batch"},
    {"flush_interval", INGESTD_OPT_DURATION, "1s", kReload, nullptr, 1, 3600000,
     "Longest time a record waits for its batch to fill"},
    {"max_inflight", INGESTD_OPT_INT, "1", kReload, nullptr, 1, 1024,
     "Batches being sent at the same time, per worker"},
    {"retry_initial", INGESTD_OPT_DURATION, "100ms", kReload, nullptr, 1, 3600000,
     "First retry delay; it doubles, with jitter, up to retry_max"},
    {"retry_max", INGESTD_OPT_DURATION, "30s", kReload, nullptr, 1, 86400000,
     "Longest delay between two retries"},
    {"max_attempts", INGESTD_OPT_INT, "0", kReload, nullptr, 0, 1000000,
     "Attempts before a record goes to the dead-letter file; 0 retries forever"},
};

constexpr ingestd_option_t kRoute[] = {
    {"match", INGESTD_OPT_STRING, nullptr, kRequired, nullptr, kNoMin, kNoMax,
     "Glob over record tags (input names) that this route takes"},
    {"filters", INGESTD_OPT_STRING_LIST, "[]", 0, nullptr, kNoMin, kNoMax,
     "Names of [filters.NAME] sections applied in order"},
    {"to", INGESTD_OPT_STRING_LIST, nullptr, kRequired, nullptr, kNoMin, kNoMax,
     "Names of the [outputs.NAME] sections the records are queued for"},
};

}  // namespace

std::span<const ingestd_option_t> service_options() {
  return kService;
}
std::span<const ingestd_option_t> listener_options() {
  return kListener;
}
std::span<const ingestd_option_t> input_options() {
  return kInput;
}
std::span<const ingestd_option_t> filter_options() {
  return kFilter;
}
std::span<const ingestd_option_t> output_options() {
  return kOutput;
}
std::span<const ingestd_option_t> route_options() {
  return kRoute;
}

std::span<const ingestd_option_t> core_options(ingestd_kind_type kind) {
  switch (kind) {
    case INGESTD_KIND_INPUT:
      return kInput;
    case INGESTD_KIND_FILTER:
      return kFilter;
    case INGESTD_KIND_OUTPUT:
      return kOutput;
  }
  return {};
}

}  // namespace ingestd::config
