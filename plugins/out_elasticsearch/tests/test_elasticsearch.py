"""The elasticsearch output against tests/peers/es_peer.py: exactly-once delivery
under per-item 429s, dead letters with ES's reason, gzip, basic / ApiKey /
SigV4 auth, 413 splitting, whole-request 429/503 backoff, dated indices,
failover between two peers, and a clean stop with a bulk call in flight.

Every peer and daemon started here is stopped in a cleanup; waits poll a
condition with a deadline (harness.wait_for)."""

import base64
import datetime
import json
import os
import time
import unittest

from harness import PLUGINS, SOURCE, Daemon, EsPeer, run_ingestd, wait_for

AK, SK = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

# ---- the documented id: MurmurHash3 x64 128, seed 0, of the compact JSON,
# as 32 hex digits (h1 then h2). Written out here independently of the C++.
M64 = (1 << 64) - 1


def _rotl(x, r):
    return ((x << r) | (x >> (64 - r))) & M64


def _fmix(k):
    k ^= k >> 33
    k = (k * 0xff51afd7ed558ccd) & M64
    k ^= k >> 33
    k = (k * 0xc4ceb9fe1a85ec53) & M64
    return k ^ (k >> 33)


def murmur3_id(data):
    c1, c2 = 0x87c37b91114253d5, 0x4cf5ad432745937f
    h1 = h2 = 0
    n = len(data) // 16
    for i in range(n):
        k1 = int.from_bytes(data[16 * i:16 * i + 8], "little")
        k2 = int.from_bytes(data[16 * i + 8:16 * i + 16], "little")
        k1 = (_rotl((k1 * c1) & M64, 31) * c2) & M64
        h1 ^= k1
        h1 = (_rotl(h1, 27) + h2) & M64
        h1 = (h1 * 5 + 0x52dce729) & M64
        k2 = (_rotl((k2 * c2) & M64, 33) * c1) & M64
        h2 ^= k2
        h2 = (_rotl(h2, 31) + h1) & M64
        h2 = (h2 * 5 + 0x38495ab5) & M64
    tail = data[16 * n:]
    k1 = int.from_bytes(tail[:8], "little")
    k2 = int.from_bytes(tail[8:], "little")
    if len(tail) > 8:
        h2 ^= (_rotl((k2 * c2) & M64, 33) * c1) & M64
    if len(tail) > 0:
        h1 ^= (_rotl((k1 * c1) & M64, 31) * c2) & M64
    h1 ^= len(data)
    h2 ^= len(data)
    h1 = (h1 + h2) & M64
    h2 = (h2 + h1) & M64
    h1, h2 = _fmix(h1), _fmix(h2)
    h1 = (h1 + h2) & M64
    h2 = (h2 + h1) & M64
    return "%016x%016x" % (h1, h2)


def compact(doc):
    return json.dumps(doc, separators=(",", ":")).encode()


def es_config(hosts, extra="", route_match="logs", workers_extra=""):
    return """
[inputs.logs]
plugin = "http"
listener = "public"
path = "/v1/logs"

[outputs.es]
plugin = "elasticsearch"
hosts = [%s]
index = "logs"
flush_interval = "100ms"
retry_initial = "50ms"
retry_max = "1s"
max_records = 300000
max_memory = "512MiB"
%s
%s
[[routes]]
match = "%s"
to = ["es"]
""" % (", ".join('"%s"' % h for h in hosts), extra, workers_extra, route_match)


def post_all(d, docs, per_post=2000):
    """POSTs docs as JSON arrays; a 503 (queue full) is retried."""
    for i in range(0, len(docs), per_post):
        body = json.dumps(docs[i:i + per_post])
        deadline = time.monotonic() + 60
        while True:
            status, text, _ = d.post("/v1/logs", body)
            if status == 200:
                break
            assert status == 503 and time.monotonic() < deadline, (status, text)
            time.sleep(0.2)


def d_config_text(d):
    with open(d.config_path) as f:
        return f.read()


def dead_letters(d):
    path = os.path.join(d.dir, "state", "dead-letter.ndjson")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


