"""A small recommender behind SageMaker Runtime's wire protocol, for the monitoring job's tests.

Real HTTP (uvicorn), real InvokeEndpoint requests from boto3. Its behaviour is set per endpoint
name so one server covers the cases the job must handle:
- `healthy-*`: each user's top-10 spread over 7 categories of the test catalog;
- `collapsed-*`: everyone gets the same 10 articles from 2 categories;
- `flaky-*`: every 4th call per session answers ModelError (the model's 500), retried by the job;
- `broken-*`: a fixed share of sessions (those whose id ends in 7 or 8: 20%) always fail with a 500;
- `throttled-*`: the first call of every session is throttled (HTTP 400 ThrottlingException);
- `truncated-*`: the response declares more bytes than it sends, then the connection closes;
- `hostile-*`: everyone gets the same list of `HOSTILE_ARTICLES`, ids carrying HTML (a report must
  show them as text);
- `trickle-*`: a healthy answer sent one byte every `TRICKLE_INTERVAL` seconds: every socket read
  succeeds, so only a wall-clock deadline per call ends it;
- anything else: "Could not find endpoint" as SageMaker answers.
Latency can be added with `latency_ms` via the server's constructor (benchmarks); `on_invoke`
is called with (endpoint, call number) before each answer, for tests that change the world
while a replay runs. As an AWS JSON control plane (POST /, `X-Amz-Target`: SageMaker, CloudWatch)
it answers AccessDeniedException to everything: a role without those permissions.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
import time
from collections import Counter

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

TRICKLE_INTERVAL = 0.5  # seconds between the bytes of a `trickle-*` answer
CATEGORIES = ["news", "sports", "finance", "lifestyle", "health", "travel", "weather", "autos", "tv", "music"]
ARTICLES_PER_CATEGORY = 20


def catalog_rows() -> list[tuple[str, str]]:
    return [(f"{category}-{index:02d}", category) for category in CATEGORIES for index in range(ARTICLES_PER_CATEGORY)]


def _seed(text: str) -> int:
    return int(hashlib.sha1(text.encode()).hexdigest()[:8], 16)


def healthy_list(user: str, k: int) -> list[str]:
    seed = _seed(user)
    categories = [CATEGORIES[(seed + offset) % len(CATEGORIES)] for offset in range(7)]
    return [f"{categories[i % 7]}-{(seed // 7 + i) % ARTICLES_PER_CATEGORY:02d}" for i in range(k)]


# Article ids a compromised or buggy model could return; `hostile_catalog_rows` gives them categories with HTML too.
HOSTILE_ARTICLES = ["<img src=x onerror=\"document.title='pwned'\">", "<script>document.title='pwned'</script>",
                    "<b>bold-id</b>"]
HOSTILE_CATEGORY = "<i>news</i><img src=y onerror=\"document.title='pwned'\">"


def hostile_catalog_rows() -> list[tuple[str, str]]:
    return [*catalog_rows(), *((article, HOSTILE_CATEGORY) for article in HOSTILE_ARTICLES)]


def collapsed_list(user: str, k: int) -> list[str]:
    return [f"{CATEGORIES[i % 2]}-{i // 2:02d}" for i in range(k)]


class _QuietTruncation(logging.Filter):
    """uvicorn logs the short body `truncated-*` sends on purpose as an application error: drop that."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return "Too little data for declared Content-Length" not in str(error)


logging.getLogger("uvicorn.error").addFilter(_QuietTruncation())


def _error(code: str, message: str, status: int, **extra) -> Response:
    body = {"__type": code, "message": message, "Message": message, **extra}
    return Response(json.dumps(body), status_code=status,
                    headers={"x-amzn-ErrorType": code, "Content-Type": "application/x-amz-json-1.1"})


