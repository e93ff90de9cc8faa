// Plugin loading and descriptor validation.
#include "host/plugin_loader.h"

#include <dirent.h>
#include <dlfcn.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

namespace ingestd {

const char *kind_prefix(ingestd_kind_type kind) {
  switch (kind) {
    case INGESTD_KIND_INPUT:
      return "in";
    case INGESTD_KIND_FILTER:
      return "filter";
    case INGESTD_KIND_OUTPUT:
      return "out";
  }
  return "?";
}

const char *kind_section(ingestd_kind_type kind) {
  switch (kind) {
    case INGESTD_KIND_INPUT:
      return "inputs";
    case INGESTD_KIND_FILTER:
      return "filters";
    case INGESTD_KIND_OUTPUT:
      return "outputs";
  }
  return "?";
}

const char *kind_word(ingestd_kind_type kind) {
  switch (kind) {
    case INGESTD_KIND_INPUT:
      return "input";
    case INGESTD_KIND_FILTER:
      return "filter";
    case INGESTD_KIND_OUTPUT:
      return "output";
  }
  return "?";
}

namespace {
// The fields a v1.0 host needs: everything up to on_flush.
constexpr size_t kMinDescriptorSize =
    offsetof(ingestd_plugin_t, on_flush) + sizeof(((ingestd_plugin_t *)nullptr)->on_flush);
}  // namespace

std::string validate_descriptor(const ingestd_plugin_t *d, int expected_kind,
                                std::string_view expected_name) {
  if (d->abi_major != INGESTD_ABI_MAJOR) {
    return "built for plugin ABI " + std::to_string(d->abi_major) + "." +
           std::to_string(d->abi_minor) + ", this ingestd speaks " +
           std::to_string(INGESTD_ABI_MAJOR) + "." + std::to_string(INGESTD_ABI_MINOR) +
           " (rebuild the plugin against this version's plugin.h)";
  }
  if (d->struct_size < kMinDescriptorSize) {
    return "descriptor is " + std::to_string(d->struct_size) + " bytes, ABI " +
           std::to_string(INGESTD_ABI_MAJOR) + " needs at least " +
           std::to_string(kMinDescriptorSize);
  }
  if (d->kind != INGESTD_KIND_INPUT && d->kind != INGESTD_KIND_FILTER &&
      d->kind != INGESTD_KIND_OUTPUT) {
    return "unknown plugin kind " + std::to_string(static_cast<int>(d->kind));
  }
  if (expected_kind != 0 && d->kind != expected_kind) {
    auto article = [](ingestd_kind_type k) { return k == INGESTD_KIND_FILTER ? "a " : "an "; };
    auto want = static_cast<ingestd_kind_type>(expected_kind);
    return std::string("is ") + article(d->kind) + kind_word(d->kind) + " plugin, expected " +
           article(want) + kind_word(want) + " plugin";
  }
  if (!d->name || !*d->name) return "descriptor has no name";
  if (!expected_name.empty() && expected_name != d->name) {
    return "descriptor names itself '" + std::string(d->name) + "', the file name says '" +
           std::string(expected_name) + "'";
  }
  if (!d->on_init || !d->on_destroy) return "descriptor lacks on_init or on_destroy";
  if (d->kind == INGESTD_KIND_INPUT && !d->on_input_record)
    return "input plugin lacks on_input_record";
  if (d->kind == INGESTD_KIND_FILTER && !d->on_filter) return "filter plugin lacks on_filter";
  if (d->kind == INGESTD_KIND_OUTPUT && !d->on_flush) return "output plugin lacks on_flush";
  if (d->option_count > 0 && !d->options) return "option_count is set but options is NULL";
  std::set<std::string_view> names, descriptions;
  for (size_t i = 0; i < d->option_count; ++i) {
    const ingestd_option_t &o = d->options[i];
    if (!o.name || !*o.name) return "option " + std::to_string(i) + " has no name";
    if (!names.insert(o.name).second) return "option '" + std::string(o.name) + "' is listed twice";
    if (!o.description || !*o.description)
      return "option '" + std::string(o.name) + "' has no description";
    if (!descriptions.insert(o.description).second)
      return "option '" + std::string(o.name) + "' repeats another option's description";
    if (o.type < INGESTD_OPT_STRING || o.type > INGESTD_OPT_STRING_MAP)
      return "option '" + std::string(o.name) + "' has unknown type";
    if (o.type == INGESTD_OPT_ENUM && (!o.choices || !*o.choices))
      return "enum option '" + std::string(o.name) + "' has no choices";
  }
  return {};
}

std::unique_ptr<PluginLibrary> PluginLibrary::open(const std::string &path, int expected_kind,
                                                   std::string_view expected_name,
                                                   std::string *why) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    *why = path + ": cannot load plugin: " + std::strerror(errno);
    return nullptr;
  }
  void *h = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char *err = ::dlerror();
    *why = path + ": cannot load plugin: " + (err ? err : "dlopen failed");
    return nullptr;
  }
  ::dlerror();
  void *sym = ::dlsym(h, INGESTD_PLUGIN_SYMBOL);
  if (!sym) {
    *why = path + ": not an ingestd plugin: symbol '" INGESTD_PLUGIN_SYMBOL "' not found";
    ::dlclose(h);
    return nullptr;
  }
  auto *desc = static_cast<const ingestd_plugin_t *>(sym);
  std::string bad = validate_descriptor(desc, expected_kind, expected_name);
  if (!bad.empty()) {
    *why = path + ": refused: " + bad;
    ::dlclose(h);
    return nullptr;
  }
  return std::unique_ptr<PluginLibrary>(new PluginLibrary(h, desc, path));
}

