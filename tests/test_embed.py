"""Tests of gca_viz.embed: projections of embeddings and the background projection jobs."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from sklearn.decomposition import PCA

from gca_viz import embed

ROOT = Path(__file__).resolve().parents[1]


def _cloud(n: int = 60, d: int = 5, seed: int = 0) -> np.ndarray:
    """Points with clearly different variances along random axes (no ties among PCs)."""
    rng = np.random.default_rng(seed)
    scales = np.array([5.0, 3.0, 1.5, 0.5, 0.1])[:d]
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))  # a random rotation
    return (rng.standard_normal((n, d)) * scales) @ Q.T + 2.0  # shifted: PCA must centre


# ------------------------------------------------------------------------------------ PCA


@pytest.mark.parametrize("k", [1, 2, 3])
def test_pca_shape_centring_and_variance_order(k: int) -> None:
    z = _cloud()
    y = embed.pca(z, k)
    assert y.shape == (60, k)
    np.testing.assert_allclose(y.mean(axis=0), 0.0, atol=1e-10)
    var = y.var(axis=0, ddof=1)
    assert np.all(np.diff(var) < 0)  # PC1 carries the most variance, then PC2, ...


def test_pca_matches_scikit_learn_up_to_sign() -> None:
    z = _cloud()
    ours = embed.pca(z, 3)
    ref = PCA(n_components=3).fit(z)
    theirs = ref.transform(z)
    signs = np.sign((ours * theirs).sum(axis=0))
    np.testing.assert_allclose(ours, theirs * signs, atol=1e-8)
    np.testing.assert_allclose(
        embed.explained_variance_ratio(z, 3), ref.explained_variance_ratio_, atol=1e-10
    )


def test_pca_is_deterministic_with_a_sign_convention() -> None:
    z = _cloud()
    np.testing.assert_array_equal(embed.pca(z, 2), embed.pca(z.copy(), 2))
    # The same cloud reflected gives the same picture: the sign is fixed by the data's axes.
    np.testing.assert_allclose(embed.pca(-z, 2), embed.pca(z, 2) * [[-1, -1]], atol=1e-10)
    # The largest loading of each axis is positive, so the picture does not flip at random.
    X = z - z.mean(axis=0)
    axes = np.linalg.lstsq(X, embed.pca(z, 2), rcond=None)[0].T  # (2, d) recovered loadings
    assert np.all(axes[np.arange(2), np.abs(axes).argmax(axis=1)] > 0)


def test_pca_of_points_on_a_line_has_one_component() -> None:
    t = np.linspace(-1, 1, 20)[:, None]
    z = t * np.array([[1.0, 2.0, 2.0]]) + 0.5  # (20, 3) on a line
    ratio = embed.explained_variance_ratio(z, 2)
    np.testing.assert_allclose(ratio, [1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(np.abs(embed.pca(z, 1)[:, 0]), np.abs(t[:, 0]) * 3.0, atol=1e-12)
    np.testing.assert_allclose(embed.explained_variance_ratio(np.ones((5, 3)), 2), [0.0, 0.0])


@pytest.mark.parametrize(
    ("z", "k", "match"),
    [
        (np.zeros(5), 2, "z must have shape"),
        (np.zeros((1, 3)), 1, "z must have shape"),
        (np.array([[0.0, np.nan], [1.0, 2.0]]), 1, "NaN"),
        (np.array([["a", "b"], ["c", "d"]]), 1, r"z must be an \(n, d\) array of numbers"),
        ([[1.0, 2.0], [3.0]], 1, r"z must be an \(n, d\) array of numbers"),  # ragged
        (np.zeros((4, 3)), 0, "k must be a positive integer"),
        (np.zeros((4, 3)), 4, "k must be <= the dimension"),
    ],
)
def test_pca_rejects_bad_input(z: np.ndarray, k: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        embed.pca(z, k)


def test_pca_with_fewer_points_than_components_gives_k_columns() -> None:
    """3 points in d = 5 have 2 axes of variance: asked for 4 components, pca returned 3
    columns (the thin SVD's), against its docstring's (n, k). The full basis completes the
    axes, orthonormal, with the data's coordinates 0 on those beyond their rank."""
    z = np.random.default_rng(1).standard_normal((3, 5))
    y = embed.pca(z, 4)
    assert y.shape == (3, 4)
    np.testing.assert_allclose(y[:, 2:], 0.0, atol=1e-12)
    np.testing.assert_allclose(y[:, :2], embed.pca(z, 2), atol=1e-12)
    _, axes = embed.pca_basis(z, 4)
    np.testing.assert_allclose(axes @ axes.T, np.eye(4), atol=1e-12)
    assert embed.explained_variance_ratio(z, 4).shape == (4,)


def test_projections_read_a_tensor_that_requires_grad() -> None:
    """Embeddings straight from a model (in the autograd graph) raised numpy's "Can't call
    numpy() on Tensor that requires grad"; the metrics already read them detached."""
    import torch

    z = torch.randn(20, 5, generator=torch.Generator().manual_seed(0), requires_grad=True)
    np.testing.assert_allclose(embed.pca(z, 2), embed.pca(z.detach().numpy(), 2), atol=1e-6)


@pytest.mark.parametrize("method", ["tsne", "umap"])
def test_identical_points_project_to_one_point_in_a_healthy_process(method: str) -> None:
    """A collapsed embedding (every row the same point): scikit-learn's t-SNE ended the
    process (SIGSEGV, its PCA start divides by a zero spread; the Geometry page runs it in
    the app's own process) and UMAP scattered the points at random. Both now give every
    point the origin: one point, the honest picture. Run in a child process, so that a
    crash fails this test instead of ending the suite."""
    code = (
        "import numpy as np; from gca_viz import embed; "
        f"y = embed.{method}(np.ones((6, 3)), 2); "
        "assert y.shape == (6, 2) and not y.any(), y; print('ok')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", (done.returncode, done.stderr)


def test_pca_basis_projects_like_pca_and_keeps_one_basis_for_other_points() -> None:
    z = _cloud()
    mean, axes = embed.pca_basis(z, 2)
    assert mean.shape == (5,) and axes.shape == (2, 5)
    np.testing.assert_allclose((z - mean) @ axes.T, embed.pca(z, 2), atol=1e-10)
    np.testing.assert_allclose(axes @ axes.T, np.eye(2), atol=1e-10)  # orthonormal axes


# --------------------------------------------------------------------- exploring a snapshot


def test_cosine_neighbours_match_a_direct_computation() -> None:
    rng = np.random.default_rng(3)
    z = rng.standard_normal((40, 6)) * rng.uniform(0.5, 3.0, size=(40, 1))  # unnormalised
    for i in (0, 17, 39):
        rows, sims = embed.cosine_neighbours(z, i, 5)
        unit = z / np.linalg.norm(z, axis=1, keepdims=True)
        cos = unit @ unit[i]
        expected = [j for j in np.argsort(-cos, kind="stable") if j != i][:5]
        assert rows.tolist() == expected and i not in rows
        np.testing.assert_allclose(sims, cos[expected], rtol=1e-12)
        assert np.all(np.diff(sims) <= 0)


def test_cosine_neighbours_break_ties_by_row_and_ignore_length() -> None:
    z = np.array([[1.0, 0.0], [0.0, 1.0], [3.0, 0.0], [0.5, 0.0], [-1.0, 0.0]])
    rows, sims = embed.cosine_neighbours(z, 0, 3)
    assert rows.tolist() == [2, 3, 1]  # rows 2 and 3 point the same way as row 0
    np.testing.assert_allclose(sims, [1.0, 1.0, 0.0], atol=1e-12)


@pytest.mark.parametrize(
    ("i", "k", "match"),
    [(5, 2, "i must be in 0..4"), (-1, 2, "i must be"), (0, 5, "k must be in 1..4"),
     (0, 0, "k must be"), (0.0, 2, "i must be an integer"), (True, 2, "i must be an integer")],
)  # fmt: skip
def test_cosine_neighbours_reject_bad_arguments(i: object, k: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        embed.cosine_neighbours(np.eye(5), i, k)  # type: ignore[arg-type]


def test_cosine_neighbours_reject_a_zero_row() -> None:
    with pytest.raises(ValueError, match="zero row"):
        embed.cosine_neighbours(np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]]), 0, 1)


