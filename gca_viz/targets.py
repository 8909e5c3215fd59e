r"""Target plans ``P_tgt``: what should be matched to what (``docs/math.md`` section 5).

A batch of ``N`` samples, each seen in two views, has two layouts:

* ``"cross"`` (``N x N``): rows are view-1 samples, columns view-2 samples; sample ``i``'s
  positive is column ``i``.
* ``"joint"`` (``2N x 2N``, SimCLR's layout): rows and columns are ``[z'; z'']``; the
  positive of row ``i`` is ``partner(i) = (i + N) mod 2N`` and the diagonal (self-pairs) is
  excluded, so every target is 0 there.

Every builder returns a non-negative ``torch.Tensor`` and is registered in :data:`TARGETS`
with its parameter schema and formula. :func:`target_marginals` gives ``μ = P_tgt 1`` and
``ν = P_tgt^T 1``, the marginals under which the target is feasible, so the monotonicity
theorem (``docs/math.md`` section 4) applies to every prior.

The class and domain priors take their weights as **shares of a row's mass**: in every row
the positive keeps ``1 - γ`` (or ``1 - α - β``) and the prior's share is split equally over
the row's same-class (same-domain, other-domain) samples, so every row sums to 1 and a
weight means the same at any batch size. Written per entry (``I + γ 1[y_i = y_j, i != j]``)
the prior's row mass would grow with ``N``: at ``N = 256`` in four equal domains, per-entry
``α = β = 0.25`` put 63.75 on a row's other samples against 1 on its positive (``α = β =
0.5``: 127.5). The per-entry form stays available from Python (``per_entry=True``) but is
not a registered target.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import torch

from gca_viz._validate import integer, nonnegative
from gca_viz.registry import Param, Registry

__all__ = [
    "LAYOUTS",
    "SHARE_TOLERANCE",
    "TARGETS",
    "build_target",
    "check_domain_shares",
    "check_layout",
    "class_target",
    "custom_target",
    "domain_target",
    "pair_target",
    "partner",
    "target_marginals",
]


Layout = Literal["cross", "joint"]
LAYOUTS: tuple[str, ...] = ("cross", "joint")

TARGETS = Registry("target")
"""Registry of target-plan builders: ``pairs``, ``class``, ``domain``, ``custom``."""

PAIRS_LATEX = (  # two lines: one line broke inside the bracket in a half-width column
    r"(P_{\mathrm{tgt}})_{ij} = \begin{cases} I_{ij} & \text{cross} \\"
    r" \mathbb{1}[j = \mathrm{partner}(i)] & \text{joint} \end{cases}"
)
CLASS_LATEX = (
    r"P_{\mathrm{tgt}} = (1 - \gamma)\, I"
    r" + \gamma\, \frac{\mathbb{1}[y_i = y_j,\ i \ne j]}{n_y(i)}"
)
DOMAIN_LATEX = (
    r"P_{\mathrm{tgt}} = (1 - \alpha - \beta)\, I"
    r" + \alpha\, \frac{\mathbb{1}[D_i = D_j,\ i \ne j]}{n_{=}(i)}"
    r" + \beta\, \frac{\mathbb{1}[D_i \ne D_j,\ i \ne j]}{n_{\ne}(i)}"
)
CLASS_ENTRY_LATEX = r"P_{\mathrm{tgt}} = I + \gamma\, \mathbb{1}[y_i = y_j,\ i \ne j]"
DOMAIN_ENTRY_LATEX = (
    r"P_{\mathrm{tgt}} = I + \alpha\, \mathbb{1}[D_i = D_j,\ i \ne j]"
    r" + \beta\, \mathbb{1}[D_i \ne D_j,\ i \ne j]"
)
"""The per-entry forms (``per_entry=True``): the prior's row mass grows with ``N``."""
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
        if values.dtype.kind in "fc":  # soft labels or a feature gave each sample its own
            bad = np.flatnonzero(values != np.round(values.real))  # class: the pair target
            if bad.size:
                raise ValueError(
                    f"{name} must hold class or domain labels (integers, or any hashable "
                    f"values in a list), got non-integer numbers in {bad.size} of its {n} "
                    f"entries (the first: {values[bad[0]]:g} at {bad[0]})"
                )
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
    """The batch size: an integer ``>= 1``."""
    return integer(n, "n", 1)


def _check_weight(value: float, name: str, high: float = math.inf) -> float:
    """A prior's weight: a number ``>= 0`` (a share of a row's mass: at most ``high``)."""
    try:
        w = nonnegative(value, name)
    except ValueError:
        if high == math.inf:
            raise
        w = -1.0  # a negative share: the range's message below (">= 0" hid the top)
    if not 0 <= w <= high:
        raise ValueError(f"{name} must be a share of a row's mass in [0, {high:g}], got {value!r}")
    return w


SHARE_TOLERANCE = 1e-12
"""Rounding allowed on ``α + β <= 1`` (``0.7 + 0.2 + 0.1`` is not exactly 1 in floats)."""


