// What one config generation runs with: the validated config and what it
// refers to outside itself (API key files), loaded together so that `-t`, start
// and reload see exactly the same thing. Immutable and shared by the workers.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "config/config.h"
#include "engine/api_keys.h"

namespace ingestd {

struct Setup {
  std::shared_ptr<const config::Config> config;
  std::map<std::string, std::shared_ptr<const ApiKeys>> api_keys;  // by listener name
};

}  // namespace ingestd
