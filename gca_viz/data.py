r"""Datasets: the embedded ones (no download), and the front door to user data on disk.

A :class:`Dataset` holds images ``(n, C, H, W)`` in ``[0, 1]`` or vectors ``(n, d)``, class
labels ``0..k-1`` and optional domain labels ``0..m-1``. Embedded datasets live in the
:data:`DATASETS` registry with a parameter schema each; :func:`load_dataset` is the front
door::

    from gca_viz.data import load_dataset, load_user_dataset

    digits = load_dataset("digits")  # (1797, 1, 8, 8), 10 classes
    train, test = digits.split(test_fraction=0.25, seed=0)
    blobs = load_dataset("sphere_mixture", n_points=500, dim=16)
    mine = load_user_dataset("my_data.npz")  # or an image folder, or CIFAR-10 binaries

The user-data loaders live in :mod:`gca_viz.userdata` and are importable from here. User
data is never unpickled (``np.load(..., allow_pickle=False)``); every malformed input raises
a ``ValueError`` that names the file and the problem.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from gca_viz.registry import Param, Registry

PathLike = str | os.PathLike[str]
"""A filesystem path."""

KINDS = ("image", "vector")
"""The kinds of data a :class:`Dataset` holds."""

DEFAULT_DATASET = "digits"
"""The dataset the app starts with."""

DATASETS = Registry("dataset")
"""The embedded datasets: name -> generator function with its parameter schema."""

DOMAIN_NAMES = ("original", "rotated", "inverted", "noisy")
"""The four domains of ``multidomain_digits``, in domain-label order."""

CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
"""CIFAR-10 class names, used when ``batches.meta.txt`` is absent."""


# ------------------------------------------------------------------------------ Dataset


@dataclass(frozen=True, eq=False)
class Dataset:
    """A labelled dataset of images or vectors, validated on construction.

    Attributes:
        name: a display name.
        x: images ``(n, C, H, W)`` float32 in ``[0, 1]``, or vectors ``(n, d)`` float32.
        y: ``(n,)`` int64 class labels in ``0..len(class_names)-1``.
        domain: ``(n,)`` int64 domain labels in ``0..len(domain_names)-1``, or ``None``.
        kind: ``"image"`` or ``"vector"``.
        class_names: one name per class label.
        domain_names: one name per domain label; empty when ``domain`` is ``None``.

    Raises:
        ValueError: naming the field, for a wrong type, dtype, shape or kind, differing
            lengths, an empty dataset, NaN/inf, images outside ``[0, 1]`` or labels out of
            range.
    """

    name: str
    x: torch.Tensor
    y: torch.Tensor
    domain: torch.Tensor | None
    kind: str
    class_names: tuple[str, ...]
    domain_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name must be a non-empty string, got {self.name!r}")
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        for field_name in ("class_names", "domain_names"):
            names = getattr(self, field_name)
            if isinstance(names, str):
                raise ValueError(f"{field_name} must be a sequence of names, not a string")
        object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names))
        object.__setattr__(self, "domain_names", tuple(str(d) for d in self.domain_names))
        x = self.x
        if not isinstance(x, torch.Tensor) or x.dtype != torch.float32:
            raise ValueError(f"x must be a float32 tensor, got {_describe(x)}")
        ndim = 4 if self.kind == "image" else 2
        if x.ndim != ndim:
            raise ValueError(f"x must be {ndim}-D for kind {self.kind!r}, got {tuple(x.shape)}")
        if x.numel() == 0:
            raise ValueError(f"x must be non-empty, got shape {tuple(x.shape)}")
        if not bool(torch.isfinite(x).all()):
            raise ValueError("x contains NaN or inf")
        if self.kind == "image" and (float(x.min()) < 0.0 or float(x.max()) > 1.0):
            raise ValueError(f"x (images) must lie in [0, 1], got [{x.min():g}, {x.max():g}]")
        if not self.class_names:
            raise ValueError("class_names must name at least one class")
        _check_labels(self.y, "y", len(x), len(self.class_names), "class_names")
        if self.domain is None:
            if self.domain_names:
                raise ValueError("domain_names must be empty when domain is None")
        else:
            if not self.domain_names:
                raise ValueError("domain_names must name the domains when domain is given")
            _check_labels(self.domain, "domain", len(x), len(self.domain_names), "domain_names")

    @property
    def n(self) -> int:
        """Number of samples."""
        return int(self.x.shape[0])

    def __len__(self) -> int:
        return self.n

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample: ``(C, H, W)`` or ``(d,)``."""
        return tuple(int(s) for s in self.x.shape[1:])

    @property
    def n_classes(self) -> int:
        """Number of classes (``len(class_names)``; a subset may lack some)."""
        return len(self.class_names)

    @property
    def n_domains(self) -> int:
        """Number of domains, 0 when the dataset has no domain labels."""
        return len(self.domain_names)

    def subset(self, idx: Sequence[int] | np.ndarray | torch.Tensor) -> Dataset:
        """The samples at ``idx``, keeping names and label sets.

        Args:
            idx: integer indices in ``0..n-1`` or a boolean mask of length ``n``.

        Returns:
            A new :class:`Dataset` (same class and domain names).

        Raises:
            ValueError: (naming ``idx``) for non-integer indices, indices out of range, a
                mask of the wrong length, or an empty selection.
        """
        index = torch.as_tensor(np.asarray(idx) if not isinstance(idx, torch.Tensor) else idx)
        if index.dtype == torch.bool:
            if index.shape != (self.n,):
                raise ValueError(f"idx as a mask must have shape ({self.n},), got {index.shape}")
            index = index.nonzero().flatten()
        if index.numel() == 0:
            raise ValueError("idx selects no samples")
        if index.ndim != 1 or index.is_floating_point() or index.is_complex():
            raise ValueError(f"idx must be a 1-D array of integer indices, got {_describe(idx)}")
        if int(index.min()) < 0 or int(index.max()) >= self.n:
            raise ValueError(f"idx must lie in 0..{self.n - 1}")
        index = index.to(device=self.x.device, dtype=torch.int64)
        return Dataset(
            name=self.name,
            x=self.x[index],
            y=self.y[index.to(self.y.device)],
            domain=None if self.domain is None else self.domain[index.to(self.domain.device)],
            kind=self.kind,
            class_names=self.class_names,
            domain_names=self.domain_names,
        )

    def split(self, test_fraction: float = 0.25, seed: int = 0) -> tuple[Dataset, Dataset]:
        """A stratified train/test split, fixed by ``seed``.

        The test size is ``T = round(test_fraction * n)`` (kept within ``1..n-1``). Each class
        gets ``n_c T / n`` test samples rounded up or down (largest remainders, so the counts
        add up to ``T``), and within a class each domain gets its share the same way; the
        samples of each (class, domain) group are drawn by a ``numpy`` Generator seeded
        with ``seed``. Both parts keep the original sample order.

        Args:
            test_fraction: fraction of samples in the test part, in ``(0, 1)``.
            seed: seed of the permutation; the same seed gives the same split.

        Returns:
            ``(train, test)``, disjoint and together covering every sample.

        Raises:
            ValueError: (naming the parameter) for ``test_fraction`` outside ``(0, 1)``, a
                non-integer ``seed``, or a dataset of fewer than 2 samples.
        """
        f = _check_fraction(test_fraction)
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        if self.n < 2:
            raise ValueError(f"split needs at least 2 samples, the dataset has {self.n}")
        rng = np.random.default_rng(int(seed))
        y = self.y.cpu().numpy()
        dom = np.zeros_like(y) if self.domain is None else self.domain.cpu().numpy()
        total = min(max(round(f * self.n), 1), self.n - 1)
        classes, class_sizes = np.unique(y, return_counts=True)
        test_parts = []
        for c, n_test_c in zip(classes, _allocate(class_sizes, total), strict=True):
            in_c = np.flatnonzero(y == c)
            domains, dom_sizes = np.unique(dom[in_c], return_counts=True)
            for d, k in zip(domains, _allocate(dom_sizes, int(n_test_c)), strict=True):
                group = in_c[dom[in_c] == d]
                test_parts.append(rng.permutation(group)[:k])
        is_test = np.zeros(self.n, dtype=bool)
        is_test[np.concatenate(test_parts)] = True
        return self.subset(np.flatnonzero(~is_test)), self.subset(np.flatnonzero(is_test))


