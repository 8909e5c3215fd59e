"""Loaders for user data from disk: ``.npz`` archives, image folders, CIFAR-10 binaries,
and the two gates user input passes through first: :func:`save_upload` (an uploaded file
into the data directory) and :func:`resolve_data_path` (a typed-in path, confined to it).

Every loader returns a :class:`gca_viz.data.Dataset` (defined in the leaf module
:mod:`gca_viz._dataset`, which imports neither this module nor :mod:`gca_viz.data`). User
data is never unpickled (``np.load(..., allow_pickle=False)``), an archive cannot expand past
:data:`MAX_VALUES` values per array, and every malformed input raises a ``ValueError`` that
names the file and the problem. The loaders are re-exported by :mod:`gca_viz.data`, whose
:func:`gca_viz.data.load_dataset` is the entry point for embedded names and user paths alike.
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gca_viz._dataset import Dataset, PathLike
from gca_viz._validate import FLOAT32_SQUARE_SAFE

MAX_VALUES = 2**28
"""The most values one array of a user ``.npz`` may hold (1 GiB as float32; CIFAR-10's
60000 images are 184M values). Checked on the array's header, before anything is read: a
compressed archive of a few MB can otherwise declare arrays of many GB."""
MAX_VECTOR_VALUE = FLOAT32_SQUARE_SAFE
"""The largest magnitude a vector dataset's ``x`` may hold (it is kept unscaled): squares of
larger values (in a norm, a variance) near float32's limit, 3.4e38. Measured with the MLP
encoder on Gaussian data: the same run at every scale up to 1e18, worse at 3e18, collapsed
(a flat loss, embedding_std 0) at 1e20."""

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

UPLOAD_SUFFIX = ".npz"
"""The file type :func:`save_upload` accepts."""
_HASH_CHARS = 12  # hex digits of the content hash in a stored upload's name

_CIFAR_RECORD = 1 + 3 * 32 * 32  # one label byte + 3072 pixel bytes
_IMAGE_SUFFIXES = {
    ".png",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".gif",
    ".tif",
    ".tiff",
    ".webp",
    ".ppm",
    ".pgm",
    ".pbm",
}
_GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}


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
    p = Path(path).expanduser()
    if p.is_file():
        suffix = p.suffix.lower()
        if suffix == ".npz":
            return load_npz(p)
        if suffix == ".bin":
            return load_cifar10_binary(p)
        raise ValueError(
            f"{p}: unsupported file type {suffix or '(none)'!r}; expected a .npz file, a "
            "CIFAR-10 .bin file, or a directory of class sub-folders (a table or array: save "
            "it with np.savez(path, x=features, y=labels))"
        )
    if p.is_dir():
        if _bin_files(p) or (p / "cifar-10-batches-bin").is_dir():
            return load_cifar10_binary(p)
        return load_image_folder(p)
    raise ValueError(f"{p}: no such file or directory")


def save_upload(data: bytes, name: str, folder: PathLike, *, max_bytes: int) -> Path:
    """Check an uploaded ``.npz`` and write it into ``folder`` (created if missing).

    The file gets a new name: the upload's name reduced to ASCII letters, digits, ``_`` and
    ``-`` plus the first 12 hex digits of its SHA-256, so the same content always lands on
    the same file and no name can leave ``folder``. The bytes go to a hidden temporary file
    that :func:`load_npz` must accept before it is renamed into place: a rejected upload
    leaves nothing behind.

    Args:
        data: the file's bytes.
        name: the name the browser sent (never used as a path).
        folder: where uploads are kept, inside the data directory.
        max_bytes: the largest accepted upload (the app passes ``server.maxUploadSize``).

    Returns:
        The path of the saved file.

    Raises:
        ValueError: naming the upload and the problem: a name holding a path, a NUL, a
            control or a text-direction character, a type other than ``.npz``, an empty
            file, one over ``max_bytes``, or content :func:`load_npz` rejects.
    """
    shown = _quote(str(name))
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
        raise ValueError(f"max_bytes must be a positive integer, got {max_bytes!r}")
    _check_upload_name(str(name), shown)
    if not data:
        raise ValueError(f"upload {shown}: the file is empty (0 bytes)")
    if len(data) > max_bytes:
        raise ValueError(
            f"upload {shown}: {len(data) / 2**20:.1f} MB is over the limit of "
            f"{max_bytes / 2**20:.0f} MB"
        )
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", str(name)[: -len(UPLOAD_SUFFIX)]).strip("_")[:60]
    digest = hashlib.sha256(data).hexdigest()[:_HASH_CHARS]
    final = f"{stem or 'upload'}-{digest}{UPLOAD_SUFFIX}"
    dest = Path(folder) / final
    if dest.is_file():
        return dest  # the same content was saved (and checked) before
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{final}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        try:
            load_npz(tmp)
        except ValueError as exc:  # name the upload, not the temporary file
            raise ValueError(f"upload {shown}: {str(exc).removeprefix(f'{tmp}: ')}") from None
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


_STORED_UPLOAD = re.compile(rf"^(?P<stem>.+)-(?P<hash>[0-9a-f]{{{_HASH_CHARS}}})$")
"""A stored upload's name without its suffix (:func:`save_upload`: ``<stem>-<hash>``)."""


