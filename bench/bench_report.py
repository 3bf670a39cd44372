"""The report's cost: a whole hourly run against the same run without its report.

Both are fresh processes doing the same hour against the same endpoint (bench/instant_endpoint.py,
16 ms of latency, also answering the control plane's DescribeEndpoint): `diversity-monitor run`
(contract, preflight, papermill executing the report notebook in a kernel, report.html, metrics
file, exit message) and a process that calls the same analysis directly (`job.analysis.
run_monitoring`: inputs, replay, measure, compare, Model Monitor files). The difference is what the
report adds; the HTML rendering is also timed alone (a fresh process rendering the notebook the
run left). Both run in the image's own environment: a virtual environment with exactly what the
Dockerfile installs (uv.lock without dev tools or extras, the package itself not editable), made
or refreshed under build/: the project's .venv holds JupyterLab's extras, some of which slow every
notebook import (jsonschema's optional format checkers) and are not in the image.
Target (issue #11): the report adds at most 2 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.bench_replay import remote_like_endpoint
from diversity_monitor.aws import container_paths
from diversity_monitor.conventions import EXECUTED_HTML
from diversity_monitor.recommender import data

ROOT = Path(__file__).resolve().parents[1]
IMAGE_VENV = ROOT / "build" / "image-venv"
UV = ROOT / ".tools" / "bin" / "uv"
LATENCY_MS = 16
TARGET_SECONDS = 2.0
ANALYSIS_ONLY = (
    "import sys\n"
    "from diversity_monitor.job.analysis import run_monitoring\n"
    "from diversity_monitor.job.contract import load_context\n"
    "run_monitoring(load_context(sys.argv[1:]))\n"
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sessions", type=int, default=500)
    args = parser.parse_args(argv if argv is not None else [])
    python = image_python()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        paths = data.generate(work / "data", n_validation=args.sessions)
        arguments = ["--validation-set", str(paths.validation_sessions), "--catalog", str(paths.catalog)]
        with remote_like_endpoint(LATENCY_MS, work) as url:
            env = {**os.environ, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                   "AWS_DEFAULT_REGION": "eu-west-1", "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": url,
                   "AWS_ENDPOINT_URL_SAGEMAKER": url, "MPLBACKEND": "Agg",
                   "sagemaker_endpoint_name": "bench", "sagemaker_monitoring_schedule_name": "bench-hourly",
                   "start_time": "2027-10-31T08:00:00Z", "end_time": "2027-10-31T09:00:00Z"}
            whole, analysis, html = [], [], []
            for repeat in range(args.repeats):  # interleaved, so drift on the machine hits both alike
                analysis.append(timed_run(work / f"analysis-{repeat}", env, [python, "-c", ANALYSIS_ONLY, *arguments]))
                job = work / f"whole-{repeat}"
                whole.append(timed_run(job, env, [python, "-m", "diversity_monitor.cli", "run", *arguments]))
                html.append(render_seconds(python, job))
    added = statistics.median(whole) - statistics.median(analysis)
    print(f"{args.sessions} sessions, {LATENCY_MS} ms endpoint, median of {args.repeats} fresh processes each, "
          f"in the image's environment ({IMAGE_VENV.relative_to(ROOT)})")
    print(f"{'':<34} {'median s':>8}   runs")
    for name, times in (("run without the report", analysis), ("whole run (papermill + HTML)", whole),
                        ("  of which report.html (a process)", html)):
        print(f"{name:<34} {statistics.median(times):>8.2f}   {' '.join(f'{t:.2f}' for t in times)}")
    verdict = "meets" if added <= TARGET_SECONDS else "MISSES"
    print(f"the report adds {added:.2f} s ({statistics.median(whole) / statistics.median(analysis):.2f}x the run "
          f"without it): {verdict} the {TARGET_SECONDS:g} s target")
    return 0


def timed_run(job_root: Path, env: dict[str, str], command: list[str]) -> float:
    job_root.mkdir()
    started = time.perf_counter()
    done = subprocess.run(command, env={**env, container_paths.ML_ROOT_ENV: str(job_root)}, capture_output=True,
                          text=True, timeout=600)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])} failed ({done.returncode}): {done.stderr[-2000:]}")
    return seconds


def render_seconds(python: str, job_root: Path) -> float:
    folder = container_paths.resolve(container_paths.PROCESSING_OUTPUT, job_root)
    (folder / EXECUTED_HTML).unlink()
    script = "import sys\nfrom pathlib import Path\nfrom diversity_monitor.job.report import render_html\n" \
             "render_html(Path(sys.argv[1]), 'bench')\n"
    started = time.perf_counter()
    subprocess.run([python, "-c", script, str(folder)], check=True, timeout=300)
    return time.perf_counter() - started


def image_python() -> str:
    """The image's environment (see the module doc), made or refreshed; its interpreter."""
    requirements = ROOT / "build" / "image-requirements.txt"
    requirements.parent.mkdir(exist_ok=True)
    steps = [
        [str(UV), "export", "--frozen", "--no-dev", "--no-emit-project", "--format", "requirements.txt", "-q",
         "-o", str(requirements)],
        *([[str(UV), "venv", "-q", "--python", sys.executable, str(IMAGE_VENV)]] if not IMAGE_VENV.exists() else []),
        [str(UV), "pip", "sync", "-q", "--python", str(IMAGE_VENV / "bin" / "python"), str(requirements)],
        [str(UV), "pip", "install", "-q", "--python", str(IMAGE_VENV / "bin" / "python"), "--no-deps", str(ROOT)],
        [str(IMAGE_VENV / "bin" / "python"), "-m", "ipykernel", "install", "--sys-prefix", "--name", "python3"],
    ]
    for step in steps:
        subprocess.run(step, check=True, cwd=ROOT, stdout=subprocess.DEVNULL,
                       env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"})
    return str(IMAGE_VENV / "bin" / "python")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
