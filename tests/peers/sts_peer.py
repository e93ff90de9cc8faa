#!/usr/bin/python3
"""Local AWS STS peer: sts:AssumeRole over the Query API, the caller's SigV4
signature verified with botocore's signer, for the cross-account role tests
(role_arn / external_id / role_session_name on the AWS outputs).

Run:  python3 sts_peer.py --port 0 --credentials BASEAKID:SECRET \\
          --role-arn arn:aws:iam::111122223333:role/x [--external-id X] \\
          [--session-name ingestd] [--expires-in 20] [--notify URL]...
Prints "listening on 127.0.0.1:PORT" and serves until SIGTERM.

Behaviour and where it comes from
---------------------------------
* Request: POST / with a form body (Content-Type
  application/x-www-form-urlencoded), Action=AssumeRole, Version=2011-06-15,
  RoleArn, RoleSessionName, optional ExternalId and DurationSeconds (STS API
  Reference, AssumeRole; botocore's data/sts/2011-06-15/service-2.json:
  DurationSeconds 900..43200, RoleSessionName 2..64 of [\\w+=,.@-]).
* Authentication: the SigV4 signature (service "sts", --region) is checked
  with sigv4_verify.py (botocore). Query API errors are XML:
  <ErrorResponse><Error><Type>Sender</Type><Code>..</Code><Message>..
  </Message></Error><RequestId>..</RequestId></ErrorResponse>; a bad
  signature is 403 SignatureDoesNotMatch, an unknown key or token 403
  InvalidClientTokenId, a missing Authorization 403
  MissingAuthenticationToken, an expired token 400 ExpiredToken.
* Authorization: RoleArn, ExternalId and RoleSessionName (when
  --session-name is given) must equal what the peer was started with;
  otherwise 403 AccessDenied "User: ARN is not authorized to perform:
  sts:AssumeRole on resource: ROLE" -- what STS answers for a wrong or
  missing ExternalId too (it does not say which condition failed).
* Answer: AssumeRoleResponse/AssumeRoleResult/Credentials with AccessKeyId
  (ASIA...), SecretAccessKey, SessionToken and Expiration (ISO 8601, whole
  seconds). The lifetime is --expires-in seconds (default 20): shorter than
  STS's 900 s minimum, so that tests see a refresh.
* --notify URL (repeatable): before answering, the issued credentials are
  POSTed to URL (a firehose_peer.py /_control, an es_peer.py /_peer/control)
  as {"add_credentials": [{"spec": "AKID:SECRET:TOKEN", "expires_at": T}]}, so
  that peer accepts exactly the assumed credentials and their session token,
  until they expire.

Control (loopback only, unsigned): GET /_stats, POST /_control with
{"expires_in", "external_id", "role_arn", "session_name",
"fail_next_calls"} (the next N calls answer 500 InternalFailure),
POST /_reset (zeroes the counters).
"""

import argparse
import datetime
import json
import os
import sys
import threading
import time
import urllib.parse
import urllib.request
from xml.sax.saxutils import escape

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from peer_common import BodyTooLarge, PeerHandler, PeerServer, serve  # noqa: E402
from sigv4_verify import SigV4Error, Verifier  # noqa: E402

NS = "https://sts.amazonaws.com/doc/2011-06-15/"
ACCOUNT = "000000000000"
# sigv4_verify code -> (HTTP status, STS Query API code)
AUTH_ERRORS = {
    "InvalidSignature": (403, "SignatureDoesNotMatch"),
    "UnrecognizedClient": (403, "InvalidClientTokenId"),
    "MissingAuthenticationToken": (403, "MissingAuthenticationToken"),
    "IncompleteSignature": (400, "IncompleteSignature"),
    "ExpiredToken": (400, "ExpiredToken"),
}


class StsError(Exception):
    def __init__(self, status, code, message, kind="Sender"):
        super().__init__(message)
        self.status, self.code, self.message, self.kind = status, code, message, kind


