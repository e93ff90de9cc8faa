#include "queue/output_queue.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <random>
#include <set>
#include <vector>

#include <gtest/gtest.h>

#include "queue/backoff.h"

namespace ingestd {
namespace {

// A move-only record handle, so the queue is proven not to copy.
using Rec = std::unique_ptr<int>;
using Q = OutputQueue<Rec>;
using O = ItemOutcome;

// Returns a fixed sequence of values, cycling; counts calls.
struct SeqRng {
  std::vector<uint64_t> values;
  size_t calls = 0;
  uint64_t operator()() { return values[calls++ % values.size()]; }
};

std::vector<int> ints(std::span<const Rec> items) {
  std::vector<int> out;
  for (const Rec &r : items)
    out.push_back(*r);
  return out;
}
std::vector<int> ints(const std::vector<Rec> &items) {
  return ints(std::span<const Rec>(items));
}

void push_n(Q &q, int from, int to, size_t bytes, uint64_t now) {
  for (int i = from; i < to; ++i)
    q.push(std::make_unique<int>(i), bytes, now);
}

QueueLimits small_limits() {
  QueueLimits l;
  l.max_records = 100;
  l.max_bytes = 10000;
  l.batch_max_records = 3;
  l.batch_max_bytes = 1000;
  l.flush_interval_ms = 1000;
  l.max_inflight_batches = 1;
  l.retry_initial_ms = 100;
  l.retry_max_ms = 1000;
  return l;
}

// ---- Batch release ---------------------------------------------------------

TEST(OutputQueue, FullBatchByCountReleasedAtOnce) {
  Q q(small_limits());
  push_n(q, 0, 2, 10, 0);
  EXPECT_FALSE(q.take_batch(0));
  push_n(q, 2, 5, 10, 0);
  auto b = q.take_batch(0);
  ASSERT_TRUE(b);
  EXPECT_EQ(ints(b->items), (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(b->total_bytes, 30u);
  EXPECT_EQ(std::vector<uint32_t>(b->attempts.begin(), b->attempts.end()),
            (std::vector<uint32_t>{0, 0, 0}));
  EXPECT_NE(b->id, 0u);
  EXPECT_EQ(q.queued_records(), 2u);
  EXPECT_EQ(q.queued_bytes(), 20u);
  EXPECT_EQ(q.inflight_records(), 3u);
  EXPECT_EQ(q.inflight_bytes(), 30u);
  EXPECT_EQ(q.inflight_batches(), 1u);
}

TEST(OutputQueue, FullBatchByBytes) {
  QueueLimits l = small_limits();
  l.batch_max_records = 100;
  l.batch_max_bytes = 100;
  l.max_inflight_batches = 10;
  Q q(l);
  push_n(q, 0, 2, 40, 0);
  EXPECT_FALSE(q.take_batch(0));  // 80 < 100: not full
  push_n(q, 2, 3, 40, 0);
  auto b = q.take_batch(0);
  ASSERT_TRUE(b);
  EXPECT_EQ(ints(b->items), (std::vector<int>{0, 1}));  // a third would make 120
  EXPECT_EQ(b->total_bytes, 80u);
  EXPECT_FALSE(q.take_batch(0));  // the leftover 40 is not full
  // A record larger than a batch goes alone, at once.
  q.push(std::make_unique<int>(3), 250, 0);
  auto big = q.take_batch(0);
  ASSERT_TRUE(big);
  EXPECT_EQ(ints(big->items), (std::vector<int>{2}));  // 40 + 250 > 100: record 2 alone first
  auto big2 = q.take_batch(0);
  ASSERT_TRUE(big2);
  EXPECT_EQ(ints(big2->items), (std::vector<int>{3}));
  EXPECT_EQ(big2->total_bytes, 250u);
}

TEST(OutputQueue, ExactlyFullBytesIsFull) {
  QueueLimits l = small_limits();
  l.batch_max_records = 100;
  l.batch_max_bytes = 100;
  Q q(l);
  push_n(q, 0, 2, 50, 0);
  auto b = q.take_batch(0);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->size(), 2u);
}

TEST(OutputQueue, PartialBatchReleasedAfterFlushInterval) {
  Q q(small_limits());
  push_n(q, 0, 1, 10, 100);
  push_n(q, 1, 2, 10, 500);
  EXPECT_FALSE(q.take_batch(100));
  EXPECT_FALSE(q.take_batch(1099));
  EXPECT_EQ(q.next_wakeup(1099), 1100u);
  auto b = q.take_batch(1100);
  ASSERT_TRUE(b);
  EXPECT_EQ(ints(b->items), (std::vector<int>{0, 1}));  // the whole partial batch
}

TEST(OutputQueue, FlushingReleasesWhateverIsQueued) {
  Q q(small_limits());
  push_n(q, 0, 1, 10, 0);
  EXPECT_FALSE(q.take_batch(5));
  q.set_flushing(true);
  EXPECT_TRUE(q.flushing());
  EXPECT_EQ(q.next_wakeup(5), 5u);
  auto b = q.take_batch(5);
  ASSERT_TRUE(b);
  EXPECT_EQ(ints(b->items), (std::vector<int>{0}));
  q.set_flushing(false);
  EXPECT_FALSE(q.flushing());
}

TEST(OutputQueue, InflightLimit) {
  QueueLimits l = small_limits();
  l.batch_max_records = 1;
  l.max_inflight_batches = 2;
  Q q(l);
  push_n(q, 0, 3, 10, 0);
  auto a = q.take_batch(0);
  auto b = q.take_batch(0);
  ASSERT_TRUE(a && b);
  EXPECT_NE(a->id, b->id);
  EXPECT_FALSE(q.take_batch(0));
  EXPECT_FALSE(q.next_wakeup(0));
  q.set_flushing(true);  // flushing does not lift the bound
  EXPECT_FALSE(q.take_batch(0));
  SeqRng rng{{0}};
  const std::vector<O> ok{O::Delivered};
  auto c = q.complete(b->id, ok, 1, rng);
  EXPECT_TRUE(c.found);
  EXPECT_EQ(ints(c.delivered), (std::vector<int>{1}));
  auto next = q.take_batch(1);
  ASSERT_TRUE(next);
  EXPECT_EQ(ints(next->items), (std::vector<int>{2}));
  // The first batch's view is still valid while other batches come and go.
  EXPECT_EQ(ints(a->items), (std::vector<int>{0}));
  ASSERT_TRUE(q.find_batch(a->id));
  EXPECT_EQ(ints(q.find_batch(a->id)->items), (std::vector<int>{0}));
  EXPECT_FALSE(q.find_batch(b->id));
}

TEST(OutputQueue, LimitsAreNormalised) {
  QueueLimits l = small_limits();
  l.batch_max_records = 0;
  l.batch_max_bytes = 0;
  l.max_inflight_batches = 0;
  Q q(l);
  push_n(q, 0, 2, 10, 0);
  auto b = q.take_batch(0);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->size(), 1u);
  EXPECT_EQ(q.limits().max_inflight_batches, 1u);
}

// ---- Admission ---------------------------------------------------------------

TEST(OutputQueue, AdmissionByRecordsCountsInflight) {
  QueueLimits l = small_limits();
  l.max_records = 5;
  Q q(l);
  EXPECT_TRUE(q.can_accept(5, 0));
  EXPECT_FALSE(q.can_accept(6, 0));
  EXPECT_TRUE(q.can_accept(0, 0));
  push_n(q, 0, 3, 1, 0);
  EXPECT_TRUE(q.can_accept(2, 0));
  EXPECT_FALSE(q.can_accept(3, 0));
  auto b = q.take_batch(0);  // in flight still counts
  ASSERT_TRUE(b);
  EXPECT_EQ(q.total_records(), 3u);
  EXPECT_FALSE(q.can_accept(3, 0));
  SeqRng rng{{0}};
  q.complete(b->id, std::vector<O>(3, O::Delivered), 0, rng);
  EXPECT_EQ(q.total_records(), 0u);
  EXPECT_TRUE(q.can_accept(5, 0));
  EXPECT_FALSE(q.can_accept(std::numeric_limits<size_t>::max(), 0));  // no overflow
}

TEST(OutputQueue, AdmissionByBytes) {
  QueueLimits l = small_limits();
  l.max_bytes = 100;
  Q q(l);
  EXPECT_TRUE(q.can_accept(1, 100));
  EXPECT_FALSE(q.can_accept(1, 101));
  push_n(q, 0, 3, 10, 0);
  EXPECT_TRUE(q.can_accept(1, 70));
  EXPECT_FALSE(q.can_accept(1, 71));
  EXPECT_FALSE(q.can_accept(1, std::numeric_limits<size_t>::max()));
  EXPECT_EQ(q.total_bytes(), 30u);
}

TEST(OutputQueue, AdmissionIsAllOrNothingAcrossOutputs) {
  // The engine's pattern: check every target, then push to all or none.
  QueueLimits roomy = small_limits();
  QueueLimits tight = small_limits();
  tight.max_records = 2;
  Q a(roomy), b(tight);
  auto admit = [&](int n) {
    std::vector<Q *> targets{&a, &b};
    for (Q *q : targets)
      if (!q->can_accept(n, n * 10)) return false;
    for (Q *q : targets)
      push_n(*q, 0, n, 10, 0);
    return true;
  };
  EXPECT_FALSE(admit(3));
  EXPECT_EQ(a.total_records(), 0u);  // nothing pushed anywhere
  EXPECT_EQ(b.total_records(), 0u);
  EXPECT_TRUE(admit(2));
  EXPECT_EQ(a.total_records(), 2u);
  EXPECT_EQ(b.total_records(), 2u);
}

// ---- Retry -------------------------------------------------------------------

TEST(OutputQueue, PartialRetryKeepsOrderAndGoesToFront) {
  QueueLimits l = small_limits();
  l.batch_max_records = 4;
  Q q(l);
  push_n(q, 0, 6, 10, 0);
  auto b = q.take_batch(0);
  ASSERT_TRUE(b);
  ASSERT_EQ(ints(b->items), (std::vector<int>{0, 1, 2, 3}));
  SeqRng rng{{0}};  // delay = floor = 50
  auto c =
      q.complete(b->id, std::vector<O>{O::Delivered, O::Retry, O::Delivered, O::Retry}, 10, rng);
  EXPECT_TRUE(c.found);
  EXPECT_EQ(ints(c.delivered), (std::vector<int>{0, 2}));
  EXPECT_TRUE(c.dead_lettered.empty());
  EXPECT_EQ(c.retried, 2u);
  EXPECT_EQ(q.consecutive_failures(), 0u);  // partial: the output answered
  EXPECT_EQ(q.retry_not_before(), 60u);     // but the retried records wait one first step
  EXPECT_EQ(q.queued_records(), 4u);
  EXPECT_EQ(q.queued_bytes(), 40u);
  EXPECT_EQ(q.inflight_records(), 0u);
  EXPECT_EQ(q.inflight_bytes(), 0u);
  EXPECT_FALSE(q.take_batch(59));  // full batch, but gated by the backoff
  auto again = q.take_batch(60);
  ASSERT_TRUE(again);
  EXPECT_EQ(ints(again->items), (std::vector<int>{1, 3, 4, 5}));
  EXPECT_EQ(std::vector<uint32_t>(again->attempts.begin(), again->attempts.end()),
            (std::vector<uint32_t>{1, 1, 0, 0}));
}

TEST(OutputQueue, RequeuedRecordsDoNotWaitAnotherFlushInterval) {
  Q q(small_limits());
  push_n(q, 0, 1, 10, 0);
  auto b = q.take_batch(1000);
  ASSERT_TRUE(b);
  push_n(q, 1, 2, 10, 1000);  // a fresh record behind it
  SeqRng rng{{0}};
  q.retry_all(b->id, 1000, rng);  // gate at 1050
  EXPECT_EQ(q.next_wakeup(1000), 1050u);
  auto again = q.take_batch(1050);
  ASSERT_TRUE(again);
  EXPECT_EQ(ints(again->items), (std::vector<int>{0, 1}));
}

TEST(OutputQueue, RequeueOrderWithSeveralBatchesInFlight) {
  QueueLimits l = small_limits();
  l.batch_max_records = 2;
  l.max_inflight_batches = 3;
  Q q(l);
  push_n(q, 0, 7, 10, 0);
  auto a = q.take_batch(0);
  auto b = q.take_batch(0);
  auto c = q.take_batch(0);
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ(ints(c->items), (std::vector<int>{4, 5}));
  SeqRng rng{{0}};
  // Completions arrive out of order: the queue still ends up in push order.
  EXPECT_EQ(q.retry_all(c->id, 0, rng).retried, 2u);
  EXPECT_EQ(q.complete(a->id, std::vector<O>{O::Retry, O::Delivered}, 0, rng).retried, 1u);
  EXPECT_EQ(q.retry_all(b->id, 0, rng).retried, 2u);
  EXPECT_EQ(q.consecutive_failures(), 1u);  // the partial completion of `a` reset the count
  EXPECT_EQ(q.total_records(), 6u);
  EXPECT_EQ(q.queued_bytes(), 60u);
  EXPECT_EQ(ints(q.drain_queued()), (std::vector<int>{0, 2, 3, 4, 5, 6}));
}

TEST(OutputQueue, BackoffGatingGrowsAndResetsOnSuccess) {
  QueueLimits l = small_limits();
  l.batch_max_records = 1;
  l.retry_initial_ms = 100;
  l.retry_max_ms = 100000;
  Q q(l);
  // Draws chosen so each delay is the ceiling: [50,100] span 51 -> 50+50;
  // [50,200] -> 50+150; [50,400] -> 50+350.
  SeqRng rng{{50, 150, 350, 50}};
  push_n(q, 0, 1, 10, 0);
  uint64_t now = 0;
  const uint64_t expected_delay[] = {100, 200, 400};
  for (uint64_t delay : expected_delay) {
    auto b = q.take_batch(now);
    ASSERT_TRUE(b) << now;
    q.retry_all(b->id, now, rng);
    EXPECT_EQ(q.retry_not_before(), now + delay);
    EXPECT_EQ(q.next_wakeup(now), now + delay);
    EXPECT_FALSE(q.take_batch(now + delay - 1));
    now += delay;
  }
  EXPECT_EQ(q.consecutive_failures(), 3u);
  auto b = q.take_batch(now);
  ASSERT_TRUE(b);
  q.complete(b->id, std::vector<O>{O::Delivered}, now, rng);
  EXPECT_EQ(q.consecutive_failures(), 0u);
  EXPECT_EQ(rng.calls, 3u);  // success draws nothing
  // The next failure starts over from the initial delay.
  push_n(q, 1, 2, 10, now);
  auto d = q.take_batch(now);
  ASSERT_TRUE(d);
  q.retry_all(d->id, now, rng);
  EXPECT_EQ(q.consecutive_failures(), 1u);
  EXPECT_EQ(q.retry_not_before(), now + 100);
}

TEST(OutputQueue, LaterFailureNeverShortensTheGate) {
  QueueLimits l = small_limits();
  l.batch_max_records = 1;
  l.max_inflight_batches = 2;
  l.retry_max_ms = 100000;
  Q q(l);
  push_n(q, 0, 2, 10, 0);
  auto a = q.take_batch(0);
  auto b = q.take_batch(0);
  ASSERT_TRUE(a && b);
  SeqRng rng{{50, 0}};  // first delay 100 (the ceiling), second 50 (the floor)
  q.retry_all(a->id, 0, rng);
  EXPECT_EQ(q.retry_not_before(), 100u);
  q.retry_all(b->id, 10, rng);  // 10 + 50 = 60 < 100
  EXPECT_EQ(q.consecutive_failures(), 2u);
  EXPECT_EQ(q.retry_not_before(), 100u);
  EXPECT_FALSE(q.take_batch(99));
  EXPECT_TRUE(q.take_batch(100));
}

TEST(OutputQueue, FlushingDoesNotBypassBackoff) {
  Q q(small_limits());
  push_n(q, 0, 1, 10, 0);
  q.set_flushing(true);
  auto b = q.take_batch(0);
  ASSERT_TRUE(b);
  SeqRng rng{{0}};
  q.retry_all(b->id, 0, rng);
  EXPECT_FALSE(q.take_batch(49));
  EXPECT_EQ(q.next_wakeup(0), 50u);
  EXPECT_TRUE(q.take_batch(50));
}

TEST(OutputQueue, MaxAttemptsDeadLetters) {
  QueueLimits l = small_limits();
  l.max_attempts = 2;
  l.batch_max_records = 2;
  Q q(l);
  push_n(q, 0, 2, 10, 0);
  SeqRng rng{{0}};
  auto b = q.take_batch(0);
  ASSERT_TRUE(b);
  auto c1 = q.retry_all(b->id, 0, rng);
  EXPECT_EQ(c1.retried, 2u);
  EXPECT_TRUE(c1.dead_lettered.empty());
  auto b2 = q.take_batch(q.retry_not_before());
  ASSERT_TRUE(b2);
  auto c2 = q.complete(b2->id, std::vector<O>{O::Retry, O::Delivered}, 100, rng);
  EXPECT_EQ(c2.retried, 0u);
  EXPECT_EQ(ints(c2.delivered), (std::vector<int>{1}));
  ASSERT_EQ(c2.dead_lettered.size(), 1u);
  EXPECT_EQ(*c2.dead_lettered[0].item, 0);
  EXPECT_EQ(c2.dead_lettered[0].index, 0u);
  EXPECT_EQ(c2.dead_lettered[0].attempts, 2u);
  EXPECT_EQ(c2.dead_lettered[0].cause, DeadLetterCause::RetriesExhausted);
  EXPECT_EQ(q.consecutive_failures(), 0u);  // partial (record 1 delivered): no escalation
  EXPECT_EQ(q.total_records(), 0u);
  EXPECT_EQ(q.total_bytes(), 0u);
}

TEST(OutputQueue, SteadyPartialFailuresNeverEscalateTheBackoff) {
  // Elasticsearch answering a few items 429 in every bulk, for a long time:
  // the retried records wait one first-step delay each time, never retry_max.
  QueueLimits l = small_limits();  // retry_initial 100, retry_max 1000
  l.batch_max_records = 4;
  Q q(l);
  SeqRng rng{{~uint64_t{0}}};  // the largest delay the jitter allows
  uint64_t now = 0;
  for (int round = 0; round < 50; ++round) {
    push_n(q, round * 4, round * 4 + 3, 10, now);
    auto b = q.take_batch(std::max(now, q.retry_not_before()) + 1000);
    ASSERT_TRUE(b);
    now = std::max(now, q.retry_not_before()) + 1000;
    std::vector<O> out(b->size(), O::Delivered);
    out[0] = O::Retry;
    q.complete(b->id, out, now, rng);
    EXPECT_EQ(q.consecutive_failures(), 0u);
    EXPECT_LE(q.retry_not_before(), now + 100) << "round " << round;
  }
}

TEST(OutputQueue, MaxAttemptsOneDeadLettersOnFirstFailure) {
  QueueLimits l = small_limits();
  l.max_attempts = 1;
  Q q(l);
  push_n(q, 0, 3, 10, 0);
  SeqRng rng{{0}};
  auto b = q.take_batch(0);
  ASSERT_TRUE(b);
  auto c = q.retry_all(b->id, 0, rng);
  EXPECT_EQ(c.retried, 0u);
  ASSERT_EQ(c.dead_lettered.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(c.dead_lettered[i].index, i);
    EXPECT_EQ(*c.dead_lettered[i].item, static_cast<int>(i));
  }
  EXPECT_TRUE(q.empty());
}

TEST(OutputQueue, RetryForeverWhenMaxAttemptsZero) {
  Q q(small_limits());
  push_n(q, 0, 1, 10, 0);
  SeqRng rng{{0}};
  uint64_t now = 1000;  // the flush interval has passed
  for (int i = 0; i < 50; ++i) {
    auto b = q.take_batch(now);
    ASSERT_TRUE(b) << i;
    EXPECT_EQ(b->attempts[0], static_cast<uint32_t>(i));
    auto c = q.retry_all(b->id, now, rng);
    EXPECT_EQ(c.retried, 1u);
    now = q.retry_not_before();
  }
}

TEST(OutputQueue, RejectedRecordsAreDeadLetteredWithoutBackoff) {
  Q q(small_limits());
  push_n(q, 0, 3, 10, 0);
  SeqRng rng{{0}};
  auto b = q.take_batch(0);
  ASSERT_TRUE(b);
  auto c = q.complete(b->id, std::vector<O>{O::Delivered, O::DeadLetter, O::Delivered}, 0, rng);
  ASSERT_EQ(c.dead_lettered.size(), 1u);
  EXPECT_EQ(*c.dead_lettered[0].item, 1);
  EXPECT_EQ(c.dead_lettered[0].index, 1u);
  EXPECT_EQ(c.dead_lettered[0].attempts, 1u);
  EXPECT_EQ(c.dead_lettered[0].cause, DeadLetterCause::Rejected);
  EXPECT_EQ(q.consecutive_failures(), 0u);
  EXPECT_EQ(q.retry_not_before(), 0u);
  EXPECT_EQ(rng.calls, 0u);
  EXPECT_TRUE(q.empty());
}

TEST(OutputQueue, ShortOutcomesRetryTheRest) {
  Q q(small_limits());
  push_n(q, 0, 3, 10, 0);
  SeqRng rng{{0}};
  auto b = q.take_batch(0);
  ASSERT_TRUE(b);
  auto c = q.complete(b->id, std::vector<O>{O::Delivered}, 0, rng);
  EXPECT_EQ(ints(c.delivered), (std::vector<int>{0}));
  EXPECT_EQ(c.retried, 2u);
  EXPECT_EQ(ints(q.drain_queued()), (std::vector<int>{1, 2}));
}

TEST(OutputQueue, UnknownBatchIdIsIgnored) {
  Q q(small_limits());
  push_n(q, 0, 3, 10, 0);
  SeqRng rng{{0}};
  auto b = q.take_batch(0);
  ASSERT_TRUE(b);
  const uint64_t id = b->id;
  auto none = q.complete(id + 1000, std::vector<O>(3, O::Retry), 0, rng);
  EXPECT_FALSE(none.found);
  EXPECT_EQ(q.retry_all(0, 0, rng).found, false);
  EXPECT_EQ(q.inflight_records(), 3u);
  EXPECT_EQ(q.consecutive_failures(), 0u);

  auto first = q.complete(id, std::vector<O>(3, O::Retry), 0, rng);
  EXPECT_TRUE(first.found);
  EXPECT_EQ(q.queued_records(), 3u);
  EXPECT_EQ(q.consecutive_failures(), 1u);
  const size_t calls = rng.calls;
  // A double batch_done: nothing changes.
  auto twice = q.complete(id, std::vector<O>(3, O::Retry), 0, rng);
  EXPECT_FALSE(twice.found);
  EXPECT_TRUE(twice.delivered.empty());
  EXPECT_TRUE(twice.dead_lettered.empty());
  EXPECT_EQ(twice.retried, 0u);
  EXPECT_FALSE(q.retry_all(id, 0, rng).found);
  EXPECT_EQ(q.queued_records(), 3u);
  EXPECT_EQ(q.queued_bytes(), 30u);
  EXPECT_EQ(q.consecutive_failures(), 1u);
  EXPECT_EQ(rng.calls, calls);
}

// ---- next_wakeup, drain ------------------------------------------------------

TEST(OutputQueue, NextWakeupInEachState) {
  Q q(small_limits());
  SeqRng rng{{0}};
  EXPECT_FALSE(q.next_wakeup(0));  // empty
  push_n(q, 0, 1, 10, 10);
  EXPECT_EQ(q.next_wakeup(10), 1010u);    // partial: oldest + interval
  EXPECT_EQ(q.next_wakeup(2000), 2000u);  // overdue: now
  push_n(q, 1, 3, 10, 20);
  EXPECT_EQ(q.next_wakeup(20), 20u);  // full: now
  auto b = q.take_batch(20);
  ASSERT_TRUE(b);
  EXPECT_FALSE(q.next_wakeup(20));  // nothing queued
  push_n(q, 3, 4, 10, 30);
  EXPECT_FALSE(q.next_wakeup(30));    // in-flight limit: the completion will tell
  q.retry_all(b->id, 40, rng);        // gate at 90
  EXPECT_EQ(q.next_wakeup(40), 90u);  // full batch queued, gated by backoff
  auto b2 = q.take_batch(90);
  ASSERT_TRUE(b2);
  EXPECT_EQ(ints(b2->items), (std::vector<int>{0, 1, 2}));
  q.complete(b2->id, std::vector<O>(3, O::Delivered), 100, rng);
  EXPECT_EQ(q.next_wakeup(100), 1030u);  // record 3, pushed at 30: gate passed, interval rules
  q.set_flushing(true);
  EXPECT_EQ(q.next_wakeup(100), 100u);
}

TEST(OutputQueue, NextWakeupIsWhenTakeBatchSucceeds) {
  // Property: for random operations, take_batch(next_wakeup(now)) succeeds and
  // take_batch one ms earlier does not (when the wake-up is in the future).
  QueueLimits l = small_limits();
  l.batch_max_records = 4;
  l.batch_max_bytes = 50;
  l.max_inflight_batches = 2;
  l.flush_interval_ms = 30;
  l.retry_initial_ms = 10;
  l.retry_max_ms = 80;
  Q q(l);
  std::mt19937_64 rng(7);
  std::vector<uint64_t> inflight;
  uint64_t now = 0;
  int next = 0;
  for (int step = 0; step < 5000; ++step) {
    now += rng() % 5;
    switch (rng() % 4) {
      case 0:
      case 1:
        q.push(std::make_unique<int>(next++), 1 + rng() % 20, now);
        break;
      case 2:
        if (!inflight.empty()) {
          const uint64_t id = inflight.front();
          inflight.erase(inflight.begin());
          std::vector<O> out;
          for (size_t i = 0; i < q.find_batch(id)->size(); ++i)
            out.push_back(static_cast<O>(rng() % 3));
          ASSERT_TRUE(q.complete(id, out, now, rng).found);
        }
        break;
      default:
        break;
    }
    auto w = q.next_wakeup(now);
    if (!w) {
      EXPECT_FALSE(q.take_batch(now));
      continue;
    }
    ASSERT_GE(*w, now);
    if (*w > now) {
      EXPECT_FALSE(q.take_batch(*w - 1));
    }
    if (*w <= now + 5) {
      now = *w;
      auto b = q.take_batch(now);
      ASSERT_TRUE(b) << step;
      inflight.push_back(b->id);
    }
    ASSERT_EQ(q.total_records(), q.queued_records() + q.inflight_records());
    ASSERT_EQ(q.total_bytes(), q.queued_bytes() + q.inflight_bytes());
  }
}

TEST(OutputQueue, SingleInflightKeepsOldestUndeliveredFirst) {
  // With max_inflight_batches = 1, whatever the outcomes: every batch is in
  // push order and starts with the oldest undelivered record, and every
  // record is delivered exactly once.
  QueueLimits l = small_limits();
  l.batch_max_records = 5;
  l.flush_interval_ms = 0;
  Q q(l);
  std::mt19937_64 rng(3);
  const int n = 2000;
  push_n(q, 0, n, 10, 0);
  std::set<int> undelivered;
  for (int i = 0; i < n; ++i)
    undelivered.insert(i);
  uint64_t now = 0;
  size_t batches = 0, retried = 0;
  while (!q.empty()) {
    auto w = q.next_wakeup(now);
    ASSERT_TRUE(w);
    now = *w;
    auto b = q.take_batch(now);
    ASSERT_TRUE(b);
    ++batches;
    const std::vector<int> sent = ints(b->items);
    ASSERT_EQ(sent.front(), *undelivered.begin());
    ASSERT_TRUE(std::is_sorted(sent.begin(), sent.end()));
    ASSERT_EQ(std::adjacent_find(sent.begin(), sent.end()), sent.end());
    std::vector<O> out;
    for (size_t i = 0; i < b->size(); ++i)
      out.push_back(rng() % 3 == 0 ? O::Retry : O::Delivered);
    auto c = q.complete(b->id, out, now, rng);
    retried += c.retried;
    for (Rec &r : c.delivered)
      ASSERT_EQ(undelivered.erase(*r), 1u) << *r;
  }
  EXPECT_TRUE(undelivered.empty());
  EXPECT_GT(retried, 100u);  // the test did exercise retries
  EXPECT_GT(batches, static_cast<size_t>(n / 5));
}

TEST(OutputQueue, DrainQueuedLeavesInflight) {
  Q q(small_limits());
  push_n(q, 0, 5, 10, 0);
  auto b = q.take_batch(0);
  ASSERT_TRUE(b);
  auto drained = q.drain_queued();
  EXPECT_EQ(ints(drained), (std::vector<int>{3, 4}));
  EXPECT_EQ(q.queued_records(), 0u);
  EXPECT_EQ(q.queued_bytes(), 0u);
  EXPECT_EQ(q.inflight_records(), 3u);
  EXPECT_EQ(q.total_records(), 3u);
  EXPECT_EQ(q.total_bytes(), 30u);
  EXPECT_FALSE(q.next_wakeup(0));
  SeqRng rng{{0}};
  auto c = q.complete(b->id, std::vector<O>{O::Delivered, O::Retry, O::Delivered}, 0, rng);
  EXPECT_EQ(c.retried, 1u);
  EXPECT_EQ(ints(q.drain_queued()), (std::vector<int>{1}));
  EXPECT_TRUE(q.empty());
  EXPECT_TRUE(q.drain_queued().empty());
}

}  // namespace
}  // namespace ingestd