@pytest.mark.parametrize("name", ["digits", "multidomain_digits"])
def test_snapshot_samples_are_the_held_out_split_the_trainer_embeds(name: str) -> None:
    from gca_viz.data import load_dataset

    ds = load_dataset(name)
    _, test = ds.split(0.3, seed=4)
    s = embed.snapshot_samples(ds, 50, test_fraction=0.3, seed=4)
    assert s.index.shape == (50,) and s.kind == ds.kind
    np.testing.assert_array_equal(s.x, test.x[:50].numpy())
    np.testing.assert_array_equal(s.x, ds.x[s.index].numpy())  # positions in the dataset
    np.testing.assert_array_equal(s.y, test.y[:50].numpy())
    if ds.domain is None:
        assert s.domain is None
    else:
        np.testing.assert_array_equal(s.domain, test.domain[:50].numpy())


def test_snapshot_samples_match_a_shipped_run_snapshot() -> None:
    from gca_viz.data import load_dataset

    snaps = sorted(
        (ROOT / "assets" / "demo_runs" / "demo-ince" / "snapshots").glob("*_embeddings.npz")
    )
    snap = np.load(snaps[-1])
    s = embed.snapshot_samples(load_dataset("digits"), len(snap["y"]), test_fraction=0.25, seed=0)
    np.testing.assert_array_equal(s.y, snap["y"])


