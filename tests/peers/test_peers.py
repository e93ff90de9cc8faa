"""Self-tests of the local test peers (firehose_peer.py, es_peer.py, sts_peer.py).

Run: cd tests/peers && /usr/bin/python3 -m unittest -v test_peers
Each peer runs as a subprocess on 127.0.0.1, port 0; every process started
here is stopped (SIGTERM, exit status checked) in a cleanup.
"""

import base64
import datetime
import gzip
import http.client
import json
import os
import queue
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))

from needs import require_tool  # noqa: E402
from sigv4_verify import sign_request  # noqa: E402

PY = sys.executable or "/usr/bin/python3"
REGION = "eu-west-1"
AK, SK = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"


class Peer:
    def __init__(self, test, script, *args):
        self.proc = subprocess.Popen(
            [PY, os.path.join(HERE, script), "--port", "0", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        test.addCleanup(self.stop, test)
        lines = queue.Queue()
        threading.Thread(target=lambda: lines.put(self.proc.stdout.readline()),
                         daemon=True).start()
        try:
            line = lines.get(timeout=20)
        except queue.Empty:
            line = ""
        if not line.startswith("listening on 127.0.0.1:"):
            self.proc.kill()
            raise AssertionError(f"{script} did not start: {line!r} {self.proc.stderr.read()}")
        self.port = int(line.rsplit(":", 1)[1])
        self.conn = None

    def stop(self, test):
        if self.conn:
            self.conn.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("peer ignored SIGTERM")
            test.assertEqual(rc, 0, self.proc.stderr.read())
        self.proc.stdout.close()
        self.proc.stderr.close()

    def request(self, method, path, body=b"", headers=None, tls_ctx=None):
        """One request on a kept-alive connection; returns (status, headers, bytes)."""
        for attempt in (0, 1):
            if self.conn is None:
                if tls_ctx is not None:
                    self.conn = http.client.HTTPSConnection("127.0.0.1", self.port,
                                                            timeout=30, context=tls_ctx)
                else:
                    self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                r = self.conn.getresponse()
                data = r.read()
                return r.status, {k.lower(): v for k, v in r.getheaders()}, data
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise

    def json(self, method, path, obj=None):
        body = json.dumps(obj).encode() if obj is not None else b""
        status, _, data = self.request(method, path, body,
                                       {"Content-Type": "application/json"})
        return status, json.loads(data) if data else None

    def control(self, **fields):
        status, out = self.json("POST", "/_control", fields)
        assert status == 200, out
        return out


# ---------------------------------------------------------------- Firehose
def firehose_call(peer, payload, op="PutRecordBatch", akid=AK, secret=SK, token=None,
                  tamper=None, timestamp=None, region=REGION, service="firehose"):
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/x-amz-json-1.1",
               "X-Amz-Target": f"Firehose_20150804.{op}",
               "Host": f"127.0.0.1:{peer.port}"}
    signed = sign_request("POST", f"http://127.0.0.1:{peer.port}/", headers, body,
                          service, region, akid, secret, token, timestamp)
    if tamper:
        body = tamper(body)
    status, hdrs, data = peer.request("POST", "/", body, signed)
    return status, hdrs, json.loads(data)


def batch(stream, records):
    return {"DeliveryStreamName": stream,
            "Records": [{"Data": base64.b64encode(r).decode()} for r in records]}


class FirehosePeerTest(unittest.TestCase):
    def setUp(self):
        self.peer = Peer(self, "firehose_peer.py", "--region", REGION,
                         "--stream", "trace", "--stream", "actions",
                         "--credentials", f"{AK}:{SK}",
                         "--credentials", "AKIDTEMP:tempsecret:SESSIONTOKEN")

    def records(self, stream="trace"):
        status, out = self.peer.json("GET", f"/_records?stream={stream}")
        self.assertEqual(status, 200)
        out["decoded"] = [base64.b64decode(r) for r in out["records"]]
        return out

    def assert_error(self, result, status, code, text=None):
        st, hdrs, body = result
        self.assertEqual(st, status, body)
        self.assertEqual(body["__type"], code)
        self.assertEqual(hdrs.get("x-amzn-errortype"), code)
        if text:
            self.assertIn(text, body["message"])

    def test_signed_batch_accepted_and_readable(self):
        recs = [b'{"n":%d}\n' % i for i in range(20)] + [b"x" * 6000]
        st, hdrs, out = firehose_call(self.peer, batch("trace", recs))
        self.assertEqual(st, 200, out)
        self.assertEqual(hdrs["content-type"], "application/x-amz-json-1.1")
        self.assertEqual(out["FailedPutCount"], 0)
        self.assertIs(out["Encrypted"], False)
        self.assertEqual(len(out["RequestResponses"]), len(recs))
        self.assertTrue(all(r.get("RecordId") for r in out["RequestResponses"]))
        got = self.records()
        self.assertEqual(got["decoded"], recs)
        self.assertEqual(got["calls"], 1)
        self.assertEqual(got["record_count"], 21)
        self.assertEqual(got["billed_5kb_units"], 20 + 2)  # 6000 B -> two 5 KB units
        # PutRecord on the same kept-alive connection
        st, _, out = firehose_call(self.peer, {"DeliveryStreamName": "actions",
                                               "Record": {"Data": base64.b64encode(b"a\n").decode()}},
                                   op="PutRecord")
        self.assertEqual(st, 200, out)
        self.assertTrue(out["RecordId"])
        self.assertEqual(self.records("actions")["decoded"], [b"a\n"])

    def test_body_changed_after_signing_is_rejected(self):
        def flip(body):
            i = body.index(b'"Data": "') + 9
            return body[:i] + (b"B" if body[i:i + 1] != b"B" else b"C") + body[i + 1:]
        r = firehose_call(self.peer, batch("trace", [b"hello\n"]), tamper=flip)
        self.assert_error(r, 400, "InvalidSignatureException",
                          "The request signature we calculated does not match")
        self.assertEqual(self.records()["record_count"], 0)

    def test_wrong_secret_and_unknown_key(self):
        self.assert_error(firehose_call(self.peer, batch("trace", [b"x"]), secret="nope"),
                          400, "InvalidSignatureException")
        self.assert_error(firehose_call(self.peer, batch("trace", [b"x"]), akid="AKIDUNKNOWN"),
                          400, "UnrecognizedClientException")
        self.assert_error(firehose_call(self.peer, batch("trace", [b"x"]), region="us-west-2"),
                          400, "InvalidSignatureException", "us-west-2")
        self.assert_error(firehose_call(self.peer, batch("trace", [b"x"]), service="kinesis"),
                          400, "InvalidSignatureException", "firehose")
        st, _, body = self.peer.request("POST", "/", json.dumps(batch("trace", [b"x"])).encode(),
                                        {"Content-Type": "application/x-amz-json-1.1",
                                         "X-Amz-Target": "Firehose_20150804.PutRecordBatch"})
        self.assertEqual((st, json.loads(body)["__type"]),
                         (400, "MissingAuthenticationTokenException"))
        _, stats = self.peer.json("GET", "/_stats")
        self.assertEqual(sum(stats["auth_failures"].values()), 5)
        self.assertEqual(self.records()["record_count"], 0)

    def test_session_token_required_expired_and_refreshed(self):
        tmp = dict(akid="AKIDTEMP", secret="tempsecret")
        self.assert_error(firehose_call(self.peer, batch("trace", [b"x"]), **tmp),
                          400, "UnrecognizedClientException")
        self.assert_error(firehose_call(self.peer, batch("trace", [b"x"]), token="WRONG", **tmp),
                          400, "UnrecognizedClientException")
        st, _, out = firehose_call(self.peer, batch("trace", [b"1\n"]), token="SESSIONTOKEN", **tmp)
        self.assertEqual(st, 200, out)
        # the credentials expire; refreshed ones are accepted
        self.peer.control(expire_access_keys=["AKIDTEMP"], add_credentials=["AKIDNEW:newsecret:TOKEN2"])
        self.assert_error(firehose_call(self.peer, batch("trace", [b"x"]), token="SESSIONTOKEN", **tmp),
                          400, "ExpiredTokenException")
        st, _, out = firehose_call(self.peer, batch("trace", [b"2\n"]), akid="AKIDNEW",
                                   secret="newsecret", token="TOKEN2")
        self.assertEqual(st, 200, out)
        self.assertEqual(self.records()["decoded"], [b"1\n", b"2\n"])

    def test_old_request_rejected(self):
        old = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=6)
        self.assert_error(firehose_call(self.peer, batch("trace", [b"x"]), timestamp=old),
                          400, "InvalidSignatureException", "Signature expired")
        recent = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=4)
        self.assertEqual(firehose_call(self.peer, batch("trace", [b"x"]), timestamp=recent)[0], 200)

    def test_per_record_failures_by_position(self):
        self.peer.control(fail_every_n=3)
        recs = [b"r%d\n" % i for i in range(10)]
        st, _, out = firehose_call(self.peer, batch("trace", recs))
        self.assertEqual(st, 200, out)
        failed = [i for i, r in enumerate(out["RequestResponses"]) if "ErrorCode" in r]
        self.assertEqual(failed, [2, 5, 8])
        self.assertEqual(out["FailedPutCount"], 3)
        for i in failed:
            self.assertEqual(out["RequestResponses"][i],
                             {"ErrorCode": "ServiceUnavailableException", "ErrorMessage": "Slow down."})
        self.assertEqual(self.records()["decoded"], [r for i, r in enumerate(recs) if i not in failed])
        # probabilistic, seeded: the count always matches the entries
        self.peer.control(fail_every_n=0, fail_probability=0.3, seed=7)
        st, _, out = firehose_call(self.peer, batch("trace", [b"p\n"] * 200))
        n_err = sum("ErrorCode" in r for r in out["RequestResponses"])
        self.assertEqual(out["FailedPutCount"], n_err)
        self.assertTrue(20 < n_err < 100, n_err)

    def test_limits_and_validation(self):
        self.assert_error(firehose_call(self.peer, batch("trace", [b"x"] * 501)),
                          400, "ValidationException",
                          "Member must have length less than or equal to 500")
        big = b"y" * (1024000 + 1)
        self.assert_error(firehose_call(self.peer, batch("trace", [b"ok", big])),
                          400, "ValidationException", "'records.2.member.data'")
        self.assertEqual(firehose_call(self.peer, batch("trace", [b"y" * 1024000]))[0], 200)
        self.assert_error(firehose_call(self.peer, batch("trace", [b"z" * 1000000] * 5)),
                          400, "InvalidArgumentException", "4 MB")
        self.assert_error(firehose_call(self.peer, batch("nosuch", [b"x"])),
                          400, "ResourceNotFoundException", "nosuch")
        self.assert_error(firehose_call(self.peer, {"DeliveryStreamName": "trace",
                                                    "Records": [{"Data": "!!notbase64"}]}),
                          400, "SerializationException")
        self.assertEqual(self.records()["record_count"], 1)

    def test_whole_call_faults_and_latency(self):
        self.peer.control(throttle_next_calls=1, internal_failure_next_calls=1)
        self.assert_error(firehose_call(self.peer, batch("trace", [b"x"])), 500, "InternalFailure")
        self.assert_error(firehose_call(self.peer, batch("trace", [b"x"])),
                          500, "ServiceUnavailableException", "Slow down.")
        self.assertEqual(firehose_call(self.peer, batch("trace", [b"ok\n"]))[0], 200)
        self.peer.control(calls_per_sec=1.0)
        codes = [firehose_call(self.peer, batch("trace", [b"c\n"]))[0] for _ in range(3)]
        self.assertIn(500, codes)
        self.peer.control(calls_per_sec=0.0, records_per_sec=5.0)
        st, _, out = firehose_call(self.peer, batch("trace", [b"r\n"] * 12))
        self.assertGreaterEqual(out["FailedPutCount"], 6)
        self.peer.control(records_per_sec=0.0, latency=0.3)
        t0 = time.monotonic()
        self.assertEqual(firehose_call(self.peer, batch("trace", [b"slow\n"]))[0], 200)
        self.assertGreaterEqual(time.monotonic() - t0, 0.3)
        st, out = self.peer.json("POST", "/_control", {"no_such_field": 1})
        self.assertEqual(st, 400)

    def test_control_file_and_out_dir(self):
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d)
        ctl = os.path.join(d, "ctl.json")
        with open(ctl, "w") as f:
            json.dump({"fail_every_n": 2, "add_streams": ["extra"]}, f)
        p = Peer(self, "firehose_peer.py", "--region", REGION, "--credentials", f"{AK}:{SK}",
                 "--control-file", ctl, "--out", os.path.join(d, "out"))
        st, _, out = firehose_call(p, batch("extra", [b"a\n", b"b\n", b"c\n"]))
        self.assertEqual((st, out["FailedPutCount"]), (200, 1))
        with open(os.path.join(d, "out", "extra.ndjson"), "rb") as f:
            self.assertEqual(f.read(), b"a\nc\n")

    def test_qualified_error_types(self):
        self.peer.control(error_type_style="qualified")
        st, hdrs, body = firehose_call(self.peer, batch("nosuch", [b"x"]))
        self.assertEqual(st, 400)
        self.assertTrue(body["__type"].endswith("#ResourceNotFoundException"), body)
        self.assertTrue(hdrs["x-amzn-errortype"].startswith("ResourceNotFoundException:"))


