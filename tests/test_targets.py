"""Tests for gca_viz.targets: every target plan against its formula (docs/math.md section 5)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch

from gca_viz import targets
from gca_viz.targets import (
    TARGETS,
    build_target,
    class_target,
    custom_target,
    domain_target,
    pair_target,
    partner,
    target_marginals,
)
from tests.helpers import raises_naming

LAYOUTS = ("cross", "joint")


def _size(n: int, layout: str) -> int:
    return n if layout == "cross" else 2 * n


def _partner(i: int, n: int, layout: str) -> int:
    return i if layout == "cross" else (i + n) % (2 * n)


def _side(name: str, n: int, layout: str, rng: np.random.Generator) -> dict[str, Any]:
    """build_target keyword arguments with random side information for target ``name``."""
    if name == "class":
        return {"labels": rng.integers(0, 3, size=n), "gamma": float(rng.uniform(0.05, 1.0))}
    if name == "domain":
        alpha, beta, _ = rng.dirichlet([1.0, 1.0, 1.0])  # shares: α + β <= 1
        return {"domains": rng.integers(0, 2, size=n), "alpha": alpha, "beta": beta}
    if name == "custom":
        size = _size(n, layout)
        matrix = rng.uniform(0.05, 1.0, size=(size, size))
        if layout == "joint":
            np.fill_diagonal(matrix, 0.0)
        return {"matrix": matrix}
    return {}  # pairs, or a new parameter-free target: its defaults must build


def _assert_matrix_close(P: torch.Tensor, expected: list[list[float]], rel: float) -> None:
    assert P.shape == (len(expected), len(expected[0]))
    for i, row in enumerate(expected):
        for j, value in enumerate(row):
            assert float(P[i, j]) == pytest.approx(value, rel=rel, abs=0), (i, j)


def _naive_prior(
    side: list[Any], n: int, layout: str, same_weight: float, other_weight: float
) -> list[list[float]]:
    """``I + w_same 1[D_i = D_j, i != j] + w_other 1[D_i != D_j, i != j]``, entry by entry
    (joint: rows/columns ``[view 1; view 2]``, partner = 1, self-pair = 0)."""
    size = _size(n, layout)
    out = [[0.0] * size for _ in range(size)]
    for i in range(size):
        for j in range(size):
            if j == _partner(i, n, layout):
                out[i][j] = 1.0
            elif i == j:
                out[i][j] = 0.0  # joint self-pair (cross diagonal is the partner)
            elif side[i % n] == side[j % n]:
                out[i][j] = same_weight
            else:
                out[i][j] = other_weight
    return out


def _naive_share_prior(
    side: list[Any], n: int, layout: str, same_share: float, other_share: float
) -> list[list[float]]:
    """Each row: ``w_same / n_same`` on every same-group other, ``w_other / n_other`` on
    every other-group one, the rest on the partner (a share with no one to go to stays
    there), entry by entry."""
    size = _size(n, layout)
    out = [[0.0] * size for _ in range(size)]
    for i in range(size):
        others = [j for j in range(size) if j not in (i, _partner(i, n, layout))]
        same = [j for j in others if side[i % n] == side[j % n]]
        other = [j for j in others if side[i % n] != side[j % n]]
        keep = 1.0
        for group, share in ((same, same_share), (other, other_share)):
            for j in group:
                out[i][j] = share / len(group)
            keep -= share if group else 0.0
        out[i][_partner(i, n, layout)] = keep
    return out


def _split(P: torch.Tensor, side: Any, n: int, layout: str) -> np.ndarray:
    """``(rows, 3)``: each row's mass on its positive, its same-group and other-group others."""
    size = _size(n, layout)
    d = np.concatenate([np.asarray(side)] * (size // n))
    A = P.numpy()
    pos = A[np.arange(size), partner(n, layout).numpy()]
    off = ~np.eye(size, dtype=bool)
    off[np.arange(size), partner(n, layout).numpy()] = False
    same = (d[:, None] == d[None, :]) & off
    return np.stack([pos, (A * same).sum(1), (A * (off & ~same)).sum(1)], axis=1)


# ----------------------------------------------------------------------------- pairs


@pytest.mark.parametrize("n", [1, 2, 7])
def test_pair_target_cross_is_identity(n: int) -> None:
    P = pair_target(n, "cross")
    assert P.dtype == torch.float64
    assert torch.equal(P, torch.eye(n, dtype=torch.float64))


@pytest.mark.parametrize("n", [1, 2, 7])
def test_pair_target_joint_is_pair_permutation(n: int) -> None:
    P = pair_target(n, "joint")
    assert P.shape == (2 * n, 2 * n)
    for i in range(2 * n):
        for j in range(2 * n):
            assert P[i, j] == (1.0 if j == (i + n) % (2 * n) else 0.0)
    assert torch.equal(P, P.T)  # the pairing is an involution
    assert torch.equal(P @ P, torch.eye(2 * n, dtype=torch.float64))


def test_partner_indices() -> None:
    assert partner(4, "cross").tolist() == [0, 1, 2, 3]
    assert partner(4, "joint").tolist() == [4, 5, 6, 7, 0, 1, 2, 3]
    with pytest.raises(ValueError, match="layout"):
        partner(4, "diagonal")


# ------------------------------------------------------------------------ class, domain


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("per_entry", [False, True], ids=["shares", "per-entry"])
def test_class_target_matches_formula(layout: str, seed: int, per_entry: bool) -> None:
    """Shares: rows sum to 1. Per entry (unchanged): rows sum to 1 + γ n_y(i), with
    n_y(i) = n_y - 1 (cross) or 2 n_y - 2 (joint: both views)."""
    rng = np.random.default_rng(seed)
    n = 9
    labels = rng.integers(0, 3, size=n).tolist()
    gamma = float(rng.uniform(0.0, 1.0))
    P = class_target(labels, gamma=gamma, layout=layout, per_entry=per_entry)
    naive = _naive_prior if per_entry else _naive_share_prior
    _assert_matrix_close(P, naive(labels, n, layout, gamma, 0.0), rel=1e-12)
    views = 1 if layout == "cross" else 2
    for i in range(_size(n, layout)):
        n_y = views * labels.count(labels[i % n]) - views
        assert float(P[i].sum()) == pytest.approx(1.0 + gamma * n_y if per_entry else 1.0)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("per_entry", [False, True], ids=["shares", "per-entry"])
def test_domain_target_matches_formula(layout: str, seed: int, per_entry: bool) -> None:
    rng = np.random.default_rng(10 + seed)
    n = 8
    domains = rng.integers(0, 3, size=n).tolist()
    # shares: α + β <= 1; per entry (unchanged): any weights >= 0
    weights = rng.uniform(0.0, 2.0, size=2) if per_entry else rng.dirichlet([1.0] * 3)[:2]
    alpha, beta = (float(x) for x in weights)
    P = domain_target(domains, alpha=alpha, beta=beta, layout=layout, per_entry=per_entry)
    naive = _naive_prior if per_entry else _naive_share_prior
    _assert_matrix_close(P, naive(domains, n, layout, alpha, beta), rel=1e-12)
    if not per_entry:
        assert torch.allclose(P.sum(1), torch.ones(_size(n, layout), dtype=torch.float64))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_prior_weights_are_exact_in_float64(layout: str) -> None:
    labels = [0, 1, 0, 1]
    P = class_target(labels, gamma=0.1, layout=layout, per_entry=True)
    _assert_matrix_close(P, _naive_prior(labels, 4, layout, 0.1, 0.0), rel=1e-15)
    P = domain_target(labels, alpha=0.3, beta=0.7, layout=layout, per_entry=True)
    _assert_matrix_close(P, _naive_prior(labels, 4, layout, 0.3, 0.7), rel=1e-15)
    # shares: the positive keeps 1 - (its row's spread mass), a rounding from 1 - α - β
    P = class_target(labels, gamma=0.1, layout=layout)
    _assert_matrix_close(P, _naive_share_prior(labels, 4, layout, 0.1, 0.0), rel=1e-14)
    P = domain_target(labels, alpha=0.3, beta=0.6, layout=layout)
    _assert_matrix_close(P, _naive_share_prior(labels, 4, layout, 0.3, 0.6), rel=1e-14)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("alpha, beta", [(0.2, 0.0), (0.375, 0.125), (0.0, 0.5), (0.6, 0.4)])
def test_a_share_splits_every_row_the_same_at_every_batch_size(
    layout: str, alpha: float, beta: float
) -> None:
    """The point of shares: the same α, β give every row the same split at N = 16, 64, 256
    (positive 1 - α - β, same-domain others α, other-domain others β), rows summing to 1."""
    rng = np.random.default_rng(7)
    for n in (16, 64, 256):
        for domains in (np.arange(n) % 4, rng.integers(0, 3, size=n)):  # equal or unequal
            P = domain_target(domains, alpha=alpha, beta=beta, layout=layout)
            np.testing.assert_allclose(P.sum(1).numpy(), 1.0, rtol=0, atol=1e-14)
            split = _split(P, domains, n, layout)
            np.testing.assert_allclose(
                split, [[1 - alpha - beta, alpha, beta]] * len(split), atol=1e-14
            )
        labels = np.arange(n) % 4
        P = class_target(labels, gamma=alpha, layout=layout)
        np.testing.assert_allclose(
            _split(P, labels, n, layout)[:, :2], [[1 - alpha, alpha]] * len(P), atol=1e-14
        )


def test_per_entry_prior_mass_grows_with_the_batch_and_shares_do_not() -> None:
    """α = β = 0.25 (the sweep's δ = 0 at s = 0.5) per entry: the prior holds 0.25 (N - 1)
    of a row's mass against 1 on the positive, 63.75 at N = 256; as shares it holds 0.5
    against 0.5 at any N."""
    for n, mass in ((16, 3.75), (64, 15.75), (256, 63.75)):
        domains = np.arange(n) % 4
        entry = _split(domain_target(domains, 0.25, 0.25, per_entry=True), domains, n, "cross")
        np.testing.assert_allclose(entry, [[1.0, 0.25 * (n / 4 - 1), 0.25 * 3 * n / 4]] * n)
        assert entry[0, 1:].sum() == pytest.approx(mass)
        share = _split(domain_target(domains, 0.25, 0.25), domains, n, "cross")
        np.testing.assert_allclose(share, [[0.5, 0.25, 0.25]] * n, atol=1e-14)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_share_with_no_one_to_go_to_stays_on_the_positive(layout: str) -> None:
    # one domain: β has no other-domain sample, so the positive keeps 1 - α
    one = domain_target([5, 5, 5, 5], alpha=0.3, beta=0.2, layout=layout)
    assert torch.equal(one, domain_target([5, 5, 5, 5], alpha=0.3, beta=0.0, layout=layout))
    idx = torch.arange(_size(4, layout))
    assert torch.allclose(one[idx, partner(4, layout)], torch.tensor(0.7, dtype=torch.float64))
    # all different: α and γ have no one, the target is the pair target
    pairs = pair_target(4, layout)
    assert torch.allclose(domain_target([0, 1, 2, 3], 0.4, 0.0, layout), pairs)
    assert torch.allclose(class_target(["a", "b", "c", "d"], 0.9, layout), pairs)
    # a sample alone in its domain keeps α on its positive but gives β away
    P = domain_target([0, 0, 0, 1], alpha=0.3, beta=0.2, layout=layout)
    assert float(P[3, partner(4, layout)[3]]) == pytest.approx(0.8)
    assert float(P[0, partner(4, layout)[0]]) == pytest.approx(0.5)
    # α + β = 1: the positive keeps nothing, yet every column keeps some mass
    full = domain_target([0, 0, 1, 1, 1], alpha=0.6, beta=0.4, layout=layout)
    rows = torch.arange(_size(5, layout))
    assert float(full[rows, partner(5, layout)].abs().max()) < 1e-15
    mu, nu = target_marginals(full)
    assert (mu > 0).all() and (nu > 0).all()


def test_class_share_target_is_symmetric_and_doubly_stochastic() -> None:
    """Same-class rows have the same count, so γ / n_y(i) = γ / n_y(j)."""
    labels = [0, 0, 0, 1, 1, 2, 0, 1]
    for layout in LAYOUTS:
        P = class_target(labels, gamma=0.7, layout=layout)
        assert torch.allclose(P, P.T, rtol=0, atol=1e-15)
        ones = torch.ones(len(P), dtype=torch.float64)
        assert torch.allclose(P.sum(0), ones) and torch.allclose(P.sum(1), ones)


def test_domain_share_columns_follow_the_domain_sizes() -> None:
    """Rows sum to 1; columns do not when domains differ in size (a small domain's columns
    receive more), which is why the losses use ν = P_tgt^T 1."""
    domains = [0, 0, 0, 0, 0, 1, 1, 2]
    P = domain_target(domains, alpha=0.3, beta=0.3)
    mu, nu = target_marginals(P)
    assert torch.allclose(mu, torch.ones(8, dtype=torch.float64))
    assert float(nu[7]) > 1.0 > float(nu[0]) and float(nu.sum()) == pytest.approx(8.0)
    even = domain_target([0, 0, 1, 1, 2, 2], alpha=0.3, beta=0.3)
    assert torch.allclose(even.sum(0), torch.ones(6, dtype=torch.float64))
    assert torch.allclose(even, even.T)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_shares_that_take_the_whole_row_leave_the_positive_exactly_zero(layout: str) -> None:
    """α = 1 (or α + β = 1) gives each positive 1 - α - β = 0: exactly 0, not the rounding
    of 1/9 summed nine times (a 1e-16 cell the heatmap drew at log10 -16 among blanks). A
    row with no same-domain sample keeps its share on the positive."""
    domains = [0] * 10 + [1] * 7 + [2] * 3 + [3]  # sizes whose 1/n sums round off
    n = len(domains)
    for alpha, beta in ((1.0, 0.0), (0.7, 0.3), (0.0, 1.0)):
        P = domain_target(domains, alpha=alpha, beta=beta, layout=layout)
        base = pair_target(n, layout).bool()
        positives = P[base]
        lone = torch.tensor(domains * (1 if layout == "cross" else 2)) == 3
        assert (positives[~lone] == 0).all(), positives[~lone].max()
        assert torch.allclose(P.sum(1), torch.ones(len(P), dtype=torch.float64))
    assert float(domain_target(domains, alpha=1.0)[n - 1, n - 1]) == 1.0  # no same-domain peer


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(
    "name, params",
    [
        ("domain", {"alpha": 0.3, "beta": 0.2}),
        ("domain", {"alpha": 0.0, "beta": 0.5}),
        ("class", {"gamma": 0.6}),
    ],
)
def test_monotone_alignment_holds_with_share_targets(
    layout: str, name: str, params: dict[str, float]
) -> None:
    """KL(P_tgt || P^(k)) is non-increasing over the half-steps (docs/math.md section 4) with
    μ = P_tgt 1, ν = P_tgt^T 1, also where the columns do not sum to 1."""
    from gca_viz import lab

    rng = np.random.default_rng(11)
    n = 24
    side = rng.integers(0, 3, size=n)  # unequal groups: ν != 1
    P_tgt = build_target(name, n, layout, labels=side, domains=side, **params)
    z = torch.nn.functional.normalize(torch.randn(2 * n, 5, dtype=torch.float64), dim=1)
    z1, z2 = z[:n], z[n:]
    if layout == "cross":
        C = 1.0 - z1 @ z2.T
    else:
        C = 1.0 - z @ z.T
        C.fill_diagonal_(math.inf)
    steps = lab.half_steps(C, P_tgt, epsilon=0.3, n_iter=15)
    assert np.max(np.diff(steps.kl)) <= 1e-10
    assert steps.kl[-1] < steps.kl[1]  # the GCA plan is closer to the target than INCE's


@pytest.mark.parametrize("layout", LAYOUTS)
def test_zero_weights_reduce_priors_to_pairs(layout: str) -> None:
    labels = [0, 0, 1, 1, 0]
    pairs = pair_target(5, layout)
    assert torch.equal(class_target(labels, gamma=0.0, layout=layout), pairs)
    assert torch.equal(domain_target(labels, alpha=0.0, beta=0.0, layout=layout), pairs)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_per_entry_domain_with_equal_weights_ignores_domains(layout: str) -> None:
    a = domain_target([0, 1, 1, 2], alpha=0.3, beta=0.3, layout=layout, per_entry=True)
    b = domain_target([5, 5, 5, 5], alpha=0.3, beta=0.0, layout=layout, per_entry=True)
    assert torch.equal(a, b)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("fn", [class_target, domain_target])
def test_string_labels_equal_integer_codes(layout: str, fn: Any) -> None:
    words = ["cat", "dog", "cat", "bird", "dog", "cat"]
    codes = [0, 1, 0, 2, 1, 0]
    assert torch.equal(fn(words, layout=layout), fn(codes, layout=layout))
    assert torch.equal(fn(np.array(words), layout=layout), fn(torch.tensor(codes), layout=layout))
    side = "labels" if fn is class_target else "domains"
    built = build_target(fn.__name__.split("_")[0], 6, layout, **{side: words})
    assert torch.equal(built, fn(codes, layout=layout))


@pytest.mark.parametrize(
    "labels",
    [
        pytest.param(
            [1, "1", 2, 1],
            id="int-and-str",
        ),
        pytest.param(
            [("a", 1), ("a", 2), ("a", 1), ("b", 1)],
            id="tuples",
        ),
        pytest.param(
            [None, "a", None, "b"],
            id="none-and-str",
        ),
        pytest.param([True, False, True, True], id="bools"),
        pytest.param([2.5, -1.0, 2.5, 0.0], id="floats"),
    ],
)
def test_any_hashable_labels_follow_python_equality(labels: list[Any]) -> None:
    gamma = 0.5
    P = class_target(labels, gamma=gamma)
    assert P.tolist() == _naive_share_prior(labels, len(labels), "cross", gamma, 0.0)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name", list(TARGETS))
def test_every_target_is_a_valid_plan(name: str, layout: str) -> None:
    n = 7
    P = build_target(name, n, layout, **_side(name, n, layout, np.random.default_rng(3)))
    size = _size(n, layout)
    assert P.shape == (size, size)
    assert P.dtype == torch.float64
    assert torch.isfinite(P).all() and (P >= 0).all()
    mu, nu = target_marginals(P)
    assert (mu > 0).all() and (nu > 0).all()
    assert float(mu.sum()) == pytest.approx(float(nu.sum()))
    if layout == "joint":
        assert (P.diagonal() == 0).all()  # self-pairs excluded


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name", [t for t in TARGETS if t != "custom"])
def test_prior_targets_rows_sum_to_one_and_the_positive_holds_the_most(
    name: str, layout: str
) -> None:
    n = 6
    side = _side(name, n, layout, np.random.default_rng(4))
    P = build_target(name, n, layout, **side)
    idx = torch.arange(_size(n, layout))
    assert torch.allclose(P.sum(1), torch.ones(len(idx), dtype=torch.float64))
    weights = [v for k, v in side.items() if k in ("gamma", "alpha", "beta")]
    assert (P[idx, partner(n, layout)] >= 1.0 - sum(weights) - 1e-15).all()
    if name != "domain":  # pairs and the class prior are symmetric; domain needs equal sizes
        assert torch.allclose(P, P.T, rtol=0, atol=1e-15)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name", list(TARGETS))
def test_target_marginals_are_row_and_column_sums(name: str, layout: str) -> None:
    n = 5
    P = build_target(name, n, layout, **_side(name, n, layout, np.random.default_rng(5)))
    mu, nu = target_marginals(P)
    size = _size(n, layout)
    for i in range(size):
        assert float(mu[i]) == pytest.approx(sum(float(P[i, j]) for j in range(size)))
        assert float(nu[i]) == pytest.approx(sum(float(P[j, i]) for j in range(size)))


def test_target_marginals_of_rectangular_custom_matrix() -> None:
    M = torch.tensor([[1.0, 2.0, 0.0], [0.0, 0.5, 3.0]])
    mu, nu = target_marginals(M)
    assert mu.tolist() == [3.0, 3.5]
    assert nu.tolist() == [1.0, 2.5, 3.0]


# ----------------------------------------------------------------------------- custom


@pytest.mark.parametrize("layout", LAYOUTS)
def test_custom_target_round_trips(layout: str) -> None:
    size = _size(4, layout)
    M = np.arange(1.0, size * size + 1).reshape(size, size)
    if layout == "joint":
        np.fill_diagonal(M, 0.0)
    for given in (M, M.tolist(), torch.tensor(M, dtype=torch.float32)):
        P = custom_target(given, 4, layout)
        assert P.dtype == torch.float64
        assert torch.equal(P, torch.tensor(M, dtype=torch.float64))


@pytest.mark.parametrize(
    ("matrix", "layout", "match"),
    [
        (np.ones((4, 5)), "cross", "shape"),
        (np.ones((5, 5)), "cross", "shape"),
        (np.ones((4, 4)), "joint", "shape"),  # joint needs 2N x 2N
        (np.ones(4), "cross", "shape"),
        (np.where(np.eye(4) > 0, math.nan, 1.0), "cross", "NaN"),
        (np.where(np.eye(4) > 0, math.inf, 1.0), "cross", "inf"),
        (np.where(np.eye(4) > 0, -0.5, 1.0), "cross", "negative"),
        (np.vstack([np.zeros((1, 4)), np.ones((3, 4))]), "cross", "row or column"),
        (np.hstack([np.ones((4, 3)), np.zeros((4, 1))]), "cross", "row or column"),
        (np.ones((8, 8)), "joint", "diagonal"),
    ],
)
def test_custom_target_validation(matrix: np.ndarray, layout: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        custom_target(matrix, 4, layout)


# ------------------------------------------------------------------------- build_target


def test_build_target_matches_builders() -> None:
    labels = [0, 1, 0, 1, 2]
    assert torch.equal(build_target("pairs", 5, "joint"), pair_target(5, "joint"))
    assert torch.equal(
        build_target("class", 5, labels=labels, gamma=0.4), class_target(labels, gamma=0.4)
    )
    assert torch.equal(
        build_target("domain", 5, "joint", domains=labels, alpha=0.3, beta=0.1),
        domain_target(labels, alpha=0.3, beta=0.1, layout="joint"),
    )
    # schema defaults apply when a parameter is omitted
    assert torch.equal(
        build_target("class", 5, labels=labels),
        class_target(labels, gamma=TARGETS["class"].defaults()["gamma"]),
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "clusters", "n": 4}, r"unknown target 'clusters'.*pairs"),
        ({"name": "class", "n": 4}, "needs labels"),
        ({"name": "domain", "n": 4}, "needs domains"),
        ({"name": "custom", "n": 4}, "matrix"),
        ({"name": "class", "n": 4, "labels": [0, 1, 0]}, "labels must have length 4"),
        ({"name": "class", "n": 3, "labels": [0, 1, 0], "gamma": -0.1}, "gamma"),
        ({"name": "class", "n": 3, "labels": [0, 1, 0], "gamma": math.nan}, "gamma"),
        ({"name": "domain", "n": 3, "domains": [0, 1, 0], "alpha": 2.0}, "alpha"),
        ({"name": "domain", "n": 3, "domains": [0, 1, 0], "beta": -1.0}, "beta"),
        (
            {"name": "domain", "n": 3, "domains": [0, 1, 0], "alpha": 0.7, "beta": 0.4},
            r"alpha \+ beta",
        ),
        ({"name": "class", "n": 3, "labels": [0, 1, 0], "gamma": 1.5}, "gamma"),
        ({"name": "pairs", "n": 3, "gamma": 0.5}, "no parameter 'gamma'"),
        ({"name": "pairs", "n": 0}, "n must be an integer >= 1"),
        ({"name": "pairs", "n": 3, "layout": "rows"}, "layout"),
    ],
)
def test_build_target_validation(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_target(**kwargs)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: class_target([0, 1], gamma=-1.0), "gamma"),
        (lambda: class_target([[0, 1], [1, 0]]), "labels must be hashable"),
        (lambda: domain_target([0, 1], alpha=math.inf), "alpha"),
        (lambda: domain_target([0, 1], beta=-0.1), "beta"),
        (lambda: domain_target([0, 1], layout="both"), "layout"),
        (lambda: domain_target([0, 1], alpha=1.2), "alpha"),
        (lambda: domain_target([0, 1], beta=1.01), "beta"),
        (lambda: domain_target([0, 1], alpha=0.6, beta=0.5), r"alpha \+ beta must be <= 1"),
        (lambda: class_target([0, 1], gamma=1.1), "gamma must be a share"),
        (lambda: domain_target([0, 1], alpha=-0.1, per_entry=True), "alpha"),
        (lambda: class_target([]), "n must be an integer >= 1"),
        (lambda: pair_target(2.5), "n must be an integer >= 1"),
        (lambda: pair_target(True), "n must be an integer >= 1"),
    ],
)
def test_builder_validation(call: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


def test_check_layout() -> None:
    assert targets.check_layout("cross") == "cross"
    assert targets.check_layout("joint") == "joint"
    with pytest.raises(ValueError, match="layout must be 'cross' or 'joint'"):
        targets.check_layout("Cross")


def test_losses_and_run_configs_refuse_shares_above_one() -> None:
    """The joint check α + β <= 1 (Stage.check) runs wherever the schema does: building a
    loss, changing its parameters, validating a run's config."""
    from gca_viz import losses
    from gca_viz.train import TrainConfig

    with pytest.raises(ValueError, match=r"alpha \+ beta"):
        losses.GCALoss(target="domain", alpha=0.7, beta=0.4)
    with pytest.raises(ValueError, match=r"alpha \+ beta"):
        losses.get("gca_ince", target="domain", alpha=0.9, beta=0.2)
    loss = losses.get("gca_ince", target="domain", alpha=0.5, beta=0.5)  # the edge: allowed
    with pytest.raises(ValueError, match=r"alpha \+ beta"):
        loss.set_params(beta=0.6)
    assert loss.params["beta"] == 0.5  # nothing changed
    loss.set_params(alpha=0.2, beta=0.7)
    assert (loss.params["alpha"], loss.params["beta"]) == (0.2, 0.7)
    bad = {"dataset": "multidomain_digits", "target": "domain", "method": "gca_ince"}
    with pytest.raises(ValueError, match=r"alpha \+ beta"):
        TrainConfig.from_dict({**bad, "loss_params": {"alpha": 0.8, "beta": 0.3}})
    with pytest.raises(ValueError, match=r"alpha \+ beta"):
        TARGETS["domain"].validate({"alpha": 0.8, "beta": 0.3})
    assert TARGETS["domain"].validate({"alpha": 0.7, "beta": 0.2999999999999999})


# ------------------------------------------------------------ found by tests/test_fuzz.py
#
# One test per bug the fuzzing found (each failed before its fix in the library).


@pytest.mark.parametrize("bad", [None, object(), "x"])
def test_target_weights_of_the_wrong_type(bad: Any) -> None:
    """float(None) raised TypeError."""
    raises_naming("gamma", lambda: targets.class_target([0, 1], bad))
    raises_naming("alpha", lambda: targets.domain_target([0, 1], bad, 0.0))
    raises_naming("beta", lambda: targets.domain_target([0, 1], 0.0, bad))


def test_target_side_information_without_length() -> None:
    """len(5) raised TypeError."""
    raises_naming("labels", lambda: targets.class_target(5))
    raises_naming("domains", lambda: targets.domain_target(np.array(3)))
    raises_naming("labels", lambda: targets.build_target("class", 2, labels=5))


@pytest.mark.parametrize("n", [None, -1, 0, 2.5, "3", True])
def test_partner_validates_n(n: Any) -> None:
    """None: TypeError; -1: RuntimeError from torch.arange; 2.5: float indices."""
    raises_naming("n", lambda: targets.partner(n))


@pytest.mark.parametrize(
    "target",
    [
        torch.ones(3),  # IndexError
        torch.tensor([[math.nan, 1.0], [1.0, 1.0]]),  # NaN marginals returned
        torch.tensor([[1.0, -1.0], [1.0, 1.0]]),
        torch.ones(2, 2, dtype=torch.complex64),
        [[1.0, -1.0], [0.0, 1.0]],  # (a list is read as an array: AttributeError before)
        np.ones((2, 2, 2)),
    ],
)
def test_target_marginals_validates(target: Any) -> None:
    raises_naming("target", lambda: targets.target_marginals(target))


@pytest.mark.parametrize(
    "matrix", [np.eye(2) * (1 + 1j), torch.eye(2, dtype=torch.complex64), "ab", [[1.0, "a"]]]
)
def test_custom_target_rejects_non_real_matrices(matrix: Any) -> None:
    """Complex values were truncated to their real part; strings raised TypeError."""
    raises_naming("target", lambda: targets.custom_target(matrix, 2))


def test_a_share_out_of_range_names_the_range_and_marginals_take_arrays() -> None:
    """class_target(gamma=-1) said "must be a number >= 0" of a share in [0, 1];
    target_marginals refused a numpy array that every builder accepts."""
    y = np.array([0, 1, 0, 1])
    for bad in (-1, 2):
        with pytest.raises(ValueError, match=r"gamma must be a share of a row's mass in \[0, 1\]"):
            targets.class_target(y, gamma=bad)
    mu, nu = targets.target_marginals(np.eye(3) * 2)
    assert torch.equal(mu, torch.full((3,), 2.0, dtype=torch.float64)) and torch.equal(mu, nu)
    with pytest.raises(ValueError, match="target must be a real 2-D array"):
        targets.target_marginals(np.ones(3))


@pytest.mark.parametrize("make", [class_target, domain_target])
def test_labels_that_are_not_whole_numbers_are_refused_naming_them(make: Any) -> None:
    """Soft labels or a feature column passed as labels gave every sample its own class:
    the class target became the pair target, and the loss plain GCA-INCE, without a word.
    Whole numbers in a float array (a label column read from a CSV) are labels."""
    name = "labels" if make is class_target else "domains"
    with pytest.raises(ValueError, match=rf"^{name} must hold class or domain labels .* "
                       r"non-integer numbers in 8 of its 8 entries"):  # fmt: skip
        make(torch.rand(8, generator=torch.Generator().manual_seed(0)))
    with pytest.raises(ValueError, match=r"in 1 of its 4 entries \(the first: 0\.5 at 2\)"):
        make(np.array([0.0, 1.0, 0.5, 1.0]))
    whole = make(np.array([0.0, 0.0, 1.0, 1.0]))
    np.testing.assert_array_equal(whole, make(np.array([0, 0, 1, 1])))
    np.testing.assert_array_equal(whole, make(["a", "a", "b", "b"]))  # any hashable values
