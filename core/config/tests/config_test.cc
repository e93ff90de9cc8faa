// Tests for the config loader: files, sections, option tables, every error
// kind with its position, value syntaxes and the ABI option functions.
#include "config/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace ingestd::config {
namespace {

// ---- fake plugins ---------------------------------------------------------------

constexpr ingestd_option_t kTraceOptions[] = {
    {"max_per_request", INGESTD_OPT_INT, "1000", 0, nullptr, 1, 100000,
     "Most records accepted in one request"},
};

constexpr ingestd_option_t kRedisOptions[] = {
    {"address", INGESTD_OPT_STRING, "127.0.0.1:6379", 0, nullptr, 1, 0, "Redis host:port"},
    {"commands", INGESTD_OPT_STRING_LIST_LIST, nullptr, INGESTD_OPT_REQUIRED, nullptr, 1, 0,
     "Command templates run for each record"},
    {"ttl", INGESTD_OPT_DURATION, "0ms", 0, nullptr, 1, 0, "Expiry set on written keys"},
    {"if_newer", INGESTD_OPT_BOOL, "false", 0, nullptr, 1, 0, "Only write newer positions"},
};

constexpr ingestd_option_t kEsOptions[] = {
    {"hosts", INGESTD_OPT_STRING_LIST, "[\"http://localhost:9200\"]", 0, nullptr, 1, 0,
     "Elasticsearch base URLs"},
    {"headers", INGESTD_OPT_STRING_MAP, "{}", 0, nullptr, 1, 0, "Extra request headers"},
    {"sample", INGESTD_OPT_DOUBLE, "1.0", 0, nullptr, 0, 1, "Fraction of records sent"},
    {"batch_max_records", INGESTD_OPT_INT, "1000", 0, nullptr, 1, 0, "Bulk request size"},
    {"compress", INGESTD_OPT_BOOL, "true", 0, nullptr, 1, 0, "Gzip bulk requests"},
};

constexpr ingestd_option_t kFirehoseOptions[] = {
    {"region", INGESTD_OPT_STRING, nullptr, INGESTD_OPT_REQUIRED, nullptr, 1, 0, "AWS region"},
    {"stream", INGESTD_OPT_STRING, nullptr, INGESTD_OPT_REQUIRED, nullptr, 1, 0,
     "Delivery stream name"},
    {"batch_max_records", INGESTD_OPT_INT, "500", 0, nullptr, 1, 0, "PutRecordBatch size"},
};

// Overrides a core INT with a STRING: refused at load.
constexpr ingestd_option_t kBadOptions[] = {
    {"batch_max_records", INGESTD_OPT_STRING, "many", 0, nullptr, 1, 0, "Wrong type"},
};

constexpr ingestd_option_t kModifyOptions[] = {
    {"add", INGESTD_OPT_STRING_MAP, nullptr, 0, nullptr, 1, 0, "Fields to add"},
    {"remove", INGESTD_OPT_STRING_LIST, "[]", 0, nullptr, 1, 0, "Fields to remove"},
};

ingestd_plugin_t make_plugin(const char *name, ingestd_kind_type kind,
                             std::span<const ingestd_option_t> options) {
  ingestd_plugin_t p{};
  p.abi_major = INGESTD_ABI_MAJOR;
  p.abi_minor = INGESTD_ABI_MINOR;
  p.struct_size = sizeof(ingestd_plugin_t);
  p.name = name;
  p.kind = kind;
  p.description = "test plugin";
  p.version = "0";
  p.options = options.data();
  p.option_count = options.size();
  return p;
}

struct FakePlugins {
  ingestd_plugin_t trace = make_plugin("trace", INGESTD_KIND_INPUT, kTraceOptions);
  ingestd_plugin_t redis = make_plugin("redis", INGESTD_KIND_OUTPUT, kRedisOptions);
  ingestd_plugin_t es = make_plugin("elasticsearch", INGESTD_KIND_OUTPUT, kEsOptions);
  ingestd_plugin_t firehose = make_plugin("firehose", INGESTD_KIND_OUTPUT, kFirehoseOptions);
  ingestd_plugin_t bad = make_plugin("bad", INGESTD_KIND_OUTPUT, kBadOptions);
  ingestd_plugin_t modify = make_plugin("modify", INGESTD_KIND_FILTER, kModifyOptions);
  ingestd_plugin_t stdout_ = make_plugin("stdout", INGESTD_KIND_OUTPUT, {});

  PluginLookup lookup() const {
    return [this](ingestd_kind_type kind, const std::string &name,
                  std::string *why) -> const ingestd_plugin_t * {
      const char *prefix = kind == INGESTD_KIND_INPUT    ? "in_"
                           : kind == INGESTD_KIND_FILTER ? "filter_"
                                                         : "out_";
      std::map<std::string, const ingestd_plugin_t *> known = {
          {"in_trace", &trace},
          {"out_redis", &redis},
          {"out_elasticsearch", &es},
          {"out_firehose", &firehose},
          {"out_bad", &bad},
          {"filter_modify", &modify},
          {"out_stdout", &stdout_},
          // A file named like an input whose descriptor says output.
          {"in_redis", &redis},
      };
      auto it = known.find(prefix + name);
      if (it != known.end()) return it->second;
      *why = prefix + name + ".so: not found in /usr/lib/ingestd/plugins";
      return nullptr;
    };
  }
};

// ---- fixture ----------------------------------------------------------------------

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ingestd-config-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string path(const std::string &name) const { return dir_ + "/" + name; }

  void write(const std::string &name, const std::string &text) {
    std::filesystem::path p(path(name));
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p) << text;
  }

  // Loads main.toml; returns the errors as "file:line:col: message" with the
  // temp dir replaced by "D".
  std::vector<std::string> load_main(const std::string &main = "main.toml") {
    errors_.clear();
    ok_ = load(path(main), plugins_.lookup(), &config_, &errors_);
    std::vector<std::string> out;
    for (const Error &e : errors_) {
      // Built piecewise: an in-place std::string::replace here trips g++ 12's
      // -Wrestrict false positive at -O3 (GCC bug 105329).
      std::string s = e.str(), masked;
      size_t from = 0;
      for (size_t at; (at = s.find(dir_, from)) != std::string::npos; from = at + dir_.size())
        masked.append(s, from, at - from).append("D");
      masked.append(s, from, std::string::npos);
      out.push_back(std::move(masked));
    }
    return out;
  }

  std::string dir_;
  FakePlugins plugins_;
  Config config_;
  std::vector<Error> errors_;
  bool ok_ = false;
};

