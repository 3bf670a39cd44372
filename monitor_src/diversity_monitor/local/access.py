"""Who may talk to the local stack: only a client holding the credentials it generated.

The stack serves on 127.0.0.1, but any web page the developer opens can send requests there
(and DNS rebinding can make a page's own origin resolve to it). So every request, the `/_local/`
control routes included, must pass three checks before anything reads it further:

1. `Host` names the stack's own loopback address and port (a rebound name does not);
2. it does not come from a browser page: no `Origin`, and no `Sec-Fetch-Site` other than `none`
   (a URL typed into the address bar) - except a top-level GET navigation to a presigned URL (a
   person clicking a report link; the page that holds the link cannot read the answer) - and no
   answer carries a CORS approval (`gateway`);
3. it is signed with Signature Version 4 by the stack's own credentials, in the Authorization
   header or as a presigned URL, within AWS's 15-minute window.

The credentials are generated at the first start of a state folder and kept in
`<state_dir>/credentials.json`, readable by its owner only; `local up` prints them as `export`
lines and the kit's sessions read them from there (`aws.session`).

Verification recomputes the signature with botocore's own signer (`botocore.auth`), the same
code that signed the request on the client side, so canonicalisation (paths, query strings,
S3's unnormalised paths, payload hashes) agrees by construction instead of by reimplementation.
Refusals answer in the error shape of the service the request was signed for, with AWS's codes
(`UnrecognizedClientException`, `InvalidSignatureException`, `SignatureDoesNotMatch`, ...), so
boto3 shows them as it would show AWS's.
"""

from __future__ import annotations

import hmac
import json
import os
import re
import secrets
import string
import time
from calendar import timegm
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl

from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth, SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from diversity_monitor import conventions
from diversity_monitor.local.protocols import WireRequest, WireResponse

CREDENTIALS_FILE = conventions.LOCAL_STACK_CREDENTIALS_FILE
# AWS refuses a signature whose X-Amz-Date is more than 15 minutes off its clock (RequestTimeTooSkewed).
SIGNATURE_WINDOW_SECONDS = 15 * 60
ALGORITHM = "AWS4-HMAC-SHA256"
_SIGV4_TIME = "%Y%m%dT%H%M%SZ"
_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+)\s*,\s*SignedHeaders=(?P<signed>[^,\s]+)\s*,\s*"
    r"Signature=(?P<signature>[0-9a-f]{64})\s*$"
)
_KEY_ALPHABET = string.ascii_uppercase + string.digits
# Services signed as "s3" use S3's signer: no path normalisation, UNSIGNED-PAYLOAD for presigned URLs.
_S3_SIGNING_NAMES = frozenset({"s3"})


@dataclass(frozen=True)
class StackCredentials:
    access_key_id: str
    secret_access_key: str
    region_name: str

    @classmethod
    def generate(cls, region_name: str) -> StackCredentials:
        key_id = "LOCAL" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(15))
        return cls(key_id, secrets.token_urlsafe(30), region_name)

    def environment(self) -> dict[str, str]:
        """The AWS_* variables a client signs with."""
        return {"AWS_ACCESS_KEY_ID": self.access_key_id, "AWS_SECRET_ACCESS_KEY": self.secret_access_key}

    def document(self) -> dict[str, str]:
        return {"aws_access_key_id": self.access_key_id, "aws_secret_access_key": self.secret_access_key,
                "region_name": self.region_name}


class CredentialsFileError(RuntimeError):
    """The state folder's credentials file cannot be trusted or read; the message says why."""


def credentials_path(state_dir: Path) -> Path:
    return Path(state_dir) / CREDENTIALS_FILE