def test_snapshot_samples_reject_more_rows_than_held_out() -> None:
    from gca_viz.data import load_dataset

    with pytest.raises(ValueError, match=r"n must be in 1\.\.449 \(the held-out samples\)"):
        embed.snapshot_samples(load_dataset("digits"), 450, test_fraction=0.25, seed=0)


# ---------------------------------------------------------------------------------- t-SNE


def test_tsne_small_input_is_deterministic_and_keeps_clusters() -> None:
    rng = np.random.default_rng(1)
    centres = np.eye(4)[:2] * 10
    z = np.concatenate([c + rng.standard_normal((15, 4)) * 0.3 for c in centres])  # 2 blobs
    a = embed.tsne(z, seed=0)  # perplexity 30 is capped at (n - 1) / 3 for 30 points
    b = embed.tsne(z, seed=0)
    assert a.shape == (30, 2)
    np.testing.assert_array_equal(a, b)
    # Each blob stays together: within-blob spread is well below the gap between blobs.
    gap = np.linalg.norm(a[:15].mean(0) - a[15:].mean(0))
    spread = max(a[:15].std(0).max(), a[15:].std(0).max())
    assert gap > 3 * spread


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"k": 1}, "k must be 2 or 3"),
        ({"perplexity": 0.0}, "perplexity"),
        ({"perplexity": "30"}, "perplexity must be a number"),  # was a TypeError
        ({"seed": -1}, "seed must be an integer >= 0"),  # was scikit-learn's message
    ],
)
def test_tsne_rejects_bad_parameters(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        embed.tsne(np.random.default_rng(0).standard_normal((10, 3)), **kwargs)  # type: ignore[arg-type]


def test_project_dispatches_and_rejects_unknown_methods() -> None:
    z = _cloud()
    np.testing.assert_array_equal(embed.project(z, "pca", 2), embed.pca(z, 2))
    with pytest.raises(ValueError, match="method must be one of"):
        embed.project(z, "isomap")


# ------------------------------------------------------------------------- numba and UMAP


def test_numba_cache_dir_defaults_to_the_data_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setenv("GCA_RUNS_DIR", str(tmp_path / "store"))
    assert embed.numba_cache_dir() == tmp_path / "store" / ".numba_cache"
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "mine"))
    assert embed.numba_cache_dir() == tmp_path / "mine"


