// ingestd: command line, then the engine.
#include <signal.h>

#include <cstdio>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "config/config.h"
#include "engine/engine.h"
#include "host/plugin_loader.h"
#include "httpclient/http_client.h"
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
    "       ingestd -c FILE --replay DEAD_LETTER_FILE --to OUTPUT\n"
    "       ingestd --version\n"
    "\n"
    "  -c, --config FILE     main config file (default " INGESTD_DEFAULT_CONFIG
    "); conf.d/*.toml beside it\n"
    "                        is read too, in name order\n"
    "  -t, --test            check the config and the plugins' options, then exit 0 (valid) or 1\n"
    "      --plugins-dir DIR where KIND_NAME.so plugins are (overrides service.plugins_dir)\n"
    "      --log-level LEVEL error, warn, info or debug (overrides service.log_level)\n"
    "      --list-plugins    list the plugins found, with -v their options\n"
    "      --replay FILE     send the records of a dead-letter file (moved aside first) again,\n"
    "      --to OUTPUT       to this output of the config; exit 0 when all were delivered\n"
    "  -v, --verbose         with --list-plugins: print every option\n"
    "      --options-mdoc    every option of the core and the plugins as mdoc (for "
    "ingestd.conf(5))\n"
    "  -V, --version         print the version\n"
    "  -h, --help            this text\n"
    "\n"
    "Signals: SIGHUP reloads the config (the running one stays if the new one is invalid);\n"
    "SIGTERM/SIGINT stop accepting, drain queues for up to service.shutdown_timeout, exit 0.\n"
    "See ingestd(8) and ingestd.conf(5).\n";


void print_options(const ingestd_option_t *opts, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const auto &o = opts[i];
    std::printf("    %-22s %-10s", o.name, ingestd::config::option_type_name(o.type));
    if (o.flags & INGESTD_OPT_REQUIRED) {
      std::printf(" required");
    } else if (o.default_value) {
      std::printf(" default %s", o.default_value);
    }
    if (o.type == INGESTD_OPT_ENUM && o.choices) std::printf(" (%s)", o.choices);
    std::printf("\n        %s\n", o.description);
  }
}

// mdoc for one option table, for ingestd.conf(5) (built from the tables, so
// the page cannot drift from the code).
std::string mdoc_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '\\') {
      out += "\\e";
    } else {
      out += c;
    }
  }
  // A line starting with '.' or '\'' would be a request.
  if (!out.empty() && (out[0] == '.' || out[0] == '\'')) out.insert(0, "\\&");
  return out;
}

void print_options_mdoc(std::span<const ingestd_option_t> opts) {
  std::printf(".Bl -tag -width Ds\n");
  for (const auto &o : opts) {
    std::printf(".It Cm %s Pq %s", o.name, ingestd::config::option_type_name(o.type));
    std::printf("\n%s.\n", mdoc_escape(o.description).c_str());
    if (o.type == INGESTD_OPT_ENUM && o.choices) std::printf("One of: %s.\n", o.choices);
    if (o.flags & INGESTD_OPT_REQUIRED) {
      std::printf("Required.\n");
    } else if (o.default_value && !*o.default_value) {
      std::printf("Default: empty.\n");  // an empty .Li is a mandoc warning
    } else if (o.default_value) {
      std::printf("Default:\n.Li %s .\n", mdoc_escape(o.default_value).c_str());
    }
  }
  std::printf(".El\n");
}

int options_mdoc(const std::string &dir) {
  namespace cfg = ingestd::config;
  const std::pair<const char *, std::span<const ingestd_option_t>> core[] = {
      {"service", cfg::service_options()}, {"listeners", cfg::listener_options()},
      {"inputs", cfg::input_options()},    {"filters", cfg::filter_options()},
      {"outputs", cfg::output_options()},  {"routes", cfg::route_options()},
  };
  for (const auto &[name, table] : core) {
    std::printf(".Ss Options of every %s section\n", name);
    print_options_mdoc(table);
  }
  ingestd::PluginCatalog catalog(dir);
  std::vector<std::string> errors;
  auto plugins = catalog.load_all(&errors);
  std::printf(
      ".Sh PLUGINS\nOptions of the plugins in\n.Pa %s ,\nbesides the ones every section "
      "of their kind has.\n",
      dir.c_str());
  for (const auto *p : plugins) {
    std::printf(".Ss %s %s\n%s.\n", ingestd::kind_word(p->kind), p->name,
                mdoc_escape(p->description ? p->description : "").c_str());
    if (p->option_count == 0) {
      std::printf("No options of its own.\n");
    } else {
      print_options_mdoc(std::span(p->options, p->option_count));
    }
  }
  for (const auto &e : errors)
    std::fprintf(stderr, "%s\n", e.c_str());
  return errors.empty() ? 0 : 1;
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
  for (const auto &e : errors)
    std::fprintf(stderr, "%s\n", e.c_str());
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
  bool test = false, list = false, verbose = false, mdoc = false;
  std::string replay_file, replay_to;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    std::string v;
    if (take_value(argc, argv, &i, "-c", &opts.config_path) ||
        take_value(argc, argv, &i, "--config", &opts.config_path) ||
        take_value(argc, argv, &i, "--plugins-dir", &opts.plugins_dir) ||
        take_value(argc, argv, &i, "--replay", &replay_file) ||
        take_value(argc, argv, &i, "--to", &replay_to)) {
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
    } else if (a == "--options-mdoc") {
      mdoc = true;
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
  // libcurl's global state, once, before any worker thread exists.
  if (!ingestd::HttpClient::global_init()) {
    std::fprintf(stderr, "ingestd: libcurl failed to initialise\n");
    return 1;
  }
  struct CurlCleanup {
    ~CurlCleanup() { ingestd::HttpClient::global_cleanup(); }
  } curl_cleanup;
  ingestd::Logger log(2, opts.log_level.value_or(ingestd::LogLevel::Info));
  if (mdoc) {
    return options_mdoc(opts.plugins_dir.empty() ? INGESTD_DEFAULT_PLUGINS_DIR : opts.plugins_dir);
  }
  if (list) {
    return list_plugins(opts.plugins_dir.empty() ? INGESTD_DEFAULT_PLUGINS_DIR : opts.plugins_dir,
                        verbose);
  }
  if (test) return ingestd::check_config(opts, &log);
  if (!replay_file.empty() || !replay_to.empty()) {
    if (replay_file.empty() || replay_to.empty()) {
      std::fprintf(stderr, "ingestd: --replay FILE and --to OUTPUT go together\n");
      return 2;
    }
    return ingestd::replay_dead_letters(opts, replay_file, replay_to, &log);
  }
  ingestd::Engine engine(opts, &log);
  return engine.run();
}
