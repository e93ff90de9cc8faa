/* ingestd plugin ABI: the only header a plugin includes.
 *
 * Plain C, depends on the C standard library only. A plugin is a shared object
 * that exports one symbol, `ingestd_plugin_v1`, of type `ingestd_plugin_t`.
 *
 * Rules that hold for every pointer here:
 * - "borrowed": owned by the host, valid only for the duration of the call
 *   (or until the object it came from is released, where stated).
 * - "owned by the plugin": the plugin allocated it and frees it.
 * - Whoever allocates frees. No C++ types, exceptions or longjmp cross the
 *   boundary. Every hook runs on its worker's loop thread; instances are never
 *   shared between workers, so a plugin needs no locks and no globals.
 *
 * Versioning: minor versions only append fields at the end of the structs
 * below. The loader reads only the fields that `struct_size` covers, and a
 * plugin reads only the host functions that `ingestd_host_t.struct_size`
 * covers (use INGESTD_HOST_HAS()).
 */
#ifndef INGESTD_PLUGIN_H
#define INGESTD_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define INGESTD_ABI_MAJOR 1
#define INGESTD_ABI_MINOR 1

#if defined(__GNUC__)
#define INGESTD_EXPORT __attribute__((visibility("default")))
#define INGESTD_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define INGESTD_EXPORT
#define INGESTD_PRINTF(f, a)
#endif

/* ---- types ------------------------------------------------------------ */

typedef enum ingestd_kind_type_ {
  INGESTD_KIND_INPUT = 1,
  INGESTD_KIND_FILTER = 2,
  INGESTD_KIND_OUTPUT = 3
} ingestd_kind_type;

typedef enum ingestd_log_level_type_ {
  INGESTD_LOG_ERROR = 0,
  INGESTD_LOG_WARN = 1,
  INGESTD_LOG_INFO = 2,
  INGESTD_LOG_DEBUG = 3
} ingestd_log_level_type;

/* Option value types. The host validates config against them and applies
 * defaults, so a plugin reads typed, checked values only. */
typedef enum ingestd_option_kind_type_ {
  INGESTD_OPT_STRING = 1,
  INGESTD_OPT_INT = 2, /* int64 */
  INGESTD_OPT_DOUBLE = 3,
  INGESTD_OPT_BOOL = 4,
  INGESTD_OPT_SIZE = 5,             /* "1MiB", "512KiB", 1024 -> bytes (uint64) */
  INGESTD_OPT_DURATION = 6,         /* "500ms", "2s", "1m" -> milliseconds (int64) */
  INGESTD_OPT_ENUM = 7,             /* string, one of `choices` ("a|b|c") */
  INGESTD_OPT_STRING_LIST = 8,      /* ["a", "b"] */
  INGESTD_OPT_STRING_LIST_LIST = 9, /* [["a", "b"], ["c"]] */
  INGESTD_OPT_STRING_MAP = 10       /* { key = "value", ... } */
} ingestd_option_kind_type;

#define INGESTD_OPT_REQUIRED 0x1u   /* config must set it */
#define INGESTD_OPT_SECRET 0x2u     /* never printed in logs or dumps */
#define INGESTD_OPT_RELOADABLE 0x4u /* may change on reload without restart */

/* One row of a plugin's declarative option table. The same table drives
 * validation, defaults, `ingestd --list-plugins -v` and ingestd.conf(5). */
typedef struct ingestd_option_type_ {
  const char *name;
  ingestd_option_kind_type type;
  const char *default_value; /* as TOML would spell it; NULL: no default */
  uint32_t flags;
  const char *choices; /* ENUM: "memory|disk"; else NULL */
  double min;          /* INT/DOUBLE/SIZE/DURATION range; unchecked if min > max */
  double max;
  const char *description; /* one line, required, unique within the table */
} ingestd_option_t;

/* Opaque handles, all owned by the host. */
typedef struct ingestd_instance_ ingestd_instance_t; /* a plugin instance */
typedef struct ingestd_config_ ingestd_config_t;     /* its validated options */
typedef struct ingestd_record_ ingestd_record_t;     /* one JSON object */
typedef struct ingestd_value_ ingestd_value_t;       /* a JSON value inside a record */
typedef struct ingestd_batch_ ingestd_batch_t;       /* records handed to an output */
typedef struct ingestd_timer_ ingestd_timer_t;
typedef struct ingestd_metric_ ingestd_metric_t;

