// SegmentLog: the disk buffer of one (input, worker) — an append-only log of
// checksummed records with group commit and named, persisted read cursors.
//
// Threading. Everything runs on the owning worker's loop thread, except
// CommitJob::run(), which does the blocking write(2) + fdatasync and may run
// on a thread pool (uv_queue_work) while the loop keeps appending and
// reading. No globals; no exceptions; errors are returned as strings
// ("" = success) that name the path and the errno text.
//
// Files, under options.dir:
//   NNNNNNNNNNNNNNNNNNNN.seg  segments, named by the first sequence number the
//                             segment was opened for (20 digits, zero-padded);
//                             rolled when the next frame would take the segment
//                             past segment_bytes (a larger record goes alone).
//   cursors/<name>            one per reader: "ingestd-cursor 1 <acked_through>\n",
//                             replaced atomically (write <name>.tmp, rename).
//   The frame format is documented in storage/segment_format.h: magic/version
//   byte 0xF9, u32 length, u64 sequence number, CRC-32C, payload.
//
// Write path (group commit, double-buffered):
//   append(payload) -> seq         encodes a frame into the pending buffer
//   begin_commit(now) -> job       takes the pending buffer (appends go on
//                                  into a fresh one); null when nothing to do
//                                  or a job is still outstanding
//   job->run()                     any thread: pwrite + fdatasync per mode
//   finish_commit(job)             loop thread: publishes the job's records to
//                                  readers, or drops them on failure
// A request is answered after the finish_commit that covers its last record.
//
// Durability of a record reported committed by finish_commit:
//   Always    on stable storage: the segment was fdatasync'ed, and the
//             directory fsync'ed when the job created a segment.
//   Interval  in the kernel (survives kill -9 and any process crash) at once;
//             on stable storage after the first job that begins >= interval ms
//             after the previous sync. If the engine calls begin_commit when
//             commit_wanted(now) says so (a timer every interval is enough), a
//             power loss or kernel crash loses at most ~2 x interval ms of
//             acknowledged records.
//   Never     in the kernel only: survives process crashes; after a power loss
//             whatever the kernel had not written back (~30 s) is lost.
// Recovery cuts whatever a crash left half-written, so the log stays readable
// in every mode.
//
// Failed commits. If a write or sync fails (ENOSPC, EIO…) finish_commit
// returns ok=false with the error; the job's records are NOT published and
// never will be (their sequence numbers are skipped); the files are truncated
// back to the last published offset (a segment the job created is removed),
// so the log stays consistent and later commits work once space frees. If
// that rollback itself fails, or an fdatasync fails (the kernel may have
// dropped dirty pages of earlier commits), the log is marked broken: every
// later commit fails with broken_reason() until the log is reopened, whose
// recovery checks every frame again.
//
// Out of space (ENOSPC, EDQUOT from a write or a create; never broken). The
// file system may fill before the owner's own size limit, and the newest
// segment, fully read, would otherwise stay until it rolls — which it cannot
// once nothing more fits. So finish_commit then calls reclaim() (below): when
// that frees a segment and the job was not itself a retry, the job's records
// go back to the front of the pending buffer (CommitResult::requeued) with
// their sequence numbers, and the next begin_commit writes them again — once;
// a retry that meets no space again fails as above. Until a commit succeeds
// the log stays "short of space" (space_short()) and collect() reclaims too.
//
// Readers. reader(name) opens (or returns) a named cursor. Records are read
// in sequence order, only once committed. The reader has three positions:
// read (last record handed out by read()), acked (ack_through: everything up
// to it is delivered) and persisted (what persist() last wrote). After a
// restart a reader starts after its persisted cursor: records delivered but
// not yet persisted are delivered again (at-least-once).
//
// Retention. collect() deletes, oldest first, every segment whose records are
// all <= the smallest persisted cursor of the readers opened in this process;
// never the newest segment (its name keeps the sequence numbers going). With
// no reader open it deletes nothing. Cursor files of readers not opened in
// this process do not hold segments back (an output removed from the config
// must not pin the disk forever); remove_reader() also deletes the file.
//
// reclaim() gives space back when the file system is full: it deletes, oldest
// first, every segment whose records all open readers have acked (delivered
// or dead-lettered; persisted or not), the newest one too. A removed newest
// segment is replaced by an empty one named by the next sequence number to be
// written, so after a crash recovery still starts numbering after it. Cursors
// that lag their acks are written first (and again after the removal, should
// the full disk have refused them): a crash in between finds cursors older
// than the log, which only means those records, already delivered, are not
// sent again. Nothing a reader has not acked is ever removed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "storage/segment_format.h"
#include "storage/storage_io.h"

