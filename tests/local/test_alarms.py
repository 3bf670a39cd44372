"""Alarm evaluation against the real moto server: state in DescribeAlarms, SNS -> SQS
notifications in CloudWatch's format, and DescribeAlarmHistory in botocore's output shape.

The stack is a small real class exposing what LocalPlatform offers the evaluator (clock, store,
state folder, moto clients, operation registry); `call` does what the gateway does with a
request: validate it against botocore's input shape, then run the registered handler. Metric
data goes in as on the stack, through the PutMetricData handler (`metric_data`).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import boto3
import botocore.session
import pytest
from botocore.config import Config
from botocore.validate import ParamValidator, validate_parameters

from diversity_monitor.local import alarms, metric_data
from diversity_monitor.local.clock import SimulatedClock
from diversity_monitor.local.errors import ServiceError, ValidationError
from diversity_monitor.local.store import Store
from helpers.aws import REGION, stack_client

UTC = timezone.utc
NAMESPACE = "aws/sagemaker/Endpoints/data-metrics"
METRIC = "top10_category_diversity_mean"
MODEL = botocore.session.get_session().get_service_model("cloudwatch")


class Stack:
    region = REGION
    account_id = "123456789012"

    def __init__(self, moto_url: str, clock: SimulatedClock, state_dir) -> None:
        self.moto_url = moto_url
        self.clock = clock
        self.state_dir = state_dir
        self.store = Store(state_dir)
        self.operations: dict[str, dict] = {}
        self.clients: dict[str, object] = {}

    def aws_client(self, service: str):  # one client per service, as LocalPlatform keeps them
        if service not in self.clients:
            self.clients[service] = boto3.client(
                service, endpoint_url=self.moto_url, region_name=self.region,
                aws_access_key_id="testing", aws_secret_access_key="testing",
                config=Config(retries={"max_attempts": 1}))
        return self.clients[service]

    def register_operations(self, service: str, operations: dict) -> None:
        self.operations.setdefault(service, {}).update(operations)

    def call(self, service: str, operation: str, **params):
        validate_parameters(params, MODEL.operation_model(operation).input_shape)
        return self.operations[service][operation](self, params)


def install(stack: Stack) -> alarms.AlarmEvaluator:
    """What start_stack installs for CloudWatch, in its order."""
    metric_data.install(stack)
    return alarms.install(stack)


def assert_output_shape(operation: str, output: dict) -> None:
    report = ParamValidator().validate(output, MODEL.operation_model(operation).output_shape)
    assert not report.has_errors(), report.generate_report()


@pytest.fixture
def names():
    suffix = uuid.uuid4().hex[:8]
    return {"alarm": f"diversity-low-{suffix}", "endpoint": f"news-recommender-{suffix}",
            "schedule": f"diversity-hourly-{suffix}", "topic": f"oncall-{suffix}", "queue": f"oncall-{suffix}"}


@pytest.fixture
def inbox(aws_env, names):
    """An SNS topic with an SQS queue subscribed: what the on-call's pager would receive."""
    sns, sqs = boto3.client("sns"), boto3.client("sqs")
    topic = sns.create_topic(Name=names["topic"])["TopicArn"]
    queue_url = sqs.create_queue(QueueName=names["queue"])["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)

    def received() -> list[dict]:
        envelopes = []
        while True:
            batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                return sorted(envelopes, key=lambda e: json.loads(e["Message"])["StateChangeTime"])
            for message in batch:
                envelopes.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])

    yield topic, received


@pytest.fixture
def cleanup(aws_env):
    created: list[str] = []
    yield created
    if created:
        boto3.client("cloudwatch").delete_alarms(AlarmNames=created)


def alarm_params(names, topic, **overrides):
    params = {
        "AlarmName": names["alarm"],
        "AlarmDescription": "Top-10 category diversity below 4 for 2 of the last 3 hours",
        "Namespace": NAMESPACE, "MetricName": METRIC,
        "Dimensions": [{"Name": "Endpoint", "Value": names["endpoint"]},
                       {"Name": "MonitoringSchedule", "Value": names["schedule"]}],
        "Statistic": "Average", "Period": 3600, "EvaluationPeriods": 3, "DatapointsToAlarm": 2,
        "Threshold": 4.0, "ComparisonOperator": "LessThanThreshold", "TreatMissingData": "missing",
        "ActionsEnabled": True, "AlarmActions": [topic], "OKActions": [topic],
    }
    params.update(overrides)
    return params


