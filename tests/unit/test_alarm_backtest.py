"""The alarm backtest (pure, local files): the guide's tables through the replay path, CSV and
report histories, hand-computed sweeps, bad input reported all at once, the command line."""

from __future__ import annotations

import contextlib
import io
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from diversity_monitor import cli
from diversity_monitor.aws.alarm_evaluation import ALARM, INSUFFICIENT_DATA, OK
from diversity_monitor.aws.service_schema import RequestInvalid
from diversity_monitor.conventions import CUSTOM_BLOCK, STATISTICS_FILE, VIOLATIONS_FILE, diversity_metric
from diversity_monitor.oncall import alarm_backtest as bt
from diversity_monitor.storage import StorageError
from unit.test_alarm_evaluation import RETAIN, TABLE_2_OF_3, TABLE_3_OF_3, TREATMENTS

UTC = timezone.utc
GUIDE_PERIOD = 300  # the guide's tables: "the Period is again set to 5 minutes"
EVALUATED_AT = datetime(2027, 1, 4, 12, 0, tzinfo=UTC)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


# --- the CloudWatch guide's two tables, through CSV -> history -> minute replay -----------------

def guide_csv(pattern: str) -> str:
    """The pattern's five 5-minute buckets ending at EVALUATED_AT, one point a minute into each
    ("X" breaches `< 4`, "0" does not, "-" is an empty value)."""
    symbols = pattern.split()
    first = EVALUATED_AT - len(symbols) * timedelta(seconds=GUIDE_PERIOD)
    lines = ["timestamp,value"]
    for i, symbol in enumerate(symbols):
        stamp = first + i * timedelta(seconds=GUIDE_PERIOD) + timedelta(minutes=1)
        lines.append(f"{stamp:%Y-%m-%dT%H:%M:%SZ},{ {'X': '1.0', '0': '9.0', '-': ''}[symbol]}")
    return "\n".join(lines) + "\n"


def guide_cells():
    for m, table in ((3, TABLE_3_OF_3), (2, TABLE_2_OF_3)):
        for pattern, _, *expected in table:
            for treat, state in zip(TREATMENTS, expected):
                yield pytest.param(pattern, m, treat, state, id=f"{m}of3[{pattern}]-{treat}")


@pytest.mark.parametrize("pattern, m, treat, expected", list(guide_cells()))
def test_the_guides_tables_cell_by_cell_through_the_replay(tmp_path, pattern, m, treat, expected):
    history = bt.read_csv(write(tmp_path / "guide.csv", guide_csv(pattern)))
    setting = bt.Setting(4.0, m, 3, treat_missing_data=treat, period=GUIDE_PERIOD)
    for current in (OK, ALARM, INSUFFICIENT_DATA):
        backtest = bt.replay(history, [setting], EVALUATED_AT, EVALUATED_AT, initial_state=current)[0]
        state = backtest.transitions[-1].new if backtest.transitions else current
        assert state == (current if expected == RETAIN else expected), f"from {current}"
        if expected == RETAIN or expected == current:
            assert not backtest.transitions


# --- a hand-computed history and sweep ----------------------------------------------------------

# Hourly values stamped on the hour (publication delay 0): a lone bad hour at 09:00 (no incident),
# then the incident 11:00-13:00 with two bad hours.
HOURS = {"07": "7", "08": "7", "09": "3", "10": "7", "11": "2", "12": "2", "13": "7", "14": "7"}
INCIDENT = bt.Incident(at("2027-01-04T11:00:00Z"), at("2027-01-04T13:00:00Z"), "bad deploy")


def hourly_csv(values=HOURS) -> str:
    return "timestamp,value\n" + "".join(f"2027-01-04T{hour}:00:00Z,{value}\n" for hour, value in values.items())


@pytest.fixture
def hourly(tmp_path) -> bt.History:
    return bt.read_csv(write(tmp_path / "hourly.csv", hourly_csv()))


def moves(backtest: bt.Backtest) -> list[tuple[str, str, str]]:
    return [(f"{t.at:%H:%M}", t.old, t.new) for t in backtest.transitions]


