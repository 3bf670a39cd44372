"""Replaying held-out sessions against an endpoint through SageMaker Runtime InvokeEndpoint.

The client is built the ordinary way (`boto3` session + `sagemaker-runtime`), so boto3's own
`AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME` decide where it goes.

Retries: botocore's own retry loop is switched off (total_max_attempts=1) and tenacity retries
instead, because the cases that matter here are not all botocore's: a model container's 5xx
reaches the caller as `ModelError` (HTTP 424) with the original status inside, which botocore
never retries. Throttling, 5xx, a model's 5xx/429 and transport failures (timeouts, refused or
dropped connections, a response cut short) are retried with exponential backoff and jitter.
Whatever a call ends with, a botocore error fails that session only, its kind counted in
`replay_errors`; it never stops the run.

Deadlines: `--invoke-timeout` is each call's wall-clock deadline, not only botocore's per-read
timeout (an endpoint that trickles a byte a second never trips a read timeout): when it passes,
the call's socket is shut down, and the call ends as `CallDeadlineExceeded`, a transport failure
retried like any other. The replay as a whole has a budget (`ReplaySettings.budget`, derived from
the report timeout): once spent, no call starts and the sessions left end as
`ReplayBudgetSpent`, so a slow endpoint makes an incomplete replay that the run reports, not a
run that dies on its timeout.

Concurrency: `--concurrency` calls in flight, on threads. botocore spends about 2 ms of CPU per
call on the caller's side (signing, headers, urllib3), so one process tops out near 500 calls/s
whatever the concurrency; `--replay-processes N` spreads the calls in flight over N worker
processes (a forkserver, so a Jupyter kernel's threads are never forked), each with its own
client. The pool lives as long as the replayer: use it as a context manager, or `close()` it.

Every call carries `InferenceId = diversity-replay-<run>-<session>` so that captured traffic can
tell the monitor's own calls apart from live users. InvokeEndpoint's service model allows 1-64
printable ASCII characters there; a session id that does not fit (too long, a newline, non-ASCII)
is replaced by a hash of it, so the id stays deterministic and the prefix stays.

`observe_serving` records which endpoint config served the replay (DescribeEndpoint before and
after, DescribeEndpointConfig for the models). It never fails a run: what it cannot read is
recorded as its `error`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import multiprocessing
import os
import socket
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import datetime

import boto3
import orjson
import urllib3.exceptions
from botocore.awsrequest import AWSHTTPConnection, AWSHTTPConnectionPool, AWSHTTPSConnection, AWSHTTPSConnectionPool
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    IncompleteReadError,
)
from botocore.exceptions import (
    ConnectionError as BotocoreConnectionError,
)
from tenacity import RetryError, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter
from tenacity.stop import stop_base
from tqdm import tqdm  # text progress to stderr: no ipywidgets warning in the report kernel

from diversity_monitor.aws import service_schema
from diversity_monitor.clock import iso_z, utcnow
from diversity_monitor.conventions import REPLAY_INFERENCE_PREFIX
from diversity_monitor.job.contract import ReplaySettings
from diversity_monitor.job.inputs import InputError, Session
from diversity_monitor.measures.response_path import compile_response_path

THROTTLING_CODES = {"ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded"}


class CallDeadlineExceeded(TimeoutError):
    """One InvokeEndpoint call outlived its wall-clock deadline (`--invoke-timeout`)."""


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


# --- each call's wall-clock deadline -----------------------------------------------------------
# botocore's timeouts bound each socket operation; a deadline for the whole call needs the call's
# socket. The connection classes below tell the call in progress on their thread which
# connection carries it; when the call's timer fires, that socket is shut down, which ends
# whatever read is blocked on it.
_current_call = threading.local()


class CallDeadline:
    """The wall-clock deadline of the InvokeEndpoint call made on this thread inside `with`."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._connection = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(max(seconds, 0.0), self._expire)
        self._timer.daemon = True

    def __enter__(self) -> CallDeadline:
        _current_call.deadline = self
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()
        _current_call.deadline = None

    def attach(self, connection) -> None:
        with self._lock:
            self._connection = connection
            expired = self.expired
        if expired:
            _shut(connection)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            connection = self._connection
        if connection is not None:
            _shut(connection)