# ---------------------------------------------------------------- Elasticsearch
def ndjson(*objs):
    return b"".join(json.dumps(o).encode() + b"\n" for o in objs)


# ---------------------------------------------------------------- STS
ROLE = "arn:aws:iam::111122223333:role/writer"


def sts_call(peer, form, akid=AK, secret=SK, token=None):
    body = urllib.parse.urlencode(form).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
               "Host": f"127.0.0.1:{peer.port}"}
    signed = sign_request("POST", f"http://127.0.0.1:{peer.port}/", headers, body,
                          "sts", REGION, akid, secret, token)
    status, _, data = peer.request("POST", "/", body, signed)
    return status, ET.fromstring(data)


def xml_text(root, tag):
    el = root.find(".//{https://sts.amazonaws.com/doc/2011-06-15/}" + tag)
    return None if el is None else el.text


class StsPeerTest(unittest.TestCase):
    def setUp(self):
        self.fh = Peer(self, "firehose_peer.py", "--region", REGION, "--stream", "trace")
        self.sts = Peer(self, "sts_peer.py", "--region", REGION, "--credentials", f"{AK}:{SK}",
                        "--role-arn", ROLE, "--external-id", "ext", "--session-name", "s1",
                        "--expires-in", "2",
                        "--notify", f"http://127.0.0.1:{self.fh.port}/_control")

    def form(self, **extra):
        f = {"Action": "AssumeRole", "Version": "2011-06-15", "RoleArn": ROLE,
             "RoleSessionName": "s1", "ExternalId": "ext"}
        f.update(extra)
        return {k: v for k, v in f.items() if v is not None}

    def test_assume_role_issues_credentials_the_firehose_peer_accepts_until_expiry(self):
        st, root = sts_call(self.sts, self.form(DurationSeconds="900"))
        self.assertEqual(st, 200)
        akid, secret, token = (xml_text(root, t) for t in
                               ("AccessKeyId", "SecretAccessKey", "SessionToken"))
        self.assertTrue(akid.startswith("ASIA"))
        exp = datetime.datetime.strptime(xml_text(root, "Expiration"), "%Y-%m-%dT%H:%M:%SZ")
        left = exp.replace(tzinfo=datetime.timezone.utc).timestamp() - time.time()
        self.assertLessEqual(left, 2)
        # The Firehose peer accepts the issued key with its token only.
        st, _, out = firehose_call(self.fh, batch("trace", [b"x\n"]), akid=akid,
                                   secret=secret, token=token)
        self.assertEqual(st, 200, out)
        st, _, out = firehose_call(self.fh, batch("trace", [b"x\n"]), akid=akid, secret=secret)
        self.assertEqual((st, out["__type"]), (400, "UnrecognizedClientException"))
        # ... until it expires.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            st, _, out = firehose_call(self.fh, batch("trace", [b"x\n"]), akid=akid,
                                       secret=secret, token=token)
            if st != 200:
                break
            time.sleep(0.1)
        self.assertEqual((st, out["__type"]), (400, "ExpiredTokenException"))
        _, stats = self.sts.json("GET", "/_stats")
        self.assertEqual(stats["assume_role_calls"], 1)
        self.assertEqual(stats["last_request"]["signed_by"], AK)
        self.assertEqual(stats["last_request"]["DurationSeconds"], "900")

    def test_refusals(self):
        for form, status, code in [
                (self.form(ExternalId="bad"), 403, "AccessDenied"),
                (self.form(ExternalId=None), 403, "AccessDenied"),
                (self.form(RoleArn=ROLE + "2"), 403, "AccessDenied"),
                (self.form(RoleSessionName="other"), 403, "AccessDenied"),
                (self.form(DurationSeconds="60"), 400, "ValidationError"),
                (self.form(Action="GetCallerIdentity"), 400, "InvalidAction")]:
            st, root = sts_call(self.sts, form)
            self.assertEqual((st, xml_text(root, "Code")), (status, code), form)
        st, root = sts_call(self.sts, self.form(ExternalId="bad"))
        self.assertIn("is not authorized to perform: sts:AssumeRole on resource: " + ROLE,
                      xml_text(root, "Message"))
        st, root = sts_call(self.sts, self.form(), secret="wrong")
        self.assertEqual((st, xml_text(root, "Code")), (403, "SignatureDoesNotMatch"))
        st, root = sts_call(self.sts, self.form(), akid="AKIDOTHER")
        self.assertEqual((st, xml_text(root, "Code")), (403, "InvalidClientTokenId"))
        _, stats = self.sts.json("GET", "/_stats")
        self.assertEqual(stats["assume_role_calls"], 0)
        self.assertEqual(stats["refusals"]["AccessDenied"], 5)
        # Control: the right external id changes, then the old one is refused.
        self.assertEqual(self.sts.json("POST", "/_control", {"external_id": "bad"})[0], 200)
        st, _ = sts_call(self.sts, self.form(ExternalId="bad"))
        self.assertEqual(st, 200)
        self.assertEqual(self.sts.json("POST", "/_control", {"fail_next_calls": 1})[0], 200)
        st, root = sts_call(self.sts, self.form(ExternalId="bad"))
        self.assertEqual((st, xml_text(root, "Code")), (500, "InternalFailure"))


