"""CloudWatch metric data in the local stack: every datum reaches moto through `put_metric_data`.

moto stores the data and answers GetMetricData. This module closes three gaps from the outside,
with plain CloudWatch API calls to moto:

- Dimension order. moto 5.x's GetMetricData matches a datum when `sorted(datum dimensions) ==
  sorted(query dimensions)` under an ordering that is not a total order, so the same dimensions
  published in another order may not match; CloudWatch ignores the order. Every datum is stored
  with its dimensions in one canonical order (`canonical_dimensions`: by name, then value) and
  every query asks in that order, so a match never depends on the order anyone used.
- Restarts. moto keeps the data in memory only. Each datum stored is also appended to a journal
  in the state folder (`snapshot.MetricJournal`); `install` replays the last two weeks of it
  (the oldest timestamp PutMetricData accepts), so alarms evaluate on data from before a restart.
- The clock and CloudWatch's own rules. A datum without Timestamp is stamped with the stack's
  clock (moto would use the wall clock, wrong on a simulated clock), and the rules the API model
  does not carry are enforced (`check_datum`): timestamps from 2 weeks ago to 2 hours ahead,
  values finite and within +-2^360, at most 1000 datums per request, no `AWS/` namespace.

Gateway operations: PutMetricData (validated, stored as above) and GetMetricData (dimension
order made canonical in each MetricStat, then moto answers). Everything else (ListMetrics,
GetMetricStatistics, which matches dimensions in any order) goes to moto as it is.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timedelta, timezone

from diversity_monitor.clock import iso_z
from diversity_monitor.local import errors, snapshot

# PutMetricData rules [CW][API: PutMetricData and MetricDatum documentation].
MAX_DATUMS_PER_REQUEST = 1000
MAX_REQUEST_BYTES = 1_000_000
_REQUEST_BUDGET = MAX_REQUEST_BYTES // 2  # JSON size of the data, leaving room for the encoding
METRIC_PAST_LIMIT = timedelta(days=14)
METRIC_FUTURE_LIMIT = timedelta(hours=2)
MAX_MAGNITUDE = 2.0 ** 360
RESERVED_NAMESPACE_PREFIX = "AWS/"
JOURNAL_FOLDER = "cloudwatch"


class InvalidParameterValue(errors.ServiceError):
    """CloudWatch's modelled error for a value it refuses (wire code `InvalidParameterValue`)."""

    code = "InvalidParameterValueException"
    status = 400


# --- the rules ---------------------------------------------------------------------------------


def canonical_dimensions(dimensions: Iterable[Mapping] | None) -> list[dict]:
    """The one order the stack stores and queries dimensions in."""
    return sorted(({"Name": d["Name"], "Value": d["Value"]} for d in dimensions or []),
                  key=lambda d: (d["Name"], d["Value"]))


def check_datum(datum: Mapping, now: datetime) -> None:
    """Raise ValueError naming what CloudWatch would refuse in a datum the API model accepts."""
    timestamp = datum.get("Timestamp")
    if timestamp is not None and not now - METRIC_PAST_LIMIT <= _utc(timestamp) <= now + METRIC_FUTURE_LIMIT:
        raise ValueError(
            f"Timestamp {iso_z(timestamp)} is outside what CloudWatch accepts at {iso_z(now)} "
            "(2 weeks ago to 2 hours ahead)"
        )
    values = [("Value", datum["Value"])] if datum.get("Value") is not None else []
    values += [(f"StatisticValues.{key}", value) for key, value in (datum.get("StatisticValues") or {}).items()]
    values += [(f"Values[{n}]", value) for n, value in enumerate(datum.get("Values") or [])]
    for where, value in values:
        if not math.isfinite(value):
            raise ValueError(f"{datum.get('MetricName')}: {where} is {value}: values must be finite (no NaN or Infinity)")
        if abs(value) > MAX_MAGNITUDE:
            raise ValueError(f"{datum.get('MetricName')}: {where} {value} is outside -2^360..2^360")


