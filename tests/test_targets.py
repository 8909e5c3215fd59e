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
        alpha, beta = rng.uniform(0.0, 1.0, size=2)
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
def test_class_target_matches_formula(layout: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 9
    labels = rng.integers(0, 3, size=n).tolist()
    gamma = float(rng.uniform(0.0, 1.0))
    P = class_target(labels, gamma=gamma, layout=layout)
    expected = _naive_prior(labels, n, layout, gamma, 0.0)
    _assert_matrix_close(P, expected, rel=1e-6)  # exact in float64: see the test below
    # row sums 1 + γ (n_y - 1) (cross) and 1 + γ (2 n_y - 2) (joint: both views)
    views = 1 if layout == "cross" else 2
    for i in range(_size(n, layout)):
        n_y = labels.count(labels[i % n])
        assert float(P[i].sum()) == pytest.approx(1.0 + gamma * (views * n_y - views))


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_domain_target_matches_formula(layout: str, seed: int) -> None:
    rng = np.random.default_rng(10 + seed)
    n = 8
    domains = rng.integers(0, 3, size=n).tolist()
    alpha, beta = (float(x) for x in rng.uniform(0.0, 1.0, size=2))
    P = domain_target(domains, alpha=alpha, beta=beta, layout=layout)
    expected = _naive_prior(domains, n, layout, alpha, beta)
    _assert_matrix_close(P, expected, rel=1e-6)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_prior_weights_are_exact_in_float64(layout: str) -> None:
    labels = [0, 1, 0, 1]
    P = class_target(labels, gamma=0.1, layout=layout)
    _assert_matrix_close(P, _naive_prior(labels, 4, layout, 0.1, 0.0), rel=1e-15)
    P = domain_target(labels, alpha=0.3, beta=0.7, layout=layout)
    _assert_matrix_close(P, _naive_prior(labels, 4, layout, 0.3, 0.7), rel=1e-15)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_zero_weights_reduce_priors_to_pairs(layout: str) -> None:
    labels = [0, 0, 1, 1, 0]
    pairs = pair_target(5, layout)
    assert torch.equal(class_target(labels, gamma=0.0, layout=layout), pairs)
    assert torch.equal(domain_target(labels, alpha=0.0, beta=0.0, layout=layout), pairs)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_domain_with_equal_weights_ignores_domains(layout: str) -> None:
    a = domain_target([0, 1, 1, 2], alpha=0.3, beta=0.3, layout=layout)
    b = domain_target([5, 5, 5, 5], alpha=0.3, beta=0.0, layout=layout)
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
    assert P.tolist() == _naive_prior(labels, len(labels), "cross", gamma, 0.0)


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
def test_prior_targets_keep_partner_weight_one_and_are_symmetric(name: str, layout: str) -> None:
    n = 6
    P = build_target(name, n, layout, **_side(name, n, layout, np.random.default_rng(4)))
    idx = torch.arange(_size(n, layout))
    assert (P[idx, partner(n, layout)] == 1.0).all()
    assert torch.equal(P, P.T)


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
        ({"name": "pairs", "n": 3, "gamma": 0.5}, "no parameter 'gamma'"),
        ({"name": "pairs", "n": 0}, "n must be a positive integer"),
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
        (lambda: class_target([]), "n must be a positive integer"),
        (lambda: pair_target(2.5), "n must be a positive integer"),
        (lambda: pair_target(True), "n must be a positive integer"),
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