class State:
    def __init__(self, args):
        self.lock = threading.Lock()
        self.verifier = Verifier("sts", args.region, args.credentials or [])
        self.config = {"role_arn": args.role_arn, "external_id": args.external_id or "",
                       "session_name": args.session_name or "",
                       "expires_in": float(args.expires_in), "fail_next_calls": 0}
        self.notify = list(args.notify or [])
        self.serial = 0
        self.stats = self.fresh_stats()

    @staticmethod
    def fresh_stats():
        # calls: every POST /; assume_role_calls: credentials issued.
        return {"calls": 0, "assume_role_calls": 0, "refusals": {}, "issued": [],
                "last_request": {}}

    def refuse(self, code):
        with self.lock:
            self.stats["refusals"][code] = self.stats["refusals"].get(code, 0) + 1


class Handler(PeerHandler):
    state = None  # set in main()

    def do_GET(self):  # noqa: N802
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/_stats":
            return self.peer_endpoint(url)
        self.sts_error(StsError(404, "InvalidAction", "Not found"))

    def do_POST(self):  # noqa: N802
        url = urllib.parse.urlsplit(self.path)
        if url.path in ("/_control", "/_reset"):
            return self.peer_endpoint(url)
        try:
            self.api_call()
        except StsError as e:
            self.state.refuse(e.code)
            self.sts_error(e)

    def peer_endpoint(self, url):
        body = self.control_body()
        if body is None:
            return
        st = self.state
        if url.path == "/_stats":
            with st.lock:
                out = json.loads(json.dumps(st.stats))
                out["config"] = {k: v for k, v in st.config.items() if k != "external_id"}
            return self.send_json(200, out)
        if url.path == "/_reset":
            with st.lock:
                st.stats = st.fresh_stats()
            return self.send_json(200, {"reset": True})
        try:
            changes = json.loads(body or b"{}")
            if not isinstance(changes, dict):
                raise ValueError("control body must be a JSON object")
            unknown = [k for k in changes if k not in st.config]
            if unknown:
                raise ValueError(f"unknown control fields {unknown}")
            with st.lock:
                for k, v in changes.items():
                    st.config[k] = type(st.config[k])(v)
        except (ValueError, TypeError) as e:
            return self.send_json(400, {"error": str(e)})
        return self.send_json(200, {"ok": True})

    def sts_error(self, e):
        body = (f'<ErrorResponse xmlns="{NS}"><Error><Type>{e.kind}</Type>'
                f"<Code>{escape(e.code)}</Code><Message>{escape(e.message)}</Message>"
                f"</Error><RequestId>{os.urandom(16).hex()}</RequestId></ErrorResponse>")
        self.send_bytes(e.status, body.encode(), content_type="text/xml")

    def api_call(self):
        st = self.state
        with st.lock:
            st.stats["calls"] += 1
        try:
            body = self.read_body(limit=1 << 20)
        except BodyTooLarge:
            raise StsError(413, "RequestEntityTooLarge", "Request entity too large")
        try:
            akid = st.verifier.verify(self.command, self.path, self.headers.items(), body,
                                      scheme=self.scheme)
        except SigV4Error as e:
            status, code = AUTH_ERRORS.get(e.code, (403, e.code))
            raise StsError(status, code, e.message)
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/x-www-form-urlencoded":
            raise StsError(400, "InvalidParameterValue", f"Unsupported Content-Type {ctype!r}")
        form = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode("utf-8", "replace"),
                                                          keep_blank_values=True).items()}
        with st.lock:
            st.stats["last_request"] = {k: v for k, v in form.items() if k != "ExternalId"}
            st.stats["last_request"]["has_external_id"] = "ExternalId" in form
            st.stats["last_request"]["signed_by"] = akid
            cfg = dict(st.config)
            fail = cfg["fail_next_calls"] > 0
            if fail:
                st.config["fail_next_calls"] -= 1
        if form.get("Action") != "AssumeRole":
            raise StsError(400, "InvalidAction",
                           f"Could not find operation {form.get('Action')} for version "
                           f"{form.get('Version')}")
        if form.get("Version") != "2011-06-15":
            raise StsError(400, "InvalidAction", "Unsupported Version")
        problems = []
        role = form.get("RoleArn")
        session = form.get("RoleSessionName")
        if not role:
            problems.append("Value null at 'roleArn' failed to satisfy constraint: "
                            "Member must not be null")
        if not session:
            problems.append("Value null at 'roleSessionName' failed to satisfy constraint: "
                            "Member must not be null")
        duration = form.get("DurationSeconds")
        if duration is not None:
            try:
                d = int(duration)
            except ValueError:
                d = -1
            if d < 900 or d > 43200:
                problems.append(f"Value '{duration}' at 'durationSeconds' failed to satisfy "
                                "constraint: Member must have value greater than or equal "
                                "to 900 and less than or equal to 43200")
        if problems:
            n = len(problems)
            raise StsError(400, "ValidationError",
                           f"{n} validation error{'s' if n != 1 else ''} detected: "
                           + "; ".join(problems))
        if fail:
            raise StsError(500, "InternalFailure", "An internal error occurred.", kind="Receiver")
        if (role != cfg["role_arn"] or form.get("ExternalId", "") != cfg["external_id"]
                or (cfg["session_name"] and session != cfg["session_name"])):
            raise StsError(403, "AccessDenied",
                           f"User: arn:aws:iam::{ACCOUNT}:user/{akid} is not authorized to "
                           f"perform: sts:AssumeRole on resource: {role}")

        with st.lock:
            st.serial += 1
            n = st.serial
        new_akid = "ASIASTSPEER%09d" % n
        secret = os.urandom(20).hex()
        token = "FwoGZXIvYXdzE" + os.urandom(48).hex()
        expires_at = int(time.time() + cfg["expires_in"])
        spec = {"spec": f"{new_akid}:{secret}:{token}", "expires_at": expires_at}
        for url in self.state.notify:
            req = urllib.request.Request(url, data=json.dumps({"add_credentials": [spec]}).encode(),
                                         headers={"Content-Type": "application/json"},
                                         method="POST")
            with urllib.request.urlopen(req, timeout=10) as r:
                r.read()
        with st.lock:
            st.stats["assume_role_calls"] += 1
            st.stats["issued"].append({"access_key": new_akid, "expires_at": expires_at,
                                       "signed_by": akid, "session_name": session})
        exp = datetime.datetime.fromtimestamp(expires_at, datetime.timezone.utc)
        role_name = role.rsplit("/", 1)[-1]
        body = (f'<AssumeRoleResponse xmlns="{NS}"><AssumeRoleResult>'
                f"<AssumedRoleUser><Arn>arn:aws:sts::{ACCOUNT}:assumed-role/"
                f"{escape(role_name)}/{escape(session)}</Arn>"
                f"<AssumedRoleId>AROASTSPEER:{escape(session)}</AssumedRoleId></AssumedRoleUser>"
                f"<Credentials><AccessKeyId>{new_akid}</AccessKeyId>"
                f"<SecretAccessKey>{secret}</SecretAccessKey>"
                f"<SessionToken>{token}</SessionToken>"
                f"<Expiration>{exp.strftime('%Y-%m-%dT%H:%M:%SZ')}</Expiration></Credentials>"
                f"</AssumeRoleResult><ResponseMetadata><RequestId>{os.urandom(16).hex()}"
                f"</RequestId></ResponseMetadata></AssumeRoleResponse>")
        self.send_bytes(200, body.encode(), content_type="text/xml")


def parse_args(argv):
    p = argparse.ArgumentParser(description="Local STS AssumeRole peer")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--credentials", action="append", metavar="AKID:SECRET[:TOKEN]",
                   help="base credentials accepted for signing AssumeRole (repeatable)")
    p.add_argument("--role-arn", required=True)
    p.add_argument("--external-id")
    p.add_argument("--session-name", help="required RoleSessionName (default: any)")
    p.add_argument("--expires-in", type=float, default=20.0,
                   help="lifetime of the issued credentials in seconds")
    p.add_argument("--notify", action="append", metavar="URL",
                   help="control endpoint told about issued credentials (repeatable)")
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument("--verbose", action="store_true")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    Handler.state = State(args)
    Handler.verbose = args.verbose
    server = PeerServer(args.port, Handler, args.tls_cert, args.tls_key)
    return serve(server, "sts_peer")


if __name__ == "__main__":
    sys.exit(main())
