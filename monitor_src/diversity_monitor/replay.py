"""Replaying held-out sessions against an endpoint through SageMaker Runtime InvokeEndpoint.

The client is built the ordinary way (`boto3` session + `sagemaker-runtime`), so boto3's own
`AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME` decide where it goes.

Retries: botocore's own retry loop is switched off (max_attempts=1) and tenacity retries
instead, because the cases that matter here are not all botocore's: a model container's 5xx
reaches the caller as `ModelError` (HTTP 424) with the original status inside, which botocore
never retries. Throttling, 5xx, a model's 5xx/429 and transport failures (timeouts, refused or
dropped connections, a response cut short) are retried with exponential backoff and jitter.
Whatever a call ends with, a botocore error fails that session only, its kind counted in
`replay_errors`; it never stops the run.

Every call carries `InferenceId = diversity-replay-<run>-<session>` so that captured traffic can
tell the monitor's own calls apart from live users. InvokeEndpoint's service model allows 1-64
printable ASCII characters there; a session id that does not fit (too long, a newline, non-ASCII)
is replaced by a hash of it, so the id stays deterministic and the prefix stays.

`observe_serving` records which endpoint config served the replay (DescribeEndpoint before and
after, DescribeEndpointConfig for the models). It never fails a run: what it cannot read is
recorded as its `error`.
"""

from __future__ import annotations

import hashlib
import http.client
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Sequence

import boto3
import orjson
import urllib3.exceptions
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError as BotocoreConnectionError,
    HTTPClientError,
    IncompleteReadError,
)
from tenacity import RetryError, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter
from tqdm.auto import tqdm

from diversity_monitor import service_schema
from diversity_monitor.clock import utcnow
from diversity_monitor.contract import REPLAY_INFERENCE_PREFIX, ReplaySettings
from diversity_monitor.inputs import InputError, Session
from diversity_monitor.model_monitor_files import Serving
from diversity_monitor.response_path import compile_response_path

THROTTLING_CODES = {"ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded"}
# Transport failures worth another attempt: refused/dropped connections, timeouts, a body cut short.
TRANSPORT_ERRORS = (
    BotocoreConnectionError, HTTPClientError, IncompleteReadError,
    urllib3.exceptions.HTTPError, http.client.HTTPException, ConnectionError, TimeoutError,
)
# What one call can end with that fails its session, not the run.
CALL_ERRORS = (ClientError, BotoCoreError, *TRANSPORT_ERRORS)
INFERENCE_ID_DIGEST = 16  # hex characters of sha256(session_id) when the id must be derived


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


def _inference_id_problems(candidate: str) -> list:
    shape = service_schema.operation_model("sagemaker-runtime", "InvokeEndpoint").input_shape.members["InferenceId"]
    return service_schema.constraint_problems(candidate, shape)


def inference_id(run_id: str, session_id: str) -> str:
    """`diversity-replay-<run>-<session>`; `diversity-replay-<run>-<sha256(session)[:16]>` when that is not valid.

    Valid = what InvokeEndpoint's service model accepts (1-64 printable ASCII characters). The run
    part is shortened before the digest is, so ids of one run stay distinct.
    """
    candidate = f"{REPLAY_INFERENCE_PREFIX}{run_id}-{session_id}"
    if not _inference_id_problems(candidate):
        return candidate
    digest = hashlib.sha256(session_id.encode("utf-8")).hexdigest()[:INFERENCE_ID_DIGEST]
    limit = service_schema.operation_model("sagemaker-runtime", "InvokeEndpoint").input_shape.members["InferenceId"].metadata["max"]
    head = f"{REPLAY_INFERENCE_PREFIX}{run_id}"[: limit - INFERENCE_ID_DIGEST - 1]
    return f"{head}-{digest}"


def inference_ids(run_id: str, sessions: Sequence[Session]) -> list[str]:
    """Each session's InferenceId; InputError if two sessions would share one (so replay traffic stays traceable)."""
    ids = [inference_id(run_id, session.session_id) for session in sessions]
    if len(set(ids)) != len(ids):
        owners: dict[str, str] = {}
        for session, value in zip(sessions, ids):
            if value in owners:
                raise InputError(f"validation set: sessions {owners[value]!r} and {session.session_id!r} map to the "
                                 f"same InferenceId {value!r}; rename one")
            owners[value] = session.session_id
    return ids


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

    def _invoke(self, session: Session, inference: str) -> tuple[bytes, str | None]:
        request = {
            "EndpointName": self.endpoint_name,
            "Body": orjson.dumps(session.request),
            "ContentType": "application/json",
            "Accept": "application/json",
            "InferenceId": inference,
        }
        if self.settings.target_variant:
            request["TargetVariant"] = self.settings.target_variant
        response = self.client.invoke_endpoint(**request)
        return response["Body"].read(), response.get("InvokedProductionVariant")

    def replay_one(self, session: Session, inference: str | None = None) -> SessionOutcome:
        inference = inference or inference_id(self.run_id, session.session_id)
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
                    body, variant = self._invoke(session, inference)
        except RetryError as error:
            cause = error.last_attempt.exception()
            return SessionOutcome(session.session_id, None, describe_error(cause), attempts,
                                  time.perf_counter() - started)
        except CALL_ERRORS as error:
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
        ids = inference_ids(self.run_id, sessions)
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=self.settings.concurrency) as pool:
            results = pool.map(self.replay_one, sessions, ids)
            outcomes = tuple(tqdm(results, total=len(sessions), desc=f"replay {self.endpoint_name}",
                                  unit="session", disable=not progress, mininterval=1.0))
        return ReplayResult(outcomes, time.perf_counter() - started)


# --- which endpoint config served the replay ----------------------------------------------------

def control_plane_client():
    """SageMaker's control plane, briefly: a Describe that hangs must not hold the run up."""
    config = Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=5, read_timeout=10)
    return boto3.session.Session().client("sagemaker", config=config)


@dataclass(frozen=True)
class ServingProbe:
    """DescribeEndpoint (+ DescribeEndpointConfig) at one moment."""

    endpoint_config: str | None
    status: str | None
    models: dict[str, str | None]
    at: datetime
    error: str | None


def describe_serving(endpoint_name: str, client, with_models: bool = True) -> ServingProbe:
    at = utcnow()
    try:
        endpoint = client.describe_endpoint(EndpointName=endpoint_name)
        config_name = endpoint.get("EndpointConfigName")
        models: dict[str, str | None] = {}
        if with_models and config_name:
            config = client.describe_endpoint_config(EndpointConfigName=config_name)
            models = {variant["VariantName"]: variant.get("ModelName") for variant in config.get("ProductionVariants", [])}
        return ServingProbe(config_name, endpoint.get("EndpointStatus"), models, at, None)
    except CALL_ERRORS as error:
        return ServingProbe(None, None, {}, at, describe_error(error))


def observe_serving(before: ServingProbe, after: ServingProbe) -> Serving:
    """The serving record: the config before the replay, and whether it (or its traffic) moved during it.

    `Updating` counts as a change: traffic shifts to the new fleet while the endpoint updates,
    so such a replay was not served by one config.
    """
    if before.error:
        return Serving(None, {}, before.at, False, f"before the replay: {before.error}")
    if after.error:
        return Serving(before.endpoint_config, before.models, before.at, False,
                       f"after the replay (a change during it would not show): {after.error}")
    changed = before.endpoint_config != after.endpoint_config or "Updating" in (before.status, after.status)
    return Serving(before.endpoint_config, before.models, before.at, changed, None)
