// Routing: which filters and outputs a tag's records go through. Computed once
// per config and tag, so the request path does no glob matching.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace ingestd {

// Shell-style glob: '*' any run (also empty), '?' one character,
// '[abc]' / '[a-z]' / '[!x]' a class, '\' escapes. No special meaning for '/'
// or '.': tags are flat names.
bool glob_match(std::string_view pattern, std::string_view text);

struct RouteSpec {
  std::string match;
  std::vector<size_t> filters;  // indices into the pipeline's filters
  std::vector<size_t> outputs;  // indices into the pipeline's outputs
};

struct RouteTarget {
  size_t route;                 // index into the route list (for metrics)
  std::vector<size_t> filters;  // applied in order on a copy of the record
  std::vector<size_t> outputs;
};

// Every route whose match accepts `tag`, in config order. A record goes to
// each target; an output named by two routes receives the record twice only
// if both routes match, which is what the config says.
std::vector<RouteTarget> plan_routes(const std::vector<RouteSpec> &routes, std::string_view tag);

}  // namespace ingestd
