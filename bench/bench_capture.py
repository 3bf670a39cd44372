"""Benchmark the capture reader's live diversity pass on generated capture.

    .venv/bin/python -m bench.bench_capture [--records 200000] [--hours 4] [--repeat 3] [--keep DIR | --reuse DIR]

Generates realistic capture with the real `CaptureWriter` (JSON encoding, a 60-article history
in every request, ~1.5 KB a line, 1% replay traffic) into a temporary folder laid out as the
monitoring container sees it, then runs each variant in its own subprocess so CPU time and peak
RSS are isolated. Every variant reads the same hour folders (the same bytes) unless its name says
otherwise:

- reader, 1 worker, at 1, 2 and all hours: `capture.reader.live_diversity` (the whole pass), at
  three input sizes, so peak RSS can be seen not to grow with the input;
- reader, 2 workers: the same pass spread over two processes;
- pandas: the naive way, `pandas.read_json(lines=True)` per file, concatenated, then json.loads of
  each response and `metrics.accumulate`; also at 1 hour, to show how its memory grows;
- raw orjson parse: read the same bytes and `orjson.loads` every line, nothing else (the ceiling
  the issue names);
- raw msgspec parse: the same with the reader's own typed record decoder.

"records/s per core" divides records by the CPU seconds (user + system) of the pass, in the
process and its workers, excluding interpreter start and imports: less sensitive than wall-clock
rates to other load on the machine. Fast variants run `--repeat` times and report their least CPU
time (and their largest peak RSS). A fixed pure-Python loop is timed too, so figures from
machines of different speed can be compared. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import orjson

ENDPOINT, VARIANT = "news-recommender", "AllTraffic"
START = datetime(2024, 5, 1, 6, tzinfo=timezone.utc)
ARTICLES, CATEGORIES, HISTORY, K = 5000, 14, 60, 10
REPLAY_SHARE = 0.01
RECORDS_PER_FILE = 12_500
FULL_RATE_HOUR = 5000 * 3600  # the design notes' endpoint at 100% capture


def generate(folder: Path, records: int, hours: int, seed: int = 7) -> tuple[Path, Path]:
    """Capture under folder/capture/<endpoint>/<variant>/yyyy/mm/dd/hh/, and folder/catalog.csv."""
    from diversity_monitor.local.capture_writer import CaptureWriter

    rng = np.random.default_rng(seed)
    article_ids = [f"a{index:05d}" for index in range(ARTICLES)]
    catalog_path = folder / "catalog.csv"
    with open(catalog_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["article_id", "category"])
        writer.writerows((article, f"category-{rng.integers(CATEGORIES)}") for article in article_ids)
    capture_root = folder / "capture"
    capture = CaptureWriter(str(capture_root), ENDPOINT, VARIANT, {"Input", "Output"}, ["application/json"],
                            ["text/csv"], 100, random.Random(seed), flush_at_records=RECORDS_PER_FILE)
    step = timedelta(seconds=hours * 3600 / records)
    # Arrays drawn with numpy, turned into Python lists once: per-record work is then plain indexing.
    histories = rng.integers(ARTICLES, size=(records, HISTORY)).tolist()
    ranked = (np.argsort(rng.random((records, 40)), axis=1)[:, :K]
              + rng.integers(ARTICLES - 40, size=(records, 1))).tolist()
    scores = np.round(np.sort(rng.random((records, K)), axis=1)[:, ::-1], 6).tolist()
    replay = (rng.random(records) < REPLAY_SHARE).tolist()
    moment = START
    for index in range(records):
        request = {"user_id": f"u{index % 90_000:05d}", "history": [article_ids[a] for a in histories[index]], "k": K}
        response = {
            "recommendations": [
                {"article_id": article_ids[a], "score": s} for a, s in zip(ranked[index], scores[index])
            ],
            "model_version": "news-mf-2024-04-29",
        }
        inference_id = f"{'diversity-replay-' if replay[index] else 'web-'}{index:09d}"
        capture.capture(orjson.dumps(request), "application/json", orjson.dumps(response), "application/json",
                        moment, inference_id)
        moment += step
    capture.flush()
    return capture_root, catalog_path


# --- variants, each run in a child process ---------------------------------------------------

def _files(source: Path, hours: int | None) -> list[str]:
    from diversity_monitor.capture.source import list_capture_files

    end = None if hours is None else START + timedelta(hours=hours)
    return [item.uri for item in list_capture_files(str(source), START if end else None, end).files]


def run_reader(source, catalog_path, hours, workers):
    from diversity_monitor.capture.reader import live_diversity
    from diversity_monitor.job.inputs import load_catalog

    end = None if hours is None else START + timedelta(hours=hours)
    stats = live_diversity(str(source), load_catalog(str(catalog_path)), start=START if end else None, end=end,
                           workers=workers)
    return stats.lines_read, {"live_lists": stats.live_lists, "mean": stats.accumulator.diversity().mean}


def run_job_live(source, catalog_path, hours, workers):
    """The capture pass as the hourly job makes it (job/live.py: its own choice of workers)."""
    from diversity_monitor.job.inputs import load_catalog
    from diversity_monitor.job.live import measure_live
    from diversity_monitor.measures.response_path import DEFAULT_RESPONSE_PATH

    end = None if hours is None else START + timedelta(hours=hours)
    live = measure_live(Path(source), load_catalog(str(catalog_path)), K, START if end else None, end,
                        DEFAULT_RESPONSE_PATH)
    return live.stats.lines_read, {"live_lists": live.lists, "mean": live.stats.accumulator.diversity().mean}


def run_pandas(source, catalog_path, hours, workers):
    import pandas as pd

    from diversity_monitor.job.inputs import load_catalog
    from diversity_monitor.measures.metrics import accumulate

    catalog = load_catalog(str(catalog_path))
    frame = pd.concat([pd.read_json(path, lines=True) for path in _files(source, hours)], ignore_index=True)
    lists = []
    for capture, metadata in zip(frame["captureData"], frame["eventMetadata"]):
        if metadata.get("inferenceId", "").startswith("diversity-replay-"):
            continue
        response = json.loads(capture["endpointOutput"]["data"])
        lists.append([item["article_id"] for item in response["recommendations"]])
    accumulator = accumulate(lists, catalog, K)
    return len(frame), {"live_lists": accumulator.lists, "mean": accumulator.diversity().mean}


def run_raw_parse(source, catalog_path, hours, workers):
    lines = 0
    for path in _files(source, hours):
        with open(path, "rb", buffering=1 << 20) as handle:
            for line in handle:
                orjson.loads(line)
                lines += 1
    return lines, {}


def run_raw_msgspec(source, catalog_path, hours, workers):
    from diversity_monitor.capture.record import typed_record_decoder

    decode, lines = typed_record_decoder().decode, 0
    for path in _files(source, hours):
        with open(path, "rb", buffering=1 << 20) as handle:
            for line in handle:
                decode(line)
                lines += 1
    return lines, {}


VARIANTS = {"reader": run_reader, "job-live": run_job_live, "pandas": run_pandas, "raw-parse": run_raw_parse,
            "raw-msgspec": run_raw_msgspec}


IMPORTS = {
    "reader": ["diversity_monitor.capture.reader", "diversity_monitor.job.inputs"],
    "job-live": ["diversity_monitor.job.live", "diversity_monitor.job.inputs"],
    "pandas": ["pandas", "diversity_monitor.job.inputs", "diversity_monitor.measures.metrics", "diversity_monitor.capture.source"],
    "raw-parse": ["diversity_monitor.capture.source"],
    "raw-msgspec": ["diversity_monitor.capture.source"],
}


def child(args: argparse.Namespace) -> None:
    for module in IMPORTS[args.child]:  # import time is not part of the pass
        importlib.import_module(module)
    own_before, workers_before = _cpu(resource.RUSAGE_SELF), _cpu(resource.RUSAGE_CHILDREN)
    started_wall = time.perf_counter()
    records, extra = VARIANTS[args.child](Path(args.source), Path(args.catalog), args.window_hours, args.workers)
    wall = time.perf_counter() - started_wall
    cpu = _cpu(resource.RUSAGE_SELF) - own_before + _cpu(resource.RUSAGE_CHILDREN) - workers_before
    print(json.dumps({
        "records": records, "wall_s": wall, "cpu_s": cpu, "peak_rss_mb": _peak_rss_mb(),
        # Workers start from this small process: their ru_maxrss is their own peak (at least this one's size).
        "peak_worker_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, **extra,
    }))


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _peak_rss_mb() -> float:
    """VmHWM: this process image's own peak (ru_maxrss would include the parent's size at fork)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(variant: str, source: Path, catalog: Path, *, workers=1, window_hours=None, repeat=1) -> dict:
    """The run with the least CPU time of `repeat` runs, with the largest peak RSS seen."""
    runs = [_measure_once(variant, source, catalog, workers, window_hours) for _ in range(repeat)]
    best = min(runs, key=lambda run: run["cpu_s"])
    return {**best, "peak_rss_mb": max(run["peak_rss_mb"] for run in runs),
            "peak_worker_rss_mb": max(run["peak_worker_rss_mb"] for run in runs)}


