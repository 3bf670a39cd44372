"""Implicit-feedback matrix factorisation by alternating least squares (Hu, Koren, Volinsky 2008).

Clicks are preferences p=1 with confidence c = 1 + alpha * clicks; every unclicked pair is a
p=0 with confidence 1. Each half-step solves, for every row u at once,
    (YᵀY + Yᵀ(C_u - I)Y + λI) x_u = Yᵀ C_u p_u,
which only touches a row's own clicks thanks to the shared YᵀY. Rows are solved in batches of
similar click counts, padded to the batch's longest row, so numpy does the work in a handful of
batched matmuls and solves instead of a Python loop per row.

`fold_in` applies the same solve to one new click list (a request's history), pulled towards a
prior vector: that is how the served model updates a known user, or starts a new one, without
retraining.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_BATCH_CELLS = 1 << 18  # padded (row, click) cells per batch: bounds memory at ~cells * factors
_WIDTH_GROWTH = 1.25  # a batch's rows have click counts within this factor of each other


@dataclass(frozen=True)
class _Batch:
    rows: np.ndarray  # (b,) row indices solved in this batch
    columns: np.ndarray  # (b, width) clicked column per row, padded with 0
    confidence: np.ndarray  # (b, width) c_ui, 0 in padding


def _batches(rows: np.ndarray, columns: np.ndarray, confidence: np.ndarray, n_rows: int) -> list[_Batch]:
    """Group rows whose click counts are within a factor of _WIDTH_GROWTH, so padding stays small."""
    order = np.lexsort((columns, rows))
    rows, columns, confidence = rows[order], columns[order], confidence[order]
    counts = np.bincount(rows, minlength=n_rows)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    band = np.ceil(np.log(np.maximum(counts, 1)) / np.log(_WIDTH_GROWTH)).astype(int)
    batches, pending = [], []
    for row in np.lexsort((counts, band)):
        if pending and (band[row] != band[pending[0]] or (len(pending) + 1) * counts[row] > _BATCH_CELLS):
            batches.append(_pack(pending, counts, starts, columns, confidence))
            pending = []
        pending.append(row)
    if pending:
        batches.append(_pack(pending, counts, starts, columns, confidence))
    return batches


def _pack(rows: list[int], counts, starts, columns, confidence) -> _Batch:
    rows_array = np.array(rows)
    width = max(1, int(counts[rows_array].max()))
    offsets = np.arange(width)
    valid = offsets[None, :] < counts[rows_array][:, None]
    index = np.where(valid, starts[rows_array][:, None] + offsets[None, :], 0)
    return _Batch(rows_array, np.where(valid, columns[index], 0), np.where(valid, confidence[index], 0.0))


def _solve(batch: _Batch, fixed: np.ndarray, gram: np.ndarray, regularization: float) -> np.ndarray:
    factors = fixed[batch.columns]  # (b, width, f)
    weighted = factors * (batch.confidence - (batch.confidence > 0))[..., None]  # (c - 1) y, 0 in padding
    lhs = gram + regularization * np.eye(gram.shape[0]) + np.swapaxes(weighted, 1, 2) @ factors
    rhs = (factors * batch.confidence[..., None]).sum(axis=1)
    return np.linalg.solve(lhs, rhs[..., None])[..., 0]


def factorize(
    rows: np.ndarray,
    columns: np.ndarray,
    clicks: np.ndarray,
    shape: tuple[int, int],
    *,
    factors: int = 32,
    alpha: float = 8.0,
    regularization: float = 0.5,
    iterations: int = 8,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """(row factors, column factors) for aggregated click counts at (rows[i], columns[i])."""
    n_rows, n_columns = shape
    confidence = 1.0 + alpha * clicks.astype(np.float64)
    rng = np.random.default_rng(seed)
    user = rng.normal(0.0, 0.01, size=(n_rows, factors))
    item = rng.normal(0.0, 0.01, size=(n_columns, factors))
    user_batches = _batches(rows, columns, confidence, n_rows)
    item_batches = _batches(columns, rows, confidence, n_columns)
    for _ in range(iterations):
        for target, fixed, batches in ((user, item, user_batches), (item, user, item_batches)):
            gram = fixed.T @ fixed
            for batch in batches:
                target[batch.rows] = _solve(batch, fixed, gram, regularization)
    return user, item


def fold_in(
    columns: np.ndarray,
    item: np.ndarray,
    gram: np.ndarray,
    prior: np.ndarray,
    *,
    alpha: float,
    regularization: float,
) -> np.ndarray:
    """One row's factors from its clicked columns, regularised towards `prior` instead of 0."""
    clicked = item[columns]
    confidence = 1.0 + alpha
    lhs = gram + regularization * np.eye(gram.shape[0]) + (confidence - 1.0) * clicked.T @ clicked
    rhs = confidence * clicked.sum(axis=0) + regularization * prior
    return np.linalg.solve(lhs, rhs)