def test_one_of_one_pages_on_every_bad_hour(hourly):
    backtest = bt.replay(hourly, [bt.Setting(4.0, 1, 1)])[0]
    # The 09:00 point enters the sliding window's newest bucket at 09:01 and leaves it at 10:01.
    assert moves(backtest) == [("07:01", INSUFFICIENT_DATA, OK), ("09:01", OK, ALARM), ("10:01", ALARM, OK),
                               ("11:01", OK, ALARM), ("13:01", ALARM, OK)]
    assert (backtest.start, backtest.end) == (at("2027-01-04T07:00:00Z"), at("2027-01-04T14:59:00Z"))
    assert bt.score(backtest, [INCIDENT]) == {
        "threshold": 4.0, "M of N": "1 of 1", "treat missing": "missing", "pages": 2, "false pages": 1,
        "incidents paged": 1, "missed incidents": 0, "minutes to page": 1.0, "hours in ALARM": 3.0,
        "first page": "2027-01-04T09:01:00Z"}


def test_two_of_three_waits_for_the_second_bad_hour(hourly):
    backtest = bt.replay(hourly, [bt.Setting(4.0, 2, 3)])[0]
    # 11:01: the newest three are 09 (3), 10 (7), 11 (2): two breach. 14:01: 12 (2), 13, 14: one.
    assert moves(backtest) == [("07:01", INSUFFICIENT_DATA, OK), ("11:01", OK, ALARM), ("14:01", ALARM, OK)]
    page = backtest.pages[0]
    assert page.evidence == (at("2027-01-04T11:00:00Z"), at("2027-01-04T09:00:00Z"))
    row = bt.score(backtest, [INCIDENT])
    assert (row["pages"], row["false pages"], row["minutes to page"], row["hours in ALARM"]) == (1, 0, 1.0, 3.0)


def test_sweep_scores_every_setting_and_recommends_the_quiet_one(hourly):
    settings = bt.settings_grid([4.0], [(1, 1), (2, 3), (3, 3)])
    result = bt.sweep(hourly, settings, [INCIDENT])
    table = result.table.set_index("M of N")
    assert list(table["pages"]) == [2, 1, 0]
    assert list(table["false pages"]) == [1, 0, 0]
    assert list(table["missed incidents"]) == [0, 0, 1]
    chosen = bt.recommend(result, bt.Setting(4.0, 2, 3))
    assert chosen.setting == bt.Setting(4.0, 2, 3)
    assert "pages 1 of 1 incident(s) with 0 false page(s), 1 min after the incident starts" in chosen.reason
    assert bt.earlier_settings(result, bt.Setting(4.0, 2, 3)).empty  # 1 of 1 pages the incident at 11:01 too


def test_earlier_settings_say_what_they_cost(tmp_path):
    quiet = {**HOURS, "09": "7"}  # no lone bad hour: the incident's hours are the only bad ones
    history = bt.read_csv(write(tmp_path / "quiet.csv", hourly_csv(quiet)))
    current = bt.Setting(4.0, 2, 3)
    result = bt.sweep(history, bt.settings_grid([4.0], [(1, 1), (2, 3)]), [INCIDENT])
    earlier = bt.earlier_settings(result, current)
    # 2 of 3 needs 11:00 and 12:00: it pages at 12:01; 1 of 1 at 11:01.
    assert earlier.to_dict("records") == [{
        "threshold": 4.0, "M of N": "1 of 1", "minutes to page": 1.0, "sooner by (min)": 60.0,
        "cost": "pages on 1 breaching hour(s) instead of 2"}]
    assert bt.recommend(result, current).setting == bt.Setting(4.0, 1, 1)


def test_publication_delay_moves_every_transition(tmp_path):
    history = bt.read_csv(write(tmp_path / "hourly.csv", hourly_csv()), publication_delay=20)
    backtest = bt.replay(history, [bt.Setting(4.0, 1, 1)])[0]
    assert [when for when, _, _ in moves(backtest)] == ["07:21", "09:21", "10:21", "11:21", "13:21"]


def test_a_missing_hour_is_no_datapoint(tmp_path):
    history = bt.read_csv(write(tmp_path / "gap.csv", hourly_csv({"07": "7", "08": "", "09": "3", "10": "3"})))
    assert [p.value for p in history.points] == [7.0, None, 3.0, 3.0]
    # 2 of 3, missing: at 10:01 the range holds 07 (7), 09 (3), 10 (3): three real points, two breach.
    assert moves(bt.replay(history, [bt.Setting(4.0, 2, 3)])[0])[-1] == ("10:01", OK, ALARM)


# --- reports in Model Monitor's layout, or the demo's flattened copy -----------------------------