namespace ingestd {

enum class FsyncMode : uint8_t { Always, Interval, Never };

// Where a reader with no cursor file starts.
enum class ReaderStart : uint8_t {
  Oldest,  // the oldest retained record: a new output receives the backlog
  Tail,    // after the last committed record: only what is appended from now on
};

struct SegmentLogOptions {
  std::string dir;  // created (with parents) if missing
  uint64_t segment_bytes = uint64_t{64} << 20;
  FsyncMode fsync = FsyncMode::Always;
  uint64_t fsync_interval_ms = 1000;  // FsyncMode::Interval only
  // FsyncMode::Interval: commits never sync; the owner calls begin_sync()
  // when sync_wanted() says so and runs the SyncJob on a thread while commits
  // go on, so no write waits for an fdatasync. Same durability as Interval.
  bool background_sync = false;
  ReaderStart new_reader_start = ReaderStart::Oldest;
  // Recently committed records kept in memory so that readers close behind
  // the writer read without a syscall. 0 disables it.
  size_t tail_cache_bytes = size_t{8} << 20;
  StorageIo *io = nullptr;  // null: the kernel. Not owned; must outlive the log.
};

// What recovery did to one segment file.
struct SegmentRecovery {
  std::string path;
  uint64_t records = 0;             // intact records kept
  uint64_t bytes_cut = 0;           // torn or corrupt tail removed with ftruncate
  uint64_t bytes_skipped = 0;       // corrupt ranges inside the segment, left in place and skipped
  bool removed = false;             // no record left and not the newest segment: file deleted
  std::vector<std::string> issues;  // "bad checksum at offset N: cut M bytes", …
};

struct RecoveryReport {
  std::vector<SegmentRecovery> segments;  // in sequence order
  std::vector<std::string> notes;         // unknown files, stale temp files
  uint64_t records = 0;                   // records available after recovery
  uint64_t next_seq = 1;                  // the sequence number of the next append
  bool clean() const;                     // nothing cut, skipped or removed
  std::string summary() const;            // one line per issue, for the log
};

// One committed record. payload points into memory owned by the Reader (a
// read buffer or the log's tail cache): valid until the next read() or
// seek_to_cursor() on the same reader, remove_reader() of it, or the log's
// destruction. Copy what must live longer.
struct RecordView {
  uint64_t seq = 0;
  std::string_view payload;
};

class SegmentLog;

namespace storage_detail {

// The frames of one commit, back to back; record i has sequence number
// first_seq + i and starts at offsets[i].
struct Chunk {
  std::string bytes;
  std::vector<size_t> offsets;
  uint64_t first_seq = 0;
  uint64_t last_seq() const { return offsets.empty() ? 0 : first_seq + offsets.size() - 1; }
  bool retried = false;  // requeued once after a reclaim: not again
};

// The slice of a commit that goes to one segment file.
struct CommitPart {
  uint64_t seg_base = 0;
  std::string path;
  int fd = -1;               // an existing segment's descriptor (borrowed), or -1 when `create`
  bool create = false;       // the job creates the segment file
  UniqueFd created;          // the created file, handed to the log by finish_commit
  uint64_t file_offset = 0;  // where the slice starts in the file
  size_t buf_begin = 0, buf_end = 0;  // the slice of Chunk::bytes
  size_t rec_begin = 0, rec_end = 0;  // the records of the slice
  int write_fd() const { return create ? created.get() : fd; }
};

// One segment file as the log knows it.
struct Segment {
  uint64_t base = 0;  // from the file name; <= first_seq
  std::string path;
  UniqueFd fd;
  uint64_t size = 0;  // published bytes (readers never read past it)
  uint64_t records = 0;
  uint64_t first_seq = 0;  // 0: no record
  uint64_t last_seq = 0;
  std::vector<SegmentHole> holes;  // corrupt ranges readers skip, sorted
  std::vector<IndexEntry> index;   // sparse seq -> offset, sorted
  uint64_t next_index_offset = 0;
  int pins = 0;  // referenced by the outstanding CommitJob: not deleted
};

}  // namespace storage_detail

// The blocking half of one group commit; see the file comment.
class CommitJob {
 public:
  // Writes the job's frames and syncs per the fsync mode. Blocking; safe on
  // any thread while the log's owner keeps appending and reading (it touches
  // only the job and file descriptors the log keeps open until
  // finish_commit). Call at most once.
  void run();