def _allocate(sizes: np.ndarray, total: int) -> np.ndarray:
    """Split ``total`` over groups in proportion to ``sizes`` (largest-remainder rounding)."""
    quota = np.asarray(sizes, dtype=np.float64) * total / float(sizes.sum())  # (g,) shares
    counts: np.ndarray = np.floor(quota).astype(np.int64)
    short = total - int(counts.sum())
    counts[np.argsort(-(quota - counts), kind="stable")[:short]] += 1
    return counts


def _describe(x: Any) -> str:
    if isinstance(x, torch.Tensor | np.ndarray):
        return f"{type(x).__name__} of dtype {x.dtype} and shape {tuple(x.shape)}"
    return type(x).__name__


def _check_labels(t: Any, name: str, n: int, k: int, names_field: str) -> None:
    if not isinstance(t, torch.Tensor) or t.dtype != torch.int64:
        raise ValueError(f"{name} must be an int64 tensor, got {_describe(t)}")
    if t.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) like x, got {tuple(t.shape)}")
    if int(t.min()) < 0 or int(t.max()) >= k:
        raise ValueError(
            f"{name} must lie in 0..{k - 1} ({k} {names_field}), "
            f"got [{int(t.min())}, {int(t.max())}]"
        )


def _check_fraction(test_fraction: Any) -> float:
    try:
        f = float(test_fraction)
    except (TypeError, ValueError):
        raise ValueError(f"test_fraction must be a number, got {test_fraction!r}") from None
    if not (0.0 < f < 1.0):
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction!r}")
    return f