def statistics(hour: str, mean: float | None, config: str, reliable: bool = True) -> dict:
    block = {"k": 10, "success_rate": 1.0 if reliable else 0.2, "sessions_succeeded": 100 if reliable else 20,
             "diversity_reliable": reliable, "mean": mean, "min": 1, "p5": 1, "max_slot_concentration": 0.2,
             "distinct_articles": 40, "measured_at": f"2027-01-04T{hour}:02:30Z",
             "serving": {"endpoint_config": config, "models": {"AllTraffic": config}}}
    return {"version": 0, "dataset": {"item_count": 100}, "features": [], CUSTOM_BLOCK: block}


def write_reports(root: Path, layout: str) -> None:
    runs = [("07", 7.1, "prod-v1"), ("08", 7.1, "prod-v1"), ("09", 2.0, "prod-v2"), ("10", 2.0, "prod-v2"),
            ("11", None, None), ("12", 7.1, "prod-v1")]
    for hour, mean, config in runs:
        folder = root / ("2027/01/04/" + hour if layout == "model-monitor" else f"2027-01-04-{hour}")
        folder.mkdir(parents=True)
        if config is None:  # a failed run: a partial notebook, no statistics
            (folder / "report.ipynb").write_text("{}")
            continue
        document = statistics(hour, mean, config)
        if hour == "12":  # an older report that does not say when it measured
            del document[CUSTOM_BLOCK]["measured_at"]
        (folder / STATISTICS_FILE).write_text(json.dumps(document))
        (folder / VIOLATIONS_FILE).write_text(json.dumps({"violations": []}))


@pytest.mark.parametrize("layout", ["model-monitor", "flattened"])
def test_reports_give_the_published_metric_at_measured_at_and_the_rolled_back_deploy(tmp_path, layout):
    schedule = tmp_path / "reports" / "prod" / "hourly"
    write_reports(schedule if layout == "model-monitor" else tmp_path / "reports", layout)
    history = bt.read_reports(str(tmp_path / "reports"))
    assert history.metric == diversity_metric(10)
    assert [(f"{p.stamped:%H:%M:%S}", p.value) for p in history.points] == [
        ("07:02:30", 7.1), ("08:02:30", 7.1), ("09:02:30", 2.0), ("10:02:30", 2.0), ("11:00:00", None),
        ("12:20:00", 7.1)]
    assert history.timing == ("4 point(s) stamped at their run's measured_at, 1 at their hour + 20 min (no measured_at; "
                              "--publication-delay); 1 run(s) published no value (missing hours)")
    assert bt.history_from_reports(history.reports, publication_delay=5).points[-1].stamped == at("2027-01-04T12:05:00Z")
    incidents = bt.incidents_from_marks(history.reports)
    # The rollback is timed by the first run after it, which says its hour (12:00) but not when it measured.
    assert [(i.start, i.end) for i in incidents] == [(at("2027-01-04T09:02:30Z"), at("2027-01-04T12:00:00Z"))]
    assert incidents[0].label == "prod-v2 deployed, rolled back to prod-v1"
    backtest = bt.replay(history, [bt.Setting(4.0, 2, 3)])[0]
    # Default range: to one period after the last point (12:20), less a minute. 14:03 would be OK.
    assert moves(backtest) == [("07:03", INSUFFICIENT_DATA, OK), ("10:03", OK, ALARM)]
    assert backtest.end == at("2027-01-04T13:19:00Z")


def test_reports_of_two_schedules_are_refused_naming_both(tmp_path):
    for schedule in ("hourly", "daily"):
        write_reports(tmp_path / "reports" / "prod" / schedule, "model-monitor")
    with pytest.raises(StorageError, match="under 2 folders .*prod/daily.*prod/hourly.*point at one schedule's folder"):
        bt.read_reports(str(tmp_path / "reports"))


def test_an_unpublished_metric_names_the_published_ones(tmp_path):
    write_reports(tmp_path / "reports", "flattened")
    with pytest.raises(bt.BacktestInputError, match="no run published 'top5_category_diversity_mean'.*top10_"):
        bt.read_reports(str(tmp_path / "reports"), metric="top5_category_diversity_mean")
    history = bt.read_reports(str(tmp_path / "reports"), metric="replay_success_rate")
    assert [p.value for p in history.points] == [1.0, 1.0, 1.0, 1.0, None, 1.0]


# --- bad input: every problem at once ----------------------------------------------------------

