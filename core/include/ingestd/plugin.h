/* ingestd plugin ABI: the only header a plugin includes.
 *
 * Plain C, depends on the C standard library only. A plugin is a shared object
 * that exports one symbol, `ingestd_plugin_v1`, of type `ingestd_plugin_t`.
 *
 * OWNERSHIP. Every pointer's doc below says who owns it and how long it lives:
 * - "host-owned, valid until X": the host allocated it and frees it at X; the
 *   plugin never frees it and must not use it after X.
 * - "borrowed for the call": host-owned, valid only until the hook or host
 *   function that handed it out returns.
 * - "plugin-owned": the plugin allocated it and frees it; "read at once" means
 *   the host copies what it needs before the call returns.
 * Whoever allocates frees. No C++ types, exceptions or longjmp cross the
 * boundary. Every hook and callback runs on its worker's loop thread;
 * instances are never shared between workers, so a plugin needs no locks and
 * no globals. The lifetime of the handles an instance gets:
 *
 *   handle                  valid from            until
 *   ingestd_host_t *        load                  process exit (static)
 *   ingestd_instance_t *    on_init               on_destroy returns
 *   ingestd_config_t *      on_init               on_destroy returns
 *     and option strings
 *   ingestd_metric_t *      counter()/gauge()     on_destroy returns
 *   ingestd_timer_t *       timer_start()         timer_stop(), or on_destroy
 *                                                 returns (the host frees the rest)
 *   ingestd_aws_t *         aws_credentials()     on_destroy returns
 *   ingestd_http_call_t *   http_request()        its callback returns
 *   ingestd_stream_t *      stream_open()         stream_close(), the on_closed
 *                                                 callback returns, or on_destroy
 *                                                 returns (the host closes the rest)
 *   record (input, filter)  the hook's call       the hook returns
 *   ingestd_batch_t *       on_flush              batch_done() is called
 *   batch records (const)   batch_record()        batch_done() is called
 *   record_copy() result    record_copy()         record_free() (plugin-owned)
 *   instance_data           on_init stores it     on_destroy frees it (plugin-owned)
 *   descriptor, option      dlopen                dlclose: static data of the
 *     table, their strings                        plugin, read by the host at any time
 *
 * RETURN CONVENTIONS. Every int a hook or host function returns as a result
 * is one of ingestd_result_type (below), with one meaning everywhere:
 *
 *   INGESTD_OK       0   success (for remove / rename: nothing was there,
 *                        nothing changed)
 *   INGESTD_CHANGED  1   success, and something was there and changed
 *                        (a field removed, renamed)
 *   INGESTD_ERROR   -1   refused or failed: invalid argument or path, a
 *                        read-only record, a target that cannot be set, a
 *                        config the plugin refuses. Nothing changed.
 *   INGESTD_FULL    -2   busy: a queue is full, nothing was taken; the same
 *                        call may succeed later
 *
 * So < 0 is always a failure that changed nothing and >= 0 always success.
 * Each doc names the subset it returns ("OK | ERROR"). Functions returning a
 * pointer give NULL for absent or refused (never an error code); functions
 * named has_ / _bool return C booleans (non-zero true), not results. Hooks
 * returning a decision use their own enum (ingestd_filter_result_type; an
 * output's verdict is ingestd_batch_status_type).
 *
 * VERSIONING. Minor versions only append fields at the end of the structs
 * below; types change only where binary-identical (adding const). The loader
 * reads only the fields that `struct_size` covers (a 1.0 or 1.1 plugin loads
 * on a 1.2 host), and a plugin reads only the host functions that
 * `ingestd_host_t.struct_size` covers (use INGESTD_HOST_HAS()).
 */
#ifndef INGESTD_PLUGIN_H
#define INGESTD_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define INGESTD_ABI_MAJOR 1
#define INGESTD_ABI_MINOR 3

#if defined(__GNUC__)
#define INGESTD_EXPORT __attribute__((visibility("default")))
#define INGESTD_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define INGESTD_EXPORT
#define INGESTD_PRINTF(f, a)
#endif

/* ---- types ------------------------------------------------------------ */

/* The result of a hook or host function (see RETURN CONVENTIONS above).
 * Returned as int; the values are fixed since ABI 1.0. */
