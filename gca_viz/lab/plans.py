r"""The plan lab: every Sinkhorn half-step, the KL curve, every method's loss, cells.

Notation (``docs/math.md`` sections 1, 2, 4): ``C`` is the ``(n, m)`` cost, ``K = e^{-C/ε}``,
``P_tgt`` the target plan with marginals ``μ = P_tgt 1``, ``ν = P_tgt^T 1``; ``n = N``
(cross layout) or ``2N`` (joint layout). Losses and KL values are per row (divided by ``n``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from gca_viz import losses, ot, targets
from gca_viz.lab._checks import cost_tensor, count, positive, relax, single_threaded, target_tensor
from gca_viz.lab.batches import Batch

HALF_STEP_LATEX = (
    r"P^{(0)} = K,\quad P^{(2t-1)} = \mathrm{diag}\!\Big(\frac{\mu}{P^{(2t-2)}\mathbf 1}\Big)"
    r" P^{(2t-2)},\quad P^{(2t)} = P^{(2t-1)}\,"
    r"\mathrm{diag}\!\Big(\frac{\nu}{P^{(2t-1)\top}\mathbf 1}\Big)"
)
"""The half-steps of Sinkhorn: row projections (odd ``k``) and column projections (even)."""

MONOTONE_LATEX = (
    r"\tfrac1n\mathrm{KL}\big(P_{\mathrm{tgt}}\,\|\,P^{(k+1)}\big) \;\le\;"
    r" \tfrac1n\mathrm{KL}\big(P_{\mathrm{tgt}}\,\|\,P^{(k)}\big),\qquad"
    r" \mathcal L_{\mathrm{INCE}}"
    r" = \tfrac1n\mathrm{KL}\big(P_{\mathrm{tgt}}\,\|\,P^{(1)}\big),\quad"
    r" \mathcal L_{\mathrm{GCA\text{-}INCE}}"
    r" = \tfrac1n\mathrm{KL}\big(P_{\mathrm{tgt}}\,\|\,P^{(2T)}\big)"
)
"""The monotone-alignment theorem (``docs/math.md`` section 4) and the two losses it links."""


# --------------------------------------------------------------------- half-steps, KL


def generalized_kl(target: Any, plans: Any, *, log_input: bool = False) -> np.ndarray:
    r"""Generalised KL per row from a target to one plan or a stack of plans.

    .. math::
        \frac1n\mathrm{KL}(A\,\|\,B) = \frac1n\Big(\sum_{ij} A_{ij}\log\frac{A_{ij}}{B_{ij}}
            - \sum A + \sum B\Big), \qquad 0 \log 0 = 0

    where ``A = P_tgt`` is ``(n, m)`` and ``B`` a plan. Entries with ``A_ij = 0`` contribute
    only ``B_ij``. Pass log-plans (``log_input=True``) where a plan may underflow: the value
    then stays exact; from an underflowed plan (``B_ij = 0 < A_ij``) it would be ``+inf``.

    Args:
        target: ``(n, m)`` non-negative ``A``.
        plans: ``(n, m)`` or ``(k, n, m)`` plans ``B`` (or ``log B`` with ``log_input``).
        log_input: whether ``plans`` holds ``log B``.

    Returns:
        A float64 array of shape ``()`` or ``(k,)``.
    """
    A = torch.as_tensor(np.asarray(target) if not isinstance(target, torch.Tensor) else target)
    B = torch.as_tensor(np.asarray(plans) if not isinstance(plans, torch.Tensor) else plans)
    A, B = A.double(), B.double()
    if A.ndim != 2 or B.shape[-2:] != A.shape:
        raise ValueError(f"plans must end in the target's shape {tuple(A.shape)}")
    stack = B.reshape(-1, *A.shape)  # (k, n, m)
    support = A > 0
    a = A[support]  # (s,)
    log_b = stack[:, support] if log_input else torch.log(stack[:, support])  # (k, s)
    mass = torch.exp(stack).sum((1, 2)) if log_input else stack.sum((1, 2))  # (k,)
    kl = (a * (torch.log(a) - log_b)).sum(1) - a.sum() + mass  # (k,)
    out = (kl / A.shape[0]).numpy()
    return out.reshape(B.shape[:-2])


def largest_rise(kl: Any) -> tuple[float, float]:
    r"""The largest change ``max_k KL^(k+1) - KL^(k)`` over the half-steps ``k >= 1`` (never
    positive by the theorem) and the float64 rounding level of the values,
    ``64 · 2^{-52} · max_{k>=1} |KL^(k)|``: a positive change below it is rounding, not a
    rise, and is returned as 0.

    Args:
        kl: ``(2T + 1,)`` values ``KL(P_tgt || P^(k)) / n``, ``2T >= 2``.

    Returns:
        ``(change, rounding)``.
    """
    y = np.asarray(kl, dtype=float)[1:]
    if y.size < 2:
        raise ValueError(f"kl must hold at least 3 values (k = 0, 1, 2), got {y.size + 1}")
    rounding = 64 * float(np.finfo(np.float64).eps) * float(np.max(np.abs(y)))
    change = float(np.max(np.diff(y)))
    return (0.0 if 0 < change <= rounding else change), rounding


MARGINALS_HOLD = 1e-2
"""A relative marginal error at or below which the plan lab says the marginals hold (the
bars sit on the dashed lines to the eye)."""


@dataclass(frozen=True, eq=False)
class HalfSteps:
    """All half-steps of ``T`` Sinkhorn sweeps and the KL curve (see :func:`half_steps`).

    Attributes:
        plans: ``(2T + 1, n, m)``; ``plans[k] = P^(k)``, ``plans[0] = K``.
        kl: ``(2T + 1,)`` ``KL(P_tgt || P^(k)) / n``; ``kl[1]`` is INCE, ``kl[2T]`` GCA-INCE.
        row_error, col_error: ``(2T + 1,)`` ``||P^(k) 1 - μ||_1`` and ``||P^(k)T 1 - ν||_1``.
        mu, nu: the marginals ``P_tgt 1`` and ``P_tgt^T 1``.
        epsilon, n_iter: ``ε`` and ``T``.
    """

    plans: np.ndarray
    kl: np.ndarray
    row_error: np.ndarray
    col_error: np.ndarray
    mu: np.ndarray
    nu: np.ndarray
    epsilon: float
    n_iter: int

    @property
    def max_entry(self) -> float:
        """The largest entry over all half-steps (a shared colour scale for the frames)."""
        return float(self.plans.max())

    @property
    def relative_error(self) -> np.ndarray:
        """``(||P^(k) 1 - μ||_1 + ||P^(k)T 1 - ν||_1) / sum μ`` for every ``k``."""
        out: np.ndarray = (self.row_error + self.col_error) / float(self.mu.sum())
        return out

    def marginals_words(self) -> str:
        """What the plan after the ``T`` sweeps, ``P^(2T)``, does with its marginals, in
        words measured on it: they hold (relative error at most :data:`MARGINALS_HOLD`),
        or they are still off and more sweeps are needed (a fixed "both marginals hold"
        was false at a small ``ε``, where the bars visibly left the dashed lines)."""
        err, t = float(self.relative_error[-1]), self.n_iter
        sweeps = f"{t} sweep{'s' if t != 1 else ''}"
        if err <= MARGINALS_HOLD:
            return (
                f"After T = {sweeps} both marginals hold (relative error {err:.1e}): every "
                "sample sends and receives the same mass, which evens out hubs."
            )
        return (
            f"After T = {sweeps} the marginals are still off (relative error {err:.2g}: the "
            f"bars leave the dashed lines): at ε = {self.epsilon:g} Sinkhorn needs more "
            "sweeps, so raise T. Once they hold, every sample sends and receives the same "
            "mass, which evens out hubs."
        )


@single_threaded
def half_steps(
    cost: Any,
    target: Any = None,
    epsilon: float = 0.5,
    n_iter: int = 10,
    dtype: torch.dtype = torch.float64,
) -> HalfSteps:
    r"""Every Sinkhorn half-step from the kernel and the KL from the target to each.

    .. math::
        P^{(0)} = K = e^{-C/\varepsilon},\quad
        P^{(2t-1)} = \mathrm{diag}\Big(\frac{\mu}{P^{(2t-2)}\mathbf 1}\Big) P^{(2t-2)},\quad
        P^{(2t)} = P^{(2t-1)}\mathrm{diag}\Big(\frac{\nu}{P^{(2t-1)\top}\mathbf 1}\Big)

    where ``μ = P_tgt 1`` and ``ν = P_tgt^T 1``, so that ``P_tgt`` is feasible and
    ``KL(P_tgt || P^(k))`` is non-increasing in ``k`` (each half-step is a KL projection onto
    an affine set containing ``P_tgt``; ``docs/math.md`` section 4). Each half-step is one
    log-domain projection :func:`gca_viz.ot.row_projection` (a column step is a row step
    of ``C^T``), so the plans equal ``gca_viz.ot.sinkhorn(..., history=True)``'s and the KL
    is computed from exact log-plans: it stays finite where a plan underflows to 0.

    Args:
        cost: ``(n, m)`` cost ``C`` (``+inf`` for excluded pairs).
        target: ``(n, m)`` target ``P_tgt`` (default: the identity).
        epsilon: ``ε > 0``. n_iter: sweeps ``T >= 1``. dtype: the solver's dtype.

    Returns:
        A :class:`HalfSteps` (numpy arrays of ``dtype``; the KL in float64).
    """
    eps = positive(epsilon, "epsilon")
    T_sweeps = count(n_iter, "n_iter")
    C = cost_tensor(cost, dtype)
    P_tgt = target_tensor(target, C)
    mu, nu = targets.target_marginals(P_tgt)
    log_plans = [-C / eps]  # log P^(0) = log K; -inf on excluded pairs
    g: Any = torch.zeros(C.shape[1], dtype=C.dtype)  # column potential, g^(0) = 0
    for _ in range(T_sweeps):
        log_row, f = ot.row_projection(C, mu, g=g, epsilon=eps)  # P^(2t-1): rows sum to μ
        log_col, g = ot.row_projection(C.T, nu, g=f, epsilon=eps)  # P^(2t)ᵀ: columns sum to ν
        log_plans += [torch.as_tensor(log_row), torch.as_tensor(log_col).T]
    log_stack = torch.stack(log_plans)  # (2T + 1, n, m)
    plans = torch.exp(log_stack)
    row_err = (plans.sum(2) - mu).abs().sum(1)  # (2T + 1,)
    col_err = (plans.sum(1) - nu).abs().sum(1)
    return HalfSteps(
        plans=plans.numpy(),
        kl=generalized_kl(P_tgt, log_stack, log_input=True),
        row_error=row_err.double().numpy(),
        col_error=col_err.double().numpy(),
        mu=mu.numpy(),
        nu=nu.numpy(),
        epsilon=eps,
        n_iter=T_sweeps,
    )


# ------------------------------------------------------------------------ method losses


@dataclass(frozen=True)
class MethodLoss:
    """One method's loss on a batch, with its row of the methods table."""

    name: str
    title: str
    value: float
    d_m: str
    constraint: str
    description: str


