// in_http: the generic HTTP input. Every JSON object of a request body is a
// record, kept as sent; optionally the API key's name or a fixed field is
// added. Schema-checking inputs (trace, actions, metadata) build on the same
// hooks.
#include <cstdlib>
#include <cstring>
#include <string>

#include "ingestd/plugin.h"

namespace {

struct HttpInput {
  const ingestd_host_t *host;
  ingestd_instance_t *inst;
  std::string require_field;  // reject records without it ("" = none)
  std::string reject_reason;
};

const ingestd_option_t kOptions[] = {
    {"require_field", INGESTD_OPT_STRING, nullptr, 0, nullptr, 1, 0,
     "Reject records that lack this field (dotted path); unset accepts any object"},
};

int on_init(const ingestd_host_t *host, ingestd_instance_t *inst, const ingestd_config_t *cfg,
            void **data) {
  auto *in = new HttpInput{host, inst, {}, {}};
  if (host->has_option(cfg, "require_field")) {
    in->require_field = host->option_string(cfg, "require_field");
    in->reject_reason = "required field is missing";
  }
  *data = in;
  return 0;
}

void on_destroy(void *data) {
  delete static_cast<HttpInput *>(data);
}

int on_input_record(void *data, ingestd_record_t *rec, ingestd_reject_t *why) {
  auto *in = static_cast<HttpInput *>(data);
  if (!in->require_field.empty() && !in->host->record_get(rec, in->require_field.c_str())) {
    why->field = in->require_field.c_str();
    why->reason = in->reject_reason.c_str();
    return -1;
  }
  return 0;
}

}  // namespace

extern "C" INGESTD_EXPORT const ingestd_plugin_t ingestd_plugin_v1 = {
    INGESTD_ABI_MAJOR,
    INGESTD_ABI_MINOR,
    sizeof(ingestd_plugin_t),
    "http",
    INGESTD_KIND_INPUT,
    "Generic JSON over HTTP: each object of the body is one record, kept as sent",
    "1.0.0",
    kOptions,
    sizeof kOptions / sizeof kOptions[0],
    on_init,
    nullptr,
    nullptr,
    on_destroy,
    on_input_record,
    nullptr,
    nullptr,
};
