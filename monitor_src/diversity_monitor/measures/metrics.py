"""Diversity and collapse metrics: pure functions over ranked article lists. No I/O.

Both the monitoring job (replayed sessions) and the capture reader (served live traffic) feed
ranked lists through `DiversityAccumulator`, and every way in (`accumulate`, `add`, `add_lists`)
ends in `DiversityAccumulator.add_slots`, the one place that counts: a batch of lists as rows of
k catalog codes, counted with numpy (the reader sends 18 million lists an hour through it).
The accumulator keeps a histogram rather than the raw counts: categories-per-list is an integer
in 0..k, so mean, min, max and percentiles are exact from the histogram, memory stays flat over
18 million records, and two accumulators merge (one per core) without loss.

Cross-session measures (is everyone getting the same thing?) come from counts, never from pairs:
the mean over session pairs of |A n B| / k is sum over articles of C(c, 2) / (C(n, 2) * k), where c
is the number of lists holding the article; the share of sessions that got the single most common
list comes from a count per distinct list; the slot freeze only looks at slots filled in at least
`MIN_SLOT_SUPPORT` of the lists. Categories are compared after trimming and case-folding.

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

from diversity_monitor.conventions import MIN_SLOT_SUPPORT

PERCENTILE_DEFINITION = "nearest-rank"
UNKNOWN_ARTICLE = -1  # CatalogIndex.rows: an article missing from the catalog
NO_ARTICLE = -2  # CatalogIndex.rows: a slot past the end of a list shorter than k
_BATCH_LISTS = 8192
# Distinct lists counted one by one for the top-list share: past this many, lists not yet seen are
# counted only in the total (the most common list of a collapse is seen in the first few lists;
# 100 000 64-bit keys are under 2 MB however many lists an hour holds). Each list is keyed by a
# 64-bit hash of its catalog rows (ids for lists with unknown articles), counted with numpy: the
# capture reader sends millions of lists an hour through here. Two different lists share a key
# with probability about n^2 / 2^65 (1e-5 for 18 million distinct lists).
MAX_TRACKED_LISTS = 100_000
_MIX = np.uint64(0x9E3779B97F4A7C15)


def _list_keys(rows: np.ndarray) -> np.ndarray:
    """A 64-bit key per row of catalog rows (same rows, same key, in every process)."""
    multipliers = np.random.default_rng(rows.shape[1]).integers(1, 2**63, size=rows.shape[1], dtype=np.uint64) | 1
    with np.errstate(over="ignore"):
        keys = ((rows + 3).astype(np.uint64) * multipliers).sum(axis=1, dtype=np.uint64)
        keys ^= keys >> np.uint64(31)
        keys *= _MIX
        keys ^= keys >> np.uint64(29)
    return keys


def _id_key(ids: Sequence[str | None]) -> int:
    digest = hashlib.blake2b("\0".join("" if i is None else i for i in ids).encode("utf-8", "surrogatepass"),
                             digest_size=8, person=b"unknown-list")
    return int.from_bytes(digest.digest(), "little")


def normalized_category(category: str) -> str:
    """How categories are compared: `News`, `news ` and `NEWS` are one category."""
    return category.strip().casefold()


def mean_pairwise_overlap(lists_per_article: Iterable[int], lists: int, k: int) -> float | None:
    """Mean over unordered pairs of lists of |A n B| / k, from how many lists hold each article.

    Each article held by c lists is shared by C(c, 2) pairs, so the sum over pairs of |A n B| is
    the sum over articles of C(c, 2): linear in the articles, not quadratic in the lists.
    None for fewer than two lists (no pair).
    """
    if lists < 2:
        return None
    shared = sum(count * (count - 1) // 2 for count in lists_per_article)
    return shared / (lists * (lists - 1) / 2) / k


def top_list_share(list_counts: Iterable[int], lists: int) -> float | None:
    """Share of the lists that are the single most common list (None without lists)."""
    if not lists:
        return None
    return max(list_counts, default=0) / lists


def supported_slots(slots: Sequence[SlotCollapse], lists: int, min_support: float = MIN_SLOT_SUPPORT) -> list[SlotCollapse]:
    """The slots filled in at least `min_support` of the lists: the only ones a freeze is measured on."""
    return [slot for slot in slots if lists and slot.lists >= min_support * lists and slot.top_article_share is not None]


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
    articles_served: int = 0  # filled slots over all lists

    @property
    def unknown_article_share(self) -> float | None:
        """Share of the served articles the catalog does not know."""
        return self.unknown_articles / self.articles_served if self.articles_served else None

    @property
    def short_list_share(self) -> float | None:
        return self.short_lists / self.lists if self.lists else None


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
    # max over the supported slots (filled in at least MIN_SLOT_SUPPORT of the lists) of top_article_share
    max_slot_concentration: float | None
    # (category, share of the filled slots of catalogued articles showing it), largest first: what
    # a collapse collapsed onto. Articles missing from the catalog are counted apart, never here.
    category_shares: tuple[tuple[str, float], ...] = ()
    list_overlap: float | None = None  # mean over session pairs of |A n B| / k
    top_list_share: float | None = None  # share of lists that are the single most common list
    top_list_lists: int = 0  # how many lists that is


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
        variants: dict[str, set[str]] = {}
        for category in catalog.values():
            variants.setdefault(normalized_category(category), set()).add(category)
        # Two trailing -1 entries: indexing with UNKNOWN_ARTICLE (-1) or NO_ARTICLE (-2) lands on
        # them, so "no category" needs no mask.
        self.category_codes = np.array(
            [codes.setdefault(normalized_category(category), len(codes)) for category in catalog.values()] + [-1, -1],
            dtype=np.int32,
        )
        self.categories: list[str] = list(codes)  # code -> category (trimmed, case-folded)
        # category -> the spellings the catalog used for it, when it used more than one
        self.merged_variants: dict[str, list[str]] = {
            name: sorted(spellings) for name, spellings in sorted(variants.items()) if len(spellings) > 1}

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
        self.articles_served = 0
        self._article_lists = np.zeros(len(self.index), dtype=np.int64)  # [row]: lists holding the article
        self._unknown_article_lists: Counter = Counter()  # the same for articles missing from the catalog
        # one key per distinct list, sorted, and how many lists had it (see MAX_TRACKED_LISTS)
        self._list_keys = np.zeros(0, dtype=np.uint64)
        self._list_key_counts = np.zeros(0, dtype=np.int64)

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
        self.articles_served += int(np.count_nonzero(present))
        self._count_lists(rows, unknown, slots)
        known = rows >= 0
        # ufunc.at scales with the ids added, not with the catalog size (bincount would).
        np.add.at(self._slot_counts, (rows + np.arange(k, dtype=np.int64) * len(index))[known], 1)
        for position in np.flatnonzero(unknown).tolist():
            self._unknown_slot_counts[position % k][slots[position]] += 1
        return distinct

    def _count_lists(self, rows: np.ndarray, unknown: np.ndarray, slots: Sequence[str | None]) -> None:
        """Lists per article (each article once per list) and lists per distinct list."""
        k = self.k
        ordered = np.sort(rows, axis=1)
        first = np.ones_like(ordered, dtype=bool)
        first[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
        held = ordered[first & (ordered >= 0)]
        self._article_lists += np.bincount(held, minlength=len(self.index))
        keys = _list_keys(rows)
        for number in np.flatnonzero(unknown.any(axis=1)).tolist():  # rare: lists with unknown ids, keyed by id
            ids = slots[number * k:(number + 1) * k]
            self._unknown_article_lists.update({i for i, gone in zip(ids, unknown[number]) if gone})
            keys[number] = _id_key(ids)
        distinct, counts = np.unique(keys, return_counts=True)
        self._track(distinct, counts)

    def _track(self, keys: np.ndarray, counts: np.ndarray) -> None:
        """Add `counts` lists under sorted distinct `keys`: known keys always, new ones while there is room."""
        known = self._list_keys
        position = np.searchsorted(known, keys)
        found = position < len(known)
        found[found] = known[position[found]] == keys[found]
        np.add.at(self._list_key_counts, position[found], counts[found])
        room = MAX_TRACKED_LISTS - len(known)
        new = np.flatnonzero(~found)[:max(room, 0)]
        if len(new):
            merged_keys = np.concatenate([known, keys[new]])
            order = np.argsort(merged_keys, kind="stable")
            self._list_keys = merged_keys[order]
            self._list_key_counts = np.concatenate([self._list_key_counts, counts[new]])[order]

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
        self.articles_served += other.articles_served
        self._article_lists += other._article_lists
        self._unknown_article_lists.update(other._unknown_article_lists)
        self._track(other._list_keys, other._list_key_counts)
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
            articles_served=self.articles_served,
        )

    def collapse(self, min_slot_support: float = MIN_SLOT_SUPPORT) -> CollapseSummary:
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
        shares = [slot.top_article_share for slot in supported_slots(slots, self.lists, min_slot_support)]
        lists = self.lists
        top_count = int(self._list_key_counts.max(initial=0))
        return CollapseSummary(
            tuple(slots), distinct, max(shares) if shares else None, self._category_shares(counts),
            list_overlap=mean_pairwise_overlap(
                self._article_lists.tolist() + list(self._unknown_article_lists.values()), lists, self.k),
            top_list_share=top_list_share([top_count], lists),
            top_list_lists=top_count,
        )

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
            and (self.unknown_articles, self.lists_with_unknown_articles, self.short_lists, self.articles_served)
            == (other.unknown_articles, other.lists_with_unknown_articles, other.short_lists, other.articles_served)
            and np.array_equal(self._article_lists, other._article_lists)
            and self._unknown_article_lists == other._unknown_article_lists
            and np.array_equal(self._list_keys, other._list_keys)
            and np.array_equal(self._list_key_counts, other._list_key_counts)
        )

    def __repr__(self) -> str:
        return f"DiversityAccumulator(k={self.k}, lists={self.lists}, histogram={self.histogram.tolist()})"


def summarize_histogram(
    histogram: Sequence[int],
    *,
    unknown_articles: int = 0,
    lists_with_unknown_articles: int = 0,
    short_lists: int = 0,
    articles_served: int = 0,
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
        articles_served=articles_served,
    )


def accumulate(
    ranked_lists: Iterable[Sequence[str]], catalog: Mapping[str, str] | CatalogIndex, k: int
) -> DiversityAccumulator:
    accumulator = DiversityAccumulator(k, catalog)
    lists = iter(ranked_lists)
    while batch := list(islice(lists, _BATCH_LISTS)):
        accumulator.add_lists(batch)
    return accumulator
