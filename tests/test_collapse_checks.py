"""Every collapse an editor would see, judged by the job's checks and the deploy gate.

The reference recommender's healthy model and its three defects (seed-7 data, as `make demo`),
each served through its real `recommend` path, measured by the same metric functions as the
hourly run, then handed to the gate (`baseline-gate`, as the pipeline step runs it), to the
baseline's constraints and to the run's checks. The replay over HTTP and the schedule are the
local-stack tests' business (tests/test_collapse_incidents.py); here the judgement is.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from diversity_monitor import cli
from diversity_monitor.conventions import (
    CUSTOM_BLOCK,
    diversity_feature,
    diversity_metric,
    list_overlap_feature,
    slot_feature,
    top_list_share_feature,
)
from diversity_monitor.job import inputs
from diversity_monitor.job.compare import check
from diversity_monitor.job.measure import Measurement
from diversity_monitor.job.metrics_file import metric_values
from diversity_monitor.job.model_monitor_files import constraints_document, statistics_document
from diversity_monitor.measures.metrics import CatalogIndex, accumulate
from diversity_monitor.recommender import data, model

SESSIONS = 200
WHEN = datetime(2027, 10, 31, 9, 0, tzinfo=timezone.utc)
DEFECTS = [name for name in model.DEFECTS if name]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("collapse")
    paths = data.generate(root / "data", seed=7)
    catalog = inputs.load_catalog(str(paths.catalog))
    sessions = inputs.load_validation_set(str(paths.validation_sessions))[:SESSIONS]
    lists = {}
    for defect in [None, *DEFECTS]:
        name = defect or "healthy"
        recommender = model.load_archive(model.train(paths.root, root / "models" / name, name, defect=defect),
                                         root / "served" / name)
        lists[defect] = [[item["article_id"] for item in recommender.recommend(session.request)["recommendations"]]
                         for session in sessions]
    return {"catalog": catalog, "lists": lists, "root": root}


def measured(lists, catalog) -> Measurement:
    index = CatalogIndex(catalog)
    accumulator = accumulate(lists, index, 10)
    return Measurement(10, accumulator.diversity(), accumulator.collapse(), len(lists), len(lists), WHEN, {},
                       merged_category_variants=index.merged_variants)


def statistics_of(world, defect) -> dict:
    return statistics_document(measured(world["lists"][defect], world["catalog"]), reliable=True,
                               context={"model_version": defect or "healthy"})


def test_the_gate_passes_the_healthy_model_and_refuses_each_defect_with_the_reason(world, capsys):
    baselines = world["root"] / "baselines"
    for defect in [None, *DEFECTS]:
        folder = baselines / (defect or "healthy")
        folder.mkdir(parents=True)
        (folder / "statistics.json").write_text(json.dumps(statistics_of(world, defect)))
    assert cli.main(["baseline-gate", "--baselines", str(baselines), "--model-version", "healthy"]) == 0
    assert capsys.readouterr().out.startswith("GATE PASSED for model healthy")
    expected = {  # what an editor would see, in the gate's words
        "popularity-scaling": ["below the floor 4", "mean list overlap between sessions", "most frozen slot's share"],
        "frozen-slots": ["mean list overlap between sessions", "share of sessions served the most common list",
                         "most frozen slot's share"],
        "popularity-only": ["mean list overlap between sessions", "share of sessions served the most common list",
                            "most frozen slot's share"],
    }
    for defect in DEFECTS:
        assert cli.main(["baseline-gate", "--baselines", str(baselines), "--model-version", defect,
                         "--previous-version", "healthy"]) == 1
        verdict = json.loads((baselines / defect / "gate.json").read_text())
        text = capsys.readouterr().out
        assert text.startswith(f"GATE FAILED for model {defect}") and not verdict["passed"]
        for reason in expected[defect]:
            assert any(reason in line and ("above the limit" in line or "below the floor" in line)
                       for line in verdict["reasons"]), (defect, reason, verdict["reasons"])
    # the popularity-only and frozen-slots lists span as many categories as the healthy model's
    for defect in ("frozen-slots", "popularity-only"):
        assert statistics_of(world, defect)[CUSTOM_BLOCK]["mean"] >= 4
        assert not any("floor" in reason for reason in json.loads((baselines / defect / "gate.json").read_text())["reasons"])


def test_a_baseline_built_on_a_collapsed_model_cannot_switch_a_check_off(world):
    collapsed = measured(world["lists"]["popularity-only"], world["catalog"])
    constraints = constraints_document(statistics_document(collapsed, reliable=True))
    bounds = {feature["name"]: feature.get("upper_bound") for feature in constraints["features"]}
    # the baseline's own figures (1.0, 0.98, 0.9+) plus margins would allow everything: capped by the limits
    assert bounds[slot_feature(10)] == 0.6 and bounds[list_overlap_feature(10)] == 0.5
    assert bounds[top_list_share_feature(10)] == 0.2
    found = {v.feature_name for v in check(collapsed, min_diversity=4, min_success_rate=0.95, constraints=constraints)}
    assert {slot_feature(10), list_overlap_feature(10), top_list_share_feature(10)} <= found
    # a hand-edited constraints file that tries anyway: the limits still hold
    for feature in constraints["features"]:
        if "upper_bound" in feature:
            feature["upper_bound"] = 1.0
    violations = check(collapsed, min_diversity=4, min_success_rate=0.95, constraints=constraints)
    assert {slot_feature(10), list_overlap_feature(10), top_list_share_feature(10)} <= {v.feature_name for v in violations}
    assert all("(limit " in v.description for v in violations if v.feature_name != diversity_feature(10))
    # and the healthy model, judged against its own baseline, has nothing to report
    healthy = measured(world["lists"][None], world["catalog"])
    own = constraints_document(statistics_document(healthy, reliable=True))
    assert check(healthy, min_diversity=4, min_success_rate=0.95, constraints=own) == []


def test_a_stale_catalog_is_blind_not_broken(world):
    """A catalog that no longer knows most served articles: the run says why, withholds its
    diversity figures (no floor violation, no diversity metric) and publishes what it could not see."""
    catalog = world["catalog"]
    kept = dict(list(catalog.items())[: len(catalog) // 5])
    m = measured(world["lists"][None], kept)
    violations = check(m, min_diversity=4, min_success_rate=0.95)
    assert [v.feature_name for v in violations] == ["unknown_article_share"]
    assert "refresh the catalog" in violations[0].description and "withheld" in violations[0].description
    statistics = statistics_document(m, reliable=True)
    block = statistics[CUSTOM_BLOCK]
    assert block["diversity_reliable"] is False and block["blind_reasons"]
    values = metric_values(statistics)
    assert diversity_metric(10) not in values and list_overlap_feature(10) not in values
    assert values["unknown_article_share"] > 0.05 and values["short_list_share"] == 0


def test_short_lists_are_blind_not_broken(world):
    lists = [ranked[:3] for ranked in world["lists"][None][:50]] + world["lists"][None][50:]
    m = measured(lists, world["catalog"])
    violations = check(m, min_diversity=4, min_success_rate=0.95)
    assert [v.feature_name for v in violations] == ["short_list_share"]
    assert "50 of 200 lists hold fewer than 10 articles" in violations[0].description


def test_category_spellings_are_merged_and_listed(world):
    catalog = dict(world["catalog"])
    first = next(iter(catalog))
    category = catalog[first]
    catalog[first] = f" {category.upper()} "
    m = measured(world["lists"][None], catalog)
    assert m.diversity.mean == measured(world["lists"][None], world["catalog"]).diversity.mean
    block = statistics_document(m, reliable=True)[CUSTOM_BLOCK]
    assert block["merged_category_variants"] == {category.strip().casefold(): sorted({category, f" {category.upper()} "})}
