r"""The story's five steps: each fact of the paper as a function of a batch, returning the
numbers the page shows beside the formula it renders (``docs/math.md`` sections 2 to 4).

Conventions: cross-view layout, target ``I``, marginals ``μ = ν = 1`` (``P_tgt 1``), cost
``C = 1 - cos``, ``K = e^{-C/ε}``, losses per row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from gca_viz import losses, metrics, ot, targets
from gca_viz.lab._checks import cost_tensor, count, positive, relax, target_tensor
from gca_viz.lab.plans import generalized_kl, largest_rise

# ----------------------------------------------------------------------------- formulas

INFONCE_LATEX = (
    r"\mathcal L_{\mathrm{INCE}} = \frac1N\sum_{i=1}^N"
    r" -\log\frac{e^{s_{ii}/\varepsilon}}{\sum_{j} e^{s_{ij}/\varepsilon}},"
    r"\qquad s_{ij} = \langle z'_i, z''_j\rangle"
)
"""InfoNCE as the cross-entropy of the logits ``s_ij / ε`` (:func:`ince_as_kl`)."""

KL_P1_LATEX = (  # three lines: on one, it overflowed the page's column below ~1900 px
    r"\begin{aligned}\frac1N\mathrm{KL}\big(I\,\|\,P^{(1)}\big) &= \frac1N\Big(\sum_{ij}"
    r" I_{ij}\log\frac{I_{ij}}{P^{(1)}_{ij}}\\ &\qquad - \sum_{ij} I_{ij}"
    r" + \sum_{ij} P^{(1)}_{ij}\Big),"
    r"\\ P^{(1)}_{ij} &= \frac{K_{ij}}{\sum_k K_{ik}},\quad K = e^{-C/\varepsilon}\end{aligned}"
)
"""The generalised KL from the identity to the first Sinkhorn half-step (:func:`ince_as_kl`)."""

PYTHAGORAS_LATEX = (
    r"\mathrm{KL}\big(P_{\mathrm{tgt}}\|P^{(k)}\big) = \mathrm{KL}\big(P_{\mathrm{tgt}}"
    r"\|P^{(k+1)}\big) + \underbrace{\mathrm{KL}\big(P^{(k+1)}\|P^{(k)}\big)}_{\ge 0}"
)
"""The Pythagorean identity of a KL projection onto an affine set (:func:`monotone_alignment`)."""

SPLIT_LATEX = (
    r"-\log P_{i,\mathrm{pos}(i)} = \underbrace{\frac{C_{i,\mathrm{pos}(i)}}{\varepsilon}}"
    r"_{\text{alignment}}\ \underbrace{-\ \frac{f_i + g_{\mathrm{pos}(i)}}{\varepsilon}}"
    r"_{\text{repulsion}},\qquad P_{ij} = e^{(f_i + g_j - C_{ij})/\varepsilon}"
)
"""The alignment/repulsion split of the loss from the log form of a plan (:func:`split_loss`).

"Repulsion", not "uniformity": in this app uniformity is Wang and Isola's measure of the
embeddings (:func:`gca_viz.metrics.uniformity`), a different quantity."""

INCE_REPULSION_LATEX = (
    r"\text{INCE } (g = 0):\quad -\frac{f_i}{\varepsilon} = \log\sum_j e^{-C_{ij}/\varepsilon}"
)
"""For InfoNCE the repulsion term is the log-partition function (:func:`split_loss`)."""

GINI_LATEX = (
    r"G(c) = \frac{\sum_{j,k} |c_j - c_k|}{2N \sum_j c_j},\qquad c = P^\top\mathbf 1"
    r"\quad (0:\ \text{every sample receives the same mass})"
)
"""The Gini coefficient of the column sums, a measure of hubs (:func:`hub_report`)."""

ENTROPY_LATEX = (
    r"H = -\sum_{ij} p_{ij}\log p_{ij},\ \ p = \frac{P}{\sum P},\qquad"
    r"\log N \le H \le 2\log N,\qquad \text{partners per sample} = e^{H - \log N}"
)
"""Plan entropy, its range for a balanced plan and the effective partners (:func:`entropy_plan`)."""

RELAXED_LATEX = (
    r"\rho = \frac{\lambda}{\lambda + \varepsilon},\qquad"
    r"\frac{e_{t+1}}{e_t} \to \kappa \le \rho_1\rho_2"
    r"\quad (e_t:\ \text{error of the optimality condition after sweep } t)"
)
"""The contraction of unbalanced Sinkhorn per sweep (:func:`relaxed_marginals`)."""

GCA_LATEX = (
    r"\min_\theta\ d_M\big(P_{\mathrm{tgt}}\,\|\,P_\theta\big),\qquad "
    r"P_\theta = \arg\min_{P \in B}\ h(P) + d_\Gamma\big(P\,\|\,K_\theta\big),"
    r"\quad K_\theta = e^{-C(z', z'')/\varepsilon}"
)
"""The GCA objective: a method is a choice of ``d_M``, ``d_Γ``, ``B`` (:func:`method_output`)."""


def _pair_problem(z1: torch.Tensor, z2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-view cost ``C = 1 - cos`` and the identity target ``I`` (``μ = ν = 1``)."""
    C = ot.cosine_cost(z1, z2)
    assert isinstance(C, torch.Tensor)
    return C, torch.eye(C.shape[0], dtype=C.dtype)


