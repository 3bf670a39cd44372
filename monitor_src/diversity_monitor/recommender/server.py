"""The recommender under the SageMaker inference container contract (Starlette on uvicorn).

Contract: the platform starts the image as `docker run IMAGE serve`, extracts the model archive
into /opt/ml/model, and talks HTTP on port 8080 (or `SAGEMAKER_BIND_TO_PORT`): `GET /ping`
answers 200 once the model is loaded; `POST /invocations` takes the request body InvokeEndpoint
was given and returns the body the caller gets. Everything the caller did wrong is a 4xx with
`{"error": reason}`; Starlette's error middleware turns anything unexpected into a bare 500
without a traceback. `recommend()` is CPU work, so it runs in Starlette's thread pool: the event
loop stays free to answer /ping (the platform's health check) while requests are scored.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from diversity_monitor.aws import container_paths
from diversity_monitor.recommender import model

PORT_ENV = "SAGEMAKER_BIND_TO_PORT"
DEFAULT_PORT = 8080
LATENCY_ENV = "RECOMMENDER_LATENCY_MS"  # SageMaker hands a model's `Environment` to its container
MAX_BODY_BYTES = 6 * 1024 * 1024  # InvokeEndpoint's payload limit
JSON = "application/json"


class LatencyError(ValueError):
    """A fixed latency that is not a finite number of milliseconds >= 0; the message names its source."""


def parse_latency_ms(value: str | float, source: str) -> float:
    """The one check of the fixed latency option, wherever it comes from (flag, environment, code)."""
    try:
        latency = float(value)
    except (TypeError, ValueError):
        raise LatencyError(f"{source}={value!r} is not a number of milliseconds") from None
    if not math.isfinite(latency) or latency < 0:  # asyncio.sleep(nan) never returns
        raise LatencyError(f"{source}={value!r}: the latency must be a finite number of milliseconds >= 0")
    return latency


def latency_from_environment() -> float:
    return parse_latency_ms(os.environ.get(LATENCY_ENV, "0"), LATENCY_ENV)

def _json(payload: dict, status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type=JSON)


def _error(status: int, reason: str) -> Response:
    return _json({"error": reason}, status)


def create_app(model_dir: str | Path | None = None, latency_ms: float = 0) -> Starlette:
    """An app serving the model in `model_dir` (default: /opt/ml/model through container_paths).

    The loaded model is `app.state.recommender`, read per request."""
    delay = parse_latency_ms(latency_ms, "latency_ms") / 1000.0
    directory = Path(model_dir) if model_dir is not None else container_paths.resolve(container_paths.MODEL_DIR)
    recommender = model.load(directory)  # fails here, before serving, if the artifact is bad

    async def ping(request: Request) -> Response:
        return _json({"status": "healthy", "model_version": request.app.state.recommender.version})

    async def invocations(request: Request) -> Response:
        media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media_type != JSON:
            return _error(415, f"Content-Type must be {JSON}, got {media_type or 'none'!r}")
        declared = _declared_length(request)
        if declared is not None and declared > MAX_BODY_BYTES:  # refused before reading it
            return _error(413, f"request body is {declared} bytes; the limit is {MAX_BODY_BYTES}")
        body = bytearray()
        async for chunk in request.stream():  # a chunked body has no length: counted as it arrives
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                return _error(413, f"request body is over {MAX_BODY_BYTES} bytes, the limit")
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as error:
            return _error(400, f"request body is not valid JSON: {error}")
        if delay:
            await asyncio.sleep(delay)  # fixed latency for benchmarks; other requests go on meanwhile
        try:
            return _json(await run_in_threadpool(request.app.state.recommender.recommend, payload))
        except model.RequestError as error:
            return _error(400, str(error))

    async def http_error(request: Request, error: HTTPException) -> Response:
        return _error(error.status_code, error.detail)

    routes = [
        Route("/ping", ping, methods=["GET"]),
        Route("/invocations", invocations, methods=["POST"]),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error})
    app.state.recommender = recommender
    app.state.model_version = recommender.version
    return app


def _declared_length(request: Request) -> int | None:
    text = request.headers.get("content-length")
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        raise HTTPException(400, f"Content-Length {text[:40]!r} is not a number") from None


def default_port() -> int:
    text = os.environ.get(PORT_ENV)
    if text is None:
        return DEFAULT_PORT
    try:
        port = int(text)
    except ValueError:
        raise ValueError(f"{PORT_ENV}={text!r} is not a port number") from None
    if not 0 < port < 65536:
        raise ValueError(f"{PORT_ENV}={text!r} is outside 1..65535")
    return port


def default_host() -> str:
    """All interfaces inside a SageMaker container (the platform connects from outside it),
    loopback everywhere else (the local stack maps /opt/ml to a folder, a developer's shell)."""
    mapped = bool(os.environ.get(container_paths.ML_ROOT_ENV))
    in_container = not mapped and Path(str(container_paths.CONTAINER_ML_ROOT)).is_dir()
    return "0.0.0.0" if in_container else "127.0.0.1"


def serve(
    model_dir: str | Path | None = None,
    host: str | None = None,
    port: int | None = None,
    latency_ms: float | None = None,
    access_log: bool = False,
) -> None:
    """Run the server in the foreground until SIGINT/SIGTERM (uvicorn handles both); the latency
    defaults to $RECOMMENDER_LATENCY_MS, else 0."""
    latency_ms = latency_from_environment() if latency_ms is None else latency_ms
    app = create_app(model_dir, latency_ms)
    print(f"recommender: serving model {app.state.model_version} (latency {latency_ms} ms)", file=sys.stderr, flush=True)
    uvicorn.run(
        app,
        host=host or default_host(),
        port=default_port() if port is None else port,
        access_log=access_log,
        log_level="info",
    )


@contextlib.contextmanager
def serving(
    model_dir: str | Path | Starlette, host: str = "127.0.0.1", port: int = 0, latency_ms: float = 0
) -> Iterator[str]:
    """The real server in a background thread, for tests, notebooks and benchmarks: a model
    directory's app (create_app), or an app already made.

    Yields its base URL. Port 0 takes a free port from the OS, so parallel runs never collide.
    """
    app = model_dir if isinstance(model_dir, Starlette) else create_app(model_dir, latency_ms)
    config = uvicorn.Config(app, host=host, port=port, access_log=False, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"recommender-{host}:{port}", daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError(f"recommender server on {host}:{port} exited during startup")
            thread.join(0.01)
        bound_port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://{host}:{bound_port}"
    finally:
        server.should_exit = True
        thread.join(10)
