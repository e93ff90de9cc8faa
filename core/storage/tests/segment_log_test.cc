#include "storage/segment_log.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "storage/segment_format.h"
#include "storage/tests/test_util.h"

namespace ingestd {
namespace {

using testing::read_file;
using testing::segment_files;
using testing::TempDir;
using testing::TestIo;
using testing::write_file;

std::string payload_for(uint64_t i, size_t size = 0) {
  std::string p = "{\"n\":" + std::to_string(i) + ",\"pad\":\"";
  const size_t want = size ? size : 20 + (i * 37) % 180;
  while (p.size() + 2 < want)
    p += static_cast<char>('a' + (i + p.size()) % 26);
  return p + "\"}";
}

SegmentLogOptions opts(const std::string &dir, uint64_t segment_bytes = 1 << 20,
                       FsyncMode mode = FsyncMode::Never) {
  SegmentLogOptions o;
  o.dir = dir;
  o.segment_bytes = segment_bytes;
  o.fsync = mode;
  return o;
}

std::unique_ptr<SegmentLog> must_open(const SegmentLogOptions &o,
                                      RecoveryReport *report = nullptr) {
  std::string err;
  auto log = SegmentLog::open(o, report, &err);
  EXPECT_TRUE(log) << err;
  EXPECT_EQ(err, "");
  return log;
}

// Appends payload_for(i) for i in [from, to), committing every `batch`.
void append_range(SegmentLog &log, uint64_t from, uint64_t to, size_t batch = 37) {
  for (uint64_t i = from; i < to; ++i) {
    ASSERT_EQ(log.append(payload_for(i)), i);
    if ((i - from + 1) % batch == 0) {
      ASSERT_TRUE(log.commit_now(0).ok);
    }
  }
  const CommitResult r = log.commit_now(0);
  ASSERT_TRUE(r.ok) << r.error;
}

struct Got {
  std::vector<uint64_t> seqs;
  std::vector<std::string> payloads;
  std::string errors;
};

// Reads until caught up, in reads of at most max_records / max_bytes.
Got read_all(Reader &r, size_t max_records = 50, size_t max_bytes = 4096) {
  Got g;
  std::vector<RecordView> out;
  for (int guard = 0; guard < 1000000; ++guard) {
    const std::string e = r.read(max_records, max_bytes, &out);
    if (!e.empty()) g.errors += e + "\n";
    if (out.empty() && e.empty()) break;
    EXPECT_LE(out.size(), max_records);
    size_t bytes = 0;
    for (const RecordView &v : out) {
      g.seqs.push_back(v.seq);
      g.payloads.emplace_back(v.payload);
      bytes += v.payload.size();
    }
    if (out.size() > 1) {
      EXPECT_LE(bytes, max_bytes);
    }
  }
  return g;
}

void expect_range(const Got &g, uint64_t from, uint64_t to,
                  const std::vector<uint64_t> &skip = {}) {
  std::vector<uint64_t> want;
  for (uint64_t i = from; i < to; ++i)
    if (std::find(skip.begin(), skip.end(), i) == skip.end()) want.push_back(i);
  ASSERT_EQ(g.seqs, want);
  for (size_t k = 0; k < want.size(); ++k)
    ASSERT_EQ(g.payloads[k], payload_for(want[k])) << "seq " << want[k];
}

// ---- round trip -------------------------------------------------------------

class RoundTrip : public ::testing::TestWithParam<size_t> {};  // tail cache bytes

TEST_P(RoundTrip, ManyRecordsAcrossSegmentsAndReopen) {
  TempDir tmp;
  SegmentLogOptions o = opts(tmp.path(), 4096);
  o.tail_cache_bytes = GetParam();
  {
    auto log = must_open(o);
    Reader &r = log->reader("out");
    append_range(*log, 1, 1001);
    EXPECT_EQ(log->committed_through(), 1000u);
    EXPECT_GT(segment_files(tmp.path()).size(), 20u);
    Got g = read_all(r);
    EXPECT_EQ(g.errors, "");
    expect_range(g, 1, 1001);
    // Interleaved: append some, read some.
    for (uint64_t i = 1001; i < 1301; i += 30) {
      append_range(*log, i, i + 30, 7);
      Got g2 = read_all(r, 13, 100000);
      expect_range(g2, i, i + 30);
    }
  }
  RecoveryReport rep;
  auto log = must_open(o, &rep);
  EXPECT_TRUE(rep.clean()) << rep.summary();
  EXPECT_EQ(rep.records, 1300u);
  EXPECT_EQ(rep.next_seq, 1301u);
  Reader &fresh = log->reader("another");
  expect_range(read_all(fresh, 1000, 1 << 20), 1, 1301);
  EXPECT_EQ(log->append("x"), 1301u);
  // Every file holds frames at most segment_bytes long (records are small).
  for (const std::string &f : segment_files(tmp.path()))
    EXPECT_LE(std::filesystem::file_size(f), 4096u) << f;
}

INSTANTIATE_TEST_SUITE_P(TailCache, RoundTrip,
                         ::testing::Values(size_t{0}, size_t{3000}, size_t{8} << 20));

TEST(SegmentLog, ReadLimitsAndOversizedRecords) {
  TempDir tmp;
  SegmentLogOptions o = opts(tmp.path(), 1000);
  for (size_t cache : {size_t{0}, size_t{1} << 24}) {
    o.tail_cache_bytes = cache;
    o.dir = tmp.sub(std::to_string(cache) + "c");  // (gcc 12 -O3: no "lit" + to_string)
    auto log = must_open(o);
    Reader &r = log->reader("r");
    const std::string big(3 << 20, 'B');  // > segment_bytes and > the read buffer
    ASSERT_EQ(log->append("small-1"), 1u);
    ASSERT_EQ(log->append(big), 2u);
    ASSERT_EQ(log->append("small-3"), 3u);
    ASSERT_TRUE(log->commit_now(0).ok);
    std::vector<RecordView> out;
    ASSERT_EQ(r.read(10, 10, &out), "");
    ASSERT_EQ(out.size(), 1u);  // the next record would exceed max_bytes
    EXPECT_EQ(out[0].payload, "small-1");
    ASSERT_EQ(r.read(10, 10, &out), "");
    ASSERT_EQ(out.size(), 1u);  // alone, though larger than max_bytes
    EXPECT_EQ(out[0].payload, big);
    ASSERT_EQ(r.read(1, 1 << 30, &out), "");
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].seq, 3u);
    ASSERT_EQ(r.read(10, 10, &out), "");
    EXPECT_TRUE(out.empty());
    EXPECT_EQ(segment_files(o.dir).size(), 3u);  // the big record went alone
    EXPECT_EQ(log->append(std::string_view(big.data(), 0)), 4u);
  }
}