# ------------------------------------------------------------------------ step 1: INCE


@dataclass(frozen=True)
class InceAsKL:
    """InfoNCE computed three ways (see :func:`ince_as_kl`)."""

    infonce: float  # losses.get("ince") on the embeddings
    cross_entropy: float  # the textbook form: torch cross-entropy of the logits s / ε
    kl: float  # KL(I || P^(1)) / N from ot.row_projection
    sinkhorn_gap: float  # max |P^(1) - ot.sinkhorn(history=True).history[0]|
    plan: np.ndarray  # (N, N) P^(1)

    @property
    def difference(self) -> float:
        """``InfoNCE - KL(I || P^(1)) / N``: zero up to rounding."""
        return self.infonce - self.kl


def ince_as_kl(z1: torch.Tensor, z2: torch.Tensor, epsilon: float) -> InceAsKL:
    r"""InfoNCE and ``KL(I || P^(1)) / N``, computed independently (:data:`INFONCE_LATEX`,
    :data:`KL_P1_LATEX`).

    .. math::
        \frac1N\sum_i -\log\frac{e^{s_{ii}/\varepsilon}}{\sum_j e^{s_{ij}/\varepsilon}}
        = \frac1N\mathrm{KL}\big(I\,\|\,P^{(1)}\big),\qquad
        P^{(1)} = \mathrm{diag}(\mathbf 1 / K\mathbf 1)\,K

    where ``s`` is the cosine similarity, ``K = exp(-C/ε)`` with ``C = 1 - s`` and ``P^(1)``
    the first Sinkhorn half-step (the row projection onto ``P 1 = 1``). The left side is
    the library loss ``losses.get("ince")`` (and, as a check, the textbook cross-entropy of
    the logits ``s / ε``); the right side is the generalised KL of
    :func:`gca_viz.lab.generalized_kl` from the log-plan of :func:`gca_viz.ot.row_projection`.

    Args:
        z1, z2: ``(N, d)`` paired embeddings (row ``i`` of each is sample ``i``).
        epsilon: ``ε > 0``.

    Returns:
        An :class:`InceAsKL`; ``difference`` is at rounding level of the embeddings' dtype.
    """
    eps = positive(epsilon, "epsilon")
    with torch.no_grad():
        infonce = float(losses.get("ince", epsilon=eps)(z1, z2))
        s = torch.nn.functional.normalize(z1, dim=1) @ torch.nn.functional.normalize(z2, dim=1).T
        labels = torch.arange(z1.shape[0])
        ce = float(torch.nn.functional.cross_entropy(s / eps, labels))  # (N, N) logits
        C, I = _pair_problem(z1, z2)
        mu = I.sum(1)  # (N,) all ones: P_tgt 1
        log_p1, _ = ot.row_projection(C, mu, epsilon=eps)  # (N, N) log P^(1)
        kl = float(generalized_kl(I, log_p1, log_input=True))
        first = ot.sinkhorn(C, mu, mu, epsilon=eps, n_iter=1, history=True).history[0]
        p1 = torch.exp(torch.as_tensor(log_p1))
        gap = float((torch.as_tensor(first) - p1).abs().max())
    return InceAsKL(infonce, ce, kl, gap, p1.double().numpy())


# ------------------------------------------------------------------- step 2: monotonicity


