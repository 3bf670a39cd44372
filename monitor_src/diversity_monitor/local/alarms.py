"""CloudWatch alarm evaluation for the local stack: moto stores alarms, this makes them work.

moto keeps alarm definitions and metric data but never evaluates an alarm, starts new alarms in
OK instead of INSUFFICIENT_DATA, drops `EvaluationWindow`, and has no DescribeAlarmHistory. The
`AlarmEvaluator` fills that in from the outside (plain CloudWatch/SNS API calls to moto, no
patching):

- every clock minute (`tick`): one DescribeAlarms, one GetMetricData per (period, window end)
  (all hourly sliding-window alarms share one call; dimensions in the canonical order
  `metric_data` stores every datum in, so publish order never matters), the documented evaluation
  (`alarm_evaluation.evaluate`), and on a state change: SetAlarmState in moto (so DescribeAlarms
  shows it), a history item, and CloudWatch's alarm notification published to the alarm's SNS
  actions for the new state (when ActionsEnabled). moto's SetAlarmState publishes nothing itself.
- a new alarm starts INSUFFICIENT_DATA ("Unchecked: Initial alarm creation") and is evaluated at
  once when created through the gateway (the PutMetricAlarm handler), else at the next minute.
  Alarms put or set directly in moto are noticed at the next minute (`_reconcile`).
- gateway operations: PutMetricAlarm (validation moto skips, EvaluationWindow kept, immediate
  evaluation), SetAlarmState (actions when the state changes), DescribeAlarms (moto's answer with
  the platform clock's timestamps and EvaluationWindow), DescribeAlarmHistory (from the store).
- on install, alarms the store knows but moto lost (a restart) are put back with their state.

Composite alarms (moto has none): PutCompositeAlarm, DescribeAlarms with AlarmTypes CompositeAlarm
and DeleteAlarms are served here from the store (kind "CompositeAlarm"). A composite starts
INSUFFICIENT_DATA ("Unchecked: Initial alarm creation") and is evaluated at once and after every
change of any alarm (`aws.composite_rule`: TRUE -> ALARM, FALSE -> OK, as the CloudWatch guide
describes); its notification is CloudWatch's composite format: AlarmRule and TriggeringChildren
(each child's ARN and state) instead of a Trigger, NewStateReason "<child ARN> transitioned to
ALARM at <time>", StateReasonData {"triggeringAlarms": [...]}, the shape CloudWatch's composite
alarm events carry.

Store kinds: "MetricAlarm" holds each alarm as a DescribeAlarms MetricAlarm with our state,
timestamps (from the platform clock) and EvaluationWindow; "AlarmHistoryItem" holds
DescribeAlarmHistory items. Timestamps are stored as ISO-8601 strings (`_iso` / `_instant`).
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from diversity_monitor.aws import alarm_evaluation as ev
from diversity_monitor.aws import composite_rule
from diversity_monitor.local.errors import ServiceError, refused_by_moto
from diversity_monitor.local.metric_data import canonical_dimensions
from diversity_monitor.local.protocols import botocore_data, service_model, validation_error_for

log = logging.getLogger(__name__)

ALARM_KIND = "MetricAlarm"
COMPOSITE_KIND = "CompositeAlarm"
COMPOSITE_FIELDS = ("AlarmName", "AlarmDescription", "AlarmRule", "ActionsEnabled", "AlarmActions", "OKActions",
                    "InsufficientDataActions")
MAX_COMPOSITE_PASSES = 10  # composites of composites settle within this many passes (a cycle never does)
HISTORY_KIND = "AlarmHistoryItem"
INITIAL_REASON = "Unchecked: Initial alarm creation"  # what CloudWatch says before a first evaluation
ACTIONS_FOR_STATE = {ev.ALARM: "AlarmActions", ev.OK: "OKActions", ev.INSUFFICIENT_DATA: "InsufficientDataActions"}
# How the notification's Trigger names statistics.
NOTIFICATION_STATISTIC = {"Average": "AVERAGE", "Sum": "SUM", "Minimum": "MINIMUM",
                          "Maximum": "MAXIMUM", "SampleCount": "SAMPLE_COUNT"}
MAX_STATE_REASON = 1023  # SetAlarmState limits
MAX_STATE_REASON_DATA = 4000
MAX_SUBJECT = 100  # SNS Publish limit
DEFAULT_MAX_RECORDS = 50  # DescribeAlarmHistory
MAX_QUERIES_PER_CALL = 500  # GetMetricData


class InvalidNextToken(ServiceError):  # DescribeAlarmHistory's modelled error
    code = "InvalidNextToken"
    status = 400


def _invalid(message: str) -> ServiceError:
    """CloudWatch's validation error, as the gateway answers invalid CloudWatch requests."""
    return validation_error_for("cloudwatch")(message)


# --- time, in one place -----------------------------------------------------------------------


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat()


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _aws_time(moment: datetime) -> str:
    """CloudWatch's notification/history format: 2025-08-13T08:08:23.374+0000."""
    moment = moment.astimezone(timezone.utc)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}+0000"


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items() if k != "ResponseMetadata"}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


@functools.cache
def region_display_name(region: str) -> str:
    """"EU (Ireland)" for eu-west-1: botocore's region description in CloudWatch's wording
    (alarm notifications from eu-west-1 say "EU (Ireland)", botocore says "Europe (Ireland)")."""
    for partition in botocore_data("endpoints")["partitions"]:
        description = partition["regions"].get(region, {}).get("description")
        if description:
            return description.replace("Europe (", "EU (", 1)
    return region


