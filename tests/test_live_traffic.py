"""Live traffic in the hourly run: the container reads the window's capture from `dataset_source`.

The capture is written here by hand in the documented format (platform-facts.md, "Data capture"),
not by the kit's writer: JSON and BASE64 outputs, null content types, the monitor's own replay
records, a record of the hour before (the platform sometimes stages more than the window),
malformed lines. The expected figures are computed here from the lists themselves, apart from
the kit's metric code.
"""

from __future__ import annotations

import base64
import json
import math
import random
from collections import Counter

import pytest

from helpers.container import model_monitor_env, run_monitor_container
from helpers.job_env import ARGS
from helpers.runtime_server import CATEGORIES, catalog_rows

pytestmark = pytest.mark.usefixtures("fresh_runtime")

ENDPOINT = "healthy-recs"
CATEGORY_OF = dict(catalog_rows())
LIVE_LISTS = 150  # above MIN_LIVE_LISTS (100): judged and published


def capture_line(inference_id: str, articles: list[str], when: str, encoding: str = "JSON") -> str:
    body = json.dumps({"recommendations": [{"article_id": a} for a in articles]})
    data = base64.b64encode(body.encode()).decode() if encoding == "BASE64" else body
    return json.dumps({
        "captureData": {
            "endpointInput": {"observedContentType": None, "mode": "INPUT",
                              "data": base64.b64encode(b'{"user_id": "x"}').decode(), "encoding": "BASE64"},
            "endpointOutput": {"observedContentType": "application/json" if encoding == "JSON" else None,
                               "mode": "OUTPUT", "data": data, "encoding": encoding},
        },
        "eventMetadata": {"eventId": f"e-{inference_id}", "inferenceId": inference_id, "inferenceTime": when},
        "eventVersion": "0",
    })


def live_lists(count: int, seed: int, collapsed_share: float) -> list[list[str]]:
    """`collapsed_share` of users get articles of two categories only, the rest any ten articles."""
    rng = random.Random(seed)
    articles = [a for a, _ in catalog_rows()]
    pool = [a for a in articles if CATEGORY_OF[a] in CATEGORIES[:2]]
    return [rng.sample(pool if rng.random() < collapsed_share else articles, 10) for _ in range(count)]


def stage_capture(job_root, lists: list[list[str]]) -> dict[str, int]:
    """The window 08:00-09:00's capture under dataset_source, plus everything the pass must leave out."""
    variant = job_root / "processing/input/endpoint" / ENDPOINT / "AllTraffic"
    hour8, hour7 = variant / "2027/10/31/08", variant / "2027/10/31/07"
    hour8.mkdir(parents=True)
    hour7.mkdir(parents=True)
    lines = [capture_line(f"web-{i}", articles, f"2027-10-31T08:{i % 60:02d}:00Z", "BASE64" if i % 3 else "JSON")
             for i, articles in enumerate(lists)]
    half = len(lines) // 2
    replay = [capture_line(f"diversity-replay-20271031T0800-s{i:03d}", lists[0], "2027-10-31T08:00:30Z")
              for i in range(7)]
    (hour8 / "00-00-000-a.jsonl").write_text("\n".join(lines[:half] + replay[:3]) + "\n")
    (hour8 / "30-00-000-b.jsonl").write_text("\n".join(
        lines[half:] + replay[3:] + ["this is not json", '{"captureData": {}, "eventVersion": "0"}',
                                     # delivered late into the 08 folder, recorded before the window
                                     capture_line("web-late", lists[0], "2027-10-31T07:59:59Z")]) + "\n")
    # The hour before, staged too ("we sometimes download more"): its folder is not the window's.
    (hour7 / "59-00-000-c.jsonl").write_text(capture_line("web-early", lists[0], "2027-10-31T07:59:00Z") + "\n")
    return {"replay": len(replay), "malformed": 2, "outside": 1, "files": 2}


def expected_figures(lists: list[list[str]]) -> dict:
    distinct = sorted(len({CATEGORY_OF[a] for a in articles}) for articles in lists)
    slots = [Counter(articles[slot] for articles in lists) for slot in range(10)]
    return {
        "lists": len(lists),
        "mean": sum(distinct) / len(distinct),
        "min": distinct[0], "max": distinct[-1],
        "p5": distinct[math.ceil(0.05 * len(distinct)) - 1],  # nearest rank
        "histogram": [distinct.count(c) for c in range(11)],
        "max_slot_concentration": max(max(c.values()) / len(lists) for c in slots),
        "distinct_articles": len({a for articles in lists for a in articles}),
    }