def check_domain_shares(alpha: float, beta: float) -> tuple[float, float]:
    """``(α, β)`` as floats if they are shares of a row's mass: ``α, β >= 0`` and
    ``α + β <= 1`` (the positive keeps ``1 - α - β``); else ``ValueError`` naming them."""
    a, b = _check_weight(alpha, "alpha", 1.0), _check_weight(beta, "beta", 1.0)
    if a + b > 1.0 + SHARE_TOLERANCE:
        raise ValueError(
            "alpha + beta must be <= 1: they are shares of a row's mass and the positive keeps "
            f"1 - alpha - beta, got alpha = {a:g}, beta = {b:g} (sum {a + b:g})"
        )
    return a, b


def _check_domain_params(values: Mapping[str, Any]) -> None:
    """The domain entry's joint check (:attr:`gca_viz.registry.Stage.check`)."""
    check_domain_shares(values["alpha"], values["beta"])


def _shares(n: int, layout: Layout, groups: tuple[tuple[torch.Tensor, float], ...]) -> torch.Tensor:
    """A target whose rows sum to 1: each ``(mask, share)`` splits ``share`` equally over a
    row's ``True`` entries; the positive keeps the rest, including the share of a group the
    row has no sample in."""
    base = _base(n, layout)
    spread = torch.zeros_like(base)
    for mask, share in groups:
        if share > 0:  # (all shares 0: exactly the pair target)
            m = mask.double()
            spread += share * m / m.sum(1, keepdim=True).clamp_min(1.0)
    keep = 1.0 - spread.sum(1, keepdim=True)  # what the prior did not take
    # Shares that add up to 1 leave the positive exactly 0, not the sum's rounding (1e-16,
    # drawn as a dark cell at log10 -16 among exact zeros).
    keep = torch.where(keep > 64 * torch.finfo(keep.dtype).eps, keep, 0.0)
    return spread + base * keep


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
            "gamma",
            0.1,
            "Share of each row's mass spread over its same-class samples (0 = plain pairs).",
            "γ",
            low=0.0,
            high=1.0,
        ),
    ),
    latex=CLASS_LATEX,
    description="Class prior: each row gives a share γ to its same-class samples and keeps "
    "1 − γ on its positive (supervised flavour).",
)
def class_target(
    labels: Any, gamma: float = 0.1, layout: str = "cross", *, per_entry: bool = False
) -> torch.Tensor:
    r"""Class-prior target (supervised-contrastive flavour, ``docs/math.md`` section 5).

    ``γ`` is a share of each row's mass, so it means the same at any batch size:

    .. math::
        P_{\mathrm{tgt}} = (1 - \gamma)\, I
            + \gamma\,\frac{\mathbb 1[y_i = y_j,\ i \ne j]}{n_y(i)},\qquad
        n_y(i) = \sum_j \mathbb 1[y_i = y_j,\ i \ne j]

    where ``y`` are the class labels, ``0 <= γ <= 1`` and ``I`` is the pair target of the
    layout (in the joint layout ``i != j`` also excludes the self-pair and the partner, and
    labels are repeated for the two views, so ``n_y(i)`` counts views). Every row sums to 1:
    the positive keeps ``1 - γ``, each same-class sample gets ``γ / n_y(i)``; a row with no
    other sample of its class (``n_y(i) = 0``) keeps all of its mass on the positive.
    Same-class rows have equal ``n_y``, so the target is symmetric and its columns sum to 1
    too. With ``per_entry=True`` it is the per-entry form instead,

    .. math::
        P_{\mathrm{tgt}} = I + \gamma\,\mathbb 1[y_i = y_j,\ i \ne j],\qquad \gamma \ge 0,

    whose row sums ``1 + γ n_y(i)`` grow with ``N`` (not a registered target; kept for
    comparison).

    Args:
        labels: ``(N,)`` class labels (any values that compare equal per class).
        gamma: the share ``γ`` in ``[0, 1]`` (per entry: a weight ``>= 0``).
        layout: ``"cross"`` or ``"joint"``.
        per_entry: the per-entry form instead of shares.

    Returns:
        ``(N, N)`` or ``(2N, 2N)`` float64 tensor with row sums 1 (per entry:
        ``1 + γ n_y(i)``).

    Raises:
        ValueError: for labels that are not 1-D, or a ``gamma`` that is negative,
            non-finite or (shares) above 1.
    """
    lay = check_layout(layout)
    n = _side_length(labels, "labels")
    y = _labels(labels, "labels", _check_n(n), lay)
    mask = (y[:, None] == y[None, :]) & _off_pair(n, lay)
    if per_entry:
        return _base(n, lay) + _check_weight(gamma, "gamma") * mask.double()
    return _shares(n, lay, ((mask, _check_weight(gamma, "gamma", 1.0)),))