@dataclass(frozen=True)
class Monotone:
    """The KL from the target to every half-step (see :func:`monotone_alignment`).

    ``kl[k] = KL(P_tgt || P^(k)) / n`` for ``k = 0..2T``; ``step_kl[k] =
    KL(P^(k+1) || P^(k)) / n`` and ``residual[k]`` the Pythagorean identity's left side minus
    its right side, for ``k = 0..2T-1``; ``log_plans[k] = log P^(k)`` (``(2T + 1, n, m)``,
    ``None`` when not kept).
    """

    kl: np.ndarray
    step_kl: np.ndarray
    residual: np.ndarray
    epsilon: float
    n_iter: int
    log_plans: np.ndarray | None = None

    @property
    def plans(self) -> np.ndarray:
        """``(2T + 1, n, m)`` the half-step plans ``P^(k) = exp(log P^(k))``."""
        if self.log_plans is None:
            raise ValueError("this Monotone kept no plans (log_plans is None)")
        out: np.ndarray = np.exp(self.log_plans)
        return out

    @property
    def ince(self) -> float:
        """``KL(P_tgt || P^(1)) / n``: InfoNCE."""
        return float(self.kl[1])

    @property
    def gca(self) -> float:
        """``KL(P_tgt || P^(2T)) / n``: GCA-INCE."""
        return float(self.kl[-1])

    @property
    def max_increase(self) -> float:
        """``max_k KL(P^(k+1)) - KL(P^(k))`` over ``k = 1..2T-1``: never positive."""
        return float(np.max(np.diff(self.kl[1:])))

    @property
    def rounding(self) -> float:
        """The float64 rounding level of the KL values (:func:`gca_viz.lab.largest_rise`):
        a change smaller than this is no change (a "never positive" quantity may read
        ``+4e-16``)."""
        return largest_rise(self.kl)[1]

    @property
    def max_increase_shown(self) -> float:
        """:attr:`max_increase`, with a positive value at :attr:`rounding` level shown as 0."""
        return largest_rise(self.kl)[0]

    @property
    def max_residual(self) -> float:
        """Largest ``|residual|`` of the Pythagorean identity (rounding level)."""
        return float(np.max(np.abs(self.residual)))

    @property
    def drops(self) -> np.ndarray:
        """``(2T - 1,)`` decrease ``KL(P^(k)) - KL(P^(k+1))`` for ``k = 1..2T-1``."""
        out: np.ndarray = self.kl[1:-1] - self.kl[2:]
        return out

    @property
    def largest_drop(self) -> tuple[int, float]:
        """``(k, drop)``: the half-step ``k -> k + 1`` (``k >= 1``) that lowers the KL most."""
        if len(self.drops) == 0:
            return 1, 0.0
        j = int(np.argmax(self.drops))
        return j + 1, float(self.drops[j])


def _kl_logs(log_a: torch.Tensor, log_b: torch.Tensor) -> float:
    """Generalised ``KL(A || B) / n`` from ``log A`` and ``log B`` (``-inf``: zero entries)."""
    a = torch.exp(log_a)
    terms = torch.where(a > 0, a * (log_a - log_b), torch.zeros_like(a))
    return float((terms.sum() - a.sum() + torch.exp(log_b).sum()) / log_a.shape[0])


