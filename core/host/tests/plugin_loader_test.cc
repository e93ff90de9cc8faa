// Loader refusals, each with one line naming the path and the reason.
#include "host/plugin_loader.h"

#include <dlfcn.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <string>

namespace ingestd {
namespace {

const std::string kDir = TEST_PLUGIN_DIR;

std::string open_error(const std::string &file, int kind = 0, std::string_view name = {}) {
  std::string why;
  auto lib = PluginLibrary::open(kDir + "/" + file, kind, name, &why);
  EXPECT_EQ(lib, nullptr) << file << " loaded but should not";
  EXPECT_EQ(why.find('\n'), std::string::npos) << "one line: " << why;
  EXPECT_EQ(why.rfind(kDir + "/" + file, 0), 0u) << "names the path first: " << why;
  return why;
}

TEST(PluginLoader, MissingFile) {
  std::string why = open_error("out_nope.so");
  EXPECT_NE(why.find("No such file or directory"), std::string::npos) << why;
}

TEST(PluginLoader, MissingSymbol) {
  std::string why = open_error("out_nosymbol.so");
  EXPECT_NE(why.find("symbol 'ingestd_plugin_v1' not found"), std::string::npos) << why;
}

TEST(PluginLoader, OtherAbiVersion) {
  std::string why = open_error("out_wrongabi.so");
  EXPECT_NE(why.find("built for plugin ABI 99.0"), std::string::npos) << why;
  EXPECT_NE(why.find("this ingestd speaks 1."), std::string::npos) << why;
}

TEST(PluginLoader, DescriptorTooSmall) {
  std::string why = open_error("out_small.so");
  EXPECT_NE(why.find("descriptor is 16 bytes"), std::string::npos) << why;
}

TEST(PluginLoader, UnresolvedSymbolFailsAtLoad) {
  std::string why = open_error("out_unresolved.so");
  EXPECT_NE(why.find("undefined symbol"), std::string::npos) << why;
}

TEST(PluginLoader, DuplicateOptionDescriptions) {
  std::string why = open_error("out_badopts.so");
  EXPECT_NE(why.find("repeats another option's description"), std::string::npos) << why;
}

TEST(PluginLoader, WrongKindAndName) {
  std::string why;
  EXPECT_EQ(PluginLibrary::open(kDir + "/out_null.so", INGESTD_KIND_INPUT, "", &why), nullptr);
  EXPECT_NE(why.find("is an output plugin, expected an input plugin"), std::string::npos) << why;
  EXPECT_EQ(PluginLibrary::open(kDir + "/out_null.so", 0, "other", &why), nullptr);
  EXPECT_NE(why.find("names itself 'null'"), std::string::npos) << why;
}

TEST(PluginLoader, LoadsAGoodPlugin) {
  std::string why;
  auto lib = PluginLibrary::open(kDir + "/out_null.so", INGESTD_KIND_OUTPUT, "null", &why);
  ASSERT_NE(lib, nullptr) << why;
  EXPECT_STREQ(lib->descriptor()->name, "null");
}

// ABI 1.x only appends: plugins built for 1.0 and 1.1 still load on 1.2.
TEST(PluginLoader, AcceptsOlderMinorVersions) {
  std::string why;
  auto lib = PluginLibrary::open(kDir + "/out_null.so", INGESTD_KIND_OUTPUT, "null", &why);
  ASSERT_NE(lib, nullptr) << why;
  for (uint16_t minor : {0, 1}) {
    ingestd_plugin_t old = *lib->descriptor();
    old.abi_minor = minor;
    old.struct_size = offsetof(ingestd_plugin_t, on_flush) + sizeof old.on_flush;  // 1.0/1.1 size
    EXPECT_EQ(validate_descriptor(&old, INGESTD_KIND_OUTPUT, "null"), "") << "1." << minor;
  }
}

TEST(PluginCatalog, FindExplainsMissingPlugin) {
  PluginCatalog cat(kDir);
  std::string why;
  EXPECT_EQ(cat.find(INGESTD_KIND_OUTPUT, "kafka", &why), nullptr);
  EXPECT_EQ(why, "no output plugin 'kafka': " + kDir +
                     "/out_kafka.so does not exist (see --list-plugins)");
  EXPECT_NE(cat.find(INGESTD_KIND_OUTPUT, "null", &why), nullptr) << why;
}

// A temporary plugins directory, removed with everything in it.
struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/ingestd-plugins-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  void install(const std::string &file) const {
    std::filesystem::copy_file(kDir + "/" + file, path + "/" + file);
  }
};

TEST(PluginCatalog, RefusedPluginLoadsOnceInstalled) {
  TempDir dir;
  PluginCatalog cat(dir.path);
  std::string why;
  EXPECT_EQ(cat.find(INGESTD_KIND_OUTPUT, "null", &why), nullptr);
  EXPECT_NE(why.find("does not exist"), std::string::npos) << why;
  dir.install("out_null.so");
  why.clear();
  const ingestd_plugin_t *d = cat.find(INGESTD_KIND_OUTPUT, "null", &why);
  ASSERT_NE(d, nullptr) << "a failed load was cached: " << why;
  EXPECT_STREQ(d->name, "null");
}

// A reload naming another plugins_dir replaces the catalog; the running
// generation keeps the library it holds, mapped, until it lets go.
TEST(PluginCatalog, LibraryOutlivesTheCatalogThatLoadedIt) {
  TempDir other;
  other.install("out_null.so");
  auto cat = std::make_unique<PluginCatalog>(kDir);
  std::string why;
  std::shared_ptr<const PluginLibrary> held = cat->library(INGESTD_KIND_OUTPUT, "null", &why);
  ASSERT_NE(held, nullptr) << why;
  const ingestd_plugin_t *d = held->descriptor();
  const void *code = reinterpret_cast<const void *>(d->on_init);
  EXPECT_EQ(cat->find(INGESTD_KIND_OUTPUT, "null", &why), d);  // loaded once

  cat = std::make_unique<PluginCatalog>(other.path);
  const ingestd_plugin_t *d2 = cat->find(INGESTD_KIND_OUTPUT, "null", &why);
  ASSERT_NE(d2, nullptr) << why;
  EXPECT_NE(d2, d);  // another file, another mapping

  Dl_info info{};
  ASSERT_NE(::dladdr(code, &info), 0)
      << "the library was unmapped while a generation still held it";
  EXPECT_EQ(std::string(info.dli_fname), kDir + "/out_null.so");
  EXPECT_STREQ(d->name, "null");

  std::weak_ptr<const PluginLibrary> gone = held;
  held.reset();  // the last generation using it ends
  EXPECT_TRUE(gone.expired());
  EXPECT_EQ(::dladdr(code, &info), 0)  // d itself is unmapped now: not read
      << "still mapped after its last holder let go";
}

}  // namespace
}  // namespace ingestd
