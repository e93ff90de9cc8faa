"""Delivery guarantees under faults (issue 7): the disk buffer and the memory
buffer, counted record by record from the client's 200 to the receiver.

Receivers: the stdout output (a record is delivered once its line is written
to the pipe this test reads) and tests/peers/es_peer.py (documents stored by
_id; the elasticsearch output derives _id from the record, so a duplicate
send is a 409 the peer counts, not a second document).

Faults: kill -9 of the daemon at random moments, a corrupted byte and a torn
tail in a segment file, the output answering 503 for a while, max_disk
reached, SIGHUP every 200 ms with the routes changing, SIGTERM under load.
Every wait polls a condition with a deadline; nothing sleeps and hopes.
"""

import glob
import http.client
import json
import os
import random
import re
import signal
import threading
import time
import unittest

from harness import Daemon, EsPeer, wait_for

STDOUT_DISK = """
[inputs.trace]
plugin = "http"
listener = "public"
path = "/v1/trace"

[outputs.console]
plugin = "stdout"
buffer = "disk"
fsync = "{fsync}"
flush_interval = "10ms"
batch_max_records = {batch}

[[routes]]
match = "trace"
to = ["console"]
"""

ES_OUTPUT = """
[inputs.trace]
plugin = "http"
listener = "public"
path = "/v1/trace"

[outputs.es]
plugin = "elasticsearch"
hosts = ["{url}"]
index = "trace"
id_field = "id"
buffer = "{buffer}"
flush_interval = "20ms"
batch_max_records = 200
retry_initial = "20ms"
retry_max = "200ms"
{extra}

[[routes]]
match = "trace"
to = ["es"]
"""


