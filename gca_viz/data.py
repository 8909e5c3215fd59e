r"""Datasets: the embedded ones (no download) and loaders for user data from disk.

A :class:`Dataset` holds images ``(n, C, H, W)`` in ``[0, 1]`` or vectors ``(n, d)``, class
labels ``0..k-1`` and optional domain labels ``0..m-1``. Embedded datasets live in the
:data:`DATASETS` registry with a parameter schema each; :func:`load_dataset` is the front
door::

    from gca_viz.data import load_dataset, load_user_dataset

    digits = load_dataset("digits")  # (1797, 1, 8, 8), 10 classes
    train, test = digits.split(test_fraction=0.25, seed=0)
    blobs = load_dataset("sphere_mixture", n_points=500, dim=16)
    mine = load_user_dataset("my_data.npz")  # or an image folder, or CIFAR-10 binaries

User data is never unpickled (``np.load(..., allow_pickle=False)``); every malformed input
raises a ``ValueError`` that names the file and the problem.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
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

_CIFAR_RECORD = 1 + 3 * 32 * 32  # one label byte + 3072 pixel bytes
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm"}
_IMAGE_SUFFIXES |= {".pgm", ".pbm"}
_GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}


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


# ----------------------------------------------------------------------------- user data


def load_user_dataset(path: PathLike) -> Dataset:
    """Load user data, choosing the loader from what ``path`` is.

    * a ``.npz`` file: :func:`load_npz`;
    * a ``.bin`` file, a directory holding ``.bin`` files or a ``cifar-10-batches-bin``
      sub-folder: :func:`load_cifar10_binary`;
    * any other directory: :func:`load_image_folder` (one sub-folder per class).

    Args:
        path: the file or directory.

    Returns:
        The :class:`Dataset`.

    Raises:
        ValueError: naming the path, if it does not exist, has an unsupported file type, or
            the chosen loader rejects it.
    """
    p = Path(path)
    if p.is_file():
        suffix = p.suffix.lower()
        if suffix == ".npz":
            return load_npz(p)
        if suffix == ".bin":
            return load_cifar10_binary(p)
        raise ValueError(
            f"{p}: unsupported file type {suffix or '(none)'!r}; expected a .npz file, a "
            "CIFAR-10 .bin file, or a directory of class sub-folders"
        )
    if p.is_dir():
        if _bin_files(p) or (p / "cifar-10-batches-bin").is_dir():
            return load_cifar10_binary(p)
        return load_image_folder(p)
    raise ValueError(f"{p}: no such file or directory")


def load_npz(path: PathLike) -> Dataset:
    """Load a ``.npz`` archive with arrays ``x``, ``y`` and optionally ``domain``.

    Nothing is unpickled (``allow_pickle=False``). The arrays are read as follows:

    * ``x``: ``(n, d)`` is a vector dataset, kept as float32 without rescaling. ``(n, H, W)``,
      ``(n, C, H, W)`` or ``(n, H, W, C)`` with ``C`` in ``{1, 3}`` (channels first wins when
      both fit) are images, converted to ``(n, C, H, W)`` float32: ``uint8`` is divided by
      255, other values are kept if they lie in ``[0, 1]`` and otherwise min-max scaled over
      the whole array to ``[0, 1]``.
    * ``y``: one label per sample; integers (or integral floats, booleans, strings), remapped
      to ``0..k-1`` in sorted order (``np.unique``); the original values become the class
      names. At least two classes are needed.
    * ``domain`` (optional): domain labels, remapped the same way.

    Other arrays in the archive are ignored.

    Args:
        path: the ``.npz`` file.

    Returns:
        The :class:`Dataset`, named after the file.

    Raises:
        ValueError: naming the file and the problem: not a file, not a zip/npz archive,
            corrupt or truncated, an object (pickled) array, a missing ``x`` or ``y``, a
            wrong number of dimensions, differing lengths, an empty ``x``, NaN/inf,
            non-integer labels, fewer than two classes.
    """
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{p}: no such file")
    with open(p, "rb") as fh:
        magic = fh.read(4)
    if magic not in (b"PK\x03\x04", b"PK\x05\x06"):
        raise ValueError(f"{p}: not a .npz archive (np.savez writes a zip of .npy arrays)")
    arrays = _read_npz(p)
    for key in ("x", "y"):
        if key not in arrays:
            raise ValueError(f"{p}: missing array {key!r} (found {sorted(arrays) or 'none'})")
    x, kind = _convert_x(arrays["x"], p)
    y, class_names = _convert_labels(arrays["y"], "y", len(x), p)
    if len(class_names) < 2:
        raise ValueError(f"{p}: y has a single class ({class_names[0]}); at least 2 are needed")
    domain: torch.Tensor | None = None
    domain_names: tuple[str, ...] = ()
    if "domain" in arrays:
        d, domain_names = _convert_labels(arrays["domain"], "domain", len(x), p)
        domain = torch.from_numpy(d)
    return Dataset(
        name=p.stem,
        x=torch.from_numpy(x),
        y=torch.from_numpy(y),
        domain=domain,
        kind=kind,
        class_names=class_names,
        domain_names=domain_names,
    )


def _read_npz(p: Path) -> dict[str, np.ndarray]:
    """The arrays ``x``, ``y``, ``domain`` present in the archive, read without pickle."""
    out: dict[str, np.ndarray] = {}
    try:
        with np.load(p, allow_pickle=False) as archive:
            for key in ("x", "y", "domain"):
                if key not in archive.files:
                    continue
                try:
                    value = archive[key]
                except ValueError as exc:
                    if "allow_pickle" not in str(exc):
                        raise
                    raise ValueError(
                        f"{p}: array {key!r} is an object array (pickled Python objects), "
                        "which is never loaded; save plain numeric arrays"
                    ) from None
                if not isinstance(value, np.ndarray):  # NpzFile returns raw bytes then
                    raise ValueError(f"{p}: not a valid .npz file ({key!r} is not a .npy array)")
                out[key] = value
    except ValueError as exc:
        if str(exc).startswith(f"{p}:"):
            raise
        raise ValueError(f"{p}: not a valid .npz file ({exc})") from None
    except Exception as exc:  # BadZipFile, EOFError, zlib.error, OSError, ...: all corrupt
        raise ValueError(
            f"{p}: not a valid .npz file, corrupt or truncated ({type(exc).__name__}: {exc})"
        ) from None
    return out


def _convert_x(x: np.ndarray, p: Path) -> tuple[np.ndarray, str]:
    """``x`` as float32 ``(n, d)`` vectors or ``(n, C, H, W)`` images in ``[0, 1]``."""
    if x.dtype.kind not in "biuf":
        raise ValueError(f"{p}: x must hold numbers, got dtype {x.dtype}")
    if x.ndim not in (2, 3, 4):
        raise ValueError(
            f"{p}: x must be vectors (n, d) or images (n, H, W), (n, C, H, W) or (n, H, W, C); "
            f"got shape {x.shape}"
        )
    if x.size == 0:
        raise ValueError(f"{p}: x is empty (shape {x.shape})")
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise ValueError(f"{p}: x contains NaN or inf")
    if x.ndim == 2:
        vectors = x.astype(np.float32)
        if not np.isfinite(vectors).all():
            raise ValueError(f"{p}: x has values too large for float32")
        return vectors, "vector"
    if x.ndim == 3:
        x = x[:, None]  # (n, 1, H, W)
    elif x.shape[1] not in (1, 3):
        if x.shape[3] not in (1, 3):
            raise ValueError(
                f"{p}: 4-D x must be (n, C, H, W) or (n, H, W, C) with C in {{1, 3}}, "
                f"got shape {x.shape}"
            )
        x = x.transpose(0, 3, 1, 2)  # (n, H, W, C) -> (n, C, H, W)
    return np.ascontiguousarray(_to_unit_range(x)), "image"


def _to_unit_range(x: np.ndarray) -> np.ndarray:
    """uint8 / 255; values already in [0, 1] kept; anything else min-max scaled."""
    if x.dtype == np.uint8:
        return x.astype(np.float32) / np.float32(255.0)
    lo, hi = float(x.min()), float(x.max())
    if lo >= 0.0 and hi <= 1.0:
        return x.astype(np.float32)
    if hi == lo:
        return np.zeros(x.shape, dtype=np.float32)
    scaled = (x.astype(np.float64) - lo) / (hi - lo)
    return np.clip(scaled, 0.0, 1.0).astype(np.float32)


def _convert_labels(a: np.ndarray, key: str, n: int, p: Path) -> tuple[np.ndarray, tuple[str, ...]]:
    """Labels remapped to ``0..k-1`` (sorted original values) and the original values."""
    if a.ndim != 1:
        raise ValueError(f"{p}: {key} must be 1-D (one label per sample), got shape {a.shape}")
    if len(a) != n:
        raise ValueError(f"{p}: {key} has {len(a)} entries but x has {n} samples")
    if a.dtype.kind == "f":
        if not (np.isfinite(a).all() and (a == np.round(a)).all()):
            raise ValueError(f"{p}: {key} must hold integer labels, got non-integer values")
        a = a.astype(np.int64)
    elif a.dtype.kind not in "biuU":
        raise ValueError(f"{p}: {key} must hold integer labels, got dtype {a.dtype}")
    values, codes = np.unique(a, return_inverse=True)
    return codes.reshape(-1).astype(np.int64), tuple(str(v) for v in values.tolist())


def load_image_folder(
    path: PathLike, size: int | tuple[int, int] | None = None, max_images: int = 50_000
) -> Dataset:
    """Load a folder of images with one sub-folder per class.

    Class names are the sub-folder names in sorted order. Hidden files and folders (names
    starting with ``.``) and files without an image suffix (``.png``, ``.jpg``, ``.bmp``,
    ...) are ignored. Images are read with Pillow, converted to grayscale if every image is
    grayscale and to RGB otherwise, resized (bilinear) to ``size`` and scaled to ``[0, 1]``.

    Args:
        path: the root folder.
        size: output ``(H, W)``, or an int for square images; ``None`` uses the size of
            the first image (of the first class, in sorted order).
        max_images: the most images to read; more is an error.

    Returns:
        An image :class:`Dataset` ``(n, C, H, W)`` with ``C`` 1 or 3, named after the folder.

    Raises:
        ValueError: naming the path and the problem: not a directory, no class sub-folders,
            fewer than two classes, a class folder without images, more than ``max_images``
            images, an unreadable or corrupt image (named), a bad ``size`` or ``max_images``.
    """
    root = Path(path)
    if not root.is_dir():
        raise ValueError(f"{root}: not a directory")
    target = _check_size(size)
    if isinstance(max_images, bool) or not isinstance(max_images, int) or max_images < 1:
        raise ValueError(f"max_images must be a positive integer, got {max_images!r}")
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not class_dirs:
        raise ValueError(f"{root}: no class sub-folders (expected one folder of images per class)")
    if len(class_dirs) < 2:
        raise ValueError(f"{root}: only one class sub-folder ({class_dirs[0].name}); need 2+")
    files: list[Path] = []
    labels: list[int] = []
    for label, d in enumerate(class_dirs):
        found = sorted(
            f
            for f in d.iterdir()
            if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in _IMAGE_SUFFIXES
        )
        if not found:
            raise ValueError(f"{d}: class folder holds no images")
        files += found
        labels += [label] * len(found)
        if len(files) > max_images:
            raise ValueError(f"{root}: more than max_images={max_images} images")
    headers = [_image_header(f) for f in files]  # (mode, (W, H)) each
    gray = all(mode in _GRAY_MODES for mode, _ in headers)
    height, width = target if target is not None else headers[0][1][::-1]
    channels = 1 if gray else 3
    if len(files) * channels * height * width > 2**30:
        raise ValueError(f"{root}: {len(files)} images of {height}x{width} are too much; pass size")
    pixels = np.stack([_image_pixels(f, "L" if gray else "RGB", (width, height)) for f in files])
    x = pixels[:, None] if gray else pixels.transpose(0, 3, 1, 2)  # (n, C, H, W) uint8
    return Dataset(
        name=root.name or str(root),
        x=torch.from_numpy(np.ascontiguousarray(x)).float() / 255.0,
        y=torch.tensor(labels, dtype=torch.int64),
        domain=None,
        kind="image",
        class_names=tuple(d.name for d in class_dirs),
    )


def _check_size(size: Any) -> tuple[int, int] | None:
    if size is None:
        return None
    pair = (size, size) if isinstance(size, int | np.integer) else size
    if (
        not isinstance(pair, tuple | list)
        or len(pair) != 2
        or not all(isinstance(s, int | np.integer) and not isinstance(s, bool) for s in pair)
        or min(pair) < 1
    ):
        raise ValueError(f"size must be a positive int or a pair (H, W) of them, got {size!r}")
    return int(pair[0]), int(pair[1])


def _image_header(f: Path) -> tuple[str, tuple[int, int]]:
    """Mode and ``(W, H)`` of an image file, after Pillow's integrity check."""
    from PIL import Image

    try:
        with Image.open(f) as im:
            mode, size = im.mode, im.size
            im.verify()
    except Exception as exc:  # Pillow raises many types for bad files
        raise ValueError(f"{f}: not a readable image ({type(exc).__name__}: {exc})") from None
    return mode, (int(size[0]), int(size[1]))


