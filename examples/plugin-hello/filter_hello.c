/* filter_hello: an out-of-tree ingestd plugin, the smallest useful one.
 *
 * A filter that writes a greeting into every record passing through a route
 * that names it:
 *
 *   [filters.greet]
 *   plugin = "hello"
 *   field = "greeting"          # default
 *   message = "hello from ingestd"
 *
 * It is built only against the installed SDK (ingestd/plugin.h, found with
 * `pkg-config --cflags ingestd-plugin`), in plain C, and shows the whole
 * contract: the exported descriptor, a declarative option table, the hooks,
 * the host table, and who frees what. See ingestd-plugin(7).
 */
#include <ingestd/plugin.h>
#include <stdlib.h>
#include <string.h>

/* Everything one instance needs. Owned by the plugin: allocated in on_init,
 * freed in on_destroy. One instance per worker thread, so no locks. */
struct hello {
  const ingestd_host_t *host; /* borrowed, valid for the life of the process */
  ingestd_instance_t *inst;   /* borrowed, valid until on_destroy */
  char *field;                /* copies: option strings are borrowed */
  char *message;
  size_t message_len;
  int overwrite;
  ingestd_metric_t *greeted; /* owned by the host */
};

/* The option table: the host validates config against it, applies the
 * defaults, and prints it in `ingestd --list-plugins -v`. Every row needs a
 * one-line description. */
static const ingestd_option_t hello_options[] = {
    {"field", INGESTD_OPT_STRING, "greeting", 0, NULL, 1, 0,
     "Field (dotted path) that receives the message"},
    {"message", INGESTD_OPT_STRING, "hello", INGESTD_OPT_RELOADABLE, NULL, 1, 0,
     "Text written into the field of every record"},
    {"overwrite", INGESTD_OPT_BOOL, "true", 0, NULL, 1, 0,
     "Replace the field when the record already has it; false keeps the record's value"},
};

static char *copy_string(const char *s) {
  size_t n = strlen(s) + 1;
  char *p = malloc(n);
  if (p) memcpy(p, s, n);
  return p;
}

static void hello_destroy(void *data) {
  struct hello *h = data;
  if (!h) return;
  free(h->field);
  free(h->message);
  free(h);
}

static int hello_init(const ingestd_host_t *host, ingestd_instance_t *inst,
                      const ingestd_config_t *cfg, void **instance_data) {
  struct hello *h;
  /* A host older than the functions we call is refused with a reason. */
  if (!INGESTD_HOST_HAS(host, record_set_string) || !INGESTD_HOST_HAS(host, counter)) {
    host->log(inst, INGESTD_LOG_ERROR, "this ingestd is too old for filter hello");
    return -1;
  }
  h = calloc(1, sizeof *h);
  if (!h) return -1;
  h->host = host;
  h->inst = inst;
  h->field = copy_string(host->option_string(cfg, "field"));
  h->message = copy_string(host->option_string(cfg, "message"));
  if (!h->field || !h->message) {
    hello_destroy(h);
    return -1;
  }
  /* What the table cannot say: checked here, so `ingestd -t` reports it. */
  if (h->field[0] == '\0') {
    host->log(inst, INGESTD_LOG_ERROR, "option field must not be empty");
    hello_destroy(h);
    return -1;
  }
  h->message_len = strlen(h->message);
  h->overwrite = host->option_bool(cfg, "overwrite");
  h->greeted =
      host->counter(inst, "hello_greeted_records_total", "Records the hello filter greeted");
  *instance_data = h;
  return 0;
}

static ingestd_filter_result_type hello_filter(void *data, ingestd_record_t *rec) {
  struct hello *h = data;
  if (!h->overwrite && h->host->record_get(rec, h->field)) return INGESTD_FILTER_KEEP;
  if (h->host->record_set_string(rec, h->field, h->message, h->message_len) == 0)
    h->host->metric_add(h->greeted, 1);
  return INGESTD_FILTER_KEEP;
}

/* The one exported symbol. Fields not set here (on_start, on_stop, the other
 * kinds' hooks) are NULL: the host skips them. */
INGESTD_EXPORT const ingestd_plugin_t ingestd_plugin_v1 = {
    .abi_major = INGESTD_ABI_MAJOR,
    .abi_minor = INGESTD_ABI_MINOR,
    .struct_size = sizeof(ingestd_plugin_t),
    .name = "hello",
    .kind = INGESTD_KIND_FILTER,
    .description = "Writes a greeting into every record (the out-of-tree SDK example)",
    .version = "1.0.0",
    .options = hello_options,
    .option_count = sizeof hello_options / sizeof hello_options[0],
    .on_init = hello_init,
    .on_destroy = hello_destroy,
    .on_filter = hello_filter,
};
