"""statistics / constraints / violations documents, and the design notes' worked example."""

import re
from datetime import datetime, timezone

import pytest

from diversity_monitor.job.compare import check
from diversity_monitor.job.measure import Measurement
from diversity_monitor.job.model_monitor_files import (
    BaselineError,
    constraint_bounds,
    constraints_document,
    figures,
    statistics_document,
    violations_document,
)
from diversity_monitor.job.replay import Serving
from diversity_monitor.measures.metrics import CollapseSummary, SlotCollapse, summarize_histogram

WHEN = datetime(2027, 10, 31, 9, 0, tzinfo=timezone.utc)


def histogram_with(mean_target_counts: dict[int, int], k: int = 10) -> list[int]:
    histogram = [0] * (k + 1)
    for value, count in mean_target_counts.items():
        histogram[value] = count
    return histogram


def measurement(histogram: list[int], *, attempted: int | None = None, share: float = 0.1) -> Measurement:
    summary = summarize_histogram(histogram)
    collapse = CollapseSummary((SlotCollapse(1, summary.lists, "a1", share, 50),), 200, share)
    return Measurement(10, summary, collapse, attempted or summary.lists, summary.lists, WHEN, {})


# 500 sessions. Baseline: mean 6.8, min 4, p5 5. Current: mean 6.2, min 3, p5 4.
BASELINE = histogram_with({4: 10, 5: 40, 6: 110, 7: 220, 8: 120})
CURRENT = histogram_with({3: 5, 4: 40, 5: 50, 6: 160, 7: 245})


def test_histograms_match_the_worked_example():
    base, current = summarize_histogram(BASELINE), summarize_histogram(CURRENT)
    assert (round(base.mean, 2), base.min, base.p5) == (6.8, 4, 5)
    assert (round(current.mean, 2), current.min, current.p5) == (6.2, 3, 4)


def test_worked_example_gives_exactly_the_p5_violation():
    baseline_statistics = statistics_document(measurement(BASELINE), reliable=True)
    constraints = constraints_document(baseline_statistics)
    violations = check(measurement(CURRENT), min_diversity=4, min_success_rate=0.95, constraints=constraints)
    assert [v.to_dict() for v in violations] == [{
        "feature_name": "top10_category_diversity",
        "constraint_check_type": "baseline_drift_check",
        "description": "p5 categories per top-10 4 is below the baseline p5 5",
    }]
    # The mean (6.2) stays above its bound (6.8 - 1.0), so it is not a violation.
    assert constraint_bounds(constraints, 10).mean_lower_bound == 5.8


def test_absolute_floor_without_baseline():
    collapsed = histogram_with({1: 300, 2: 200})
    violations = check(measurement(collapsed), min_diversity=4, min_success_rate=0.95)
    assert [v.description.split(" ")[0] for v in violations] == ["mean"]
    assert "floor 4" in violations[0].description


def test_incomplete_replay_reports_only_completeness():
    m = measurement(histogram_with({1: 10}), attempted=500)
    violations = check(m, min_diversity=4, min_success_rate=0.95)
    assert [(v.feature_name, v.constraint_check_type) for v in violations] == [("replay_success_rate", "completeness_check")]


def test_slot_freeze_violates_the_slot_bound():
    baseline_statistics = statistics_document(measurement(BASELINE, share=0.12), reliable=True)
    constraints = constraints_document(baseline_statistics)
    violations = check(measurement(BASELINE, share=0.98), min_diversity=4, min_success_rate=0.95, constraints=constraints)
    assert [v.feature_name for v in violations] == ["top10_max_slot_concentration"]


def test_statistics_schema_fields():
    document = statistics_document(measurement(CURRENT), reliable=True)
    assert document["dataset"]["item_count"] == 500
    feature = document["features"][0]
    assert feature["name"] == "top10_category_diversity" and feature["inferred_type"] == "Integral"
    numbers = feature["numerical_statistics"]
    assert set(numbers) >= {"common", "mean", "sum", "std_dev", "min", "max", "distribution"}
    assert sum(bucket["count"] for bucket in numbers["distribution"]["kll"]["buckets"]) == 500
    assert violations_document([]) == {"violations": []}


@pytest.mark.parametrize("constraints, problem", [
    ({"features": "nope"}, "'features' must be a list"),
    ({"features": []}, "no constraints for feature 'top10_category_diversity'"),
    ({"features": [{"name": "top10_category_diversity", "diversity_constraints": {"p5_lower_bound": "5"}}]},
     "p5_lower_bound must be a number"),
])
def test_malformed_constraints_are_named(constraints, problem):
    with pytest.raises(BaselineError, match=problem):
        check(measurement(CURRENT), min_diversity=4, min_success_rate=0.95, constraints=constraints)


VALID_CONSTRAINTS = constraints_document(statistics_document(measurement(BASELINE), reliable=True))


def _without(document: dict, path: tuple, key: str) -> dict:
    import copy

    changed = copy.deepcopy(document)
    node = changed
    for step in path:
        node = node[step]
    del node[key]
    return changed