# --- metric data ----------------------------------------------------------------------------


@dataclass
class Aggregate:
    """A bucket's raw statistics; every alarm statistic derives from these exactly."""

    count: float = 0.0
    total: float = 0.0
    minimum: float = float("inf")
    maximum: float = float("-inf")

    def add(self, stat: str, value: float) -> None:
        if stat == "SampleCount":
            self.count += value
        elif stat == "Sum":
            self.total += value
        elif stat == "Minimum":
            self.minimum = min(self.minimum, value)
        elif stat == "Maximum":
            self.maximum = max(self.maximum, value)


# alarm statistic -> (raw statistics to fetch, how to compute it from them). Raw statistics add
# up exactly across separately fetched parts; SampleCount also tells an empty bucket.
STATISTICS = {
    "Average": (("Sum", "SampleCount"), lambda a: a.total / a.count),
    "Sum": (("Sum", "SampleCount"), lambda a: a.total),
    "Minimum": (("Minimum", "SampleCount"), lambda a: a.minimum),
    "Maximum": (("Maximum", "SampleCount"), lambda a: a.maximum),
    "SampleCount": (("SampleCount",), lambda a: a.count),
}


@dataclass
class Plan:
    """One alarm's evaluation at one moment: its rule and the buckets it reads."""

    alarm: dict
    rule: ev.AlarmRule
    buckets: list[tuple[datetime, datetime]]
    aggregates: list[Aggregate | None] = field(default_factory=list)

    @property
    def statistic(self) -> str:
        return self.alarm["Statistic"]

    def values(self) -> list[float | None]:
        compute = STATISTICS[self.statistic][1]
        return [None if a is None or a.count == 0 else compute(a) for a in self.aggregates]


def _fetch(cloudwatch, plans: Sequence[Plan]) -> None:
    """Fill each plan's aggregates with as few GetMetricData calls as the bucket layouts allow.

    Equal-length buckets with the same period ending at the same moment are tails of one
    another (an alarm with N = 5 reads further back than one with N = 3), so one call covering
    the longest serves them all. Unequal buckets (a DST day in a wall clock window) are fetched
    one bucket per call.
    """
    uniform: dict[tuple[int, datetime], list[Plan]] = {}
    for plan in plans:
        plan.aggregates = [None] * len(plan.buckets)
        lengths = {int((end - start).total_seconds()) for start, end in plan.buckets}
        if len(lengths) == 1:
            uniform.setdefault((lengths.pop(), plan.buckets[-1][1]), []).append(plan)
        else:
            for start, end in plan.buckets:
                _query(cloudwatch, [plan], start, end, int((end - start).total_seconds()))
    for (period, end), group in uniform.items():
        _query(cloudwatch, group, min(plan.buckets[0][0] for plan in group), end, period)


def _query(cloudwatch, plans: Sequence[Plan], start: datetime, end: datetime, period: int) -> None:
    queries: list[dict] = []
    owners: dict[str, tuple[Plan, str]] = {}
    for p, plan in enumerate(plans):
        alarm = plan.alarm
        # Datums are stored with their dimensions in the canonical order (metric_data), so one
        # query in that order finds them whatever order they were published in.
        metric = {"Namespace": alarm["Namespace"], "MetricName": alarm["MetricName"],
                  "Dimensions": canonical_dimensions(alarm.get("Dimensions"))}
        for stat in STATISTICS[alarm["Statistic"]][0]:
            query_id = f"p{p}{stat.lower()}"
            stat_spec = {"Metric": metric, "Period": period, "Stat": stat}
            if alarm.get("Unit"):
                stat_spec["Unit"] = alarm["Unit"]
            queries.append({"Id": query_id, "MetricStat": stat_spec, "ReturnData": True})
            owners[query_id] = (plan, stat)
    slots = {id(plan): {bucket_start: i for i, (bucket_start, _) in enumerate(plan.buckets)} for plan in plans}
    paginator = cloudwatch.get_paginator("get_metric_data")
    for chunk_start in range(0, len(queries), MAX_QUERIES_PER_CALL):
        chunk = queries[chunk_start:chunk_start + MAX_QUERIES_PER_CALL]
        for page in paginator.paginate(MetricDataQueries=chunk, StartTime=start, EndTime=end,
                                       ScanBy="TimestampAscending"):
            for result in page["MetricDataResults"]:
                plan, stat = owners[result["Id"]]
                for stamp, value in zip(result["Timestamps"], result["Values"]):
                    slot = slots[id(plan)].get(stamp.astimezone(timezone.utc))
                    if slot is None:  # older than this alarm's range, or the bucket at EndTime
                        continue
                    if plan.aggregates[slot] is None:
                        plan.aggregates[slot] = Aggregate()
                    plan.aggregates[slot].add(stat, float(value))


def _unsupported(alarm: Mapping) -> str | None:
    """Why the local stack cannot evaluate this alarm, or None."""
    if alarm.get("Metrics"):
        return "metric math / multi-metric alarms (Metrics) are not evaluated locally"
    if alarm.get("ExtendedStatistic"):
        return "percentile statistics (ExtendedStatistic) are not evaluated locally (moto has no percentiles)"
    if alarm.get("Statistic") not in STATISTICS:
        return f"statistic {alarm.get('Statistic')!r} is not one of {sorted(STATISTICS)}"
    if alarm.get("ComparisonOperator") not in ev.COMPARISONS:
        return f"anomaly-detection operator {alarm.get('ComparisonOperator')!r} is not evaluated locally"
    return None