def hourly_publisher(stack, names, values_by_hour, minute=5):
    """The monitoring job: at HH:05 it publishes the HH:00 measurement. Dimensions in the other
    order than the alarm's, as a publisher is free to do (moto alone would not match them to the
    alarm's query); plus another schedule's datum that the alarm must not see."""

    def publish(now: datetime) -> None:
        if now.minute != minute or now.hour not in values_by_hour:
            return
        stamp = now.replace(minute=0)
        stack.call("cloudwatch", "PutMetricData", Namespace=NAMESPACE, MetricData=[
            {"MetricName": METRIC, "Timestamp": stamp, "Value": values_by_hour[now.hour],
             "Dimensions": [{"Name": "MonitoringSchedule", "Value": names["schedule"]},
                            {"Name": "Endpoint", "Value": names["endpoint"]}]},
            {"MetricName": METRIC, "Timestamp": stamp, "Value": 0.0,
             "Dimensions": [{"Name": "Endpoint", "Value": names["endpoint"]},
                            {"Name": "MonitoringSchedule", "Value": "some-other-schedule"}]},
        ])

    return publish


def state_of(name: str) -> dict:
    return boto3.client("cloudwatch").describe_alarms(AlarmNames=[name])["MetricAlarms"][0]


def test_two_bad_hours_page_the_on_call_and_recovery_clears_it(aws_env, names, inbox, cleanup, tmp_path):
    topic, received = inbox
    clock = SimulatedClock(datetime(2026, 11, 25, 9, 30, tzinfo=UTC))
    stack = Stack(aws_env, clock, tmp_path)
    clock.subscribe(hourly_publisher(stack, names, {10: 5.0, 11: 3.0, 12: 2.0, 13: 6.0, 14: 7.0}))
    install(stack)
    cleanup.append(names["alarm"])

    assert stack.call("cloudwatch", "PutMetricAlarm", **alarm_params(names, topic)) == {}
    # A 1-of-1 alarm on the same metric: read by the same GetMetricData call as a shorter tail.
    fast = f"{names['alarm']}-fast"
    stack.call("cloudwatch", "PutMetricAlarm", **alarm_params(
        names, topic, AlarmName=fast, EvaluationPeriods=1, DatapointsToAlarm=1, ActionsEnabled=False))
    cleanup.append(fast)
    created = state_of(names["alarm"])
    assert (created["StateValue"], created["StateReason"]) == ("INSUFFICIENT_DATA", "Unchecked: Initial alarm creation")

    expected = [  # (clock time, 2-of-3 state, 1-of-1 state): the HH:00 point lands at HH:05
        (datetime(2026, 11, 25, 10, 4, tzinfo=UTC), "INSUFFICIENT_DATA", "INSUFFICIENT_DATA"),
        (datetime(2026, 11, 25, 10, 5, tzinfo=UTC), "OK", "OK"),        # first point, not breaching
        (datetime(2026, 11, 25, 12, 4, tzinfo=UTC), "OK", "ALARM"),     # one bad hour of 2 needed
        (datetime(2026, 11, 25, 12, 5, tzinfo=UTC), "ALARM", "ALARM"),  # second bad hour
        (datetime(2026, 11, 25, 14, 4, tzinfo=UTC), "ALARM", "OK"),     # 13:00 good, still 2 of 3 bad
        (datetime(2026, 11, 25, 14, 5, tzinfo=UTC), "OK", "OK"),        # recovered
    ]
    for moment, state, fast_state in expected:
        clock.advance(moment - clock.now())
        assert state_of(names["alarm"])["StateValue"] == state, moment
        assert state_of(fast)["StateValue"] == fast_state, moment

    messages = received()
    assert [json.loads(m["Message"])["NewStateValue"] for m in messages] == ["OK", "ALARM", "OK"]
    alarm_envelope = messages[1]
    assert alarm_envelope["Subject"] == f'ALARM: "{names["alarm"]}" in EU (Ireland)'
    message = json.loads(alarm_envelope["Message"])
    assert list(message) == [
        "AlarmName", "AlarmDescription", "AWSAccountId", "AlarmConfigurationUpdatedTimestamp",
        "NewStateValue", "NewStateReason", "StateChangeTime", "Region", "AlarmArn", "OldStateValue",
        "OKActions", "AlarmActions", "InsufficientDataActions", "Trigger",
    ]
    assert message["OldStateValue"] == "OK"
    assert message["AWSAccountId"] == "123456789012"
    assert message["Region"] == "EU (Ireland)"
    assert message["StateChangeTime"] == "2026-11-25T12:05:00.000+0000"
    assert message["AlarmConfigurationUpdatedTimestamp"] == "2026-11-25T09:30:00.000+0000"
    assert message["AlarmActions"] == [topic] and message["InsufficientDataActions"] == []
    assert message["NewStateReason"] == (
        "Threshold Crossed: 2 out of the last 3 datapoints [2.0 (25/11/26 11:05:00), "
        "3.0 (25/11/26 10:05:00)] were less than the threshold (4.0) "
        "(minimum 2 datapoints for OK -> ALARM transition)."
    )
    assert message["Trigger"] == {
        "MetricName": METRIC, "Namespace": NAMESPACE, "StatisticType": "Statistic",
        "Statistic": "AVERAGE", "Unit": None,
        "Dimensions": [{"value": names["endpoint"], "name": "Endpoint"},
                       {"value": names["schedule"], "name": "MonitoringSchedule"}],
        "Period": 3600, "EvaluationPeriods": 3, "DatapointsToAlarm": 2,
        "ComparisonOperator": "LessThanThreshold", "Threshold": 4.0,
        "TreatMissingData": "missing", "EvaluateLowSampleCountPercentile": "",
    }

    # DescribeAlarms through our handler: the clock's timestamps, valid output.
    described = stack.call("cloudwatch", "DescribeAlarms", AlarmNames=[names["alarm"]])
    assert_output_shape("DescribeAlarms", described)
    alarm = described["MetricAlarms"][0]
    assert alarm["StateUpdatedTimestamp"] == datetime(2026, 11, 25, 14, 5, tzinfo=UTC)
    assert json.loads(alarm["StateReasonData"])["recentDatapoints"] == [2.0, 6.0, 7.0]

    history = stack.call("cloudwatch", "DescribeAlarmHistory", AlarmName=names["alarm"])
    assert_output_shape("DescribeAlarmHistory", history)
    items = history["AlarmHistoryItems"]
    assert [i["HistorySummary"] for i in items if i["HistoryItemType"] == "StateUpdate"] == [
        "Alarm updated from ALARM to OK", "Alarm updated from OK to ALARM",
        "Alarm updated from INSUFFICIENT_DATA to OK",
    ]
    assert items[-1]["HistorySummary"] == f'Alarm "{names["alarm"]}" created'
    actions = [i for i in items if i["HistoryItemType"] == "Action"]
    assert [i["HistorySummary"] for i in actions] == [f"Successfully executed action {topic}"] * 3
    alarm_update = json.loads(items[[i["HistorySummary"] for i in items].index("Alarm updated from OK to ALARM")]["HistoryData"])
    assert alarm_update["oldState"]["stateValue"] == "OK"
    assert alarm_update["newState"]["stateReasonData"]["period"] == 3600