using ::testing::ElementsAre;

// A complete, valid config reused by several tests.
const char *kValid = R"([service]
workers = 2

[listeners.public]
listen = "0.0.0.0:8080"

[inputs.trace]
plugin = "trace"
listener = "public"
path = "/v1/trace"

[outputs.rider_positions]
plugin = "redis"
commands = [["GEOADD", "riders", "{lon}", "{lat}", "{device_id}"], ["EXPIRE", "riders"]]

[[routes]]
match = "trace"
to = ["rider_positions"]
)";

// ---- files --------------------------------------------------------------------------

TEST_F(ConfigTest, MissingMainFile) {
  EXPECT_THAT(load_main("nope.toml"),
              ElementsAre("D/nope.toml: cannot open: No such file or directory"));
  EXPECT_FALSE(ok_);
  ASSERT_EQ(config_.files.size(), 1u);
  EXPECT_EQ(config_.files[0], path("nope.toml"));
  EXPECT_EQ(errors_[0].pos.line, 0u);
}

TEST_F(ConfigTest, ValidConfigLoads) {
  write("main.toml", kValid);
  EXPECT_TRUE(load_main().empty());
  EXPECT_TRUE(ok_);
  EXPECT_EQ(config_.service.get_int("workers"), 2);
  ASSERT_EQ(config_.inputs.size(), 1u);
  EXPECT_EQ(config_.inputs[0].plugin, "trace");
  EXPECT_EQ(config_.inputs[0].descriptor, &plugins_.trace);
  EXPECT_EQ(config_.inputs[0].pos.str(), path("main.toml") + ":7:1");
  ASSERT_EQ(config_.routes.size(), 1u);
  EXPECT_EQ(config_.routes[0].match, "trace");
  EXPECT_EQ(config_.routes[0].to, std::vector<std::string>{"rider_positions"});
  EXPECT_TRUE(config_.routes[0].filters.empty());
  EXPECT_EQ(config_.routes[0].pos.line, 16u);
  EXPECT_NE(config_.find_output("rider_positions"), nullptr);
  EXPECT_EQ(config_.find_output("nope"), nullptr);
  EXPECT_NE(config_.find_listener("public"), nullptr);
  EXPECT_NE(config_.find_input("trace"), nullptr);
  const OptionValue *w = config_.service.find("workers");
  ASSERT_NE(w, nullptr);
  EXPECT_TRUE(w->explicitly_set);
  EXPECT_EQ(w->pos.str(), path("main.toml") + ":2:11");
}

TEST_F(ConfigTest, ConfDInNameOrderThenIncludes) {
  write("main.toml",
        "include = [\"extra/*.toml\", \"single.toml\"]\n"
        "[outputs.main]\nplugin = \"stdout\"\n");
  write("conf.d/20-b.toml", "[outputs.b20]\nplugin = \"stdout\"\n");
  write("conf.d/10-a.toml",
        "[outputs.a10]\nplugin = \"stdout\"\n[outputs.a10x]\nplugin = \"stdout\"\n");
  write("conf.d/README", "not toml at all [[[");
  write("conf.d/.hidden.toml", "not toml at all [[[");
  write("conf.d/sub.toml/x.toml", "[[[");  // a directory named *.toml is skipped
  // Includes are relative to the including file's directory, and an included
  // file may include again; every file is read once.
  write("extra/y.toml", "[outputs.y]\nplugin = \"stdout\"\n");
  write("extra/x.toml",
        "include = [\"nested/n.toml\", \"../main.toml\", \"../conf.d/*.toml\"]\n"
        "[outputs.x]\nplugin = \"stdout\"\n");
  write("extra/nested/n.toml", "[outputs.n]\nplugin = \"stdout\"\n");
  write("single.toml", "[outputs.single]\nplugin = \"stdout\"\n");
  EXPECT_TRUE(load_main().empty());

  std::vector<std::string> names;
  for (const Section &s : config_.outputs)
    names.push_back(s.name);
  EXPECT_THAT(names, ElementsAre("main", "a10", "a10x", "b20", "x", "y", "single", "n"));
  EXPECT_THAT(config_.files,
              ElementsAre(path("main.toml"), path("conf.d/10-a.toml"), path("conf.d/20-b.toml"),
                          path("extra/x.toml"), path("extra/y.toml"), path("single.toml"),
                          path("extra/nested/n.toml")));
  EXPECT_THAT(config_.watch_dirs, ElementsAre(path("conf.d")));
}

TEST_F(ConfigTest, SectionsKeepFileOrderNotNameOrder) {
  write("main.toml",
        "[outputs.zeta]\nplugin = \"stdout\"\n[outputs.alpha]\nplugin = \"stdout\"\n"
        "[outputs.mid]\nplugin = \"stdout\"\n");
  EXPECT_TRUE(load_main().empty());
  ASSERT_EQ(config_.outputs.size(), 3u);
  EXPECT_EQ(config_.outputs[0].name, "zeta");
  EXPECT_EQ(config_.outputs[1].name, "alpha");
  EXPECT_EQ(config_.outputs[2].name, "mid");
}

TEST_F(ConfigTest, IncludeErrors) {
  write("main.toml", "include = [\"missing.toml\", \"none/*.toml\", 3]\n");
  EXPECT_THAT(load_main(),
              ElementsAre("D/main.toml:1:12: include 'D/missing.toml': cannot open: No such file "
                          "or directory",
                          "D/main.toml:1:43: include must be an array of file names or globs, "
                          "got integer"));
}

TEST_F(ConfigTest, TomlSyntaxErrorSkipsOnlyThatFile) {
  write("main.toml", "[outputs.a]\nplugin = \"stdout\"\nbuffer = \n");
  write("conf.d/b.toml", "[outputs.b]\nplugin = \"stdout\"\nbuffer = \"ram\"\n");
  std::vector<std::string> errors = load_main();
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0],
            "D/main.toml:3:10: Error while parsing key-value pair: expected value, saw '\\n'");
  EXPECT_EQ(errors[1], "D/conf.d/b.toml:3:10: buffer must be one of: memory, disk (got 'ram')");
  EXPECT_EQ(config_.outputs.size(), 1u);
  EXPECT_EQ(config_.files.size(), 2u);
}

