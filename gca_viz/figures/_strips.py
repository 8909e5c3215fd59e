"""The marginal strips of the half-step player (:mod:`gca_viz.figures.player`): each
half-step's row and column sums over their targets, block-averaged as the plan's heatmap is,
their axes, and the frame's misfit in words (numpy in, plotly layout dicts out).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

STRIP = 0.2
"""Share of the player's height given to the column-sum strip under the plan."""


def strip_axis(
    domain: list[float], span: list[float], anchor: str, title: str, color: str
) -> dict[str, Any]:
    """The value axis of a marginal strip of the half-step player (three ticks, the title in
    the strip's colour)."""
    return {
        "domain": domain,
        "range": span,
        "anchor": anchor,
        "nticks": 3,
        "tickangle": 0,
        "tickfont": {"size": 12},
        "showgrid": False,
        "zeroline": False,
        "title": {"text": title, "font": {"size": 13, "color": color}, "standoff": 2},
    }


def _block_mean(v: np.ndarray, f: int) -> np.ndarray:
    """``v`` averaged over blocks of ``f`` entries (the last block may be partial), as
    :func:`gca_viz.lab.plans.downsample` averages the plan's cells."""
    if f == 1:
        return v
    padded = np.full(-(-v.size // f) * f, np.nan)
    padded[: v.size] = v
    return np.asarray(np.nanmean(padded.reshape(-1, f), axis=1))


class Marginals(NamedTuple):
    """The marginal strips' data of the half-step player (:func:`marginal_ratios`)."""

    rows: np.ndarray  # (K, rows shown): row sums / μ, block-averaged
    cols: np.ndarray  # (K, cols shown): column sums / ν
    row_range: list[float]
    col_range: list[float]
    row_off: np.ndarray  # (K,): max_i |(P1)_i / μ_i - 1| at full resolution
    col_off: np.ndarray  # (K,)


def marginal_ratios(stack: np.ndarray, f: int) -> Marginals:
    """Row and column sums of every half-step's plan over their targets ``μ = P^(1) 1`` and
    ``ν = P^(2)ᵀ 1`` (block-averaged by ``f``), one axis range for each, over ``k >= 1``
    (the kernel's ``k = 0`` sums may lie far off: its bars leave the range) and always
    holding 1, and each frame's largest relative misfit."""
    finite = np.where(np.isfinite(stack), stack, 0.0)
    rows, cols = finite.sum(axis=2), finite.sum(axis=1)  # (K, n), (K, m)
    mu = rows[min(1, len(rows) - 1)]
    nu = cols[min(2, len(cols) - 1)]
    with np.errstate(divide="ignore", invalid="ignore"):
        row_ratio = np.where(mu > 0, rows / np.where(mu > 0, mu, 1.0), np.nan)
        col_ratio = np.where(nu > 0, cols / np.where(nu > 0, nu, 1.0), np.nan)
    row_off = np.nanmax(np.abs(row_ratio - 1.0), axis=1, initial=0.0)
    col_off = np.nanmax(np.abs(col_ratio - 1.0), axis=1, initial=0.0)
    row_ratio = np.stack([_block_mean(r, f) for r in row_ratio])
    col_ratio = np.stack([_block_mean(c, f) for c in col_ratio])

    def span(ratio: np.ndarray) -> list[float]:
        seen = ratio[1:] if len(ratio) > 1 else ratio
        seen = seen[np.isfinite(seen)]
        low = min(float(seen.min()) if seen.size else 1.0, 1.0)
        high = max(float(seen.max()) if seen.size else 1.0, 1.0)
        pad = max(0.08 * (high - low), 1e-6)
        return [low - pad, high + pad]

    return Marginals(row_ratio, col_ratio, span(row_ratio), span(col_ratio), row_off, col_off)


def misfit_words(row_off: float, col_off: float) -> str:
    """What a half-step's marginals are: ``"rows on target · columns off by up to 4.2%"``
    (within ``1e-9``: on target; a misfit under 0.1% in powers of ten)."""

    def said(name: str, off: float) -> str:
        if not np.isfinite(off):
            return f"{name} off"
        if off < 1e-9:
            return f"{name} on target"
        return f"{name} off by up to {off:.1%}" if off >= 1e-3 else f"{name} off by up to {off:.0e}"

    return f"{said('rows', row_off)} · {said('columns', col_off)}"
