// The ASCII helpers of the SDK's common/text.h under the names the HTTP code uses.
#pragma once

#include "common/text.h"

namespace ingestd::http::detail {

using ingestd::common::ascii_lower;
using ingestd::common::iequals;
using ingestd::common::trim;

}  // namespace ingestd::http::detail