def _with(document: dict, path: tuple, key: str, value) -> dict:
    import copy

    changed = copy.deepcopy(document)
    node = changed
    for step in path:
        node = node[step]
    node[key] = value
    return changed


@pytest.mark.parametrize("constraints, problem", [
    ("not an object", "expected a JSON object, got str"),
    (_without(VALID_CONSTRAINTS, ("features", 0, "diversity_constraints"), "p5_lower_bound"),
     r"top10_category_diversity.diversity_constraints.p5_lower_bound is missing"),
    (_without(VALID_CONSTRAINTS, ("features", 0, "diversity_constraints"), "mean_lower_bound"),
     r"top10_category_diversity.diversity_constraints.mean_lower_bound is missing"),
    (_with(VALID_CONSTRAINTS, ("features", 0, "diversity_constraints"), "mean_lower_bound", True),
     r"mean_lower_bound must be a number, got True"),
    (_with(VALID_CONSTRAINTS, ("features", 0, "diversity_constraints"), "mean_lower_bound", None),
     r"mean_lower_bound must be a number, got None"),
    (_without(VALID_CONSTRAINTS, ("features", 1), "upper_bound"), r"top10_max_slot_concentration.upper_bound is missing"),
    (_with(VALID_CONSTRAINTS, ("features", 1), "upper_bound", "0.4"), r"upper_bound must be a share between 0 and 1, got '0.4'"),
    (_with(VALID_CONSTRAINTS, ("features", 1), "upper_bound", 1.5), r"upper_bound must be a share between 0 and 1, got 1.5"),
    ({**VALID_CONSTRAINTS, "features": VALID_CONSTRAINTS["features"][:1]}, "no constraints for feature 'top10_max_slot_concentration'"),
    (_with(VALID_CONSTRAINTS, (), "diversity_monitor", {"k": 5}), r"built for k=5 \(top-5 lists\) but this run uses --top-k 10"),
])
def test_every_bound_is_required_and_typed(constraints, problem):
    """A missing or wrong-typed bound is an error, never a silently skipped check."""
    with pytest.raises(BaselineError, match=problem):
        constraint_bounds(constraints, 10)
    with pytest.raises(BaselineError, match=problem):  # the check itself refuses the same document
        check(measurement(CURRENT), min_diversity=4, min_success_rate=0.95, constraints=constraints)


BASELINE_STATISTICS = statistics_document(measurement(BASELINE), reliable=True)


@pytest.mark.parametrize("key, value, problem", [
    ("k", "10", "diversity_monitor.k must be a whole number of at least 1, got '10'"),
    ("mean", "6.8", "diversity_monitor.mean must be a number between 0 and k=10, got '6.8'"),
    ("mean", float("nan"), "diversity_monitor.mean must be a number"),
    ("p5", 5.5, "diversity_monitor.p5 must be a whole number between 0 and k=10, got 5.5"),
    ("min", None, "diversity_monitor.min must be a whole number"),
    ("max", 11, "diversity_monitor.max must be a whole number between 0 and k=10, got 11"),
    ("histogram", [1, 2, 3], "diversity_monitor.histogram must be a list of 11 session counts"),
    ("histogram", [0] * 11, "diversity_monitor.histogram must be counts of at least one session"),
    ("histogram", [0.5] * 11, "diversity_monitor.histogram must be a list of 11 session counts"),
    ("success_rate", "1", "diversity_monitor.success_rate must be a share between 0 and 1"),
    ("max_slot_concentration", 2, "diversity_monitor.max_slot_concentration must be a share between 0 and 1"),
    ("sessions_succeeded", -1, "diversity_monitor.sessions_succeeded must be a whole number"),
])
def test_baseline_statistics_with_wrong_types_are_named(key, value, problem):
    document = _with(BASELINE_STATISTICS, ("diversity_monitor",), key, value)
    with pytest.raises(BaselineError, match=re.escape(problem)):
        figures(document, "baseline_statistics s3://b/statistics.json", k=10)


def test_baseline_statistics_of_another_k_are_refused():
    with pytest.raises(BaselineError, match="measured with k=10 .* uses --top-k 5"):
        figures(BASELINE_STATISTICS, "baseline_statistics", k=5)
    assert figures(BASELINE_STATISTICS, "baseline_statistics", k=10)["p5"] == 5


def test_serving_goes_into_the_custom_block_exactly():
    serving = Serving("recs-config-v3", {"AllTraffic": "recs-model-v3", "Canary": "recs-model-v4"}, WHEN, False, None,
                      capture_sampling_percentage=20)
    m = measurement(CURRENT)
    document = statistics_document(Measurement(**{**m.__dict__, "serving": serving}), reliable=True)
    assert document["diversity_monitor"]["serving"] == {
        "endpoint_config": "recs-config-v3", "models": {"AllTraffic": "recs-model-v3", "Canary": "recs-model-v4"},
        "observed_at": "2027-10-31T09:00:00Z", "changed_during_replay": False, "error": None,
        "capture_sampling_percentage": 20,
    }