typedef enum ingestd_result_type_ {
  INGESTD_FULL = -2,
  INGESTD_ERROR = -1,
  INGESTD_OK = 0,
  INGESTD_CHANGED = 1
} ingestd_result_type;

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
 * validation, defaults, `ingestd --list-plugins -v` and ingestd.conf(5).
 * Plugin-owned static data (the table and its strings), read by the host for
 * as long as the library is loaded. */
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

/* Opaque handles, all host-owned; their lifetimes are in the table at the
 * top. The plugin never frees one, except a record from record_copy. */
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

/* Why an input rejected a record: the struct is host-owned, borrowed for the
 * on_input_record call; both strings are plugin-owned (static text or the
 * instance's own buffer) and read by the host at once after the hook
 * returns. */
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

/* Headers of a request: plugin-owned, read at once. Of a response:
 * host-owned, borrowed for the callback. */
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
 * and for VPC / FIPS / China partitions. The struct and its strings are
 * plugin-owned and read at once (copied). */
typedef struct ingestd_aws_config_type_ {
  /* sizeof(ingestd_aws_config_t) as the plugin was built; fields past it
   * read as NULL or 0 (0 is taken as the ABI 1.0 size). */
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

  /* ---- ABI 1.2 ---- */

  /* Cross-account role: when role_arn is set, the credentials the chain
   * above finds (the base credentials) sign an STS AssumeRole call to
   * sts_endpoint (default https://sts.REGION.amazonaws.com) and requests are
   * signed with the temporary credentials it answers, refreshed in the
   * background before they expire. A refusal (AccessDenied...) is logged
   * with STS's code and message and retried with backoff. */
  const char *role_arn;          /* "arn:aws:iam::123456789012:role/x"; NULL: no role */
  const char *external_id;       /* sts:ExternalId condition; NULL: not sent */
  const char *role_session_name; /* default "ingestd" */
  uint32_t role_duration_s;      /* DurationSeconds; 0: STS's default (1 h) */
} ingestd_aws_config_t;

/* Plugin-owned; read at once (copied before http_request returns), except
 * `body` when `body_lent` is set. */
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

/* Host-owned, borrowed for the callback, with every pointer in it: copy what
 * must outlive the callback. */
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

/* Runs exactly once per started request, on the loop thread, never inside
 * http_request. The call handle is freed when it returns. */
typedef void (*ingestd_http_done_cb)(void *arg, const ingestd_http_response_t *resp);

/* ---- host service: byte streams (ABI 1.2) -------------------------------- */

typedef struct ingestd_stream_ ingestd_stream_t; /* one TCP (or unix socket) connection */

/* Where and how to connect. Plugin-owned; read at once (copied, files
 * loaded) by stream_open and stream_check. */
typedef struct ingestd_stream_config_type_ {
  /* sizeof(ingestd_stream_config_t) as the plugin was built; fields past it
   * read as 0 (0 itself: the ABI 1.2 struct). */
  uint32_t struct_size;
  const char *host;            /* name or IP, resolved asynchronously (uv_getaddrinfo) */
  int port;                    /* 1..65535 */
  const char *unix_path;       /* set: a unix socket instead of host:port (no TLS) */
  uint64_t connect_timeout_ms; /* resolution + connect + TLS handshake; 0 means 10 s */
  /* TLS (OpenSSL). With `tls` set the stream reports on_connected only after
   * the handshake, with the server's certificate checked against `ca_file`
   * (NULL: the system's store) and its name against `server_name` (NULL:
   * `host`), unless `tls_verify_off` is set. SNI carries server_name. */
  int tls;
  const char *ca_file;
  const char *server_name;
  const char *client_cert; /* PEM; with client_key: a client certificate */
  const char *client_key;
  int tls_verify_off;
  /* Bytes queued for writing above which stream_write refuses (FULL) until
   * on_drain; 0 means 8 MiB. A write into an empty queue is always taken,
   * so one message larger than the limit still leaves. */
  size_t write_limit;
} ingestd_stream_config_t;

/* Callbacks of one stream, on the loop thread, never inside a stream_*
 * call. Plugin-owned static data (the struct must outlive the stream). Any
 * may be NULL; struct_size 0 means the ABI 1.2 struct. */
