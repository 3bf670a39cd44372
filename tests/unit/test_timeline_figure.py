"""The incident timeline tells the same times as the alarm's history and the endpoint's deploys:
ALARM shaded from its state changes (not around the runs' hours), deploys and rollbacks where they
went live and named as such, a title with the date, times in UTC."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import matplotlib
import matplotlib.dates as mdates
import pandas as pd

from diversity_monitor.job import report_views

matplotlib.use("Agg")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


@dataclass
class Event:
    at: datetime
    what: str
    detail: str


TABLE = pd.DataFrame({
    "hour": [f"2027-10-31 {h:02d}:00" for h in range(7, 13)],
    "mean": [7.2, 7.1, 2.0, 2.0, 7.2, 7.1],
    "p5": [6, 6, 2, 2, 6, 6],
})
ALARM = [(at("2027-10-31T07:05:00"), "OK"), (at("2027-10-31T10:01:00"), "ALARM"), (at("2027-10-31T12:01:00"), "OK")]
EVENTS = [Event(at("2027-10-31T08:30:00"), "deploy", "recommender-prod-v2"),
          Event(at("2027-10-31T10:30:00"), "rollback", "recommender-prod-v1")]


def as_time(x) -> datetime:
    """An x coordinate as matplotlib stores it (a float of days, or the datetime it was given) in UTC."""
    if isinstance(x, float):
        return mdates.num2date(x).replace(microsecond=0)  # float days: rounding below a second
    return pd.Timestamp(x).to_pydatetime()


def test_alarm_spans_follow_the_state_history():
    assert report_views.alarm_spans(ALARM, pd.Timestamp("2027-10-31T13:00Z")) == [
        (pd.Timestamp("2027-10-31T10:01Z"), pd.Timestamp("2027-10-31T12:01Z"))]
    still_firing = ALARM[:2]
    assert report_views.alarm_spans(still_firing, pd.Timestamp("2027-10-31T13:00Z"))[0][1] == pd.Timestamp("2027-10-31T13:00Z")


def test_timeline_shades_the_real_alarm_time_and_marks_deploys_where_they_went_live():
    figure = report_views.timeline_figure(TABLE, EVENTS, threshold=4, alarm_changes=ALARM,
                                          title="recommender-prod: replay diversity", baseline=7.19)
    axis = figure.axes[0]
    [shade] = [patch for patch in axis.patches]
    left, width = float(shade.get_x()), float(shade.get_width())
    assert as_time(left) == at("2027-10-31T10:01:00") and as_time(left + width) == at("2027-10-31T12:01:00")
    lines = {as_time(line.get_xdata()[0]) for line in axis.lines if len(set(line.get_xdata())) == 1}
    assert {at("2027-10-31T08:30:00"), at("2027-10-31T10:30:00")} <= lines
    notes = [text.get_text() for text in axis.texts]
    assert "deploy 08:30\nrecommender-prod-v2" in notes and "rollback 10:30\nrecommender-prod-v1" in notes
    assert axis.get_title() == "recommender-prod: replay diversity, 2027-10-31 (UTC)"
    assert axis.get_xlabel() == "time (UTC)"
    labels = [text.get_text() for text in axis.get_legend().get_texts()]
    assert "alarm in ALARM (its state history)" in labels and "baseline mean 7.19" in labels


def test_a_timeline_over_days_shows_dates_on_the_axis():
    table = TABLE.assign(hour=[f"2027-10-{d} 23:00" for d in (26, 27, 28, 29, 30, 31)])
    axis = report_views.timeline_figure(table, threshold=4).axes[0]
    assert axis.get_title().endswith("2027-10-26 to 2027-10-31 (UTC)")
    assert axis.xaxis.get_major_formatter().fmt == "%m-%d %H:%M"