def monotone_alignment(cost: Any, epsilon: float, n_iter: int = 10, target: Any = None) -> Monotone:
    r"""``KL(P_tgt || P^(k))`` over all ``2T`` Sinkhorn half-steps, and the identity that
    makes it non-increasing (:data:`PYTHAGORAS_LATEX`, :data:`gca_viz.lab.MONOTONE_LATEX`).

    .. math::
        \mathrm{KL}(P_{\mathrm{tgt}}\|P^{(k)}) = \mathrm{KL}(P_{\mathrm{tgt}}\|P^{(k+1)})
            + \mathrm{KL}(P^{(k+1)}\|P^{(k)})
        \ \Rightarrow\ \mathrm{KL}(P_{\mathrm{tgt}}\|P^{(k+1)}) \le
            \mathrm{KL}(P_{\mathrm{tgt}}\|P^{(k)})

    where ``P^(0) = K`` and ``P^(k+1)`` is the KL projection of ``P^(k)`` onto the rows
    (``P 1 = μ``, odd ``k + 1``) or the columns (``P^T 1 = ν``, even), affine sets that
    contain ``P_tgt`` because ``μ = P_tgt 1`` and ``ν = P_tgt^T 1``. Each half-step is one
    :func:`gca_viz.ot.row_projection` (a column step is a row step of ``C^T``), in float64
    and in the log domain, so no value is lost to underflow.

    Args:
        cost: ``(n, m)`` cost ``C``. epsilon: ``ε > 0``. n_iter: sweeps ``T >= 1``.
        target: ``(n, m)`` target ``P_tgt`` (default: the identity).

    Returns:
        A :class:`Monotone` (per-row values: divided by ``n``).
    """
    eps = positive(epsilon, "epsilon")
    sweeps = count(n_iter, "n_iter")
    C = cost_tensor(cost, torch.float64)
    P_tgt = target_tensor(target, C)
    mu, nu = targets.target_marginals(P_tgt)
    logs = [-C / eps]  # log P^(0) = log K
    g: Any = torch.zeros(C.shape[1], dtype=C.dtype)
    for _ in range(sweeps):
        log_row, f = ot.row_projection(C, mu, g=g, epsilon=eps)  # P^(2t-1): rows sum to μ
        log_col, g = ot.row_projection(C.T, nu, g=f, epsilon=eps)  # P^(2t)ᵀ: columns sum to ν
        logs += [torch.as_tensor(log_row), torch.as_tensor(log_col).T]
    stack = torch.stack(logs)  # (2T + 1, n, m)
    kl = generalized_kl(P_tgt, stack, log_input=True)  # (2T + 1,)
    step_kl = np.array([_kl_logs(logs[k + 1], logs[k]) for k in range(2 * sweeps)])
    residual = kl[:-1] - kl[1:] - step_kl
    return Monotone(kl, step_kl, residual, eps, sweeps, stack.numpy())


# -------------------------------------------------------- step 3: alignment and repulsion


@dataclass(frozen=True)
class Split:
    """One loss split per row into alignment and repulsion (see :func:`split_loss`)."""

    alignment: np.ndarray  # (n,) C_{i,pos(i)} / ε
    repulsion: np.ndarray  # (n,) -(f_i + g_pos(i)) / ε
    neg_log_pos: np.ndarray  # (n,) -log P_{i,pos(i)} read from the plan
    loss: float  # the loss module's value

    @property
    def row_residual(self) -> float:
        """``max_i |alignment_i + repulsion_i + log P_{i,pos(i)}|``."""
        return float(np.max(np.abs(self.alignment + self.repulsion - self.neg_log_pos)))

    @property
    def loss_residual(self) -> float:
        """``|mean(alignment + repulsion) - loss|``."""
        return abs(float(np.mean(self.alignment + self.repulsion)) - self.loss)


def split_loss(out: losses.LossOutput, layout: str = "cross") -> Split:
    r"""Split a KL-type loss on a balanced plan into alignment and repulsion
    (:data:`SPLIT_LATEX`, :data:`INCE_REPULSION_LATEX`).

    .. math::
        -\log P_{i,\mathrm{pos}(i)} = \frac{C_{i,\mathrm{pos}(i)}}{\varepsilon}
            - \frac{f_i + g_{\mathrm{pos}(i)}}{\varepsilon}

    where ``P_ij = exp((f_i + g_j - C_ij)/ε)`` is the plan with its potentials ``f``, ``g``
    and ``pos(i)`` the column of ``i``'s positive. With the pair target and a plan whose
    total mass is ``n`` (INCE's row step, GCA-INCE ending on a column step) the loss
    ``KL(P_tgt || P) / n`` is the mean of ``-log P_{i,pos(i)}``, so the two terms' means
    add up to it. The alignment term is the same for every plan of one cost; only the
    repulsion term (minus the potentials: for INCE the log-partition function, which pushes
    every sample away from the others) differs.

    Args:
        out: a :meth:`gca_viz.losses.GCALoss.inspect` output with the pair target.
        layout: the layout of ``out`` (``"cross"``: ``pos(i) = i``).
    """
    n = out.cost.shape[0]
    N = n if layout == "cross" else n // 2
    pos = targets.partner(N, layout)  # (n,)
    rows = torch.arange(n)
    eps = out.epsilon
    with torch.no_grad():
        align = out.cost[rows, pos] / eps  # (n,)
        unif = -(out.f + out.g[pos]) / eps  # (n,)
        neg_log = -out.log_plan[rows, pos]  # (n,)
    return Split(_np(align), _np(unif), _np(neg_log), float(out.loss.detach()))


