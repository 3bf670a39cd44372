"""Feed millions of ranked lists into a `DiversityAccumulator` at array speed, with the same result.

`DiversityAccumulator.add` costs about ten dictionary and Counter operations per article, which
is most of a pass over 18 million captured responses. `RankedListFeeder` looks each article up
once (article id -> catalog row), keeps full-length lists of known articles as rows of an
integer matrix, and per batch counts distinct categories, slot occupancy and seen articles with
numpy. Lists it cannot take that way (shorter than k, or naming an article missing from the
catalog) go through `DiversityAccumulator.add` itself. The array path reaches the accumulator
through its own constructor and `merge`; tests/test_capture.py checks the result
equals `metrics.accumulate` field for field, so the metric keeps one definition.
"""

from __future__ import annotations

from array import array
from collections import Counter
from itertools import repeat
from typing import Mapping, Sequence

import numpy as np

from diversity_monitor.metrics import DiversityAccumulator

DEFAULT_BATCH = 8192


class CatalogIndex:
    """The catalog as integers, built once per pass: article id -> row, row -> category code."""

    def __init__(self, catalog: Mapping[str, str]) -> None:
        self.catalog = dict(catalog)
        self.article_ids = np.array(list(self.catalog), dtype=object)
        self.row_of = {article_id: row for row, article_id in enumerate(self.catalog)}
        codes: dict[str, int] = {}
        self.category_codes = np.array(
            [codes.setdefault(category, len(codes)) for category in self.catalog.values()], dtype=np.int32
        )


class RankedListFeeder:
    def __init__(self, accumulator: DiversityAccumulator, index: CatalogIndex, batch: int = DEFAULT_BATCH):
        self.accumulator = accumulator
        self.index = index
        self.batch = batch
        self.k = accumulator.k
        self._row_of = index.row_of.get
        self._batch_ids = batch * self.k
        self._reset()

    def _reset(self) -> None:
        self._ids: list[str] = []  # the pending full lists, concatenated (k ids each)
        self._others: list[Sequence[str]] = []  # lists the array path does not take
        self._histogram = np.zeros(self.k + 1, dtype=np.int64)
        self._slot_counts = np.zeros(self.k * len(self.index.article_ids), dtype=np.int64)  # [slot, row]
        self._lists = 0

    def add(self, article_ids: Sequence[str]) -> None:
        # Per list only a C-level list.extend: the catalog lookups run once per batch, over the
        # concatenated ids in a single map() (a per-list lookup costs more in call overhead).
        if len(article_ids) != self.k:
            if len(article_ids) < self.k:
                self._others.append(article_ids)
                return
            article_ids = article_ids[: self.k]
        self._ids += article_ids
        if len(self._ids) >= self._batch_ids:
            self._count_pending()

    def flush(self) -> DiversityAccumulator:
        """Add everything fed so far to the accumulator and return it."""
        self._count_pending()
        accumulator, k = self.accumulator, self.k
        for top in self._others:  # rare: the metric's own per-list path
            accumulator.add(top, self.index.catalog)
        if self._lists:
            per_slot = self._slot_counts.reshape(k, -1)
            ids = self.index.article_ids
            slot_counters = []
            for counts in per_slot:
                rows = np.flatnonzero(counts)
                slot_counters.append(Counter(dict(zip(ids[rows].tolist(), counts[rows].tolist()))))
            accumulator.merge(DiversityAccumulator(
                k=k,
                histogram=self._histogram.tolist(),
                slot_counters=slot_counters,
                slot_totals=[self._lists] * k,
                all_articles=set(ids[np.flatnonzero(per_slot.any(axis=0))].tolist()),
            ))
        self._reset()
        return accumulator

    def _count_pending(self) -> None:
        if not self._ids:
            return
        k, ids = self.k, self._ids
        rows = np.frombuffer(array("i", map(self._row_of, ids, repeat(-1, len(ids)))), dtype=np.int32).reshape(-1, k)
        unknown = (rows < 0).any(axis=1)
        if unknown.any():
            self._others += [ids[position * k:(position + 1) * k] for position in np.flatnonzero(unknown).tolist()]
            rows = rows[~unknown]
        categories = np.sort(self.index.category_codes[rows], axis=1)
        distinct = 1 + np.count_nonzero(categories[:, 1:] != categories[:, :-1], axis=1)
        self._histogram += np.bincount(distinct, minlength=self.k + 1)
        slots = rows + (np.arange(self.k, dtype=np.int64) * len(self.index.article_ids))
        self._slot_counts += np.bincount(slots.ravel(), minlength=self._slot_counts.size)
        self._lists += len(rows)
        self._ids = []
