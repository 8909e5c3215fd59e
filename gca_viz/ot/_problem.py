r"""A validated entropic OT problem, in one namespace, with the steps both engines share.

Notation (``docs/math.md`` sections 1, 2 and 8): ``C`` is the ``(n, m)`` cost, ``ε`` the
regulariser, ``μ``, ``ν`` the marginals, ``f``, ``g`` the potentials and
``log P_ij = (f_i + g_j - C_ij) / ε``; a relaxed marginal has KL weight ``λ`` and
``ρ = λ / (λ + ε)`` (``ρ = 1``: a hard marginal).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import torch

from gca_viz.ot._checks import _Checked
from gca_viz.ot._xp import Namespace, wrapped


def _rho(relax: float | None, epsilon: float) -> float:
    return 1.0 if relax is None else relax / (relax + epsilon)


def _log_plan(ns: Namespace, C: Any, f: Any | None, g: Any | None, eps: float) -> Any:
    """``(f_i + g_j - C_ij) / ε``, shape ``(n, m)``, as ``f_i/ε - C_ij/ε + g_j/ε``: one
    pass per term that is there (torch fuses the first two); ``None`` stands for a zero
    potential."""
    if f is None:
        out = ns.scaled(C, -1.0 / eps)
    else:
        out = ns.sub_scaled((f / eps)[:, None], C, 1.0 / eps)
    if g is not None:
        out += (g / eps)[None, :]
    return out


@dataclass(frozen=True)
class _Problem:
    """A validated problem: arrays of namespace ``ns`` (numpy or torch)."""

    ns: Namespace
    C: Any  # (n, m)
    mu: Any  # (n,)
    nu: Any  # (m,)
    eps: float
    rho_a: float
    rho_b: float
    lam_a: float | None
    lam_b: float | None
    checked: _Checked | None = None

    @property
    def needs_grad(self) -> bool:
        """Whether autograd tracks the problem (then no in-place plan, and the fused node):
        reverse mode, or forward mode (``jacfwd``, dual tensors), which ``no_grad`` does not
        turn off (a stretch run on the detached kernel lost its tangents: ``jacfwd`` of a
        plan read 0.07 off ``grad``'s)."""
        if not isinstance(self.C, torch.Tensor):
            return False
        tracked = torch.is_grad_enabled() and any(
            t.requires_grad for t in (self.C, self.mu, self.nu)
        )
        return tracked or self.transformed

    @functools.cached_property  # (read in the loop; the problem's tensors do not change)
    def transformed(self) -> bool:
        """Whether a ``torch.func`` transform (``grad``, ``jacrev``, ``jacfwd``, ...) wraps
        the problem, or it holds dual tensors of ``torch.autograd.forward_ad``:
        then plain autograd operations only (its transforms refuse the fused node and the
        replayed graph, custom ``autograd.Function`` classes without ``setup_context``)."""
        return any(isinstance(t, torch.Tensor) and wrapped(t) for t in (self.C, self.mu, self.nu))

    def log_plan(self, f: Any, g: Any) -> Any:
        """``(f_i + g_j - C_ij) / ε``, see :func:`_log_plan`."""
        return _log_plan(self.ns, self.C, f, g, self.eps)

    def row_target(self, f: Any) -> Any:
        """Row marginal demanded at optimality: ``μ`` (hard) or ``μ exp(-f / λ1)``."""
        return self.mu if self.lam_a is None else self.mu * self.ns.xp.exp(-f / self.lam_a)

    def col_target(self, g: Any) -> Any:
        """Column marginal demanded at optimality: ``ν`` (hard) or ``ν exp(-g / λ2)``."""
        return self.nu if self.lam_b is None else self.nu * self.ns.xp.exp(-g / self.lam_b)

    def scores_rows(self, g: Any) -> Any:
        """``(g_j - C_ij) / ε``, shape ``(n, m)``."""
        return self.ns.sub_scaled((g / self.eps)[None, :], self.C, 1.0 / self.eps)

    def lse_rows(self, g: Any) -> Any:
        """``LSE_j (g_j - C_ij) / ε``, shape ``(n,)``."""
        return self.ns.logsumexp_(self.scores_rows(g), axis=1)

    def lse_cols(self, f: Any) -> Any:
        """``LSE_i (f_i - C_ij) / ε``, shape ``(m,)``."""
        scores = self.ns.sub_scaled((f / self.eps)[:, None], self.C, 1.0 / self.eps)
        return self.ns.logsumexp_(scores, axis=0)

    def row_step(self, lse: Any) -> Any:
        """``f = ρ1 (ε log μ - ε LSE_j (g_j - C_ij)/ε)``, shape ``(n,)``."""
        return self.rho_a * self.eps * (self.ns.xp.log(self.mu) - lse)

    def col_step(self, lse: Any) -> Any:
        """``g = ρ2 (ε log ν - ε LSE_i (f_i - C_ij)/ε)``, shape ``(m,)``."""
        return self.rho_b * self.eps * (self.ns.xp.log(self.nu) - lse)
