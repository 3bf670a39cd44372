"""The embedded local stack: moto for the generic AWS services, our stand-ins for the rest.

`stack` starts it all; `gateway` is its one URL; `platform` is what the modules share. Each
stand-in service is a module with `install(platform)` and an operation table: `hosting` and
`runtime` (SageMaker endpoints, InvokeEndpoint with `capture_writer` / `capture_delivery`),
`monitoring` and `monitoring_scheduler` (Model Monitor's API and the runs it fires, through
`processing` and `images`), `metric_data`, `alarms` and `dashboards` (CloudWatch). The kit never imports this
package; the stand-ins reach the kit only through the clock, `aws.container_paths` and boto3's
endpoint settings.
"""
