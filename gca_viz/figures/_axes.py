"""Log axes that label every decade, for every figure of :mod:`gca_viz.figures`.

Plotly picks a log axis's ticks by itself: some decades unlabelled, ``2`` and ``5`` between
them, or SI suffixes (``10µ``). Every log axis here is :func:`log_axis` instead: a tick at
each power of ten the data spans, read ``0.001, 0.01, 0.1, 1, 10`` (or ``1e-6 ... 1e0``
when the decades go beyond ``1e-4`` or ``1e4``). Axis titles are Unicode (``ε``, ``λ₁``,
``‖·‖``): plotly shows TeX as written unless the page loads MathJax.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gca_viz.figures._arrays import floats

PLAIN_DECADES = (-4, 4)
"""The decades written as plain decimals (``0.0001`` to ``10000``); beyond: ``1e-5``."""


def decades(*values: Any) -> list[float]:
    """Every power of ten from the one at or below the smallest positive finite value to
    the one at or above the largest, over all ``values`` (arrays, lists or numbers);
    ``[]`` if none is positive."""
    parts = [floats(v).ravel() for v in values]
    v = np.concatenate(parts) if parts else np.empty(0)
    v = v[np.isfinite(v) & (v > 0)]
    if not v.size:
        return []
    lo, hi = int(np.floor(np.log10(v.min()))), int(np.ceil(np.log10(v.max())))
    return [float(10.0**k) for k in range(lo, hi + 1)]


def decade_text(ticks: list[float]) -> list[str]:
    """The labels of decade ticks: plain decimals if every tick lies within
    :data:`PLAIN_DECADES`, else ``1eK`` for all of them (one style per axis)."""
    powers = [round(float(np.log10(t))) for t in ticks]
    if all(PLAIN_DECADES[0] <= k <= PLAIN_DECADES[1] for k in powers):
        return ["0." + "0" * (-k - 1) + "1" if k < 0 else "1" + "0" * k for k in powers]
    return [f"1e{k}" for k in powers]


SHORT_SPAN = 2
"""Data within this many decades gets an axis range from decade to decade
(:func:`log_axis`)."""


def log_axis(*values: Any) -> dict[str, Any]:
    """Layout of a log axis over ``values`` (the data drawn on it) with a labelled tick at
    every decade (:func:`decades`, :func:`decade_text`); without positive data, plotly's
    own tick at every decade (``dtick=1``). Data within :data:`SHORT_SPAN` decades gets a
    range from its lowest decade to its highest (a little beyond, for the markers): plotly's
    own range fits the data, and over 0.0021 ... 0.0097 it showed one labelled tick, 0.01."""
    ticks = decades(*values)
    if not ticks:
        return {"type": "log", "dtick": 1}
    axis: dict[str, Any] = {
        "type": "log",
        "tickmode": "array",
        "tickvals": ticks,
        "ticktext": decade_text(ticks),
    }
    if len(ticks) <= SHORT_SPAN + 1:
        low, high = np.log10(ticks[0]), np.log10(ticks[-1])
        pad = 0.03 * (high - low) if high > low else 0.5  # (all data on one power of ten)
        axis["range"] = [float(low - pad), float(high + pad)]
    return axis


def round_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round values from ``lo`` to ``hi`` (both included when round), 1, 2 or 5 times a
    power of ten apart, about ``count`` steps over the range: ``(0, 0.19)`` gives
    ``[0, 0.05, 0.1, 0.15]``. For a colour bar whose values plotly cannot space itself (a
    quantised heatmap): evenly spaced fractions of the range read ``0.0381, 0.0762, 0.114``.
    ``[lo]`` when the range is empty."""
    if not (np.isfinite(lo) and np.isfinite(hi)) or not hi > lo:
        return [float(lo)]
    raw = (hi - lo) / max(count, 1)
    magnitude = 10.0 ** np.floor(np.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw * (1 - 1e-9))
    first = np.ceil(lo / step - 1e-9) * step
    ticks = np.arange(first, hi + step * 1e-9, step)
    return [float(f"{np.round(t / step) * step:.12g}") + 0.0 for t in ticks]
