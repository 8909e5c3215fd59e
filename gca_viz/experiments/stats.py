"""Small statistics shared by the experiments: trend lines, rank and linear correlations."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Trend:
    r"""How a measured value moves with a swept parameter.

    ``slope`` and ``intercept`` are the least-squares line ``y ≈ slope x + intercept``;
    ``spearman`` and ``pearson`` the rank and linear correlations; ``n`` the number of
    finite points used (``NaN`` statistics below 2 points, or 3 for the correlations).
    """

    n: int
    slope: float
    intercept: float
    spearman: float
    pearson: float


def trend(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> Trend:
    """Least-squares slope and Spearman/Pearson correlations of ``y`` against ``x``, over the
    points where both are finite."""
    X, Y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if X.shape != Y.shape or X.ndim != 1:
        raise ValueError(f"x and y must be 1-D of one length, got {X.shape} and {Y.shape}")
    ok = np.isfinite(X) & np.isfinite(Y)
    X, Y = X[ok], Y[ok]
    n = len(X)
    if n < 2 or np.ptp(X) == 0:
        return Trend(n, math.nan, math.nan, math.nan, math.nan)
    slope, intercept = (float(v) for v in np.polyfit(X, Y, 1))
    rho = spearman(X, Y) if n >= 3 else math.nan
    r = pearson(X, Y) if n >= 3 else math.nan
    return Trend(n, slope, intercept, rho, r)


def pearson(x: Any, y: Any) -> float:
    r"""Pearson correlation ``r = Σ (x - x̄)(y - ȳ) / sqrt(Σ (x - x̄)² Σ (y - ȳ)²)``;
    ``NaN`` if either side is constant."""
    X, Y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    dx, dy = X - X.mean(), Y - Y.mean()
    denom = math.sqrt(float((dx * dx).sum() * (dy * dy).sum()))
    return float((dx * dy).sum() / denom) if denom > 0 else math.nan


def spearman(x: Any, y: Any) -> float:
    """Spearman rank correlation: :func:`pearson` of the ranks (ties get their mean rank)."""
    return pearson(_ranks(np.asarray(x, dtype=np.float64)), _ranks(np.asarray(y, np.float64)))


def _ranks(v: np.ndarray) -> np.ndarray:
    """Ranks ``1..n`` of ``v``, tied values sharing the mean of their ranks."""
    order = np.argsort(v, kind="stable")
    ranks = np.empty(len(v), dtype=np.float64)
    ranks[order] = np.arange(1, len(v) + 1)
    values, inverse = np.unique(v, return_inverse=True)
    sums = np.bincount(inverse, weights=ranks, minlength=len(values))
    return np.asarray(sums / np.bincount(inverse, minlength=len(values)))[inverse]
