"""The on-call runbooks' logic without a stack: request builders and the incident reasoning on hand-made reports.

The same functions run end to end in the incident drill (tests/test_runbooks.py); here each rule
is held on its own, offline.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from diversity_monitor.demo.scenario import (
    CATALOG_URI,
    ENDPOINT,
    MONITOR_IMAGE,
    REPORTS_URI,
    ROLE_ARN,
    SCHEDULE,
    VALIDATION_URI,
    VARIANT,
)
from diversity_monitor.job.past_reports import HourReport
from diversity_monitor.oncall import failed_run, incident
from diversity_monitor.setup.deployment import Deployment
from diversity_monitor.setup.schedule import MonitorSpec, monitoring_job_definition


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


# --- the request builders, offline ----------------------------------------------------------------

def test_rerun_offsets_put_the_window_on_the_hour(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    schedule = {"MonitoringScheduleName": SCHEDULE, "CreationTime": at("2027-10-31T06:00:00"),
                "MonitoringScheduleConfig": {"ScheduleConfig": {"ScheduleExpression": "cron(0 * ? * * *)"},
                                             "MonitoringJobDefinition": monitoring_job_definition(MonitorSpec(
                    ENDPOINT, SCHEDULE, MONITOR_IMAGE, ROLE_ARN, VALIDATION_URI, CATALOG_URI, REPORTS_URI))}}
    request = failed_run.rerun_request(schedule, at("2027-10-31T09:00:00"), now=at("2027-10-31T12:14:30"))
    config = request["MonitoringScheduleConfig"]["ScheduleConfig"]
    # NOW fires at the next whole minute, 12:15: the window is 08:00-09:00, the run at 09:00's
    assert config == {"ScheduleExpression": "NOW", "DataAnalysisStartTime": "-PT4H15M", "DataAnalysisEndTime": "-PT3H15M"}
    assert request["MonitoringScheduleName"] == "recommender-diversity-hourly-rerun-2027103109"
    assert failed_run.rerun_name(request["MonitoringScheduleName"], at("2027-10-31T09:00:00")) == request["MonitoringScheduleName"]
    runs = failed_run.expected_runs(schedule, at("2027-10-31T05:00:00"), at("2027-10-31T09:30:00"))
    assert [run.hour for run in runs] == [7, 8, 9]
    # the same instants given in a laptop's zone (as botocore returns them) change nothing
    local = {**schedule, "CreationTime": at("2027-10-31T06:00:00").astimezone(timezone(timedelta(hours=5, minutes=30)))}
    assert failed_run.expected_runs(local, at("2027-10-31T05:00:00"), at("2027-10-31T09:30:00")) == runs
    with pytest.raises(failed_run.DiagnosisError, match="after now"):
        failed_run.rerun_request(schedule, at("2027-10-31T13:00:00"), now=at("2027-10-31T12:14:30"))


def test_a_malformed_deployment_config_is_refused_before_anything_is_sent(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    bad = {"BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalSeconds": 0}}}
    with pytest.raises(incident.IncidentError, match="WaitIntervalSeconds"):
        incident.validate_update_request({"EndpointName": ENDPOINT, "EndpointConfigName": f"{ENDPOINT}-v1",
                                          "DeploymentConfig": bad})


# --- the incident logic on hand-made reports --------------------------------------------------------

def report(hour: int, status: str, config: str | None = "c-v1", mean: float = 6.5) -> HourReport:
    """A report as load_reports reads it: `ok`, `bad` (a violation) or `failed` (no statistics)."""
    if status == "failed":
        return HourReport(at(f"2027-10-31T{hour:02d}:00:00"), f"s3://r/{hour}", None, [], (f"s3://r/{hour}/report.ipynb",))
    serving = {"endpoint_config": config, "models": {VARIANT: f"model-of-{config}"}, "changed_during_replay": False,
               "observed_at": f"2027-10-31T{hour:02d}:00:05Z", "error": None} if config else None
    statistics = {"diversity_monitor": {"mean": mean, "p5": 5, "measured_at": f"2027-10-31T{hour:02d}:00:30Z",
                                        "serving": serving}}
    violations = [{"feature_name": "f", "constraint_check_type": "baseline_drift_check", "description": "below"}] \
        if status == "bad" else []
    return HourReport(at(f"2027-10-31T{hour:02d}:00:00"), f"s3://r/{hour}", statistics, violations, ())


LIVE_V2 = Deployment("c-v2", at("2027-10-31T08:30:00"), ("model-of-c-v2",), True, True)
ENDPOINT_ON_V2 = {"EndpointConfigName": "c-v2", "LastModifiedTime": at("2027-10-31T08:31:00")}


def test_a_failed_run_is_neither_good_nor_bad():
    reports = [report(7, "ok"), report(8, "failed"), report(9, "bad", "c-v2"), report(10, "failed"), report(11, "bad", "c-v2")]
    streak = incident.bad_streak(reports)
    assert [r.hour.hour for r in streak.bad_hours] == [9, 11]
    assert [r.hour.hour for r in streak.failed_hours] == [10]
    assert streak.last_good.hour.hour == 7  # not the failed 08:00 run


def test_the_suspect_is_the_config_that_served_the_first_bad_run():
    from diversity_monitor.oncall.report_history import config_changes

    reports = [report(7, "ok"), report(8, "ok"), report(9, "bad", "c-v2"), report(10, "bad", "c-v2")]
    streak = incident.bad_streak(reports)
    suspect, text = incident.find_suspect(streak, config_changes(reports, ENDPOINT_ON_V2), ENDPOINT_ON_V2, LIVE_V2)
    assert suspect.config == "c-v2" and suspect.went_live == at("2027-10-31T08:31:00")  # exact: LastModifiedTime
    assert "SUSPECT: `c-v2`" in text and "went live at 2027-10-31T08:31:00Z" in text
    assert "after the replay of the last good run (2027-10-31T08:00:00Z)" in text


def test_a_deploy_known_only_from_the_reports_is_placed_between_two_replays_and_a_rollback_is_named():
    """The times a reader checks agree: the inexact deploy is a window ending at the first bad replay,
    never a moment after the run it is said to precede; returning to an earlier config is a rollback."""
    from diversity_monitor.oncall.report_history import config_changes

    reports = [report(7, "ok"), report(8, "ok"), report(9, "bad", "c-v2"), report(10, "bad", "c-v2"), report(11, "ok")]
    back_on_v1 = {"EndpointConfigName": "c-v1", "LastModifiedTime": at("2027-10-31T10:30:00")}
    deploy, rollback = config_changes(reports, back_on_v1)
    assert (deploy.what, deploy.exact, deploy.when) == (
        "deploy", False, "between 2027-10-31T08:00:30Z and 2027-10-31T09:00:30Z")
    assert (rollback.what, rollback.exact, rollback.when) == ("rollback", True, "at 2027-10-31T10:30:00Z")
    streak = incident.bad_streak(reports[:4])
    suspect, text = incident.find_suspect(streak, config_changes(reports[:4], back_on_v1), back_on_v1, LIVE_V2)
    assert "went live between 2027-10-31T08:00:30Z and 2027-10-31T09:00:30Z, after the replay of the last good run " \
           "(2027-10-31T08:00:00Z) and before the replay of the first bad run (2027-10-31T09:00:00Z)" in text


def test_a_report_of_an_old_hour_made_later_keeps_its_deploy_on_the_hour():
    """A re-run today of a 2027 hour must not stretch the timeline over years: its replay time is its hour."""
    from diversity_monitor.oncall.report_history import config_changes

    late = report(9, "bad", "c-v2")
    late.statistics["diversity_monitor"]["measured_at"] = "2034-01-01T00:00:00Z"
    [change] = config_changes([report(8, "ok"), late], None)
    assert change.at == at("2027-10-31T09:00:00")


def test_no_suspect_when_the_same_config_served_good_and_bad_runs_or_no_good_run_is_seen():
    same = [report(8, "ok", "c-v2"), report(9, "bad", "c-v2")]
    suspect, text = incident.find_suspect(incident.bad_streak(same), [], ENDPOINT_ON_V2, LIVE_V2)
    assert suspect is None and "No deployment lines up" in text
    only_bad = [report(9, "bad", "c-v2"), report(10, "bad", "c-v2")]
    suspect, text = incident.find_suspect(incident.bad_streak(only_bad), [], ENDPOINT_ON_V2, LIVE_V2)
    assert suspect is None and "raise `lookback_hours`" in text


def test_without_serving_records_only_the_last_update_can_be_named_and_it_says_so():
    reports = [report(8, "ok", None), report(9, "bad", None)]
    suspect, text = incident.find_suspect(incident.bad_streak(reports), [], ENDPOINT_ON_V2, LIVE_V2)
    assert suspect.config == "c-v2" and "ESTIMATED" in suspect.evidence
    late = {**ENDPOINT_ON_V2, "LastModifiedTime": at("2027-10-31T09:40:00")}  # after the first bad run
    suspect, text = incident.find_suspect(incident.bad_streak(reports), [], late, LIVE_V2)
    assert suspect is None and "Cannot tell which deploy" in text


def test_no_rollback_target_when_the_live_config_had_a_clean_run_or_no_clean_run_is_seen(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    target = incident.Target(None, None, ENDPOINT, SCHEDULE, {}, "s3://r")
    view = incident.DeploymentView(ENDPOINT_ON_V2, LIVE_V2, [], [], None, "")
    clean_on_live = incident.bad_streak([report(8, "ok", "c-v2"), report(9, "bad", "c-v2")])
    plan = incident.plan_rollback(target, view, clean_on_live)
    assert plan.to_deployment is None and "not from a deploy" in plan.reason
    outcome = incident.roll_back(plan, confirm=True, collapse_live=True)
    assert not outcome.performed and outcome.message.startswith("NO ROLLBACK")
    no_clean = incident.bad_streak([report(9, "bad", "c-v2")])
    assert incident.plan_rollback(target, view, no_clean).to_deployment is None


def test_an_incident_record_is_never_overwritten(tmp_path):
    target = incident.Target(None, None, ENDPOINT, SCHEDULE, {}, str(tmp_path))
    summary = incident.IncidentSummary(ENDPOINT, SCHEDULE, None, None, None, None, None, [], [], None, "", {
        "performed": False, "message": "NO ROLLBACK", "from": None, "to": None}, None, None, [], "2027-10-31T10:05:00Z")
    first = incident.write_summary(summary, target)
    second = incident.write_summary(summary, target)
    assert first != second and second[0].endswith("-2.json")
    assert all(Path(uri).exists() for uri in (*first, *second))


def test_live_traffic_violations_do_not_make_a_run_bad_evidence_about_its_config():
    """After a rollback the hour's live traffic still holds the bad model's lists: the replay, which
    the recorded config served, is what says whether that config is healthy."""
    live_only = [{"feature_name": "live_top10_category_diversity", "constraint_check_type": "baseline_drift_check",
                  "description": "live traffic: mean categories per top-10 2.00 is below the floor 4"}]
    clean = HourReport(at("2027-10-31T11:00:00"), "s3://r/11", {"diversity_monitor": {"mean": 7.1}}, live_only, ())
    assert clean.status == "ok" and clean.replay_violations == []
    both = HourReport(at("2027-10-31T10:00:00"), "s3://r/10", {"diversity_monitor": {"mean": 2.0}},
                      [*live_only, {"feature_name": "top10_category_diversity", "description": "mean 2.00"}], ())
    assert both.status == "violations" and len(both.replay_violations) == 1


def test_the_failed_run_runbook_reads_a_stopped_run_as_an_overrun_with_a_daily_window():
    """A Stopped run is not a container failure; a daily schedule's window is the 23 hours AWS documents."""
    spec = MonitorSpec(endpoint_name="recommender-prod", schedule_name="daily", image_uri="i", role_arn="r",
                       validation_set="s3://b/v", catalog="s3://b/c", reports_s3_uri="s3://b/reports",
                       schedule_expression="cron(0 5 ? * * *)", max_runtime_seconds=1800)
    schedule = {"MonitoringScheduleName": "daily", "MonitoringScheduleStatus": "Scheduled",
                "CreationTime": datetime(2027, 10, 1, tzinfo=timezone.utc),
                "MonitoringScheduleConfig": {"ScheduleConfig": {"ScheduleExpression": spec.schedule_expression},
                                             "MonitoringJobDefinition": monitoring_job_definition(spec)}}
    run = datetime(2027, 10, 31, 5, tzinfo=timezone.utc)
    window = failed_run.window_of(schedule, run)
    assert (window.start, window.end) == (datetime(2027, 10, 30, 6, tzinfo=timezone.utc), run)
    view = failed_run.ExecutionView("daily", "recommender-prod", run, "Stopped",
                                    "The job exceeded max runtime or was manually stopped", "model-monitoring-1",
                                    "Stopped", "", window.start, window.end, "s3://b/reports/x", ())
    text = failed_run.execution_markdown(view, schedule)
    assert "**Stopped, not failed**" in text and "MaxRuntimeInSeconds (1800 s)" in text
    assert "Window analysed: 2027-10-30T06:00:00Z to 2027-10-31T05:00:00Z" in text