def _method(name: str, layout: str, target: str, overrides: Mapping[str, Any]) -> losses.GCALoss:
    """The named loss with the overrides its stages accept (others are ignored)."""
    loss = losses.get(name, layout=layout, target=target)
    loss.set_params(**{k: v for k, v in overrides.items() if k in loss.params})
    return loss


def _overrides(
    epsilon: float, n_iter: int, relax_a: Any, relax_b: Any, target_params: Mapping[str, float]
) -> dict[str, Any]:
    return {
        "epsilon": positive(epsilon, "epsilon"),
        "n_iter": count(n_iter, "n_iter"),
        "relax_a": relax(relax_a, "relax_a"),
        "relax_b": relax(relax_b, "relax_b"),
        **target_params,
    }


def _row(name: str, value: float) -> MethodLoss:
    m = losses.LOSSES[name]
    return MethodLoss(name, m.title, value, m.d_m, m.constraint, m.description)


@single_threaded
def method_losses(
    z1: torch.Tensor,
    z2: torch.Tensor,
    *,
    epsilon: float = 0.5,
    n_iter: int = 10,
    layout: str = "cross",
    target: str = "pairs",
    target_params: Mapping[str, float] | None = None,
    labels: Any = None,
    domains: Any = None,
    relax_a: float | None = 0.2,
    relax_b: float | None = 0.2,
) -> list[MethodLoss]:
    r"""The loss of every method of :data:`gca_viz.losses.LOSSES` on one batch.

    .. math::
        \mathcal L_{\mathrm{method}} = \frac1n\sum_i d_M\big(P_{\mathrm{tgt}}\,\|\,
            \mathrm{proj}_B(e^{-C(z', z'')/\varepsilon})\big)_i

    Each method is built with ``losses.get(name, layout=..., target=...)`` and given the
    shared settings it accepts (``ε``, ``T``, ``λ1``, ``λ2``, the prior's weights); its other
    parameters keep the paper's defaults. On the same batch GCA-INCE <= INCE (theorem).

    Args:
        z1, z2: ``(N, d)`` paired embeddings. epsilon: ``ε > 0``. n_iter: ``T >= 1``.
        layout: ``"cross"`` or ``"joint"`` for every method (IOT's default is joint).
        target: a target prior name; target_params: its weights (``gamma``, ``alpha``...).
        labels, domains: ``(N,)`` side information of the class and domain priors.
        relax_a, relax_b: ``λ1, λ2`` of GCA-UOT (``None``: hard marginal).

    Returns:
        One :class:`MethodLoss` per method, in the order of ``LOSSES``.
    """
    over = _overrides(epsilon, n_iter, relax_a, relax_b, target_params or {})
    out = []
    with torch.no_grad():
        for name in losses.LOSSES:
            loss = _method(name, layout, target, over)
            out.append(_row(name, float(loss(z1, z2, labels=labels, domains=domains))))
    return out