UPLOADS = "uploads"
"""The folder of the run store where the Train page saves uploads (:func:`save_upload`)."""


def data_label(dataset: str) -> str:
    """How a run's ``dataset`` is named on the pages: a built-in dataset's name as it is, a
    path by its file or folder name, and an upload (a file in an :data:`UPLOADS` folder) by
    the name :func:`save_upload` stored it under without the content hash it added
    (``my data.npz`` is stored as ``my_data-0fc1f609f5fb.npz``, shown ``my_data.npz``).
    Two uploads sent under one name read alike here (:func:`data_labels` tells them apart
    in a table of runs); their runs still count as different data
    (:meth:`gca_viz.runs.RunInfo.comparable` compares the paths)."""
    stored = _stored_upload(dataset)
    return f"{stored['stem']}{UPLOAD_SUFFIX}" if stored else Path(str(dataset)).name


def _stored_upload(dataset: str) -> re.Match[str] | None:
    """The parts (``stem``, ``hash``) of an upload's stored name, for a file in an
    :data:`UPLOADS` folder named as :func:`save_upload` names it; else ``None``."""
    path = Path(str(dataset))
    upload = path.parent.name == UPLOADS and path.suffix == UPLOAD_SUFFIX
    return _STORED_UPLOAD.match(path.stem) if upload else None


def data_labels(datasets: Sequence[str]) -> list[str]:
    """:func:`data_label` of each of ``datasets`` (one per run of a table), told apart where
    two different uploads sent under one name would read alike: each of those names the
    first six digits of its content hash (``mine.npz · 0fc1f6``). A dataset named twice
    (two runs on one file) reads the same both times."""
    labels = [data_label(d) for d in datasets]
    sources: dict[str, set[str]] = {}
    for dataset, label in zip(datasets, labels, strict=True):
        sources.setdefault(label, set()).add(str(dataset))
    out = []
    for dataset, label in zip(datasets, labels, strict=True):
        stored = _stored_upload(dataset)
        out.append(
            f"{label} · {stored['hash'][:6]}" if stored and len(sources[label]) > 1 else label
        )
    return out