def test_live_figures_are_measured_judged_and_published_apart_from_the_replay(stack_env, tmp_path):
    lists = live_lists(LIVE_LISTS, seed=3, collapsed_share=0.8)
    staged = stage_capture(tmp_path / "job", lists)
    run = run_monitor_container(tmp_path / "job", model_monitor_env(ENDPOINT), ARGS)
    assert run.returncode == 0, run.log
    live = run.json("statistics.json")["diversity_monitor"]["live"]
    expected = expected_figures(lists)
    assert live["histogram"] == expected.pop("histogram") and 2 < expected["mean"] < 4
    assert {key: live[key] for key in expected} == pytest.approx(expected, rel=1e-12)
    assert live["reliable"] is True and live["note"] is None
    assert (live["replay_excluded"], live["outside_window"], live["files_read"]) == (
        staged["replay"], staged["outside"], staged["files"])
    assert live["malformed"]["count"] == staged["malformed"]
    assert {(item["file"].rsplit("/", 1)[-1], item["line"]) for item in live["malformed"]["locations"]} == {
        ("30-00-000-b.jsonl", LIVE_LISTS - LIVE_LISTS // 2 + 4 + 1), ("30-00-000-b.jsonl", LIVE_LISTS - LIVE_LISTS // 2 + 4 + 2)}
    # Judged with the replay's floor: the replay is healthy, live traffic collapsed onto 2 categories.
    violations = run.json("constraint_violations.json")["violations"]
    assert [(v["feature_name"], v["description"]) for v in violations] == [
        ("live_top10_category_diversity", f"live traffic: mean categories per top-10 {expected['mean']:.2f} is below "
                                          "the floor 4 (--min-diversity)")]
    assert run.message == "CompletedWithViolations: Job completed successfully with 1 violations."
    published = {line["MetricName"]: line["Value"] for line in run.metric_lines}
    assert published["live_lists"] == LIVE_LISTS
    assert published["live_top10_category_diversity_mean"] == pytest.approx(expected["mean"], rel=1e-12)
    assert published["live_top10_max_slot_concentration"] == pytest.approx(expected["max_slot_concentration"])
    assert published["top10_category_diversity_mean"] == 7  # the replay's own figure, apart
    html = (run.output / "report.html").read_text()
    assert f"live traffic: mean categories per top-10 {expected['mean']:.2f} is below the floor 4" in html
    assert f"{LIVE_LISTS} live top lists: judged against the same floor" in html


def test_too_few_live_lists_are_shown_but_neither_judged_nor_published(stack_env, tmp_path):
    lists = live_lists(30, seed=4, collapsed_share=1.0)
    stage_capture(tmp_path / "job", lists)
    run = run_monitor_container(tmp_path / "job", model_monitor_env(ENDPOINT), ARGS)
    assert run.message == "Completed: Job completed successfully with no violations.", run.log
    live = run.json("statistics.json")["diversity_monitor"]["live"]
    assert live["lists"] == 30 and live["reliable"] is False and live["mean"] == 2
    assert live["note"].startswith("only 30 live top lists (fewer than 100)")
    published = {line["MetricName"] for line in run.metric_lines}
    assert "live_lists" in published and not [name for name in published if name.startswith("live_top")]


def test_an_hour_without_capture_is_a_normal_hour_for_the_replay(stack_env, tmp_path):
    (tmp_path / "job/processing/input/endpoint").mkdir(parents=True)  # staged, and empty
    run = run_monitor_container(tmp_path / "job", model_monitor_env(ENDPOINT), ARGS)
    assert run.message == "Completed: Job completed successfully with no violations.", run.log
    live = run.json("statistics.json")["diversity_monitor"]["live"]
    assert live == {"lists": 0, "reliable": False, "min_lists": 100, "capture_sampling_percentage": None,
                    "note": "no capture in the window: live traffic not measured this hour"}
    assert {line["MetricName"]: line["Value"] for line in run.metric_lines}["live_lists"] == 0