@single_threaded
def method_losses_from_cost(
    cost: Any,
    target: Any = None,
    *,
    epsilon: float = 0.5,
    n_iter: int = 10,
    relax_a: float | None = 0.2,
    relax_b: float | None = 0.2,
) -> list[MethodLoss]:
    r"""Every method's loss from a cost matrix (for batches without embeddings).

    The same four stages as :func:`method_losses`, starting after the cost stage:
    ``L = mean_i d_M(P_tgt || proj_B(K))_i`` with ``μ = P_tgt 1``, ``ν = P_tgt^T 1``. On a
    batch with embeddings both functions agree (a test checks it).

    Args:
        cost: ``(n, n)`` cost. target: ``(n, n)`` target (default identity).
        epsilon, n_iter, relax_a, relax_b: as :func:`method_losses`.
    """
    over = _overrides(epsilon, n_iter, relax_a, relax_b, {})
    C = cost_tensor(cost)
    P_tgt = target_tensor(target, C)
    mu, nu = targets.target_marginals(P_tgt)
    out = []
    with torch.no_grad():
        for name in losses.LOSSES:
            loss = _method(name, "cross", "pairs", over)
            proj_stage, div_stage = loss.stages["projection"], loss.stages["divergence"]
            proj = proj_stage.fn(
                C, mu, nu, **{p.name: loss.params[p.name] for p in proj_stage.params}
            )
            rows = div_stage.fn(
                P_tgt, proj, **{p.name: loss.params[p.name] for p in div_stage.params}
            )
            out.append(_row(name, float(rows.mean())))
    return out


