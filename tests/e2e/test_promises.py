"""README promises, end to end against the real daemon:

- a slow Elasticsearch never delays the phone's answer;
- 413 for an oversized body: by Content-Length before reading it, chunked,
  and gzip that decompresses beyond max_body_decompressed;
- a 503 keeps nothing of the request anywhere: one output of the route full
  (memory, and a disk buffer at max_disk) while another has room.

(The constant-time API key comparison is measured in core/engine/tests/
api_keys_test.cc: through HTTP the nanoseconds an early exit makes on a real
key are lost in loopback jitter.)"""

import gzip
import json
import os
import time
import unittest

from harness import Daemon, EsPeer, raw_exchange, wait_for


class Case(unittest.TestCase):
    def daemon(self, config, **kw):
        d = Daemon(config, **kw)
        self.addCleanup(d.kill)
        d.start()

        def stop():
            code = d.stop()
            self.assertEqual(code, 0, "exit code %s\n%s" % (code, d.log_text()[-3000:]))
        self.addCleanup(stop)
        return d

    def until_marker(self, d, path="/v1/marker"):
        """Posts a marker to an input routed only to the stdout output and
        returns every record printed before it (the output's queue is FIFO)."""
        marker = os.urandom(8).hex()
        status, body, _ = d.post(path, {"marker": marker})
        self.assertEqual(status, 200, body)
        out = []
        while True:
            rec = d.next_record()
            if rec.get("marker") == marker:
                return out
            out.append(rec)


# ---- a slow Elasticsearch never delays the phone's answer

SLOW_ES = """
[inputs.logs]
plugin = "http"
listener = "public"
path = "/v1/logs"

[outputs.es]
plugin = "elasticsearch"
hosts = ["{url}"]
index = "logs"
flush_interval = "50ms"
batch_max_records = 10

[[routes]]
match = "logs"
to = ["es"]
"""


class SlowElasticsearchTest(Case):
    DELAY = 2.0

    def test_answers_come_back_well_under_the_peer_delay(self):
        peer = EsPeer(self, "--latency", str(self.DELAY))
        d = self.daemon(SLOW_ES.format(url=peer.url))
        self.assertEqual(d.post("/v1/logs", [{"n": -1}])[0], 200)
        # A bulk call is now held by the peer for DELAY seconds.
        wait_for(lambda: peer.stats()["bulk_calls"] >= 1, 20, "a bulk call in flight")
        times = []
        for i in range(40):
            t0 = time.monotonic()
            status, body, _ = d.post("/v1/logs", [{"n": i, "msg": "x" * 50}])
            times.append(time.monotonic() - t0)
            self.assertEqual(status, 200, body)
        # The answers came while bulk calls were being held: the cluster has
        # not answered for these records yet.
        self.assertLess(d.metric("ingestd_elasticsearch_items_created_total") or 0, 41)
        self.assertLess(max(times), self.DELAY / 4, sorted(times)[-5:])
        # And the records do arrive, DELAY late.
        wait_for(lambda: peer.count() >= 41, 60, "41 documents at the peer", interval=0.2)
        self.assertEqual(sorted(g["_source"]["n"] for g in peer.docs()), list(range(-1, 40)))


# ---- 413

LIMITS = """max_body = "1KiB"
max_body_decompressed = "4KiB"

[inputs.trace]
plugin = "http"
listener = "public"
path = "/v1/trace"

[inputs.marker]
plugin = "http"
listener = "public"
path = "/v1/marker"

[outputs.console]
plugin = "stdout"
flush_interval = "10ms"

[[routes]]
match = "*"
to = ["console"]
"""


def status_of(answer):
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    return int(answer[9:12])


class BodyLimitTest(Case):
    def test_oversized_bodies_get_413_and_nothing_is_kept(self):
        d = self.daemon(LIMITS)
        small = json.dumps([{"ok": i} for i in range(10)])
        self.assertLess(len(small), 1024)
        self.assertEqual(d.post("/v1/trace", small)[0], 200)

        # Content-Length above max_body: 413 before the body is read (none is sent).
        head = (b"POST /v1/trace HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 1000000\r\n\r\n")
        answer = raw_exchange(d.port, head, timeout=10)
        self.assertEqual(status_of(answer), 413, answer)
        self.assertIn(b"too large", answer)

        # Just above the cap, sent in full.
        big = json.dumps([{"big": i, "pad": "p" * 40} for i in range(30)])
        self.assertGreater(len(big), 1024)
        self.assertEqual(d.post("/v1/trace", big)[0], 413)

        # Chunked, each chunk small, the total above max_body.
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(c), c)
                          for c in (big[k:k + 200].encode() for k in range(0, len(big), 200)))
        answer = raw_exchange(d.port, b"POST /v1/trace HTTP/1.1\r\nHost: x\r\n"
                              b"Content-Type: application/json\r\n"
                              b"Transfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n")
        self.assertEqual(status_of(answer), 413, answer)

        # gzip: small on the wire, beyond max_body_decompressed inflated.
        bomb = json.dumps([{"gz": i, "pad": "z" * 100} for i in range(100)]).encode()
        self.assertGreater(len(bomb), 4096)
        packed = gzip.compress(bomb)
        self.assertLess(len(packed), 1024)
        status, body, _ = d.post("/v1/trace", packed, {"Content-Encoding": "gzip"})
        self.assertEqual(status, 413, body)
        self.assertIn("decompressed", body)
        # The same encoding under both caps is accepted (the 413 was the size).
        fine = json.dumps([{"gzok": i, "pad": "z" * 100} for i in range(20)]).encode()
        self.assertLess(len(fine), 4096)
        self.assertEqual(d.post("/v1/trace", gzip.compress(fine),
                                {"Content-Encoding": "gzip"})[0], 200)

        got = self.until_marker(d)
        self.assertEqual([r.get("ok", r.get("gzok")) for r in got],
                         list(range(10)) + list(range(20)))
        self.assertGreaterEqual(d.metric("ingestd_http_requests_total", code="413"), 4)


