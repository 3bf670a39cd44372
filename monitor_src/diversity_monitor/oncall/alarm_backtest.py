"""Alarm backtest: replay a metric's history through CloudWatch's alarm rules before choosing them.

CloudWatch shows what an alarm did only after it exists. This module answers "what would this
alarm have done?" on history the team already has, with the very evaluator the local stack runs
(`aws.alarm_evaluation`), minute by minute, the way CloudWatch evaluates:

1. a history (`History`): the metric's data points, each stamped when it was measured, and so
   counted from the first evaluation after that (`Point`). From the hourly reports
   (`read_reports`: the value the run published, `job.metrics_file.metric_values`, stamped at the
   report's `measured_at`, which already holds the run's late start and its replay; a report
   without it is stamped `publication_delay` after its hour, 20 minutes by default, the
   platform's worst late start)
   or from a CSV `timestamp,value` (`read_csv`: stamped at the timestamp plus
   `publication_delay`, 0 by default). A failed run, or a run that published no value for the
   metric, is a missing hour;
2. the replay (`replay`): for every minute of the range, the sliding-window period buckets
   (`alarm_evaluation.evaluation_buckets`) filled with the points stamped in them, and
   `alarm_evaluation.evaluate` from the alarm's current state; every state change is a
   `Transition`. A new alarm starts in INSUFFICIENT_DATA, as CloudWatch creates it;
3. the sweep (`sweep`): many settings (thresholds x M-of-N) over one history, each scored
   against incidents (`score`): pages (transitions into ALARM), false pages, minutes from an
   incident's start to its first page, incidents never paged, hours in ALARM. A page belongs to
   an incident when it fires during it or on a breaching point measured during it. Incidents are
   given as time ranges or read from the deploy marks the reports record (`incidents_from_marks`:
   a deploy rolled back, from the first run the new config served to the first run after the
   rollback, exact where DescribeEndpoint dates a change);
4. the choice (`recommend`, `earlier_settings`) and the PutMetricAlarm request for it
   (`alarm_request`, checked against botocore's model), which notebook 03 applies.

Composite alarms are not backtested: one metric alarm at a time.
"""

from __future__ import annotations

import argparse
import bisect
import json
import math
import statistics as stats
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import pandas as pd

from diversity_monitor import storage
from diversity_monitor.aws import alarm_evaluation as ev
from diversity_monitor.aws.service_schema import validate_request
from diversity_monitor.cli import number_option, whole_option
from diversity_monitor.clock import iso_z
from diversity_monitor.conventions import (
    DEFAULT_MIN_DIVERSITY,
    METRIC_PERIOD_SECONDS,
    SCHEDULE_START_DELAY_MINUTES,
    diversity_metric,
)
from diversity_monitor.job.metrics_file import metric_values
from diversity_monitor.job.past_reports import HourReport, reports_under
from diversity_monitor.oncall.report_history import config_changes
from diversity_monitor.setup.alarms import alarm_names, metric_alarm_request

MINUTE = timedelta(minutes=1)
CSV_HEADER = ["timestamp", "value"]
DEFAULT_COMPARISON = "LessThanThreshold"
DEFAULT_TREAT_MISSING = "missing"
DEFAULT_STATISTIC = "Average"
# The design notes' alarm: the floor, 2 of 3 one-hour periods, a missing hour neither good nor bad.
DESIGN_M_OF_N = (2, 3)
DEFAULT_M_OF_N = ((1, 1), (1, 2), (2, 2), (2, 3), (3, 3), (3, 4))

# alarm statistic -> how a bucket's points combine (one point per hourly run; two when a late run
# and the next share a sliding bucket).
STATISTICS = {
    "Average": stats.fmean,
    "Minimum": min,
    "Maximum": max,
    "Sum": math.fsum,
    "SampleCount": len,
}


