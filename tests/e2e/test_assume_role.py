"""Cross-account roles: role_arn / external_id / role_session_name on the
firehose and elasticsearch outputs, end to end.

Base credentials come from the environment (AWS_ACCESS_KEY_ID/SECRET); they
sign sts:AssumeRole at tests/peers/sts_peer.py, which checks that signature
with botocore, checks RoleArn / ExternalId / RoleSessionName and issues
short-lived credentials (a few seconds) that it hands to the Firehose (or
Elasticsearch) peer. That peer knows no other key: it accepts only the
assumed credentials with their session token, and refuses them with
ExpiredToken once they expire. Every wait polls a counter with a deadline.
"""

import json
import os
import re
import signal
import time
import unittest

from harness import BASE_CONFIG, Daemon, EsPeer, PeerScript, wait_for

REGION = "eu-west-1"
STREAM = "trace"
BASE_AKID, BASE_SECRET = "AKIDBASESTSTEST", "base-secret-for-sts"
ROLE = "arn:aws:iam::111122223333:role/ingestd-writer"
EXTERNAL_ID = "rider-app-7f3c"
SESSION = "ingestd-e2e"
EXPIRES_IN = 8  # seconds: refreshed at half life, refused by the peers after

FIREHOSE = """
[inputs.trace]
plugin = "http"
listener = "public"
path = "/v1/trace"

[outputs.fh]
plugin = "firehose"
region = "{region}"
stream = "{stream}"
endpoint = "{firehose}"
sts_endpoint = "{sts}"
role_arn = "{role}"
external_id = "{external_id}"
role_session_name = "{session}"
buffer = "{buffer}"
flush_interval = "20ms"
retry_initial = "50ms"
retry_max = "500ms"

[[routes]]
match = "trace"
to = ["fh"]
"""

ES = """
[inputs.logs]
plugin = "http"
listener = "public"
path = "/v1/logs"

[outputs.es]
plugin = "elasticsearch"
hosts = ["{es}"]
index = "logs"
aws_auth = true
region = "{region}"
sts_endpoint = "{sts}"
role_arn = "{role}"
external_id = "{external_id}"
role_session_name = "{session}"
flush_interval = "20ms"
retry_initial = "50ms"
retry_max = "500ms"

[[routes]]
match = "logs"
to = ["es"]
"""


