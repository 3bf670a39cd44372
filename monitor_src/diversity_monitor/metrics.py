"""Diversity and collapse metrics: pure functions over ranked article lists. No I/O.

Both the monitoring job (replayed sessions) and the capture reader (served live traffic) feed
ranked lists through `DiversityAccumulator`, so one definition of every figure serves both.
The accumulator keeps a histogram rather than the raw counts: categories-per-list is an integer
in 0..k, so mean, min, max and percentiles are exact from the histogram, memory stays flat over
18 million records, and two accumulators merge (one per core) without loss.

Percentile definition, used everywhere: nearest rank. p-th percentile = the smallest value v
such that at least p% of the observations are <= v (rank ceil(p/100 * n), 1-based). It always
returns an observed value, which is what "p5 categories" should mean for an integer metric.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

PERCENTILE_DEFINITION = "nearest-rank"


def distinct_categories(
    article_ids: Sequence[str], catalog: Mapping[str, str], k: int
) -> tuple[int, int]:
    """(distinct categories, articles missing from the catalog) among the first k articles.

    An article missing from the catalog is never a category of its own: it is counted apart so
    a stale catalog shows up as unknowns instead of inflating diversity.
    """
    categories: set[str] = set()
    unknown = 0
    for article_id in article_ids[:k]:
        category = catalog.get(article_id)
        if category is None:
            unknown += 1
        else:
            categories.add(category)
    return len(categories), unknown


def nearest_rank_percentile(histogram: Sequence[int], percentile: float) -> int | None:
    """Nearest-rank percentile of integer observations given as histogram[value] = count."""
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile!r}")
    total = sum(histogram)
    if total == 0:
        return None
    rank = max(1, math.ceil(percentile / 100.0 * total))
    running = 0
    for value, count in enumerate(histogram):
        running += count
        if running >= rank:
            return value
    raise AssertionError("unreachable: rank <= total")


@dataclass(frozen=True)
class DiversitySummary:
    """Aggregate of categories-per-top-k over a set of lists."""

    lists: int
    mean: float | None
    min: int | None
    p5: int | None
    max: int | None
    histogram: tuple[int, ...]  # histogram[c] = lists with exactly c distinct categories
    unknown_articles: int
    lists_with_unknown_articles: int
    short_lists: int  # lists with fewer than k articles


@dataclass(frozen=True)
class SlotCollapse:
    """How frozen each slot is: the share of lists showing the slot's most frequent article."""

    slot: int  # 1-based rank position
    lists: int
    top_article_id: str | None
    top_article_share: float | None
    distinct_articles: int


@dataclass(frozen=True)
class CollapseSummary:
    slots: tuple[SlotCollapse, ...]
    distinct_articles: int  # across all positions of all top-k lists
    max_slot_concentration: float | None  # max over slots of top_article_share


@dataclass
class DiversityAccumulator:
    """Streaming, mergeable accumulator of diversity and collapse over ranked lists."""

    k: int
    histogram: list[int] = field(default_factory=list)
    slot_counters: list[Counter] = field(default_factory=list)
    slot_totals: list[int] = field(default_factory=list)
    all_articles: set[str] = field(default_factory=set)
    unknown_articles: int = 0
    lists_with_unknown_articles: int = 0
    short_lists: int = 0

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k must be at least 1, got {self.k!r}")
        if not self.histogram:
            self.histogram = [0] * (self.k + 1)
            self.slot_counters = [Counter() for _ in range(self.k)]
            self.slot_totals = [0] * self.k

    def add(self, article_ids: Sequence[str], catalog: Mapping[str, str]) -> int:
        """Add one ranked list; returns its distinct-category count."""
        top = article_ids[: self.k]
        count, unknown = distinct_categories(top, catalog, self.k)
        self.histogram[count] += 1
        self.unknown_articles += unknown
        self.lists_with_unknown_articles += unknown > 0
        self.short_lists += len(top) < self.k
        for position, article_id in enumerate(top):
            self.slot_counters[position][article_id] += 1
            self.slot_totals[position] += 1
        self.all_articles.update(top)
        return count

    def merge(self, other: "DiversityAccumulator") -> "DiversityAccumulator":
        if other.k != self.k:
            raise ValueError(f"cannot merge accumulators with k={self.k} and k={other.k}")
        for value, count in enumerate(other.histogram):
            self.histogram[value] += count
        for mine, theirs in zip(self.slot_counters, other.slot_counters):
            mine.update(theirs)
        self.slot_totals = [a + b for a, b in zip(self.slot_totals, other.slot_totals)]
        self.all_articles |= other.all_articles
        self.unknown_articles += other.unknown_articles
        self.lists_with_unknown_articles += other.lists_with_unknown_articles
        self.short_lists += other.short_lists
        return self

    def diversity(self) -> DiversitySummary:
        return summarize_histogram(
            self.histogram,
            unknown_articles=self.unknown_articles,
            lists_with_unknown_articles=self.lists_with_unknown_articles,
            short_lists=self.short_lists,
        )

    def collapse(self) -> CollapseSummary:
        slots = []
        for position, (counter, total) in enumerate(zip(self.slot_counters, self.slot_totals)):
            if total:
                # Ties broken by article id so the figure is deterministic.
                top_id, top_count = min(counter.items(), key=lambda item: (-item[1], item[0]))
                slots.append(SlotCollapse(position + 1, total, top_id, top_count / total, len(counter)))
            else:
                slots.append(SlotCollapse(position + 1, 0, None, None, 0))
        shares = [slot.top_article_share for slot in slots if slot.top_article_share is not None]
        return CollapseSummary(tuple(slots), len(self.all_articles), max(shares) if shares else None)


def summarize_histogram(
    histogram: Sequence[int],
    *,
    unknown_articles: int = 0,
    lists_with_unknown_articles: int = 0,
    short_lists: int = 0,
) -> DiversitySummary:
    total = sum(histogram)
    observed = [value for value, count in enumerate(histogram) if count]
    mean = sum(value * count for value, count in enumerate(histogram)) / total if total else None
    return DiversitySummary(
        lists=total,
        mean=mean,
        min=observed[0] if observed else None,
        p5=nearest_rank_percentile(histogram, 5),
        max=observed[-1] if observed else None,
        histogram=tuple(histogram),
        unknown_articles=unknown_articles,
        lists_with_unknown_articles=lists_with_unknown_articles,
        short_lists=short_lists,
    )


def accumulate(
    ranked_lists: Iterable[Sequence[str]], catalog: Mapping[str, str], k: int
) -> DiversityAccumulator:
    accumulator = DiversityAccumulator(k)
    for article_ids in ranked_lists:
        accumulator.add(article_ids, catalog)
    return accumulator
