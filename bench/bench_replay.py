"""Replay throughput: 500 sessions against an endpoint with 16 ms of latency.

Two endpoints, each measured in the same run at concurrency 1 (sequential) and at the job's
default concurrency 16, next to the latency-bound limit 500 x 16 ms / concurrency. Target (issue
#2): concurrency 16 within 1.25x of the limit.

- A remote-like endpoint (bench/instant_endpoint.py in its own process, 16 ms of sleep and no
  model work): on AWS the endpoint's work happens on other machines, so this is the replayer's
  own figure. Concurrency 16 is measured on 1, 2 and 4 replay processes (`--replay-processes`).
- The reference recommender through the whole local stack (boto3 -> gateway -> model server),
  as the monitoring job replays in the demo; here the gateway and the model's scoring share this
  machine's cores with the replayer.

Each row also gives the CPU the whole machine spent on it (every process: replayer, workers,
endpoint): that CPU divided by the cores is a floor on the wall time no replayer can beat on
this machine. Last, the client's own floor: CPU per InvokeEndpoint against an endpoint that
answers at once, so 500 calls need at least that much of one core.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import boto3
import psutil

from diversity_monitor.demo.scenario import MODEL_IMAGE, ROLE_ARN
from diversity_monitor.job.contract import replay_settings_for
from diversity_monitor.job.inputs import load_validation_set
from diversity_monitor.job.replay import EndpointReplayer
from diversity_monitor.local.platform import free_port, wait_until_answering
from diversity_monitor.local.stack import start_stack
from diversity_monitor.recommender import data, model

LATENCY_MS = 16
CONCURRENCY = 16
PROCESSES = (1, 2, 4)
TARGET = 1.25  # issue #2: wall time at concurrency 16 within 1.25x of the latency-bound limit
CORES = os.cpu_count() or 1
REMOTE = "remote-like (no model work)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=500)
    parser.add_argument("--latency-ms", type=float, default=LATENCY_MS)
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY, help="the concurrency judged against the target")
    args = parser.parse_args(argv if argv is not None else [])
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        paths = data.generate(work / "data", n_validation=min(args.sessions, 500))
        sessions = load_validation_set(str(paths.validation_sessions))[: args.sessions]
        n = len(sessions)
        limit = n * args.latency_ms / 1000.0 / args.concurrency
        print(f"{n} sessions, {args.latency_ms:g} ms endpoint latency, {CORES} cores; latency-bound limit at "
              f"concurrency {args.concurrency}: {n} x {args.latency_ms:g} ms / {args.concurrency} = {limit:.2f} s")
        print(f"{'endpoint':<28} {'conc':>4} {'procs':>5} {'wall s':>7} {'x limit':>7} {'vs seq':>7} "
              f"{'machine cpu s':>13} {'cpu floor s':>11} {'ok':>4}")
        table = Table(n, args.latency_ms)
        # Dummy credentials and region: the remote-like endpoint checks neither, but botocore signs.
        os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="eu-west-1")
        with remote_like_endpoint(args.latency_ms, work) as url:
            os.environ["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"] = url  # boto3's own setting: only the runtime moves
            try:
                table.measure(REMOTE, sessions, paths, 1, 1)
                remote_rows = [(*table.measure(REMOTE, sessions, paths, args.concurrency, processes), processes)
                               for processes in PROCESSES]
            finally:
                os.environ.pop("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", None)
        with start_stack(work / "stack", port=0) as stack:
            os.environ.update(stack.platform.aws_environment())
            deploy_reference_recommender(work, paths, args.latency_ms)
            table.measure("reference model, local stack", sessions, paths, 1, 1)
            for processes in PROCESSES[:2]:
                table.measure("reference model, local stack", sessions, paths, args.concurrency, processes)
        best = min(remote_rows, key=lambda row: row[0])  # (wall, machine cpu, processes)
        ratio = best[0] / limit
        verdict = "meets" if ratio <= TARGET else "MISSES"
        print(f"remote-like endpoint, concurrency {args.concurrency}: best {best[0]:.2f} s on {best[2]} process(es) = "
              f"{ratio:.2f}x the limit: {verdict} the {TARGET}x target")
        floor_ratio = best[1] / CORES / limit
        print(f"  that row cost {best[1]:.2f} s of CPU on this machine (replayer and endpoint): on {CORES} cores no "
              f"replayer can finish in under {best[1] / CORES:.2f} s = {floor_ratio:.2f}x the limit here")
        per_call = client_cpu_per_call(sessions, paths, work)
        floor = n * per_call
        print(f"client floor: {per_call * 1000:.2f} ms of CPU per InvokeEndpoint on the replaying side (botocore "
              f"and the replayer, against an endpoint that answers at once): {n} calls need {floor:.2f} s of one core "
              f"= {floor / limit:.1f}x the limit in one process; {floor / CORES / limit:.1f}x spread over {CORES} cores")
    return 0


class Table:
    def __init__(self, n: int, latency_ms: float) -> None:
        self.n, self.latency_ms = n, latency_ms
        self.sequential: dict[str, float] = {}  # endpoint -> wall time at concurrency 1

    def measure(self, name: str, sessions: list, paths, concurrency: int, processes: int) -> tuple[float, float]:
        """Prints a row; returns (wall seconds, machine CPU seconds)."""
        settings = replay_settings_for(str(paths.validation_sessions), str(paths.catalog),
                                       concurrency=concurrency, replay_processes=processes)
        with EndpointReplayer("bench", settings, "bench") as replayer:
            replayer.replay(sessions[: concurrency * 2], progress=False)  # start workers, warm connections
            before = _machine_busy_seconds()
            result = replayer.replay(sessions, progress=False)
            cpu = _machine_busy_seconds() - before
        wall = result.wall_seconds
        if concurrency == 1:
            self.sequential[name] = wall
        limit = self.n * self.latency_ms / 1000.0 / concurrency
        print(f"{name:<28} {concurrency:>4} {processes:>5} {wall:>7.2f} {wall / limit:>7.2f} "
              f"{self.sequential[name] / wall:>6.1f}x {cpu:>13.2f} {cpu / CORES:>11.2f} {result.succeeded == self.n!s:>4}",
              flush=True)
        return wall, cpu


def _machine_busy_seconds() -> float:
    """CPU seconds every process on the machine has spent, so far (all cores)."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