def base_env(home):
    """This environment without any AWS setting, plus the base keys."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID=BASE_AKID, AWS_SECRET_ACCESS_KEY=BASE_SECRET,
               AWS_EC2_METADATA_DISABLED="true", HOME=home)
    return env


class Sts(PeerScript):
    def __init__(self, test, notify, expires_in=EXPIRES_IN):
        super().__init__("sts_peer.py",
                         ["--port", "0", "--region", REGION,
                          "--credentials", "%s:%s" % (BASE_AKID, BASE_SECRET),
                          "--role-arn", ROLE, "--external-id", EXTERNAL_ID,
                          "--session-name", SESSION, "--expires-in", str(expires_in),
                          "--notify", notify], test, "sts peer")

    def stats(self):
        return self.call("GET", "/_stats")


class Firehose(PeerScript):
    """firehose_peer.py with no credentials of its own: only what STS issues."""

    def __init__(self, test):
        super().__init__("firehose_peer.py",
                         ["--port", "0", "--region", REGION, "--stream", STREAM], test,
                         "firehose peer")

    def stats(self):
        return self.call("GET", "/_stats")

    def lines(self):
        out = []
        for data in self.call("GET", "/_records?stream=%s&as=text" % STREAM)["records"]:
            out.extend(data.rstrip("\n").split("\n"))
        return out


def post(d, path, records):
    body = "\n".join(json.dumps(r, separators=(",", ":")) for r in records) + "\n"
    status, text, _ = d.post(path, body, {"Content-Type": "application/x-ndjson"})
    assert status == 200, (status, text[:200])


class AssumeRoleTest(unittest.TestCase):
    def daemon(self, config):
        d = Daemon(config, env=base_env(""), shutdown_timeout="2s")
        d.env["HOME"] = d.dir  # no ~/.aws of the machine's
        d.start()

        def stop():
            code = d.stop()
            self.assertEqual(code, 0, "exit code %s\n%s" % (code, d.log_text()[-4000:]))
        self.addCleanup(stop)
        return d

    def firehose_config(self, fh, sts, external_id=EXTERNAL_ID, buffer="memory"):
        return FIREHOSE.format(region=REGION, stream=STREAM, firehose=fh.url, sts=sts.url,
                               role=ROLE, external_id=external_id, session=SESSION,
                               buffer=buffer)

    def wait_lines(self, fh, n, d, timeout=30):
        try:
            return wait_for(lambda: (lambda ls: ls if len(ls) >= n else None)(fh.lines()),
                            timeout, "%d records at the firehose peer" % n, interval=0.1)
        except AssertionError:
            raise AssertionError("firehose peer has %d of %d records; stats %s\n%s"
                                 % (len(fh.lines()), n, fh.stats(), d.log_text()[-3000:]))

    def test_firehose_records_signed_with_the_assumed_role_and_refreshed(self):
        fh = Firehose(self)
        sts = Sts(self, fh.url + "/_control")
        d = self.daemon(self.firehose_config(fh, sts))

        post(d, "/v1/trace", [{"i": i} for i in range(100)])
        self.wait_lines(fh, 100, d)
        s = sts.stats()
        self.assertEqual(s["assume_role_calls"], 1, s)
        self.assertEqual(s["refusals"], {}, s)
        # The base keys signed AssumeRole with what was asked for.
        req = s["last_request"]
        self.assertEqual((req["RoleArn"], req["RoleSessionName"], req["signed_by"]),
                         (ROLE, SESSION, BASE_AKID))
        self.assertTrue(req["has_external_id"])
        first = s["issued"][0]
        # The peer knows only the assumed key: every call was signed with it
        # and carried its session token (checked by the peer).
        self.assertEqual(fh.stats()["calls_by_access_key"].keys(), {first["access_key"]})
        self.assertEqual(fh.stats()["auth_failures"], {})
        d.wait_log(r"using credentials from assumed role %s via environment" % re.escape(ROLE))
        d.wait_log(r"\[outputs\.fh\] stream trace in %s via .*, as role %s"
                   % (REGION, re.escape(ROLE)))

        # Refresh before expiry: a second AssumeRole, then records after the
        # first credentials expired arrive signed with the second ones.
        wait_for(lambda: sts.stats()["assume_role_calls"] >= 2, 3 * EXPIRES_IN,
                 "a second AssumeRole (refresh)")
        second = sts.stats()["issued"][1]
        self.assertLess(second["expires_at"] - EXPIRES_IN, first["expires_at"] - 1,
                        "refreshed only at expiry")
        wait_for(lambda: time.time() > first["expires_at"] + 0.5, 2 * EXPIRES_IN,
                 "the first credentials' expiry")
        post(d, "/v1/trace", [{"i": i} for i in range(100, 200)])
        lines = self.wait_lines(fh, 200, d)
        self.assertEqual(sorted(json.loads(x)["i"] for x in lines), list(range(200)))
        st = fh.stats()
        self.assertEqual(st["auth_failures"], {}, "a call with expired credentials: %s" % st)
        # The second batch went with renewed credentials (the first had
        # expired: the peer would have refused them), all issued by STS.
        issued = [i["access_key"] for i in sts.stats()["issued"]]
        self.assertIn(second["access_key"], issued)
        self.assertGreater(sum(n for k, n in st["calls_by_access_key"].items()
                               if k != first["access_key"]), 0, st)
        self.assertEqual(st["calls_by_access_key"].keys() - set(issued), set())

    def test_wrong_external_id_is_logged_retried_and_fixed_by_reload(self):
        fh = Firehose(self)
        sts = Sts(self, fh.url + "/_control", expires_in=3600)
        d = self.daemon(self.firehose_config(fh, sts, external_id="wrong-id", buffer="disk"))
        post(d, "/v1/trace", [{"i": i} for i in range(50)])
        # STS's code and message in the log, with the backoff.
        d.wait_log(r"assuming role %s failed: HTTP 403: STS AccessDenied: User: "
                   r"arn:aws:iam::000000000000:user/%s is not authorized to perform: "
                   r"sts:AssumeRole on resource: %s .*retrying in \d+\.\d s"
                   % (ROLE, BASE_AKID, ROLE))
        # Retried, with backoff: a few calls, not one per output retry.
        wait_for(lambda: sts.stats()["refusals"].get("AccessDenied", 0) >= 2, 20,
                 "a retried AssumeRole")
        self.assertNotIn("wrong-id", d.log_text(), "external_id was logged")
        self.assertEqual(fh.lines(), [])  # nothing delivered yet
        self.assertEqual(fh.stats()["calls_by_access_key"], {})
        self.assertEqual(sts.stats()["assume_role_calls"], 0)

        # Fixed by a reload: the disk buffer hands the waiting records over.
        d.write_config(BASE_CONFIG.format(workers=1, dir=d.dir, shutdown_timeout="2s",
                                          log_level="info")
                       + self.firehose_config(fh, sts, buffer="disk"))
        d.signal(signal.SIGHUP)
        post(d, "/v1/trace", [{"i": i} for i in range(50, 60)])
        lines = self.wait_lines(fh, 60, d, timeout=60)
        self.assertEqual(sorted(set(json.loads(x)["i"] for x in lines)), list(range(60)))
        self.assertEqual(fh.stats()["auth_failures"], {})
        self.assertGreaterEqual(sts.stats()["assume_role_calls"], 1)

    def test_elasticsearch_sigv4_with_the_assumed_role(self):
        # es_peer.py needs one key at start: one nobody signs with.
        es = EsPeer(self, "--sigv4", "es", "--region", REGION,
                    "--credentials", "AKIDUNUSED:unused-secret")
        sts = Sts(self, es.url + "/_peer/control")
        d = self.daemon(ES.format(es=es.url, region=REGION, sts=sts.url, role=ROLE,
                                  external_id=EXTERNAL_ID, session=SESSION))
        status, text, _ = d.post("/v1/logs", json.dumps([{"n": i} for i in range(20)]))
        self.assertEqual(status, 200, text)
        wait_for(lambda: es.count() >= 20, 30, "20 documents in the es peer", interval=0.1)
        s = sts.stats()
        self.assertEqual(s["assume_role_calls"], 1, s)
        self.assertEqual(es.stats()["auth_failures"], 0, es.stats())
        self.assertEqual(sorted(doc["_source"]["n"] for doc in es.docs()), list(range(20)))


if __name__ == "__main__":
    unittest.main()
