r"""2-D and 3-D projections of embeddings, and a background runner so slow ones never block.

The geometry page draws a run's normalised embeddings ``ẑ`` directly when they live on the
circle or the sphere (``out_dim`` 2 or 3) and otherwise projects them:

* :func:`pca`: principal components, milliseconds for a snapshot; the live default.
* :func:`umap`: UMAP (McInnes et al. 2018), seconds, on demand.
* :func:`tsne`: t-SNE (van der Maaten and Hinton 2008), seconds, on demand.

For exploring one snapshot: :func:`cosine_neighbours` (a point's nearest rows by cosine
similarity), :func:`partner_distance` (how near a point's positive partner, the embedding
of another view of the same sample, sits among them), :func:`snapshot_samples` (which
dataset samples a run's snapshots hold, so a page can show a point's input) and
:func:`pca_basis` (one PCA basis for every snapshot of a run, so a played sequence stays
steady).

All three projections are deterministic (fixed ``seed``). :class:`ProjectionJobs` runs the
slow ones on one worker thread and caches the results by key (for the app: ``(run_id, step,
method, params)``), so a page submits a job, polls :meth:`ProjectionJobs.status` and shows
the result when it is there::

    from gca_viz import embed

    xy = embed.pca(z, 2)  # (n, 2), PC1 first
    jobs = embed.ProjectionJobs()
    jobs.submit(("run 3", 200, "umap"), embed.umap, z)
    jobs.status(("run 3", 200, "umap")).state  # "pending", "running", "done" or "error"

UMAP's start-up cost: umap-learn compiles its numba kernels when it is imported and on the
first fit, about 35 s of CPU in every new process. :func:`enable_numba_cache` (called by
:func:`umap` before umap is imported) makes numba's ``njit``/``jit`` default to
``cache=True`` and points ``NUMBA_CACHE_DIR`` at ``<data dir>/.numba_cache`` (data dir:
``$GCA_RUNS_DIR`` or ``./runs``), so the compiled code is written once and reused by every
later process: there the import takes about 2 s and the first fit well under a second, with
identical results. An explicitly set ``NUMBA_CACHE_DIR`` is respected. :func:`warm_up`
pays the start-up costs of t-SNE and UMAP ahead of time, and :meth:`ProjectionJobs.warm_up`
runs it on the jobs' worker, ahead of the jobs submitted after it, reporting what it is doing
(the app starts it with the server's first page run)::

    jobs.warm_up()  # embed.warm_up on the worker, once
    jobs.warm_up_status()  # JobStatus("running", phase="compiling UMAP's kernels ...")
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import queue
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from gca_viz._validate import integer, nonnegative, number, positive
from gca_viz.data import Dataset

METHODS = ("pca", "umap", "tsne")
"""The projection methods, by name."""

METHOD_TITLES = {"pca": "PCA", "umap": "UMAP", "tsne": "t-SNE"}
"""Display names of :data:`METHODS`."""

NUMBA_CACHE_ENV = "NUMBA_CACHE_DIR"


def _points(z: Any, k: int, min_rows: int = 2) -> np.ndarray:
    """``z`` as a finite float64 ``(n, d)`` array with ``n >= min_rows``; checks ``k``.
    A torch tensor is read detached, from any device (one that requires grad included)."""
    if isinstance(z, torch.Tensor):
        z = z.detach().to(device="cpu", dtype=torch.float64)
    try:
        a = np.asarray(z, dtype=np.float64)
    except (TypeError, ValueError) as exc:  # strings, ragged rows
        raise ValueError(f"z must be an (n, d) array of numbers ({exc})") from None
    if a.ndim != 2 or a.shape[0] < min_rows or a.shape[1] < 1:
        raise ValueError(f"z must have shape (n >= {min_rows}, d >= 1), got {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError("z contains NaN or inf")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    return a


# ----------------------------------------------------------------------------------- PCA


def _pca_axes(z: Any, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centred data ``X``, the top-``k`` principal axes ``V`` (k, d) and all variances."""
    X = _points(z, k)
    if k > X.shape[1]:
        raise ValueError(f"k must be <= the dimension d = {X.shape[1]}, got {k}")
    X = X - X.mean(axis=0)  # (n, d)
    # r = min(n, d) axes; with fewer points than k (r < k) the full basis completes them
    # (the data have no variance there: their coordinates on those axes are 0)
    _, s, Vt = np.linalg.svd(X, full_matrices=k > min(X.shape))  # s: (r,), Vt: (r or d, d)
    V = Vt[:k]  # (k, d), rows in decreasing variance
    # Sign convention (as scikit-learn's svd_flip): each axis's largest loading is positive,
    # so the picture does not flip at random between snapshots.
    signs = np.sign(V[np.arange(len(V)), np.abs(V).argmax(axis=1)])
    V = V * np.where(signs == 0, 1.0, signs)[:, None]
    return X, V, s**2 / max(len(X) - 1, 1)


