// The ASCII helpers of util/text.h under the names the HTTP code uses.
#pragma once

#include "util/text.h"

namespace ingestd::http::detail {

using ingestd::ascii_lower;
using ingestd::iequals;
using ingestd::trim;

}  // namespace ingestd::http::detail
