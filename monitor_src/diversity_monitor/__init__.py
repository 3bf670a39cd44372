"""Recommender-diversity monitor for SageMaker Model Monitor.

The layout is the architecture; imports point down this list, never up:

- `conventions`, `clock`, `storage`: every shared name and default, the kit's "now", I/O by URI;
- `aws/`: the platform's rules as code (container paths, service schemas, schedule expressions,
  CloudWatch alarm evaluation, boto3 session set-up); no kit logic;
- `measures/`: pure metric functions over ranked lists, and where the lists sit in a response;
- `capture/`: SageMaker data capture: the record format, where it lives, reading it;
- `job/`: the hourly run, in its order: contract -> inputs -> replay -> measure -> compare ->
  model_monitor_files -> metrics_file -> report -> entrypoint (exit);
- `setup/`: what the data scientists' notebooks call (capture, baseline gate, schedule, alarms);
- `oncall/`: what the runbooks and the investigation notebook call;
- `recommender/`: the reference news recommender the kit monitors on its local stack;
- `local/`: the AWS stand-ins (the embedded local stack); only `demo/` and `cli` reach into it;
- `demo/`: the incident from the design notes, end to end on the local stack.
"""

__version__ = "0.1.0"
