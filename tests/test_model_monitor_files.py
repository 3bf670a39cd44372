"""statistics / constraints / violations documents, and the design notes' worked example."""

from datetime import datetime, timezone

import pytest

from diversity_monitor.metrics import CollapseSummary, SlotCollapse, summarize_histogram
from diversity_monitor.model_monitor_files import (
    BaselineError,
    Measurement,
    check,
    constraints_document,
    statistics_document,
    violations_document,
)

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
    assert len(violations) == 1
    (violation,) = violations
    assert violation.feature_name == "top10_category_diversity"
    assert violation.constraint_check_type == "baseline_drift_check"
    assert "p5" in violation.description and "4" in violation.description and "5" in violation.description


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
