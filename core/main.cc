// ingestd: command line, then the engine.
#include <signal.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

#include "config/config.h"
#include "engine/engine.h"
#include "host/plugin_loader.h"
#include "util/log.h"

#ifndef INGESTD_VERSION
#define INGESTD_VERSION "0.0.0"
#endif
#ifndef INGESTD_DEFAULT_CONFIG
#define INGESTD_DEFAULT_CONFIG "/etc/ingestd/ingestd.toml"
#endif

namespace {

constexpr const char *kUsage =
    "usage: ingestd [-c FILE] [-t] [--plugins-dir DIR] [--log-level LEVEL]\n"
    "       ingestd --list-plugins [-v] [--plugins-dir DIR]\n"
    "       ingestd --version\n"
    "\n"
    "  -c, --config FILE     main config file (default " INGESTD_DEFAULT_CONFIG
    "); conf.d/*.toml beside it\n"
    "                        is read too, in name order\n"
    "  -t, --test            check the config and the plugins' options, then exit 0 (valid) or 1\n"
    "      --plugins-dir DIR where KIND_NAME.so plugins are (overrides service.plugins_dir)\n"
    "      --log-level LEVEL error, warn, info or debug (overrides service.log_level)\n"
    "      --list-plugins    list the plugins found, with -v their options\n"
    "  -v, --verbose         with --list-plugins: print every option\n"
    "  -V, --version         print the version\n"
    "  -h, --help            this text\n"
    "\n"
    "Signals: SIGHUP reloads the config (the running one stays if the new one is invalid);\n"
    "SIGTERM/SIGINT stop accepting, drain queues for up to service.shutdown_timeout, exit 0.\n"
    "See ingestd(8) and ingestd.conf(5).\n";

const char *type_name(ingestd_option_kind_type t) {
  switch (t) {
    case INGESTD_OPT_STRING:
      return "string";
    case INGESTD_OPT_INT:
      return "integer";
    case INGESTD_OPT_DOUBLE:
      return "number";
    case INGESTD_OPT_BOOL:
      return "boolean";
    case INGESTD_OPT_SIZE:
      return "size";
    case INGESTD_OPT_DURATION:
      return "duration";
    case INGESTD_OPT_ENUM:
      return "enum";
    case INGESTD_OPT_STRING_LIST:
      return "list of strings";
    case INGESTD_OPT_STRING_LIST_LIST:
      return "list of lists of strings";
    case INGESTD_OPT_STRING_MAP:
      return "table of strings";
  }
  return "?";
}

void print_options(const ingestd_option_t *opts, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const auto &o = opts[i];
    std::printf("    %-22s %-10s", o.name, type_name(o.type));
    if (o.flags & INGESTD_OPT_REQUIRED) {
      std::printf(" required");
    } else if (o.default_value) {
      std::printf(" default %s", o.default_value);
    }
    if (o.type == INGESTD_OPT_ENUM && o.choices) std::printf(" (%s)", o.choices);
    std::printf("\n        %s\n", o.description);
  }
}

int list_plugins(const std::string &dir, bool verbose) {
  ingestd::PluginCatalog catalog(dir);
  std::vector<std::string> errors;
  auto plugins = catalog.load_all(&errors);
  std::printf("plugins in %s:\n", dir.c_str());
  for (const auto *p : plugins) {
    std::printf("  %-8s %-16s %s\n", ingestd::kind_word(p->kind), p->name,
                p->description ? p->description : "");
    if (verbose) print_options(p->options, p->option_count);
  }
  for (const auto &e : errors) std::fprintf(stderr, "%s\n", e.c_str());
  return errors.empty() ? 0 : 1;
}

bool take_value(int argc, char **argv, int *i, std::string_view flag, std::string *out) {
  std::string_view a = argv[*i];
  if (a == flag) {
    if (*i + 1 >= argc) {
      std::fprintf(stderr, "ingestd: %s needs a value\n", argv[*i]);
      std::exit(2);
    }
    *out = argv[++*i];
    return true;
  }
  if (a.size() > flag.size() + 1 && a.substr(0, flag.size()) == flag && a[flag.size()] == '=') {
    *out = std::string(a.substr(flag.size() + 1));
    return true;
  }
  return false;
}

}  // namespace

int main(int argc, char **argv) {
  ingestd::EngineOptions opts;
  opts.config_path = INGESTD_DEFAULT_CONFIG;
  bool test = false, list = false, verbose = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    std::string v;
    if (take_value(argc, argv, &i, "-c", &opts.config_path) ||
        take_value(argc, argv, &i, "--config", &opts.config_path) ||
        take_value(argc, argv, &i, "--plugins-dir", &opts.plugins_dir)) {
      continue;
    }
    if (take_value(argc, argv, &i, "--log-level", &v)) {
      ingestd::LogLevel lvl;
      if (!ingestd::parse_log_level(v, &lvl)) {
        std::fprintf(stderr, "ingestd: --log-level must be error, warn, info or debug, not '%s'\n",
                     v.c_str());
        return 2;
      }
      opts.log_level = lvl;
    } else if (a == "-t" || a == "--test") {
      test = true;
    } else if (a == "--list-plugins") {
      list = true;
    } else if (a == "-v" || a == "--verbose") {
      verbose = true;
    } else if (a == "-V" || a == "--version") {
      std::printf("ingestd %s (plugin ABI %d.%d)\n", INGESTD_VERSION, INGESTD_ABI_MAJOR,
                  INGESTD_ABI_MINOR);
      return 0;
    } else if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    } else {
      std::fprintf(stderr, "ingestd: unknown argument '%s'\n%s", argv[i], kUsage);
      return 2;
    }
  }
  // A closed reader must not kill the daemon: write errors are handled.
  ::signal(SIGPIPE, SIG_IGN);
  ingestd::Logger log(2, opts.log_level.value_or(ingestd::LogLevel::Info));
  if (list) {
    return list_plugins(opts.plugins_dir.empty() ? INGESTD_DEFAULT_PLUGINS_DIR : opts.plugins_dir,
                        verbose);
  }
  if (test) return ingestd::check_config(opts, &log);
  ingestd::Engine engine(opts, &log);
  return engine.run();
}
