"""The diversity-alarm runbook's library: confirm, find the deploy, roll back, verify, record.

`runbooks/diversity_alarm.ipynb` calls these functions in order; everything is plain boto3 (and the
kit's replay), so the same calls work on AWS and on the local stack.

- `resolve_target`: the alarm (DescribeAlarms) and, from its dimensions, the endpoint and the
  monitoring schedule; the schedule's own definition gives the replay inputs, the floor, the
  baseline and where the reports are;
- `bad_streak`: the current run of hourly reports with violations, and the last good one before
  it. A failed run (no statistics) is neither: it says nothing about the endpoint;
- `deployment_view` / `find_suspect`: which endpoint config served which runs. Every report
  records the config that served its replay (`report_history.served_spans`), so the suspect is
  the config that served the first bad run when another one served the last good run; SageMaker
  keeps no deployment history and a config's creation time says nothing about when it served.
  Reports without that record fall back on DescribeEndpoint's LastModifiedTime (the last
  UpdateEndpoint), said as such;
- `plan_rollback`: the config that served the last good run; none when the live config itself
  had a clean run (the drop is not a deploy) or no clean run is in view. `roll_back` sends
  UpdateEndpoint only with `confirm=True` (checked against the UpdateEndpoint schema first,
  blue/green DeploymentConfig included) and only while the on-demand replay shows the collapse;
- `incident_summary` / `record`: JSON + markdown under
  `<reports>/<endpoint>/<schedule>/incidents/<time>.json|.md`, never overwriting, whenever the
  on-call ran with `confirm_rollback=True`; a dry run writes nothing.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

import boto3
from botocore.exceptions import ClientError

from diversity_monitor import storage
from diversity_monitor.aws import composite_rule, service_schema
from diversity_monitor.aws.session import SetupError, require_endpoint
from diversity_monitor.clock import as_utc, iso_z, utcnow
from diversity_monitor.conventions import (
    CUSTOM_BLOCK,
    DIVERSITY_ALARM_RUNBOOK,
    INCIDENTS_FOLDER,
    reports_uri_of,
    schedule_reports_prefix,
)
from diversity_monitor.job import analysis, baseline, contract
from diversity_monitor.job.contract import ReplaySettings
from diversity_monitor.job.model_monitor_files import Violation, constraint_bounds
from diversity_monitor.job.past_reports import FAILED, OK, VIOLATIONS_FOUND, HourReport, load_reports
from diversity_monitor.oncall.report_history import AlarmChange, ConfigChange, ServedSpan, config_changes, served_spans
from diversity_monitor.oncall.report_history import alarm_history as _alarm_history
from diversity_monitor.setup import deployment
from diversity_monitor.setup.alarms import alarm_names
from diversity_monitor.setup.deployment import Deployment


class IncidentError(SetupError):
    """The runbook cannot go on; the message says what is missing and where to look (no traceback shown)."""


# --- the alarm and what it watches --------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    alarm_name: str | None
    alarm: dict | None  # DescribeAlarms MetricAlarm, None when the alarm does not exist
    endpoint_name: str
    schedule_name: str
    schedule: dict  # DescribeMonitoringSchedule
    reports_s3_uri: str

    @property
    def job_definition(self) -> dict:
        return self.schedule["MonitoringScheduleConfig"]["MonitoringJobDefinition"]


def resolve_target(alarm_name: str | None = None, endpoint_name: str | None = None, schedule_name: str | None = None,
                   reports_s3_uri: str | None = None) -> Target:
    """The alarm, the endpoint and the schedule, from whichever of them the on-call knows."""
    if not alarm_name and not endpoint_name:
        raise IncidentError("give alarm_name (from the page) or endpoint_name")
    if alarm_name:  # the page comes from the composite alarm: the runbook works from the child that fired
        alarm_name = child_of_page(alarm_name) or alarm_name
    sagemaker = boto3.client("sagemaker")
    alarm = _describe_alarm(alarm_name) if alarm_name else None
    if alarm_name and alarm is None and not endpoint_name:
        raise IncidentError(f"alarm {alarm_name!r} does not exist in this account/region "
                            f"({boto3.session.Session().region_name}); check the page's region, or give endpoint_name")
    dimensions = {d["Name"]: d["Value"] for d in (alarm or {}).get("Dimensions", [])}
    if endpoint_name and dimensions.get("Endpoint") not in (None, endpoint_name):
        raise IncidentError(f"alarm {alarm_name!r} watches endpoint {dimensions['Endpoint']!r}, not {endpoint_name!r}")
    endpoint_name = endpoint_name or dimensions.get("Endpoint")
    if not endpoint_name:
        raise IncidentError(f"alarm {alarm_name!r} has no Endpoint dimension; give endpoint_name")
    require_endpoint(endpoint_name)
    schedule_name = schedule_name or dimensions.get("MonitoringSchedule") or _only_schedule(sagemaker, endpoint_name)
    schedule = sagemaker.describe_monitoring_schedule(MonitoringScheduleName=schedule_name)
    definition = schedule["MonitoringScheduleConfig"]["MonitoringJobDefinition"]
    if alarm is None and not alarm_name:
        # Only the endpoint is known: the alarm is the one the set-up names for it.
        alarm_name = alarm_names(endpoint_name)["diversity"]
        alarm = _describe_alarm(alarm_name)
    reports_s3_uri = reports_s3_uri or reports_uri_of(definition)
    return Target(alarm_name if alarm else None, alarm, endpoint_name, schedule_name, schedule, reports_s3_uri)


def child_of_page(alarm_name: str) -> str | None:
    """When `alarm_name` is a composite alarm (the one that pages), the child alarm that fired it:
    the first of its StateReasonData's triggeringAlarms, else the first child in ALARM, else its
    first child. None when `alarm_name` is not a composite alarm."""
    found = boto3.client("cloudwatch").describe_alarms(
        AlarmNames=[alarm_name], AlarmTypes=["CompositeAlarm"]).get("CompositeAlarms", [])
    if not found:
        return None
    composite = found[0]
    try:
        triggering = json.loads(composite.get("StateReasonData") or "{}").get("triggeringAlarms", [])
    except ValueError:
        triggering = []
    if triggering:
        return composite_rule.alarm_name(triggering[0]["arn"])
    children = composite_rule.children(composite_rule.parse(composite["AlarmRule"]))
    states = {a["AlarmName"]: a["StateValue"] for a in boto3.client("cloudwatch").describe_alarms(
        AlarmNames=children[:100]).get("MetricAlarms", [])}
    firing = [name for name in children if states.get(name) == "ALARM"]
    return (firing or children or [None])[0]


def _describe_alarm(alarm_name: str) -> dict | None:
    alarms = boto3.client("cloudwatch").describe_alarms(AlarmNames=[alarm_name], AlarmTypes=["MetricAlarm"])["MetricAlarms"]
    return alarms[0] if alarms else None


def _only_schedule(sagemaker, endpoint_name: str) -> str:
    names = [s["MonitoringScheduleName"] for s in sagemaker.list_monitoring_schedules(
        EndpointName=endpoint_name, MaxResults=100)["MonitoringScheduleSummaries"]]
    if len(names) != 1:
        raise IncidentError(f"endpoint {endpoint_name!r} has {len(names)} monitoring schedules ({names}); give schedule_name")
    return names[0]


def _schedule_arguments(schedule_name: str, definition: dict):
    arguments = list(definition["MonitoringAppSpecification"].get("ContainerArguments", []))
    try:
        return contract.run_argument_parser().parse_args(arguments)
    except contract.ContractError as error:
        raise IncidentError(f"schedule {schedule_name}: {error}") from None


def alarm_markdown(target: Target) -> str:
    if target.alarm is None:
        return (f"**No diversity alarm found for `{target.endpoint_name}`**: going on with the schedule "
                f"`{target.schedule_name}` and its reports.")
    alarm = target.alarm
    state = alarm["StateValue"]
    headline = {"ALARM": "**CONFIRMED: the alarm is in ALARM.**",
                "OK": "**The alarm is OK now**: it may have recovered on its own; the history below says when."}.get(
        state, f"**The alarm is {state}.**")
    return "\n".join([
        headline,
        f"- Alarm `{alarm['AlarmName']}`: {alarm['MetricName']} {alarm['ComparisonOperator']} {alarm['Threshold']:g} "
        f"({alarm.get('DatapointsToAlarm', alarm['EvaluationPeriods'])} of {alarm['EvaluationPeriods']} periods of "
        f"{alarm['Period'] // 60} min)",
        f"- State {state} since {iso_z(alarm['StateUpdatedTimestamp'])}: {alarm.get('StateReason', '')}",
        f"- Endpoint `{target.endpoint_name}`, monitoring schedule `{target.schedule_name}`, reports under "
        f"`{target.reports_s3_uri}`",
    ])


def alarm_history(target: Target) -> list[AlarmChange]:
    """State changes of the target's alarm, oldest first (none when there is no alarm)."""
    return _alarm_history(target.alarm_name) if target.alarm_name else []


