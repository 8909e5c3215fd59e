r"""Target plans ``P_tgt``: what should be matched to what (``gca-math.md`` section 5).

A batch of ``N`` samples, each seen in two views, has two layouts:

* ``"cross"`` (``N x N``): rows are view-1 samples, columns view-2 samples; sample ``i``'s
  positive is column ``i``.
* ``"joint"`` (``2N x 2N``, SimCLR's layout): rows and columns are ``[z'; z'']``; the
  positive of row ``i`` is ``partner(i) = (i + N) mod 2N`` and the diagonal (self-pairs) is
  excluded, so every target is 0 there.

Every builder returns a non-negative ``torch.Tensor`` and is registered in :data:`TARGETS`
with its parameter schema and formula. :func:`target_marginals` gives ``μ = P_tgt 1`` and
``ν = P_tgt^T 1``, the marginals under which the target is feasible, so the monotonicity
theorem (``gca-math.md`` section 4) applies to every prior.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import torch

from gca_viz.registry import Param, Registry

Layout = Literal["cross", "joint"]
LAYOUTS: tuple[str, ...] = ("cross", "joint")

TARGETS = Registry("target")
"""Registry of target-plan builders: ``pairs``, ``class``, ``domain``, ``custom``."""

PAIRS_LATEX = (
    r"P_{\mathrm{tgt}} = I \;\;(\text{cross}),\qquad"
    r" (P_{\mathrm{tgt}})_{ij} = \mathbb{1}[j = \mathrm{partner}(i)] \;\;(\text{joint})"
)
CLASS_LATEX = r"P_{\mathrm{tgt}} = I + \gamma\, \mathbb{1}[y_i = y_j,\ i \ne j]"
DOMAIN_LATEX = (
    r"P_{\mathrm{tgt}} = I + \alpha\, \mathbb{1}[D_i = D_j,\ i \ne j]"
    r" + \beta\, \mathbb{1}[D_i \ne D_j,\ i \ne j]"
)
CUSTOM_LATEX = r"P_{\mathrm{tgt}} \in \mathbb{R}_{\ge 0}^{n \times m}"


def check_layout(layout: str) -> Layout:
    """Return ``layout`` if it is ``"cross"`` or ``"joint"``, else raise ``ValueError``."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be 'cross' or 'joint', got {layout!r}")
    return layout  # type: ignore[return-value]


def partner(
    n: int, layout: str = "cross", device: torch.device | str | None = None
) -> torch.Tensor:
    """Column index of each row's positive: ``i`` (cross, ``(N,)``) or ``(i + N) mod 2N``
    (joint, ``(2N,)``). Raises ``ValueError`` unless ``n`` is a positive integer."""
    n = _check_n(n)
    idx = torch.arange(n, device=device)
    if check_layout(layout) == "cross":
        return idx
    return torch.cat([idx + n, idx])