// ---- sections -------------------------------------------------------------------------

TEST_F(ConfigTest, UnknownSection) {
  write("main.toml", "[service]\nworkers = 1\n\n[output.es]\nplugin = \"x\"\n[metrics]\n");
  EXPECT_THAT(load_main(),
              ElementsAre("D/main.toml:4:2: unknown section 'output'; did you mean 'outputs'?",
                          "D/main.toml:6:2: unknown section 'metrics'"));
}

TEST_F(ConfigTest, DuplicateSectionAcrossFiles) {
  write("main.toml", "[service]\nworkers = 1\n\n[outputs.es]\nplugin = \"stdout\"\n");
  write("conf.d/a.toml", "# second\n\n[outputs.es]\nplugin = \"stdout\"\n[service]\n");
  EXPECT_THAT(load_main(),
              ElementsAre("D/conf.d/a.toml:3:1: [outputs.es] already defined at D/main.toml:4:1",
                          "D/conf.d/a.toml:5:1: [service] already defined at D/main.toml:1:1"));
  EXPECT_EQ(config_.outputs.size(), 1u);
  EXPECT_EQ(config_.service.get_int("workers"), 1);
}

TEST_F(ConfigTest, SameNameInDifferentKindsIsFine) {
  write("main.toml", "[filters.x]\nplugin = \"modify\"\n[outputs.x]\nplugin = \"stdout\"\n");
  EXPECT_TRUE(load_main().empty());
}

TEST_F(ConfigTest, BadSectionShapes) {
  write("main.toml",
        "service = 1\nroutes = 2\n[outputs]\nes = 3\n[inputs.\"bad name\"]\nplugin = \"trace\"\n");
  EXPECT_THAT(load_main(),
              ElementsAre("D/main.toml:1:11: [service] must be a table",
                          "D/main.toml:2:10: routes must be an array of tables: write [[routes]]",
                          "D/main.toml:4:1: [outputs.es] must be a table, got integer",
                          "D/main.toml:5:9: section name 'bad name' may only contain letters, "
                          "digits, '_' and '-'"));
}

TEST_F(ConfigTest, InlineTableSection) {
  write("main.toml", "[listeners]\npublic = { listen = \"127.0.0.1:80\", max_body = 10 }\n");
  EXPECT_TRUE(load_main().empty());
  ASSERT_EQ(config_.listeners.size(), 1u);
  EXPECT_EQ(config_.listeners[0].options.get_size("max_body"), 10u);
}

// ---- defaults and plugin tables ----------------------------------------------------------

TEST_F(ConfigTest, DefaultsApplied) {
  write("main.toml",
        "[listeners.l]\nlisten = \"[::1]:8080\"\n"
        "[inputs.trace]\nplugin = \"trace\"\nlistener = \"l\"\npath = \"/t\"\n"
        "[inputs.tagged]\nplugin = \"trace\"\nlistener = \"l\"\npath = \"/u\"\ntag = \"x\"\n"
        "[outputs.o]\nplugin = \"stdout\"\n[filters.f]\nplugin = \"modify\"\n");
  ASSERT_TRUE(load_main().empty());
  const OptionValues &s = config_.service;
  EXPECT_EQ(s.get_int("workers"), 0);
  EXPECT_EQ(s.get_string("admin"), "127.0.0.1:2020");
  EXPECT_EQ(s.get_string("storage_dir"), "/var/lib/ingestd");
  EXPECT_EQ(s.get_duration_ms("shutdown_timeout"), 10000);
  EXPECT_FALSE(s.get_bool("watch_config"));
  EXPECT_TRUE(s.has("watch_config"));
  EXPECT_FALSE(s.has("plugins_dir"));
  EXPECT_EQ(s.get_string("log_level"), "info");
  EXPECT_FALSE(s.find("workers")->explicitly_set);

  const OptionValues &l = config_.listeners[0].options;
  EXPECT_EQ(l.get_string("listen"), "[::1]:8080");
  EXPECT_FALSE(l.has("api_keys_file"));
  EXPECT_EQ(l.get_string("api_key_header"), "x-api-key");
  EXPECT_EQ(l.get_size("max_body"), 1u << 20);
  EXPECT_EQ(l.get_size("max_body_decompressed"), 8u << 20);
  EXPECT_EQ(l.get_size("max_header"), 16u << 10);
  EXPECT_EQ(l.get_duration_ms("header_timeout"), 10000);
  EXPECT_EQ(l.get_duration_ms("body_timeout"), 30000);
  EXPECT_EQ(l.get_duration_ms("idle_timeout"), 75000);
  EXPECT_EQ(l.get_int("max_connections"), 10000);
  EXPECT_TRUE(l.has("trusted_proxies"));
  EXPECT_TRUE(l.get_list("trusted_proxies").empty());

  EXPECT_EQ(config_.inputs[0].options.get_string("tag"), "trace");
  EXPECT_FALSE(config_.inputs[0].options.find("tag")->explicitly_set);
  EXPECT_EQ(config_.inputs[1].options.get_string("tag"), "x");
  EXPECT_EQ(config_.inputs[0].options.get_int("max_per_request"), 1000);

  const OptionValues &o = config_.outputs[0].options;
  EXPECT_EQ(o.get_string("buffer"), "memory");
  EXPECT_EQ(o.get_size("max_memory"), 64u << 20);
  EXPECT_EQ(o.get_int("max_records"), 100000);
  EXPECT_EQ(o.get_size("max_disk"), 1u << 30);
  EXPECT_EQ(o.get_int("batch_max_records"), 500);
  EXPECT_EQ(o.get_size("batch_max_bytes"), 4u << 20);
  EXPECT_EQ(o.get_duration_ms("flush_interval"), 1000);
  EXPECT_EQ(o.get_int("max_inflight"), 1);
  EXPECT_EQ(o.get_duration_ms("retry_initial"), 100);
  EXPECT_EQ(o.get_duration_ms("retry_max"), 30000);
  EXPECT_EQ(o.get_int("max_attempts"), 0);

  EXPECT_FALSE(config_.filters[0].options.has("add"));
  EXPECT_TRUE(config_.filters[0].options.get_list("remove").empty());
}

