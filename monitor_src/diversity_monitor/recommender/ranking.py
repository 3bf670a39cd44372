"""Serving math: relevance from the learned arrays, then a re-ranking stage that keeps the top-k varied.

relevance_i = personal_scale * (q · y_i) + popularity_weight * popularity_i + freshness_weight * freshness_i

The weights were chosen for features on a standardised scale: a feature exported on another
scale changes the balance of every term here, the re-ranker's penalty included (that is the
`popularity-scaling` incident).

Re-ranking is greedy: each slot takes the candidate with the best relevance minus
`category_penalty` for every article of its category already placed. A soft penalty, not a hard
cap, so a user who lives on one category still sees several of its stories. Because penalties
only grow as slots fill, the adjusted scores of the chosen articles never increase down the list;
those adjusted scores are the ones returned.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CANDIDATES = 300  # re-rank this many of the most relevant articles (k is at most 100)


@dataclass(frozen=True)
class Weights:
    personal_scale: float
    popularity: float
    freshness: float
    category_penalty: float


def relevance(
    query: np.ndarray, item_factors: np.ndarray, popularity: np.ndarray, freshness: np.ndarray, weights: Weights
) -> np.ndarray:
    return (
        weights.personal_scale * (item_factors @ query)
        + weights.popularity * popularity
        + weights.freshness * freshness
    )


def diversify(
    scores: np.ndarray, categories: np.ndarray, k: int, penalty: float, excluded: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(article rows, adjusted scores) for the top k after the category-repeat penalty.

    `excluded` rows (already read) are never recommended. Ties go to the lower row index, so the
    result is deterministic.
    """
    available = scores.copy()
    available[excluded] = -np.inf
    pool_size = min(CANDIDATES, int(np.isfinite(available).sum()))
    # Stable sort of the negated scores: ties keep row order.
    pool = np.argsort(-available, kind="stable")[:pool_size]
    pool_scores, pool_categories = available[pool], categories[pool]
    placed = np.zeros(int(categories.max()) + 1, dtype=np.int64)
    taken = np.zeros(pool.size, dtype=bool)
    chosen, adjusted = [], []
    for _ in range(min(k, pool.size)):
        candidate = np.where(taken, -np.inf, pool_scores - penalty * placed[pool_categories])
        best = int(np.argmax(candidate))
        taken[best] = True
        placed[pool_categories[best]] += 1
        chosen.append(pool[best])
        adjusted.append(candidate[best])
    return np.array(chosen, dtype=np.int64), np.array(adjusted)