def _np(t: torch.Tensor) -> np.ndarray:
    out: np.ndarray = t.detach().double().cpu().numpy()
    return out


def gini(values: Any) -> float:
    r"""Gini coefficient of non-negative values (:data:`GINI_LATEX`).

    .. math::
        G(c) = \frac{\sum_{j,k}|c_j - c_k|}{2m\sum_j c_j}
            = \frac{\sum_{r=1}^m (2r - m - 1)\,c_{(r)}}{m\sum_j c_j}

    where ``c_(r)`` are the ``m`` values in increasing order: 0 when all are equal, close
    to 1 when one value holds everything.
    """
    c = np.sort(np.asarray(values, dtype=float).ravel())
    m = c.size
    if m == 0 or not np.all(np.isfinite(c)) or np.any(c < 0) or c.sum() <= 0:
        raise ValueError("values must be finite, non-negative and not all zero")
    r = np.arange(1, m + 1)
    return float(np.sum((2 * r - m - 1) * c) / (m * c.sum()))


@dataclass(frozen=True)
class Hubs:
    """Column sums before and after the column constraint (see :func:`hub_report`)."""

    before: np.ndarray  # (m,) column sums of P^(1)
    after: np.ndarray  # (m,) column sums of P^(2T)
    gini_before: float
    gini_after: float

    @property
    def ratio_before(self) -> float:
        """``max c / min c`` of ``P^(1)``: how much more the top hub receives than the last."""
        return float(self.before.max() / self.before.min())

    @property
    def ratio_after(self) -> float:
        return float(self.after.max() / self.after.min())

    @property
    def top_hub(self) -> int:
        """The column that receives the most mass under ``P^(1)``."""
        return int(np.argmax(self.before))


def hub_report(plan_before: Any, plan_after: Any) -> Hubs:
    r"""How unequal the received mass ``c = P^T 1`` is before and after Sinkhorn
    (:data:`GINI_LATEX`, :func:`gini`).

    Under ``P^(1)`` every row sends mass 1 but a column (a sample) may receive much more:
    a *hub*, close to everybody. The column constraint ``P^T 1 = ν`` makes every sample
    receive the same mass, so the Gini coefficient of ``c`` drops to 0 at convergence.

    Args:
        plan_before: ``(n, m)`` plan ``P^(1)``. plan_after: ``(n, m)`` plan after Sinkhorn.
    """
    before = np.asarray(torch.as_tensor(plan_before).detach().double().sum(0))
    after = np.asarray(torch.as_tensor(plan_after).detach().double().sum(0))
    return Hubs(before, after, gini(before), gini(after))


@dataclass(frozen=True)
class AlignmentRepulsion:
    """Step 3 on one batch: the split of INCE and GCA-INCE and the hubs."""

    ince: Split
    gca: Split
    hubs: Hubs


def alignment_repulsion(
    z1: torch.Tensor, z2: torch.Tensor, epsilon: float, n_iter: int = 10
) -> AlignmentRepulsion:
    r"""INCE and GCA-INCE on one batch, each split into alignment and repulsion
    (:func:`split_loss`), and the hubs of their plans (:func:`hub_report`).

    .. math::
        \mathcal L = \underbrace{\frac1N\sum_i \frac{C_{ii}}{\varepsilon}}_{\text{alignment}}
            + \underbrace{\frac1N\sum_i -\frac{f_i + g_i}{\varepsilon}}_{\text{repulsion}}

    with ``(f, 0)`` the potentials of the row step ``P^(1)`` (INCE) and ``(f, g)`` those
    after ``T`` Sinkhorn sweeps (GCA-INCE), from ``losses.get(...).inspect``.

    Args:
        z1, z2: ``(N, d)`` paired embeddings. epsilon: ``ε > 0``. n_iter: sweeps ``T``.
    """
    eps = positive(epsilon, "epsilon")
    sweeps = count(n_iter, "n_iter")
    with torch.no_grad():
        ince = losses.get("ince", epsilon=eps).inspect(z1, z2)
        gca = losses.get("gca_ince", epsilon=eps, n_iter=sweeps).inspect(z1, z2)
    return AlignmentRepulsion(split_loss(ince), split_loss(gca), hub_report(ince.plan, gca.plan))