def fired_at(history: list[AlarmChange]) -> datetime | None:
    """When the alarm last went into ALARM."""
    fired = [change.time for change in history if change.new == "ALARM"]
    return fired[-1] if fired else None


# --- the schedule's own settings: replay inputs, floor, baseline -------------------------------

@dataclass(frozen=True)
class MonitorSettings:
    replay: ReplaySettings
    min_diversity: float
    min_success_rate: float
    baseline_constraints: str | None  # s3:// URI from the schedule's BaselineConfig


def monitor_settings(target: Target, validation_set: str | None = None, catalog: str | None = None) -> MonitorSettings:
    """What the scheduled runs use (their ContainerArguments), so the on-demand replay matches them."""
    definition = target.job_definition
    args = _schedule_arguments(target.schedule_name, definition)
    settings = contract.replay_settings(args)
    overrides = {name: value for name, value in (("validation_set", validation_set), ("catalog", catalog)) if value}
    constraints = ((definition.get("BaselineConfig") or {}).get("ConstraintsResource") or {}).get("S3Uri")
    return MonitorSettings(dataclasses.replace(settings, **overrides), args.min_diversity, args.min_success_rate,
                           constraints)


# --- the last hours' reports -------------------------------------------------------------------

def recent_reports(target: Target, lookback_hours: int, now: datetime | None = None) -> list[HourReport]:
    end = now or utcnow()
    return load_reports(target.reports_s3_uri, target.endpoint_name, target.schedule_name,
                        end - timedelta(hours=lookback_hours), end)


