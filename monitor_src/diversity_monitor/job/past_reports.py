"""The hourly reports a schedule left, read back: Model Monitor's layout, one folder per scheduled hour.

`<S3Uri>/<endpoint>/<schedule>/yyyy/mm/dd/hh/` holds statistics.json, constraint_violations.json
and (ours) report.ipynb / report.html. Only the hour folders inside a range are listed, so a day's
view reads 24 prefixes, not the whole bucket. The run's own report reads its schedule's last
hours here (the trend); the on-call's views build on the same reader (oncall/report_history.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
from botocore.exceptions import BotoCoreError, ClientError

from diversity_monitor import storage
from diversity_monitor.aws import container_paths
from diversity_monitor.clock import hour_marks, parse_instant
from diversity_monitor.conventions import (
    CUSTOM_BLOCK,
    LIVE_PREFIX,
    MAX_JSON_DOCUMENT_BYTES,
    STATISTICS_FILE,
    VIOLATIONS_FILE,
    hour_path,
    schedule_reports_prefix,
)

# A run's outcome as its folder shows it. A failed run leaves no statistics.json (at most a partial
# notebook): it is neither good nor bad evidence about the endpoint.
OK, VIOLATIONS_FOUND, FAILED = "ok", "violations", "failed"


@dataclass(frozen=True)
class HourReport:
    hour: datetime  # the scheduled hour (end of the analysed window), UTC
    prefix: str
    statistics: dict | None
    violations: list[dict]
    files: tuple[str, ...]

    @property
    def figures(self) -> dict:
        return (self.statistics or {}).get(CUSTOM_BLOCK, {})

    @property
    def replay_violations(self) -> list[dict]:
        """The violations of the replay, which one recorded endpoint config served. Live traffic's
        (`live_...`) mix whatever served during the hour, so they say nothing about one config."""
        return [v for v in self.violations if not str(v.get("feature_name", "")).startswith(LIVE_PREFIX)]

    @property
    def status(self) -> str:
        """How the replay ended: the evidence the runbook's deploy reasoning rests on."""
        if self.statistics is None:
            return FAILED
        return VIOLATIONS_FOUND if self.replay_violations else OK

    @property
    def serving(self) -> dict:
        """What the run recorded about the config that served its replay ({} for older reports)."""
        return self.figures.get("serving") or {}

    @property
    def serving_config(self) -> str | None:
        """The endpoint config that served the whole replay; None when unknown or it changed mid-replay."""
        serving = self.serving
        return None if serving.get("changed_during_replay") else serving.get("endpoint_config")

    @property
    def measured_at(self) -> datetime:
        text = self.figures.get("measured_at")
        return parse_instant(text) if text else self.hour

    def file(self, name: str) -> str | None:
        return next((uri for uri in self.files if uri.rsplit("/", 1)[-1] == name), None)


def load_reports(reports_s3_uri: str, endpoint: str, schedule: str, start: datetime, end: datetime) -> list[HourReport]:
    """The runs scheduled from the hour of `start` up to and including `end` that left a folder."""
    return load_reports_under(schedule_reports_prefix(reports_s3_uri, endpoint, schedule), start, end)


def load_reports_under(schedule_prefix: str, start: datetime, end: datetime) -> list[HourReport]:
    """`load_reports` from the schedule's own prefix (`<S3Uri>/<endpoint>/<schedule>`)."""
    reports = []
    for hour in hour_marks(start, end):
        prefix = f"{schedule_prefix.rstrip('/')}/{hour_path(hour)}"
        files = tuple(storage.list_objects(prefix + "/"))
        if files:
            reports.append(read_hour_report(hour, prefix, files))
    return reports


def read_hour_report(hour: datetime, prefix: str, files: tuple[str, ...]) -> HourReport:
    """One hour folder's report from the files listed in it."""
    names = {uri.rsplit("/", 1)[-1]: uri for uri in files}
    statistics = _json(names[STATISTICS_FILE]) if STATISTICS_FILE in names else None
    violations = _json(names[VIOLATIONS_FILE]).get("violations", []) if VIOLATIONS_FILE in names else []
    return HourReport(hour, prefix, statistics, violations, files)


# An hour folder: Model Monitor's `.../yyyy/mm/dd/HH/<file>`, or the demo's flattened copy `.../yyyy-mm-dd-HH/<file>`.
_HOUR_FOLDER = re.compile(r"^(?P<parent>.*?)/?(?P<y>\d{4})(?P<sep>[/-])(?P<m>\d{2})(?P=sep)(?P<d>\d{2})(?P=sep)(?P<h>\d{2})/[^/]+$")


