"""Tests for ``gca_viz.ot``: the entropic Sinkhorn solver, exact OT and the cost matrices.

What is checked (``docs/math.md`` sections 1, 2, 4 and 8; ``style.md`` point 11):

* agreement with POT as an oracle (balanced log-domain Sinkhorn, unbalanced entropic Sinkhorn);
* marginals, monotone marginal error, early stopping;
* limiting cases: the first half-step is InfoNCE, ``λ -> inf`` is balanced, ``ε -> 0`` is
  exact OT (itself checked against brute force and POT's network simplex);
* the two engines (``absorb`` and ``log``) agree iterate by iterate, including the
  absorption and underflow-recovery branches;
* the measured contraction rate of unbalanced Sinkhorn is ``ρ1 ρ2``;
* finite plans and gradients at ``ε = 1e-3`` in float32; gradients vs finite differences;
* types in = types out, result properties, and one ``ValueError`` per invalid input.

POT is imported as ``pot`` so that its name does not clash with ``gca_viz.ot``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import ot as pot
import pytest
import torch

from gca_viz import ot as gca_ot
from gca_viz.ot import (
    SinkhornResult,
    _absorb,
    _loop,
    _xp,
    cosine_cost,
    exact_ot,
    row_projection,
    sinkhorn,
    sqeuclidean_cost,
)
from gca_viz.ot._xp import TORCH_HOST as TORCH
from gca_viz.ot._xp import device_path

F64 = torch.float64
F32 = torch.float32


# ------------------------------------------------------------------------------- helpers


def _points(rng: np.random.Generator, n: int, d: int = 5) -> np.ndarray:
    return rng.standard_normal((n, d))


def _marginal(rng: np.random.Generator, n: int, uniform: bool, mass: float = 1.0) -> np.ndarray:
    if uniform:
        return np.full(n, mass / n)
    w = rng.uniform(0.5, 1.5, n)
    return mass * w / w.sum()


def _problem(
    n: int, m: int, uniform: bool, seed: int, d: int = 5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cosine cost of random points (values in [0, 2]) and probability marginals, float64."""
    rng = np.random.default_rng(seed)
    C = cosine_cost(_points(rng, n, d), _points(rng, m, d))
    return C, _marginal(rng, n, uniform), _marginal(rng, m, uniform)


def _seed(*parts: object) -> int:
    """A stable seed from test parameters (``hash`` of a str is salted per process)."""
    return sum((i + 1) * ord(c) for i, c in enumerate(repr(parts))) % (2**31)


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=1, keepdim=True)


@pytest.fixture
def engine_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, int]]:
    """Count calls of the absorbing engine's absorption and underflow-recovery branches."""
    counts = {"absorb": 0, "recover_rows": 0, "recover_cols": 0}
    for name in counts:
        original = getattr(gca_ot._AbsorbState, name)

        def spy(self: object, _original: object = original, _name: str = name) -> None:
            counts[_name] += 1
            _original(self)  # type: ignore[operator]

        monkeypatch.setattr(gca_ot._AbsorbState, name, spy)
    yield counts


# ------------------------------------------------------------------ 1. POT as the oracle

SHAPES = [(6, 6), (20, 13), (40, 40)]
EPSILONS = [1.0, 0.1, 0.01]

# Uniform square problems at ε = 0.01 are left out of the converged comparison: their exact
# optimum is a degenerate vertex (a permutation) and Sinkhorn needs > 1e5 sweeps to reach
# 1e-13 there. They are covered by the fixed-iteration, iterate-by-iterate comparison below.
BALANCED_CASES = [
    pytest.param(shape, eps, uniform, id=f"{shape[0]}x{shape[1]}-eps{eps}-{kind}")
    for shape in SHAPES
    for eps in EPSILONS
    for uniform, kind in ((True, "uniform"), (False, "nonuniform"))
    if not (uniform and eps == 0.01 and shape[0] == shape[1])
]


@pytest.mark.parametrize(("shape", "eps", "uniform"), BALANCED_CASES)
def test_balanced_matches_pot_at_convergence(
    shape: tuple[int, int], eps: float, uniform: bool
) -> None:
    C, a, b = _problem(*shape, uniform, seed=_seed("bal", shape, uniform))
    res = sinkhorn(C, a, b, epsilon=eps, tol=1e-13, n_iter=50_000)
    assert res.converged
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # POT's L2 column residual may never reach 1e-15; cap its sweeps at 10x ours
        ref = pot.sinkhorn(
            a, b, C, eps, method="sinkhorn_log", numItermax=10 * res.n_iter + 100, stopThr=1e-15
        )
    np.testing.assert_allclose(ref.sum(0), b, atol=1e-12)  # the oracle converged too
    np.testing.assert_allclose(res.plan, ref, rtol=0, atol=1e-8)


@pytest.mark.parametrize(
    ("shape", "uniform"), [((6, 6), True), ((40, 40), True), ((20, 13), False)]
)
@pytest.mark.parametrize("n_iter", [1, 7, 60])
def test_balanced_iterates_match_pot(shape: tuple[int, int], uniform: bool, n_iter: int) -> None:
    """After exactly ``T`` sweeps our plan equals POT's, also far from convergence (ε = 0.01).

    POT's log-domain loop updates the column potential first; on the transposed problem
    ``(b, a, C^T)`` it performs our row-first sweeps, so its transposed plan is ``P^(2T)``."""
    C, a, b = _problem(*shape, uniform, seed=_seed("iter", shape, uniform))
    res = sinkhorn(C, a, b, epsilon=0.01, n_iter=n_iter)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = pot.sinkhorn(b, a, C.T, 0.01, method="sinkhorn_log", numItermax=n_iter, stopThr=0)
    assert res.n_iter == n_iter
    np.testing.assert_allclose(res.plan, ref.T, rtol=0, atol=1e-10)


UNBALANCED_CASES = [
    pytest.param(shape, eps, uniform, id=f"{shape[0]}x{shape[1]}-eps{eps}-{kind}")
    for shape in SHAPES
    for eps in EPSILONS
    for uniform, kind in ((True, "uniform"), (False, "nonuniform"))
]


def _pot_unbalanced(
    a: np.ndarray, b: np.ndarray, C: np.ndarray, eps: float, reg_m: tuple[float, float]
) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pot.unbalanced.sinkhorn_unbalanced(
            a, b, C, eps, reg_m=reg_m, reg_type="entropy", numItermax=50_000, stopThr=1e-15
        )


@pytest.mark.parametrize(("shape", "eps", "uniform"), UNBALANCED_CASES)
def test_unbalanced_matches_pot_at_convergence(
    shape: tuple[int, int], eps: float, uniform: bool
) -> None:
    C, a, b = _problem(*shape, uniform, seed=_seed("unb", shape, uniform))
    b = 1.3 * b  # unequal masses: only a relaxed problem makes sense
    res = sinkhorn(C, a, b, epsilon=eps, relax_a=0.5, relax_b=2.0, tol=1e-13, n_iter=50_000)
    assert res.converged
    ref = _pot_unbalanced(a, b, C, eps, (0.5, 2.0))
    np.testing.assert_allclose(res.plan, ref, rtol=0, atol=1e-8)


@pytest.mark.parametrize("eps", EPSILONS)
def test_one_sided_unbalanced_matches_pot(eps: float) -> None:
    """Only the row marginal relaxed: POT takes ``reg_m = (λ1, inf)`` as a hard column."""
    C, a, b = _problem(20, 13, False, seed=_seed("one-sided", eps))
    b = 1.3 * b
    res = sinkhorn(C, a, b, epsilon=eps, relax_a=0.5, tol=1e-13, n_iter=50_000)
    assert res.converged
    ref = _pot_unbalanced(a, b, C, eps, (0.5, float("inf")))
    np.testing.assert_allclose(res.plan, ref, rtol=0, atol=1e-8)
    np.testing.assert_allclose(res.col_marginal, b, atol=1e-12)  # the hard side is exact


# ------------------------------------------------------- 2. marginals and convergence


@pytest.mark.parametrize(("shape", "eps"), [((6, 6), 0.1), ((20, 13), 0.05), ((40, 40), 1.0)])
@pytest.mark.parametrize("method", ["absorb", "log"])
def test_balanced_marginals_hold_after_convergence(
    shape: tuple[int, int], eps: float, method: str
) -> None:
    C, a, b = _problem(*shape, False, seed=_seed("marg", shape))
    res = sinkhorn(C, a, b, epsilon=eps, n_iter=5000, method=method)
    assert res.converged
    assert res.n_iter == 5000  # tol = 0 runs every sweep
    np.testing.assert_allclose(res.plan.sum(1), a, rtol=0, atol=1e-9)
    np.testing.assert_allclose(res.plan.sum(0), b, rtol=0, atol=1e-9)
    assert res.marginal_error <= 1e-9
    assert (res.plan >= 0).all()
    errors = np.asarray(res.errors)
    assert errors.shape == (res.n_iter,)
    assert errors[-1] < 1e-3 * errors[0]
    # ||P 1 - μ||_1 after a column step never increases (each normalisation is an L1
    # contraction of the marginal residual), up to rounding.
    assert (np.diff(errors) <= 1e-14).all()


