"""Replay throughput: 500 sessions against an endpoint with 16 ms of model latency.

Through the whole local stack (boto3 InvokeEndpoint -> gateway -> model server), as the
monitoring job replays in production. Measured in the same run: sequential (concurrency 1),
the job's default concurrency 16, and the latency-bound limit 500 x 16 ms / concurrency.
Target (issue #2): concurrency 16 within 1.25x of the limit; the last lines say whether it does.

Also in the same run, the client's own floor: the replayer against an endpoint that answers at
once (bench/instant_endpoint.py, another process), so the CPU it spends is botocore's and the
replayer's per call. One process cannot replay faster than calls x that, whatever the
concurrency; on AWS the endpoint's work is remote and this floor is what remains local.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3

from diversity_monitor.contract import replay_settings_for
from diversity_monitor.inputs import load_validation_set
from diversity_monitor.local.platform import free_port, start_stack, wait_until_answering
from diversity_monitor.recommender import data, model
from diversity_monitor.replay import EndpointReplayer
from diversity_monitor.scenario import MODEL_IMAGE, ROLE_ARN

LATENCY_MS = 16
CONCURRENCY = 16
TARGET = 1.25  # issue #2: wall time at concurrency 16 within 1.25x of the latency-bound limit


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=500)
    parser.add_argument("--latency-ms", type=float, default=LATENCY_MS)
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY, help="the concurrency judged against the target")
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
        walls: dict[int, float] = {}
        for concurrency in (1, args.concurrency):  # both measured in this run, on the same endpoint
            settings = replay_settings_for(str(paths.validation_sessions), str(paths.catalog), concurrency=concurrency)
            replayer = EndpointReplayer("bench", settings, "bench")
            replayer.replay(sessions[:concurrency * 2], progress=False)  # warm the connection pool
            result = replayer.replay(sessions, progress=False)
            walls[concurrency] = result.wall_seconds
            limit = n * args.latency_ms / 1000.0 / concurrency
            print(f"{concurrency:>11} {result.wall_seconds:>8.2f} {limit:>8.2f} {result.wall_seconds / limit:>8.2f} "
                  f"{walls[1] / result.wall_seconds:>13.1f}x {result.succeeded == n!s:>4}")
        limit = n * args.latency_ms / 1000.0 / args.concurrency
        ratio = walls[args.concurrency] / limit
        verdict = "meets" if ratio <= TARGET else "MISSES"
        print(f"latency-bound limit {n} x {args.latency_ms:g} ms / {args.concurrency} = {limit:.2f} s; "
              f"concurrency {args.concurrency}: {walls[args.concurrency]:.2f} s = {ratio:.2f}x the limit, "
              f"sequential {walls[1]:.2f} s: {verdict} the {TARGET}x target")
        per_call = client_cpu_per_call(sessions, paths, Path(folder))
        floor = n * per_call
        print(f"client floor: {per_call * 1000:.2f} ms of CPU per InvokeEndpoint on the replaying side (botocore "
              f"and the replayer, against an instant endpoint), so {n} calls need {floor:.2f} s of one core: "
              f"{floor / limit:.1f}x the latency-bound limit before any endpoint work. Concurrency "
              f"{args.concurrency} through the stack: {walls[args.concurrency] / floor:.2f}x that floor "
              f"(the gateway and the model server share this machine's {os.cpu_count()} cores)")
    return 0


def client_cpu_per_call(sessions: list, paths, folder: Path) -> float:
    """CPU seconds this process spends per call replaying against an endpoint that does no work."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = folder / "instant-endpoint.log"
    with open(log, "wb") as output:
        server = subprocess.Popen([sys.executable, "-m", "bench.instant_endpoint", str(port)], stdout=output,
                                  stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parents[1])
    previous = os.environ.get("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME")
    try:
        wait_until_answering(url, server, "instant endpoint", log)
        os.environ["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"] = url  # boto3's own setting: only the runtime moves
        settings = replay_settings_for(str(paths.validation_sessions), str(paths.catalog), concurrency=1)
        replayer = EndpointReplayer("bench", settings, "bench-floor")
        replayer.replay(sessions[:50], progress=False)  # warm up
        started = time.process_time()
        result = replayer.replay(sessions, progress=False)
        if result.succeeded != len(sessions):
            raise RuntimeError(f"instant endpoint: {result.succeeded} of {len(sessions)} calls succeeded")
        return (time.process_time() - started) / len(sessions)
    finally:
        if previous is None:
            os.environ.pop("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", None)
        else:
            os.environ["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"] = previous
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
