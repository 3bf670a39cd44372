"""The alarms notebook 03 sets up watch what the hourly run publishes, and re-applying replaces them.

Through the real set-up code (`setup.schedule`, `setup.alarms`) on the embedded local stack with the
reference recommender: a schedule measuring top-5 lists publishes `top5_...` metrics, and its
diversity alarm must see them (it leaves INSUFFICIENT_DATA after one run); re-applying with another
floor leaves exactly one diversity alarm, on the new floor, and removes an alarm an older kit named
after its floor.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import boto3
import pytest

from diversity_monitor.conventions import (
    METRICS_NAMESPACE,
    diversity_metric,
    metric_dimensions,
)
from diversity_monitor.demo.scenario import ENDPOINT, SCHEDULE
from diversity_monitor.setup import alarms, schedule
from helpers.stack import deployed_stack

pytestmark = pytest.mark.slow

TOP_K = 5


@pytest.fixture(scope="module")
def top5_run(tmp_path_factory):
    """A top-5 schedule and its alarms, then one hour of users and the run at the top of the hour."""
    path = tmp_path_factory.mktemp("alarm-setup")
    with pytest.MonkeyPatch.context() as patch, deployed_stack(path, patch) as (stack, scenario):
        spec = dataclasses.replace(scenario.monitor_spec, top_k=TOP_K, baseline_s3_uri=None)
        schedule.apply_schedule(spec)
        topic = alarms.ensure_topic("alarm-setup-pager")
        applied = alarms.apply_alarms(spec, topic, health_armed=False)
        cloudwatch = boto3.client("cloudwatch")
        before = _alarm(cloudwatch, applied.names[0])
        scenario.live_hour()  # users across the hour: the 07:00 run's window has capture
        scenario.live_for(5 * 60)  # the run at 07:00, then a few alarm evaluations
        executions = boto3.client("sagemaker").list_monitoring_executions(
            MonitoringScheduleName=SCHEDULE)["MonitoringExecutionSummaries"]
        yield {"spec": spec, "topic": topic, "applied": applied, "before": before, "cloudwatch": cloudwatch,
               "after": _alarm(cloudwatch, applied.names[0]), "executions": executions, "stack": stack,
               "scenario": scenario}


def _alarm(cloudwatch, name: str) -> dict:
    found = cloudwatch.describe_alarms(AlarmNames=[name], AlarmTypes=["MetricAlarm"])["MetricAlarms"]
    assert len(found) == 1, f"alarm {name}: {len(found)} found"
    return found[0]


def _diversity_alarms(cloudwatch, spec) -> list[dict]:
    """Every alarm on this schedule's diversity metric, whatever its name."""
    return cloudwatch.describe_alarms_for_metric(
        MetricName=spec.diversity_metric, Namespace=METRICS_NAMESPACE,
        Dimensions=metric_dimensions(spec.endpoint_name, spec.schedule_name))["MetricAlarms"]


def test_a_top5_schedule_runs_with_top_k_5(top5_run):
    arguments = boto3.client("sagemaker").describe_monitoring_schedule(MonitoringScheduleName=SCHEDULE)[
        "MonitoringScheduleConfig"]["MonitoringJobDefinition"]["MonitoringAppSpecification"]["ContainerArguments"]
    assert arguments[arguments.index("--top-k") + 1] == "5"
    assert [e["MonitoringExecutionStatus"] for e in top5_run["executions"]] in (["Completed"], ["CompletedWithViolations"])


def test_the_diversity_alarm_watches_the_metric_the_run_published(top5_run):
    cloudwatch = top5_run["cloudwatch"]
    assert top5_run["after"]["MetricName"] == diversity_metric(TOP_K) == "top5_category_diversity_mean"
    published = cloudwatch.get_metric_statistics(
        Namespace=METRICS_NAMESPACE, MetricName=diversity_metric(TOP_K),
        Dimensions=metric_dimensions(ENDPOINT, SCHEDULE), StartTime=top5_run["scenario"].now() - timedelta(hours=3),
        EndTime=top5_run["scenario"].now(), Period=3600, Statistics=["Average"])["Datapoints"]
    assert len(published) == 1 and 0 < published[0]["Average"] <= TOP_K
    assert top5_run["before"]["StateValue"] == "INSUFFICIENT_DATA"
    assert top5_run["after"]["StateValue"] in ("OK", "ALARM"), top5_run["after"]["StateReason"]


def test_reapplying_with_another_floor_leaves_one_alarm_on_the_new_floor(top5_run):
    cloudwatch, spec, topic = top5_run["cloudwatch"], top5_run["spec"], top5_run["topic"]
    # An alarm as an earlier kit named it (the floor in its name), on the same metric and schedule.
    legacy = {**alarms.diversity_alarm_request(spec, topic), "AlarmName": f"{ENDPOINT}-diversity-below-4"}
    cloudwatch.put_metric_alarm(**legacy)
    assert len(_diversity_alarms(cloudwatch, spec)) == 2
    lower = dataclasses.replace(spec, min_diversity=3.0)
    applied = alarms.apply_alarms(lower, topic, health_armed=False)
    remaining = _diversity_alarms(cloudwatch, lower)
    assert [(a["AlarmName"], a["Threshold"]) for a in remaining] == [(alarms.alarm_names(ENDPOINT)["diversity"], 3.0)]
    assert applied.removed == (f"{ENDPOINT}-diversity-below-4",)
    assert "removed superseded alarms on this schedule" in applied.message
    again = alarms.apply_alarms(lower, topic, health_armed=False)  # idempotent: nothing more to remove
    assert again.removed == () and len(_diversity_alarms(cloudwatch, lower)) == 1


def test_a_spec_refuses_arguments_its_own_fields_own(top5_run):
    with pytest.raises(ValueError, match=r"extra_arguments \['--top-k'\]"):
        dataclasses.replace(top5_run["spec"], extra_arguments=("--top-k", "20"))
