"""CloudWatch alarm evaluation (pure): the guide's two example tables, cell by cell, and the rules.

Source of both tables: CloudWatch user guide, "Configuring how CloudWatch alarms treat missing
data", section "How alarm state is evaluated when data is missing"
(https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/alarms-and-missing-data.html):

  "In the first table, Datapoints to Alarm and Evaluation Periods are both 3. CloudWatch
  retrieves the 5 most recent data points when evaluating the alarm [...]. These data points are
  shown with the most recent data point on the right. 0 is a non-breaching data point, X is a
  breaching data point, and - is a missing data point."
  "In the next table, the Period is again set to 5 minutes, and Datapoints to Alarm is only 2
  while Evaluation Periods is 3. This is a 2 out of 3, M out of N alarm. The evaluation range
  is 5."

Columns: data points | MISSING | IGNORE | BREACHING | NOT BREACHING ("RETAIN" = the guide's
"Retain current state"). The guide's second column (how many points must be filled) is checked
as `Evaluation.filled` for BREACHING / NOT BREACHING.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from diversity_monitor.aws.alarm_evaluation import (
    ALARM,
    INSUFFICIENT_DATA,
    OK,
    AlarmRule,
    evaluate,
    evaluation_buckets,
    evaluation_range,
    parse_timezone,
    validate_period,
)

RETAIN = "RETAIN"
TREATMENTS = ("missing", "ignore", "breaching", "notBreaching")

# (data points, # to fill, MISSING, IGNORE, BREACHING, NOT BREACHING) -- verbatim from the guide.
TABLE_3_OF_3 = [
    ("0 - X - X", 0, OK, OK, OK, OK),
    ("0 - - - -", 2, OK, OK, OK, OK),
    ("- - - - -", 3, INSUFFICIENT_DATA, RETAIN, ALARM, OK),
    ("0 X X - X", 0, ALARM, ALARM, ALARM, ALARM),
    ("- - X - -", 2, ALARM, RETAIN, ALARM, OK),
]
TABLE_2_OF_3 = [
    ("0 - X - X", 0, ALARM, ALARM, ALARM, ALARM),
    ("0 0 X 0 X", 0, ALARM, ALARM, ALARM, ALARM),
    ("0 - X - -", 1, OK, OK, ALARM, OK),
    ("- - - - 0", 2, OK, OK, ALARM, OK),
    ("- - - X -", 2, ALARM, RETAIN, ALARM, OK),
]

# The alarm the tables stand for: "X" breaches `< 4`, "0" does not.
VALUE = {"X": 1.0, "0": 9.0, "-": None}


def points(pattern: str) -> list[float | None]:
    return [VALUE[symbol] for symbol in pattern.split()]


def rule(m: int, n: int = 3, treat: str = "missing", operator: str = "LessThanThreshold",
         threshold: float = 4.0) -> AlarmRule:
    return AlarmRule(threshold=threshold, comparison_operator=operator, evaluation_periods=n,
                     datapoints_to_alarm=m, treat_missing_data=treat)


def table_cells(table, m):
    for pattern, to_fill, *expected in table:
        for treat, state in zip(TREATMENTS, expected):
            yield pytest.param(pattern, m, treat, state, to_fill, id=f"{m}of3[{pattern}]-{treat}")


@pytest.mark.parametrize(
    "pattern, m, treat, expected, to_fill",
    [*table_cells(TABLE_3_OF_3, 3), *table_cells(TABLE_2_OF_3, 2)],
)
def test_guide_tables(pattern, m, treat, expected, to_fill):
    assert evaluation_range(3) == 5  # "5 is the evaluation range for the alarm"
    for current in (OK, ALARM, INSUFFICIENT_DATA):
        outcome = evaluate(rule(m, treat=treat), points(pattern), current)
        if expected == RETAIN:
            assert outcome.retained and outcome.state == current
        else:
            assert not outcome.retained
            assert outcome.state == expected, f"from {current}"
        if treat in ("breaching", "notBreaching"):
            assert outcome.filled == to_fill


def test_m_of_n_breaches_need_not_be_consecutive():
    # 3 of 5 (range 7): the newest five are "X 0 X 0 X", three breaches, none adjacent
    assert evaluate(rule(3, n=5), points("0 0 X 0 X 0 X"), OK).state == ALARM
    assert evaluate(rule(3, n=5), points("X X 0 X 0 0 0"), ALARM).state == OK  # two within the last 5


def test_at_least_n_real_points_ignore_treat_missing_data():
    # "0 X X - X": the newest three real points are X X X whatever TreatMissingData says.
    for treat in TREATMENTS:
        assert evaluate(rule(3, treat=treat), points("0 X X - X"), OK).state == ALARM
    # Older real points beyond the newest N are not used: "X X 0 0 0" is OK for 3 of 3.
    assert evaluate(rule(3, treat="breaching"), points("X X 0 0 0"), ALARM).state == OK


@pytest.mark.parametrize(
    "operator, value, breaches",
    [
        ("GreaterThanThreshold", 4.0, False), ("GreaterThanThreshold", 4.5, True),
        ("GreaterThanOrEqualToThreshold", 4.0, True), ("GreaterThanOrEqualToThreshold", 3.9, False),
        ("LessThanThreshold", 4.0, False), ("LessThanThreshold", 3.9, True),
        ("LessThanOrEqualToThreshold", 4.0, True), ("LessThanOrEqualToThreshold", 4.1, False),
    ],
)
def test_comparison_operators(operator, value, breaches):
    alarm = rule(1, n=1, operator=operator)
    assert alarm.breaches(value) is breaches
    assert evaluate(alarm, [None, None, value], OK).state == (ALARM if breaches else OK)


def test_new_alarm_without_data_stays_insufficient_data():
    outcome = evaluate(rule(2), points("- - - - -"), INSUFFICIENT_DATA)
    assert outcome.state == INSUFFICIENT_DATA and not outcome.retained
    assert outcome.reason == "Insufficient Data: 3 datapoints were unknown."


def test_transitions_out_of_insufficient_data():
    assert evaluate(rule(2), points("- - - - 0"), INSUFFICIENT_DATA).state == OK
    assert evaluate(rule(2), points("- - - X X"), INSUFFICIENT_DATA).state == ALARM


def test_ignore_keeps_the_current_state_when_everything_is_missing():
    for current in (OK, ALARM, INSUFFICIENT_DATA):
        outcome = evaluate(rule(2, treat="ignore"), points("- - - - -"), current)
        assert outcome.retained and outcome.state == current


def test_reason_text_in_cloudwatch_wording():
    start = datetime(2026, 11, 25, 10, 5, tzinfo=timezone.utc)
    starts = [start + timedelta(hours=i) for i in range(5)]
    outcome = evaluate(rule(2), [None, None, 5.0, 3.0, 2.0], OK, starts)
    assert outcome.state == ALARM and outcome.evaluated == (4, 3, 2)
    assert outcome.reason == (
        "Threshold Crossed: 2 out of the last 3 datapoints [2.0 (25/11/26 14:05:00), "
        "3.0 (25/11/26 13:05:00)] were less than the threshold (4.0) "
        "(minimum 2 datapoints for OK -> ALARM transition)."
    )
    recovered = evaluate(rule(2), [5.0, 3.0, 2.0, 6.0, 7.0], ALARM, starts)
    assert recovered.reason == (
        "Threshold Crossed: 2 out of the last 3 datapoints [7.0 (25/11/26 14:05:00), "
        "6.0 (25/11/26 13:05:00)] were not less than the threshold (4.0) "
        "(minimum 2 datapoints for ALARM -> OK transition)."
    )
    single = evaluate(rule(1, n=1, operator="GreaterThanOrEqualToThreshold", threshold=1.0),
                      [None, None, 1.0], OK, starts[:3])
    assert single.reason == ("Threshold Crossed: 1 datapoint [1.0 (25/11/26 12:05:00)] was "
                             "greater than or equal to the threshold (1.0).")
    filled = evaluate(rule(1, n=1, treat="notBreaching"), [None, None, None], ALARM)
    assert filled.reason == ("Threshold Crossed: no datapoints were received for 1 period and "
                             "1 missing datapoint was treated as [NonBreaching].")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"comparison_operator": "LessThanLowerThreshold"}, "ComparisonOperator"),
        ({"datapoints_to_alarm": 4}, "DatapointsToAlarm"),
        ({"datapoints_to_alarm": 0}, "DatapointsToAlarm"),
        ({"treat_missing_data": "Breaching"}, "TreatMissingData"),
        ({"evaluation_periods": 0, "datapoints_to_alarm": 0}, "EvaluationPeriods"),
    ],
)
def test_invalid_rules_are_named(kwargs, message):
    fields = {"threshold": 4.0, "comparison_operator": "LessThanThreshold", "evaluation_periods": 3,
              "datapoints_to_alarm": 2, **kwargs}
    with pytest.raises(ValueError, match=message):
        AlarmRule(**fields)


def test_rule_from_a_describe_alarms_entry_defaults_m_and_treatment():
    parsed = AlarmRule.from_metric_alarm(
        {"AlarmName": "a", "Threshold": 4, "ComparisonOperator": "LessThanThreshold", "EvaluationPeriods": 3}
    )
    assert (parsed.datapoints_to_alarm, parsed.treat_missing_data) == (3, "missing")
    with pytest.raises(ValueError, match="Threshold"):
        AlarmRule.from_metric_alarm({"AlarmName": "a", "EvaluationPeriods": 3})


def test_too_few_datapoints_is_an_error():
    with pytest.raises(ValueError, match="2 datapoints"):
        evaluate(rule(2), [1.0, 2.0], OK)


def test_period_limits():
    for period in (10, 20, 30, 60, 3600):
        validate_period(period, 3)
    with pytest.raises(ValueError, match="Period 90"):
        validate_period(90, 3)
    with pytest.raises(ValueError, match="7 days"):
        validate_period(86400, 8)
    # Under an hour, the whole range may span one day at most [API: PutMetricAlarm Period].
    validate_period(60, 1440)
    validate_period(3600, 168)
    with pytest.raises(ValueError, match="exceeds one day .* Period under one hour"):
        validate_period(60, 1441)
    with pytest.raises(ValueError, match="exceeds one day"):
        validate_period(1800, 49)


UTC = timezone.utc


def test_sliding_window_ends_at_now_to_the_minute():
    buckets = evaluation_buckets(datetime(2026, 11, 25, 14, 7, 42, tzinfo=UTC), 3600, 5)
    assert buckets[-1] == (datetime(2026, 11, 25, 13, 7, tzinfo=UTC), datetime(2026, 11, 25, 14, 7, tzinfo=UTC))
    assert buckets[0][0] == datetime(2026, 11, 25, 9, 7, tzinfo=UTC)
    assert all(end - start == timedelta(hours=1) for start, end in buckets)


def test_wall_clock_window_reads_completed_clock_periods():
    now = datetime(2026, 11, 25, 14, 7, tzinfo=UTC)
    hourly = evaluation_buckets(now, 3600, 5, {"WallClockWindow": {}})
    assert hourly[-1] == (datetime(2026, 11, 25, 13, tzinfo=UTC), datetime(2026, 11, 25, 14, tzinfo=UTC))
    kolkata = evaluation_buckets(now, 3600, 1, {"WallClockWindow": {"Timezone": "+05:30"}})
    assert kolkata == [(datetime(2026, 11, 25, 12, 30, tzinfo=UTC), datetime(2026, 11, 25, 13, 30, tzinfo=UTC))]
    weekly = evaluation_buckets(now, 604800, 1, {"WallClockWindow": {"Timezone": "UTC"}})
    assert weekly == [(datetime(2026, 11, 16, tzinfo=UTC), datetime(2026, 11, 23, tzinfo=UTC))]  # Mondays


def test_wall_clock_day_across_a_dst_change_is_23_hours():
    # Europe/Dublin springs forward on 2026-03-29: that local day is 23 hours long.
    now = datetime(2026, 3, 30, 9, 0, tzinfo=UTC)
    days = evaluation_buckets(now, 86400, 2, {"WallClockWindow": {"Timezone": "Europe/Dublin"}})
    assert days[-1] == (datetime(2026, 3, 29, 0, 0, tzinfo=UTC), datetime(2026, 3, 29, 23, 0, tzinfo=UTC))
    assert days[0][1] - days[0][0] == timedelta(hours=24)


def test_wall_clock_rejects_unsupported_periods_and_time_zones():
    now = datetime(2026, 11, 25, 14, 7, tzinfo=UTC)
    with pytest.raises(ValueError, match="Period 120"):
        evaluation_buckets(now, 120, 5, {"WallClockWindow": {}})
    with pytest.raises(ValueError, match="multiple of 5 minutes"):
        parse_timezone("+01:03")
    with pytest.raises(ValueError, match="Mars/Olympus"):
        parse_timezone("Mars/Olympus")
    assert parse_timezone("GMT-08:00").utcoffset(None) == timedelta(hours=-8)


def test_reason_counts_only_real_points_when_missing_data_is_missing():
    start = datetime(2026, 11, 25, 5, 5, tzinfo=timezone.utc)
    starts = [start + timedelta(hours=i) for i in range(5)]
    first = evaluate(rule(2), [None, None, None, None, 5.0], INSUFFICIENT_DATA, starts)
    assert first.reason == (
        "Threshold Crossed: 1 out of the last 3 datapoints [5.0 (25/11/26 09:05:00)] was not less "
        "than the threshold (4.0) (minimum 2 datapoints for ALARM -> OK transition)."
    )
    lone_breach = evaluate(rule(3), [None, None, None, 1.0, None], INSUFFICIENT_DATA, starts)
    assert lone_breach.state == OK  # too young for the premature rule, fewer than M breaching
    assert lone_breach.reason == (
        "Threshold Crossed: 1 out of the last 3 datapoints [1.0 (25/11/26 08:05:00)] was less "
        "than the threshold (4.0) (minimum 3 datapoints for OK -> ALARM transition)."
    )
