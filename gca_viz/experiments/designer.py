r"""The target designer's measures on one batch (``docs/math.md`` section 5).

A target plan ``P_tgt`` (:mod:`gca_viz.targets`) is drawn next to the plan ``P`` that
Sinkhorn finds for it. These functions order a batch so that its blocks show
(:func:`sort_by_domain`), measure how much of a matrix lies in same-group blocks
(:func:`block_mass`), and compute where the loss pulls pairs together or pushes them apart,
its gradient ``∂L/∂C`` through the sweeps (:func:`sweep_pull`), ``(P_tgt - P)/(εN)`` at
Sinkhorn's fixed point (:func:`loss_pull`), and its means over kinds of pair
(:func:`group_pull`): with the marginals fixed, the plan depends on the target only
through them, so the target acts on training through this difference. :func:`read_matrix`
parses an uploaded target.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch

from gca_viz import targets
from gca_viz._validate import integer, positive
from gca_viz.losses import divergences, stages

if TYPE_CHECKING:
    from gca_viz.lab import Batch


def sort_by_domain(batch: Batch) -> Batch:
    """The batch reordered by domain, then class, then position, so that a domain or class
    prior shows as blocks along the diagonal (every per-sample array is permuted alike)."""
    n = batch.n
    dom = batch.domains if batch.domains is not None else np.zeros(n, dtype=np.int64)
    lab = batch.labels if batch.labels is not None else np.zeros(n, dtype=np.int64)
    order = np.lexsort((np.arange(n), lab, dom))  # last key first: domain, class, index
    idx = torch.as_tensor(order)
    return replace(
        batch,
        z1=None if batch.z1 is None else batch.z1[idx],
        z2=None if batch.z2 is None else batch.z2[idx],
        labels=None if batch.labels is None else batch.labels[order],
        domains=None if batch.domains is None else batch.domains[order],
        images=None if batch.images is None else batch.images[:, order],
    )


def block_mass(matrix: Any, groups: Any) -> float:
    r"""Share of a matrix's mass within same-group blocks, off the diagonal:
    ``Σ_{i≠j, g_i=g_j} M_ij / Σ_{i≠j} M_ij`` (``NaN`` for no off-diagonal mass)."""
    M, g = np.asarray(matrix, dtype=np.float64), np.asarray(groups).reshape(-1)
    if M.ndim != 2 or M.shape[0] != M.shape[1] or M.shape[0] != len(g):
        raise ValueError(f"matrix must be (n, n) with n = len(groups), got {M.shape}")
    off = ~np.eye(len(g), dtype=bool)
    total = float(M[off].sum())
    return float(M[off & (g[:, None] == g[None, :])].sum() / total) if total > 0 else math.nan


def loss_pull(target: Any, plan: Any, epsilon: float) -> np.ndarray:
    r"""Where GCA-INCE's loss pulls pairs together and pushes them apart: its gradient with
    respect to the cost,

    .. math::
        \frac{\partial \mathcal L}{\partial C_{ij}}
            = \frac{(P_{\mathrm{tgt}})_{ij} - P^{(2T)}_{ij}}{\varepsilon N},
        \qquad \mathcal L = \tfrac1N \mathrm{KL}(P_{\mathrm{tgt}} \| P^{(2T)}),

    exact when ``P^{(2T)}`` has ``P_tgt``'s row and column sums (Sinkhorn's fixed point:
    the gradient through the scalings vanishes; ``docs/math.md`` section 4). Gradient descent
    lowers ``C_ij`` by a step times a positive entry: the two embeddings move closer (a
    larger cost there would take mass from a pair the target wants more of). With ``μ``, ``ν``
    fixed, the plan depends on the target only through them (every prior's rows sum to 1),
    so the target acts on training through this difference, not through the plan.

    Args:
        target: ``(N, N)`` ``P_tgt``. plan: ``(N, N)`` the plan ``P^{(2T)}``.
        epsilon: the entropic regularisation ``ε > 0``.

    Returns:
        ``(N, N)`` the pull, in cost units per unit of loss.
    """
    T, P = np.asarray(target, dtype=np.float64), np.asarray(plan, dtype=np.float64)
    if T.ndim != 2 or T.shape != P.shape or T.shape[0] != T.shape[1]:
        raise ValueError(f"target and plan must be (N, N) alike, got {T.shape} and {P.shape}")
    eps = positive(epsilon, "epsilon")
    pull: np.ndarray = (T - P) / (eps * T.shape[0])
    return pull


def sweep_pull(cost: Any, target: Any, epsilon: float, n_iter: int) -> np.ndarray:
    r"""GCA-INCE's gradient with respect to the cost through its ``T`` sweeps, as training
    differentiates it:

    .. math::
        \frac{\partial \mathcal L}{\partial C_{ij}}, \qquad
        \mathcal L = \tfrac1N \mathrm{KL}(P_{\mathrm{tgt}} \| P^{(2T)}(C)),

    ``P^{(2T)}`` from ``T`` balanced log-domain sweeps towards ``μ = P_tgt 1``,
    ``ν = P_tgt^T 1`` (the library's own stages, :func:`gca_viz.losses.stages.sinkhorn` and
    :func:`gca_viz.losses.divergences.kl`), by autograd through the unrolled sweeps, in
    float64. At Sinkhorn's fixed point it equals :func:`loss_pull`'s
    ``(P_tgt - P^{(2T)})/(εN)``; before it (a small ``ε`` or few sweeps: the rows of
    ``P^{(2T)}`` still miss ``μ``) the terms through the scalings do not cancel, and the
    formula can be far off (measured: half the largest entry, and the other sign on 14% of
    the pairs, at ``ε = 0.01``, ``T = 10`` on 48 digits).

    Args:
        cost: ``(N, N)`` cost ``C``. target: ``(N, N)`` ``P_tgt``.
        epsilon: ``ε > 0``. n_iter: sweeps ``T >= 1``.

    Returns:
        ``(N, N)`` the gradient, in cost units per unit of loss.
    """
    C = torch.as_tensor(np.asarray(cost, dtype=np.float64)).requires_grad_(True)
    T = torch.as_tensor(np.asarray(target, dtype=np.float64))
    if C.ndim != 2 or T.shape != C.shape or C.shape[0] != C.shape[1]:
        raise ValueError(f"cost and target must be (N, N) alike, got {C.shape} and {T.shape}")
    eps = positive(epsilon, "epsilon")
    sweeps = integer(n_iter, "n_iter")
    if not (torch.isfinite(T).all() and (T >= 0).all()):
        raise ValueError("target must hold finite entries >= 0")
    if not ((T.sum(1) > 0).all() and (T.sum(0) > 0).all()):
        raise ValueError("target: every row and column needs some mass (its marginals μ, ν)")
    mu, nu = targets.target_marginals(T)
    with torch.enable_grad():
        plan = stages.sinkhorn(C, mu, nu, epsilon=eps, n_iter=sweeps)
        loss = divergences.kl(T, plan).mean()  # (1/N) KL(P_tgt || P^(2T))
        (grad,) = torch.autograd.grad(loss, C)
    out: np.ndarray = grad.numpy()
    return out


class FormulaGap(NamedTuple):
    """How far :func:`loss_pull`'s fixed-point formula ``F = (P_tgt - P)/(εN)`` is from the
    gradient ``G`` through the sweeps (:func:`sweep_pull`): :func:`formula_gap`."""

    largest: float
    """``max |G - F| / max |G|``: 0 at Sinkhorn's fixed point."""
    flipped: float
    """The share of the pairs where ``F`` has the other sign than ``G`` (pairs where
    ``|G|`` is under ``1e-9 max |G|`` left out: their sign is rounding)."""


def formula_gap(pull: Any, formula: Any) -> FormulaGap:
    r"""Compare the gradient ``G = ∂L/∂C`` with the formula ``F = (P_tgt - P)/(εN)``:

    .. math::
        \frac{\max_{ij} |G_{ij} - F_{ij}|}{\max_{ij} |G_{ij}|},\qquad
        \frac{\#\{(i, j): \operatorname{sign} F_{ij} \ne \operatorname{sign} G_{ij}\}}
            {\#\{(i, j)\}}

    Args:
        pull: ``(N, N)`` ``G`` (:func:`sweep_pull`). formula: ``(N, N)`` ``F``
            (:func:`loss_pull`).
    """
    G, F = np.asarray(pull, dtype=np.float64), np.asarray(formula, dtype=np.float64)
    if G.shape != F.shape:
        raise ValueError(f"pull and formula must have one shape, got {G.shape} and {F.shape}")
    scale = float(np.abs(G).max()) if G.size else 0.0
    if not scale > 0:
        return FormulaGap(0.0 if np.array_equal(G, F) else math.inf, 0.0)
    meaningful = np.abs(G) > 1e-9 * scale
    flipped = float(np.mean((np.sign(F) != np.sign(G)) & meaningful))
    return FormulaGap(float(np.abs(G - F).max()) / scale, flipped)


class GroupPull(NamedTuple):
    """Mean pulls ``∂L/∂C`` (:func:`sweep_pull` or :func:`loss_pull`) on three kinds of
    pair: ``> 0`` pulled together, ``< 0`` pushed apart."""

    positive: float
    """On the positive pairs ``(i, i)``."""
    same: float
    """On pairs ``i != j`` of the same group (``NaN`` if there is none)."""
    other: float
    """On pairs of different groups (``NaN`` if there is none)."""

    @property
    def shares(self) -> tuple[float, float]:
        """``(same, other)`` as shares of the positives' pull; ``NaN`` when the positives
        are not pulled (``positive <= 0``: a target with less mass on them than the plan)."""
        if not self.positive > 0:
            return math.nan, math.nan
        return self.same / self.positive, self.other / self.positive

    def describe_positives(self) -> str:
        """One sentence on the positive pairs (the pull map's blank diagonal)."""
        if self.positive > max(self.same, self.other):
            return "The positives (the blank diagonal) are pulled hardest of all."
        if self.positive > 0:
            return "The positives (the blank diagonal) are pulled together too."
        return (
            "The positives (the blank diagonal) are pushed apart here: the target gives them "
            "less mass than the plan does."
        )

    def describe(self, same: str, other: str) -> str:
        """One sentence on the two kinds of pair (``same``, ``other`` name them, e.g.
        ``"same-domain"``): which way each is pulled, by how much (as a share of the
        positives' pull when they are pulled, else in cost units) and what that does to one
        kind relative to the other."""
        if math.isnan(self.same) or math.isnan(self.other):
            return ""
        shares = self.shares

        def told(value: float, share: float) -> str:
            way = (
                "pulled together"
                if value > 0
                else "pushed apart"
                if value < 0
                else "neither pulled nor pushed"
            )
            amount = f"{share:+.1%} of a positive's pull" if self.positive > 0 else f"{value:+.2g}"
            return f"{way} ({amount})"

        def a(name: str) -> str:
            return ("an " if name[0] in "aeiou" else "a ") + name

        text = (
            f"Here {a(same)} pair is {told(self.same, shares[0])} and {a(other)} pair "
            f"{told(self.other, shares[1])}"
        )
        if self.same == self.other:
            return text + "."
        closer, further = (same, other) if self.same > self.other else (other, same)
        low, high = sorted((self.same, self.other))
        if high <= 0:
            return text + f": training pushes {further} pairs apart more than {closer} pairs."
        if low >= 0:
            return text + f": training pulls {closer} pairs together harder than {further} pairs."
        return text + f": training draws {closer} pairs together and {further} pairs apart."


def group_pull(pull: Any, groups: Any) -> GroupPull:
    r"""The loss's mean pull on a positive pair, on a pair of the same group and on a pair
    of different groups:

    .. math::
        \operatorname{mean}_i G_{ii},\qquad
        \operatorname{mean}_{i \ne j,\, g_i = g_j} G_{ij},\qquad
        \operatorname{mean}_{g_i \ne g_j} G_{ij}

    with ``G = ∂L/∂C`` (:func:`sweep_pull`, or :func:`loss_pull`'s ``(P_tgt - P)/(εN)``).
    Unlike the plan's own :func:`block_mass`, they follow the target's weights (``α``,
    ``β`` of the domain prior); :attr:`GroupPull.shares` puts them relative to the
    positives' pull.

    Args:
        pull: ``(N, N)`` the pull ``G``. groups: ``(N,)`` group labels.
    """
    g = np.asarray(groups).reshape(-1)
    G = np.asarray(pull, dtype=np.float64)
    if G.ndim != 2 or G.shape != (len(g), len(g)):
        raise ValueError(f"pull must be (n, n), n = len(groups), got {G.shape}")
    same = (g[:, None] == g[None, :]) & ~np.eye(len(g), dtype=bool)
    other = g[:, None] != g[None, :]
    means = [float(G[m].mean()) if m.any() else math.nan for m in (same, other)]
    return GroupPull(float(np.diag(G).mean()), means[0], means[1])


def read_matrix(data: bytes, filename: str) -> np.ndarray:
    """Parse an uploaded matrix: ``.npy`` (read without pickle) or ``.csv`` (comma- or
    whitespace-separated numbers, no header).

    Raises:
        ValueError: naming the file, for another extension, an unreadable file, a
            non-numeric entry or an array that is not 2-D.
    """
    import io

    name = str(filename)
    suffix = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    try:
        if suffix == "npy":
            M = np.load(io.BytesIO(data), allow_pickle=False)
        elif suffix == "csv":
            text = data.decode("utf-8-sig")
            delimiter = "," if "," in text else None
            M = np.loadtxt(io.StringIO(text), delimiter=delimiter, dtype=np.float64, ndmin=2)
        else:
            raise ValueError(f"{name}: upload a .npy or .csv file, not {suffix or 'no extension'}")
    except ValueError as exc:
        raise ValueError(str(exc) if str(exc).startswith(name) else f"{name}: {exc}") from None
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise ValueError(f"{name}: the file cannot be read ({exc})") from None
    M = np.asarray(M)
    if M.dtype.kind not in "biuf":
        raise ValueError(f"{name}: the matrix must hold numbers, got dtype {M.dtype}")
    if M.ndim != 2:
        raise ValueError(f"{name}: the matrix must be 2-D, got shape {M.shape}")
    return M.astype(np.float64)
