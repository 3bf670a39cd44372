"""Diversity and collapse metrics on hand-computed cases, and the batch counting against a plain oracle."""

import random
from collections import Counter

import pytest

from diversity_monitor.measures import metrics
from diversity_monitor.measures.metrics import (
    CatalogIndex,
    DiversityAccumulator,
    accumulate,
    nearest_rank_percentile,
    summarize_histogram,
    top_k_slots,
)

CATALOG = {"a": "news", "b": "sports", "c": "news", "d": "finance", "e": "health"}


def test_distinct_categories_count_catalog_articles_and_unknowns_apart():
    accumulator = DiversityAccumulator(10, CATALOG)
    assert accumulator.add(["a", "b", "c", "x", "y"]) == 2  # news, sports; x and y are not categories
    assert (accumulator.unknown_articles, accumulator.lists_with_unknown_articles, accumulator.short_lists) == (2, 1, 1)
    top_two = DiversityAccumulator(2, CATALOG)
    assert top_two.add(["a", "b", "d", "e"]) == 2  # only the top 2 count
    assert top_two.short_lists == 0 and top_two.add(["x"]) == 0
    assert top_two.diversity().histogram == (1, 0, 1)


def test_top_k_slots_cut_and_pad():
    assert top_k_slots(["a", "b", "c"], 2) == ["a", "b"]
    assert top_k_slots(("a",), 3) == ["a", None, None]
    assert top_k_slots([], 1) == [None]


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


def test_unknown_articles_occupy_slots_and_ties_go_to_the_smallest_id():
    # slot 1: x (not in the catalog) twice, a twice -> tie broken by id: "a"; then x three times -> "x"
    lists = [["x", "b"], ["a", "b"], ["x", "c"], ["a"]]
    accumulator = accumulate(lists, CATALOG, 2)
    first, second = accumulator.collapse().slots
    assert (first.top_article_id, first.top_article_share, first.distinct_articles, first.lists) == ("a", 0.5, 2, 4)
    assert (second.top_article_id, second.top_article_share, second.lists) == ("b", 2 / 3, 3)  # the short list has no slot 2
    assert accumulator.collapse().distinct_articles == 4  # x, a, b, c
    assert accumulator.diversity().histogram == (0, 3, 1)  # {sports}, {news, sports}, {news}, {news}
    accumulator.add(["x", "e"])
    assert accumulator.collapse().slots[0].top_article_id == "x"
    assert accumulator.slot_counters()[0] == Counter({"x": 3, "a": 2})


def test_short_lists_and_merge_equal_one_pass():
    lists = [["a", "b", "d"], ["a"], ["c", "e", "x"], ["b", "b", "b"]]
    whole = accumulate(lists, CATALOG, 3)
    left, right = accumulate(lists[:2], CATALOG, 3), accumulate(lists[2:], CATALOG, 3)
    merged = left.merge(right)
    assert merged == whole
    assert merged.diversity() == whole.diversity()
    assert merged.collapse() == whole.collapse()
    assert whole.diversity().short_lists == 1
    assert whole.diversity().histogram == (0, 2, 1, 1)
    assert whole.diversity().unknown_articles == 1
    with pytest.raises(ValueError, match="k=3 and k=2"):
        whole.merge(DiversityAccumulator(2, CATALOG))
    with pytest.raises(ValueError, match="different catalogs"):
        whole.merge(DiversityAccumulator(3, {**CATALOG, "e": "news"}))
    with pytest.raises(ValueError, match="k must be"):
        DiversityAccumulator(0, CATALOG)


def test_add_slots_rejects_partial_lists():
    with pytest.raises(ValueError, match="whole lists of k=3"):
        DiversityAccumulator(3, CATALOG).add_slots(["a", "b"])


def _oracle(lists, catalog, k):
    """The metric written the plain way, list by list, to hold the vectorised counting to."""
    histogram, slots, articles = [0] * (k + 1), [Counter() for _ in range(k)], set()
    unknown = lists_with_unknown = short = 0
    for ranked in lists:
        top = list(ranked[:k])
        histogram[len({catalog[a] for a in top if a in catalog})] += 1
        missing = sum(a not in catalog for a in top)
        unknown, lists_with_unknown, short = unknown + missing, lists_with_unknown + (missing > 0), short + (len(top) < k)
        for position, article in enumerate(top):
            slots[position][article] += 1
        articles.update(top)
    shares = []
    for counter in slots:
        if counter:
            top_count = max(counter.values())
            shares.append((min(a for a, c in counter.items() if c == top_count), top_count / sum(counter.values()),
                           len(counter)))
        else:
            shares.append((None, None, 0))
    return histogram, (unknown, lists_with_unknown, short), shares, len(articles)


