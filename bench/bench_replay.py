"""Replay throughput: 500 sessions against an endpoint with 16 ms of model latency.

Through the whole local stack (boto3 InvokeEndpoint -> gateway -> model server), as the
monitoring job replays in production. Measured in the same run: sequential (concurrency 1),
the job's default concurrency 16, and the latency-bound limit 500 x 16 ms / concurrency.
Target (issue #2): concurrency 16 within 1.25x of the limit.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import boto3

from diversity_monitor.contract import ReplaySettings
from diversity_monitor.inputs import load_validation_set
from diversity_monitor.local.platform import start_stack
from diversity_monitor.recommender import data, model
from diversity_monitor.replay import EndpointReplayer
from diversity_monitor.scenario import MODEL_IMAGE, ROLE_ARN

LATENCY_MS = 16


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=500)
    parser.add_argument("--latency-ms", type=float, default=LATENCY_MS)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16, 32])
    args = parser.parse_args(argv if argv is not None else [])
    with tempfile.TemporaryDirectory() as folder, start_stack(Path(folder) / "stack", port=0) as stack:
        os.environ.update(stack.platform.aws_environment())
        work = Path(folder)
        paths = data.generate(work / "data", n_validation=min(args.sessions, 500))
        archive = model.train(work / "data", work / "model", "bench")
        boto3.client("s3").create_bucket(Bucket="bench", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        boto3.client("s3").upload_file(str(archive), "bench", "model.tar.gz")
        sagemaker = boto3.client("sagemaker")
        sagemaker.create_model(ModelName="bench", ExecutionRoleArn=ROLE_ARN, PrimaryContainer={
            "Image": MODEL_IMAGE, "ModelDataUrl": "s3://bench/model.tar.gz",
            "Environment": {"RECOMMENDER_LATENCY_MS": f"{args.latency_ms:g}"}})
        sagemaker.create_endpoint_config(EndpointConfigName="bench", ProductionVariants=[{
            "VariantName": "AllTraffic", "ModelName": "bench", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
        sagemaker.create_endpoint(EndpointName="bench", EndpointConfigName="bench")
        sagemaker.get_waiter("endpoint_in_service").wait(EndpointName="bench", WaiterConfig={"Delay": 0.5})
        sessions = load_validation_set(str(paths.validation_sessions))[: args.sessions]
        n = len(sessions)
        print(f"{n} sessions, {args.latency_ms:g} ms model latency, through the local stack ({stack.url})")
        print(f"{'concurrency':>11} {'wall s':>8} {'limit s':>8} {'x limit':>8} {'vs sequential':>14} {'ok':>4}")
        sequential = None
        for concurrency in args.concurrency:
            settings = ReplaySettings(str(paths.validation_sessions), str(paths.catalog), 10,
                                      "recommendations[].article_id", concurrency, None, 10.0, 4)
            replayer = EndpointReplayer("bench", settings, "bench")
            replayer.replay(sessions[:concurrency * 2], progress=False)  # warm the connection pool
            result = replayer.replay(sessions, progress=False)
            limit = n * args.latency_ms / 1000.0 / concurrency
            sequential = sequential or result.wall_seconds
            print(f"{concurrency:>11} {result.wall_seconds:>8.2f} {limit:>8.2f} {result.wall_seconds / limit:>8.2f} "
                  f"{sequential / result.wall_seconds:>13.1f}x {result.succeeded == n!s:>4}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
