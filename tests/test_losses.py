"""Tests for gca_viz.losses: every loss against its formula (docs/math.md sections 1, 3-5).

Each named method is checked against a naive implementation written from the formula, its
limiting cases (one half-step is InfoNCE, n_iter = 1 is RINCE, λ -> inf is balanced), the
monotone-alignment theorem for every target prior, numerical robustness (finite values and
gradients in float32, finite differences in float64), that it trains, and its validation.
The matrices parametrize over the registries, so a new entry is covered automatically.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
import warnings
from typing import Any

import numpy as np
import pytest
import torch

from gca_viz import losses, ot, targets
from gca_viz.losses.module import GCALoss

LAYOUTS = ("cross", "joint")
METHODS = tuple(losses.LOSSES)
STAGE_REGISTRIES = {
    "cost": losses.COSTS,
    "target": losses.TARGETS,
    "projection": losses.PROJECTIONS,
    "divergence": losses.DIVERGENCES,
}


# --------------------------------------------------------------------------- helpers


def _batch(
    n: int = 12, d: int = 6, seed: int = 0, dtype: torch.dtype = torch.float64
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two random, unnormalised views ``(n, d)`` from a seeded generator."""
    gen = torch.Generator().manual_seed(seed)
    z1 = torch.randn(n, d, generator=gen, dtype=dtype)
    z2 = torch.randn(n, d, generator=gen, dtype=dtype)
    return z1, z2


def _unit(z: torch.Tensor) -> torch.Tensor:
    return z / z.norm(dim=1, keepdim=True)


def _similarity(z1: torch.Tensor, z2: torch.Tensor, layout: str) -> torch.Tensor:
    """Cosine similarities of the layout; joint: over ``[z1; z2]`` (self-pairs included)."""
    if layout == "cross":
        return _unit(z1) @ _unit(z2).T
    z = _unit(torch.cat([z1, z2]))
    return z @ z.T


def _cost(z1: torch.Tensor, z2: torch.Tensor, layout: str) -> torch.Tensor:
    """``C = 1 - s``; in the joint layout ``C_ii = +inf`` (self-pairs excluded)."""
    C = 1.0 - _similarity(z1, z2, layout)
    if layout == "joint":
        C = C.masked_fill(torch.eye(C.shape[0], dtype=torch.bool), math.inf)
    return C


def _partner(i: int, n: int, layout: str) -> int:
    return i if layout == "cross" else (i + n) % (2 * n)


def _gen_kl(A: torch.Tensor, B: torch.Tensor) -> float:
    """Generalised KL ``sum A log(A/B) - sum A + sum B`` with ``0 log 0 = 0``."""
    total = 0.0
    for a, b in zip(A.flatten().tolist(), B.flatten().tolist(), strict=True):
        if a > 0:
            total += a * math.log(a / b)
        total += b - a
    return total


def _has_param(method: str, name: str) -> bool:
    return name in losses.get(method).params


def _small_iters(method: str, n_iter: int = 3) -> dict[str, Any]:
    return {"n_iter": n_iter} if _has_param(method, "n_iter") else {}


