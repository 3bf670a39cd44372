"""Reading drawn graphs back: decode a PNG, find where a colour is, map pixels to data.

A graph is checked by what it shows: the pixels of a series' colour, located against annotation
lines drawn at known values and times (their rows and columns give the axes' scales).
"""

from __future__ import annotations

import base64
import io
from datetime import datetime

import numpy as np
from matplotlib import image as mpimg

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def decode_png(data: bytes | str) -> np.ndarray:
    """RGBA floats in 0..1, rows x columns x 4; `data` raw or base64 (a notebook output)."""
    raw = base64.b64decode(data) if isinstance(data, str) else data
    assert raw.startswith(PNG_SIGNATURE), "not a PNG"
    pixels = mpimg.imread(io.BytesIO(raw), format="png")
    return pixels if pixels.shape[2] == 4 else np.dstack([pixels, np.ones(pixels.shape[:2])])


def color_mask(pixels: np.ndarray, color: str, tolerance: float = 0.1) -> np.ndarray:
    """Where the pixels are `color` (#rrggbb), within `tolerance` on each channel."""
    target = np.array([int(color[i:i + 2], 16) / 255 for i in (1, 3, 5)])
    return (np.abs(pixels[:, :, :3] - target) <= tolerance).all(axis=2)


def line_row(pixels: np.ndarray, color: str) -> float:
    """The row of a horizontal line of `color` (rows where it covers over a third of the width)."""
    mask = color_mask(pixels, color)
    rows = np.flatnonzero(mask.sum(axis=1) > pixels.shape[1] / 3)
    assert rows.size, f"no horizontal {color} line"
    return float(rows.mean())


def line_column(pixels: np.ndarray, color: str) -> float:
    """The column of a vertical line of `color` (columns where it covers over a third of the height)."""
    mask = color_mask(pixels, color)
    columns = np.flatnonzero(mask.sum(axis=0) > pixels.shape[0] / 3)
    assert columns.size, f"no vertical {color} line"
    return float(columns.mean())


def plot_bottom(pixels: np.ndarray) -> int:
    """The plot area's bottom row: the lowest dark line across over half the width, the x axis
    (below it are the tick labels and the legend, which are not data)."""
    dark = (pixels[:, :, :3] < 0.5).all(axis=2)
    rows = np.flatnonzero(dark.sum(axis=1) > pixels.shape[1] / 2)
    assert rows.size, "no x axis"
    return int(rows.max())


def series_rows(pixels: np.ndarray, color: str) -> np.ndarray:
    """The rows above the x axis where the series of `color` is drawn."""
    return np.flatnonzero(color_mask(pixels[:plot_bottom(pixels)], color).any(axis=1))


class Scale:
    """Linear pixel <-> data scales from two known rows (values) and two known columns (times)."""

    def __init__(self, rows: dict[float, float], columns: dict[datetime, float]) -> None:
        (v1, r1), (v2, r2) = sorted(rows.items())
        (t1, c1), (t2, c2) = sorted(columns.items())
        self._value = lambda row: v1 + (row - r1) * (v2 - v1) / (r2 - r1)
        self._column = lambda moment: c1 + (moment - t1).total_seconds() * (c2 - c1) / (t2 - t1).total_seconds()

    def column(self, moment: datetime) -> int:
        return round(self._column(moment))

    def value(self, row: float) -> float:
        return self._value(row)


def series_value_at(pixels: np.ndarray, color: str, column: int, scale: Scale) -> float | None:
    """The value the series of `color` shows at `column` (median of its pixels there), None if absent."""
    rows = np.flatnonzero(color_mask(pixels, color)[:, column - 1:column + 2].any(axis=1))
    return scale.value(float(np.median(rows))) if rows.size else None
