r"""Sweeps over ``ε``, and the measures of a plan they share with the sweep over the number
of sweeps ``T`` (:mod:`gca_viz.lab.iterations`): what the entropy page plots.

For an ``(n, m)`` cost ``C`` and target ``P_tgt`` (marginals ``μ = P_tgt 1``,
``ν = P_tgt^T 1``), the entropic plan ``P_ε`` moves from the exact plan ``P*_0``
(``ε -> 0``, sparse) to the kernel's spread (``ε`` large), and Sinkhorn converges linearly
with a rate that tends to 1 as ``ε -> 0`` (``docs/math.md`` sections 2 and 6).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from gca_viz import metrics, ot, targets
from gca_viz.lab._checks import cost_tensor, count, positive, single_threaded, target_tensor
from gca_viz.lab.plans import generalized_kl

SPARSITY_LATEX = (
    r"\begin{gathered}"
    r"H = -\sum_{ij} p_{ij}\log p_{ij},\quad p = \frac{P}{\sum P};\qquad"
    r" d = \Big\|\frac{P}{\sum P} - \frac{P^{\star}_{0}}{\sum P^{\star}_{0}}\Big\|_1 \\"
    r" \mathrm{top}_n = \frac{\text{mass of the } n \text{ largest } P_{ij}}{\sum P};\qquad"
    r" \mathrm{support} = \frac{\#\{P_{ij} \ge 10^{-3}\max P\}}{nm}"
    r"\end{gathered}"
)
"""Plan entropy, the two sparsity measures and the distance to the exact plan ``P*_0``."""

CONTRACTION_LATEX = (
    r"\frac{e_{t+1}}{e_t} \to \kappa,\quad e_t = \frac{\|P^{(2t)}\mathbf 1 - \mu\|_1}{\sum\mu};"
    r"\quad \kappa_{\mathrm{bal}} \lesssim \tanh^2\!\Big(\frac{\max C - \min C}{2\varepsilon}\Big),"
    r"\quad \kappa_{\mathrm{unbal}} = \rho_1\rho_2,\ \rho = \frac{\lambda}{\lambda + \varepsilon}"
)
"""Linear convergence of Sinkhorn: measured rate, rough balanced bound, and the unbalanced
asymptotic rate ``ρ1 ρ2`` (a constant shift of the potentials changes the mass and decays at
exactly that rate; the kernel's other modes decay faster)."""

_RATE_TOL = {torch.float64: 1e-11, torch.float32: 1e-5}

MEASURABLE_RATE = 1e-3
"""A contraction rate per sweep below which the measured one reads the rounding floor."""

SUPPORT_THRESHOLD = 1e-3
"""Entries at least this fraction of the largest entry count as the plan's support."""


def top_mass(plan: Any) -> float:
    """Sparsity: the fraction of the mass on the ``n`` largest entries of an ``(n, m)`` plan
    (1 for a permutation plan, about ``1/m`` for a uniform one)."""
    P = np.asarray(plan, dtype=float)
    k = P.shape[0]
    flat = P.ravel()
    return float(np.partition(flat, flat.size - k)[flat.size - k :].sum() / flat.sum())


def support_fraction(plan: Any) -> float:
    """The fraction of entries at least :data:`SUPPORT_THRESHOLD` times the largest entry."""
    P = np.asarray(plan, dtype=float)
    return float((P >= SUPPORT_THRESHOLD * P.max()).mean())


def l1_distance(plan: Any, reference: Any) -> float:
    """``|| P / sum P - R / sum R ||_1`` in ``[0, 2]``: how far two plans' mass lies apart."""
    P, R = np.asarray(plan, dtype=float), np.asarray(reference, dtype=float)
    return float(np.abs(P / P.sum() - R / R.sum()).sum())


def rough_contraction(cost: Any, epsilon: float) -> float:
    """The rough balanced rate ``tanh^2((max C - min C) / (2ε))`` (finite entries of ``C``).

    A bound from Birkhoff's contraction theorem (``docs/math.md`` section 2), usually far
    above the measured rate; it shows the trend: it tends to 1 as ``ε -> 0``."""
    C = np.asarray(cost, dtype=float)
    finite = C[np.isfinite(C)]
    return float(np.tanh((finite.max() - finite.min()) / (2 * positive(epsilon, "epsilon"))) ** 2)


def log_epsilons(low: float, high: float, num: int) -> np.ndarray:
    """``num`` log-spaced values of ``ε`` from ``low`` to ``high`` (``0 < low < high``).

    Raises:
        ValueError: naming ``eps_min``, ``eps_max`` or ``num``."""
    lo, hi = positive(low, "eps_min"), positive(high, "eps_max")
    if hi <= lo:
        raise ValueError(f"eps_max must be larger than eps_min, got {hi:g} <= {lo:g}")
    return np.geomspace(lo, hi, count(num, "num", 2))


COLUMN_LABELS: dict[str, str] = {
    "epsilon": "ε",
    "T": "T (sweeps)",
    "entropy": "entropy H(P)",
    "top_n_mass": "top-n mass",
    "support_fraction": "support (share)",
    "l1_to_exact": "‖P − P*₀‖₁",
    "l1_to_converged": "‖P − P_ε‖₁",
    "relative_marginal_error": "marginal error (rel.)",
    "iterations_to_tol": "sweeps to tolerance",
    "contraction_measured": "rate (measured)",
    "contraction_rough_prediction": "rate (rough bound)",
    "contraction_unbalanced_measured": "rate, unbalanced",
    "rho1_rho2": "ρ₁ρ₂",
    "ince": "INCE",
    "gca_ince": "GCA-INCE",
}
"""A reader's label of each column of the sweeps' tables (the CSV keeps the keys), short
enough that Entropy's thirteen columns fit a laptop's page (with the longer labels its last
column was cut at 1440 px; "rate" is the contraction rate per sweep); ``gca_ince_T<n>`` is
labelled by :func:`column_label`."""


def column_label(key: str) -> str:
    """The label a page shows for the sweep table's column ``key`` (:data:`COLUMN_LABELS`)."""
    if key.startswith("gca_ince_T"):
        return f"GCA-INCE (T = {key.removeprefix('gca_ince_T')})"
    return COLUMN_LABELS.get(key, key)


@dataclass(frozen=True, eq=False)
class EpsilonSweep:
    """Plan diagnostics over ``ε`` (see :func:`sweep_epsilon`); arrays of ``(len(ε),)``.

    ``entropy``, ``top_mass``, ``support``, ``distance`` describe the converged plan
    ``P_ε`` (the run to tolerance); ``iterations`` is the number of sweeps to tolerance
    (``nan`` if ``max_iter`` did not suffice); ``contraction`` the measured balanced rate,
    ``predicted`` the rough bound; ``contraction_unbalanced`` and ``rho`` (``ρ1 ρ2``) the
    unbalanced ones; ``ince`` and ``gca_ince`` the losses ``KL(P_tgt || P^(1))/n`` and
    ``KL(P_tgt || P^(2T))/n``; ``errors[k]`` the relative marginal error after each sweep.
    ``n_rows``, ``n_cols``: the plan's shape; ``exact_entropy``: entropy of ``P*_0``.
    """

    epsilons: np.ndarray
    entropy: np.ndarray
    top_mass: np.ndarray
    support: np.ndarray
    distance: np.ndarray
    iterations: np.ndarray
    contraction: np.ndarray
    predicted: np.ndarray
    contraction_unbalanced: np.ndarray
    rho: np.ndarray
    ince: np.ndarray
    gca_ince: np.ndarray
    errors: tuple[np.ndarray, ...]
    n_rows: int
    n_cols: int
    exact_entropy: float
    n_iter: int
    tol: float
    max_iter: int

    def unbalanced_gap(self, floor: float = MEASURABLE_RATE) -> float | None:
        """The largest ``|κ_measured / ρ1ρ2 - 1|`` over the ``ε`` where the unbalanced rate
        is measurable (both above ``floor``: below it the error reaches rounding in a few
        sweeps and the ratio measures the rounding, 1.25e-4 against ``ρ1ρ2 = 2.5e-7`` at
        ``λ = 0.001``, ``ε = 2``); ``None`` where none is."""
        measured, rho = np.asarray(self.contraction_unbalanced), np.asarray(self.rho)
        ok = np.isfinite(measured) & (measured > floor) & (rho > floor)
        if not ok.any():
            return None
        return float(np.max(np.abs(measured[ok] / rho[ok] - 1)))

    def columns(self) -> dict[str, np.ndarray]:
        """The table of the sweep, one column per quantity (for display and CSV)."""
        return {
            "epsilon": self.epsilons,
            "entropy": self.entropy,
            "top_n_mass": self.top_mass,
            "support_fraction": self.support,
            "l1_to_exact": self.distance,
            "iterations_to_tol": self.iterations,
            "contraction_measured": self.contraction,
            "contraction_rough_prediction": self.predicted,
            "contraction_unbalanced_measured": self.contraction_unbalanced,
            "rho1_rho2": self.rho,
            "ince": self.ince,
            f"gca_ince_T{self.n_iter}": self.gca_ince,
        }


def to_csv(columns: Mapping[str, np.ndarray]) -> str:
    """A table of equal-length columns as CSV text (full float precision)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in zip(*columns.values(), strict=True):
        writer.writerow([repr(float(v)) for v in row])
    return out.getvalue()


def _relative_errors(res: ot.SinkhornResult, mass: float) -> np.ndarray:
    """The solver's per-sweep errors ``||P^(2t) 1 - μ||_1`` divided by ``sum μ``."""
    errors: np.ndarray = torch.as_tensor(res.errors).double().numpy() / mass
    return errors


@single_threaded
def sweep_epsilon(
    cost: Any,
    epsilons: Sequence[float] | np.ndarray,
    *,
    target: Any = None,
    n_iter: int = 10,
    tol: float = 1e-6,
    max_iter: int = 1000,
    relax_a: float = 0.2,
    relax_b: float = 0.2,
    dtype: torch.dtype = torch.float64,
) -> EpsilonSweep:
    r"""How the entropic plan, Sinkhorn's convergence and the losses depend on ``ε``.

    For each ``ε``: Sinkhorn runs (at most ``max_iter`` sweeps) until the relative
    marginal error ``e_t = ||P^(2t) 1 - μ||_1 / sum μ`` is far below ``tol``; the first
    ``t`` with ``e_t <= tol`` is the number of sweeps to tolerance. Its plan ``P_ε`` gives
    the entropy, sparsity and ``L1`` distance to the exact plan ``P*_0``
    (:func:`gca_viz.ot.exact_ot`; :data:`SPARSITY_LATEX`); its errors give the measured
    contraction (median ratio ``e_{t+1}/e_t`` over the second half of the sweeps), shown
    next to the rough bound ``tanh^2(range(C)/2ε)``. An unbalanced run (``λ1, λ2``) measures
    its rate against its asymptotic rate ``ρ1 ρ2``. The losses are ``KL(P_tgt || P^(1))/n``
    (INCE) and ``KL(P_tgt || P^(2T))/n`` (GCA-INCE with ``T = n_iter``).

    Args:
        cost: ``(n, m)`` cost. epsilons: the values of ``ε > 0``.
        target: ``(n, m)`` target (default identity); ``μ = P_tgt 1``, ``ν = P_tgt^T 1``.
        n_iter: ``T`` of GCA-INCE. tol: relative tolerance ``> 0``.
        max_iter: sweep cap. relax_a, relax_b: ``λ1, λ2 > 0``. dtype: solver dtype.

    Returns:
        An :class:`EpsilonSweep`.
    """
    eps_values = np.asarray(epsilons, dtype=float).ravel()
    if eps_values.size == 0:
        raise ValueError("epsilons must hold at least one value")
    for e in eps_values:
        positive(e, "epsilons")
    T_sweeps, cap = count(n_iter, "n_iter"), count(max_iter, "max_iter")
    rel_tol = positive(tol, "tol")
    lam_a, lam_b = positive(relax_a, "relax_a"), positive(relax_b, "relax_b")
    C = cost_tensor(cost, dtype)
    P_tgt = target_tensor(target, C)
    mu, nu = targets.target_marginals(P_tgt)
    mass = float(mu.sum())
    exact = np.asarray(ot.exact_ot(C.double(), mu.double(), nu.double()))
    # Runs continue below ``tol`` (to the rate tolerance) so that the rates are measured in
    # the asymptotic regime; the sweeps to ``tol`` are read off the error sequence.
    rate_tol = min(rel_tol, _RATE_TOL[C.dtype]) * mass
    rows: list[dict[str, float]] = []
    errors = []
    for eps in eps_values:
        res = ot.sinkhorn(C, mu, nu, epsilon=eps, n_iter=cap, tol=rate_tol)
        unb = ot.sinkhorn(
            C, mu, nu, epsilon=eps, n_iter=cap, tol=rate_tol, relax_a=lam_a, relax_b=lam_b
        )
        short = ot.sinkhorn(C, mu, nu, epsilon=eps, n_iter=T_sweeps)  # P^(2T)
        log_p1, _ = ot.row_projection(C, mu, epsilon=eps)  # P^(1)
        errors.append(_relative_errors(res, mass))
        reached = np.flatnonzero(errors[-1] <= rel_tol)
        plan = np.asarray(res.plan, dtype=float)
        rows.append(
            {
                "entropy": metrics.plan_entropy(plan),
                "top_mass": top_mass(plan),
                "support": support_fraction(plan),
                "distance": l1_distance(plan, exact),
                "iterations": float(reached[0] + 1) if reached.size else math.nan,
                "contraction": res.contraction,
                "predicted": rough_contraction(C, eps),
                "contraction_unbalanced": unb.contraction,
                "rho": unb.rho[0] * unb.rho[1],
                "ince": float(generalized_kl(P_tgt, log_p1, log_input=True)),
                "gca_ince": float(generalized_kl(P_tgt, short.log_plan, log_input=True)),
            }
        )
    return EpsilonSweep(
        epsilons=eps_values,
        **{k: np.array([r[k] for r in rows]) for k in rows[0]},
        errors=tuple(errors),
        n_rows=int(C.shape[0]),
        n_cols=int(C.shape[1]),
        exact_entropy=metrics.plan_entropy(exact),
        n_iter=T_sweeps,
        tol=rel_tol,
        max_iter=cap,
    )
