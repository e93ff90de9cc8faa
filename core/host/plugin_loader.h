// Loads plugin shared objects and checks their descriptor before use.
// A file is KIND_NAME.so (in_http.so, out_redis.so, filter_modify.so) and
// exports `ingestd_plugin_v1`. dlopen(RTLD_NOW | RTLD_LOCAL): unresolved
// symbols fail at load, and plugins never see each other's symbols.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ingestd/plugin.h"

namespace ingestd {

const char *kind_prefix(ingestd_kind_type kind);   // "in", "filter", "out"
const char *kind_section(ingestd_kind_type kind);  // "inputs", "filters", "outputs"
const char *kind_word(ingestd_kind_type kind);     // "input", "filter", "output"

// Owns one dlopen handle; dlclose on destruction. Shared (std::shared_ptr) by
// the catalog that loaded it and by every config generation whose sections
// point at its descriptor, so code still running is never unmapped.
class PluginLibrary {
 public:
  // Loads `path` and validates its descriptor against `expected_kind`/`name`
  // (pass kind 0 / empty name to skip). nullptr and *why on failure; *why is
  // one line naming the path and the reason.
  static std::unique_ptr<PluginLibrary> open(const std::string &path, int expected_kind,
                                             std::string_view expected_name, std::string *why);
  ~PluginLibrary();
  PluginLibrary(const PluginLibrary &) = delete;
  PluginLibrary &operator=(const PluginLibrary &) = delete;

  const ingestd_plugin_t *descriptor() const { return desc_; }
  const std::string &path() const { return path_; }

 private:
  PluginLibrary(void *handle, const ingestd_plugin_t *desc, std::string path)
      : handle_(handle), desc_(desc), path_(std::move(path)) {}
  void *handle_;
  const ingestd_plugin_t *desc_;
  std::string path_;
};

// Checks a descriptor's fields (ABI version, size, kind, options table).
// Returns an empty string when it is usable.
std::string validate_descriptor(const ingestd_plugin_t *d, int expected_kind,
                                std::string_view expected_name);

// The plugins of one directory, loaded on demand. A loaded library is kept
// while the catalog lives; whoever keeps a descriptor beyond the catalog (a
// config generation) holds the library() that came with it. A failure is not
// remembered: the next find() tries the file again (a plugin installed after
// a refused reload loads on the next one).
class PluginCatalog {
 public:
  explicit PluginCatalog(std::string dir) : dir_(std::move(dir)) {}
  const std::string &dir() const { return dir_; }
  // The library of KIND_NAME.so, loaded once; nullptr and *why when missing or
  // invalid.
  std::shared_ptr<const PluginLibrary> library(ingestd_kind_type kind, const std::string &name,
                                               std::string *why);
  // library()'s descriptor, valid while this catalog (or a holder of the
  // library) lives.
  const ingestd_plugin_t *find(ingestd_kind_type kind, const std::string &name, std::string *why);
  // Every KIND_NAME.so in the directory; failures go to *errors.
  std::vector<const ingestd_plugin_t *> load_all(std::vector<std::string> *errors);

 private:
  std::string dir_;
  std::map<std::string, std::shared_ptr<const PluginLibrary>> libs_;  // by file name
};

}  // namespace ingestd