TEST_F(ConfigTest, PluginOverridesCoreDefault) {
  write("main.toml",
        "[outputs.es]\nplugin = \"elasticsearch\"\n"
        "[outputs.fh]\nplugin = \"firehose\"\nregion = \"r\"\nstream = \"s\"\n"
        "[outputs.red]\nplugin = \"redis\"\ncommands = []\n"
        "[outputs.es2]\nplugin = \"elasticsearch\"\nbatch_max_records = 7\n");
  ASSERT_TRUE(load_main().empty());
  EXPECT_EQ(config_.find_output("es")->options.get_int("batch_max_records"), 1000);
  EXPECT_EQ(config_.find_output("fh")->options.get_int("batch_max_records"), 500);
  EXPECT_EQ(config_.find_output("red")->options.get_int("batch_max_records"), 500);
  EXPECT_EQ(config_.find_output("es2")->options.get_int("batch_max_records"), 7);
  // The merged table keeps the core row (range, description) with the new default.
  const OptionValue *v = config_.find_output("es")->options.find("batch_max_records");
  EXPECT_STREQ(v->row.default_value, "1000");
  EXPECT_EQ(v->row.min, 1);
}

TEST_F(ConfigTest, PluginOverrideOfWrongTypeIsAnError) {
  write("main.toml", "[outputs.b]\nplugin = \"bad\"\n");
  EXPECT_THAT(load_main(),
              ElementsAre("D/main.toml:2:10: plugin 'bad': option 'batch_max_records' has type "
                          "string in the plugin but integer in the core"));
}

TEST_F(ConfigTest, UnknownAndWrongKindPlugin) {
  write("main.toml",
        "[inputs.x]\nplugin = \"foo\"\nlistener = \"l\"\npath = \"/x\"\nanything = 1\n"
        "[inputs.y]\nplugin = \"redis\"\nlistener = \"l\"\npath = \"/y\"\n"
        "[listeners.l]\nlisten = \"localhost:1\"\n");
  EXPECT_THAT(load_main(),
              ElementsAre("D/main.toml:2:10: unknown input plugin 'foo': in_foo.so: not found in "
                          "/usr/lib/ingestd/plugins",
                          "D/main.toml:7:10: plugin 'redis' is an output plugin, not an input "
                          "plugin"));
  EXPECT_EQ(config_.inputs[0].descriptor, nullptr);
}

TEST_F(ConfigTest, CoreTablesAreWellFormed) {
  std::set<std::string> descriptions;
  for (auto table : {service_options(), listener_options(), input_options(), filter_options(),
                     output_options(), route_options()}) {
    EXPECT_TRUE(check_option_table(table).empty())
        << ::testing::PrintToString(check_option_table(table));
    for (const ingestd_option_t &row : table) {
      ASSERT_NE(row.description, nullptr) << row.name;
      EXPECT_STRNE(row.description, "") << row.name;
      EXPECT_TRUE(descriptions.insert(row.description).second) << "repeated: " << row.name;
    }
  }
  // The names DESIGN.md promises.
  for (const char *name : {"workers", "admin", "storage_dir", "shutdown_timeout", "watch_config",
                           "plugins_dir", "log_level"}) {
    bool found = false;
    for (const ingestd_option_t &row : service_options())
      found |= std::string(row.name) == name;
    EXPECT_TRUE(found) << name;
  }
  EXPECT_EQ(core_options(INGESTD_KIND_OUTPUT).data(), output_options().data());
}

TEST_F(ConfigTest, CheckOptionTableFindsProblems) {
  constexpr ingestd_option_t bad[] = {
      {"a", INGESTD_OPT_INT, "x", 0, nullptr, 1, 0, "same"},
      {"b", INGESTD_OPT_ENUM, "c", 0, nullptr, 1, 0, "same"},
      {"c", INGESTD_OPT_STRING, nullptr, 0, nullptr, 1, 0, ""},
      {"a", INGESTD_OPT_DURATION, "10", 0, nullptr, 1, 0, "other"},
      {"d", INGESTD_OPT_INT, "5", INGESTD_OPT_REQUIRED, nullptr, 0, 3, "fourth"},
  };
  std::vector<std::string> problems = check_option_table(bad, output_options());
  std::string all;
  for (const std::string &p : problems)
    all += p + "\n";
  EXPECT_NE(all.find("option 'a': invalid default 'x'"), std::string::npos) << all;
  EXPECT_NE(all.find("option 'b': description repeats another row's"), std::string::npos) << all;
  EXPECT_NE(all.find("option 'b': enum without choices"), std::string::npos) << all;
  EXPECT_NE(all.find("option 'c': empty description"), std::string::npos) << all;
  EXPECT_NE(all.find("option 'a': name repeated"), std::string::npos) << all;
  EXPECT_NE(all.find("invalid default '10'"), std::string::npos) << all;
  EXPECT_NE(all.find("option 'd': required but has a default"), std::string::npos) << all;
  EXPECT_NE(all.find("must be between 0 and 3, got 5"), std::string::npos) << all;
  EXPECT_NE(all.find("option 'a' is declared twice"), std::string::npos) << all;
  constexpr ingestd_option_t retyped[] = {
      {"buffer", INGESTD_OPT_BOOL, "true", 0, nullptr, 1, 0, "Wrong type"},
  };
  EXPECT_THAT(check_option_table(retyped, output_options()),
              ElementsAre("option 'buffer' has type boolean in the plugin but enum in the core"));
  // The fake plugins' tables are fine.
  EXPECT_TRUE(check_option_table(kEsOptions, output_options()).empty());
  EXPECT_TRUE(check_option_table(kRedisOptions, output_options()).empty());
}

TEST_F(ConfigTest, MergeOptions) {
  std::vector<ingestd_option_t> merged;
  std::string err;
  ASSERT_TRUE(merge_options(output_options(), kEsOptions, &merged, &err));
  EXPECT_EQ(merged.size(), output_options().size() + 4);  // batch_max_records overrides
  EXPECT_STREQ(merged[0].name, "plugin");
  constexpr ingestd_option_t twice[] = {
      {"x", INGESTD_OPT_INT, "1", 0, nullptr, 1, 0, "one"},
      {"x", INGESTD_OPT_INT, "1", 0, nullptr, 1, 0, "two"},
  };
  EXPECT_FALSE(merge_options(output_options(), twice, &merged, &err));
  EXPECT_EQ(err, "option 'x' is declared twice");
}