@dataclass(frozen=True)
class Streak:
    """The current run of bad hours (failed runs inside it skipped), and the last good run before it."""

    first_bad: HourReport | None
    last_bad: HourReport | None
    last_good: HourReport | None
    bad_hours: tuple[HourReport, ...] = ()
    failed_hours: tuple[HourReport, ...] = ()


def bad_streak(reports: list[HourReport]) -> Streak:
    bad: list[HourReport] = []
    failed: list[HourReport] = []
    last_good = None
    for hour_report in sorted(reports, key=lambda r: r.hour, reverse=True):
        if hour_report.status == FAILED:
            failed.insert(0, hour_report)
        elif hour_report.status == VIOLATIONS_FOUND and last_good is None:
            bad.insert(0, hour_report)
        elif hour_report.status == OK:
            last_good = hour_report
            break
    if not bad:
        return Streak(None, None, last_good)
    return Streak(bad[0], bad[-1], last_good, tuple(bad), tuple(r for r in failed if r.hour > bad[0].hour))


# --- deployments: which config served which runs ------------------------------------------------

@dataclass(frozen=True)
class Suspect:
    config: str
    models: tuple[str, ...]
    went_live: datetime | None
    evidence: str
    first_bad_hour: datetime
    last_good_hour: datetime | None
    when: str | None = None  # "at T" or "between T1 and T2", as exactly as the evidence allows