# --------------------------------------------------------------------- the plan lab


@dataclass(frozen=True, eq=False)
class LabSolution:
    """Everything the plan lab shows for one setting (numpy arrays, see :func:`solve`).

    Attributes:
        cost: ``(n, m)`` ``C`` (``inf`` on excluded pairs). kernel: ``K = e^{-C/ε}``.
        target: ``P_tgt``. steps: the :class:`HalfSteps` (``P^(0)..P^(2T)``, KL curve).
        unbalanced: the unbalanced plan after ``T`` sweeps with ``λ1, λ2``.
        rho: ``(ρ1, ρ2)`` of the unbalanced plan. losses: every method's loss on the batch.
    """

    cost: np.ndarray
    kernel: np.ndarray
    target: np.ndarray
    steps: HalfSteps
    unbalanced: np.ndarray
    rho: tuple[float, float]
    losses: list[MethodLoss]

    @property
    def matrices(self) -> dict[str, np.ndarray]:
        """The named ``(n, m)`` matrices of the problem."""
        return {
            "cost": self.cost,
            "kernel": self.kernel,
            "P1": self.steps.plans[1],
            "P2T": self.steps.plans[-1],
            "unbalanced": self.unbalanced,
            "target": self.target,
        }


@single_threaded
def solve(
    batch: Batch,
    *,
    epsilon: float = 0.5,
    n_iter: int = 10,
    layout: str = "cross",
    target: str = "pairs",
    target_params: Mapping[str, float] | None = None,
    relax_a: float | None = 0.2,
    relax_b: float | None = 0.2,
    dtype: torch.dtype = torch.float64,
) -> LabSolution:
    r"""The plan lab for one setting: cost, kernel, every half-step, the unbalanced plan,
    the target and the loss of every method.

    The unbalanced plan runs ``T`` sweeps of ``f <- ρ1(ε log μ - ε LSE_j((g_j - C_ij)/ε))``,
    ``g <- ρ2(...)`` with ``ρ = λ / (λ + ε)`` (:data:`gca_viz.ot.UNBALANCED_LATEX`).

    Args:
        batch: the :class:`Batch`. epsilon: ``ε > 0``. n_iter: ``T >= 1``.
        layout, target, target_params: the layout and the target prior with its weights.
        relax_a, relax_b: ``λ1, λ2 > 0`` of the unbalanced plan (``None``: hard).
        dtype: ``torch.float64`` or ``torch.float32``.

    Raises:
        ValueError: naming the parameter, for any invalid setting.
    """
    params = dict(target_params or {})
    eps = positive(epsilon, "epsilon")
    lam_a, lam_b = relax(relax_a, "relax_a"), relax(relax_b, "relax_b")
    C = batch.cost_matrix(layout, dtype)
    P_tgt = batch.target(target, layout, **params).to(dtype)
    steps = half_steps(C, P_tgt, eps, n_iter, dtype)
    mu, nu = targets.target_marginals(P_tgt)
    unb = ot.sinkhorn(C, mu, nu, epsilon=eps, n_iter=n_iter, relax_a=lam_a, relax_b=lam_b)
    if batch.z1 is not None and batch.z2 is not None:
        found = method_losses(
            batch.z1.to(dtype),
            batch.z2.to(dtype),
            epsilon=eps,
            n_iter=n_iter,
            layout=layout,
            target=target,
            target_params=params,
            labels=batch.labels,
            domains=batch.domains,
            relax_a=lam_a,
            relax_b=lam_b,
        )
    else:
        found = method_losses_from_cost(
            C, P_tgt, epsilon=eps, n_iter=n_iter, relax_a=lam_a, relax_b=lam_b
        )
    return LabSolution(
        cost=C.numpy(),
        kernel=steps.plans[0],
        target=P_tgt.numpy(),
        steps=steps,
        unbalanced=np.asarray(unb.plan),
        rho=unb.rho,
        losses=found,
    )