typedef enum ingestd_value_kind_type_ {
  INGESTD_VALUE_NULL = 0,
  INGESTD_VALUE_BOOL = 1,
  INGESTD_VALUE_NUMBER = 2,
  INGESTD_VALUE_STRING = 3,
  INGESTD_VALUE_ARRAY = 4,
  INGESTD_VALUE_OBJECT = 5
} ingestd_value_kind_type;

/* Why an input rejected a record: both strings borrowed from the plugin
 * (static text or the instance's own buffer), read by the host at once. */
typedef struct ingestd_reject_type_ {
  const char *field;  /* dotted path of the offending field, or NULL */
  const char *reason; /* short, human-readable */
} ingestd_reject_t;

typedef enum ingestd_filter_result_type_ {
  INGESTD_FILTER_KEEP = 0,
  INGESTD_FILTER_DROP = 1
} ingestd_filter_result_type;

/* How an output finished a batch (ingestd_host_t.batch_done). */
typedef enum ingestd_batch_status_type_ {
  /* Every record not marked with batch_retry_record or batch_dead_letter is
   * delivered; marked ones are retried or dead-lettered. */
  INGESTD_BATCH_OK = 0,
  /* Nothing was delivered (or it is unknown): the whole batch is retried
   * after the host's backoff. Marks are ignored. */
  INGESTD_BATCH_RETRY = 1
} ingestd_batch_status_type;

typedef void (*ingestd_timer_cb)(void *arg);

/* ---- host services: HTTP client and AWS credentials ---------------------- */

typedef struct ingestd_http_call_ ingestd_http_call_t; /* one request in flight */
typedef struct ingestd_aws_ ingestd_aws_t;             /* an AWS credentials chain */

typedef struct ingestd_http_header_type_ {
  const char *name;
  const char *value;
} ingestd_http_header_t;

/* Where AWS credentials come from. Every field may be NULL; the chain then
 * follows the AWS SDK order: these explicit keys; the environment
 * (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN); web identity
 * (AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN -> STS, as EKS IRSA sets up);
 * container credentials (AWS_CONTAINER_CREDENTIALS_FULL_URI / _RELATIVE_URI
 * with AWS_CONTAINER_AUTHORIZATION_TOKEN[_FILE], as EKS Pod Identity and ECS
 * set up); the shared credentials and config files with `profile`; EC2
 * instance metadata with IMDSv2 tokens. Endpoints are overridable for tests
 * and for VPC / FIPS / China partitions. All strings are copied. */
typedef struct ingestd_aws_config_type_ {
  /* sizeof(ingestd_aws_config_t) as the plugin was built; fields past it
   * read as NULL (0 is taken as the ABI 1.0 size). */
  uint32_t struct_size;
  const char *access_key_id;
  const char *secret_access_key;
  const char *session_token;
  const char *profile;      /* default: AWS_PROFILE, else "default" */
  const char *region;       /* for STS; default: the request's region */
  const char *sts_endpoint; /* default https://sts.REGION.amazonaws.com */
  const char
      *imds_endpoint; /* default http://169.254.169.254 (AWS_EC2_METADATA_SERVICE_ENDPOINT) */
  const char *container_endpoint; /* default http://169.254.170.2 for _RELATIVE_URI */
} ingestd_aws_config_t;

typedef struct ingestd_http_request_type_ {
  /* sizeof(ingestd_http_request_t) as the plugin was built; fields past it
   * read as 0 (0 is taken as the ABI 1.0 size). */
  uint32_t struct_size;
  const char *method;                   /* "POST", "GET", ... */
  const char *url;                      /* absolute http:// or https:// URL */
  const ingestd_http_header_t *headers; /* copied */
  size_t header_count;
  const char *body; /* copied before http_request returns, unless body_lent */
  size_t body_len;
  uint64_t timeout_ms; /* whole exchange; 0 means 30 s */
  /* SigV4: when `aws` and `aws_service` are set the host signs the request
   * (X-Amz-Date, Authorization, X-Amz-Security-Token when the credentials
   * have one, X-Amz-Content-Sha256 for services that want it). */
  ingestd_aws_t *aws;
  const char *aws_service; /* "firehose", "es", "aoss" */
  const char *aws_region;
  /* TLS; verification is on unless insecure is set. */
  const char *ca_file;
  const char *client_cert;
  const char *client_key;
  int insecure;
  /* ABI 1.1: non-zero when the plugin keeps `body` valid and unchanged
   * until the callback has run; the host then sends it without a copy. */
  int body_lent;
} ingestd_http_request_t;

