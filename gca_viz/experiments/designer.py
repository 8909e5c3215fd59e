r"""The target designer's measures on one batch (``docs/math.md`` section 5).

A target plan ``P_tgt`` (:mod:`gca_viz.targets`) is drawn next to the plan ``P`` that
Sinkhorn finds for it. These functions order a batch so that its blocks show
(:func:`sort_by_domain`), measure how much of a matrix lies in same-group blocks
(:func:`block_mass`), and compute where the loss pulls pairs together or pushes them apart,
``∂L/∂C = (P_tgt - P)/(εN)`` (:func:`loss_pull`, :func:`group_pull`): with the marginals
fixed, the plan depends on the target only through them, so the target acts on training
through this difference. :func:`read_matrix` parses an uploaded target.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch

from gca_viz._validate import finite

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
    eps = finite(epsilon, "epsilon")
    if eps <= 0:
        raise ValueError(f"epsilon must be a number > 0, got {epsilon!r}")
    pull: np.ndarray = (T - P) / (eps * T.shape[0])
    return pull


class GroupPull(NamedTuple):
    """Mean pulls ``(P_tgt - P)/(εN)`` (:func:`loss_pull`) on three kinds of pair: ``> 0``
    pulled together, ``< 0`` pushed apart."""

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


def group_pull(target: Any, plan: Any, groups: Any, epsilon: float) -> GroupPull:
    r"""The loss's mean pull (:func:`loss_pull`) on a positive pair, on a pair of the same
    group and on a pair of different groups:

    .. math::
        \frac{1}{\varepsilon N}\operatorname{mean}_i (P_{\mathrm{tgt}} - P)_{ii},\qquad
        \frac{1}{\varepsilon N}\operatorname{mean}_{i \ne j,\, g_i = g_j}
            (P_{\mathrm{tgt}} - P)_{ij},\qquad
        \frac{1}{\varepsilon N}\operatorname{mean}_{g_i \ne g_j} (P_{\mathrm{tgt}} - P)_{ij}

    Unlike the plan's own :func:`block_mass`, they follow the target's weights (``α``,
    ``β`` of the domain prior); :attr:`GroupPull.shares` puts them relative to the
    positives' pull.

    Args:
        target, plan: ``(N, N)`` ``P_tgt`` and ``P``. groups: ``(N,)`` group labels.
        epsilon: the entropic regularisation ``ε > 0``.
    """
    g = np.asarray(groups).reshape(-1)
    T = np.asarray(target, dtype=np.float64)
    if T.ndim != 2 or T.shape != (len(g), len(g)):
        raise ValueError(f"target and plan must be (n, n), n = len(groups), got {T.shape}")
    pull = loss_pull(target, plan, epsilon)  # (N, N)
    same = (g[:, None] == g[None, :]) & ~np.eye(len(g), dtype=bool)
    other = g[:, None] != g[None, :]
    means = [float(pull[m].mean()) if m.any() else math.nan for m in (same, other)]
    return GroupPull(float(np.diag(pull).mean()), means[0], means[1])


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
