#include "engine/dead_letter.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "json/json.h"

namespace ingestd {
namespace {

class DeadLetterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ingestd-dl-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  static std::string read(const std::string &path) {
    std::ifstream f(path);
    return std::string(std::istreambuf_iterator<char>(f), {});
  }
  std::string dir_;
  Logger log_{2, LogLevel::Error};
};

TEST_F(DeadLetterTest, WritesOneJsonLinePerRecordAndCreatesTheDirectory) {
  DeadLetter dl(dir_ + "/state/dead-letter.ndjson", &log_);
  dl.write("redis", "trace", "WRONGTYPE Operation against a key", "{\"a\":1}");
  std::string text = read(dir_ + "/state/dead-letter.ndjson");
  ASSERT_EQ(text.back(), '\n');
  json::Value v;
  ASSERT_TRUE(json::parse(text, &v, nullptr)) << text;
  EXPECT_EQ(v.find("output")->as_string(), "redis");
  EXPECT_EQ(v.find("tag")->as_string(), "trace");
  EXPECT_EQ(v.find("reason")->as_string(), "WRONGTYPE Operation against a key");
  EXPECT_EQ(json::to_string(*v.find("record")), "{\"a\":1}");
  EXPECT_EQ(v.find("time")->as_string().size(), 24u);
  EXPECT_EQ(dl.lines_written(), 1u);
}

TEST_F(DeadLetterTest, RotatesAtTheSizeCapAndKeepsNFiles) {
  std::string path = dir_ + "/dl.ndjson";
  DeadLetter dl(path, &log_, 300, 2);
  std::string rec = "{\"pad\":\"" + std::string(100, 'x') + "\"}";
  for (int i = 0; i < 12; ++i) dl.write("o", "t", "r" + std::to_string(i), rec);
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_LE(st.st_size, 300);
  EXPECT_EQ(stat((path + ".1").c_str(), &st), 0);
  EXPECT_EQ(stat((path + ".2").c_str(), &st), 0);
  EXPECT_NE(stat((path + ".3").c_str(), &st), 0) << "only 2 rotated files are kept";
  // The newest line is in the live file, the one before it in .1.
  EXPECT_NE(read(path).find("\"r11\""), std::string::npos);
  EXPECT_EQ(read(path + ".1").find("\"r11\""), std::string::npos);
}

TEST_F(DeadLetterTest, UnwritablePathFallsBackToTheLog) {
  DeadLetter dl("/proc/ingestd-cannot-write-here/dl.ndjson", &log_);
  dl.write("o", "t", "r", "{}");  // must not crash; the line goes to stderr
  EXPECT_EQ(dl.lines_written(), 1u);
}

}  // namespace
}  // namespace ingestd