class BacktestInputError(ValueError):
    """Bad input to the backtest: every problem found, each naming the input and what is wrong."""

    def __init__(self, what: str, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__(f"{what}: " + ("; ".join(self.problems) if len(self.problems) < 2 else
                                        "\n  - " + "\n  - ".join(self.problems)))


# --- the history --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Point:
    """One data point, stamped `stamped` (its Timestamp). The job stamps a point when it measures and
    the platform publishes it as the job ends, so it counts from the first evaluation after its stamp
    (the seconds the report takes to render after measuring are not modelled). `value` None: the hour
    has no value (a failed run, an empty CSV cell); nothing is published."""

    stamped: datetime
    value: float | None
    hour: datetime | None = None  # the scheduled hour (reports) or the CSV's timestamp


@dataclass(frozen=True)
class History:
    metric: str
    source: str
    points: tuple[Point, ...]  # oldest first
    timing: str  # how the publication times were decided, in words
    reports: tuple[HourReport, ...] = ()

    @property
    def published(self) -> list[Point]:
        return [point for point in self.points if point.value is not None]

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame([{"hour": p.hour, "stamped": p.stamped, "value": p.value} for p in self.points],
                            columns=["hour", "stamped", "value"])


def parse_utc(text: str, what: str) -> datetime:
    """An ISO-8601 instant in UTC (`Z` or `+00:00`); ValueError naming `what` otherwise."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f"{what} {text!r} is not an ISO-8601 time such as 2027-10-31T07:00:00Z") from None
    if moment.tzinfo is None:
        raise ValueError(f"{what} {text!r} has no time zone: write it in UTC, e.g. {text.strip()}Z")
    if moment.utcoffset() != timedelta(0):
        raise ValueError(f"{what} {text!r} is not UTC (offset {moment.strftime('%z')}): convert it to UTC")
    return moment.astimezone(timezone.utc)


def read_csv(uri: str, publication_delay: float = 0.0, metric: str = "value") -> History:
    """A CSV of `timestamp,value` lines (an optional `timestamp,value` header; an empty value is a
    missing hour). Every bad line is reported at once."""
    text = storage.read_text(uri)
    problems: list[str] = []
    rows: list[tuple[int, datetime, float | None]] = []
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    for number, line in enumerate(lines, start=1):
        fields = [part.strip() for part in line.split(",")]
        if number == 1 and [part.lower() for part in fields] == CSV_HEADER:
            continue
        if len(fields) != 2:
            problems.append(f"line {number}: expected `timestamp,value`, got {line!r}")
            continue
        try:
            stamp = parse_utc(fields[0], "timestamp")
        except ValueError as error:
            problems.append(f"line {number}: {error}")
            continue
        value = None
        if fields[1]:
            try:
                value = float(fields[1])
            except ValueError:
                problems.append(f"line {number}: value {fields[1]!r} is not a number (leave it empty for a missing hour)")
                continue
            if not math.isfinite(value):
                problems.append(f"line {number}: value {fields[1]!r} is not finite")
                continue
        rows.append((number, stamp, value))
    first_line: dict[datetime, int] = {}
    for number, stamp, _ in rows:
        if stamp in first_line:
            problems.append(f"line {number}: timestamp {iso_z(stamp)} already given on line {first_line[stamp]}")
        first_line.setdefault(stamp, number)
    if not problems and not rows:
        problems.append("no data lines (expected `timestamp,value` lines)")
    if problems:
        raise BacktestInputError(uri, problems)
    delay = _minutes(publication_delay, "--publication-delay")
    points = tuple(Point(stamp + delay, value, stamp) for _, stamp, value in sorted(rows, key=lambda row: row[1]))
    return History(metric, uri, points, f"each value stamped and published {publication_delay:g} min after its timestamp")


def read_reports(root: str, metric: str | None = None, publication_delay: float | None = None) -> History:
    """The metric every hourly run under `root` published (see `job.past_reports.reports_under`)."""
    reports = reports_under(root)
    if not reports:
        raise BacktestInputError(root, ["no hour folders with reports (expected <yyyy>/<mm>/<dd>/<HH>/ or "
                                        "<yyyy-mm-dd-HH>/ folders holding statistics.json)"])
    return history_from_reports(reports, metric, publication_delay, source=root)


def history_from_reports(reports: Sequence[HourReport], metric: str | None = None,
                         publication_delay: float | None = None, source: str = "reports") -> History:
    published = {report.hour: metric_values(report.statistics) for report in reports if report.statistics}
    if metric is None:
        ks = sorted({report.figures.get("k") for report in reports if report.statistics})
        if len(ks) != 1:
            raise BacktestInputError(source, [f"the runs measured top-k for k in {ks}: name the metric (--metric)"])
        metric = diversity_metric(ks[0])
    if not any(metric in values for values in published.values()):
        names = sorted({name for values in published.values() for name in values})
        raise BacktestInputError(source, [f"no run published {metric!r}; the runs published {names}"])
    delay_minutes = SCHEDULE_START_DELAY_MINUTES if publication_delay is None else publication_delay
    delay = _minutes(delay_minutes, "--publication-delay")
    points, undated, missing = [], 0, 0
    for report in sorted(reports, key=lambda r: r.hour):
        value = published.get(report.hour, {}).get(metric)
        if value is None:
            stamp, missing = report.hour, missing + 1
        elif report.figures.get("measured_at"):
            stamp = report.measured_at
        else:
            stamp, undated = report.hour + delay, undated + 1
        points.append(Point(stamp, value, report.hour))
    timing = f"{len(points) - undated - missing} point(s) stamped at their run's measured_at"
    if undated:
        timing += f", {undated} at their hour + {delay_minutes:g} min (no measured_at; --publication-delay)"
    if missing:
        timing += f"; {missing} run(s) published no value (missing hours)"
    return History(metric, source, tuple(points), timing, tuple(reports))


def load_history(source: str, metric: str | None = None, publication_delay: float | None = None) -> History:
    """A CSV (`.csv`) or hourly reports (anything else), as the command and notebook 05 take them."""
    if source.lower().endswith(".csv"):
        return read_csv(source, publication_delay or 0.0, metric or "value")
    return read_reports(source, metric, publication_delay)


def _minutes(value: float, what: str) -> timedelta:
    if not math.isfinite(value) or value < 0:
        raise BacktestInputError(what, [f"{value!r} minutes: give a number of minutes >= 0"])
    return timedelta(minutes=value)


# --- one alarm setting, replayed ----------------------------------------------------------------

@dataclass(frozen=True)
class Setting:
    """The PutMetricAlarm fields that decide when the alarm changes state."""

    threshold: float
    datapoints_to_alarm: int = DESIGN_M_OF_N[0]
    evaluation_periods: int = DESIGN_M_OF_N[1]
    treat_missing_data: str = DEFAULT_TREAT_MISSING
    comparison_operator: str = DEFAULT_COMPARISON
    period: int = METRIC_PERIOD_SECONDS
    statistic: str = DEFAULT_STATISTIC

    def problems(self) -> list[str]:
        found = ev.rule_problems(self.threshold, self.comparison_operator, self.evaluation_periods,
                                 self.datapoints_to_alarm, self.treat_missing_data)
        if self.evaluation_periods >= 1:
            try:
                ev.validate_period(self.period, self.evaluation_periods)
            except ValueError as error:
                found.append(str(error))
        if self.statistic not in STATISTICS:
            found.append(f"Statistic {self.statistic!r} is not one of {sorted(STATISTICS)}")
        return found

    @property
    def rule(self) -> ev.AlarmRule:
        return ev.AlarmRule(self.threshold, self.comparison_operator, self.evaluation_periods,
                            self.datapoints_to_alarm, self.treat_missing_data)

    @property
    def m_of_n(self) -> str:
        return f"{self.datapoints_to_alarm} of {self.evaluation_periods}"

    @property
    def label(self) -> str:
        return f"threshold {self.threshold:g}, {self.m_of_n}"


def check_settings(settings: Iterable[Setting]) -> list[Setting]:
    settings = list(settings)
    problems = sorted({problem for setting in settings for problem in setting.problems()})
    if problems:
        raise BacktestInputError("alarm setting", problems)
    return settings


@dataclass(frozen=True)
class Transition:
    at: datetime
    old: str
    new: str
    reason: str
    evidence: tuple[datetime, ...] = ()  # stamps of the breaching real points the decision used

    def as_json(self) -> dict:
        return {"at": iso_z(self.at), "from": self.old, "to": self.new}


@dataclass(frozen=True)
class Backtest:
    setting: Setting
    start: datetime
    end: datetime
    transitions: tuple[Transition, ...]
    initial_state: str = ev.INSUFFICIENT_DATA

    @property
    def pages(self) -> list[Transition]:
        return [t for t in self.transitions if t.new == ev.ALARM]

    def spans(self, state: str) -> list[tuple[datetime, datetime]]:
        """When the alarm was in `state`, as [from, to) ranges clipped to the replay."""
        found, since, current = [], self.start, self.initial_state
        for transition in self.transitions:
            if current == state and transition.at > since:
                found.append((since, transition.at))
            since, current = transition.at, transition.new
        if current == state:
            found.append((since, self.end + MINUTE))
        return found

    @property
    def hours_in_alarm(self) -> float:
        return sum((end - start).total_seconds() for start, end in self.spans(ev.ALARM)) / 3600

    def as_json(self) -> dict:
        return {"transitions": [t.as_json() for t in self.transitions]}


def default_range(history: History, settings: Sequence[Setting]) -> tuple[datetime, datetime]:
    """From the first point's minute to the minute before the point after the last would be due."""
    points = history.published or list(history.points)
    if not points:
        raise BacktestInputError(history.source, ["no data points"])
    start = _floor_minute(points[0].stamped)
    last = max(p.stamped for p in points)
    period = max(timedelta(seconds=s.period) for s in settings)
    return start, _floor_minute(last) + period - MINUTE


def replay(history: History, settings: Sequence[Setting], start: datetime | str | None = None,
           end: datetime | str | None = None, initial_state: str = ev.INSUFFICIENT_DATA) -> list[Backtest]:
    """Each setting's alarm, evaluated every minute from `start` to `end` (both included), in
    `initial_state` before the first evaluation: INSUFFICIENT_DATA, as an alarm created at `start`."""
    settings = check_settings(settings)
    if initial_state not in ev.STATES:
        raise BacktestInputError("initial state", [f"{initial_state!r} is not one of {ev.STATES}"])
    default_start, default_end = default_range(history, settings)
    start, end = _moment(start, "start"), _moment(end, "end")
    start = _floor_minute(start) if start else default_start
    end = _floor_minute(end) if end else default_end
    if end < start:
        raise BacktestInputError("replay range", [f"end {iso_z(end)} is before start {iso_z(start)}"])
    results: dict[int, Backtest] = {}
    groups: dict[tuple[int, str], list[int]] = {}
    for index, setting in enumerate(settings):
        groups.setdefault((setting.period, setting.statistic), []).append(index)
    for (period, statistic), members in groups.items():
        for index, transitions in zip(members, _replay_group(history, [settings[i] for i in members], period,
                                                             statistic, start, end, initial_state)):
            results[index] = Backtest(settings[index], start, end, tuple(transitions), initial_state)
    return [results[index] for index in range(len(settings))]


def _replay_group(history: History, settings: Sequence[Setting], period: int, statistic: str,
                  start: datetime, end: datetime, initial_state: str) -> list[list[Transition]]:
    """Settings sharing a period and statistic read the same buckets: filled once per minute."""
    points = history.published
    stamps = [p.stamped for p in points]
    combine = STATISTICS[statistic]
    rules = [s.rule for s in settings]
    size = max(ev.evaluation_range(rule.evaluation_periods) for rule in rules)
    step = timedelta(seconds=period)
    states = [initial_state] * len(settings)
    transitions: list[list[Transition]] = [[] for _ in settings]
    now = start
    while now <= end:
        buckets = ev.evaluation_buckets(now, period, size)
        first = buckets[0][0]
        members: list[list[Point]] = [[] for _ in buckets]
        for point in points[bisect.bisect_left(stamps, first):bisect.bisect_left(stamps, buckets[-1][1])]:
            members[(point.stamped - first) // step].append(point)
        values = [float(combine([p.value for p in group])) if group else None for group in members]
        for i, rule in enumerate(rules):
            width = ev.evaluation_range(rule.evaluation_periods)
            tail, tail_members = values[-width:], members[-width:]
            outcome = ev.evaluate(rule, tail, states[i], [b[0] for b in buckets[-width:]])
            if outcome.retained or outcome.state == states[i]:
                continue
            evidence = tuple(p.stamped for j in outcome.evaluated
                             if rule.breaches(tail[j]) for p in tail_members[j])
            transitions[i].append(Transition(now, states[i], outcome.state, outcome.reason, evidence))
            states[i] = outcome.state
        now += MINUTE
    return transitions


def _moment(value: datetime | str | None, what: str) -> datetime | None:
    if not isinstance(value, str):
        return value
    try:
        return parse_utc(value, what)
    except ValueError as error:
        raise BacktestInputError("replay range", [str(error)]) from None


def _floor_minute(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc).replace(second=0, microsecond=0)


# --- incidents and the score --------------------------------------------------------------------

@dataclass(frozen=True)
class Incident:
    start: datetime
    end: datetime
    label: str = ""

    def holds(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


def parse_incident(text: str) -> Incident:
    """`START/END`, both ISO-8601 UTC."""
    parts = text.split("/")
    if len(parts) != 2:
        raise ValueError(f"incident {text!r} is not START/END (two ISO-8601 UTC times joined by /)")
    start, end = parse_utc(parts[0], "incident start"), parse_utc(parts[1], "incident end")
    if end <= start:
        raise ValueError(f"incident {text!r} ends before it starts")
    return Incident(start, end, text)


def parse_incidents(texts: Iterable[str]) -> list[Incident]:
    incidents, problems = [], []
    for text in texts:
        try:
            incidents.append(parse_incident(text))
        except ValueError as error:
            problems.append(str(error))
    if problems:
        raise BacktestInputError("--incident", problems)
    return sorted(incidents, key=lambda incident: incident.start)


def incidents_from_marks(reports: Sequence[HourReport], endpoint: Mapping | None = None) -> list[Incident]:
    """Deploys that were rolled back, from the deploy marks the reports record
    (`report_history.config_changes`; `endpoint`, a DescribeEndpoint answer, dates the latest exactly).

    An incident runs from the change to a config to the change back to one that served before it.
    """
    changes = config_changes(list(reports), endpoint)
    incidents = []
    served_before: set[str | None] = set()
    for deploy, leave in zip(changes, changes[1:]):
        served_before.add(deploy.before.config)
        if leave.before.config == deploy.after.config and leave.after.config in served_before:
            incidents.append(Incident(deploy.at, leave.at, f"{deploy.after.config} deployed, rolled back to "
                                                            f"{leave.after.config}"))
    return incidents


def incidents_for(history: History, ranges: Iterable[str] = (), endpoint: Mapping | None = None) -> list[Incident]:
    """The incidents given as `START/END` ranges, else the rolled-back deploys the history's reports record."""
    ranges = list(ranges)
    if ranges:
        return parse_incidents(ranges)
    return incidents_from_marks(history.reports, endpoint)


def incidents_frame(incidents: Sequence[Incident]) -> pd.DataFrame:
    return pd.DataFrame([{"start": i.start, "end": i.end, "incident": i.label} for i in incidents],
                        columns=["start", "end", "incident"])


def page_incident(page: Transition, incidents: Sequence[Incident]) -> Incident | None:
    """The incident a page belongs to: it fired during it, or on a breaching point measured during it."""
    for incident in incidents:
        if incident.holds(page.at) or any(incident.holds(stamp) for stamp in page.evidence):
            return incident
    return None


SCORE_COLUMNS = ["threshold", "M of N", "treat missing", "pages", "false pages", "incidents paged",
                 "missed incidents", "minutes to page", "hours in ALARM", "first page"]


def score(backtest: Backtest, incidents: Sequence[Incident]) -> dict:
    first_page: dict[Incident, Transition] = {}
    false_pages = 0
    for page in backtest.pages:
        incident = page_incident(page, incidents)
        if incident is None:
            false_pages += 1
        else:
            first_page.setdefault(incident, page)
    delays = [(page.at - incident.start).total_seconds() / 60 for incident, page in first_page.items()]
    setting = backtest.setting
    return {
        "threshold": setting.threshold,
        "M of N": setting.m_of_n,
        "treat missing": setting.treat_missing_data,
        "pages": len(backtest.pages),
        "false pages": false_pages,
        "incidents paged": len(first_page),
        "missed incidents": len(incidents) - len(first_page),
        "minutes to page": round(stats.fmean(delays), 1) if delays else None,
        "hours in ALARM": round(backtest.hours_in_alarm, 2),
        "first page": iso_z(backtest.pages[0].at) if backtest.pages else None,
    }


def settings_grid(thresholds: Iterable[float], pairs: Iterable[tuple[int, int]], **common) -> list[Setting]:
    return [Setting(float(threshold), int(m), int(n), **common) for threshold in thresholds for m, n in pairs]


@dataclass
class Sweep:
    history: History
    incidents: list[Incident]
    backtests: list[Backtest]
    table: pd.DataFrame = field(init=False)

    def __post_init__(self) -> None:
        self.table = pd.DataFrame([score(b, self.incidents) for b in self.backtests], columns=SCORE_COLUMNS)

    def row(self, setting: Setting) -> pd.Series:
        return self.table.iloc[[b.setting for b in self.backtests].index(setting)]


def sweep(history: History, settings: Sequence[Setting], incidents: Sequence[Incident],
          start: datetime | str | None = None, end: datetime | str | None = None) -> Sweep:
    if not incidents:
        raise BacktestInputError(history.source, ["a sweep is scored against incidents, and none were given or found "
                                                  "(give time ranges, --incident START/END; from reports, a deploy "
                                                  "that was rolled back is one)"])
    return Sweep(history, list(incidents), replay(history, settings, start, end))


# --- the choice ---------------------------------------------------------------------------------

def healthy_values(history: History, incidents: Sequence[Incident]) -> list[float]:
    return [p.value for p in history.published if not any(i.holds(p.stamped) for i in incidents)]


def _margin(setting: Setting, healthy: Sequence[float]) -> float | None:
    """How far the healthy hours stayed from breaching (the smallest distance; <= 0 means one breached)."""
    if not healthy:
        return None
    if setting.comparison_operator.startswith("LessThan"):
        return min(healthy) - setting.threshold
    return setting.threshold - max(healthy)


@dataclass(frozen=True)
class Recommendation:
    setting: Setting
    reason: str


def recommend(result: Sweep, current: Setting) -> Recommendation:
    """Page every incident (or as many as any setting does), with the fewest false pages, soonest;
    among equals the threshold closest to the current one, then more points needed to page (M), then
    the shorter window (N). A threshold the healthy hours breach is left out while another exists
    (it pages an incident only because it was breaching already)."""
    table = result.table.assign(index=range(len(result.table)))
    healthy = healthy_values(result.history, result.incidents)
    clear = [(_margin(b.setting, healthy) or 1.0) > 0 for b in result.backtests]
    if any(clear):
        table = table[clear]
    table = table[table["missed incidents"] == table["missed incidents"].min()]
    table = table[table["false pages"] == table["false pages"].min()]
    table = table.assign(speed=table["minutes to page"].fillna(math.inf),
                         distance=[abs(result.backtests[i].setting.threshold - current.threshold) for i in table["index"]],
                         m=[-result.backtests[i].setting.datapoints_to_alarm for i in table["index"]],
                         n=[result.backtests[i].setting.evaluation_periods for i in table["index"]])
    best = table.sort_values(["speed", "distance", "m", "n"]).iloc[0]
    chosen = result.backtests[int(best["index"])].setting
    return Recommendation(chosen, _reason(result, chosen, current))


def _reason(result: Sweep, chosen: Setting, current: Setting) -> str:
    row = result.row(chosen)
    healthy = healthy_values(result.history, result.incidents)
    parts = [f"{chosen.label} (TreatMissingData={chosen.treat_missing_data}): pages {row['incidents paged']} of "
             f"{len(result.incidents)} incident(s) with {row['false pages']} false page(s)"]
    if pd.notna(row["minutes to page"]):
        parts[0] += f", {row['minutes to page']:g} min after the incident starts"
    if current in [b.setting for b in result.backtests] and current != chosen:
        was = result.row(current)
        if pd.notna(was["minutes to page"]) and pd.notna(row["minutes to page"]):
            parts.append(f"{was['minutes to page'] - row['minutes to page']:g} min sooner than the current "
                         f"{current.label} ({was['minutes to page']:g} min)")
    margin = _margin(chosen, healthy)
    if margin is not None:
        parts.append(f"the {len(healthy)} hour(s) outside incidents stayed {margin:.2f} from the threshold")
    if chosen.datapoints_to_alarm == 1:
        parts.append("cost: a single breaching hour pages (no second hour confirms it)")
    if len(healthy) < 24 * 7:
        parts.append(f"caution: {len(healthy)} healthy hour(s) are too few to estimate false pages; "
                     "re-run on at least a week of history")
    return "; ".join(parts) + "."


@dataclass
class Tuning:
    """A sweep around the current setting, the setting it recommends and the ones that page sooner."""

    sweep: Sweep
    current: Setting
    recommendation: Recommendation
    earlier: pd.DataFrame

    @property
    def table(self) -> pd.DataFrame:
        return self.sweep.table

    def transitions(self, *settings: Setting) -> pd.DataFrame:
        """Every state change of these settings' alarms on the history, in time order."""
        rows = [{"setting": backtest.setting.label, "at": t.at, "from": t.old, "to": t.new, "reason": t.reason}
                for backtest in self.sweep.backtests if backtest.setting in settings for t in backtest.transitions]
        return pd.DataFrame(rows, columns=["setting", "at", "from", "to", "reason"]).sort_values("at", kind="stable")


def current_setting(threshold: float = DEFAULT_MIN_DIVERSITY, **common) -> Setting:
    """The design notes' alarm (2 of 3 one-hour periods) at `threshold`."""
    return Setting(float(threshold), *DESIGN_M_OF_N, **common)


def tune(history: History, thresholds: Iterable[float], pairs: Iterable[Sequence[int]], incidents: Sequence[Incident],
         current: Setting, start: datetime | str | None = None, end: datetime | str | None = None) -> Tuning:
    """Sweep thresholds x M-of-N (sharing `current`'s other fields; `current` always included)."""
    common = {"treat_missing_data": current.treat_missing_data, "comparison_operator": current.comparison_operator,
              "period": current.period, "statistic": current.statistic}
    settings = settings_grid(thresholds, [(pair[0], pair[1]) for pair in pairs], **common)
    if current not in settings:
        settings.append(current)
    result = sweep(history, settings, incidents, start, end)
    return Tuning(result, current, recommend(result, current), earlier_settings(result, current))


def earlier_settings(result: Sweep, current: Setting) -> pd.DataFrame:
    """Settings that page sooner than `current` on this history, and what each costs against it."""
    base = result.row(current)
    healthy = healthy_values(result.history, result.incidents)
    rows = []
    for backtest, (_, row) in zip(result.backtests, result.table.iterrows()):
        if pd.isna(row["minutes to page"]) or pd.isna(base["minutes to page"]):
            continue
        if row["minutes to page"] >= base["minutes to page"]:
            continue
        setting = backtest.setting
        costs = []
        if row["false pages"] > base["false pages"]:
            costs.append(f"+{row['false pages'] - base['false pages']} false page(s)")
        if row["missed incidents"] > base["missed incidents"]:
            costs.append(f"+{row['missed incidents'] - base['missed incidents']} missed incident(s)")
        extra = row["hours in ALARM"] - base["hours in ALARM"]
        if extra > 0:
            costs.append(f"+{extra:.2f} h in ALARM")
        if setting.datapoints_to_alarm < current.datapoints_to_alarm:
            costs.append(f"pages on {setting.datapoints_to_alarm} breaching hour(s) instead of "
                         f"{current.datapoints_to_alarm}")
        margin, was = _margin(setting, healthy), _margin(current, healthy)
        if margin is not None and margin <= 0:
            costs.append(f"the healthy hours breach it (by {-margin:.2f})")
        elif margin is not None and was is not None and margin < was:
            costs.append(f"healthy hours {margin:.2f} from the threshold (was {was:.2f})")
        rows.append({"threshold": setting.threshold, "M of N": setting.m_of_n,
                     "minutes to page": row["minutes to page"],
                     "sooner by (min)": base["minutes to page"] - row["minutes to page"],
                     "cost": "; ".join(costs) or "none on this history"})
    return pd.DataFrame(rows, columns=["threshold", "M of N", "minutes to page", "sooner by (min)", "cost"])


def alarm_request(setting: Setting, metric: str, endpoint: str, schedule: str, topic_arn: str | None = None,
                  runbook_hint: str = "") -> dict:
    """The PutMetricAlarm request for `setting` on the diversity alarm (the name notebook 03 gives
    it), checked against botocore's CloudWatch model."""
    request = metric_alarm_request(
        endpoint, schedule, topic_arn, name=alarm_names(endpoint)["diversity"],
        description=(f"{metric} on {endpoint} {ev.COMPARISONS[setting.comparison_operator].words} "
                     f"{setting.threshold:g} for {setting.m_of_n} periods (schedule {schedule}; chosen by "
                     f"alarm backtest). {runbook_hint}").strip(),
        metric=metric, statistic=setting.statistic, periods=setting.evaluation_periods,
        datapoints=setting.datapoints_to_alarm, threshold=setting.threshold, missing=setting.treat_missing_data,
        comparison=setting.comparison_operator, period=setting.period)
    return validate_request("cloudwatch", "PutMetricAlarm", request)


def write_request(request: Mapping, uri: str) -> str:
    """The PutMetricAlarm request as JSON (local path or S3), for notebook 03's `alarm_request_file`."""
    storage.write_bytes(uri, (json.dumps(request, indent=2) + "\n").encode())
    return uri


def sweep_figure(result: Sweep, current: Setting | None = None, chosen: Setting | None = None):
    """Time to page against false pages, one point per outcome, labelled with the settings that reach
    it ("M of N @ thresholds"); the current and the recommended setting ringed (matplotlib Figure)."""
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 4.5))
    spots: dict[tuple[float, int], dict[str, list[str]]] = {}
    for backtest, (_, row) in zip(result.backtests, result.table.iterrows()):
        if pd.isna(row["minutes to page"]):
            continue
        spot = spots.setdefault((float(row["minutes to page"]), int(row["false pages"])), {})
        spot.setdefault(backtest.setting.m_of_n, []).append(f"{backtest.setting.threshold:g}")
    for (minutes, false_pages), labels in spots.items():
        axis.scatter([minutes], [false_pages], color="tab:blue", alpha=0.7)
        text = "\n".join(f"{m_of_n} @ {', '.join(thresholds)}" for m_of_n, thresholds in labels.items())
        axis.annotate(text, (minutes, false_pages), fontsize=7, xytext=(9, 9), textcoords="offset points")
    for setting, colour, name in ((current, "tab:red", "current"), (chosen, "tab:green", "recommended")):
        if setting is None:
            continue
        row = result.row(setting)
        if pd.notna(row["minutes to page"]):
            axis.scatter([row["minutes to page"]], [row["false pages"]], s=260, facecolors="none", edgecolors=colour,
                         linewidths=2, label=f"{name}: {setting.label}")
    never = int(result.table["minutes to page"].isna().sum())
    axis.set_xlabel("minutes from incident start to first page (mean over incidents)")
    axis.set_ylabel("false pages")
    axis.set_title(f"{result.history.metric}: {len(result.table)} settings ({never} never paged)")
    most = int(result.table["false pages"].max()) if len(result.table) else 0
    axis.set_ylim(-0.5, most + 1.5)
    axis.yaxis.get_major_locator().set_params(integer=True)
    axis.set_xlim(left=min([-5.0, *(minutes - 5 for minutes, _ in spots)]),
                  right=max([60.0, *(minutes * 1.25 + 10 for minutes, _ in spots)]))
    axis.grid(alpha=0.3)
    if current is not None or chosen is not None:
        axis.legend(loc="upper right", fontsize=8)
    figure.tight_layout()
    return figure


# --- the command --------------------------------------------------------------------------------

# PutMetricAlarm allows EvaluationPeriods * Period up to 7 days; hourly points make that 168.
MAX_EVALUATION_PERIODS = 7 * 24


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="hourly reports (S3 or a folder: a schedule's folder in Model Monitor's layout, "
                                       "or the demo's reports/ folder) or a CSV of timestamp,value lines")
    parser.add_argument("--metric", default=None, help="metric the runs publish (default: the mean diversity "
                                                       "per top-k of the reports' k); a CSV's name in the output")
    parser.add_argument("--threshold", type=number_option("--threshold", -1e9, 1e9), nargs="+", default=[DEFAULT_MIN_DIVERSITY],
                        help=f"Threshold; several run a sweep (default {DEFAULT_MIN_DIVERSITY:g})")
    parser.add_argument("--comparison-operator", default=DEFAULT_COMPARISON, help=f"default {DEFAULT_COMPARISON}")
    parser.add_argument("--evaluation-periods", type=whole_option("--evaluation-periods", 1, MAX_EVALUATION_PERIODS), default=DESIGN_M_OF_N[1], help="N (default 3)")
    parser.add_argument("--datapoints-to-alarm", type=whole_option("--datapoints-to-alarm", 1, MAX_EVALUATION_PERIODS), default=DESIGN_M_OF_N[0], help="M (default 2)")
    parser.add_argument("--m-of-n", nargs="+", default=None, metavar="M/N",
                        help="M-of-N pairs to sweep, e.g. 1/1 2/3 3/3 (instead of the two options above)")
    parser.add_argument("--treat-missing-data", default=DEFAULT_TREAT_MISSING, help="default missing")
    parser.add_argument("--period", type=whole_option("--period", 10, 86400), default=METRIC_PERIOD_SECONDS, help="seconds (default 3600)")
    parser.add_argument("--statistic", default=DEFAULT_STATISTIC, help=f"default {DEFAULT_STATISTIC}")
    parser.add_argument("--publication-delay", type=number_option("--publication-delay", 0, 7 * 24 * 60), default=None, metavar="MINUTES",
                        help=f"minutes from a point's time to CloudWatch having it: a CSV's (default 0), or reports "
                             f"without measured_at (default {SCHEDULE_START_DELAY_MINUTES})")
    parser.add_argument("--start", default=None, help="ISO-8601 UTC: the alarm is created then (default: the first point)")
    parser.add_argument("--end", default=None, help="ISO-8601 UTC: last minute evaluated (default: one period after "
                                                    "the last point, less a minute)")
    parser.add_argument("--incident", action="append", default=[], metavar="START/END",
                        help="an incident's time range (repeat); default: deploys rolled back, from the reports' marks")
    parser.add_argument("--json", action="store_true", help='print {"transitions": [{"at", "from", "to"}...]} '
                                                            "(a sweep: its rows and the recommendation)")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        return _backtest(args)
    except (BacktestInputError, storage.StorageError) as error:
        print(f"alarm-backtest: {error}", file=sys.stderr)
        return 2


