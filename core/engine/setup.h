// What one config generation runs with: the validated config and what it
// refers to outside itself (API key files), loaded together so that `-t`, start
// and reload see exactly the same thing. Immutable and shared by the workers.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "engine/api_keys.h"
#include "host/plugin_loader.h"
#include "tls/tls.h"

namespace ingestd {

struct Setup {
  // The plugin libraries the config's sections point into: held here so that a
  // reload replacing the catalog (another plugins_dir) never unmaps code a
  // running generation still calls. Declared first: released last.
  std::vector<std::shared_ptr<const PluginLibrary>> libraries;
  std::shared_ptr<const config::Config> config;
  std::map<std::string, std::shared_ptr<const ApiKeys>> api_keys;  // by listener name
  // HTTPS listeners' certificates and keys, read when the setup is loaded.
  std::map<std::string, std::shared_ptr<const tls::Context>> listener_tls;  // by listener name
  // Files outside the config that it names (API keys, certificates), as
  // resolved paths: a change to one reloads under watch_config.
  std::vector<std::string> external_files;
};

}  // namespace ingestd
