// A descriptor that claims to be smaller than ABI 1.0 requires.
#include "ingestd/plugin.h"

extern "C" INGESTD_EXPORT const ingestd_plugin_t ingestd_plugin_v1 = {INGESTD_ABI_MAJOR,
                                                                      INGESTD_ABI_MINOR,
                                                                      16,
                                                                      "small",
                                                                      INGESTD_KIND_OUTPUT,
                                                                      "test",
                                                                      "0",
                                                                      nullptr,
                                                                      0,
                                                                      nullptr,
                                                                      nullptr,
                                                                      nullptr,
                                                                      nullptr,
                                                                      nullptr,
                                                                      nullptr,
                                                                      nullptr};