def _shut(connection) -> None:
    sock = getattr(connection, "sock", None)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class _DeadlineAware:
    """Mixed into botocore's connections: report to the thread's call deadline, if any."""

    def request(self, *args, **kwargs):
        deadline = getattr(_current_call, "deadline", None)
        if deadline is not None:
            deadline.attach(self)
        return super().request(*args, **kwargs)

    def getresponse(self, *args, **kwargs):
        deadline = getattr(_current_call, "deadline", None)
        if deadline is not None:
            deadline.attach(self)  # connected by now: an expired deadline shuts the socket here
        return super().getresponse(*args, **kwargs)


class _DeadlineHTTPConnection(_DeadlineAware, AWSHTTPConnection):
    pass


class _DeadlineHTTPSConnection(_DeadlineAware, AWSHTTPSConnection):
    pass


class _DeadlineHTTPPool(AWSHTTPConnectionPool):
    ConnectionCls = _DeadlineHTTPConnection


class _DeadlineHTTPSPool(AWSHTTPSConnectionPool):
    ConnectionCls = _DeadlineHTTPSConnection


def runtime_client(settings: ReplaySettings):
    config = Config(
        # One attempt per call: tenacity owns retries (see module doc). Not `max_attempts: 1`,
        # which botocore reads as one *retry* (two attempts, throttling retried unseen).
        retries={"total_max_attempts": 1, "mode": "standard"},
        read_timeout=settings.invoke_timeout,
        connect_timeout=min(settings.invoke_timeout, 10.0),
        max_pool_connections=max(10, settings.concurrency),
    )
    client = boto3.session.Session().client("sagemaker-runtime", config=config)
    # botocore has no public seam for the connection class: its session keeps the pool classes in
    # one dict that its pool managers share, so swapping them there reaches every pool it makes.
    # tests/test_hardening.py's trickling endpoint fails if a botocore upgrade moves this.
    pools = client._endpoint.http_session._pool_classes_by_scheme
    pools.update({"http": _DeadlineHTTPPool, "https": _DeadlineHTTPSPool})
    return client


