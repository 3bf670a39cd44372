"""Diversity and collapse metrics: pure functions over ranked article lists. No I/O.

Both the monitoring job (replayed sessions) and the capture reader (served live traffic) feed
ranked lists through `DiversityAccumulator`, and every way in (`accumulate`, `add`, `add_lists`)
ends in `DiversityAccumulator.add_slots`, the one place that counts: a batch of lists as rows of
k catalog codes, counted with numpy (the reader sends 18 million lists an hour through it).
The accumulator keeps a histogram rather than the raw counts: categories-per-list is an integer
in 0..k, so mean, min, max and percentiles are exact from the histogram, memory stays flat over
18 million records, and two accumulators merge (one per core) without loss.

Percentile definition, used everywhere: nearest rank. p-th percentile = the smallest value v
such that at least p% of the observations are <= v (rank ceil(p/100 * n), 1-based). It always
returns an observed value, which is what "p5 categories" should mean for an integer metric.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import islice, repeat

import numpy as np

PERCENTILE_DEFINITION = "nearest-rank"
UNKNOWN_ARTICLE = -1  # CatalogIndex.rows: an article missing from the catalog
NO_ARTICLE = -2  # CatalogIndex.rows: a slot past the end of a list shorter than k
_BATCH_LISTS = 8192


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
    # (category, share of the filled slots of catalogued articles showing it), largest first: what
    # a collapse collapsed onto. Articles missing from the catalog are counted apart, never here.
    category_shares: tuple[tuple[str, float], ...] = ()


def top_k_slots(article_ids: Sequence[str], k: int) -> list[str | None]:
    """A ranked list's k slots: its first k ids, then None for each slot a shorter list leaves empty."""
    top = list(article_ids[:k])
    return top + [None] * (k - len(top))


class CatalogIndex:
    """The catalog as integers, built once per pass: article id -> row, row -> category code."""

    def __init__(self, catalog: Mapping[str, str]) -> None:
        self.article_ids: list[str] = list(catalog)
        self.row_of: dict[str | None, int] = {article_id: row for row, article_id in enumerate(self.article_ids)}
        self.row_of[None] = NO_ARTICLE  # None fills the slots past a short list's end (ids are strings)
        codes: dict[str, int] = {}
        # Two trailing -1 entries: indexing with UNKNOWN_ARTICLE (-1) or NO_ARTICLE (-2) lands on
        # them, so "no category" needs no mask.
        self.category_codes = np.array(
            [codes.setdefault(category, len(codes)) for category in catalog.values()] + [-1, -1], dtype=np.int32
        )
        self.categories: list[str] = list(codes)  # code -> category

    def __len__(self) -> int:
        return len(self.article_ids)

    def rows(self, slots: Sequence[str | None]) -> np.ndarray:
        """Catalog rows of article ids (UNKNOWN_ARTICLE if missing, NO_ARTICLE for None)."""
        return np.fromiter(map(self.row_of.get, slots, repeat(UNKNOWN_ARTICLE, len(slots))), np.int64, len(slots))

    @cached_property
    def fingerprint(self) -> bytes:
        """Identifies the catalog's content across processes (str hashes are salted per process)."""
        digest = hashlib.blake2b(digest_size=16)
        for article_id in self.article_ids:
            digest.update(article_id.encode("utf-8", "surrogatepass") + b"\0")
        digest.update(self.category_codes.tobytes())
        return digest.digest()


