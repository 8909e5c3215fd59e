"""Input validation shared by the lab modules (``ValueError`` naming the parameter): the
scalar checks of :mod:`gca_viz._validate` under the lab's names, and the lab's tensors."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import wraps
from typing import Any, ParamSpec, TypeVar

import numpy as np
import torch

from gca_viz._validate import integer, positive, relaxation
from gca_viz.device import torch_threads

count = integer  # a number of samples, sweeps or points: an integer >= low
relax = relaxation  # a marginal weight λ > 0; None or inf keep the marginal hard
__all__ = ["cost_tensor", "count", "positive", "relax", "single_threaded", "target_tensor"]

P = ParamSpec("P")
R = TypeVar("R")


def cost_tensor(cost: Any, dtype: torch.dtype | None = None) -> torch.Tensor:
    """``cost`` as a 2-D tensor (``+inf`` allowed for excluded pairs; no NaN, no ``-inf``)."""
    raw = cost.detach() if isinstance(cost, torch.Tensor) else torch.as_tensor(np.asarray(cost))
    if raw.ndim != 2 or min(raw.shape) == 0:
        raise ValueError(f"cost must be a non-empty 2-D matrix, got shape {tuple(raw.shape)}")
    C = raw.to(dtype or (raw.dtype if raw.is_floating_point() else torch.float64))
    if bool(torch.isnan(C).any()) or bool((C == -math.inf).any()):
        raise ValueError("cost contains NaN or -inf")
    return C


def target_tensor(target: Any, C: torch.Tensor) -> torch.Tensor:
    """``target`` (default: the identity) as a non-negative tensor of the cost's shape, with
    mass in every row and column (so ``μ = P_tgt 1`` and ``ν = P_tgt^T 1`` are valid) and
    none on an excluded pair (``C_ij = +inf``: every plan is 0 there, so the KL from the
    target would be infinite at every half-step, and its curve empty)."""
    if target is None:
        if C.shape[0] != C.shape[1]:
            raise ValueError("target is required for a non-square cost")
        return _reachable(torch.eye(C.shape[0], dtype=C.dtype), C, default=True)
    raw = (
        target.detach() if isinstance(target, torch.Tensor) else torch.as_tensor(np.asarray(target))
    )
    T = raw.to(C.dtype)
    if T.shape != C.shape:
        raise ValueError(
            f"target must have the cost's shape {tuple(C.shape)}, got {tuple(T.shape)}"
        )
    if not bool(torch.isfinite(T).all()) or bool((T < 0).any()):
        raise ValueError("target must be finite and non-negative")
    if bool((T.sum(1) <= 0).any()) or bool((T.sum(0) <= 0).any()):
        raise ValueError("target has a row or column with no mass")
    return _reachable(T, C, default=False)


def _reachable(T: torch.Tensor, C: torch.Tensor, default: bool) -> torch.Tensor:
    """``T``, unless it puts mass on a pair the cost excludes (``C_ij = +inf``)."""
    bad = (T > 0) & torch.isposinf(C)
    if not bool(bad.any()):
        return T
    i, j = (int(v) for v in bad.nonzero()[0])
    which = "the default target (the identity)" if default else "target"
    raise ValueError(
        f"target: {which} puts mass on {int(bad.sum())} pair(s) the cost excludes "
        f"(C = +inf, first at ({i}, {j})), where every plan is 0: KL(P_tgt || P) would be "
        "infinite. A joint-layout cost (self-pairs excluded, rows [z'; z'']) needs the pair "
        "target: target=gca_viz.targets.pair_target(N, 'joint')"
    )


def single_threaded(fn: Callable[P, R]) -> Callable[P, R]:
    """Decorator: run ``fn`` with torch on one thread (:func:`gca_viz.device.torch_threads`):
    the lab's matrices are small, and torch's spinning OpenMP workers made its row
    projections ten times slower on a busy 2-core machine (measured)."""

    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with torch_threads(1):
            return fn(*args, **kwargs)

    return wrapper