def _check_upload_name(name: str, shown: str) -> None:
    if not name.strip():
        raise ValueError("upload: the file has no name")
    if "\0" in name:
        raise ValueError(f"upload {shown}: the name contains a NUL character")
    if "/" in name or "\\" in name or name.strip() in (".", ".."):
        raise ValueError(f"upload {shown}: the name holds a path; send the file itself")
    odd = [c for c in name if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn")]
    if odd:
        raise ValueError(
            f"upload {shown}: the name contains a control or text-direction character "
            f"({odd[0]!a}); rename the file"
        )
    if not name.lower().endswith(UPLOAD_SUFFIX):
        suffix = Path(name).suffix or "(none)"
        images = suffix.lower() in _IMAGE_SUFFIXES or suffix.lower() in (".bin", ".zip", ".tar")
        raise ValueError(
            f"upload {shown}: expected a {UPLOAD_SUFFIX} file (arrays x, y and optionally "
            f"domain), got type {_quote(suffix)}; "
            + (
                "images (a folder of one sub-folder per class) and CIFAR-10 binaries are not "
                "uploaded: put them in the data directory and name them there"
                if images
                else "a table (a CSV) or an array: load it and save it with "
                "np.savez(path, x=features, y=labels)"
            )
        )


def resolve_data_path(base: PathLike, text: str) -> Path:
    """The file or folder that ``text`` names inside the data folder ``base``, confined
    to it.

    ``text`` is relative to ``base`` (an absolute path is accepted only if it lies inside).
    The path is resolved with every symbolic link followed, and must end inside ``base``;
    for a folder, every link in it and in its sub-folders (the two levels the image-folder
    and CIFAR-10 loaders read) must lead inside ``base`` too.

    Args:
        base: the folder user paths are confined to.
        text: the path as the user typed it.

    Returns:
        The resolved path of an existing file or folder inside ``base``.

    Raises:
        ValueError: naming the path and the problem: empty, a NUL character, leaving
            ``base`` (``..``, an absolute path elsewhere, a link out), no such file.
    """
    root = Path(base).resolve()
    raw = str(text).strip()
    shown = _quote(raw)
    if not raw:
        raise ValueError("path: empty; name a file or folder in the data directory")
    if "\0" in raw:
        raise ValueError(f"path {shown}: contains a NUL character")
    try:
        target = (root / raw).resolve()
        if not target.is_relative_to(root):
            raise ValueError(f"path {shown}: leaves the data directory {root}; it is not read")
        if not target.exists():
            raise ValueError(f"path {shown}: no such file or folder in {root}")
        if target.is_dir():
            for link in _links_within(target, depth=2):
                if not link.resolve().is_relative_to(root):
                    raise ValueError(
                        f"path {shown}: {link.relative_to(target)} is a link that leaves the "
                        f"data directory {root}; copy the data in instead"
                    )
    except (OSError, RuntimeError) as exc:  # a name too long, a link loop (RuntimeError)
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise ValueError(f"path {shown}: cannot be resolved ({why})") from None
    return target


def data_entries(base: PathLike, limit: int = 30) -> tuple[list[str], int]:
    """What :func:`load_user_dataset` could read at the top of the data folder ``base``:
    its ``.npz`` and ``.bin`` files and its folders (shown with a trailing ``/``), sorted,
    hidden names (starting with ``.``) left out. Nothing is opened or followed, so a name
    listed here can still be refused when it is read (:func:`resolve_data_path`).

    Args:
        base: the data folder.
        limit: the most names returned.

    Returns:
        ``(names, total)``: up to ``limit`` names and how many there are in all (an
        unreadable or missing folder has none).
    """
    names: list[str] = []
    try:
        with os.scandir(base) as it:
            for entry in it:
                if entry.name.startswith("."):
                    continue
                if entry.is_dir():
                    names.append(entry.name + "/")
                elif entry.is_file() and Path(entry.name).suffix.lower() in (".npz", ".bin"):
                    names.append(entry.name)
    except OSError:
        return [], 0
    names.sort(key=str.lower)
    return names[: max(limit, 0)], len(names)


def _quote(text: str, limit: int = 120) -> str:
    """``text`` in quotes for a message, its unprintable characters escaped (``\\x00``)
    and a long one cut (the start and its length)."""
    shown = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)
    if len(shown) > limit:
        shown = f"{shown[:limit]}...' ({len(text)} characters)"
        return "'" + shown
    return f"'{shown}'"


def _links_within(folder: Path, depth: int) -> list[Path]:
    """Symbolic links in ``folder`` and its sub-folders, down to ``depth`` levels."""
    links: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return links
    for entry in entries:
        path = Path(entry.path)
        if entry.is_symlink():
            links.append(path)
        elif depth > 1 and entry.is_dir(follow_symlinks=False):
            links += _links_within(path, depth - 1)
    return links