@dataclass(frozen=True)
class DeploymentView:
    endpoint: dict  # DescribeEndpoint, times in UTC
    live: Deployment
    spans: list[ServedSpan]
    changes: list[ConfigChange]
    suspect: Suspect | None
    finding: str  # markdown: the suspect, or why there is none

    def served(self, config_name: str) -> list[ServedSpan]:
        return [span for span in self.spans if span.config == config_name]


def deployment_view(target: Target, reports: list[HourReport], streak: Streak) -> DeploymentView:
    sagemaker = boto3.client("sagemaker")
    described = sagemaker.describe_endpoint(EndpointName=target.endpoint_name)
    endpoint = {**described, "CreationTime": as_utc(described["CreationTime"]),
                "LastModifiedTime": as_utc(described["LastModifiedTime"])}
    live = deployment.describe_config(endpoint["EndpointConfigName"], endpoint["EndpointConfigName"], sagemaker)
    changes = config_changes(reports, endpoint)
    suspect, finding = find_suspect(streak, changes, endpoint, live)
    return DeploymentView(endpoint, live, served_spans(reports), changes, suspect, finding)


def find_suspect(streak: Streak, changes: list[ConfigChange], endpoint: dict, live: Deployment) -> tuple[Suspect | None, str]:
    """The config that served the first bad run, if another one served the last good run."""
    if streak.first_bad is None:
        return None, "**No bad hour in the reports looked at**: the latest runs have no violations."
    first_bad, last_good = streak.first_bad, streak.last_good
    if last_good is None:
        return None, (f"**No good run in the reports looked at** (the first bad run is {iso_z(first_bad.hour)} or "
                      "earlier): raise `lookback_hours` to find the last healthy hour before naming a deploy.")
    bad_config, good_config = first_bad.serving_config, last_good.serving_config
    if bad_config and good_config:
        if bad_config == good_config:
            return None, (f"**No deployment lines up with the drop**: `{good_config}` served the last good run "
                          f"({iso_z(last_good.hour)}) and the first bad one ({iso_z(first_bad.hour)}). The cause is "
                          "probably not a deploy (catalog, upstream features, traffic). Do not roll back blindly; open "
                          "notebooks/04_investigate_regression.ipynb.")
        change = next((c for c in changes if c.after.first is first_bad), None)
        models = tuple((first_bad.serving.get("models") or {}).values())
        suspect = Suspect(bad_config, models, change.at if change else None,
                          change.evidence if change else "the reports record the config of each run",
                          first_bad.hour, last_good.hour, change.when if change else None)
    else:
        # Reports without a serving record: only the last UpdateEndpoint's time is known for sure.
        modified = endpoint["LastModifiedTime"]
        if not last_good.measured_at < modified <= first_bad.measured_at:
            return None, (f"**Cannot tell which deploy lines up**: the reports do not record the serving config, and "
                          f"the last UpdateEndpoint ({iso_z(modified)}) is not between the last good run "
                          f"({iso_z(last_good.hour)}) and the first bad one ({iso_z(first_bad.hour)}).")
        suspect = Suspect(live.config_name, live.models, modified,
                          "ESTIMATED from DescribeEndpoint LastModifiedTime (the reports do not record the serving "
                          "config)", first_bad.hour, last_good.hour)
    went_live = f"went live {suspect.when or 'at ' + iso_z(suspect.went_live)}, " if suspect.went_live else ""
    return suspect, (f"**SUSPECT: `{suspect.config}` ({', '.join(suspect.models)})** {went_live}after the replay of "
                     f"the last good run ({iso_z(last_good.hour)}) and before the replay of the first bad run "
                     f"({iso_z(first_bad.hour)}) ({suspect.evidence}).")