TEST(SegmentLog, ReadersSeeOnlyCommittedRecords) {
  TempDir tmp;
  auto log = must_open(opts(tmp.path()));
  Reader &r = log->reader("r");
  log->append("a");
  std::vector<RecordView> out;
  ASSERT_EQ(r.read(10, 100, &out), "");
  EXPECT_TRUE(out.empty());
  auto job = log->begin_commit(0);
  ASSERT_TRUE(job);
  EXPECT_EQ(log->begin_commit(0), nullptr);  // one outstanding job at a time
  log->append("b");
  job->run();
  ASSERT_EQ(r.read(10, 100, &out), "");
  EXPECT_TRUE(out.empty());  // written but not yet published
  const CommitResult res = log->finish_commit(std::move(job));
  EXPECT_TRUE(res.ok);
  EXPECT_EQ(res.first_seq, 1u);
  EXPECT_EQ(res.last_seq, 1u);
  EXPECT_EQ(res.committed_through, 1u);
  ASSERT_EQ(r.read(10, 100, &out), "");
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].payload, "a");
  EXPECT_EQ(log->pending_records(), 1u);
  EXPECT_EQ(log->commit_now(0).last_seq, 2u);
  ASSERT_EQ(r.read(10, 100, &out), "");
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].payload, "b");
  EXPECT_EQ(log->begin_commit(0), nullptr);  // nothing to do
  EXPECT_EQ(log->append(std::string(kMaxRecordBytes + 1, 'x')), 0u);
}

TEST(SegmentLog, DiskBytesCountsPendingInflightAndFiles) {
  TempDir tmp;
  auto log = must_open(opts(tmp.path()));
  EXPECT_EQ(log->disk_bytes(), 0u);
  log->append("12345");
  const uint64_t frame = kFrameHeaderBytes + 5;
  EXPECT_EQ(log->disk_bytes(), frame);
  auto job = log->begin_commit(0);
  log->append("12345");
  EXPECT_EQ(log->disk_bytes(), 2 * frame);
  job->run();
  (void)log->finish_commit(std::move(job));
  EXPECT_EQ(log->disk_bytes(), 2 * frame);
  (void)log->commit_now(0);
  EXPECT_EQ(log->disk_bytes(), 2 * frame);
  EXPECT_EQ(std::filesystem::file_size(segment_files(tmp.path())[0]), 2 * frame);
}

// ---- readers and cursors ------------------------------------------------------

TEST(SegmentLog, TwoReadersAtDifferentSpeedsSurviveReopen) {
  TempDir tmp;
  const SegmentLogOptions o = opts(tmp.path(), 2048);
  {
    auto log = must_open(o);
    Reader &fast = log->reader("fast");
    Reader &slow = log->reader("slow");
    append_range(*log, 1, 501);
    Got f = read_all(fast);
    expect_range(f, 1, 501);
    fast.ack_through(500);
    ASSERT_EQ(fast.persist(), "");
    std::vector<RecordView> out;
    ASSERT_EQ(slow.read(120, 1 << 20, &out), "");
    ASSERT_EQ(out.size(), 120u);
    slow.ack_through(100);  // 101..120 are in flight
    ASSERT_EQ(slow.persist(), "");
    slow.ack_through(110);  // acked, never persisted: delivered again after the restart
    EXPECT_EQ(slow.acked(), 110u);
    EXPECT_EQ(slow.persisted(), 100u);
    EXPECT_EQ(read_file(tmp.path() + "/cursors/slow"), "ingestd-cursor 1 100\n");
  }
  auto log = must_open(o);
  Reader &fast = log->reader("fast");
  Reader &slow = log->reader("slow");
  EXPECT_EQ(fast.read_position(), 500u);
  EXPECT_NE(fast.open_note().find("delivered through 500"), std::string::npos) << fast.open_note();
  EXPECT_EQ(slow.read_position(), 100u);
  expect_range(read_all(fast), 1, 1);  // nothing
  append_range(*log, 501, 511);
  expect_range(read_all(fast), 501, 511);
  Got s = read_all(slow, 7, 300);
  expect_range(s, 101, 511);
}

TEST(SegmentLog, SeekToCursorRereadsUnacked) {
  TempDir tmp;
  auto log = must_open(opts(tmp.path()));
  Reader &r = log->reader("r");
  append_range(*log, 1, 21);
  expect_range(read_all(r), 1, 21);
  r.ack_through(500);  // never past the read position
  EXPECT_EQ(r.acked(), 20u);
  r.ack_through(5);  // never backwards
  EXPECT_EQ(r.acked(), 20u);
  r.seek_to_cursor();
  expect_range(read_all(r), 1, 1);

  Reader &q = log->reader("q");
  expect_range(read_all(q, 100), 1, 21);
  q.ack_through(12);
  q.seek_to_cursor();
  expect_range(read_all(q), 13, 21);
}

TEST(SegmentLog, NewReaderStartsOldestOrTailAndTheChoiceIsPersisted) {
  TempDir tmp;
  SegmentLogOptions o = opts(tmp.path());
  {
    auto log = must_open(o);
    append_range(*log, 1, 11);
    Reader &old = log->reader("old");
    expect_range(read_all(old), 1, 11);
  }
  o.new_reader_start = ReaderStart::Tail;
  {
    auto log = must_open(o);
    Reader &t = log->reader("tail");
    EXPECT_EQ(t.read_position(), 10u);
    EXPECT_NE(t.open_note().find("tail"), std::string::npos);
    expect_range(read_all(t), 1, 1);
    append_range(*log, 11, 16);
    // no persist, then a crash: the tail choice must not become "oldest"
  }
  o.new_reader_start = ReaderStart::Oldest;
  auto log = must_open(o);
  expect_range(read_all(log->reader("tail")), 11, 16);
}

TEST(SegmentLog, ReaderNamesAreEscapedAndRemovable) {
  TempDir tmp;
  auto log = must_open(opts(tmp.path()));
  append_range(*log, 1, 4);
  Reader &a = log->reader("../../etc/passwd");
  Reader &b = log->reader("");
  EXPECT_EQ(&a, &log->reader("../../etc/passwd"));
  expect_range(read_all(a), 1, 4);
  a.ack_through(3);
  ASSERT_EQ(a.persist(), "");
  EXPECT_TRUE(std::filesystem::exists(tmp.path() + "/cursors/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd"));
  EXPECT_TRUE(std::filesystem::exists(tmp.path() + "/cursors/%"));
  expect_range(read_all(b), 1, 4);
  ASSERT_EQ(log->remove_reader("../../etc/passwd"), "");
  EXPECT_EQ(log->find_reader("../../etc/passwd"), nullptr);
  EXPECT_FALSE(std::filesystem::exists(tmp.path() + "/cursors/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd"));
}

TEST(SegmentLog, UnreadableCursorRestartsAtOldestRetained) {
  TempDir tmp;
  const SegmentLogOptions o = opts(tmp.path());
  {
    auto log = must_open(o);
    append_range(*log, 1, 6);
    Reader &r = log->reader("r");
    expect_range(read_all(r), 1, 6);
    r.ack_through(5);
    ASSERT_EQ(r.persist(), "");
  }
  write_file(tmp.path() + "/cursors/r", "");  // as after a crash on some filesystems
  write_file(tmp.path() + "/cursors/r.tmp", "ingestd-cursor 1 3\n");
  RecoveryReport rep;
  auto log = must_open(o, &rep);
  EXPECT_NE(rep.summary().find("removed unfinished cursor file"), std::string::npos);
  Reader &r = log->reader("r");
  EXPECT_NE(r.open_note().find("unreadable cursor"), std::string::npos) << r.open_note();
  expect_range(read_all(r), 1, 6);  // delivered again, never lost
}