# --- the evaluator --------------------------------------------------------------------------


class AlarmEvaluator:
    def __init__(self, platform) -> None:
        self.platform = platform
        self._lock = threading.RLock()  # clock ticks and gateway requests arrive on different threads
        self._warned: set[tuple[str, str]] = set()

    @property
    def cloudwatch(self):
        return self.platform.aws_client("cloudwatch")  # moto directly, not the gateway

    # -- entry points --

    def tick(self, now: datetime) -> None:
        """One evaluation round: every alarm in moto, at `now` (a clock subscriber)."""
        with self._lock:
            try:
                alarms = self._describe_alarms()
            except (ClientError, BotoCoreError):
                log.exception("alarm evaluation at %s: DescribeAlarms failed", now)
                return
            self._forget_deleted({a["AlarmName"] for a in alarms}, now)
            self._evaluate(alarms, now)
            self._evaluate_composites(now)

    def restore(self) -> None:
        """After a restart moto is empty but the store still has the alarms: put them back."""
        with self._lock:
            present = {a["AlarmName"] for a in self._describe_alarms()}
            members = _input_members("PutMetricAlarm")
            for record in self.platform.store.list(ALARM_KIND):
                if record["AlarmName"] in present:
                    continue
                params = {k: record[k] for k in members if record.get(k) not in (None, [], "")}
                self.cloudwatch.put_metric_alarm(**params)
                self._set_moto_state(record)

    # -- operations the gateway routes here (handler(platform, params) -> output) --

    def put_metric_alarm(self, platform, params: dict) -> dict:
        _validate_put(params)
        name = params["AlarmName"]
        with self._lock, refused_by_moto():
            existed = bool(self.cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"])
            self.cloudwatch.put_metric_alarm(**params)
            alarm = self._describe_one(name)
            now = self.platform.clock.now()
            record = self.platform.store.get(ALARM_KIND, name)
            window = params.get("EvaluationWindow")
            if existed and record is not None and record["AlarmArn"] == alarm["AlarmArn"]:
                self._updated(alarm, record, now, window)
            else:
                self._created(alarm, now, window)
            self._evaluate([self._describe_one(name)], now)  # "evaluated at once"
            self._evaluate_composites(now)
        return {}

    def set_alarm_state(self, platform, params: dict) -> dict:
        """SetAlarmState: the state holds until the next evaluation, actions fire if it changed."""
        with self._lock, refused_by_moto():
            now = self.platform.clock.now()
            composite = self.platform.store.get(COMPOSITE_KIND, params["AlarmName"])
            if composite is not None:
                self._set_composite_state(composite, params, now)
                return {}
            self.cloudwatch.set_alarm_state(**params)
            self._reconcile(self._describe_one(params["AlarmName"]), now)
            self._evaluate_composites(now)
        return {}

    def describe_alarms(self, platform, params: dict) -> dict:
        """moto's answer with our clock's timestamps and the EvaluationWindow moto drops."""
        with self._lock, refused_by_moto():
            output = self.cloudwatch.describe_alarms(**params)
            output.pop("ResponseMetadata", None)
            for alarm in output.get("MetricAlarms", []):
                record = self.platform.store.get(ALARM_KIND, alarm["AlarmName"])
                if record is None or record["AlarmArn"] != alarm["AlarmArn"]:
                    continue
                for key in ("AlarmConfigurationUpdatedTimestamp", "StateUpdatedTimestamp",
                            "StateTransitionedTimestamp"):
                    if record.get(key):
                        alarm[key] = _instant(record[key])
                if record.get("EvaluationWindow"):
                    alarm["EvaluationWindow"] = record["EvaluationWindow"]
        types = params.get("AlarmTypes") or ["MetricAlarm"]  # "If you omit this parameter, only metric alarms"
        if "MetricAlarm" not in types:
            output["MetricAlarms"] = []
        output["CompositeAlarms"] = self._composites_matching(params) if COMPOSITE_KIND in types else []
        return output

    def _composites_matching(self, params: Mapping) -> list[dict]:
        names, prefix, state = params.get("AlarmNames"), params.get("AlarmNamePrefix"), params.get("StateValue")
        found = []
        for record in sorted(self.platform.store.list(COMPOSITE_KIND), key=lambda r: r["AlarmName"]):
            if names and record["AlarmName"] not in names:
                continue
            if prefix and not record["AlarmName"].startswith(prefix):
                continue
            if state and record["StateValue"] != state:
                continue
            described = {key: value for key, value in record.items() if value is not None}
            for key in ("AlarmConfigurationUpdatedTimestamp", "StateUpdatedTimestamp", "StateTransitionedTimestamp"):
                described[key] = _instant(record[key])
            found.append(described)
        return found

    def put_composite_alarm(self, platform, params: dict) -> dict:
        """PutCompositeAlarm: the rule checked (syntax, named alarms exist), created INSUFFICIENT_DATA or
        updated with its state left unchanged, then evaluated at once."""
        name = params["AlarmName"]
        try:
            tree = composite_rule.parse(params["AlarmRule"])
        except composite_rule.RuleError as error:
            raise _invalid(str(error)) from error
        with self._lock, refused_by_moto():
            named = composite_rule.children(tree)
            if name in named:
                raise _invalid(f"the alarm rule of {name!r} names the alarm itself")
            known = {a["AlarmName"] for a in self._describe_alarms()}
            known |= {r["AlarmName"] for r in self.platform.store.list(COMPOSITE_KIND)}
            missing = [child for child in named if child not in known]
            if missing:
                raise _invalid(f"Could not save the composite alarm as alarms {missing} in the alarm rule do not exist")
            if self.cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"]:
                raise _invalid(f"{name!r} is a metric alarm; a composite alarm needs a name of its own")
            now = self.platform.clock.now()
            record = self.platform.store.get(COMPOSITE_KIND, name)
            configuration = {key: params.get(key) for key in COMPOSITE_FIELDS}
            configuration["ActionsEnabled"] = params.get("ActionsEnabled", True)
            for key in ("AlarmActions", "OKActions", "InsufficientDataActions"):
                configuration[key] = list(params.get(key) or [])
            if record is None:
                record = {**configuration, "AlarmArn": self._arn(name), "StateValue": ev.INSUFFICIENT_DATA,
                          "StateReason": INITIAL_REASON, "AlarmConfigurationUpdatedTimestamp": _iso(now),
                          "StateUpdatedTimestamp": _iso(now), "StateTransitionedTimestamp": _iso(now)}
                self._history(name, now, "ConfigurationUpdate", f'Alarm "{name}" created',
                              {"version": "1.0", "type": "Create", "createdAlarm": _camel(record)}, COMPOSITE_KIND)
            else:
                original = dict(record)
                record.update(configuration, AlarmConfigurationUpdatedTimestamp=_iso(now))
                self._history(name, now, "ConfigurationUpdate", f'Alarm "{name}" updated',
                              {"version": "1.0", "type": "Update", "originalAlarm": _camel(original),
                               "updatedAlarm": _camel(record)}, COMPOSITE_KIND)
            self.platform.store.put(COMPOSITE_KIND, name, record)
            self._evaluate_composites(now)
        return {}

    def delete_alarms(self, platform, params: dict) -> dict:
        """DeleteAlarms: composites from the store, the rest from moto; an alarm a composite's rule
        still names is refused (CloudWatch keeps rules pointing at alarms that exist)."""
        names = list(params.get("AlarmNames") or [])
        with self._lock, refused_by_moto():
            composites = [n for n in names if self.platform.store.get(COMPOSITE_KIND, n) is not None]
            for record in self.platform.store.list(COMPOSITE_KIND):
                if record["AlarmName"] in composites:
                    continue
                named = set(composite_rule.children(composite_rule.parse(record["AlarmRule"])))
                still = sorted(named & set(names))
                if still:
                    raise _invalid(f"alarms {still} are in the alarm rule of composite alarm {record['AlarmName']!r}: "
                                   "delete or change the composite first")
            now = self.platform.clock.now()
            for name in composites:
                record = self.platform.store.get(COMPOSITE_KIND, name)
                self.platform.store.delete(COMPOSITE_KIND, name)
                self._history(name, now, "ConfigurationUpdate", f'Alarm "{name}" deleted',
                              {"version": "1.0", "type": "Delete", "deletedAlarm": _camel(record)}, COMPOSITE_KIND)
            others = [n for n in names if n not in composites]
            if others:
                self.cloudwatch.delete_alarms(AlarmNames=others)
            self._forget_deleted({a["AlarmName"] for a in self._describe_alarms()}, now)
        return {}

    def describe_alarm_history(self, platform, params: dict) -> dict:
        if params.get("AlarmContributorId"):
            return {"AlarmHistoryItems": []}  # no contributor (Metrics Insights) alarms locally
        types = params.get("AlarmTypes") or [ALARM_KIND]  # "If you omit this parameter, only metric alarms" [API]
        wanted = {
            "AlarmName": params.get("AlarmName"),
            "HistoryItemType": params.get("HistoryItemType"),
        }
        start, end = params.get("StartDate"), params.get("EndDate")
        items = []
        for sequence, item in enumerate(self.platform.store.list(HISTORY_KIND)):
            if item["AlarmType"] not in types:
                continue
            if any(value is not None and item[key] != value for key, value in wanted.items()):
                continue
            stamp = _instant(item["Timestamp"])
            if (start is not None and stamp < start) or (end is not None and stamp > end):
                continue
            items.append((stamp, sequence, {**item, "Timestamp": stamp}))
        descending = (params.get("ScanBy") or "TimestampDescending") == "TimestampDescending"
        items.sort(key=lambda entry: entry[:2], reverse=descending)
        offset = _offset_from(params.get("NextToken"))
        limit = params.get("MaxRecords") or DEFAULT_MAX_RECORDS
        page = [item for _, _, item in items[offset:offset + limit]]
        output: dict = {"AlarmHistoryItems": page}
        if offset + limit < len(items):
            output["NextToken"] = str(offset + limit)
        return output

    # -- evaluation --

    def _evaluate(self, alarms: Iterable[dict], now: datetime) -> None:
        plans = []
        for alarm in alarms:
            try:
                record = self._reconcile(alarm, now)
                plan = self._plan(alarm, record, now)
            except (ClientError, BotoCoreError, ValueError):
                log.exception("alarm %r: cannot evaluate at %s", alarm.get("AlarmName"), now)
                continue
            if plan is not None:
                plans.append((plan, record))
        if not plans:
            return
        try:
            _fetch(self.cloudwatch, [plan for plan, _ in plans])
        except (ClientError, BotoCoreError):
            log.exception("alarm evaluation at %s: GetMetricData failed", now)
            return
        for plan, record in plans:
            starts = [start for start, _ in plan.buckets]
            values = plan.values()
            outcome = ev.evaluate(plan.rule, values, record["StateValue"], starts)
            if outcome.retained or outcome.state == record["StateValue"]:
                continue
            reason_data = _state_reason_data(plan, outcome, values, now)
            try:
                self._change_state(plan.alarm, record, outcome.state, outcome.reason, reason_data, now)
            except (ClientError, BotoCoreError):
                log.exception("alarm %r: state change to %s failed", plan.alarm["AlarmName"], outcome.state)

    def _plan(self, alarm: dict, record: dict, now: datetime) -> Plan | None:
        why_not = _unsupported(alarm)
        if why_not:
            key = (alarm["AlarmName"], why_not)
            if key not in self._warned:  # once per alarm and cause, not every minute
                self._warned.add(key)
                log.warning("alarm %r stays %s: %s", alarm["AlarmName"], record["StateValue"], why_not)
            return None
        rule = ev.AlarmRule.from_metric_alarm(alarm)
        size = ev.evaluation_range(rule.evaluation_periods)
        buckets = ev.evaluation_buckets(now, int(alarm["Period"]), size, record.get("EvaluationWindow"))
        return Plan(alarm, rule, buckets)

    # -- composite alarms --

    def _arn(self, name: str) -> str:
        return f"arn:aws:cloudwatch:{self.platform.region}:{self.platform.account_id}:alarm:{name}"

    def _states(self) -> dict[str, dict]:
        """Every alarm's record by name (metric alarms and composites): what composite rules read."""
        records = {r["AlarmName"]: r for r in self.platform.store.list(ALARM_KIND)}
        records.update({r["AlarmName"]: r for r in self.platform.store.list(COMPOSITE_KIND)})
        return records

    def _evaluate_composites(self, now: datetime) -> None:
        """Each composite's rule on its children's current states, until nothing changes."""
        for _ in range(MAX_COMPOSITE_PASSES):
            changed = False
            records = self._states()

            def state_of(name: str, records: Mapping = records) -> str:
                child = records.get(name)
                return child["StateValue"] if child else ev.INSUFFICIENT_DATA

            for record in sorted(self.platform.store.list(COMPOSITE_KIND), key=lambda r: r["AlarmName"]):
                try:
                    tree = composite_rule.parse(record["AlarmRule"])
                except composite_rule.RuleError:
                    log.exception("composite alarm %r: its rule no longer parses", record["AlarmName"])
                    continue

                state = ev.ALARM if composite_rule.evaluate(tree, state_of) else ev.OK
                if state == record["StateValue"]:
                    continue
                if state == ev.ALARM:
                    triggering = composite_rule.holding(tree, state_of)
                else:  # the child whose change made the rule false: the most recent transition
                    triggering = composite_rule.children(tree)
                triggering = sorted((name for name in triggering if name in records),
                                    key=lambda name: records[name]["StateTransitionedTimestamp"], reverse=True)
                if state == ev.OK:
                    triggering = triggering[:1]
                self._change_composite_state(record, state, [records[name] for name in triggering], now)
                changed = True
            if not changed:
                return
        log.warning("composite alarms did not settle in %d passes (a cycle in their rules?)", MAX_COMPOSITE_PASSES)

    def _change_composite_state(self, record: dict, state: str, triggering: list[dict], now: datetime) -> None:
        children = [{"arn": child["AlarmArn"], "state": {
            "value": child["StateValue"], "timestamp": _aws_time(_instant(child["StateTransitionedTimestamp"]))}}
            for child in triggering]
        if triggering:
            first = triggering[0]
            moment = _instant(first["StateTransitionedTimestamp"]).astimezone(timezone.utc)
            reason = f"{first['AlarmArn']} transitioned to {first['StateValue']} at {moment:%A %d %B, %Y %H:%M:%S} UTC"
        else:
            reason = f"the alarm rule evaluated to {'TRUE' if state == ev.ALARM else 'FALSE'}"
        self._apply_composite_state(record, state, reason[:MAX_STATE_REASON],
                                    json.dumps({"triggeringAlarms": children}, separators=(",", ":")), now)

    def _set_composite_state(self, record: dict, params: Mapping, now: datetime) -> None:
        """SetAlarmState on a composite: held until its children next change, actions if it changed."""
        if params.get("StateReasonData"):
            try:
                json.loads(params["StateReasonData"])
            except ValueError:
                raise _invalid("StateReasonData must be JSON") from None
        self._apply_composite_state(record, params["StateValue"], params["StateReason"],
                                    params.get("StateReasonData"), now)

    def _apply_composite_state(self, record: dict, state: str, reason: str, reason_data: str | None,
                               now: datetime) -> None:
        old_state = record["StateValue"]
        previous = {"stateValue": old_state, "stateReason": record["StateReason"]}
        record.update(StateValue=state, StateReason=reason, StateUpdatedTimestamp=_iso(now))
        if reason_data:
            record["StateReasonData"] = reason_data
        else:
            record.pop("StateReasonData", None)
        if state == old_state:
            self.platform.store.put(COMPOSITE_KIND, record["AlarmName"], record)
            return
        record["StateTransitionedTimestamp"] = _iso(now)
        self.platform.store.put(COMPOSITE_KIND, record["AlarmName"], record)
        self._state_update_history(record, old_state, reason, now, previous, COMPOSITE_KIND)
        message = composite_notification(record, old_state, self.platform.account_id, self.platform.region, now)
        self._run_actions(record, record, old_state, now, message, COMPOSITE_KIND)

    # -- keeping our record and moto in step --

    def _reconcile(self, alarm: dict, now: datetime) -> dict:
        """Our record for `alarm`, noticing creation, re-put and SetAlarmState done directly in moto."""
        record = self.platform.store.get(ALARM_KIND, alarm["AlarmName"])
        if record is None or record["AlarmArn"] != alarm["AlarmArn"]:
            return self._created(alarm, now, None)
        if alarm["StateValue"] == ev.OK and alarm.get("StateReason") == INITIAL_REASON:
            # moto resets every PutMetricAlarm to OK/"Unchecked"; we never write that pair.
            return self._updated(alarm, record, now, None)
        if (alarm["StateValue"], alarm.get("StateReason")) != (record["StateValue"], record["StateReason"]):
            return self._set_externally(alarm, record, now)
        return record

    def _created(self, alarm: dict, now: datetime, window: Mapping | None) -> dict:
        record = _jsonable(alarm)
        record.update(
            StateValue=ev.INSUFFICIENT_DATA, StateReason=INITIAL_REASON,
            AlarmConfigurationUpdatedTimestamp=_iso(now), StateUpdatedTimestamp=_iso(now),
            StateTransitionedTimestamp=_iso(now),
        )
        record.pop("StateReasonData", None)
        if window:
            record["EvaluationWindow"] = dict(window)
        self._set_moto_state(record)
        self.platform.store.put(ALARM_KIND, record["AlarmName"], record)
        self._history(record["AlarmName"], now, "ConfigurationUpdate",
                      f'Alarm "{record["AlarmName"]}" created',
                      {"version": "1.0", "type": "Create", "createdAlarm": _camel(record)})
        return record

    def _updated(self, alarm: dict, record: dict, now: datetime, window: Mapping | None) -> dict:
        """PutMetricAlarm on an existing alarm: new configuration, state left unchanged [API]."""
        updated = _jsonable(alarm)
        for key in ("StateValue", "StateReason", "StateReasonData", "StateUpdatedTimestamp",
                    "StateTransitionedTimestamp"):
            updated.pop(key, None)
            if key in record:
                updated[key] = record[key]
        updated["AlarmConfigurationUpdatedTimestamp"] = _iso(now)
        updated.pop("EvaluationWindow", None)
        if window:
            updated["EvaluationWindow"] = dict(window)
        self._set_moto_state(updated)
        self.platform.store.put(ALARM_KIND, updated["AlarmName"], updated)
        self._history(updated["AlarmName"], now, "ConfigurationUpdate",
                      f'Alarm "{updated["AlarmName"]}" updated',
                      {"version": "1.0", "type": "Update", "originalAlarm": _camel(record),
                       "updatedAlarm": _camel(updated)})
        return updated

    def _set_externally(self, alarm: dict, record: dict, now: datetime) -> dict:
        """Someone called SetAlarmState: adopt it; a changed state runs that state's actions."""
        old_state = record["StateValue"]
        previous = {"stateValue": old_state, "stateReason": record["StateReason"]}
        record.update(StateValue=alarm["StateValue"], StateReason=alarm.get("StateReason", ""),
                      StateUpdatedTimestamp=_iso(now))
        if alarm.get("StateReasonData"):
            record["StateReasonData"] = alarm["StateReasonData"]
        else:
            record.pop("StateReasonData", None)
        if old_state != record["StateValue"]:
            record["StateTransitionedTimestamp"] = _iso(now)
        self.platform.store.put(ALARM_KIND, record["AlarmName"], record)
        if old_state != record["StateValue"]:
            self._state_update_history(record, old_state, alarm.get("StateReason"), now, previous)
            self._run_actions(alarm, record, old_state, now)
        return record

    def _change_state(self, alarm: dict, record: dict, state: str, reason: str,
                      reason_data: str, now: datetime) -> None:
        old = {"stateValue": record["StateValue"], "stateReason": record["StateReason"]}
        old_state = record["StateValue"]
        record.update(StateValue=state, StateReason=reason[:MAX_STATE_REASON], StateReasonData=reason_data,
                      StateUpdatedTimestamp=_iso(now), StateTransitionedTimestamp=_iso(now))
        self._set_moto_state(record)
        self.platform.store.put(ALARM_KIND, record["AlarmName"], record)
        self._state_update_history(record, old_state, record["StateReason"], now, previous=old)
        self._run_actions(alarm, record, old_state, now)

    def _set_moto_state(self, record: Mapping) -> None:
        params = {"AlarmName": record["AlarmName"], "StateValue": record["StateValue"],
                  "StateReason": record["StateReason"]}
        if record.get("StateReasonData"):
            params["StateReasonData"] = record["StateReasonData"]
        self.cloudwatch.set_alarm_state(**params)

    def _forget_deleted(self, present: set[str], now: datetime) -> None:
        for record in self.platform.store.list(ALARM_KIND):
            if record["AlarmName"] not in present:
                self.platform.store.delete(ALARM_KIND, record["AlarmName"])
                self._history(record["AlarmName"], now, "ConfigurationUpdate",
                              f'Alarm "{record["AlarmName"]}" deleted',
                              {"version": "1.0", "type": "Delete", "deletedAlarm": _camel(record)})

    def _describe_alarms(self) -> list[dict]:
        alarms: list[dict] = []
        for page in self.cloudwatch.get_paginator("describe_alarms").paginate(AlarmTypes=["MetricAlarm"]):
            alarms.extend(page.get("MetricAlarms", []))
        return alarms

    def _describe_one(self, name: str) -> dict:
        found = self.cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"]
        if not found:
            raise _invalid(f"alarm {name!r} does not exist")
        return found[0]

    # -- history and actions --

    def _history(self, alarm_name: str, now: datetime, item_type: str, summary: str, data: Mapping,
                 alarm_type: str = ALARM_KIND) -> None:
        item = {"AlarmName": alarm_name, "AlarmType": alarm_type, "Timestamp": _iso(now),
                "HistoryItemType": item_type, "HistorySummary": summary,
                "HistoryData": json.dumps(data, separators=(",", ":"))}
        self.platform.store.put(HISTORY_KIND, f"{alarm_name}/{uuid.uuid4().hex}", item)

    def _state_update_history(self, record: Mapping, old_state: str, reason: str | None,
                              now: datetime, previous: Mapping | None, alarm_type: str = ALARM_KIND) -> None:
        new_state = {"stateValue": record["StateValue"], "stateReason": reason or ""}
        if record.get("StateReasonData"):
            new_state["stateReasonData"] = json.loads(record["StateReasonData"])
        self._history(record["AlarmName"], now, "StateUpdate",
                      f"Alarm updated from {old_state} to {record['StateValue']}",
                      {"version": "1.0", "oldState": previous or {"stateValue": old_state},
                       "newState": new_state}, alarm_type)

    def _run_actions(self, alarm: Mapping, record: Mapping, old_state: str, now: datetime,
                     payload: Mapping | None = None, alarm_type: str = ALARM_KIND) -> None:
        if not alarm.get("ActionsEnabled", True):
            return
        new_state = record["StateValue"]
        targets = alarm.get(ACTIONS_FOR_STATE[new_state]) or []
        if not targets:
            return
        if payload is None:
            payload = notification(alarm, record, old_state, self.platform.account_id, self.platform.region, now)
        message = json.dumps(payload, separators=(",", ":"))
        subject = f'{new_state}: "{alarm["AlarmName"]}" in {region_display_name(self.platform.region)}'
        for arn in targets:
            data = {"actionState": "Succeeded", "stateUpdateTimestamp": int(now.timestamp() * 1000),
                    "notificationResource": arn, "publishedMessage": message}
            summary = f"Successfully executed action {arn}"
            try:
                if not arn.startswith("arn:aws:sns:"):
                    raise ValueError("only SNS topic actions are performed by the local stack")
                self.platform.aws_client("sns").publish(TopicArn=arn, Subject=subject[:MAX_SUBJECT], Message=message)
            except (ClientError, BotoCoreError, ValueError) as error:
                log.warning("alarm %r: action %s failed: %s", alarm["AlarmName"], arn, error)
                data = {"actionState": "Failed", "stateUpdateTimestamp": data["stateUpdateTimestamp"],
                        "notificationResource": arn, "error": str(error)}
                summary = f"Failed to execute action {arn}"
            self._history(alarm["AlarmName"], now, "Action", summary, data, alarm_type)


# --- message and record formats ---------------------------------------------------------------


def notification(alarm: Mapping, record: Mapping, old_state: str, account_id: str, region: str,
                 now: datetime) -> dict:
    """CloudWatch's alarm notification (the SNS Message), key order as CloudWatch sends it."""
    trigger = {
        "MetricName": alarm.get("MetricName"),
        "Namespace": alarm.get("Namespace"),
        "StatisticType": "Statistic",
        "Statistic": NOTIFICATION_STATISTIC.get(alarm.get("Statistic"), alarm.get("Statistic")),
        "Unit": alarm.get("Unit"),
        "Dimensions": [{"value": d["Value"], "name": d["Name"]} for d in alarm.get("Dimensions") or []],
        "Period": alarm.get("Period"),
        "EvaluationPeriods": alarm.get("EvaluationPeriods"),
    }
    if alarm.get("DatapointsToAlarm") is not None:
        trigger["DatapointsToAlarm"] = alarm["DatapointsToAlarm"]
    trigger.update({
        "ComparisonOperator": alarm.get("ComparisonOperator"),
        "Threshold": alarm.get("Threshold"),
        "TreatMissingData": alarm.get("TreatMissingData") or "missing",
        "EvaluateLowSampleCountPercentile": alarm.get("EvaluateLowSampleCountPercentile") or "",
    })
    return {
        "AlarmName": alarm["AlarmName"],
        "AlarmDescription": alarm.get("AlarmDescription"),
        "AWSAccountId": account_id,
        "AlarmConfigurationUpdatedTimestamp": _aws_time(_instant(record["AlarmConfigurationUpdatedTimestamp"])),
        "NewStateValue": record["StateValue"],
        "NewStateReason": record["StateReason"],
        "StateChangeTime": _aws_time(now),
        "Region": region_display_name(region),
        "AlarmArn": alarm["AlarmArn"],
        "OldStateValue": old_state,
        "OKActions": list(alarm.get("OKActions") or []),
        "AlarmActions": list(alarm.get("AlarmActions") or []),
        "InsufficientDataActions": list(alarm.get("InsufficientDataActions") or []),
        "Trigger": trigger,
    }


def composite_notification(record: Mapping, old_state: str, account_id: str, region: str, now: datetime) -> dict:
    """CloudWatch's composite alarm notification (the SNS Message): no Trigger, the rule and the
    children that made it change instead, so the page says which child alarm fired."""
    reason_data = json.loads(record.get("StateReasonData") or "{}")
    return {
        "AlarmName": record["AlarmName"],
        "AlarmDescription": record.get("AlarmDescription"),
        "AWSAccountId": account_id,
        "NewStateValue": record["StateValue"],
        "NewStateReason": record["StateReason"],
        "StateChangeTime": _aws_time(now),
        "Region": region_display_name(region),
        "AlarmArn": record["AlarmArn"],
        "OldStateValue": old_state,
        "AlarmRule": record["AlarmRule"],
        "TriggeringChildren": [{"Arn": child["arn"], "State": {"Value": child["state"]["value"],
                                                                "Timestamp": child["state"]["timestamp"]}}
                               for child in reason_data.get("triggeringAlarms", [])],
        "OKActions": list(record.get("OKActions") or []),
        "AlarmActions": list(record.get("AlarmActions") or []),
        "InsufficientDataActions": list(record.get("InsufficientDataActions") or []),
    }


def _state_reason_data(plan: Plan, outcome: ev.Evaluation, values: Sequence[float | None],
                       now: datetime) -> str:
    """StateReasonData as CloudWatch writes it: the query, the threshold, the points used."""
    starts = [start for start, _ in plan.buckets]
    missing = [i for i in reversed(range(len(values))) if values[i] is None][:outcome.filled]
    evaluated = sorted(set(outcome.evaluated) | set(missing), reverse=True)
    points = []
    for i in evaluated:
        point: dict = {"timestamp": _aws_time(starts[i])}
        aggregate = plan.aggregates[i]
        if values[i] is not None and aggregate is not None:
            point.update(sampleCount=aggregate.count, value=values[i])
        points.append(point)
    data = {
        "version": "1.0",
        "queryDate": _aws_time(now),
        "startDate": _aws_time(starts[min(evaluated)] if evaluated else starts[0]),
        "statistic": plan.statistic,
        "period": int(plan.alarm["Period"]),
        "recentDatapoints": [values[i] for i in sorted(outcome.evaluated)],
        "threshold": plan.rule.threshold,
        "evaluatedDatapoints": points,
    }
    text = json.dumps(data, separators=(",", ":"))
    if len(text) > MAX_STATE_REASON_DATA:
        data.pop("evaluatedDatapoints")
        text = json.dumps(data, separators=(",", ":"))
    return text


# The history's alarm snapshots use camelCase keys (e.g. "alarmName", "okactions").
_CAMEL_SPECIAL = {"OKActions": "okactions"}


def _camel(record: Mapping) -> dict:
    return {_CAMEL_SPECIAL.get(k, k[:1].lower() + k[1:]): v for k, v in record.items()}


@functools.cache
def _input_members(operation: str) -> tuple[str, ...]:
    model = service_model("cloudwatch")
    return tuple(model.operation_model(operation).input_shape.members)


def _offset_from(token: str | None) -> int:
    if token is None:
        return 0
    if not token.isdigit():
        raise InvalidNextToken(f"NextToken {token!r} is invalid: pass the NextToken of a previous answer")
    return int(token)


def _validate_put(params: Mapping) -> None:
    """What CloudWatch rejects and moto accepts, for the alarms we evaluate."""
    if params.get("Metrics") or params.get("EvaluationCriteria"):
        return  # stored by moto; not evaluated locally (logged at evaluation)
    try:
        rule = ev.AlarmRule.from_metric_alarm(params)
        if bool(params.get("Statistic")) == bool(params.get("ExtendedStatistic")):
            raise ValueError("specify exactly one of Statistic and ExtendedStatistic")
        if params.get("Period") is None:
            raise ValueError(f"alarm {params['AlarmName']!r} has no Period")
        ev.validate_period(int(params["Period"]), rule.evaluation_periods)
        wall_clock = (params.get("EvaluationWindow") or {}).get("WallClockWindow")
        if wall_clock is not None:
            if int(params["Period"]) not in ev.WALL_CLOCK_PERIODS:
                raise ValueError(f"Period {params['Period']} is not supported with a wall clock "
                                 f"window; use one of {ev.WALL_CLOCK_PERIODS}")
            ev.parse_timezone(wall_clock.get("Timezone") or "UTC")
    except ValueError as error:
        raise _invalid(f"PutMetricAlarm: {error}") from error


# --- wiring -----------------------------------------------------------------------------------


def install(platform) -> AlarmEvaluator:
    """Evaluate alarms on every clock minute and serve what moto lacks; returns the evaluator."""
    evaluator = AlarmEvaluator(platform)
    evaluator.restore()
    platform.register_operations("cloudwatch", {
        "PutMetricAlarm": evaluator.put_metric_alarm,
        "SetAlarmState": evaluator.set_alarm_state,
        "DescribeAlarms": evaluator.describe_alarms,
        "DescribeAlarmHistory": evaluator.describe_alarm_history,
        "PutCompositeAlarm": evaluator.put_composite_alarm,
        "DeleteAlarms": evaluator.delete_alarms,
    })
    platform.clock.subscribe(evaluator.tick)
    return evaluator