def _target_setup(
    name: str, n: int, layout: str, rng: np.random.Generator
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Random side information for target ``name``: (get(...) kwargs, forward kwargs)."""
    size = n if layout == "cross" else 2 * n
    if name == "class":
        labels = rng.integers(0, 3, size=n)
        return {"gamma": float(rng.uniform(0.05, 1.0))}, {"labels": labels}
    if name == "domain":
        domains = rng.integers(0, 2, size=n)
        alpha, beta, _ = rng.dirichlet([1.0, 1.0, 1.0])  # shares of a row: α + β <= 1
        return {"alpha": float(alpha), "beta": float(beta)}, {"domains": domains}
    if name == "custom":
        matrix = rng.uniform(0.05, 1.0, size=(size, size))
        if layout == "joint":
            np.fill_diagonal(matrix, 0.0)
        return {"target_matrix": matrix}, {}
    return {}, {}  # pairs, or a new parameter-free target: its defaults must build


def _build(
    name: str, n: int, layout: str, get_kw: dict[str, Any], fwd_kw: dict[str, Any]
) -> torch.Tensor:
    params = {k: v for k, v in get_kw.items() if k != "target_matrix"}
    return targets.build_target(
        name, n, layout, matrix=get_kw.get("target_matrix"), **fwd_kw, **params
    )


# ------------------------------------------------------------------------------ INCE


def _ince_naive(z1: torch.Tensor, z2: torch.Tensor, epsilon: float) -> float:
    """``(1/N) sum_i [-s_ii/ε + log sum_j exp(s_ij/ε)]``, one row at a time."""
    s = _similarity(z1, z2, "cross").tolist()
    n = len(s)
    total = 0.0
    for i in range(n):
        top = max(s[i]) / epsilon  # log-sum-exp shift
        lse = top + math.log(sum(math.exp(s[i][j] / epsilon - top) for j in range(n)))
        total += -s[i][i] / epsilon + lse
    return total / n


@pytest.mark.parametrize("epsilon", [0.05, 0.5, 2.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_ince_equals_naive_loop(epsilon: float, seed: int) -> None:
    z1, z2 = _batch(10, 5, seed)
    value = losses.get("ince", epsilon=epsilon)(z1, z2)
    assert float(value) == pytest.approx(_ince_naive(z1, z2, epsilon), rel=1e-10, abs=1e-10)


@pytest.mark.parametrize("epsilon", [0.05, 0.5, 2.0])
def test_ince_is_kl_to_first_half_step(epsilon: float) -> None:
    z1, z2 = _batch(9, 4, seed=3)
    n = z1.shape[0]
    C = _cost(z1, z2, "cross")
    ones = torch.ones(n, dtype=torch.float64)
    res = ot.sinkhorn(C, ones, ones, epsilon=epsilon, n_iter=1, history=True)
    expected = _gen_kl(torch.eye(n, dtype=torch.float64), res.history[0]) / n
    value = losses.get("ince", epsilon=epsilon)(z1, z2)
    assert float(value) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("epsilon", [0.05, 0.5, 2.0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ince_joint_is_nt_xent(epsilon: float, dtype: torch.dtype) -> None:
    z1, z2 = _batch(8, 6, seed=4, dtype=dtype)
    n = z1.shape[0]
    logits = _similarity(z1, z2, "joint") / epsilon  # (2N, 2N)
    logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool), -math.inf)
    labels = (torch.arange(2 * n) + n) % (2 * n)
    expected = torch.nn.functional.cross_entropy(logits, labels)
    value = losses.get("ince", epsilon=epsilon, layout="joint")(z1, z2)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(value, expected, rtol=tol, atol=tol)


# ------------------------------------------------------------------- monotonicity theorem


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("target", list(targets.TARGETS))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kl_to_target_never_increases_over_half_steps(target: str, layout: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 10
    get_kw, fwd_kw = _target_setup(target, n, layout, rng)
    T = _build(target, n, layout, get_kw, fwd_kw)
    mu, nu = targets.target_marginals(T)
    z1, z2 = _batch(n, 5, seed)
    C = _cost(z1, z2, layout)
    epsilon = float(rng.choice([0.1, 0.3, 1.0]))
    res = ot.sinkhorn(C, mu, nu, epsilon=epsilon, n_iter=15, history=True)
    assert len(res.history) == 30
    kernel = torch.exp(-C / epsilon)  # P^(0)
    kls = [_gen_kl(T, P) for P in (kernel, *res.history)]
    assert all(math.isfinite(v) for v in kls)
    for k in range(1, len(kls)):
        assert kls[k] <= kls[k - 1] + 1e-10, f"KL rose at half-step {k}: {kls[k - 1]} -> {kls[k]}"
    assert kls[-1] < kls[1]  # the column steps do some work on a random batch


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("target", list(targets.TARGETS))
@pytest.mark.parametrize("seed", [0, 1])
def test_gca_ince_at_most_ince_for_every_target(target: str, layout: str, seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    n = 12
    get_kw, fwd_kw = _target_setup(target, n, layout, rng)
    z1, z2 = _batch(n, 6, seed)
    for epsilon in (0.1, 0.5):
        common = {"target": target, "layout": layout, "epsilon": epsilon, **get_kw}
        ince = losses.get("ince", **common)(z1, z2, **fwd_kw)
        gca = losses.get("gca_ince", n_iter=10, **common)(z1, z2, **fwd_kw)
        assert torch.isfinite(ince) and torch.isfinite(gca)
        assert float(gca) <= float(ince) + 1e-10


def test_gca_ince_is_kl_to_last_half_step() -> None:
    z1, z2 = _batch(10, 5, seed=5)
    n, epsilon, n_iter = 10, 0.2, 7
    ones = torch.ones(n, dtype=torch.float64)
    res = ot.sinkhorn(_cost(z1, z2, "cross"), ones, ones, epsilon=epsilon, n_iter=n_iter)
    expected = _gen_kl(torch.eye(n, dtype=torch.float64), res.plan) / n
    value = losses.get("gca_ince", epsilon=epsilon, n_iter=n_iter)(z1, z2)
    assert float(value) == pytest.approx(expected, rel=1e-10)


# ------------------------------------------------------------------------------ RINCE


def _rince_naive(
    z1: torch.Tensor,
    z2: torch.Tensor,
    layout: str,
    epsilon: float,
    q: float,
    lam: float,
    v: list[float] | None = None,
) -> float:
    """``mean_i [-pos_i^q/q + (λ Z_i)^q/q]``, ``pos_i = K_{i,pos(i)} v_pos(i)``,
    ``Z_i = sum_j K_ij v_j``, ``K = exp(-(1 - s)/ε)`` (``K_ii = 0`` in the joint layout)."""
    s = _similarity(z1, z2, layout).tolist()
    n, rows = z1.shape[0], len(s)
    v = v if v is not None else [1.0] * rows
    total = 0.0
    for i in range(rows):
        K = [
            0.0 if (layout == "joint" and i == j) else math.exp(-(1.0 - s[i][j]) / epsilon)
            for j in range(rows)
        ]
        p = _partner(i, n, layout)
        pos = K[p] * v[p]
        Z = sum(K[j] * v[j] for j in range(rows))
        total += -(pos**q) / q + (lam * Z) ** q / q
    return total / rows


RINCE_PARAMS = [(0.5, 0.6, 0.01), (0.2, 1.0, 0.5), (1.0, 0.3, 0.0), (0.1, 0.05, 1.0)]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(("epsilon", "q", "lam"), RINCE_PARAMS)
def test_rince_equals_naive_loop(layout: str, epsilon: float, q: float, lam: float) -> None:
    z1, z2 = _batch(8, 5, seed=6)
    value = losses.get("rince", epsilon=epsilon, q=q, lam=lam, layout=layout)(z1, z2)
    expected = _rince_naive(z1, z2, layout, epsilon, q, lam)
    assert float(value) == pytest.approx(expected, rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(("epsilon", "q", "lam"), RINCE_PARAMS)
def test_gca_rince_one_sweep_is_rince(layout: str, epsilon: float, q: float, lam: float) -> None:
    z1, z2 = _batch(8, 5, seed=7)
    kw = {"epsilon": epsilon, "q": q, "lam": lam, "layout": layout}
    rince = losses.get("rince", **kw)(z1, z2)
    gca = losses.get("gca_rince", n_iter=1, **kw)(z1, z2)
    torch.testing.assert_close(gca, rince, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("n_iter", [2, 5])
def test_gca_rince_uses_previous_column_scaling(layout: str, n_iter: int) -> None:
    z1, z2 = _batch(8, 5, seed=8)
    epsilon, q, lam = 0.3, 0.6, 0.2
    C = _cost(z1, z2, layout)
    ones = torch.ones(C.shape[0], dtype=torch.float64)
    res = ot.sinkhorn(C, ones, ones, epsilon=epsilon, n_iter=n_iter - 1)
    v = torch.exp(res.g / epsilon).tolist()  # v^(T-1)
    expected = _rince_naive(z1, z2, layout, epsilon, q, lam, v=v)
    kw = {"epsilon": epsilon, "q": q, "lam": lam, "layout": layout, "n_iter": n_iter}
    value = losses.get("gca_rince", **kw)(z1, z2)
    assert float(value) == pytest.approx(expected, rel=1e-9)


# ---------------------------------------------------------------------------- GCA-UOT


def _balanced_row_nll(z1: torch.Tensor, z2: torch.Tensor, epsilon: float, n_iter: int) -> float:
    """``mean_i -log(P_ii / (P 1)_i)`` of the balanced Sinkhorn plan after ``n_iter`` sweeps."""
    n = z1.shape[0]
    ones = torch.ones(n, dtype=torch.float64)
    P = ot.sinkhorn(_cost(z1, z2, "cross"), ones, ones, epsilon=epsilon, n_iter=n_iter).plan
    return sum(-math.log(float(P[i, i] / P[i].sum())) for i in range(n)) / n


@pytest.mark.parametrize("n_iter", [1, 3, 10])
def test_gca_uot_with_huge_relaxation_is_balanced(n_iter: int) -> None:
    z1, z2 = _batch(10, 5, seed=9)
    epsilon = 0.5
    uot = losses.get(
        "gca_uot", epsilon=epsilon, n_iter=n_iter, relax_a=1e9, relax_b=1e9, r1=1.0, r2=0.0
    )(z1, z2)
    assert float(uot) == pytest.approx(_balanced_row_nll(z1, z2, epsilon, n_iter), abs=1e-7)


def test_gca_uot_and_balanced_value_approach_gca_ince() -> None:
    z1, z2 = _batch(10, 5, seed=10)
    epsilon, n_iter = 0.5, 200
    uot = losses.get("gca_uot", epsilon=epsilon, n_iter=n_iter, relax_a=1e9, relax_b=1e9, r2=0.0)(
        z1, z2
    )
    gca = losses.get("gca_ince", epsilon=epsilon, n_iter=n_iter)(z1, z2)
    assert abs(float(uot) - float(gca)) < 1e-6
    assert abs(_balanced_row_nll(z1, z2, epsilon, n_iter) - float(gca)) < 1e-6
    # ... and the limit is approached: after few sweeps the gap is larger.
    few = losses.get("gca_uot", epsilon=0.05, n_iter=1, relax_a=1e9, relax_b=1e9, r2=0.0)
    many = losses.get("gca_ince", epsilon=0.05, n_iter=n_iter)
    assert abs(float(few(z1, z2)) - float(many(z1, z2))) > 1e-4


@pytest.mark.parametrize(
    ("relax", "r1", "r2", "q", "lam"), [(0.2, 1.0, 0.2, 0.6, 0.01), (2.0, 0.5, 1.0, 1.0, 0.3)]
)
def test_gca_uot_equals_formula_on_unbalanced_plan(
    relax: float, r1: float, r2: float, q: float, lam: float
) -> None:
    z1, z2 = _batch(8, 4, seed=11)
    n, epsilon, n_iter = 8, 0.5, 10
    ones = torch.ones(n, dtype=torch.float64)
    res = ot.sinkhorn(
        _cost(z1, z2, "cross"),
        ones,
        ones,
        epsilon=epsilon,
        n_iter=n_iter,
        relax_a=relax,
        relax_b=relax,
    )
    P = res.plan
    nll = sum(-math.log(float(P[i, i] / P[i].sum())) for i in range(n)) / n
    v = torch.exp(res.g / epsilon).tolist()
    rince_term = _rince_naive(z1, z2, "cross", epsilon, q, lam, v=v)
    kw = {"relax_a": relax, "relax_b": relax, "r1": r1, "r2": r2, "q": q, "lam": lam}
    value = losses.get("gca_uot", epsilon=epsilon, n_iter=n_iter, **kw)(z1, z2)
    assert float(value) == pytest.approx(r1 * nll + r2 * rince_term, rel=1e-9)


# ------------------------------------------------------------------------- other methods


def test_iot_is_cross_entropy_of_balanced_joint_plan() -> None:
    z1, z2 = _batch(6, 4, seed=12)
    n, epsilon, n_iter = 6, 0.4, 8
    ones = torch.ones(2 * n, dtype=torch.float64)
    P = ot.sinkhorn(_cost(z1, z2, "joint"), ones, ones, epsilon=epsilon, n_iter=n_iter).plan
    expected = sum(-math.log(float(P[i, _partner(i, n, "joint")])) for i in range(2 * n)) / (2 * n)
    value = losses.get("iot", epsilon=epsilon, n_iter=n_iter)(z1, z2)
    assert float(value) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize(("epsilon", "n_iter"), [(0.05, 1), (0.4, 8)])
def test_iot_is_gca_ince_in_the_joint_layout_even_far_from_convergence(
    epsilon: float, n_iter: int
) -> None:
    """docs/math.md said IOT differs from GCA-INCE by the rows' mass terms (P1)ᵢ − 1 until
    Sinkhorn converges: their sum is ΣP − n, which the last column step makes 0 at any T,
    so with the pairs target the two losses agree in value and gradient (T = 1 at ε = 0.05
    is far from converged)."""
    z1, z2 = _batch(8, 4, seed=14)
    values, grads = [], []
    for name in ("iot", "gca_ince"):
        a, b = z1.clone().requires_grad_(), z2.clone().requires_grad_()
        value = losses.get(name, epsilon=epsilon, n_iter=n_iter, layout="joint")(a, b)
        values.append(float(value))
        grads.append(torch.cat(torch.autograd.grad(value, (a, b))))
    assert values[0] == pytest.approx(values[1], rel=1e-12)
    assert torch.allclose(grads[0], grads[1], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_byol_is_two_minus_two_cosine(layout: str) -> None:
    z1, z2 = _batch(8, 5, seed=13)
    s = _similarity(z1, z2, "cross")
    expected = float((2.0 - 2.0 * s.diagonal()).mean())
    assert float(losses.get("byol", layout=layout)(z1, z2)) == pytest.approx(expected, rel=1e-12)
    # alignment only: no dependence on ε, and 0 for identical directions
    assert float(losses.get("byol", epsilon=3.0)(z1, z2)) == pytest.approx(expected, rel=1e-12)
    assert float(losses.get("byol")(z1, 2.0 * z1)) == pytest.approx(0.0, abs=1e-12)


# ----------------------------------------------------------------- numerical robustness


def _hard_batch(kind: str, n: int = 12, d: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    z1 = torch.randn(n, d, generator=gen)
    if kind == "random":
        z2 = torch.randn(n, d, generator=gen)
    elif kind == "near_duplicate":
        z2 = z1 + 1e-4 * torch.randn(n, d, generator=gen)
    elif kind == "clusters":
        centres = torch.randn(3, d, generator=gen)
        which = torch.arange(n) % 3
        z1 = centres[which] + 1e-2 * torch.randn(n, d, generator=gen)
        z2 = centres[which] + 1e-2 * torch.randn(n, d, generator=gen)
    elif kind == "antipodal":
        z2 = -z1
    else:
        raise AssertionError(kind)
    return z1, z2


# Regression guard: IOT-uni once took log(mean off-diagonal P) = log(0) -> NaN gradient
# (cross layout, ε = 1e-3, near-duplicate views); it is now computed from log_plan.
FINITE_CASES = list(
    itertools.product(
        METHODS,
        LAYOUTS,
        (1e-3, 0.05, 1.0, 10.0),
        ("random", "near_duplicate", "clusters", "antipodal"),
    )
)


@pytest.mark.parametrize(("method", "layout", "epsilon", "kind"), FINITE_CASES)
# ε = 1e-3 underflows RINCE's terms (and GCA-UOT's RINCE-type ones), as warned
@pytest.mark.filterwarnings("ignore:.*RINCE-type terms|RINCE's terms")
def test_loss_and_gradients_finite_float32(
    method: str, layout: str, epsilon: float, kind: str
) -> None:
    z1, z2 = _hard_batch(kind)
    z1.requires_grad_(True)
    z2.requires_grad_(True)
    value = losses.get(method, epsilon=epsilon, layout=layout)(z1, z2)
    assert value.dtype == torch.float32
    assert torch.isfinite(value), float(value)
    value.backward()
    assert z1.grad is not None and z2.grad is not None
    assert torch.isfinite(z1.grad).all() and torch.isfinite(z2.grad).all()


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("method", METHODS)
def test_gradients_match_finite_differences(method: str, layout: str) -> None:
    z1, z2 = _batch(4, 3, seed=14)
    z1.requires_grad_(True)
    z2.requires_grad_(True)
    loss = losses.get(method, epsilon=0.5, layout=layout, **_small_iters(method))
    assert torch.autograd.gradcheck(lambda a, b: loss(a, b), (z1, z2), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("method", METHODS)
def test_loss_decreases_on_free_embeddings(method: str, layout: str) -> None:
    gen = torch.Generator().manual_seed(15)
    z1 = torch.nn.Parameter(torch.randn(16, 8, generator=gen))
    z2 = torch.nn.Parameter(torch.randn(16, 8, generator=gen))
    loss = losses.get(method, layout=layout)
    opt = torch.optim.Adam([z1, z2], lr=0.05)
    with torch.no_grad():
        initial = float(loss(z1, z2))
    for _ in range(30):
        opt.zero_grad()
        value = loss(z1, z2)
        value.backward()
        opt.step()
    with torch.no_grad():
        final = float(loss(z1, z2))
    assert math.isfinite(final)
    assert final < initial - 1e-3 * max(1.0, abs(initial)), (initial, final)


# ------------------------------------------------------------------------- validation


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("epsilon", [0, -1, 0.0, math.inf, math.nan])
def test_invalid_epsilon_rejected_in_constructor(method: str, epsilon: float) -> None:
    with pytest.raises(ValueError, match="epsilon"):
        losses.get(method, epsilon=epsilon)


def _methods_with(param: str) -> list[str]:
    found = [m for m in METHODS if _has_param(m, param)]
    assert found, f"no method has {param!r}"
    return found


@pytest.mark.parametrize("method", _methods_with("q"))
@pytest.mark.parametrize("q", [0, 1.5, -0.5])
def test_invalid_q_rejected(method: str, q: float) -> None:
    with pytest.raises(ValueError, match=r"\bq must be"):
        losses.get(method, q=q)


@pytest.mark.parametrize("method", _methods_with("lam"))
def test_negative_lam_rejected(method: str) -> None:
    with pytest.raises(ValueError, match=r"\blam must be a number >= 0"):
        losses.get(method, lam=-1)


@pytest.mark.parametrize("method", _methods_with("relax_a"))
@pytest.mark.parametrize(
    ("key", "value"), [("relax_a", -1), ("relax_b", 0), ("relax_a", -math.inf)]
)
def test_invalid_relaxation_rejected(method: str, key: str, value: float) -> None:
    with pytest.raises(ValueError, match=key):
        losses.get(method, **{key: value})


@pytest.mark.parametrize("method", _methods_with("n_iter"))
@pytest.mark.parametrize("n_iter", [0, -3, 2.5, 1e30, 100_001])
def test_invalid_n_iter_rejected(method: str, n_iter: float) -> None:
    with pytest.raises(ValueError, match="n_iter"):
        losses.get(method, n_iter=n_iter)


def test_unknown_method_name() -> None:
    with pytest.raises(ValueError, match=r"unknown loss 'simclr_v9'.*gca_ince"):
        losses.get("simclr_v9")
    with pytest.raises(KeyError):
        losses.get("simclr_v9")


@pytest.mark.parametrize("position", range(4))
def test_unknown_stage_name(position: int) -> None:
    stages = ["cosine", "pairs", "sinkhorn", "kl"]
    kind = list(STAGE_REGISTRIES)[position]
    stages[position] = "nope"
    with pytest.raises(ValueError, match=rf"unknown {kind} 'nope'"):
        losses.compose(*stages)


@pytest.mark.parametrize(
    ("method", "key"), [("ince", "n_iter"), ("gca_ince", "temperature"), ("byol", "q")]
)
def test_unknown_parameter(method: str, key: str) -> None:
    with pytest.raises(ValueError, match=rf"no parameter '{key}'"):
        losses.get(method, **{key: 1})


@pytest.mark.parametrize(
    ("z1", "z2", "match"),
    [
        (torch.ones(8, 4), torch.ones(6, 4), "same shape"),
        (torch.ones(8, 4), torch.ones(8, 5), "same shape"),
        (torch.ones(8), torch.ones(8), "z1 must have shape"),
        (torch.ones(1, 4), torch.ones(1, 4), "z1 must have shape"),
        (torch.ones(8, 4), torch.full((8, 4), math.nan), "z2 contains NaN"),
        (torch.full((8, 4), math.inf), torch.ones(8, 4), "z1 contains NaN or inf"),
        (torch.ones(8, 4, dtype=torch.long), torch.ones(8, 4), "floating point"),
        # converting one would let the argument order pick the precision (or the device)
        (
            torch.ones(8, 4),
            torch.ones(8, 4, dtype=torch.float64),
            "z1 and z2 must have the same dtype",
        ),
        (torch.ones(8, 4), torch.ones(8, 4, device="meta"), "same device: cpu != meta"),
    ],
)
@pytest.mark.parametrize("method", METHODS)
def test_invalid_embeddings_rejected(
    method: str, z1: torch.Tensor, z2: torch.Tensor, match: str
) -> None:
    loss = losses.get(method)
    with pytest.raises(ValueError, match=match):
        loss(z1, z2)
    with pytest.raises(ValueError, match=match):
        loss.inspect(z1, z2)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(
    ("matrix", "match"),
    [
        (np.ones((4, 3)), "target matrix has shape"),
        (-np.ones((8, 8)), "negative"),
        (np.full((8, 8), math.nan), "NaN"),
        (np.zeros((8, 8)), "no mass"),
    ],
)
def test_invalid_custom_target_rejected_in_constructor(
    layout: str, matrix: np.ndarray, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        losses.get("gca_ince", target="custom", target_matrix=matrix, layout=layout)


def test_custom_target_joint_needs_even_size_and_zero_diagonal() -> None:
    with pytest.raises(ValueError, match="2N x 2N"):
        losses.get("gca_ince", target="custom", target_matrix=np.ones((5, 5)), layout="joint")
    with pytest.raises(ValueError, match="diagonal"):
        losses.get("gca_ince", target="custom", target_matrix=np.ones((8, 8)), layout="joint")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_custom_target_of_wrong_batch_size_rejected_at_forward(layout: str) -> None:
    size = 6 if layout == "cross" else 12  # a valid target for N = 6 ...
    matrix = np.ones((size, size)) - (np.eye(size) if layout == "joint" else 0.0)
    loss = losses.get("gca_ince", target="custom", target_matrix=matrix, layout=layout)
    needs = "(8, 8)" if layout == "cross" else "(16, 16)"
    with pytest.raises(ValueError, match=rf"has shape \({size}, {size}\), but a batch of N = 8 "):
        loss(*_batch(8, 4))  # ... used on a batch of N = 8
    with pytest.raises(ValueError, match=re.escape(f"in the {layout} layout needs {needs}")):
        loss(*_batch(8, 4))


def test_target_matrix_presence_checked_in_constructor() -> None:
    with pytest.raises(ValueError, match="target_matrix"):
        losses.get("gca_ince", target="custom")
    with pytest.raises(ValueError, match="target_matrix"):
        losses.get("gca_ince", target_matrix=np.eye(8))  # pairs target takes no matrix


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("method", METHODS)
def test_an_all_zero_embedding_row_is_named(method: str, layout: str) -> None:
    """The cosine cost of a zero vector is undefined: the error names the embedding and the
    row (the cost itself only sees x, y or their concatenation)."""
    loss = losses.get(method, layout=layout)
    if loss.stages["cost"].name != "cosine":
        pytest.skip("only the cosine cost needs a nonzero row")
    z1, z2 = _batch(8, 4)
    z2 = z2.clone()
    z2[3] = 0.0
    with pytest.raises(ValueError, match=r"^z2 row 3 is all zero, so its cosine cost"):
        loss(z1, z2)


def test_a_parameter_tensor_that_requires_grad_is_refused() -> None:
    """A learnable temperature is not supported: rather than read it once as a float (and
    never train it), the loss refuses it; a plain 0-d tensor is a number like any other."""
    with pytest.raises(ValueError, match=r"^epsilon must be a plain number"):
        losses.get("ince", epsilon=torch.tensor(0.1, requires_grad=True))
    assert losses.get("ince", epsilon=torch.tensor(0.1)).params["epsilon"] == pytest.approx(0.1)


@pytest.mark.parametrize("method", ["ince", "gca_uot"])
def test_inspect_output_prints_one_line_and_compares_by_identity(method: str) -> None:
    """``repr(loss.inspect(...))`` printed every tensor (about 2,900 characters at N = 8),
    and ``out == out2`` raised "Boolean value of Tensor ... is ambiguous"."""
    loss = losses.get(method)
    z1, z2 = _batch(8, 4)
    out, again = loss.inspect(z1, z2), loss.inspect(z1, z2)
    for text in (repr(out), repr(out.projection)):
        assert "\n" not in text and len(text) < 320, text
    assert repr(out).startswith(f"LossOutput(loss={float(out.loss):.6g}, 8x8, epsilon=0.5, ")
    assert f"positive_mass={out.diagnostics['positive_mass']:.4g}" in repr(out)
    solver = out.projection.solver
    assert (repr(solver) if solver else "one row step") in repr(out.projection)
    assert out == out and out != again and out in [again, out]
    assert out.projection == out.projection and out.projection != again.projection


@pytest.mark.parametrize("labels", [np.array([0.0, 1.0, np.nan, 1.0] * 2), [0.0, math.nan] * 4])
def test_nan_labels_are_refused(labels: object) -> None:
    loss = losses.get("gca_ince", target="class")
    with pytest.raises(ValueError, match=r"^labels contains NaN"):
        loss(*_batch(8, 4), labels=labels)


@pytest.mark.parametrize(("target", "side"), [("class", "labels"), ("domain", "domains")])
def test_prior_target_without_side_information_rejected(target: str, side: str) -> None:
    loss = losses.get("gca_ince", target=target)
    with pytest.raises(ValueError, match=f"needs {side}"):
        loss(*_batch(8, 4))
    with pytest.raises(ValueError, match=side):
        loss(*_batch(8, 4), **{side: [0, 1, 0]})  # wrong length


# ------------------------------------------------------------------------- LossOutput


def test_inspect_exposes_every_stage() -> None:
    z1, z2 = _batch(10, 6, seed=16, dtype=torch.float32)
    epsilon, n = 0.5, 10
    loss = losses.get("gca_ince", epsilon=epsilon, n_iter=50)
    out = loss.inspect(z1, z2)
    assert isinstance(out, losses.LossOutput)
    assert torch.equal(out.loss, loss(z1, z2))
    torch.testing.assert_close(out.loss, out.per_row.mean())
    assert out.per_row.shape == (n,)
    torch.testing.assert_close(out.cost, _cost(z1, z2, "cross"), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.kernel, torch.exp(-out.cost / epsilon))
    assert torch.equal(out.target, torch.eye(n))
    torch.testing.assert_close(out.plan, torch.exp(out.log_plan))
    assert out.f.shape == (n,) and out.g.shape == (n,)
    log_form = (out.f[:, None] + out.g[None, :] - out.cost) / epsilon
    torch.testing.assert_close(out.log_plan, log_form, rtol=1e-5, atol=1e-5)
    diag = out.diagnostics
    assert diag["marginal_error"] < 1e-4
    assert 0.0 < diag["positive_mass"] <= 1.0
    assert math.isfinite(diag["entropy"]) and 0.0 < diag["entropy"] <= math.log(n * n)
    assert diag["mass"] == pytest.approx(n, rel=1e-4)
    assert diag["n_iter"] == 50
    assert diag["loss"] == pytest.approx(float(out.loss))
    assert out.epsilon == epsilon


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("method", METHODS)
def test_inspect_matches_forward_for_every_method(method: str, layout: str) -> None:
    z1, z2 = _batch(8, 5, seed=17, dtype=torch.float32)
    loss = losses.get(method, layout=layout)
    out = loss.inspect(z1, z2)
    assert torch.equal(out.loss, loss(z1, z2))
    size = 8 if layout == "cross" else 16
    for matrix in (out.cost, out.kernel, out.target, out.plan, out.log_plan):
        assert matrix.shape == (size, size)
    assert out.f.shape == (size,) and out.g.shape == (size,)
    assert torch.equal(out.target, targets.pair_target(8, layout).float())
    if layout == "joint":  # self-pairs excluded: C_ii = +inf, K_ii = 0, P_ii = 0
        assert torch.isinf(out.cost.diagonal()).all()
        assert (out.kernel.diagonal() == 0).all() and (out.plan.diagonal() == 0).all()
    assert 0.0 < out.diagnostics["positive_mass"] <= 1.0
    assert math.isfinite(out.diagnostics["entropy"])
    assert math.isfinite(out.diagnostics["marginal_error"])


@pytest.mark.parametrize("layout", LAYOUTS)
def test_ince_plan_is_row_normalised(layout: str) -> None:
    out = losses.get("ince", layout=layout).inspect(*_batch(8, 5, seed=18))
    torch.testing.assert_close(out.plan.sum(1), torch.ones(out.plan.shape[0], dtype=torch.float64))


@pytest.mark.parametrize("method", METHODS)
def test_schema_names_every_parameter_by_its_stage_s_param(method: str) -> None:
    """``GCALoss.schema``: the one map from a parameter's name to its schema, which the
    pages read symbols and ranges from; it covers exactly the loss's parameters."""
    loss = losses.get(method)
    assert set(loss.schema) == set(loss.params)
    for stage in loss.stages.values():
        for p in stage.params:
            assert loss.schema[p.name] is p


def test_set_params_changes_epsilon() -> None:
    z1, z2 = _batch(8, 5, seed=19)
    loss = losses.get("ince")
    loss.set_params(epsilon=0.2)
    assert loss.params["epsilon"] == 0.2
    assert loss.inspect(z1, z2).epsilon == 0.2
    assert float(loss(z1, z2)) == pytest.approx(_ince_naive(z1, z2, 0.2), rel=1e-10)


def test_a_parameter_set_as_an_attribute_takes_effect() -> None:
    """``loss.epsilon = 0.2`` made a new attribute and the loss kept ε = 0.5, silently: it now
    goes through set_params (validated) and reads back as an attribute."""
    z1, z2 = _batch(8, 5, seed=19)
    loss = losses.get("ince")
    assert loss.epsilon == 0.5
    loss.epsilon = 0.2
    assert loss.params["epsilon"] == loss.epsilon == 0.2 and "epsilon" not in loss.__dict__
    assert float(loss(z1, z2)) == pytest.approx(_ince_naive(z1, z2, 0.2), rel=1e-10)
    with pytest.raises(ValueError, match="epsilon must be a number > 0"):
        loss.epsilon = 0
    assert loss.epsilon == 0.2
    with pytest.raises(AttributeError):
        loss.no_such_parameter  # noqa: B018 - other names behave as on any module


@pytest.mark.parametrize(("method", "n_iter"), [("gca_rince", 10), ("gca_rince", 2),
                                               ("gca_ince", 10), ("gca_uot", 7)])  # fmt: skip
def test_diagnostics_count_the_sweeps_the_plan_is_from(method: str, n_iter: int) -> None:
    """GCA-RINCE's plan P^(2T-1) ends with the row step of sweep T after T - 1 solver sweeps:
    its diagnostics read n_iter = 9.0 for T = 10, and a user checking the loss ran its sweeps
    read one short. They read T, as the other methods' do."""
    z1, z2 = _batch(8, 5, seed=29)
    seen = losses.get(method, n_iter=n_iter).inspect(z1, z2)
    assert seen.diagnostics["n_iter"] == n_iter


@pytest.mark.parametrize(
    ("method", "name", "match"),
    [
        ("gca_ince", "relax_a", "'relax_a' belongs to the projection 'unbalanced'"),
        ("ince", "n_iter", "'n_iter' belongs to the projection 'sinkhorn'"),
        ("gca_ince", "n_iters", "did you mean 'n_iter'"),
        ("ince", "temperature", "did you mean 'epsilon'"),
        ("gca_uot", "tau", "did you mean 'epsilon'"),
    ],
)
def test_an_attribute_named_like_a_parameter_the_loss_lacks_is_refused(
    method: str, name: str, match: str
) -> None:
    """A researcher set ``gca_ince.relax_a = 0.01`` (thinking it now unbalanced),
    ``ince.n_iter = 3`` or the typo ``n_iters``: each made a new attribute the loss never
    read, and the loss computed what it did before, silently. They are refused as
    set_params refuses them, naming what was meant; the loss is unchanged, and names
    unlike any parameter stay ordinary attributes."""
    z1, z2 = _batch(8, 5, seed=23)
    loss = losses.get(method)
    before, params = float(loss(z1, z2)), dict(loss.params)
    with pytest.raises(ValueError, match=match):
        setattr(loss, name, 0.01)
    assert name not in loss.__dict__ and loss.params == params
    assert float(loss(z1, z2)) == before
    loss.note = "mine"  # an attribute of the user's own
    loss.train(False)  # nn.Module's own attributes
    assert loss.note == "mine" and loss.training is False


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"epsilon": 0}, "epsilon must be a number > 0"),
        ({"epsilon": -1}, "epsilon must be a number > 0"),
        ({"epsilon": 0.2, "n_iter": 0}, "n_iter must be an integer >= 1"),
        ({"n_iter": 3, "bogus": 1}, "no parameter 'bogus'"),
    ],
)
def test_set_params_rejects_invalid_and_changes_nothing(
    changes: dict[str, Any], match: str
) -> None:
    z1, z2 = _batch(8, 5, seed=20)
    loss = losses.get("gca_ince", epsilon=0.5, n_iter=4)
    before_params = dict(loss.params)
    before = loss(z1, z2)
    with pytest.raises(ValueError, match=match):
        loss.set_params(**changes)
    assert loss.params == before_params
    assert torch.equal(loss(z1, z2), before)


