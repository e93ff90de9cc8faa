"""AWS Signature Version 4 verification for the local test peers.

Shared by firehose_peer.py and es_peer.py (one module, not two copies).

The expected signature is computed with botocore's own signer
(botocore.auth.SigV4Auth): canonical request, string to sign, key derivation
and HMAC are botocore's code. We only feed it the request exactly as it was
received (method, raw path and query, the headers the client listed in
SignedHeaders, the body) and the timestamp from the request's own X-Amz-Date,
instead of letting add_auth() stamp the current time.

Checks, in the order AWS applies them (messages are the ones AWS returns):
  * Authorization present and well formed (AWS4-HMAC-SHA256, Credential,
    SignedHeaders, Signature)            -> MissingAuthenticationToken /
                                            IncompleteSignature
  * X-Amz-Date (or Date) present, signed -> IncompleteSignature
  * access key known                     -> UnrecognizedClient
  * credential scope date/region/service -> InvalidSignature
  * request time within +-max_skew (AWS: 5 minutes)
                                         -> InvalidSignature "Signature expired"
  * X-Amz-Security-Token present and equal to the key's session token when one
    is configured; a key marked expired, or past its expires_at
                                         -> UnrecognizedClient / ExpiredToken
  * x-amz-content-sha256, when present, equals sha256(body) (and is required
    when require_content_sha256, as Amazon OpenSearch Serverless requires)
  * signature equal to botocore's        -> InvalidSignature
"""

import datetime
import hashlib
import hmac
import re
import threading
import time

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials

SIGV4_TIMESTAMP = "%Y%m%dT%H%M%SZ"

MSG_BAD_SIGNATURE = (
    "The request signature we calculated does not match the signature you "
    "provided. Check your AWS Secret Access Key and signing method. Consult "
    "the service documentation for details."
)
MSG_INVALID_TOKEN = "The security token included in the request is invalid."
MSG_EXPIRED_TOKEN = "The security token included in the request is expired"


class SigV4Error(Exception):
    """A rejected request. code is the AWS error code stem (each peer adds the
    'Exception' suffix or not, per protocol): MissingAuthenticationToken,
    IncompleteSignature, UnrecognizedClient, ExpiredToken, InvalidSignature."""

    def __init__(self, code, message):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class _ExactHeadersSigV4Auth(SigV4Auth):
    """botocore's SigV4Auth, canonicalizing exactly the headers the client
    listed in SignedHeaders (AWS honours the client's list; botocore's default
    selection would drop e.g. a signed User-Agent and add unsigned ones)."""

    def __init__(self, credentials, service_name, region_name, signed_names):
        super().__init__(credentials, service_name, region_name)
        self._signed_names = signed_names

    def headers_to_sign(self, request):
        header_map = HTTPHeaders()
        for name in self._signed_names:
            for value in request.headers.get_all(name) or []:
                header_map[name] = value
        return header_map


def parse_credential_spec(spec):
    """'AKID:SECRET[:TOKEN]' -> (akid, secret, token or None)."""
    parts = spec.split(":", 2)
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise ValueError(f"credentials must be AKID:SECRET[:TOKEN], got {spec!r}")
    return parts[0], parts[1], (parts[2] if len(parts) == 3 and parts[2] else None)


_AUTH_RE = re.compile(r"^AWS4-HMAC-SHA256\s+(.*)$", re.S)


def _parse_authorization(value):
    m = _AUTH_RE.match(value.strip())
    if not m:
        raise SigV4Error(
            "IncompleteSignature",
            "Unsupported or malformed Authorization header (expected "
            "AWS4-HMAC-SHA256).",
        )
    fields = {}
    for part in m.group(1).split(","):
        k, sep, v = part.strip().partition("=")
        if sep:
            fields[k.strip()] = v.strip()
    for req in ("Credential", "SignedHeaders", "Signature"):
        if req not in fields:
            raise SigV4Error(
                "IncompleteSignature",
                f"Authorization header requires '{req}' parameter. "
                f"Authorization={value}",
            )
    return fields


