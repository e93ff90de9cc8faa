// RecordReleaser: references dropped a slice per loop turn, never all at once,
// and never falling behind.
#include "engine/record_releaser.h"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

namespace ingestd {
namespace {

std::vector<RecordPtr> records(size_t n) {
  std::vector<RecordPtr> v;
  for (size_t i = 0; i < n; ++i)
    v.push_back(RecordPtr::make());
  return v;
}

class RecordReleaserTest : public ::testing::Test {
 protected:
  void SetUp() override { uv_loop_init(&loop_); }
  void TearDown() override {
    releaser_.reset();
    uv_run(&loop_, UV_RUN_DEFAULT);
    EXPECT_EQ(uv_loop_close(&loop_), 0);
  }
  uv_loop_t loop_{};
  std::unique_ptr<RecordReleaser> releaser_;
};

TEST_F(RecordReleaserTest, SmallBatchesGoAtOnce) {
  releaser_ = std::make_unique<RecordReleaser>(&loop_);
  auto v = records(RecordReleaser::kPerTurn);
  RecordPtr watch = v[0];
  releaser_->release(v);
  EXPECT_TRUE(v.empty());
  EXPECT_EQ(releaser_->pending(), 0u);
  EXPECT_EQ(watch->refs, 1u);  // only ours is left
}

TEST_F(RecordReleaserTest, LargeBatchIsFreedOverSeveralTurns) {
  releaser_ = std::make_unique<RecordReleaser>(&loop_);
  auto v = records(1000);
  RecordPtr first = v.front();
  releaser_->release(v);
  EXPECT_TRUE(v.empty());
  EXPECT_EQ(releaser_->pending(), 1000u);
  EXPECT_EQ(first->refs, 2u);
  size_t turns = 0, before = releaser_->pending();
  while (releaser_->pending() > 0) {
    uv_run(&loop_, UV_RUN_NOWAIT);
    ++turns;
    size_t dropped = before - releaser_->pending();
    EXPECT_GE(dropped, std::min(before, RecordReleaser::kPerTurn));
    if (before > RecordReleaser::kPerTurn) {
      EXPECT_LT(dropped, before);  // a slice, not all
    }
    before = releaser_->pending();
    ASSERT_LT(turns, 100u);
  }
  EXPECT_GT(turns, 4u);
  EXPECT_EQ(first->refs, 1u);
  // Nothing pending: the idle handle is stopped, so a blocking run returns.
  uv_run(&loop_, UV_RUN_DEFAULT);
}

TEST_F(RecordReleaserTest, BacklogShrinksByAnEighthPerTurn) {
  releaser_ = std::make_unique<RecordReleaser>(&loop_);
  auto v = records(100000);
  releaser_->release(v);
  uv_run(&loop_, UV_RUN_NOWAIT);
  EXPECT_EQ(releaser_->pending(), 100000u - 100000u / 8);
  // More arriving while a backlog is pending joins it.
  auto more = records(10);
  releaser_->release(more);
  EXPECT_EQ(releaser_->pending(), 100000u - 100000u / 8 + 10);
}

TEST_F(RecordReleaserTest, WithoutALoopEverythingGoesAtOnce) {
  RecordReleaser r(nullptr);
  auto v = records(1000);
  RecordPtr first = v.front();
  r.release(v);
  EXPECT_EQ(r.pending(), 0u);
  EXPECT_EQ(first->refs, 1u);
}

TEST_F(RecordReleaserTest, DestroyedWithABacklogFreesIt) {
  releaser_ = std::make_unique<RecordReleaser>(&loop_);
  auto v = records(1000);
  RecordPtr first = v.front();
  releaser_->release(v);
  releaser_.reset();
  EXPECT_EQ(first->refs, 1u);
}

}  // namespace
}  // namespace ingestd