// ---- option errors -----------------------------------------------------------------

TEST_F(ConfigTest, UnknownOptionSuggestsClosest) {
  write("main.toml",
        "[outputs.redis]\nplugin = \"redis\"\ncommands = []\nadress = \"x\"\ncolour = 1\n"
        "[service]\nworker = 3\n");
  EXPECT_THAT(
      load_main(),
      ElementsAre(
          "D/main.toml:4:1: unknown option 'adress' in [outputs.redis]; did you mean 'address'?",
          "D/main.toml:5:1: unknown option 'colour' in [outputs.redis]",
          "D/main.toml:7:1: unknown option 'worker' in [service]; did you mean 'workers'?"));
}

TEST_F(ConfigTest, WrongTypes) {
  write("main.toml",
        "[service]\nworkers = \"2\"\nwatch_config = 1\nshutdown_timeout = true\n"
        "[outputs.es]\nplugin = \"elasticsearch\"\nhosts = \"http://x\"\nheaders = "
        "{ a = 1 }\nmax_memory = [1]\nsample = \"half\"\n"
        "[outputs.r]\nplugin = \"redis\"\ncommands = [[\"a\", 2], \"b\"]\n"
        "[[routes]]\nmatch = \"*\"\nto = [\"es\", 3]\n");
  EXPECT_THAT(
      load_main(),
      ElementsAre(
          "D/main.toml:2:11: option 'workers' must be an integer, got string",
          "D/main.toml:3:16: option 'watch_config' must be a boolean (true or false), got integer",
          "D/main.toml:4:20: option 'shutdown_timeout' must be a duration like \"10s\", got "
          "boolean",
          "D/main.toml:7:9: option 'hosts' must be an array of strings, got string",
          "D/main.toml:8:17: option 'headers': member 'a' must be a string, got integer",
          "D/main.toml:9:14: option 'max_memory' must be a size like \"1MiB\" or a number of "
          "bytes, got array",
          "D/main.toml:10:10: option 'sample' must be a number, got string",
          "D/main.toml:13:19: option 'commands': item 1.2 must be a string, got integer",
          "D/main.toml:13:23: option 'commands': item 2 must be an array of strings, got string",
          "D/main.toml:16:13: option 'to': item 2 must be a string, got integer"));
}

TEST_F(ConfigTest, OutOfRange) {
  write("main.toml",
        "[service]\nworkers = 300\n"
        "[outputs.o]\nplugin = \"stdout\"\nmax_inflight = 0\nmax_memory = 0\n"
        "flush_interval = \"0ms\"\n[outputs.es]\nplugin = \"elasticsearch\"\nsample = 1.5\n");
  EXPECT_THAT(
      load_main(),
      ElementsAre("D/main.toml:2:11: option 'workers' must be between 0 and 256, got 300",
                  "D/main.toml:5:16: option 'max_inflight' must be between 1 and 1024, got 0",
                  "D/main.toml:6:14: option 'max_memory' must be between 1 bytes and "
                  "1125899906842624 bytes, got 0 bytes",
                  "D/main.toml:7:18: option 'flush_interval' must be between 1ms and 3600000ms, "
                  "got 0ms",
                  "D/main.toml:10:10: option 'sample' must be between 0 and 1, got 1.5"));
}

TEST_F(ConfigTest, BadEnum) {
  write("main.toml",
        "[service]\nlog_level = \"verbose\"\n[outputs.o]\nplugin = \"stdout\"\n"
        "buffer = \"ram\"\n");
  EXPECT_THAT(load_main(),
              ElementsAre("D/main.toml:2:13: log_level must be one of: error, warn, info, debug "
                          "(got 'verbose')",
                          "D/main.toml:5:10: buffer must be one of: memory, disk (got 'ram')"));
}

TEST_F(ConfigTest, BadSizesAndDurations) {
  write("main.toml",
        "[listeners.l]\nlisten = \"0.0.0.0:1\"\nmax_body = \"1XB\"\nmax_header = -5\n"
        "header_timeout = 10\nbody_timeout = \"10 sec\"\nidle_timeout = \"30s1m\"\n"
        "[service]\nshutdown_timeout = \"10\"\n");
  EXPECT_THAT(
      load_main(),
      ElementsAre(
          "D/main.toml:3:12: option 'max_body': invalid size '1XB': units are B, KB, KiB, MB, "
          "MiB, GB, GiB",
          "D/main.toml:4:14: option 'max_header' must not be negative",
          "D/main.toml:5:18: option 'header_timeout' needs a unit: write \"10s\" or \"10ms\" "
          "(units are ms, s, m, h)",
          "D/main.toml:6:16: option 'body_timeout': invalid duration '10 sec': units are ms, s, "
          "m, h, combined like \"1m30s\"",
          "D/main.toml:7:16: option 'idle_timeout': invalid duration '30s1m': write units from "
          "largest to smallest, each once",
          "D/main.toml:9:20: option 'shutdown_timeout': invalid duration '10': add a unit (ms, s, "
          "m or h), e.g. \"10s\""));
}

TEST_F(ConfigTest, SizesAndDurationsInConfig) {
  write("main.toml",
        "[listeners.l]\nlisten = \"0.0.0.0:1\"\nmax_body = 2048\nmax_body_decompressed = "
        "\"3 MB\"\nmax_header = \"1KiB\"\nidle_timeout = \"1m30s\"\nheader_timeout = \"250ms\"\n");
  ASSERT_TRUE(load_main().empty());
  const OptionValues &l = config_.listeners[0].options;
  EXPECT_EQ(l.get_size("max_body"), 2048u);
  EXPECT_EQ(l.get_size("max_body_decompressed"), 3000000u);
  EXPECT_EQ(l.get_size("max_header"), 1024u);
  EXPECT_EQ(l.get_duration_ms("idle_timeout"), 90000);
  EXPECT_EQ(l.get_duration_ms("header_timeout"), 250);
}

