"""Tests for gca_viz.metrics: known values, limiting cases and input validation."""

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gca_viz.metrics import (
    alignment,
    class_separation,
    compactness,
    domain_accuracy,
    effective_rank,
    embedding_std,
    fit_knn,
    fit_linear_probe,
    knn_accuracy,
    linear_probe_accuracy,
    marginal_error,
    plan_entropy,
    positive_mass,
    uniformity,
)
from tests.helpers import raises_naming


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _simplex(d: int) -> np.ndarray:
    """The d + 1 vertices of a regular simplex in R^d (centred standard basis, rotated)."""
    centred = np.eye(d + 1) - 1.0 / (d + 1)  # (d+1, d+1), rank d
    u, s, _ = np.linalg.svd(centred)
    vertices: np.ndarray = u[:, :d] * s[:d]  # (d+1, d): same pairwise distances
    return vertices


def _clusters(n_per_class: int, n_classes: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Tight clusters around distinct (orthogonal) directions: separable by angle."""
    rng = _rng(seed)
    y = np.repeat(np.arange(n_classes), n_per_class)
    z = 10.0 * np.eye(d)[y] + 0.3 * rng.standard_normal((len(y), d))
    perm = rng.permutation(len(y))
    return z[perm], y[perm]


# ------------------------------------------------------------------------------ alignment


def test_alignment_identical_views_is_zero() -> None:
    z = _rng().standard_normal((32, 8))
    assert alignment(z, z) == pytest.approx(0.0, abs=1e-12)
    assert alignment(z, 3.0 * z) == pytest.approx(0.0, abs=1e-12)  # same directions


def test_alignment_known_pairs() -> None:
    z1 = np.array([[1.0, 0.0], [0.0, 2.0]])
    z2 = np.array([[0.0, 5.0], [0.0, -1.0]])
    # normalised: orthogonal pair -> 2, antipodal pair -> 4; mean 3
    assert alignment(z1, z2) == pytest.approx(3.0)
    # raw: ||(1,-5)||^2 = 26, ||(0,3)||^2 = 9; mean 17.5
    assert alignment(z1, z2, normalize=False) == pytest.approx(17.5)


# ----------------------------------------------------------------------------- uniformity


@pytest.mark.parametrize("d", [2, 3, 10])
@pytest.mark.parametrize("t", [1.0, 2.0])
def test_uniformity_regular_simplex_closed_form(d: int, t: float) -> None:
    assert uniformity(_simplex(d), t=t) == pytest.approx(-t * 2 * (d + 1) / d, rel=1e-12)


def test_uniformity_simplex_is_the_minimum_for_d_plus_one_points() -> None:
    d = 5
    best = uniformity(_simplex(d))
    rng = _rng(1)
    for _ in range(20):
        assert uniformity(rng.standard_normal((d + 1, d))) > best


@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 12), d=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_uniformity_respects_jensen_lower_bound(n: int, d: int, seed: int) -> None:
    z = _rng(seed).standard_normal((n, d)) + 1e-3  # no zero rows
    assert uniformity(z) >= -2.0 * 2 * n / (n - 1) - 1e-9
    assert uniformity(z) <= 1e-12


def test_uniformity_collapsed_is_zero_and_spread_is_lower() -> None:
    collapsed = np.tile(_rng().standard_normal(8), (50, 1))
    spread = _rng(1).standard_normal((50, 8))
    assert uniformity(collapsed) == pytest.approx(0.0, abs=1e-12)
    assert uniformity(spread) < -1.0


def test_uniformity_matches_naive_double_loop() -> None:
    z = _rng(2).standard_normal((7, 3))
    zn = z / np.linalg.norm(z, axis=1, keepdims=True)
    terms = [
        math.exp(-2.0 * float(np.sum((zn[i] - zn[j]) ** 2)))
        for i in range(7)
        for j in range(7)
        if i != j
    ]
    assert uniformity(z) == pytest.approx(math.log(sum(terms) / len(terms)), rel=1e-12)


def test_uniformity_is_stable_for_large_t() -> None:
    antipodal = np.array([[1.0, 0.0], [-1.0, 0.0]])  # squared distance 4
    assert uniformity(antipodal, t=500.0) == pytest.approx(-2000.0)  # exp(-2000) underflows


# -------------------------------------------------------------------------- plan metrics


def test_plan_entropy_uniform_and_permutation() -> None:
    n, m = 5, 7
    assert plan_entropy(np.full((n, m), 3.0)) == pytest.approx(math.log(n * m))
    perm = np.eye(n)[_rng().permutation(n)] / n
    assert plan_entropy(perm) == pytest.approx(math.log(n))
    assert plan_entropy(np.diag([0.0, 0.0, 2.0])) == pytest.approx(0.0, abs=1e-15)


def test_plan_entropy_ignores_total_mass() -> None:
    p = _rng().random((4, 6))
    assert plan_entropy(p) == pytest.approx(plan_entropy(10.0 * p), rel=1e-12)


def test_marginal_error_product_plan_is_zero_and_perturbed_is_known() -> None:
    rng = _rng()
    a, b = rng.random(4), rng.random(6)
    a, b = a / a.sum(), b / b.sum()
    plan = np.outer(a, b)
    assert marginal_error(plan, a, b) == pytest.approx(0.0, abs=1e-15)
    plan[1, 2] += 0.05  # row 1 and column 2 both gain 0.05
    assert marginal_error(plan, a, b) == pytest.approx(0.1)


def test_positive_mass_identity_uniform_and_target() -> None:
    n = 6
    assert positive_mass(np.eye(n)) == pytest.approx(1.0)
    assert positive_mass(np.ones((n, n))) == pytest.approx(1.0 / n)
    # joint layout: the positives are the pair permutation i <-> i + n (mod 2n)
    partner = np.eye(2 * n)[(np.arange(2 * n) + n) % (2 * n)]
    assert positive_mass(partner, target=partner) == pytest.approx(1.0)
    assert positive_mass(np.eye(2 * n), target=partner) == pytest.approx(0.0)
    # only the support of the target counts, not its weights
    weighted = np.array([[2.0, 0.0], [0.5, 0.0]])
    assert positive_mass(np.array([[1.0, 1.0], [1.0, 1.0]]), target=weighted) == 0.5


# ------------------------------------------------------------------------------ collapse


def test_embedding_std_random_is_inverse_sqrt_d_and_collapsed_is_zero() -> None:
    d = 16
    z = _rng().standard_normal((20000, d))
    assert embedding_std(z) == pytest.approx(1 / math.sqrt(d), rel=0.02)
    assert embedding_std(np.tile(z[0], (100, 1))) == pytest.approx(0.0, abs=1e-12)


def test_effective_rank_rank_one_isotropic_and_collapsed() -> None:
    rng = _rng()
    rank_one = np.outer(rng.standard_normal(200), rng.standard_normal(10)) + 5.0
    assert effective_rank(rank_one) == pytest.approx(1.0, abs=1e-9)
    d = 8
    assert effective_rank(rng.standard_normal((20000, d))) == pytest.approx(d, rel=0.01)
    assert effective_rank(np.tile([0.1, 0.2, 0.3], (50, 1))) == 0.0


def test_effective_rank_of_float32_collapse_is_zero_not_rounding_noise() -> None:
    """Normalised copies of one vector in float32 differ only by float32 rounding; with
    float64's tolerance that noise read as effective rank 5.4 of 8 while embedding_std was
    1e-8. The tolerance is the input dtype's: 0 for the collapse, while healthy float32
    embeddings keep their rank."""
    gen = torch.Generator().manual_seed(0)
    v = torch.randn(8, generator=gen)
    scale = 1 + torch.rand(64, 1, generator=gen)
    collapsed = torch.nn.functional.normalize(v.repeat(64, 1) * scale, dim=1)  # float32
    assert float((collapsed - collapsed[0]).abs().max()) > 0  # not bit-identical rows
    assert effective_rank(collapsed) == 0.0
    assert effective_rank(collapsed.numpy()) == 0.0
    healthy = torch.randn(4096, 8, generator=gen)
    assert effective_rank(healthy) == pytest.approx(effective_rank(healthy.double()), rel=1e-6)
    assert effective_rank(healthy) > 7.5


def test_effective_rank_equal_singular_values_gives_exact_rank() -> None:
    rng = _rng(3)
    n, k, d = 40, 3, 6
    centred = rng.standard_normal((n, k))
    q, _ = np.linalg.qr(centred - centred.mean(axis=0))  # (n, k) orthonormal, zero-mean columns
    r, _ = np.linalg.qr(rng.standard_normal((d, k)))  # (d, k) orthonormal columns
    assert effective_rank(q @ r.T + 2.0) == pytest.approx(k, rel=1e-10)


def test_compactness_collapsed_classes_and_known_value() -> None:
    rng = _rng()
    centres = rng.standard_normal((3, 5))
    labels = rng.integers(0, 3, size=60)
    assert compactness(centres[labels] * 2.0, labels) == pytest.approx(0.0, abs=1e-12)
    z = np.array([[1.0, 0.0], [0.0, 1.0], [3.0, 0.0]])
    # class "a": (1,0) and (0,1) around (0.5, 0.5), distance sqrt(0.5) each; class "b": 0
    expected = 2 * math.sqrt(0.5) / 3
    assert compactness(z, np.array(["a", "a", "b"])) == pytest.approx(expected)


# ---------------------------------------------------------------------------- downstream


def test_knn_and_probe_separable_clusters_are_perfect() -> None:
    ztr, ytr = _clusters(30, 3, 8, seed=0)
    zte, yte = _clusters(20, 3, 8, seed=1)
    assert knn_accuracy(ztr, ytr, zte, yte, k=5) == 1.0
    assert linear_probe_accuracy(ztr, ytr, zte, yte) == 1.0


def test_knn_and_probe_random_labels_are_near_chance() -> None:
    rng = _rng(4)
    ztr, zte = rng.standard_normal((200, 16)), rng.standard_normal((200, 16))
    ytr, yte = rng.permutation(np.repeat([0, 1], 100)), rng.permutation(np.repeat([0, 1], 100))
    assert knn_accuracy(ztr, ytr, zte, yte) < 0.7
    assert linear_probe_accuracy(ztr, ytr, zte, yte) < 0.7


def test_a_fitted_classifier_scores_any_test_split_as_the_one_shot_accuracy() -> None:
    """fit_knn / fit_linear_probe fitted once give, on each of several test splits, exactly
    the one-shot knn_accuracy / linear_probe_accuracy (the Noisy views page scores one
    encoder at many corruptions this way); string labels come back as strings."""
    rng = _rng(11)
    centres = rng.standard_normal((3, 8)) * 3
    ytr, yte = np.repeat(["a", "b", "c"], 40), np.repeat(["a", "b", "c"], 20)
    ztr = centres[np.repeat([0, 1, 2], 40)] + rng.standard_normal((120, 8))
    knn, probe = fit_knn(ztr, ytr, k=7), fit_linear_probe(ztr, ytr, seed=3)
    seen = set()
    for noise in (0.5, 2.0, 6.0):
        zte = centres[np.repeat([0, 1, 2], 20)] + noise * rng.standard_normal((60, 8))
        assert knn.accuracy(zte, yte) == knn_accuracy(ztr, ytr, zte, yte, k=7)
        assert probe.accuracy(zte, yte) == linear_probe_accuracy(ztr, ytr, zte, yte, seed=3)
        seen.add(probe.accuracy(zte, yte))
        assert set(probe.predict(zte)) <= {"a", "b", "c"}
    assert len(seen) > 1  # the splits differ: the scores are not one cached number
    raises_naming("test_z", lambda: knn.accuracy(ztr[:, :5], ytr))
    raises_naming("test_z", lambda: probe.predict(np.full((2, 8), np.nan)))
    raises_naming("test_y", lambda: probe.accuracy(ztr, ytr[:5]))
    raises_naming("train_y", lambda: fit_linear_probe(ztr, np.zeros(120)))
    raises_naming("k", lambda: fit_knn(ztr, ytr, k=0))


def test_knn_k_is_clipped_to_train_size() -> None:
    rng = _rng(5)
    ztr, zte = rng.standard_normal((10, 4)), rng.standard_normal((15, 4))
    ytr = np.array([0] * 7 + [1] * 3)
    # every training point is a neighbour: the prediction is always the majority class 0
    assert knn_accuracy(ztr, ytr, zte, np.zeros(15, dtype=int), k=1000) == 1.0


def test_domain_accuracy_is_the_probe_on_domain_labels() -> None:
    ztr, dtr = _clusters(25, 4, 6, seed=2)
    zte, dte = _clusters(10, 4, 6, seed=3)
    assert domain_accuracy(ztr, dtr, zte, dte) == 1.0
    rng = _rng(6)
    ztr, zte = rng.standard_normal((80, 5)), rng.standard_normal((40, 5))
    dtr, dte = rng.integers(0, 3, 80), rng.integers(0, 3, 40)
    assert domain_accuracy(ztr, dtr, zte, dte, C=0.5, seed=1) == linear_probe_accuracy(
        ztr, dtr, zte, dte, C=0.5, seed=1
    )


# --------------------------------------------------------------------- numpy versus torch

_Z = _rng(7).standard_normal((30, 6))
_Z2 = _Z + 0.3 * _rng(8).standard_normal((30, 6))
_P = _rng(9).random((30, 30))
_Y = _rng(10).integers(0, 3, 30)


def _as_torch(x: Any) -> Any:
    return torch.from_numpy(x) if isinstance(x, np.ndarray) else x


@pytest.mark.parametrize(
    ("fn", "args"),
    [
        (alignment, (_Z, _Z2)),
        (uniformity, (_Z,)),
        (plan_entropy, (_P,)),
        (marginal_error, (_P, np.full(30, 1.0), np.full(30, 1.0))),
        (positive_mass, (_P,)),
        (positive_mass, (_P, (_P > 0.5).astype(float))),  # with a target
        (embedding_std, (_Z,)),
        (effective_rank, (_Z,)),
        (compactness, (_Z, _Y)),
        (knn_accuracy, (_Z[:20], _Y[:20], _Z[20:], _Y[20:])),
        (linear_probe_accuracy, (_Z[:20], _Y[:20], _Z[20:], _Y[20:])),
        (domain_accuracy, (_Z[:20], _Y[:20], _Z[20:], _Y[20:])),
    ],
    ids=lambda v: getattr(v, "__name__", "args"),
)
def test_numpy_and_torch_inputs_agree(fn: Callable[..., float], args: tuple[Any, ...]) -> None:
    from_numpy = fn(*args)
    from_torch = fn(*(_as_torch(a) for a in args))
    assert isinstance(from_numpy, float) and isinstance(from_torch, float)
    assert from_torch == pytest.approx(from_numpy, rel=1e-12, abs=1e-12)


def test_float32_tensor_with_grad_is_accepted() -> None:
    z = torch.randn(16, 4, requires_grad=True)
    assert uniformity(z) == pytest.approx(uniformity(z.detach().double().numpy()), rel=1e-12)


# -------------------------------------------------------------------------- validation

_z = np.ones((4, 3))
_y = np.array([0, 1, 0, 1])
_nan = np.array([[1.0, np.nan], [1.0, 1.0]])


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: alignment(np.ones(3), _z), "z1"),
        (lambda: alignment(_z, np.ones((4, 2))), "z2"),
        (lambda: alignment(_z, np.zeros((4, 3))), "z2"),
        (lambda: alignment(np.ones((0, 3)), np.ones((0, 3))), "z1"),
        (lambda: alignment(_nan, _nan), "z1"),
        (lambda: alignment(np.array([["a"]]), np.array([["b"]])), "z1"),
        (lambda: uniformity(np.ones((1, 3))), "z"),
        (lambda: uniformity(_z, t=0.0), "t"),
        (lambda: uniformity(_z, t=math.inf), "t"),
        (lambda: plan_entropy(np.zeros((2, 2))), "plan"),
        (lambda: plan_entropy(-np.ones((2, 2))), "plan"),
        (lambda: plan_entropy(np.ones(4)), "plan"),
        (lambda: marginal_error(np.ones((2, 3)), np.ones(3), np.ones(3)), "a"),
        (lambda: marginal_error(np.ones((2, 3)), np.ones(2), np.ones(2)), "b"),
        (lambda: marginal_error(np.ones((2, 3)), np.ones(2), -np.ones(3)), "b"),
        (lambda: marginal_error(np.ones((2, 3)), np.array([1.0, np.inf]), np.ones(3)), "a"),
        (lambda: positive_mass(np.ones((2, 3))), "plan"),
        (lambda: positive_mass(np.ones((2, 2)), target=np.ones((2, 3))), "target"),
        (lambda: positive_mass(np.ones((2, 2)), target=np.zeros((2, 2))), "target"),
        (lambda: embedding_std(np.zeros((3, 2))), "z"),
        (lambda: effective_rank(np.array([[np.inf, 1.0]])), "z"),
        (lambda: compactness(_z, np.array([0, 1])), "labels"),
        (lambda: compactness(_z, np.ones((4, 1))), "labels"),
        (lambda: compactness(_z, np.array([0.0, np.nan, 1.0, 1.0])), "labels"),
        (lambda: knn_accuracy(_z, _y, _z, _y, k=0), "k"),
        (lambda: knn_accuracy(_z, _y, _z, _y, k=2.5), "k"),  # type: ignore[arg-type]
        (lambda: knn_accuracy(_z, _y[:3], _z, _y), "train_y"),
        # scikit-learn's "Unknown label type: continuous" named no parameter
        (lambda: knn_accuracy(_z, _y + 0.5, _z, _y), "train_y must hold class labels"),
        (lambda: linear_probe_accuracy(_z, _y, _z, _y * 0.3), "test_y must hold class labels"),
        (lambda: knn_accuracy(_z, _y, _z, _y[:3]), "test_y"),
        (lambda: knn_accuracy(_z, _y, np.ones((4, 2)), _y), "test_z"),
        (lambda: knn_accuracy(np.zeros((4, 3)), _y, _z, _y), "train_z"),
        (lambda: linear_probe_accuracy(_z, _y, _z, _y, C=-1.0), "C"),
        (lambda: linear_probe_accuracy(_z, _y, _z, _y, max_iter=0), "max_iter"),
        (lambda: linear_probe_accuracy(_z, _y, _z, _y, seed=-1), "seed"),
        (lambda: linear_probe_accuracy(_z, np.zeros(4), _z, _y), "train_y"),
        (lambda: domain_accuracy(_z, np.zeros(4), _z, _y), "train_d"),
        (lambda: domain_accuracy(_z, _y, _z, _y[:2]), "test_d"),
    ],
)
def test_invalid_input_raises_value_error_naming_parameter(
    call: Callable[[], float], match: str
) -> None:
    with pytest.raises(ValueError, match=rf"^{match}\b"):
        call()


# ------------------------------------------------------------ found by tests/test_fuzz.py
#
# One test per bug the fuzzing found (each failed before its fix in the library).


@pytest.mark.parametrize("scale", [1e-300, 1e300])
def test_metrics_normalise_tiny_and_huge_rows(scale: float) -> None:
    """Tiny rows were rejected as all-zero; huge rows became zero vectors (alignment 0)."""
    z1 = np.array([[1.0, 0.0], [0.0, 1.0]]) * scale
    z2 = np.array([[0.0, 1.0], [0.0, 1.0]])
    assert alignment(z1, z2) == pytest.approx(1.0)
    assert embedding_std(z1) == pytest.approx(0.5)


def test_effective_rank_of_huge_values() -> None:
    """The Frobenius norm overflowed, the tolerance became inf and the result 0."""
    z = np.array([[1.0, 0.0], [0.0, -1.0], [1.0, 1.0]])
    assert effective_rank(z * 1e300) == pytest.approx(effective_rank(z))


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_metrics_overflow_is_a_value_error() -> None:
    """+-inf was returned for huge unnormalised inputs."""
    z = np.array([[1e300, 0.0], [-1e300, 0.0]])
    raises_naming("z1", lambda: alignment(z, -z, normalize=False))
    raises_naming("z", lambda: uniformity(z, normalize=False))
    raises_naming("z", lambda: compactness(z * 1.7, [0, 0], normalize=False))
    raises_naming("plan", lambda: marginal_error(np.full((2, 2), 1e308), [0, 0], [0, 0]))


def test_metrics_ragged_inputs_name_the_parameter() -> None:
    """numpy's "inhomogeneous shape" ValueError named no parameter."""
    raises_naming("z", lambda: embedding_std([[1.0, 2.0], [3.0]]))
    z = np.eye(2)
    raises_naming("train_y", lambda: knn_accuracy(z, [[0], [1, 2]], z, [0, 1]))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_linear_probe_of_huge_features() -> None:
    """StandardScaler overflowed and scikit-learn raised "Input X contains NaN"."""
    z = np.array([[4.375e299], [0.0], [0.0]])
    acc = linear_probe_accuracy(z, [0, 0, 1], np.array([[0.0]]), [0], max_iter=5)
    assert 0.0 <= acc <= 1.0


def test_class_separation_is_the_between_over_within_distance() -> None:
    """Two classes at the poles of a circle, each a pair of nearby points: the ratio is the
    chord between the poles over the chord within a class; NaN without a pair of each kind
    or for points that are all the same."""
    a = 0.1
    z = np.array([[1.0, 0.0], [np.cos(a), np.sin(a)], [-1.0, 0.0], [-np.cos(a), -np.sin(a)]])
    y = [0, 0, 1, 1]
    within = 2 * np.sin(a / 2)
    between = np.mean([2.0, 2 * np.cos(a / 2), 2 * np.cos(a / 2), 2.0])
    assert class_separation(z, y) == pytest.approx(between / within)
    assert np.isnan(class_separation(z, [0, 0, 0, 0]))
    assert np.isnan(class_separation(z, [0, 1, 2, 3]))
    assert np.isnan(class_separation(np.ones((4, 3)), y))
    with pytest.raises(ValueError, match="labels"):
        class_separation(z, [0, 1])
