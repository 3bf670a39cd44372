"""Model Monitor's ScheduleExpression and analysis window: when a schedule fires, what it reads.

One definition for everyone who needs it: the local stand-in that fires schedules, and the
failed-run runbook that works out which runs should exist and which window a re-run must analyse.

- `parse_schedule_expression`: the forms Model Monitor accepts [API: ScheduleConfig]:
  `cron(0 * ? * * *)` hourly, `cron(0 H ? * * *)` daily, `cron(0 H/N ? * * *)`, or `NOW`;
- `analysis_window`: what a run analyses when no `DataAnalysisStartTime` / `DataAnalysisEndTime`
  (ISO-8601 offsets such as `-PT1H`, required for `NOW`) move it, by cadence (`Cadence.window`):
  hourly, the hour before the run; every N hours (`cron(0 H/N ? * * *)`), the N hours before it;
  daily, what AWS's BYOC inputs page documents: a run "scheduled to run at 05:00 UTC on
  20/02/2020" gets start_time 2020-02-19T06:00:00Z and end_time 2020-02-20T05:00:00Z, i.e. the
  23 hours from the hour after the previous day's run. No AWS page gives the every-N-hours
  window; the kit takes the period (N hours), which leaves no hour unanalysed. The daily window
  as documented leaves the hour after each run to no run: set DataAnalysisStartTime -PT24H to
  cover it (README, "Schedules and windows").
Cron matching is croniter's (installed with the `local` and `notebooks` extras); the container
itself never needs this module.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from croniter import croniter

from diversity_monitor.clock import hours_overlapping

DEFAULT_WINDOW = timedelta(hours=1)  # what an hourly run analyses without DataAnalysis offsets
DAILY_WINDOW = timedelta(hours=23)  # a daily run's documented window (BYOC inputs page example, see above)
MAX_WINDOW = timedelta(hours=24)  # DataAnalysisStartTime may precede the end by at most 24 h [API]
SUPPORTED_EXPRESSIONS = (
    "cron(0 * ? * * *) (hourly), cron(0 H ? * * *) (daily at hour H, 0-23), "
    "cron(0 H/N ? * * *) (every N hours from hour H, N 1-24) or NOW"
)
# AWS cron has six fields (minutes hours day-of-month month day-of-week year); Model Monitor
# accepts only these forms of it.
_MODEL_MONITOR_CRON = re.compile(r"cron\(0 (?P<hours>\*|(?P<hour>\d{1,2})(?:/(?P<step>\d{1,2}))?) \? \* \* \*\)")
_DURATION = re.compile(
    r"(?P<sign>[-+]?)P(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?"
)


class ScheduleExpressionError(ValueError):
    """A ScheduleExpression or DataAnalysis offset the platform would reject; the message names it."""


@dataclass(frozen=True)
class Cadence:
    """A parsed ScheduleExpression: when it fires, and its shortest gap between runs."""

    expression: str
    crontab: str | None  # croniter's five-field form; None for NOW (fires once)
    window: timedelta = DEFAULT_WINDOW  # what a run analyses without DataAnalysis offsets (module doc)

    @property
    def once(self) -> bool:
        return self.crontab is None

    def matches(self, minute: datetime) -> bool:
        return self.crontab is not None and croniter.match(self.crontab, minute.astimezone(timezone.utc))

    def runs_between(self, start: datetime, end: datetime) -> list[datetime]:
        """Fire times in (start, end], in UTC (cron expressions are UTC)."""
        if self.crontab is None:
            return []
        runs, moment = [], croniter(self.crontab, start.astimezone(timezone.utc)).get_next(datetime)
        while moment <= end:
            runs.append(moment)
            moment = croniter(self.crontab, moment).get_next(datetime)
        return runs

    def period(self) -> timedelta | None:
        """Shortest time between two runs (what MaxRuntimeInSeconds may not exceed)."""
        if self.crontab is None:
            return None
        runs = croniter(self.crontab, datetime(2000, 1, 1, tzinfo=timezone.utc))
        times = [runs.get_next(datetime) for _ in range(50)]  # > two days of the densest form
        return min(later - earlier for earlier, later in zip(times, times[1:]))


def parse_schedule_expression(expression: str) -> Cadence:
    """A Model Monitor ScheduleExpression, or ScheduleExpressionError naming it and the accepted forms."""
    text = expression.strip()
    if text == "NOW":
        return Cadence(text, None)
    match = _MODEL_MONITOR_CRON.fullmatch(text)
    problem = None if match else f"is not one of the forms Model Monitor supports: {SUPPORTED_EXPRESSIONS}"
    if match and match["hour"] is not None:
        hour, step = int(match["hour"]), match["step"]
        if hour > 23:
            problem = f"has hour {hour}; hours are 0-23"
        elif step is not None and not 1 <= int(step) <= 24:
            problem = f"repeats every {int(step)} hours; the interval is 1-24"
    if problem:
        raise ScheduleExpressionError(f"Invalid ScheduleExpression {expression!r}: it {problem}")
    hours = match["hours"] if match["step"] is None else f"{int(match['hour'])}/{int(match['step'])}"
    hours = hours if hours == "*" or "/" in hours else str(int(hours))
    if match["step"] is not None:
        window = timedelta(hours=int(match["step"]))
    elif match["hour"] is not None:
        window = DAILY_WINDOW
    else:
        window = DEFAULT_WINDOW
    return Cadence(text, f"0 {hours} * * *", window)


def parse_offset(text: str, field: str) -> timedelta:
    """An ISO-8601 duration offset such as `-PT1H` or `-P1DT2H` (years and months: too vague)."""
    match = _DURATION.fullmatch(text.strip())
    parts = {name: int(value) for name, value in match.groupdict().items() if name != "sign" and value} if match else {}
    if not parts or text.strip().endswith("T"):
        raise ScheduleExpressionError(f"{field} {text!r} is not an ISO-8601 duration like -PT1H or -P1D")
    delta = timedelta(**parts)
    return -delta if match["sign"] == "-" else delta


def format_offset(delta: timedelta) -> str:
    """`-PT4H15M` for a whole-minute timedelta: the inverse of `parse_offset`."""
    seconds = delta.total_seconds()
    if seconds % 60:
        raise ScheduleExpressionError(f"offset {delta} is not a whole number of minutes")
    sign, minutes = ("-" if seconds < 0 else ""), abs(int(seconds)) // 60
    hours, minutes = divmod(minutes, 60)
    return f"{sign}PT{hours}H{minutes}M" if minutes else f"{sign}PT{hours}H"


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    def hours(self) -> Iterator[datetime]:
        """Every clock hour (UTC) intersecting [start, end): the capture folders to read."""
        return hours_overlapping(self.start, self.end)


def analysis_window(schedule_config: dict, scheduled_time: datetime) -> Window:
    """The window a run at `scheduled_time` analyses, from a ScheduleConfig (its cadence's by default)."""
    start = schedule_config.get("DataAnalysisStartTime")
    end = schedule_config.get("DataAnalysisEndTime")
    if start:
        start_offset = parse_offset(start, "DataAnalysisStartTime")
    else:
        start_offset = -parse_schedule_expression(schedule_config["ScheduleExpression"]).window
    end_offset = parse_offset(end, "DataAnalysisEndTime") if end else timedelta(0)
    scheduled = scheduled_time.astimezone(timezone.utc)
    return Window(scheduled + start_offset, scheduled + end_offset)


def check_schedule_config(schedule_config: dict) -> Cadence:
    """Everything CreateMonitoringSchedule checks about a ScheduleConfig beyond its API shape."""
    cadence = parse_schedule_expression(schedule_config["ScheduleExpression"])
    given = [name for name in ("DataAnalysisStartTime", "DataAnalysisEndTime") if schedule_config.get(name)]
    if cadence.once and len(given) < 2:
        raise ScheduleExpressionError("ScheduleExpression NOW needs both DataAnalysisStartTime and DataAnalysisEndTime")
    window = analysis_window(schedule_config, datetime(2000, 1, 1, tzinfo=timezone.utc))
    if window.start >= window.end:
        raise ScheduleExpressionError(
            f"DataAnalysisStartTime {schedule_config.get('DataAnalysisStartTime')!r} must come before "
            f"DataAnalysisEndTime {schedule_config.get('DataAnalysisEndTime', 'PT0H')!r}"
        )
    if window.end - window.start > MAX_WINDOW:
        raise ScheduleExpressionError("DataAnalysisStartTime must not precede DataAnalysisEndTime by more than 24 hours")
    return cadence