# ----------------------------------------------------------- step 4: ε and relaxed marginals


@dataclass(frozen=True)
class EntropyPlan:
    """The balanced plan at one ``ε`` (see :func:`entropy_plan`)."""

    plan: np.ndarray  # (N, N)
    entropy: float  # H of P / sum P
    low: float  # log N: a permutation
    high: float  # 2 log N: the uniform plan
    positive_mass: float  # sum_i P_ii / sum P
    marginal_error: float  # ||P 1 - μ||_1 + ||P^T 1 - ν||_1

    @property
    def partners(self) -> float:
        """``exp(H - log N)``: over how many partners a sample spreads its mass (1 to N)."""
        return math.exp(self.entropy - self.low)


def entropy_plan(cost: Any, epsilon: float, n_iter: int = 10) -> EntropyPlan:
    r"""The GCA plan ``P^(2T)`` at one ``ε`` and its entropy (:data:`ENTROPY_LATEX`).

    .. math::
        H = -\sum_{ij} p_{ij}\log p_{ij},\quad p = \frac{P}{\sum P},\qquad
        \log N \le H \le 2\log N

    for a plan with uniform marginals (``H = log N`` for a permutation, the ``ε -> 0`` limit;
    ``2 log N`` for the uniform plan, ``ε -> ∞``); ``e^{H - log N}`` is the geometric-mean
    number of partners per sample. :func:`gca_viz.ot.sinkhorn`, ``T`` sweeps in float64.

    Args:
        cost: ``(N, N)`` cost. epsilon: ``ε > 0``. n_iter: sweeps ``T >= 1``.
    """
    eps = positive(epsilon, "epsilon")
    C = cost_tensor(cost, torch.float64)
    ones = torch.ones(C.shape[0], dtype=C.dtype)
    res = ot.sinkhorn(C, ones, ones, epsilon=eps, n_iter=count(n_iter, "n_iter"))
    plan = torch.as_tensor(res.plan)
    n = C.shape[0]
    return EntropyPlan(
        plan.numpy(),
        metrics.plan_entropy(plan),
        math.log(n),
        2 * math.log(n),
        metrics.positive_mass(plan),
        res.marginal_error,
    )


@dataclass(frozen=True)
class Relaxed:
    """The unbalanced plan with ``λ1 = λ2 = λ`` (see :func:`relaxed_marginals`)."""

    plan: np.ndarray  # (N, N)
    row_sums: np.ndarray  # (N,) P 1
    col_sums: np.ndarray  # (N,) P^T 1
    mu: np.ndarray  # (N,) the hard row marginal
    nu: np.ndarray  # (N,) the hard column marginal
    mass: float  # sum P
    rho: tuple[float, float]
    contraction: float  # measured rate per sweep (nan: converged too fast to measure)
    sweeps_to_rounding: int  # sweeps until the error reached rounding level
    positive_mass: float  # sum_i P_ii / sum P

    @property
    def predicted(self) -> float:
        """``ρ1 ρ2``, the contraction per sweep near the solution (the asymptotic rate)."""
        return self.rho[0] * self.rho[1]

    @property
    def row_shares(self) -> np.ndarray:
        """``((P 1)_i / ΣP) / (μ_i / Σμ)``, ``(N,)``: each row's share of the plan's mass over
        its share under the hard marginal (1: as balanced). The total mass drifts toward
        ``ΣK`` as ``λ`` falls, lifting every row sum alike; the shares compare."""
        return np.asarray((self.row_sums / self.mass) / (self.mu / self.mu.sum()))

    @property
    def col_shares(self) -> np.ndarray:
        """``((P^T 1)_j / ΣP) / (ν_j / Σν)``, ``(N,)``: the columns' :attr:`row_shares`."""
        return np.asarray((self.col_sums / self.mass) / (self.nu / self.nu.sum()))

    def rows_below(self, fraction: float = 0.9) -> int:
        """How many rows keep less than ``fraction`` of their share (:attr:`row_shares`)."""
        return int((self.row_shares < fraction).sum())