@pytest.mark.parametrize("k", [1, 3, 10])
def test_batched_counting_equals_the_plain_definition(k):
    rng = random.Random(k)
    catalog = {f"a{i}": f"c{i % 7}" for i in range(30)}
    articles = [f"a{i}" for i in range(36)]  # a30..a35 are not in the catalog
    lists = [[rng.choice(articles) for _ in range(rng.choice([k, k, k, k + 2, max(0, k - 2), 0]))] for _ in range(600)]
    one_by_one = DiversityAccumulator(k, catalog)
    counts = [one_by_one.add(ranked) for ranked in lists]
    batched = DiversityAccumulator(k, CatalogIndex(catalog))
    for start in range(0, len(lists), 37):  # uneven batches straight into the counting
        batched.add_slots([slot for ranked in lists[start:start + 37] for slot in top_k_slots(ranked, k)])
    assert one_by_one == batched == accumulate(lists, catalog, k)

    histogram, unknowns, shares, distinct = _oracle(lists, catalog, k)
    diversity, collapse = batched.diversity(), batched.collapse()
    assert list(diversity.histogram) == histogram
    assert counts == [len({catalog[a] for a in ranked[:k] if a in catalog}) for ranked in lists]
    assert (diversity.unknown_articles, diversity.lists_with_unknown_articles, diversity.short_lists) == unknowns
    assert [(s.top_article_id, s.top_article_share, s.distinct_articles) for s in collapse.slots] == shares
    assert collapse.distinct_articles == distinct


def test_category_shares_count_filled_catalogued_slots_largest_first():
    catalog = {"a": "news", "b": "sports", "c": "news", "d": "tv"}
    # news in 3 of the 5 filled slots; "x" is not in the catalog and counts nowhere here.
    collapse = accumulate([["a", "b", "c"], ["a", "d", "x"]], catalog, 3).collapse()
    assert collapse.category_shares == (("news", 0.6), ("sports", 0.2), ("tv", 0.2))
    assert accumulate([], catalog, 3).collapse().category_shares == ()


# --- cross-session sameness, by hand -----------------------------------------------------------------


def test_list_overlap_and_top_list_share_by_hand():
    # pairs: (1,2) share a, (1,3) share a and b, (2,3) share a, the rest nothing: 4 shared over 6 pairs, k=2
    lists = [["a", "b"], ["a", "c"], ["a", "b"], ["d", "e"]]
    collapse = accumulate(lists, CATALOG, 2).collapse()
    assert collapse.list_overlap == pytest.approx(4 / 6 / 2)
    assert (collapse.top_list_share, collapse.top_list_lists) == (0.5, 2)  # ["a", "b"] twice in 4
    # the same from article counts alone: a in 3 lists, b in 2, c, d, e in 1
    assert collapse.list_overlap == pytest.approx(metrics.mean_pairwise_overlap([3, 2, 1, 1, 1], 4, 2))
    assert metrics.mean_pairwise_overlap([1], 1, 2) is None  # one list: no pair
    assert metrics.top_list_share([], 0) is None


def test_an_article_twice_in_a_list_and_unknown_articles_count_once_per_list():
    collapse = accumulate([["a", "a"], ["a", "b"]], CATALOG, 2).collapse()
    assert collapse.list_overlap == pytest.approx(1 / 1 / 2)  # the pair shares a: 1 article of k=2
    unknown = accumulate([["x", "a"], ["x", "b"]], CATALOG, 2).collapse()  # x is not in the catalog
    assert unknown.list_overlap == pytest.approx(0.5) and unknown.top_list_share == 0.5


def test_the_slot_freeze_counts_only_slots_most_lists_fill():
    # slot 2 is filled by one list of three: "frozen at 100%" by construction, so it does not count
    collapse = accumulate([["a", "b"], ["c"], ["d"]], CATALOG, 2).collapse()
    assert collapse.slots[1].top_article_share == 1.0 and collapse.slots[1].lists == 1
    assert collapse.max_slot_concentration == pytest.approx(1 / 3)
    assert [s.slot for s in metrics.supported_slots(collapse.slots, 3)] == [1]


def test_blind_shares_and_merged_category_spellings():
    accumulator = accumulate([["a", "x"], ["b"]], CATALOG, 2)
    diversity = accumulator.diversity()
    assert (diversity.articles_served, diversity.unknown_article_share, diversity.short_list_share) == (3, 1 / 3, 0.5)
    index = CatalogIndex({"a": "News", "b": "news ", "c": "Sports"})
    assert index.categories == ["news", "sports"] and index.merged_variants == {"news": ["News", "news "]}
    assert accumulate([["a", "b"]], index, 2).diversity().histogram == (0, 1, 0)  # one category, not two


def test_sameness_merges_without_loss():
    lists = [["a", "b"], ["a", "c"], ["a", "b"], ["d", "x"]]
    whole = accumulate(lists, CATALOG, 2)
    merged = accumulate(lists[:2], whole.index, 2).merge(accumulate(lists[2:], whole.index, 2))
    assert merged == whole and merged.collapse() == whole.collapse()
