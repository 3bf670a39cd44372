"""Notebook 04's data: one endpoint, one time range, everything a regression investigation reads.

- the hourly reports of the schedule (`job.past_reports.load_reports`: only the hour folders in the
  range are listed), with the diversity alarm's state at each hour;
- deploys: the changes of serving endpoint config between runs, as the reports record them
  (`report_history.config_changes`; the latest one timed exactly by DescribeEndpoint);
- live-traffic diversity per hour from data capture (`capture.reader.live_diversity`, one call
  per hour, so only that hour's folder is read; replay traffic is excluded by InferenceId), next
  to the replay figure of the run that covered the same hour;
- slot collapse: which article held which slot in more than `froze_share` of lists, from which
  hour to which, and a before/after comparison of two hours.
Progress is shown per hour (tqdm), because a day of capture takes a while to read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
from tqdm import tqdm  # text progress: works in any notebook front end without ipywidgets

from diversity_monitor import storage
from diversity_monitor.aws.session import SetupError, require_endpoint
from diversity_monitor.capture.reader import live_diversity
from diversity_monitor.clock import iso_z, parse_instant, utcnow
from diversity_monitor.conventions import DEFAULT_MIN_DIVERSITY, DEFAULT_TOP_K
from diversity_monitor.job import report_views as report
from diversity_monitor.job.inputs import load_catalog
from diversity_monitor.job.past_reports import HourReport, load_reports
from diversity_monitor.oncall import report_history
from diversity_monitor.setup import deployment
from diversity_monitor.setup.alarms import alarm_names

HOUR = timedelta(hours=1)
DEFAULT_FROZE_SHARE = 0.5


@dataclass(frozen=True)
class Mark:
    """A deploy on the timeline (`report.timeline_figure` reads at / what / detail)."""

    at: datetime
    what: str
    detail: str


def deploy_marks(reports: list[HourReport], endpoint_name: str, client=None) -> list[Mark]:
    """Changes of serving config between the runs (each report records its config); exact for the last one."""
    endpoint = (client or deployment.sagemaker_client()).describe_endpoint(EndpointName=endpoint_name)
    return [Mark(change.at, change.what, f"{change.after.config} ({', '.join(change.after.models.values())}), "
                                         f"from {change.before.config}, went live {change.when}: {change.evidence}")
            for change in report_history.config_changes(reports, endpoint)]


def hourly_frame(reports: list[HourReport], alarm_changes: list[tuple[datetime, str]] | None = None) -> pd.DataFrame:
    """One row per scheduled run: figures, violations, the alarm's state a few minutes after the run."""
    frame = report_history.reports_frame(reports)
    if alarm_changes is not None:
        frame["alarm"] = [report_history.state_at(alarm_changes, hour + timedelta(minutes=5)) for hour in frame["hour"]]
    return frame


def live_vs_replay(reports: list[HourReport], capture_s3_uri: str, endpoint_name: str, catalog: dict,
                   k: int = DEFAULT_TOP_K, progress: bool = True) -> pd.DataFrame:
    """Per run: replay mean (the monitor) vs the live traffic captured in the hour it covered."""
    source = storage.join(capture_s3_uri, endpoint_name)
    rows = []
    for hour_report in tqdm(reports, desc="capture", unit="hour", disable=not progress):
        window_end = hour_report.hour
        stats = live_diversity(source, catalog, k=k, start=window_end - HOUR, end=window_end)
        live = stats.accumulator.diversity() if stats.live_lists else None
        rows.append({
            "hour": window_end,
            "replay_mean": hour_report.figures.get("mean"),
            "live_mean": live.mean if live else None,
            "live_lists": stats.live_lists,
            "replay_records_excluded": stats.replay_excluded,
            "files_read": stats.files_read,
            "malformed_lines": stats.malformed.count,
        })
    return pd.DataFrame(rows, columns=["hour", "replay_mean", "live_mean", "live_lists", "replay_records_excluded",
                                       "files_read", "malformed_lines"])


def slot_collapse_table(reports: list[HourReport], froze_share: float = DEFAULT_FROZE_SHARE) -> pd.DataFrame:
    """Which article froze in which slot (held more than `froze_share` of lists), and for how long."""
    spells: dict[tuple[int, str], dict] = {}
    closed: list[dict] = []
    for hour_report in sorted(reports, key=lambda r: r.hour):
        frozen_now = {
            (slot["slot"], slot["top_article_id"]): slot["top_article_share"]
            for slot in hour_report.figures.get("slot_collapse", [])
            if slot.get("top_article_id") and slot["top_article_share"] > froze_share
        }
        for key in list(spells):
            if key not in frozen_now:  # the spell ended the hour before
                closed.append(spells.pop(key))
        for (slot, article), share in frozen_now.items():
            spell = spells.setdefault((slot, article), {"slot": slot, "article_id": article, "from": hour_report.hour,
                                                        "to": hour_report.hour, "hours": 0, "max_share": 0.0})
            spell["to"] = hour_report.hour
            spell["hours"] += 1
            spell["max_share"] = max(spell["max_share"], share)
    closed += spells.values()
    table = pd.DataFrame(closed, columns=["slot", "article_id", "from", "to", "hours", "max_share"])
    return table.sort_values(["from", "slot"]).reset_index(drop=True)


def report_at(reports: list[HourReport], hour: datetime) -> HourReport:
    for hour_report in reports:
        if hour_report.hour == hour:
            return hour_report
    available = ", ".join(r.hour.strftime("%Y-%m-%d %H:%M") for r in reports) or "none"
    raise ValueError(f"no report for {hour:%Y-%m-%d %H:%M} in the range (reports: {available})")