@dataclass(frozen=True)
class CellInfo:
    """One cell ``(i, j)`` of the batch's matrices (see :func:`cell_info`).

    ``row_view``/``col_view`` are 1 (``z'``) or 2 (``z''``); ``row_sample``/``col_sample``
    the sample indices; ``values`` maps each matrix name to its entry; ``positive`` says
    whether ``j`` is row ``i``'s augmentation partner; ``self_pair`` whether the cell pairs
    a view with itself (the joint layout's diagonal, excluded: cost ``+inf``, no mass).
    """

    i: int
    j: int
    row_sample: int
    row_view: int
    col_sample: int
    col_view: int
    values: dict[str, float]
    positive: bool
    self_pair: bool = False


def cell_info(
    i: int, j: int, matrices: Mapping[str, np.ndarray], *, layout: str = "cross"
) -> CellInfo:
    """The samples behind cell ``(i, j)`` and every matrix's entry there.

    Cross layout: row ``i`` is ``z'_i`` (view 1), column ``j`` is ``z''_j`` (view 2).
    Joint layout (``2N x 2N``): index ``k < N`` is view 1 of sample ``k``, ``k >= N`` view 2
    of sample ``k - N``.

    Args:
        i, j: row and column. matrices: ``{name: (n, m) array}`` of one shape.
        layout: ``"cross"`` or ``"joint"``.

    Raises:
        ValueError: naming ``i`` or ``j`` if out of range, or ``matrices`` if empty or of
            mixed shapes.
    """
    lay = targets.check_layout(layout)
    shapes = {np.shape(m) for m in matrices.values()}
    if len(shapes) != 1:
        raise ValueError(f"matrices must be non-empty and of one shape, got {sorted(shapes)}")
    n_rows, n_cols = next(iter(shapes))
    for name, value, size in (("i", i, n_rows), ("j", j, n_cols)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"{name} must be an integer, got {value!r}")
        if not 0 <= value < size:
            raise ValueError(f"{name} must be in 0..{size - 1}, got {value}")
    i, j = int(i), int(j)
    values = {name: float(m[i, j]) for name, m in matrices.items()}
    if lay == "cross":
        return CellInfo(i, j, i, 1, j, 2, values, i == j)
    N = n_rows // 2
    positive = j == (i + N) % n_rows
    return CellInfo(i, j, i % N, 1 + i // N, j % N, 1 + j // N, values, positive, i == j)


def downsample(matrix: Any, max_size: int = 256) -> np.ndarray:
    """Block-average a matrix so that neither side exceeds ``max_size`` (for display).

    The block side is ``f = ceil(max(n, m) / max_size)`` on both axes (cells stay square);
    blocks at the edges may be partial. Non-finite entries (``+inf`` excluded pairs) count
    as missing: a block holds the mean of its finite entries (``NaN`` if none). Summing
    ``block mean x number of finite entries`` gives back the matrix's (finite) sum.

    Args:
        matrix: ``(n, m)`` array. max_size: largest displayed side ``>= 1``.

    Returns:
        ``(ceil(n / f), ceil(m / f))`` float array (the input as float when ``f = 1``).
    """
    M = np.asarray(matrix, dtype=float)
    if M.ndim != 2 or M.size == 0:
        raise ValueError(f"matrix must be a non-empty 2-D array, got shape {M.shape}")
    f = display_factor(M.shape, count(max_size, "max_size"))
    if f == 1:
        return M
    n, m = M.shape
    rows, cols = -(-n // f), -(-m // f)
    padded = np.full((rows * f, cols * f), np.nan)
    padded[:n, :m] = np.where(np.isfinite(M), M, np.nan)
    blocks = padded.reshape(rows, f, cols, f)  # (rows, f, cols, f)
    counts = np.isfinite(blocks).sum(axis=(1, 3))
    sums = np.nansum(blocks, axis=(1, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def display_factor(shape: Sequence[int], max_size: int = 256) -> int:
    """Block side ``f = ceil(max(shape) / max_size)`` used by :func:`downsample`."""
    return max(1, -(-max(int(s) for s in shape) // max_size))
