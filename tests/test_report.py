"""The hourly report as a person reads it: real container runs (MPLBACKEND=Agg, as the Dockerfile
sets), their executed notebooks' pictures decoded, their `report.html` opened in headless Chromium
with the network blocked.

Four runs share one module: a healthy hour with a day of earlier reports in Model Monitor's layout
(the trend reads them), a collapsed hour (VIOLATED), an endpoint failing a fifth of its sessions
(BLIND), and an endpoint whose article ids and catalog categories carry HTML.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import boto3
import nbformat
import numpy as np
import pytest
from PIL import Image

from diversity_monitor.aws import container_paths
from diversity_monitor.conventions import EXECUTED_HTML, EXECUTED_NOTEBOOK, hour_path
from helpers.container import model_monitor_env, run_monitor_container
from helpers.job_env import ARGS, BUCKET, catalog_csv, stage_inputs
from helpers.runtime_server import HOSTILE_ARTICLES, HOSTILE_CATEGORY, hostile_catalog_rows

pytestmark = pytest.mark.slow

SCHEDULE = "diversity-hourly"  # model_monitor_env's schedule
HOUR = datetime(2027, 10, 31, 9, tzinfo=timezone.utc)  # model_monitor_env's end_time
REPORTS = f"s3://{BUCKET}/reports"
VIEWPORTS = {"desktop": (1280, 800), "phone": (390, 800)}


def earlier_statistics(endpoint: str, hour: datetime, mean: float) -> dict:
    """A past hour's statistics.json as a run leaves it (only what the trend reads)."""
    return {"version": 0.0, "dataset": {"item_count": 40}, "features": [], "diversity_monitor": {
        "k": 10, "mean": mean, "min": 5, "p5": 6, "max": 8, "histogram": [0] * 5 + [2, 10, 20, 8, 0, 0],
        "diversity_reliable": True, "success_rate": 1.0, "sessions_attempted": 40, "sessions_succeeded": 40,
        "endpoint": endpoint, "monitoring_schedule": SCHEDULE, "measured_at": f"{hour:%Y-%m-%dT%H}:00:20Z",
        "window_end": hour.isoformat()}}


def stage_history(endpoint: str) -> None:
    """Reports of the previous hours (one missing, one violated) under `<reports>/<endpoint>/<schedule>/`."""
    s3 = boto3.client("s3")
    for back in range(1, 7):
        hour = HOUR - timedelta(hours=back)
        if back == 4:
            continue  # a run that left nothing
        prefix = f"reports/{endpoint}/{SCHEDULE}/{hour_path(hour)}"
        mean = 3.1 if back == 5 else 6.9
        s3.put_object(Bucket=BUCKET, Key=f"{prefix}/statistics.json",
                      Body=json.dumps(earlier_statistics(endpoint, hour, mean)).encode())
        violations = [{"feature_name": "top10_category_diversity", "constraint_check_type": "baseline_drift_check",
                       "description": "mean below the floor"}] if back == 5 else []
        s3.put_object(Bucket=BUCKET, Key=f"{prefix}/constraint_violations.json",
                      Body=json.dumps({"violations": violations}).encode())


def processing_job_config(job_root, endpoint: str) -> None:
    """What the platform writes for a Model Monitor run: the output's S3 destination for this hour."""
    path = job_root / str(container_paths.PROCESSING_JOB_CONFIG).removeprefix("/opt/ml/")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"ProcessingOutputConfig": {"Outputs": [{"OutputName": "result", "S3Output": {
        "S3Uri": f"{REPORTS}/{endpoint}/{SCHEDULE}/{hour_path(HOUR)}", "LocalPath": "/opt/ml/processing/output",
        "S3UploadMode": "EndOfJob"}}]}}))


@pytest.fixture(scope="module")
def runs(tmp_path_factory, moto_url, runtime):
    """The four runs, in moto's S3 world (fixtures are function-scoped there: set the same up here)."""
    path = tmp_path_factory.mktemp("reports")
    with pytest.MonkeyPatch.context() as patch:
        for key, value in {"AWS_ENDPOINT_URL": moto_url, "AWS_ACCESS_KEY_ID": "testing",
                           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "eu-west-1",
                           "AWS_REGION": "eu-west-1", "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": runtime.url}.items():
            patch.setenv(key, value)
        patch.delenv("AWS_PROFILE", raising=False)
        stage_inputs()
        boto3.client("s3").put_object(Bucket=BUCKET, Key="catalog/hostile.csv", Body=catalog_csv(hostile_catalog_rows()))
        stage_history("healthy-recs")
        results = {}
        for name, endpoint, arguments in (
            ("healthy", "healthy-recs", ARGS),
            ("violated", "collapsed-recs", ARGS),
            ("blind", "broken-recs", [*ARGS, "--max-attempts", "2"]),
            ("hostile", "hostile-recs", [*ARGS[:2], "--catalog", f"s3://{BUCKET}/catalog/hostile.csv", *ARGS[4:]]),
        ):
            job_root = path / name
            processing_job_config(job_root, endpoint)
            results[name] = run_monitor_container(job_root, model_monitor_env(endpoint), arguments)
        yield results


def pictures(run) -> list[Image.Image]:
    notebook = nbformat.read(run.output / EXECUTED_NOTEBOOK, as_version=4)
    return [Image.open(io.BytesIO(base64.b64decode(output["data"]["image/png"])))
            for cell in notebook.cells for output in cell.get("outputs", []) if "image/png" in output.get("data", {})]


