"""The plain Processing path end to end, beside Model Monitor's, on the embedded local stack.

One stack (tests/helpers/stack.py: `recommender-prod` serving healthy v1 with capture). The
kit's own set-up code creates both schedules: Model Monitor's (`schedule.apply_schedule`) and
EventBridge Scheduler's (`processing_schedule.apply_processing_schedule`, moto keeps it, the
stack's Scheduler stand-in fires it). An hour of users passes; at the top of the hour both fire:
Model Monitor's execution, and Scheduler's CreateProcessingJob. The test then compares what each
left: the same report files in Model Monitor's layout, the same figures, the same metrics
published (PutMetricData by the job itself on the plain path), and the same alarm watching it.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta

import boto3
import pytest

from diversity_monitor import conventions, storage
from diversity_monitor.demo.scenario import CAPTURE_URI, ENDPOINT, REPORTS_URI, SCHEDULE
from diversity_monitor.local import eventbridge_scheduler
from diversity_monitor.setup import alarms, processing_schedule
from helpers.permissions import assert_permitted, scope_for
from helpers.stack import deployed_stack

pytestmark = pytest.mark.slow

PLAIN = "recommender-diversity-hourly-processing"
SCHEDULER_ROLE = "arn:aws:iam::123456789012:role/diversity-monitor-scheduler"
# What differs by design between the two paths' statistics.json: who ran it, and when it measured.
RUN_IDENTITY = ("monitoring_schedule", "run_id", "measured_at", "observed_at")


@pytest.fixture(scope="module")
def both_paths(tmp_path_factory):
    path = tmp_path_factory.mktemp("processing-path")
    with pytest.MonkeyPatch.context() as patch, deployed_stack(path, patch) as (stack, scenario):
        scenario.build_baseline()
        scenario.create_schedule()
        spec = scenario.monitor_spec
        scheduler = processing_schedule.SchedulerSpec(PLAIN, SCHEDULER_ROLE, capture_s3_uri=CAPTURE_URI)
        created = processing_schedule.apply_processing_schedule(spec, scheduler)
        again = processing_schedule.apply_processing_schedule(spec, scheduler)
        scenario.live_hour()  # users 06:00-07:00; both paths fire at 07:00
        scenario.live_for(5 * 60)
        yield stack, scenario, spec, (created, again)


def report_folder(schedule: str, hour) -> str:
    return conventions.report_hour_prefix(REPORTS_URI, ENDPOINT, schedule, hour)


def test_the_schedule_is_created_by_the_kit_and_fires_create_processing_job_hourly(both_paths):
    stack, scenario, spec, outcomes = both_paths
    assert outcomes == ("created", "updated")
    schedule = boto3.client("scheduler").get_schedule(Name=PLAIN)
    assert schedule["Target"]["Arn"] == processing_schedule.UNIVERSAL_TARGET
    (invocation,) = eventbridge_scheduler.invocations(stack.platform, PLAIN)
    assert invocation["Outcome"] == "Invoked", invocation
    assert (invocation["Service"], invocation["Operation"]) == ("sagemaker", "CreateProcessingJob")
    assert invocation["ScheduledTime"] == "2027-10-31T07:00:00Z"
    job_name = invocation["Result"]["ProcessingJobArn"].rsplit("/", 1)[-1]
    job = boto3.client("sagemaker").describe_processing_job(ProcessingJobName=job_name)
    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
    assert job["Environment"]["end_time"] == "2027-10-31T07:00:00Z"
    assert job["ExitMessage"].startswith("Completed")
    # The scheduler role's policy allows exactly what Scheduler did with it: the call and the role it passed.
    calls = [{"service": "sagemaker", "operation": "CreateProcessingJob", "params": {}},
             {"service": "iam", "operation": "PassRole",
              "params": {"RoleArn": invocation["PassedRoleArn"], "PassedToService": "sagemaker.amazonaws.com"}}]
    assert invocation["RoleArn"] == SCHEDULER_ROLE
    assert_permitted("scheduler", calls, scope_for(ENDPOINT, job_role_arn=spec.role_arn))


def test_both_paths_leave_the_same_files_and_figures_for_the_hour(both_paths):
    _, scenario, _, _ = both_paths
    hour = scenario.plan.start + timedelta(hours=1)
    model_monitor, plain = report_folder(SCHEDULE, hour), report_folder(PLAIN, hour)
    names = {uri.rsplit("/", 1)[-1] for uri in storage.list_objects(model_monitor + "/")}
    assert names >= set(conventions.RUN_OUTPUT_FILES)
    assert {uri.rsplit("/", 1)[-1] for uri in storage.list_objects(plain + "/")} == names

    def statistics(folder: str) -> dict:
        document = json.loads(storage.read_text(f"{folder}/{conventions.STATISTICS_FILE}"))
        block = {key: value for key, value in document[conventions.CUSTOM_BLOCK].items() if key not in RUN_IDENTITY}
        block["serving"] = {key: value for key, value in block["serving"].items() if key not in RUN_IDENTITY}
        return {**document, conventions.CUSTOM_BLOCK: block}

    mm, pp = statistics(model_monitor), statistics(plain)
    assert pp["features"] == mm["features"] and pp["dataset"] == mm["dataset"]
    block = conventions.CUSTOM_BLOCK
    differing = {key: (mm[block].get(key), pp[block].get(key)) for key in set(mm[block]) | set(pp[block])
                 if mm[block].get(key) != pp[block].get(key)}
    assert differing == {}
    assert pp == mm
    assert (json.loads(storage.read_text(f"{plain}/{conventions.VIOLATIONS_FILE}"))
            == json.loads(storage.read_text(f"{model_monitor}/{conventions.VIOLATIONS_FILE}")))
    live = mm[conventions.CUSTOM_BLOCK].get("live") or {}
    assert live, "the hour's live traffic was measured on both paths"


def metric_values(schedule: str, hour) -> dict[str, list[float]]:
    cloudwatch = boto3.client("cloudwatch")
    names = [name for group in conventions.published_metrics(conventions.DEFAULT_TOP_K).values() for name in group]
    queries = [{"Id": f"m{n}", "Label": name, "ReturnData": True, "MetricStat": {
        "Metric": {"Namespace": conventions.METRICS_NAMESPACE, "MetricName": name,
                   "Dimensions": conventions.metric_dimensions(ENDPOINT, schedule)},
        "Period": conventions.METRIC_PERIOD_SECONDS, "Stat": "Average"}} for n, name in enumerate(names)]
    answer = cloudwatch.get_metric_data(MetricDataQueries=queries, StartTime=hour - timedelta(hours=2),
                                        EndTime=hour + timedelta(hours=2))
    return {result["Label"]: result["Values"] for result in answer["MetricDataResults"]}


def test_both_paths_publish_the_same_metrics_and_the_same_alarm_watches_the_plain_path(both_paths):
    stack, scenario, spec, _ = both_paths
    hour = scenario.plan.start + timedelta(hours=1)
    model_monitor, plain = metric_values(SCHEDULE, hour), metric_values(PLAIN, hour)
    assert plain[spec.diversity_metric], "the plain path published its diversity through PutMetricData"
    assert plain == model_monitor

    plain_spec = dataclasses.replace(spec, schedule_name=PLAIN)
    request, reference = alarms.diversity_alarm_request(plain_spec, "arn:topic"), alarms.diversity_alarm_request(spec, "arn:topic")
    differing = {key for key in request if request[key] != reference[key]}
    assert differing == {"Dimensions", "AlarmDescription"}  # the same alarm, on the plain schedule's dimension
    topic = alarms.ensure_topic("plain-path-pager")
    applied = alarms.apply_alarms(plain_spec, topic, health_armed=True)
    stack.platform.advance(120)  # alarms are evaluated every minute
    (alarm,) = boto3.client("cloudwatch").describe_alarms(AlarmNames=[applied.names[0]])["MetricAlarms"]
    assert alarm["Dimensions"] == conventions.metric_dimensions(ENDPOINT, PLAIN)
    assert alarm["StateValue"] == "OK", alarm["StateReason"]