PluginLibrary::~PluginLibrary() {
  if (handle_) ::dlclose(handle_);
}

std::shared_ptr<const PluginLibrary> PluginCatalog::library(ingestd_kind_type kind,
                                                            const std::string &name,
                                                            std::string *why) {
  std::string file = std::string(kind_prefix(kind)) + "_" + name + ".so";
  if (auto it = libs_.find(file); it != libs_.end()) return it->second;
  // Not cached on failure: the file may be installed or fixed before the next
  // load, and trying again costs one stat() for a missing file.
  std::string path = dir_ + "/" + file;
  std::string err;
  std::shared_ptr<const PluginLibrary> lib = PluginLibrary::open(path, kind, name, &err);
  if (!lib) {
    if (err.find("No such file") != std::string::npos) {
      err = std::string("no ") + kind_word(kind) + " plugin '" + name + "': " + path +
            " does not exist (see --list-plugins)";
    }
    *why = err;
    return nullptr;
  }
  libs_[file] = lib;
  return lib;
}

const ingestd_plugin_t *PluginCatalog::find(ingestd_kind_type kind, const std::string &name,
                                            std::string *why) {
  auto lib = library(kind, name, why);
  return lib ? lib->descriptor() : nullptr;
}

std::vector<const ingestd_plugin_t *> PluginCatalog::load_all(std::vector<std::string> *errors) {
  std::vector<std::string> files;
  if (DIR *d = ::opendir(dir_.c_str())) {
    while (struct dirent *e = ::readdir(d)) {
      std::string_view n = e->d_name;
      if (n.size() > 3 && n.substr(n.size() - 3) == ".so") files.emplace_back(n);
    }
    ::closedir(d);
  } else {
    errors->push_back(dir_ + ": cannot read plugin directory: " + std::strerror(errno));
  }
  std::sort(files.begin(), files.end());
  std::vector<const ingestd_plugin_t *> out;
  for (const auto &f : files) {
    ingestd_kind_type kind;
    std::string name;
    if (f.rfind("in_", 0) == 0) {
      kind = INGESTD_KIND_INPUT;
      name = f.substr(3, f.size() - 6);
    } else if (f.rfind("out_", 0) == 0) {
      kind = INGESTD_KIND_OUTPUT;
      name = f.substr(4, f.size() - 7);
    } else if (f.rfind("filter_", 0) == 0) {
      kind = INGESTD_KIND_FILTER;
      name = f.substr(7, f.size() - 10);
    } else {
      continue;  // not named like a plugin
    }
    std::string why;
    if (const auto *p = find(kind, name, &why)) {
      out.push_back(p);
    } else {
      errors->push_back(why);
    }
  }
  return out;
}

}  // namespace ingestd
