"""The set-up at AWS's edges: endpoint kinds Model Monitor cannot watch, private networks and KMS keys,
network isolation, the ListMetrics check before arming, and when Scheduler schedules fire.

Requests are answered by botocore's Stubber, which checks each one against the service model.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timezone

import boto3
import pytest
from botocore.stub import Stubber

from diversity_monitor.aws import service_schema
from diversity_monitor.conventions import METRICS_NAMESPACE
from diversity_monitor.local import eventbridge_scheduler
from diversity_monitor.setup import endpoint_support, processing_schedule, published_metrics, schedule

KEY = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
SPEC = schedule.MonitorSpec(
    endpoint_name="recommender-prod", schedule_name="recommender-diversity-hourly",
    image_uri="123456789012.dkr.ecr.eu-west-1.amazonaws.com/diversity-monitor:v3",
    role_arn="arn:aws:iam::123456789012:role/service-role/AmazonSageMaker-ExecutionRole",
    validation_set="s3://recs-monitor/validation/sessions.jsonl", catalog="s3://recs-monitor/catalog/catalog.csv",
    reports_s3_uri="s3://recs-monitor/reports")


def client(service: str):
    return boto3.client(service, region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")


def stub_endpoint(stubber: Stubber, variant: dict, model: dict | None) -> None:
    stubber.add_response("describe_endpoint", {
        "EndpointName": "recommender-prod", "EndpointArn": "arn:aws:sagemaker:eu-west-1:123456789012:endpoint/recommender-prod",
        "EndpointConfigName": "recommender-prod-v1", "EndpointStatus": "InService",
        "CreationTime": datetime(2027, 1, 1), "LastModifiedTime": datetime(2027, 1, 1)}, {"EndpointName": "recommender-prod"})
    stubber.add_response("describe_endpoint_config", {
        "EndpointConfigName": "recommender-prod-v1", "EndpointConfigArn": "arn:aws:sagemaker:eu-west-1:123456789012:endpoint-config/x",
        "ProductionVariants": [{"VariantName": "AllTraffic", **variant}], "CreationTime": datetime(2027, 1, 1)},
        {"EndpointConfigName": "recommender-prod-v1"})
    if model is not None:
        stubber.add_response("describe_model", {
            "ModelName": variant["ModelName"], "ModelArn": "arn:aws:sagemaker:eu-west-1:123456789012:model/m",
            "CreationTime": datetime(2027, 1, 1), "PrimaryContainer": model}, {"ModelName": variant["ModelName"]})


@pytest.mark.parametrize(("variant", "model", "reason"), [
    ({"ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 5}}, None, "Serverless Inference supports neither data capture"),
    ({"ModelName": "news-mme", "InstanceType": "ml.m5.large", "InitialInstanceCount": 1},
     {"Image": "x.dkr.ecr.eu-west-1.amazonaws.com/mme:1", "Mode": "MultiModel"}, "Model Monitor does not support multi-model endpoints"),
])
def test_the_set_up_refuses_endpoints_model_monitor_cannot_watch(variant, model, reason):
    sagemaker = client("sagemaker")
    with Stubber(sagemaker) as stubber:
        stub_endpoint(stubber, variant, model)
        with pytest.raises(endpoint_support.UnsupportedEndpoint, match=reason):
            schedule.apply_schedule(SPEC, sagemaker)  # refused before any Create call (the stubber has none)
        stubber.assert_no_pending_responses()


def test_a_single_model_provisioned_endpoint_is_supported():
    sagemaker = client("sagemaker")
    with Stubber(sagemaker) as stubber:
        stub_endpoint(stubber, {"ModelName": "news-v1", "InstanceType": "ml.m5.large", "InitialInstanceCount": 1},
                      {"Image": "x.dkr.ecr.eu-west-1.amazonaws.com/rec:1", "Mode": "SingleModel"})
        assert endpoint_support.endpoint_problems("recommender-prod", sagemaker) == []


def test_network_isolation_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="could not replay its sessions against the endpoint"):
        dataclasses.replace(SPEC, enable_network_isolation=True)
    with pytest.raises(ValueError, match="subnets and security_group_ids go together"):
        dataclasses.replace(SPEC, subnets=("subnet-0a1b",))


def test_vpc_and_kms_keys_reach_both_paths_requests():
    private = dataclasses.replace(SPEC, subnets=("subnet-0a1b",), security_group_ids=("sg-0a1b",),
                                  output_kms_key=KEY, volume_kms_key=KEY)
    definition = schedule.monitoring_job_definition(private)
    network = {"EnableNetworkIsolation": False, "VpcConfig": {"Subnets": ["subnet-0a1b"], "SecurityGroupIds": ["sg-0a1b"]}}
    assert definition["NetworkConfig"] == network
    assert definition["MonitoringOutputConfig"]["KmsKeyId"] == KEY
    assert definition["MonitoringResources"]["ClusterConfig"]["VolumeKmsKeyId"] == KEY
    service_schema.validate_request("sagemaker", "CreateMonitoringSchedule", schedule.schedule_request(private))
    job = processing_schedule.render(processing_schedule.processing_job_request(private, capture_s3_uri="s3://recs-capture/c"))
    assert job["NetworkConfig"] == network
    assert job["ProcessingOutputConfig"]["KmsKeyId"] == KEY
    assert job["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"] == KEY
    assert job["AppSpecification"]["ContainerArguments"][-2:] == ["--capture-s3-uri", "s3://recs-capture/c"]


def metric(name: str, namespace: str = METRICS_NAMESPACE, **dimensions: str) -> dict:
    return {"Namespace": namespace, "MetricName": name, "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()]}


def test_alarms_are_armed_only_when_what_they_watch_is_published():
    cloudwatch = client("cloudwatch")
    watched = published_metrics.watched_metrics(SPEC)
    # Every child alarm's metric, once each: the floor, the monitor's health, sameness and blindness.
    assert [m.name for m in watched][:2] == ["top10_category_diversity_mean", "replay_success_rate"]
    assert {"top10_list_overlap"} <= {m.name for m in watched} and len(watched) == len(set(watched)) >= 6
    with Stubber(cloudwatch) as stubber:
        for item in watched:
            stubber.add_response("list_metrics", {"Metrics": [metric(item.name, **dict(item.dimensions))]})
        check = published_metrics.check_published(SPEC, cloudwatch, ran=True)
    assert check.armable and "every metric the alarms watch is published" in check.message


def test_missing_metrics_hold_the_alarms_and_say_what_was_published_instead():
    cloudwatch = client("cloudwatch")
    elsewhere = metric("top10_category_diversity_mean", "/aws/sagemaker/Endpoints/data-metric",
                       EndpointName="recommender-prod", ScheduleName="recommender-diversity-hourly")
    watched = published_metrics.watched_metrics(SPEC)
    with Stubber(cloudwatch) as stubber:
        for _ in watched:  # each metric as its alarm names it: none published there
            stubber.add_response("list_metrics", {"Metrics": []})
        for item in watched:  # then each name anywhere: the diversity mean turns up elsewhere
            found = [elsewhere] if item.name == "top10_category_diversity_mean" else []
            stubber.add_response("list_metrics", {"Metrics": found}, {"MetricName": item.name})
        stubber.add_response("list_metrics", {"Metrics": []}, {
            "Namespace": METRICS_NAMESPACE, "Dimensions": [{"Name": "Endpoint", "Value": "recommender-prod"}]})
        check = published_metrics.check_published(SPEC, cloudwatch, ran=True)
    assert not check.armable
    assert check.message.startswith("ALARMS NOT ARMED")
    assert ("/aws/sagemaker/Endpoints/data-metric top10_category_diversity_mean "
            "{EndpointName=recommender-prod, ScheduleName=recommender-diversity-hourly}") in check.message
    not_run = published_metrics.check_published(SPEC, cloudwatch, ran=False)
    assert not not_run.armable and "no completed run yet" in not_run.message


def utc(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2027, 10, day, hour, minute, tzinfo=timezone.utc)


@pytest.mark.parametrize(("expression", "due", "not_due"), [
    (processing_schedule.HOURLY_SCHEDULER, utc(31, 9), utc(31, 9, 1)),
    ("cron(30 8 ? * * *)", utc(31, 8, 30), utc(31, 9, 30)),
    ("rate(2 hours)", utc(31, 10), utc(31, 9)),  # counted from creation at 08:00
    ("at(2027-10-31T11:15:00)", utc(31, 11, 15), utc(30, 11, 15)),
])
def test_when_scheduler_schedules_fire(expression, due, not_due):
    schedule_record = {"Name": "s", "ScheduleExpression": expression, "CreationDate": utc(31, 8)}
    assert eventbridge_scheduler.is_due(schedule_record, due)
    assert not eventbridge_scheduler.is_due(schedule_record, not_due)
    assert not eventbridge_scheduler.is_due({**schedule_record, "EndDate": utc(1, 0).replace(month=1)}, due)


def test_scheduler_context_attributes_are_filled_in():
    text = processing_schedule.processing_job_request(SPEC)
    rendered = eventbridge_scheduler.render_input(
        json.dumps(text), "arn:aws:scheduler:eu-west-1:123456789012:schedule/default/s", utc(31, 9))
    assert "<aws.scheduler." not in rendered and '"end_time": "2027-10-31T09:00:00Z"' in rendered