def before_after(before: HourReport, after: HourReport) -> pd.DataFrame:
    rows = ["mean", "min", "p5", "max", "distinct_articles", "max_slot_concentration", "success_rate", "sessions_succeeded"]
    table = pd.DataFrame({
        f"before {before.hour:%H:%M}": [before.figures.get(row) for row in rows],
        f"after {after.hour:%H:%M}": [after.figures.get(row) for row in rows],
    }, index=rows)
    slots = pd.DataFrame({
        f"before {before.hour:%H:%M}": [f"{s['top_article_id']} ({s['top_article_share']:.0%})" for s in before.figures.get("slot_collapse", [])],
        f"after {after.hour:%H:%M}": [f"{s['top_article_id']} ({s['top_article_share']:.0%})" for s in after.figures.get("slot_collapse", [])],
    }, index=[f"slot {s['slot']} top article" for s in before.figures.get("slot_collapse", [])])
    return pd.concat([table, slots])


def before_after_figure(before: HourReport, after: HourReport, threshold: float):
    import matplotlib.pyplot as plt

    frame = report.histogram_frame(after.statistics, before.statistics)
    figure, axis = plt.subplots(figsize=(7, 3.2))
    axis.bar(frame.index, frame["current"], color="#3b75af", label=f"after ({after.hour:%H:%M})")
    axis.step(frame.index, frame["baseline"], where="mid", color="#2a7a2a", linewidth=2, label=f"before ({before.hour:%H:%M})")
    axis.axvline(threshold, color="grey", linestyle="--", label=f"threshold {threshold:g}")
    axis.set_xlabel("distinct categories in the top list")
    axis.set_ylabel("share of sessions")
    axis.set_title(f"Categories per top list, run of {before.hour:%Y-%m-%d %H:%M} vs {after.hour:%Y-%m-%d %H:%M} (UTC)",
                   fontsize=10)
    axis.legend()
    figure.tight_layout()
    return figure


def timeline_figure(hourly: pd.DataFrame, live: pd.DataFrame, marks: list[Mark], threshold: float,
                    alarm_changes: list[tuple[datetime, str]] | None = None, endpoint_name: str = ""):
    """report.timeline_figure (mean, p5, threshold, the alarm's time in ALARM shaded, deploys and rollbacks)
    plus the live mean."""
    title = f"{endpoint_name}: replay diversity per hourly run" if endpoint_name else "Replay diversity per hourly run"
    figure = report.timeline_figure(hourly, marks, threshold=threshold, alarm_changes=alarm_changes, title=title)
    axis = figure.axes[0]
    if len(live) and live["live_mean"].notna().any():
        axis.plot(pd.to_datetime(live["hour"], utc=True), live["live_mean"], marker="s", color="#ff7f0e",
                  label="live traffic mean (capture)")
        axis.legend(loc="lower left", fontsize=8)
    return figure


@dataclass
class Investigation:
    endpoint_name: str
    schedule_name: str
    reports: list[HourReport]
    hourly: pd.DataFrame
    marks: list[Mark]
    alarm_changes: dict[str, list[tuple[datetime, str]]]
    live: pd.DataFrame


def time_range(start: str | None, end: str | None, hours: float) -> tuple[datetime, datetime]:
    """The range to investigate: `end` (default now, i.e. the notebook's `as_of`) and `start` (default
    `hours` before the end), both ISO-8601."""
    end_at = parse_instant(end) if end else utcnow()
    return (parse_instant(start) if start else end_at - timedelta(hours=hours)), end_at


def investigate(endpoint_name: str, schedule_name: str, reports_s3_uri: str, capture_s3_uri: str, catalog_uri: str,
                start: datetime, end: datetime, min_diversity: float = DEFAULT_MIN_DIVERSITY, progress: bool = True) -> Investigation:
    if not start < end:
        raise SetupError(f"start {start.isoformat()} must be before end {end.isoformat()}: fix start or end")
    require_endpoint(endpoint_name)
    reports = load_reports(reports_s3_uri, endpoint_name, schedule_name, start, end)
    if not reports:
        raise SetupError(f"no reports under {reports_s3_uri}/{endpoint_name}/{schedule_name}/ between "
                         f"{iso_z(start)} and {iso_z(end)}: check the names, or move the range (start, end, as_of)")
    names = alarm_names(endpoint_name)
    changes = {kind: report_history.alarm_states(name) for kind, name in names.items()}
    hourly = hourly_frame(reports, changes["diversity"])
    live = live_vs_replay(reports, capture_s3_uri, endpoint_name, load_catalog(catalog_uri),
                          k=reports[0].figures.get("k", DEFAULT_TOP_K), progress=progress)
    return Investigation(endpoint_name, schedule_name, reports, hourly, deploy_marks(reports, endpoint_name), changes, live)


def fetch_report(hour_report: HourReport, folder: Path) -> list[Path]:
    """Copy one hour's files (executed report notebook, HTML, statistics, violations) to `folder`."""
    target = Path(folder) / hour_report.hour.strftime("%Y-%m-%d-%H")
    target.mkdir(parents=True, exist_ok=True)
    paths = []
    for uri in hour_report.files:
        path = target / uri.rsplit("/", 1)[-1]
        path.write_bytes(storage.read_bytes(uri))
        paths.append(path)
    return paths


def save_table(frame: pd.DataFrame, folder: Path | str, name: str) -> pd.DataFrame:
    """Write `<folder>/<name>.csv` (what the notebook leaves behind) and return the frame to show."""
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    frame.to_csv(target / f"{name}.csv", index=False)
    return frame