TEST(SegmentLog, SequenceNumbersNeverGoBackBehindACursor) {
  TempDir tmp;
  const SegmentLogOptions o = opts(tmp.path());
  {
    auto log = must_open(o);
    append_range(*log, 1, 6);
    Reader &r = log->reader("r");
    expect_range(read_all(r), 1, 6);
    r.ack_through(5);
    ASSERT_EQ(r.persist(), "");
  }
  for (const std::string &f : segment_files(tmp.path()))
    std::filesystem::remove(f);  // an operator wiped the segments
  auto log = must_open(o);
  EXPECT_EQ(log->append("next"), 6u);
  ASSERT_TRUE(log->commit_now(0).ok);
  Got g = read_all(log->reader("r"));
  ASSERT_EQ(g.seqs, std::vector<uint64_t>{6});
}

// ---- retention ------------------------------------------------------------------

TEST(SegmentLog, RetentionDeletesOnlyFullyConsumedSegments) {
  TempDir tmp;
  const SegmentLogOptions o = opts(tmp.path(), 1000);
  auto log = must_open(o);
  append_range(*log, 1, 201);
  const size_t files = segment_files(tmp.path()).size();
  ASSERT_GT(files, 10u);
  ASSERT_EQ(log->collect(), "");  // no reader: nothing deleted
  EXPECT_EQ(segment_files(tmp.path()).size(), files);

  Reader &a = log->reader("a");
  Reader &b = log->reader("b");
  expect_range(read_all(a), 1, 201);
  expect_range(read_all(b), 1, 201);
  a.ack_through(200);
  ASSERT_EQ(a.persist(), "");
  b.ack_through(100);
  ASSERT_EQ(log->collect(), "");  // b acked but did not persist
  EXPECT_EQ(segment_files(tmp.path()).size(), files);
  ASSERT_EQ(b.persist(), "");
  const uint64_t before = log->disk_bytes();
  ASSERT_EQ(log->collect(), "");
  const std::vector<std::string> left = segment_files(tmp.path());
  EXPECT_LT(left.size(), files);
  EXPECT_LT(log->disk_bytes(), before);
  // The oldest retained record is at most 100 + 1, and every segment gone
  // held only records <= 100.
  EXPECT_LE(log->oldest_seq(), 101u);
  EXPECT_GT(log->oldest_seq(), 80u);
  uint64_t total = 0;
  for (const std::string &f : left)
    total += std::filesystem::file_size(f);
  EXPECT_EQ(total, log->disk_bytes());
  // b's unpersisted reread still works from what is left.
  b.seek_to_cursor();
  expect_range(read_all(b), 101, 201);
  // A new reader starting at the oldest retained record.
  Reader &c = log->reader("c");
  Got g = read_all(c);
  ASSERT_FALSE(g.seqs.empty());
  EXPECT_EQ(g.seqs.front(), log->oldest_seq());
  // Everything consumed: only the newest segment remains.
  b.ack_through(200);
  ASSERT_EQ(b.persist(), "");
  c.ack_through(200);
  ASSERT_EQ(c.persist(), "");
  ASSERT_EQ(log->collect(), "");
  EXPECT_EQ(segment_files(tmp.path()).size(), 1u);
  log.reset();
  RecoveryReport rep;
  log = must_open(o, &rep);
  EXPECT_EQ(log->append("after"), 201u);
}

TEST(SegmentLog, RetentionWaitsForSegmentsAJobIsSyncing) {
  TempDir tmp;
  SegmentLogOptions o = opts(tmp.path(), 300, FsyncMode::Interval);
  o.fsync_interval_ms = 1000;
  auto log = must_open(o);
  Reader &r = log->reader("r");
  append_range(*log, 1, 30, 1000);  // first commit syncs
  log->append("x");
  ASSERT_FALSE(log->commit_now(10).synced);  // unsynced data now
  Got g = read_all(r);
  ASSERT_EQ(g.seqs.size(), 30u);
  EXPECT_EQ(g.payloads.back(), "x");
  r.ack_through(30);
  ASSERT_EQ(r.persist(), "");
  log->append("y");
  auto job = log->begin_commit(5000);  // syncs every segment with unsynced data
  ASSERT_TRUE(job && job->syncs());
  const size_t files = log->segment_count();
  ASSERT_EQ(log->collect(), "");
  EXPECT_EQ(log->segment_count(), files);  // pinned by the job
  job->run();
  ASSERT_TRUE(log->finish_commit(std::move(job)).ok);
  ASSERT_EQ(log->collect(), "");
  EXPECT_EQ(log->segment_count(), 1u);
}

// ---- recovery -----------------------------------------------------------------

// Writes records 1..n into one segment; returns the file path and each
// frame's offset (plus the end).
std::string write_segment(const std::string &dir, uint64_t n, std::vector<size_t> *offsets) {
  auto log = must_open(opts(dir));
  log->reader("r");
  offsets->clear();
  size_t off = 0;
  for (uint64_t i = 1; i <= n; ++i) {
    offsets->push_back(off);
    off += kFrameHeaderBytes + payload_for(i).size();
    log->append(payload_for(i));
  }
  offsets->push_back(off);
  EXPECT_TRUE(log->commit_now(0).ok);
  const auto files = segment_files(dir);
  EXPECT_EQ(files.size(), 1u);
  return files.at(0);
}

TEST(Recovery, TruncatedTailAtEveryByteOfTheLastFrame) {
  TempDir src;
  std::vector<size_t> at;
  const std::string seg = write_segment(src.path(), 12, &at);
  const std::string original = read_file(seg);
  ASSERT_EQ(original.size(), at.back());
  const size_t last = at[11];
  for (size_t cut = last; cut < original.size(); ++cut) {
    SCOPED_TRACE("cut at " + std::to_string(cut));
    TempDir tmp;
    std::filesystem::copy(src.path(), tmp.path(), std::filesystem::copy_options::recursive);
    const std::string file = tmp.path() + "/" + std::filesystem::path(seg).filename().string();
    write_file(file, original.substr(0, cut));
    RecoveryReport rep;
    auto log = must_open(opts(tmp.path()), &rep);
    ASSERT_EQ(rep.segments.size(), 1u);
    EXPECT_EQ(rep.segments[0].records, 11u);
    EXPECT_EQ(rep.segments[0].bytes_cut, cut - last);
    if (cut == last) {
      EXPECT_TRUE(rep.clean()) << rep.summary();
    } else {
      EXPECT_FALSE(rep.clean());
      ASSERT_EQ(rep.segments[0].issues.size(), 1u);
      const std::string why = rep.segments[0].issues[0];
      const bool header = cut - last < kFrameHeaderBytes;
      EXPECT_NE(why.find(std::string(header ? "truncated frame header" : "truncated frame") +
                         " at offset " + std::to_string(last)),
                std::string::npos)
          << why;
    }
    EXPECT_EQ(std::filesystem::file_size(file), last);
    expect_range(read_all(log->reader("r")), 1, 12);
    EXPECT_EQ(log->append(payload_for(12)), 12u);
    ASSERT_TRUE(log->commit_now(0).ok);
    expect_range(read_all(log->reader("r")), 12, 13);
  }
}