def test_alarm_history_filters_and_pages(aws_env, names, inbox, cleanup, tmp_path):
    topic, _ = inbox
    clock = SimulatedClock(datetime(2026, 11, 25, 9, 30, tzinfo=UTC))
    stack = Stack(aws_env, clock, tmp_path)
    clock.subscribe(hourly_publisher(stack, names, {10: 1.0}))
    install(stack)
    cleanup.append(names["alarm"])
    stack.call("cloudwatch", "PutMetricAlarm", **alarm_params(names, topic, DatapointsToAlarm=1))
    clock.advance(timedelta(minutes=35))  # INSUFFICIENT_DATA -> ALARM at 10:05 (1 of 3)

    updates = stack.call("cloudwatch", "DescribeAlarmHistory", AlarmName=names["alarm"],
                         HistoryItemType="StateUpdate")
    assert [i["HistorySummary"] for i in updates["AlarmHistoryItems"]] == ["Alarm updated from INSUFFICIENT_DATA to ALARM"]
    assert updates["AlarmHistoryItems"][0]["Timestamp"] == datetime(2026, 11, 25, 10, 5, tzinfo=UTC)

    first = stack.call("cloudwatch", "DescribeAlarmHistory", AlarmName=names["alarm"],
                       ScanBy="TimestampAscending", MaxRecords=1)
    assert_output_shape("DescribeAlarmHistory", first)
    assert first["AlarmHistoryItems"][0]["HistoryItemType"] == "ConfigurationUpdate"
    rest = stack.call("cloudwatch", "DescribeAlarmHistory", AlarmName=names["alarm"],
                      ScanBy="TimestampAscending", NextToken=first["NextToken"])
    assert [i["HistoryItemType"] for i in rest["AlarmHistoryItems"]] == ["StateUpdate", "Action"]
    assert "NextToken" not in rest

    late = stack.call("cloudwatch", "DescribeAlarmHistory", AlarmName=names["alarm"],
                      StartDate=datetime(2026, 11, 25, 10, 0, tzinfo=UTC))
    assert {i["HistoryItemType"] for i in late["AlarmHistoryItems"]} == {"StateUpdate", "Action"}
    none = stack.call("cloudwatch", "DescribeAlarmHistory", AlarmName=names["alarm"],
                      AlarmTypes=["CompositeAlarm"])
    assert none["AlarmHistoryItems"] == []
    with pytest.raises(ServiceError, match="NextToken") as refused:
        stack.call("cloudwatch", "DescribeAlarmHistory", NextToken="not-a-token")
    assert refused.value.code == "InvalidNextToken"