def _pairs_from(args: argparse.Namespace) -> list[tuple[int, int]]:
    if not args.m_of_n:
        return [(args.datapoints_to_alarm, args.evaluation_periods)]
    problems, pairs = [], []
    for text in args.m_of_n:
        m, _, n = text.partition("/")
        if m.strip().isdigit() and n.strip().isdigit():
            pairs.append((int(m), int(n)))
        else:
            problems.append(f"--m-of-n {text!r} is not M/N, e.g. 2/3")
    if problems:
        raise BacktestInputError("alarm setting", problems)
    return pairs


def _backtest(args: argparse.Namespace) -> int:
    pairs = _pairs_from(args)
    common = {"treat_missing_data": args.treat_missing_data, "comparison_operator": args.comparison_operator,
              "period": args.period, "statistic": args.statistic}
    settings = check_settings(settings_grid(args.threshold, pairs, **common))
    problems, moments = [], {}
    for name in ("start", "end"):
        text = getattr(args, name)
        try:
            moments[name] = parse_utc(text, f"--{name}") if text else None
        except ValueError as error:
            problems.append(str(error))
    incidents = []
    try:
        incidents = parse_incidents(args.incident)
    except BacktestInputError as error:
        problems += error.problems
    if problems:
        raise BacktestInputError("alarm-backtest", problems)
    start, end = moments.get("start"), moments.get("end")
    history = load_history(args.source, args.metric, args.publication_delay)
    if not incidents:
        incidents = incidents_for(history)
    if len(settings) == 1:
        _print_one(history, replay(history, settings, start, end)[0], incidents, args.json)
    else:
        tuning = tune(history, args.threshold, pairs, incidents, current_setting(**common), start, end)
        _print_sweep(history, tuning, args.json)
    return 0