typedef struct ingestd_http_response_type_ {
  int status;        /* HTTP status; 0 when no response arrived */
  const char *error; /* transport error ("connection refused", "timeout",
                        "cancelled", "credentials: ..."), NULL with a response */
  const char *body;  /* borrowed for the callback, NUL-terminated */
  size_t body_len;
  const ingestd_http_header_t *headers; /* borrowed for the callback, names lower-case */
  size_t header_count;
  uint64_t elapsed_ms;
} ingestd_http_response_t;

/* Runs once per started request, on the loop thread. */
typedef void (*ingestd_http_done_cb)(void *arg, const ingestd_http_response_t *resp);

/* ---- host functions ----------------------------------------------------- */

/* Handed to every hook that needs it; valid for the life of the process.
 * Paths ("a.b.c") address nested object fields. */
typedef struct ingestd_host_type_ {
  uint32_t struct_size;
  uint16_t abi_major;
  uint16_t abi_minor;

  /* Options, already validated and defaulted. A missing optional option
   * without default reads as NULL / 0 and has_option returns 0. */
  int (*has_option)(const ingestd_config_t *cfg, const char *name);
  const char *(*option_string)(const ingestd_config_t *cfg,
                               const char *name);                       /* borrowed; STRING, ENUM */
  int64_t (*option_int)(const ingestd_config_t *cfg, const char *name); /* INT, DURATION (ms) */
  uint64_t (*option_size)(const ingestd_config_t *cfg, const char *name); /* SIZE (bytes) */
  double (*option_double)(const ingestd_config_t *cfg, const char *name);
  int (*option_bool)(const ingestd_config_t *cfg, const char *name);
  /* STRING_LIST: count and items; STRING_LIST_LIST: list i, item j;
   * STRING_MAP: count, key i, value i. All strings borrowed. */
  size_t (*option_list_size)(const ingestd_config_t *cfg, const char *name);
  const char *(*option_list_item)(const ingestd_config_t *cfg, const char *name, size_t i);
  size_t (*option_list_list_size)(const ingestd_config_t *cfg, const char *name, size_t i);
  const char *(*option_list_list_item)(const ingestd_config_t *cfg, const char *name, size_t i,
                                       size_t j);
  const char *(*option_map_key)(const ingestd_config_t *cfg, const char *name, size_t i);

  /* Logging, prefixed with the instance's name. */
  void (*log)(ingestd_instance_t *inst, ingestd_log_level_type level, const char *fmt, ...)
      INGESTD_PRINTF(3, 4);
  const char *(*instance_name)(const ingestd_instance_t *inst); /* borrowed */
  void *(*uv_loop)(ingestd_instance_t *inst); /* the worker's uv_loop_t, borrowed */

  /* Timers on the worker's loop. The callback runs on the loop thread.
   * timer_stop frees the timer; the host frees remaining ones after destroy. */
  ingestd_timer_t *(*timer_start)(ingestd_instance_t *inst, uint64_t timeout_ms, uint64_t repeat_ms,
                                  ingestd_timer_cb cb, void *arg);
  /* Re-arms a timer (also one that fired and stopped). Timers live until
   * timer_stop, one-shot ones too. */
  void (*timer_restart)(ingestd_timer_t *timer, uint64_t timeout_ms, uint64_t repeat_ms);
  void (*timer_stop)(ingestd_timer_t *timer);
  uint64_t (*now_ms)(ingestd_instance_t *inst); /* monotonic, loop time */
  int64_t (*wall_ms)(void);                     /* epoch milliseconds */

  /* Metrics: created in init, named ingestd_<name>, labelled with the
   * instance; the host sums workers when /metrics is read. */
  ingestd_metric_t *(*counter)(ingestd_instance_t *inst, const char *name, const char *help);
  ingestd_metric_t *(*gauge)(ingestd_instance_t *inst, const char *name, const char *help);
  void (*metric_add)(ingestd_metric_t *m, double delta);
  void (*metric_set)(ingestd_metric_t *m, double value);

  /* Records. A record is a JSON object; values are borrowed from it and live
   * until the record is modified or released. */
  const char *(*record_tag)(const ingestd_record_t *rec);     /* borrowed */
  int64_t (*record_received_ms)(const ingestd_record_t *rec); /* epoch ms the request arrived */
  const ingestd_value_t *(*record_root)(const ingestd_record_t *rec);
  const ingestd_value_t *(*record_get)(const ingestd_record_t *rec, const char *path);
  /* Setters create intermediate objects; they return 0 or -1 when a path
   * crosses a non-object. */
  int (*record_set_string)(ingestd_record_t *rec, const char *path, const char *s, size_t len);
  int (*record_set_number)(ingestd_record_t *rec, const char *path, double v);
  int (*record_set_int)(ingestd_record_t *rec, const char *path, int64_t v);
  int (*record_set_bool)(ingestd_record_t *rec, const char *path, int v);
  int (*record_set_null)(ingestd_record_t *rec, const char *path);
  /* Parses `json` and stores it at path: -1 if it is not valid JSON. */
  int (*record_set_json)(ingestd_record_t *rec, const char *path, const char *json, size_t len);
  int (*record_remove)(ingestd_record_t *rec, const char *path); /* 1 removed, 0 absent */
  int (*record_rename)(ingestd_record_t *rec, const char *from, const char *to); /* 1, 0 absent */
  /* The record as compact JSON, serialised once and cached; borrowed until
   * the record is modified or released. */
  const char *(*record_json)(ingestd_record_t *rec, size_t *len);

  ingestd_value_kind_type (*value_kind)(const ingestd_value_t *v);
  int (*value_bool)(const ingestd_value_t *v);
  double (*value_number)(const ingestd_value_t *v);
  /* The number exactly as it was written (lossless), borrowed. */
  const char *(*value_number_text)(const ingestd_value_t *v, size_t *len);
  const char *(*value_string)(const ingestd_value_t *v, size_t *len); /* borrowed, not NUL-safe */
  size_t (*value_size)(const ingestd_value_t *v); /* array items or object members */
  const ingestd_value_t *(*value_item)(const ingestd_value_t *v, size_t i);
  const char *(*value_key)(const ingestd_value_t *v, size_t i, size_t *len); /* object member i */
  const ingestd_value_t *(*value_get)(const ingestd_value_t *v, const char *key);
  /* Serialises any value as compact JSON into the instance's scratch buffer;
   * borrowed until the next call on the same instance. */
  const char *(*value_json)(ingestd_instance_t *inst, const ingestd_value_t *v, size_t *len);

  /* Inputs that produce records themselves (not from an HTTP request):
   * routes a new record parsed from `json` under the instance's tag.
   * 0 accepted; -1 invalid JSON; -2 a queue is full (nothing enqueued). */
  int (*emit_json)(ingestd_instance_t *inst, const char *json, size_t len);

  /* Batches handed to an output's on_flush. Records are borrowed until
   * batch_done. An output must call batch_done exactly once per batch. */
  size_t (*batch_size)(const ingestd_batch_t *b);
  ingestd_record_t *(*batch_record)(ingestd_batch_t *b, size_t i);
  void (*batch_retry_record)(ingestd_batch_t *b, size_t i);
  void (*batch_dead_letter)(ingestd_batch_t *b, size_t i, const char *reason);
  void (*batch_done)(ingestd_batch_t *b, ingestd_batch_status_type status);

  /* HTTP client on the worker's loop (libcurl multi, keep-alive connections
   * shared by the worker's instances; HTTP/1.1). The callback runs exactly
   * once, later, never inside http_request; when the instance stops, calls
   * still in flight complete with error "cancelled" before on_stop returns
   * to the host. NULL (and no callback) for an invalid request (bad URL, no
   * method) or an instance already stopped; the reason is logged. */
  ingestd_http_call_t *(*http_request)(ingestd_instance_t *inst, const ingestd_http_request_t *req,
                                       ingestd_http_done_cb cb, void *arg);
  /* The callback still runs (later, from the loop) with error "cancelled".
   * Only for a call whose callback has not run yet: the handle is freed
   * right after its callback. */
  void (*http_cancel)(ingestd_http_call_t *call);

  /* A credentials chain for SigV4, owned by the host, shared by the worker's
   * instances with the same config, refreshed in the background before
   * temporary credentials expire (never blocking the loop). Valid until the
   * instance is destroyed. NULL only when cfg is NULL. */
  ingestd_aws_t *(*aws_credentials)(ingestd_instance_t *inst, const ingestd_aws_config_t *cfg);
  /* Where the chain's current credentials came from ("environment",
   * "web identity", "imds", ...) or NULL while none were found yet; for logs. */
  const char *(*aws_credentials_source)(ingestd_aws_t *aws);

  /* ---- ABI 1.1 ---- */

  /* Calls cb(arg) once on a later turn of the worker's loop, after the I/O
   * ready by then has been handled (a libuv idle callback). Long work done a
   * slice per call (building a large request body) then holds no request up
   * for long; a 0 ms timer would not yield, libuv runs it again in the same
   * turn. Calls still pending when the instance is destroyed are dropped;
   * after on_stop they still run. 0, or -1 without a loop or callback. */
  int (*call_soon)(ingestd_instance_t *inst, ingestd_timer_cb cb, void *arg);
} ingestd_host_t;