TEST_F(ConfigTest, MissingRequired) {
  write("main.toml",
        "[listeners.l]\nmax_body = 1\n\n[inputs.i]\nplugin = \"trace\"\n"
        "[outputs.o]\nbuffer = \"disk\"\n[outputs.r]\nplugin = \"redis\"\n[[routes]]\nmatch = "
        "\"*\"\n");
  EXPECT_THAT(load_main(),
              ElementsAre("D/main.toml:1:1: missing required option 'listen' in [listeners.l]",
                          "D/main.toml:4:1: missing required option 'listener' in [inputs.i]",
                          "D/main.toml:4:1: missing required option 'path' in [inputs.i]",
                          "D/main.toml:6:1: missing required option 'plugin' in [outputs.o]",
                          "D/main.toml:8:1: missing required option 'commands' in [outputs.r]",
                          "D/main.toml:10:1: missing required option 'to' in [[routes]]"));
}

TEST_F(ConfigTest, AllErrorsCollectedAcrossFiles) {
  write("main.toml", "[service]\nworkers = -1\nlog_level = \"loud\"\n");
  write("conf.d/a.toml", "[outputs.o]\nplugin = \"stdout\"\nmax_inflight = 5000\n");
  write("conf.d/b.toml", "[outputs.p]\nplugin = \"nope\"\n");
  std::vector<std::string> errors = load_main();
  ASSERT_EQ(errors.size(), 4u);
  EXPECT_EQ(errors[0].substr(0, 16), "D/main.toml:2:11");
  EXPECT_EQ(errors[1].substr(0, 16), "D/main.toml:3:13");
  EXPECT_EQ(errors[2].substr(0, 20), "D/conf.d/a.toml:3:16");
  EXPECT_EQ(errors[3].substr(0, 20), "D/conf.d/b.toml:2:10");
}

// ---- section rules ---------------------------------------------------------------------

TEST_F(ConfigTest, ListenerAddresses) {
  write("main.toml",
        "[listeners.a]\nlisten = \"0.0.0.0:8080\"\n"
        "[listeners.b]\nlisten = \"[::]:80\"\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\", "
        "\"10.0.0.0/33\", \"proxy\"]\n"
        "[listeners.c]\nlisten = \"example.com:80\"\n"
        "[listeners.d]\nlisten = \"127.0.0.1:65536\"\n"
        "[listeners.e]\nlisten = \"::1:80\"\n"
        "[service]\nadmin = \"nohost\"\n");
  EXPECT_THAT(
      load_main(),
      ElementsAre("D/main.toml:5:41: option 'trusted_proxies': invalid CIDR '10.0.0.0/33': "
                  "prefix length must be 0 to 32",
                  "D/main.toml:5:56: option 'trusted_proxies': invalid CIDR 'proxy': 'proxy' is "
                  "not an IPv4 or IPv6 address",
                  "D/main.toml:7:10: option 'listen': invalid address 'example.com:80': host must "
                  "be an IPv4 address, [IPv6 address] or localhost",
                  "D/main.toml:9:10: option 'listen': invalid address '127.0.0.1:65536': port "
                  "must be a number from 0 to 65535 (0: any free port)",
                  "D/main.toml:11:10: option 'listen': invalid address '::1:80': write an IPv6 "
                  "address in brackets, e.g. \"[::1]:8080\"",
                  "D/main.toml:13:9: option 'admin': invalid address 'nohost': expected host:port "
                  "(e.g. \"0.0.0.0:8080\" or \"[::1]:8080\")"));
}

TEST_F(ConfigTest, EmptyAdminDisables) {
  write("main.toml", "[service]\nadmin = \"\"\n");
  EXPECT_TRUE(load_main().empty());
  EXPECT_EQ(config_.service.get_string("admin"), "");
}

TEST_F(ConfigTest, InputRules) {
  write("main.toml",
        "[listeners.public]\nlisten = \"0.0.0.0:1\"\n[listeners.other]\nlisten = \"0.0.0.0:2\"\n"
        "[inputs.a]\nplugin = \"trace\"\nlistener = \"public\"\npath = \"/v1/trace\"\n"
        "[inputs.b]\nplugin = \"trace\"\nlistener = \"public\"\npath = \"/v1/trace\"\n"
        "[inputs.c]\nplugin = \"trace\"\nlistener = \"other\"\npath = \"/v1/trace\"\n"
        "[inputs.d]\nplugin = \"trace\"\nlistener = \"publc\"\npath = \"v1/x\"\n");
  EXPECT_THAT(load_main(),
              ElementsAre("D/main.toml:12:8: path '/v1/trace' on listener 'public' is already "
                          "used by [inputs.a] at D/main.toml:8:8",
                          "D/main.toml:19:12: unknown listener 'publc'; did you mean 'public'?",
                          "D/main.toml:20:8: option 'path' must start with '/', got 'v1/x'"));
}

TEST_F(ConfigTest, RouteReferences) {
  write("main.toml",
        "[filters.mod]\nplugin = \"modify\"\n[outputs.es]\nplugin = \"stdout\"\n"
        "[[routes]]\nmatch = \"*\"\nfilters = [\"mod\", \"modd\", \"zzz\"]\nto = [\"es\", "
        "\"ex\", \"nowhere\"]\n"
        "[[routes]]\nmatch = \"\"\nto = []\n");
  EXPECT_THAT(
      load_main(),
      ElementsAre("D/main.toml:7:19: route uses unknown filter 'modd'; did you mean 'mod'?",
                  "D/main.toml:7:27: route uses unknown filter 'zzz'",
                  "D/main.toml:8:13: route sends to unknown output 'ex'; did you mean 'es'?",
                  "D/main.toml:8:19: route sends to unknown output 'nowhere'",
                  "D/main.toml:10:9: option 'match' must not be empty",
                  "D/main.toml:11:6: option 'to' must name at least one output"));
  EXPECT_EQ(config_.routes.size(), 2u);
}

TEST_F(ConfigTest, RoutesAcrossFilesKeepOrder) {
  write("main.toml",
        "[outputs.o]\nplugin = \"stdout\"\n[[routes]]\nmatch = \"a\"\nto = [\"o\"]\n"
        "[[routes]]\nmatch = \"b\"\nto = [\"o\"]\n");
  write("conf.d/x.toml", "[[routes]]\nmatch = \"c\"\nto = [\"o\"]\n");
  ASSERT_TRUE(load_main().empty());
  ASSERT_EQ(config_.routes.size(), 3u);
  EXPECT_EQ(config_.routes[0].match, "a");
  EXPECT_EQ(config_.routes[1].match, "b");
  EXPECT_EQ(config_.routes[2].match, "c");
  EXPECT_EQ(config_.routes[2].pos.file, path("conf.d/x.toml"));
}