def deployments_frame(view: DeploymentView):
    """The configs that served the runs looked at, oldest first, and the live one."""
    import pandas as pd

    rows = [{
        "config": span.config or "(not recorded)",
        "models": ", ".join(span.models.values()),
        "first run": span.first.hour,
        "last run": span.last.hour,
        "runs": span.runs,
        "live now": "yes, since " + iso_z(view.endpoint["LastModifiedTime"]) if span.config == view.live.config_name else "",
        "suspect": "<-- lines up with the drop" if view.suspect and span.config == view.suspect.config
                   and span.first.hour == view.suspect.first_bad_hour else "",
    } for span in view.spans]
    if not view.served(view.live.config_name):
        rows.append({"config": view.live.config_name, "models": ", ".join(view.live.models), "first run": None,
                     "last run": None, "runs": 0, "live now": "yes, since " + iso_z(view.endpoint["LastModifiedTime"]),
                     "suspect": ""})
    return pd.DataFrame(rows, columns=["config", "models", "first run", "last run", "runs", "live now", "suspect"])


# --- the on-demand replay ------------------------------------------------------------------------

@dataclass(frozen=True)
class ReplayCheck:
    label: str
    statistics: dict
    violations: tuple[Violation, ...]
    measured_at: datetime

    @property
    def healthy(self) -> bool:
        return not self.violations

    @property
    def figures(self) -> dict:
        block = self.statistics[CUSTOM_BLOCK]
        return {key: block.get(key) for key in ("mean", "min", "p5", "max", "max_slot_concentration",
                                                 "success_rate", "sessions_succeeded", "sessions_attempted")}


def replay_check(target: Target, settings: MonitorSettings, label: str, progress: bool = False) -> ReplayCheck:
    """Replay the validation set against the live endpoint now and judge it as a scheduled run would."""
    constraints = None
    if settings.baseline_constraints:
        constraints = baseline.load_json_document(settings.baseline_constraints, "baseline_constraints")
        constraint_bounds(constraints, settings.replay.top_k, f"baseline_constraints {settings.baseline_constraints}")
    evaluation = analysis.evaluate(
        target.endpoint_name, settings.replay, f"runbook-{label}-{utcnow():%H%M%S}",
        min_diversity=settings.min_diversity, min_success_rate=settings.min_success_rate, constraints=constraints,
        constraints_source=f"baseline_constraints {settings.baseline_constraints}",
        context={"endpoint": target.endpoint_name, "runbook_check": label}, progress=progress)
    return ReplayCheck(label, evaluation.statistics, tuple(evaluation.violations), evaluation.measurement.measured_at)


def replay_markdown(result: ReplayCheck, expect: str) -> str:
    """`expect` is "collapse" (before a rollback) or "recovery" (after it)."""
    f = result.figures
    figures = (f"mean {f['mean']:.2f}, p5 {f['p5']}, max slot share {f['max_slot_concentration']:.2f}, "
               f"{f['sessions_succeeded']}/{f['sessions_attempted']} sessions replayed" if f["mean"] is not None
               else f"{f['sessions_succeeded']}/{f['sessions_attempted']} sessions replayed")
    problems = "".join(f"\n- {v.description}" for v in result.violations)
    if expect == "collapse":
        head = ("**COLLAPSE STILL LIVE**" if not result.healthy else
                "**NOT REPRODUCED: the endpoint replays healthy now**; a rollback is not needed")
    else:
        head = "**RECOVERED**" if result.healthy else "**NOT RECOVERED**: escalate (see runbooks/README.md)"
    return f"{head} ({result.label}, {iso_z(result.measured_at)}): {figures}.{problems}"


# --- the rollback --------------------------------------------------------------------------------

@dataclass(frozen=True)
class RollbackPlan:
    endpoint_name: str
    from_deployment: Deployment
    to_deployment: Deployment | None  # None: no rollback target
    reason: str
    deployment_config: dict | None = None
    estimated: bool = False  # the target is a guess (no report records what served the last good run)

    @property
    def request(self) -> dict:
        request = {"EndpointName": self.endpoint_name, "EndpointConfigName": self.to_deployment.config_name}
        if self.deployment_config:
            request["DeploymentConfig"] = self.deployment_config
        return request

    def cli(self) -> str:
        command = (f"aws sagemaker update-endpoint --endpoint-name {self.endpoint_name} "
                   f"--endpoint-config-name {self.to_deployment.config_name}")
        if self.deployment_config:
            command += f" --deployment-config '{json.dumps(self.deployment_config, separators=(',', ':'))}'"
        return command