def _measure_once(variant: str, source: Path, catalog: Path, workers: int, window_hours: int | None) -> dict:
    command = [sys.executable, "-m", "bench.bench_capture", "--child", variant, "--source", str(source),
               "--catalog", str(catalog), "--workers", str(workers)]
    if window_hours is not None:
        command += ["--window-hours", str(window_hours)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent)
    if done.returncode != 0:
        raise RuntimeError(f"{variant} failed:\n{done.stderr}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_s"] = time.perf_counter() - started
    return result


def calibration_ms() -> float:
    """A fixed pure-Python loop, so figures from different machines can be compared."""
    started = time.process_time()
    for _ in range(5):
        sum(range(1_000_000))
    return (time.process_time() - started) / 5 * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.bench_capture", description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000, help="records to generate (default 200000)")
    parser.add_argument("--hours", type=int, default=4, help="hour folders to spread them over (default 4)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each fast variant; the least CPU time counts")
    parser.add_argument("--keep", metavar="DIR", help="generate into DIR and keep it")
    parser.add_argument("--reuse", metavar="DIR",
                        help="measure capture a previous --keep DIR holds instead of generating (pass its --records/--hours)")
    parser.add_argument("--child", choices=sorted(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    parser.add_argument("--catalog", help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--window-hours", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.child:
        child(args)
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-capture-") as scratch:
        folder = Path(args.reuse or args.keep or scratch)
        folder.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        if args.reuse:
            source, catalog = folder / "capture", folder / "catalog.csv"
        else:
            source, catalog = generate(folder, args.records, args.hours)
        sizes = [path.stat().st_size for path in source.rglob("*.jsonl")]
        print(f"{'reused' if args.reuse else 'generated'} {args.records:,} records in {len(sizes)} files over {args.hours} hour folders, "
              f"{sum(sizes) / args.records:,.0f} bytes a record, {sum(sizes) / 2**20:,.0f} MiB, "
              f"in {time.perf_counter() - started:.1f} s; cpu count {os.cpu_count()}; "
              f"calibration: sum(range(10**6)) = {calibration_ms():.1f} ms", flush=True)
        everything, repeat = args.hours, args.repeat
        windows = sorted({1, max(1, args.hours // 2), args.hours})  # three input sizes (with --hours >= 4)
        rows = [(f"reader, 1 worker, {hours} h", measure("reader", source, catalog, window_hours=hours, repeat=repeat))
                for hours in windows]
        rows += [
            ("reader, 2 workers", measure("reader", source, catalog, workers=2, window_hours=everything, repeat=repeat)),
            ("the job's live pass", measure("job-live", source, catalog, window_hours=everything, repeat=repeat)),
            ("pandas read_json baseline", measure("pandas", source, catalog, window_hours=everything)),
            ("pandas read_json, 1 h", measure("pandas", source, catalog, window_hours=1)),
            ("raw orjson parse (ceiling)", measure("raw-parse", source, catalog, window_hours=everything, repeat=repeat)),
            ("raw msgspec parse", measure("raw-msgspec", source, catalog, window_hours=everything, repeat=repeat)),
        ]
    print_table(rows, windows)
    return 0


def print_table(rows: list[tuple[str, dict]], windows: list[int]) -> None:
    print(f"{'variant':30} {'records':>9} {'rec/s/core':>11} {'rec/s wall':>11} {'cpu s':>7} {'peak RSS MB':>12} {'worker RSS MB':>14}")
    for name, row in rows:
        per_core = row["records"] / row["cpu_s"] if row["cpu_s"] else float("nan")
        print(f"{name:30} {row['records']:>9,} {per_core:>11,.0f} {row['records'] / row['wall_s']:>11,.0f} "
              f"{row['cpu_s']:>7.2f} {row['peak_rss_mb']:>12,.0f} {row['peak_worker_rss_mb']:>14,.0f}")
    by_name = dict(rows)
    readers = [by_name[f"reader, 1 worker, {hours} h"] for hours in windows]
    reader, two = readers[-1], by_name["reader, 2 workers"]
    pandas, small_pandas = by_name["pandas read_json baseline"], by_name["pandas read_json, 1 h"]
    raw, raw_msgspec = by_name["raw orjson parse (ceiling)"], by_name["raw msgspec parse"]
    rate = lambda row: row["records"] / row["cpu_s"]  # noqa: E731
    wall = lambda row: row["records"] / row["wall_s"]  # noqa: E731
    print(f"per core, same bytes: reader {rate(reader):,.0f} rec/s = {rate(reader) / rate(pandas):.1f}x pandas, "
          f"{rate(reader) / rate(raw):.0%} of the raw orjson parse, {rate(reader) / rate(raw_msgspec):.0%} of the raw msgspec parse")
    print(f"2 workers: {wall(two):,.0f} rec/s wall = {wall(two) / wall(reader):.2f}x 1 worker "
          f"({rate(two):,.0f} rec/s per core of CPU)")
    print("memory: reader peak RSS " + ", ".join(f"{row['peak_rss_mb']:,.0f} MB for {row['records']:,}" for row in readers)
          + f"; pandas {small_pandas['peak_rss_mb']:,.0f} MB for {small_pandas['records']:,}, "
          f"{pandas['peak_rss_mb']:,.0f} MB for {pandas['records']:,}")
    job = by_name["the job's live pass"]
    print(f"a full-rate hour (5,000 requests/s: {FULL_RATE_HOUR:,} records) at the job's pass rate "
          f"({wall(job):,.0f} rec/s wall here): {FULL_RATE_HOUR / wall(job):.0f} s "
          f"(target 60 s on 2 cores; at the 2-worker rate {FULL_RATE_HOUR / wall(two):.0f} s)")
    agree = all(row.get(key) == two.get(key) for row in (reader, job) for key in ("live_lists", "mean"))
    same = all(pandas.get(key) == reader.get(key) for key in ("live_lists", "mean"))
    print(f"results: 1 and 2 workers agree: {agree}; pandas and the reader agree: {same} "
          f"(live lists {reader.get('live_lists'):,}, mean categories {reader.get('mean'):.3f})")


if __name__ == "__main__":
    sys.exit(main())
