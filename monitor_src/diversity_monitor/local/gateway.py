"""The stack's one URL: our handlers for what we own, moto for everything else.

Every request is identified from botocore's service models: the signing name in the SigV4
credential scope narrows the services, then each protocol's codec recognises its operation
(`X-Amz-Target` for JSON, method + URI template for REST-JSON). A registered operation is
parsed, validated against the model, handed to its handler and serialized back in the
protocol. SageMaker is ours entirely (moto's is a fake that validates nothing), so an
unregistered SageMaker operation answers `UnknownOperationException`; any other request goes to
moto verbatim (method, raw path, query, headers, body).

Control routes for the CLI, demos and tests live under `/_local/` (a prefix no S3 bucket can
have): `GET /_local/status`, `GET /_local/clock`, `POST /_local/advance {"seconds": N}`.

Every request, control routes included, passes `access.RequestGuard` first (its own Host, not
from a web page, signed with the stack's credentials); no answer carries a CORS approval (moto's
`Access-Control-*` headers are dropped), so a browser page can neither send nor read.
Handlers block (model servers, jobs), so each request runs in Starlette's thread pool.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import threading

import urllib3
import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from diversity_monitor.local import errors
from diversity_monitor.local.access import RequestGuard, refusal_response
from diversity_monitor.local.platform import LocalPlatform, StackError
from diversity_monitor.local.protocols import (
    CODECS,
    WireRequest,
    WireResponse,
    check_output,
    protocols_of,
    service_model,
    validate,
    validation_error_for,
)

log = logging.getLogger(__name__)

# Services we answer entirely, by the signing name clients use for them.
OWNED_SERVICES = ("sagemaker", "sagemaker-runtime")
OWNED_SIGNING_NAMES = frozenset(service_model(name).signing_name for name in OWNED_SERVICES)

_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/,\s]+/\d{8}/[^/]+/([^/]+)/aws4_request")
_QUERY_CREDENTIAL = re.compile(r"(?:^|&)X-Amz-Credential=[^&]*?%2F([^%&]+)%2Faws4_request", re.IGNORECASE)
# Hop-by-hop headers (RFC 9110 7.6.1), plus those the proxy recomputes for its own connection.
_NOT_FORWARDED = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "transfer-encoding", "upgrade", "expect", "host", "content-length",
})
_ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]
# Answers never approve a cross-origin read (moto's server approves every origin).
_CORS_PREFIX = "access-control-"


def signing_name(request: WireRequest) -> str | None:
    """The service a SigV4-signed request was signed for (header or presigned query)."""
    match = _CREDENTIAL_SCOPE.search(request.headers.get("authorization", ""))
    if match:
        return match.group(1)
    match = _QUERY_CREDENTIAL.search(request.query)
    return match.group(1) if match else None


class Gateway:
    def __init__(self, platform: LocalPlatform) -> None:
        self.platform = platform
        self.guard = RequestGuard(platform.credentials, int(platform.url.rsplit(":", 1)[1]))
        self._moto = urllib3.PoolManager(maxsize=32, retries=False, timeout=urllib3.Timeout(connect=5.0, read=300.0))

    # --- identification -----------------------------------------------------------------------

    def _candidates(self, signed_for: str | None) -> list[str]:
        services = list(dict.fromkeys([*OWNED_SERVICES, *self.platform.registered_services()]))
        return [name for name in services if signed_for is None or service_model(name).signing_name == signed_for]

    def identify(self, request: WireRequest):
        """(service, operation, codec, URI captures) for a request we recognise, else None."""
        for service in self._candidates(signing_name(request)):
            model = service_model(service)
            for protocol in protocols_of(model):
                codec = CODECS.get(protocol)
                found = codec.operation(request, model) if codec else None
                if found:
                    return service, found[0], codec, found[1]
        return None

    # --- access -------------------------------------------------------------------------------

    def refused(self, request: WireRequest) -> WireResponse | None:
        """The refusal answer for a request that fails `access.RequestGuard`, else None."""
        refusal = self.guard.check(request)
        if refusal is None:
            return None
        log.warning("refused %s %s: %s", request.method, request.path, refusal.message)
        return refusal_response(refusal, self._error_codec(request))

    def _error_codec(self, request: WireRequest):
        """(codec, protocol, model) the request was written in, so boto3 reads the refusal; None
        for what only moto answers (S3's XML errors fit those)."""
        found = self.identify(request)
        if found is None:
            return None
        service, _, codec, _ = found
        protocol = next(name for name, known in CODECS.items() if known is codec)
        return codec, protocol, service_model(service)

    # --- dispatch -----------------------------------------------------------------------------

    def dispatch(self, request: WireRequest) -> WireResponse:
        refusal = self.refused(request)
        if refusal is not None:
            return refusal
        found = self.identify(request)
        signed_for = signing_name(request)
        if found is None:
            if signed_for in OWNED_SIGNING_NAMES:
                return self._unknown_operation(request, signed_for)
            return self.proxy(request)
        service, operation_name, codec, captures = found
        handler = self.platform.handler(service, operation_name)
        model = service_model(service)
        if handler is None and model.signing_name not in OWNED_SIGNING_NAMES:
            return self.proxy(request)  # a service we extend, an operation moto answers
        try:
            if handler is None:
                raise errors.UnknownOperation(
                    f"the local stack does not implement {model.service_id} {operation_name} "
                    f"(implemented: {', '.join(self.platform.registered_operations(service)) or 'none'})"
                )
            operation = model.operation_model(operation_name)
            params = codec.parse(request, operation, captures)
            validate(params, operation, validation_error_for(service))
            result = handler(self.platform, params) or {}
            check_output(result, operation)
            return codec.serialize(result, operation)
        except errors.ServiceError as error:
            return codec.error(error, model)
        except Exception as error:  # a handler bug: answer like AWS's 500, keep the traceback in the log
            log.exception("%s.%s failed", service, operation_name)
            return codec.error(errors.ServiceError(f"{operation_name} failed in the local stack: {error}"), model)

    def _unknown_operation(self, request: WireRequest, signed_for: str) -> WireResponse:
        service = next(name for name in OWNED_SERVICES if service_model(name).signing_name == signed_for)
        model = service_model(service)
        named = CODECS["json"].known_operation(request, model)
        what = f"operation {named!r}" if named else f"{request.method} {request.path}"
        error = errors.UnknownOperation(f"{what} is not a {model.service_id} operation the local stack recognises")
        return CODECS[protocols_of(model)[0]].error(error, model)

    # --- moto -----------------------------------------------------------------------------------

    def proxy(self, request: WireRequest) -> WireResponse:
        headers = urllib3.HTTPHeaderDict()
        for key, value in request.headers.items():
            if key.lower() not in _NOT_FORWARDED:
                headers.add(key, value)
        url = self.platform.moto_url + request.path + (f"?{request.query}" if request.query else "")
        try:
            answer = self._moto.urlopen(
                request.method, url, body=request.body or None, headers=headers,
                redirect=False, decode_content=False, preload_content=True,
            )
        except urllib3.exceptions.HTTPError as error:
            message = f"moto at {self.platform.moto_url} did not answer: {error}"
            return WireResponse(502, [("Content-Type", "text/plain")], message.encode())
        out = [(key, value) for key, value in answer.headers.items()
               if key.lower() not in _NOT_FORWARDED - {"content-length"} and not key.lower().startswith(_CORS_PREFIX)]
        if request.method != "HEAD" and not any(key.lower() == "content-length" for key, _ in out):
            out.append(("Content-Length", str(len(answer.data))))
        return WireResponse(answer.status, out, answer.data)


def _to_starlette(response: WireResponse, head: bool = False) -> Response:
    out = Response(content=b"" if head else response.body, status_code=response.status)
    raw = [(key.lower().encode("latin-1"), str(value).encode("latin-1")) for key, value in response.headers]
    if not head and not any(key == b"content-length" for key, _ in raw):
        raw.append((b"content-length", str(len(response.body)).encode()))
    out.raw_headers = raw
    return out


async def _wire(request: Request) -> WireRequest:
    return WireRequest(
        method=request.method,
        path=request.scope.get("raw_path", request.url.path.encode()).decode("latin-1").split("?", 1)[0],
        query=request.scope.get("query_string", b"").decode("latin-1"),
        headers=request.headers,
        body=await request.body(),
    )


def create_app(platform: LocalPlatform) -> Starlette:
    gateway = Gateway(platform)

    def guarded(route):
        """A control route behind the same access checks as every AWS call."""
        async def endpoint(request: Request) -> Response:
            refusal = gateway.refused(await _wire(request))
            if refusal is not None:
                return _to_starlette(refusal)
            return await route(request)
        return endpoint

    async def everything(request: Request) -> Response:
        response = await run_in_threadpool(gateway.dispatch, await _wire(request))
        return _to_starlette(response, head=request.method == "HEAD")

    @guarded
    async def status(request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(platform.status))

    @guarded
    async def clock(request: Request) -> Response:
        return JSONResponse({"now": platform.clock.now().isoformat(), "simulated": platform.clock.simulated})

    @guarded
    async def advance(request: Request) -> Response:
        try:
            seconds = json.loads(await request.body()).get("seconds")
        except (ValueError, AttributeError):
            return JSONResponse({"error": 'body must be a JSON object {"seconds": N}'}, status_code=400)
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds <= 0:
            return JSONResponse({"error": f"seconds must be a positive number, got {seconds!r}"}, status_code=400)
        try:
            now = await run_in_threadpool(platform.advance, seconds)
        except StackError as error:
            return JSONResponse({"error": str(error)}, status_code=409)
        return JSONResponse({"now": now.isoformat(), "simulated": True})

    routes = [
        Route("/_local/status", status, methods=["GET"]),
        Route("/_local/clock", clock, methods=["GET"]),
        Route("/_local/advance", advance, methods=["POST"]),
        Route("/{path:path}", everything, methods=_ALL_METHODS),
    ]
    return Starlette(routes=routes)


class GatewayServer:
    """uvicorn serving the gateway on an already-bound socket, in a background thread."""

    def __init__(self, platform: LocalPlatform, sock: socket.socket) -> None:
        config = uvicorn.Config(
            create_app(platform),
            log_level="warning",
            access_log=False,
            lifespan="off",
            server_header=False,  # proxied answers carry moto's headers, not ours
            date_header=False,
            timeout_keep_alive=30,
        )
        self._server = uvicorn.Server(config)
        self._sock = sock
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, name="local-gateway", daemon=True)
        self._thread.start()
        while not self._server.started:
            if not self._thread.is_alive():
                raise StackError("the gateway failed to start (see the log above)")
            self._thread.join(0.01)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self._sock.close()