def load_or_create_credentials(state_dir: Path, region_name: str) -> StackCredentials:
    """This state folder's credentials: those it already has, else new ones written owner-only."""
    path = credentials_path(state_dir)
    existing = read_credentials(path)
    if existing is not None:
        return existing
    credentials = StackCredentials.generate(region_name)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    # O_EXCL|O_NOFOLLOW: never write through a link someone placed there; 0600 from the first byte.
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(descriptor, "w") as handle:
            json.dump(credentials.document(), handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return credentials


def read_credentials(path: Path) -> StackCredentials | None:
    """The credentials in `path`, None if there is no such file; refuses a file others can read."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise CredentialsFileError(f"{path}: cannot open the local stack's credentials ({error.strerror}); "
                                   "a symbolic link is refused") from None
    with os.fdopen(descriptor) as handle:
        details = os.fstat(handle.fileno())
        if details.st_uid != os.getuid() or details.st_mode & 0o077:
            raise CredentialsFileError(
                f"{path}: the local stack's credentials must belong to you and be readable by you only "
                f"(mode {oct(details.st_mode & 0o777)}); delete the file and restart the stack to get new ones")
        try:
            document = json.load(handle)
            return StackCredentials(document["aws_access_key_id"], document["aws_secret_access_key"],
                                    document["region_name"])
        except (ValueError, KeyError, TypeError) as error:
            raise CredentialsFileError(f"{path}: not a local stack credentials file ({error}); delete it and "
                                       "restart the stack to get new ones") from None


# --- checking a request -----------------------------------------------------------------------

# What a refusal is, per error family: (HTTP status, code for JSON services, code for query/XML services).
_REFUSALS = {
    "host": (403, "AccessDeniedException", "AccessDenied"),
    "browser": (403, "AccessDeniedException", "AccessDenied"),
    "unsigned": (403, "MissingAuthenticationTokenException", "MissingAuthenticationToken"),
    "malformed": (400, "IncompleteSignatureException", "IncompleteSignature"),
    "unknown-key": (403, "UnrecognizedClientException", "InvalidClientTokenId"),
    "signature": (403, "InvalidSignatureException", "SignatureDoesNotMatch"),
    "expired": (403, "InvalidSignatureException", "RequestTimeTooSkewed"),
}
_S3_CODES = {"unknown-key": "InvalidAccessKeyId", "unsigned": "AccessDenied", "malformed": "AuthorizationQueryParametersError"}
HOW_TO_SIGN = ("the local stack accepts only requests signed with the credentials it generated "
               f"(<state dir>/{CREDENTIALS_FILE}; `diversity-monitor local up` prints them as export lines)")


@dataclass(frozen=True)
class Refusal:
    kind: str  # a key of _REFUSALS
    message: str
    signing_name: str | None = None


@dataclass(frozen=True)
class _Signature:
    access_key_id: str
    date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str
    timestamp: str
    expires: int | None  # presigned URLs only
    presigned: bool


class RequestGuard:
    """The three checks of the module docstring, for one stack (its port and credentials)."""

    def __init__(self, credentials: StackCredentials, port: int, clock=time.time) -> None:
        self.credentials = credentials
        self.hosts = frozenset({f"127.0.0.1:{port}", f"localhost:{port}"})
        self._clock = clock

    def check(self, request: WireRequest) -> Refusal | None:
        host = request.headers.get("host", "")
        if host.lower() not in self.hosts:
            return Refusal("host", f"Host {host!r} is not this local stack ({' or '.join(sorted(self.hosts))}): "
                                   "requests for other names (a rebound DNS name, a proxy) are refused")
        origin = request.headers.get("origin")
        fetch_site = request.headers.get("sec-fetch-site")
        if (origin is not None or (fetch_site is not None and fetch_site != "none")) and not _opened_link(request):
            return Refusal("browser", f"a request from a web page (Origin {origin or '-'}, Sec-Fetch-Site "
                                      f"{fetch_site or '-'}) is refused: the local stack serves AWS clients only")
        try:
            signature = _parse_signature(request)
        except ValueError as error:
            return Refusal("malformed", f"malformed signature: {error}; {HOW_TO_SIGN}")
        if signature is None:
            return Refusal("unsigned", f"the request is not signed; {HOW_TO_SIGN}")
        if not hmac.compare_digest(signature.access_key_id, self.credentials.access_key_id):
            return Refusal("unknown-key", f"access key {signature.access_key_id!r} is not this stack's; {HOW_TO_SIGN}",
                           signature.service)
        problem = self._time_problem(signature)
        if problem:
            return Refusal("expired", problem, signature.service)
        expected = _expected_signature(request, signature, self.credentials)
        if not hmac.compare_digest(expected, signature.signature):
            return Refusal("signature", "the request signature does not match the one calculated with this stack's "
                                        f"secret key; {HOW_TO_SIGN}", signature.service)
        return None

    def _time_problem(self, signature: _Signature) -> str | None:
        try:
            signed_at = timegm(time.strptime(signature.timestamp, _SIGV4_TIME))
        except ValueError:
            return f"X-Amz-Date {signature.timestamp!r} is not a SigV4 timestamp (yyyymmddThhmmssZ)"
        now = self._clock()
        if signature.presigned:
            if now > signed_at + (signature.expires or 0):
                return f"the presigned URL expired (signed at {signature.timestamp}, valid {signature.expires} s)"
            return None
        if abs(now - signed_at) > SIGNATURE_WINDOW_SECONDS:
            return (f"the signature's time {signature.timestamp} is more than 15 minutes from this machine's clock: "
                    "check the clock of the machine that signed it")
        return None


def _opened_link(request: WireRequest) -> bool:
    """A person following a presigned link (a report link in JupyterLab): a top-level GET
    navigation, which a page can trigger but never read, carrying a presigned signature, which
    only the stack's credentials can make. The signature is still checked like any other."""
    return (request.method in ("GET", "HEAD") and request.headers.get("origin") is None
            and request.headers.get("sec-fetch-mode") == "navigate"
            and "X-Amz-Signature=" in request.query)


def _parse_signature(request: WireRequest) -> _Signature | None:
    authorization = request.headers.get("authorization")
    if authorization is not None:
        match = _AUTHORIZATION.match(authorization.strip())
        if not match:
            raise ValueError(f"Authorization must be '{ALGORITHM} Credential=..., SignedHeaders=..., Signature=...'")
        timestamp = request.headers.get("x-amz-date", "")
        return _signature(match["credential"], match["signed"], match["signature"], timestamp, None, presigned=False)
    query = dict(parse_qsl(request.query, keep_blank_values=True))
    if "X-Amz-Signature" not in query:
        return None
    if query.get("X-Amz-Algorithm") != ALGORITHM:
        raise ValueError(f"X-Amz-Algorithm must be {ALGORITHM}")
    try:
        expires = int(query.get("X-Amz-Expires", ""))
    except ValueError:
        raise ValueError("X-Amz-Expires must be a number of seconds") from None
    return _signature(query.get("X-Amz-Credential", ""), query.get("X-Amz-SignedHeaders", ""),
                      query["X-Amz-Signature"], query.get("X-Amz-Date", ""), expires, presigned=True)


def _signature(credential: str, signed: str, signature: str, timestamp: str, expires: int | None, presigned: bool) -> _Signature:
    parts = credential.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request" or not all(parts):
        raise ValueError("Credential must be <access key>/<yyyymmdd>/<region>/<service>/aws4_request")
    headers = tuple(signed.split(";"))
    if "host" not in headers:
        raise ValueError("SignedHeaders must include host")
    return _Signature(parts[0], parts[1], parts[2], parts[3], headers, signature, timestamp, expires, presigned)


def _expected_signature(request: WireRequest, signature: _Signature, credentials: StackCredentials) -> str:
    """The signature botocore's signer computes for this request with the stack's secret."""
    query = request.query
    if signature.presigned:  # the signature signs every query parameter but itself
        query = "&".join(pair for pair in request.query.split("&") if not pair.startswith("X-Amz-Signature="))
    url = f"http://{request.headers.get('host', '')}{request.path}" + (f"?{query}" if query else "")
    headers = {}
    for name in signature.signed_headers:
        values = request.headers.getlist(name) if hasattr(request.headers, "getlist") else [request.headers.get(name, "")]
        headers[name] = ",".join(values)
    aws_request = AWSRequest(method=request.method, url=url, headers=headers, data=request.body)
    aws_request.context["timestamp"] = signature.timestamp
    s3 = signature.service in _S3_SIGNING_NAMES
    if signature.presigned:
        signer_class = S3SigV4QueryAuth if s3 else SigV4QueryAuth
    else:
        signer_class = S3SigV4Auth if s3 else SigV4Auth
    signer = signer_class(Credentials(credentials.access_key_id, credentials.secret_access_key),
                          signature.service, signature.region)
    if signature.date != signature.timestamp[:8]:
        return ""  # a credential scope dated another day than X-Amz-Date never matches
    canonical = signer.canonical_request(aws_request)
    return signer.signature(signer.string_to_sign(aws_request, canonical), aws_request)


# --- answering a refusal ----------------------------------------------------------------------

def refusal_response(refusal: Refusal, found) -> WireResponse:
    """The refusal in the error shape of the protocol the request was written in (`found`:
    (codec, protocol, model) or None); what the stack does not recognise (S3, other services moto
    answers) gets S3's XML error, which botocore reads for any REST-XML service."""
    from diversity_monitor.local import errors

    status, json_code, xml_code = _REFUSALS[refusal.kind]
    if found is not None:
        codec, protocol, model = found
        error = errors.ServiceError(refusal.message)
        error.status = status
        error.code = xml_code if protocol == "query" else json_code
        return codec.error(error, model)
    code = _S3_CODES.get(refusal.kind, xml_code) if refusal.signing_name in _S3_SIGNING_NAMES or refusal.signing_name is None else xml_code
    body = (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>"
            f"<Message>{_xml_escape(refusal.message)}</Message></Error>").encode()
    return WireResponse(status, [("Content-Type", "application/xml")], body)


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# --- signing the control routes ----------------------------------------------------------------

def signed_control_headers(method: str, url: str, body: bytes, credentials: StackCredentials) -> dict[str, str]:
    """Headers that sign a request to a `/_local/` control route (the CLI's `status`, `advance`)."""
    request = AWSRequest(method=method, url=url, data=body, headers={"Content-Type": "application/json"})
    SigV4Auth(Credentials(credentials.access_key_id, credentials.secret_access_key), "local",
              credentials.region_name).add_auth(request)
    return dict(request.headers.items())

