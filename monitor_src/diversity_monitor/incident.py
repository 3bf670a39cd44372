"""The diversity-alarm runbook's library: confirm, find the deploy, roll back, verify, record.

`runbooks/diversity_alarm.ipynb` calls these functions in order; everything is plain boto3 (and the
kit's replay), so the same calls work on AWS and on the local stack.

- `resolve_target`: the alarm (DescribeAlarms) and, from its dimensions, the endpoint and the
  monitoring schedule; the schedule's own definition gives the replay inputs, the floor, the
  baseline and where the reports are;
- `live_periods`: when each endpoint config served. SageMaker keeps no history of an endpoint's
  configs, so: the live config since DescribeEndpoint's LastModifiedTime (exact: the last
  UpdateEndpoint), earlier configs (the kit names them `<endpoint>-...`, see deployment.py) from
  their creation time up to the next one. CloudTrail's UpdateEndpoint events are the exact record;
- `find_suspect`: the deployment that went live between the last good run and the first bad run
  of the current bad streak (a run at HH:00 measures the endpoint at HH:00);
- `plan_rollback`: the config live during the last run with no violations, else
  `deployment.previous_config`; `roll_back` sends UpdateEndpoint only with `confirm=True`
  (validated against botocore's UpdateEndpoint input shape first, blue/green DeploymentConfig
  included) and only while the on-demand replay still shows the collapse;
- `incident_summary` / `write_summary`: JSON + markdown under
  `<reports>/<endpoint>/<schedule>/incidents/<time>.json|.md`, never overwriting.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

import boto3
import pandas as pd
from botocore.exceptions import ParamValidationError
from botocore.validate import validate_parameters

from diversity_monitor import contract, deployment, job, storage
from diversity_monitor.clock import iso_z, utcnow
from diversity_monitor.contract import ReplaySettings
from diversity_monitor.deployment import Deployment
from diversity_monitor.model_monitor_files import Violation, check, statistics_document
from diversity_monitor.report_history import HourReport, load_reports

RUNBOOK = "runbooks/diversity_alarm.ipynb"
INCIDENTS_FOLDER = "incidents"


class IncidentError(RuntimeError):
    """The runbook cannot go on; the message says what is missing and where to look."""


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


def default_alarm_name(endpoint_name: str, min_diversity: float = 4.0) -> str:
    """The name monitoring_setup gives the diversity alarm."""
    return f"{endpoint_name}-diversity-below-{min_diversity:g}"


def resolve_target(alarm_name: str | None = None, endpoint_name: str | None = None, schedule_name: str | None = None,
                   reports_s3_uri: str | None = None, min_diversity: float = 4.0) -> Target:
    """The alarm, the endpoint and the schedule, from whichever of them the on-call knows."""
    if not alarm_name and not endpoint_name:
        raise IncidentError("give alarm_name (from the page) or endpoint_name")
    cloudwatch, sagemaker = boto3.client("cloudwatch"), boto3.client("sagemaker")
    alarm_name = alarm_name or default_alarm_name(endpoint_name, min_diversity)
    alarms = cloudwatch.describe_alarms(AlarmNames=[alarm_name], AlarmTypes=["MetricAlarm"])["MetricAlarms"]
    alarm = alarms[0] if alarms else None
    dimensions = {d["Name"]: d["Value"] for d in (alarm or {}).get("Dimensions", [])}
    if alarm is None and not endpoint_name:
        raise IncidentError(f"alarm {alarm_name!r} does not exist in this account/region "
                            f"({boto3.session.Session().region_name}); check the page's region, or give endpoint_name")
    if endpoint_name and dimensions.get("Endpoint") not in (None, endpoint_name):
        raise IncidentError(f"alarm {alarm_name!r} watches endpoint {dimensions['Endpoint']!r}, not {endpoint_name!r}")
    endpoint_name = endpoint_name or dimensions.get("Endpoint")
    if not endpoint_name:
        raise IncidentError(f"alarm {alarm_name!r} has no Endpoint dimension; give endpoint_name")
    schedule_name = schedule_name or dimensions.get("MonitoringSchedule") or _only_schedule(sagemaker, endpoint_name)
    schedule = sagemaker.describe_monitoring_schedule(MonitoringScheduleName=schedule_name)
    definition = schedule["MonitoringScheduleConfig"]["MonitoringJobDefinition"]
    reports_s3_uri = reports_s3_uri or definition["MonitoringOutputConfig"]["MonitoringOutputs"][0]["S3Output"]["S3Uri"]
    return Target(alarm_name if alarm else None, alarm, endpoint_name, schedule_name, schedule, reports_s3_uri)


def _only_schedule(sagemaker, endpoint_name: str) -> str:
    names = [s["MonitoringScheduleName"] for s in sagemaker.list_monitoring_schedules(
        EndpointName=endpoint_name, MaxResults=100)["MonitoringScheduleSummaries"]]
    if len(names) != 1:
        raise IncidentError(f"endpoint {endpoint_name!r} has {len(names)} monitoring schedules ({names}); give schedule_name")
    return names[0]


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


def alarm_history(alarm_name: str | None) -> pd.DataFrame:
    """State changes, oldest first (DescribeAlarmHistory keeps two weeks)."""
    columns = ["time", "from", "to", "reason"]
    if not alarm_name:
        return pd.DataFrame(columns=columns)
    rows = []
    paginator = boto3.client("cloudwatch").get_paginator("describe_alarm_history")
    for page in paginator.paginate(AlarmName=alarm_name, HistoryItemType="StateUpdate", ScanBy="TimestampAscending"):
        for item in page["AlarmHistoryItems"]:
            data = json.loads(item["HistoryData"])
            rows.append({"time": item["Timestamp"], "from": data["oldState"]["stateValue"],
                         "to": data["newState"]["stateValue"], "reason": data["newState"].get("stateReason", "")})
    return pd.DataFrame(rows, columns=columns)


def fired_at(history: pd.DataFrame) -> datetime | None:
    """When the alarm last went into ALARM."""
    fired = history[history["to"] == "ALARM"]
    return fired["time"].iloc[-1].to_pydatetime() if len(fired) else None


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
    arguments = list(definition["MonitoringAppSpecification"].get("ContainerArguments", []))
    try:
        args = contract.run_argument_parser().parse_args(arguments)
    except contract.ContractError as error:
        raise IncidentError(f"schedule {target.schedule_name}: {error}") from None
    settings = contract.replay_settings(args)
    if validation_set or catalog:
        settings = ReplaySettings(validation_set or settings.validation_set, catalog or settings.catalog,
                                  *(getattr(settings, name) for name in ("top_k", "response_path", "concurrency",
                                                                         "target_variant", "invoke_timeout", "max_attempts")))
    constraints = ((definition.get("BaselineConfig") or {}).get("ConstraintsResource") or {}).get("S3Uri")
    return MonitorSettings(settings, args.min_diversity, args.min_success_rate, constraints)


# --- the last hours' reports -------------------------------------------------------------------

def recent_reports(target: Target, lookback_hours: int, now: datetime | None = None) -> list[HourReport]:
    end = now or utcnow()
    return load_reports(target.reports_s3_uri, target.endpoint_name, target.schedule_name,
                        end - timedelta(hours=lookback_hours), end)


def is_bad(report: HourReport) -> bool:
    return bool(report.violations)


def reports_frame(reports: list[HourReport]) -> pd.DataFrame:
    """One row per hour: the figures, the violations, links to the executed report."""
    rows = []
    for hour_report in reports:
        figures = hour_report.figures
        names = {uri.rsplit("/", 1)[-1]: uri for uri in hour_report.files}
        rows.append({
            "hour": hour_report.hour,
            "mean": round(figures["mean"], 2) if figures.get("mean") is not None and figures.get("diversity_reliable", True) else None,
            "p5": figures.get("p5"),
            "max slot share": figures.get("max_slot_concentration"),
            "replayed": figures.get("success_rate"),
            "violations": "; ".join(v.get("description", "") for v in hour_report.violations) or "none",
            "report": names.get("report.ipynb") or names.get("report.html") or "(no report)",
        })
    return pd.DataFrame(rows, columns=["hour", "mean", "p5", "max slot share", "replayed", "violations", "report"])


@dataclass(frozen=True)
class Streak:
    """The current run of bad hours, and the good hour before it."""

    first_bad: HourReport | None
    last_bad: HourReport | None
    last_good: HourReport | None
    bad_hours: tuple[HourReport, ...] = ()


def bad_streak(reports: list[HourReport]) -> Streak:
    ordered = sorted(reports, key=lambda r: r.hour)
    bad: list[HourReport] = []
    for hour_report in reversed(ordered):
        if not is_bad(hour_report):
            break
        bad.insert(0, hour_report)
    last_good = next((r for r in reversed(ordered) if not is_bad(r) and (not bad or r.hour < bad[0].hour)), None)
    return Streak(bad[0] if bad else None, bad[-1] if bad else None, last_good, tuple(bad))


# --- deployments: when each config served --------------------------------------------------------

@dataclass(frozen=True)
class LivePeriod:
    deployment: Deployment
    start: datetime
    end: datetime | None  # None: serving now
    evidence: str

    def covers(self, moment: datetime) -> bool:
        return self.start <= moment and (self.end is None or moment < self.end)


def live_periods(endpoint_name: str, history: list[Deployment] | None = None) -> list[LivePeriod]:
    """When each config up to the live one served (see the module doc for the evidence)."""
    endpoint = boto3.client("sagemaker").describe_endpoint(EndpointName=endpoint_name)
    history = history if history is not None else deployment.deployments(endpoint_name)
    live_index = next((i for i, d in enumerate(history) if d.live), None)
    if live_index is None:
        raise IncidentError(f"the live config {endpoint['EndpointConfigName']!r} of {endpoint_name} is not among the "
                            f"configs named after it ({[d.config_name for d in history]})")
    created, modified = endpoint["CreationTime"], endpoint["LastModifiedTime"]
    live_since = modified if modified - created > timedelta(minutes=1) else created
    periods: list[LivePeriod] = [LivePeriod(history[live_index], live_since, None,
                                            "DescribeEndpoint LastModifiedTime (the last UpdateEndpoint)")]
    end = live_since
    for earlier in reversed(history[:live_index]):
        start = max(earlier.created, created)
        if start >= end:
            continue  # created but, by these times, never served
        periods.insert(0, LivePeriod(earlier, start, end, "estimated: config creation time"))
        end = start
    return periods


@dataclass(frozen=True)
class Suspect:
    period: LivePeriod
    first_bad_hour: datetime
    last_good_hour: datetime | None


def find_suspect(periods: list[LivePeriod], streak: Streak) -> Suspect | None:
    """The latest deployment that went live after the last good run and by the first bad one."""
    if streak.first_bad is None:
        return None
    first_bad = streak.first_bad.hour
    last_good = streak.last_good.hour if streak.last_good else None
    candidates = [p for p in periods if p.start <= first_bad and (last_good is None or p.start > last_good)]
    return Suspect(candidates[-1], first_bad, last_good) if candidates else None


def deployments_frame(periods: list[LivePeriod], suspect: Suspect | None) -> pd.DataFrame:
    rows = [{
        "config": p.deployment.config_name,
        "models": ", ".join(p.deployment.models),
        "live from": p.start,
        "live until": p.end if p.end else "now",
        "evidence": p.evidence,
        "capture": p.deployment.capture,
        "suspect": "<-- lines up with the drop" if suspect and p is suspect.period else "",
    } for p in periods]
    return pd.DataFrame(rows, columns=["config", "models", "live from", "live until", "evidence", "capture", "suspect"])


def suspect_markdown(suspect: Suspect | None, streak: Streak) -> str:
    if streak.first_bad is None:
        return "**No bad hour in the reports looked at**: the latest runs have no violations."
    if suspect is None:
        return (f"**No deployment lines up with the drop** (first bad run {iso_z(streak.first_bad.hour)}): the cause is "
                "probably not a deploy (catalog, upstream features, traffic). Do not roll back blindly; open "
                "notebooks/04_investigate_regression.ipynb.")
    good = f"after the last good run at {iso_z(suspect.last_good_hour)} and " if suspect.last_good_hour else ""
    d = suspect.period.deployment
    return (f"**SUSPECT: `{d.config_name}` ({', '.join(d.models)})** went live at {iso_z(suspect.period.start)}, "
            f"{good}before the first bad run at {iso_z(suspect.first_bad_hour)}.")


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
        block = self.statistics["diversity_monitor"]
        return {key: block.get(key) for key in ("mean", "min", "p5", "max", "max_slot_concentration",
                                                 "success_rate", "sessions_succeeded", "sessions_attempted")}


def replay_check(target: Target, settings: MonitorSettings, label: str, progress: bool = False) -> ReplayCheck:
    """Replay the validation set against the live endpoint now and judge it as a scheduled run would."""
    constraints = job.load_json_document(settings.baseline_constraints, "baseline_constraints") \
        if settings.baseline_constraints else None
    run_id = f"runbook-{label}-{utcnow():%H%M%S}"
    measurement, _ = job.measure(target.endpoint_name, settings.replay, run_id, progress=progress)
    violations = check(measurement, min_diversity=settings.min_diversity, min_success_rate=settings.min_success_rate,
                       constraints=constraints, constraints_source=f"baseline_constraints {settings.baseline_constraints}")
    statistics = statistics_document(measurement, reliable=measurement.success_rate >= settings.min_success_rate,
                                     context={"endpoint": target.endpoint_name, "runbook_check": label})
    return ReplayCheck(label, statistics, tuple(violations), measurement.measured_at)


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
    from_deployment: Deployment | None
    to_deployment: Deployment | None  # None: no rollback target
    reason: str
    deployment_config: dict | None = None

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


def plan_rollback(endpoint_name: str, periods: list[LivePeriod], reports: list[HourReport],
                  rollback_to: str | None = None, deployment_config: dict | None = None) -> RollbackPlan:
    """Target: `rollback_to` if given; else the config live during the last good run; else the previous one."""
    history = deployment.deployments(endpoint_name)
    live = next(d for d in history if d.live)
    if deployment_config:
        validate_update_request({"EndpointName": endpoint_name, "EndpointConfigName": live.config_name,
                                 "DeploymentConfig": deployment_config})
    if rollback_to:
        chosen = next((d for d in history if d.config_name == rollback_to), None)
        if chosen is None:
            raise IncidentError(f"rollback_to {rollback_to!r} is not one of {endpoint_name}'s configs "
                                f"({[d.config_name for d in history]})")
        return RollbackPlan(endpoint_name, live, chosen, "named by the on-call (rollback_to)", deployment_config)
    for good in sorted((r for r in reports if not is_bad(r)), key=lambda r: r.hour, reverse=True):
        period = next((p for p in periods if p.covers(good.hour)), None)
        if period is None:
            continue
        if period.deployment.live:
            break  # the live config had a clean run: by the reports, nothing to roll back to
        return RollbackPlan(endpoint_name, live, period.deployment,
                            f"live during the last run with no violations ({iso_z(good.hour)})", deployment_config)
    previous = deployment.previous_config(history)
    if previous is None:
        return RollbackPlan(endpoint_name, live, None,
                            f"no earlier config of {endpoint_name} to roll back to; name one with rollback_to",
                            deployment_config)
    return RollbackPlan(endpoint_name, live, previous,
                        "the config before the live one (no clean run in the reports looked at)", deployment_config)


def validate_update_request(request: dict) -> None:
    """botocore's own UpdateEndpoint input shape: a bad DeploymentConfig fails here, before anything changes."""
    shape = boto3.client("sagemaker").meta.service_model.operation_model("UpdateEndpoint").input_shape
    try:
        validate_parameters(request, shape)
    except ParamValidationError as error:
        raise IncidentError(f"deployment_config is not a valid UpdateEndpoint DeploymentConfig: {error}") from None


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
    suspect: dict | None
    rollback: dict
    replay_before: dict | None
    replay_after: dict | None
    reports: list[str]
    written_at: str
    runbook: str = RUNBOOK
    recovered: bool | None = None
    notes: list[str] = field(default_factory=list)