class EsPeerTest(unittest.TestCase):
    def start(self, *args):
        return Peer(self, "es_peer.py", *args)

    def bulk(self, peer, body, path="/_bulk", headers=None):
        h = {"Content-Type": "application/x-ndjson"}
        h.update(headers or {})
        st, hdrs, data = peer.request("POST", path, body, h)
        return st, (json.loads(data) if data else None)

    def docs(self, peer, index="*"):
        st, out = peer.json("GET", f"/_peer/docs?index={index}")
        self.assertEqual(st, 200)
        return {(d["_index"], d["_id"]): d["_source"] for d in out["docs"]}

    def test_bulk_create_conflict_items_429_mapping_gzip(self):
        p = self.start("--mapping", "metadata-*:speed=long", "--mapping", "metadata-*:geo=object")
        body = ndjson({"create": {"_index": "metadata-1", "_id": "a"}}, {"v": 1},
                      {"index": {"_index": "metadata-1"}}, {"v": 2})
        st, out = self.bulk(p, body)
        self.assertEqual(st, 200, out)
        self.assertFalse(out["errors"])
        self.assertEqual(out["items"][0]["create"]["status"], 201)
        self.assertEqual(out["items"][0]["create"]["result"], "created")
        auto_id = out["items"][1]["index"]["_id"]
        self.assertTrue(auto_id)
        st, out = self.bulk(p, ndjson({"create": {"_index": "metadata-1", "_id": "a"}}, {"v": 9}))
        self.assertTrue(out["errors"])
        item = out["items"][0]["create"]
        self.assertEqual(item["status"], 409)
        self.assertEqual(item["error"]["type"], "version_conflict_engine_exception")
        self.assertEqual(self.docs(p)[("metadata-1", "a")], {"v": 1})
        self.assertIn(("metadata-1", auto_id), self.docs(p))

        # per-item 429, deterministic every 2nd item
        p.control(item_429_every_n=2)
        body = ndjson(*sum(([{"create": {"_index": "m2", "_id": str(i)}}, {"i": i}]
                            for i in range(6)), []))
        st, out = self.bulk(p, body, path="/ignored-default/_bulk")
        statuses = [it["create"]["status"] for it in out["items"]]
        self.assertEqual(statuses, [201, 429, 201, 429, 201, 429])
        self.assertEqual(out["items"][1]["create"]["error"]["type"], "es_rejected_execution_exception")
        self.assertEqual(sorted(k[1] for k in self.docs(p, "m2")), ["0", "2", "4"])
        p.control(item_429_every_n=0)

        # mapping errors, in request order, other items stored
        body = ndjson({"index": {"_index": "metadata-x", "_id": "ok"}}, {"speed": 12},
                      {"index": {"_index": "metadata-x", "_id": "bad"}}, {"speed": "fast"},
                      {"index": {"_index": "metadata-x", "_id": "obj"}}, {"geo": 5},
                      {"index": {"_index": "other", "_id": "free"}}, {"speed": "fast"})
        st, out = self.bulk(p, body)
        self.assertTrue(out["errors"])
        self.assertEqual([list(i.values())[0]["status"] for i in out["items"]], [201, 400, 400, 201])
        err = out["items"][1]["index"]["error"]
        self.assertEqual(err["type"], "document_parsing_exception")  # ES >= 8.8
        self.assertIn("failed to parse field [speed] of type [long]", err["reason"])
        self.assertIn("'fast'", err["reason"])
        self.assertIn("[geo]", out["items"][2]["index"]["error"]["reason"])
        self.assertNotIn(("metadata-x", "bad"), self.docs(p))

        # gzip body
        body = gzip.compress(ndjson({"create": {"_index": "gz", "_id": "1"}}, {"z": True}))
        st, out = self.bulk(p, body, headers={"Content-Encoding": "gzip"})
        self.assertEqual((st, out["errors"]), (200, False))
        self.assertEqual(self.docs(p, "gz"), {("gz", "1"): {"z": True}})
        _, stats = p.json("GET", "/_peer/stats")
        self.assertEqual(stats["gzip_calls"], 1)
        self.assertEqual(stats["items_by_status"]["409"], 1)
        self.assertEqual(stats["items_by_status"]["429"], 3)

        # delete / update
        body = ndjson({"delete": {"_index": "gz", "_id": "1"}}, {"delete": {"_index": "gz", "_id": "1"}},
                      {"update": {"_index": "gz", "_id": "9"}}, {"doc": {"a": 1}})
        st, out = self.bulk(p, body)
        self.assertEqual([list(i.values())[0]["status"] for i in out["items"]], [200, 404, 404])
        self.assertEqual(out["items"][2]["update"]["error"]["type"], "document_missing_exception")

        p.json("POST", "/_peer/reset")
        self.assertEqual(self.docs(p), {})

    def test_sink_counts_without_storing(self):
        p = self.start("--sink", "true")
        body = gzip.compress(ndjson(*sum(([{"create": {"_index": "metadata-1"}}, {"i": i}]
                                           for i in range(3)), [])))
        st, out = self.bulk(p, body, path="/_bulk?filter_path=errors,items.*.status,items.*.error",
                            headers={"Content-Encoding": "gzip"})
        self.assertEqual(st, 200, out)
        self.assertEqual(out, {"errors": False, "items": [{"create": {"status": 201}}] * 3})
        self.assertEqual(self.docs(p), {})
        _, stats = p.json("GET", "/_peer/stats")
        self.assertEqual((stats["sink_documents"], stats["gzip_calls"]), (3, 1))

    def test_filter_path_shapes_the_bulk_answer(self):
        p = self.start()
        body = ndjson({"create": {"_index": "f", "_id": "a"}}, {"v": 1},
                      {"create": {"_index": "f", "_id": "a"}}, {"v": 2},
                      {"create": {"_index": "f", "_id": "b"}}, {"v": 3})
        # What the elasticsearch output asks for: every item keeps its status,
        # so items still line up with documents; errors keep type and reason.
        st, out = self.bulk(p, body, path="/_bulk?filter_path=errors,items.*.status,items.*.error")
        self.assertEqual(st, 200)
        self.assertEqual(set(out), {"errors", "items"})
        self.assertTrue(out["errors"])
        self.assertEqual(out["items"][0], {"create": {"status": 201}})
        self.assertEqual(out["items"][2], {"create": {"status": 201}})
        conflict = out["items"][1]["create"]
        self.assertEqual(set(conflict), {"status", "error"})
        self.assertEqual(conflict["status"], 409)
        self.assertEqual(conflict["error"]["type"], "version_conflict_engine_exception")
        # The documented example: only the failed items remain.
        body = ndjson({"create": {"_index": "f", "_id": "a"}}, {"v": 4},
                      {"create": {"_index": "f", "_id": "c"}}, {"v": 5})
        st, out = self.bulk(p, body, path="/_bulk?filter_path=items.*.error")
        self.assertEqual(list(out), ["items"])
        self.assertEqual(len(out["items"]), 1)
        self.assertEqual(out["items"][0]["create"]["error"]["type"],
                         "version_conflict_engine_exception")
        # Wildcards across levels, exclusion, and nothing matched.
        body = ndjson({"create": {"_index": "f", "_id": "d"}}, {"v": 6})
        st, out = self.bulk(p, body, path="/_bulk?filter_path=**.result")
        self.assertEqual(out, {"items": [{"create": {"result": "created"}}]})
        body = ndjson({"create": {"_index": "f", "_id": "e"}}, {"v": 7})
        st, out = self.bulk(p, body, path="/_bulk?filter_path=-items,-took")
        self.assertEqual(out, {"errors": False})
        body = ndjson({"create": {"_index": "f", "_id": "g"}}, {"v": 8})
        st, out = self.bulk(p, body, path="/_bulk?filter_path=nothing.here")
        self.assertEqual(out, {})
        # Errors of the whole request are not filtered (ES builds them unfiltered).
        st, out = self.bulk(p, b"{}", path="/_bulk?filter_path=items.*.status")
        self.assertEqual(st, 400)
        self.assertIn("error", out)
        _, stats = p.json("GET", "/_peer/stats")
        self.assertEqual(stats["filtered_responses"], 5)

    def test_request_level_errors(self):
        p = self.start("--max-content-length", "2000")
        st, out = self.bulk(p, ndjson({"index": {"_index": "i"}}, {"a": 1}).rstrip(b"\n"))
        self.assertEqual(st, 400)
        self.assertEqual(out["error"]["type"], "illegal_argument_exception")
        self.assertIn("terminated by a newline", out["error"]["reason"])
        st, out = self.bulk(p, ndjson({"index": {"_index": "i", "_type": "_doc"}}, {"a": 1}))
        self.assertEqual(st, 400)
        self.assertIn("unknown parameter [_type]", out["error"]["reason"])
        st, out = self.bulk(p, ndjson({"index": {"_index": "i"}}, {"a": 1}),
                            headers={"Content-Type": "text/plain"})
        self.assertEqual(st, 406)
        st, _, data = p.request("POST", "/_bulk", b"x" * 3000 + b"\n",
                                {"Content-Type": "application/x-ndjson"})
        self.assertEqual((st, data), (413, b""))
        p.control(reject_429_next=1, unavailable_503_next=1)
        st, out = self.bulk(p, ndjson({"index": {"_index": "i"}}, {"a": 1}))
        self.assertEqual((st, out["error"]["type"]), (503, "cluster_block_exception"))
        st, out = self.bulk(p, ndjson({"index": {"_index": "i"}}, {"a": 1}))
        self.assertEqual((st, out["status"], out["error"]["type"]),
                         (429, 429, "es_rejected_execution_exception"))
        st, out = self.bulk(p, ndjson({"index": {"_index": "i"}}, {"a": 1}))
        self.assertEqual((st, out["errors"]), (200, False))
        self.assertEqual(len(self.docs(p)), 1)
        p.control(latency=0.3)
        t0 = time.monotonic()
        self.assertEqual(self.bulk(p, ndjson({"index": {"_index": "i"}}, {"a": 2}))[0], 200)
        self.assertGreaterEqual(time.monotonic() - t0, 0.3)

    def test_es7_and_opensearch_flavours(self):
        p7 = self.start("--es-version", "7.17.0", "--mapping", "*:n=long")
        st, out = p7.json("GET", "/")
        self.assertEqual(out["version"]["number"], "7.17.0")
        st, out = self.bulk(p7, ndjson({"index": {"_index": "i", "_type": "_doc", "_id": "1"}}, {"n": 1},
                                       {"index": {"_index": "i", "_id": "2"}}, {"n": "x"}))
        self.assertEqual(st, 200, out)
        self.assertEqual(out["items"][0]["index"]["_type"], "_doc")
        self.assertEqual(out["items"][1]["index"]["error"]["type"], "mapper_parsing_exception")
        pos = self.start("--distribution", "opensearch")
        st, out = pos.json("GET", "/")
        self.assertEqual((out["version"]["distribution"], out["version"]["number"]),
                         ("opensearch", "2.11.0"))
        st, out = pos.json("GET", "/_cluster/health")
        self.assertEqual(out["status"], "green")

    def test_basic_and_api_key_auth(self):
        p = self.start("--basic", "elastic:changeme", "--api-key", "kid:ksecret")
        body = ndjson({"index": {"_index": "a", "_id": "1"}}, {"x": 1})
        st, out = self.bulk(p, body)
        self.assertEqual(st, 401)
        self.assertEqual(out["error"]["type"], "security_exception")
        bad = base64.b64encode(b"elastic:wrong").decode()
        st, out = self.bulk(p, body, headers={"Authorization": "Basic " + bad})
        self.assertEqual(st, 401)
        good = base64.b64encode(b"elastic:changeme").decode()
        st, out = self.bulk(p, body, headers={"Authorization": "Basic " + good})
        self.assertEqual((st, out["errors"]), (200, False))
        key = base64.b64encode(b"kid:ksecret").decode()
        st, out = self.bulk(p, body, headers={"Authorization": "ApiKey " + key})
        self.assertEqual(st, 200)
        st, out = self.bulk(p, body, headers={"Authorization": "ApiKey " +
                                              base64.b64encode(b"kid:nope").decode()})
        self.assertEqual(st, 401)
        _, stats = p.json("GET", "/_peer/stats")
        self.assertEqual(stats["auth_failures"], 3)

    def sigv4_bulk(self, p, service, body, secret=SK, tamper=False, content_sha=False):
        headers = {"Content-Type": "application/x-ndjson", "Host": f"127.0.0.1:{p.port}"}
        if content_sha:
            import hashlib
            headers["X-Amz-Content-SHA256"] = hashlib.sha256(body).hexdigest()
        url = f"http://127.0.0.1:{p.port}/logs-2024.01.01/_bulk?refresh=false"
        signed = sign_request("POST", url, headers, body, service, REGION, AK, secret)
        if tamper:
            body = body.replace(b'"x": 1', b'"x": 2')
        st, _, data = p.request("POST", "/logs-2024.01.01/_bulk?refresh=false", body, signed)
        return st, json.loads(data)

    def test_sigv4_es_and_aoss(self):
        body = ndjson({"create": {"_id": "s1"}}, {"x": 1})
        pes = self.start("--sigv4", "es", "--region", REGION, "--credentials", f"{AK}:{SK}")
        st, out = self.sigv4_bulk(pes, "es", body)
        self.assertEqual((st, out.get("errors")), (200, False), out)
        st, out = self.sigv4_bulk(pes, "es", body, tamper=True)
        self.assertEqual(st, 403)
        self.assertIn("signature we calculated does not match", out["message"])
        st, out = self.sigv4_bulk(pes, "es", body, secret="wrong")
        self.assertEqual(st, 403)
        st, out = self.bulk(pes, body, path="/logs-2024.01.01/_bulk")
        self.assertEqual(st, 403)
        self.assertEqual(list(self.docs(pes)), [("logs-2024.01.01", "s1")])

        paoss = self.start("--sigv4", "aoss", "--region", REGION, "--credentials", f"{AK}:{SK}")
        st, out = self.sigv4_bulk(paoss, "aoss", body)
        self.assertEqual(st, 403)
        self.assertIn("x-amz-content-sha256", out["message"])
        st, out = self.sigv4_bulk(paoss, "aoss", body, content_sha=True)
        self.assertEqual(st, 200, out)
        st, out = self.sigv4_bulk(paoss, "aoss", body, content_sha=True, tamper=True)
        self.assertEqual(st, 403)

    def test_tls(self):
        require_tool("openssl")
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d)
        cert, key = os.path.join(d, "c.pem"), os.path.join(d, "k.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=127.0.0.1", "-keyout", key, "-out", cert],
                       check=True, capture_output=True)
        p = self.start("--tls-cert", cert, "--tls-key", key)
        ctx = ssl.create_default_context(cafile=cert)
        ctx.check_hostname = False
        st, _, data = p.request("GET", "/", tls_ctx=ctx)
        self.assertEqual(st, 200)
        self.assertEqual(json.loads(data)["version"]["number"], "8.11.0")

        # --tls-client-ca: a client certificate signed by that CA is required
        # (the self-signed server certificate serves as the CA and the client's).
        pm = self.start("--tls-cert", cert, "--tls-key", key, "--tls-client-ca", cert)
        with self.assertRaises((ssl.SSLError, ConnectionError, OSError)):
            pm.request("GET", "/", tls_ctx=ctx)
        pm.conn.close()
        pm.conn = None
        mctx = ssl.create_default_context(cafile=cert)
        mctx.check_hostname = False
        mctx.load_cert_chain(cert, key)
        st, _, data = pm.request("GET", "/_peer/stats", tls_ctx=mctx)
        self.assertEqual(st, 200)
        self.assertGreaterEqual(json.loads(data)["tls_failures"], 1)


if __name__ == "__main__":
    unittest.main()