def post(port, records, timeout=20):
    """(status, headers) of one POST of a JSON array; (0, {}) when the
    connection failed before an answer."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", "/v1/trace", body=json.dumps(records),
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        r.read()
        return r.status, dict(r.getheaders())
    except (OSError, http.client.HTTPException):
        return 0, {}
    finally:
        conn.close()


class Loader:
    """Threads POSTing batches of unique records until stopped; remembers
    which records got a 200 and every status seen."""

    def __init__(self, port_fn, prefix, batch=10, threads=2):
        self.port_fn, self.prefix, self.batch = port_fn, prefix, batch
        self.acked = set()
        self.statuses = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.seq = 0
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(threads)]

    def next_batch(self):
        with self.lock:
            base = self.seq
            self.seq += self.batch
        return [{"id": "%s-%d" % (self.prefix, base + i), "n": base + i}
                for i in range(self.batch)]

    def run(self):
        while not self.stopping.is_set():
            recs = self.next_batch()
            status, _ = post(self.port_fn(), recs)
            with self.lock:
                self.statuses[status] = self.statuses.get(status, 0) + 1
                if status == 200:
                    self.acked.update(r["id"] for r in recs)

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(60)


def stdout_ids(d, seen, counts):
    """Moves every record the daemon printed so far into seen/counts."""
    while not d.records.empty():
        rec = json.loads(d.records.get())
        seen.add(rec["id"])
        counts[rec["id"]] = counts.get(rec["id"], 0) + 1


def ids(peer):
    return {x["_source"]["id"] for x in peer.docs("trace")}


def stored(peer):
    """Documents in the index (id_field makes a re-sent record the same document)."""
    return peer.stats()["indices"].get("trace", 0)


def segments(d, input_name="trace"):
    return sorted(glob.glob(os.path.join(d.dir, "state", input_name, "*", "*.seg")))


class KillTest(unittest.TestCase):
    def test_kill_9_at_random_moments_loses_no_acknowledged_record(self):
        rounds = int(os.environ.get("INGESTD_KILL_ROUNDS", "20"))
        batch = 50
        d = Daemon(STDOUT_DISK.format(fsync="never", batch=batch))
        self.addCleanup(d.kill)
        rng = random.Random(7)
        loader = Loader(lambda: d.port, "k", batch=10)
        seen, counts = set(), {}
        d.start()
        loader.start()
        try:
            for _ in range(rounds):
                # Let some records through, then kill without warning.
                target = loader.seq + rng.randint(50, 400)
                wait_for(lambda: loader.seq >= target, what="load")
                d.kill()
                stdout_ids(d, seen, counts)
                d.start()
        finally:
            loader.stop()
        acked = set(loader.acked)
        self.assertGreater(len(acked), rounds * 50)
        wait_for(lambda: (stdout_ids(d, seen, counts), acked <= seen)[1], timeout=60,
                 what="every acknowledged record delivered after the last restart")
        self.assertEqual(d.stop(), 0, d.log_text())
        stdout_ids(d, seen, counts)
        missing = acked - seen
        self.assertFalse(missing, "acknowledged but never delivered: %s" % sorted(missing)[:10])
        duplicates = sum(c - 1 for c in counts.values())
        # A crash repeats at most the batch in flight when it hit.
        print("kill -9 x%d: %d acknowledged, %d delivered, %d duplicates (bound %d)"
              % (rounds, len(acked), len(seen), duplicates, rounds * batch))
        self.assertLessEqual(duplicates, rounds * batch)
        self.assertIn(200, loader.statuses)
        self.assertFalse(set(loader.statuses) - {0, 200}, loader.statuses)
        # Fully consumed logs of earlier runs were removed.
        self.assertLessEqual(len(glob.glob(os.path.join(d.dir, "state", "trace", "*/"))), 1)


class CorruptionTest(unittest.TestCase):
    def test_corrupt_byte_and_torn_tail_keep_every_intact_record(self):
        # Nothing listens on the first address: every record stays on disk.
        dead = "http://127.0.0.1:9"
        d = Daemon(ES_OUTPUT.format(url=dead, buffer="disk", extra='fsync = "always"'),
                   shutdown_timeout="200ms")
        self.addCleanup(d.kill)
        d.start()
        sent = []
        for b in range(20):
            recs = [{"id": "c-%04d" % (b * 10 + i), "pad": "x" * 40} for i in range(10)]
            self.assertEqual(post(d.port, recs)[0], 200)
            sent += [r["id"] for r in recs]
        self.assertEqual(d.stop(), 0, d.log_text())
        self.assertRegex(d.log_text(), r"200 records stay in the disk buffer")
        segs = segments(d)
        self.assertEqual(len(segs), 1, segs)
        with open(segs[0], "rb") as f:
            data = bytearray(f.read())
        # Flip one byte inside record c-0050 and tear the last record in half.
        at = data.index(b'"c-0050"')
        data[at + 3] ^= 0x20
        last = data.index(b'"c-0199"')
        with open(segs[0], "wb") as f:
            f.write(bytes(data[:last]))

        peer = EsPeer(self)
        d.write_config(d_config_with(d, ES_OUTPUT.format(url=peer.url, buffer="disk",
                                                         extra='fsync = "always"')))
        d.start()
        expected = set(sent) - {"c-0050", "c-0199"}
        wait_for(lambda: ids(peer) >= expected, timeout=30, what="every intact record delivered")
        got = ids(peer)
        self.assertEqual(got, expected)
        log = d.log_text()
        self.assertRegex(log, r"disk buffer .* was damaged; recovered 198 records")
        self.assertRegex(log, r"checksum")
        self.assertRegex(log, r"cut \d+ bytes")
        self.assertEqual(d.stop(), 0, log)


def d_config_with(d, body):
    """The daemon's header (service, listener) with a new body."""
    with open(d.config_path) as f:
        text = f.read()
    return text[:text.index("[inputs.trace]")] + body.lstrip("\n")


class StorageErrorTest(unittest.TestCase):
    def test_unusable_storage_dir_fails_the_start_with_the_path(self):
        d = Daemon(STDOUT_DISK.format(fsync="never", batch=10))
        self.addCleanup(d.kill)
        # storage_dir below a regular file: no directory can be made there.
        with open(os.path.join(d.dir, "state"), "w") as f:
            f.write("not a directory\n")
        d.start(expect_ready=False)
        self.assertEqual(d.proc.wait(30), 1, d.log_text())
        self.assertRegex(d.log_text(), r"disk buffer: cannot create .*/state/trace: Not a directory")

    def test_logs_no_disk_output_reads_are_kept_and_said_at_start(self):
        d = Daemon(STDOUT_DISK.format(fsync="never", batch=10))
        self.addCleanup(d.kill)
        orphan = os.path.join(d.dir, "state", "old_input", "w0-1-1-g1")
        os.makedirs(orphan)
        d.start()
        d.wait_log(r"disk buffer logs in .*/state/old_input are not read: no input 'old_input' "
                   r"routes to a disk output now; they are kept")
        self.assertEqual(d.stop(), 0, d.log_text())
        self.assertTrue(os.path.isdir(orphan))

    def test_max_disk_below_one_mib_is_a_config_error(self):
        d = Daemon(STDOUT_DISK.format(fsync="never", batch=10).replace(
            'buffer = "disk"', 'buffer = "disk"\nmax_disk = "64KiB"'))
        self.addCleanup(d.kill)
        d.start(expect_ready=False)
        self.assertEqual(d.proc.wait(30), 1, d.log_text())
        self.assertRegex(d.log_text(), r"ingestd\.toml:\d+:\d+: .*max_disk")


