r"""The sweep over the number of Sinkhorn sweeps ``T`` at one ``ε``: how ``P^(2T)``
approaches the entropic plan ``P_ε`` (and, through it, the exact plan ``P*_0``) and how the
loss settles, with captions measured on it (the entropy page's "More sweeps at ε").
The shared measures of a plan are :mod:`gca_viz.lab.sweeps`'.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from gca_viz import metrics, ot, targets
from gca_viz.lab._checks import cost_tensor, count, positive, single_threaded, target_tensor
from gca_viz.lab.plans import generalized_kl, half_steps
from gca_viz.lab.sweeps import l1_distance, support_fraction, top_mass

CONVERGED_L1 = 1e-6
"""An L1 distance to ``P_ε`` (of normalised plans) at or below which the plan has converged."""
EARLY_SWEEPS = 3
""""The first few sweeps" in :meth:`IterationSweep.describe`."""


@dataclass(frozen=True, eq=False)
class IterationSweep:
    """Plan diagnostics over the number of sweeps ``T`` (see :func:`sweep_iterations`).

    Arrays of ``(len(iterations),)`` describe ``P^(2T)``: ``entropy``, ``top_mass``,
    ``support``, ``distance_exact`` (to ``P*_0``), ``distance_converged`` (to the entropic
    plan ``P_ε`` run to convergence), ``marginal_error`` (relative row error; the column
    marginal holds after a column step) and ``gca_ince`` (``KL(P_tgt || P^(2T))/n``).
    ``ince`` is the INCE loss (``T = 1/2``), ``converged_loss`` the loss at convergence.
    ``bias`` is ``||P_ε - P*_0||_1``, ε's entropic bias, the distance to ``P*_0`` that no
    number of sweeps removes (measured on the reference run, so only as good as it:
    ``reference_converged`` says whether it reached its tolerance in ``reference_sweeps``,
    ``reference_error`` gives its relative marginal error; at a small ``ε`` it stops at its
    cap first).
    """

    iterations: np.ndarray
    entropy: np.ndarray
    top_mass: np.ndarray
    support: np.ndarray
    distance_exact: np.ndarray
    distance_converged: np.ndarray
    marginal_error: np.ndarray
    gca_ince: np.ndarray
    ince: float
    converged_loss: float
    epsilon: float
    bias: float
    reference_error: float
    reference_sweeps: int
    reference_converged: bool

    def describe(self) -> tuple[str, str]:
        """What the sweep shows, in words measured on it: ``(distances, loss)``, the
        captions of its two charts. A fixed text ("shrinks geometrically", "most of the
        gain in the first few sweeps") was false at a small ``ε``, where 100 sweeps leave
        the plan far from ``P_ε``."""
        its, far = self.iterations, self.distance_converged
        first, last = int(its[0]), int(its[-1])
        converged = far[-1] <= CONVERGED_L1
        distances = (
            f"The distance to P_ε falls from {far[0]:.2g} at T = {first} to {far[-1]:.1g} at "
            f"T = {last}: the plan has converged, and its distance to P*₀ "
            f"({self.distance_exact[-1]:.2g}) is ε's entropic bias."
            if converged
            else f"The distance to P_ε falls from {far[0]:.2g} at T = {first} to "
            f"{far[-1]:.2g} at T = {last}: the plan is still moving (converged means within "
            f"{CONVERGED_L1:g} of P_ε), as at ε = {self.epsilon:g} Sinkhorn converges slowly. "
            + self._exact_words()
        )
        total = self.ince - self.converged_loss  # the gain of converging, >= 0
        if not total > 0:
            return distances, "INCE is already the converged loss here: sweeps gain nothing."
        reached = (self.ince - self.gca_ince) / total  # (len(its),) share of the gain
        early = its <= EARLY_SWEEPS
        left = self.gca_ince[-1] - self.converged_loss
        loss = (
            f"Each sweep lowers the loss; {reached[early][-1]:.0%} of the gain comes in the "
            f"first {int(its[early][-1])} sweeps"
            if early.any()
            else "Each sweep lowers the loss"
        ) + (
            (
                f", and by T = {last} the loss has settled (within 0.1% of its gain)"
                + ("." if converged else ", while the plan still moves: the loss settles first.")
            )
            if left <= 1e-3 * total
            else f"; by T = {last} it has made {reached[-1]:.0%} of the way to the converged "
            f"loss, {left:.2g} nats still to go."
        )
        return distances, loss

    def _exact_words(self) -> str:
        """The distance to ``P*_0`` of a plan still moving: how much of it is ε's bias
        (the caption called all of it bias, "which no number of sweeps removes", at
        ``ε = 0.01``, where the bias was 0.00095 of a distance of 0.0025 that the sweeps
        were still lowering)."""
        now, bias = self.distance_exact[-1], self.bias
        moving = self.distance_exact[0] - now > 0.1 * now  # the sweeps still lower it
        # ("stays near 0.89, of which 0.89 is ε's entropic bias" read as a template fault)
        share = (
            "almost all of it"
            if f"{bias:.2g}" == f"{now:.2g}" or bias >= 0.95 * now
            else f"{bias:.2g} of it"
        )
        words = (
            f"The distance to P*₀ {'falls to' if moving else 'stays near'} {now:.2g}"
            + (f" by T = {int(self.iterations[-1])}" if moving else "")
            + f": {share} is ε's entropic bias (the distance of P_ε, the "
            "converged plan, to P*₀), which no number of sweeps removes"
            + ("; more sweeps remove the rest." if moving and now > 1.5 * bias else ".")
        )
        if not self.reference_converged:
            words += (
                f" (P_ε here is Sinkhorn stopped after {self.reference_sweeps} sweeps, "
                f"{self.reference_error:.1g} off its marginals: at this ε even that has not "
                "converged.)"
            )
        return words

    def columns(self) -> dict[str, np.ndarray]:
        """The table of the sweep, one column per quantity (for display and CSV)."""
        return {
            "T": self.iterations.astype(float),
            "entropy": self.entropy,
            "top_n_mass": self.top_mass,
            "support_fraction": self.support,
            "l1_to_exact": self.distance_exact,
            "l1_to_converged": self.distance_converged,
            "relative_marginal_error": self.marginal_error,
            "gca_ince": self.gca_ince,
        }


@single_threaded
def sweep_iterations(
    cost: Any,
    epsilon: float,
    iterations: Sequence[int] | np.ndarray,
    *,
    target: Any = None,
    max_iter: int = 20_000,
    dtype: torch.dtype = torch.float64,
) -> IterationSweep:
    r"""How ``P^(2T)`` approaches the entropic plan as the number of sweeps ``T`` grows.

    One run of :func:`gca_viz.lab.half_steps` up to ``max(iterations)`` sweeps gives every
    ``P^(2T)`` and its loss; a Sinkhorn run (to relative tolerance ``1e-12`` or ``max_iter``
    sweeps: 0.2 s at ``n = 48``, enough at ``ε >= 0.05``) gives the converged ``P_ε``.
    Distances are ``|| P/sum P - R/sum R ||_1``.

    Args:
        cost: ``(n, m)`` cost. epsilon: ``ε > 0``. iterations: the values ``T >= 1``.
        target: ``(n, m)`` target (default identity). max_iter: cap of the converged run.
        dtype: solver dtype.

    Returns:
        An :class:`IterationSweep`.
    """
    eps = positive(epsilon, "epsilon")
    its_int = np.array([count(t, "iterations") for t in np.asarray(iterations).ravel().tolist()])
    if its_int.size == 0:
        raise ValueError("iterations must hold at least one value")
    C = cost_tensor(cost, dtype)
    P_tgt = target_tensor(target, C)
    mu, nu = targets.target_marginals(P_tgt)
    mass = float(mu.sum())
    exact = np.asarray(ot.exact_ot(C.double(), mu.double(), nu.double()))
    conv = ot.sinkhorn(
        C,
        mu,
        nu,
        epsilon=eps,
        n_iter=count(max_iter, "max_iter"),
        tol=1e-12 * mass if dtype == torch.float64 else 1e-6 * mass,
    )
    ref = np.asarray(conv.plan, dtype=float)
    steps = half_steps(C, P_tgt, eps, int(its_int.max()), dtype)  # P^(0) .. P^(2 max T)
    plans = [np.asarray(steps.plans[2 * t], dtype=float) for t in its_int]  # P^(2T)
    mu_np = mu.double().numpy()

    def row_error(p: np.ndarray) -> float:  # ||P 1 - μ||_1 / Σμ
        return float(np.abs(p.sum(1) - mu_np).sum() / mass)

    return IterationSweep(
        iterations=its_int,
        entropy=np.array([metrics.plan_entropy(p) for p in plans]),
        top_mass=np.array([top_mass(p) for p in plans]),
        support=np.array([support_fraction(p) for p in plans]),
        distance_exact=np.array([l1_distance(p, exact) for p in plans]),
        distance_converged=np.array([l1_distance(p, ref) for p in plans]),
        marginal_error=np.array([row_error(p) for p in plans]),
        gca_ince=steps.kl[2 * its_int],
        ince=float(steps.kl[1]),
        converged_loss=float(generalized_kl(P_tgt, conv.log_plan, log_input=True)),
        epsilon=eps,
        bias=l1_distance(ref, exact),
        reference_error=row_error(ref),
        reference_sweeps=int(conv.n_iter),
        reference_converged=bool(conv.converged),
    )
