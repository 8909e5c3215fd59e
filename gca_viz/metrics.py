r"""Metrics: representation quality, transport-plan diagnostics, collapse and downstream accuracy.

Notation follows ``docs/math.md`` (sections 1 and 6):

* ``z'_i``, ``z''_i`` are the two views of sample ``i``; ``ẑ = z / ||z||`` is an embedding
  L2-normalised onto the unit sphere.
* ``P`` is an ``(n, m)`` transport plan, ``μ = a`` and ``ν = b`` its target marginals,
  ``P_tgt`` a target plan whose positive entries mark the positive pairs.

Public API::

    from gca_viz.metrics import alignment, uniformity  # Wang & Isola (2020)
    from gca_viz.metrics import plan_entropy, marginal_error, positive_mass  # plan diagnostics
    from gca_viz.metrics import embedding_std, effective_rank, compactness  # collapse
    from gca_viz.metrics import class_separation  # classes gathered or mixed
    from gca_viz.metrics import knn_accuracy, linear_probe_accuracy, domain_accuracy
    from gca_viz.metrics import fit_knn, fit_linear_probe  # fit once, score many test splits

Every function accepts torch tensors (any device and dtype; they are detached and copied to
float64 on the CPU) or numpy arrays, returns a Python ``float``, and raises ``ValueError``
naming the offending parameter for a wrong shape, an empty input, NaN/inf or a bad option.

References:
    Wang and Isola (2020), Understanding contrastive representation learning through
    alignment and uniformity on the hypersphere. ICML.
    Roy and Vetterli (2007), The effective rank: a measure of effective dimensionality.
    EUSIPCO.
    Chen and He (2021), Exploring simple Siamese representation learning. CVPR.
    Chen, Lin, Liu, Xiao, Dyer (2024), Your contrastive learning problem is secretly a
    distribution alignment problem. NeurIPS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.spatial.distance import pdist
from scipy.special import entr, logsumexp

from gca_viz._validate import finite_array, integer, positive
from gca_viz.ot._xp import machine_epsilon

__all__ = [
    "FittedClassifier",
    "alignment",
    "class_separation",
    "compactness",
    "domain_accuracy",
    "effective_rank",
    "embedding_std",
    "fit_knn",
    "fit_linear_probe",
    "knn_accuracy",
    "linear_probe_accuracy",
    "marginal_error",
    "plan_entropy",
    "positive_mass",
    "uniformity",
]


Array = torch.Tensor | np.ndarray
"""A torch tensor or a numpy array."""

ALIGNMENT_LATEX = r"\mathcal{L}_{\text{align}} = \frac{1}{N}\sum_{i=1}^{N} \|z'_i - z''_i\|_2^2"
"""Alignment (Wang & Isola 2020), computed by :func:`alignment`."""

UNIFORMITY_LATEX = (
    r"\mathcal{L}_{\text{uniform}} = \log \frac{1}{N(N-1)} \sum_{i \neq j}"
    r" e^{-t \|z_i - z_j\|_2^2}"
)
"""Uniformity (Wang & Isola 2020), computed by :func:`uniformity`."""


# --------------------------------------------------------------------------- conversion


def _to_numpy(x: Any, name: str) -> np.ndarray:
    """Return ``x`` as a float64 numpy array on the CPU, detached from any autograd graph."""
    if isinstance(x, torch.Tensor):
        if x.is_complex():
            raise ValueError(f"{name} must be real, got dtype {x.dtype}")
        x = x.detach().cpu().to(torch.float64).numpy()
    try:
        arr = np.asarray(x)
    except ValueError:  # a ragged nested sequence
        raise ValueError(f"{name} must be a rectangular array of numbers") from None
    if np.iscomplexobj(arr) or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise ValueError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    return arr.astype(np.float64)


def _points(x: Any, name: str) -> np.ndarray:
    """``x`` as an ``(n, d)`` float64 array of finite points, ``n, d >= 1``."""
    z = _to_numpy(x, name)
    if z.ndim != 2:
        raise ValueError(f"{name} must be 2-D (samples, features), got shape {z.shape}")
    if z.size == 0:
        raise ValueError(f"{name} must be non-empty, got shape {z.shape}")
    finite_array(z, name)
    return z


def _normalize(z: np.ndarray, name: str) -> np.ndarray:
    """Rows of ``z`` divided by their L2 norm (zero rows have no direction: rejected)."""
    top = np.abs(z).max(axis=1, keepdims=True)  # (n, 1)
    if (top == 0).any():
        raise ValueError(f"{name} has an all-zero row; it cannot be L2-normalised")
    z = z / top  # largest |entry| 1 per row: the norm of tiny or huge rows stays finite
    unit: np.ndarray = z / np.linalg.norm(z, axis=1, keepdims=True)  # (n, d)
    return unit


def _finite(value: float, names: str) -> float:
    """``value`` if finite, else ``ValueError``: the inputs ``names`` are too large."""
    if not math.isfinite(value):
        raise ValueError(f"{names} too large: the result overflows float64 ({value})")
    return value


def _plan(x: Any, name: str = "plan") -> np.ndarray:
    """``x`` as a finite, non-negative ``(n, m)`` float64 array."""
    p = _points(x, name)
    if (p < 0).any():
        raise ValueError(f"{name} must be non-negative")
    return p


def _positive_mass_total(p: np.ndarray, name: str) -> float:
    total = float(p.sum())
    if total <= 0:
        raise ValueError(f"{name} must have positive total mass")
    return total


def _labels(y: Any, name: str, n: int, points_name: str) -> np.ndarray:
    """``y`` as a 1-D numpy array with one label per row of ``points_name``."""
    try:
        labels = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
    except ValueError:  # a ragged nested sequence
        raise ValueError(f"{name} must be a 1-D array of labels") from None
    if labels.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {labels.shape}")
    if len(labels) != n:
        raise ValueError(
            f"{name} must have one label per row of {points_name}: {len(labels)} != {n}"
        )
    if np.issubdtype(labels.dtype, np.floating):
        if not np.isfinite(labels).all():
            raise ValueError(f"{name} contains NaN or inf")
        odd = labels[labels != np.round(labels)]
        if odd.size:  # (scikit-learn's "Unknown label type: continuous" did not name them)
            raise ValueError(
                f"{name} must hold class labels (integers or strings), got non-integer "
                f"values such as {odd[0]:g}"
            )
    return labels


# ----------------------------------------------------------- alignment and uniformity


def alignment(z1: Array, z2: Array, *, normalize: bool = True) -> float:
    r"""Alignment: mean squared distance between the two views of each sample.

    .. math::
        \mathcal{L}_{\text{align}} = \frac{1}{N} \sum_{i=1}^{N} \|z'_i - z''_i\|_2^2

    where ``z'_i = z1[i]`` and ``z''_i = z2[i]`` are a positive pair (L2-normalised first when
    ``normalize``, so the value lies in ``[0, 4]``). Lower is better; 0 means every pair
    coincides. This is Wang & Isola's metric with ``α = 2``.

    Args:
        z1: ``(N, d)`` view-1 embeddings.
        z2: ``(N, d)`` view-2 embeddings; row ``i`` is the positive of ``z1[i]``.
        normalize: L2-normalise every row before comparing.

    Returns:
        The alignment as a float.

    Raises:
        ValueError: if ``z1`` or ``z2`` is not 2-D, is empty or holds NaN/inf, if their
            shapes differ, or (with ``normalize``) if a row is all zero.

    References:
        Wang and Isola (2020), ICML, section 4.1.
    """
    a, b = _points(z1, "z1"), _points(z2, "z2")
    if a.shape != b.shape:
        raise ValueError(f"z2 must have the same shape as z1: {b.shape} != {a.shape}")
    if normalize:
        a, b = _normalize(a, "z1"), _normalize(b, "z2")
    return _finite(float(((a - b) ** 2).sum(axis=1).mean()), "z1 and z2 are")


def uniformity(z: Array, *, t: float = 2.0, normalize: bool = True) -> float:
    r"""Uniformity: log of the mean Gaussian potential over all distinct pairs.

    .. math::
        \mathcal{L}_{\text{uniform}} = \log \frac{1}{N(N-1)} \sum_{i \neq j}
            e^{-t \|z_i - z_j\|_2^2}
        = \mathrm{LSE}_{i<j}\big(-t\,D_{ij}\big) - \log\tbinom{N}{2}

    where ``D_ij = ||z_i - z_j||^2`` over the ``N(N-1)/2`` unordered pairs (the sum over
    ``i != j`` counts each twice, which cancels) and ``LSE`` is log-sum-exp, so nothing
    underflows however large ``t D_ij`` is. Lower is more uniform; collapsed embeddings give
    the maximum, 0.

    Known value: for ``N`` unit vectors, ``sum_{i,j} D_ij = 2N^2 - 2||sum_i z_i||^2 <= 2N^2``,
    so by Jensen ``L >= -t 2N / (N - 1)``, with equality exactly for a regular simplex
    (all ``D_ij`` equal, centroid at 0). ``N = d + 1`` points forming a regular simplex in
    ``R^d`` have ``D_ij = 2(d + 1)/d`` and attain the minimum ``-2t(d + 1)/d``.

    Args:
        z: ``(N, d)`` embeddings, ``N >= 2``.
        t: the potential's scale ``t > 0`` (2 in Wang & Isola and ``docs/math.md``).
        normalize: L2-normalise every row first.

    Returns:
        The uniformity as a float (``<= 0``).

    Raises:
        ValueError: if ``z`` is not 2-D, has fewer than 2 rows, holds NaN/inf or (with
            ``normalize``) an all-zero row; if ``t`` is not finite and ``> 0``.

    References:
        Wang and Isola (2020), ICML, section 4.1.
    """
    t = positive(t, "t")
    x = _points(z, "z")
    if len(x) < 2:
        raise ValueError(f"z must have at least 2 rows (one pair), got {len(x)}")
    if normalize:
        x = _normalize(x, "z")
    sq_dists = pdist(x, "sqeuclidean")  # (N(N-1)/2,) one entry per pair i < j
    value = float(logsumexp(-t * sq_dists) - math.log(len(sq_dists)))
    return _finite(value, "z or t is")


# ---------------------------------------------------------------------- plan diagnostics


def plan_entropy(plan: Array) -> float:
    r"""Shannon entropy of a transport plan normalised to total mass 1.

    .. math::
        H = -\sum_{ij} p_{ij} \log p_{ij}, \qquad p = P / \textstyle\sum_{ij} P_{ij}

    where ``0 log 0 = 0``. It ranges from 0 (all mass on one entry) to ``log(nm)`` (uniform
    plan); a permutation plan has ``log n``. Unlike ``SinkhornResult.entropy`` (the ``H(P)``
    of the OT objective) this ignores the plan's total mass.

    Args:
        plan: ``(n, m)`` non-negative plan ``P`` with positive total mass.

    Returns:
        The entropy in nats.

    Raises:
        ValueError: if ``plan`` is not 2-D, empty, negative somewhere, holds NaN/inf or has
            zero total mass.
    """
    p = _plan(plan)
    p = p / _positive_mass_total(p, "plan")
    return float(entr(p).sum())  # entr(x) = -x log x, and entr(0) = 0


def marginal_error(plan: Array, a: Array, b: Array) -> float:
    r"""L1 violation of both marginal constraints.

    .. math::
        \|P\mathbf{1} - \mu\|_1 + \|P^\top\mathbf{1} - \nu\|_1

    where ``P 1`` are the row sums, ``P^T 1`` the column sums and ``μ = a``, ``ν = b`` the
    target marginals. It is 0 exactly when ``P`` is feasible for the balanced problem; for
    an unbalanced plan it measures how far the relaxation moved the marginals.

    Args:
        plan: ``(n, m)`` non-negative plan ``P``.
        a: ``(n,)`` non-negative row marginal ``μ``.
        b: ``(m,)`` non-negative column marginal ``ν``.

    Returns:
        The marginal error as a float.

    Raises:
        ValueError: if ``plan`` is not 2-D, empty, negative or non-finite; if ``a`` or ``b``
            is not 1-D, has the wrong length, is negative or non-finite.
    """
    p = _plan(plan)
    n, m = p.shape
    mu, nu = _to_numpy(a, "a"), _to_numpy(b, "b")
    for name, vec, size in (("a", mu, n), ("b", nu, m)):
        if vec.shape != (size,):
            raise ValueError(f"{name} must have shape ({size},), got {vec.shape}")
        finite_array(vec, name)
        if (vec < 0).any():
            raise ValueError(f"{name} must be non-negative")
    value = float(np.abs(p.sum(axis=1) - mu).sum() + np.abs(p.sum(axis=0) - nu).sum())
    return _finite(value, "plan, a or b is")


def positive_mass(plan: Array, target: Array | None = None) -> float:
    r"""Fraction of the plan's mass that sits on positive pairs.

    .. math::
        \frac{\sum_{ij} P_{ij}\,\mathbb{1}[(P_{\text{tgt}})_{ij} > 0]}{\sum_{ij} P_{ij}}

    where the positives are the support of the target plan ``P_tgt``. With ``target=None``
    the target is the identity ``I_N`` (the cross-view layout), so this is
    ``sum_i P_ii / sum P``. For the joint layout pass the pair permutation as ``target``.
    The value is 1 for a plan concentrated on the positives and ``1/N`` for the uniform
    ``N x N`` plan with the identity target.

    Args:
        plan: ``(n, m)`` non-negative plan ``P`` with positive total mass; square when
            ``target`` is ``None``.
        target: ``(n, m)`` non-negative target plan whose positive entries mark the
            positives, or ``None`` for the identity.

    Returns:
        The positive mass, in ``[0, 1]``.

    Raises:
        ValueError: if ``plan`` is not 2-D, empty, negative, non-finite or of zero mass, or
            not square with ``target=None``; if ``target`` has a different shape, is
            negative, non-finite or has no positive entry.
    """
    p = _plan(plan)
    total = _positive_mass_total(p, "plan")
    if target is None:
        if p.shape[0] != p.shape[1]:
            raise ValueError(f"plan must be square when target is None, got shape {p.shape}")
        return float(np.trace(p) / total)
    tgt = _plan(target, "target")
    if tgt.shape != p.shape:
        raise ValueError(f"target must have the plan's shape {p.shape}, got {tgt.shape}")
    support = tgt > 0  # (n, m) True on positive pairs
    if not support.any():
        raise ValueError("target has no positive entry, so there are no positives")
    return float(p[support].sum() / total)


# ----------------------------------------------------------------------------- collapse


def embedding_std(z: Array) -> float:
    r"""Mean per-dimension standard deviation of the L2-normalised embeddings.

    .. math::
        \sigma = \frac{1}{d} \sum_{k=1}^{d} \operatorname{std}_i\big(\hat z_{ik}\big),
        \qquad \hat z_i = z_i / \|z_i\|_2

    where ``std`` is the population standard deviation over the ``N`` samples. For
    embeddings spread uniformly over the sphere each coordinate has variance ``1/d``, so
    ``σ ≈ 1/sqrt(d)``; a collapsed representation (all embeddings equal) gives 0. This is
    the collapse indicator of SimSiam.

    Args:
        z: ``(N, d)`` embeddings (no all-zero row).

    Returns:
        ``σ`` in ``[0, 1]``.

    Raises:
        ValueError: if ``z`` is not 2-D, empty, holds NaN/inf or an all-zero row.

    References:
        Chen and He (2021), CVPR, section 4.1 (Fig. 2).
    """
    x = _normalize(_points(z, "z"), "z")
    return float(x.std(axis=0).mean())


def effective_rank(z: Array) -> float:
    r"""Effective rank of the centred embeddings (Roy & Vetterli 2007).

    .. math::
        \operatorname{erank}(Z) = \exp\Big(-\sum_k p_k \log p_k\Big),
        \qquad p_k = \frac{\sigma_k}{\sum_l \sigma_l}

    where ``σ_k`` are the singular values of the centred matrix ``Z - 1 z̄^T`` (``z̄`` the
    mean embedding). It is 1 for rank-1 data and ``d`` when all singular values are equal
    (isotropic data with ``N >> d``). Singular values below a rounding tolerance
    (``max(N, d) * eps * ||Z||_F``, ``eps`` of ``z``'s own dtype: float32 embeddings round
    at 1.2e-7, not float64's 2.2e-16) count as 0, so collapsed data is not read as
    full-rank noise; when nothing is left (every embedding equal) the result is 0.

    Args:
        z: ``(N, d)`` embeddings (used as given, not normalised).

    Returns:
        The effective rank, in ``[1, min(N - 1, d)]``, or 0 for collapsed data.

    Raises:
        ValueError: if ``z`` is not 2-D, empty or holds NaN/inf.

    References:
        Roy and Vetterli (2007), EUSIPCO.
    """
    x = _points(z, "z")
    top = np.abs(x).max()
    x = x / top if top > 0 else x  # the effective rank is scale-free; this avoids overflow
    sv = np.linalg.svd(x - x.mean(axis=0), compute_uv=False)  # (min(N, d),)
    # Rounding in z's own dtype, not in the float64 copy, is what the tolerance must cover.
    tol = max(x.shape) * machine_epsilon(z) * np.linalg.norm(x)
    sv = sv[sv > tol]
    if len(sv) == 0:
        return 0.0
    p = sv / sv.sum()
    return float(np.exp(entr(p).sum()))


def compactness(z: Array, labels: Array, *, normalize: bool = True) -> float:
    r"""Mean distance of embeddings to their class centroid.

    .. math::
        \frac{1}{N} \sum_{i=1}^{N} \|\hat z_i - c_{y_i}\|_2, \qquad
        c_k = \frac{1}{|\{i : y_i = k\}|} \sum_{i : y_i = k} \hat z_i

    where ``ẑ_i`` is the L2-normalised embedding (``z_i`` itself without ``normalize``) and
    ``c_k`` the (not renormalised) centroid of class ``k``. Lower is more compact; 0 when
    every class collapses to a point. The GCA paper reports "compactness" without an exact
    definition, so this one (``docs/math.md`` section 6) is used here; its values are not
    comparable to the paper's numbers.

    Args:
        z: ``(N, d)`` embeddings.
        labels: ``(N,)`` class labels (any comparable values).
        normalize: L2-normalise every row first.

    Returns:
        The compactness as a float (in ``[0, 2]`` when normalised).

    Raises:
        ValueError: if ``z`` is not 2-D, empty, holds NaN/inf or (with ``normalize``) an
            all-zero row; if ``labels`` is not 1-D, has the wrong length or holds NaN.
    """
    x = _points(z, "z")
    y = _labels(labels, "labels", len(x), "z")
    if normalize:
        x = _normalize(x, "z")
    _, cls = np.unique(y, return_inverse=True)  # (N,) class index of each sample
    counts = np.bincount(cls)  # (K,)
    centroids = np.zeros((len(counts), x.shape[1]))  # (K, d)
    np.add.at(centroids, cls, x)
    centroids /= counts[:, None]
    return _finite(float(np.linalg.norm(x - centroids[cls], axis=1).mean()), "z is")


def class_separation(z: Array, labels: Array) -> float:
    r"""How much closer a sample's class-mates sit than the other classes' samples, on the
    unit sphere:

    .. math::
        \frac{\operatorname{mean}_{y_i \ne y_j} \|\hat z_i - \hat z_j\|_2}
             {\operatorname{mean}_{i \ne j,\ y_i = y_j} \|\hat z_i - \hat z_j\|_2},
        \qquad \hat z_i = z_i / \|z_i\|_2

    About 1 when the classes are mixed, larger as they gather; ``inf`` when every class is
    one point and the classes are apart; ``NaN`` without a pair of each kind or when every
    embedding is the same point (``0 / 0``).

    Args:
        z: ``(N, d)`` embeddings (no all-zero row). labels: ``(N,)`` class labels.

    Returns:
        The ratio as a float.

    Raises:
        ValueError: if ``z`` is not 2-D, empty, holds NaN/inf or an all-zero row; if
            ``labels`` is not 1-D, has the wrong length or holds NaN.
    """
    x = _normalize(_points(z, "z"), "z")
    y = _labels(labels, "labels", len(x), "z")
    dist = pdist(x)  # (N (N - 1) / 2,) in the order of the pairs i < j
    i, j = np.triu_indices(len(x), k=1)
    same = y[i] == y[j]
    if same.all() or not same.any():
        return math.nan
    within, between = float(dist[same].mean()), float(dist[~same].mean())
    return between / within if within > 0 else (math.nan if between == 0 else math.inf)


# ------------------------------------------------------------------------------ downstream


def knn_accuracy(
    train_z: Array, train_y: Array, test_z: Array, test_y: Array, *, k: int = 20
) -> float:
    r"""Accuracy of a cosine k-nearest-neighbour classifier on frozen embeddings.

    .. math::
        \hat y(x) = \arg\max_c \sum_{i \in \mathcal{N}_k(x)} \mathbb{1}[y_i = c], \qquad
        \text{acc} = \frac{1}{N_{\text{test}}} \sum_{x} \mathbb{1}[\hat y(x) = y(x)]

    where ``N_k(x)`` are the ``k`` training embeddings with the smallest cosine distance
    ``1 - cos(x, z_i)`` to the test embedding ``x`` (an unweighted majority vote; ties go to
    the smallest label, scikit-learn's rule). ``k`` is clipped to the training-set size.

    Args:
        train_z: ``(N_train, d)`` training embeddings (no all-zero row).
        train_y: ``(N_train,)`` training labels.
        test_z: ``(N_test, d)`` test embeddings (no all-zero row).
        test_y: ``(N_test,)`` test labels.
        k: number of neighbours, an integer ``>= 1``.

    Returns:
        The test accuracy, in ``[0, 1]``.

    Raises:
        ValueError: naming the parameter, for embeddings that are not 2-D, empty, non-finite
            or have an all-zero row or a different feature dimension; labels of the wrong
            shape or length; ``k`` not an integer ``>= 1``.
    """
    return fit_knn(train_z, train_y, k=k).accuracy(test_z, test_y)


def linear_probe_accuracy(
    train_z: Array,
    train_y: Array,
    test_z: Array,
    test_y: Array,
    *,
    max_iter: int = 1000,
    C: float = 1.0,
    seed: int = 0,
) -> float:
    r"""Linear-probe accuracy: logistic regression on standardised frozen features.

    .. math::
        \min_{W, b}\; \frac{1}{2}\|W\|_F^2 + C \sum_{i} -\log
            \operatorname{softmax}\big(W \tilde z_i + b\big)_{y_i},
        \qquad \tilde z = (z - m) / s

    where ``m`` and ``s`` are the per-feature mean and standard deviation of the training
    embeddings (applied to both splits), ``C`` is the inverse L2 strength and the problem
    is solved by L-BFGS (scikit-learn's ``LogisticRegression``). The encoder stays frozen:
    only ``W`` and ``b`` are fitted, on the training split; the accuracy is measured on the
    test split.

    Args:
        train_z: ``(N_train, d)`` training features.
        train_y: ``(N_train,)`` training labels (at least two classes).
        test_z: ``(N_test, d)`` test features.
        test_y: ``(N_test,)`` test labels.
        max_iter: L-BFGS iterations, an integer ``>= 1``.
        C: inverse regularisation strength ``> 0``.
        seed: random state passed to scikit-learn, an integer ``>= 0``.

    Returns:
        The test accuracy, in ``[0, 1]``.

    Raises:
        ValueError: naming the parameter, for features that are not 2-D, empty, non-finite
            or of different dimensions; labels of the wrong shape or length; ``train_y``
            with a single class; ``max_iter < 1``; ``C`` not finite and ``> 0``; ``seed``
            not an integer ``>= 0``.
    """
    probe = fit_linear_probe(train_z, train_y, max_iter=max_iter, C=C, seed=seed)
    return probe.accuracy(test_z, test_y)


def domain_accuracy(
    train_z: Array,
    train_d: Array,
    test_z: Array,
    test_d: Array,
    *,
    max_iter: int = 1000,
    C: float = 1.0,
    seed: int = 0,
) -> float:
    r"""Domain accuracy: how linearly decodable the domain is from the embeddings.

    .. math::
        \text{acc}_{\text{domain}} = \frac{1}{N_{\text{test}}} \sum_{x}
            \mathbb{1}\big[\hat D(x) = D(x)\big]

    where ``D`` is the domain label (e.g. PACS's photo, art, cartoon, sketch) and ``D̂`` the
    linear probe of :func:`linear_probe_accuracy` trained on domain labels instead of
    classes (``docs/math.md`` section 6). The GCA paper's domain prior
    (:func:`gca_viz.targets.domain_target`: ``P_tgt = (1 - α - β) I + α 1[D_i = D_j, i != j]
    / n_=(i) + β 1[D_i != D_j] / n_!=(i)``, shares of each row) raises this as ``α - β``
    grows.

    Args:
        train_z: ``(N_train, d)`` training features.
        train_d: ``(N_train,)`` training domain labels (at least two domains).
        test_z: ``(N_test, d)`` test features.
        test_d: ``(N_test,)`` test domain labels.
        max_iter, C, seed: as in :func:`linear_probe_accuracy`.

    Returns:
        The test domain accuracy, in ``[0, 1]``.

    Raises:
        ValueError: as :func:`linear_probe_accuracy`, naming ``train_d``/``test_d`` for
            bad domain labels.
    """
    probe = _fit_probe(train_z, train_d, max_iter=max_iter, C=C, seed=seed, y_name="d")
    return probe.accuracy(test_z, test_d)


@dataclass(frozen=True)
class FittedClassifier:
    r"""A classifier fitted once on frozen training features, to score any test split.

    :func:`fit_knn` and :func:`fit_linear_probe` return one; ``accuracy(test_z, test_y)``
    is exactly what :func:`knn_accuracy` and :func:`linear_probe_accuracy` return for that
    split (they are the fit followed by this score). Fit once to score an encoder on many
    test conditions: the Noisy views page scores a trained encoder on test digits corrupted
    at each severity the user picks, the training split's features and fit unchanged.

    Attributes:
        kind: ``"k-NN"`` or ``"linear probe"``.
        dim: the feature dimension ``d`` of the training split; test features must match.
        estimator: the fitted scikit-learn estimator (``KNeighborsClassifier``, or a
            ``StandardScaler`` -> ``LogisticRegression`` pipeline).
        scale: the probe's one global scale, the training features' largest ``|entry|``
            (features are divided by it before standardisation, which cancels it; it keeps
            huge features from overflowing); ``0`` for k-NN, whose rows are L2-normalised.
        y_name: the labels' name in messages (``"y"``: ``test_y``; ``"d"``: ``test_d``).
    """

    kind: str
    dim: int
    estimator: Any
    scale: float
    y_name: str = "y"

    def predict(self, test_z: Array) -> np.ndarray:
        """Predicted labels of ``test_z`` (``(N_test, d)``), shape ``(N_test,)``.

        Raises:
            ValueError: naming ``test_z``, for features that are not 2-D, empty, non-finite,
                of another dimension than the training split's, or (k-NN) an all-zero row.
        """
        xte = _points(test_z, "test_z")
        if xte.shape[1] != self.dim:
            raise ValueError(
                f"test_z must have the same feature dimension as train_z: "
                f"{xte.shape[1]} != {self.dim}"
            )
        if self.kind == "k-NN":
            return np.asarray(self.estimator.predict(_normalize(xte, "test_z")))
        if self.scale > 0:
            xte = xte / self.scale
        try:
            return np.asarray(self.estimator.predict(xte))
        except ValueError as exc:  # scikit-learn's, which names its own X
            raise ValueError(f"the probe failed on test_z: {exc}") from exc

    def accuracy(self, test_z: Array, test_y: Array) -> float:
        r"""Test accuracy :math:`\frac{1}{N_{\text{test}}}\sum_x \mathbb 1[\hat y(x) = y(x)]`
        of :meth:`predict` on ``test_z`` against ``test_y`` (``(N_test,)``), in ``[0, 1]``."""
        pred = self.predict(test_z)
        yte = _labels(test_y, f"test_{self.y_name}", len(pred), "test_z")
        return float(np.mean(pred == yte))


def fit_knn(train_z: Array, train_y: Array, *, k: int = 20) -> FittedClassifier:
    """The cosine k-NN classifier of :func:`knn_accuracy`, fitted on ``train_z``
    (``(N_train, d)``, no all-zero row) and ``train_y`` (``(N_train,)``), ``k`` clipped to
    ``N_train``; score it with :meth:`FittedClassifier.accuracy`.

    Raises:
        ValueError: naming the parameter, as :func:`knn_accuracy`.
    """
    k = integer(k, "k", 1)
    xtr = _points(train_z, "train_z")
    ytr = _labels(train_y, "train_y", len(xtr), "train_z")
    from sklearn.neighbors import KNeighborsClassifier  # lazy: keeps `import gca_viz` light

    knn = KNeighborsClassifier(n_neighbors=min(k, len(xtr)), metric="cosine")
    knn.fit(_normalize(xtr, "train_z"), ytr)
    return FittedClassifier("k-NN", xtr.shape[1], knn, 0.0)


def fit_linear_probe(
    train_z: Array, train_y: Array, *, max_iter: int = 1000, C: float = 1.0, seed: int = 0
) -> FittedClassifier:
    """The linear probe of :func:`linear_probe_accuracy` (standardise, then L2-regularised
    logistic regression by L-BFGS), fitted on ``train_z`` (``(N_train, d)``) and ``train_y``
    (``(N_train,)``, at least two classes); score it with :meth:`FittedClassifier.accuracy`.

    Raises:
        ValueError: naming the parameter, as :func:`linear_probe_accuracy`.
    """
    return _fit_probe(train_z, train_y, max_iter=max_iter, C=C, seed=seed, y_name="y")


def _fit_probe(
    train_z: Array, train_y: Array, *, max_iter: int, C: float, seed: int, y_name: str
) -> FittedClassifier:
    """Fit standardise -> logistic regression on the training split (``y_name`` names the
    labels in messages: ``train_y`` or ``train_d``)."""
    xtr = _points(train_z, "train_z")
    ytr = _labels(train_y, f"train_{y_name}", len(xtr), "train_z")
    max_iter = integer(max_iter, "max_iter", 1)
    C = positive(C, "C")
    seed = integer(seed, "seed", 0)
    if len(np.unique(ytr)) < 2:
        raise ValueError(f"train_{y_name} must contain at least two classes")
    from sklearn.linear_model import LogisticRegression  # lazy: keeps `import gca_viz` light
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(
        StandardScaler(),
        LogisticRegression(C=C, max_iter=max_iter, random_state=seed),
    )
    scale = float(np.abs(xtr).max())
    try:
        probe.fit(xtr / scale if scale > 0 else xtr, ytr)
    except ValueError as exc:  # scikit-learn's, which names its own X and y
        raise ValueError(f"the probe failed on train_z: {exc}") from exc
    return FittedClassifier("linear probe", xtr.shape[1], probe, scale, y_name)