def test_every_bad_csv_line_is_reported_together(tmp_path):
    source = write(tmp_path / "bad.csv", "\n".join([
        "timestamp,value",
        "2027-01-04T07:00:00Z,7.1",
        "2027-01-04T08:00:00,7",
        "2027-01-04T09:00:00+02:00,5",
        "2027-01-04T10:00:00Z,abc",
        "2027-01-04T11:00:00Z",
        "yesterday,3",
        "2027-01-04T07:00:00Z,3",
        "2027-01-04T12:00:00Z,nan",
    ]) + "\n")
    with pytest.raises(bt.BacktestInputError) as raised:
        bt.read_csv(source)
    assert raised.value.problems == [
        "line 3: timestamp '2027-01-04T08:00:00' has no time zone: write it in UTC, e.g. 2027-01-04T08:00:00Z",
        "line 4: timestamp '2027-01-04T09:00:00+02:00' is not UTC (offset +0200): convert it to UTC",
        "line 5: value 'abc' is not a number (leave it empty for a missing hour)",
        "line 6: expected `timestamp,value`, got '2027-01-04T11:00:00Z'",
        "line 7: timestamp 'yesterday' is not an ISO-8601 time such as 2027-10-31T07:00:00Z",
        "line 9: value 'nan' is not finite",
        "line 8: timestamp 2027-01-04T07:00:00Z already given on line 2",
    ]
    assert str(raised.value).startswith(f"{source}: \n  - line 3")


def test_every_bad_setting_is_reported_together():
    with pytest.raises(bt.BacktestInputError) as raised:
        bt.check_settings([bt.Setting(4.0, 4, 3, treat_missing_data="Missing", comparison_operator="Below",
                                      period=90)])
    text = str(raised.value)
    for expected in ("DatapointsToAlarm must be between 1 and EvaluationPeriods (3), got 4",
                     "ComparisonOperator 'Below'", "TreatMissingData 'Missing'", "Period 90 is invalid"):
        assert expected in text


def test_alarm_request_is_checked_against_botocores_model():
    request = bt.alarm_request(bt.Setting(5.0, 1, 2), diversity_metric(10), "prod", "hourly", topic_arn=None)
    assert (request["AlarmName"], request["Threshold"], request["DatapointsToAlarm"], request["EvaluationPeriods"]) == \
        ("prod-diversity-below-floor", 5.0, 1, 2)
    assert "AlarmActions" not in request
    with pytest.raises(RequestInvalid, match="PutMetricAlarm"):
        bt.alarm_request(bt.Setting(5.0, 1, 2), "", "prod", "hourly")


# --- the command line ---------------------------------------------------------------------------

def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(["alarm-backtest", *argv])
    return code, out.getvalue(), err.getvalue()


def test_cli_prints_transitions_as_json(tmp_path):
    source = write(tmp_path / "hourly.csv", hourly_csv())
    code, out, _ = run_cli(source, "--threshold", "4", "--datapoints-to-alarm", "1", "--evaluation-periods", "1",
                           "--end", "2027-01-04T10:30:00Z", "--json")
    assert code == 0
    assert json.loads(out) == {"transitions": [
        {"at": "2027-01-04T07:01:00Z", "from": "INSUFFICIENT_DATA", "to": "OK"},
        {"at": "2027-01-04T09:01:00Z", "from": "OK", "to": "ALARM"},
        {"at": "2027-01-04T10:01:00Z", "from": "ALARM", "to": "OK"}]}


def test_cli_sweep_needs_incidents_for_a_csv_and_scores_given_ones(tmp_path):
    source = write(tmp_path / "hourly.csv", hourly_csv())
    code, _, err = run_cli(source, "--m-of-n", "1/1", "2/3")
    assert code == 2 and "--incident START/END" in err
    code, out, _ = run_cli(source, "--m-of-n", "1/1", "2/3", "--incident", "2027-01-04T11:00Z/2027-01-04T13:00Z")
    assert code == 0
    assert "recommended: threshold 4, 2 of 3" in out


def test_cli_reports_all_bad_options_at_once(tmp_path):
    source = write(tmp_path / "hourly.csv", hourly_csv())
    code, _, err = run_cli(source, "--m-of-n", "4/3", "x", "--comparison-operator", "Below")
    assert code == 2 and "--m-of-n 'x' is not M/N" in err
    code, _, err = run_cli(source, "--m-of-n", "4/3", "--comparison-operator", "Below",
                           "--start", "2027-01-04T07:00:00+01:00", "--incident", "2027-01-04T11:00Z")
    assert code == 2
    assert "DatapointsToAlarm must be between 1 and EvaluationPeriods (3), got 4" in err
    assert "ComparisonOperator 'Below'" in err
    code, _, err = run_cli(source, "--start", "2027-01-04T07:00:00+01:00", "--incident", "2027-01-04T11:00Z")
    assert code == 2 and "--start" in err and "not UTC" in err and "is not START/END" in err
