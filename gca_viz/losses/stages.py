r"""The first and third of the four stages of a GCA loss: cost -> target -> projection ->
divergence.

Every contrastive loss here is ``divergence(P_tgt, projection(K(cost(z', z''))))``
(``docs/math.md`` sections 2 to 4). Costs and projections are registered here in
:data:`COSTS` and :data:`PROJECTIONS`, divergences in
:data:`gca_viz.losses.divergences.DIVERGENCES`, targets in :mod:`gca_viz.targets`; each
entry with its parameter schema and its formula as LaTeX. The named methods of
:mod:`gca_viz.losses.methods` are presets of these entries.

Conventions: ``ε`` is the temperature and regulariser, ``K = exp(-C/ε)``, the plan is
``P_ij = exp((f_i + g_j - C_ij)/ε)`` (a :class:`Projection`), and ``μ``, ``ν`` are the
target's marginals.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from gca_viz import ot
from gca_viz._validate import dtype_name
from gca_viz.registry import Param, Registry

COSTS = Registry("cost")
"""Registry of cost functions ``(z', z'', layout) -> C``."""
PROJECTIONS = Registry("projection")
"""Registry of proximal steps ``(C, μ, ν) -> plan`` (the constraint set ``B`` and ``d_Γ``)."""

EPSILON = Param(
    "epsilon",
    0.5,
    "Temperature of InfoNCE = entropic regulariser of OT.",
    "ε",
    low=0.0,
    low_open=True,
    ui=(0.01, 2.0),
)
N_ITER = Param(
    "n_iter",
    10,
    "Sinkhorn sweeps (2T half-steps).",
    "T",
    kind="int",
    low=1,
    high=100_000,  # a loss evaluation, not a solve to convergence: bounds a typo like 1e30
    ui=(1, 50),
)
RELAX_A = Param(
    "relax_a",
    0.2,
    "KL weight of the row-marginal penalty (None or ∞: a hard constraint).",
    "λ_1",
    low=0.0,
    low_open=True,
    optional=True,
    allow_inf=True,
    ui=(0.001, 100.0),
)
RELAX_B = Param(
    "relax_b",
    0.2,
    "KL weight of the column-marginal penalty (None or ∞: a hard constraint).",
    "λ_2",
    low=0.0,
    low_open=True,
    optional=True,
    allow_inf=True,
    ui=(0.001, 100.0),
)

# ---------------------------------------------------------------------------------- costs


def _joint(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    return torch.cat([z1, z2], dim=0)  # (2N, d): rows i and i + N are the two views of i


@COSTS.register(
    "cosine",
    latex=r"C_{ij} = 1 - \frac{\langle z'_i, z''_j\rangle}{\|z'_i\|\,\|z''_j\|}",
    description="1 - cosine similarity, in [0, 2] (the paper's cost).",
)
def cosine(z1: torch.Tensor, z2: torch.Tensor, layout: str) -> torch.Tensor:
    r"""Cosine cost ``C_ij = 1 - cos(z'_i, z''_j)`` of the layout (``docs/math.md`` section 1).

    Cross layout: ``(N, N)`` between the two views. Joint layout: ``(2N, 2N)`` over
    ``[z'; z'']`` with ``C_ii = +inf`` (self-pairs excluded, ``K_ii = 0``).
    """
    if layout == "cross":
        return ot.cosine_cost(z1, z2)  # type: ignore[return-value]
    return ot.cosine_cost(_joint(z1, z2), exclude_self=True)  # type: ignore[return-value]


@COSTS.register(
    "sqeuclidean",
    latex=r"C_{ij} = \|z'_i - z''_j\|^2",
    description="Squared Euclidean distance of the raw (unnormalised) embeddings.",
)
def sqeuclidean(z1: torch.Tensor, z2: torch.Tensor, layout: str) -> torch.Tensor:
    r"""Squared Euclidean cost ``C_ij = ||z'_i - z''_j||^2`` (joint layout: ``C_ii = +inf``)."""
    if layout == "cross":
        return ot.sqeuclidean_cost(z1, z2)  # type: ignore[return-value]
    return ot.sqeuclidean_cost(_joint(z1, z2), exclude_self=True)  # type: ignore[return-value]


# ---------------------------------------------------------------------------- projections


@dataclass(frozen=True, eq=False)  # (compared by identity: == on tensor fields is ambiguous)
class Projection:
    """A plan in potential form ``log P_ij = (f_i + g_j - C_ij) / ε`` and how it was reached.

    ``solver`` is the :class:`gca_viz.ot.SinkhornResult` for iterative projections (its
    errors, ``n_iter`` and ``converged`` are the diagnostics), else ``None``.
    ``log_rows`` is ``log (P 1)_i`` where it is known without a pass over the plan: after
    a hard row step ``P 1 = μ`` exactly (its gradient is zero), else ``None``.
    """

    cost: torch.Tensor  # (n, m)
    log_plan: torch.Tensor  # (n, m)
    f: torch.Tensor  # (n,)
    g: torch.Tensor  # (m,)
    epsilon: float
    solver: ot.SinkhornResult | None = None
    log_rows: torch.Tensor | None = None  # (n,)

    def __repr__(self) -> str:
        """One line: the plan's shape, ``ε``, how it was reached (the solver's own line, or
        one row step) and the tensors' kind (the tensors themselves are fields)."""
        n, m = self.log_plan.shape
        how = repr(self.solver) if self.solver is not None else "one row step"
        kind = f"torch {self.cost.device} {dtype_name(self.cost.dtype)}"
        return f"Projection({n}x{m}, epsilon={self.epsilon:g}, {how}, {kind})"

    def row_sums(self, plan: torch.Tensor | None = None) -> torch.Tensor:
        """``(P 1)_i``, shape ``(n,)`` (from ``plan``, the caller's ``self.plan``, if given)."""
        if self.log_rows is not None:
            return torch.exp(self.log_rows)
        return (self.plan if plan is None else plan).sum(1)

    def log_row_sums(self) -> torch.Tensor:
        """``log (P 1)_i``, shape ``(n,)``."""
        if self.log_rows is not None:
            return self.log_rows
        return torch.logsumexp(self.log_plan, dim=1)

    @property
    def plan(self) -> torch.Tensor:
        return torch.exp(self.log_plan)

    @property
    def log_scores(self) -> torch.Tensor:
        """``(g_j - C_ij) / ε = log(K_ij v_j)``: the plan before its row scaling ``u_i``."""
        return self.log_plan - self.f[:, None] / self.epsilon


def _zeros(n: int, like: torch.Tensor) -> torch.Tensor:
    return torch.zeros(n, dtype=like.dtype, device=like.device)


@PROJECTIONS.register(
    "none",
    params=(EPSILON,),
    latex=r"P = K = e^{-C/\varepsilon}",
    description="No normalisation: B unconstrained (BYOL's view).",
)
def no_projection(
    C: torch.Tensor, mu: torch.Tensor, nu: torch.Tensor, *, epsilon: float
) -> Projection:
    r"""The kernel itself, ``P = K = exp(-C/ε)`` (``f = g = 0``); no constraint set."""
    n, m = C.shape
    return Projection(C, -C / epsilon, _zeros(n, C), _zeros(m, C), epsilon)


@PROJECTIONS.register(
    "row",
    params=(EPSILON,),
    latex=r"P^{(1)} = \mathrm{diag}\!\big(\mu / K\mathbf{1}\big)\, K",
    description="One row normalisation, the KL projection onto C1(μ): InfoNCE's plan.",
)
def row(C: torch.Tensor, mu: torch.Tensor, nu: torch.Tensor, *, epsilon: float) -> Projection:
    r"""``P^(1) = diag(μ / K 1) K``: the first Sinkhorn half-step, ``μ_i softmax_j(-C_ij/ε)``."""
    log_plan, f = ot.row_projection(C, mu, epsilon=epsilon)
    assert isinstance(log_plan, torch.Tensor) and isinstance(f, torch.Tensor)
    return Projection(C, log_plan, f, _zeros(C.shape[1], C), epsilon, log_rows=torch.log(mu))


@PROJECTIONS.register(
    "sinkhorn",
    params=(
        EPSILON,
        N_ITER,
        Param(
            "end",
            "column",
            "Stop after the column step P⁽²ᵀ⁾ or the row step P⁽²ᵀ⁻¹⁾.",
            kind="choice",
            choices=("column", "row"),
        ),
    ),
    latex=r"P^{(2T)} = \mathrm{Sinkhorn}_T(K;\ \mu, \nu)",
    description="T Sinkhorn sweeps: the KL projection onto C1(μ) ∩ C2(ν) (GCA).",
)
def sinkhorn(
    C: torch.Tensor,
    mu: torch.Tensor,
    nu: torch.Tensor,
    *,
    epsilon: float,
    n_iter: int,
    end: str = "column",
) -> Projection:
    r"""``T`` balanced Sinkhorn sweeps from ``K`` (:func:`gca_viz.ot.sinkhorn`).

    ``end="column"`` returns ``P^(2T)``; ``end="row"`` returns ``P^(2T-1) =
    diag(u^(T)) K diag(v^(T-1))``, the plan GCA-RINCE scores (``T = 1`` is ``P^(1)``).
    """
    sweeps = n_iter if end == "column" else n_iter - 1
    res = ot.sinkhorn(C, mu, nu, epsilon=epsilon, n_iter=sweeps) if sweeps > 0 else None
    if end == "column":
        assert res is not None
        return Projection(C, res.log_plan, res.f, res.g, epsilon, res)  # type: ignore[arg-type]
    g = res.g if res is not None else _zeros(C.shape[1], C)
    log_plan, f = ot.row_projection(C, mu, g=g, epsilon=epsilon)
    return Projection(C, log_plan, f, g, epsilon, res, torch.log(mu))  # type: ignore[arg-type]


@PROJECTIONS.register(
    "unbalanced",
    params=(EPSILON, N_ITER, RELAX_A, RELAX_B),
    latex=(
        r"P = \arg\min_P \langle P, C\rangle - \varepsilon H(P)"
        r" + \lambda_1 \mathrm{KL}(P\mathbf{1}\|\mu) + \lambda_2 \mathrm{KL}(P^\top\mathbf{1}\|\nu)"
    ),
    description="T unbalanced Sinkhorn sweeps: soft marginals with KL weights λ₁, λ₂ (GCA-UOT).",
)
def unbalanced(
    C: torch.Tensor,
    mu: torch.Tensor,
    nu: torch.Tensor,
    *,
    epsilon: float,
    n_iter: int,
    relax_a: float | None,
    relax_b: float | None,
) -> Projection:
    r"""``T`` unbalanced Sinkhorn sweeps, ``u <- (μ / K v)^{ρ1}``, ``v <- (ν / K^T u)^{ρ2}``,
    ``ρ = λ / (λ + ε)`` (:func:`gca_viz.ot.sinkhorn` with ``relax_a``, ``relax_b``)."""
    res = ot.sinkhorn(C, mu, nu, epsilon=epsilon, n_iter=n_iter, relax_a=relax_a, relax_b=relax_b)
    return Projection(C, res.log_plan, res.f, res.g, epsilon, res)  # type: ignore[arg-type]