def test_set_alarm_state_notifies_and_lasts_until_the_next_evaluation(aws_env, names, inbox, cleanup, tmp_path):
    topic, received = inbox
    clock = SimulatedClock(datetime(2026, 11, 25, 10, 30, tzinfo=UTC))
    stack = Stack(aws_env, clock, tmp_path)
    install(stack)
    cleanup.append(names["alarm"])
    stack.call("cloudwatch", "PutMetricAlarm", **alarm_params(names, topic, TreatMissingData="notBreaching"))
    assert state_of(names["alarm"])["StateValue"] == "OK"  # evaluated at once: no data = not breaching

    stack.call("cloudwatch", "SetAlarmState", AlarmName=names["alarm"], StateValue="ALARM",
               StateReason="testing the pager")
    assert state_of(names["alarm"])["StateValue"] == "ALARM"
    clock.advance(timedelta(minutes=1))
    assert state_of(names["alarm"])["StateValue"] == "OK"
    assert [json.loads(m["Message"])["NewStateValue"] for m in received()] == ["OK", "ALARM", "OK"]


def test_wall_clock_window_sees_an_hour_only_once_it_is_over(aws_env, names, inbox, cleanup, tmp_path):
    topic, _ = inbox
    clock = SimulatedClock(datetime(2026, 11, 25, 12, 0, tzinfo=UTC))
    stack = Stack(aws_env, clock, tmp_path)
    install(stack)
    cleanup.append(names["alarm"])
    window = {"WallClockWindow": {"Timezone": "UTC"}}
    stack.call("cloudwatch", "PutMetricAlarm", **alarm_params(
        names, topic, EvaluationPeriods=1, DatapointsToAlarm=1, EvaluationWindow=window))
    stack.call("cloudwatch", "PutMetricData", Namespace=NAMESPACE, MetricData=[{
        "MetricName": METRIC, "Timestamp": datetime(2026, 11, 25, 12, 10, tzinfo=UTC), "Value": 1.0,
        "Dimensions": alarm_params(names, topic)["Dimensions"]}])

    clock.advance(timedelta(minutes=59))
    assert state_of(names["alarm"])["StateValue"] == "INSUFFICIENT_DATA"  # 12:00-13:00 not over
    clock.advance(timedelta(minutes=1))
    assert state_of(names["alarm"])["StateValue"] == "ALARM"
    described = stack.call("cloudwatch", "DescribeAlarms", AlarmNames=[names["alarm"]])
    assert described["MetricAlarms"][0]["EvaluationWindow"] == window  # moto drops it; we keep it
    assert_output_shape("DescribeAlarms", described)