def _labels(values: Any, name: str, n: int, layout: Layout) -> torch.Tensor:
    """Integer codes of the ``n`` samples' labels (equal labels, equal codes), repeated for
    both views in the joint layout. Arrays are compared by value; any other sequence by
    Python equality, so labels may be any hashable values."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    if isinstance(values, np.ndarray) and values.dtype != object:
        if values.ndim != 1 or values.shape[0] != n:
            raise ValueError(f"{name} must have shape ({n},), got {values.shape}")
        if values.dtype.kind in "fc" and bool(np.isnan(values).any()):
            raise ValueError(f"{name} contains NaN, which is no class or domain")
        codes = np.unique(values, return_inverse=True)[1].reshape(-1)
    else:
        items = list(values)
        if len(items) != n:
            raise ValueError(f"{name} must have length {n}, got {len(items)}")
        if any(isinstance(item, float) and math.isnan(item) for item in items):
            raise ValueError(f"{name} contains NaN, which is no class or domain")
        seen: dict[Any, int] = {}
        try:
            codes = np.array([seen.setdefault(item, len(seen)) for item in items])
        except TypeError:
            raise ValueError(f"{name} must be hashable values (numbers, strings, ...)") from None
    lab = torch.as_tensor(codes, dtype=torch.long)
    return lab if layout == "cross" else torch.cat([lab, lab])


def _base(n: int, layout: Layout) -> torch.Tensor:
    """The pair target as float64: ``I_N`` or the ``2N x 2N`` pair permutation."""
    size = n if layout == "cross" else 2 * n
    P = torch.zeros(size, size, dtype=torch.float64)
    P[torch.arange(size), partner(n, layout)] = 1.0
    return P


def _off_pair(n: int, layout: Layout) -> torch.Tensor:
    """Mask of entries that are neither a positive pair nor (joint) a self-pair."""
    base = _base(n, layout).bool()
    if layout == "joint":
        base |= torch.eye(2 * n, dtype=torch.bool)
    return ~base


def _side_length(values: Any, name: str) -> int:
    """``len(values)`` for per-sample side information, or ``ValueError`` naming it."""
    try:
        return len(values)
    except TypeError:
        raise ValueError(
            f"{name} must be a sequence (one entry per sample), got {type(values).__name__}"
        ) from None


def _check_n(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer (the batch size), got {n!r}")
    return int(n)


def _check_weight(value: float, name: str) -> float:
    try:
        w = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number >= 0, got {value!r}") from None
    if not np.isfinite(w) or w < 0:
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
    return w


@TARGETS.register(
    "pairs",
    latex=PAIRS_LATEX,
    description="Augmentation pairs: each view's positive is the other view of its sample.",
)
def pair_target(n: int, layout: str = "cross") -> torch.Tensor:
    r"""Augmentation-pair target: ``I_N`` (cross) or the pair permutation (joint).

    .. math::
        P_{\mathrm{tgt}} = I_N \quad\text{or}\quad
        (P_{\mathrm{tgt}})_{ij} = \mathbb 1[j = \mathrm{partner}(i)],\quad
        \mathrm{partner}(i) = (i+N) \bmod 2N

    Args:
        n: batch size ``N`` (samples, not views).
        layout: ``"cross"`` or ``"joint"``.

    Returns:
        ``(N, N)`` or ``(2N, 2N)`` float64 tensor.
    """
    return _base(_check_n(n), check_layout(layout))


@TARGETS.register(
    "class",
    params=(
        Param(
            "gamma", 0.1, "Weight on same-class pairs (0 = plain pairs).", "γ", low=0.0, high=1.0
        ),
    ),
    latex=CLASS_LATEX,
    description="Class prior: same-class samples are partial positives (supervised flavour).",
)
def class_target(labels: Any, gamma: float = 0.1, layout: str = "cross") -> torch.Tensor:
    r"""Class-prior target (supervised-contrastive flavour, ``gca-math.md`` section 5).

    .. math::
        P_{\mathrm{tgt}} = I + \gamma\,\mathbb 1[y_i = y_j,\ i \ne j]

    where ``y`` are the class labels, ``γ >= 0`` and ``I`` is the pair target of the layout
    (in the joint layout ``i != j`` also excludes the self-pair and the partner, which keeps
    weight 1; labels are repeated for the two views).

    Args:
        labels: ``(N,)`` class labels (any values that compare equal per class).
        gamma: weight ``γ >= 0`` on same-class pairs.
        layout: ``"cross"`` or ``"joint"``.

    Returns:
        ``(N, N)`` or ``(2N, 2N)`` float64 tensor with row sums ``1 + γ (n_y - 1)``.

    Raises:
        ValueError: for labels that are not 1-D, or a negative or non-finite ``gamma``.
    """
    lay = check_layout(layout)
    n = _side_length(labels, "labels")
    y = _labels(labels, "labels", _check_n(n), lay)
    same = y[:, None] == y[None, :]
    mask = (same & _off_pair(n, lay)).double()
    return _base(n, lay) + _check_weight(gamma, "gamma") * mask


@TARGETS.register(
    "domain",
    params=(
        Param("alpha", 0.2, "Weight on same-domain pairs.", "α", low=0.0, high=1.0),
        Param("beta", 0.0, "Weight on cross-domain pairs.", "β", low=0.0, high=1.0),
    ),
    latex=DOMAIN_LATEX,
    description="Domain prior: α - β > 0 keeps domains apart, < 0 mixes them (paper's Fig. 1).",
)
def domain_target(
    domains: Any, alpha: float = 0.2, beta: float = 0.0, layout: str = "cross"
) -> torch.Tensor:
    r"""Domain-prior target (the paper's Fig. 1, ``gca-math.md`` section 5).

    .. math::
        P_{\mathrm{tgt}} = I + \alpha\,\mathbb 1[D_i = D_j,\ i \ne j]
            + \beta\,\mathbb 1[D_i \ne D_j,\ i \ne j]

    where ``D`` are domain labels and ``α, β >= 0``. Raising ``α - β`` makes the domain
    linearly decodable from the embeddings.

    Args:
        domains: ``(N,)`` domain labels.
        alpha: weight ``α >= 0`` on same-domain pairs.
        beta: weight ``β >= 0`` on cross-domain pairs.
        layout: ``"cross"`` or ``"joint"``.

    Returns:
        ``(N, N)`` or ``(2N, 2N)`` float64 tensor.

    Raises:
        ValueError: for domains that are not 1-D, or a negative or non-finite weight.
    """
    lay = check_layout(layout)
    n = _side_length(domains, "domains")
    d = _labels(domains, "domains", _check_n(n), lay)
    same = d[:, None] == d[None, :]
    off = _off_pair(n, lay)
    a, b = _check_weight(alpha, "alpha"), _check_weight(beta, "beta")
    return _base(n, lay) + a * (same & off).double() + b * (~same & off).double()


@TARGETS.register(
    "custom",
    latex=CUSTOM_LATEX,
    description="Any non-negative matrix of the batch's shape (uploaded or designed).",
)
def custom_target(matrix: Any, n: int, layout: str = "cross") -> torch.Tensor:
    r"""A user-supplied target plan, validated.

    .. math::
        P_{\mathrm{tgt}} \in \mathbb R_{\ge 0}^{n \times n}, \qquad
        P_{\mathrm{tgt}} \mathbf 1 > 0,\ P_{\mathrm{tgt}}^\top \mathbf 1 > 0

    Every row and column needs some mass (so that ``μ = P_tgt 1`` and ``ν = P_tgt^T 1``
    are valid marginals), and in the joint layout the diagonal must be 0 (self-pairs are
    excluded by ``C_ii = +inf``, so mass there would make the KL infinite).

    Args:
        matrix: ``(N, N)`` (cross) or ``(2N, 2N)`` (joint) array or tensor.
        n: batch size ``N``.
        layout: ``"cross"`` or ``"joint"``.

    Returns:
        The matrix as a float64 tensor.

    Raises:
        ValueError: for a wrong shape, NaN/inf or negative entries, an empty row or
            column, or (joint) mass on the diagonal.
    """
    lay = check_layout(layout)
    size = _check_n(n) if lay == "cross" else 2 * _check_n(n)
    P = _real_matrix(matrix)
    if P.shape != (size, size):
        raise ValueError(f"target must have shape ({size}, {size}), got {tuple(P.shape)}")
    if not bool(torch.isfinite(P).all()):
        raise ValueError("target contains NaN or inf")
    if bool((P < 0).any()):
        raise ValueError("target has negative entries; a plan is non-negative")
    if bool((P.sum(1) <= 0).any()) or bool((P.sum(0) <= 0).any()):
        raise ValueError("target has a row or column with no mass")
    if lay == "joint" and bool((P.diagonal() != 0).any()):
        raise ValueError("target must be 0 on the diagonal in the joint layout (self-pairs)")
    return P


def _real_matrix(matrix: Any) -> torch.Tensor:
    """``matrix`` as a float64 tensor; ``ValueError`` (naming the target) unless it holds
    real numbers (complex values are rejected, not silently truncated)."""
    if isinstance(matrix, torch.Tensor):
        if matrix.is_complex():
            raise ValueError(f"target must be real, got dtype {matrix.dtype}")
        return matrix.detach().cpu().to(torch.float64)
    try:
        arr = np.asarray(matrix)
    except (TypeError, ValueError):
        raise ValueError("target must be an array or tensor of numbers") from None
    if np.iscomplexobj(arr) or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise ValueError(f"target must hold real numbers, got dtype {arr.dtype}")
    return torch.as_tensor(arr, dtype=torch.float64)


def build_target(
    name: str,
    n: int,
    layout: str = "cross",
    *,
    labels: Any = None,
    domains: Any = None,
    matrix: Any = None,
    **params: Any,
) -> torch.Tensor:
    """Build the target named ``name`` from :data:`TARGETS` for a batch of ``n`` samples.

    ``labels`` (class prior), ``domains`` (domain prior) or ``matrix`` (custom) supply the
    batch's side information; ``params`` are validated against the entry's schema.

    Raises:
        ValueError: for an unknown name, an invalid parameter, or missing side information.
    """
    stage = TARGETS[name]
    values = stage.validate(params)
    if name == "pairs":
        return pair_target(n, layout)
    if name == "custom":
        if matrix is None:
            raise ValueError("the custom target needs a matrix")
        return custom_target(matrix, n, layout)
    side, side_name = (labels, "labels") if name == "class" else (domains, "domains")
    if side is None:
        raise ValueError(f"the {name} target needs {side_name} for the batch")
    if _side_length(side, side_name) != n:
        raise ValueError(f"{side_name} must have length {n}, got {len(side)}")
    return stage.fn(side, layout=layout, **values)  # type: ignore[no-any-return]


def target_marginals(target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(μ, ν) = (P_tgt 1, P_tgt^T 1)``, the marginals that make the target feasible.

    Raises:
        ValueError: if ``target`` is not a real 2-D tensor, has negative entries, or has
            NaN/inf entries or row/column sums.
    """
    if not isinstance(target, torch.Tensor) or target.ndim != 2 or target.is_complex():
        shape = tuple(target.shape) if isinstance(target, torch.Tensor) else type(target).__name__
        raise ValueError(f"target must be a real 2-D torch.Tensor, got {shape}")
    mu, nu = target.sum(1), target.sum(0)
    ok = torch.isfinite(mu).all() & torch.isfinite(nu).all() & (target >= 0).all()
    if not bool(ok):  # (one device sync on the good path)
        if bool((target < 0).any()):
            raise ValueError("target has negative entries; a plan is non-negative")
        raise ValueError("target contains NaN or inf, or its row or column sums overflow")
    return mu, nu