# ------------------------------------------------------------------------- registries


def _all_stages() -> list[Any]:
    return [
        pytest.param(kind, name, id=f"{kind}-{name}")
        for kind, registry in STAGE_REGISTRIES.items()
        for name in registry
    ]


@pytest.mark.parametrize(("kind", "name"), _all_stages())
def test_stage_entry_is_documented_and_defaults_valid(kind: str, name: str) -> None:
    stage = STAGE_REGISTRIES[kind][name]
    assert stage.name == name
    assert isinstance(stage.latex, str) and stage.latex.strip()
    assert isinstance(stage.description, str) and stage.description.strip()
    assert stage.doc.strip(), f"{kind} {name!r} has no docstring"
    names = [p.name for p in stage.params]
    assert len(names) == len(set(names))
    for param in stage.params:
        assert param.description.strip()
        assert param.validate(param.default) == param.default
        if param.ui is not None:
            low, high = param.ui
            assert low < high
            param.validate(low)
            param.validate(high)
            if param.default is not None:
                assert low <= float(param.default) <= high
    assert stage.validate({}) == stage.defaults()


@pytest.mark.parametrize("method", METHODS)
def test_method_stages_exist_and_params_validate(method: str) -> None:
    m = losses.LOSSES[method]
    assert m.name == method and m.title and m.description and m.reference
    assert m.layout in LAYOUTS
    assert set(m.stages) == set(STAGE_REGISTRIES)
    owners: dict[str, Any] = {}
    for kind, stage_name in m.stages.items():
        stage = STAGE_REGISTRIES[kind][stage_name]  # raises if missing
        for p in stage.params:  # a name shared by two stages must mean the same thing
            assert owners.setdefault(p.name, p) == p
    for key, value in m.params.items():
        assert key in owners, f"{method} sets {key!r}, which none of its stages has"
        owners[key].validate(value)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("method", METHODS)