def _deployment_dict(d: Deployment | None) -> dict | None:
    return {"config": d.config_name, "models": list(d.models)} if d else None


def incident_summary(target: Target, history: pd.DataFrame, streak: Streak, suspect: Suspect | None,
                     plan: RollbackPlan, outcome: RollbackOutcome, before: ReplayCheck | None,
                     after: ReplayCheck | None) -> IncidentSummary:
    fired = fired_at(history)
    return IncidentSummary(
        endpoint=target.endpoint_name,
        schedule=target.schedule_name,
        alarm=target.alarm_name,
        alarm_state=target.alarm["StateValue"] if target.alarm else None,
        alarm_fired_at=iso_z(fired) if fired else None,
        first_bad_run=iso_z(streak.first_bad.hour) if streak.first_bad else None,
        last_good_run=iso_z(streak.last_good.hour) if streak.last_good else None,
        bad_runs=[{"hour": iso_z(r.hour), "mean": r.figures.get("mean"), "p5": r.figures.get("p5"),
                   "violations": [v.get("description") for v in r.violations]} for r in streak.bad_hours],
        suspect=({**_deployment_dict(suspect.period.deployment), "live_from": iso_z(suspect.period.start),
                  "evidence": suspect.period.evidence} if suspect else None),
        rollback={"performed": outcome.performed, "message": outcome.message,
                  "from": _deployment_dict(plan.from_deployment), "to": _deployment_dict(plan.to_deployment),
                  "reason": plan.reason, "deployment_config": plan.deployment_config,
                  "requested_at": iso_z(outcome.requested_at) if outcome.requested_at else None,
                  "completed_at": iso_z(outcome.completed_at) if outcome.completed_at else None},
        replay_before={"at": iso_z(before.measured_at), **before.figures,
                       "violations": [v.description for v in before.violations]} if before else None,
        replay_after={"at": iso_z(after.measured_at), **after.figures,
                      "violations": [v.description for v in after.violations]} if after else None,
        reports=[f"{r.prefix}/report.ipynb" for r in streak.bad_hours],
        written_at=iso_z(utcnow()),
        recovered=after.healthy if after else None,
    )


