"""The hourly reports a schedule left in S3, read back for a time range.

Model Monitor's layout: `<S3Uri>/<endpoint>/<schedule>/yyyy/mm/dd/hh/` per scheduled hour, holding
statistics.json, constraint_violations.json and (ours) report.ipynb / report.html. Only the hour
folders inside the range are listed, so a day's view reads 24 prefixes, not the whole bucket.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import orjson
import pandas as pd

from diversity_monitor import storage
from diversity_monitor.model_monitor_files import CUSTOM_BLOCK


@dataclass(frozen=True)
class HourReport:
    hour: datetime  # the scheduled hour (end of the analysed window)
    prefix: str
    statistics: dict | None
    violations: list[dict]
    files: tuple[str, ...]

    @property
    def figures(self) -> dict:
        return (self.statistics or {}).get(CUSTOM_BLOCK, {})


def hour_prefix(reports_s3_uri: str, endpoint: str, schedule: str, hour: datetime) -> str:
    return storage.join(reports_s3_uri, endpoint, schedule, hour.strftime("%Y/%m/%d/%H"))


def hours_between(start: datetime, end: datetime) -> list[datetime]:
    hour = start.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)
    hours = []
    while hour <= end:
        hours.append(hour)
        hour += timedelta(hours=1)
    return hours


def load_reports(reports_s3_uri: str, endpoint: str, schedule: str, start: datetime, end: datetime) -> list[HourReport]:
    reports = []
    for hour in hours_between(start, end):
        prefix = hour_prefix(reports_s3_uri, endpoint, schedule, hour)
        files = tuple(storage.list_objects(prefix + "/"))
        if not files:
            continue
        names = {uri.rsplit("/", 1)[-1]: uri for uri in files}
        statistics = orjson.loads(storage.read_bytes(names["statistics.json"])) if "statistics.json" in names else None
        violations = (
            orjson.loads(storage.read_bytes(names["constraint_violations.json"])).get("violations", [])
            if "constraint_violations.json" in names else []
        )
        reports.append(HourReport(hour, prefix, statistics, violations, files))
    return reports


def reports_frame(reports: list[HourReport], k: int = 10) -> pd.DataFrame:
    rows = []
    for report in reports:
        figures = report.figures
        rows.append({
            "hour": report.hour,
            "mean": figures.get("mean") if figures.get("diversity_reliable", True) else None,
            "min": figures.get("min"),
            "p5": figures.get("p5"),
            "max_slot_concentration": figures.get("max_slot_concentration"),
            "success_rate": figures.get("success_rate"),
            "violations": len(report.violations),
            "report": f"{report.prefix}/report.html",
        })
    return pd.DataFrame(rows, columns=["hour", "mean", "min", "p5", "max_slot_concentration", "success_rate",
                                       "violations", "report"])


# --- alarm history (used by demo.py and notebooks/04) ---------------------------------------------

def alarm_states(alarm_name: str, client=None) -> list[tuple[datetime, str]]:
    """(time, new state) for every state change, oldest first, from DescribeAlarmHistory."""
    import json

    import boto3

    client = client or boto3.client("cloudwatch")
    items = []
    for page in client.get_paginator("describe_alarm_history").paginate(
            AlarmName=alarm_name, HistoryItemType="StateUpdate", ScanBy="TimestampAscending"):
        items += page["AlarmHistoryItems"]
    return [(item["Timestamp"], json.loads(item["HistoryData"])["newState"]["stateValue"]) for item in items]


def state_at(changes: list[tuple[datetime, str]], moment: datetime) -> str:
    """The alarm's state at `moment` from its state changes (INSUFFICIENT_DATA before the first)."""
    state = "INSUFFICIENT_DATA"
    for when, new_state in changes:
        if when <= moment:
            state = new_state
    return state