def pca(z: Any, k: int = 2) -> np.ndarray:
    r"""Project ``z`` onto its first ``k`` principal components.

    .. math::
        Y = (Z - \mathbf 1 \bar z^\top)\, V_k

    where ``Z`` is ``(n, d)``, ``z̄`` its column mean and ``V_k`` the ``d x k`` matrix of the
    top right-singular vectors of the centred ``Z`` (decreasing variance; each column's
    largest entry positive, so the result is deterministic).

    Args:
        z: ``(n, d)`` points, ``n >= 2``.
        k: number of components, ``1 <= k <= d``.

    Returns:
        ``(n, k)`` float64 array; column ``j`` has variance ``σ_j^2 / (n - 1)``, in
        decreasing order.

    Raises:
        ValueError: naming ``z`` or ``k``, for a bad shape, NaN/inf, or ``k`` out of range.
    """
    X, V, _ = _pca_axes(z, k)
    Y: np.ndarray = X @ V.T  # (n, k)
    return Y


def pca_basis(z: Any, k: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """The column mean ``z̄`` ``(d,)`` and the top-``k`` principal axes ``V_k^T`` ``(k, d)``
    of ``z``, so that ``pca(z, k) == (z - z̄) @ V_k``. Projecting other snapshots of the same
    run with one basis keeps a picture steady while it plays through training."""
    _, V, _ = _pca_axes(z, k)
    mean: np.ndarray = np.asarray(z, dtype=np.float64).mean(axis=0)  # (d,)
    return mean, V


def explained_variance_ratio(z: Any, k: int = 2) -> np.ndarray:
    """Fraction of the total variance of ``z`` on each of its first ``k`` principal axes
    (``(k,)``, decreasing; 0 for constant data)."""
    _, _, var = _pca_axes(z, k)
    total = float(var.sum())
    out = np.zeros(k)
    out[: min(k, len(var))] = var[:k] / total if total > 0 else 0.0
    return out


# ----------------------------------------------------------------------------------- t-SNE


def _collapsed(X: np.ndarray, k: int) -> np.ndarray | None:
    """``(n, k)`` zeros if every row of ``X`` is the same point (a collapsed embedding: one
    point is its honest picture), else ``None``."""
    return np.zeros((len(X), k)) if not np.ptp(X, axis=0).any() else None


def tsne(z: Any, k: int = 2, *, perplexity: float = 30.0, seed: int = 0) -> np.ndarray:
    """t-SNE of ``z`` (scikit-learn's Barnes-Hut t-SNE, PCA initialisation).

    The perplexity is capped at ``(n - 1) / 3`` so that small snapshots work (t-SNE needs
    ``perplexity < n``). Identical points (a collapsed embedding) all map to the origin:
    scikit-learn's t-SNE ends the process on them (its PCA start divides by a zero spread).

    Args:
        z: ``(n, d)`` points, ``n >= 4``.
        k: output dimension, 2 or 3.
        perplexity: the effective number of neighbours, ``> 0``.
        seed: random state (fixed: the same input gives the same picture).

    Returns:
        ``(n, k)`` float64 array.

    Raises:
        ValueError: naming ``z``, ``k``, ``perplexity`` or ``seed``.
    """
    X = _points(z, k, min_rows=4)
    if k not in (2, 3):
        raise ValueError(f"k must be 2 or 3 for t-SNE, got {k}")
    perplexity = positive(perplexity, "perplexity")
    seed = integer(seed, "seed", 0)
    same = _collapsed(X, k)
    if same is not None:
        return same
    from sklearn.manifold import TSNE  # deferred: importing scikit-learn takes a while

    p = min(float(perplexity), max((len(X) - 1) / 3.0, 1.0))
    model = TSNE(n_components=k, perplexity=p, init="pca", random_state=seed)
    return np.asarray(model.fit_transform(X), dtype=np.float64)


# ------------------------------------------------------------------------------------ UMAP

_NUMBA_LOCK = threading.Lock()
_NUMBA_PATCHED = False
_UMAP_FITTED = False  # set by the first UMAP fit of the process


def numba_cache_dir() -> Path:
    """Where numba's compiled code goes: ``$NUMBA_CACHE_DIR`` if set, else
    ``<data dir>/.numba_cache`` (data dir: ``$GCA_RUNS_DIR`` or ``./runs``)."""
    if os.environ.get(NUMBA_CACHE_ENV):
        return Path(os.environ[NUMBA_CACHE_ENV])
    from gca_viz.runs import default_data_dir  # deferred: the run store imports torch

    return default_data_dir() / ".numba_cache"


def _default_cache(decorator: Callable[..., Any]) -> Callable[..., Any]:
    """``decorator`` (``numba.njit`` or ``numba.jit``) with ``cache=True`` by default; a
    function numba cannot cache (no source file, e.g. made by ``exec``) compiles uncached."""

    @functools.wraps(decorator)
    def with_cache(*args: Any, **kwargs: Any) -> Any:
        if "cache" in kwargs:
            return decorator(*args, **kwargs)
        try:
            result = decorator(*args, cache=True, **kwargs)
        except RuntimeError:  # "cannot cache function ...: no locator available"
            return decorator(*args, **kwargs)
        if hasattr(result, "py_func"):  # decorated directly: a dispatcher
            return result

        def apply(fn: Any) -> Any:  # decorator options given first: njit(...)(fn)
            try:
                return result(fn)
            except RuntimeError:
                return decorator(*args, **kwargs)(fn)

        return apply

    return with_cache


def enable_numba_cache(cache_dir: str | Path | None = None) -> Path:
    """Make numba cache compiled code on disk, before umap (and pynndescent) is imported.

    Sets ``NUMBA_CACHE_DIR`` to ``cache_dir`` (default :func:`numba_cache_dir`) and makes
    ``numba.njit`` and ``numba.jit`` default to ``cache=True`` for the rest of the process
    (an explicit ``cache=`` still wins). Safe to call many times and from several threads;
    returns the cache directory. Functions numba compiled before the first call keep their
    settings, so call it before importing umap or pynndescent.
    """
    global _NUMBA_PATCHED
    with _NUMBA_LOCK:
        path = Path(cache_dir) if cache_dir is not None else numba_cache_dir()
        path = path.resolve()
        path.mkdir(parents=True, exist_ok=True)
        os.environ[NUMBA_CACHE_ENV] = str(path)
        import numba
        import numba.core.config

        if getattr(numba.core.config, "CACHE_DIR", None) != str(path):
            numba.core.config.reload_config()  # numba read the environment at its import
        if not _NUMBA_PATCHED:
            numba.njit = _default_cache(numba.njit)
            numba.jit = _default_cache(numba.jit)
            _NUMBA_PATCHED = True
    return path


def umap(
    z: Any,
    k: int = 2,
    *,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    metric: str = "cosine",
    seed: int = 0,
) -> np.ndarray:
    """UMAP of ``z`` (umap-learn), deterministic for a fixed ``seed``.

    ``n_neighbors`` is capped at ``n - 1``. The first call in a process imports umap-learn
    through :func:`enable_numba_cache` (see the module docstring for the compile cost).
    Identical points (a collapsed embedding) all map to the origin (UMAP scattered them at
    random, a structure that is not there).

    Args:
        z: ``(n, d)`` points, ``n >= 4``.
        k: output dimension, 2 or 3.
        n_neighbors: size of the local neighbourhood, ``>= 2``.
        min_dist: how tightly points may pack, ``>= 0``.
        metric: distance of the input space (``"cosine"`` suits normalised embeddings).
        seed: random state (it also makes umap single-threaded).

    Returns:
        ``(n, k)`` float64 array.

    Raises:
        ValueError: naming ``z``, ``k``, ``n_neighbors``, ``min_dist`` or ``seed``.
        ModuleNotFoundError: umap-learn is not installed (it is the ``umap`` extra:
            ``pip install 'gca-explorer[umap]'``).
    """
    X = _points(z, k, min_rows=4)
    if k not in (2, 3):
        raise ValueError(f"k must be 2 or 3 for UMAP, got {k}")
    neighbours = number(n_neighbors, "n_neighbors")  # (15.0 from a JSON file is fine)
    if not (np.isfinite(neighbours) and neighbours >= 2 and neighbours == int(neighbours)):
        raise ValueError(f"n_neighbors must be an integer >= 2, got {n_neighbors!r}")
    min_dist = nonnegative(min_dist, "min_dist")
    seed = integer(seed, "seed", 0)
    same = _collapsed(X, k)
    if same is not None:
        return same
    try:
        enable_numba_cache()
        import umap as umap_learn
    except ModuleNotFoundError as exc:
        if exc.name not in ("umap", "numba", "pynndescent"):
            raise
        raise ModuleNotFoundError(
            "embed.umap needs umap-learn, which is not installed: "
            "pip install 'gca-explorer[umap]' (embed.pca and embed.tsne need nothing extra)",
            name=exc.name,
        ) from None

    model = umap_learn.UMAP(
        n_components=k,
        n_neighbors=min(int(neighbours), len(X) - 1),
        min_dist=min_dist,
        metric=metric,
        random_state=seed,
    )
    global _UMAP_FITTED
    with warnings.catch_warnings():  # "n_jobs overridden to 1 by setting random_state"
        warnings.simplefilter("ignore", UserWarning)
        Y = np.asarray(model.fit_transform(X), dtype=np.float64)
    _UMAP_FITTED = True
    return Y


def umap_ready() -> bool:
    """Whether this process has fitted a UMAP already: its numba kernels are compiled or
    loaded, so the next fit of a few hundred points takes about a second."""
    return _UMAP_FITTED


def umap_kernels_cached(cache_dir: str | Path | None = None) -> bool:
    """Whether numba's disk cache (``cache_dir``, default :func:`numba_cache_dir`) holds
    umap's compiled kernels already, so that loading UMAP takes seconds rather than the
    one-off compile. Looks at file names only; imports nothing."""
    spec = importlib.util.find_spec("umap")
    if spec is None or not spec.submodule_search_locations:
        return False
    package = os.path.abspath(next(iter(spec.submodule_search_locations)))
    # numba's cache locator files a module's kernels under <cache dir>/<name>_<sha1 of path>
    sub = f"{os.path.basename(package)}_{hashlib.sha1(package.encode()).hexdigest()}"
    root = Path(cache_dir) if cache_dir is not None else numba_cache_dir()
    return any((root / sub).glob("*.nbi"))


def warm_up_umap(n: int = 200, seed: int = 0) -> float:
    """Import umap and fit it once on ``n`` random points (with :func:`umap`'s defaults,
    the Geometry page's settings), so numba's compiled code is on disk and loaded in this
    process; return the seconds it took."""
    start = time.perf_counter()
    umap(np.random.default_rng(seed).standard_normal((n, 8)), seed=seed)
    return time.perf_counter() - start


WARM_UP_TSNE = "loading t-SNE (scikit-learn)"
WARM_UP_COMPILE = "compiling UMAP's kernels (numba: once per machine, cached on disk afterwards)"
WARM_UP_LOAD = "loading UMAP's compiled kernels from the disk cache"


def warm_up(
    report: Callable[[str], None] | None = None, *, n: int = 200, seed: int = 0
) -> dict[str, float]:
    """Pay the slow projections' one-off start-up costs now, so the first one a user asks
    for takes its usual time: import scikit-learn and fit t-SNE on a few points (a second or
    two), then load UMAP and fit it once on ``n`` points (:func:`warm_up_umap`: numba's
    compile, about 35 s of CPU the first time on a machine, a few seconds once it is cached).

    ``report(phase)`` is called as each phase begins with what it does, in words
    (:data:`WARM_UP_TSNE`, then :data:`WARM_UP_COMPILE` or :data:`WARM_UP_LOAD`, as
    :func:`umap_kernels_cached` finds the cache). Returns each phase's seconds, ``{"tsne":
    s, "umap": s}``.
    """
    say = report if report is not None else (lambda phase: None)
    say(WARM_UP_TSNE)
    start = time.perf_counter()
    tsne(np.random.default_rng(seed).standard_normal((32, 8)), seed=seed)
    seconds = {"tsne": time.perf_counter() - start}
    say(WARM_UP_LOAD if umap_kernels_cached() else WARM_UP_COMPILE)
    seconds["umap"] = warm_up_umap(n, seed)
    return seconds


PROJECTORS: dict[str, Callable[..., np.ndarray]] = {"pca": pca, "umap": umap, "tsne": tsne}
"""Name -> projection function ``(z, k, **params) -> (n, k)``."""


def project(z: Any, method: str, k: int = 2, **params: Any) -> np.ndarray:
    """``PROJECTORS[method](z, k, **params)``; raises ``ValueError`` for an unknown method."""
    if method not in PROJECTORS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    return PROJECTORS[method](z, k, **params)


# ------------------------------------------------------------------ exploring a snapshot


def cosine_neighbours(z: Any, i: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    r"""The ``k`` rows of ``z`` nearest to row ``i`` by cosine similarity (``i`` left out).

    .. math::
        \operatorname{sim}(i, j) = \frac{z_i^\top z_j}{\|z_i\|\,\|z_j\|}

    where ``z_j`` is row ``j`` of ``z``. On normalised embeddings ``ẑ`` this is ``ẑ_i^T ẑ_j``,
    the similarity a contrastive loss reads, and the ranking equals the Euclidean one.

    Args:
        z: ``(n, d)`` points, no zero row.
        i: the row, ``0 <= i < n``.
        k: how many neighbours, ``1 <= k < n``.

    Returns:
        ``(rows (k,), similarities (k,))``, most similar first (ties: the lower row first).

    Raises:
        ValueError: naming ``z``, ``i`` or ``k``.
    """
    X = _points(z, 1)
    n = len(X)
    for name, value, low in (("i", i, 0), ("k", k, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"{name} must be an integer, got {value!r}")
        if not low <= value < n:
            raise ValueError(f"{name} must be in {low}..{n - 1}, got {value}")
    norms = np.linalg.norm(X, axis=1)  # (n,)
    if not np.all(norms > 0):
        raise ValueError(f"z has a zero row ({int(np.argmin(norms))}): no direction to compare")
    sims = (X @ X[i]) / (norms * norms[i])  # (n,)
    sims[i] = -np.inf  # never its own neighbour
    order = np.lexsort((np.arange(n), -sims))[:k]  # by similarity, then by row
    return order, sims[order]


@dataclass(frozen=True)
class PartnerDistance:
    r"""How far row ``i``'s positive partner sits from it (:func:`partner_distance`).

    Attributes:
        cosine: :math:`\cos(z_i, z'_i)`, the similarity a contrastive loss reads.
        rank: where the partner would stand among row ``i``'s cosine neighbours: 1 plus the
            number of other rows more similar to ``z_i`` than the partner (1: nearer than
            every other sample).
        others: how many other rows it is ranked among (``n - 1``).
    """

    cosine: float
    rank: int
    others: int

    @property
    def distance(self) -> float:
        r"""The cosine distance :math:`1 - \cos(z_i, z'_i)`, in ``[0, 2]``."""
        return 1.0 - self.cosine

    @property
    def squared(self) -> float:
        r""":math:`\|\hat z_i - \hat z'_i\|^2 = 2 - 2\cos`: the pair's term of the alignment
        measure (:func:`gca_viz.metrics.alignment`), in ``[0, 4]``."""
        return 2.0 - 2.0 * self.cosine


def partner_distance(z: Any, i: int, partner: Any) -> PartnerDistance:
    r"""Row ``i``'s cosine similarity to its positive partner ``partner`` (an embedding of
    another view of the same sample) and the partner's rank among row ``i``'s neighbours.

    .. math::
        \operatorname{rank} = 1 + \#\{\, j \ne i : \operatorname{sim}(i, j) >
        \cos(z_i, z'_i) \,\}

    where :math:`\operatorname{sim}(i, j)` is the cosine similarity of rows ``i`` and ``j``
    of ``z`` (:func:`cosine_neighbours`) and :math:`z'_i` is ``partner``. Rank 1 means the
    other view is nearer than any other sample: retrieval by nearest neighbour would find
    it.

    Args:
        z: ``(n, d)`` points, no zero row. i: the row, ``0 <= i < n``.
        partner: ``(d,)`` the partner's embedding, not zero.

    Raises:
        ValueError: naming ``z``, ``i`` or ``partner``.
    """
    X = _points(z, 1)
    p = np.asarray(partner, dtype=np.float64).reshape(-1)  # (d,)
    if p.shape != (X.shape[1],) or not np.all(np.isfinite(p)) or not np.any(p):
        raise ValueError(f"partner must be a finite, non-zero ({X.shape[1]},) vector")
    rows, sims = cosine_neighbours(X, i, len(X) - 1)  # every other row, most similar first
    cos = float(X[i] @ p / (np.linalg.norm(X[i]) * np.linalg.norm(p)))
    return PartnerDistance(cos, 1 + int(np.sum(sims > cos)), len(rows))


@dataclass(frozen=True)
class SnapshotSamples:
    """The samples an embedding snapshot holds, in its row order.

    Attributes:
        index: ``(n,)`` positions of the samples in the full dataset.
        x: ``(n, C, H, W)`` images in ``[0, 1]`` or ``(n, d)`` vectors, the inputs.
        y: ``(n,)`` class labels. domain: ``(n,)`` domain labels or ``None``.
        kind: ``"image"`` or ``"vector"``.
    """

    index: np.ndarray
    x: np.ndarray
    y: np.ndarray
    domain: np.ndarray | None
    kind: str


def snapshot_samples(
    dataset: Dataset, n: int, *, test_fraction: float, seed: int
) -> SnapshotSamples:
    """Which samples a run's embedding snapshots show: the first ``n`` of the held-out part
    of ``dataset.split(test_fraction, seed)``, as :meth:`gca_viz.train.Trainer.
    snapshot_embeddings` takes them (``n = min(eval_subset, test size)``, the snapshot's row
    count). They are never in a training batch: the run trains on the other part.

    The positions are the split's own (:meth:`gca_viz.data.Dataset.split_index`).

    Raises:
        ValueError: for ``n`` outside ``1..`` the held-out size, or the split's own errors.
    """
    _, held_out = dataset.split_index(test_fraction, seed=seed)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= len(held_out):
        raise ValueError(f"n must be in 1..{len(held_out)} (the held-out samples), got {n!r}")
    index = held_out[:n]  # (n,)
    rows = torch.as_tensor(index)
    return SnapshotSamples(
        index=index,
        x=dataset.x[rows].cpu().numpy(),
        y=dataset.y[rows].cpu().numpy(),
        domain=None if dataset.domain is None else dataset.domain[rows].cpu().numpy(),
        kind=dataset.kind,
    )


# ------------------------------------------------------------------------- background jobs

JobState = Literal["missing", "pending", "running", "done", "error"]


@dataclass(frozen=True)
class JobStatus:
    """Where a job stands: ``state``, an error ``message``, its running time so far (or in
    all, once finished) in ``seconds``, and (for the warm-up) the ``phase`` it last reported
    beginning."""

    state: JobState
    message: str = ""
    seconds: float = 0.0
    phase: str = ""


_Call = tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]
"""A call queued for the worker: its future, the function and its arguments."""


class ProjectionJobs:
    """Runs projections on one background thread and keeps their results by key.

    A key is any hashable value naming the input and the settings (the app uses
    ``(run_id, step, method, params)``). Submitting a key that is pending, running or done
    returns the existing future (the cached result); a key whose job failed is run again.
    At most ``max_entries`` finished results are kept (least recently used go first).

    :meth:`warm_up` runs a warm-up (default :func:`warm_up`) on the same worker, once, so a
    job submitted while it runs waits for it (``pending``) and then runs warm;
    :meth:`warm_up_status` says what it is doing and for how long.

    The worker is a daemon thread: a process that exits (a server stopped with Ctrl-C) does
    not wait for a running job or the warm-up to end, as it would for a thread pool's.

    Args:
        max_entries: results to keep.
    """

    def __init__(self, max_entries: int = 128) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {max_entries}")
        self.max_entries = max_entries
        self._queue: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._worker: threading.Thread | None = None
        self._closed = False
        self._jobs: OrderedDict[Hashable, Future[Any]] = OrderedDict()
        self._times: dict[Hashable, list[float | None]] = {}  # key -> [started, ended]
        self._lock = threading.Lock()
        self._warm: Future[Any] | None = None
        self._warm_times: list[float | None] = [None, None]
        self._warm_phase = ""

    def _start(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Queue ``fn(*args)`` for the worker (started on first use); call with the lock."""
        if self._closed:
            raise RuntimeError("the projection jobs were shut down")
        if self._worker is None:
            self._worker = threading.Thread(target=self._work, name="gca-projection", daemon=True)
            self._worker.start()
        future: Future[Any] = Future()
        self._queue.put((future, fn, args))
        return future

    def _work(self) -> None:
        """The worker: run queued calls in order until :meth:`shutdown` queues ``None``."""
        while (item := self._queue.get()) is not None:
            future, fn, args = item
            if not future.set_running_or_notify_cancel():  # cancelled while queued
                continue
            try:
                result = fn(*args)
            except BaseException as exc:  # the job's own failure, reported by its status
                future.set_exception(exc)
            else:
                future.set_result(result)

    def _run(self, key: Hashable, fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        times = self._times.get(key)
        if times is not None:
            times[0] = time.monotonic()
        try:
            return fn(*args, **kwargs)
        finally:
            if times is not None:
                times[1] = time.monotonic()

    def submit(
        self, key: Hashable, fn: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Future[Any]:
        """Run ``fn(*args, **kwargs)`` in the background under ``key`` (unless already there)."""
        with self._lock:
            future = self._jobs.get(key)
            if future is not None and not (future.done() and future.exception() is not None):
                self._jobs.move_to_end(key)
                return future
            self._times[key] = [None, None]
            future = self._start(self._run, key, fn, args, kwargs)
            self._jobs[key] = future
            self._evict()
            return future

    def _evict(self) -> None:
        done = [k for k, f in self._jobs.items() if f.done()]
        for key in done[: max(0, len(done) - self.max_entries)]:
            del self._jobs[key]
            self._times.pop(key, None)

    def status(self, key: Hashable) -> JobStatus:
        """The state of the job under ``key`` (``missing`` if none was submitted)."""
        with self._lock:
            future = self._jobs.get(key)
            started, ended = self._times.get(key, [None, None])
        return _status(future, started, ended)

    def warm_up(self, fn: Callable[[Callable[[str], None]], Any] | None = None) -> Future[Any]:
        """Run ``fn(report)`` (default :func:`warm_up`) on the worker, once: after the jobs
        already queued, before every job submitted later. ``report(phase)`` (a string)
        sets the phase :meth:`warm_up_status` gives. A second call returns the first call's
        future and runs nothing, whatever ``fn`` it names.
        """
        with self._lock:
            if self._warm is None:
                self._warm = self._start(self._run_warm_up, fn or warm_up)
            return self._warm

    def _run_warm_up(self, fn: Callable[[Callable[[str], None]], Any]) -> Any:
        self._warm_times[0] = time.monotonic()
        try:
            return fn(self._report)
        finally:
            self._warm_times[1] = time.monotonic()

    def _report(self, phase: str) -> None:
        with self._lock:
            self._warm_phase = str(phase)

    def warm_up_status(self) -> JobStatus:
        """The state of the warm-up (``missing`` if :meth:`warm_up` was not called), with
        the phase it last reported."""
        with self._lock:
            future, phase = self._warm, self._warm_phase
            started, ended = self._warm_times
        found = _status(future, started, ended)
        return JobStatus(found.state, found.message, found.seconds, phase)

    def result(self, key: Hashable) -> Any:
        """The result under ``key`` if its job finished without error, else ``None``."""
        with self._lock:
            future = self._jobs.get(key)
            if future is not None and future.done():
                self._jobs.move_to_end(key)
        if future is None or not future.done() or future.exception() is not None:
            return None
        return future.result()

    def busy(self, include_warm_up: bool = True) -> bool:
        """Whether any job is pending or running (the warm-up counts unless
        ``include_warm_up`` is false)."""
        with self._lock:
            warming = include_warm_up and self._warm is not None and not self._warm.done()
            return warming or any(not f.done() for f in self._jobs.values())

    def forget(self, key: Hashable) -> None:
        """Drop a finished result (a pending or running job is left alone)."""
        with self._lock:
            future = self._jobs.get(key)
            if future is not None and future.done():
                del self._jobs[key]
                self._times.pop(key, None)

    def shutdown(self, wait: bool = False) -> None:
        """Stop the worker thread (queued jobs are cancelled)."""
        with self._lock:
            self._closed = True
            for future in [*self._jobs.values(), self._warm]:
                if future is not None:
                    future.cancel()  # only queued ones: a running job ends on its own
            worker = self._worker
            self._queue.put(None)
        if wait and worker is not None:
            worker.join()


def _status(future: Future[Any] | None, started: float | None, ended: float | None) -> JobStatus:
    """A job's :class:`JobStatus` from its future and its start and end times."""
    if future is None:
        return JobStatus("missing")
    now = time.monotonic()
    seconds = (ended or now) - started if started is not None else 0.0
    if not future.done():
        return JobStatus("running" if started is not None else "pending", seconds=seconds)
    if future.cancelled():  # by shutdown before it started
        return JobStatus("error", "cancelled", seconds)
    exc = future.exception()
    if exc is not None:
        message = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
        return JobStatus("error", message, seconds)
    return JobStatus("done", seconds=seconds)
