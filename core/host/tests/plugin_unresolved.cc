// A plugin that needs a symbol nobody provides: RTLD_NOW must fail the load.
#include "ingestd/plugin.h"

extern "C" int ingestd_test_symbol_that_does_not_exist(void);

namespace {
int on_init(const ingestd_host_t *, ingestd_instance_t *, const ingestd_config_t *, void **) {
  return ingestd_test_symbol_that_does_not_exist();
}
void on_destroy(void *) {}
void on_flush(void *, ingestd_batch_t *) {}
}  // namespace

extern "C" INGESTD_EXPORT const ingestd_plugin_t ingestd_plugin_v1 = {INGESTD_ABI_MAJOR,
                                                                      INGESTD_ABI_MINOR,
                                                                      sizeof(ingestd_plugin_t),
                                                                      "unresolved",
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