# --------------------------------------------------------------------- embedded datasets

SEED = Param("seed", 0, "Seed of the random generator.", kind="int", low=0, ui=(0, 100))


def load_dataset(name: str = DEFAULT_DATASET, **params: Any) -> Dataset:
    """Build the embedded dataset ``name`` with ``params`` (validated against its schema).

    Args:
        name: a key of :data:`DATASETS`, for example ``"digits"`` or ``"rings"``.
        **params: overrides of the dataset's parameters (see ``DATASETS[name].params``).

    Returns:
        The :class:`Dataset`.

    Raises:
        ValueError: for an unknown name, an unknown parameter or a value out of range.
    """
    stage = DATASETS[name]
    dataset: Dataset = stage.fn(**stage.validate(params))
    return dataset


@functools.lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits  # deferred: importing sklearn takes a while

    bunch = load_digits()
    images = np.asarray(bunch.images, dtype=np.float32) / 16.0  # (1797, 8, 8) in [0, 1]
    labels = np.asarray(bunch.target, dtype=np.int64)  # (1797,)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


@DATASETS.register(
    "digits",
    latex=r"x \in [0, 1]^{1 \times 8 \times 8},\quad y \in \{0, \dots, 9\}",
    description="scikit-learn's handwritten digits: 1797 grayscale 8x8 images, 10 classes.",
)
def digits() -> Dataset:
    """scikit-learn's handwritten digits, pixel values divided by 16.

    Returns:
        A :class:`Dataset` of 1797 images ``(1, 8, 8)`` in ``[0, 1]`` with 10 classes.
    """
    images, labels = _digits_arrays()
    return Dataset(
        name="digits",
        x=torch.tensor(images).unsqueeze(1),  # (1797, 1, 8, 8)
        y=torch.tensor(labels),
        domain=None,
        kind="image",
        class_names=tuple(str(i) for i in range(10)),
    )


