"""POST JSON to the real daemon and read the records back from the stdout output."""

import json
import unittest

from harness import Daemon, raw_exchange, wait_for

CONFIG = """
[inputs.trace]
plugin = "http"
listener = "public"
path = "/v1/trace"

[outputs.console]
plugin = "stdout"
flush_interval = "10ms"

[[routes]]
match = "trace"
to = ["console"]
"""


class IngestTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = Daemon(CONFIG).start()

    @classmethod
    def tearDownClass(cls):
        code = cls.d.stop()
        assert code == 0, "exit code %s\n%s" % (code, cls.d.log_text())

    def test_object_comes_out_as_one_json_line(self):
        rec = {"device_id": "d1", "lat": 37.5, "lon": 127.0}
        status, body, _ = self.d.post("/v1/trace", rec)
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body), {"accepted": 1})
        self.assertEqual(self.d.next_record(), rec)

    def test_numbers_are_kept_exactly_as_sent(self):
        raw = '{"device_id":"n","lat":37.500000000000001,"big":12345678901234567890,"e":1E5}'
        status, body, _ = self.d.post("/v1/trace", raw)
        self.assertEqual(status, 200, body)
        line = self.d.records.get(timeout=20)
        self.assertEqual(line, raw)

    def test_array_and_ndjson_bodies(self):
        recs = [{"device_id": "a%d" % i, "i": i} for i in range(5)]
        status, body, _ = self.d.post("/v1/trace", recs)
        self.assertEqual((status, json.loads(body)), (200, {"accepted": 5}))
        self.assertEqual([self.d.next_record() for _ in recs], recs)
        nd = "\n".join(json.dumps(r) for r in recs) + "\n"
        status, body, _ = self.d.post("/v1/trace", nd, {"Content-Type": "application/x-ndjson"})
        self.assertEqual((status, json.loads(body)), (200, {"accepted": 5}))
        self.assertEqual([self.d.next_record() for _ in recs], recs)

    def test_non_objects_are_rejected_with_their_index(self):
        status, body, _ = self.d.post("/v1/trace", "[1,2,3]")
        self.assertEqual(status, 400, body)
        answer = json.loads(body)
        self.assertEqual(answer["accepted"], 0)
        self.assertEqual([r["index"] for r in answer["rejected"]], [0, 1, 2])
        self.assertTrue(all("not an object" in r["reason"] for r in answer["rejected"]))

    def test_valid_records_of_a_mixed_body_are_accepted(self):
        status, body, _ = self.d.post("/v1/trace", '[{"device_id":"ok1"}, 7, {"device_id":"ok2"}]')
        self.assertEqual(status, 200, body)
        answer = json.loads(body)
        self.assertEqual(answer["accepted"], 2)
        self.assertEqual(answer["rejected_count"], 1)
        self.assertEqual(answer["rejected"][0]["index"], 1)
        self.assertEqual(self.d.next_record(), {"device_id": "ok1"})
        self.assertEqual(self.d.next_record(), {"device_id": "ok2"})

    def test_invalid_json_is_a_400_that_says_where(self):
        status, body, _ = self.d.post("/v1/trace", '{"device_id": "x",}')
        self.assertEqual(status, 400, body)
        self.assertIn("invalid JSON", json.loads(body)["error"])
        status, body, _ = self.d.post("/v1/trace", "")
        self.assertEqual(status, 400, body)

    def test_unknown_path_and_wrong_method(self):
        status, body, _ = self.d.post("/v1/nope", {"a": 1})
        self.assertEqual(status, 404, body)
        self.assertIn("/v1/nope", json.loads(body)["error"])
        status, body, headers = self.d.request("GET", "/v1/trace")
        self.assertEqual(status, 405, body)
        self.assertIn("POST", headers.get("Allow", ""))

    def test_pipelined_requests_get_one_answer_each_in_order(self):
        req = b""
        for i in range(3):
            payload = json.dumps({"device_id": "p%d" % i}).encode()
            req += (b"POST /v1/trace HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(payload), payload))
        req += b"GET /v1/nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        out = raw_exchange(self.d.port, req)
        statuses = [int(s) for s in __import__("re").findall(rb"HTTP/1\.1 (\d{3})", out)]
        self.assertEqual(statuses, [200, 200, 200, 404], out)
        self.assertEqual([self.d.next_record()["device_id"] for _ in range(3)], ["p0", "p1", "p2"])

    def test_garbage_does_not_hurt_the_worker(self):
        out = raw_exchange(self.d.port, b"\x00\x01NOT HTTP AT ALL\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 400"), out)
        status, _, _ = self.d.post("/v1/trace", {"device_id": "after-garbage"})
        self.assertEqual(status, 200)
        self.assertEqual(self.d.next_record(), {"device_id": "after-garbage"})

    def test_metrics_count_records_and_statuses(self):
        # A daemon of its own: the class's shared one has served other tests'
        # requests, whose 200s and records would count here.
        d = Daemon(CONFIG).start()
        try:
            for i in range(4):
                self.assertEqual(d.post("/v1/trace", {"device_id": "m%d" % i})[0], 200)
            self.assertEqual(d.post("/v1/trace", "[1]")[0], 400)
            self.assertEqual([d.next_record()["device_id"] for _ in range(4)],
                             ["m0", "m1", "m2", "m3"])
            wait_for(lambda: d.metric("ingestd_input_records_total", input="trace") == 4,
                     what="input counter == 4")
            wait_for(lambda: d.metric("ingestd_output_records_total", output="console") == 4,
                     what="output counter == 4")
            wait_for(lambda: d.metric("ingestd_http_requests_total", code="200") == 4,
                     what="four 200s")
            self.assertEqual(d.metric("ingestd_http_requests_total", code="400"), 1)
            self.assertEqual(d.metric("ingestd_input_records_total", input="trace"), 4)
            self.assertEqual(d.metric("ingestd_output_records_total", output="console"), 4)
        finally:
            code = d.stop()
        self.assertEqual(code, 0, d.log_text())

    def test_admin_health_and_readiness(self):
        self.assertEqual(self.d.admin_get("/healthz"), (200, '{"status":"ok"}'))
        self.assertEqual(self.d.admin_get("/readyz")[0], 200)
        self.assertEqual(self.d.admin_get("/nope")[0], 404)


if __name__ == "__main__":
    unittest.main()
