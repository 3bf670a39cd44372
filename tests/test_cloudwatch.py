"""CloudWatch metrics: PutMetricData's limits checked before sending, and requests chunked within them.

Limits from platform-facts.md and PutMetricData's service model in botocore: namespace 1-255 and
not `AWS/` (nor `:`), at most 30 dimensions (Name 1-255, Value 1-1024), finite values, timestamps
from two weeks ago to two hours ahead, at most 1000 metrics and 1 MB per request.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import boto3
import pytest

from diversity_monitor.aws import service_schema
from diversity_monitor.job import metrics_file as cloudwatch
from diversity_monitor.job.metrics_file import MetricsError

NOW = datetime(2027, 10, 31, 9, 5, tzinfo=timezone.utc)
DIMENSIONS = [{"Name": "Endpoint", "Value": "recs-prod"}, {"Name": "MonitoringSchedule", "Value": "diversity-hourly"}]


def record(**changes) -> dict:
    return {"MetricName": "top10_category_diversity_mean", "Timestamp": "2027-10-31T09:00:00Z",
            "Dimensions": DIMENSIONS, "Value": 6.2, "Unit": "None", **changes}


def test_a_valid_record_passes():
    cloudwatch.validate([record(), record(Value=0), record(Timestamp=NOW)], "aws/sagemaker/Endpoints/data-metrics", NOW)


@pytest.mark.parametrize("namespace, records, problem", [
    ("AWS/SageMaker", [record()], "namespace 'AWS/SageMaker': must be 1-255 characters and not start with 'AWS/' or ':'"),
    (":custom", [record()], "not start with 'AWS/' or ':'"),
    ("", [record()], "namespace '': must be 1-255"),
    ("n" * 256, [record()], "must be 1-255"),
    ("ns", [record(MetricName="")], "metric name '': must be 1-255 characters"),
    ("ns", [record(MetricName="m" * 256)], "must be 1-255 characters"),
    ("ns", [record(Value=float("nan"))], "value nan is not a finite number"),
    ("ns", [record(Value=float("inf"))], "value inf is not a finite number"),
    ("ns", [record(Value="6.2")], "value '6.2' is not a finite number"),
    ("ns", [record(Value=True)], "value True is not a finite number"),
    ("ns", [record(Dimensions=[{"Name": f"d{i}", "Value": "v"} for i in range(31)])], "Dimensions must be a list of at most 30"),
    ("ns", [record(Dimensions=[{"Name": "", "Value": "v"}])], "dimension name '' must be 1-255 characters"),
    ("ns", [record(Dimensions=[{"Name": "n" * 256, "Value": "v"}])], "must be 1-255 characters"),
    ("ns", [record(Dimensions=[{"Name": "Endpoint", "Value": ""}])], "dimension Endpoint value '' must be 1-1024 characters"),
    ("ns", [record(Dimensions=[{"Name": "Endpoint", "Value": "v" * 1025}])], "must be 1-1024 characters"),
    ("ns", [record(Dimensions=[{"Name": "Endpoint"}])], "dimension Endpoint value None"),
    ("ns", [record(Timestamp=(NOW - timedelta(days=15)).isoformat())], "is outside two weeks ago .. two hours ahead"),
    ("ns", [record(Timestamp=(NOW + timedelta(hours=3)).isoformat())], "is outside two weeks ago .. two hours ahead"),
    ("ns", [record(Timestamp="yesterday")], "Timestamp 'yesterday' is not a time"),
    ("ns", [record(Timestamp=None)], "Timestamp None is not a time"),
])
def test_what_cloudwatch_would_reject_is_named(namespace, records, problem):
    with pytest.raises(MetricsError) as raised:
        cloudwatch.validate(records, namespace, NOW)
    assert problem in str(raised.value)


def test_the_limits_agree_with_the_service_model():
    """Our limits are PutMetricData's: a record at each limit is accepted by the model, one past it is not."""
    operation = service_schema.operation_model("cloudwatch", "PutMetricData")
    at_limit = record(MetricName="m" * 255, Dimensions=[{"Name": "n" * 255, "Value": "v" * 1024}] * 30,
                      Timestamp=NOW)
    cloudwatch.validate([at_limit], "n" * 255, NOW)
    assert service_schema.request_problem({"Namespace": "n" * 255, "MetricData": [at_limit]}, operation) is None
    for past in (record(Dimensions=[{"Name": "n" * 256, "Value": "v"}], Timestamp=NOW),
                 record(Dimensions=[{"Name": "n", "Value": "v" * 1025}], Timestamp=NOW),
                 record(Dimensions=[{"Name": "n", "Value": "v"}] * 31, Timestamp=NOW)):
        assert service_schema.request_problem({"Namespace": "ns", "MetricData": [past]}, operation) is not None
        with pytest.raises(MetricsError):
            cloudwatch.validate([past], "ns", NOW)


def test_both_dimensions_are_required():
    assert cloudwatch.dimensions("recs-prod", "diversity-hourly") == DIMENSIONS
    with pytest.raises(MetricsError, match="no monitoring schedule name"):
        cloudwatch.dimensions("recs-prod", None)
    with pytest.raises(MetricsError, match="no monitoring schedule name"):
        cloudwatch.metric_records({"diversity_monitor": {"measured_at": "2027-10-31T09:00:00Z"}}, "recs-prod", "")


def _records(count: int, dimensions: list[dict]) -> list[dict]:
    return [record(MetricName=f"metric_{i}", Dimensions=dimensions, Timestamp="2027-10-31T09:00:00Z") for i in range(count)]


def test_requests_are_chunked_at_1000_metrics():
    requests = cloudwatch.put_metric_data_requests(_records(2500, DIMENSIONS), "ns")
    assert [len(request["MetricData"]) for request in requests] == [1000, 1000, 500]
    assert [d["MetricName"] for request in requests for d in request["MetricData"]] == [f"metric_{i}" for i in range(2500)]


def test_requests_are_chunked_under_1_mb_on_the_wire(aws_env):
    # 30 dimensions with 1024-character values: about 32 KB a metric, so about 31 fit in a request.
    heavy = [{"Name": f"d{i}", "Value": "v" * 1024} for i in range(30)]
    records = _records(100, heavy)
    requests = cloudwatch.put_metric_data_requests(records, "ns")
    assert sum(len(request["MetricData"]) for request in requests) == 100
    operation = service_schema.operation_model("cloudwatch", "PutMetricData")
    assert all(service_schema.request_problem(request, operation) is None for request in requests)
    # The bodies botocore actually sends (before its optional gzip), measured as they leave the client.
    client = boto3.client("cloudwatch")
    sizes: list[int] = []
    client.meta.events.register("before-call.cloudwatch.PutMetricData",
                                lambda params, **_: sizes.append(len(params["body"])))
    sent = cloudwatch.put_metric_data([{**r, "Timestamp": datetime.now(timezone.utc).isoformat()} for r in records],
                                      "Custom/ChunkTest", client=client)
    assert sent == len(requests) == len(sizes)
    assert max(sizes) <= cloudwatch.MAX_REQUEST_BYTES
    assert min(sizes[:-1]) > cloudwatch.MAX_REQUEST_BYTES - 40_000  # full: another metric would not have fitted