def test_invalid_alarm_definitions_are_rejected(aws_env, names, inbox, tmp_path):
    topic, _ = inbox
    stack = Stack(aws_env, SimulatedClock(datetime(2026, 11, 25, 12, tzinfo=UTC)), tmp_path)
    install(stack)
    with pytest.raises(ValidationError, match="DatapointsToAlarm") as refused:
        stack.call("cloudwatch", "PutMetricAlarm", **alarm_params(names, topic, DatapointsToAlarm=4))
    with pytest.raises(ValidationError, match="Period 120 is not supported with a wall clock"):
        stack.call("cloudwatch", "PutMetricAlarm", **alarm_params(
            names, topic, Period=120, EvaluationWindow={"WallClockWindow": {}}))
    with pytest.raises(ValidationError, match="exceeds one day"):  # 5-minute periods over 25 hours
        stack.call("cloudwatch", "PutMetricAlarm", **alarm_params(
            names, topic, Period=300, EvaluationPeriods=300, DatapointsToAlarm=2))
    assert refused.value.code == "ValidationException"  # CloudWatch's modelled validation error
    assert boto3.client("cloudwatch").describe_alarms(AlarmNames=[names["alarm"]])["MetricAlarms"] == []


def test_alarms_made_directly_in_moto_are_adopted_restored_and_deletion_recorded(aws_env, names, inbox, tmp_path):
    topic, _ = inbox
    cloudwatch = boto3.client("cloudwatch")
    clock = SimulatedClock(datetime(2026, 11, 25, 12, 0, tzinfo=UTC))
    stack = Stack(aws_env, clock, tmp_path)
    install(stack)
    cloudwatch.put_metric_alarm(**alarm_params(names, topic, TreatMissingData="breaching"))
    assert state_of(names["alarm"])["StateValue"] == "OK"  # moto's own (wrong) initial state
    clock.advance(timedelta(minutes=1))
    assert state_of(names["alarm"])["StateValue"] == "ALARM"  # adopted, all missing = breaching

    # A restart: moto forgot the alarm, the state folder did not.
    cloudwatch.delete_alarms(AlarmNames=[names["alarm"]])
    clock = SimulatedClock(clock.now())  # the old stack's evaluator stays on the old clock
    restarted = Stack(aws_env, clock, tmp_path)
    install(restarted)
    restored = state_of(names["alarm"])
    assert (restored["StateValue"], restored["Threshold"], restored["AlarmActions"]) == ("ALARM", 4.0, [topic])

    cloudwatch.delete_alarms(AlarmNames=[names["alarm"]])
    clock.advance(timedelta(minutes=1))
    summaries = [i["HistorySummary"] for i in restarted.call(
        "cloudwatch", "DescribeAlarmHistory", AlarmName=names["alarm"],
        HistoryItemType="ConfigurationUpdate")["AlarmHistoryItems"]]
    assert summaries == [f'Alarm "{names["alarm"]}" deleted', f'Alarm "{names["alarm"]}" created']


def test_moto_refusals_reach_the_caller_with_their_code(aws_env, tmp_path):
    stack = Stack(aws_env, SimulatedClock(datetime(2026, 11, 25, 12, tzinfo=UTC)), tmp_path)
    install(stack)
    with pytest.raises(ServiceError) as refused:
        stack.call("cloudwatch", "SetAlarmState", AlarmName=f"no-such-alarm-{uuid.uuid4().hex[:8]}",
                   StateValue="ALARM", StateReason="testing")
    assert refused.value.code == "ResourceNotFound"


