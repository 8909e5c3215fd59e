"""How a heatmap marks the positive pairs ``(i, pos(i))``: open squares on its cells, or a
corridor of two lines either side on cells too small for a square (shared by
:func:`gca_viz.figures.plans.matrix_heatmap` and the half-step player)."""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go

from gca_viz.lab.plans import display_factor

POSITIVE_COLOR = "#ff2d95"
"""Outline of the positive pairs ``(i, pos(i))`` on a heatmap."""


MARK_MIN_PX = 4.0
"""The smallest open square drawn on a positive pair's cell (px). Cells smaller than this
(about 110 displayed rows and more) get a corridor of two lines instead: squares of this
size on smaller cells overlap into a band that hides the diagonal's own values."""


def cell_px(rows: int, height: int) -> float:
    """A displayed cell's side in pixels (the main domain takes 0.8 of the plotting area)."""
    return 0.8 * (height - 110) / max(rows, 1)


def positive_marks_words(n: int, height: int, max_size: int = 256) -> str:
    """How :func:`gca_viz.figures.plans.matrix_heatmap` marks the positive pairs of an
    ``(n, n)`` matrix drawn ``height`` px tall, for a caption: ``"pink squares"`` or
    ``"pink lines either side"``."""
    rows = -(-n // display_factor((n, n), max_size))
    return "pink squares" if cell_px(rows, height) >= MARK_MIN_PX else "pink lines either side"


def positive_marks(pos: np.ndarray, f: int, rows: int, height: int) -> go.Scatter:
    """The cells ``(i, pos(i))`` (block positions when downsampled) marked: an open square on
    each, or, on cells below :data:`MARK_MIN_PX`, a corridor: two lines parallel to each run
    of positives along a diagonal (``pos(i) - i`` constant, consecutive ``i``), two pixels
    clear of the cells' corners, so the cells' own colours stay visible between them."""
    i = np.arange(len(pos))
    cells = np.unique(np.stack([i // f * f, pos.astype(int) // f * f], 1), axis=0)  # (k, 2)
    side = cell_px(rows, height)
    common = {
        "name": "positive pair (i, pos(i))",
        "hoverinfo": "skip",  # clicks and hovers go to the cell layer beneath
        "xaxis": "x",
        "yaxis": "y",
        "showlegend": False,
    }
    if side >= MARK_MIN_PX:
        index_type = np.uint8 if cells.max(initial=0) < 256 else np.uint16
        return go.Scatter(
            x=cells[:, 1].astype(index_type),
            y=cells[:, 0].astype(index_type),
            mode="markers",
            marker={
                "symbol": "square-open",
                "size": float(min(side, 30)),
                "color": POSITIVE_COLOR,
                "line": {"width": 1.5},
            },
            **common,
        )
    # A cell's far corner lies f off the diagonal (in x - y); the line runs parallel, so two
    # pixels of clearance at right angles is 2√2 px more in x - y (index units: f / side).
    offset = f * (1.0 + 2.0 * math.sqrt(2.0) / side)
    xs: list[float | None] = []
    ys: list[float | None] = []
    for r0, r1, d in _diagonal_runs(cells, f):
        for shift in (-offset, offset):
            xs += [r0 + d - f / 2 + shift, r1 + d + f / 2 + shift, None]
            ys += [r0 - f / 2, r1 + f / 2, None]
    return go.Scatter(
        x=xs, y=ys, mode="lines", line={"color": POSITIVE_COLOR, "width": 1}, **common
    )


def _diagonal_runs(cells: np.ndarray, f: int) -> list[tuple[int, int, int]]:
    """``(first row, last row, column - row)`` of each run of ``cells`` (``(k, 2)`` rows and
    columns, steps of ``f``) that lie on one diagonal in consecutive rows."""
    d = cells[:, 1] - cells[:, 0]
    order = np.lexsort((cells[:, 0], d))
    runs: list[tuple[int, int, int]] = []
    for row, diag in zip(cells[order, 0].tolist(), d[order].tolist(), strict=True):
        if runs and runs[-1][2] == diag and runs[-1][1] + f == row:
            runs[-1] = (runs[-1][0], row, diag)
        else:
            runs.append((row, row, diag))
    return runs