def plan_rollback(target: Target, view: DeploymentView, streak: Streak, rollback_to: str | None = None,
                  deployment_config: dict | None = None) -> RollbackPlan:
    """Target: `rollback_to` if given; else the config that served the last good run."""
    live, name = view.live, target.endpoint_name
    if deployment_config:
        validate_update_request({"EndpointName": name, "EndpointConfigName": live.config_name,
                                 "DeploymentConfig": deployment_config})

    def plan(to: Deployment | None, reason: str, estimated: bool = False) -> RollbackPlan:
        return RollbackPlan(name, live, to, reason, deployment_config, estimated)

    if rollback_to:
        return plan(_config(rollback_to, live), "named by the on-call (rollback_to)")
    last_good = streak.last_good
    if last_good is None:
        return plan(None, "no run without violations in the reports looked at: raise lookback_hours, or name a "
                          "config with rollback_to")
    good_config = last_good.serving_config
    if good_config == live.config_name:
        return plan(None, f"the live config {live.config_name} itself served the last good run "
                          f"({iso_z(last_good.hour)}), so the drop is not from a deploy; investigate "
                          "(notebooks/04_investigate_regression.ipynb) or name a config with rollback_to")
    if good_config:
        return plan(_config(good_config, live), f"it served the last run with no violations ({iso_z(last_good.hour)})")
    previous = deployment.previous_config(deployment.deployments(name))
    if previous is None:
        return plan(None, f"no report records the config of the last good run and {name} has no earlier config; "
                          "name one with rollback_to")
    return plan(previous, "ESTIMATED: the config created before the live one (no report records which config served "
                          f"the last good run at {iso_z(last_good.hour)}); check it before confirming", estimated=True)


def _config(config_name: str, live: Deployment) -> Deployment:
    try:
        return deployment.describe_config(config_name, live.config_name)
    except ClientError as error:
        raise IncidentError(f"endpoint config {config_name!r} cannot be described: "
                            f"{error.response.get('Error', {}).get('Message', error)}") from None


def validate_update_request(request: dict) -> dict:
    """UpdateEndpoint's whole schema: a bad DeploymentConfig fails here, before anything changes."""
    try:
        return service_schema.validate_request("sagemaker", "UpdateEndpoint", request)
    except service_schema.RequestInvalid as error:
        raise IncidentError(f"not a valid UpdateEndpoint request (check deployment_config): {error}") from None


def plan_markdown(plan: RollbackPlan) -> str:
    if plan.to_deployment is None:
        return f"**NO ROLLBACK TARGET**: {plan.reason}."
    current = plan.from_deployment
    mode = "blue/green (DeploymentConfig given)" if plan.deployment_config else "default update (new fleet, then switch)"
    return "\n".join([
        f"**Rollback plan**: `{plan.endpoint_name}` from `{current.config_name}` ({', '.join(current.models)}) "
        f"to `{plan.to_deployment.config_name}` ({', '.join(plan.to_deployment.models)}), {mode}.",
        f"- Why this target: {plan.reason}.",
        f"- The same by hand: `{plan.cli()}`",
    ])


@dataclass(frozen=True)
class RollbackOutcome:
    performed: bool
    message: str
    requested_at: datetime | None = None
    completed_at: datetime | None = None
    endpoint_config: str | None = None


