"""CloudWatch metric-alarm evaluation, as the CloudWatch user guide documents it. Pure: no I/O.

Given an alarm's rule (threshold, comparison, N = EvaluationPeriods, M = DatapointsToAlarm,
TreatMissingData), the value of each period bucket of the evaluation range (None = no data) and
the alarm's current state, `evaluate` returns the new state and CloudWatch's reason text.
`evaluation_buckets` says which time ranges those buckets cover at a given moment.

Source: CloudWatch user guide, "Configuring how CloudWatch alarms treat missing data"
(https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/alarms-and-missing-data.html),
section "How alarm state is evaluated when data is missing":

  "Whenever an alarm evaluates whether to change state, CloudWatch attempts to retrieve a higher
  number of data points than the number specified as Evaluation Periods. [...] The time frame of
  the data points that it attempts to retrieve is the evaluation range."
  - no data point missing: "evaluates the alarm based on the most recent data points collected";
  - some missing, but at least N real ones: "evaluates the alarm state based on the most recent
    real data points [...]. In this case, the value you set for how to treat missing data is not
    needed and is ignored.";
  - fewer than N real ones: "fills in the missing data points with the result you specified for
    how to treat missing data [...]. However, all real data points in the evaluation range are
    included in the evaluation. CloudWatch uses missing data points only as few times as possible."

and section "Avoiding premature transitions to alarm state":

  "alarms are designed to always go into ALARM state when the oldest available breaching
  datapoint during the Evaluation Periods number of data points is at least as old as the value of
  Datapoints to Alarm, and all other more recent data points are breaching or missing."

Older versions of the same guide add: "If fewer than the value of Datapoints to Alarm are
breaching, the alarm state is set to OK. Otherwise, the state is set to ALARM." M breaching points
need not be consecutive, only within the last N ("AlarmThatSendsEmail", "Evaluating an alarm").

The guide's two example tables (3 of 3 and 2 of 3, evaluation range 5) are reproduced cell by
cell in tests/unit/test_alarm_evaluation.py. One rule is our reading, chosen so that every cell holds:
the premature-ALARM rule applies only when every real point in the range breaches (the 2-of-3 row
`0 - X - -` stays OK although its breaching point is old enough). With `ignore`, a decision that
only the premature rule would make keeps the current state instead (the tables' "Retain current
state" in the `- - X - -` and `- - - X -` rows).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

OK = "OK"
ALARM = "ALARM"
INSUFFICIENT_DATA = "INSUFFICIENT_DATA"
STATES = (OK, ALARM, INSUFFICIENT_DATA)

# TreatMissingData values [API]; "missing" is the default.
TREAT_MISSING = ("missing", "ignore", "breaching", "notBreaching")


@dataclass(frozen=True)
class Comparison:
    test: Callable[[float, float], bool]
    words: str  # how CloudWatch's StateReason words it: "was <words> the threshold (4.0)"


# The static-threshold operators. The anomaly-detection ones (LessThanLowerOrGreaterThanUpper...)
# compare against a band from ThresholdMetricId, which a single-metric alarm does not have.
COMPARISONS: dict[str, Comparison] = {
    "GreaterThanOrEqualToThreshold": Comparison(operator.ge, "greater than or equal to"),
    "GreaterThanThreshold": Comparison(operator.gt, "greater than"),
    "LessThanThreshold": Comparison(operator.lt, "less than"),
    "LessThanOrEqualToThreshold": Comparison(operator.le, "less than or equal to"),
}

# PutMetricAlarm limits [API: PutMetricAlarm's Period documentation in botocore's CloudWatch model]:
# Period 10, 20, 30 or a multiple of 60; Period x N at most 7 days, and at most one day for a
# Period under one hour.
HIGH_RESOLUTION_PERIODS = (10, 20, 30)
MAX_EVALUATED_SECONDS = 7 * 24 * 3600
MAX_EVALUATED_SECONDS_SHORT_PERIOD = 24 * 3600
SHORT_PERIOD_BELOW = 3600
# Alarm evaluation window guide: wall clock windows support exactly these periods.
WALL_CLOCK_PERIODS = (60, 300, 3600, 86400, 604800)


def evaluation_range(evaluation_periods: int) -> int:
    """How many period buckets an evaluation retrieves.

    The guide gives one number: 5 for an alarm with Evaluation Periods 3 ("5 is the evaluation
    range for the alarm"); it says the exact number depends on the period and resolution without
    giving the rule. We use N + 2, which is that example.
    """
    return evaluation_periods + 2


def validate_period(period: int, evaluation_periods: int) -> None:
    if period not in HIGH_RESOLUTION_PERIODS and (period <= 0 or period % 60):
        raise ValueError(f"Period {period} is invalid: use 10, 20, 30 or a multiple of 60 seconds")
    total = period * evaluation_periods
    if total > MAX_EVALUATED_SECONDS:
        raise ValueError(f"Period x EvaluationPeriods = {total} s exceeds 7 days ({MAX_EVALUATED_SECONDS} s)")
    if period < SHORT_PERIOD_BELOW and total > MAX_EVALUATED_SECONDS_SHORT_PERIOD:
        raise ValueError(
            f"Period x EvaluationPeriods = {total} s exceeds one day ({MAX_EVALUATED_SECONDS_SHORT_PERIOD} s), "
            f"the limit for a Period under one hour (Period {period})"
        )


def rule_problems(threshold: float, comparison_operator: str, evaluation_periods: int, datapoints_to_alarm: int,
                  treat_missing_data: str) -> list[str]:
    """Every reason these alarm fields are invalid (empty when they are valid), so all are reported at once."""
    problems = []
    if not isinstance(threshold, (int, float)) or threshold != threshold or abs(threshold) == float("inf"):
        problems.append(f"Threshold must be a finite number, got {threshold!r}")
    if comparison_operator not in COMPARISONS:
        problems.append(f"ComparisonOperator {comparison_operator!r} is not supported for a "
                        f"static-threshold alarm; use one of {sorted(COMPARISONS)}")
    if evaluation_periods < 1:
        problems.append(f"EvaluationPeriods must be at least 1, got {evaluation_periods}")
    if not 1 <= datapoints_to_alarm <= max(evaluation_periods, 1):
        problems.append(f"DatapointsToAlarm must be between 1 and EvaluationPeriods "
                        f"({evaluation_periods}), got {datapoints_to_alarm}")
    if treat_missing_data not in TREAT_MISSING:
        problems.append(f"TreatMissingData {treat_missing_data!r} is invalid; use one of {TREAT_MISSING}")
    return problems


@dataclass(frozen=True)
class AlarmRule:
    """The parts of a metric alarm that decide its state."""

    threshold: float
    comparison_operator: str
    evaluation_periods: int
    datapoints_to_alarm: int
    treat_missing_data: str = "missing"

    def __post_init__(self) -> None:
        problems = rule_problems(self.threshold, self.comparison_operator, self.evaluation_periods,
                                 self.datapoints_to_alarm, self.treat_missing_data)
        if problems:
            raise ValueError("; ".join(problems))

    @classmethod
    def from_metric_alarm(cls, alarm: Mapping) -> AlarmRule:
        """From a PutMetricAlarm request or a DescribeAlarms MetricAlarm (same field names)."""
        for field in ("Threshold", "ComparisonOperator", "EvaluationPeriods"):
            if alarm.get(field) is None:
                raise ValueError(f"alarm {alarm.get('AlarmName')!r} has no {field}")
        n = int(alarm["EvaluationPeriods"])
        return cls(
            threshold=float(alarm["Threshold"]),
            comparison_operator=alarm["ComparisonOperator"],
            evaluation_periods=n,
            datapoints_to_alarm=int(alarm.get("DatapointsToAlarm") or n),
            treat_missing_data=alarm.get("TreatMissingData") or "missing",
        )

    def breaches(self, value: float) -> bool:
        return COMPARISONS[self.comparison_operator].test(value, self.threshold)


@dataclass(frozen=True)
class Evaluation:
    """The outcome of one evaluation.

    `state` is the state the alarm is in afterwards (the current one when `retained`);
    `evaluated` lists the indexes (into the evaluation range) of the real data points the decision
    used, newest first; `filled` is how many missing points were filled with TreatMissingData.
    """

    state: str
    reason: str
    retained: bool
    evaluated: tuple[int, ...]
    filled: int


def evaluate(
    rule: AlarmRule,
    datapoints: Sequence[float | None],
    current_state: str,
    bucket_starts: Sequence[datetime] | None = None,
) -> Evaluation:
    """Evaluate the alarm over one evaluation range.

    `datapoints`: the statistic of each period bucket, oldest first, None where the bucket has no
    data; its length is the evaluation range (at least N). `bucket_starts` (same length) only
    feeds the reason text.
    """
    n, m, treat = rule.evaluation_periods, rule.datapoints_to_alarm, rule.treat_missing_data
    if current_state not in STATES:
        raise ValueError(f"current state {current_state!r} is not one of {STATES}")
    if len(datapoints) < n:
        raise ValueError(f"{len(datapoints)} datapoints given for an alarm evaluating {n} periods")
    if bucket_starts is not None and len(bucket_starts) != len(datapoints):
        raise ValueError(f"{len(bucket_starts)} bucket starts for {len(datapoints)} datapoints")

    newest_first = [i for i in reversed(range(len(datapoints))) if datapoints[i] is not None]
    breach = {i: rule.breaches(float(datapoints[i])) for i in newest_first}
    text = _ReasonText(rule, datapoints, bucket_starts)

    if len(newest_first) >= n:  # enough real points: TreatMissingData is not consulted
        used = tuple(newest_first[:n])
        return _by_count(rule, used, breach, filled=0, text=text)

    if not newest_first:  # the whole range is missing
        if treat == "ignore":
            return Evaluation(current_state, "", True, (), 0)
        if treat == "missing":
            return Evaluation(INSUFFICIENT_DATA, text.insufficient(), False, (), 0)
        state = ALARM if treat == "breaching" else OK
        return Evaluation(state, text.all_filled(treat), False, (), n)

    # Fewer than N real points: all of them count, plus N - real fills.
    used = tuple(newest_first)
    filled = n - len(used)
    if treat in ("breaching", "notBreaching"):
        return _by_count(rule, used, breach, filled=filled, text=text)

    breaching = sum(breach[i] for i in used)
    if breaching < m and _premature_alarm(used, breach, len(datapoints), m):
        if treat == "ignore":
            return Evaluation(current_state, "", True, used, 0)
        return Evaluation(ALARM, text.crossed(ALARM, used, breach, 0), False, used, 0)
    return _by_count(rule, used, breach, filled=0, text=text)


def _by_count(rule: AlarmRule, used: tuple[int, ...], breach: Mapping[int, bool], filled: int,
              text: _ReasonText) -> Evaluation:
    breaching = sum(breach[i] for i in used)
    if rule.treat_missing_data == "breaching":
        breaching += filled
    state = ALARM if breaching >= rule.datapoints_to_alarm else OK
    return Evaluation(state, text.crossed(state, used, breach, filled), False, used, filled)


def _premature_alarm(used: tuple[int, ...], breach: Mapping[int, bool], range_size: int,
                     datapoints_to_alarm: int) -> bool:
    """The guide's premature-ALARM rule (see the module docstring for the all-breaching reading)."""
    if not used or not all(breach[i] for i in used):
        return False
    oldest = used[-1]
    age = range_size - oldest  # the newest bucket is 1 period old
    return age >= datapoints_to_alarm


class _ReasonText:
    """StateReason in CloudWatch's wording, e.g. "Threshold Crossed: 2 out of the last 3
    datapoints [3.0 (25/11/26 12:00:00), 2.0 (25/11/26 11:00:00)] were less than the threshold
    (4.0) (minimum 2 datapoints for OK -> ALARM transition)." (as seen in SNS alarm messages)."""

    FILL_LABELS = {"breaching": "Breaching", "notBreaching": "NonBreaching"}

    def __init__(self, rule: AlarmRule, datapoints: Sequence[float | None],
                 bucket_starts: Sequence[datetime] | None) -> None:
        self.rule = rule
        self.datapoints = datapoints
        self.bucket_starts = bucket_starts

    def insufficient(self) -> str:
        n = self.rule.evaluation_periods
        return f"Insufficient Data: {_count(n, 'datapoint')} {_was(n)} unknown."

    def all_filled(self, treat: str) -> str:
        n = self.rule.evaluation_periods
        return (
            f"Threshold Crossed: no datapoints were received for {_count(n, 'period')} and "
            f"{_count(n, 'missing datapoint')} {_was(n)} treated as [{self.FILL_LABELS[treat]}]."
        )

    def crossed(self, state: str, used: tuple[int, ...], breach: Mapping[int, bool],
                filled: int) -> str:
        rule = self.rule
        n, m = rule.evaluation_periods, rule.datapoints_to_alarm
        words = COMPARISONS[rule.comparison_operator].words
        threshold = _number(rule.threshold)
        # Counted: real points of the kind that decided, plus fills treated as that kind.
        treat = rule.treat_missing_data
        healthy = [i for i in used if not breach[i]]
        healthy_count = len(healthy) + (filled if treat == "notBreaching" else 0)
        if state == ALARM or not healthy_count:
            # An OK with no healthy point to show (too few breaching points under `missing`)
            # is explained by the breaching side: "1 out of the last 3 ... (minimum 3 ...)".
            listed = [i for i in used if breach[i]]
            count = len(listed) + (filled if treat == "breaching" else 0)
            relation, minimum, transition = words, m, "OK -> ALARM"
        else:
            listed, count = healthy, healthy_count
            relation, minimum, transition = f"not {words}", n - m + 1, "ALARM -> OK"
        points = "[" + ", ".join(self._point(i) for i in listed) + "]"
        fill_note = ""
        if filled and rule.treat_missing_data in self.FILL_LABELS:
            fill_note = (f" and {_count(filled, 'missing datapoint')} {_was(filled)} treated as "
                         f"[{self.FILL_LABELS[rule.treat_missing_data]}]")
        if n == 1 and not filled:  # CloudWatch's short form for single-period alarms
            return f"Threshold Crossed: 1 datapoint {points} was {relation} the threshold ({threshold})."
        return (
            f"Threshold Crossed: {count} out of the last {n} datapoints {points} {_was(count)} "
            f"{relation} the threshold ({threshold}){fill_note} "
            f"(minimum {_count(minimum, 'datapoint')} for {transition} transition)."
        )

    def _point(self, index: int) -> str:
        value = _number(self.datapoints[index])
        if self.bucket_starts is None:
            return value
        return f"{value} ({self.bucket_starts[index]:%d/%m/%y %H:%M:%S})"


def _number(value: float) -> str:
    return repr(float(value))  # 4.0, 3.25: the way CloudWatch prints doubles


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _was(n: int) -> str:
    return "was" if n == 1 else "were"


# --- where the period buckets of an evaluation fall ------------------------------------------


def evaluation_buckets(
    now: datetime, period: int, count: int, evaluation_window: Mapping | None = None
) -> list[tuple[datetime, datetime]]:
    """The `count` period buckets an evaluation at `now` reads, oldest first, as (start, end).

    Sliding window (the default): the newest bucket ends at `now`, to the minute ("might evaluate
    the time range 13:07-14:07 on one evaluation and 13:08-14:08 on the next").
    WallClockWindow: buckets are calendar periods in the window's time zone (top of the hour,
    midnight, Monday 00:00 for a week) and the newest is "the most recently completed clock"
    period. Buckets are [start, end) in UTC; a day can last 23 or 25 hours across DST.
    """
    if now.tzinfo is None:
        raise ValueError("evaluation time must be timezone-aware")
    now = now.astimezone(timezone.utc)
    step = timedelta(seconds=period)
    wall_clock = (evaluation_window or {}).get("WallClockWindow")
    if wall_clock is None:
        grain = period if period < 60 else 60
        end = now - timedelta(seconds=now.second % grain, microseconds=now.microsecond)
        return [(end - (count - i) * step, end - (count - i - 1) * step) for i in range(count)]

    if period not in WALL_CLOCK_PERIODS:
        raise ValueError(f"Period {period} is not supported with a wall clock window; "
                         f"use one of {WALL_CLOCK_PERIODS}")
    zone = parse_timezone(wall_clock.get("Timezone") or "UTC")
    if period <= 3600:
        # Sub-day boundaries: every supported zone offset is a multiple of 5 minutes, so local
        # boundaries are equally spaced in UTC; align with the offset in force now.
        offset = now.astimezone(zone).utcoffset() or timedelta(0)
        local = now + offset
        since_midnight = local - local.replace(hour=0, minute=0, second=0, microsecond=0)
        end = now - timedelta(seconds=since_midnight.total_seconds() % period)
        return [(end - (count - i) * step, end - (count - i - 1) * step) for i in range(count)]

    # Day and week: step in local calendar time, so DST days keep their true length.
    local_now = now.astimezone(zone).replace(tzinfo=None)
    start = local_now.replace(hour=0, minute=0, second=0, microsecond=0)
    days = 1
    if period == 604800:
        start -= timedelta(days=start.weekday())  # ISO week: Monday 00:00
        days = 7
    boundaries = [start - timedelta(days=days * k) for k in range(count, -1, -1)]
    utc = [b.replace(tzinfo=zone).astimezone(timezone.utc) for b in boundaries]
    return list(zip(utc[:-1], utc[1:]))


_OFFSET = re.compile(r"^(?:UTC|GMT)?([+-])(\d{1,2}):?(\d{2})$")


def parse_timezone(name: str) -> tzinfo:
    """WallClockWindow.Timezone: an IANA name, `Z`, `+05:30`, or `UTC+05:30` / `GMT-08:00`."""
    text = name.strip()
    if text in ("Z", "UTC", "GMT"):
        return timezone.utc
    match = _OFFSET.match(text)
    if match:
        sign, hours, minutes = match.groups()
        delta = timedelta(hours=int(hours), minutes=int(minutes))
        if delta > timedelta(hours=14) or minutes and int(minutes) >= 60:
            raise ValueError(f"WallClockWindow Timezone {name!r} is not a valid UTC offset")
        if delta % timedelta(minutes=5):
            raise ValueError(f"WallClockWindow Timezone {name!r}: offset must be a multiple of 5 minutes")
        return timezone(-delta if sign == "-" else delta)
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(f"WallClockWindow Timezone {name!r} is not an IANA time zone or a "
                         f"UTC offset such as +05:30") from error
