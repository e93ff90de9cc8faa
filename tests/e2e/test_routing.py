"""Routes: fan-out, filters on a copy, unrouted records, all-or-nothing 503."""

import json
import unittest

from harness import Daemon, wait_for

FANOUT = """
[inputs.trace]
plugin = "http"
listener = "public"
path = "/v1/trace"

[inputs.logs]
plugin = "http"
listener = "public"
path = "/v1/metadata"

[outputs.console]
plugin = "stdout"
flush_interval = "10ms"

[outputs.sink]
plugin = "stdout"
flush_interval = "10ms"

[filters.stamp]
plugin = "modify"
set = { env = "test" }
remove = ["secret"]
rename = { lat = "latitude" }
received_at = "received_at"

[[routes]]
match = "tr*"
to = ["sink"]

[[routes]]
match = "trace"
filters = ["stamp"]
to = ["console"]
"""


class FanOutTest(unittest.TestCase):
    def setUp(self):
        self.d = Daemon(FANOUT).start()

    def tearDown(self):
        self.assertEqual(self.d.stop(), 0, self.d.log_text())

    def test_filter_changes_only_its_route_and_fan_out_reaches_both(self):
        rec = {"device_id": "d1", "lat": 1.5, "secret": "x"}
        status, body, _ = self.d.post("/v1/trace", rec)
        self.assertEqual(status, 200, body)
        # Both outputs print: the unfiltered route's copy must be the record
        # exactly as sent, whatever the filtered route did to its own.
        got = [self.d.next_record(), self.d.next_record()]
        plain = [r for r in got if "env" not in r]
        self.assertEqual(plain, [rec])
        out = [r for r in got if "env" in r][0]
        self.assertEqual(out["latitude"], 1.5)
        self.assertEqual(out["env"], "test")
        self.assertNotIn("secret", out)
        self.assertIsInstance(out["received_at"], int)
        wait_for(lambda: self.d.metric("ingestd_output_records_total", output="sink") == 1,
                 what="sink output count")
        self.assertEqual(self.d.metric("ingestd_route_records_total", route="0"), 1)
        self.assertEqual(self.d.metric("ingestd_route_records_total", route="1"), 1)

    def test_unrouted_records_are_counted_and_logged_once(self):
        for _ in range(2):
            status, _, _ = self.d.post("/v1/metadata", {"m": 1})
            self.assertEqual(status, 200)
        wait_for(lambda: self.d.metric("ingestd_records_unrouted_total", input="logs") == 2,
                 what="unrouted counter")
        self.d.wait_log(r"match no route")
        self.assertEqual(self.d.log_text().count("match no route"), 1)


FULL = """
[inputs.trace]
plugin = "http"
listener = "public"
path = "/v1/trace"

[outputs.console]
plugin = "stdout"
max_records = 5
batch_max_records = 1
flush_interval = "1ms"

[outputs.sink]
plugin = "null"

[[routes]]
match = "trace"
to = ["console", "sink"]
"""


class QueueFullTest(unittest.TestCase):
    def test_full_queue_answers_503_and_enqueues_nothing_anywhere(self):
        # Nobody reads the daemon's stdout: the pipe fills, the stdout output
        # stalls without blocking the loop, its queue fills, phones get 503.
        d = Daemon(FULL, read_stdout=False).start()
        try:
            big = {"device_id": "x", "pad": "p" * 8000}
            accepted = 0
            answer = None
            for _ in range(200):
                status, body, headers = d.post("/v1/trace", big)
                if status == 503:
                    answer = (body, headers)
                    break
                self.assertEqual(status, 200, body)
                accepted += 1
            self.assertIsNotNone(answer, "never got 503 with a stalled output")
            self.assertEqual(answer[1].get("Retry-After"), "1")
            self.assertIn("queue full", json.loads(answer[0])["error"])
            # The refused request reached neither output: the null output saw
            # exactly the accepted ones.
            wait_for(lambda: d.metric("ingestd_output_records_total", output="sink") == accepted,
                     what="sink count")
            # The queue was already full: refused before its body was parsed.
            self.assertEqual(d.metric("ingestd_input_shed_requests_total", input="trace"), 1)
            self.assertEqual(d.metric("ingestd_input_refused_records_total", input="trace"), 0)
            # The loop is not blocked: admin and other requests still answer.
            self.assertEqual(d.admin_get("/healthz")[0], 200)
        finally:
            d.kill()


class GlobalMemoryTest(unittest.TestCase):
    def test_service_max_memory_bounds_all_queues_together(self):
        # Each output alone would take the records; together they pass the
        # global budget, so the daemon answers 503 and keeps nothing of it.
        cfg = FULL.replace("max_records = 5\n", "max_records = 100000\n")
        d = Daemon(cfg, read_stdout=False)
        with open(d.config_path) as f:
            text = f.read().replace("[service]\n", "[service]\nmax_memory = \"200KiB\"\n", 1)
        d.write_config(text)
        d.start()
        try:
            big = {"device_id": "x", "pad": "p" * 8000}
            statuses = [d.post("/v1/trace", big)[0] for _ in range(40)]
            self.assertIn(503, statuses)
            self.assertEqual(set(statuses), {200, 503})
            accepted = statuses.count(200)
            # ~16 KB a request (two outputs): about 200 KiB / 16 KB requests fit.
            self.assertLess(accepted, 20)
            wait_for(lambda: d.metric("ingestd_output_records_total", output="sink") == accepted,
                     what="sink count")
        finally:
            d.kill()


if __name__ == "__main__":
    unittest.main()