def verify_recovery(target: Target, settings: MonitorSettings, outcome: RollbackOutcome) -> ReplayCheck | None:
    """After a rollback, the same replay again; None when nothing was rolled back."""
    return replay_check(target, settings, "after-rollback") if outcome.performed else None


def summary_markdown(summary: IncidentSummary) -> str:
    def figures(block: dict | None) -> str:
        if not block:
            return "not run"
        mean = f"{block['mean']:.2f}" if block.get("mean") is not None else "n/a"
        return f"mean {mean}, p5 {block.get('p5')}, max slot share {block.get('max_slot_concentration')} at {block['at']}"

    rollback = summary.rollback
    lines = [
        f"# Incident: diversity on `{summary.endpoint}`",
        f"- Alarm `{summary.alarm}`: {summary.alarm_state}, fired at {summary.alarm_fired_at or 'n/a'}",
        f"- Last good run {summary.last_good_run or 'n/a'}; first bad run {summary.first_bad_run or 'n/a'}; "
        f"{len(summary.bad_runs)} bad run(s): "
        + ", ".join(f"{r['hour']} (mean {r['mean']:.2f})" if r["mean"] is not None else r["hour"] for r in summary.bad_runs),
        f"- Suspect deployment: {summary.suspect['config'] + ' (' + ', '.join(summary.suspect['models']) + '), live from ' + summary.suspect['live_from'] if summary.suspect else 'none found'}",
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
    return storage.join(target.reports_s3_uri, target.endpoint_name, target.schedule_name, INCIDENTS_FOLDER)


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


def record(summary: IncidentSummary, target: Target, outcome: RollbackOutcome) -> str:
    """Write the summary when the runbook changed something; a dry run leaves no trace."""
    if not outcome.performed:
        return "Summary NOT written: nothing was changed (dry run or no rollback)."
    json_uri, md_uri = write_summary(summary, target)
    return f"Summary written: {json_uri} and {md_uri}"
