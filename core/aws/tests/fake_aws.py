#!/usr/bin/python3
"""Fake AWS credential endpoints for the credentials-chain tests (stdlib only).

One server answers, on 127.0.0.1:
  * IMDSv2: PUT /latest/api/token (needs X-aws-ec2-metadata-token-ttl-seconds),
    GET /latest/meta-data/iam/security-credentials/ and .../ROLE (need the
    token in X-aws-ec2-metadata-token, else 401);
  * STS: POST / with Action=AssumeRoleWithWebIdentity (RoleArn and
    WebIdentityToken must match --role-arn and --web-identity-token);
  * container credentials: GET /creds (Authorization must equal
    --container-token when one is given).
Credentials come from --credentials AKID:SECRET:TOKEN (repeatable): each
successful fetch hands out the next set, and the last one sticks. Expiration
is now + --expires-in seconds.

GET /_stats -> fetch counts per endpoint. POST /_control {"fail": true|false}
makes the credential endpoints answer 500 (refresh failure tests).

Prints "listening on 127.0.0.1:PORT", exits 0 on SIGTERM.
"""

import argparse
import datetime
import json
import signal
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class State:
    def __init__(self, args):
        self.args = args
        self.creds = [c.split(":", 2) for c in args.credentials]
        self.index = 0
        self.fail = False
        self.stats = {"imds_token": 0, "imds_role": 0, "imds_creds": 0, "sts": 0, "container": 0}
        self.tokens = set()
        self.lock = threading.Lock()

    def next_creds(self):
        with self.lock:
            c = self.creds[min(self.index, len(self.creds) - 1)]
            self.index += 1
        exp = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(
            seconds=self.args.expires_in)
        return c[0], c[1], (c[2] if len(c) > 2 else ""), exp.strftime("%Y-%m-%dT%H:%M:%SZ")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state = None

    def log_message(self, fmt, *args):  # quiet unless --verbose
        if self.state.args.verbose:
            sys.stderr.write("fake_aws: " + fmt % args + "\n")

    def reply(self, status, body, ctype="application/json"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def count(self, key):
        with self.state.lock:
            self.state.stats[key] += 1

    def do_PUT(self):
        self.body()
        if self.path == "/latest/api/token":
            if not self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
                return self.reply(400, "missing ttl header", "text/plain")
            self.count("imds_token")
            token = "imds-token-%d" % self.state.stats["imds_token"]
            self.state.tokens.add(token)
            return self.reply(200, token, "text/plain")
        self.reply(404, "{}")

    def do_GET(self):
        st = self.state
        prefix = "/latest/meta-data/iam/security-credentials/"
        if self.path == "/_stats":
            with st.lock:
                return self.reply(200, json.dumps(dict(st.stats, handed_out=st.index)))
        if self.path.startswith(prefix):
            if self.headers.get("X-aws-ec2-metadata-token") not in st.tokens:
                return self.reply(401, "", "text/plain")
            role = self.path[len(prefix):]
            if not role:
                self.count("imds_role")
                return self.reply(200, st.args.role + "\n", "text/plain")
            if role != st.args.role:
                return self.reply(404, "", "text/plain")
            if st.fail:
                return self.reply(500, "", "text/plain")
            self.count("imds_creds")
            akid, secret, token, exp = st.next_creds()
            return self.reply(200, json.dumps({
                "Code": "Success", "LastUpdated": exp, "Type": "AWS-HMAC",
                "AccessKeyId": akid, "SecretAccessKey": secret, "Token": token,
                "Expiration": exp}))
        if self.path == "/creds":
            if st.args.container_token and self.headers.get("Authorization") != st.args.container_token:
                return self.reply(401, json.dumps({"message": "bad token"}))
            if st.fail:
                return self.reply(500, "{}")
            self.count("container")
            akid, secret, token, exp = st.next_creds()
            return self.reply(200, json.dumps({
                "AccessKeyId": akid, "SecretAccessKey": secret, "Token": token,
                "Expiration": exp, "RoleArn": "arn:aws:iam::123456789012:role/test"}))
        self.reply(404, "{}")

    def do_POST(self):
        st = self.state
        raw = self.body()
        if self.path == "/_control":
            cmd = json.loads(raw or b"{}")
            if "fail" in cmd:
                st.fail = bool(cmd["fail"])
            return self.reply(200, "{}")
        form = urllib.parse.parse_qs(raw.decode(), keep_blank_values=True)
        if form.get("Action") == ["AssumeRoleWithWebIdentity"]:
            err = None
            if form.get("Version") != ["2011-06-15"]:
                err = ("InvalidAction", "bad Version")
            elif form.get("RoleArn") != [st.args.role_arn]:
                err = ("AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity")
            elif form.get("WebIdentityToken") != [st.args.web_identity_token]:
                err = ("InvalidIdentityToken", "The web identity token is invalid")
            elif not form.get("RoleSessionName", [""])[0]:
                err = ("ValidationError", "RoleSessionName is required")
            if st.fail:
                return self.reply(500, "", "text/xml")
            if err:
                return self.reply(400, (
                    "<ErrorResponse><Error><Type>Sender</Type><Code>%s</Code><Message>%s</Message>"
                    "</Error><RequestId>1</RequestId></ErrorResponse>" % err), "text/xml")
            self.count("sts")
            akid, secret, token, exp = st.next_creds()
            return self.reply(200, (
                '<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
                "<AssumeRoleWithWebIdentityResult><Credentials>"
                "<AccessKeyId>%s</AccessKeyId><SecretAccessKey>%s</SecretAccessKey>"
                "<SessionToken>%s</SessionToken><Expiration>%s</Expiration>"
                "</Credentials></AssumeRoleWithWebIdentityResult>"
                "</AssumeRoleWithWebIdentityResponse>" % (akid, secret, token, exp)), "text/xml")
        self.reply(404, "{}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--credentials", action="append", required=True, metavar="AKID:SECRET:TOKEN")
    p.add_argument("--expires-in", type=float, default=3600)
    p.add_argument("--role", default="ingestd-role")
    p.add_argument("--role-arn", default="arn:aws:iam::123456789012:role/ingestd")
    p.add_argument("--web-identity-token", default="eyJhbGciOiJSUzI1NiJ9.test.sig")
    p.add_argument("--container-token", default="")
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args(argv)
    Handler.state = State(args)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print("listening on 127.0.0.1:%d" % server.server_address[1], flush=True)
    server.serve_forever()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