  uint64_t first_seq() const;  // 0 for a sync-only job
  uint64_t last_seq() const;
  size_t records() const;
  size_t bytes() const;  // frame bytes to write
  bool syncs() const { return sync_; }

  ~CommitJob() = default;
  CommitJob(const CommitJob &) = delete;
  CommitJob &operator=(const CommitJob &) = delete;

 private:
  friend class SegmentLog;
  CommitJob() = default;
  void rollback(size_t parts_touched);

  StorageIo *io_ = nullptr;
  std::shared_ptr<storage_detail::Chunk> chunk_;
  std::vector<storage_detail::CommitPart> parts_;
  std::vector<std::pair<int, std::string>> sync_fds_;  // earlier segments with unsynced data
  std::vector<uint64_t> pinned_;                       // segment bases pinned by this job
  int dir_fd_ = -1;                                    // fsync'ed when sync_dir_
  std::string dir_path_;
  bool sync_ = false;
  bool sync_dir_ = false;
  uint64_t begun_ms_ = 0;
  bool ran_ = false;
  bool broken_ = false;  // rollback or sync failed
  int errno_ = 0;        // of the failed create or write (0: none, or a sync failed)
  std::string error_;
};

// A sync of everything committed before begin_sync(), on duplicated
// descriptors (a segment deleted meanwhile stays open until the job ends):
// run() may block on any thread while the log's owner keeps committing.
class SyncJob {
 public:
  void run();
  ~SyncJob() = default;
  SyncJob(const SyncJob &) = delete;
  SyncJob &operator=(const SyncJob &) = delete;

 private:
  friend class SegmentLog;
  SyncJob() = default;
  StorageIo *io_ = nullptr;
  std::vector<std::pair<UniqueFd, std::string>> files_;
  UniqueFd dir_;
  std::string dir_path_;
  uint64_t begun_ms_ = 0;
  bool ran_ = false;
  std::string error_;
};

struct CommitResult {
  bool ok = true;
  std::string error;       // when !ok: what failed, with path and errno text
  uint64_t first_seq = 0;  // the job's records (0, 0 for a sync-only job)
  uint64_t last_seq = 0;
  size_t records = 0;
  bool synced = false;             // the job ran fdatasync
  uint64_t committed_through = 0;  // highest sequence number readers can see
  // A write found no space (ENOSPC, EDQUOT): with !ok the job's records are
  // refused (the log is not broken), else they were requeued (below).
  bool no_space = false;
  // ok, nothing published: a write found no space, reclaim() freed some, and
  // the job's records went back to the pending buffer to be written by the
  // next begin_commit (their sequence numbers are kept; first_seq, last_seq
  // and records are 0).
  size_t requeued = 0;
  uint64_t reclaimed_bytes = 0;  // what reclaim() freed after a write found no space
  std::string reclaim_error;     // "" or what stopped that reclaim
};

class Reader {
 public:
  const std::string &name() const { return name_; }

  // Fills *out (cleared first) with up to max_records records whose payloads
  // total at most max_bytes (always at least one record if any is available,
  // whatever its size), the next committed records after the read position,
  // and advances the read position past them. An empty result means the
  // reader is caught up. Never blocks long: one pread of at most
  // ~max_bytes + 256 KiB from the page cache, or none when the records are in
  // the tail cache. Returns "" or an error: an I/O error (nothing read), or a
  // record found corrupt on disk after recovery (reported once; the reader
  // skips it and *out holds what could be read).
  [[nodiscard]] std::string read(size_t max_records, size_t max_bytes,
                                 std::vector<RecordView> *out);