def relaxed_marginals(cost: Any, epsilon: float, lam: float | None, n_iter: int = 50) -> Relaxed:
    r"""The unbalanced plan with ``λ1 = λ2 = λ`` and its measured convergence rate
    (:data:`gca_viz.ot.UNBALANCED_LATEX`, :data:`gca_viz.ot.LOG_UPDATE_LATEX`,
    :data:`RELAXED_LATEX`).

    .. math::
        P = \arg\min_{P \ge 0} \langle P, C\rangle - \varepsilon H(P)
            + \lambda\,\mathrm{KL}(P\mathbf 1\|\mu) + \lambda\,\mathrm{KL}(P^\top\mathbf 1\|\nu),
        \qquad \rho = \frac{\lambda}{\lambda + \varepsilon}

    with ``μ = ν = 1``. ``λ -> ∞`` (``lam=None``) is balanced Sinkhorn, ``λ -> 0`` leaves
    ``P = K``. Each sweep shrinks the error by about ``ρ1 ρ2`` (at most). The solver
    (:func:`gca_viz.ot.sinkhorn`, float64) runs ``n_iter`` sweeps so the plan is the
    converged one and the rate is measured over them (``SinkhornResult.contraction``; when
    the error reaches rounding level early, over the sweeps before that).

    Args:
        cost: ``(N, N)`` cost. epsilon: ``ε > 0``. lam: ``λ > 0`` or ``None`` (hard).
        n_iter: sweeps (default 50).
    """
    eps = positive(epsilon, "epsilon")
    weight = relax(lam, "lam")
    C = cost_tensor(cost, torch.float64)
    ones = torch.ones(C.shape[0], dtype=C.dtype)

    def solve(sweeps: int) -> ot.SinkhornResult:
        return ot.sinkhorn(
            C, ones, ones, epsilon=eps, n_iter=sweeps, relax_a=weight, relax_b=weight
        )

    res = solve(count(n_iter, "n_iter"))
    plan = torch.as_tensor(res.plan)
    errors = np.asarray(res.errors, dtype=float)
    above = int(np.sum(errors > res.rounding_floor))
    rate = res.contraction
    if math.isnan(rate) and 4 <= above < len(errors):
        # Converged to rounding early: measure over the sweeps before that.
        rate = solve(above).contraction
    return Relaxed(
        plan.numpy(),
        plan.sum(1).numpy(),
        plan.sum(0).numpy(),
        ones.numpy(),
        ones.numpy(),
        res.mass,
        res.rho,
        rate,
        above,
        metrics.positive_mass(plan),
    )


# --------------------------------------------------------------------- step 5: the methods


def methods_table() -> list[dict[str, str]]:
    """One row per named method of :data:`gca_viz.losses.LOSSES`: ``d_M``, ``d_Γ``, ``B``,
    what it does and its reference (a preset's note is in :func:`methods_notes`)."""
    return [
        {
            "method": m.title,
            "d_M": m.d_m,
            "d_Γ": m.d_gamma,
            "B": m.constraint,
            "what it does": m.description,
            "reference": m.reference,
        }
        for m in losses.LOSSES.values()
    ]


def methods_notes() -> list[str]:
    """``"title: note"`` for each method with a :attr:`~gca_viz.losses.Method.note` (its
    preset's values and where they come from, or the preset it equals), which
    :func:`methods_table` leaves out."""
    return [f"{m.title}: {m.note}" for m in losses.LOSSES.values() if m.note]


def method_output(
    name: str, z1: torch.Tensor, z2: torch.Tensor, epsilon: float, n_iter: int = 10
) -> losses.LossOutput:
    r"""What the named method sees on the batch, in the cross-view layout (:data:`GCA_LATEX`).

    .. math::
        \mathcal L = \frac1N\sum_i d_M\big(I\,\|\,\mathrm{proj}_B(e^{-C/\varepsilon})\big)_i

    ``losses.get(name, layout="cross")`` with ``ε`` and ``T`` where the method has them
    (other parameters keep the paper's defaults), then :meth:`GCALoss.inspect`: its plan,
    per-row loss and diagnostics.
    """
    eps = positive(epsilon, "epsilon")
    loss = losses.get(name, layout="cross")
    shared = {"epsilon": eps, "n_iter": count(n_iter, "n_iter")}
    loss.set_params(**{k: v for k, v in shared.items() if k in loss.params})
    with torch.no_grad():
        return loss.inspect(z1, z2)
