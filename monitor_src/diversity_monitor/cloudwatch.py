"""CloudWatch metrics from a run: the Model Monitor metrics file, or PutMetricData ourselves.

Which metrics: built from statistics.json (the run's single record of what it measured).
When replay was too incomplete to trust (`diversity_reliable` false), only the replay figures
are published: the diversity alarm then sees missing data rather than a made-up healthy or
broken value, and the monitor-health alarm (on `replay_success_rate`, missing = breaching)
sees the outage. Publishing a diversity value computed from a handful of sessions could page
the on-call for a capacity problem or, worse, report healthy during an outage.

Dimensions are `Endpoint` and `MonitoringSchedule`, the names the platform's own metrics use
(platform-facts.md): an alarm must name exactly what is published.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterable, Mapping

import boto3
import orjson
from botocore.config import Config

from diversity_monitor import container_paths
from diversity_monitor.clock import iso_z, parse_instant, utcnow
from diversity_monitor.model_monitor_files import CUSTOM_BLOCK, SUCCESS_RATE_FEATURE

MAX_METRICS_PER_REQUEST = 1000
MAX_REQUEST_BYTES = 1_000_000
MAX_DIMENSIONS = 30


class MetricsError(ValueError):
    """Metric data CloudWatch would reject; the message names the metric and the rule."""


def metric_values(statistics: Mapping) -> dict[str, float]:
    block = statistics[CUSTOM_BLOCK]
    prefix = f"top{block['k']}"
    values: dict[str, float | None] = {
        SUCCESS_RATE_FEATURE: block["success_rate"],
        "replay_sessions_succeeded": block["sessions_succeeded"],
    }
    if block["diversity_reliable"]:
        values.update({
            f"{prefix}_category_diversity_mean": block["mean"],
            f"{prefix}_category_diversity_min": block["min"],
            f"{prefix}_category_diversity_p5": block["p5"],
            f"{prefix}_max_slot_concentration": block["max_slot_concentration"],
            f"{prefix}_distinct_articles": block["distinct_articles"],
        })
    return {name: float(value) for name, value in values.items() if value is not None}


def metric_records(statistics: Mapping, endpoint: str, schedule: str | None) -> list[dict]:
    """Lines of the metrics file, stamped at measurement time."""
    timestamp = statistics[CUSTOM_BLOCK]["measured_at"]
    dimensions = [{"Name": "Endpoint", "Value": endpoint}]
    if schedule:
        dimensions.append({"Name": "MonitoringSchedule", "Value": schedule})
    unit_of = {SUCCESS_RATE_FEATURE: "None", "replay_sessions_succeeded": "Count"}
    return [
        {"MetricName": name, "Timestamp": timestamp, "Dimensions": dimensions, "Value": value,
         "Unit": unit_of.get(name, "None")}
        for name, value in metric_values(statistics).items()
    ]


def validate(records: Iterable[Mapping], namespace: str, now: datetime | None = None) -> None:
    """PutMetricData's rules the local stand-ins don't enforce (platform-facts.md)."""
    now = now or utcnow()
    if not 1 <= len(namespace) <= 255 or namespace.startswith("AWS/"):
        raise MetricsError(f"namespace {namespace!r}: must be 1-255 characters and not start with 'AWS/'")
    for record in records:
        name = record.get("MetricName")
        if not isinstance(name, str) or not 1 <= len(name) <= 255:
            raise MetricsError(f"metric name {name!r}: must be 1-255 characters")
        value = record.get("Value")
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise MetricsError(f"metric {name}: value {value!r} is not a finite number")
        dimensions = record.get("Dimensions", [])
        if len(dimensions) > MAX_DIMENSIONS:
            raise MetricsError(f"metric {name}: {len(dimensions)} dimensions, at most {MAX_DIMENSIONS}")
        stamp = parse_instant(record["Timestamp"]) if isinstance(record.get("Timestamp"), str) else record.get("Timestamp")
        if not isinstance(stamp, datetime):
            raise MetricsError(f"metric {name}: Timestamp {record.get('Timestamp')!r} is not a time")
        if not now - timedelta(weeks=2) <= stamp <= now + timedelta(hours=2):
            raise MetricsError(f"metric {name}: timestamp {iso_z(stamp)} is outside two weeks ago .. two hours ahead of {iso_z(now)}")


def write_metrics_file(records: list[dict]) -> Path:
    """`/opt/ml/output/metrics/cloudwatch/cloudwatch_metrics.jsonl`: compact JSON, one a line."""
    path = container_paths.resolve(container_paths.CLOUDWATCH_METRICS_FILE)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(orjson.dumps(record) + b"\n" for record in records))
    return path


def put_metric_data_requests(records: list[dict], namespace: str) -> list[dict]:
    """PutMetricData request bodies, chunked to the API's count and size limits."""
    data = [
        {**{key: value for key, value in record.items() if key != "Timestamp"},
         "Timestamp": parse_instant(record["Timestamp"]).astimezone(timezone.utc)}
        for record in records
    ]
    requests, chunk, size = [], [], 0
    for datum in data:
        datum_size = len(orjson.dumps(datum, default=str))
        if chunk and (len(chunk) == MAX_METRICS_PER_REQUEST or size + datum_size > MAX_REQUEST_BYTES // 2):
            requests.append({"Namespace": namespace, "MetricData": chunk})
            chunk, size = [], 0
        chunk.append(datum)
        size += datum_size
    if chunk:
        requests.append({"Namespace": namespace, "MetricData": chunk})
    return requests


def put_metric_data(records: list[dict], namespace: str, client=None) -> int:
    validate(records, namespace)
    client = client or boto3.session.Session().client(
        "cloudwatch", config=Config(retries={"mode": "standard", "max_attempts": 5})
    )
    requests = put_metric_data_requests(records, namespace)
    for request in requests:
        client.put_metric_data(**request)
    return len(requests)
