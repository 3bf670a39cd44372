"""The platform's rules as code: what AWS promises, checked the way AWS checks it.

`container_paths` (the one place that maps /opt/ml), `service_schema` (requests and values
against botocore's service models), `schedule_expression` (Model Monitor's cron forms and
analysis windows), `alarm_evaluation` (CloudWatch metric-alarm evaluation as the user guide
documents it; the local stack and the alarm backtest both use it), `dashboard_body` (CloudWatch's
dashboard body structure as data; the set-up checks what it builds, the local stack what it is sent), `session` (pointing a
notebook's boto3 at AWS or at the local stack). Nothing here knows about diversity.
"""