def _print_one(history: History, backtest: Backtest, incidents: Sequence[Incident], as_json: bool) -> None:
    if as_json:
        print(json.dumps(backtest.as_json()))
        return
    setting = backtest.setting
    print(f"{history.metric} from {history.source}: {len(history.published)} point(s), {history.timing}")
    print(f"alarm: {setting.label}, TreatMissingData={setting.treat_missing_data}, {setting.comparison_operator}, "
          f"{setting.statistic}, period {setting.period}s, evaluated {iso_z(backtest.start)} .. {iso_z(backtest.end)}")
    for transition in backtest.transitions:
        print(f"  {iso_z(transition.at)}  {transition.old} -> {transition.new}  {transition.reason}")
    if incidents:
        print(pd.DataFrame([score(backtest, incidents)]).to_string(index=False))


def _print_sweep(history: History, tuning: Tuning, as_json: bool) -> None:
    chosen = tuning.recommendation
    incidents = tuning.sweep.incidents
    if as_json:
        print(json.dumps({
            "settings": json.loads(tuning.table.to_json(orient="records")),
            "incidents": [{"start": iso_z(i.start), "end": iso_z(i.end), "label": i.label} for i in incidents],
            "recommended": {"threshold": chosen.setting.threshold, "datapoints_to_alarm": chosen.setting.datapoints_to_alarm,
                            "evaluation_periods": chosen.setting.evaluation_periods, "reason": chosen.reason},
        }))
        return
    print(f"{history.metric} from {history.source}: {len(history.published)} point(s), {history.timing}")
    for incident in incidents:
        print(f"incident {iso_z(incident.start)} .. {iso_z(incident.end)}  {incident.label}")
    print(tuning.table.to_string(index=False))
    if len(tuning.earlier):
        print(f"\npaging sooner than {tuning.current.label}:")
        print(tuning.earlier.to_string(index=False))
    print(f"\nrecommended: {chosen.reason}")
