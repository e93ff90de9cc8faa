"""SIGHUP reloads (and keeps the old config when the new one is bad); SIGTERM drains."""

import json
import signal
import unittest

from harness import BASE_CONFIG, Daemon, wait_for

ROUTE_TO = """
[inputs.trace]
plugin = "http"
listener = "public"
path = "/v1/trace"

[outputs.console]
plugin = "stdout"
flush_interval = "{flush}"

[filters.mark]
plugin = "modify"
set = {{ generation = "{mark}" }}

[[routes]]
match = "trace"
filters = ["mark"]
to = ["console"]
"""


class SignalTest(unittest.TestCase):
    def make(self, mark, flush="10ms", **kw):
        return Daemon(ROUTE_TO.format(mark=mark, flush=flush), **kw)

    def rewrite(self, d, mark, flush="10ms", extra=""):
        header = BASE_CONFIG.format(workers=1, dir=d.dir, shutdown_timeout="5s", log_level="info")
        d.write_config(header + ROUTE_TO.format(mark=mark, flush=flush) + extra)

    def test_reload_applies_new_routes_on_the_same_port(self):
        d = self.make("one").start()
        try:
            self.assertEqual(d.post("/v1/trace", {"device_id": "a"})[0], 200)
            self.assertEqual(d.next_record()["generation"], "one")
            port = d.port
            self.rewrite(d, "two")
            d.signal(signal.SIGHUP)
            d.wait_log(r"configuration reloaded \(generation 2\)")
            status, body, _ = d.post("/v1/trace", {"device_id": "b"}, port=port)
            self.assertEqual(status, 200, body)
            self.assertEqual(d.next_record()["generation"], "two")
            wait_for(lambda: d.metric("ingestd_reloads_total") == 1, what="reload counter")
        finally:
            self.assertEqual(d.stop(), 0, d.log_text())

    def test_invalid_reload_keeps_the_running_config(self):
        d = self.make("one").start()
        try:
            self.rewrite(d, "two", extra='\n[outputs.bad]\nplugin = "null"\nunknown_key = 1\n')
            d.signal(signal.SIGHUP)
            d.wait_log(r"reload refused: 1 error")
            self.assertRegex(d.log_text(), r"ingestd\.toml:\d+:\d+: unknown option 'unknown_key'")
            self.assertEqual(d.post("/v1/trace", {"device_id": "c"})[0], 200)
            self.assertEqual(d.next_record()["generation"], "one")
            self.assertEqual(d.metric("ingestd_reload_failures_total"), 1)
        finally:
            self.assertEqual(d.stop(), 0, d.log_text())

    def test_sigterm_flushes_queued_records_and_exits_zero(self):
        # A flush interval far longer than the test: only the shutdown drain
        # can deliver these records.
        d = self.make("drain", flush="1h").start()
        sent = [{"device_id": "q%d" % i} for i in range(20)]
        for r in sent:
            self.assertEqual(d.post("/v1/trace", r)[0], 200)
        self.assertTrue(d.no_more_records())
        self.assertEqual(d.stop(), 0, d.log_text())
        got = [d.next_record(timeout=5)["device_id"] for _ in sent]
        self.assertEqual(got, [r["device_id"] for r in sent])
        self.assertIn("shutting down", d.log_text())

    def test_stalled_output_on_sigterm_readiness_false_then_loss_logged(self):
        # Nobody reads stdout: the drain cannot finish, so the daemon waits
        # shutdown_timeout with /readyz false, then says loudly what it lost.
        d = self.make("stall", shutdown_timeout="2s", read_stdout=False).start()
        pad = "p" * 8000
        for i in range(40):  # well over a pipe buffer
            self.assertEqual(d.post("/v1/trace", {"device_id": "s%d" % i, "pad": pad})[0], 200)
        d.signal(signal.SIGTERM)
        wait_for(lambda: d.admin_get("/readyz")[0] == 503, what="readiness false")
        self.assertEqual(d.proc.wait(30), 0, d.log_text())
        self.assertRegex(d.log_text(), r"\d+ records were not delivered before shutdown and are lost")


if __name__ == "__main__":
    unittest.main()