def roll_back(plan: RollbackPlan, *, confirm: bool, collapse_live: bool, poll_seconds: float = 30) -> RollbackOutcome:
    """UpdateEndpoint to the plan's target and wait for InService; nothing at all unless `confirm`."""
    if plan.to_deployment is None:
        return RollbackOutcome(False, f"NO ROLLBACK: {plan.reason}.")
    if plan.to_deployment.live:
        return RollbackOutcome(False, f"NO ROLLBACK: {plan.endpoint_name} already serves {plan.to_deployment.config_name}.")
    if not collapse_live:
        return RollbackOutcome(False, "NO ROLLBACK: the on-demand replay is healthy, so the collapse is not live; "
                                      f"if you still want it: {plan.cli()}")
    if not confirm:
        return RollbackOutcome(False, f"DRY RUN: nothing changed. This would run UpdateEndpoint {plan.endpoint_name} -> "
                                      f"{plan.to_deployment.config_name} (from {plan.from_deployment.config_name}). "
                                      "Re-run with confirm_rollback=True to roll back.")
    validate_update_request(plan.request)
    requested = utcnow()
    described = deployment.deploy_config(plan.endpoint_name, plan.to_deployment.config_name,
                                         deployment_config=plan.deployment_config, poll_seconds=poll_seconds)
    if described["EndpointConfigName"] != plan.to_deployment.config_name:
        raise IncidentError(f"UpdateEndpoint finished but {plan.endpoint_name} serves {described['EndpointConfigName']}: "
                            f"{described.get('FailureReason', 'no FailureReason')}; the rollout failed, escalate")
    return RollbackOutcome(True, f"ROLLED BACK: {plan.endpoint_name} now serves {plan.to_deployment.config_name} "
                                 f"({described['EndpointStatus']}).", requested, utcnow(), described["EndpointConfigName"])


def verify_recovery(target: Target, settings: MonitorSettings, outcome: RollbackOutcome) -> ReplayCheck | None:
    """After a rollback, the same replay again; None when nothing was rolled back."""
    return replay_check(target, settings, "after-rollback") if outcome.performed else None


# --- the incident summary ------------------------------------------------------------------------

@dataclass
class IncidentSummary:
    endpoint: str
    schedule: str
    alarm: str | None
    alarm_state: str | None
    alarm_fired_at: str | None
    first_bad_run: str | None
    last_good_run: str | None
    bad_runs: list[dict]
    failed_runs: list[str]
    suspect: dict | None
    finding: str
    rollback: dict
    replay_before: dict | None
    replay_after: dict | None
    reports: list[str]
    written_at: str
    runbook: str = DIVERSITY_ALARM_RUNBOOK
    recovered: bool | None = None
    notes: list[str] = field(default_factory=list)


def _deployment_dict(d: Deployment | None) -> dict | None:
    return {"config": d.config_name, "models": list(d.models)} if d else None


def _replay_dict(result: ReplayCheck | None) -> dict | None:
    if result is None:
        return None
    return {"at": iso_z(result.measured_at), **result.figures, "violations": [v.description for v in result.violations]}


def incident_summary(target: Target, history: list[AlarmChange], streak: Streak, view: DeploymentView,
                     plan: RollbackPlan, outcome: RollbackOutcome, before: ReplayCheck | None,
                     after: ReplayCheck | None) -> IncidentSummary:
    fired = fired_at(history)
    suspect = view.suspect
    return IncidentSummary(
        endpoint=target.endpoint_name,
        schedule=target.schedule_name,
        alarm=target.alarm_name,
        alarm_state=target.alarm["StateValue"] if target.alarm else None,
        alarm_fired_at=iso_z(fired) if fired else None,
        first_bad_run=iso_z(streak.first_bad.hour) if streak.first_bad else None,
        last_good_run=iso_z(streak.last_good.hour) if streak.last_good else None,
        bad_runs=[{"hour": iso_z(r.hour), "mean": r.figures.get("mean"), "p5": r.figures.get("p5"),
                   "served_by": r.serving_config, "violations": [v.get("description") for v in r.violations]}
                  for r in streak.bad_hours],
        failed_runs=[iso_z(r.hour) for r in streak.failed_hours],
        suspect=({"config": suspect.config, "models": list(suspect.models),
                  "live_from": iso_z(suspect.went_live) if suspect.went_live else None,
                  "evidence": suspect.evidence} if suspect else None),
        finding=view.finding,
        rollback={"performed": outcome.performed, "message": outcome.message,
                  "from": _deployment_dict(plan.from_deployment), "to": _deployment_dict(plan.to_deployment),
                  "reason": plan.reason, "estimated": plan.estimated, "deployment_config": plan.deployment_config,
                  "requested_at": iso_z(outcome.requested_at) if outcome.requested_at else None,
                  "completed_at": iso_z(outcome.completed_at) if outcome.completed_at else None},
        replay_before=_replay_dict(before),
        replay_after=_replay_dict(after),
        reports=[r.file("report.ipynb") or f"{r.prefix}/" for r in streak.bad_hours],
        written_at=iso_z(utcnow()),
        recovered=after.healthy if after else None,
    )