class Verifier:
    """Thread-safe SigV4 verifier with a mutable set of credentials."""

    def __init__(self, service, region, credentials=(), max_skew=300.0,
                 require_content_sha256=False, clock=time.time):
        self.service = service
        self.region = region
        self.max_skew = float(max_skew)
        self.require_content_sha256 = require_content_sha256
        self.clock = clock
        self._lock = threading.Lock()
        # akid -> {"secret":..., "token":..., "expired": bool}
        self._creds = {}
        for spec in credentials:
            self.add(spec)

    # ---- credential management (command line and control endpoint) ----
    def add(self, spec_or_tuple):
        """'AKID:SECRET[:TOKEN]', a tuple, or {"spec": ..., "expires_at": EPOCH}
        (temporary credentials, as sts_peer.py hands out: refused with
        ExpiredToken from that time on)."""
        expires_at = None
        if isinstance(spec_or_tuple, dict):
            expires_at = spec_or_tuple.get("expires_at")
            spec_or_tuple = spec_or_tuple["spec"]
        if isinstance(spec_or_tuple, str):
            akid, secret, token = parse_credential_spec(spec_or_tuple)
        else:
            akid, secret, token = spec_or_tuple
        with self._lock:
            self._creds[akid] = {"secret": secret, "token": token, "expired": False,
                                 "expires_at": float(expires_at) if expires_at else None}

    def remove(self, akid):
        with self._lock:
            self._creds.pop(akid, None)

    def expire(self, akid, expired=True):
        with self._lock:
            if akid in self._creds:
                self._creds[akid]["expired"] = expired

    def describe(self):
        with self._lock:
            return [
                {"access_key": k, "has_token": bool(v["token"]), "expired": v["expired"],
                 "expires_at": v.get("expires_at")}
                for k, v in sorted(self._creds.items())
            ]

    def has_credentials(self):
        with self._lock:
            return bool(self._creds)

    # ---- verification ----
    def verify(self, method, raw_path, headers, body, scheme="http"):
        """headers: list of (name, value) as received. Returns the access key
        id on success, raises SigV4Error otherwise."""
        hdrs = HTTPHeaders()
        for name, value in headers:
            hdrs[name.lower()] = value
        auth = hdrs.get("authorization")
        if not auth:
            raise SigV4Error("MissingAuthenticationToken", "Missing Authentication Token")
        fields = _parse_authorization(auth)

        cred_parts = fields["Credential"].split("/")
        if len(cred_parts) != 5 or cred_parts[4] != "aws4_request":
            raise SigV4Error(
                "IncompleteSignature",
                "Credential must have exactly 5 slash-delimited elements, "
                f"e.g. keyid/date/region/service/term, got '{fields['Credential']}'",
            )
        akid, scope_date, scope_region, scope_service, _ = cred_parts
        signed_names = [n.strip().lower() for n in fields["SignedHeaders"].split(";") if n.strip()]
        if "host" not in signed_names:
            raise SigV4Error(
                "InvalidSignature",
                "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
            )

        amz_date = hdrs.get("x-amz-date")
        if amz_date:
            if "x-amz-date" not in signed_names:
                raise SigV4Error(
                    "InvalidSignature",
                    "'X-Amz-Date' must be a 'SignedHeader' in the AWS Authorization.",
                )
            try:
                req_time = datetime.datetime.strptime(amz_date, SIGV4_TIMESTAMP).replace(
                    tzinfo=datetime.timezone.utc)
            except ValueError:
                raise SigV4Error(
                    "IncompleteSignature",
                    f"Date must be in ISO-8601 'basic format'. Got '{amz_date}'.",
                )
        else:
            raise SigV4Error(
                "IncompleteSignature",
                "Authorization header requires existence of either a 'X-Amz-Date' "
                f"or a 'Date' header. Authorization={auth}",
            )
        timestamp = req_time.strftime(SIGV4_TIMESTAMP)

        with self._lock:
            cred = dict(self._creds.get(akid) or {}) or None
        if cred is None:
            raise SigV4Error("UnrecognizedClient", MSG_INVALID_TOKEN)

        if scope_date != timestamp[:8]:
            raise SigV4Error(
                "InvalidSignature",
                f"Date in Credential scope does not match YYYYMMDD from ISO-8601 "
                f"version of date from HTTP: '{scope_date}' != '{timestamp[:8]}', "
                f"from '{timestamp}'.",
            )
        if scope_region != self.region:
            raise SigV4Error(
                "InvalidSignature",
                f"Credential should be scoped to a valid region, not '{scope_region}'. ",
            )
        if scope_service != self.service:
            raise SigV4Error(
                "InvalidSignature",
                f"Credential should be scoped to correct service: '{self.service}'. ",
            )

        now = datetime.datetime.fromtimestamp(self.clock(), datetime.timezone.utc)
        skew = (now - req_time).total_seconds()
        fmt = lambda d: d.strftime(SIGV4_TIMESTAMP)  # noqa: E731
        mins = int(self.max_skew // 60)
        if skew > self.max_skew:
            raise SigV4Error(
                "InvalidSignature",
                f"Signature expired: {timestamp} is now earlier than "
                f"{fmt(now - datetime.timedelta(seconds=self.max_skew))} "
                f"({fmt(now)} - {mins} min.)",
            )
        if -skew > self.max_skew:
            raise SigV4Error(
                "InvalidSignature",
                f"Signature not yet current: {timestamp} is still later than "
                f"{fmt(now + datetime.timedelta(seconds=self.max_skew))} "
                f"({fmt(now)} + {mins} min.)",
            )

        token = hdrs.get("x-amz-security-token")
        if cred["token"]:
            if token != cred["token"]:
                raise SigV4Error("UnrecognizedClient", MSG_INVALID_TOKEN)
        elif token:
            # A token sent with long-term keys is a token we never issued.
            raise SigV4Error("UnrecognizedClient", MSG_INVALID_TOKEN)
        if cred["expired"] or (cred.get("expires_at") and self.clock() >= cred["expires_at"]):
            raise SigV4Error("ExpiredToken", MSG_EXPIRED_TOKEN)

        body = body or b""
        content_sha = hdrs.get("x-amz-content-sha256")
        actual_sha = hashlib.sha256(body).hexdigest()
        if content_sha is None:
            if self.require_content_sha256:
                raise SigV4Error(
                    "InvalidSignature",
                    "Missing required header 'x-amz-content-sha256'.",
                )
        elif content_sha.lower() != actual_sha:
            raise SigV4Error(
                "InvalidSignature",
                "The provided 'x-amz-content-sha256' header does not match what "
                "was computed.",
            )

        host = hdrs.get("host") or "localhost"
        url = f"{scheme}://{host}{raw_path}"
        request = AWSRequest(method=method.upper(), url=url, headers=hdrs, data=body)
        request.context["timestamp"] = timestamp
        signer = _ExactHeadersSigV4Auth(
            Credentials(akid, cred["secret"], cred["token"]),
            self.service, self.region, signed_names)
        canonical = signer.canonical_request(request)
        string_to_sign = signer.string_to_sign(request, canonical)
        expected = signer.signature(string_to_sign, request)
        if not hmac.compare_digest(expected, fields["Signature"].lower()):
            raise SigV4Error("InvalidSignature", MSG_BAD_SIGNATURE)
        return akid


def sign_request(method, url, headers, body, service, region, akid, secret,
                 token=None, timestamp=None):
    """Client-side helper for tests: sign with botocore's SigV4Auth.add_auth
    and return the headers dict to send. timestamp (datetime, UTC) lets tests
    produce old requests."""
    request = AWSRequest(method=method, url=url, headers=dict(headers), data=body)
    signer = SigV4Auth(Credentials(akid, secret, token), service, region)
    if timestamp is None:
        signer.add_auth(request)
    else:
        # Same steps as add_auth with a chosen time.
        request.context["timestamp"] = timestamp.strftime(SIGV4_TIMESTAMP)
        signer._modify_request_before_signing(request)
        canonical = signer.canonical_request(request)
        sts = signer.string_to_sign(request, canonical)
        signer._inject_signature_to_request(request, signer.signature(sts, request))
    return dict(request.headers.items())
