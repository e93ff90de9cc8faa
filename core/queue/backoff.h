// The output queue's retry backoff: the SDK's one copy (plugins/common/backoff.h,
// capped exponential with full jitter), under the names the queue uses.
#pragma once

#include "common/backoff.h"

namespace ingestd {

using common::Backoff;
using common::BackoffRng;

}  // namespace ingestd