def test_enable_numba_cache_makes_njit_cache_on_disk(tmp_path: Path) -> None:
    """In a fresh process: after enable_numba_cache, a plain @numba.njit function is cached
    in the chosen folder, and a function without a source file still compiles."""
    (tmp_path / "nbmod.py").write_text(
        "import numba\n\n@numba.njit\ndef add_one(x):\n    return x + 1\n"
    )
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        "from gca_viz import embed\n"
        f"embed.enable_numba_cache({str(tmp_path / 'cache')!r})\n"
        "import numba, nbmod\n"
        "assert nbmod.add_one(1) == 2\n"
        "assert numba.njit(eval('lambda x: x * 3'))(2) == 6\n"  # no file: compiled uncached
        "assert numba.njit()(eval('lambda x: x * 4'))(2) == 8\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    cached = [p.name for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert any(n.startswith("nbmod.add_one") and n.endswith(".nbi") for n in cached), cached


@pytest.mark.slow
def test_umap_is_deterministic_and_separates_blobs(
    pytestconfig: pytest.Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """UMAP compiles numba code on first use (about 35 s once per cache folder; the cache
    lives in pytest's cache so later runs take a few seconds)."""
    assert pytestconfig.cache is not None
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(pytestconfig.cache.mkdir("numba")))
    rng = np.random.default_rng(2)
    z = np.concatenate([c + rng.standard_normal((30, 6)) * 0.2 for c in np.eye(6)[:3] * 5])
    a = embed.umap(z, seed=0, metric="euclidean")
    b = embed.umap(z, seed=0, metric="euclidean")
    assert a.shape == (90, 2)
    np.testing.assert_array_equal(a, b)
    centres = np.stack([a[i * 30 : (i + 1) * 30].mean(0) for i in range(3)])
    spread = max(a[i * 30 : (i + 1) * 30].std(0).max() for i in range(3))
    gaps = [np.linalg.norm(centres[i] - centres[j]) for i in range(3) for j in range(i + 1, 3)]
    assert min(gaps) > 2 * spread


def test_umap_rejects_bad_parameters() -> None:
    z = np.zeros((10, 3))
    with pytest.raises(ValueError, match="n_neighbors"):
        embed.umap(z, n_neighbors=1)
    with pytest.raises(ValueError, match="k must be 2 or 3"):
        embed.umap(z, k=4)
    for kwargs, match in (  # each was a TypeError or int()'s message
        ({"min_dist": None}, "min_dist must be a number"),
        ({"n_neighbors": "a"}, "n_neighbors must be a number"),
        ({"n_neighbors": float("inf")}, "n_neighbors must be an integer >= 2"),
        ({"seed": -2}, "seed must be an integer >= 0"),
    ):
        with pytest.raises(ValueError, match=match):
            embed.umap(z, **kwargs)  # type: ignore[arg-type]


# -------------------------------------------------------------------------- background jobs


def test_jobs_run_off_thread_and_report_their_state() -> None:
    jobs = embed.ProjectionJobs()
    gate = threading.Event()
    seen: dict[str, int] = {}

    def slow(x: int) -> int:
        seen["thread"] = threading.get_ident()
        gate.wait(10)
        return x * 2

    assert jobs.status("a").state == "missing"
    start = time.monotonic()
    jobs.submit("a", slow, 21)
    jobs.submit("b", slow, 1)  # queued behind "a": one worker
    assert time.monotonic() - start < 0.5  # submit never waits for the job
    _wait_for(lambda: jobs.status("a").state == "running")
    assert jobs.status("b").state == "pending"
    assert jobs.busy() and jobs.result("a") is None
    gate.set()
    _wait_for(lambda: not jobs.busy())
    assert seen["thread"] != threading.get_ident()
    status = jobs.status("a")
    assert status.state == "done" and status.message == "" and status.seconds >= 0
    assert jobs.result("a") == 42 and jobs.result("b") == 2
    jobs.shutdown()