def load_npz(path: PathLike) -> Dataset:
    """Load a ``.npz`` archive with arrays ``x``, ``y`` and optionally ``domain``.

    Nothing is unpickled (``allow_pickle=False``). The arrays are read as follows:

    * ``x``: ``(n, d)`` is a vector dataset, kept as float32 without rescaling (values within
      ``±MAX_VECTOR_VALUE``). ``(n, H, W)``,
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
    if not magic:  # (as an upload of it is told)
        raise ValueError(f"{p}: the file is empty (0 bytes)")
    if magic not in (b"PK\x03\x04", b"PK\x05\x06"):
        raise ValueError(f"{p}: not a .npz archive (np.savez writes a zip of .npy arrays)")
    arrays, names = _read_npz(p)
    for key in ("x", "y"):
        if key not in arrays:
            found = ", ".join(repr(n) for n in names[:10]) or "no arrays"
            more = f" and {len(names) - 10} more" if len(names) > 10 else ""
            raise ValueError(
                f"{p}: missing array {key!r} (the archive holds {found}{more}); save with "
                "np.savez(path, x=..., y=...)"
            )
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


def _check_headers(p: Path, keys: tuple[str, ...]) -> None:
    """Refuse, from the ``.npy`` headers alone, an object (pickled) array or one larger
    than :data:`MAX_VALUES`, before numpy allocates or unpickles anything."""
    with zipfile.ZipFile(p) as zf:
        members = set(zf.namelist())
        for key in keys:
            member = f"{key}.npy"
            if member not in members:
                continue
            with zf.open(member) as fh:
                try:
                    version = np.lib.format.read_magic(fh)
                    if version == (1, 0):
                        shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
                    else:
                        shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
                except ValueError as exc:
                    raise ValueError(
                        f"{p}: not a valid .npz file ({key!r} is not a .npy array: {exc})"
                    ) from None
            if dtype.hasobject:
                raise ValueError(_object_array(p, key))
            values = int(np.prod(shape, dtype=object))
            if values > MAX_VALUES:
                raise ValueError(
                    f"{p}: array {key!r} declares shape {tuple(shape)} ({values:,} values); "
                    f"the limit is {MAX_VALUES:,} values per array"
                )


def _object_array(p: Path, key: str) -> str:
    """What to do about an object array (pickled Python objects: a pandas column's
    ``.values``), which is never loaded."""
    fix = (
        f"save labels as strings or integers ({key}=labels.astype(str), as a pandas column's "
        ".values needs)"
        if key in ("y", "domain")
        else "save the features as numbers (x=features.astype(np.float32))"
    )
    return (
        f"{p}: array {key!r} is an object array (pickled Python objects), which is never "
        f"loaded; {fix}"
    )


def _read_npz(p: Path) -> tuple[dict[str, np.ndarray], list[str]]:
    """The arrays ``x``, ``y``, ``domain`` present in the archive, read without pickle, and
    the names of all its arrays."""
    out: dict[str, np.ndarray] = {}
    try:
        _check_headers(p, ("x", "y", "domain"))
        with np.load(p, allow_pickle=False) as archive:
            names = list(archive.files)
            for key in ("x", "y", "domain"):
                if key not in archive.files:
                    continue
                try:
                    value = archive[key]
                except ValueError as exc:
                    if "allow_pickle" not in str(exc):
                        raise
                    raise ValueError(_object_array(p, key)) from None
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
    return out, names


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
        bad = np.flatnonzero(~np.isfinite(x.reshape(len(x), -1)).all(axis=1))
        raise ValueError(
            f"{p}: x contains NaN or inf in {len(bad)} of its {len(x)} samples (the first: "
            f"row {bad[0]}); drop or fill them before saving"
        )
    if x.ndim == 2:
        with np.errstate(over="ignore"):  # (said below, without numpy's RuntimeWarning)
            vectors = x.astype(np.float32)
        if not np.isfinite(vectors).all():
            raise ValueError(f"{p}: x has values too large for float32")
        top = float(np.abs(vectors).max())
        if top > MAX_VECTOR_VALUE:
            raise ValueError(
                f"{p}: x has values up to {top:.3g}; at that scale an encoder's float32 "
                "activations overflow and it learns nothing (the loss stays flat): rescale x, "
                f"e.g. standardise each feature, to values within ±{MAX_VECTOR_VALUE:g}"
            )
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
    """Labels remapped to ``0..k-1`` (sorted original values) and the original values; a
    ``(n, 1)`` column (as pandas and scikit-learn often give labels) counts as ``(n,)``."""
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 1:
        raise ValueError(f"{p}: {key} must be 1-D (one label per sample), got shape {a.shape}")
    if len(a) != n:
        raise ValueError(f"{p}: {key} has {len(a)} entries but x has {n} samples")
    if a.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(a) | (a != np.round(a)))
        if bad.size:  # the first offender, as x's NaN check names its row
            raise ValueError(
                f"{p}: {key} must hold integer labels, got non-integer values in {bad.size} of "
                f"its {n} entries (the first: {a[bad[0]]:g} at row {bad[0]})"
            )
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
            images, unreadable or corrupt images (every one named, up to five, and counted),
            a bad ``size`` or ``max_images``.
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
    headers, bad = [], []  # (mode, (W, H)) of each image; the unreadable ones, all named
    for f in files:
        try:
            headers.append(_image_header(f))
        except ValueError as exc:
            bad.append(f"{f.relative_to(root)}{str(exc).removeprefix(str(f))}")
    if bad:
        shown = "; ".join(bad[:5]) + (f"; and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise ValueError(
            f"{root}: {len(bad)} of {len(files)} files are not readable images ({shown}); "
            "remove or replace them"
        )
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
    classes = np.unique(records[:, 0])
    if len(classes) < 2:  # (training failed at its first evaluation)
        names = _cifar_class_names(folder)
        raise ValueError(
            f"{p}: every record has label {classes[0]} ({names[classes[0]]}); at least 2 "
            "classes are needed"
        )
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