def _image_pixels(f: Path, mode: str, size: tuple[int, int]) -> np.ndarray:
    """Pixels of an image file as uint8 ``(H, W)`` or ``(H, W, 3)``, resized to ``(W, H)``."""
    from PIL import Image

    try:
        with Image.open(f) as im:
            converted = im.convert(mode)
            if converted.size != size:
                converted = converted.resize(size, Image.Resampling.BILINEAR)
            return np.asarray(converted, dtype=np.uint8)
    except Exception as exc:  # Pillow raises many types for bad files
        raise ValueError(f"{f}: not a readable image ({type(exc).__name__}: {exc})") from None


def load_cifar10_binary(path: PathLike, max_images: int = 60_000) -> Dataset:
    """Load CIFAR-10 in its binary format.

    Each record is 3073 bytes: one label byte (0..9) and 3072 pixel bytes (1024 red, 1024
    green, 1024 blue, each a 32x32 image in row-major order). ``path`` is one ``.bin`` file
    or a directory with them (``data_batch_1.bin`` ... ``test_batch.bin``, read in sorted
    order), or a directory holding the ``cifar-10-batches-bin`` folder. Class names come
    from ``batches.meta.txt`` next to the files when present, else the standard ten.

    Args:
        path: a ``.bin`` file or a directory.
        max_images: the most records to read; more is an error.

    Returns:
        An image :class:`Dataset` ``(n, 3, 32, 32)`` in ``[0, 1]`` with 10 classes.

    Raises:
        ValueError: naming the file and the problem: no such path, no ``.bin`` files, a
            file size that is not a positive multiple of 3073 bytes, a label outside
            ``0..9``, more than ``max_images`` records, a ``batches.meta.txt`` without ten
            names, a bad ``max_images``.
    """
    p = Path(path)
    if isinstance(max_images, bool) or not isinstance(max_images, int) or max_images < 1:
        raise ValueError(f"max_images must be a positive integer, got {max_images!r}")
    if p.is_file():
        files, folder = [p], p.parent
    elif p.is_dir():
        folder = p
        if not _bin_files(p) and (p / "cifar-10-batches-bin").is_dir():
            folder = p / "cifar-10-batches-bin"
        files = _bin_files(folder)
        if not files:
            raise ValueError(f"{p}: no .bin files (expected data_batch_1.bin ... test_batch.bin)")
    else:
        raise ValueError(f"{p}: no such file or directory")
    n_records = 0
    for f in files:
        n_bytes = f.stat().st_size
        if n_bytes == 0 or n_bytes % _CIFAR_RECORD:
            raise ValueError(
                f"{f}: size {n_bytes} bytes is not a positive multiple of {_CIFAR_RECORD} "
                "(a CIFAR-10 record is 1 label byte + 3072 pixel bytes)"
            )
        n_records += n_bytes // _CIFAR_RECORD
    if n_records > max_images:
        raise ValueError(f"{p}: {n_records} records exceed max_images={max_images}")
    chunks = []
    for f in files:
        records = np.fromfile(f, dtype=np.uint8).reshape(-1, _CIFAR_RECORD)  # (r, 3073)
        bad = np.flatnonzero(records[:, 0] > 9)
        if bad.size:
            raise ValueError(
                f"{f}: label {records[bad[0], 0]} in record {bad[0]} is outside 0..9 "
                "(CIFAR-100 binaries have two label bytes and are not supported)"
            )
        chunks.append(records)
    records = np.concatenate(chunks)  # (n, 3073)
    x = records[:, 1:].reshape(-1, 3, 32, 32)  # (n, 3, 32, 32) uint8
    return Dataset(
        name=p.stem if p.is_file() else p.name,
        x=torch.from_numpy(x).float() / 255.0,
        y=torch.from_numpy(records[:, 0].astype(np.int64)),
        domain=None,
        kind="image",
        class_names=_cifar_class_names(folder),
    )


def _bin_files(folder: Path) -> list[Path]:
    return sorted(
        f for f in folder.iterdir() if f.is_file() and f.suffix == ".bin" and f.name[0] != "."
    )


def _cifar_class_names(folder: Path) -> tuple[str, ...]:
    meta = folder / "batches.meta.txt"
    if not meta.is_file():
        return CIFAR10_CLASSES
    try:
        names = [line.strip() for line in meta.read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{meta}: unreadable ({exc})") from None
    names = [name for name in names if name]
    if len(names) != 10:
        raise ValueError(f"{meta}: expected 10 class names, one per line, found {len(names)}")
    return tuple(names)