def test_jobs_cache_results_by_key() -> None:
    jobs = embed.ProjectionJobs()
    calls: list[int] = []

    def work(x: int) -> np.ndarray:
        calls.append(x)
        return np.full(3, x)

    first = jobs.submit(("run", 1, "umap"), work, 5)
    first.result(timeout=10)
    second = jobs.submit(("run", 1, "umap"), work, 5)  # cached: no second call
    assert second is first and calls == [5]
    np.testing.assert_array_equal(jobs.result(("run", 1, "umap")), [5, 5, 5])
    jobs.submit(("run", 2, "umap"), work, 6).result(timeout=10)
    assert calls == [5, 6]
    jobs.shutdown()


def test_a_failing_job_reports_its_message_and_can_run_again() -> None:
    jobs = embed.ProjectionJobs()
    attempts: list[int] = []

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise ValueError("perplexity must be > 0, got 0")
        return "ok"

    with pytest.raises(ValueError):
        jobs.submit("k", flaky).result(timeout=10)
    status = jobs.status("k")
    assert status.state == "error"
    assert status.message == "perplexity must be > 0, got 0"
    assert jobs.result("k") is None and not jobs.busy()
    jobs.submit("k", lambda: 1 / 0)
    _wait_for(lambda: jobs.status("k").state == "error")  # a retry replaces the failed job
    assert jobs.status("k").message == "ZeroDivisionError: division by zero"
    assert jobs.submit("k", flaky).result(timeout=10) == "ok"
    assert jobs.status("k").state == "done"
    jobs.shutdown()


def test_jobs_keep_at_most_max_entries_results() -> None:
    jobs = embed.ProjectionJobs(max_entries=2)
    for key in range(4):  # each submit keeps at most 2 earlier finished results
        jobs.submit(key, lambda k=key: k).result(timeout=10)
    assert jobs.status(0).state == "missing"
    assert jobs.result(1) == 1 and jobs.result(2) == 2 and jobs.result(3) == 3
    jobs.forget(3)
    assert jobs.status(3).state == "missing"
    with pytest.raises(ValueError, match="max_entries"):
        embed.ProjectionJobs(max_entries=0)
    jobs.shutdown()


# ------------------------------------------------------------------------------- warm-up


def test_the_warm_up_runs_once_ahead_of_later_jobs_and_reports_its_phase() -> None:
    """A job submitted while the warm-up runs waits (``pending``), then runs on the same
    worker; the warm-up's status follows its reported phases and it runs only once."""
    jobs = embed.ProjectionJobs()
    gate = threading.Event()
    order: list[str] = []
    worker: dict[str, int] = {}

    def warm(report: Callable[[str], None]) -> str:
        worker["thread"] = threading.get_ident()
        report("importing")
        order.append("warm-up started")
        assert gate.wait(10)
        report("fitting")
        time.sleep(0.2)
        order.append("warm-up ended")
        return "warm"

    def job(x: int) -> int:
        order.append("job")
        return x + 1

    try:
        assert jobs.warm_up_status().state == "missing" and not jobs.busy()
        first = jobs.warm_up(warm)
        _wait_for(lambda: jobs.warm_up_status().phase == "importing")
        status = jobs.warm_up_status()
        assert status.state == "running" and status.seconds >= 0
        assert jobs.busy() and not jobs.busy(include_warm_up=False)
        assert jobs.warm_up(lambda report: order.append("again")) is first  # once only
        jobs.submit("a", job, 1)
        time.sleep(0.1)
        assert jobs.status("a").state == "pending"  # behind the warm-up: one worker
        assert jobs.busy(include_warm_up=False)
        gate.set()
        _wait_for(lambda: jobs.warm_up_status().phase == "fitting")
        assert jobs.status("a").state == "pending"
        _wait_for(lambda: jobs.status("a").state == "done")
        status = jobs.warm_up_status()
        assert status.state == "done" and status.phase == "fitting"
        assert status.seconds >= 0.2 and first.result() == "warm"
        assert order == ["warm-up started", "warm-up ended", "job"]
        assert jobs.result("a") == 2 and not jobs.busy()
        assert worker["thread"] != threading.get_ident()
    finally:
        gate.set()
        jobs.shutdown()