def test_through_the_gateway_with_unmodified_boto3(tmp_path):
    """The same operations over HTTP: the gateway routes them here and speaks CloudWatch's wire
    protocol (JSON for botocore 1.44); moto answers the rest (PutMetricData)."""
    from botocore.exceptions import ClientError

    from diversity_monitor.local.stack import start_stack

    clock = SimulatedClock(datetime(2026, 11, 25, 12, 0, tzinfo=UTC))
    with start_stack(tmp_path / "stack", port=0, clock=clock) as stack:
        cloudwatch = stack_client("cloudwatch", stack)
        window = {"WallClockWindow": {"Timezone": "Europe/Dublin"}}
        cloudwatch.put_metric_alarm(AlarmName="diversity-low", Namespace=NAMESPACE, MetricName=METRIC,
                                    Dimensions=[{"Name": "Endpoint", "Value": "recommender-prod"}],
                                    Statistic="Average", Period=3600, EvaluationPeriods=1,
                                    Threshold=4.0, ComparisonOperator="LessThanThreshold",
                                    EvaluationWindow=window)
        alarm = cloudwatch.describe_alarms(AlarmNames=["diversity-low"])["MetricAlarms"][0]
        assert (alarm["StateValue"], alarm["EvaluationWindow"]) == ("INSUFFICIENT_DATA", window)
        assert alarm["StateUpdatedTimestamp"] == datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

        cloudwatch.put_metric_data(Namespace=NAMESPACE, MetricData=[{
            "MetricName": METRIC, "Value": 2.0, "Timestamp": datetime(2026, 11, 25, 12, 30, tzinfo=UTC),
            "Dimensions": [{"Name": "Endpoint", "Value": "recommender-prod"}]}])
        stack.platform.advance(3600)
        history = cloudwatch.describe_alarm_history(AlarmName="diversity-low", HistoryItemType="StateUpdate")
        assert [(i["HistorySummary"], i["Timestamp"]) for i in history["AlarmHistoryItems"]] == [
            ("Alarm updated from INSUFFICIENT_DATA to ALARM", datetime(2026, 11, 25, 13, 0, tzinfo=UTC))]

        with pytest.raises(ClientError) as refused:
            cloudwatch.set_alarm_state(AlarmName="no-such-alarm", StateValue="OK", StateReason="x")
        assert refused.value.response["Error"]["Code"] == "ResourceNotFound"
        with pytest.raises(ClientError) as refused:
            cloudwatch.put_metric_alarm(AlarmName="bad", Namespace=NAMESPACE, MetricName=METRIC,
                                        Statistic="Average", Period=3600, EvaluationPeriods=1,
                                        DatapointsToAlarm=2, Threshold=4.0,
                                        ComparisonOperator="LessThanThreshold")
        assert refused.value.response["Error"]["Code"] == "ValidationError"
        assert "DatapointsToAlarm" in refused.value.response["Error"]["Message"]

        # PutMetricData: stamped by the stack's clock when the datum has no Timestamp; GetMetricData
        # finds a datum whatever order its dimensions are named in, as CloudWatch does.
        published = [{"Name": "MonitoringSchedule", "Value": "hourly"}, {"Name": "Endpoint", "Value": "recommender-prod"}]
        cloudwatch.put_metric_data(Namespace="Custom/Test", MetricData=[
            {"MetricName": "runs", "Value": 3.0, "Dimensions": published}])
        for order in (published, published[::-1]):
            answer = cloudwatch.get_metric_data(
                MetricDataQueries=[{"Id": "runs", "MetricStat": {"Metric": {
                    "Namespace": "Custom/Test", "MetricName": "runs", "Dimensions": order}, "Period": 60, "Stat": "Sum"}}],
                StartTime=datetime(2026, 11, 25, 12, 50, tzinfo=UTC), EndTime=datetime(2026, 11, 25, 13, 10, tzinfo=UTC))
            [result] = answer["MetricDataResults"]
            assert (result["Timestamps"], result["Values"]) == ([datetime(2026, 11, 25, 13, 0, tzinfo=UTC)], [3.0])
        # ... and refuses what CloudWatch refuses although the API model allows it.
        for datum, problem in (
            ({"Timestamp": datetime(2026, 11, 1, tzinfo=UTC), "Value": 1.0}, "outside what CloudWatch accepts"),
            ({"Value": float("nan")}, "values must be finite"),
            ({"Value": 1e200}, "outside -2^360..2^360"),
        ):
            with pytest.raises(ClientError) as refused:
                cloudwatch.put_metric_data(Namespace="Custom/Test", MetricData=[{"MetricName": "runs", **datum}])
            assert refused.value.response["Error"]["Code"] == "InvalidParameterValue", refused.value.response["Error"]
            assert problem in refused.value.response["Error"]["Message"]


def query_protocol_client(stack, models: Path):
    """CloudWatch as older clients speak it (AWS CLI v1, boto3 before CloudWatch's JSON protocol):
    botocore's own service model, restricted to the query protocol, so botocore's QuerySerializer
    writes the requests and its QueryParser reads the answers."""
    import botocore.session

    model = botocore.session.get_session().get_component("data_loader").load_service_model("cloudwatch", "service-2")
    model["metadata"].update(protocol="query", protocols=["query"])
    model["metadata"].pop("awsQueryCompatible", None)
    folder = models / "cloudwatch" / model["metadata"]["apiVersion"]
    folder.mkdir(parents=True)
    (folder / "service-2.json").write_text(json.dumps(model))
    session = botocore.session.Session()
    session.set_config_variable("data_path", str(models))
    client = stack_client("cloudwatch", stack, session=boto3.session.Session(botocore_session=session))
    assert client.meta.service_model.resolved_protocol == "query"
    return client