def test_compose_reproduces_named_method(method: str, layout: str) -> None:
    z1, z2 = _batch(8, 5, seed=21, dtype=torch.float32)
    m = losses.LOSSES[method]
    named = losses.get(method, layout=layout)
    composed = losses.compose(**m.stages, layout=layout, **m.params)
    assert isinstance(composed, GCALoss)
    assert composed.params == named.params
    assert torch.equal(composed(z1, z2), named(z1, z2))


def test_get_uses_method_default_layout() -> None:
    for method, m in losses.LOSSES.items():
        assert losses.get(method).layout == m.layout


# A target with one non-zero entry per row (pairs, or a scaled permutation) is read by a
# gather, and a hard row step's row sums are taken as μ; both shortcuts must give the dense
# formulas' values and gradients.
@pytest.mark.parametrize("projection", ["row", "sinkhorn", "unbalanced"])
@pytest.mark.parametrize("divergence", ["kl", "ce", "rince", "uot", "l2"])
@pytest.mark.parametrize("weight", [1.0, 0.37])
def test_single_positive_shortcuts_equal_dense_formulas(
    projection: str, divergence: str, weight: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gca_viz.losses import divergences, stages

    gen = torch.Generator().manual_seed(41)
    z1 = torch.randn(6, 4, dtype=torch.float64, generator=gen)
    z2 = torch.randn(6, 4, dtype=torch.float64, generator=gen)
    pos = torch.randperm(12, generator=gen)
    while bool((pos == torch.arange(12)).any()):  # the joint layout excludes self-pairs
        pos = torch.randperm(12, generator=gen)
    T = torch.zeros(12, 12, dtype=torch.float64)
    T[torch.arange(12), pos] = weight
    params = {"epsilon": 0.3, "n_iter": 4, "relax_a": 0.5, "relax_b": 2.0}
    kwargs = {k: v for k, v in params.items() if k in stages.PROJECTIONS[projection].defaults()}
    div_kwargs = divergences.DIVERGENCES[divergence].defaults()

    def value(dense: bool) -> tuple[torch.Tensor, torch.Tensor]:
        x = z1.clone().requires_grad_()
        C = stages.cosine(x, z2, "joint")
        mu, nu = targets.target_marginals(T)
        proj = stages.PROJECTIONS[projection].fn(C, mu, nu, **kwargs)
        if dense:
            monkeypatch.setattr(divergences, "_single_positives", lambda T: None)
            proj = dataclasses.replace(proj, log_rows=None)
        per_row = divergences.DIVERGENCES[divergence].fn(T, proj, **div_kwargs)
        monkeypatch.undo()
        (grad,) = torch.autograd.grad(per_row.sum(), x)
        return per_row.detach(), grad

    assert divergences._single_positives(T) is not None
    fast, dense = value(dense=False), value(dense=True)
    torch.testing.assert_close(fast[0], dense[0], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(fast[1], dense[1], rtol=1e-8, atol=1e-10)


def test_single_positives_rejects_other_targets() -> None:
    from gca_viz.losses import divergences

    labels = torch.tensor([0, 1, 0, 1])
    T = targets.build_target("class", 4, "cross", labels=labels, gamma=0.5)
    assert divergences._single_positives(T) is None
    T = torch.eye(4)
    T[2, 2] = 0.0  # an empty row
    assert divergences._single_positives(T) is None
    pos, w = divergences._single_positives(torch.eye(4)[[2, 0, 3, 1]] * 0.5)  # type: ignore[misc]
    assert pos.tolist() == [2, 0, 3, 1] and w.tolist() == [0.5] * 4


def _ce_uniform_dense(T: torch.Tensor, proj: Any, lam_p: float) -> torch.Tensor:
    """IOT-uni's row loss with ``Q`` built entry by entry (the definition)."""
    from gca_viz.losses import divergences

    P, lp = proj.plan, proj.log_plan
    off = ~torch.eye(P.shape[0], P.shape[1], dtype=torch.bool)
    log_mean_off = torch.logsumexp(lp[off], dim=0) - math.log(int(off.sum()))
    log_q = torch.where(off, log_mean_off, lp)
    terms = (P * (lp - log_q).masked_fill(P == 0, 0.0)) - P + torch.exp(log_q)
    return divergences.cross_entropy(T, proj) + lam_p * terms.sum(1)


@pytest.mark.parametrize(
    ("n", "m", "self_pairs"), [(12, 12, False), (12, 12, True), (9, 14, False), (14, 9, False)]
)
def test_ce_uniform_equals_its_dense_definition(n: int, m: int, self_pairs: bool) -> None:
    """The row decomposition of IOT-uni's KL equals ``KL(P || Q)`` with ``Q`` built entry by
    entry, in value and gradient: a dominant diagonal (cross layout), a -inf diagonal
    (self pairs of the joint layout) and rectangular plans."""
    from gca_viz.losses import divergences, stages

    gen = torch.Generator().manual_seed(n * 31 + m + self_pairs)
    scores = torch.randn(n, m, generator=gen, dtype=torch.float64)
    k = min(n, m)
    scores[torch.arange(k), torch.arange(k)] += -math.inf if self_pairs else 4.0
    scores.requires_grad_()
    log_plan = scores - torch.logsumexp(scores, dim=1, keepdim=True) - math.log(n)
    zeros_n, zeros_m = torch.zeros(n, dtype=torch.float64), torch.zeros(m, dtype=torch.float64)
    proj = stages.Projection(
        torch.zeros(n, m, dtype=torch.float64), log_plan, zeros_n, zeros_m, 0.5
    )
    T = torch.zeros(n, m, dtype=torch.float64)
    T[torch.arange(n), (torch.arange(n) + 1) % m] = 1.0 / n
    fast = divergences.ce_uniform(T, proj, lam_p=0.3)
    dense = _ce_uniform_dense(T, proj, 0.3)
    torch.testing.assert_close(fast, dense, rtol=1e-10, atol=1e-12)
    (g_fast,) = torch.autograd.grad(fast.sum(), scores, retain_graph=True)
    (g_dense,) = torch.autograd.grad(dense.sum(), scores)
    assert torch.isfinite(g_fast).all()
    torch.testing.assert_close(g_fast, g_dense, rtol=1e-9, atol=1e-12)


def test_rince_presets_use_the_methods_table_exponent() -> None:
    """docs/math.md's methods table: RINCE and GCA-RINCE with q = 1 (the robust, symmetric
    case); GCA-UOT keeps the paper's experimental q = 0.6 in its RINCE term."""
    assert losses.get("rince").params["q"] == 1.0
    assert losses.get("gca_rince").params["q"] == 1.0
    assert losses.get("gca_uot").params["q"] == 0.6
    assert losses.get("rince", q=0.5).params["q"] == 0.5  # still a parameter


def test_a_target_without_side_information_is_built_once_per_batch_shape() -> None:
    """The pairs target (and its marginals) is kept per batch size, device and dtype: a
    training loop builds and moves it once, not every step."""
    loss = losses.get("gca_ince", layout="joint")
    gen = torch.Generator().manual_seed(0)
    z = [torch.randn(8, 4, generator=gen) for _ in range(4)]
    first, again = loss.inspect(z[0], z[1]), loss.inspect(z[2], z[3])
    assert again.target is first.target
    assert loss.inspect(z[0][:6], z[1][:6]).target.shape == (12, 12)  # another size
    double = loss.inspect(z[0].double(), z[1].double()).target
    assert double.dtype == torch.float64 and double is not first.target
    torch.testing.assert_close(first.target, targets.pair_target(8, "joint").float())
    classes = losses.compose("cosine", "class", "sinkhorn", "kl", n_iter=5)
    a = classes.inspect(z[0], z[1], labels=torch.tensor([0, 1] * 4)).target
    b = classes.inspect(z[0], z[1], labels=torch.tensor([0, 0, 1, 1] * 2)).target
    assert not torch.equal(a, b)  # built from each batch's labels


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("method", METHODS)
def test_the_known_problem_gives_the_validated_problems_loss_and_gradients(
    method: str, layout: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the cosine cost a loss hands the solver what validating its problem would find
    (the range [0, 2], the masses) instead of reading it: the same loss and gradients as a
    solver that validates, at a large and a small ε (where the start and the absorptions
    follow from that range)."""
    gen = torch.Generator().manual_seed(3)
    z1, z2 = (torch.randn(12, 5, generator=gen, dtype=torch.float64) for _ in range(2))
    for eps in (0.5, 0.02):
        params = {"epsilon": eps} if "epsilon" in losses.get(method).params else {}
        loss = losses.get(method, layout=layout, **params)

        def value_and_grads(loss: GCALoss = loss) -> list[torch.Tensor]:
            a, b = z1.clone().requires_grad_(), z2.clone().requires_grad_()
            value = loss(a, b)
            return [value.detach(), *torch.autograd.grad(value, (a, b))]

        trusted = value_and_grads()
        with monkeypatch.context() as m:
            m.setattr(GCALoss, "_known_problem", lambda self, masses: None)
            validated = value_and_grads()
        for got, want in zip(trusted, validated, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


def test_a_call_under_inference_mode_leaves_the_loss_trainable() -> None:
    """A target kept for later batches is never an inference tensor (autograd could not save
    it for a backward after an evaluation under torch.inference_mode)."""
    gen = torch.Generator().manual_seed(1)
    z1, z2 = (torch.randn(8, 4, generator=gen) for _ in range(2))
    for method in ("ince", "gca_ince", "gca_uot", "byol"):
        loss = losses.get(method, layout="joint")
        with torch.inference_mode():
            evaluated = loss(z1, z2)
        a, b = z1.clone().requires_grad_(), z2.clone().requires_grad_()
        trained = loss(a, b)
        trained.backward()
        assert a.grad is not None and torch.isfinite(a.grad).all()
        torch.testing.assert_close(trained.detach(), evaluated)


def test_a_custom_target_is_the_matrix_given_at_construction() -> None:
    """The loss copies target_matrix: editing the caller's tensor later changes nothing."""
    matrix = torch.eye(8, dtype=torch.float64)
    loss = losses.compose("cosine", "custom", "sinkhorn", "kl", target_matrix=matrix, n_iter=5)
    z1, z2 = torch.randn(8, 4), torch.randn(8, 4)
    before = loss.inspect(z1, z2).target.clone()
    matrix[0, 1] = 5.0
    torch.testing.assert_close(loss.inspect(z1, z2).target, before)
    torch.testing.assert_close(loss.build_target(8), before)


def test_a_custom_target_whose_marginals_are_subnormal_in_the_dtype_is_refused() -> None:
    matrix = torch.eye(4, dtype=torch.float64)
    matrix[0, 0] = 1e-39  # a normal float64, subnormal in float32
    loss = losses.compose("cosine", "custom", "sinkhorn", "kl", target_matrix=matrix, n_iter=5)
    with pytest.raises(ValueError, match=r"target_matrix under- or overflows float32 "):
        loss(torch.randn(4, 3), torch.randn(4, 3))
    assert torch.isfinite(loss(torch.randn(4, 3).double(), torch.randn(4, 3).double()))


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("method", METHODS)
def test_a_loss_is_the_same_with_and_without_autograd(method: str, layout: str) -> None:
    """The solve of a loss runs in torch with and without autograd (the same operations),
    so ``inspect`` under ``no_grad`` gives the training value to rounding of its row terms,
    even where the value is all rounding: iot_uni with λ_p = 1e30 on identical embeddings
    (found by hypothesis: its rows, ±1e23 each, summed to 0 with autograd and to 4e22
    without, when the solve ran in numpy without autograd)."""
    gen = torch.Generator().manual_seed(5)
    cases = [(torch.randn(6, 3, generator=gen), torch.randn(6, 3, generator=gen), {})]
    if method == "iot_uni":
        cases.append((torch.ones(3, 2), torch.ones(3, 2), {"lam_p": 1e30}))
    for z1, z2, params in cases:
        loss = losses.get(method, layout=layout, **params)
        trained = loss(z1.clone().requires_grad_(), z2).detach()
        with torch.no_grad():
            out = loss.inspect(z1, z2)
        scale = max(1.0, float(out.per_row.abs().max()))
        assert abs(float(trained - out.loss)) <= 1e-6 * scale, (float(trained), float(out.loss))


@pytest.mark.parametrize(("q", "epsilon"), [(1.0, 0.01), (0.6, 0.005), (0.3, 0.005)])
def test_rince_underflow_names_the_cosine_below_which_float32_terms_vanish(
    q: float, epsilon: float
) -> None:
    """At a small ``ε`` RINCE's ``exp(-q C/ε)`` underflows float32: pairs with a larger cost
    give no loss and no gradient. The note names the cosine where that starts, and it is
    right on both sides of it."""
    note = losses.rince_underflow(q, epsilon)
    assert note is not None
    cosine = float(re.search(r"cosine below (-?[\d.]+)", note).group(1))  # type: ignore[union-attr]
    tiny = torch.finfo(torch.float32).tiny
    for cos, underflows in ((cosine - 0.02, True), (cosine + 0.02, False)):
        term = torch.exp(torch.tensor(-q * (1 - cos) / epsilon, dtype=torch.float32))
        assert (float(term) < tiny) is underflows, (cos, float(term))
    assert losses.rince_underflow(q, epsilon, torch.float64) is None  # -log t = 708 there
    assert losses.rince_underflow(q, 0.5) is None  # the default ε
    assert losses.rince_underflow(0.3, 0.01) is None  # c* = 2.9: no cosine cost reaches it


def test_a_rince_loss_warns_when_its_terms_underflow_and_not_otherwise() -> None:
    """RINCE at ε = 0.01, q = 1 in float32: random pairs (cosine near 0) have a term of
    exp(-100), below float32's range, so the loss and its gradient are 0; the loss warns.
    The same loss in float64 (or at ε = 0.5) is computed without a warning."""
    gen = torch.Generator().manual_seed(3)
    z1, z2 = torch.randn(32, 8, generator=gen), torch.randn(32, 8, generator=gen)
    for name, terms in (("rince", "RINCE's"), ("gca_rince", "RINCE's"), ("gca_uot", "GCA-UOT's")):
        loss = losses.get(name, epsilon=0.005)
        with pytest.warns(UserWarning, match=rf"^{terms} .*underflow float32 .*Raise ε") as got:
            loss(z1, z2)  # named as the user knows the loss (GCA-UOT's: its r_2 part)
        # at the user's line, not module.py:309 (a fixed stacklevel stopped in the library)
        assert [w.filename for w in got] == [__file__], [w.filename for w in got]
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            loss(z1.double(), z2.double())
            losses.get(name, epsilon=0.5)(z1, z2)


@pytest.mark.parametrize("method", ["ince", "gca_ince", "gca_uot", "gca_rince"])
def test_torch_func_grad_of_a_loss_is_autograd_s_and_vmap_is_refused(method: str) -> None:
    """A researcher's ``torch.func.grad`` of a loss failed inside the solver in torch's
    words; it now gives autograd's gradient, and so do ``jacfwd`` and ``hessian`` (forward
    mode). ``vmap`` over batches names ``z1``."""
    gen = torch.Generator().manual_seed(11)
    z1, z2 = torch.randn(2, 10, 5, dtype=torch.float64, generator=gen)
    loss = losses.get(method)
    z = z1.clone().requires_grad_()
    loss(z, z2).backward()
    torch.testing.assert_close(torch.func.grad(lambda a: loss(a, z2))(z1), z.grad)
    # forward mode: jacfwd failed in torch's words ("Cannot access data pointer"), and
    # hessian of the GCA losses on an out= product; both are reverse mode's now
    torch.testing.assert_close(torch.func.jacfwd(lambda a: loss(a, z2))(z1), z.grad)
    twice = torch.func.jacrev(torch.func.jacrev(lambda a: loss(a, z2)))(z1)
    torch.testing.assert_close(torch.func.hessian(lambda a: loss(a, z2))(z1), twice)
    with pytest.raises(ValueError, match=r"^z1 is batched by torch.func.vmap"):
        torch.func.vmap(loss)(torch.stack([z1, z2]), torch.stack([z2, z1]))


def test_a_second_derivative_through_a_loss_says_what_to_do_instead() -> None:
    """The message named ``method='log'``, which the losses do not take (``losses.get(
    "gca_ince", method="log")`` is refused): it now points to ``gca_viz.ot.sinkhorn`` and
    says the losses give first derivatives only."""
    gen = torch.Generator().manual_seed(3)
    z1 = torch.randn(8, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    z2 = torch.randn(8, 4, dtype=torch.float64, generator=gen)
    (grad,) = torch.autograd.grad(losses.get("gca_ince")(z1, z2), z1, create_graph=True)
    with pytest.raises(RuntimeError, match=r"ot\.sinkhorn\(\.\.\., method='log'\).*first"):
        torch.autograd.grad((grad**2).sum(), z1)
    with pytest.raises(ValueError, match="no parameter 'method'"):
        losses.get("gca_ince", method="log")


@pytest.mark.parametrize("method", ["ince", "gca_uot"])
def test_labels_of_the_wrong_length_are_refused_even_where_unused(method: str) -> None:
    """The pair target reads no labels, so ``labels=[0]`` on 8 pairs ran without a word (a
    user who expected a supervised loss would never know)."""
    z1, z2 = _batch(8, 4)
    with pytest.raises(ValueError, match="labels must have N = 8 entries, one per pair; got 1"):
        losses.get(method)(z1, z2, labels=[0])
    with pytest.raises(ValueError, match="domains must have N = 8 entries"):
        losses.get(method).inspect(z1, z2, domains=np.zeros(9))
    assert torch.isfinite(losses.get(method)(z1, z2, labels=np.arange(8)))  # right length: fine


def test_get_docstring_lists_every_method_with_its_stages_layout_and_defaults() -> None:
    """help(losses.get) said almost nothing; it lists every method of LOSSES (from the
    registry, so a new method shows up), with the stages, layout and parameter defaults
    that get(name) builds."""
    doc = losses.get.__doc__
    assert doc is not None and "@METHODS@" not in doc
    entries = re.findall(r"^    - ``(\w+)``: (.*)\n      stages (.*)\.$", doc, flags=re.M)
    assert [name for name, *_ in entries] == list(losses.LOSSES)
    for name, head, tail in entries:
        method, built = losses.LOSSES[name], losses.get(name)
        assert head == f"{method.title}. {method.description}"
        stages = " / ".join(s.name for s in built.stages.values())
        assert tail.startswith(f"{stages}; layout {built.layout!r}; parameters: "), tail
        listed = tail.split("parameters: ")[1].split(", ")
        shown = dict(re.fullmatch(r"(\w+)(?: \(.+\))? = (.+)", p).groups() for p in listed)
        assert shown == {k: repr(v) for k, v in built.params.items()}, name


def test_a_parameter_of_another_stage_says_where_it_belongs() -> None:
    """losses.get("gca_ince", gamma=0.3) listed gca_ince's parameters and no more: gamma is
    the class target's, which get takes as target="class"."""
    with pytest.raises(
        ValueError, match=r"'gamma' belongs to the target 'class': pass target='class'"
    ):
        losses.get("gca_ince", gamma=0.3)
    assert losses.get("gca_ince", target="class", gamma=0.3).params["gamma"] == 0.3
    with pytest.raises(ValueError, match=r"'relax_a' belongs to the projection 'unbalanced'$"):
        losses.get("gca_ince", relax_a=0.2)
    with pytest.raises(ValueError, match=r"its parameters are \['end', 'epsilon', 'n_iter'\]$"):
        losses.get("gca_ince", foo=1)


def test_a_number_as_text_is_refused_by_a_loss_as_by_the_solvers() -> None:
    """``losses.get("ince", epsilon="0.1")`` and ``loss.epsilon = "0.1"`` were taken (the
    schema converted the text) where ``sinkhorn(C, epsilon="0.1")`` said no; a config file's
    text is still a number (TrainConfig converts it where it reads it)."""
    from gca_viz.train import TrainConfig, build_loss

    with pytest.raises(ValueError, match=r"^epsilon must be a number, got '0.1' \(str\)$"):
        losses.get("ince", epsilon="0.1")
    loss = losses.get("gca_ince")
    with pytest.raises(ValueError, match=r"^n_iter must be a number, got '5' \(str\)$"):
        loss.set_params(n_iter="5")
    assert loss.params["n_iter"] != "5"
    built = build_loss(TrainConfig(method="gca_ince", loss_params={"epsilon": "0.4"}))
    assert built.params["epsilon"] == 0.4


def test_a_method_is_written_for_people_by_its_title() -> None:
    """Train's runs table, its status line and a run's default name showed the ids
    ("gca_uot", "gca_ince on digits") on a lecturer's screen."""
    assert [losses.title(m) for m in ("ince", "gca_ince", "gca_uot", "iot_uni")] == [
        "INCE", "GCA-INCE", "GCA-UOT", "IOT-uni"
    ]  # fmt: skip
    assert losses.title("composed") == "composed loss" and losses.title("mine") == "mine"