class DiversityAccumulator:
    """Streaming, mergeable accumulator of diversity and collapse over ranked lists, for one catalog."""

    def __init__(self, k: int, catalog: Mapping[str, str] | CatalogIndex) -> None:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be an integer of at least 1, got {k!r}")
        self.k = k
        self.index = catalog if isinstance(catalog, CatalogIndex) else CatalogIndex(catalog)
        self.histogram = np.zeros(k + 1, dtype=np.int64)  # histogram[c]: lists with c distinct categories
        self.slot_totals = np.zeros(k, dtype=np.int64)  # lists that have an article at each slot
        self._slot_counts = np.zeros(k * len(self.index), dtype=np.int64)  # [slot * rows + row]: lists showing it
        self._unknown_slot_counts = [Counter() for _ in range(k)]  # the same for articles missing from the catalog
        self.unknown_articles = 0
        self.lists_with_unknown_articles = 0
        self.short_lists = 0

    def add(self, article_ids: Sequence[str]) -> int:
        """Add one ranked list; returns its distinct-category count."""
        return int(self.add_lists([article_ids])[0])

    def add_lists(self, ranked_lists: Iterable[Sequence[str]]) -> np.ndarray:
        """Add ranked lists (each cut to its top k); returns each list's distinct-category count."""
        slots: list[str | None] = []
        for article_ids in ranked_lists:
            slots += top_k_slots(article_ids, self.k)
        return self.add_slots(slots)

    def add_slots(self, slots: Sequence[str | None]) -> np.ndarray:
        """The counting. `slots` holds n lists of k slots each, concatenated: a list's top k
        article ids in rank order, then None for the slots a list shorter than k does not fill.
        Returns each list's distinct-category count.

        A list's categories are those of its articles found in the catalog; an article missing
        from the catalog is never a category of its own, it is counted apart (so a stale
        catalog shows up as unknowns instead of inflating diversity) yet it still occupies its
        slot for the collapse measures, like any article.
        """
        k, index = self.k, self.index
        if len(slots) % k:
            raise ValueError(f"slots must hold whole lists of k={k}, got {len(slots)} ids")
        rows = index.rows(slots).reshape(-1, k)
        if not len(rows):
            return np.zeros(0, dtype=np.int64)
        present, unknown = rows != NO_ARTICLE, rows == UNKNOWN_ARTICLE
        categories = np.sort(index.category_codes[rows], axis=1)  # -1 (none) sorts first
        distinct = (categories[:, 0] >= 0) + np.count_nonzero(
            (categories[:, 1:] != categories[:, :-1]) & (categories[:, 1:] >= 0), axis=1)
        self.histogram += np.bincount(distinct, minlength=k + 1)
        unknown_per_list = np.count_nonzero(unknown, axis=1)
        self.unknown_articles += int(unknown_per_list.sum())
        self.lists_with_unknown_articles += int(np.count_nonzero(unknown_per_list))
        self.short_lists += int(np.count_nonzero(np.count_nonzero(present, axis=1) < k))
        self.slot_totals += np.count_nonzero(present, axis=0)
        known = rows >= 0
        # ufunc.at scales with the ids added, not with the catalog size (bincount would).
        np.add.at(self._slot_counts, (rows + np.arange(k, dtype=np.int64) * len(index))[known], 1)
        for position in np.flatnonzero(unknown).tolist():
            self._unknown_slot_counts[position % k][slots[position]] += 1
        return distinct

    def merge(self, other: DiversityAccumulator) -> DiversityAccumulator:
        if other.k != self.k:
            raise ValueError(f"cannot merge accumulators with k={self.k} and k={other.k}")
        if other.index is not self.index and other.index.fingerprint != self.index.fingerprint:
            raise ValueError("cannot merge accumulators built on different catalogs")
        self.histogram += other.histogram
        self.slot_totals += other.slot_totals
        self._slot_counts += other._slot_counts
        for mine, theirs in zip(self._unknown_slot_counts, other._unknown_slot_counts):
            mine.update(theirs)
        self.unknown_articles += other.unknown_articles
        self.lists_with_unknown_articles += other.lists_with_unknown_articles
        self.short_lists += other.short_lists
        return self

    @property
    def lists(self) -> int:
        return int(self.histogram.sum())

    def slot_counters(self) -> list[Counter]:
        """Per slot, article id -> lists showing it there (for inspection; collapse() reads the arrays)."""
        counts = self._slot_counts.reshape(self.k, len(self.index))
        ids = self.index.article_ids
        counters = []
        for position, row_counts in enumerate(counts):
            rows = np.flatnonzero(row_counts).tolist()
            counter = Counter(dict(zip((ids[row] for row in rows), row_counts[rows].tolist())))
            counters.append(counter + self._unknown_slot_counts[position])
        return counters

    def diversity(self) -> DiversitySummary:
        return summarize_histogram(
            self.histogram.tolist(),
            unknown_articles=self.unknown_articles,
            lists_with_unknown_articles=self.lists_with_unknown_articles,
            short_lists=self.short_lists,
        )

    def collapse(self) -> CollapseSummary:
        counts = self._slot_counts.reshape(self.k, len(self.index))
        ids = self.index.article_ids
        slots = []
        for position, (row_counts, total) in enumerate(zip(counts, self.slot_totals.tolist())):
            if not total:
                slots.append(SlotCollapse(position + 1, 0, None, None, 0))
                continue
            others = self._unknown_slot_counts[position]
            top_count = max(int(row_counts.max(initial=0)), max(others.values(), default=0))
            # Ties broken by article id so the figure is deterministic.
            top_id = min([ids[row] for row in np.flatnonzero(row_counts == top_count).tolist()]
                         + [article_id for article_id, count in others.items() if count == top_count])
            slots.append(SlotCollapse(position + 1, total, top_id, top_count / total,
                                      int(np.count_nonzero(row_counts)) + len(others)))
        distinct = int(np.count_nonzero(counts.any(axis=0))) + len(set().union(*self._unknown_slot_counts))
        shares = [slot.top_article_share for slot in slots if slot.top_article_share is not None]
        return CollapseSummary(tuple(slots), distinct, max(shares) if shares else None, self._category_shares(counts))

    def _category_shares(self, counts: np.ndarray) -> tuple[tuple[str, float], ...]:
        shown = np.bincount(self.index.category_codes[:-2], weights=counts.sum(axis=0),
                            minlength=len(self.index.categories))
        total = shown.sum()
        if not total:
            return ()
        order = sorted(np.flatnonzero(shown).tolist(), key=lambda code: (-shown[code], self.index.categories[code]))
        return tuple((self.index.categories[code], float(shown[code] / total)) for code in order)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DiversityAccumulator):
            return NotImplemented
        return (
            self.k == other.k
            and (self.index is other.index or self.index.fingerprint == other.index.fingerprint)
            and np.array_equal(self.histogram, other.histogram)
            and np.array_equal(self.slot_totals, other.slot_totals)
            and np.array_equal(self._slot_counts, other._slot_counts)
            and self._unknown_slot_counts == other._unknown_slot_counts
            and (self.unknown_articles, self.lists_with_unknown_articles, self.short_lists)
            == (other.unknown_articles, other.lists_with_unknown_articles, other.short_lists)
        )

    def __repr__(self) -> str:
        return f"DiversityAccumulator(k={self.k}, lists={self.lists}, histogram={self.histogram.tolist()})"


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
    ranked_lists: Iterable[Sequence[str]], catalog: Mapping[str, str] | CatalogIndex, k: int
) -> DiversityAccumulator:
    accumulator = DiversityAccumulator(k, catalog)
    lists = iter(ranked_lists)
    while batch := list(islice(lists, _BATCH_LISTS)):
        accumulator.add_lists(batch)
    return accumulator