@contextmanager
def remote_like_endpoint(latency_ms: float, folder: Path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = folder / f"endpoint-{latency_ms:g}ms.log"
    with open(log, "wb") as output:
        server = subprocess.Popen([sys.executable, "-m", "bench.instant_endpoint", str(port), f"{latency_ms:g}"],
                                  stdout=output, stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parents[1])
    try:
        wait_until_answering(url, server, "instant endpoint", log)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


def deploy_reference_recommender(work: Path, paths, latency_ms: float) -> None:
    archive = model.train(work / "data", work / "model", "bench")
    boto3.client("s3").create_bucket(Bucket="bench", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    boto3.client("s3").upload_file(str(archive), "bench", "model.tar.gz")
    sagemaker = boto3.client("sagemaker")
    sagemaker.create_model(ModelName="bench", ExecutionRoleArn=ROLE_ARN, PrimaryContainer={
        "Image": MODEL_IMAGE, "ModelDataUrl": "s3://bench/model.tar.gz",
        "Environment": {"RECOMMENDER_LATENCY_MS": f"{latency_ms:g}"}})
    sagemaker.create_endpoint_config(EndpointConfigName="bench", ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": "bench", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
    sagemaker.create_endpoint(EndpointName="bench", EndpointConfigName="bench")
    sagemaker.get_waiter("endpoint_in_service").wait(EndpointName="bench", WaiterConfig={"Delay": 0.5})


def client_cpu_per_call(sessions: list, paths, folder: Path) -> float:
    """CPU seconds this process spends per call replaying against an endpoint that does no work."""
    previous = os.environ.get("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME")
    try:
        with remote_like_endpoint(0, folder) as url:
            os.environ["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"] = url
            settings = replay_settings_for(str(paths.validation_sessions), str(paths.catalog), concurrency=1)
            with EndpointReplayer("bench", settings, "bench-floor") as replayer:
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


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