def reports_under(root: str) -> list[HourReport]:
    """Every hour folder's report under `root`, oldest first, without knowing the range beforehand.

    `root` is a schedule's folder in Model Monitor's layout (`<S3Uri>/<endpoint>/<schedule>/`), a
    reports prefix holding exactly one schedule, or a folder of flattened `yyyy-mm-dd-HH/` copies
    (what `diversity-monitor demo` leaves in `reports/`); S3 or local. Files outside hour folders
    (incident summaries) are not reports. Hour folders under two schedules are refused, naming both.
    """
    base = root.rstrip("/") + "/" if storage.is_s3(root) else root
    folders: dict[tuple[str, datetime], list[str]] = {}
    for uri in storage.list_objects(base):
        relative = uri[len(base):].lstrip("/") if uri.startswith(base) else uri
        match = _HOUR_FOLDER.match(relative)
        if not match:
            continue
        hour = datetime(int(match["y"]), int(match["m"]), int(match["d"]), int(match["h"]), tzinfo=timezone.utc)
        folders.setdefault((match["parent"], hour), []).append(uri)
    parents = sorted({parent for parent, _ in folders})
    if len(parents) > 1:
        raise storage.StorageError(f"{root} holds hour folders under {len(parents)} folders ({', '.join(parents)}): "
                                   "point at one schedule's folder")
    return [read_hour_report(hour, files[0].rsplit("/", 1)[0], tuple(sorted(files)))
            for (_, hour), files in sorted(folders.items(), key=lambda item: item[0][1])]


def _json(uri: str) -> dict:
    try:
        document = orjson.loads(storage.read_bytes(uri, MAX_JSON_DOCUMENT_BYTES))
    except orjson.JSONDecodeError as error:
        raise storage.StorageError(f"{uri} is not valid JSON ({error})") from error
    if not isinstance(document, dict):
        raise storage.StorageError(f"{uri}: expected a JSON object, got {type(document).__name__}")
    return document




# --- the run's own history: where its schedule's reports live -----------------------------------

TREND_HOURS = 24  # the report's trend: this schedule's last day
_HOUR_SUFFIX = re.compile(r"/\d{4}/\d{2}/\d{2}/\d{2}/?$")


@dataclass(frozen=True)
class RunHistory:
    reports: list[HourReport]
    note: str | None  # why the history is missing or short, in words for the report


def schedule_prefix_of_run(processing_config: Mapping, output_path: Path, output_hour_folder: bool) -> str | None:
    """The reports prefix of the run's schedule, from `/opt/ml/config/processingjobconfig.json`.

    The output whose LocalPath is the run's output_path uploads to `<reports>/<endpoint>/<schedule>/
    yyyy/mm/dd/HH` under Model Monitor (the platform names the hour), or to `<reports>/<endpoint>/
    <schedule>` for a plain Processing job writing its own hour folder (--output-hour-folder).
    """
    outputs = ((processing_config.get("ProcessingOutputConfig") or {}).get("Outputs")) or []
    for output in outputs:
        s3 = output.get("S3Output") or {}
        local, uri = s3.get("LocalPath"), s3.get("S3Uri")
        if not local or not uri or container_paths.resolve(local) != output_path:
            continue
        if output_hour_folder:
            return uri.rstrip("/")
        return _HOUR_SUFFIX.sub("", uri) if _HOUR_SUFFIX.search(uri) else None
    return None


def recent_history(output_path: Path, output_hour_folder: bool, hour: datetime | None,
                   hours: int = TREND_HOURS) -> RunHistory:
    """The schedule's reports of the `hours` before this run's hour; never raises: a note says what is missing."""
    if hour is None:
        return RunHistory([], "an ad hoc run (no scheduled hour): no history to compare with")
    config_path = container_paths.resolve(container_paths.PROCESSING_JOB_CONFIG)
    try:
        config = orjson.loads(config_path.read_bytes())
    except FileNotFoundError:
        return RunHistory([], "not run as a processing job (no processingjobconfig.json): history not read")
    except (OSError, orjson.JSONDecodeError) as error:
        return RunHistory([], f"processingjobconfig.json unreadable ({type(error).__name__}): history not read")
    prefix = schedule_prefix_of_run(config if isinstance(config, Mapping) else {}, output_path, output_hour_folder)
    if prefix is None:
        return RunHistory([], "the job's output is not in Model Monitor's hourly layout: history not read")
    try:
        reports = load_reports_under(prefix, hour - timedelta(hours=hours), hour - timedelta(hours=1))
    except (storage.StorageError, BotoCoreError, ClientError) as error:
        return RunHistory([], f"earlier reports unreadable ({type(error).__name__}): {str(error)[:200]}")
    missing = hours - len(reports)
    note = f"{missing} of the last {hours} scheduled hours left no report" if missing else None
    return RunHistory(reports, note)