  // Everything <= seq is delivered. Acks only move forward, and never past
  // the read position. The engine acks in order (it keeps out-of-order
  // batch completions itself).
  void ack_through(uint64_t seq);

  // Writes the acked position to the cursor file if it changed (atomic:
  // temp file + rename; with FsyncMode::Always also fsync of the file and
  // the directory: two syncs, so call it after batches or on a timer).
  // Without fsync a crash can only make the cursor older: records are
  // delivered again, never lost.
  [[nodiscard]] std::string persist();

  // Moves the read position back to the acked position (e.g. an output was
  // restarted and its in-flight batches are gone). At open, that is the
  // persisted cursor.
  void seek_to_cursor();

  uint64_t read_position() const { return read_pos_; }
  uint64_t acked() const { return acked_; }
  uint64_t persisted() const { return persisted_; }
  // How the starting position was chosen at open (cursor file, new reader,
  // unreadable cursor, cursor older than the retained log…).
  const std::string &open_note() const { return note_; }

  Reader(const Reader &) = delete;
  Reader &operator=(const Reader &) = delete;
  ~Reader() = default;

 private:
  friend class SegmentLog;
  Reader(SegmentLog *log, std::string name, std::string path);
  void seek();
  bool read_cache(size_t max_records, size_t max_bytes, std::vector<RecordView> *out);
  std::string read_file(size_t max_records, size_t max_bytes, std::vector<RecordView> *out);

  SegmentLog *log_;
  std::string name_;
  std::string path_;  // cursor file
  uint64_t read_pos_ = 0;
  uint64_t acked_ = 0;
  uint64_t persisted_ = 0;
  bool have_file_pos_ = false;  // seg_base_/offset_ are where read_pos_ + 1 starts, or before it
  uint64_t seg_base_ = 0;
  uint64_t offset_ = 0;
  std::string buf_;
  std::vector<std::shared_ptr<const storage_detail::Chunk>>
      pins_;  // what the last read points into
  std::string note_;
};

class SegmentLog {
 public:
  // Opens (creating) the log in options.dir and recovers it: every frame of
  // every segment is verified; torn or corrupt tails are cut, corrupt ranges
  // inside a segment are skipped, and *report says what was done. Returns
  // null with *error set when the directory cannot be used.
  static std::unique_ptr<SegmentLog> open(SegmentLogOptions options, RecoveryReport *report,
                                          std::string *error);

  // Destroy only after the outstanding CommitJob (if any) went through
  // finish_commit: the job borrows the log's file descriptors. Pending
  // (uncommitted) records are dropped: nobody was told they were kept.
  ~SegmentLog();
  SegmentLog(const SegmentLog &) = delete;
  SegmentLog &operator=(const SegmentLog &) = delete;

  // ---- writing ----------------------------------------------------------

  // Queues a record for the next commit; returns its sequence number, or 0
  // when the payload is larger than kMaxRecordBytes (nothing queued).
  uint64_t append(std::string_view payload);

  // Takes the pending records into a job (see the file comment). Returns null
  // when a job is outstanding, the log is broken, or there is nothing to write
  // and no sync due. `now_ms` is a monotonic clock: in Interval mode it
  // decides whether this job syncs (it does when the last sync began
  // fsync_interval_ms ago or more); an Interval log with unsynced data and
  // nothing pending gets a sync-only job when one is due.
  std::unique_ptr<CommitJob> begin_commit(uint64_t now_ms);

  // Publishes (or, on failure, drops) the job's records. `job` must come from
  // this log's begin_commit; a job that never ran fails with nothing written.
  CommitResult finish_commit(std::unique_ptr<CommitJob> job);

  // begin_commit + run + finish_commit on the calling thread (tests, tools,
  // shutdown). Returns an ok, empty result when there was nothing to do.
  CommitResult commit_now(uint64_t now_ms);

  // background_sync: a sync of what commits wrote so far, or null when there
  // is nothing unsynced, one is outstanding or the log is broken.
  std::unique_ptr<SyncJob> begin_sync(uint64_t now_ms);
  // "" or the error; a failed fdatasync breaks the log (the kernel may have
  // dropped the dirty pages), as a failed sync inside a commit does.
  std::string finish_sync(std::unique_ptr<SyncJob> job);
  // background_sync: unsynced data, fsync_interval_ms since the last sync
  // began, and no sync outstanding.
  bool sync_wanted(uint64_t now_ms) const;

