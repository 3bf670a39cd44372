"""Model Monitor's schedule expressions and analysis windows (aws/schedule_expression.py): pure."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from diversity_monitor.aws import schedule_expression


def utc(hour: int, minute: int = 0) -> datetime:
    return datetime(2027, 10, 31, hour, minute, tzinfo=timezone.utc)


@pytest.mark.parametrize("expression, crontab, period_hours", [
    ("cron(0 * ? * * *)", "0 * * * *", 1),
    ("cron(0 12 ? * * *)", "0 12 * * *", 24),
    ("cron(0 00 ? * * *)", "0 0 * * *", 24),
    ("cron(0 0/2 ? * * *)", "0 0/2 * * *", 2),
    ("cron(0 17/12 ? * * *)", "0 17/12 * * *", 24),  # cron semantics: 17:00 only
    ("cron(0 0/5 ? * * *)", "0 0/5 * * *", 4),  # 20:00 -> 00:00 is the shortest gap
])
def test_schedule_expressions_map_to_croniter(expression, crontab, period_hours):
    cadence = schedule_expression.parse_schedule_expression(expression)
    assert cadence.crontab == crontab
    assert cadence.period() == timedelta(hours=period_hours)


def test_window_hours_cover_every_hour_the_window_touches():
    window = schedule_expression.analysis_window({"DataAnalysisStartTime": "-PT90M", "DataAnalysisEndTime": "-PT1M"}, utc(10))
    assert (window.start, window.end) == (utc(8, 30), utc(9, 59))
    assert list(window.hours()) == [utc(8), utc(9)]
    with pytest.raises(schedule_expression.ScheduleExpressionError, match="not an ISO-8601 duration"):
        schedule_expression.parse_offset("-P", "DataAnalysisStartTime")
    assert schedule_expression.format_offset(timedelta(hours=-4, minutes=-15)) == "-PT4H15M"
    assert schedule_expression.parse_offset("-PT4H15M", "x") == timedelta(hours=-4, minutes=-15)


@pytest.mark.parametrize(("expression", "scheduled", "start"), [
    ("cron(0 * ? * * *)", utc(10), utc(9)),  # hourly: the hour before
    ("cron(0 0/2 ? * * *)", utc(10), utc(8)),  # every N hours: the N hours before (no AWS page says otherwise)
    ("cron(0 17/12 ? * * *)", utc(17), utc(5)),
])
def test_default_windows_follow_the_cadence(expression, scheduled, start):
    window = schedule_expression.analysis_window({"ScheduleExpression": expression}, scheduled)
    assert (window.start, window.end) == (start, scheduled)


def test_a_daily_window_is_the_one_aws_documents():
    """BYOC inputs page: a run "scheduled to run at 05:00 UTC on 20/02/2020" gets start_time
    2020-02-19T06:00:00Z and end_time 2020-02-20T05:00:00Z."""
    run = datetime(2020, 2, 20, 5, tzinfo=timezone.utc)
    window = schedule_expression.analysis_window({"ScheduleExpression": "cron(0 5 ? * * *)"}, run)
    assert (window.start, window.end) == (datetime(2020, 2, 19, 6, tzinfo=timezone.utc), run)
    offsets = {"ScheduleExpression": "cron(0 5 ? * * *)", "DataAnalysisStartTime": "-PT24H"}
    assert schedule_expression.analysis_window(offsets, run).start == datetime(2020, 2, 19, 5, tzinfo=timezone.utc)