@TARGETS.register(
    "domain",
    params=(
        Param(
            "alpha",
            0.2,
            "Share of each row's mass spread over its same-domain samples.",
            "α",
            low=0.0,
            high=1.0,
        ),
        Param(
            "beta",
            0.0,
            "Share of each row's mass spread over its other-domain samples (α + β ≤ 1).",
            "β",
            low=0.0,
            high=1.0,
        ),
    ),
    latex=DOMAIN_LATEX,
    description="Domain prior: each row gives shares α to its same-domain and β to its "
    "other-domain samples, 1 − α − β to its positive; α − β > 0 keeps domains apart, < 0 "
    "mixes them (paper's Fig. 1).",
    check=_check_domain_params,
)
def domain_target(
    domains: Any,
    alpha: float = 0.2,
    beta: float = 0.0,
    layout: str = "cross",
    *,
    per_entry: bool = False,
) -> torch.Tensor:
    r"""Domain-prior target (the paper's Fig. 1, ``docs/math.md`` section 5).

    ``α`` and ``β`` are shares of each row's mass, so they mean the same at any batch size:

    .. math::
        P_{\mathrm{tgt}} = (1 - \alpha - \beta)\, I
            + \alpha\,\frac{\mathbb 1[D_i = D_j,\ i \ne j]}{n_{=}(i)}
            + \beta\,\frac{\mathbb 1[D_i \ne D_j,\ i \ne j]}{n_{\ne}(i)}

    where ``D`` are domain labels, ``n_=(i)`` and ``n_≠(i)`` count row ``i``'s same- and
    other-domain samples (``i != j`` excludes the positive and, in the joint layout, the
    self-pair; domains are repeated for the two views), ``α, β >= 0`` and
    ``α + β <= 1``. Every row sums to 1: the positive keeps ``1 - α - β``, each same-domain
    sample gets ``α / n_=(i)``, each other-domain sample ``β / n_≠(i)``. A row with no
    same-domain (other-domain) sample keeps ``α`` (``β``) on its positive. The columns sum
    to 1 only when the domains are equally large; the losses use ``μ = P_tgt 1`` and
    ``ν = P_tgt^T 1``, under which the target is feasible. Raising ``α - β`` makes the
    domain linearly decodable from the embeddings. With ``per_entry=True`` it is the
    per-entry form instead,

    .. math::
        P_{\mathrm{tgt}} = I + \alpha\,\mathbb 1[D_i = D_j,\ i \ne j]
            + \beta\,\mathbb 1[D_i \ne D_j,\ i \ne j],\qquad \alpha, \beta \ge 0,

    whose row sums ``1 + α n_=(i) + β n_≠(i)`` grow with ``N`` (at ``N = 256`` in four
    equal domains, ``α = β = 0.25`` puts 63.75 on a row's other samples against 1 on its
    positive; not a registered target, kept for comparison).

    Args:
        domains: ``(N,)`` domain labels.
        alpha: share ``α`` on same-domain pairs (per entry: a weight ``>= 0``).
        beta: share ``β`` on other-domain pairs (per entry: a weight ``>= 0``).
        layout: ``"cross"`` or ``"joint"``.
        per_entry: the per-entry form instead of shares.

    Returns:
        ``(N, N)`` or ``(2N, 2N)`` float64 tensor with row sums 1 (per entry:
        ``1 + α n_=(i) + β n_≠(i)``).

    Raises:
        ValueError: for domains that are not 1-D, a negative or non-finite weight, or
            (shares) ``α + β > 1``, naming the parameter.
    """
    lay = check_layout(layout)
    n = _side_length(domains, "domains")
    d = _labels(domains, "domains", _check_n(n), lay)
    same = d[:, None] == d[None, :]
    off = _off_pair(n, lay)
    if per_entry:
        a, b = _check_weight(alpha, "alpha"), _check_weight(beta, "beta")
        return _base(n, lay) + a * (same & off).double() + b * (~same & off).double()
    a, b = check_domain_shares(alpha, beta)
    return _shares(n, lay, ((same & off, a), (~same & off, b)))


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
        raise ValueError(
            f"target matrix has shape {tuple(P.shape)}, but a batch of N = {n} pairs in the "
            f"{lay} layout needs ({size}, {size})"
            + (" (2N x 2N: both views of every sample)" if lay == "joint" else "")
        )
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
    """``(μ, ν) = (P_tgt 1, P_tgt^T 1)``, the marginals that make the target feasible
    (tensors; a numpy array or nested list is read as a float64 tensor, as the builders
    read theirs).

    Raises:
        ValueError: if ``target`` is not a real 2-D array, has negative entries, or has
            NaN/inf entries or row/column sums.
    """
    if not isinstance(target, torch.Tensor):
        try:
            target = torch.as_tensor(np.asarray(target, dtype=np.float64))
        except (TypeError, ValueError):
            raise ValueError(
                f"target must be a real 2-D array, got {type(target).__name__}"
            ) from None
    if target.ndim != 2 or target.is_complex():
        raise ValueError(f"target must be a real 2-D array, got shape {tuple(target.shape)}")
    mu, nu = target.sum(1), target.sum(0)
    ok = torch.isfinite(mu).all() & torch.isfinite(nu).all() & (target >= 0).all()
    if not bool(ok):  # (one device sync on the good path)
        if bool((target < 0).any()):
            raise ValueError("target has negative entries; a plan is non-negative")
        raise ValueError("target contains NaN or inf, or its row or column sums overflow")
    return mu, nu