class OutageTest(unittest.TestCase):
    def outage(self, buffer, extra):
        peer = EsPeer(self)
        d = Daemon(ES_OUTPUT.format(url=peer.url, buffer=buffer, extra=extra))
        self.addCleanup(d.kill)
        d.start()
        peer.control(unavailable_503_probability=1.0)
        loader = Loader(lambda: d.port, buffer, batch=20).start()
        return peer, d, loader

    def recover(self, peer, d, loader):
        loader.stop()
        peer.control(unavailable_503_probability=0.0)
        acked = set(loader.acked)
        wait_for(lambda: stored(peer) >= len(acked), timeout=60, what="the backlog delivered")
        got = ids(peer)
        # Delivered records no longer count against max_memory.
        wait_for(lambda: d.metric("ingestd_output_queue_memory_bytes", output="es") == 0,
                 what="queue memory back to 0")
        self.assertEqual(d.stop(), 0, d.log_text())
        return acked, got

    def test_disk_buffer_takes_everything_while_the_output_is_down(self):
        peer, d, loader = self.outage("disk", 'fsync = "interval"')
        wait_for(lambda: loader.seq >= 3000, timeout=60, what="load during the outage")
        self.assertGreater(peer.stats()["bulk_by_status"].get("503", 0), 0)
        acked, got = self.recover(peer, d, loader)
        self.assertEqual(set(loader.statuses), {200}, loader.statuses)
        self.assertEqual(got, acked)

    def test_memory_buffer_answers_503_when_full_and_drops_nothing(self):
        peer, d, loader = self.outage("memory", "max_records = 500")
        wait_for(lambda: loader.statuses.get(503, 0) >= 20, timeout=60, what="503s once full")
        # 500 parsed records take several times their JSON bytes.
        self.assertGreater(d.metric("ingestd_output_queue_memory_bytes", output="es"),
                           2 * d.metric("ingestd_output_queue_bytes", output="es"))
        acked, got = self.recover(peer, d, loader)
        # Exactly what was acknowledged: nothing lost, nothing from a refused request.
        self.assertEqual(got, acked)
        self.assertFalse(set(loader.statuses) - {200, 503}, loader.statuses)


class MaxDiskTest(unittest.TestCase):
    def test_max_disk_answers_503_then_resumes_when_space_frees(self):
        peer = EsPeer(self)
        d = Daemon(ES_OUTPUT.format(url=peer.url, buffer="disk",
                                    extra='max_disk = "1MiB"\nfsync = "never"'))
        self.addCleanup(d.kill)
        d.start()
        peer.control(unavailable_503_probability=1.0)
        acked = set()
        n = 0
        while True:
            recs = [{"id": "m-%d" % (n + i), "pad": "y" * 60} for i in range(50)]
            n += 50
            status, headers = post(d.port, recs)
            if status == 503:
                break
            self.assertEqual(status, 200)
            acked.update(r["id"] for r in recs)
            self.assertLess(n, 100000, "max_disk never reached")
        self.assertIn("Retry-After", headers)
        self.assertGreater(len(acked), 1000)
        d.wait_log(r"max_disk reached")
        self.assertGreater(d.metric("ingestd_input_refused_records_total")
                           + d.metric("ingestd_input_shed_requests_total"), 0)
        peer.control(unavailable_503_probability=0.0)

        def accepted_again():
            recs = [{"id": "m-%d" % (n + i), "pad": "y" * 60} for i in range(50)]
            if post(d.port, recs)[0] == 200:
                acked.update(r["id"] for r in recs)
                return True
            return False
        wait_for(accepted_again, timeout=60, interval=0.05, what="ingestion resumed")
        wait_for(lambda: stored(peer) >= len(acked), timeout=60, what="all delivered")
        self.assertEqual(ids(peer), acked)
        self.assertEqual(d.stop(), 0, d.log_text())