def test_clients_speaking_the_query_protocol_reach_the_same_handlers(tmp_path):
    """Without query support these requests went to moto: PutMetricAlarm unevaluated (moto's OK
    state), DescribeAlarmHistory an HTTP 500."""
    from botocore.exceptions import ClientError

    from diversity_monitor.local.stack import start_stack

    clock = SimulatedClock(datetime(2026, 11, 25, 12, 0, tzinfo=UTC))
    with start_stack(tmp_path / "stack", port=0, clock=clock) as stack:
        cloudwatch = query_protocol_client(stack, tmp_path / "models")
        dimensions = [{"Name": "Endpoint", "Value": "recommender-prod"}, {"Name": "MonitoringSchedule", "Value": "hourly"}]
        window = {"WallClockWindow": {"Timezone": "UTC"}}
        cloudwatch.put_metric_alarm(AlarmName="diversity-low", Namespace=NAMESPACE, MetricName=METRIC,
                                    Dimensions=dimensions, Statistic="Average", Period=3600, EvaluationPeriods=1,
                                    Threshold=4.0, ComparisonOperator="LessThanThreshold", AlarmActions=[],
                                    EvaluationWindow=window)
        alarm = cloudwatch.describe_alarms(AlarmNames=["diversity-low"])["MetricAlarms"][0]
        assert (alarm["StateValue"], alarm["StateReason"]) == ("INSUFFICIENT_DATA", "Unchecked: Initial alarm creation")
        assert alarm["EvaluationWindow"] == window and alarm["Dimensions"] == dimensions
        assert alarm["StateUpdatedTimestamp"] == datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

        cloudwatch.put_metric_data(Namespace=NAMESPACE, MetricData=[{
            "MetricName": METRIC, "Value": 2.0, "Timestamp": datetime(2026, 11, 25, 12, 30, tzinfo=UTC),
            "Dimensions": dimensions[::-1]}])
        stack.platform.advance(3600)
        history = cloudwatch.describe_alarm_history(AlarmName="diversity-low", HistoryItemType="StateUpdate")
        assert [(i["HistorySummary"], i["Timestamp"]) for i in history["AlarmHistoryItems"]] == [
            ("Alarm updated from INSUFFICIENT_DATA to ALARM", datetime(2026, 11, 25, 13, 0, tzinfo=UTC))]
        answer = cloudwatch.get_metric_data(
            MetricDataQueries=[{"Id": "m", "MetricStat": {"Metric": {"Namespace": NAMESPACE, "MetricName": METRIC,
                                                                     "Dimensions": dimensions}, "Period": 3600, "Stat": "Average"}}],
            StartTime=datetime(2026, 11, 25, 12, 0, tzinfo=UTC), EndTime=datetime(2026, 11, 25, 13, 0, tzinfo=UTC))
        assert answer["MetricDataResults"][0]["Values"] == [2.0]
        # What the stack does not handle itself still reaches moto in the same protocol.
        listed = cloudwatch.list_metrics(Namespace=NAMESPACE, MetricName=METRIC)["Metrics"]
        assert [metric["MetricName"] for metric in listed] == [METRIC]

        with pytest.raises(ClientError) as refused:
            cloudwatch.set_alarm_state(AlarmName="no-such-alarm", StateValue="OK", StateReason="x")
        assert refused.value.response["Error"]["Code"] == "ResourceNotFound"
        with pytest.raises(ClientError) as refused:
            cloudwatch.put_metric_alarm(AlarmName="bad", Namespace=NAMESPACE, MetricName=METRIC, Statistic="Average",
                                        Period=300, EvaluationPeriods=300, DatapointsToAlarm=1, Threshold=4.0,
                                        ComparisonOperator="LessThanThreshold")
        assert refused.value.response["Error"]["Code"] == "ValidationError"
        assert "exceeds one day" in refused.value.response["Error"]["Message"]
        with pytest.raises(ClientError) as refused:
            cloudwatch.put_metric_data(Namespace=NAMESPACE, MetricData=[{"MetricName": METRIC, "Value": float("inf")}])
        assert refused.value.response["Error"]["Code"] == "InvalidParameterValue"


