r"""The last of the four stages of a GCA loss: the matching divergence ``d_M(P_tgt || P)``.

Divergences are registered in :data:`DIVERGENCES`, each with its parameter schema and its
formula as LaTeX (``docs/math.md`` sections 3 and 4). Each takes the target ``T = P_tgt``
and a :class:`~gca_viz.losses.stages.Projection` and returns one value per row; losses
average them over the rows. ``T̂ = diag(T 1)^{-1} T`` is the row-normalised target
(``T̂ = I`` for pairs; the formulas shown in the app write ``P_tgt`` and ``P̂^tgt``, as ``T``
names the number of sweeps there); where every row of ``T`` has a single positive, the
divergences read one entry per row (:func:`_single_positives`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch

from gca_viz._validate import dtype_name, user_stacklevel
from gca_viz.losses.stages import Projection
from gca_viz.registry import Param, Registry

DIVERGENCES = Registry("divergence")
"""Registry of matching divergences ``d_M(P_tgt || P)``, one value per row."""

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


_RINCE_TERMS = {"rince": "RINCE's terms", "uot": "GCA-UOT's RINCE-type terms (its r_2 part)"}
"""What the underflow warning calls the terms of each divergence that has them."""


def rince_underflow(
    q: float, epsilon: float, dtype: torch.dtype = torch.float32, divergence: str = "rince"
) -> str | None:
    r"""Where RINCE's terms underflow ``dtype``, in words, or ``None`` if no cosine cost does.

    ``pos_i^q = exp(-q C_{i,pos(i)}/ε)`` (and ``(λ Z_i)^q`` alike) falls below ``t``, the
    smallest normal number of ``dtype``, when ``C > c* = -ε log(t) / q``; such a pair's term
    and gradient are (nearly) 0. A cosine cost ``C = 1 - cos`` lies in ``[0, 2]``, so this
    says something when ``c* < 2``. Float32: ``-log t ≈ 87.3``; with ``q = 1`` it happens for
    ``ε < 0.023``. Reads no data.

    Args:
        q: the RINCE exponent in ``(0, 1]``. epsilon: ``ε > 0``. dtype: a float dtype.
        divergence: ``"rince"`` or ``"uot"`` (GCA-UOT's terms are its ``r_2`` part), which
            the message names.
    """
    cost = -epsilon * math.log(torch.finfo(dtype).tiny) / q
    if cost >= 2.0:
        return None
    name = dtype_name(dtype)
    return (
        f"{_RINCE_TERMS[divergence]} exp(-q C/ε) underflow {name} for pairs with cosine below "
        f"{1 - cost:.2f} (cost C > {cost:.2f}) at ε = {epsilon:g}, q = {q:g}: those pairs give "
        "no loss and no gradient. Raise ε or lower q (or compute in float64)."
    )


def _rince_term(
    T: torch.Tensor,
    proj: Projection,
    q: float,
    lam: float,
    log_rows: torch.Tensor | None = None,
    divergence: str = "rince",
) -> torch.Tensor:
    """``-pos_i^q / q + (λ_R Z_i)^q / q`` with ``pos_i = sum_j T̂_ij K_ij v_j`` and
    ``Z_i = (K v)_i``, powers taken in log space. ``log_rows = log (P 1)_i`` if known
    (then ``log Z_i = log (P 1)_i - f_i / ε`` costs no pass over the plan); ``divergence``
    names them in the underflow warning (:func:`rince_underflow`)."""
    note = rince_underflow(q, proj.epsilon, proj.f.dtype, divergence)
    if note is not None:  # (warned once per message, Python's default)
        warnings.warn(note, UserWarning, stacklevel=user_stacklevel())
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
    latex=(
        r"\mathrm{KL}(P_{\mathrm{tgt}}\|P) = \sum_{ij} {P^{\mathrm{tgt}}_{ij}"
        r"\log\frac{P^{\mathrm{tgt}}_{ij}}{P_{ij}} - P^{\mathrm{tgt}}_{ij} + P_{ij}}"
    ),  # (P_tgt, not T: T is the number of sweeps; the summand is one group, not wrapped)
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
    latex=r"-\sum_j \hat P^{\mathrm{tgt}}_{ij} \log P_{ij}",
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
    return r1 * nll + r2 * _rince_term(T, proj, q, lam, log_rows, "uot")


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
    latex=r"-\sum_j \hat P^{\mathrm{tgt}}_{ij}\log P_{ij} + \lambda_p \mathrm{KL}(P\|Q)",
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
    latex=r"\sum_j \hat P^{\mathrm{tgt}}_{ij}\, 2 C_{ij}"
    r" = \|\hat z'_i - \hat z''_{\mathrm{pos}(i)}\|^2",
    description="Alignment only: BYOL's 2 - 2 cos on positive pairs (no plan involved).",
)
def l2(T: torch.Tensor, proj: Projection) -> torch.Tensor:
    r"""``sum_j T̂_ij 2 C_ij``: with the cosine cost ``2 C_ij = ||ẑ'_i - ẑ''_j||^2 = 2 - 2 cos``,
    BYOL's loss (Grill et al. 2020); only the alignment term of ``docs/math.md`` section 4."""
    return 2.0 * _weighted(T, proj.cost, normalised=True, positives=_single_positives(T))