#define INGESTD_HOST_HAS(host, fn) \
  ((host)->struct_size >= offsetof(ingestd_host_t, fn) + sizeof((host)->fn) && (host)->fn)

/* ---- the plugin descriptor ---------------------------------------------- */

/* Hooks a plugin implements. Return 0 on success; on failure return -1 after
 * logging the reason with host->log. `instance_data` is owned by the plugin:
 * allocated in init, freed in destroy. */
typedef struct ingestd_plugin_type_ {
  uint16_t abi_major;   /* INGESTD_ABI_MAJOR */
  uint16_t abi_minor;   /* INGESTD_ABI_MINOR */
  uint32_t struct_size; /* sizeof(ingestd_plugin_t) the plugin was built with */
  const char *name;     /* "trace"; the file is KIND_NAME.so (in_trace.so) */
  ingestd_kind_type kind;
  const char *description;         /* one line */
  const char *version;             /* the plugin's own version */
  const ingestd_option_t *options; /* table, `option_count` rows */
  size_t option_count;

  /* Lifecycle, on the worker's loop thread. init validates what the option
   * table cannot express (templates, cross-field rules); it also runs for
   * `ingestd -t`, where start never follows. */
  int (*on_init)(const ingestd_host_t *host, ingestd_instance_t *inst, const ingestd_config_t *cfg,
                 void **instance_data);
  int (*on_start)(void *instance_data);
  /* Stop taking new work; an output finishes or abandons in-flight batches
   * (calling batch_done for each). */
  void (*on_stop)(void *instance_data);
  void (*on_destroy)(void *instance_data);

  /* Input: validate and shape one record of an HTTP request body.
   * Return 0 to accept, or -1 and fill `why` to reject it. */
  int (*on_input_record)(void *instance_data, ingestd_record_t *rec, ingestd_reject_t *why);

  /* Filter: modify the record in place; KEEP or DROP it. */
  ingestd_filter_result_type (*on_filter)(void *instance_data, ingestd_record_t *rec);

  /* Output: send a batch; call host->batch_done when finished (at once or
   * later from a loop callback). */
  void (*on_flush)(void *instance_data, ingestd_batch_t *batch);
  /* Minor versions append here. */
} ingestd_plugin_t;

/* The one symbol a plugin exports:
 *   INGESTD_EXPORT const ingestd_plugin_t ingestd_plugin_v1 = { ... };
 */
#define INGESTD_PLUGIN_SYMBOL "ingestd_plugin_v1"

#ifdef __cplusplus
}
#endif

#endif /* INGESTD_PLUGIN_H */
