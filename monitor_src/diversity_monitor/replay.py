"""Replaying held-out sessions against an endpoint through SageMaker Runtime InvokeEndpoint.

The client is built the ordinary way (`boto3` session + `sagemaker-runtime`), so boto3's own
`AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME` decide where it goes.

Retries: botocore's own retry loop is switched off (max_attempts=1) and tenacity retries
instead, because the cases that matter here are not all botocore's: a model container's 5xx
reaches the caller as `ModelError` (HTTP 424) with the original status inside, which botocore
never retries. Throttling, 5xx, a model's 5xx/429 and timeouts/connection failures are retried
with exponential backoff and jitter; anything else (a 4xx from the model) fails that session.

Every call carries `InferenceId = diversity-replay-<run>-<session>` so that captured traffic can
tell the monitor's own calls apart from live users.
"""

from __future__ import annotations

import hashlib
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Sequence

import boto3
import orjson
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    ReadTimeoutError,
    ConnectTimeoutError,
)
from tenacity import RetryError, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter
from tqdm.auto import tqdm

from diversity_monitor.contract import REPLAY_INFERENCE_PREFIX, ReplaySettings
from diversity_monitor.inputs import Session
from diversity_monitor.response_path import compile_response_path

THROTTLING_CODES = {"ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded"}
TRANSPORT_ERRORS = (ConnectionClosedError, EndpointConnectionError, ReadTimeoutError, ConnectTimeoutError)
INFERENCE_ID_LIMIT = 64  # InvokeEndpoint's InferenceId is 1-64 characters


@dataclass(frozen=True)
class SessionOutcome:
    session_id: str
    article_ids: tuple[str, ...] | None  # None when the session could not be replayed
    error: str | None
    attempts: int
    seconds: float
    variant: str | None = None


@dataclass(frozen=True)
class ReplayResult:
    outcomes: tuple[SessionOutcome, ...]
    wall_seconds: float

    @property
    def attempted(self) -> int:
        return len(self.outcomes)

    @property
    def succeeded(self) -> int:
        return sum(outcome.article_ids is not None for outcome in self.outcomes)

    @property
    def success_rate(self) -> float:
        return self.succeeded / self.attempted if self.attempted else 0.0

    def ranked_lists(self) -> list[tuple[str, ...]]:
        return [outcome.article_ids for outcome in self.outcomes if outcome.article_ids is not None]

    def errors(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for outcome in self.outcomes:
            if outcome.error:
                kind = outcome.error.split(":", 1)[0]
                counts[kind] = counts.get(kind, 0) + 1
        return counts


def inference_id(run_id: str, session_id: str) -> str:
    """`diversity-replay-<run>-<session>`, shortened with a hash when it would pass 64 chars."""
    candidate = f"{REPLAY_INFERENCE_PREFIX}{run_id}-{session_id}"
    if len(candidate) <= INFERENCE_ID_LIMIT:
        return candidate
    digest = hashlib.sha1(session_id.encode()).hexdigest()[:16]
    return f"{REPLAY_INFERENCE_PREFIX}{run_id}-{digest}"[:INFERENCE_ID_LIMIT]


def runtime_client(settings: ReplaySettings):
    config = Config(
        retries={"max_attempts": 1, "mode": "standard"},  # tenacity owns retries (see module doc)
        read_timeout=settings.invoke_timeout,
        connect_timeout=min(settings.invoke_timeout, 10.0),
        max_pool_connections=max(10, settings.concurrency),
    )
    return boto3.session.Session().client("sagemaker-runtime", config=config)


def is_retryable(error: BaseException) -> bool:
    if isinstance(error, TRANSPORT_ERRORS):
        return True
    if not isinstance(error, ClientError):
        return False
    code = error.response.get("Error", {}).get("Code", "")
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    if code in THROTTLING_CODES or status == 429 or status >= 500:
        return True
    if code == "ModelError":  # the model container's own status travels inside
        original = error.response.get("OriginalStatusCode") or 0
        return int(original) == 429 or int(original) >= 500
    return False


def describe_error(error: BaseException) -> str:
    if isinstance(error, ClientError):
        info = error.response.get("Error", {})
        return f"{info.get('Code', 'ClientError')}: {info.get('Message', '')}"[:300]
    return f"{type(error).__name__}: {error}"[:300]


class EndpointReplayer:
    """Replays sessions with bounded concurrency; one instance per run."""

    def __init__(self, endpoint_name: str, settings: ReplaySettings, run_id: str, client=None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.endpoint_name = endpoint_name
        self.settings = settings
        self.run_id = run_id
        self.client = client or runtime_client(settings)
        self.extract = compile_response_path(settings.response_path)
        self._sleep = sleep

    def _invoke(self, session: Session) -> tuple[bytes, str | None]:
        request = {
            "EndpointName": self.endpoint_name,
            "Body": orjson.dumps(session.request),
            "ContentType": "application/json",
            "Accept": "application/json",
            "InferenceId": inference_id(self.run_id, session.session_id),
        }
        if self.settings.target_variant:
            request["TargetVariant"] = self.settings.target_variant
        response = self.client.invoke_endpoint(**request)
        return response["Body"].read(), response.get("InvokedProductionVariant")

    def replay_one(self, session: Session) -> SessionOutcome:
        started = time.perf_counter()
        retrying = Retrying(
            retry=retry_if_exception(is_retryable),
            stop=stop_after_attempt(self.settings.max_attempts),
            wait=wait_exponential_jitter(multiplier=0.2, max=5.0),
            sleep=self._sleep,
        )
        attempts = 0
        try:
            for attempt in retrying:
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    body, variant = self._invoke(session)
        except RetryError as error:
            cause = error.last_attempt.exception()
            return SessionOutcome(session.session_id, None, describe_error(cause), attempts,
                                  time.perf_counter() - started)
        except (ClientError, *TRANSPORT_ERRORS) as error:
            return SessionOutcome(session.session_id, None, describe_error(error), attempts,
                                  time.perf_counter() - started)
        try:
            article_ids = tuple(self.extract(orjson.loads(body)))
        except (orjson.JSONDecodeError, ValueError) as error:
            return SessionOutcome(session.session_id, None, f"BadResponse: {error}"[:300], attempts,
                                  time.perf_counter() - started)
        return SessionOutcome(session.session_id, article_ids, None, attempts,
                              time.perf_counter() - started, variant)

    def replay(self, sessions: Sequence[Session], progress: bool = True) -> ReplayResult:
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=self.settings.concurrency) as pool:
            results = pool.map(self.replay_one, sessions)
            outcomes = tuple(tqdm(results, total=len(sessions), desc=f"replay {self.endpoint_name}",
                                  unit="session", disable=not progress, mininterval=1.0))
        return ReplayResult(outcomes, time.perf_counter() - started)