TEST_F(ConfigTest, CrossFieldRules) {
  write("main.toml",
        "[listeners.l]\nlisten = \"0.0.0.0:1\"\nmax_body = \"2MiB\"\nmax_body_decompressed = "
        "\"1MiB\"\n[outputs.o]\nplugin = \"stdout\"\nretry_initial = \"5s\"\nretry_max = \"1s\"\n");
  EXPECT_THAT(load_main(),
              ElementsAre("D/main.toml:4:25: option 'max_body_decompressed' must not be smaller "
                          "than max_body",
                          "D/main.toml:8:13: option 'retry_max' must not be smaller than "
                          "retry_initial"));
}

// ---- value syntaxes ------------------------------------------------------------------

TEST(ParseSize, Valid) {
  struct {
    const char *text;
    uint64_t bytes;
  } cases[] = {{"0", 0},          {"1024", 1024},        {"1B", 1},
               {"1KB", 1000},     {"1KiB", 1024},        {"1MB", 1000000},
               {"1MiB", 1 << 20}, {"3 GiB", 3ull << 30}, {"2GB", 2000000000},
               {"16kib", 16384},  {" 5 MiB ", 5u << 20}};
  for (auto &c : cases) {
    uint64_t v = 99;
    std::string err;
    EXPECT_TRUE(parse_size(c.text, &v, &err)) << c.text << ": " << err;
    EXPECT_EQ(v, c.bytes) << c.text;
  }
}

TEST(ParseSize, Invalid) {
  uint64_t v = 0;
  std::string err;
  EXPECT_FALSE(parse_size("1XB", &v, &err));
  EXPECT_EQ(err, "invalid size '1XB': units are B, KB, KiB, MB, MiB, GB, GiB");
  for (const char *bad : {"", "MiB", "-1", "1.5MiB", "1 M", "1MiBB", "0x10"}) {
    EXPECT_FALSE(parse_size(bad, &v, &err)) << bad;
  }
  EXPECT_FALSE(parse_size("17179869184GiB", &v, &err));
  EXPECT_EQ(err, "invalid size '17179869184GiB': too large");
  EXPECT_FALSE(parse_size("99999999999999999999", &v, &err));
  EXPECT_EQ(err, "invalid size '99999999999999999999': too large");
}

TEST(ParseDuration, Valid) {
  struct {
    const char *text;
    int64_t ms;
  } cases[] = {{"0ms", 0},        {"500ms", 500},    {"10s", 10000},
               {"1m", 60000},     {"2h", 7200000},   {"1m30s", 90000},
               {"1h5m", 3900000}, {"1s250ms", 1250}, {"1h1m1s1ms", 3661001}};
  for (auto &c : cases) {
    int64_t v = -1;
    std::string err;
    EXPECT_TRUE(parse_duration_ms(c.text, &v, &err)) << c.text << ": " << err;
    EXPECT_EQ(v, c.ms) << c.text;
  }
}

TEST(ParseDuration, Invalid) {
  int64_t v = 0;
  std::string err;
  EXPECT_FALSE(parse_duration_ms("5", &v, &err));
  EXPECT_EQ(err, "invalid duration '5': add a unit (ms, s, m or h), e.g. \"5s\"");
  EXPECT_FALSE(parse_duration_ms("5d", &v, &err));
  EXPECT_EQ(err, "invalid duration '5d': units are ms, s, m, h, combined like \"1m30s\"");
  for (const char *bad :
       {"", "s", "-1s", "1.5s", "1s1s", "30s1m", "1m30", "1 s", "9999999999999999h"}) {
    EXPECT_FALSE(parse_duration_ms(bad, &v, &err)) << bad;
  }
}

TEST(ParseListenAddress, Forms) {
  std::string host, err;
  uint16_t port = 0;
  EXPECT_TRUE(parse_listen_address("0.0.0.0:8080", &host, &port, &err));
  EXPECT_EQ(host, "0.0.0.0");
  EXPECT_EQ(port, 8080);
  EXPECT_TRUE(parse_listen_address("[::1]:65535", &host, &port, &err));
  EXPECT_EQ(host, "::1");
  EXPECT_EQ(port, 65535);
  EXPECT_TRUE(parse_listen_address("localhost:1", &host, &port, &err));
  EXPECT_EQ(host, "localhost");
  for (const char *bad : {"", "8080", ":8080", "0.0.0.0:", "0.0.0.0:65536", "0.0.0.0:80x", "[::1]",
                          "[::1:80", "[nope]:80", "256.0.0.1:80", "host:80", "::1:80"}) {
    EXPECT_FALSE(parse_listen_address(bad, &host, &port, &err)) << bad;
  }
}

TEST(ParseCidr, Forms) {
  std::string err;
  for (const char *ok : {"10.0.0.0/8", "0.0.0.0/0", "192.168.1.1", "::1", "fd00::/8", "::/128"}) {
    EXPECT_TRUE(parse_cidr(ok, &err)) << ok << ": " << err;
  }
  for (const char *bad : {"", "10.0.0.0/", "10.0.0.0/33", "::/129", "x/8", "10.0.0.0/8x"}) {
    EXPECT_FALSE(parse_cidr(bad, &err)) << bad;
  }
}

TEST(EditDistance, Basics) {
  EXPECT_EQ(edit_distance("adress", "address"), 1u);
  EXPECT_EQ(edit_distance("", "abc"), 3u);
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
  EXPECT_EQ(edit_distance("same", "same"), 0u);
}

TEST(ErrorFormat, WithAndWithoutLine) {
  // Built field by field: g++ 12 -O3 misreads the aggregate form as uninitialised.
  Error with_line;
  with_line.pos.file = "a.toml";
  with_line.pos.line = 3;
  with_line.pos.col = 1;
  with_line.message = "boom";
  EXPECT_EQ(with_line.str(), "a.toml:3:1: boom");
  Error without_line;
  without_line.pos.file = "a.toml";
  without_line.message = "cannot open: x";
  EXPECT_EQ(without_line.str(), "a.toml: cannot open: x");
}

// ---- host option functions ---------------------------------------------------------------