# ---- 503: nothing of the request is kept anywhere

FULL = """
[inputs.trace]
plugin = "http"
listener = "public"
path = "/v1/trace"

[inputs.marker]
plugin = "http"
listener = "public"
path = "/v1/marker"

[outputs.full]
plugin = "elasticsearch"
hosts = ["{url}"]
index = "trace"
id_field = "id"
flush_interval = "20ms"
retry_initial = "20ms"
retry_max = "200ms"
{full}

[outputs.console]
plugin = "stdout"
flush_interval = "10ms"

[[routes]]
match = "trace"
to = ["full", "console"]

[[routes]]
match = "marker"
to = ["console"]
"""


class NothingKeptOn503Test(Case):
    def fill_until_503(self, d, per_request, limit):
        """Posts requests of per_request records until one gets 503; returns
        (ids of accepted records, ids of the refused request)."""
        accepted, n = [], 0
        while True:
            recs = [{"id": "r-%d" % (n + i), "pad": "q" * 60} for i in range(per_request)]
            n += per_request
            status, body, headers = d.post("/v1/trace", recs)
            if status == 503:
                self.assertIn("Retry-After", headers)
                return accepted, [r["id"] for r in recs]
            self.assertEqual(status, 200, body)
            accepted += [r["id"] for r in recs]
            self.assertLess(n, limit, "the full output never refused")

    def check(self, d, peer, per_request, limit):
        accepted, refused = self.fill_until_503(d, per_request, limit)
        self.assertTrue(accepted)
        # The output with room (console) got the accepted requests' records
        # and none of the refused one's.
        printed = [r["id"] for r in self.until_marker(d)]
        self.assertEqual(printed, accepted)
        self.assertFalse(set(refused) & set(printed))
        # The full output kept none of them either: once its cluster answers,
        # exactly the accepted records arrive.
        peer.control(unavailable_503_probability=0.0)
        wait_for(lambda: peer.count() >= len(accepted), 60, "the accepted records at the peer",
                 interval=0.1)
        stored = {g["_id"] for g in peer.docs()}
        self.assertEqual(stored, set(accepted))
        self.assertFalse(set(refused) & stored)

    def test_memory_output_full_and_memory_output_with_room(self):
        peer = EsPeer(self)
        peer.control(unavailable_503_probability=1.0)
        d = self.daemon(FULL.format(url=peer.url, full="max_records = 8"))
        self.check(d, peer, per_request=3, limit=1000)

    def test_disk_output_at_max_disk_and_memory_output_with_room(self):
        peer = EsPeer(self)
        peer.control(unavailable_503_probability=1.0)
        d = self.daemon(FULL.format(url=peer.url, full='buffer = "disk"\nmax_disk = "1MiB"\n'
                                    'fsync = "never"\nbatch_max_records = 200'))
        self.check(d, peer, per_request=50, limit=200000)
        d.wait_log(r"max_disk reached")

    def test_body_refused_before_it_is_decoded(self):
        # Under overload a gzip body is refused unread: a corrupt one gets the
        # 503, not the 400 that inflating it would give, so a refused request
        # costs no inflating. Nor does one for a path without an input.
        peer = EsPeer(self)
        peer.control(unavailable_503_probability=1.0)
        d = self.daemon(FULL.format(url=peer.url, full="max_records = 8"))
        self.fill_until_503(d, per_request=3, limit=1000)
        corrupt = b"\x1f\x8b\x08\x00" + b"not a deflate stream" * 4
        gz = {"Content-Encoding": "gzip"}
        status, body, _ = d.post("/v1/trace", corrupt, gz)
        self.assertEqual(status, 503, body)
        self.assertEqual(d.post("/v1/nowhere", corrupt, gz)[0], 404)
        # With room again the same body is decoded, and refused for what it is.
        peer.control(unavailable_503_probability=0.0)
        wait_for(lambda: d.post("/v1/trace", corrupt, gz)[0] != 503, 60, "room in the queue",
                 interval=0.1)
        status, body, _ = d.post("/v1/trace", corrupt, gz)
        self.assertEqual((status, json.loads(body)), (400, {"error": "invalid gzip body"}))


if __name__ == "__main__":
    unittest.main()
