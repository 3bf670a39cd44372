"""Step 7 of the run: its CloudWatch metrics: the Model Monitor metrics file, or PutMetricData ourselves.

Which metrics: built from statistics.json (the run's single record of what it measured).
When replay was too incomplete to trust (`diversity_reliable` false), only the replay figures
are published: the diversity alarm then sees missing data rather than a made-up healthy or
broken value, and the monitor-health alarm (on `replay_success_rate`, missing = breaching)
sees the outage. Publishing a diversity value computed from a handful of sessions could page
the on-call for a capacity problem or, worse, report healthy during an outage.

Live traffic (the hour's capture, job/live.py) publishes `live_lists` whenever the capture was
read, and the same figures as the replay under `live_`-prefixed names only from
`conventions.MIN_LIVE_LISTS` lists up, with the same dimensions.

Dimensions are `Endpoint` and `MonitoringSchedule`, the names the platform's own metrics use
(platform-facts.md): an alarm must name exactly what is published. Both are required: a metric
published without `MonitoringSchedule` is a different metric, which no alarm on
Endpoint+MonitoringSchedule ever sees, so publishing without a schedule name is an error.

Limits (PutMetricData in botocore's service model and the CloudWatch guide, platform-facts.md):
namespace 1-255 characters, not starting with `AWS/` or `:`; metric name 1-255; at most 30
dimensions, each Name 1-255 and Value 1-1024 characters; finite values; timestamps from two
weeks ago to two hours ahead; at most 1000 metrics and 1 MB per request.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlencode

import boto3
import botocore.serialize
import botocore.session
import orjson
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from diversity_monitor.aws import container_paths
from diversity_monitor.clock import as_utc, iso_z, parse_instant, utcnow
from diversity_monitor.conventions import (
    CUSTOM_BLOCK,
    LIVE_LISTS_METRIC,
    SESSIONS_SUCCEEDED_METRIC,
    SHORT_LIST_SHARE_METRIC,
    SUCCESS_RATE_METRIC,
    UNKNOWN_ARTICLE_SHARE_METRIC,
    distinct_articles_feature,
    diversity_metric,
    list_overlap_feature,
    live_metric,
    metric_dimensions,
    slot_feature,
    top_list_share_feature,
)

MAX_METRICS_PER_REQUEST = 1000
MAX_REQUEST_BYTES = 1_000_000
MAX_DIMENSIONS = 30
MAX_DIMENSION_NAME = 255
MAX_DIMENSION_VALUE = 1024
MAX_NAME = 255


class MetricsError(ValueError):
    """Metric data CloudWatch would reject; the message names the metric and the rule."""


def metric_values(statistics: Mapping) -> dict[str, float]:
    block = statistics[CUSTOM_BLOCK]
    k = block["k"]
    values: dict[str, float | None] = {
        SUCCESS_RATE_METRIC: block["success_rate"],
        SESSIONS_SUCCEEDED_METRIC: block["sessions_succeeded"],
        # What the monitor could see, published even when the figures are withheld: the
        # monitor-health alarms page on them (blind is not broken).
        UNKNOWN_ARTICLE_SHARE_METRIC: block.get("unknown_article_share"),
        SHORT_LIST_SHARE_METRIC: block.get("short_list_share"),
    }
    if block["diversity_reliable"]:
        values.update(_figures(block, k))
    live = block.get("live")
    if live is not None:  # the count always; the figures only from enough lists (job/live.py)
        values[LIVE_LISTS_METRIC] = live["lists"]
        if live["reliable"]:
            values.update({live_metric(name): value for name, value in _figures(live, k).items()})
    return {name: float(value) for name, value in values.items() if value is not None}


def _figures(block: Mapping, k: int) -> dict[str, float | None]:
    return {
        diversity_metric(k, "mean"): block["mean"],
        diversity_metric(k, "min"): block["min"],
        diversity_metric(k, "p5"): block["p5"],
        slot_feature(k): block["max_slot_concentration"],
        distinct_articles_feature(k): block["distinct_articles"],
        list_overlap_feature(k): block.get("list_overlap"),
        top_list_share_feature(k): block.get("top_list_share"),
    }


def check_namespace(namespace: str) -> None:
    if not isinstance(namespace, str) or not 1 <= len(namespace) <= MAX_NAME or namespace.startswith(("AWS/", ":")):
        raise MetricsError(f"namespace {namespace!r}: must be 1-{MAX_NAME} characters and not start with 'AWS/' or ':'")


def _check_dimension(metric: str, dimension) -> None:
    if not isinstance(dimension, Mapping):
        raise MetricsError(f"metric {metric}: dimension {dimension!r} is not a Name/Value object")
    name, value = dimension.get("Name"), dimension.get("Value")
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_DIMENSION_NAME:
        raise MetricsError(f"metric {metric}: dimension name {name!r} must be 1-{MAX_DIMENSION_NAME} characters")
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_DIMENSION_VALUE:
        raise MetricsError(f"metric {metric}: dimension {name} value {value!r} must be 1-{MAX_DIMENSION_VALUE} characters")


def dimensions(endpoint: str, schedule: str | None) -> list[dict]:
    """`Endpoint` and `MonitoringSchedule`, both required (see the module doc)."""
    if not schedule:
        raise MetricsError(
            "no monitoring schedule name (environment variable sagemaker_monitoring_schedule_name): the "
            "MonitoringSchedule dimension would be missing and no Endpoint+MonitoringSchedule alarm would see the metrics"
        )
    result = metric_dimensions(endpoint, schedule)
    for dimension in result:
        _check_dimension("dimensions", dimension)
    return result


def metric_records(statistics: Mapping, endpoint: str, schedule: str | None) -> list[dict]:
    """Lines of the metrics file, stamped at measurement time."""
    timestamp = statistics[CUSTOM_BLOCK]["measured_at"]
    dims = dimensions(endpoint, schedule)
    unit_of = {SUCCESS_RATE_METRIC: "None", SESSIONS_SUCCEEDED_METRIC: "Count", LIVE_LISTS_METRIC: "Count"}
    return [
        {"MetricName": name, "Timestamp": timestamp, "Dimensions": dims, "Value": value,
         "Unit": unit_of.get(name, "None")}
        for name, value in metric_values(statistics).items()
    ]


def validate(records: Iterable[Mapping], namespace: str, now: datetime | None = None) -> None:
    """PutMetricData's rules the local stand-ins don't enforce (platform-facts.md)."""
    now = now or utcnow()
    check_namespace(namespace)
    for record in records:
        name = record.get("MetricName")
        if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME:
            raise MetricsError(f"metric name {name!r}: must be 1-{MAX_NAME} characters")
        value = record.get("Value")
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise MetricsError(f"metric {name}: value {value!r} is not a finite number")
        record_dimensions = record.get("Dimensions", [])
        if not isinstance(record_dimensions, list) or len(record_dimensions) > MAX_DIMENSIONS:
            raise MetricsError(f"metric {name}: Dimensions must be a list of at most {MAX_DIMENSIONS}")
        for dimension in record_dimensions:
            _check_dimension(name, dimension)
        stamp = record.get("Timestamp")
        try:
            stamp = as_utc(parse_instant(stamp) if isinstance(stamp, str) else stamp)
        except (ValueError, AttributeError, TypeError):
            raise MetricsError(f"metric {name}: Timestamp {record.get('Timestamp')!r} is not a time") from None
        if not now - timedelta(weeks=2) <= stamp <= now + timedelta(hours=2):
            raise MetricsError(f"metric {name}: timestamp {iso_z(stamp)} is outside two weeks ago .. two hours ahead of {iso_z(now)}")


def write_metrics_file(records: list[dict]) -> Path:
    """`/opt/ml/output/metrics/cloudwatch/cloudwatch_metrics.jsonl`: compact JSON, one a line."""
    path = container_paths.resolve(container_paths.CLOUDWATCH_METRICS_FILE)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(orjson.dumps(record) + b"\n" for record in records))
    return path


def put_metric_data_requests(records: list[dict], namespace: str) -> list[dict]:
    """PutMetricData request bodies, chunked to the API's count (1000) and size (1 MB) limits.

    Sizes are measured with botocore's own serializer for the protocol it sends, so the limit
    holds for the bytes on the wire, not for an estimate of them.
    """
    data = [
        {**{key: value for key, value in record.items() if key != "Timestamp"},
         "Timestamp": parse_instant(record["Timestamp"]).astimezone(timezone.utc)}
        for record in records
    ]
    empty = _serialized_size({"Namespace": namespace, "MetricData": []})
    requests, chunk, size = [], [], empty
    for datum in data:
        datum_size = _serialized_size({"Namespace": namespace, "MetricData": [datum]}) - empty + 2  # ", " between items
        if chunk and (len(chunk) == MAX_METRICS_PER_REQUEST or size + datum_size > MAX_REQUEST_BYTES):
            requests.append({"Namespace": namespace, "MetricData": chunk})
            chunk, size = [], empty
        if empty + datum_size > MAX_REQUEST_BYTES:
            raise MetricsError(f"metric {datum.get('MetricName')}: one datum is larger than a PutMetricData request may be")
        chunk.append(datum)
        size += datum_size
    if chunk:
        requests.append({"Namespace": namespace, "MetricData": chunk})
    for request in requests:  # the estimate is exact for JSON; checked anyway, never sent over the limit
        if _serialized_size(request) > MAX_REQUEST_BYTES:
            raise MetricsError(f"PutMetricData request of {len(request['MetricData'])} metrics exceeds {MAX_REQUEST_BYTES} bytes")
    return requests


@functools.lru_cache(maxsize=1)
def _put_metric_data_serializer():
    model = botocore.session.get_session().get_service_model("cloudwatch")
    protocol = getattr(model, "resolved_protocol", None) or model.metadata["protocol"]
    return botocore.serialize.create_serializer(protocol, include_validation=False), model.operation_model("PutMetricData")


def _serialized_size(request: dict) -> int:
    serializer, operation = _put_metric_data_serializer()
    body = serializer.serialize_to_request(request, operation)["body"]
    return len(body if isinstance(body, bytes) else urlencode(body).encode())


def put_metric_data(records: list[dict], namespace: str, client=None) -> int:
    validate(records, namespace)
    client = client or boto3.session.Session().client(
        "cloudwatch", config=Config(retries={"mode": "standard", "max_attempts": 5})
    )
    requests = put_metric_data_requests(records, namespace)
    for number, request in enumerate(requests, start=1):
        try:
            client.put_metric_data(**request)
        except ClientError as error:
            info = error.response.get("Error", {})
            raise MetricsError(f"PutMetricData to {namespace} (request {number} of {len(requests)}) failed: "
                               f"{info.get('Code', 'ClientError')}: {info.get('Message', '')}") from error
        except BotoCoreError as error:
            raise MetricsError(f"PutMetricData to {namespace} (request {number} of {len(requests)}) failed: "
                               f"{type(error).__name__}: {error}") from error
    return len(requests)
