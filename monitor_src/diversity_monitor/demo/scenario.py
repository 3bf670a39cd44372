"""The incident from the design notes, replayed on whatever boto3 points at.

Every step is plain boto3 (and the kit's library), exactly what a team would run against AWS;
only the clock is the local stack's (`advance` moves simulated time, which fires the hourly
schedule and the alarm evaluation). Users keep calling the endpoint through every simulated
hour, including the deploy and rollback hours (`live_for`, `live_until`), so each hour's
capture holds live traffic, from both models in the hours the model changes. `make demo`, the
integration test and the runbook drill all use these steps.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import boto3
import orjson

from diversity_monitor import storage
from diversity_monitor.conventions import (
    CUSTOM_BLOCK,
    DEFAULT_MEAN_TOLERANCE,
    DEFAULT_MIN_DIVERSITY,
    DEFAULT_SLOT_MARGIN,
)
from diversity_monitor.job import baseline
from diversity_monitor.job.contract import replay_settings_for
from diversity_monitor.recommender import data as recommender_data
from diversity_monitor.recommender import model as recommender_model
from diversity_monitor.setup import alarms, dashboard, deployment, schedule

ACCOUNT = "123456789012"
REGION = "eu-west-1"
ENDPOINT = "recommender-prod"
VARIANT = "AllTraffic"
SCHEDULE = "recommender-diversity-hourly"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/service-role/AmazonSageMaker-ExecutionRole"
MONITOR_IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/diversity-monitor:v3"
MODEL_IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/news-recommender:v1"
MODELS_BUCKET, CAPTURE_BUCKET, MONITOR_BUCKET = "recs-models", "recs-capture", "recs-monitor"
CAPTURE_URI = f"s3://{CAPTURE_BUCKET}/datacapture"
REPORTS_URI = f"s3://{MONITOR_BUCKET}/reports"
VALIDATION_URI = f"s3://{MONITOR_BUCKET}/validation/sessions-v9.jsonl"
CATALOG_URI = f"s3://{MONITOR_BUCKET}/catalog/catalog.csv"
PAGER_TOPIC, PAGER_QUEUE = "oncall-pager", "pagerduty-standin"
TRAFFIC_SLICE_SECONDS = 15 * 60  # live traffic is sent in slices of at most a quarter hour


@dataclass(frozen=True)
class ScenarioPlan:
    start: datetime = datetime(2027, 10, 31, 6, 0, tzinfo=timezone.utc)
    healthy_hours: int = 2  # scheduled runs before the bad deploy
    bad_hours: int = 2
    recovered_hours: int = 2
    live_requests_per_hour: int = 120
    sessions: int = 500
    defect: str = "popularity-scaling"  # the design notes' incident; `demo --incident` picks another
    seed: int = 7


@dataclass
class Event:
    at: datetime
    what: str
    detail: str = ""


@dataclass
class IncidentScenario:
    """One run of the story; `advance(seconds)` is the only thing the local stack provides."""

    workdir: Path
    advance: Callable[[float], datetime]
    now: Callable[[], datetime]
    plan: ScenarioPlan = field(default_factory=ScenarioPlan)
    poll_seconds: float = 0.5
    events: list[Event] = field(default_factory=list)
    alarm_names: list[str] = field(default_factory=list)
    topic_arn: str | None = None
    queue_url: str | None = None

    # --- clients (plain boto3; boto3's settings decide where they go) ---------------------------
    @property
    def sagemaker(self):
        return boto3.client("sagemaker")

    def note(self, what: str, detail: str = "") -> None:
        self.events.append(Event(self.now(), what, detail))

    # --- setup ----------------------------------------------------------------------------------
    def prepare_models(self) -> dict[str, str]:
        """Generate data, train the healthy model and the regressed one, upload the artifacts."""
        data_dir = self.workdir / "data"
        paths = recommender_data.generate(data_dir, seed=self.plan.seed)
        s3 = boto3.client("s3")
        for bucket in (MODELS_BUCKET, CAPTURE_BUCKET, MONITOR_BUCKET):
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        versions = {"v1": None, "v2": self.plan.defect}
        for version, defect in versions.items():
            self.register_model(version, defect)
        sessions = paths.validation_sessions.read_text().splitlines()[: self.plan.sessions]
        storage.write_bytes(VALIDATION_URI, ("\n".join(sessions) + "\n").encode())
        storage.write_bytes(CATALOG_URI, paths.catalog.read_bytes())
        self.live_traffic = recommender_data.live_requests(data_dir, 10_000, seed=self.plan.seed)
        return {version: f"{ENDPOINT}-{version}" for version in versions}

    def register_model(self, version: str, defect: str | None) -> str:
        """Train `version` (with `defect`, None = healthy), upload it, create its model and endpoint
        config (with capture); returns the endpoint config's name."""
        archive = recommender_model.train(self.workdir / "data", self.workdir / "models" / version, version, defect=defect)
        boto3.client("s3").upload_file(str(archive), MODELS_BUCKET, f"news-recommender/{version}/model.tar.gz")
        self.sagemaker.create_model(
            ModelName=f"news-recommender-{version}",
            PrimaryContainer={"Image": MODEL_IMAGE,
                              "ModelDataUrl": f"s3://{MODELS_BUCKET}/news-recommender/{version}/model.tar.gz"},
            ExecutionRoleArn=ROLE_ARN,
        )
        self.sagemaker.create_endpoint_config(
            EndpointConfigName=f"{ENDPOINT}-{version}",
            ProductionVariants=[{"VariantName": VARIANT, "ModelName": f"news-recommender-{version}",
                                 "InitialInstanceCount": 1, "InstanceType": "ml.m5.xlarge",
                                 "InitialVariantWeight": 1.0}],
            DataCaptureConfig=deployment.data_capture_config(CAPTURE_URI, 100),
        )
        return f"{ENDPOINT}-{version}"

    def deploy_initial(self) -> None:
        self.sagemaker.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=f"{ENDPOINT}-v1")
        deployment.wait_in_service(ENDPOINT, poll_seconds=self.poll_seconds)
        self.note("deploy", f"{ENDPOINT}-v1 (healthy model v1) with data capture")

    def build_baseline(self) -> dict:
        settings = replay_settings_for(VALIDATION_URI, CATALOG_URI)
        statistics, _, _ = baseline.build_baseline(ENDPOINT, settings, f"s3://{MONITOR_BUCKET}/baselines/v1",
                                                   mean_tolerance=DEFAULT_MEAN_TOLERANCE, slot_margin=DEFAULT_SLOT_MARGIN, progress=False,
                                                   context={"model_version": "v1"})
        self.note("baseline", "mean {mean:.2f}, min {min}, p5 {p5}".format(**statistics[CUSTOM_BLOCK]))
        return statistics

    @property
    def monitor_spec(self) -> schedule.MonitorSpec:
        return schedule.MonitorSpec(
            endpoint_name=ENDPOINT, schedule_name=SCHEDULE, image_uri=MONITOR_IMAGE, role_arn=ROLE_ARN,
            validation_set=VALIDATION_URI, catalog=CATALOG_URI, reports_s3_uri=REPORTS_URI,
            baseline_s3_uri=f"s3://{MONITOR_BUCKET}/baselines/v1", min_diversity=DEFAULT_MIN_DIVERSITY,
        )

    def create_schedule(self) -> None:
        schedule.apply_schedule(self.monitor_spec)
        spec = self.monitor_spec
        self.note("schedule", f"{SCHEDULE}: hourly, --min-diversity {spec.min_diversity:g}, --top-k {spec.top_k}, baseline v1")

    @property
    def page_alarm(self) -> str | None:
        """The composite alarm: the only one that notifies the pager."""
        return self.alarm_names[-1] if self.alarm_names else None

    def create_pager_and_alarms(self) -> None:
        """SNS topic with an SQS queue standing in for the pager, the alarms (a child alarm per signal,
        the composite that pages), and the dashboard."""
        self.topic_arn = alarms.ensure_topic(PAGER_TOPIC)
        sqs = boto3.client("sqs")
        self.queue_url = sqs.create_queue(QueueName=PAGER_QUEUE)["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        boto3.client("sns").subscribe(TopicArn=self.topic_arn, Protocol="sqs", Endpoint=queue_arn,
                                      Attributes={"RawMessageDelivery": "false"})
        self.alarm_names = alarms.apply_alarms(self.monitor_spec, self.topic_arn).names
        self.note("alarms", ", ".join(self.alarm_names))
        board = dashboard.apply_dashboard(self.monitor_spec, self.alarm_names)
        self.note("dashboard", f"{board.name}: {board.widgets} widgets")

    # --- time passing ---------------------------------------------------------------------------
    def send_live_traffic(self, count: int) -> None:
        runtime = boto3.client("sagemaker-runtime")
        offset = getattr(self, "_traffic_offset", 0)
        bodies = [self.live_traffic[(offset + i) % len(self.live_traffic)] for i in range(count)]
        self._traffic_offset = offset + count

        def invoke(body: dict) -> None:
            runtime.invoke_endpoint(EndpointName=ENDPOINT, Body=orjson.dumps(body),
                                    ContentType="application/json", Accept="application/json")

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(invoke, bodies))

    def live_for(self, seconds: float) -> None:
        """Users for `seconds` of simulated time: a slice of requests at the start of each quarter
        hour (so capture timestamps spread over the span), the clock advanced after each."""
        while seconds > 0:
            step = min(TRAFFIC_SLICE_SECONDS, seconds)
            self.send_live_traffic(max(1, round(self.plan.live_requests_per_hour * step / 3600)))
            self.advance(step)
            seconds -= step

    def live_hour(self) -> None:
        """An hour of users in four quarters."""
        self.live_for(3600)

    def live_until(self, minutes: int) -> None:
        """Users until the clock's next HH:<minutes> (`to_minutes_past`, with traffic)."""
        self.live_for(self._seconds_until(minutes))

    def deploy(self, config_name: str, what: str) -> None:
        deployment.deploy_config(ENDPOINT, config_name, poll_seconds=self.poll_seconds)
        self.note(what, config_name)

    def rollback(self) -> str:
        target = deployment.previous_config(deployment.deployments(ENDPOINT))
        if target is None:
            raise RuntimeError(f"{ENDPOINT} has no previous endpoint config to roll back to")
        self.deploy(target.config_name, "rollback")
        return target.config_name

    def to_minutes_past(self, minutes: int) -> None:
        """Move the clock to the next HH:<minutes>, without traffic."""
        self.advance(self._seconds_until(minutes))

    def _seconds_until(self, minutes: int) -> float:
        now = self.now()
        target = now.replace(minute=minutes, second=0, microsecond=0)
        if target <= now:
            target += timedelta(hours=1)
        return (target - now).total_seconds()

    @staticmethod
    def pager_line(message: dict) -> str:
        """A page as the demo and the drill print it: when, subject, and the child alarms that fired it."""
        fired = ", ".join(child["Arn"].rsplit(":", 1)[-1] for child in message.get("TriggeringChildren", []))
        return f"{message.get('StateChangeTime', '')}  {message.get('Subject')}" + (f"  <- {fired}" if fired else "")

    def pager_messages(self) -> list[dict]:
        sqs = boto3.client("sqs")
        messages = []
        while True:
            batch = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
            if not batch.get("Messages"):
                return messages
            for message in batch["Messages"]:
                envelope = json.loads(message["Body"])
                messages.append({"Subject": envelope.get("Subject"), **json.loads(envelope["Message"])})
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    # --- the story ------------------------------------------------------------------------------
    @property
    def step_count(self) -> int:
        """How many times `run` reports a step (what a progress display counts to)."""
        plan = self.plan
        # training, baseline, deploy, rollback, and one per scheduled run
        return 4 + plan.healthy_hours + plan.bad_hours + plan.recovered_hours

    @property
    def steps_until_page(self) -> int:
        """How many steps `run_until_page` reports (training, baseline, deploy, the runs until the page)."""
        return 3 + self.plan.healthy_hours + self.plan.bad_hours

    def run(self, on_step: Callable[[str], None] = lambda step: None) -> None:
        """The incident, hour by hour from `plan.start` (06:00 with the defaults):

        06:00-07:05 users on v1, the 07:00 run, then the alarms; healthy hours; HH:05-HH:30 users
        on v1, the regressed v2 deployed at HH:30, users on v2 until the next HH:05 (its HH:00 run
        sees both models' traffic and replays v2); bad hours; the rollback the same way; recovered
        hours; five more minutes for the last run's metric to reach the alarm.
        """
        self.run_until_page(on_step)
        self.run_after_page(on_step)

    def run_until_page(self, on_step: Callable[[str], None] = lambda step: None) -> None:
        """From the start to five minutes after the last bad run: the diversity alarm has paged
        (the moment `make drill` hands over to the on-call)."""
        plan = self.plan
        on_step("train models, deploy v1 with capture")
        self.prepare_models()
        self.deploy_initial()
        on_step("baseline from the validation set")
        self.build_baseline()
        self.create_schedule()
        # The alarms come once the first run has published: the monitor-health alarm treats
        # missing data as breaching (a heartbeat), so created over an empty window it pages at once.
        self.live_hour()
        self.live_for(5 * 60)
        self.create_pager_and_alarms()
        on_step(f"{self._run_hour()} run published; alarms created")
        for _ in range(plan.healthy_hours - 1):
            self.live_hour()
            on_step(f"{self._run_hour()} run: healthy")
        self.live_until(30)
        self.deploy(f"{ENDPOINT}-v2", "deploy")
        on_step(f"{self.now():%H:%M}: regressed model v2 deployed")
        self.live_until(5)  # the top of the hour fires the first run against v2
        on_step(f"{self._run_hour()} run: regressed")
        for _ in range(plan.bad_hours - 1):
            self.live_hour()
            on_step(f"{self._run_hour()} run: regressed")
        # Users until HH:05 came with the last bad run (`live_until(5)` / `live_hour`): its metric
        # has reached the alarm, which has paged.

    def run_after_page(self, on_step: Callable[[str], None] = lambda step: None) -> None:
        """The on-call's part as the demo plays it: the rollback at HH:30, then the recovered hours."""
        plan = self.plan
        self.live_until(30)
        target = self.rollback()
        on_step(f"{self.now():%H:%M}: rolled back to {target}")
        self.live_until(5)
        on_step(f"{self._run_hour()} run: recovered")
        for _ in range(plan.recovered_hours - 1):
            self.live_hour()
            on_step(f"{self._run_hour()} run: recovered")
        self.live_for(5 * 60)  # let the last run's metric reach the alarm

    def _run_hour(self) -> str:
        return f"{self.now():%H}:00"