def summary_markdown(summary: IncidentSummary) -> str:
    def figures(block: dict | None) -> str:
        if not block:
            return "not run"
        mean = f"{block['mean']:.2f}" if block.get("mean") is not None else "n/a"
        return f"mean {mean}, p5 {block.get('p5')}, max slot share {block.get('max_slot_concentration')} at {block['at']}"

    rollback = summary.rollback
    suspect = summary.suspect
    lines = [
        f"# Incident: diversity on `{summary.endpoint}`",
        f"- Alarm `{summary.alarm}`: {summary.alarm_state}, fired at {summary.alarm_fired_at or 'n/a'}",
        f"- Last good run {summary.last_good_run or 'n/a'}; first bad run {summary.first_bad_run or 'n/a'}; "
        f"{len(summary.bad_runs)} bad run(s): "
        + ", ".join(f"{r['hour']} (mean {r['mean']:.2f})" if r["mean"] is not None else r["hour"] for r in summary.bad_runs)
        + (f"; failed runs in between: {', '.join(summary.failed_runs)}" if summary.failed_runs else ""),
        "- Suspect deployment: " + (f"{suspect['config']} ({', '.join(suspect['models'])}), live from "
                                     f"{suspect['live_from'] or 'n/a'} ({suspect['evidence']})" if suspect else "none found"),
        f"- Rollback: {rollback['message']}",
    ]
    if rollback["performed"]:
        lines.append(f"  - {rollback['from']['config']} -> {rollback['to']['config']}, requested {rollback['requested_at']}, "
                     f"in service {rollback['completed_at']} ({rollback['reason']})")
    lines += [
        f"- Replay before: {figures(summary.replay_before)}",
        f"- Replay after: {figures(summary.replay_after)}",
        f"- Recovered: {summary.recovered if summary.recovered is not None else 'not verified'}",
        "- Bad runs' reports: " + (", ".join(f"`{uri}`" for uri in summary.reports) or "none"),
        f"- Prepared {summary.written_at} by `{summary.runbook}`. The alarm returns to OK after two clean hourly runs.",
    ]
    return "\n".join(lines)


def incidents_prefix(target: Target) -> str:
    return storage.join(schedule_reports_prefix(target.reports_s3_uri, target.endpoint_name, target.schedule_name),
                        INCIDENTS_FOLDER)


def write_summary(summary: IncidentSummary, target: Target) -> tuple[str, str]:
    """`<reports>/<endpoint>/<schedule>/incidents/<time>.json|.md`; an existing record is never replaced."""
    base = storage.join(incidents_prefix(target), summary.written_at.replace(":", "").replace("-", ""))
    for attempt in range(100):
        stem = base if attempt == 0 else f"{base}-{attempt + 1}"
        try:
            storage.write_bytes(f"{stem}.json", json.dumps(asdict(summary), indent=2, default=str).encode() + b"\n",
                                overwrite=False)
        except storage.StorageError as error:
            if "already exists" in str(error):
                continue
            raise
        storage.write_bytes(f"{stem}.md", summary_markdown(summary).encode() + b"\n", overwrite=False)
        return f"{stem}.json", f"{stem}.md"
    raise IncidentError(f"100 incident records at {base}*: clean up {incidents_prefix(target)}")


def record(summary: IncidentSummary, target: Target, *, confirm: bool) -> str:
    """Write the summary when the on-call ran for real (confirm_rollback=True); a dry run leaves no trace."""
    if not confirm:
        return "Summary NOT written: dry run (confirm_rollback=False) changes nothing."
    json_uri, md_uri = write_summary(summary, target)
    return f"Summary written: {json_uri} and {md_uri}"