@pytest.mark.parametrize("name", ["healthy", "violated", "blind"])
def test_every_figure_of_the_report_is_a_real_picture(runs, name):
    run = runs[name]
    assert run.returncode == 0, run.log
    images = pictures(run)
    assert len(images) == 3, "trend, histogram and slot collapse"
    for image in images:
        assert image.width >= 600 and image.height >= 250
        pixels = np.asarray(image.convert("RGB"), dtype=float)
        non_white = (pixels.min(axis=2) < 245).mean()
        assert non_white > 0.02, f"a nearly blank figure ({non_white:.1%} drawn)"
        assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20  # lines, bars and text, not a flat fill


def test_the_trend_reads_the_earlier_hours_from_the_reports_layout(runs):
    notebook = nbformat.read(runs["healthy"].output / EXECUTED_NOTEBOOK, as_version=4)
    text = "".join(output.get("data", {}).get("text/html", "") for cell in notebook.cells
                   for output in cell.get("outputs", []))
    assert "19 of the last 24 scheduled hours left no report" in text  # 5 staged of the previous 24


def test_without_history_the_report_says_so_and_still_completes(stack_env, tmp_path):
    run = run_monitor_container(tmp_path / "job", model_monitor_env("healthy-recs"), ARGS)  # no processingjobconfig
    assert run.returncode == 0, run.log
    html = (run.output / EXECUTED_HTML).read_text()
    assert "not run as a processing job (no processingjobconfig.json): history not read" in html


def test_report_html_is_self_contained_and_small(runs):
    for name in ("healthy", "violated", "blind"):
        html = (runs[name].output / EXECUTED_HTML).read_text()
        assert "<script" not in html and "http://" not in html and "https://" not in html
        # Three PNGs of about 25 KB (as base64) and a few tables: the pictures are the weight.
        assert len(html.encode()) < 150_000, len(html.encode())
        assert not [p for p in runs[name].output.iterdir() if p.name.startswith(".")], "temporary files left"


def test_a_crafted_schedule_name_fails_the_run_before_anything_is_written(stack_env, tmp_path):
    env = model_monitor_env("healthy-recs", sagemaker_monitoring_schedule_name="x<img src=x onerror=alert(1)>")
    run = run_monitor_container(tmp_path / "job", env, ARGS)
    assert run.returncode == 1
    assert run.message.startswith("Failed: bad input: ContractError: environment variable sagemaker_monitoring_schedule_name=")
    assert "is neither a Model Monitor schedule name" in run.message
    assert not run.output.exists() or not any(run.output.iterdir())


def test_a_report_that_cannot_be_written_fails_and_leaves_nothing_looking_complete(runs, tmp_path):
    """A full disk while writing report.html (RLIMIT_FSIZE: writes past the limit fail with EFBIG)."""
    folder = tmp_path / "report"
    folder.mkdir()
    shutil.copy(runs["healthy"].output / EXECUTED_NOTEBOOK, folder / EXECUTED_NOTEBOOK)
    script = (
        "import resource, sys\n"
        "from pathlib import Path\n"
        "from diversity_monitor.job.report import ReportFailed, render_html\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))\n"
        "try:\n"
        "    render_html(Path(sys.argv[1]), 'title')\n"
        "except ReportFailed as error:\n"
        "    print(error)\n"
        "    sys.exit(3)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(folder)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, done.stderr
    assert done.stdout.strip() == "cannot write report.html: File too large"
    assert sorted(p.name for p in folder.iterdir()) == [EXECUTED_NOTEBOOK]  # no report.html, no temporary file


# --- in a browser -----------------------------------------------------------------------------------


def open_report(browser, run, viewport):
    """The page as a person sees it, with every request that is not the file itself refused and recorded."""
    width, height = viewport
    page = browser.new_page(viewport={"width": width, "height": height})
    requested = []

    def gate(route):
        url = route.request.url
        if url.startswith(("file://", "data:")):
            route.continue_()
        else:
            requested.append(url)
            route.abort()

    page.route("**/*", gate)
    page.goto((run.output / EXECUTED_HTML).resolve().as_uri())
    page.wait_for_load_state("load")
    return page, requested


EXPECTED = {"healthy": "HEALTHY", "violated": "VIOLATED", "blind": "BLIND"}


@pytest.mark.parametrize("viewport", VIEWPORTS.values(), ids=VIEWPORTS.keys())
@pytest.mark.parametrize("name", EXPECTED)
def test_the_verdict_opens_the_page_and_nothing_is_fetched(runs, browser, name, viewport):
    page, requested = open_report(browser, runs[name], viewport)
    try:
        assert page.title() == f"{runs[name].json('statistics.json')['diversity_monitor']['endpoint']} " \
                               f"2027-10-31 09:00 UTC: {EXPECTED[name]}"
        heading = page.locator("section.dm-verdict h1")
        assert heading.inner_text() == EXPECTED[name]
        box = heading.bounding_box()
        assert box["y"] >= 0 and box["y"] + box["height"] <= viewport[1], "the verdict is below the first screen"
        images = page.eval_on_selector_all("img", "els => els.map(e => [e.complete, e.naturalWidth])")
        assert len(images) == 3 and all(done and width > 0 for done, width in images)
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport[0] + 1, "the page scrolls sideways"
        assert not requested
        assert "import " not in page.inner_text("body")  # code is hidden
    finally:
        page.close()


def test_hostile_ids_and_categories_show_as_text(runs, browser):
    run = runs["hostile"]
    assert run.returncode == 0, run.log
    page, requested = open_report(browser, run, VIEWPORTS["desktop"])
    try:
        assert page.title().startswith("hostile-recs 2027-10-31 09:00 UTC: ")  # no script renamed it
        text = page.inner_text("body")
        assert HOSTILE_ARTICLES[0] in text and HOSTILE_CATEGORY in text
        assert page.locator("img[src='x'], img[src='y'], b:text('bold-id'), i:text('news')").count() == 0
        assert not requested
    finally:
        page.close()