@DATASETS.register(
    "multidomain_digits",
    params=(
        Param("noise", 0.2, "Noise level σ of the noisy domain.", "σ", low=0.0, ui=(0.0, 0.5)),
        SEED,
    ),
    latex=(
        r"x^{(D)} \in \{\,x,\ \mathrm{rot}_{90}(x),\ 1 - x,\ "
        r"\mathrm{clip}_{[0,1]}(x + \sigma\xi)\,\},\quad \xi \sim \mathcal N(0, I)"
    ),
    description="Digits in four domains (original, rotated, inverted, noisy), shared classes.",
)
def multidomain_digits(noise: float = 0.2, seed: int = 0) -> Dataset:
    r"""The digits split over four domains that share the ten classes.

    Every digit appears once, in one domain: the digits of each class are shuffled (seeded)
    and dealt to the domains in turn, so every domain holds every class and the domain
    sizes differ by at most one. Domain ``D`` transforms its digits by

    .. math::
        x^{(0)} = x,\quad x^{(1)} = \mathrm{rot}_{90}(x),\quad x^{(2)} = 1 - x,\quad
        x^{(3)} = \mathrm{clip}_{[0,1]}(x + \sigma\xi)

    where ``rot_90`` is ``torch.rot90`` over the image axes and ``ξ`` standard Gaussian noise.

    Args:
        noise: ``σ >= 0`` of the noisy domain.
        seed: seed of the domain assignment and of the noise.

    Returns:
        A :class:`Dataset` of 1797 images ``(1, 8, 8)`` (in the digits' order) with 10
        classes and the 4 domains of :data:`DOMAIN_NAMES`.
    """
    base = digits()
    rng = np.random.default_rng(seed)
    y = base.y.numpy()
    dealt = np.concatenate([rng.permutation(np.flatnonzero(y == c)) for c in range(10)])
    domain = np.empty(base.n, dtype=np.int64)
    domain[dealt] = np.arange(base.n) % len(DOMAIN_NAMES)
    xi = torch.from_numpy(rng.standard_normal(base.x.shape).astype(np.float32))
    views = (
        base.x,
        torch.rot90(base.x, k=1, dims=(-2, -1)),
        1.0 - base.x,
        (base.x + noise * xi).clamp(0.0, 1.0),
    )  # 4 x (n, 1, 8, 8)
    d = torch.from_numpy(domain)
    x = torch.stack(views)[d, torch.arange(base.n)]  # (n, 1, 8, 8): sample i from view d_i
    return Dataset(
        name="multidomain_digits",
        x=x.contiguous(),
        y=base.y,
        domain=d,
        kind="image",
        class_names=base.class_names,
        domain_names=DOMAIN_NAMES,
    )


N_POINTS = Param(
    "n_points", 1000, "Number of points.", "n", kind="int", low=2, high=1_000_000, ui=(100, 5000)
)