def test_errors_are_the_row_residual_of_each_sweep() -> None:
    """``errors[t-1] = ||P^(2t) 1 - μ||_1``: the diagnostic is tied to the plans themselves."""
    C, a, b = _problem(12, 9, False, seed=1)
    res = sinkhorn(C, a, b, epsilon=0.1, n_iter=15, history=True)
    residuals = [np.abs(res.history[2 * t + 1].sum(1) - a).sum() for t in range(res.n_iter)]
    np.testing.assert_allclose(res.errors, residuals, rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("tol", [1e-4, 1e-8])
@pytest.mark.parametrize("relax", [None, 0.5])
def test_tol_stops_at_first_sweep_below_tol(tol: float, relax: float | None) -> None:
    C, a, b = _problem(20, 13, False, seed=2)
    cap = 10_000
    res = sinkhorn(C, a, b, epsilon=0.05, tol=tol, n_iter=cap, relax_a=relax, relax_b=relax)
    assert res.n_iter < cap
    assert res.converged
    errors = np.asarray(res.errors)
    assert errors[-1] <= tol
    assert (errors[:-1] > tol).all()  # it stopped at the first sweep that reached tol
    full = sinkhorn(C, a, b, epsilon=0.05, n_iter=res.n_iter, relax_a=relax, relax_b=relax)
    np.testing.assert_array_equal(res.plan, full.plan)  # early stop = that many sweeps


def test_a_tol_below_the_dtype_floor_warns_and_a_reachable_one_does_not() -> None:
    """In float32 the marginal error of n = 512 stalls near 1e-8 (rounding), so tol = 1e-10
    can never stop the solve: the call says so up front, naming tol and the floor."""
    g = torch.Generator().manual_seed(0)
    C = cosine_cost(torch.randn(512, 32, generator=g), torch.randn(512, 32, generator=g))
    with pytest.warns(RuntimeWarning, match=r"tol=1e-10 is below what float32 resolves"):
        res = sinkhorn(C, epsilon=0.1, tol=1e-10, n_iter=60)
    assert res.n_iter == 60 and not res.converged  # what the warning said would happen
    assert res.errors[-1] < 1e-7  # converged as far as float32 goes
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert sinkhorn(C, epsilon=0.1, tol=2e-7, n_iter=60).converged
        assert sinkhorn(C.double(), epsilon=0.1, tol=1e-12, n_iter=200).converged


def test_not_converged_is_reported() -> None:
    C, a, b = _problem(20, 13, False, seed=3)
    res = sinkhorn(C, a, b, epsilon=0.01, n_iter=3)
    assert res.n_iter == 3
    assert not res.converged
    res = sinkhorn(C, a, b, epsilon=0.01, n_iter=3, tol=1e-6)
    assert not res.converged


@pytest.mark.parametrize("relax", [(0.5, 2.0), (0.3, None)])
def test_unbalanced_first_order_conditions(relax: tuple[float, float | None]) -> None:
    """At the optimum ``P 1 = μ exp(-f/λ1)`` and ``P^T 1 = ν exp(-g/λ2)`` (hard side: ``ν``)."""
    C, a, b = _problem(15, 11, False, seed=4)
    b = 2.0 * b
    lam_a, lam_b = relax
    res = sinkhorn(C, a, b, epsilon=0.1, relax_a=lam_a, relax_b=lam_b, n_iter=2000)
    assert res.converged
    np.testing.assert_allclose(res.plan.sum(1), a * np.exp(-res.f / lam_a), atol=1e-12)
    col_target = b if lam_b is None else b * np.exp(-res.g / lam_b)
    np.testing.assert_allclose(res.plan.sum(0), col_target, atol=1e-12)
    # the relaxation moved the given marginals
    assert res.marginal_error > 1e-3


def test_a_relaxed_residual_is_the_row_step_s_move_weighted_by_rho() -> None:
    """``errors[t-1] = ρ1 ||P^(2t) 1 - μ exp(-f/λ1)||_1``, ``ρ1 = λ1 / (λ1 + ε)``: to first
    order how far the next row step moves the row sums (checked against the step itself)."""
    C, a, b = _problem(12, 9, False, seed=5)
    lam, eps = 0.3, 0.1
    res = sinkhorn(C, a, b, epsilon=eps, relax_a=lam, relax_b=lam, n_iter=6, history=True)
    rho = lam / (lam + eps)
    sums = res.history[-1].sum(1)
    target = a * np.exp(-res.f / lam)
    assert float(res.errors[-1]) == pytest.approx(rho * np.abs(sums - target).sum(), rel=1e-10)
    moved = sums * ((target / sums) ** rho - 1)  # what the next row step does to P 1
    assert float(res.errors[-1]) == pytest.approx(np.abs(moved).sum(), rel=0.05)


@pytest.mark.parametrize("method", ["absorb", "log"])
@pytest.mark.parametrize("lam", [1e-3, 1e-5, 1e-8])
def test_a_weakly_relaxed_float32_solve_says_converged(method: str, lam: float) -> None:
    """A library user's review: at small ``λ`` the unweighted residual read the potentials'
    rounding through ``exp(-f/λ)`` (times ``1/λ``): a float32 plan exact to 4e-7 said
    ``converged=False`` with errors of 1e-3 (``λ = 1e-3``) to 200 (``λ = 1e-8``), and ``tol``
    was never met. Weighted by ``ρ1`` it is within the float32 threshold, and a ``tol``
    above rounding stops the solve."""
    gen = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(32, 8, generator=gen), torch.randn(32, 8, generator=gen)
    C = cosine_cost(z1, z2)
    kw = {"epsilon": 0.5, "relax_a": lam, "relax_b": lam, "method": method}
    res = sinkhorn(C, n_iter=200, **kw)
    exact = sinkhorn(C.double(), n_iter=200, **kw)
    assert torch.allclose(res.plan.double(), exact.plan, rtol=2e-6, atol=0)
    assert res.converged, res.errors[-5:]
    assert float(res.errors[-1]) <= 1e-5
    stopped = sinkhorn(C, n_iter=5000, tol=1e-5, **kw)
    assert stopped.converged and stopped.n_iter < 100


# ------------------------------------------------------------- 3. first half-step = InfoNCE


@pytest.mark.parametrize("method", ["absorb", "log"])
def test_first_half_step_is_row_softmax(method: str) -> None:
    rng = np.random.default_rng(5)
    C = torch.from_numpy(cosine_cost(_points(rng, 9), _points(rng, 7)))
    a = torch.from_numpy(_marginal(rng, 9, False))
    b = torch.from_numpy(_marginal(rng, 7, False))
    eps = 0.2
    res = sinkhorn(C, a, b, epsilon=eps, n_iter=6, history=True, method=method)
    assert len(res.history) == 2 * res.n_iter == 12
    infonce = a[:, None] * torch.softmax(-C / eps, dim=1)
    torch.testing.assert_close(res.history[0], infonce, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(res.history[1].sum(0), b, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(res.history[-1], res.plan, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("method", ["absorb", "log"])
def test_first_relaxed_half_step_is_scaled_kernel(method: str) -> None:
    """Relaxed rows: ``P^(1) = (μ / Z)^{ρ1} K`` with ``Z_i = sum_j K_ij`` (from ``g = 0``)."""
    rng = np.random.default_rng(5)
    C = torch.from_numpy(cosine_cost(_points(rng, 9), _points(rng, 7)))
    a = torch.from_numpy(_marginal(rng, 9, False))
    eps, lam = 0.2, 0.7
    res = sinkhorn(C, a, None, epsilon=eps, n_iter=3, history=True, relax_a=lam, method=method)
    assert len(res.history) == 6
    K = torch.exp(-C / eps)
    expected = (a / K.sum(1)).pow(lam / (lam + eps))[:, None] * K
    torch.testing.assert_close(res.history[0], expected, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(res.history[-1], res.plan, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("relax", [None, 0.7])
def test_row_projection_is_the_row_half_step(relax: float | None) -> None:
    """``row_projection`` with ``g = 0`` is ``P^(1)``; with ``g^(t-1)`` it is ``P^(2t-1)``."""
    C, a, b = _problem(9, 7, False, seed=5)
    kw = {"epsilon": 0.2, "relax_a": relax}
    res = sinkhorn(C, a, b, n_iter=4, history=True, **kw)
    log_plan, f = gca_ot.row_projection(C, a, **kw)
    np.testing.assert_allclose(np.exp(log_plan), res.history[0], rtol=1e-12, atol=1e-15)
    g2 = sinkhorn(C, a, b, n_iter=2, **kw).g
    log_plan, f = gca_ot.row_projection(C, a, g=g2, **kw)
    np.testing.assert_allclose(np.exp(log_plan), res.history[4], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(f, sinkhorn(C, a, b, n_iter=3, **kw).f, rtol=1e-12, atol=1e-14)


def test_history_is_empty_by_default() -> None:
    C, a, b = _problem(5, 4, True, seed=6)
    assert sinkhorn(C, a, b, epsilon=0.5, n_iter=4).history == ()


# --------------------------------------------------------------- 4. absorb == log engine


def _absorb_cases() -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, float]]]:
    rng = np.random.default_rng(7)
    C, a, b = _problem(30, 30, False, seed=7)
    C_rect, a_rect, b_rect = _problem(25, 17, False, seed=8)
    # squared Euclidean costs up to ~20: at ε = 0.005 and λ1 = 1e-3 the relaxed row target
    # μ exp(-f/λ1) underflows, so the row step must be redone in the log domain.
    x, y = _points(rng, 24, 2), _points(rng, 18, 2)
    C_wide = sqeuclidean_cost(x, y)
    a_wide, b_wide = _marginal(rng, 24, False), _marginal(rng, 18, False)
    # one column far from every row: its kernel column underflows (C/ε ~ 2e4 > 745).
    y_out = _points(rng, 10, 2)
    y_out[3] = [10.0, 10.0]
    C_out = sqeuclidean_cost(_points(rng, 12, 2), y_out)
    a_out, b_out = _marginal(rng, 12, False), _marginal(rng, 10, False)
    return {
        "balanced": (C, a, b, {}),
        "balanced-rect": (C_rect, a_rect, b_rect, {}),
        "unbalanced": (C, a, 2 * b, {"relax_a": 0.1, "relax_b": 1.0}),
        "one-sided": (C_rect, a_rect, 2 * b_rect, {"relax_a": 0.01}),
        "tiny-lambda": (C_wide, a_wide, 2 * b_wide, {"relax_a": 1e-3}),
        "outlier-column": (C_out, a_out, b_out, {}),
        "outlier-unbalanced": (C_out, a_out, 3 * b_out, {"relax_a": 0.2, "relax_b": 0.5}),
    }


ABSORB_CASES = _absorb_cases()


def _assert_engines_agree(
    r1: SinkhornResult, r2: SinkhornResult, atol: float, log_atol: float
) -> None:
    assert r1.n_iter == r2.n_iter
    assert len(r1.history) == len(r2.history) == 2 * r1.n_iter
    for k, (p1, p2) in enumerate(zip(r1.history, r2.history, strict=True)):
        torch.testing.assert_close(p1, p2, rtol=0, atol=atol, msg=f"half-step {k + 1}")
    for name in ("f", "g", "errors", "plan"):
        torch.testing.assert_close(getattr(r1, name), getattr(r2, name), rtol=0, atol=atol)
    finite = torch.isfinite(r2.log_plan)
    assert torch.equal(finite, torch.isfinite(r1.log_plan))
    torch.testing.assert_close(r1.log_plan[finite], r2.log_plan[finite], rtol=0, atol=log_atol)
    assert r1.converged == r2.converged


@pytest.mark.parametrize("case", list(ABSORB_CASES))
@pytest.mark.parametrize("eps", [0.005, 0.1])
def test_absorb_and_log_agree_iterate_by_iterate(case: str, eps: float) -> None:
    C, a, b, relax = ABSORB_CASES[case]
    Ct, at, bt = (torch.from_numpy(v) for v in (C, a, b))
    kw = {"epsilon": eps, "n_iter": 300, "history": True, **relax}
    r_absorb = sinkhorn(Ct, at, bt, method="absorb", **kw)
    r_log = sinkhorn(Ct, at, bt, method="log", **kw)
    _assert_engines_agree(r_absorb, r_log, atol=1e-10, log_atol=1e-8)
    default = sinkhorn(Ct, at, bt, **kw)  # "absorb" is the default
    torch.testing.assert_close(default.plan, r_absorb.plan, rtol=0, atol=0)
    # without history the CPU engine runs whole stretches in numpy (batched residuals)
    fast = sinkhorn(Ct, at, bt, epsilon=eps, n_iter=300, **relax)
    for name in ("f", "g", "errors", "plan"):
        torch.testing.assert_close(getattr(fast, name), getattr(r_log, name), rtol=0, atol=1e-10)


@pytest.mark.parametrize(
    ("case", "branch"),
    [
        ("balanced", "absorb"),
        ("unbalanced", "absorb"),
        ("tiny-lambda", "recover_rows"),
        ("outlier-column", "recover_cols"),
    ],
)
def test_agreement_cases_exercise_absorption_and_recovery(
    case: str, branch: str, engine_calls: dict[str, int]
) -> None:
    """The cases above really go through the absorbing engine's special branches at ε=0.005."""
    C, a, b, relax = ABSORB_CASES[case]
    sinkhorn(C, a, b, epsilon=0.005, n_iter=300, **relax)
    assert engine_calls[branch] > 0


@pytest.mark.parametrize("relax", [{}, {"relax_a": 0.1, "relax_b": 1.0}])
def test_absorb_and_log_agree_float32_small_eps(relax: dict[str, float]) -> None:
    gen = torch.Generator().manual_seed(9)
    x, y = torch.randn(32, 8, generator=gen), torch.randn(32, 8, generator=gen)
    C = cosine_cost(x, y)
    b = torch.full((32,), 2.0 / 32) if relax else None
    assert C.dtype == F32
    kw = {"epsilon": 1e-3, "n_iter": 200, "history": True, **relax}
    r_absorb = sinkhorn(C, None, b, method="absorb", **kw)
    r_log = sinkhorn(C, None, b, method="log", **kw)
    assert r_absorb.plan.dtype == r_log.plan.dtype == F32
    # log_plan is ~C/ε ~ 2e3 in magnitude: float32 resolution there is ~1e-4
    _assert_engines_agree(r_absorb, r_log, atol=2e-4, log_atol=2e-2)


@pytest.mark.parametrize(
    ("dtype", "eps"), [(F32, 0.005), (F32, 1e-3), (F64, 5e-4), (F32, 0.5), (F64, 0.05)]
)
@pytest.mark.parametrize("forbidden", [False, True])
def test_stabilised_kernel_has_no_subnormal_entries(
    dtype: torch.dtype, eps: float, forbidden: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every kernel the absorbing engine builds holds exact zeros or normal numbers (subnormal
    operands slow BLAS down), keeps the zeros of forbidden (+inf) pairs, and drops only
    entries below the smallest normal number, whether or not the threshold pass ran."""
    gen = torch.Generator().manual_seed(_seed(str(dtype), eps, forbidden))
    x = torch.randn(40, 6, generator=gen, dtype=dtype)
    C = cosine_cost(x, torch.randn(40, 6, generator=gen, dtype=dtype), exclude_self=forbidden)
    tiny = torch.finfo(dtype).tiny
    kernels: list[tuple[torch.Tensor, torch.Tensor]] = []
    original = gca_ot._AbsorbState._rebuild

    def spy(self: Any, **zero: bool) -> None:
        original(self, **zero)
        f, g = (torch.as_tensor(x).double() for x in (self.f, self.g))
        exact = torch.exp(gca_ot._log_plan(TORCH, C.double(), f, g, eps))
        kernels.append((torch.as_tensor(self.K).clone(), exact))

    monkeypatch.setattr(gca_ot._AbsorbState, "_rebuild", spy)
    sinkhorn(C, epsilon=eps, n_iter=300)
    assert kernels
    for K, exact in kernels:
        assert not bool(((K > 0) & (K < tiny)).any()), "a subnormal kernel entry"
        if forbidden:
            assert bool((K.diagonal() == 0).all())
        kept = exact >= tiny * (1 + 1e-3)  # (a margin for the rounding of log K~)
        assert bool((K[kept] > 0).all()), "a normal kernel entry was dropped"
        torch.testing.assert_close(K.double(), exact * (K > 0), rtol=1e-4, atol=0)


def test_batched_residuals_equal_per_sweep_residuals() -> None:
    """Without a tolerance the CPU engine forms the residuals of up to 32 sweeps at once; they
    equal the log engine's per-sweep residuals across the batch boundaries, and with a
    tolerance (residual per sweep) the solver stops at the same sweep as the log engine."""
    C, a, b = _problem(30, 24, False, seed=31)
    Ct, at, bt = (torch.from_numpy(v) for v in (C, a, b))
    batched = sinkhorn(Ct, at, bt, epsilon=0.05, n_iter=70)
    reference = sinkhorn(Ct, at, bt, epsilon=0.05, n_iter=70, method="log")
    torch.testing.assert_close(batched.errors, reference.errors, rtol=1e-9, atol=1e-15)
    tol = float(reference.errors[40]) * (1 + 1e-6)  # met first by sweep 41 (errors fall)
    assert float(reference.errors[39]) > tol
    assert sinkhorn(Ct, at, bt, epsilon=0.05, n_iter=70, tol=tol).n_iter == 41


# --------------------------------------------------------------------- 5. ε -> 0 is exact OT


def _matched_problem(
    n: int, uniform: bool, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Views that are noisy permuted copies: the exact plan is that permutation, with a gap."""
    rng = np.random.default_rng(seed)
    x = _points(rng, n, 8)
    perm = rng.permutation(n)
    y = np.empty_like(x)
    y[perm] = x + 0.05 * rng.standard_normal(x.shape)  # y_{perm(i)} is a copy of x_i
    a = _marginal(rng, n, uniform)
    b = np.empty(n)
    b[perm] = a
    P = np.zeros((n, n))
    P[np.arange(n), perm] = a
    return cosine_cost(x, y), a, b, P


@pytest.mark.parametrize("uniform", [True, False])
def test_small_eps_plan_approaches_exact_plan(uniform: bool) -> None:
    C, a, b, P_star = _matched_problem(10, uniform, seed=10)
    P_exact = exact_ot(C, a, b)
    np.testing.assert_allclose(P_exact, P_star, atol=1e-9)
    res = sinkhorn(C, a, b, epsilon=0.005, tol=1e-12, n_iter=20_000)
    assert res.converged
    assert np.abs(res.plan - P_exact).sum() < 1e-6
    loose = sinkhorn(C, a, b, epsilon=0.5, tol=1e-12, n_iter=20_000)
    assert np.abs(loose.plan - P_exact).sum() > 0.1  # the closeness is due to small ε


def test_transport_cost_decreases_to_exact_cost() -> None:
    C, a, b = _problem(10, 7, False, seed=11)
    P0 = exact_ot(C, a, b)
    cost0 = float((P0 * C).sum())
    entropy_bound = min(-(a * np.log(a)).sum(), -(b * np.log(b)).sum())
    costs = []
    for eps in (0.5, 0.1, 0.02):
        res = sinkhorn(C, a, b, epsilon=eps, tol=1e-12, n_iter=20_000)
        assert res.converged
        costs.append(res.transport_cost)
        # <P_ε, C> - <P_0, C> <= ε (H(P_ε) - H(P_0)) <= ε min(H(a), H(b))
        assert cost0 - 1e-10 <= res.transport_cost <= cost0 + eps * entropy_bound
    assert costs[0] > costs[1] > costs[2] > cost0


def test_exact_ot_uniform_square_is_optimal_permutation() -> None:
    n = 6
    C, _, _ = _problem(n, n, True, seed=12)
    P = exact_ot(C)
    assert isinstance(P, np.ndarray)
    assert set(np.unique(P)) == {0.0, 1.0 / n}
    assert ((P > 0).sum(0) == 1).all() and ((P > 0).sum(1) == 1).all()
    best = min(C[np.arange(n), list(p)].sum() for p in itertools.permutations(range(n)))
    assert math.isclose(float((P * C).sum()) * n, best, rel_tol=1e-12)


def test_exact_ot_rectangular_lp() -> None:
    C, a, b = _problem(12, 9, False, seed=13)
    P = exact_ot(C, a, b)
    assert P.shape == (12, 9)
    assert (P >= -1e-15).all()
    np.testing.assert_allclose(P.sum(1), a, atol=1e-9)
    np.testing.assert_allclose(P.sum(0), b, atol=1e-9)
    cost = float((P * C).sum())
    assert math.isclose(cost, float(pot.emd2(a, b, C)), rel_tol=0, abs_tol=1e-9)
    assert cost <= float((np.outer(a, b) * C).sum())  # the product plan is feasible
    for eps in (1.0, 0.1):  # so are converged Sinkhorn plans
        assert cost <= sinkhorn(C, a, b, epsilon=eps, n_iter=2000).transport_cost


def test_exact_ot_torch_in_torch_out() -> None:
    C, a, b = _problem(7, 5, False, seed=14)
    P = exact_ot(torch.from_numpy(C).float(), torch.from_numpy(a), torch.from_numpy(b))
    assert isinstance(P, torch.Tensor) and P.dtype == F32
    np.testing.assert_allclose(P.numpy(), exact_ot(C, a, b), atol=1e-7)


def test_sinkhorn_solves_a_half_precision_cost_in_the_dtype_its_docstring_names() -> None:
    """The docstring said arrays have the type of ``cost``, but a float16 cost gave a
    float32 plan: it now states the rule, which this checks: torch float16/bfloat16 are
    solved in float32 (the float32 solve of the same rounded values), numpy float16 and
    integers in float64, float32/float64 as they are."""
    gen = torch.Generator().manual_seed(21)
    C = cosine_cost(torch.randn(6, 3, generator=gen), torch.randn(5, 3, generator=gen))
    for dtype, solved in ((torch.float16, F32), (torch.bfloat16, F32), (F32, F32), (F64, F64)):
        low = C.to(dtype)
        res = sinkhorn(low, epsilon=0.5, n_iter=20)
        assert isinstance(res.plan, torch.Tensor) and res.plan.dtype == solved, dtype
        assert res.f.dtype == res.cost.dtype == res.a.dtype == solved
        same = sinkhorn(low.to(solved), epsilon=0.5, n_iter=20)
        torch.testing.assert_close(res.plan, same.plan, rtol=0, atol=0)
    for array in (C.numpy().astype(np.float16), (10 * C.numpy()).astype(np.int32)):
        out = sinkhorn(array, epsilon=0.5, n_iter=20)
        assert isinstance(out.plan, np.ndarray) and out.plan.dtype == np.float64
        assert out.cost.dtype == np.float64


@pytest.mark.parametrize("uniform", [True, False])
def test_exact_ot_respects_forbidden_pairs(uniform: bool) -> None:
    rng = np.random.default_rng(15)
    C = cosine_cost(_points(rng, 8), exclude_self=True)
    a = _marginal(rng, 8, uniform)
    P = exact_ot(C, a, a)
    assert (np.diag(P) == 0).all()
    np.testing.assert_allclose(P.sum(1), a, atol=1e-9)
    np.testing.assert_allclose(P.sum(0), a, atol=1e-9)


@pytest.mark.parametrize("uniform", [True, False])
def test_exact_ot_infeasible_raises(uniform: bool) -> None:
    inf = math.inf
    # rows 0 and 1 may only send to column 0 (Hall's condition fails)
    C = np.array([[0.0, inf, inf], [0.0, inf, inf], [0.0, 0.0, 0.0]])
    a = None if uniform else np.array([0.2, 0.3, 0.5])
    b = None if uniform else np.array([0.4, 0.3, 0.3])
    with pytest.raises(ValueError, match="cost"):
        exact_ot(C, a, b)


def test_exact_ot_forbidden_pairs_with_negative_costs() -> None:
    inf = math.inf
    C = np.array([[inf, 10.0, inf], [inf, -10.0, 10.0], [10.0, inf, -10.0]])
    expected = np.array([[0, 1, 0], [0, 0, 1], [1, 0, 0]]) / 3  # the only feasible plan
    np.testing.assert_allclose(exact_ot(C + 20.0), expected)  # shifting C is harmless ...
    np.testing.assert_allclose(exact_ot(C), expected)  # ... so this must hold too


def test_exact_ot_tiny_nonuniform_marginals() -> None:
    C = np.array([[0.0, 1.0], [1.0, 0.0]])
    a, b = np.array([1e-9, 3e-9]), np.array([2e-9, 2e-9])
    P = exact_ot(C, a, b)
    np.testing.assert_allclose(P.sum(1), a, rtol=1e-6)
    np.testing.assert_allclose(P.sum(0), b, rtol=1e-6)


def test_exact_ot_accepts_masses_equal_up_to_float32_rounding() -> None:
    """Marginals normalised separately in float32 differ in mass by ~1e-7: the linear program
    still solves (b is rescaled to a's mass), and masses 1e-3 apart are still an error."""
    gen = torch.Generator().manual_seed(7)
    C = sqeuclidean_cost(torch.randn(30, 2, generator=gen), torch.randn(40, 2, generator=gen))
    a = torch.rand(30, generator=gen) + 0.01
    b = torch.rand(40, generator=gen) + 0.01
    a, b = a / a.sum(), b / b.sum()
    b = b * (1 + 3e-7) / b.sum()  # float32 rounding of separately normalised marginals
    P = exact_ot(C, a, b)
    torch.testing.assert_close(P.sum(1), a, atol=1e-6, rtol=0)
    torch.testing.assert_close(P.sum(0), b, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="equal mass"):
        exact_ot(C, a, b * 1.001)


@pytest.mark.parametrize("method", ["absorb", "log"])
@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_sinkhorn_converges_with_masses_equal_up_to_float32_rounding(
    method: str, kind: str
) -> None:
    """Histograms normalised in float32 and solved in float64 differ in mass by ~6e-8, above
    float64's convergence threshold (1.5e-8): the row error could not fall below the gap, so
    the solve reported converged=False forever and ran every sweep of ``tol``. ``b`` is now
    rescaled to the mass of ``a`` (kept so on the result), as ``exact_ot`` does."""
    rng = np.random.default_rng(0)
    C = rng.random((50, 40))
    a = rng.random(50).astype(np.float32)
    b = rng.random(40).astype(np.float32)
    a, b = (a / a.sum()).astype(np.float64), (b / b.sum()).astype(np.float64)
    assert 1e-8 < abs(a.sum() - b.sum()) < 1e-5 * a.sum()  # the case: accepted, unequal
    conv = np.asarray if kind == "numpy" else torch.from_numpy
    res = sinkhorn(conv(C), conv(a), conv(b), epsilon=0.1, n_iter=5000, tol=1e-9, method=method)
    assert res.converged and res.n_iter < 200, res.n_iter
    plan, b_kept = np.asarray(res.plan), np.asarray(res.b)
    np.testing.assert_allclose(b_kept, b * a.sum() / b.sum(), rtol=1e-15)
    np.testing.assert_allclose(plan.sum(1), a, atol=1e-9, rtol=0)
    np.testing.assert_allclose(plan.sum(0), b_kept, atol=1e-9, rtol=0)


def test_a_numpy_input_s_message_names_its_dtype_as_numpy_does() -> None:
    """A numpy float32 cost with too small an ε was refused "... in torch.float32 ...": the
    messages name a dtype as both libraries write it, "float32"."""
    C = np.random.default_rng(3).random((5, 5)).astype(np.float32)
    with pytest.raises(ValueError, match=r"\) in float32; use a larger epsilon") as info:
        sinkhorn(C, epsilon=1e-9)
    assert "torch." not in str(info.value)


# -------------------------------------------------------------- 6. λ -> inf is balanced


@pytest.mark.parametrize("eps", [0.5, 0.05])
def test_huge_relaxation_equals_balanced(eps: float) -> None:
    C, a, b = _problem(15, 11, False, seed=16)
    kw = {"epsilon": eps, "tol": 1e-12, "n_iter": 20_000}
    balanced = sinkhorn(C, a, b, **kw)
    assert balanced.converged
    # (the relaxed run does not reach tol = 1e-12: a constant shift of the potentials only
    # contracts by ρ1 ρ2 ~ 1 - 2ε/λ per sweep, which moves μ exp(-f/λ) by ~1e-8)
    relaxed = sinkhorn(C, a, b, epsilon=eps, relax_a=1e8, relax_b=1e8, n_iter=2 * balanced.n_iter)
    assert float(relaxed.errors[-1]) < 1e-6
    np.testing.assert_allclose(relaxed.plan, balanced.plan, rtol=0, atol=1e-6)
    assert relaxed.rho[0] < 1.0  # it really ran the relaxed updates


@pytest.mark.parametrize("side", ["relax_a", "relax_b"])
def test_infinite_relaxation_is_hard_constraint(side: str) -> None:
    C, a, b = _problem(15, 11, False, seed=17)
    hard = sinkhorn(C, a, b, epsilon=0.1, n_iter=50, history=True)
    inf = sinkhorn(C, a, b, epsilon=0.1, n_iter=50, history=True, **{side: float("inf")})
    assert getattr(inf, side) is None
    assert inf.rho == (1.0, 1.0)
    for name in ("plan", "f", "g", "errors"):
        np.testing.assert_array_equal(getattr(inf, name), getattr(hard, name))
    # ... and a hard constraint still demands equal masses
    with pytest.raises(ValueError, match="mass"):
        sinkhorn(C, a, 2 * b, epsilon=0.1, relax_a=math.inf, relax_b=math.inf)


def test_tiny_relaxation_gives_the_kernel() -> None:
    """``λ -> 0`` gives ``ρ -> 0``: the potentials vanish and ``P = K``."""
    C, a, b = _problem(6, 5, False, seed=18)
    res = sinkhorn(C, a, b, epsilon=0.5, relax_a=1e-12, relax_b=1e-12, n_iter=5)
    np.testing.assert_allclose(res.plan, np.exp(-C / 0.5), rtol=1e-9)


# ------------------------------------------------------------------- 7. contraction ρ1 ρ2

CONTRACTION_CASES = [(2.0, 2.0, 0.5), (1.0, 4.0, 0.5), (5.0, 1.0, 1.0), (0.5, None, 0.5)]


def _iters_to(rate: float, factor: float = 1e-8) -> int:
    """Sweeps for the error to shrink by ``factor`` (well above rounding level)."""
    return max(20, math.ceil(math.log(factor) / math.log(rate)))


@pytest.mark.parametrize(("lam_a", "lam_b", "eps"), CONTRACTION_CASES)
def test_measured_contraction_matches_rho_product(
    lam_a: float, lam_b: float | None, eps: float
) -> None:
    C, a, b = _problem(12, 9, False, seed=19)
    rho = lam_a / (lam_a + eps) * (1.0 if lam_b is None else lam_b / (lam_b + eps))
    res = sinkhorn(C, a, 1.5 * b, epsilon=eps, relax_a=lam_a, relax_b=lam_b, n_iter=_iters_to(rho))
    assert res.rho == pytest.approx(
        (lam_a / (lam_a + eps), 1.0 if lam_b is None else lam_b / (lam_b + eps))
    )
    assert not math.isnan(res.contraction)
    assert res.contraction == pytest.approx(rho, rel=0.02)


@pytest.mark.parametrize(("lam_a", "lam_b", "eps"), CONTRACTION_CASES)
def test_potentials_contract_by_rho_product(lam_a: float, lam_b: float | None, eps: float) -> None:
    """Directly from the potentials: ``||f_{k+2} - f_{k+1}|| / ||f_{k+1} - f_k|| -> ρ1 ρ2``."""
    C, a, b = _problem(12, 9, False, seed=20)
    rho = lam_a / (lam_a + eps) * (1.0 if lam_b is None else lam_b / (lam_b + eps))
    k = _iters_to(rho, 1e-6)
    f = [
        sinkhorn(C, a, 1.5 * b, epsilon=eps, relax_a=lam_a, relax_b=lam_b, n_iter=t).f
        for t in (k, k + 1, k + 2)
    ]
    step1, step2 = np.abs(f[1] - f[0]).max(), np.abs(f[2] - f[1]).max()
    assert step1 > 1e-12  # not at rounding level
    assert step2 / step1 == pytest.approx(rho, rel=0.02)


def test_contraction_is_nan_without_usable_sweeps() -> None:
    C, a, b = _problem(6, 5, False, seed=21)
    assert math.isnan(sinkhorn(C, a, b, epsilon=1.0, n_iter=2).contraction)


def test_contraction_does_not_vanish_when_the_solve_runs_past_convergence() -> None:
    """A library user's review: over the second half of all the sweeps, a solve run to
    rounding level had no ratio left (0.878 at 200 sweeps, nan at 400). The rate is now read
    from the sweeps before rounding level, the same however long the solve runs on."""
    gen = torch.Generator().manual_seed(0)
    z1 = torch.randn(64, 8, generator=gen, dtype=torch.float64)
    z2 = torch.randn(64, 8, generator=gen, dtype=torch.float64)
    C = cosine_cost(z1, z2)
    long = sinkhorn(C, epsilon=0.05, n_iter=400)
    assert float(long.errors[-1]) <= long.rounding_floor  # run past rounding level
    rates = [sinkhorn(C, epsilon=0.05, n_iter=k).contraction for k in (400, 1000)]
    assert 0.8 < rates[0] < 0.95 and rates[1] == rates[0]


@pytest.mark.parametrize("as_tensor", [False, True], ids=["numpy", "torch"])
def test_rounding_floor_is_the_plans_own_precision(as_tensor: bool) -> None:
    """The floor below which errors are rounding scales with the plan's dtype and mass: a
    float32 solve's floor is float32's, so its contraction skips float32 noise."""
    C, a, b = _problem(6, 5, False, seed=21)
    floors = {}
    for dtype in (np.float32, np.float64):
        args = [x.astype(dtype) for x in (C, a, b)]
        if as_tensor:
            args = [torch.from_numpy(x) for x in args]
        res = sinkhorn(*args, epsilon=0.5, n_iter=5)
        floors[dtype] = res.rounding_floor
        assert res.rounding_floor == pytest.approx(100 * np.finfo(dtype).eps * res.mass)
    assert floors[np.float32] / floors[np.float64] == pytest.approx(2.0**29, rel=1e-6)
    from gca_viz.ot._xp import machine_epsilon

    eps32 = float(np.finfo(np.float32).eps)  # a dtype given as a numpy or torch type too
    assert machine_epsilon(np.float32) == machine_epsilon(np.dtype("float32")) == eps32
    assert machine_epsilon(torch.float32) == eps32 and machine_epsilon([1, 2]) == 2.0**-52


# -------------------------------------------------- 8. float32 at ε = 1e-3: finite results


# Regression: products below sqrt(tiny) once gave NaN gradients (-ν/r² overflowed);
# such steps are now redone by log-sum-exp.
FLOAT32_CASES = [
    pytest.param(
        n,
        relax,
        method,
        exclude_self,
        id=f"n{n}-{'unbalanced' if relax else 'balanced'}-{method}"
        + ("-exclude_self" if exclude_self else ""),
    )
    for n in (32, 128)
    for relax in (None, 0.2)
    for method in ("absorb", "log")
    for exclude_self in (False, True)
]


@pytest.mark.parametrize("eps", [1e-3, 3e-3, 0.01])
@pytest.mark.parametrize("n", [64, 256])
def test_kept_kernel_steps_have_products_above_sqrt_tiny(
    n: int, eps: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every kernel-domain half-step that the autograd node keeps divides by a product
    ``>= sqrt(tiny)``, so the backward's ``-ρ v̄ v / r`` cannot overflow; with a hard marginal
    that holds through the bound on the scaling alone, also when ``μ_i`` is far below 1."""
    floor = math.sqrt(torch.finfo(F32).tiny)
    kept: list[torch.Tensor] = []
    original = _loop._stretch

    def spy(stretch: Any, *args: Any) -> Any:
        out = original(stretch, *args)
        kept.extend(torch.as_tensor(prod) for _, _, prod, _ in stretch.steps)
        return out

    monkeypatch.setattr(_loop, "_stretch", spy)
    gen = torch.Generator().manual_seed(_seed(n, eps))
    x = _unit(torch.randn(n, 16, generator=gen)).requires_grad_()
    y = _unit(torch.randn(n, 16, generator=gen))
    res = sinkhorn(cosine_cost(x, y), epsilon=eps, n_iter=200)
    assert kept
    assert min(float(p.min()) for p in kept) >= floor
    (grad,) = torch.autograd.grad((res.plan * torch.rand(n, n, generator=gen)).sum(), x)
    assert torch.isfinite(grad).all()


@pytest.mark.parametrize(("n", "relax", "method", "exclude_self"), FLOAT32_CASES)
def test_float32_small_eps_is_finite_with_finite_gradients(
    n: int, relax: float | None, method: str, exclude_self: bool
) -> None:
    gen = torch.Generator().manual_seed(n)
    x = _unit(torch.randn(n, 16, generator=gen)).requires_grad_()
    y = _unit(torch.randn(n, 16, generator=gen)).requires_grad_()
    C = cosine_cost(x, exclude_self=True) if exclude_self else cosine_cost(x, y)
    res = sinkhorn(C, epsilon=1e-3, n_iter=100, relax_a=relax, relax_b=relax, method=method)
    assert res.plan.dtype == F32
    finite = torch.isfinite(C)
    assert torch.isfinite(res.plan).all()
    assert torch.isfinite(res.f).all() and torch.isfinite(res.g).all()
    assert torch.isfinite(res.log_plan[finite]).all()
    assert (res.plan >= 0).all()
    if exclude_self:
        assert (res.plan.diagonal() == 0).all()
        assert (res.log_plan.diagonal() == -math.inf).all()
        partner = (torch.arange(n) + 1) % n
        loss = -res.log_plan[torch.arange(n), partner].mean()
    else:
        loss = -res.log_plan.diagonal().mean()
    weights = torch.rand(n, n, generator=gen)
    loss = loss + (res.plan * weights).sum()
    assert torch.isfinite(loss)
    inputs = (x,) if exclude_self else (x, y)
    grads = torch.autograd.grad(loss, inputs)
    for grad in grads:
        assert torch.isfinite(grad).all()
        assert grad.abs().max() > 0


@pytest.mark.parametrize("method", ["absorb", "log"])
def test_float32_small_eps_gradients_finite_on_many_problems(method: str) -> None:
    """Small problems, many seeds: every gradient of a KL-type loss is finite."""
    bad = []
    for seed in range(40):
        gen = torch.Generator().manual_seed(seed)
        x0 = _unit(torch.randn(6, 4, generator=gen))
        y0 = _unit(torch.randn(6, 4, generator=gen))
        for exclude_self in (False, True):
            x = x0.clone().requires_grad_()
            C = cosine_cost(x, exclude_self=True) if exclude_self else cosine_cost(x, y0)
            res = sinkhorn(C, epsilon=1e-3, n_iter=20, method=method)
            pos = (torch.arange(6) + 1) % 6 if exclude_self else torch.arange(6)
            (grad,) = torch.autograd.grad(-res.log_plan[torch.arange(6), pos].mean(), x)
            if not torch.isfinite(grad).all():
                bad.append((seed, exclude_self))
    assert bad == []


# ------------------------------------------------------- 9. gradients vs finite differences


@pytest.mark.parametrize("relax", [(None, None), (0.3, 0.7), (0.4, None)])
@pytest.mark.parametrize("method", ["absorb", "log"])
def test_gradcheck_through_cost_and_solver(
    relax: tuple[float | None, float | None], method: str
) -> None:
    gen = torch.Generator().manual_seed(22)
    x = torch.randn(5, 3, dtype=F64, generator=gen, requires_grad=True)
    y = torch.randn(5, 3, dtype=F64, generator=gen, requires_grad=True)
    b = torch.full((5,), 0.3, dtype=F64) if relax[0] is not None else None

    def loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        res = sinkhorn(
            cosine_cost(x, y),
            None,
            b,
            epsilon=0.5,
            n_iter=20,
            relax_a=relax[0],
            relax_b=relax[1],
            method=method,
        )
        return res.log_plan.diagonal().sum() + (res.plan * res.cost).sum()

    assert torch.autograd.gradcheck(loss, (x, y))


# Regression: marginals that require grad once sent the default engine down the numpy
# fast path, which cannot carry gradients.
@pytest.mark.parametrize(
    "method",
    [
        "absorb",
        "log",
    ],
)
@pytest.mark.parametrize("relax", [(None, None), (0.6, 0.9)])
@pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad=True to a scalar")
def test_gradcheck_with_respect_to_marginals(
    method: str, relax: tuple[float | None, float | None]
) -> None:
    gen = torch.Generator().manual_seed(23)
    C = torch.rand(4, 3, dtype=F64, generator=gen)  # no gradient through the cost
    a = (torch.rand(4, dtype=F64, generator=gen) + 0.5).requires_grad_()
    b = (torch.rand(3, dtype=F64, generator=gen) + 0.5).requires_grad_()

    def loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if relax[0] is None:  # balanced: equal masses
            a, b = a / a.sum(), b / b.sum()
        res = sinkhorn(
            C, a, b, epsilon=0.5, n_iter=15, relax_a=relax[0], relax_b=relax[1], method=method
        )
        return res.log_plan.diagonal().sum()

    assert torch.autograd.gradcheck(loss, (a, b))


# ----------------------------------------------------------------- 10. types and costs


def test_numpy_in_numpy_out() -> None:
    C, a, b = _problem(6, 4, False, seed=24)
    res = sinkhorn(C, a, b, epsilon=0.3, n_iter=5, history=True)
    for name in ("plan", "log_plan", "f", "g", "errors", "a", "b"):
        value = getattr(res, name)
        assert isinstance(value, np.ndarray), name
        assert value.dtype == np.float64, name
    assert all(isinstance(p, np.ndarray) for p in res.history)
    assert isinstance(res.n_iter, int) and isinstance(res.converged, bool)
    assert isinstance(res.epsilon, float)


@pytest.mark.parametrize("dtype", [F32, F64])
def test_torch_in_torch_out_same_dtype(dtype: torch.dtype) -> None:
    C, a, b = _problem(6, 4, False, seed=25)
    Ct = torch.from_numpy(C).to(dtype)
    res = sinkhorn(Ct, a, b, epsilon=0.3, n_iter=5, history=True)  # numpy marginals
    for name in ("plan", "log_plan", "f", "g", "errors", "a", "b", "cost"):
        value = getattr(res, name)
        assert isinstance(value, torch.Tensor), name
        assert value.dtype == dtype, name
    assert all(p.dtype == dtype for p in res.history)


def test_numpy_float32_stays_float32() -> None:
    C, a, b = _problem(6, 4, False, seed=26)
    res = sinkhorn(C.astype(np.float32), a, b, epsilon=0.3, n_iter=5)
    for name in ("plan", "f", "g", "errors"):
        assert getattr(res, name).dtype == np.float32, name
    assert cosine_cost(np.ones((2, 3), dtype=np.float32)).dtype == np.float32
    assert exact_ot(C.astype(np.float32)[:4, :4]).dtype == np.float32


def test_cost_functions_keep_type_and_dtype() -> None:
    x32 = torch.randn(4, 3, generator=torch.Generator().manual_seed(27))
    for fn in (cosine_cost, sqeuclidean_cost):
        assert fn(x32).dtype == F32
        assert fn(x32.double()).dtype == F64
        assert isinstance(fn(x32.numpy()), np.ndarray)


def test_cosine_cost_matches_naive_formula() -> None:
    rng = np.random.default_rng(28)
    x, y = 3.0 * _points(rng, 7, 4), _points(rng, 5, 4)  # rows need not be normalised
    C = cosine_cost(x, y)
    naive = np.array(
        [[1 - xi @ yj / (np.linalg.norm(xi) * np.linalg.norm(yj)) for yj in y] for xi in x]
    )
    np.testing.assert_allclose(C, naive, rtol=0, atol=1e-14)
    assert C.shape == (7, 5)
    # [0, 2] up to rounding: the similarity is never clamped, so 1 - <x, x> may be -1e-16
    assert C.min() >= -1e-12 and C.max() <= 2 + 1e-12
    antipodal = cosine_cost(np.array([[1.0, 2.0]]), np.array([[-1.0, -2.0], [2.0, 4.0]]))
    np.testing.assert_allclose(antipodal, [[2.0, 0.0]], atol=1e-15)
    np.testing.assert_allclose(cosine_cost(x), cosine_cost(x, x), rtol=0, atol=1e-15)
    self_cost = cosine_cost(x, exclude_self=True)
    assert (np.diag(self_cost) == np.inf).all()
    off = ~np.eye(7, dtype=bool)
    np.testing.assert_array_equal(self_cost[off], cosine_cost(x)[off])


def test_cosine_cost_gradient_is_not_clamped() -> None:
    """Pairs with negative similarity still get a gradient (no clamp, section 8)."""
    x = torch.tensor([[1.0, 0.0]], dtype=F64, requires_grad=True)
    y = torch.tensor([[-1.0, 0.5]], dtype=F64)
    cosine_cost(x, y).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_sqeuclidean_cost_matches_naive_loop() -> None:
    rng = np.random.default_rng(29)
    x, y = _points(rng, 6, 3), _points(rng, 4, 3)
    naive = np.array([[((xi - yj) ** 2).sum() for yj in y] for xi in x])
    np.testing.assert_allclose(sqeuclidean_cost(x, y), naive, rtol=1e-12, atol=1e-12)
    self_cost = sqeuclidean_cost(x)
    np.testing.assert_allclose(self_cost, sqeuclidean_cost(x, x), atol=1e-12)
    assert (self_cost >= 0).all()
    np.testing.assert_allclose(np.diag(self_cost), 0.0, atol=1e-12)
    assert (np.diag(sqeuclidean_cost(x, exclude_self=True)) == np.inf).all()
    assert (sqeuclidean_cost(np.zeros((2, 3))) == 0).all()  # zero rows are fine here


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_sqeuclidean_cost_keeps_small_distances_far_from_the_origin_in_float32(kind: str) -> None:
    """Points 0.01 apart at 100 share a large offset: the expansion |x|² + |y|² - 2<x, y>
    cancelled in float32 and read 0, 0.002 or 0.004 for distances 6e-5 to 1.5e-3 (the
    clip at 0 made exact zeros). Shifted by the common mean first, they keep their values;
    the gradient is the differences' own."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(6, 3, generator=gen) * 0.01 + 100
    y = torch.randn(5, 3, generator=gen) * 0.01 + 100
    exact = ((x.double()[:, None] - y.double()[None]) ** 2).sum(-1)
    conv = (lambda t: t.numpy()) if kind == "numpy" else (lambda t: t)
    C = torch.as_tensor(sqeuclidean_cost(conv(x), conv(y)))
    assert C.dtype == torch.float32 and (C > 0).all()
    torch.testing.assert_close(C.double(), exact, rtol=1e-3, atol=1e-8)
    joint = torch.as_tensor(sqeuclidean_cost(conv(x)))
    assert (joint.diagonal() == 0).all() and (joint + torch.eye(6) > 0).all()
    xd, yd = x.double().requires_grad_(), y.double().requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: sqeuclidean_cost(a, b), (xd, yd))


# --------------------------------------------------------------- 11. result properties


def test_result_properties_match_naive_formulas() -> None:
    C, a, b = _problem(8, 6, False, seed=30)
    C[2, 3] = np.inf  # one forbidden pair: no mass, no NaN in the properties
    res = sinkhorn(C, a, b, epsilon=0.2, n_iter=40)
    P = res.plan
    assert P[2, 3] == 0.0 and res.log_plan[2, 3] == -np.inf
    np.testing.assert_allclose(res.row_marginal, P.sum(1), rtol=1e-15)
    np.testing.assert_allclose(res.col_marginal, P.sum(0), rtol=1e-15)
    assert res.mass == pytest.approx(P.sum(), rel=1e-14)
    assert res.mass == pytest.approx(1.0, abs=1e-9)
    entropy = -sum(p * (math.log(p) - 1) for p in P.ravel() if p > 0)
    assert res.entropy == pytest.approx(entropy, rel=1e-12)
    cost = sum(P[i, j] * C[i, j] for i in range(8) for j in range(6) if P[i, j] > 0)
    assert res.transport_cost == pytest.approx(cost, rel=1e-12)
    assert math.isfinite(res.transport_cost)
    marginal_error = np.abs(P.sum(1) - a).sum() + np.abs(P.sum(0) - b).sum()
    assert res.marginal_error == pytest.approx(marginal_error, rel=1e-9, abs=1e-15)
    np.testing.assert_allclose(res.log_plan, (res.f[:, None] + res.g[None, :] - C) / 0.2)
    assert res.rho == (1.0, 1.0)
    assert res.epsilon == 0.2 and res.relax_a is None and res.relax_b is None
    np.testing.assert_array_equal(res.a, a)
    np.testing.assert_array_equal(res.b, b)


def test_result_properties_unbalanced_and_default_marginals() -> None:
    C, _, _ = _problem(5, 4, True, seed=31)
    res = sinkhorn(C, epsilon=0.5, relax_a=1.0, relax_b=3.0, n_iter=30)
    np.testing.assert_allclose(res.a, np.full(5, 0.2))
    np.testing.assert_allclose(res.b, np.full(4, 0.25))
    assert res.rho == pytest.approx((1 / 1.5, 3 / 3.5))
    assert (res.relax_a, res.relax_b) == (1.0, 3.0)
    assert res.entropy > 0


def test_result_is_frozen() -> None:
    C, a, b = _problem(4, 4, True, seed=32)
    res = sinkhorn(C, a, b, epsilon=0.5, n_iter=3)
    for field, value in (("n_iter", 7), ("plan", None), ("converged", False)):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(res, field, value)


def test_result_repr_is_one_short_line_that_names_the_problem() -> None:
    """A notebook prints the result: one line with the shape, kind, ε, sweeps, convergence,
    last error and mass (the default dataclass repr printed every array, thousands of
    characters)."""
    C, a, b = _problem(300, 200, True, seed=33)
    res = sinkhorn(C, a, b, epsilon=0.5, n_iter=7)
    text = repr(res)
    assert "\n" not in text and len(text) < 160, text
    assert text.startswith("SinkhornResult(300x200 balanced, epsilon=0.5, n_iter=7, ")
    assert f"converged={res.converged}" in text
    assert f"error={float(res.errors[-1]):.3g}" in text and f"mass={res.mass:.6g}" in text
    relaxed = sinkhorn(
        torch.as_tensor(C),
        torch.as_tensor(a),
        torch.as_tensor(b),
        epsilon=0.5,
        relax_a=1.0,
        n_iter=3,
    )
    assert "unbalanced" in repr(relaxed) and "torch cpu float64" in repr(relaxed)


def test_results_compare_by_identity() -> None:
    """``r1 == r2`` and ``r in [r2]`` raised "Boolean value of Tensor ... is ambiguous" (the
    dataclass compared its tensor fields)."""
    C = torch.as_tensor(_problem(4, 5, True, seed=34)[0])
    first, again = sinkhorn(C, epsilon=0.5, n_iter=3), sinkhorn(C, epsilon=0.5, n_iter=3)
    assert first == first and first != again
    assert first in [again, first] and again not in [first]
    assert len({first, again}) == 2  # hashable, by identity


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda C, t: sinkhorn(C, epsilon=t), "epsilon"),
        (lambda C, t: sinkhorn(C, epsilon=0.3, relax_a=t), "relax_a"),
        (lambda C, t: sinkhorn(C, epsilon=0.3, relax_b=t), "relax_b"),
        (lambda C, t: row_projection(C, epsilon=t), "epsilon"),
        (lambda C, t: row_projection(C, epsilon=0.3, relax_a=t), "relax_a"),
    ],
    ids=["sinkhorn-eps", "sinkhorn-relax_a", "sinkhorn-relax_b", "row-eps", "row-relax_a"],
)
def test_a_learnable_scalar_is_refused_not_read_once(call: Callable[..., Any], name: str) -> None:
    """A learnable temperature (CLIP's) was read once as a float: the plan had no gradient
    for it and nothing said so (the losses refused the same tensor)."""
    C = torch.rand(4, 4, dtype=torch.float64)
    t = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    with pytest.raises(ValueError, match=rf"^{name} must be a plain number, got a tensor"):
        call(C, t)
    call(C, t.detach())  # the same value as a plain tensor is read


@pytest.mark.parametrize("cost", [cosine_cost, sqeuclidean_cost])
def test_a_cost_refuses_a_numpy_x_beside_a_torch_y(cost: Callable[..., Any]) -> None:
    """The cost took x's kind: a numpy x and a torch y that requires grad gave a numpy cost
    without y's gradient, silently."""
    rng = np.random.default_rng(35)
    x = rng.standard_normal((3, 2))
    y = torch.randn(2, 2, dtype=torch.float64, requires_grad=True)
    with pytest.raises(ValueError, match=r"^x and y must both be torch tensors when y is one"):
        cost(x, y)
    both = cost(torch.as_tensor(x), y)
    both.sum().backward()
    assert y.grad is not None and torch.isfinite(y.grad).all()
    assert isinstance(cost(torch.as_tensor(x), y.detach().numpy()), torch.Tensor)  # x's kind


# ---------------------------------------------------------------- 12. invalid inputs

_C = np.array([[0.0, 1.0, 2.0], [1.0, 0.0, 0.5]])


def _with(i: int, j: int, value: float) -> np.ndarray:
    C = _C.copy()
    C[i, j] = value
    return C


INVALID_SINKHORN = [
    pytest.param({"epsilon": 0.0}, "epsilon", id="epsilon-zero"),
    pytest.param({"epsilon": -0.1}, "epsilon", id="epsilon-negative"),
    pytest.param({"epsilon": math.nan}, "epsilon", id="epsilon-nan"),
    pytest.param({"epsilon": math.inf}, "epsilon", id="epsilon-inf"),
    pytest.param({"epsilon": "big"}, "epsilon", id="epsilon-string"),
    pytest.param({"epsilon": "0.5"}, r"^epsilon .*'0\.5' \(str\)", id="epsilon-numeric-string"),
    pytest.param({"epsilon": True}, r"^epsilon .*True \(bool\)", id="epsilon-bool"),
    pytest.param({"epsilon": np.ones(2)}, "^epsilon", id="epsilon-array"),
    pytest.param({"epsilon": torch.ones(2)}, "^epsilon", id="epsilon-tensor"),
    pytest.param({"a": [0.6, -0.1]}, r"^a ", id="a-negative"),
    pytest.param({"a": [math.nan, 0.5]}, r"^a ", id="a-nan"),
    pytest.param({"a": [0.0, 1.0]}, r"^a ", id="a-zero-entry"),
    pytest.param({"history": "no"}, r"^history must be True or False, got 'no'", id="history-str"),
    pytest.param({"a": [1e-310, 1.0]}, r"^a has entries below 2.23e-308", id="a-subnormal"),
    pytest.param({"a": [0.2, 0.3, 0.5]}, r"^a ", id="a-wrong-shape"),
    pytest.param({"a": [[0.5, 0.5]]}, r"^a ", id="a-2d"),
    pytest.param({"b": [0.5, 0.5, -0.0]}, r"^b ", id="b-zero-entry"),
    pytest.param({"b": [0.5, 0.5]}, r"^b ", id="b-wrong-shape"),
    pytest.param({"b": [0.5, math.inf, 0.5]}, r"^b ", id="b-inf"),
    pytest.param({"cost": 3.0}, r"^cost .*got shape \(\)$", id="cost-scalar"),
    pytest.param({"cost": np.zeros(3)}, "cost", id="cost-1d"),
    pytest.param({"cost": np.zeros((2, 2, 2))}, "cost", id="cost-3d"),
    pytest.param({"cost": np.zeros((0, 3))}, "cost", id="cost-empty"),
    pytest.param({"cost": _with(0, 1, math.nan)}, "cost contains NaN", id="cost-nan"),
    pytest.param({"cost": _with(1, 2, -math.inf)}, "cost contains -inf", id="cost-neg-inf"),
    pytest.param({"cost": np.array([[0.0] * 3, [math.inf] * 3])}, "cost row 1", id="row-inf"),
    pytest.param({"cost": np.array([[0.0, 1.0, math.inf]] * 2)}, "cost column 2", id="col-inf"),
    pytest.param({"b": [0.5, 0.5, 0.5]}, r"sum\(a\).*sum\(b\)", id="unequal-mass"),
    pytest.param({"n_iter": 0}, "n_iter", id="n-iter-zero"),
    pytest.param({"n_iter": 2.5}, "n_iter", id="n-iter-float"),
    pytest.param({"n_iter": True}, "n_iter", id="n-iter-bool"),
    pytest.param({"tol": -1e-9}, "tol", id="tol-negative"),
    pytest.param({"tol": math.nan}, "tol", id="tol-nan"),
    pytest.param({"tol": "0"}, r"^tol .*\(str\)", id="tol-string"),
    pytest.param({"relax_a": -1.0}, "relax_a", id="relax-a-negative"),
    pytest.param({"relax_a": 0.0}, "relax_a", id="relax-a-zero"),
    pytest.param({"relax_a": math.nan}, "relax_a", id="relax-a-nan"),
    pytest.param({"relax_b": -2.0}, "relax_b", id="relax-b-negative"),
    pytest.param({"relax_b": 0}, "relax_b", id="relax-b-zero"),
    pytest.param({"relax_b": "1"}, r"^relax_b .*\(str\)", id="relax-b-string"),
    pytest.param({"method": "kernel"}, "method", id="unknown-method"),
]


@pytest.mark.parametrize(("override", "match"), INVALID_SINKHORN)
def test_sinkhorn_rejects_invalid_input(override: dict[str, object], match: str) -> None:
    kwargs: dict[str, object] = {"cost": _C, "a": None, "b": None, "epsilon": 0.5, **override}
    with pytest.raises(ValueError, match=match):
        sinkhorn(**kwargs)  # type: ignore[arg-type]


def test_max_iter_is_a_deprecated_alias_of_n_iter() -> None:
    """The losses and the solver spell the number of sweeps ``n_iter``; the solver's old
    ``max_iter`` still works, with a DeprecationWarning, and names itself when invalid."""
    with pytest.warns(DeprecationWarning, match="n_iter"):
        old = sinkhorn(_C, epsilon=0.5, max_iter=7)
    new = sinkhorn(_C, epsilon=0.5, n_iter=7)
    assert old.n_iter == new.n_iter == 7
    np.testing.assert_array_equal(old.plan, new.plan)
    with pytest.raises(ValueError, match=r"^max_iter"), pytest.warns(DeprecationWarning):
        sinkhorn(_C, epsilon=0.5, max_iter=0)
    with pytest.raises(ValueError, match="not both"):
        sinkhorn(_C, epsilon=0.5, n_iter=7, max_iter=7)


@pytest.mark.parametrize("grad", [False, True])
def test_no_call_changes_torch_thread_count(grad: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """A library call must not change process-wide state: torch's thread count is the
    caller's choice (gca_viz.device.torch_threads), never set during a solve."""
    calls: list[int] = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(12, 4, generator=gen, requires_grad=grad)
    C = cosine_cost(x, torch.randn(10, 4, generator=gen))
    sinkhorn(C, epsilon=0.1, n_iter=20)
    sinkhorn(C, epsilon=0.1, n_iter=20, method="log", history=True)
    row_projection(C, epsilon=0.1)
    sqeuclidean_cost(x)
    assert calls == []


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize(
    "cost",
    [
        pytest.param(_C, id="finite"),
        pytest.param(_with(0, 2, math.inf), id="some-inf"),
        pytest.param(_with(0, 1, math.nan), id="nan"),
        pytest.param(_with(1, 2, -math.inf), id="neg-inf"),
        pytest.param(np.array([[0.0] * 3, [math.inf] * 3]), id="row-inf"),
        pytest.param(np.array([[0.0, 1.0, math.inf]] * 2), id="col-inf"),
    ],
)
def test_cost_checks_agree_in_numpy_and_torch(cost: np.ndarray, dtype: torch.dtype) -> None:
    """The cost validation runs in numpy on the CPU and in torch on a device (there with
    every line reduction before its one read): on the same matrix both give the same
    smallest and largest entry, or the same error."""
    C = torch.from_numpy(np.asarray(cost)).to(dtype)
    outcomes = []
    for device in (False, True):
        try:
            with device_path() if device else contextlib.nullcontext():
                outcomes.append(("ok", gca_ot._check_cost_values(C)))
        except ValueError as err:
            outcomes.append(("error", str(err)))
    assert outcomes[0] == outcomes[1]
    if outcomes[0][0] == "ok":
        assert outcomes[0][1] == (float(C.min()), float(C.max()))


def test_invalid_cost_with_plus_inf_off_some_rows_is_fine() -> None:
    """+inf is a forbidden pair, not an error, while each row and column keeps a finite entry."""
    C = _with(0, 2, math.inf)
    res = sinkhorn(C, epsilon=0.5, n_iter=500)
    assert res.plan[0, 2] == 0.0 and res.converged
    np.testing.assert_allclose(res.plan.sum(0), np.full(3, 1 / 3), atol=1e-12)


INVALID_COSTS = [
    pytest.param(lambda: cosine_cost(np.array([[1.0, 0.0], [0.0, 0.0]])), "^x ", id="x-zero-row"),
    pytest.param(
        lambda: cosine_cost(np.ones((2, 2)), np.array([[1.0, 1.0], [0.0, 0.0]])),
        "^y ",
        id="y-zero-row",
    ),
    pytest.param(lambda: cosine_cost(np.ones((2, 3)), np.ones((2, 4))), "^y ", id="cos-dims"),
    pytest.param(
        lambda: cosine_cost(np.ones((2, 3)), np.ones((4, 3)), exclude_self=True),
        "exclude_self",
        id="cos-exclude-self-rect",
    ),
    pytest.param(
        lambda: cosine_cost(torch.ones(2, 3), torch.ones(2, 3, dtype=torch.float64)),
        "x and y must have the same dtype: float32 != float64",
        id="cos-dtypes",
    ),
    pytest.param(
        lambda: sqeuclidean_cost(np.ones((2, 3), np.float64), np.ones((2, 3), np.float32)),
        "x and y must have the same dtype: float64 != float32",
        id="sq-dtypes",
    ),
    pytest.param(
        lambda: cosine_cost(torch.ones(2, 3), torch.ones(2, 3, device="meta")),
        "x and y must be on the same device: cpu != meta",
        id="cos-devices",
    ),
    pytest.param(lambda: cosine_cost(np.ones(3)), "^x ", id="cos-1d"),
    pytest.param(lambda: cosine_cost(np.ones((0, 3))), "^x ", id="cos-empty"),
    pytest.param(lambda: cosine_cost(np.array([[1.0, np.nan]])), "^x ", id="cos-nan"),
    pytest.param(lambda: sqeuclidean_cost(np.ones((2, 3)), np.ones((2, 4))), "^y ", id="sq-dims"),
    pytest.param(
        lambda: sqeuclidean_cost(np.ones((2, 3)), np.ones((4, 3)), exclude_self=True),
        "exclude_self",
        id="sq-exclude-self-rect",
    ),
    pytest.param(lambda: exact_ot(_C, None, [0.25, 0.25, 0.25]), "a and b", id="exact-mass"),
    pytest.param(lambda: exact_ot(_with(0, 0, math.nan)), "cost", id="exact-nan"),
    pytest.param(lambda: exact_ot(_C, [1.0, -0.5]), "^a ", id="exact-negative-a"),
    pytest.param(lambda: exact_ot(np.zeros((0, 2))), "cost", id="exact-empty"),
]


@pytest.mark.parametrize(("call", "match"), INVALID_COSTS)
def test_costs_and_exact_ot_reject_invalid_input(call: Callable[[], object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


# On the CPU outside autograd the costs and the result's properties are computed in numpy
# (one thread pool with the solver's products); under autograd, in torch. Both must agree.
def _grad(x: np.ndarray | None) -> torch.Tensor | None:
    return None if x is None else torch.tensor(x, requires_grad=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fn", [cosine_cost, sqeuclidean_cost])
def test_costs_agree_in_numpy_and_under_autograd(dtype: type, fn: Callable[..., Any]) -> None:
    rng = np.random.default_rng(40)
    x, y = 3.0 * _points(rng, 9, 5).astype(dtype), _points(rng, 6, 5).astype(dtype)
    tol = 1e-6 if dtype == np.float32 else 1e-13
    for yy, kwargs in ((y, {}), (None, {}), (None, {"exclude_self": True})):
        host = fn(x, yy, **kwargs)
        graph = fn(_grad(x), _grad(yy), **kwargs)
        assert isinstance(host, np.ndarray) and graph.requires_grad
        assert host.dtype == dtype and graph.dtype == torch.from_numpy(host).dtype
        scale = float(np.abs(host[np.isfinite(host)]).max())  # (rounding of the expansion)
        np.testing.assert_allclose(host, graph.detach().numpy(), rtol=tol, atol=tol * scale)
        as_tensor = fn(torch.from_numpy(x), None if yy is None else torch.from_numpy(yy), **kwargs)
        np.testing.assert_array_equal(as_tensor.numpy(), host)  # same numpy branch


@pytest.mark.parametrize(
    ("fn", "x", "y", "kwargs", "match"),
    [
        (cosine_cost, [[1.0, 0.0], [0.0, 0.0]], None, {}, "^x has an all-zero row"),
        (cosine_cost, [[1.0, 1.0]], [[1.0, 1.0], [0.0, 0.0]], {}, "^y has an all-zero row"),
        (cosine_cost, [[1.0, math.nan]], None, {}, "^x contains NaN"),
        (cosine_cost, [[1.0, 1.0]], [[1.0, 2.0], [3.0, 1.0]], {"exclude_self": True}, "square"),
        (
            sqeuclidean_cost,
            [[1.0, 1.0]],
            [[1.0, 2.0], [3.0, 1.0]],
            {"exclude_self": True},
            "square",
        ),
        (sqeuclidean_cost, [[1e200, 0.0], [-1e200, 0.0]], None, {}, "overflow"),
        (sqeuclidean_cost, [[1.0, 1.0]], [[1.0, math.inf]], {}, "^y contains NaN or inf"),
    ],
)
def test_costs_reject_invalid_points_in_numpy_and_under_autograd(
    fn: Callable[..., Any], x: Any, y: Any, kwargs: dict[str, Any], match: str
) -> None:
    x_np, y_np = np.array(x), None if y is None else np.array(y)
    for args in ((x_np, y_np), (_grad(x_np), _grad(y_np))):
        with pytest.raises(ValueError, match=match):
            fn(*args, **kwargs)


def test_result_properties_agree_in_numpy_and_under_autograd() -> None:
    C, a, b = _problem(8, 6, False, seed=41)
    C[1, 4] = np.inf  # a forbidden pair: no mass, no NaN
    host = sinkhorn(C, a, b, epsilon=0.2, n_iter=30)
    graph = sinkhorn(_grad(C), a, b, epsilon=0.2, n_iter=30)
    assert graph.plan.requires_grad
    for name in ("entropy", "transport_cost", "marginal_error", "mass"):
        assert getattr(host, name) == pytest.approx(getattr(graph, name), rel=1e-12), name
    np.testing.assert_allclose(host.log_plan, graph.log_plan.detach().numpy(), rtol=1e-12)
    assert host.log_plan[1, 4] == -np.inf and math.isfinite(host.transport_cost)


# The default engine runs the half-steps between absorptions as one autograd node with a
# hand-written backward pass; its gradients must be those of plain autograd through the
# same iterates (the history path) and of the log-domain engine, also across absorptions,
# log-sum-exp recoveries and early stops.
@pytest.mark.parametrize(
    ("epsilon", "relax", "tol"),
    [
        (0.5, (None, None), 0.0),
        (0.005, (None, None), 0.0),
        (0.001, (None, None), 0.0),
        (0.005, (0.3, 0.7), 0.0),
        (0.005, (None, 2.0), 0.0),
        (0.1, (None, None), 1e-6),
    ],
)
def test_fused_backward_equals_autograd(
    epsilon: float,
    relax: tuple[float | None, float | None],
    tol: float,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gen = torch.Generator().manual_seed(31)
    x0 = torch.randn(7, 4, dtype=F64, generator=gen)
    y0 = torch.randn(9, 4, dtype=F64, generator=gen)
    b = torch.rand(9, dtype=F64, generator=gen) + 0.5
    b = b / b.sum()
    weights = torch.randn(7, 9, dtype=F64, generator=gen)
    events: list[str] = []  # absorptions and log-sum-exp recoveries of the absorb engine
    for event in ("absorb", "recover_rows", "recover_cols"):
        original = getattr(gca_ot._AbsorbState, event)

        def counted(
            self: gca_ot._AbsorbState, original: Any = original, event: str = event
        ) -> None:
            events.append(event)
            original(self)

        monkeypatch.setattr(gca_ot._AbsorbState, event, counted)

    grads = {}
    for name, method, history in (
        ("fused", "absorb", False),
        ("autograd", "absorb", True),
        ("log", "log", False),
    ):
        x, y = x0.clone().requires_grad_(), y0.clone().requires_grad_()
        res = sinkhorn(
            cosine_cost(x, y),
            None,
            b,
            epsilon=epsilon,
            n_iter=30,
            tol=tol,
            relax_a=relax[0],
            relax_b=relax[1],
            method=method,
            history=history,
        )
        loss = (res.plan * weights).sum() + res.f.sum() - 0.5 * res.g.sum()
        grads[name] = torch.autograd.grad(loss, (x, y))
    if epsilon <= 0.005:
        assert events, "the case was meant to exercise absorptions or recoveries"
    for name in ("autograd", "log"):
        for got, want in zip(grads["fused"], grads[name], strict=True):
            torch.testing.assert_close(got, want, rtol=1e-7, atol=1e-9)


def test_fused_backward_gradcheck_across_absorptions() -> None:
    gen = torch.Generator().manual_seed(32)
    x = torch.randn(5, 3, dtype=F64, generator=gen, requires_grad=True)
    y = torch.randn(6, 3, dtype=F64, generator=gen, requires_grad=True)

    def loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        res = sinkhorn(cosine_cost(x, y), epsilon=0.004, n_iter=12, relax_b=0.5)
        return res.log_plan[:, 0].sum() + res.g.sum()

    assert torch.autograd.gradcheck(loss, (x, y))


def test_a_second_derivative_through_the_fused_backward_raises_and_the_log_engine_has_it() -> None:
    """The fused node's backward reads its scalings detached, so its own derivative would
    miss terms (it did: a Hessian-vector product 25% off the log engine's, silently). With
    ``create_graph`` the first derivative is still there; the second raises."""
    C0 = cosine_cost(*torch.randn(2, 12, 4, dtype=F64, generator=torch.Generator().manual_seed(5)))

    def first_derivative(method: str) -> tuple[torch.Tensor, torch.Tensor]:
        C = C0.clone().requires_grad_()
        res = sinkhorn(C, epsilon=0.3, n_iter=5, method=method, relax_a=0.7)
        (grad,) = torch.autograd.grad((res.plan**2).sum() + res.f.sum(), C, create_graph=True)
        return C, grad

    C, grad = first_derivative("log")
    (hvp,) = torch.autograd.grad((grad**2).sum(), C)
    assert hvp.abs().sum() > 0
    C, fused = first_derivative("absorb")
    torch.testing.assert_close(fused, grad, rtol=1e-10, atol=1e-12)
    assert fused.requires_grad
    with pytest.raises(RuntimeError, match=r"second derivative.*method='log'"):
        torch.autograd.grad((fused**2).sum(), C)


def test_a_whole_float_count_of_sweeps_is_taken_as_a_loss_takes_it() -> None:
    """``losses.get(..., n_iter=3.0)`` trained while ``sinkhorn(..., n_iter=3.0)`` was
    refused: a whole float counts as its integer in both; a fraction is refused by name."""
    C = cosine_cost(*torch.randn(2, 6, 3, dtype=F64, generator=torch.Generator().manual_seed(2)))
    want = sinkhorn(C, epsilon=0.5, n_iter=3)
    got = sinkhorn(C, epsilon=0.5, n_iter=3.0)
    assert torch.equal(got.plan, want.plan) and got.n_iter == 3
    assert sinkhorn(C, epsilon=0.5, n_iter=np.float32(2.0)).n_iter == 2
    for bad in (2.5, 0.0, float("inf"), True):
        with pytest.raises(ValueError, match=r"^n_iter must be an integer >= 1"):
            sinkhorn(C, epsilon=0.5, n_iter=bad)


def test_torch_func_grad_and_jacrev_run_through_a_solve_and_vmap_is_refused_in_words() -> None:
    """``torch.func.grad`` through ``sinkhorn`` failed in torch's words (the fused node has
    no ``setup_context``): under a ``torch.func`` transform the solve takes plain autograd
    operations, and its gradient is autograd's. ``vmap`` (a batch of problems) cannot run
    the data-reading iterations: it is refused, naming the argument; so is a 3-D cost."""
    gen = torch.Generator().manual_seed(3)
    C0 = cosine_cost(*torch.randn(2, 9, 4, dtype=F64, generator=gen))

    def energy(C: torch.Tensor) -> torch.Tensor:
        res = sinkhorn(C, epsilon=0.3, n_iter=8, relax_a=0.7)
        return (res.plan * C).sum() + res.f.sum()

    C = C0.clone().requires_grad_()
    energy(C).backward()
    torch.testing.assert_close(torch.func.grad(energy)(C0), C.grad, rtol=1e-12, atol=1e-14)
    rows = torch.func.jacrev(lambda C: sinkhorn(C, epsilon=0.3, n_iter=8).plan.sum(1))(C0)
    assert rows.shape == (9, 9, 9) and torch.isfinite(rows).all()
    batch = torch.stack([C0, C0.flip(0)])
    with pytest.raises(ValueError, match=r"^cost is batched by torch.func.vmap.*in a loop"):
        torch.func.vmap(lambda C: sinkhorn(C, epsilon=0.3).plan)(batch)
    with pytest.raises(ValueError, match=r"shape \(2, 9, 9\) \(one problem per call"):
        sinkhorn(batch, epsilon=0.3)


@pytest.mark.parametrize("method", ["absorb", "log"])
@pytest.mark.parametrize("relax", [None, 0.5])
def test_forward_mode_derivatives_agree_with_reverse_mode(method: str, relax: float | None) -> None:
    """``torch.func.jacfwd`` through a solve failed in torch's words ("Cannot access data
    pointer": a tensor without requires_grad took the numpy path), and once past that the
    absorbing engine's stretch ran on the detached kernel, which ``no_grad`` does not hide
    from forward mode: its derivative read 0.07 off. Forward mode (jacfwd, a dual tensor)
    and reverse mode now give one derivative, and hessian is jacrev's twice."""
    gen = torch.Generator().manual_seed(5)
    C0 = cosine_cost(*torch.randn(2, 7, 4, dtype=F64, generator=gen))

    def energy(C: torch.Tensor) -> torch.Tensor:
        res = sinkhorn(C, epsilon=0.3, n_iter=10, relax_a=relax, relax_b=relax, method=method)
        return (res.plan * C).sum()

    reverse = torch.func.grad(energy)(C0)
    torch.testing.assert_close(torch.func.jacfwd(energy)(C0), reverse, rtol=1e-12, atol=1e-14)
    tangent = torch.randn(7, 7, dtype=F64, generator=gen)
    with torch.autograd.forward_ad.dual_level():
        out = energy(torch.autograd.forward_ad.make_dual(C0, tangent))
        jvp = torch.autograd.forward_ad.unpack_dual(out).tangent
    torch.testing.assert_close(jvp, (reverse * tangent).sum(), rtol=1e-12, atol=1e-14)
    twice = torch.func.jacrev(torch.func.jacrev(energy))(C0)
    torch.testing.assert_close(torch.func.hessian(energy)(C0), twice, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("n", "dtype"), [(1024, F32), (724, F64)])
def test_large_kernels_live_in_huge_page_aligned_buffers(n: int, dtype: torch.dtype) -> None:
    """A kernel of 4 MiB or more (CPU, no autograd) is built in a 2 MiB-aligned buffer (kept
    for speed, see benchmarks/README.md), and the plan scaled into it is the log engine's
    plan."""
    gen = torch.Generator().manual_seed(n)
    x, y = (
        torch.randn(n, 8, generator=gen, dtype=dtype),
        torch.randn(n, 8, generator=gen, dtype=dtype),
    )
    C = cosine_cost(x, y)
    fast = sinkhorn(C, epsilon=0.05, n_iter=5)
    reference = sinkhorn(C, epsilon=0.05, n_iter=5, method="log")
    big = n * n * torch.finfo(dtype).bits // 8 >= 4 << 20  # (724 x 724 float64 is not)
    assert not big or fast.plan.data_ptr() % (2 << 20) == 0
    small = _xp._matrix((100, 100), np.float32)
    assert small.shape == (100, 100) and small.dtype == np.float32
    atol = 1e-12 if dtype == F64 else 1e-9
    torch.testing.assert_close(fast.plan, reference.plan, rtol=1e-4, atol=atol)


@pytest.fixture
def row_passes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry per call of the engine's per-row reduction of the cost (``_row_range``)."""
    calls: list[int] = []
    original = _absorb._row_range

    def counted(ns: Any, c: Any) -> tuple[Any, Any]:
        calls.append(1)
        return original(ns, c)

    monkeypatch.setattr(_absorb, "_row_range", counted)
    return calls


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("shift", [0.0, 100.0, -100.0])
def test_plan_is_invariant_under_a_constant_shift_of_the_cost(
    dtype: torch.dtype, shift: float, row_passes: list[int]
) -> None:
    """Balanced plans do not change when a constant is added to the cost. The engine starts
    from ``f = 0`` while every entry of ``exp(-C/ε)`` is within its bounds (no per-row
    reductions) and from the row minima otherwise; both starts give the same plan."""
    gen = torch.Generator().manual_seed(_seed(str(dtype), shift))
    C = cosine_cost(torch.randn(50, 8, generator=gen), torch.randn(40, 8, generator=gen))
    C = (torch.round(C * 1024) / 1024).to(dtype)  # C + shift is exact in float32 too
    ref = sinkhorn(C, epsilon=0.5, n_iter=200)
    assert not row_passes  # C in [0, 2], C/ε <= 4: the f = 0 start
    res = sinkhorn(C + shift, epsilon=0.5, n_iter=200)
    assert len(row_passes) == (1 if shift else 0)  # |C + 100|/ε > bound: row minima
    # float32 exponents near |C + shift| / ε = 200 carry rounding errors of ~1e-5
    tol = 1e-4 if dtype == F32 else 1e-11
    torch.testing.assert_close(res.plan, ref.plan, rtol=tol, atol=tol * float(ref.plan.max()))
    torch.testing.assert_close(res.errors, ref.errors, rtol=1e-3, atol=tol)


def test_result_keeps_copies_of_numpy_inputs_and_torch_inputs_themselves() -> None:
    """The result's cost-reading properties describe the problem that was solved when the
    inputs were numpy (they are copied); torch inputs are kept as passed, without a copy
    (as any torch function keeps its inputs), and read when a property needs them."""
    rng = np.random.default_rng(3)
    C_np = cosine_cost(rng.standard_normal((6, 3)), rng.standard_normal((5, 3)))
    res = sinkhorn(C_np, epsilon=0.1)
    expected = (res.transport_cost, res.marginal_error)
    C_np *= 10.0
    np.testing.assert_allclose(res.log_plan, np.log(res.plan), rtol=1e-12)
    assert (res.transport_cost, res.marginal_error) == expected

    C = torch.from_numpy(C_np / 10.0)
    a = torch.full((6,), 1 / 6, dtype=torch.float64)
    res = sinkhorn(C, a, epsilon=0.1)
    assert res.cost is C and res.a is a
    before = res.transport_cost
    C.mul_(2.0)
    assert res.transport_cost == pytest.approx(2 * before, rel=1e-12)
    torch.testing.assert_close(res.log_plan, torch.log(res.plan) - C / 0.2, rtol=0, atol=1e-9)


@pytest.mark.parametrize(
    ("g", "match"),
    [
        (np.ones(5), r"^g must be a vector of shape \(6,\), got shape \(5,\)$"),
        (np.full(6, np.nan), r"^g must be finite"),
        (np.array([0.0] * 5 + [np.inf]), r"^g must be finite"),
    ],
)
def test_row_projection_names_what_is_wrong_with_g(g: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        row_projection(np.ones((4, 6)), g=g, epsilon=0.5)


def test_row_projection_takes_g_by_name_and_warns_of_it_by_position() -> None:
    """``row_projection(C, a, b)``, as one calls :func:`sinkhorn`, read the column marginal
    ``b`` as a potential without a word: by position it now warns, naming ``g=``."""
    rng = np.random.default_rng(0)
    C, a, g = rng.random((4, 6)), np.full(4, 0.25), rng.random(6)
    named = row_projection(C, a, g=g, epsilon=0.5)
    with pytest.warns(DeprecationWarning, match=r"pass the column potential by name, g="):
        positional = row_projection(C, a, g, epsilon=0.5)
    np.testing.assert_array_equal(named[0], positional[0])
    with pytest.raises(TypeError, match=r"pass g=\.\.\. by name"):
        row_projection(C, a, g, g, epsilon=0.5)


@pytest.mark.parametrize(
    "call",
    [
        lambda C, t: sinkhorn(C, t, epsilon=0.3),
        lambda C, t: sinkhorn(C, None, t, epsilon=0.3),
        lambda C, t: row_projection(C, t, epsilon=0.3),
        lambda C, t: exact_ot(C, t),
    ],
)
def test_a_torch_marginal_beside_a_numpy_cost_is_refused_up_front(call: Callable) -> None:
    """The results take the cost's kind: a numpy cost with a marginal that required grad
    ran the whole solve, then failed in torch's words ("Can't call numpy() on Tensor that
    requires grad"); row_projection returned numpy and dropped the gradient silently."""
    C = np.random.default_rng(0).random((5, 5))
    t = torch.full((5,), 0.2, dtype=torch.float64, requires_grad=True)
    with pytest.raises(ValueError, match=r"^cost and (a|b) must both be torch tensors when"):
        call(C, t)
    assert isinstance(call(torch.as_tensor(C), t), torch.Tensor | SinkhornResult | tuple)


@pytest.mark.parametrize("dtype", [F32, F64])
def test_forbidden_pairs_start_from_the_validations_row_minima(
    dtype: torch.dtype, row_passes: list[int]
) -> None:
    """With +inf entries the validation already reduced every row (to find rows with no
    finite entry); the engine starts from those minima instead of reducing the rows again,
    and gives the log engine's plan."""
    gen = torch.Generator().manual_seed(_seed(str(dtype), "inf-start"))
    x = torch.randn(30, 6, generator=gen, dtype=dtype)
    C = cosine_cost(x, exclude_self=True)  # +inf diagonal, C/ε up to 200: no f = 0 start
    res = sinkhorn(C, epsilon=0.01, n_iter=50)
    assert not row_passes
    ref = sinkhorn(C, epsilon=0.01, n_iter=50, method="log")
    tol = 1e-4 if dtype == F32 else 1e-10
    torch.testing.assert_close(res.plan, ref.plan, rtol=tol, atol=tol * float(ref.plan.max()))
    assert bool((res.plan.diagonal() == 0).all())


def test_a_differentiable_solve_leaves_nothing_alive() -> None:
    """The fused backward node kept the whole solver state on its context, whose scalings are
    the node's own outputs: a cycle through autograd's graph that the garbage collector
    cannot see, so every training step leaked its kernel (~1 MB at N = 256, 24 GB over a
    sweep of runs)."""
    import gc

    from gca_viz import losses

    def alive() -> int:
        gc.collect()
        return sum(
            type(o).__name__ in ("_AbsorbState", "_Problem", "_Stretch") for o in gc.get_objects()
        )

    before = alive()
    z1 = torch.randn(64, 3, requires_grad=True, generator=torch.Generator().manual_seed(0))
    z2 = torch.randn(64, 3, requires_grad=True, generator=torch.Generator().manual_seed(1))
    for name in ("gca_ince", "gca_uot"):
        loss = losses.get(name)
        for _ in range(5):
            loss(z1, z2).backward()
    assert alive() == before


def test_what_a_caller_vouches_for_covers_its_own_cost_only() -> None:
    """ot._checks.trusted hands the solver a cost's known range (a loss's cosine cost), so
    that it reads nothing to validate it; any other cost in the block is validated."""
    from gca_viz.ot._checks import _Checked, trusted

    gen = torch.Generator().manual_seed(0)
    C = cosine_cost(torch.randn(6, 3, generator=gen), torch.randn(6, 3, generator=gen))
    other = C.clone()
    other[0, 0] = math.nan
    with trusted(_Checked(0.0, 2.0, 2.0, None, (1.0, 1.0)), C):
        res = sinkhorn(C, epsilon=0.5, n_iter=20)
        with pytest.raises(ValueError, match="cost contains NaN"):
            sinkhorn(other, epsilon=0.5, n_iter=20)
        with pytest.raises(ValueError, match="cost contains NaN"):
            row_projection(other, epsilon=0.5)
    torch.testing.assert_close(res.plan, sinkhorn(C, epsilon=0.5, n_iter=20).plan)