typedef struct ingestd_stream_callbacks_type_ {
  uint32_t struct_size; /* sizeof(ingestd_stream_callbacks_t) as built */
  /* Connected (and TLS handshake done): writes made before it were queued
   * and now leave. */
  void (*on_connected)(void *arg);
  /* Bytes from the peer (decrypted): borrowed for the call. */
  void (*on_data)(void *arg, const char *data, size_t len);
  /* After a stream_write answered FULL: the queue fell below half the
   * limit. May be NULL. */
  void (*on_drain)(void *arg);
  /* The stream ended: resolution, connect, timeout or TLS failure, the peer
   * closed it, or an I/O error. `reason` is borrowed for the call ("connect
   * to 10.0.0.5:6379: connection refused", "TLS: certificate verify failed:
   * unable to get local issuer certificate", "connect to redis:6379: timed
   * out after 10000 ms", "closed by the peer"). Runs exactly once per such
   * end. The handle is freed when the callback returns (stream_close from
   * inside it does nothing more); it is never called after stream_close. */
  void (*on_closed)(void *arg, const char *reason);
} ingestd_stream_callbacks_t;

/* ---- host functions ----------------------------------------------------- */

/* Handed to on_init; host-owned, static: valid for the life of the process.
 * Paths ("a.b.c") address nested object fields; an empty segment ("a..b",
 * ".a", "a.") makes a path invalid. */
