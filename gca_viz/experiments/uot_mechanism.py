r"""Where GCA-UOT's mass and gradient go (``docs/math.md`` section 4, GCA-UOT).

The unbalanced Sinkhorn row update is ``u_i <- (μ_i / (K v)_i)^{ρ_1}`` with
``ρ = λ / (λ + ε)``: a row whose second view matches nothing has a small ``(K v)_i`` and,
for ``ρ < 1``, keeps less of the plan's mass than under the balanced plan (``ρ = 1``,
every row holds exactly ``μ_i``). This module measures that on a batch in which a
controlled share of the second views is replaced by random points on the sphere:

* :func:`replace_views`: the batch and which pairs were corrupted.
* :func:`mass_shares`: each row's share of the plan's mass and of the positive mass,
  balanced against unbalanced, and the total masses. Totals are not comparable: as ``λ``
  falls the unbalanced plan drifts toward ``K``'s own mass ``ΣK``, which is far above
  ``N`` when ``C`` lies in ``[0, 2]``; shares are.
* :func:`gradient_shares`: the share of the loss gradient (autograd on the embeddings) that
  flows through the corrupted pairs, for each loss of :data:`GRADIENT_LOSSES`.
* :func:`relaxation_sweep`: over ``λ``, that gradient share against the plan's entropy.

What the measurements show (and the Noisy views page says): the paper's GCA-UOT loss reads
the plan through a row softmax, ``P_{i,pos(i)} / (P 1)_i = K_{i,pos(i)} v_{pos(i)} / (K v)_i``,
in which the row scaling ``u`` cancels, so relaxing the marginals barely moves its
gradient; its RINCE term does. Reading the unbalanced plan itself, ``KL(P_tgt || P)``
(generalised KL, the GCA objective with ``d_M = KL``), keeps the row scaling and moves
gradient away from corrupted pairs as ``λ`` falls.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from gca_viz import losses, metrics
from gca_viz._validate import finite

REPLACE_LATEX = (
    r"z''_i \leftarrow \frac{\xi_i}{\|\xi_i\|},\ \xi_i \sim \mathcal N(0, I_d)"
    r"\quad\text{for } i \in \mathcal B,\ |\mathcal B| = \mathrm{round}(sN)"
)
"""Corrupted views: a share ``s`` of the second views replaced by random points."""
SHARE_LATEX = (
    r"\text{row share}_i = \frac{(P\mathbf 1)_i}{\sum_{kl} P_{kl}},\qquad"
    r"\text{positive share}_i = \frac{P_{i,\mathrm{pos}(i)}}{\sum_k P_{k,\mathrm{pos}(k)}},\qquad"
    r"\text{gradient share} = \frac{\sum_{i \in \mathcal B} \|\partial L/\partial z'_i\|"
    r" + \|\partial L/\partial z''_i\|}{\sum_{i} \|\partial L/\partial z'_i\|"
    r" + \|\partial L/\partial z''_i\|}"
)
"""The shares the page compares."""
ROW_SCALING_LATEX = (
    r"u_i \leftarrow \Big(\frac{\mu_i}{(K v)_i}\Big)^{\rho_1},\quad \rho = \frac{\lambda}"
    r"{\lambda + \varepsilon};\qquad \frac{P_{i,\mathrm{pos}(i)}}{(P\mathbf 1)_i}"
    r" = \frac{K_{i,\mathrm{pos}(i)} v_{\mathrm{pos}(i)}}{(K v)_i}\ \text{(u cancels)}"
)
"""The unbalanced row update and why a row-softmax reading does not see it."""

GRADIENT_LOSSES: dict[str, str] = {
    "ince": "INCE",
    "gca_ince": "GCA-INCE",
    "gca_uot": "GCA-UOT (paper's loss: row-softmax KL + RINCE term)",
    "gca_uot_kl": "GCA-UOT, KL term only (r₂ = 0)",
    "uot_plan_kl": "Unbalanced plan read directly: KL(P_tgt ‖ P)",
    "rince": "RINCE (q = 1)",
}
"""The losses whose gradient shares :func:`gradient_shares` measures, by key."""


@dataclass(frozen=True, eq=False)
class CorruptedPairs:
    """A cross-view batch in which some second views were replaced.

    Attributes:
        z1, z2: ``(N, d)`` float64 unit embeddings (``z2[i]`` replaced where ``corrupted``).
        corrupted: ``(N,)`` bool, the pairs whose second view matches nothing.
    """

    z1: torch.Tensor
    z2: torch.Tensor
    corrupted: np.ndarray

    @property
    def share(self) -> float:
        """The share of corrupted pairs."""
        return float(self.corrupted.mean())


def replace_views(z1: Any, z2: Any, share: float, *, seed: int = 0) -> CorruptedPairs:
    r"""Replace a share of the second views by random points on the sphere.

    .. math::
        z''_i \leftarrow \xi_i / \|\xi_i\|,\quad \xi_i \sim \mathcal N(0, I_d)
        \quad\text{for } i \in \mathcal B,\ |\mathcal B| = \mathrm{round}(s N)

    where ``B`` is a random subset (seeded). The embeddings are L2-normalised (float64).

    Args:
        z1, z2: ``(N, d)`` paired embeddings (tensors or arrays), ``N >= 2``.
        share: ``s`` in ``[0, 1]``. seed: seed of ``B`` and of the random points.

    Returns:
        A :class:`CorruptedPairs`.

    Raises:
        ValueError: naming ``z1``, ``z2`` or ``share``.
    """
    a = torch.as_tensor(np.asarray(z1) if not isinstance(z1, torch.Tensor) else z1)
    b = torch.as_tensor(np.asarray(z2) if not isinstance(z2, torch.Tensor) else z2)
    if a.ndim != 2 or a.shape[0] < 2:
        raise ValueError(f"z1 must be an (N, d) array with N >= 2, got shape {tuple(a.shape)}")
    if b.shape != a.shape:
        raise ValueError(f"z2 must have z1's shape {tuple(a.shape)}, got {tuple(b.shape)}")
    s = finite(share, "share")
    if not 0.0 <= s <= 1.0:
        raise ValueError(f"share must lie in [0, 1], got {share!r}")
    a, b = a.detach().double(), b.detach().double()
    if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        raise ValueError("z1 and z2 must be finite")
    n, d = a.shape
    gen = torch.Generator().manual_seed(int(seed))
    chosen = torch.randperm(n, generator=gen)[: round(s * n)]
    b = b.clone()
    b[chosen] = torch.randn(len(chosen), d, generator=gen, dtype=torch.float64)
    corrupted = np.zeros(n, dtype=bool)
    corrupted[chosen.numpy()] = True
    unit = torch.nn.functional.normalize
    return CorruptedPairs(unit(a, dim=1), unit(b, dim=1), corrupted)


@dataclass(frozen=True, eq=False)
class MassShares:
    r"""Row shares of a balanced and an unbalanced plan on one batch (see :func:`mass_shares`).

    Attributes:
        corrupted: ``(N,)`` bool.
        balanced_row, unbalanced_row: ``(N,)`` ``(P 1)_i / ΣP``.
        balanced_positive, unbalanced_positive: ``(N,)`` ``P_ii / Σ_k P_kk``.
        balanced_mass, unbalanced_mass: ``ΣP`` of each plan. kernel_mass: ``ΣK``.
        balanced_entropy, unbalanced_entropy: entropy of each plan normalised to mass 1.
        positive_kernel_part: mean over the clean rows of ``K_ii / (K 1)_i``, the part of a
            row's kernel mass its positive holds; the relaxation can tell a corrupted row
            (which lost that part) from a clean one only when it is large (small ``ε``).
        epsilon, n_iter, relax: ``ε``, ``T`` and ``λ = λ1 = λ2``. rho: ``λ / (λ + ε)``.
    """

    corrupted: np.ndarray
    balanced_row: np.ndarray
    unbalanced_row: np.ndarray
    balanced_positive: np.ndarray
    unbalanced_positive: np.ndarray
    balanced_mass: float
    unbalanced_mass: float
    kernel_mass: float
    balanced_entropy: float
    unbalanced_entropy: float
    positive_kernel_part: float
    epsilon: float
    n_iter: int
    relax: float
    rho: float

    def corrupted_share(self, which: str) -> float:
        """The share held by the corrupted rows, ``Σ_{i in B} share_i``, of one of
        ``"balanced_row"``, ``"unbalanced_row"``, ``"balanced_positive"``,
        ``"unbalanced_positive"``."""
        if which not in (
            "balanced_row",
            "unbalanced_row",
            "balanced_positive",
            "unbalanced_positive",
        ):
            raise ValueError(f"which must name a share of MassShares, got {which!r}")
        values: np.ndarray = getattr(self, which)
        return float(values[self.corrupted].sum())

    @property
    def order(self) -> np.ndarray:
        """Row indices with the clean pairs first, each group by the unbalanced row share
        (descending): the order in which the page draws the rows."""
        key = np.lexsort((-self.unbalanced_row, self.corrupted))
        return np.asarray(key)


def _unbalanced_plan(
    pairs: CorruptedPairs, epsilon: float, n_iter: int, relax: float
) -> np.ndarray:
    """GCA-UOT's plan (cross layout, ``λ1 = λ2 = relax``) on the batch."""
    with torch.no_grad():
        uot = losses.get(
            "gca_uot", epsilon=epsilon, n_iter=n_iter, layout="cross", relax_a=relax, relax_b=relax
        ).inspect(pairs.z1, pairs.z2)
    plan: np.ndarray = uot.plan.numpy()
    return plan


