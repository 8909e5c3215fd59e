r"""Datasets: the embedded ones (no download), and the front door to user data on disk.

A :class:`Dataset` holds images ``(n, C, H, W)`` in ``[0, 1]`` or vectors ``(n, d)``, class
labels ``0..k-1`` and optional domain labels ``0..m-1``. Embedded datasets live in the
:data:`DATASETS` registry with a parameter schema each. :func:`load_dataset` is the front
door for both, an embedded name or a path to user data::

    from gca_viz.data import load_dataset

    digits = load_dataset("digits")  # (1797, 1, 8, 8), 10 classes
    train, test = digits.split(test_fraction=0.25, seed=0)
    blobs = load_dataset("sphere_mixture", n_points=500, dim=16)
    mine = load_dataset("my_data.npz")  # or an image folder, or CIFAR-10 binaries

The user-data loaders live in :mod:`gca_viz.userdata` and are importable from here, and
:class:`Dataset` lives in :mod:`gca_viz._dataset` (a leaf both modules import). User data
is never unpickled (``np.load(..., allow_pickle=False)``); every malformed input raises a
``ValueError`` that names the file and the problem.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gca_viz._dataset import KINDS, Dataset, PathLike
from gca_viz.registry import Param, Registry
from gca_viz.userdata import (
    CIFAR10_CLASSES,
    load_cifar10_binary,
    load_image_folder,
    load_npz,
    load_user_dataset,
)

DEFAULT_DATASET = "digits"
"""The dataset the app starts with."""

DATASETS = Registry("dataset")
"""The embedded datasets: name -> generator function with its parameter schema."""

DOMAIN_NAMES = ("original", "rotated", "inverted", "noisy")
"""The four domains of ``multidomain_digits``, in domain-label order."""


# --------------------------------------------------------------------- embedded datasets

SEED = Param("seed", 0, "Seed of the random generator.", kind="int", low=0, ui=(0, 100))


def load_dataset(name_or_path: PathLike = DEFAULT_DATASET, **params: Any) -> Dataset:
    """Load a dataset: an embedded one by name, or user data from a path.

    The one entry point for data: the trainer, the command line, the run store and the app
    load through it. :func:`dataset_source` decides what ``name_or_path`` is: a name of
    :data:`DATASETS` wins over a file or folder of the same name.

    * An embedded name (``"digits"``, ``"multidomain_digits"``, ``"sphere_mixture"``,
      ``"rings"``): the dataset is generated with ``params``, validated against its schema
      (``DATASETS[name].params``).
    * A path to user data, read by :func:`load_user_dataset`: an ``.npz`` with arrays ``x``,
      ``y`` and optionally ``domain`` (never unpickled), a folder with one sub-folder of
      images per class, or CIFAR-10 binaries (a ``.bin`` file or a folder of them). User
      data takes no ``params``.

    Args:
        name_or_path: an embedded dataset name, or the path (``str`` or ``os.PathLike``) of
            an existing file or folder. A ``str`` is looked up as a name first; an
            ``os.PathLike`` is always a path.
        **params: overrides of an embedded dataset's parameters.

    Returns:
        The :class:`Dataset`.

    Raises:
        ValueError: naming the parameter, for a string that is neither an embedded name nor
            an existing path (the message lists the names), an unknown parameter or a value
            out of range, ``params`` given with a path, or user data the loader rejects
            (naming the file and the problem).
    """
    source = dataset_source(name_or_path)
    if isinstance(source, str):
        stage = DATASETS[source]
        dataset: Dataset = stage.fn(**stage.validate(params))
        return dataset
    if params:
        raise ValueError(
            f"params: user data ({source}) takes no parameters, got {sorted(params)}; "
            f"parameters belong to the embedded datasets {sorted(DATASETS)}"
        )
    return load_user_dataset(source)


def loaded_params(dataset: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters ``dataset`` is loaded with: an embedded dataset's defaults updated by
    ``params`` (``{}`` and ``{"noise": 0.2, "seed": 0}`` mean the same multi-domain digits);
    a path's ``params`` as given."""
    if dataset in DATASETS:
        return {**DATASETS[dataset].defaults(), **params}
    return dict(params)


def dataset_source(name_or_path: PathLike, param: str = "name_or_path") -> str | Path:
    """What :func:`load_dataset` would load: an embedded name, or the path of user data.

    A ``str`` that is a key of :data:`DATASETS` is that name; any other ``str`` or
    ``os.PathLike`` must name an existing file or folder. Nothing is read.

    Args:
        name_or_path: an embedded dataset name or a path.
        param: the parameter named in the error (``"dataset"`` for a run's config).

    Returns:
        The name (a ``str``) or the path (a :class:`~pathlib.Path`).

    Raises:
        ValueError: naming ``param``, listing the embedded names and the path that was not
            found, for anything else (an empty string, a path to nothing, a non-path type).
    """
    if isinstance(name_or_path, str) and name_or_path in DATASETS:
        return name_or_path
    if not isinstance(name_or_path, str | os.PathLike) or not str(name_or_path).strip():
        raise ValueError(
            f"{param} must be one of the embedded datasets {sorted(DATASETS)} or the path "
            f"of a file or folder, got {name_or_path!r}"
        )
    path = Path(name_or_path).expanduser()  # "~/data.npz" as a shell would read it
    try:
        found = path.exists()
    except (OSError, ValueError):  # a name too long for the file system, a NUL character
        found = False
    if not found:
        where = "" if path.is_absolute() else f" ({str(path.absolute())!r})"
        raise ValueError(
            f"{param}: unknown dataset {str(name_or_path)!r}; choose one of {sorted(DATASETS)} "
            f"or the path of an existing .npz file, image folder or CIFAR-10 binaries: no file "
            f"or folder was found at that path{where}"
        )
    return path


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
        Param(
            "noise", 0.2, "Noise level σ of the noisy domain.", "σ", low=0.0, high=10, ui=(0, 0.5)
        ),
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


MAX_VALUES = 50_000_000
"""The most numbers (``n_points x dim``) a generated dataset may hold: 200 MB in float32."""


def _check_size(params: Mapping[str, Any]) -> None:
    """Refuse a generated dataset of more than :data:`MAX_VALUES` numbers, naming the two
    parameters (``dim = 10^7`` ended in numpy's 'Unable to allocate 74.5 GiB')."""
    values = int(params["n_points"]) * int(params["dim"])
    if values > MAX_VALUES:
        raise ValueError(
            f"n_points and dim: {params['n_points']} points in {params['dim']} dimensions are "
            f"{values:,} numbers, more than the {MAX_VALUES:,} allowed; lower either"
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
        Param(
            "spread", 0.3, "Cluster spread σ before normalising.", "σ", low=0.0, high=100, ui=(0, 2)
        ),
        SEED,
    ),
    check=_check_size,
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
        Param(
            "noise", 0.05, "Gaussian noise σ per coordinate.", "σ", low=0.0, high=10, ui=(0, 0.5)
        ),
        Param(
            "dim",
            2,
            "Dimension (rings become spherical shells).",
            "d",
            kind="int",
            low=2,
            high=1024,
        ),
        SEED,
    ),
    check=_check_size,
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


__all__ = [
    "CIFAR10_CLASSES",
    "DATASETS",
    "DEFAULT_DATASET",
    "DOMAIN_NAMES",
    "KINDS",
    "Dataset",
    "PathLike",
    "dataset_source",
    "load_cifar10_binary",
    "load_dataset",
    "load_image_folder",
    "load_npz",
    "load_user_dataset",
]
