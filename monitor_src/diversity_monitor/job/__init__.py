"""The hourly monitoring run, in the order it happens:

contract -> inputs -> replay -> measure -> compare -> model_monitor_files -> metrics_file -> report -> entrypoint

- `contract`: what the platform hands the container (environment, ContainerArguments), parsed once;
- `inputs`: the validation set and the catalog;
- `replay`: InvokeEndpoint for every held-out session, and which endpoint config served them;
- `measure`: the replayed lists measured with `measures.metrics`;
- `compare`: violations against the floor, the success rate and the baseline;
- `model_monitor_files`: statistics.json, constraints.json, constraint_violations.json;
- `metrics_file`: the CloudWatch metrics file (or PutMetricData for a plain Processing job);
- `report`: the report notebook executed by papermill, and its HTML;
- `entrypoint`: `diversity-monitor run`, from the contract to the exit message.

`analysis` is what the report notebook runs (inputs to Model Monitor files); `report_views` are
its tables and figures; `baseline` builds and loads baselines; `commands` are the `baseline` and
`replay` commands.
"""