def _balanced_labels(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    if n < k:
        raise ValueError(f"n_points must be at least n_classes ({k}), got {n}")
    return rng.permutation(np.arange(n) % k).astype(np.int64)  # (n,) sizes differ by <= 1


@DATASETS.register(
    "sphere_mixture",
    params=(
        N_POINTS,
        Param("n_classes", 5, "Number of clusters.", "k", kind="int", low=2, high=100),
        Param("dim", 8, "Dimension of the ambient space.", "d", kind="int", low=2, high=1024),
        Param("spread", 0.3, "Cluster spread σ before normalising.", "σ", low=0.0, ui=(0, 2)),
        SEED,
    ),
    latex=r"x = \frac{\mu_y + \sigma\xi}{\|\mu_y + \sigma\xi\|},\quad \mu_y \in S^{d-1}",
    description="Gaussian clusters projected onto the unit sphere (von Mises-Fisher-like).",
)
def sphere_mixture(
    n_points: int = 1000, n_classes: int = 5, dim: int = 8, spread: float = 0.3, seed: int = 0
) -> Dataset:
    r"""Clusters on the unit sphere ``S^{d-1}``, one per class.

    .. math::
        x_i = \frac{\mu_{y_i} + \sigma\xi_i}{\|\mu_{y_i} + \sigma\xi_i\|}

    where the centres ``μ_c`` are uniform on the sphere, ``ξ_i ~ N(0, I_d)`` and ``σ`` is
    the spread; class sizes differ by at most one.

    Args:
        n_points: number of points ``n``.
        n_classes: number of clusters ``k``.
        dim: ambient dimension ``d``.
        spread: ``σ >= 0``.
        seed: seed of the generator.

    Returns:
        A vector :class:`Dataset` of ``(n, d)`` unit-norm points.

    Raises:
        ValueError: (naming ``n_points``) if ``n_points < n_classes``.
    """
    rng = np.random.default_rng(seed)
    y = _balanced_labels(n_points, n_classes, rng)
    centres = rng.standard_normal((n_classes, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)  # (k, d) on the sphere
    points = centres[y] + spread * rng.standard_normal((n_points, dim))  # (n, d)
    points /= np.maximum(np.linalg.norm(points, axis=1, keepdims=True), 1e-12)
    return Dataset(
        name="sphere_mixture",
        x=torch.from_numpy(points.astype(np.float32)),
        y=torch.from_numpy(y),
        domain=None,
        kind="vector",
        class_names=tuple(f"cluster {c}" for c in range(n_classes)),
    )


@DATASETS.register(
    "rings",
    params=(
        N_POINTS,
        Param("n_classes", 3, "Number of rings.", "k", kind="int", low=2, high=100),
        Param("noise", 0.05, "Gaussian noise σ per coordinate.", "σ", low=0.0, ui=(0, 0.5)),
        Param("dim", 2, "Dimension (rings become spherical shells).", "d", kind="int", low=2),
        SEED,
    ),
    latex=r"x = (y + 1)\,u + \sigma\xi,\quad u \sim \mathrm{Unif}(S^{d-1})",
    description="Concentric rings (spherical shells for dim > 2), one class per ring.",
)
def rings(
    n_points: int = 1000, n_classes: int = 3, noise: float = 0.05, dim: int = 2, seed: int = 0
) -> Dataset:
    r"""Concentric rings of radius ``1, 2, ..., k``, one class per ring.

    .. math::
        x_i = (y_i + 1)\,u_i + \sigma\xi_i

    where ``u_i`` is uniform on the unit sphere ``S^{d-1}`` (the unit circle for ``d = 2``),
    ``ξ_i ~ N(0, I_d)`` and ``σ`` is the noise; class sizes differ by at most one. The classes
    are separated by radius, not by direction, so a cosine geometry cannot tell them apart.

    Args:
        n_points: number of points ``n``.
        n_classes: number of rings ``k``.
        noise: ``σ >= 0``.
        dim: dimension ``d``.
        seed: seed of the generator.

    Returns:
        A vector :class:`Dataset` of ``(n, d)`` points.

    Raises:
        ValueError: (naming ``n_points``) if ``n_points < n_classes``.
    """
    rng = np.random.default_rng(seed)
    y = _balanced_labels(n_points, n_classes, rng)
    u = rng.standard_normal((n_points, dim))
    u /= np.maximum(np.linalg.norm(u, axis=1, keepdims=True), 1e-12)  # (n, d) on the sphere
    points = (y[:, None] + 1.0) * u + noise * rng.standard_normal((n_points, dim))
    return Dataset(
        name="rings",
        x=torch.from_numpy(points.astype(np.float32)),
        y=torch.from_numpy(y),
        domain=None,
        kind="vector",
        class_names=tuple(f"ring {c}" for c in range(n_classes)),
    )


# User-data loaders live in gca_viz.userdata; their names stay importable from here.
from gca_viz.userdata import (  # noqa: E402
    load_cifar10_binary,
    load_image_folder,
    load_npz,
    load_user_dataset,
)

__all__ = [
    "DATASETS",
    "Dataset",
    "load_cifar10_binary",
    "load_dataset",
    "load_image_folder",
    "load_npz",
    "load_user_dataset",
]
