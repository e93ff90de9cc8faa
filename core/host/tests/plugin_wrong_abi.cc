// A plugin built for a future major ABI: the loader must refuse it.
#include "ingestd/plugin.h"

namespace {
int on_init(const ingestd_host_t *, ingestd_instance_t *, const ingestd_config_t *, void **) {
  return 0;
}
void on_destroy(void *) {}
void on_flush(void *, ingestd_batch_t *) {}
}  // namespace

extern "C" INGESTD_EXPORT const ingestd_plugin_t ingestd_plugin_v1 = {99,
                                                                      0,
                                                                      sizeof(ingestd_plugin_t),
                                                                      "wrongabi",
                                                                      INGESTD_KIND_OUTPUT,
                                                                      "test",
                                                                      "0",
                                                                      nullptr,
                                                                      0,
                                                                      on_init,
                                                                      nullptr,
                                                                      nullptr,
                                                                      on_destroy,
                                                                      nullptr,
                                                                      nullptr,
                                                                      on_flush};
