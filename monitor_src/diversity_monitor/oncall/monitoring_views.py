"""What the on-call sees of the monitoring set-up, as tables (notebook 03 and the runbooks).

Everything is read back from the services (DescribeMonitoringSchedule, DescribeAlarms), not from
the requests that created it, so the tables show what is really in place.
"""

from __future__ import annotations

import boto3
import pandas as pd

from diversity_monitor.conventions import reports_uri_of


def schedule_frame(schedule_name: str, client=None) -> pd.DataFrame:
    client = client or boto3.client("sagemaker")
    described = client.describe_monitoring_schedule(MonitoringScheduleName=schedule_name)
    config = described["MonitoringScheduleConfig"]
    job = config["MonitoringJobDefinition"]
    baseline = job.get("BaselineConfig", {})
    last = described.get("LastMonitoringExecutionSummary", {})
    rows = {
        "schedule": described["MonitoringScheduleName"],
        "status": described["MonitoringScheduleStatus"],
        "endpoint": described.get("EndpointName"),
        "expression": config["ScheduleConfig"]["ScheduleExpression"],
        "image": job["MonitoringAppSpecification"]["ImageUri"],
        "container arguments": " ".join(job["MonitoringAppSpecification"].get("ContainerArguments", [])),
        "baseline statistics": baseline.get("StatisticsResource", {}).get("S3Uri"),
        "baseline constraints": baseline.get("ConstraintsResource", {}).get("S3Uri"),
        "reports": reports_uri_of(job),
        "last execution": last.get("MonitoringExecutionStatus", "none yet"),
    }
    return pd.DataFrame({"value": rows}).rename_axis(schedule_name)


def alarms_frame(alarm_names: list[str], client=None) -> pd.DataFrame:
    client = client or boto3.client("cloudwatch")
    answer = client.describe_alarms(AlarmNames=list(alarm_names), AlarmTypes=["MetricAlarm", "CompositeAlarm"])
    found = {alarm["AlarmName"]: alarm for alarm in answer["MetricAlarms"] + answer.get("CompositeAlarms", [])}
    missing = [name for name in alarm_names if name not in found]
    if missing:
        raise LookupError(f"alarms not found: {', '.join(missing)}")
    rows = []
    for name in alarm_names:
        alarm = found[name]
        if "AlarmRule" in alarm:  # the composite: the one that pages
            rows.append({"alarm": name, "state": alarm["StateValue"],
                         "actions": "enabled" if alarm.get("ActionsEnabled", True) else "DISABLED (pages nobody)",
                         "condition": alarm["AlarmRule"], "missing data": "", "dimensions": "",
                         "notifies": ", ".join(alarm.get("AlarmActions", [])),
                         "description": alarm.get("AlarmDescription", "")})
            continue
        operator = {"LessThanThreshold": "<", "LessThanOrEqualToThreshold": "<=",
                    "GreaterThanThreshold": ">", "GreaterThanOrEqualToThreshold": ">="}.get(alarm["ComparisonOperator"], alarm["ComparisonOperator"])
        rows.append({
            "alarm": name,
            "state": alarm["StateValue"],
            "actions": ("none: pages through the composite" if not alarm.get("AlarmActions")
                        else "enabled" if alarm.get("ActionsEnabled", True) else "DISABLED (not armed: pages nobody)"),
            "condition": (f"{alarm['Statistic']}({alarm['MetricName']}) {operator} {alarm['Threshold']:g} for "
                          f"{alarm.get('DatapointsToAlarm', alarm['EvaluationPeriods'])} of {alarm['EvaluationPeriods']} "
                          f"x {alarm['Period'] // 60} min"),
            "missing data": alarm.get("TreatMissingData", "missing"),
            "dimensions": ", ".join(f"{d['Name']}={d['Value']}" for d in alarm["Dimensions"]),
            "notifies": ", ".join(alarm.get("AlarmActions", [])),
            "description": alarm.get("AlarmDescription", ""),
        })
    return pd.DataFrame(rows).set_index("alarm")