typedef struct ingestd_host_type_ {
  uint32_t struct_size;
  uint16_t abi_major;
  uint16_t abi_minor;

  /* Options, already validated and defaulted. `cfg` is host-owned, valid
   * from on_init until on_destroy returns (a plugin may keep it and read
   * options later); every string read from it lives as long (no copy
   * needed). A missing optional option without default reads as NULL / 0
   * and has_option returns 0 (a boolean). Unknown names and wrong types read
   * as NULL / 0. */
  int (*has_option)(const ingestd_config_t *cfg, const char *name);
  const char *(*option_string)(const ingestd_config_t *cfg, const char *name); /* STRING, ENUM */
  int64_t (*option_int)(const ingestd_config_t *cfg, const char *name);   /* INT, DURATION (ms) */
  uint64_t (*option_size)(const ingestd_config_t *cfg, const char *name); /* SIZE (bytes) */
  double (*option_double)(const ingestd_config_t *cfg, const char *name);
  int (*option_bool)(const ingestd_config_t *cfg, const char *name);
  /* STRING_LIST: count and items; STRING_LIST_LIST: list i, item j;
   * STRING_MAP: count, key i, value i. Strings live as long as cfg. */
  size_t (*option_list_size)(const ingestd_config_t *cfg, const char *name);
  const char *(*option_list_item)(const ingestd_config_t *cfg, const char *name, size_t i);
  size_t (*option_list_list_size)(const ingestd_config_t *cfg, const char *name, size_t i);
  const char *(*option_list_list_item)(const ingestd_config_t *cfg, const char *name, size_t i,
                                       size_t j);
  const char *(*option_map_key)(const ingestd_config_t *cfg, const char *name, size_t i);

  /* Logging, prefixed with the instance's name; fmt and its arguments are
   * read at once. instance_name: host-owned, valid until on_destroy returns.
   * uv_loop: the worker's uv_loop_t, host-owned; a plugin's own handles on it
   * must be closed (and their close callbacks run) before on_destroy
   * returns. */
  void (*log)(ingestd_instance_t *inst, ingestd_log_level_type level, const char *fmt, ...)
      INGESTD_PRINTF(3, 4);
  const char *(*instance_name)(const ingestd_instance_t *inst);
  void *(*uv_loop)(ingestd_instance_t *inst);

  /* Timers on the worker's loop. The timer is host-owned: valid until
   * timer_stop (which frees it; the handle must not be used after) or until
   * on_destroy returns (the host stops and frees what is left; none fires
   * after on_destroy). The callback runs on the loop thread. timer_start
   * gives NULL without a loop or callback. */
  ingestd_timer_t *(*timer_start)(ingestd_instance_t *inst, uint64_t timeout_ms, uint64_t repeat_ms,
                                  ingestd_timer_cb cb, void *arg);
  /* Re-arms a timer (also one that fired and stopped). Timers live until
   * timer_stop, one-shot ones too. */
  void (*timer_restart)(ingestd_timer_t *timer, uint64_t timeout_ms, uint64_t repeat_ms);
  void (*timer_stop)(ingestd_timer_t *timer);
  uint64_t (*now_ms)(ingestd_instance_t *inst); /* monotonic, loop time */
  int64_t (*wall_ms)(void);                     /* epoch milliseconds */

  /* Metrics, named ingestd_<name>, labelled with the instance; the host sums
   * workers when /metrics is read. Create them in on_init. The handle is
   * host-owned, valid until on_destroy returns, never freed by the plugin.
   * NULL when name is NULL or the host keeps no metrics for the instance;
   * metric_add / metric_set on NULL do nothing, so a plugin need not check.
   * name and help are copied. */
  ingestd_metric_t *(*counter)(ingestd_instance_t *inst, const char *name, const char *help);
  ingestd_metric_t *(*gauge)(ingestd_instance_t *inst, const char *name, const char *help);
  void (*metric_add)(ingestd_metric_t *m, double delta);
  void (*metric_set)(ingestd_metric_t *m, double value);

  /* Records. A record is a JSON object. The record handed to on_input_record
   * or on_filter is host-owned, borrowed for the call, and may be changed
   * during it; a record from batch_record is read-only (see batch_record);
   * one from record_copy is plugin-owned. Values (ingestd_value_t) and
   * strings read from a record are borrowed from it: valid until the record
   * is changed or its own lifetime ends, whichever comes first. */
  const char *(*record_tag)(const ingestd_record_t *rec);
  int64_t (*record_received_ms)(const ingestd_record_t *rec); /* epoch ms the request arrived */
  const ingestd_value_t *(*record_root)(const ingestd_record_t *rec);
  const ingestd_value_t *(*record_get)(const ingestd_record_t *rec, const char *path);
  /* Setters replace what is at path and create missing intermediate
   * objects. OK | ERROR: ERROR, changing nothing, for an invalid path, a path
   * that crosses a non-object, or a read-only record (one of a batch: the
   * host refuses even when const was cast away, and logs it once per
   * output). Strings are copied. */
  int (*record_set_string)(ingestd_record_t *rec, const char *path, const char *s, size_t len);
  int (*record_set_number)(ingestd_record_t *rec, const char *path, double v);
  int (*record_set_int)(ingestd_record_t *rec, const char *path, int64_t v);
  int (*record_set_bool)(ingestd_record_t *rec, const char *path, int v);
  int (*record_set_null)(ingestd_record_t *rec, const char *path);
  /* Parses `json` and stores it at path. OK | ERROR (also: not valid JSON). */
  int (*record_set_json)(ingestd_record_t *rec, const char *path, const char *json, size_t len);
  /* CHANGED (removed) | OK (absent, nothing changed) | ERROR (read-only). */
  int (*record_remove)(ingestd_record_t *rec, const char *path);
  /* Moves the value at `from` to `to` (replacing what is there). CHANGED
   * (renamed) | OK (`from` absent, nothing changed) | ERROR (`to` cannot be
   * set: invalid, or it crosses a non-object other than `from`; or the
   * record is read-only). On ERROR the record is exactly as it was. */
  int (*record_rename)(ingestd_record_t *rec, const char *from, const char *to);
  /* The record as compact JSON, serialised once and cached (the cache is
   * logically const: any record may be read); borrowed from the record until
   * it is changed or its lifetime ends. Outputs of a fan-out share one text.
   * ABI 1.2 made `rec` const (binary-identical). */
  const char *(*record_json)(const ingestd_record_t *rec, size_t *len);

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
  /* Serialises any value as compact JSON into the instance's scratch buffer:
   * host-owned, valid until the next value_json on the same instance. */
  const char *(*value_json)(ingestd_instance_t *inst, const ingestd_value_t *v, size_t *len);

  /* Inputs that produce records themselves (not from an HTTP request):
   * routes a new record parsed from `json` (read at once) under the
   * instance's tag. OK (accepted) | ERROR (invalid JSON, or not an input
   * that may emit) | FULL (a queue is full, nothing enqueued). */
  int (*emit_json)(ingestd_instance_t *inst, const char *json, size_t len);

  /* Batches handed to an output's on_flush. The batch is host-owned, valid
   * until batch_done, which an output must call exactly once per batch (a
   * second call is ignored); batch_done may free the batch, so nothing may
   * touch it or its records after. */
  size_t (*batch_size)(const ingestd_batch_t *b);
  /* Record i (NULL past the end): host-owned, valid until batch_done, and
   * read-only: the outputs of a fan-out share one record, so a change by one
   * would reach what the others send. The setters refuse it (ERROR) even if
   * const is cast away; change a record_copy() instead. ABI 1.2 made the
   * result const (binary-identical). */
  const ingestd_record_t *(*batch_record)(ingestd_batch_t *b, size_t i);
  /* Marks for INGESTD_BATCH_OK (see ingestd_batch_status_type); `reason` is
   * read at once. Ignored past the end or after batch_done. */
  void (*batch_retry_record)(ingestd_batch_t *b, size_t i);
  void (*batch_dead_letter)(ingestd_batch_t *b, size_t i, const char *reason);
  void (*batch_done)(ingestd_batch_t *b, ingestd_batch_status_type status);

  /* HTTP client on the worker's loop (libcurl multi, keep-alive connections
   * shared by the worker's instances; HTTP/1.1). The call handle is
   * host-owned, valid until its callback returns (the host frees it then).
   * The callback runs exactly once, later, never inside http_request; when
   * the instance stops, calls still in flight complete with error
   * "cancelled" after on_stop and before on_destroy. NULL (and no callback)
   * for an invalid request (bad URL, no method) or an instance already
   * stopped; the reason is logged. */
  ingestd_http_call_t *(*http_request)(ingestd_instance_t *inst, const ingestd_http_request_t *req,
                                       ingestd_http_done_cb cb, void *arg);
  /* The callback still runs (later, from the loop) with error "cancelled".
   * Only for a call whose callback has not run yet: the handle is freed
   * right after its callback. */
  void (*http_cancel)(ingestd_http_call_t *call);

  /* A credentials chain for SigV4: host-owned, shared by the worker's
   * instances with the same config, refreshed in the background before
   * temporary credentials expire (never blocking the loop). Valid until
   * on_destroy returns; never freed by the plugin. cfg is read at once. NULL
   * when cfg is NULL or the process has no credentials service (logged). */
  ingestd_aws_t *(*aws_credentials)(ingestd_instance_t *inst, const ingestd_aws_config_t *cfg);
  /* Where the chain's current credentials came from ("environment",
   * "web identity", "imds", ...; static text; with a role_arn "assumed role
   * ARN via SOURCE", host-owned and valid until the next call for this chain
   * or on_destroy) or NULL while none were found yet; for logs. */
  const char *(*aws_credentials_source)(ingestd_aws_t *aws);

  /* ---- ABI 1.1 ---- */

  /* Calls cb(arg) once on a later turn of the worker's loop, after the I/O
   * ready by then has been handled (a libuv idle callback). Long work done a
   * slice per call (building a large request body) then holds no request up
   * for long; a 0 ms timer would not yield, libuv runs it again in the same
   * turn. Calls still pending when the instance is destroyed are dropped;
   * after on_stop they still run. OK | ERROR (no loop or no callback). */
  int (*call_soon)(ingestd_instance_t *inst, ingestd_timer_cb cb, void *arg);

  /* ---- ABI 1.2 ---- */

  /* A copy of any record (one of a batch too; its tag and receive time
   * included) that the plugin owns and may change with the setters; it is
   * never read-only. Plugin-owned: valid until record_free, which the plugin
   * calls exactly once, in on_destroy at the latest. Values read from the
   * copy are borrowed from it. NULL when rec is NULL. Check for it with
   * INGESTD_HOST_HAS(host, record_copy): a 1.0/1.1 host lacks it. */
  ingestd_record_t *(*record_copy)(ingestd_instance_t *inst, const ingestd_record_t *rec);
  /* Frees a record_copy() result. Any other record is left alone (it is not
   * the plugin's to free); NULL does nothing. */
  void (*record_free)(ingestd_record_t *rec);

  /* Byte streams on the worker's loop: asynchronous resolution, connect
   * timeout, optional TLS, write backpressure; the plugin owns no uv handle.
   * stream_open starts connecting and returns the host-owned handle (valid
   * until stream_close, or until on_closed returns), or NULL for a config
   * that cannot work (no host, bad port, unreadable CA or certificate; the
   * reason is logged). cfg is read at once; cb must outlive the stream.
   * Check with INGESTD_HOST_HAS(host, stream_open). */
  ingestd_stream_t *(*stream_open)(ingestd_instance_t *inst, const ingestd_stream_config_t *cfg,
                                   const ingestd_stream_callbacks_t *cb, void *arg);
  /* Queues `len` bytes (copied; encrypted with TLS) to leave in order, also
   * before on_connected. OK (taken) | FULL (the queue holds bytes and these
   * would take it past write_limit: nothing taken; on_drain follows once it
   * is below half) | ERROR (the stream ended: on_closed ran or is due). */
  int (*stream_write)(ingestd_stream_t *s, const char *data, size_t len);
  /* Bytes queued and not yet written to the socket. */
  size_t (*stream_pending)(const ingestd_stream_t *s);
  /* Closes now (queued bytes are dropped); no callback follows and the
   * handle is invalid after the call. */
  void (*stream_close)(ingestd_stream_t *s);
  /* What -t and on_init check without connecting: the TLS files named exist
   * and parse, the address is well formed. OK | ERROR (reason logged). */
  int (*stream_check)(ingestd_instance_t *inst, const ingestd_stream_config_t *cfg);

  /* ---- ABI 1.3 ---- */

  /* counter() / gauge() with labels of the plugin's own after the
   * instance's: `labels` holds name, value pairs and ends with NULL
   * ({"node", "10.0.0.5:6379", NULL}); copied. Label names are
   * [a-zA-Z_][a-zA-Z0-9_]* and not one the host sets (the reason is logged
   * and NULL returned). Unlike the unlabelled ones they may be created at
   * any time on the loop thread, for things found at run time (a cluster's
   * nodes); keep the label values few, each set is a series kept until the
   * process ends. The same name, labels and kind give the same handle. Check
   * with INGESTD_HOST_HAS(host, counter_labeled). */
  ingestd_metric_t *(*counter_labeled)(ingestd_instance_t *inst, const char *name, const char *help,
                                       const char *const *labels);
  ingestd_metric_t *(*gauge_labeled)(ingestd_instance_t *inst, const char *name, const char *help,
                                     const char *const *labels);
} ingestd_host_t;