class _stop_at(stop_base):
    """tenacity: no further attempt once the replay's budget is spent."""

    def __init__(self, deadline: float | None) -> None:
        self.deadline = deadline

    def __call__(self, retry_state) -> bool:
        return self.deadline is not None and time.time() >= self.deadline


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
    """Replays sessions with bounded concurrency; one instance per run (close() it, or use `with`)."""

    def __init__(self, endpoint_name: str, settings: ReplaySettings, run_id: str, client=None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if settings.processes > 1 and (client is not None or sleep is not time.sleep):
            raise ValueError("a client or sleep can only be given to a replayer that runs in one process "
                             f"(settings.processes is {settings.processes})")
        self.endpoint_name = endpoint_name
        self.settings = settings
        self.run_id = run_id
        self.client = client or runtime_client(settings)
        self.extract = compile_response_path(settings.response_path)
        self._sleep = sleep
        self._pool: ProcessPoolExecutor | None = None
        self._pool_finalizer: weakref.finalize | None = None

    def __enter__(self) -> EndpointReplayer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the worker processes, if any were started."""
        if self._pool_finalizer is not None:
            self._pool_finalizer()  # shuts the pool down, once
        self._pool = self._pool_finalizer = None

    def _invoke(self, session: Session, inference: str, budget_deadline: float | None = None) -> tuple[bytes, str | None]:
        seconds = self.settings.invoke_timeout
        if budget_deadline is not None:
            seconds = min(seconds, budget_deadline - time.time())
        with CallDeadline(seconds) as deadline:
            try:
                return self._send(session, inference)
            except CALL_ERRORS as error:
                if deadline.expired:
                    raise CallDeadlineExceeded(f"no complete answer within {seconds:.1f} s") from error
                raise

    def _send(self, session: Session, inference: str) -> tuple[bytes, str | None]:
        request = {
            "EndpointName": self.endpoint_name,
            "Body": session.wire_body(),  # the exact bytes the validation set holds
            "ContentType": "application/json",
            "Accept": "application/json",
            "InferenceId": inference,
        }
        if self.settings.target_variant:
            request["TargetVariant"] = self.settings.target_variant
        response = self.client.invoke_endpoint(**request)
        return response["Body"].read(), response.get("InvokedProductionVariant")

    def replay_one(self, session: Session, inference: str | None = None,
                   budget_deadline: float | None = None) -> SessionOutcome:
        """One session, retried; `budget_deadline` (a time.time() instant) ends the replay's budget."""
        inference = inference or inference_id(self.run_id, session.session_id)
        started = time.perf_counter()
        if budget_deadline is not None and time.time() >= budget_deadline:
            return SessionOutcome(session.session_id, None, "ReplayBudgetSpent: the replay's budget ran out "
                                  "before this session started", 0, 0.0)
        retrying = Retrying(
            retry=retry_if_exception(is_retryable),
            stop=stop_after_attempt(self.settings.max_attempts) | _stop_at(budget_deadline),
            wait=wait_exponential_jitter(multiplier=0.2, max=5.0),
            sleep=self._sleep,
        )
        attempts = 0
        try:
            for attempt in retrying:
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    body, variant = self._invoke(session, inference, budget_deadline)
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
        """Every session, outcomes in the sessions' order."""
        ids = inference_ids(self.run_id, sessions)
        started = time.perf_counter()
        budget = self.settings.budget
        deadline = time.time() + budget if budget is not None else None
        with tqdm(total=len(sessions), desc=f"replay {self.endpoint_name}", unit="session",
                  disable=not progress, mininterval=1.0) as bar:
            if self.settings.processes == 1 or len(sessions) < 2:
                outcomes = self._replay_threads(sessions, ids, self.settings.concurrency, bar.update, deadline)
            else:
                outcomes = self._replay_processes(sessions, ids, bar.update, deadline)
        return ReplayResult(tuple(outcomes), time.perf_counter() - started)

    def _replay_threads(self, sessions: Sequence[Session], ids: Sequence[str], threads: int,
                        advance: Callable[[int], object], deadline: float | None = None) -> list[SessionOutcome]:
        outcomes = []
        with ThreadPoolExecutor(max_workers=threads) as pool:
            for outcome in pool.map(self.replay_one, sessions, ids, [deadline] * len(sessions)):
                outcomes.append(outcome)
                advance(1)
        return outcomes

    def _replay_processes(self, sessions: Sequence[Session], ids: Sequence[str],
                          advance: Callable[[int], object], deadline: float | None = None) -> list[SessionOutcome]:
        """Contiguous shares of the sessions, one per process, each with its share of the
        concurrency (together exactly `concurrency` calls in flight)."""
        processes = min(self.settings.processes, len(sessions))
        threads = _shares(self.settings.concurrency, processes)
        sizes = _shares(len(sessions), processes)
        pool = self._worker_pool()
        futures, begin = {}, 0
        for size, share_threads in zip(sizes, threads):
            end = begin + size
            future = pool.submit(_replay_share, self.endpoint_name, self._worker_settings(), self.run_id,
                                 list(sessions[begin:end]), list(ids[begin:end]), share_threads, deadline)
            futures[future] = size
            begin = end
        try:
            for future in as_completed(futures):
                future.result()
                advance(futures[future])
        except Exception as error:
            self.close()  # a dead worker breaks the pool; a later replay starts a new one
            raise RuntimeError(f"a replay worker process failed: {type(error).__name__}: {error}") from error
        return [outcome for future in futures for outcome in future.result()]

    def _worker_settings(self) -> ReplaySettings:
        # Each worker builds its client for the largest share of the concurrency.
        largest = _shares(self.settings.concurrency, self.settings.processes)[0]
        return dataclasses.replace(self.settings, concurrency=largest, processes=1)

    def _worker_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # A forkserver child inherits the environment the server started with, which may
            # predate this process's AWS_* settings: every worker starts from the caller's, whole.
            self._pool = ProcessPoolExecutor(self.settings.processes, mp_context=_worker_context(),
                                             initializer=_start_worker, initargs=(dict(os.environ),))
            self._pool_finalizer = weakref.finalize(self, self._pool.shutdown, wait=True, cancel_futures=True)
        return self._pool


def _shares(total: int, parts: int) -> list[int]:
    """`total` cut into `parts` near-equal whole shares, largest first."""
    size, extra = divmod(total, parts)
    return [size + (index < extra) for index in range(parts)]


def _worker_context():
    """forkserver where there is one (Linux, macOS): children fork from a clean single-threaded
    server that has already imported this module, so they start in milliseconds and never
    inherit a Jupyter kernel's or a test runner's threads. Elsewhere spawn."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
        return context
    return multiprocessing.get_context("spawn")


_worker_replayers: dict[tuple, EndpointReplayer] = {}  # in a worker process: the current replay's


def _start_worker(environment: dict[str, str]) -> None:
    os.environ.clear()
    os.environ.update(environment)


def _replay_share(endpoint_name: str, settings: ReplaySettings, run_id: str, sessions: list[Session],
                  ids: list[str], threads: int, deadline: float | None = None) -> list[SessionOutcome]:
    """In a worker process: one share of a replay, on `threads` threads, with this process's client."""
    key = (endpoint_name, settings, run_id)
    replayer = _worker_replayers.get(key)
    if replayer is None:
        _worker_replayers.clear()
        replayer = _worker_replayers[key] = EndpointReplayer(endpoint_name, settings, run_id)
    return replayer._replay_threads(sessions, ids, threads, lambda _: None, deadline)


# --- which endpoint config served the replay ----------------------------------------------------

def control_plane_client():
    """SageMaker's control plane, briefly: a Describe that hangs must not hold the run up."""
    config = Config(retries={"total_max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=10)
    return boto3.session.Session().client("sagemaker", config=config)


@dataclass(frozen=True)
class Serving:
    """Which endpoint config served a replay (DescribeEndpoint right before and after it)."""

    endpoint_config: str | None
    models: Mapping[str, str | None]  # variant name -> model name, from DescribeEndpointConfig
    observed_at: datetime
    changed_during_replay: bool
    error: str | None  # why it could not be read; the run goes on without it
    # DescribeEndpoint's DataCaptureConfig.CurrentSamplingPercentage: what share of live traffic the
    # capture holds (None: capture off, or not known).
    capture_sampling_percentage: int | None = None

    def to_dict(self) -> dict:
        return {
            "endpoint_config": self.endpoint_config,
            "models": dict(self.models),
            "observed_at": iso_z(self.observed_at),
            "changed_during_replay": self.changed_during_replay,
            "error": self.error,
            "capture_sampling_percentage": self.capture_sampling_percentage,
        }


@dataclass(frozen=True)
class ServingProbe:
    """DescribeEndpoint (+ DescribeEndpointConfig) at one moment."""

    endpoint_config: str | None
    status: str | None
    models: dict[str, str | None]
    at: datetime
    error: str | None
    capture_sampling_percentage: int | None = None


def describe_serving(endpoint_name: str, client, with_models: bool = True) -> ServingProbe:
    at = utcnow()
    try:
        endpoint = client.describe_endpoint(EndpointName=endpoint_name)
        config_name = endpoint.get("EndpointConfigName")
        models: dict[str, str | None] = {}
        if with_models and config_name:
            config = client.describe_endpoint_config(EndpointConfigName=config_name)
            models = {variant["VariantName"]: variant.get("ModelName") for variant in config.get("ProductionVariants", [])}
        capture = endpoint.get("DataCaptureConfig") or {}
        sampling = capture.get("CurrentSamplingPercentage") if capture.get("EnableCapture") else None
        return ServingProbe(config_name, endpoint.get("EndpointStatus"), models, at, None, sampling)
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
                       f"after the replay (a change during it would not show): {after.error}",
                       before.capture_sampling_percentage)
    changed = before.endpoint_config != after.endpoint_config or "Updating" in (before.status, after.status)
    return Serving(before.endpoint_config, before.models, before.at, changed, None, before.capture_sampling_percentage)
