"""What the on-call's runbooks and the investigation notebook (04) call.

`report_history` (the hourly reports read back, and what they say happened), `incident` (the
diversity-alarm runbook: confirm, suspect, replay, roll back, verify, record), `failed_run` (the
failed-run runbook: which run, why, re-run the hour), `investigation` (notebook 04),
`monitoring_views` (the schedule and alarms as tables), `dashboard_view` (the endpoint's dashboard's
graphs as images, for the alarm runbook and the demo), `capture_stats` (the `capture-stats`
command: live-traffic diversity from capture).
"""
