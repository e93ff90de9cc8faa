// A plugin whose option table has an empty and a duplicate description.
#include "ingestd/plugin.h"

namespace {
const ingestd_option_t kOptions[] = {
    {"a", INGESTD_OPT_STRING, nullptr, 0, nullptr, 1, 0, "same"},
    {"b", INGESTD_OPT_STRING, nullptr, 0, nullptr, 1, 0, "same"},
};
int on_init(const ingestd_host_t *, ingestd_instance_t *, const ingestd_config_t *, void **) {
  return 0;
}
void on_destroy(void *) {}
void on_flush(void *, ingestd_batch_t *) {}
}  // namespace

extern "C" INGESTD_EXPORT const ingestd_plugin_t ingestd_plugin_v1 = {INGESTD_ABI_MAJOR,
                                                                      INGESTD_ABI_MINOR,
                                                                      sizeof(ingestd_plugin_t),
                                                                      "badopts",
                                                                      INGESTD_KIND_OUTPUT,
                                                                      "test",
                                                                      "0",
                                                                      kOptions,
                                                                      2,
                                                                      on_init,
                                                                      nullptr,
                                                                      nullptr,
                                                                      on_destroy,
                                                                      nullptr,
                                                                      nullptr,
                                                                      on_flush};