  // Whether begin_commit(now_ms) has something to do (pending records, or an
  // Interval sync due), ignoring an outstanding job.
  bool commit_wanted(uint64_t now_ms) const;
  bool commit_outstanding() const { return job_outstanding_; }
  size_t pending_records() const;
  size_t pending_bytes() const;
  uint64_t committed_through() const { return committed_seq_; }
  uint64_t next_seq() const { return next_seq_; }
  bool broken() const { return !broken_reason_.empty(); }
  const std::string &broken_reason() const { return broken_reason_; }

  // ---- reading ----------------------------------------------------------

  // The reader called `name` (any string: it is escaped into a file name),
  // opened on first use from its cursor file, or per new_reader_start when
  // there is none (a new reader's cursor is written at once, so a Tail
  // reader does not fall back to Oldest after a crash). The reference stays
  // valid until remove_reader(name) or the log's destruction.
  Reader &reader(std::string_view name);
  Reader *find_reader(std::string_view name);
  // Forgets the reader and deletes its cursor file (an output removed for
  // good). Returns "" or the unlink error.
  [[nodiscard]] std::string remove_reader(std::string_view name);

  // ---- retention and accounting ------------------------------------------

  // Deletes fully consumed segments (see the file comment), and reclaim()s
  // while space_short(). Returns "" or the first error. O(segments).
  [[nodiscard]] std::string collect();

  // Deletes every segment all open readers have acked, the newest too (see
  // the file comment); skips segments a job pins, and the newest while a
  // commit is outstanding. Returns the segment bytes freed; *error gets ""
  // or the first unlink, create or cursor error. Nothing without a reader.
  uint64_t reclaim(std::string *error = nullptr);
  // A write found no space and no commit has succeeded since.
  bool space_short() const { return space_short_; }

  // Bytes held for this log: segment files + pending + being committed.
  uint64_t disk_bytes() const;
  size_t segment_count() const { return segments_.size(); }
  uint64_t oldest_seq() const;  // first retained record (0 when none)
  const SegmentLogOptions &options() const { return options_; }

 private:
  friend class Reader;
  using Chunk = storage_detail::Chunk;
  using Segment = storage_detail::Segment;

  explicit SegmentLog(SegmentLogOptions options);
  std::string recover(RecoveryReport *report);
  std::string rescan(Segment &seg);  // a corrupt frame found while reading
  std::string write_cursor(const Reader &r, uint64_t acked);
  void add_to_cache(std::shared_ptr<const Chunk> chunk);
  bool sync_due(uint64_t now_ms) const;
  void requeue(std::shared_ptr<Chunk> failed);
  uint64_t reclaim_acked(uint64_t next_base, std::string *error);
  uint64_t next_write_seq() const;  // the first sequence number the next commit writes

  SegmentLogOptions options_;
  StorageIo *io_;
  UniqueFd dir_fd_;
  UniqueFd cursors_fd_;
  std::string cursors_dir_;
  std::map<uint64_t, Segment> segments_;  // by base sequence number
  std::shared_ptr<Chunk> pending_;
  uint64_t next_seq_ = 1;
  uint64_t committed_seq_ = 0;
  bool job_outstanding_ = false;
  bool sync_outstanding_ = false;  // a background SyncJob
  uint64_t inflight_bytes_ = 0;
  uint64_t last_sync_ms_ = 0;
  bool synced_once_ = false;
  bool unsynced_data_ = false;  // written since the last fdatasync (Interval, Never)
  bool dir_dirty_ = false;      // a segment was created since the last directory fsync
  uint64_t segment_bytes_total_ = 0;
  bool space_short_ = false;  // a write found no space; cleared by the next good commit
  std::string broken_reason_;
  std::deque<std::shared_ptr<const Chunk>> cache_;  // committed jobs, oldest first
  size_t cache_bytes_ = 0;
  std::map<std::string, std::unique_ptr<Reader>, std::less<>> readers_;
};

}  // namespace ingestd