class ElasticsearchOutputTest(unittest.TestCase):

    def daemon(self, config, **kw):
        d = Daemon(config, **kw).start()

        def stop():
            code = d.stop()
            self.assertEqual(code, 0, "ingestd exit code %s\n%s" % (code, d.log_text()[-4000:]))
        self.addCleanup(stop)
        return d

    def wait_count(self, peer, n, timeout=60, d=None):
        try:
            wait_for(lambda: peer.count() >= n, timeout, "%d documents in the peer" % n,
                     interval=0.2)
        except AssertionError:
            raise AssertionError("peer has %d of %d documents\n%s"
                                 % (peer.count(), n, d.log_text()[-3000:] if d else ""))

    # ---- exactly once under per-item 429s
    def test_100k_documents_with_item_429s_arrive_exactly_once(self):
        peer = EsPeer(self, "--item-429-every-n", "7")
        d = self.daemon(es_config([peer.url]), workers=2)
        docs = [{"seq": i, "device_id": "rider-%04d" % (i % 1000), "lvl": "info",
                 "msg": "tick %d" % i} for i in range(100000)]
        post_all(d, docs, per_post=5000)
        self.wait_count(peer, 100000, timeout=120, d=d)
        got = peer.docs()
        self.assertEqual(len(got), 100000)
        seqs = sorted(g["_source"]["seq"] for g in got)
        self.assertEqual(seqs, list(range(100000)))
        self.assertTrue(all(g["_version"] == 1 for g in got))
        # The documented content id.
        by_seq = {g["_source"]["seq"]: g for g in got}
        for i in (0, 1, 777, 99999):
            self.assertEqual(by_seq[i]["_id"], murmur3_id(compact(docs[i])))
            self.assertEqual(by_seq[i]["_source"], docs[i])
        stats = peer.stats()
        # Every answer was filtered to statuses and errors (filter_path), and
        # per-item retries still found their documents.
        self.assertEqual(stats["filtered_responses"], stats["bulk_calls"])
        self.assertGreater(stats["items_by_status"].get("429", 0), 10000)
        self.assertGreaterEqual(d.metric("ingestd_elasticsearch_items_retried_total"),
                                stats["items_by_status"]["429"])
        self.assertEqual(d.metric("ingestd_elasticsearch_items_created_total"), 100000)
        # No needless resends: only the 429'd items went again. A document sent
        # again after it was created would be a 409 (create with a content id).
        self.assertEqual(stats["items_by_status"].get("201"), 100000, stats["items_by_status"])
        self.assertEqual(stats["items_by_status"].get("409", 0), 0, stats["items_by_status"])
        self.assertEqual(d.metric("ingestd_elasticsearch_items_conflict_total"), 0)
        self.assertEqual(sum(stats["items_by_status"].values()),
                         100000 + stats["items_by_status"]["429"])
        self.assertEqual(dead_letters(d), [])

    # ---- dead letters with the cluster's reason
    def test_mapping_errors_go_to_the_dead_letter_file(self):
        peer = EsPeer(self, "--mapping", "logs*:speed=long")
        d = self.daemon(es_config([peer.url]))
        docs = [{"seq": i, "speed": "fast" if i % 10 == 3 else i} for i in range(500)]
        post_all(d, docs)
        self.wait_count(peer, 450, d=d)
        wait_for(lambda: len(dead_letters(d)) >= 50, 30, "50 dead letters")
        dl = dead_letters(d)
        self.assertEqual(len(dl), 50)
        self.assertEqual(sorted(x["record"]["seq"] for x in dl),
                         [i for i in range(500) if i % 10 == 3])
        for x in dl:
            self.assertEqual(x["output"], "es")
            self.assertTrue(x["reason"].startswith("document_parsing_exception: "), x["reason"])
            self.assertIn("failed to parse field [speed] of type [long] in document with id",
                          x["reason"])
            self.assertIn("Preview of field's value: 'fast'", x["reason"])
        self.assertEqual(sorted(g["_source"]["seq"] for g in peer.docs()),
                         [i for i in range(500) if i % 10 != 3])
        self.assertEqual(d.metric("ingestd_elasticsearch_items_dead_lettered_total"), 50)

    # ---- gzip and basic auth; ApiKey
    def test_gzip_bodies_and_basic_auth(self):
        peer = EsPeer(self, "--basic", "elastic:s3cret", "--gzip-responses", "false")
        d = self.daemon(es_config([peer.url], 'compress = true\nusername = "elastic"\n'
                                              'password = "s3cret"\nid_field = "uid"'))
        docs = [{"uid": "u-%d" % i, "v": i} for i in range(3000)]
        post_all(d, docs, per_post=1000)
        self.wait_count(peer, 3000, d=d)
        stats = peer.stats()
        self.assertGreater(stats["gzip_calls"], 0)
        self.assertEqual(stats["gzip_calls"], stats["bulk_calls"])
        self.assertEqual(stats["auth_failures"], 0)
        self.assertEqual(sorted(g["_id"] for g in peer.docs()),
                         sorted("u-%d" % i for i in range(3000)))
        self.assertNotIn("s3cret", d.log_text())

    def test_api_key_and_wrong_credentials(self):
        peer = EsPeer(self, "--api-key", "kid:ksecret")
        good = base64.b64encode(b"kid:ksecret").decode()
        d = self.daemon(es_config([peer.url], 'api_key = "%s"' % good))
        post_all(d, [{"n": i} for i in range(10)])
        self.wait_count(peer, 10, d=d)
        self.assertEqual(peer.stats()["auth_failures"], 0)
        # A wrong key: refused (401), logged, kept and retried, never dead-lettered.
        bad = self.daemon(es_config([peer.url], 'api_key = "%s"'
                                    % base64.b64encode(b"kid:nope").decode()))
        post_all(bad, [{"n": 100 + i} for i in range(10)])
        bad.wait_log(r"refused the bulk request: HTTP 401 security_exception")
        wait_for(lambda: peer.stats()["auth_failures"] >= 2, 20, "retried 401s")
        self.assertEqual(peer.count(), 10)
        self.assertEqual(dead_letters(bad), [])
        # Kept: once the cluster accepts that key, the ten refused records arrive.
        peer.control(add_api_keys=["kid:nope"])
        self.wait_count(peer, 20, d=bad)
        self.assertEqual(sorted(g["_source"]["n"] for g in peer.docs()),
                         list(range(10)) + list(range(100, 110)))
        self.assertEqual(dead_letters(bad), [])

    # ---- SigV4, verified by botocore in the peer
    def test_sigv4_requests_are_verified_by_botocore(self):
        peer = EsPeer(self, "--sigv4", "es", "--region", "eu-west-1",
                      "--credentials", "%s:%s:tok3n" % (AK, SK))
        d = self.daemon(es_config([peer.url], """
aws_auth = true
region = "eu-west-1"
aws_access_key_id = "%s"
aws_secret_access_key = "%s"
aws_session_token = "tok3n"
pipeline = "geo ip/v1"
compress = true
""" % (AK, SK)))
        post_all(d, [{"n": i, "s": "é\u2028"} for i in range(2000)], per_post=500)
        self.wait_count(peer, 2000, d=d)
        stats = peer.stats()
        self.assertEqual(stats["auth_failures"], 0, stats)
        self.assertGreater(stats["gzip_calls"], 0)
        self.assertEqual(sorted(g["_source"]["n"] for g in peer.docs()), list(range(2000)))

    def test_sigv4_wrong_secret_is_refused_and_kept(self):
        peer = EsPeer(self, "--sigv4", "aoss", "--region", "us-east-1",
                      "--credentials", "%s:%s" % (AK, SK))
        d = self.daemon(es_config([peer.url], """
aws_auth = true
aws_service = "aoss"
region = "us-east-1"
aws_access_key_id = "%s"
aws_secret_access_key = "wrong"
""" % AK))
        post_all(d, [{"n": i} for i in range(5)])
        d.wait_log(r"refused the bulk request: HTTP 403")
        wait_for(lambda: peer.stats()["auth_failures"] >= 2, 20, "retried 403s")
        self.assertEqual(peer.count(), 0)
        self.assertEqual(dead_letters(d), [])
        # Kept: the same key now has the secret the daemon signs with.
        peer.control(add_credentials=["%s:wrong" % AK])
        self.wait_count(peer, 5, d=d)
        self.assertEqual(sorted(g["_source"]["n"] for g in peer.docs()), list(range(5)))
        self.assertEqual(dead_letters(d), [])

    # ---- 413: split in halves; a document too large alone is dead-lettered
    def test_413_splits_the_batch(self):
        peer = EsPeer(self, "--max-content-length", "20000")
        d = self.daemon(es_config([peer.url], 'batch_max_records = 500'))
        docs = [{"seq": i, "pad": "x" * 150} for i in range(400)]
        docs.append({"seq": 400, "pad": "y" * 30000})
        post_all(d, docs, per_post=1000)
        self.wait_count(peer, 400, d=d)
        wait_for(lambda: dead_letters(d), 20, "the oversized document's dead letter")
        dl = dead_letters(d)
        self.assertEqual([x["record"]["seq"] for x in dl], [400])
        self.assertIn("413", dl[0]["reason"])
        self.assertGreater(d.metric("ingestd_elasticsearch_bulk_too_large_total"), 0)
        self.assertEqual(sorted(g["_source"]["seq"] for g in peer.docs()), list(range(400)))
        d.wait_log(r"answered 413 to a \d+-byte bulk request")

    # ---- whole-request 429 / 503
    def test_whole_request_429_and_503_back_off_and_recover(self):
        peer = EsPeer(self)
        peer.control(reject_429_next=3, unavailable_503_next=2)
        d = self.daemon(es_config([peer.url]))
        post_all(d, [{"seq": i} for i in range(300)])
        self.wait_count(peer, 300, d=d)
        st = peer.stats()
        self.assertEqual(st["bulk_by_status"].get("429"), 3)
        self.assertEqual(st["bulk_by_status"].get("503"), 2)
        self.assertGreaterEqual(d.metric("ingestd_elasticsearch_bulk_failures_total"), 5)
        self.assertGreaterEqual(d.metric("ingestd_output_retried_records_total", output="es"), 300)
        self.assertEqual(sorted(g["_source"]["seq"] for g in peer.docs()), list(range(300)))

    # ---- dated index names
    def test_dated_index_names_from_ts(self):
        peer = EsPeer(self)
        d = self.daemon(es_config([peer.url], 'index = "metadata-%Y.%m.%d"').replace(
            'index = "logs"\n', ""))
        today = datetime.datetime.now(datetime.timezone.utc)
        docs = [
            {"n": 1, "ts": 1704164400000},       # 2024-01-02T03:00Z
            {"n": 2, "ts": 1704239999999},       # 2024-01-02T23:59:59.999Z
            {"n": 3, "ts": 1704240000000},       # 2024-01-03T00:00Z
            {"n": 4, "ts": "1704240000000"},     # digits in a string
            {"n": 5},                            # receive time
            {"n": 6, "ts": "yesterday"},         # invalid: receive time
            {"n": 7, "ts": -5},                  # invalid: receive time
        ]
        post_all(d, docs)
        self.wait_count(peer, 7, d=d)
        got = {g["_source"]["n"]: g["_index"] for g in peer.docs()}
        day = today.strftime("metadata-%Y.%m.%d")
        self.assertEqual(got[1], "metadata-2024.01.02")
        self.assertEqual(got[2], "metadata-2024.01.02")
        self.assertEqual(got[3], "metadata-2024.01.03")
        self.assertEqual(got[4], "metadata-2024.01.03")
        for n in (5, 6, 7):
            self.assertIn(got[n], (day, (today + datetime.timedelta(seconds=5)).strftime(
                "metadata-%Y.%m.%d")))

    # ---- failover between two peers
    def test_failover_when_a_peer_is_killed_and_return_after_health(self):
        a = EsPeer(self)
        b = EsPeer(self)
        d = self.daemon(es_config([a.url, b.url], """
batch_max_records = 50
host_cooldown = "60s"
health_check_interval = "300ms"
request_timeout = "10s"
"""))
        # Phase 1: both in use.
        post_all(d, [{"phase": 1, "n": i} for i in range(500)], per_post=50)
        wait_for(lambda: a.count() + b.count() >= 500, 30, "phase 1", interval=0.2)
        self.assertGreater(a.count(), 0)
        self.assertGreater(b.count(), 0)
        # Phase 2: A holds every bulk call for 5 s (documents stored, answer not
        # sent yet) and is killed while one is in flight.
        a.control(latency=5.0)
        calls0 = a.stats()["bulk_calls"]
        post_all(d, [{"phase": 2, "n": i} for i in range(500)], per_post=50)
        wait_for(lambda: a.stats()["bulk_calls"] > calls0, 20, "a bulk call in flight to A")
        a.kill()
        wait_for(lambda: len([g for g in b.docs() if g["_source"]["phase"] == 2]) >= 500, 30,
                 "phase 2 on B", interval=0.2)
        d.wait_log(r"127\.0\.0\.1:%d failed \(.*\); skipping it" % a.port)
        # Phase 3: A comes back on the same port and is used again, brought
        # back by a health check (the cooldown is far longer than this test:
        # with a 3 s one a busy machine could let it lapse before A was up,
        # and A then returned without a health check, hence without the log).
        a2 = EsPeer(self, port=a.port)
        d.wait_log(r"127\.0\.0\.1:%d answers again" % a.port, timeout=20)
        sent = 0
        deadline = time.monotonic() + 30
        while a2.count() == 0:
            self.assertLess(time.monotonic(), deadline, "A was not used again")
            post_all(d, [{"phase": 3, "n": sent + i} for i in range(20)])
            sent += 20
            time.sleep(0.1)
        wait_for(lambda: len({g["_source"]["n"] for g in a2.docs() + b.docs()
                              if g["_source"]["phase"] == 3}) >= sent, 30, "phase 3")
        self.assertGreaterEqual(d.metric("ingestd_elasticsearch_host_failures_total"), 1)

    # ---- stop while a bulk call is in flight: no leak, and the records are
    # accounted for: lost and said so with a memory buffer, kept on disk and
    # delivered at the next start with buffer = "disk".
    def test_stop_with_a_bulk_call_in_flight(self):
        peer = EsPeer(self, "--latency", "10")
        d = Daemon(es_config([peer.url]), shutdown_timeout="1s").start()
        post_all(d, [{"n": i} for i in range(50)])
        wait_for(lambda: peer.stats()["bulk_calls"] >= 1, 20, "a bulk call")
        t0 = time.monotonic()
        code = d.stop()
        self.assertEqual(code, 0, d.log_text()[-3000:])
        self.assertLess(time.monotonic() - t0, 8)
        self.assertIn("50 records were not delivered before shutdown and are lost", d.log_text())

    def test_stop_with_a_bulk_call_in_flight_keeps_disk_records_for_the_next_start(self):
        slow = EsPeer(self, "--latency", "10")
        cfg = es_config([slow.url], 'buffer = "disk"')
        d = Daemon(cfg, shutdown_timeout="1s").start()
        post_all(d, [{"n": i} for i in range(50)])
        wait_for(lambda: slow.stats()["bulk_calls"] >= 1, 20, "a bulk call")
        t0 = time.monotonic()
        self.assertEqual(d.stop(), 0, d.log_text()[-3000:])
        self.assertLess(time.monotonic() - t0, 8)
        self.assertNotIn("are lost", d.log_text())
        # The next start, against a cluster that answers: all 50 arrive.
        fast = EsPeer(self)
        d.write_config(d_config_text(d).replace(slow.url, fast.url))
        d.start()
        self.addCleanup(lambda: self.assertEqual(d.stop(), 0, d.log_text()[-3000:]))
        self.wait_count(fast, 50, d=d)
        self.assertEqual(sorted(g["_source"]["n"] for g in fast.docs()), list(range(50)))

    # ---- config errors, as ingestd -t reports them
    def test_config_errors(self):
        cases = [
            ('index = "Logs-%Y"', "not allowed in an index name"),
            ('index = "logs-%b"', "unknown conversion %b"),
            ('username = "u"', "username and password go together"),
            ('api_key = "k"\nusername = "u"\npassword = "p"', "choose one authentication"),
            ('aws_auth = true', "aws_auth: set region"),
            ('role_arn = "arn:aws:iam::111122223333:role/x"', "set aws_auth = true"),
            ('aws_auth = true\nregion = "eu-west-1"\nexternal_id = "x"',
             "external_id goes with role_arn"),
            ('aws_auth = true\nregion = "eu-west-1"\nrole_arn = "writer"',
             "role_arn must be a role ARN"),
            ('client_cert = "/c.pem"', "client_cert and client_key go together"),
        ]
        for extra, message in cases:
            d = Daemon(es_config(["http://127.0.0.1:9"], extra).replace(
                'index = "logs"\n', "" if extra.startswith("index") else 'index = "logs"\n'))
            code, _, err = run_ingestd(["-t", "-c", d.config_path, "--plugins-dir", PLUGINS])
            self.assertEqual(code, 1, (extra, err))
            self.assertIn(message, err, extra)
        d = Daemon(es_config(["ftp://x"]))
        code, _, err = run_ingestd(["-t", "-c", d.config_path, "--plugins-dir", PLUGINS])
        self.assertEqual(code, 1)
        self.assertIn("hosts[0]", err)


if __name__ == "__main__":
    unittest.main()
