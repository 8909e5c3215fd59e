r"""Cost matrices between two point sets (``docs/math.md`` sections 1 and 8).

Both functions accept numpy arrays and torch tensors (any device, float32 or float64),
return the type they were given, and are differentiable. On the CPU outside autograd they
compute in numpy (see :mod:`gca_viz.ot._xp`): a cost built with torch's thread pool right
before a solve slowed that solve's products down (n = 1024, ε = 0.05, two threads: 20.3 ms
against 13.7 ms per float32 solve).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from gca_viz._validate import dtype_name
from gca_viz.ot._checks import _check_rows, _points_pair
from gca_viz.ot._xp import Array, Namespace, namespace, output


def cosine_cost(x: Array, y: Array | None = None, *, exclude_self: bool = False) -> Array:
    r"""Cosine cost matrix ``C_ij = 1 - <x_i, y_j> / (||x_i|| ||y_j||)``.

    .. math::
        C_{ij} = 1 - s_{ij}, \qquad s_{ij} = \frac{\langle x_i, y_j\rangle}{\|x_i\|\,\|y_j\|}
        \in [-1, 1]

    where ``s`` is the cosine similarity (never clamped, ``docs/math.md`` section 8), so
    ``C`` lies in ``[0, 2]`` and the Gibbs kernel ``K = exp(-C/ε)`` lies in ``(0, 1]``.

    Args:
        x: ``(n, d)`` embeddings (rows need not be normalised; zero rows are rejected).
        y: ``(m, d)`` embeddings, or ``None`` to compare ``x`` with itself.
        exclude_self: put ``+inf`` on the diagonal (``K_ii = 0``), the joint layout's way of
            excluding self-pairs. Needs a square result.

    Returns:
        ``(n, m)`` cost matrix, same type and device as ``x``, in ``x``'s dtype for float32
        and float64 (float16 and bfloat16 are computed in float32, integers in float64);
        differentiable.

    Raises:
        ValueError: if ``x`` or ``y`` is not 2-D, is empty, has NaN/inf or a zero row, if
            the feature dimensions, the floating dtypes or the devices of ``x`` and ``y``
            differ, if ``y`` is a torch tensor and ``x`` is not (the result would be a numpy
            array without ``y``'s gradient), or if ``exclude_self`` is asked of a
            non-square cost.
    """
    ns, points = _points(x, y, exclude_self)
    xp = ns.xp
    # each row's largest |entry|, (n, 1): a constant for autograd (the direction does not
    # depend on it) that keeps the norm of a tiny or huge row from under- or overflowing
    peaks = [(name, xp.amax(xp.abs(ns.detach(t)), axis=1, keepdims=True)) for name, t in points]
    _check_rows(ns, peaks, zero_rows=True)
    units = [_unit_rows(ns, t, peak) for (_, t), (_, peak) in zip(points, peaks, strict=True)]
    xn, yn = units[0], units[-1]  # (n, d), (m, d) on the unit sphere
    cost = ns.one_minus_(xn @ yn.T)  # (n, m)
    if exclude_self:
        cost = ns.fill_diagonal(cost, math.inf)
    return output(cost, as_numpy=not isinstance(x, torch.Tensor))


def _points(x: Array, y: Array | None, exclude_self: bool) -> tuple[Namespace, list[Any]]:
    """The namespace of a cost between ``x`` and ``y``, and the point sets in it as
    ``(name, array)``: ``x``, then ``y`` unless it is ``None``."""
    xt, yt = _points_pair(x, y)
    if exclude_self:
        _check_square((xt.shape[0], yt.shape[0]))
    ns = namespace(xt, yt)
    return ns, [("x", ns.native(xt))] + ([] if y is None else [("y", ns.native(yt))])


def _unit_rows(ns: Namespace, t: Any, peak: Any) -> Any:
    """Rows divided by their L2 norm, after dividing each by its largest ``|entry|``."""
    t = t / peak
    return t / ns.xp.sqrt((t * t).sum(axis=1, keepdims=True))


def sqeuclidean_cost(x: Array, y: Array | None = None, *, exclude_self: bool = False) -> Array:
    r"""Squared Euclidean cost matrix ``C_ij = ||x_i - y_j||^2``.

    .. math::
        C_{ij} = \|x_i\|^2 + \|y_j\|^2 - 2\langle x_i, y_j\rangle \;\ge\; 0

    The points are first shifted by their common mean (``C`` does not change under a
    translation): points far from the origin next to their spread lost their distances to
    cancellation in the expansion (in float32, ``0.01``-apart points at ``100`` read
    ``0`` or ``0.002``). What rounding leaves below 0 is clipped.

    Args:
        x: ``(n, d)`` points.
        y: ``(m, d)`` points, or ``None`` to compare ``x`` with itself.
        exclude_self: put ``+inf`` on the diagonal; needs a square result.

    Returns:
        ``(n, m)`` cost matrix, same type and device as ``x``, in ``x``'s dtype for float32
        and float64 (float16 and bfloat16 are computed in float32, integers in float64);
        differentiable.

    Raises:
        ValueError: as :func:`cosine_cost` (zero rows are fine here), and if ``x`` and
            ``y`` are so large that squared distances overflow the dtype.
    """
    ns, points = _points(x, y, exclude_self)
    xp = ns.xp
    xs, ys = points[0][1], points[-1][1]
    with ns.quiet():  # an overflow is inf, and so are inf or NaN points: refused just below
        # shifted by the common mean, constant for autograd (C depends on x_i - y_j alone)
        both = xs if ys is xs else (xs.sum(axis=0) + ys.sum(axis=0)) / (len(xs) + len(ys))
        mean = ns.detach(both.mean(axis=0) if ys is xs else both)
        xc = xs - mean
        yc = xc if ys is xs else ys - mean
        sq_x, sq_y = (xc * xc).sum(axis=1), (yc * yc).sum(axis=1)  # (n,), (m,)
        peaks = [(name, xp.abs(ns.detach(t))) for name, t in points]  # (NaN and inf show)
        tops = [xp.amax(ns.detach(sq_x)), xp.amax(ns.detach(sq_y))]
        largest = sum(_check_rows(ns, peaks, zero_rows=False, extras=tops))
    # C_ij <= 2 (|x_i|^2 + |y_j|^2) of the shifted points, every partial sum likewise.
    if not 2 * largest <= ns.finfo(xs).max:
        raise ValueError(
            f"x and y are too large: squared distances overflow {dtype_name(xs.dtype)}"
        )
    cost = xc @ yc.T  # (n, m)
    cost *= -2.0
    cost += sq_x[:, None]
    cost += sq_y[None, :]
    cost = ns.clamp_min_(cost, 0.0)
    if exclude_self:
        cost = ns.fill_diagonal(cost, math.inf)
    return output(cost, as_numpy=not isinstance(x, torch.Tensor))


def _check_square(shape: tuple[int, int]) -> None:
    if shape[0] != shape[1]:
        raise ValueError(f"exclude_self needs a square cost, got shape {tuple(shape)}")
