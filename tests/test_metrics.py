"""Diversity and collapse metrics on hand-computed cases."""

import pytest

from diversity_monitor.metrics import (
    DiversityAccumulator,
    accumulate,
    distinct_categories,
    nearest_rank_percentile,
    summarize_histogram,
)

CATALOG = {"a": "news", "b": "sports", "c": "news", "d": "finance", "e": "health"}


def test_distinct_categories_counts_categories_and_unknowns_apart():
    assert distinct_categories(["a", "b", "c", "x", "y"], CATALOG, 10) == (2, 2)
    assert distinct_categories(["a", "b", "d", "e"], CATALOG, 2) == (2, 0)  # only the top 2 count


def test_nearest_rank_percentile_by_hand():
    # values 1,2,...,20 once each: p5 rank = ceil(0.05*20) = 1 -> 1; p50 rank 10 -> 10
    histogram = [0] + [1] * 20
    assert nearest_rank_percentile(histogram, 5) == 1
    assert nearest_rank_percentile(histogram, 50) == 10
    assert nearest_rank_percentile(histogram, 100) == 20
    # 500 sessions: 24 at 3, the rest at 7 -> rank 25 lands on 7; with 25 at 3 it lands on 3
    assert nearest_rank_percentile([0, 0, 0, 24, 0, 0, 0, 476], 5) == 7
    assert nearest_rank_percentile([0, 0, 0, 25, 0, 0, 0, 475], 5) == 3
    assert nearest_rank_percentile([0, 0, 0], 5) is None
    with pytest.raises(ValueError, match="percentile"):
        nearest_rank_percentile([1], 0)


def test_summary_from_histogram_by_hand():
    summary = summarize_histogram([0, 1, 0, 2, 1])  # values 1, 3, 3, 4
    assert summary.lists == 4
    assert summary.mean == pytest.approx(11 / 4)
    assert (summary.min, summary.p5, summary.max) == (1, 1, 4)


def test_slot_collapse_by_hand():
    lists = [["a", "b"], ["a", "c"], ["a", "b"], ["d", "e"]]
    collapse = accumulate(lists, CATALOG, 2).collapse()
    first, second = collapse.slots
    assert (first.top_article_id, first.top_article_share, first.distinct_articles) == ("a", 0.75, 2)
    assert (second.top_article_id, second.top_article_share) == ("b", 0.5)
    assert collapse.distinct_articles == 5
    assert collapse.max_slot_concentration == 0.75


def test_short_lists_and_merge_equal_one_pass():
    lists = [["a", "b", "d"], ["a"], ["c", "e", "x"], ["b", "b", "b"]]
    whole = accumulate(lists, CATALOG, 3)
    left, right = accumulate(lists[:2], CATALOG, 3), accumulate(lists[2:], CATALOG, 3)
    merged = left.merge(right)
    assert merged.diversity() == whole.diversity()
    assert merged.collapse() == whole.collapse()
    assert whole.diversity().short_lists == 1
    assert whole.diversity().histogram == (0, 2, 1, 1)
    assert whole.diversity().unknown_articles == 1
    with pytest.raises(ValueError, match="k=3 and k=2"):
        whole.merge(DiversityAccumulator(2))
