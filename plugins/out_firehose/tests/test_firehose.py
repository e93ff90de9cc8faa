"""firehose output against the local Firehose peer (tests/peers/firehose_peer.py),
which verifies every SigV4 signature with botocore and injects faults.

http input -> firehose output -> peer; records are checked by content through
the peer's GET /_records.
"""

import json
import os
import sys
import time
import unittest

from harness import Daemon, PeerScript, run_ingestd, wait_for

REGION = "eu-west-1"
STREAM = "trace"
AKID, SECRET = "AKIDFIREHOSETEST", "firehose-test-secret"

CONFIG = """
[inputs.trace]
plugin = "http"
listener = "public"
path = "/v1/trace"

[outputs.fh]
plugin = "firehose"
region = "{region}"
stream = "{stream}"
endpoint = "http://127.0.0.1:{port}"
aws_access_key_id = "{akid}"
aws_secret_access_key = "{secret}"
aggregate = {aggregate}
record_max_bytes = "{record_max}"
flush_interval = "20ms"
batch_max_records = 5000
max_records = 1000000
max_memory = "512MiB"
retry_initial = "50ms"
retry_max = "{retry_max}"
bytes_per_second = "0"
max_calls_inflight = 4

[[routes]]
match = "trace"
to = ["fh"]
"""


class Peer(PeerScript):
    """firehose_peer.py on a free port; stopped with SIGTERM."""

    def __init__(self, *extra):
        super().__init__("firehose_peer.py",
                         ["--port", "0", "--region", REGION, "--stream", STREAM,
                          "--credentials", "%s:%s" % (AKID, SECRET)] + list(extra),
                         what="firehose peer")

    def control(self, **fields):
        return self.call("POST", "/_control", fields)

    def reset(self):
        return self.call("POST", "/_reset", {"faults": True})

    def records(self):
        return self.call("GET", "/_records?stream=%s&as=text" % STREAM)

    def lines(self):
        """Every NDJSON line the stream received, in arrival order."""
        out = []
        for data in self.records()["records"]:
            self_check = data.endswith("\n")
            assert self_check, "a Firehose record does not end with a newline: %r" % data[-40:]
            out.extend(data[:-1].split("\n"))
        return out

    def stats(self):
        return self.call("GET", "/_stats")


def make_records(start, n):
    # ~100-byte GPS-like fixes, distinct by "i".
    return [{"i": i, "device_id": "rider-%06d" % (i % 5000), "lat": 37.5 + i * 1e-6,
             "lon": 127.0, "ts": 1764000000000 + i, "speed": i % 40} for i in range(start, start + n)]


def post_all(d, records, per_body=2500):
    for k in range(0, len(records), per_body):
        chunk = records[k:k + per_body]
        body = "\n".join(json.dumps(r, separators=(",", ":")) for r in chunk) + "\n"
        for _ in range(200):
            status, text, _ = d.post("/v1/trace", body, {"Content-Type": "application/x-ndjson"})
            if status != 503:
                break
            time.sleep(0.05)
        assert status == 200, "%s %s" % (status, text[:200])


class FirehoseTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.peer = Peer()

    @classmethod
    def tearDownClass(cls):
        cls.peer.stop()

    def setUp(self):
        self.peer.reset()
        self.daemon = None

    def tearDown(self):
        if self.daemon:
            code = self.daemon.stop()
            self.assertEqual(code, 0, "exit code %s\n%s" % (code, self.daemon.log_text()))

    def start(self, aggregate=False, secret=SECRET, record_max="1000KiB", retry_max="1s"):
        self.daemon = Daemon(CONFIG.format(region=REGION, stream=STREAM, port=self.peer.port,
                                           akid=AKID, secret=secret,
                                           aggregate="true" if aggregate else "false",
                                           record_max=record_max, retry_max=retry_max)).start()
        return self.daemon

    def wait_records(self, n, timeout=60):
        wait_for(lambda: self.peer.stats()["streams"][STREAM]["record_count"] >= n or None,
                 timeout, "Firehose records")

    def wait_lines(self, n, timeout=60):
        def enough():
            lines = self.peer.lines()
            return lines if len(lines) >= n else None
        return wait_for(enough, timeout, "%d lines at the peer" % n, interval=0.2)

    def deliver_100k(self, aggregate):
        d = self.start(aggregate=aggregate)
        self.peer.control(fail_probability=0.05, seed=7)
        sent = make_records(0, 100000)
        post_all(d, sent)
        lines = self.wait_lines(len(sent), timeout=120)
        got = {}
        for line in lines:
            r = json.loads(line)
            got[r["i"]] = got.get(r["i"], 0) + 1
        self.assertEqual(set(got), set(range(len(sent))), "records missing at the peer")
        dup = sorted(i for i, n in got.items() if n > 1)
        self.assertEqual(dup[:20], [], "%d records arrived more than once (partial retries "
                                       "must resend exactly the failed entries)" % len(dup))
        self.assertEqual(len(lines), len(sent))
        # Content: every line is exactly the record as sent (compact JSON).
        want = {r["i"]: json.dumps(r, separators=(",", ":")) for r in sent}
        for line in lines:
            self.assertEqual(line, want[json.loads(line)["i"]])
        s = self.peer.records()
        stats = {"record_count": s["record_count"], "calls": s["calls"],
                 "billed": s["billed_5kb_units"], "failed": s["failed"],
                 "lines": sorted(set(lines))}
        self.assertGreater(s["failed"], 0, "no failures were injected")
        self.assertGreater(d.metric("ingestd_firehose_failed_records_service_unavailable_total"), 0)
        self.assertEqual(d.metric("ingestd_firehose_records_total"), len(lines))
        return stats

    def test_100k_records_with_5pct_failures_aggregate_off_and_on(self):
        off = self.deliver_100k(aggregate=False)
        self.daemon.stop()
        self.daemon = None
        self.peer.reset()
        on = self.deliver_100k(aggregate=True)
        # The same NDJSON either way.
        self.assertEqual(off["lines"], on["lines"])
        # Unpacked: one Firehose record and one billed unit per line.
        self.assertGreaterEqual(off["record_count"], 100000)
        self.assertGreaterEqual(off["billed"], 100000)
        # Packed: at least two orders of magnitude fewer records and units.
        self.assertLess(on["record_count"] * 100, off["record_count"], (on, off))
        self.assertLess(on["billed"] * 20, off["billed"])
        self.assertLess(on["calls"], off["calls"])
        print("\n  unpacked: %d records, %d billed units, %d calls; packed: %d records, "
              "%d billed units, %d calls" % (off["record_count"], off["billed"], off["calls"],
                                             on["record_count"], on["billed"], on["calls"]),
              file=sys.stderr)

    def test_small_record_max_bytes_packs_to_the_limit(self):
        d = self.start(aggregate=True, record_max="5KiB")
        post_all(d, make_records(0, 2000))
        lines = self.wait_lines(2000)
        self.assertEqual(len(lines), 2000)
        for data in self.peer.records()["records"]:
            self.assertLessEqual(len(data.encode()), 5120)
        s = self.peer.records()
        # ~100-byte lines: ~50 per 5 KB record, each billed one unit.
        self.assertEqual(s["billed_5kb_units"], s["record_count"])
        self.assertLess(s["record_count"], 2000 // 30)

    def test_whole_call_service_unavailable_backs_off_and_recovers(self):
        self.peer.control(throttle_next_calls=3, error_type_style="qualified")
        d = self.start()
        post_all(d, make_records(0, 1000))
        lines = self.wait_lines(1000, timeout=30)
        self.assertEqual(sorted(json.loads(x)["i"] for x in lines), list(range(1000)))
        self.assertEqual(self.peer.stats()["errors"].get("ServiceUnavailableException"), 3)
        self.assertEqual(d.metric("ingestd_firehose_call_errors_throttled_total"), 3)
        self.assertIn("ServiceUnavailableException", d.log_text())

    def test_internal_failure_is_retried(self):
        self.peer.control(internal_failure_next_calls=2)
        d = self.start()
        post_all(d, make_records(0, 300))
        lines = self.wait_lines(300, timeout=30)
        self.assertEqual(sorted(json.loads(x)["i"] for x in lines), list(range(300)))
        self.assertEqual(d.metric("ingestd_firehose_call_errors_transient_total"), 2)

    def test_wrong_secret_keeps_data_queued_logs_once_then_delivers_when_fixed(self):
        d = self.start(secret="not-the-secret", retry_max="200ms")
        post_all(d, make_records(0, 500))
        wait_for(lambda: (d.metric("ingestd_firehose_call_errors_auth_total") or 0) >= 5,
                 20, "several rejected attempts")
        self.assertEqual(self.peer.stats()["streams"][STREAM]["record_count"], 0)
        self.assertEqual(d.log_text().count("credentials rejected"), 1, d.log_text())
        self.assertIn("InvalidSignatureException", d.log_text())
        # The same key now has this secret: the queued data goes out.
        self.peer.control(add_credentials=["%s:not-the-secret" % AKID])
        lines = self.wait_lines(500, timeout=30)
        self.assertEqual(sorted(json.loads(x)["i"] for x in lines), list(range(500)))

    def test_missing_stream_is_a_configuration_error_not_a_spin(self):
        self.peer.control(remove_streams=[STREAM])
        try:
            d = self.start(retry_max="300ms")
            post_all(d, make_records(0, 50))
            wait_for(lambda: (d.metric("ingestd_firehose_call_errors_config_total") or 0) >= 2,
                     20, "rejected attempts")
            time.sleep(1.0)
            calls = d.metric("ingestd_firehose_calls_total")
            self.assertLess(calls, 20, "the output spins on a permanent error")
            self.assertEqual(d.log_text().count("ResourceNotFoundException"), 1, d.log_text())
        finally:
            self.peer.control(add_streams=[STREAM])
        self.wait_lines(50, timeout=30)

    def test_peer_latency_does_not_delay_http_answers(self):
        self.peer.control(latency=2.0)
        d = self.start()
        t0 = time.monotonic()
        post_all(d, make_records(0, 100), per_body=100)
        self.assertLess(time.monotonic() - t0, 1.0)
        self.wait_lines(100, timeout=30)

    def test_bad_stream_name_fails_the_config_check(self):
        d = Daemon(CONFIG.format(region=REGION, stream="bad name", port=1, akid=AKID,
                                 secret=SECRET, aggregate="false", record_max="1000KiB",
                                 retry_max="1s"))
        code, _, err = run_ingestd(["-t", "-c", d.config_path, "--plugins-dir",
                                    os.environ.get("INGESTD_PLUGINS", "")])
        self.assertEqual(code, 1, err)
        self.assertIn("delivery stream name", err)


if __name__ == "__main__":
    unittest.main()
