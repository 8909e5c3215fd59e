"""The :class:`Dataset` container and its checks: the leaf that :mod:`gca_viz.data` (the
embedded datasets and :func:`gca_viz.data.load_dataset`) and :mod:`gca_viz.userdata` (the
user-file loaders) both build on. It imports neither, so the two import without a cycle;
import ``Dataset`` from :mod:`gca_viz.data`, which re-exports it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

PathLike = str | os.PathLike[str]
"""A filesystem path."""

KINDS = ("image", "vector")
"""The kinds of data a :class:`Dataset` holds."""


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
        """A stratified train/test split, fixed by ``seed``: the samples at
        :meth:`split_index`'s positions, ``(self.subset(train), self.subset(test))``."""
        train, test = self.split_index(test_fraction, seed)
        return self.subset(train), self.subset(test)

    def split_index(
        self, test_fraction: float = 0.25, seed: int = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        """The positions in this dataset of a stratified train/test split, fixed by ``seed``.

        The test size is ``T = round(test_fraction * n)`` (kept within ``1..n-1``). Each class
        gets ``n_c T / n`` test samples rounded up or down (largest remainders, so the counts
        add up to ``T``), and within a class each domain gets its share the same way; the
        samples of each (class, domain) group are drawn by a ``numpy`` Generator seeded
        with ``seed``. Both parts keep the original sample order.

        Args:
            test_fraction: fraction of samples in the test part, in ``(0, 1)``.
            seed: seed of the permutation; the same seed gives the same split.

        Returns:
            ``(train, test)`` positions, ``(n - T,)`` and ``(T,)`` int64, increasing,
            disjoint and together covering every sample.

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
        return np.flatnonzero(~is_test), np.flatnonzero(is_test)


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