TEST_F(ConfigTest, HostOptionFunctions) {
  write("main.toml",
        "[outputs.es]\nplugin = \"elasticsearch\"\nhosts = [\"http://a:9200\", "
        "\"http://b:9200\"]\nheaders = { zeta = \"1\", alpha = \"2\" }\nsample = 0.25\n"
        "max_memory = \"2MiB\"\nflush_interval = \"2s\"\nbuffer = \"disk\"\ncompress = false\n"
        "[outputs.r]\nplugin = \"redis\"\nif_newer = true\n"
        "commands = [[\"GEOADD\", \"riders\", \"{lon}\"], [], [\"EXPIRE\", \"riders\"]]\n");
  ASSERT_TRUE(load_main().empty());
  const ingestd_config_t *es = config_.find_output("es")->options.abi();
  const ingestd_config_t *r = config_.find_output("r")->options.abi();

  // The functions fit the host table's slots exactly.
  ingestd_host_t host{};
  host.has_option = has_option;
  host.option_string = option_string;
  host.option_int = option_int;
  host.option_size = option_size;
  host.option_double = option_double;
  host.option_bool = option_bool;
  host.option_list_size = option_list_size;
  host.option_list_item = option_list_item;
  host.option_list_list_size = option_list_list_size;
  host.option_list_list_item = option_list_list_item;
  host.option_map_key = option_map_key;

  EXPECT_EQ(host.has_option(es, "hosts"), 1);
  EXPECT_EQ(host.has_option(es, "nope"), 0);
  EXPECT_EQ(host.has_option(r, "ttl"), 1);
  EXPECT_STREQ(host.option_string(es, "plugin"), "elasticsearch");
  EXPECT_STREQ(host.option_string(es, "buffer"), "disk");  // ENUM reads as a string
  EXPECT_EQ(host.option_int(es, "batch_max_records"), 1000);
  EXPECT_EQ(host.option_int(es, "flush_interval"), 2000);  // DURATION in ms
  EXPECT_EQ(host.option_size(es, "max_memory"), 2u << 20);
  EXPECT_DOUBLE_EQ(host.option_double(es, "sample"), 0.25);
  EXPECT_EQ(host.option_bool(es, "compress"), 0);
  EXPECT_EQ(host.option_bool(r, "if_newer"), 1);

  EXPECT_EQ(host.option_list_size(es, "hosts"), 2u);
  EXPECT_STREQ(host.option_list_item(es, "hosts", 1), "http://b:9200");
  EXPECT_EQ(host.option_list_item(es, "hosts", 2), nullptr);

  // Map members in file order: key i and value i.
  EXPECT_EQ(host.option_list_size(es, "headers"), 2u);
  EXPECT_STREQ(host.option_map_key(es, "headers", 0), "zeta");
  EXPECT_STREQ(host.option_list_item(es, "headers", 0), "1");
  EXPECT_STREQ(host.option_map_key(es, "headers", 1), "alpha");
  EXPECT_STREQ(host.option_list_item(es, "headers", 1), "2");
  EXPECT_EQ(host.option_map_key(es, "headers", 2), nullptr);

  EXPECT_EQ(host.option_list_size(r, "commands"), 3u);
  EXPECT_EQ(host.option_list_list_size(r, "commands", 0), 3u);
  EXPECT_EQ(host.option_list_list_size(r, "commands", 1), 0u);
  EXPECT_EQ(host.option_list_list_size(r, "commands", 3), 0u);
  EXPECT_STREQ(host.option_list_list_item(r, "commands", 0, 2), "{lon}");
  EXPECT_STREQ(host.option_list_list_item(r, "commands", 2, 0), "EXPIRE");
  EXPECT_EQ(host.option_list_list_item(r, "commands", 2, 2), nullptr);
  EXPECT_EQ(host.option_list_list_item(r, "commands", 9, 0), nullptr);
  EXPECT_EQ(host.option_list_item(r, "commands", 0), nullptr);  // not a flat list

  // Unknown names and wrong types read as NULL / 0.
  EXPECT_EQ(host.option_string(es, "nope"), nullptr);
  EXPECT_EQ(host.option_string(es, "sample"), nullptr);
  EXPECT_EQ(host.option_int(es, "hosts"), 0);
  EXPECT_EQ(host.option_int(es, "max_memory"), 0);
  EXPECT_EQ(host.option_size(es, "batch_max_records"), 0u);
  EXPECT_EQ(host.option_double(es, "batch_max_records"), 0);
  EXPECT_EQ(host.option_bool(es, "plugin"), 0);
  EXPECT_EQ(host.option_list_size(es, "plugin"), 0u);
  EXPECT_EQ(host.option_list_list_size(es, "hosts", 0), 0u);
  EXPECT_EQ(host.option_map_key(es, "hosts", 0), nullptr);
  EXPECT_EQ(host.option_list_size(es, "nope"), 0u);
  EXPECT_EQ(host.has_option(nullptr, "hosts"), 0);
  EXPECT_EQ(host.option_string(nullptr, "plugin"), nullptr);
  EXPECT_EQ(host.option_string(es, nullptr), nullptr);
  EXPECT_EQ(host.option_list_list_item(nullptr, nullptr, 0, 0), nullptr);

  // An optional option without default: absent.
  const ingestd_config_t *svc = config_.service.abi();
  EXPECT_EQ(host.has_option(svc, "plugins_dir"), 0);
  EXPECT_EQ(host.option_string(svc, "plugins_dir"), nullptr);
  EXPECT_EQ(OptionValues::from_abi(svc), &config_.service);
}

TEST_F(ConfigTest, CxxGettersReturnZeroForWrongType) {
  write("main.toml", kValid);
  ASSERT_TRUE(load_main().empty());
  const OptionValues &o = config_.outputs[0].options;
  EXPECT_EQ(o.get_string("max_inflight"), "");
  EXPECT_EQ(o.get_int("plugin"), 0);
  EXPECT_EQ(o.get_size("flush_interval"), 0u);
  EXPECT_EQ(o.get_duration_ms("max_memory"), 0);
  EXPECT_TRUE(o.get_list("commands").empty());
  EXPECT_EQ(o.get_list_list("commands").size(), 2u);
  EXPECT_TRUE(o.get_map("commands").empty());
  EXPECT_FALSE(o.has("nope"));
  EXPECT_EQ(o.find("nope"), nullptr);
}

}  // namespace
}  // namespace ingestd::config