def chunk_metric_data(data: list[dict]) -> Iterator[list[dict]]:
    """Split datums into PutMetricData requests within the count and size limits."""
    chunk: list[dict] = []
    size = 0
    for datum in data:
        datum_size = len(json.dumps(datum, default=str))
        if chunk and (len(chunk) == MAX_DATUMS_PER_REQUEST or size + datum_size > _REQUEST_BUDGET):
            yield chunk
            chunk, size = [], 0
        chunk.append(datum)
        size += datum_size
    if chunk:
        yield chunk


# --- writing -----------------------------------------------------------------------------------


def put_metric_data(host, namespace: str, data: list[dict]) -> int:
    """Store datums (checked by the caller) in moto (canonical dimension order, the clock's time when none is
    given) and in the journal; returns how many. `host` is the platform: clock, aws_client,
    state_dir."""
    now = host.clock.now()
    stored = [_as_stored(datum, now) for datum in data]
    client = host.aws_client("cloudwatch")
    journal = metric_journal(host)
    for chunk in chunk_metric_data(stored):
        client.put_metric_data(Namespace=namespace, MetricData=chunk)
        journal.append(namespace, chunk)
    return len(stored)


def metric_journal(host) -> snapshot.MetricJournal:
    return snapshot.MetricJournal(host.state_dir / JOURNAL_FOLDER)


def restore(host) -> int:
    """Put the journal's last two weeks back into moto (after a restart); returns the datums."""
    now = host.clock.now()
    client = host.aws_client("cloudwatch")
    restored = 0
    for namespace, data in metric_journal(host).retained(now - METRIC_PAST_LIMIT).items():
        for chunk in chunk_metric_data(data):
            client.put_metric_data(Namespace=namespace, MetricData=chunk)
        restored += len(data)
    return restored


def _as_stored(datum: Mapping, now: datetime) -> dict:
    stored = dict(datum)
    stored["Timestamp"] = _utc(datum["Timestamp"]) if datum.get("Timestamp") is not None else now
    if "Dimensions" in datum:
        stored["Dimensions"] = canonical_dimensions(datum["Dimensions"])
    return stored


# --- gateway operations ------------------------------------------------------------------------


def handle_put_metric_data(platform, params: dict) -> dict:
    namespace, data = params["Namespace"], params["MetricData"]
    if namespace.startswith(RESERVED_NAMESPACE_PREFIX):
        raise InvalidParameterValue(f"The value {namespace} for parameter Namespace is invalid: "
                                    f"namespaces starting with {RESERVED_NAMESPACE_PREFIX} are reserved for AWS")
    if len(data) > MAX_DATUMS_PER_REQUEST:
        raise InvalidParameterValue(f"MetricData holds {len(data)} datums; at most {MAX_DATUMS_PER_REQUEST} per request")
    now = platform.clock.now()
    for number, datum in enumerate(data, start=1):
        try:
            check_datum(datum, now)
        except ValueError as error:
            raise InvalidParameterValue(f"The parameter MetricData.member.{number} is invalid: {error}") from None
    with errors.refused_by_moto():
        put_metric_data(platform, namespace, data)
    return {}


def handle_get_metric_data(platform, params: dict) -> dict:
    queries = []
    for query in params["MetricDataQueries"]:
        metric = (query.get("MetricStat") or {}).get("Metric")
        if metric is not None and metric.get("Dimensions"):
            metric = {**metric, "Dimensions": canonical_dimensions(metric["Dimensions"])}
            query = {**query, "MetricStat": {**query["MetricStat"], "Metric": metric}}
        queries.append(query)
    with errors.refused_by_moto():
        answer = platform.aws_client("cloudwatch").get_metric_data(**{**params, "MetricDataQueries": queries})
    answer.pop("ResponseMetadata", None)
    return answer


def install(platform) -> None:
    """Replay the journal into moto, then serve PutMetricData and GetMetricData."""
    restore(platform)
    platform.register_operations("cloudwatch", {
        "PutMetricData": handle_put_metric_data,
        "GetMetricData": handle_get_metric_data,
    })


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc)
