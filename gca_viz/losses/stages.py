r"""The four stages of a GCA loss: cost -> target -> projection -> divergence.

Every contrastive loss here is ``divergence(P_tgt, projection(K(cost(z', z''))))``
(``docs/math.md`` sections 2 to 4). Costs, projections and divergences are registered in
:data:`COSTS`, :data:`PROJECTIONS` and :data:`DIVERGENCES` (targets live in
:mod:`gca_viz.targets`), each entry with its parameter schema and its formula as LaTeX.
The named methods of :mod:`gca_viz.losses.methods` are presets of these entries.

Conventions: ``ε`` is the temperature and regulariser, ``K = exp(-C/ε)``, the plan is
``P_ij = exp((f_i + g_j - C_ij)/ε)``, ``T = P_tgt`` and ``T̂ = diag(T 1)^{-1} T`` its
row-normalised version (``T̂ = I`` for pairs). Divergences return one value per row;
losses average them over the rows.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import torch

from gca_viz import ot
from gca_viz.registry import Param, Registry

COSTS = Registry("cost")
"""Registry of cost functions ``(z', z'', layout) -> C``."""
PROJECTIONS = Registry("projection")
"""Registry of proximal steps ``(C, μ, ν) -> plan`` (the constraint set ``B`` and ``d_Γ``)."""
DIVERGENCES = Registry("divergence")
"""Registry of matching divergences ``d_M(P_tgt || P)``, one value per row."""

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
    "Sinkhorn sweeps T (2T half-steps).",
    "T",
    kind="int",
    low=1,
    high=100_000,  # a loss evaluation, not a solve to convergence: bounds a typo like 1e30
    ui=(1, 50),
)
RELAX_A = Param(
    "relax_a",
    0.2,
    "KL weight of the row-marginal penalty (None: a hard constraint).",
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
    "KL weight of the column-marginal penalty (None: a hard constraint).",
    "λ_2",
    low=0.0,
    low_open=True,
    optional=True,
    allow_inf=True,
    ui=(0.001, 100.0),
)
Q = Param(
    "q",
    0.6,
    "RINCE exponent q in (0, 1]; q -> 0 recovers InfoNCE.",
    "q",
    low=0.0,
    low_open=True,
    high=1.0,
)
LAM = Param(
    "lam",
    0.01,
    "RINCE's weight of the partition term (the RINCE paper's λ, not a marginal weight λ₁, λ₂).",
    "λ_R",
    low=0.0,
    ui=(0.0, 1.0),
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


@dataclass(frozen=True)
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
            "Stop after the column step P^(2T) or the row step P^(2T-1).",
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
    log_plan, f = ot.row_projection(C, mu, g, epsilon=epsilon)
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


# ---------------------------------------------------------------------------- divergences


Positives = tuple[torch.Tensor, torch.Tensor]  # (pos, w), (n,) each

_KNOWN: ContextVar[tuple[torch.Tensor, Positives | None] | None] = ContextVar(
    "gca_known_positives", default=None
)


@contextmanager
def known_positives(T: torch.Tensor, positives: Positives | None) -> Iterator[None]:
    """Inside the block the divergences take ``positives`` as :func:`_single_positives` of
    the target ``T`` (this very tensor) instead of finding them, which reads the device
    (``torch.nonzero``): the loss finds them on the host, where it builds the target."""
    token = _KNOWN.set((T, positives))
    try:
        yield
    finally:
        _KNOWN.reset(token)


def _single_positives(T: torch.Tensor) -> Positives | None:
    """``(pos, w)`` when every row of the target has exactly one non-zero entry
    ``T_{i,pos(i)} = w_i`` (the pairs target), else ``None``.

    The divergences then read one entry per row (a gather) instead of masking, multiplying
    and summing ``(n, m)`` matrices forward and backward."""
    known = _KNOWN.get()
    if known is not None and known[0] is T:
        return known[1]
    if T.requires_grad:
        return None
    nz = torch.nonzero(T)  # (k, 2), row-major: one row index per non-zero entry
    if nz.shape[0] != T.shape[0] or not bool(
        (nz[:, 0] == torch.arange(T.shape[0], device=T.device)).all()
    ):
        return None
    pos = nz[:, 1]
    return pos, T[nz[:, 0], pos]


def _row_normalised(T: torch.Tensor) -> torch.Tensor:
    return T / T.sum(1, keepdim=True)  # T̂: each row's positives sum to 1


def _weighted(
    T: torch.Tensor,
    x: torch.Tensor,
    normalised: bool = False,
    positives: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """``sum_j T_ij x_ij`` per row (``T̂`` instead of ``T`` if ``normalised``), with
    ``0 * x = 0`` even where ``x`` is infinite (and no NaN gradient)."""
    if positives is not None:
        pos, w = positives
        picked = x.gather(1, pos[:, None]).squeeze(1)
        return picked if normalised else w * picked
    W = _row_normalised(T) if normalised else T
    return (W * x.masked_fill(T == 0, 0.0)).sum(1)


def _rince_term(
    T: torch.Tensor,
    proj: Projection,
    q: float,
    lam: float,
    log_rows: torch.Tensor | None = None,
) -> torch.Tensor:
    """``-pos_i^q / q + (λ_R Z_i)^q / q`` with ``pos_i = sum_j T̂_ij K_ij v_j`` and
    ``Z_i = (K v)_i``, powers taken in log space. ``log_rows = log (P 1)_i`` if known
    (then ``log Z_i = log (P 1)_i - f_i / ε`` costs no pass over the plan)."""
    positives = _single_positives(T)
    f_eps = proj.f / proj.epsilon  # (n,) log u_i: S_ij = log P_ij - log u_i
    if positives is not None:
        log_pos = proj.log_plan.gather(1, positives[0][:, None]).squeeze(1) - f_eps
    else:
        log_t_hat = torch.log(_row_normalised(T))
        log_pos = torch.logsumexp(proj.log_scores + log_t_hat, dim=1)  # (n,)
    pos_q = torch.exp(q * log_pos) / q
    if lam == 0:
        return -pos_q
    log_rows = proj.log_row_sums() if log_rows is None else log_rows
    log_z = log_rows - f_eps  # log (K v)_i = log (P 1)_i - log u_i
    return -pos_q + torch.exp(q * (math.log(lam) + log_z)) / q


@DIVERGENCES.register(
    "kl",
    latex=(r"\mathrm{KL}(T\|P) = \sum_{ij} T_{ij}\log\frac{T_{ij}}{P_{ij}} - T_{ij} + P_{ij}"),
    description="Generalised KL from the target to the plan (InfoNCE, GCA-INCE).",
)
def kl(T: torch.Tensor, proj: Projection) -> torch.Tensor:
    r"""Per-row generalised KL ``sum_j T_ij log(T_ij / P_ij) - T_ij + P_ij`` (0 log 0 = 0).

    With ``T = I`` and row sums 1 this is ``-log P_ii``: InfoNCE for ``P = P^(1)``."""
    positives = _single_positives(T)
    if positives is not None:  # sum_j T_ij log(T_ij / P_ij) = w_i (log w_i - log P_i,pos(i))
        w = positives[1]
        log_ratio = w * torch.log(w) - _weighted(T, proj.log_plan, positives=positives)
        return log_ratio - w + proj.row_sums()
    return _weighted(T, torch.log(T) - proj.log_plan) - T.sum(1) + proj.row_sums()


@DIVERGENCES.register(
    "ce",
    latex=r"-\sum_j \hat T_{ij} \log P_{ij}",
    description="Cross-entropy of the plan against the target (IOT).",
)
def cross_entropy(T: torch.Tensor, proj: Projection) -> torch.Tensor:
    r"""Per-row cross-entropy ``-sum_j T̂_ij log P_ij`` (``-log P_{i,pos(i)}`` for pairs)."""
    return -_weighted(T, proj.log_plan, normalised=True, positives=_single_positives(T))


@DIVERGENCES.register(
    "rince",
    params=(Q, LAM),
    latex=r"-\frac{\mathrm{pos}_i^{\,q}}{q} + \frac{(\lambda_{\mathrm R} Z_i)^q}{q},\quad"
    r" \mathrm{pos}_i = \sum_j \hat T_{ij} K_{ij} v_j,\ Z_i = (K v)_i",
    description="Robust InfoNCE (Chuang et al. 2022) on the plan's row-step scores.",
)
def rince(T: torch.Tensor, proj: Projection, *, q: float, lam: float) -> torch.Tensor:
    r"""RINCE (Chuang et al., CVPR 2022) in GCA form (``docs/math.md`` section 4).

    .. math::
        L_i = -\frac{\mathrm{pos}_i^{\,q}}{q} + \frac{(\lambda_{\mathrm R} Z_i)^q}{q}, \qquad
        \mathrm{pos}_i = K_{i,\mathrm{pos}(i)} v_{\mathrm{pos}(i)},\quad Z_i = (K v)_i

    where ``v = exp(g/ε)`` is the column scaling of the projected plan: ``v = 1`` for the
    row projection (RINCE), ``v^(t-1)`` for ``P^(2t-1)`` (GCA-RINCE). A non-pair target
    averages the positives, ``pos_i = sum_j T̂_ij K_ij v_j``. With ``K = exp((s - 1)/ε)``
    this equals the RINCE paper's value times ``exp(-q/ε)``.
    """
    return _rince_term(T, proj, q, lam)


@DIVERGENCES.register(
    "uot",
    params=(
        Param("r1", 1.0, "Weight of the KL (InfoNCE-type) term.", "r_1", low=0.0, ui=(0.0, 2.0)),
        Param("r2", 0.2, "Weight of the RINCE-type term.", "r_2", low=0.0, ui=(0.0, 1.0)),
        Q,
        LAM,
    ),
    latex=r"r_1\Big[-\log\frac{P_{i,\mathrm{pos}(i)}}{(P\mathbf{1})_i}\Big]"
    r" + r_2\Big[-\frac{(K_{i,\mathrm{pos}(i)} v_{\mathrm{pos}(i)})^q}{q}"
    r" + \frac{(\lambda_{\mathrm R} (K v)_i)^q}{q}\Big]",
    description="GCA-UOT's loss: a KL term and a RINCE term on the unbalanced plan.",
)
def uot(
    T: torch.Tensor, proj: Projection, *, r1: float, r2: float, q: float, lam: float
) -> torch.Tensor:
    r"""GCA-UOT's loss on the (unbalanced) plan ``P`` (``docs/math.md`` section 4).

    .. math::
        L_i = r_1\Big[-\sum_j \hat T_{ij}\log\frac{P_{ij}}{(P\mathbf 1)_i}\Big]
            + r_2\Big[-\frac{\mathrm{pos}_i^{\,q}}{q}
            + \frac{(\lambda_{\mathrm R} (K v)_i)^q}{q}\Big]

    with ``pos_i = sum_j T̂_ij K_ij v_j`` and ``v = exp(g/ε)`` the plan's column scaling.
    """
    log_rows = proj.log_row_sums()  # log (P 1)_i
    # sum_j T̂_ij = 1, so sum_j T̂_ij log(P_ij / (P 1)_i) = sum_j T̂_ij log P_ij - log (P 1)_i
    positives = _single_positives(T)
    nll = log_rows - _weighted(T, proj.log_plan, normalised=True, positives=positives)
    return r1 * nll + r2 * _rince_term(T, proj, q, lam, log_rows)


@DIVERGENCES.register(
    "ce_uniform",
    params=(
        Param(
            "lam_p",
            0.2,
            "Weight of IOT-uni's KL(P || Q), which spreads off-diagonal mass evenly.",
            "λ_p",
            low=0.0,
            ui=(0.0, 1.0),
        ),
    ),
    latex=r"-\sum_j \hat T_{ij}\log P_{ij} + \lambda_p \mathrm{KL}(P\|Q)",
    description="IOT-uni: cross-entropy plus a KL pulling off-diagonal mass to uniform.",
)
def ce_uniform(T: torch.Tensor, proj: Projection, *, lam_p: float) -> torch.Tensor:
    r"""IOT-uni (Shi et al., ICML 2023): ``-sum_j T̂_ij log P_ij + λ_p KL(P || Q)_i``.

    ``Q`` is ``P`` with every off-diagonal entry replaced by the mean off-diagonal value
    ``e^L`` of ``P``; the KL is split over rows. Its diagonal terms vanish (``Q_ii = P_ii``),
    so with ``c_i`` the number of off-diagonal entries of row ``i``

    .. math::
        \mathrm{KL}_i = \sum_{j \ne i} P_{ij} \log P_{ij} - (L + 1) \sum_{j \ne i} P_{ij}
            + c_i e^L,

    formed from the row sums of ``P log P`` and ``P`` less their diagonal entries (about
    half the passes over the plan of building ``Q``). ``L`` is a log-sum-exp over the
    off-diagonal entries (the plain mean can underflow to 0)."""
    lp = proj.log_plan  # (n, m)
    n, m = lp.shape
    k = min(n, m)
    idx = torch.arange(k, device=lp.device)
    lp_diag = lp[idx, idx]  # (k,)
    hidden = lp.diagonal_scatter(torch.full_like(lp_diag, -math.inf))  # the diagonal at -inf
    log_mean_off = torch.logsumexp(hidden.reshape(-1), dim=0) - math.log(n * m - k)
    p_diag = torch.exp(lp_diag)
    # 0 * log 0 = 0 with no NaN gradient: mask the -inf logs before multiplying
    diag_plogp = p_diag * lp_diag.masked_fill(p_diag == 0, 0.0)

    def off_diagonal(row_total: torch.Tensor, diag: torch.Tensor) -> torch.Tensor:
        return row_total - torch.nn.functional.pad(diag, (0, n - k))  # rows >= k: no diagonal

    P = proj.plan  # (one exp pass)
    off_plogp = off_diagonal(_weighted(P, lp), diag_plogp)
    off_mass = off_diagonal(proj.row_sums(P), p_diag)
    n_off = off_diagonal(
        torch.full((n,), float(m), dtype=lp.dtype, device=lp.device), torch.ones_like(p_diag)
    )
    kl_rows = off_plogp - (log_mean_off + 1.0) * off_mass + n_off * torch.exp(log_mean_off)
    return cross_entropy(T, proj) + lam_p * kl_rows


@DIVERGENCES.register(
    "l2",
    latex=r"\sum_j \hat T_{ij}\, 2 C_{ij} = \|\hat z'_i - \hat z''_{\mathrm{pos}(i)}\|^2",
    description="Alignment only: BYOL's 2 - 2 cos on positive pairs (no plan involved).",
)
def l2(T: torch.Tensor, proj: Projection) -> torch.Tensor:
    r"""``sum_j T̂_ij 2 C_ij``: with the cosine cost ``2 C_ij = ||ẑ'_i - ẑ''_j||^2 = 2 - 2 cos``,
    BYOL's loss (Grill et al. 2020); only the alignment term of ``docs/math.md`` section 4."""
    return 2.0 * _weighted(T, proj.cost, normalised=True, positives=_single_positives(T))
