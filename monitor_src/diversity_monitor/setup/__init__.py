"""What the data scientists' notebooks (01-03) call to put the monitor in place.

`deployment` (endpoint configs, capture on, roll out and back), `capture_check` (tagged requests
and their capture files), `baseline_gate` (a candidate's baseline judged before deploy),
`pipeline_definition` (the same step as a SageMaker Pipeline), `schedule` (the hourly monitoring
schedule), `alarms` (the alarms and the pager topic), `dashboard` (the endpoint's CloudWatch dashboard), `processing_schedule` (the same container
as an EventBridge-scheduled Processing job, for teams without Model Monitor).
"""
