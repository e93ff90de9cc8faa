// Config loader: reads the main TOML file, conf.d/*.toml beside it and
// included files, validates every section against its option table (core
// table merged with the plugin's) and returns a typed model or every error
// found, each with file:line:col.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "config/options.h"
#include "ingestd/plugin.h"

namespace ingestd::config {

struct Error {
  Position pos;
  std::string message;
  std::string str() const;  // "file:line:col: message" ("file: message" without a line)
};

// One [listeners.NAME], [inputs.NAME], [filters.NAME] or [outputs.NAME].
struct Section {
  std::string name;
  Position pos;                                  // of the table header
  std::string plugin;                            // empty for listeners
  const ingestd_plugin_t *descriptor = nullptr;  // from the lookup; null for listeners
  OptionValues options;
};

// One [[routes]] entry.
struct Route {
  Position pos;
  std::string match;  // glob over tags
  std::vector<std::string> filters;
  std::vector<std::string> to;
};

struct Config {
  // Every file read or attempted (main, conf.d in name order, includes), for
  // reload watching; `watch_dirs` holds directories whose new files matter
  // (conf.d).
  std::vector<std::string> files;
  std::vector<std::string> watch_dirs;

  OptionValues service;                                      // defaults when there is no [service]
  std::vector<Section> listeners, inputs, filters, outputs;  // in file order
  std::vector<Route> routes;                                 // in file order

  const Section *find_listener(std::string_view name) const;
  const Section *find_input(std::string_view name) const;
  const Section *find_filter(std::string_view name) const;
  const Section *find_output(std::string_view name) const;
};

// Finds a plugin by kind and name (as written in `plugin = "..."`). Returns
// null and sets *why (e.g. "in_foo.so: not found in /usr/lib/ingestd/plugins")
// when there is none. The descriptor must outlive the Config.
using PluginLookup = std::function<const ingestd_plugin_t *(
    ingestd_kind_type, const std::string &name, std::string *why)>;

// Loads and validates. Returns true when no error was found. *out is reset
// first; on failure it holds what could be read (out->files is always
// complete, so a watcher can wait for a fix). Errors are sorted by file (in
// load order), line and column. Section options hand out ABI pointers
// (OptionValues::abi()), so keep *out in place (don't copy or move it) while
// plugins hold them.
bool load(const std::string &main_file, const PluginLookup &lookup, Config *out,
          std::vector<Error> *errors);

// ---- option tables ---------------------------------------------------------

// The core's own tables, for validation, `--list-plugins -v` and man pages.
std::span<const ingestd_option_t> service_options();
std::span<const ingestd_option_t> listener_options();
std::span<const ingestd_option_t> input_options();   // rows every input has
std::span<const ingestd_option_t> filter_options();  // rows every filter has
std::span<const ingestd_option_t> output_options();  // rows every output has
std::span<const ingestd_option_t> route_options();
std::span<const ingestd_option_t> core_options(ingestd_kind_type kind);

// The table a plugin's section is validated against: the core rows (a plugin
// row of the same name overrides only the default), then the plugin's other
// rows. False and *err when a row's type differs from the core row's or a
// name repeats.
bool merge_options(std::span<const ingestd_option_t> core, std::span<const ingestd_option_t> plugin,
                   std::vector<ingestd_option_t> *out, std::string *err);

// Checks a table as tests should (for the core's and every plugin's): names
// and descriptions non-empty and unique, enums with choices, defaults that
// parse and satisfy range and choices, and rows overriding `core` rows of the
// same type. Returns one line per problem; empty when the table is fine.
std::vector<std::string> check_option_table(std::span<const ingestd_option_t> table,
                                            std::span<const ingestd_option_t> core = {});

// ---- host functions (ingestd_host_t option_*) -------------------------------
// `cfg` is an OptionValues::abi(). Unknown names, wrong types and null
// arguments read as NULL / 0. Strings live as long as the OptionValues.

int has_option(const ingestd_config_t *cfg, const char *name) noexcept;
const char *option_string(const ingestd_config_t *cfg, const char *name) noexcept;
int64_t option_int(const ingestd_config_t *cfg, const char *name) noexcept;
uint64_t option_size(const ingestd_config_t *cfg, const char *name) noexcept;
double option_double(const ingestd_config_t *cfg, const char *name) noexcept;
int option_bool(const ingestd_config_t *cfg, const char *name) noexcept;
size_t option_list_size(const ingestd_config_t *cfg, const char *name) noexcept;
const char *option_list_item(const ingestd_config_t *cfg, const char *name, size_t i) noexcept;
size_t option_list_list_size(const ingestd_config_t *cfg, const char *name, size_t i) noexcept;
const char *option_list_list_item(const ingestd_config_t *cfg, const char *name, size_t i,
                                  size_t j) noexcept;
const char *option_map_key(const ingestd_config_t *cfg, const char *name, size_t i) noexcept;

}  // namespace ingestd::config
