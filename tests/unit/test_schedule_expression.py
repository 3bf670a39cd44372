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