def test_a_failed_warm_up_says_why_and_jobs_still_run() -> None:
    jobs = embed.ProjectionJobs()

    def broken(report: Callable[[str], None]) -> None:
        report("importing")
        raise ImportError("no module named umap")

    try:
        jobs.warm_up(broken)
        assert jobs.submit("a", lambda: 7).result(timeout=10) == 7
        status = jobs.warm_up_status()
        assert status.state == "error" and status.phase == "importing"
        assert status.message == "ImportError: no module named umap"
    finally:
        jobs.shutdown()


def test_a_process_exits_without_waiting_for_the_warm_up_or_a_job() -> None:
    """A server stopped while the warm-up compiles (the first half-minute after its start)
    exits at once: the worker is a daemon thread (a thread pool's worker was joined at exit,
    so the process waited for the compile to end)."""
    code = (
        "import time\n"
        "from gca_viz import embed\n"
        "jobs = embed.ProjectionJobs()\n"
        "jobs.warm_up(lambda report: time.sleep(60))\n"
        "jobs.submit('queued', time.sleep, 60)\n"
        "while jobs.warm_up_status().state != 'running':\n"
        "    time.sleep(0.01)\n"
        "print('exiting', flush=True)\n"
    )
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=50
    )
    assert done.returncode == 0 and done.stdout == "exiting\n", done.stderr
    assert time.monotonic() - start < 30


def test_shutdown_cancels_queued_jobs_and_refuses_new_ones() -> None:
    jobs = embed.ProjectionJobs()
    gate = threading.Event()
    jobs.warm_up(lambda report: gate.wait(10))
    jobs.submit("queued", lambda: 1)
    _wait_for(lambda: jobs.warm_up_status().state == "running")
    jobs.shutdown()
    gate.set()
    assert jobs.status("queued") == embed.JobStatus("error", "cancelled")
    _wait_for(lambda: jobs.warm_up_status().state == "done")  # a running one ends itself
    with pytest.raises(RuntimeError, match="shut down"):
        jobs.submit("late", lambda: 2)


def test_umap_kernels_are_not_cached_in_an_empty_folder(tmp_path: Path) -> None:
    assert not embed.umap_kernels_cached(tmp_path)


@pytest.mark.slow
def test_the_real_warm_up_fits_tsne_then_umap_and_fills_the_cache(tmp_path: Path) -> None:
    """In a fresh process with an empty numba cache: the warm-up reports t-SNE, then UMAP's
    compile, after which the cache holds umap's kernels and UMAP is ready (about 35 s of
    CPU: the compile is what it is for)."""
    code = (
        "from gca_viz import embed\n"
        "phases = []\n"
        "assert not embed.umap_ready() and not embed.umap_kernels_cached()\n"
        "seconds = embed.warm_up(phases.append)\n"
        "assert phases == [embed.WARM_UP_TSNE, embed.WARM_UP_COMPILE], phases\n"
        "assert embed.umap_ready() and embed.umap_kernels_cached()\n"
        "assert set(seconds) == {'tsne', 'umap'}\n"
        "phases.clear()\n"
        "embed.warm_up(phases.append)\n"
        "assert phases[1] == embed.WARM_UP_LOAD, phases\n"
    )
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600,
        env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]


def _wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)