TEST(Recovery, FlippedByteInTheLastRecordIsCut) {
  TempDir tmp;
  std::vector<size_t> at;
  const std::string seg = write_segment(tmp.path(), 8, &at);
  std::string data = read_file(seg);
  data[at[7] + kFrameHeaderBytes + 3] ^= 0x01;
  write_file(seg, data);
  RecoveryReport rep;
  auto log = must_open(opts(tmp.path()), &rep);
  ASSERT_EQ(rep.segments.size(), 1u);
  EXPECT_EQ(rep.segments[0].records, 7u);
  EXPECT_EQ(rep.segments[0].bytes_cut, at[8] - at[7]);
  ASSERT_EQ(rep.segments[0].issues.size(), 1u);
  EXPECT_NE(rep.segments[0].issues[0].find("bad checksum at offset " + std::to_string(at[7])),
            std::string::npos)
      << rep.summary();
  expect_range(read_all(log->reader("r")), 1, 8);
  EXPECT_EQ(log->next_seq(), 8u);
}

class MiddleCorruption : public ::testing::TestWithParam<size_t> {};  // byte within the frame

TEST_P(MiddleCorruption, RecordsBeforeAndAfterSurvive) {
  TempDir tmp;
  std::vector<size_t> at;
  const std::string seg = write_segment(tmp.path(), 10, &at);
  std::string data = read_file(seg);
  data[at[4] + GetParam()] ^= 0x5A;  // record 5: magic, length, seq, crc or payload
  write_file(seg, data);
  for (int round = 0; round < 2; ++round) {  // the hole stays; reopening reports it again
    RecoveryReport rep;
    auto log = must_open(opts(tmp.path()), &rep);
    ASSERT_EQ(rep.segments.size(), 1u);
    EXPECT_EQ(rep.segments[0].records, 9u + round);
    EXPECT_EQ(rep.segments[0].bytes_cut, 0u);
    EXPECT_EQ(rep.segments[0].bytes_skipped, at[5] - at[4]);
    ASSERT_EQ(rep.segments[0].issues.size(), 1u) << rep.summary();
    EXPECT_NE(rep.segments[0].issues[0].find("at offset " + std::to_string(at[4])),
              std::string::npos)
        << rep.summary();
    EXPECT_NE(rep.summary().find("sequence numbers 5..5 are lost"), std::string::npos)
        << rep.summary();
    expect_range(read_all(log->reader(std::to_string(round) + "r")), 1, 11 + round, {5});
    if (round == 0) {
      EXPECT_EQ(log->append(payload_for(11)), 11u);
      ASSERT_TRUE(log->commit_now(0).ok);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Fields, MiddleCorruption,
                         ::testing::Values(size_t{0}, size_t{2}, size_t{4}, size_t{8}, size_t{14},
                                           kFrameHeaderBytes + 1));

TEST(Recovery, ZeroFilledTailIsCut) {
  TempDir tmp;
  std::vector<size_t> at;
  const std::string seg = write_segment(tmp.path(), 5, &at);
  std::string data = read_file(seg);
  // The last record's blocks never made it (zeros), and the file was extended.
  data.replace(at[4], at[5] - at[4], std::string(at[5] - at[4], '\0'));
  data += std::string(4096, '\0');
  write_file(seg, data);
  RecoveryReport rep;
  auto log = must_open(opts(tmp.path()), &rep);
  ASSERT_EQ(rep.segments.size(), 1u);
  EXPECT_EQ(rep.segments[0].records, 4u);
  EXPECT_EQ(rep.segments[0].bytes_cut, data.size() - at[4]);
  EXPECT_NE(rep.summary().find("zero-filled tail at offset " + std::to_string(at[4])),
            std::string::npos)
      << rep.summary();
  EXPECT_EQ(std::filesystem::file_size(seg), at[4]);
  expect_range(read_all(log->reader("r")), 1, 5);
}

TEST(Recovery, ZeroedRangeInTheMiddleIsSkipped) {
  TempDir tmp;
  std::vector<size_t> at;
  const std::string seg = write_segment(tmp.path(), 10, &at);
  std::string data = read_file(seg);
  data.replace(at[3], at[6] - at[3], std::string(at[6] - at[3], '\0'));  // records 4..6
  write_file(seg, data);
  RecoveryReport rep;
  auto log = must_open(opts(tmp.path()), &rep);
  EXPECT_EQ(rep.records, 7u);
  EXPECT_NE(rep.summary().find("sequence numbers 4..6 are lost"), std::string::npos)
      << rep.summary();
  expect_range(read_all(log->reader("r")), 1, 11, {4, 5, 6});
}

TEST(Recovery, CorruptionAcrossSegmentsAndEmptiedSegments) {
  TempDir tmp;
  const SegmentLogOptions o = opts(tmp.path(), 500);
  {
    auto log = must_open(o);
    log->reader("r");
    append_range(*log, 1, 61);
  }
  auto files = segment_files(tmp.path());
  ASSERT_GE(files.size(), 5u);
  // Destroy the second segment completely (its only frames are garbage now).
  std::string second = read_file(files[1]);
  for (char &c : second)
    c = 'G';
  write_file(files[1], second);
  // Torn tail on the newest.
  std::string newest = read_file(files.back());
  write_file(files.back(), newest + std::string("\xF9\x10\x00", 3));
  RecoveryReport rep;
  auto log = must_open(o, &rep);
  EXPECT_TRUE(rep.segments[1].removed) << rep.summary();
  EXPECT_FALSE(std::filesystem::exists(files[1]));
  EXPECT_EQ(rep.segments.back().bytes_cut, 3u);
  Got g = read_all(log->reader("r"));
  EXPECT_EQ(g.seqs.size(), rep.records);
  EXPECT_EQ(g.seqs.back(), 60u);
  for (size_t i = 0; i < g.seqs.size(); ++i)
    EXPECT_EQ(g.payloads[i], payload_for(g.seqs[i]));
  EXPECT_EQ(log->append("x"), 61u);
}

TEST(Recovery, CorruptionFoundWhileReadingIsSkippedAndReported) {
  TempDir tmp;
  SegmentLogOptions o = opts(tmp.path());
  o.tail_cache_bytes = 0;  // read from the file
  std::vector<size_t> at;
  const std::string seg = write_segment(tmp.path(), 10, &at);
  auto log = must_open(o);
  Reader &r = log->reader("r");
  std::string data = read_file(seg);
  data[at[6] + kFrameHeaderBytes] ^= 0x20;  // bit rot after recovery
  write_file(seg, data);
  Got g = read_all(r, 100, 1 << 20);
  expect_range(g, 1, 11, {7});
  EXPECT_NE(g.errors.find("corrupt data in " + seg), std::string::npos) << g.errors;
  EXPECT_NE(g.errors.find("bad checksum at offset " + std::to_string(at[6])), std::string::npos)
      << g.errors;
}

// ---- fsync modes ------------------------------------------------------------------

TEST(Fsync, AlwaysSyncsEveryCommitAndNewSegmentsDirectory) {
  TempDir tmp;
  TestIo io;
  SegmentLogOptions o = opts(tmp.path(), 1 << 20, FsyncMode::Always);
  o.io = &io;
  auto log = must_open(o);
  Reader &r = log->reader("r");
  const int fsyncs_after_reader = io.fsyncs;  // cursor file + directory
  EXPECT_EQ(fsyncs_after_reader, 2);
  log->append("a");
  CommitResult res = log->commit_now(0);
  EXPECT_TRUE(res.synced);
  EXPECT_EQ(io.fdatasyncs, 1);
  EXPECT_EQ(io.fsyncs, fsyncs_after_reader + 1);  // the new segment's directory entry
  for (int i = 0; i < 5; ++i) {
    log->append("b");
    EXPECT_TRUE(log->commit_now(0).synced);
  }
  EXPECT_EQ(io.fdatasyncs, 6);
  EXPECT_EQ(io.fsyncs, fsyncs_after_reader + 1);
  EXPECT_EQ(log->begin_commit(0), nullptr);  // nothing to sync
  read_all(r);
  r.ack_through(6);
  ASSERT_EQ(r.persist(), "");
  EXPECT_EQ(io.fsyncs, fsyncs_after_reader + 3);
  ASSERT_EQ(r.persist(), "");  // unchanged: no write
  EXPECT_EQ(io.fsyncs, fsyncs_after_reader + 3);
}

TEST(Fsync, NeverSyncs) {
  TempDir tmp;
  TestIo io;
  SegmentLogOptions o = opts(tmp.path(), 200, FsyncMode::Never);
  o.io = &io;
  auto log = must_open(o);
  Reader &r = log->reader("r");
  append_range(*log, 1, 50, 3);
  EXPECT_FALSE(log->commit_wanted(1'000'000));
  read_all(r);
  r.ack_through(49);
  ASSERT_EQ(r.persist(), "");
  EXPECT_EQ(io.fdatasyncs, 0);
  EXPECT_EQ(io.fsyncs, 0);
  EXPECT_GT(io.writes, 10);
}

TEST(Fsync, IntervalSyncsAtMostEveryIntervalAndCatchesUpWhenIdle) {
  TempDir tmp;
  TestIo io;
  SegmentLogOptions o = opts(tmp.path(), 1 << 20, FsyncMode::Interval);
  o.fsync_interval_ms = 100;
  o.io = &io;
  auto log = must_open(o);
  log->reader("r");
  const int base_fsyncs = io.fsyncs;
  auto commit_at = [&](uint64_t now) {
    log->append("rec");
    return log->commit_now(now).synced;
  };
  EXPECT_TRUE(commit_at(1000));  // the first commit syncs
  EXPECT_EQ(io.fdatasyncs, 1);
  EXPECT_FALSE(commit_at(1050));
  EXPECT_FALSE(commit_at(1099));
  EXPECT_EQ(io.fdatasyncs, 1);
  EXPECT_TRUE(commit_at(1100));
  EXPECT_EQ(io.fdatasyncs, 2);
  EXPECT_FALSE(commit_at(1150));  // unsynced now, and then idle
  EXPECT_FALSE(log->commit_wanted(1199));
  EXPECT_EQ(log->begin_commit(1199), nullptr);
  EXPECT_TRUE(log->commit_wanted(1200));
  auto job = log->begin_commit(1200);  // a sync-only job
  ASSERT_TRUE(job);
  EXPECT_EQ(job->records(), 0u);
  EXPECT_TRUE(job->syncs());
  job->run();
  const CommitResult res = log->finish_commit(std::move(job));
  EXPECT_TRUE(res.ok && res.synced);
  EXPECT_EQ(io.fdatasyncs, 3);
  EXPECT_FALSE(log->commit_wanted(5000));  // all synced
  EXPECT_EQ(io.fsyncs, base_fsyncs + 1);   // the segment's directory entry, once
}

TEST(Fsync, BackgroundSyncRunsBesideCommits) {
  TempDir tmp;
  TestIo io;
  SegmentLogOptions o = opts(tmp.path(), 1 << 20, FsyncMode::Interval);
  o.fsync_interval_ms = 100;
  o.background_sync = true;
  o.io = &io;
  auto log = must_open(o);
  Reader &r = log->reader("r");
  log->append("a");
  CommitResult c = log->commit_now(1000);
  EXPECT_TRUE(c.ok && !c.synced);  // commits never sync themselves
  EXPECT_EQ(io.fdatasyncs, 0);
  EXPECT_FALSE(log->commit_wanted(5000));
  ASSERT_TRUE(log->sync_wanted(1000));  // never synced yet
  auto sync = log->begin_sync(1000);
  ASSERT_TRUE(sync);
  EXPECT_FALSE(log->sync_wanted(1000));
  EXPECT_EQ(log->begin_sync(1000), nullptr);  // one at a time
  // Commits go on while the sync is outstanding.
  log->append("b");
  c = log->commit_now(1010);
  EXPECT_TRUE(c.ok) << c.error;
  sync->run();
  EXPECT_EQ(log->finish_sync(std::move(sync)), "");
  EXPECT_GE(io.fdatasyncs, 1);
  // "b" came after the sync began: unsynced, due one interval after it.
  EXPECT_FALSE(log->sync_wanted(1099));
  EXPECT_TRUE(log->sync_wanted(1100));
  sync = log->begin_sync(1100);
  ASSERT_TRUE(sync);
  sync->run();
  EXPECT_EQ(log->finish_sync(std::move(sync)), "");
  EXPECT_FALSE(log->sync_wanted(9999));  // nothing unsynced
  Got g = read_all(r);
  EXPECT_EQ(g.payloads, (std::vector<std::string>{"a", "b"}));
}

TEST(Fsync, BackgroundSyncFailureBreaksTheLog) {
  TempDir tmp;
  TestIo io;
  SegmentLogOptions o = opts(tmp.path(), 1 << 20, FsyncMode::Interval);
  o.background_sync = true;
  o.io = &io;
  auto log = must_open(o);
  log->append("a");
  ASSERT_TRUE(log->commit_now(0).ok);
  auto sync = log->begin_sync(0);
  ASSERT_TRUE(sync);
  io.fail_fdatasync = true;
  sync->run();
  std::string err = log->finish_sync(std::move(sync));
  EXPECT_NE(err.find("fdatasync " + tmp.path()), std::string::npos) << err;
  EXPECT_TRUE(log->broken());
  log->append("b");
  EXPECT_FALSE(log->commit_now(0).ok);
}

TEST(Fsync, IntervalSyncsEarlierSegmentsWithUnsyncedData) {
  TempDir tmp;
  TestIo io;
  SegmentLogOptions o = opts(tmp.path(), 100, FsyncMode::Interval);
  o.fsync_interval_ms = 100;
  o.io = &io;
  auto log = must_open(o);
  log->reader("r");
  log->append(std::string(60, 'a'));
  EXPECT_TRUE(log->commit_now(0).synced);  // segment 1, synced
  log->append(std::string(60, 'b'));
  EXPECT_FALSE(log->commit_now(10).synced);  // segment 2, unsynced, dir unsynced
  log->append(std::string(60, 'c'));
  const int before = io.fdatasyncs;
  const int fs_before = io.fsyncs;
  EXPECT_TRUE(log->commit_now(200).synced);  // segment 3: syncs 3, and 1 and 2 too
  EXPECT_EQ(io.fdatasyncs - before, 3);
  EXPECT_EQ(io.fsyncs - fs_before, 1);
}

// ---- failures -----------------------------------------------------------------------

TEST(Failure, EnospcDropsTheJobAndLeavesTheLogConsistent) {
  TempDir tmp;
  TestIo io;
  SegmentLogOptions o = opts(tmp.path(), 1000, FsyncMode::Always);
  o.io = &io;
  {
    auto log = must_open(o);
    Reader &r = log->reader("r");
    append_range(*log, 1, 11);
    const uint64_t size_before = log->disk_bytes();
    const size_t files_before = segment_files(tmp.path()).size();
    // The next job spans the active segment and a new one; the disk fills
    // half-way through.
    for (uint64_t i = 11; i < 31; ++i)
      log->append(payload_for(i));
    io.write_budget = 700;
    auto job = log->begin_commit(0);
    ASSERT_TRUE(job);
    log->append(payload_for(31));  // arrives while the job runs
    job->run();
    CommitResult res = log->finish_commit(std::move(job));
    EXPECT_FALSE(res.ok);
    EXPECT_EQ(res.first_seq, 11u);
    EXPECT_EQ(res.last_seq, 30u);
    EXPECT_NE(res.error.find("No space left on device"), std::string::npos) << res.error;
    EXPECT_NE(res.error.find(tmp.path()), std::string::npos) << res.error;
    EXPECT_EQ(res.committed_through, 10u);
    EXPECT_FALSE(log->broken());
    uint64_t on_disk = 0;
    for (const std::string &f : segment_files(tmp.path()))
      on_disk += std::filesystem::file_size(f);
    EXPECT_EQ(segment_files(tmp.path()).size(), files_before);
    EXPECT_EQ(on_disk, size_before);
    expect_range(read_all(r), 1, 11);
    // Space frees: the record that arrived meanwhile and new ones commit.
    io.write_budget = -1;
    log->append(payload_for(32));
    res = log->commit_now(0);
    ASSERT_TRUE(res.ok) << res.error;
    EXPECT_EQ(res.first_seq, 31u);
    Got g = read_all(r);
    EXPECT_EQ(g.seqs, (std::vector<uint64_t>{31, 32}));
  }
  RecoveryReport rep;
  auto log = must_open(o, &rep);
  EXPECT_TRUE(rep.clean()) << rep.summary();
  Got g = read_all(log->reader("fresh"));
  std::vector<uint64_t> want;
  for (uint64_t i = 1; i <= 10; ++i)
    want.push_back(i);
  want.push_back(31);
  want.push_back(32);
  EXPECT_EQ(g.seqs, want);
}

TEST(Failure, RollbackFailureMarksTheLogBroken) {
  TempDir tmp;
  TestIo io;
  SegmentLogOptions o = opts(tmp.path(), 1 << 20, FsyncMode::Always);
  o.io = &io;
  auto log = must_open(o);
  log->reader("r");
  append_range(*log, 1, 3);
  log->append("x");
  io.write_budget = 5;
  io.fail_ftruncate = true;
  CommitResult res = log->commit_now(0);
  EXPECT_FALSE(res.ok);
  EXPECT_NE(res.error.find("rollback: ftruncate"), std::string::npos) << res.error;
  EXPECT_TRUE(log->broken());
  io.write_budget = -1;
  log->append("y");
  EXPECT_EQ(log->begin_commit(0), nullptr);
  res = log->commit_now(0);
  EXPECT_FALSE(res.ok);
  EXPECT_NE(res.error.find("unusable until reopened"), std::string::npos) << res.error;
  log.reset();
  // Reopening recovers: the torn bytes are cut.
  io.fail_ftruncate = false;
  RecoveryReport rep;
  log = must_open(o, &rep);
  EXPECT_EQ(rep.segments.at(0).bytes_cut, 5u);
  expect_range(read_all(log->reader("r")), 1, 3);
}

TEST(Failure, FdatasyncFailureFailsTheCommitAndBreaksTheLog) {
  TempDir tmp;
  TestIo io;
  SegmentLogOptions o = opts(tmp.path(), 1 << 20, FsyncMode::Always);
  o.io = &io;
  auto log = must_open(o);
  Reader &r = log->reader("r");
  append_range(*log, 1, 3);
  io.fail_fdatasync = true;
  log->append("z");
  const CommitResult res = log->commit_now(0);
  EXPECT_FALSE(res.ok);
  EXPECT_NE(res.error.find("fdatasync " + tmp.path()), std::string::npos) << res.error;
  EXPECT_TRUE(log->broken());
  expect_range(read_all(r), 1, 3);  // the failed record was never published
  log.reset();
  RecoveryReport rep;
  io.fail_fdatasync = false;
  log = must_open(o, &rep);
  EXPECT_TRUE(rep.clean()) << rep.summary();  // rolled back before failing
  EXPECT_EQ(rep.records, 2u);
}

TEST(Failure, OpenReportsUnusableDirectory) {
  TempDir tmp;
  write_file(tmp.sub("file"), "x");
  std::string err;
  RecoveryReport rep;
  EXPECT_EQ(SegmentLog::open(opts(tmp.sub("file") + "/log"), &rep, &err), nullptr);
  EXPECT_NE(err.find(tmp.sub("file")), std::string::npos) << err;
  EXPECT_NE(err.find("Not a directory"), std::string::npos) << err;
}

TEST(Failure, UnfinishedJobFailsCleanly) {
  TempDir tmp;
  auto log = must_open(opts(tmp.path()));
  log->reader("r");
  log->append("a");
  auto job = log->begin_commit(0);
  const CommitResult res = log->finish_commit(std::move(job));  // never ran
  EXPECT_FALSE(res.ok);
  EXPECT_NE(res.error.find("never run"), std::string::npos);
  log->append("b");
  EXPECT_EQ(log->commit_now(0).last_seq, 2u);
  Got g = read_all(log->reader("r"));
  EXPECT_EQ(g.seqs, std::vector<uint64_t>{2});
}

// ---- concurrency ----------------------------------------------------------------------

// ---- out of space: reclaim --------------------------------------------------

uint64_t bytes_on_disk(const std::string &dir) {
  uint64_t n = 0;
  for (const std::string &f : segment_files(dir))
    n += std::filesystem::file_size(f);
  return n;
}

TEST(Reclaim, NoSpaceWithEverythingAckedReplacesTheNewestSegmentAndWritesAgain) {
  TempDir tmp;
  TestIo io;
  const SegmentLogOptions o = opts(tmp.path(), 1 << 20, FsyncMode::Always);
  SegmentLogOptions oi = o;
  oi.io = &io;
  {
    auto log = must_open(oi);
    Reader &r = log->reader("r");
    append_range(*log, 1, 21);
    ASSERT_EQ(segment_files(tmp.path()).size(), 1u);  // one active segment, far from rolling
    expect_range(read_all(r), 1, 21);
    r.ack_through(20);  // delivered, cursor not yet written
    const uint64_t held = log->disk_bytes();
    for (uint64_t i = 21; i <= 25; ++i)
      log->append(payload_for(i));
    io.fail_writes = 1;  // the disk is full for this one write
    CommitResult res = log->commit_now(0);
    ASSERT_TRUE(res.ok) << res.error;
    EXPECT_TRUE(res.no_space);
    EXPECT_EQ(res.requeued, 5u);
    EXPECT_EQ(res.records, 0u);
    EXPECT_EQ(res.reclaimed_bytes, held);
    EXPECT_EQ(res.reclaim_error, "");
    EXPECT_EQ(res.committed_through, 20u);
    EXPECT_FALSE(log->broken());
    EXPECT_TRUE(log->space_short());
    EXPECT_EQ(r.persisted(), 20u);  // written before the segment went
    // The consumed segment is gone; an empty one named after the next record
    // to be written took its place.
    const std::vector<std::string> files = segment_files(tmp.path());
    ASSERT_EQ(files.size(), 1u);
    EXPECT_EQ(std::filesystem::path(files[0]).filename(), "00000000000000000021.seg");
    EXPECT_EQ(bytes_on_disk(tmp.path()), 0u);
    EXPECT_EQ(log->pending_records(), 5u);
    // The requeued records keep their sequence numbers and commit next.
    res = log->commit_now(0);
    ASSERT_TRUE(res.ok) << res.error;
    EXPECT_EQ(res.first_seq, 21u);
    EXPECT_EQ(res.last_seq, 25u);
    EXPECT_FALSE(log->space_short());
    expect_range(read_all(r), 21, 26);
  }
  // A restart finds a clean log that goes on numbering, and the cursor.
  RecoveryReport rep;
  auto log = must_open(o, &rep);
  EXPECT_TRUE(rep.clean()) << rep.summary();
  EXPECT_EQ(rep.next_seq, 26u);
  expect_range(read_all(log->reader("r")), 21, 26);
  EXPECT_EQ(log->append("next"), 26u);
}

TEST(Reclaim, TheRetryIsTriedOnceThenTheRecordsAreRefused) {
  TempDir tmp;
  TestIo io;
  SegmentLogOptions o = opts(tmp.path(), 1 << 20, FsyncMode::Never);
  o.io = &io;
  auto log = must_open(o);
  Reader &r = log->reader("r");
  append_range(*log, 1, 11);
  expect_range(read_all(r), 1, 11);
  r.ack_through(10);
  ASSERT_EQ(r.persist(), "");  // no cursor write left for the reclaim to make
  log->append(payload_for(11));
  io.fail_writes = 2;  // the retry finds no space either (someone else filled it)
  CommitResult res = log->commit_now(0);
  ASSERT_TRUE(res.ok) << res.error;
  EXPECT_EQ(res.requeued, 1u);
  log->append(payload_for(12));  // arrives meanwhile: goes with the retry
  res = log->commit_now(0);
  EXPECT_FALSE(res.ok);
  EXPECT_TRUE(res.no_space);
  EXPECT_EQ(res.requeued, 0u);
  EXPECT_EQ(res.first_seq, 11u);
  EXPECT_EQ(res.last_seq, 12u);
  EXPECT_NE(res.error.find("No space left on device"), std::string::npos) << res.error;
  EXPECT_FALSE(log->broken());  // space may come back: not broken
  EXPECT_TRUE(log->space_short());
  EXPECT_EQ(log->pending_records(), 0u);
  // Space is back: later records commit (11 and 12 were refused for good).
  log->append(payload_for(13));
  res = log->commit_now(0);
  ASSERT_TRUE(res.ok) << res.error;
  EXPECT_EQ(res.first_seq, 13u);
  EXPECT_FALSE(log->space_short());
  EXPECT_EQ(read_all(r).seqs, std::vector<uint64_t>{13});
}

TEST(Reclaim, NothingAReaderHasNotAckedIsRemoved) {
  TempDir tmp;
  TestIo io;
  SegmentLogOptions o = opts(tmp.path(), 1000, FsyncMode::Never);
  o.io = &io;
  auto log = must_open(o);
  Reader &a = log->reader("a");
  Reader &b = log->reader("b");
  append_range(*log, 1, 101);
  ASSERT_GT(segment_files(tmp.path()).size(), 5u);
  expect_range(read_all(a), 1, 101);
  expect_range(read_all(b), 1, 101);
  a.ack_through(100);
  b.ack_through(40);  // read everything, delivered only up to 40
  // Nothing acked by both in the newest segment: only older segments go.
  const std::string newest = segment_files(tmp.path()).back();
  log->append(payload_for(101));
  io.fail_writes = 1;
  CommitResult res = log->commit_now(0);
  ASSERT_TRUE(res.ok) << res.error;
  EXPECT_EQ(res.requeued, 1u);
  EXPECT_GT(res.reclaimed_bytes, 0u);
  EXPECT_TRUE(std::filesystem::exists(newest));
  EXPECT_LE(log->oldest_seq(), 41u);
  EXPECT_GT(log->oldest_seq(), 20u);
  EXPECT_EQ(bytes_on_disk(tmp.path()) + log->pending_bytes(), log->disk_bytes());
  ASSERT_TRUE(log->commit_now(0).ok);
  // b gets everything after its ack again, from what is left.
  b.seek_to_cursor();
  Got g = read_all(b);
  std::vector<uint64_t> want;
  for (uint64_t i = 41; i <= 101; ++i)
    want.push_back(i);
  EXPECT_EQ(g.seqs, want);
  // b acked nothing more: a second full disk frees nothing and refuses.
  log->append(payload_for(102));
  io.fail_writes = 1;
  res = log->commit_now(0);
  EXPECT_FALSE(res.ok);
  EXPECT_TRUE(res.no_space);
  EXPECT_EQ(res.reclaimed_bytes, 0u);
}

TEST(Reclaim, WithoutAReaderNothingIsRemoved) {
  TempDir tmp;
  TestIo io;
  SegmentLogOptions o = opts(tmp.path(), 1 << 20, FsyncMode::Never);
  o.io = &io;
  auto log = must_open(o);
  append_range(*log, 1, 11);
  const uint64_t held = bytes_on_disk(tmp.path());
  log->append(payload_for(11));
  io.fail_writes = 1;
  const CommitResult res = log->commit_now(0);
  EXPECT_FALSE(res.ok);
  EXPECT_TRUE(res.no_space);
  EXPECT_EQ(bytes_on_disk(tmp.path()), held);
  EXPECT_EQ(log->reclaim(), 0u);
}

TEST(Reclaim, CollectGivesTheSpaceBackOnceDeliveredWhileShortOfSpace) {
  TempDir tmp;
  TestIo io;
  const SegmentLogOptions o = opts(tmp.path(), 1 << 20, FsyncMode::Interval);
  SegmentLogOptions oi = o;
  oi.io = &io;
  {
    auto log = must_open(oi);
    Reader &r = log->reader("r");
    append_range(*log, 1, 31);
    // The output is down: the disk fills, nothing can be reclaimed.
    log->append(payload_for(31));
    io.fail_writes = 1;
    CommitResult res = log->commit_now(0);
    EXPECT_FALSE(res.ok);
    EXPECT_TRUE(res.no_space);
    EXPECT_TRUE(log->space_short());
    EXPECT_GT(bytes_on_disk(tmp.path()), 0u);
    // Delivered, short of space: the newest segment goes at the next collect.
    expect_range(read_all(r), 1, 31);
    r.ack_through(30);
    ASSERT_EQ(r.persist(), "");
    ASSERT_EQ(log->collect(), "");
    EXPECT_EQ(bytes_on_disk(tmp.path()), 0u);
    EXPECT_EQ(log->disk_bytes(), 0u);
    const std::vector<std::string> files = segment_files(tmp.path());
    ASSERT_EQ(files.size(), 1u);
    EXPECT_EQ(std::filesystem::path(files[0]).filename(), "00000000000000000032.seg");
    // The log goes on in the empty segment; a later commit ends the shortage.
    log->append(payload_for(32));
    res = log->commit_now(0);
    ASSERT_TRUE(res.ok) << res.error;
    EXPECT_FALSE(log->space_short());
    EXPECT_EQ(read_all(r).seqs, std::vector<uint64_t>{32});
  }
  RecoveryReport rep;
  auto log = must_open(o, &rep);
  EXPECT_TRUE(rep.clean()) << rep.summary();
  EXPECT_EQ(rep.next_seq, 33u);
  expect_range(read_all(log->reader("r")), 32, 33);
}

TEST(Reclaim, ANormalCollectStillKeepsTheNewestSegment) {
  TempDir tmp;
  auto log = must_open(opts(tmp.path(), 1 << 20));
  Reader &r = log->reader("r");
  append_range(*log, 1, 11);
  expect_range(read_all(r), 1, 11);
  r.ack_through(10);
  ASSERT_EQ(r.persist(), "");
  ASSERT_EQ(log->collect(), "");
  EXPECT_GT(bytes_on_disk(tmp.path()), 0u);  // not short of space: it rolls in its time
  EXPECT_FALSE(log->space_short());
}

TEST(Reclaim, ACursorTheFullDiskRefusesLosesNothingAcrossACrash) {
  TempDir tmp;
  TestIo io;
  const SegmentLogOptions o = opts(tmp.path(), 1 << 20, FsyncMode::Never);
  SegmentLogOptions oi = o;
  oi.io = &io;
  {
    auto log = must_open(oi);
    Reader &r = log->reader("r");
    append_range(*log, 1, 21);
    expect_range(read_all(r), 1, 21);
    r.ack_through(20);
    log->append(payload_for(21));
    // The commit and both cursor writes of the reclaim find no space.
    io.fail_writes = 3;
    CommitResult res = log->commit_now(0);
    ASSERT_TRUE(res.ok) << res.error;
    EXPECT_EQ(res.requeued, 1u);
    EXPECT_NE(res.reclaim_error.find("No space left on device"), std::string::npos)
        << res.reclaim_error;
    EXPECT_EQ(r.persisted(), 0u);
    ASSERT_TRUE(log->commit_now(0).ok);
    // Crash: the log is dropped before the cursor could be written.
  }
  RecoveryReport rep;
  auto log = must_open(o, &rep);
  EXPECT_TRUE(rep.clean()) << rep.summary();
  EXPECT_EQ(rep.next_seq, 22u);
  Reader &r = log->reader("r");
  EXPECT_NE(r.open_note().find("removed before this reader read them"), std::string::npos)
      << r.open_note();
  // 1..20 were delivered; 21 was not and is there.
  expect_range(read_all(r), 21, 22);
}

TEST(Reclaim, TheNewestSegmentStaysWhileACommitIsOutstanding) {
  TempDir tmp;
  auto log = must_open(opts(tmp.path(), 1 << 20));
  Reader &r = log->reader("r");
  append_range(*log, 1, 11);
  expect_range(read_all(r), 1, 11);
  r.ack_through(10);
  log->append(payload_for(11));
  auto job = log->begin_commit(0);
  ASSERT_TRUE(job);
  const uint64_t held = bytes_on_disk(tmp.path());
  EXPECT_EQ(log->reclaim(), 0u);  // the job writes into it
  EXPECT_EQ(bytes_on_disk(tmp.path()), held);
  job->run();
  ASSERT_TRUE(log->finish_commit(std::move(job)).ok);
  expect_range(read_all(r), 11, 12);
  // Now 11 is not acked: still nothing goes.
  EXPECT_EQ(log->reclaim(), 0u);
  r.ack_through(11);
  EXPECT_GT(log->reclaim(), 0u);
  EXPECT_EQ(bytes_on_disk(tmp.path()), 0u);
  EXPECT_EQ(log->append("x"), 12u);
  ASSERT_TRUE(log->commit_now(0).ok);
  EXPECT_EQ(read_all(r).seqs, std::vector<uint64_t>{12});
}

TEST(Concurrency, CommitRunsOnAnotherThreadWhileTheLoopAppendsAndReads) {
  TempDir tmp;
  SegmentLogOptions o = opts(tmp.path(), 16 * 1024, FsyncMode::Never);
  o.tail_cache_bytes = 8 * 1024;  // exercise both cache and file reads
  auto log = must_open(o);
  Reader &fast = log->reader("fast");
  Reader &slow = log->reader("slow");
  uint64_t next = 1;
  Got fast_got;
  Got slow_got;
  for (int round = 0; round < 300; ++round) {
    std::unique_ptr<CommitJob> job = log->begin_commit(static_cast<uint64_t>(round));
    std::thread worker;
    if (job) worker = std::thread([j = job.get()] { j->run(); });
    for (int k = 0; k < 20; ++k, ++next) {
      ASSERT_EQ(log->append(payload_for(next)), next);
    }
    std::vector<RecordView> out;
    ASSERT_EQ(fast.read(64, 1 << 20, &out), "");
    for (const RecordView &v : out) {
      fast_got.seqs.push_back(v.seq);
      fast_got.payloads.emplace_back(v.payload);
    }
    if (round % 3 == 0) {
      ASSERT_EQ(slow.read(16, 1 << 20, &out), "");
      for (const RecordView &v : out) {
        slow_got.seqs.push_back(v.seq);
        slow_got.payloads.emplace_back(v.payload);
      }
    }
    if (round % 50 == 49) {
      fast.ack_through(fast.read_position());
      slow.ack_through(slow.read_position());
      ASSERT_EQ(fast.persist(), "");
      ASSERT_EQ(slow.persist(), "");
      ASSERT_EQ(log->collect(), "");
    }
    if (worker.joinable()) worker.join();
    if (job) {
      ASSERT_TRUE(log->finish_commit(std::move(job)).ok);
    }
  }
  ASSERT_TRUE(log->commit_now(1000).ok);
  Got rest = read_all(fast, 1000, 1 << 20);
  fast_got.seqs.insert(fast_got.seqs.end(), rest.seqs.begin(), rest.seqs.end());
  fast_got.payloads.insert(fast_got.payloads.end(), rest.payloads.begin(), rest.payloads.end());
  expect_range(fast_got, 1, next);
  rest = read_all(slow, 1000, 1 << 20);
  slow_got.seqs.insert(slow_got.seqs.end(), rest.seqs.begin(), rest.seqs.end());
  slow_got.payloads.insert(slow_got.payloads.end(), rest.payloads.begin(), rest.payloads.end());
  expect_range(slow_got, 1, next);
}

}  // namespace
}  // namespace ingestd