RELOAD_BODY = """
[inputs.trace]
plugin = "http"
listener = "public"
path = "/v1/trace"

[filters.mark]
plugin = "modify"
set = {{ variant = "{variant}" }}

[outputs.es]
plugin = "elasticsearch"
hosts = ["{url}"]
index = "trace"
buffer = "disk"
fsync = "never"
flush_interval = "20ms"
id_field = "id"

[outputs.console]
plugin = "null"

[[routes]]
match = "trace"
filters = {filters}
to = {to}
"""


class ReloadStormTest(unittest.TestCase):
    def test_sighup_every_200ms_under_load_loses_nothing(self):
        seconds = float(os.environ.get("INGESTD_RELOAD_STORM_SECONDS", "30"))
        peer = EsPeer(self)
        variants = [
            dict(variant="a", filters='["mark"]', to='["es"]'),
            dict(variant="b", filters="[]", to='["es", "console"]'),
        ]
        body = [RELOAD_BODY.format(url=peer.url, **v) for v in variants]
        d = Daemon(body[0], workers=2, shutdown_timeout="5s")
        self.addCleanup(d.kill)
        d.start()
        port = d.port
        header = d_config_with(d, "")
        loader = Loader(lambda: port, "r", batch=10, threads=3).start()
        reloads = 0
        deadline = time.monotonic() + seconds
        try:
            while time.monotonic() < deadline:
                time.sleep(0.2)  # the cadence under test, not a wait for a condition
                reloads += 1
                d.write_config(header + body[reloads % 2].lstrip("\n"))
                d.signal(signal.SIGHUP)
        finally:
            loader.stop()
        wait_for(lambda: d.metric("ingestd_reloads_total") >= reloads * 0.5, timeout=30,
                 what="reloads applied")
        acked = set(loader.acked)
        wait_for(lambda: stored(peer) >= len(acked), timeout=60, what="every acknowledged record delivered")
        got = ids(peer)
        print("SIGHUP x%d in %.0fs: %d reloads applied, %d requests, %d records acknowledged"
              % (reloads, seconds, d.metric("ingestd_reloads_total"),
                 sum(loader.statuses.values()), len(acked)))
        self.assertEqual(set(loader.statuses), {200}, loader.statuses)
        self.assertEqual(got, acked)
        self.assertEqual(d.metric("ingestd_reload_failures_total"), 0)
        self.assertEqual(d.stop(), 0, d.log_text())
        # Logs of retired generations were adopted, read and removed.
        left = glob.glob(os.path.join(d.dir, "state", "trace", "*/"))
        self.assertLessEqual(len(left), 2, left)


class SigtermTest(unittest.TestCase):
    def test_sigterm_under_load_answers_in_flight_requests_and_keeps_the_rest(self):
        # The output is down: what was accepted must stay on disk for the next start.
        peer = EsPeer(self)
        d = Daemon(ES_OUTPUT.format(url=peer.url, buffer="disk", extra='fsync = "always"'),
                   shutdown_timeout="1s")
        self.addCleanup(d.kill)
        d.start()
        peer.control(unavailable_503_probability=1.0)
        port = d.port
        loader = Loader(lambda: port, "t", batch=10, threads=4).start()
        wait_for(lambda: len(loader.acked) >= 500, timeout=60, what="load")
        d.signal(signal.SIGTERM)
        self.assertEqual(d.proc.wait(30), 0, d.log_text())
        loader.stop()
        # Requests that reached a worker were answered: every failure is a
        # connection the closed listener refused, never an error status.
        self.assertFalse(set(loader.statuses) - {0, 200}, loader.statuses)
        self.assertRegex(d.log_text(), r"records stay in the disk buffer")
        acked = set(loader.acked)
        peer.control(unavailable_503_probability=0.0)
        d.start()
        wait_for(lambda: stored(peer) >= len(acked), timeout=60,
                 what="the kept records delivered after the restart")
        self.assertEqual(ids(peer), acked)
        self.assertEqual(d.stop(), 0, d.log_text())
        self.assertFalse(re.search(r"\[error\]", d.log_text()), d.log_text())


if __name__ == "__main__":
    unittest.main()
