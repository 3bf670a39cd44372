"""EventBridge Scheduler, locally: moto keeps the schedules; this module fires them.

moto answers the Scheduler API (CreateSchedule, GetSchedule, UpdateSchedule, ListSchedules...)
but never invokes a target. On each clock minute `SchedulerFiring` lists the `ENABLED` schedules
from moto and invokes each one due at that minute, once, the way Scheduler does:

- due: `cron(min hour day-of-month month day-of-week year)` in `ScheduleExpressionTimezone`,
  `rate(N minutes|hours|days)` counted from the schedule's creation, `at(yyyy-mm-ddThh:mm:ss)`;
  inside `StartDate`/`EndDate`. `FlexibleTimeWindow` FLEXIBLE fires at the window's start (the
  earliest time AWS may pick), so runs stay deterministic;
- the target's `Input` gets Scheduler's context attributes filled in (`<aws.scheduler.schedule-arn>`,
  `<aws.scheduler.scheduled-time>`, `<aws.scheduler.execution-id>`, `<aws.scheduler.attempt-number>`);
- universal targets `arn:aws:scheduler:::aws-sdk:<service>:<apiAction>` call that API with the
  Input as its parameters, validated against botocore's model first, as the service would. The
  local stack runs the SageMaker operations its modules register (CreateProcessingJob:
  processing_jobs.py); any other target is recorded as not run, with the reason.

Every invocation is recorded (store kind `SchedulerInvocation`, `<group>/<name>/<time>`): the
call made, the role Scheduler would have assumed and the role the call passes, its outcome. So
nothing fires twice, and a test can check the scheduler role's policy against what was called.
Schedules live in moto's memory: a stack restart forgets them (snapshot.py keeps S3, SNS, SQS).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from botocore.exceptions import BotoCoreError, ClientError
from croniter import croniter

from diversity_monitor.clock import iso_z, parse_instant
from diversity_monitor.local.errors import ServiceError, ValidationError
from diversity_monitor.local.protocols import service_model, validate

log = logging.getLogger(__name__)

INVOCATION = "SchedulerInvocation"
UNIVERSAL_TARGET = re.compile(r"^arn:aws[a-z-]*:scheduler:::aws-sdk:(?P<service>[a-z0-9-]+):(?P<action>[A-Za-z0-9]+)$")
MAX_CATCH_UP = timedelta(hours=1)
_RATE = re.compile(r"^rate\((?P<value>\d+) (?P<unit>minutes?|hours?|days?)\)$")
_AT = re.compile(r"^at\((?P<moment>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)$")
_CRON = re.compile(r"^cron\((?P<fields>[^)]+)\)$")


class ExpressionError(ValueError):
    """A ScheduleExpression this stand-in cannot fire; the message names it."""


def _crontab(expression: str) -> str:
    """Scheduler's six-field cron as croniter's five fields (`?` is croniter's `*`; year must be `*`)."""
    fields = _CRON.match(expression)["fields"].split()
    if len(fields) != 6:
        raise ExpressionError(f"{expression!r}: Scheduler's cron has six fields (minutes hours day-of-month month "
                              "day-of-week year)")
    if fields[5] not in ("*", "?"):
        raise ExpressionError(f"{expression!r}: a year other than * is not fired locally")
    return " ".join("*" if field == "?" else field for field in fields[:5])


def is_due(schedule: dict, minute: datetime) -> bool:
    """Whether `schedule` (a GetSchedule answer) fires at `minute` (UTC, whole minute)."""
    expression = schedule["ScheduleExpression"].strip()
    zone = ZoneInfo(schedule.get("ScheduleExpressionTimezone") or "UTC")
    for bound, before in (("StartDate", True), ("EndDate", False)):
        if schedule.get(bound):
            limit = schedule[bound] if isinstance(schedule[bound], datetime) else parse_instant(str(schedule[bound]))
            if (minute < limit) if before else (minute > limit):
                return False
    if _CRON.match(expression):
        return croniter.match(_crontab(expression), minute.astimezone(zone))
    rate = _RATE.match(expression)
    if rate:
        unit = rate["unit"].rstrip("s") + "s"
        period = timedelta(**{unit: int(rate["value"])})
        created = schedule["CreationDate"]
        created = created if isinstance(created, datetime) else parse_instant(str(created))
        elapsed = minute - created.replace(second=0, microsecond=0)
        return elapsed > timedelta(0) and elapsed % period == timedelta(0)
    at = _AT.match(expression)
    if at:
        return datetime.fromisoformat(at["moment"]).replace(tzinfo=zone) == minute.astimezone(zone)
    raise ExpressionError(f"{expression!r} is not cron(...), rate(...) or at(...)")


def execution_id(schedule_arn: str, minute: datetime) -> str:
    """A deterministic stand-in for Scheduler's execution id (16 hex characters)."""
    return hashlib.sha256(f"{schedule_arn}/{iso_z(minute)}".encode()).hexdigest()[:16]


def render_input(text: str, schedule_arn: str, minute: datetime, attempt: int = 1) -> str:
    context = {
        "<aws.scheduler.schedule-arn>": schedule_arn,
        "<aws.scheduler.scheduled-time>": iso_z(minute),
        "<aws.scheduler.execution-id>": execution_id(schedule_arn, minute),
        "<aws.scheduler.attempt-number>": str(attempt),
    }
    for placeholder, value in context.items():
        text = text.replace(placeholder, value)
    return text


def invoke(platform, schedule: dict, minute: datetime) -> dict:
    """Invoke `schedule`'s target for `minute`; the invocation record (stored, never raised)."""
    target = schedule["Target"]
    record = {"ScheduleArn": schedule["Arn"], "ScheduleName": schedule["Name"], "ScheduledTime": iso_z(minute),
              "ExecutionId": execution_id(schedule["Arn"], minute), "TargetArn": target["Arn"],
              "RoleArn": target.get("RoleArn"), "InvokedAt": iso_z(platform.clock.now())}
    try:
        service, operation, params = _universal_call(platform, target, schedule["Arn"], minute)
        record.update(Service=service, Operation=operation, PassedRoleArn=params.get("RoleArn"))
        handler = platform.handler(service, operation)
        if handler is None:
            raise ValidationError(f"the local stack does not run {service} {operation} targets")
        if operation == "CreateProcessingJob":  # a simulated clock runs the job before the clock moves on
            result = handler(platform, params, inline=platform.clock.simulated)
        else:
            result = handler(platform, params)
        record.update(Outcome="Invoked", Result=result)
    except ServiceError as error:
        record.update(Outcome="Failed", Error=f"{error.code}: {error.message}")
    except Exception as error:  # a stand-in bug must show in the record, not stop the clock
        log.exception("invoking schedule %s at %s failed", schedule["Name"], iso_z(minute))
        record.update(Outcome="Failed", Error=f"InternalServerError: {error}")
    platform.store.put(INVOCATION, _key(schedule, minute), record)
    return record


def _universal_call(platform, target: dict, schedule_arn: str, minute: datetime) -> tuple[str, str, dict]:
    match = UNIVERSAL_TARGET.match(target["Arn"])
    if not match:
        raise ValidationError(f"target {target['Arn']!r}: only universal targets (arn:aws:scheduler:::aws-sdk:"
                              "<service>:<apiAction>) are invoked locally")
    model = service_model(match["service"])
    operation = next((name for name in model.operation_names if name.lower() == match["action"].lower()), None)
    if operation is None:
        raise ValidationError(f"target {target['Arn']!r}: {match['service']} has no API action {match['action']!r}")
    try:
        params = json.loads(render_input(target.get("Input") or "{}", schedule_arn, minute))
    except json.JSONDecodeError as error:
        raise ValidationError(f"target Input is not JSON ({error.msg})") from None
    validate(params, model.operation_model(operation), ValidationError)
    return match["service"], operation, params


def _key(schedule: dict, minute: datetime) -> str:
    return f"{schedule.get('GroupName') or 'default'}/{schedule['Name']}/{iso_z(minute)}"


class SchedulerFiring:
    """Fires moto's Scheduler schedules on the platform clock's minute ticks."""

    def __init__(self, platform) -> None:
        self.platform = platform
        self._last_minute: datetime | None = None

    def tick(self, moment: datetime) -> None:
        minute = moment.astimezone(timezone.utc).replace(second=0, microsecond=0)
        first = minute if self._last_minute is None else max(self._last_minute + timedelta(minutes=1), minute - MAX_CATCH_UP)
        self._last_minute = minute
        schedules = self._schedules() if first <= minute else []
        while first <= minute:
            self.fire_due(first, schedules)
            first += timedelta(minutes=1)

    def _schedules(self) -> list[dict]:
        client = self.platform.aws_client("scheduler")
        try:
            found = [summary for page in client.get_paginator("list_schedules").paginate(State="ENABLED")
                     for summary in page["Schedules"]]
            return [client.get_schedule(Name=item["Name"], GroupName=item.get("GroupName") or "default") for item in found]
        except (ClientError, BotoCoreError):
            log.exception("listing EventBridge Scheduler schedules from moto failed")
            return []

    def fire_due(self, minute: datetime, schedules: list[dict] | None = None) -> list[dict]:
        invoked = []
        for schedule in self._schedules() if schedules is None else schedules:
            try:
                due = is_due(schedule, minute)
            except ExpressionError as error:
                log.warning("schedule %s is not fired: %s", schedule["Name"], error)
                continue
            if due and self.platform.store.get(INVOCATION, _key(schedule, minute)) is None:
                invoked.append(invoke(self.platform, schedule, minute))
        return invoked


def invocations(platform, schedule_name: str | None = None) -> list[dict]:
    found = platform.store.list(INVOCATION)
    return sorted((item for item in found if schedule_name in (None, item["ScheduleName"])),
                  key=lambda item: item["ScheduledTime"])


def install(platform) -> SchedulerFiring:
    firing = SchedulerFiring(platform)
    platform.clock.subscribe(firing.tick)
    return firing