class RuntimeServer:
    def __init__(self, port: int, latency_ms: float = 0.0, on_invoke=None) -> None:
        self.port = port
        self.latency = latency_ms / 1000.0
        self.on_invoke = on_invoke
        self.calls: Counter = Counter()
        self.invocations = 0
        self.bodies: list[bytes] = []  # every InvokeEndpoint body exactly as received
        self.trickles_open = 0  # `trickle-*` answers still being sent
        self.inference_ids: list[str] = []
        self.target_variants: list[str | None] = []
        self.control_plane_calls: list[str] = []
        self._lock = threading.Lock()
        app = Starlette(routes=[Route("/endpoints/{name}/invocations", self.invoke, methods=["POST"]),
                                Route("/", self.control_plane, methods=["POST"])])
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error",
                                                     access_log=False))
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> RuntimeServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("test runtime server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    async def invoke(self, request: Request) -> Response:
        name = request.path_params["name"]
        if self.latency:
            await asyncio.sleep(self.latency)
        raw = await request.body()
        body = json.loads(raw)
        user = body.get("user_id", "")
        inference_id = request.headers.get("x-amzn-sagemaker-inference-id", "")
        with self._lock:
            self.calls[(name, user)] += 1
            self.invocations += 1
            attempt, number = self.calls[(name, user)], self.invocations
            self.inference_ids.append(inference_id)
            self.bodies.append(raw)
            self.target_variants.append(request.headers.get("x-amzn-sagemaker-target-variant"))
        if self.on_invoke is not None:
            await asyncio.to_thread(self.on_invoke, name, number)
        k = int(body.get("k", 10))
        kind = name.split("-", 1)[0]
        if kind == "healthy":
            articles = healthy_list(user, k)
        elif kind == "collapsed":
            articles = collapsed_list(user, k)
        elif kind == "hostile":
            articles = (HOSTILE_ARTICLES * k)[:k]
        elif kind == "flaky" and attempt % 4 == 1:
            return _error("ModelError", "Received server error (500) from primary", 424,
                          OriginalStatusCode=500, OriginalMessage="model crashed")
        elif kind == "flaky":
            articles = healthy_list(user, k)
        elif kind == "broken" and user[-1:] in ("7", "8"):
            return _error("ModelError", "Received server error (500) from primary", 424,
                          OriginalStatusCode=500, OriginalMessage="model crashed")
        elif kind == "broken":
            articles = healthy_list(user, k)
        elif kind == "throttled" and attempt == 1:
            return _error("ThrottlingException", "Rate exceeded", 400)
        elif kind == "throttled":
            articles = healthy_list(user, k)
        elif kind == "trickle":
            payload = json.dumps({"recommendations": [{"article_id": a} for a in healthy_list(user, k)]}).encode()
            return StreamingResponse(self._trickle(payload), media_type="application/json",
                                     headers={"content-length": str(len(payload))})
        elif kind == "truncated":
            body = json.dumps({"recommendations": [{"article_id": a} for a in healthy_list(user, k)]}).encode()
            return Response(body[: len(body) // 2], media_type="application/json",
                            headers={"content-length": str(len(body))})
        else:
            return _error("ValidationError", f"Endpoint {name} of account 123456789012 not found.", 400)
        payload = {"recommendations": [{"article_id": article} for article in articles]}
        return Response(json.dumps(payload), media_type="application/json",
                        headers={"x-Amzn-Invoked-Production-Variant": "AllTraffic"})

    async def _trickle(self, payload: bytes):
        with self._lock:
            self.trickles_open += 1
        try:
            for index in range(len(payload)):
                yield payload[index:index + 1]
                await asyncio.sleep(TRICKLE_INTERVAL)
        finally:
            with self._lock:
                self.trickles_open -= 1

    async def control_plane(self, request: Request) -> Response:
        prefix, _, operation = request.headers.get("x-amz-target", "").rpartition(".")
        service = {"SageMaker": "sagemaker", "GraniteServiceVersion20100801": "cloudwatch"}.get(prefix, prefix)
        with self._lock:
            self.control_plane_calls.append(operation)
        return _error("AccessDeniedException", f"User: arn:aws:sts::123456789012:assumed-role/monitor is not authorized "
                      f"to perform: {service}:{operation}", 400)