# --- composite alarms: one page per incident, naming the child that fired ------------------------


def test_a_composite_pages_once_for_two_children_and_names_the_first(aws_env, names, inbox, cleanup, tmp_path):
    """Two child alarms without actions, a composite over them with the pager: the first child in
    ALARM pages once (the second joining it changes nothing), recovery of both clears it once."""
    topic, received = inbox
    clock = SimulatedClock(datetime(2026, 11, 25, 9, 30, tzinfo=UTC))
    stack = Stack(aws_env, clock, tmp_path)
    clock.subscribe(hourly_publisher(stack, names, {10: 5.0, 11: 3.0, 12: 2.0, 13: 2.0, 14: 6.0, 15: 7.0, 16: 7.0}))
    install(stack)
    child, other, page = names["alarm"], f"{names['alarm']}-fast", f"{names['alarm']}-page"
    no_actions = {"AlarmActions": [], "OKActions": []}
    stack.call("cloudwatch", "PutMetricAlarm", **alarm_params(names, topic, **no_actions))
    stack.call("cloudwatch", "PutMetricAlarm", **alarm_params(names, topic, AlarmName=other, EvaluationPeriods=3,
                                                               DatapointsToAlarm=3, **no_actions))
    cleanup.extend([page, child, other])  # the composite first: its children may go only after it
    with pytest.raises(ValidationError, match=r"do not exist"):
        stack.call("cloudwatch", "PutCompositeAlarm", AlarmName=page, AlarmRule='ALARM("no-such-alarm")')
    with pytest.raises(ValidationError, match=r"AlarmRule"):
        stack.call("cloudwatch", "PutCompositeAlarm", AlarmName=page, AlarmRule=f'ALARM("{child}") OR')
    rule = f'ALARM("{child}") OR ALARM({other})'
    assert stack.call("cloudwatch", "PutCompositeAlarm", AlarmName=page, AlarmRule=rule, AlarmActions=[topic],
                      OKActions=[topic], AlarmDescription="one page per incident") == {}
    described = stack.call("cloudwatch", "DescribeAlarms", AlarmNames=[page], AlarmTypes=["CompositeAlarm"])
    assert_output_shape("DescribeAlarms", described)
    assert [(a["AlarmName"], a["AlarmRule"], a["StateValue"]) for a in described["CompositeAlarms"]] == [
        (page, rule, "OK")]  # INSUFFICIENT_DATA at creation, then evaluated at once: no child in ALARM
    assert stack.call("cloudwatch", "DescribeAlarms", AlarmNames=[page])["CompositeAlarms"] == []  # metric alarms only
    clock.advance(datetime(2026, 11, 25, 17, 5, tzinfo=UTC) - clock.now())

    messages = [json.loads(m["Message"]) for m in received()]
    assert [(m["AlarmName"], m["OldStateValue"], m["NewStateValue"]) for m in messages] == [
        (page, "INSUFFICIENT_DATA", "OK"), (page, "OK", "ALARM"), (page, "ALARM", "OK")]
    fired = messages[1]
    assert fired["StateChangeTime"] == "2026-11-25T12:05:00.000+0000"  # the 2-of-3 child, an hour before the 3-of-3
    arn = f"arn:aws:cloudwatch:{REGION}:123456789012:alarm:{child}"
    assert fired["NewStateReason"] == f"{arn} transitioned to ALARM at Wednesday 25 November, 2026 12:05:00 UTC"
    assert fired["TriggeringChildren"] == [{"Arn": arn, "State": {"Value": "ALARM",
                                                                  "Timestamp": "2026-11-25T12:05:00.000+0000"}}]
    assert fired["AlarmRule"] == rule and "Trigger" not in fired
    history = stack.call("cloudwatch", "DescribeAlarmHistory", AlarmName=page, HistoryItemType="StateUpdate",
                         AlarmTypes=["CompositeAlarm"], ScanBy="TimestampAscending")["AlarmHistoryItems"]
    assert [item["HistorySummary"] for item in history] == [
        "Alarm updated from INSUFFICIENT_DATA to OK", "Alarm updated from OK to ALARM", "Alarm updated from ALARM to OK"]
    with pytest.raises(ValidationError, match="in the alarm rule of composite alarm"):
        stack.call("cloudwatch", "DeleteAlarms", AlarmNames=[child])