def _plans(
    pairs: CorruptedPairs, epsilon: float, n_iter: int, relax: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with torch.no_grad():
        bal = losses.get("gca_ince", epsilon=epsilon, n_iter=n_iter, layout="cross").inspect(
            pairs.z1, pairs.z2
        )
    kernel = torch.exp(-bal.cost / float(epsilon)).numpy()  # (N, N)
    return bal.plan.numpy(), _unbalanced_plan(pairs, epsilon, n_iter, relax), kernel


def mass_shares(
    pairs: CorruptedPairs, *, epsilon: float = 0.5, n_iter: int = 10, relax: float = 0.01
) -> MassShares:
    r"""Each row's share of the plan's mass and of the positive mass, for the balanced plan
    (GCA-INCE's, hard marginals) and the unbalanced one (GCA-UOT's, ``λ1 = λ2 = λ``).

    .. math::
        \text{row share}_i = \frac{(P\mathbf 1)_i}{\sum_{kl} P_{kl}},\qquad
        \text{positive share}_i = \frac{P_{ii}}{\sum_k P_{kk}}

    with ``C_ij = 1 - <z'_i, z''_j>``, ``K = e^{-C/ε}``, ``T`` sweeps of (unbalanced)
    Sinkhorn, ``u <- (μ / K v)^ρ``, ``ρ = λ / (λ + ε)``. The balanced plan's row shares are
    ``1/N`` (to the solver's error); an unbalanced plan gives a corrupted row (small
    ``(K v)_i``) less. Total masses are reported beside the shares: ``ΣP`` of the unbalanced
    plan moves from ``N`` toward ``ΣK`` as ``λ -> 0``, so only shares compare.

    Args:
        pairs: a :class:`CorruptedPairs`. epsilon: ``ε > 0``. n_iter: ``T >= 1``.
        relax: ``λ > 0``.

    Returns:
        A :class:`MassShares`.

    Raises:
        ValueError: naming an invalid setting.
    """
    lam = finite(relax, "relax")
    if lam <= 0:
        raise ValueError(f"relax must be > 0, got {relax!r}")
    P_bal, P_uot, K = _plans(pairs, epsilon, n_iter, lam)
    clean = ~pairs.corrupted
    part = np.diag(K) / K.sum(1)  # (N,) K_ii / (K 1)_i
    eps = float(epsilon)

    def rows(P: np.ndarray) -> np.ndarray:
        return np.asarray(P.sum(1) / P.sum())

    def positives(P: np.ndarray) -> np.ndarray:
        d = np.diag(P)
        return np.asarray(d / d.sum())

    return MassShares(
        corrupted=pairs.corrupted,
        balanced_row=rows(P_bal),
        unbalanced_row=rows(P_uot),
        balanced_positive=positives(P_bal),
        unbalanced_positive=positives(P_uot),
        balanced_mass=float(P_bal.sum()),
        unbalanced_mass=float(P_uot.sum()),
        kernel_mass=float(K.sum()),
        balanced_entropy=metrics.plan_entropy(P_bal),
        unbalanced_entropy=metrics.plan_entropy(P_uot),
        positive_kernel_part=float(part[clean].mean()) if clean.any() else math.nan,
        epsilon=eps,
        n_iter=int(n_iter),
        relax=lam,
        rho=lam / (lam + eps),
    )


def gradient_loss(name: str, *, epsilon: float, n_iter: int, relax: float) -> losses.GCALoss:
    """The loss :data:`GRADIENT_LOSSES` names, in the cross layout, with ``λ1 = λ2 = relax``
    for the unbalanced ones (``"uot_plan_kl"`` is ``compose("cosine", "pairs",
    "unbalanced", "kl")``: the generalised KL from the target to the unbalanced plan)."""
    common = {"epsilon": epsilon, "layout": "cross"}
    if name in ("ince", "rince"):
        return losses.get(name, **common)
    if name == "gca_ince":
        return losses.get(name, n_iter=n_iter, **common)
    relaxed = {"n_iter": n_iter, "relax_a": relax, "relax_b": relax, **common}
    if name == "gca_uot":
        return losses.get("gca_uot", **relaxed)
    if name == "gca_uot_kl":
        return losses.get("gca_uot", r2=0.0, **relaxed)
    if name == "uot_plan_kl":
        return losses.compose("cosine", "pairs", "unbalanced", "kl", **relaxed)
    raise ValueError(f"name must be one of {list(GRADIENT_LOSSES)}, got {name!r}")


def _gradient_share(loss: torch.nn.Module, pairs: CorruptedPairs) -> tuple[float, np.ndarray]:
    a = pairs.z1.clone().requires_grad_(True)
    b = pairs.z2.clone().requires_grad_(True)
    value = loss(a, b)
    ga, gb = torch.autograd.grad(value, (a, b))
    norms = (ga.norm(dim=1) + gb.norm(dim=1)).numpy()  # (N,)
    total = float(norms.sum())
    if not math.isfinite(total):
        raise ValueError("the loss gradient is not finite on this batch")
    share = float(norms[pairs.corrupted].sum() / total) if total > 0 else math.nan
    return share, norms


@dataclass(frozen=True, eq=False)
class GradientShares:
    """The share of each loss's gradient that flows through the corrupted pairs.

    Attributes:
        shares: ``{loss key: share}`` (keys of :data:`GRADIENT_LOSSES`).
        row_norms: ``{loss key: (N,) ||∂L/∂z'_i|| + ||∂L/∂z''_i||}``.
        corrupted_share: the share of corrupted pairs (what a loss blind to corruption
            would give if every row's gradient had the same size).
    """

    shares: Mapping[str, float]
    row_norms: Mapping[str, np.ndarray]
    corrupted_share: float


def gradient_shares(
    pairs: CorruptedPairs,
    *,
    epsilon: float = 0.5,
    n_iter: int = 10,
    relax: float = 0.01,
    names: Sequence[str] = tuple(GRADIENT_LOSSES),
) -> GradientShares:
    r"""The share of the loss gradient that flows through the corrupted pairs.

    .. math::
        \text{share} = \frac{\sum_{i \in \mathcal B} \|\partial L/\partial z'_i\|
            + \|\partial L/\partial z''_i\|}{\sum_{i} \|\partial L/\partial z'_i\|
            + \|\partial L/\partial z''_i\|}

    by autograd on the unit embeddings (float64), for each loss of :data:`GRADIENT_LOSSES`
    (:func:`gradient_loss`). Lower means the loss lets corrupted pairs pull less on the
    encoder: robustness.

    Args:
        pairs: a :class:`CorruptedPairs`. epsilon: ``ε > 0``. n_iter: ``T >= 1``.
        relax: ``λ > 0`` of the unbalanced losses. names: which losses.

    Returns:
        A :class:`GradientShares`.
    """
    shares: dict[str, float] = {}
    norms: dict[str, np.ndarray] = {}
    for name in names:
        loss = gradient_loss(name, epsilon=epsilon, n_iter=n_iter, relax=relax)
        shares[name], norms[name] = _gradient_share(loss, pairs)
    return GradientShares(shares, norms, pairs.share)


@dataclass(frozen=True, eq=False)
class RelaxationSweep:
    """Gradient shares and plan entropy over ``λ`` (see :func:`relaxation_sweep`).

    Attributes:
        relax: ``(k,)`` values of ``λ``.
        shares: ``{loss key: (k,) gradient share}``.
        corrupted_mass: ``(k,)`` share of the unbalanced plan's mass on corrupted rows.
        entropy: ``(k,)`` entropy of the unbalanced plan (mass normalised to 1).
        max_entropy: ``log N²``, the uniform plan's entropy.
        balanced_share: ``{loss key: share}`` of the balanced losses (INCE, GCA-INCE).
    """

    relax: np.ndarray
    shares: Mapping[str, np.ndarray]
    corrupted_mass: np.ndarray
    entropy: np.ndarray
    max_entropy: float
    balanced_share: Mapping[str, float]


def relaxation_sweep(
    pairs: CorruptedPairs,
    relax: Sequence[float],
    *,
    epsilon: float = 0.5,
    n_iter: int = 10,
    names: Sequence[str] = ("uot_plan_kl", "gca_uot"),
) -> RelaxationSweep:
    r"""Over ``λ``, the trade-off between the gradient share through corrupted pairs
    (:func:`gradient_shares`) and the unbalanced plan's entropy
    ``H = -Σ p log p``, ``p = P / ΣP``: a small ``λ`` lets the plan drop corrupted rows but
    also drifts it toward ``K`` (toward ``log N²`` at large ``ε``).

    Args:
        pairs: a :class:`CorruptedPairs`. relax: ``(k,)`` values ``λ > 0``.
        epsilon, n_iter: as in :func:`mass_shares`. names: the unbalanced losses to sweep.

    Returns:
        A :class:`RelaxationSweep`.
    """
    lams = np.asarray([finite(v, "relax") for v in relax], dtype=float)
    if lams.size == 0 or (lams <= 0).any():
        raise ValueError("relax must hold at least one value, all > 0")
    shares = {name: np.empty(len(lams)) for name in names}
    mass, entropy = np.empty(len(lams)), np.empty(len(lams))
    for k, lam in enumerate(lams):
        g = gradient_shares(pairs, epsilon=epsilon, n_iter=n_iter, relax=lam, names=names)
        for name in names:
            shares[name][k] = g.shares[name]
        # Only the unbalanced plan depends on λ: the balanced one is not solved again.
        P = _unbalanced_plan(pairs, epsilon, n_iter, lam)  # (N, N)
        mass[k] = float(P.sum(1)[pairs.corrupted].sum() / P.sum())
        entropy[k] = metrics.plan_entropy(P)
    base = gradient_shares(pairs, epsilon=epsilon, n_iter=n_iter, names=("ince", "gca_ince"))
    n = pairs.z1.shape[0]
    return RelaxationSweep(lams, shares, mass, entropy, 2 * math.log(n), dict(base.shares))