#define INGESTD_HOST_HAS(host, fn) \
  ((host)->struct_size >= offsetof(ingestd_host_t, fn) + sizeof((host)->fn) && (host)->fn)

/* ---- the plugin descriptor ---------------------------------------------- */

/* The descriptor: plugin-owned static data, read by the host while the
 * library is loaded (the host keeps the library mapped for as long as any
 * configuration generation uses it). Hooks returning int return OK or ERROR
 * (see RETURN CONVENTIONS); on ERROR log the reason with host->log first.
 * `instance_data` is plugin-owned: allocated in on_init, freed in
 * on_destroy. */
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

  /* Lifecycle, on the worker's loop thread, in this order:
   *   on_init -> [on_start -> [on_stop]] -> on_destroy
   * on_init validates what the option table cannot express (templates,
   * cross-field rules) and stores *instance_data; OK | ERROR. It also runs
   * for `ingestd -t`, where on_start never follows. host, inst and cfg are
   * host-owned and valid until on_destroy returns (keep them).
   * on_destroy runs exactly once after every on_init: after a successful
   * one always (instance_data may then be NULL if on_init stored none), and
   * after a FAILED one too whenever on_init stored a non-NULL
   * *instance_data, so a plugin may store its data first and fail halfway
   * (on_destroy must then cope with partly initialised data); a failed
   * on_init that stored nothing gets no on_destroy. A failed on_init is torn
   * down at once: HTTP calls it started end with "cancelled", on_destroy
   * runs, then its timers and call_soon calls are dropped. */
  int (*on_init)(const ingestd_host_t *host, ingestd_instance_t *inst, const ingestd_config_t *cfg,
                 void **instance_data);
  /* Begin work (timers, connections). OK | ERROR; after ERROR on_stop is
   * not called, on_destroy is. May be NULL. */
  int (*on_start)(void *instance_data);
  /* Stop taking new work; an output finishes or abandons in-flight batches
   * (calling batch_done for each). Calls still in flight end with
   * "cancelled" after it returns. Called only after a successful on_start.
   * May be NULL. */
  void (*on_stop)(void *instance_data);
  /* Free instance_data and everything the instance owns (record copies, its
   * own uv handles). After it returns, inst, cfg, metric, timer and aws
   * handles are invalid. */
  void (*on_destroy)(void *instance_data);

  /* Input: validate and shape one record of an HTTP request body. rec and why
   * are borrowed for the call; rec may be changed with the setters. OK to
   * accept, or ERROR after filling `why` to reject it. */
  int (*on_input_record)(void *instance_data, ingestd_record_t *rec, ingestd_reject_t *why);

  /* Filter: change the record in place (borrowed for the call; it is not
   * shared with other routes), then KEEP or DROP it. */
  ingestd_filter_result_type (*on_filter)(void *instance_data, ingestd_record_t *rec);

  /* Output: send a batch (host-owned, valid until batch_done; its records
   * are read-only); call host->batch_done when finished, at once or later
   * from a loop callback. */
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
