"""Faults of the storage under the run store (gca_viz.runs), with real run processes.

* A full disk: a small tmpfs is mounted as the data directory (we run as root; the tests
  skip, saying why, where ``mount`` is not permitted) and filled up while a run trains.
* A file-size limit (``RLIMIT_FSIZE``, inherited by the run process): the same failure
  path on any machine, no mount needed.
* A database locked by another process past the store's busy timeout, and a read-only
  file system.

The claims: the run that cannot write ends ``failed`` with an error whose last line says
why; it leaves no partial snapshot or checkpoint behind; finished runs keep their metrics and
snapshot files byte for byte; the store stays readable; a storage fault surfaces as a
:class:`StoreError` (a ``ValueError`` naming the store and the problem), never as a raw
``sqlite3`` error; and once space is back, the failed run resumes from its checkpoint.
"""

from __future__ import annotations

import hashlib
import os
import resource
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gca_viz.runs import RESERVE_BYTES, RunStore, StoreError
from tests.helpers import add_run, kill_runs, pid_running, wait_for, wait_for_run
from tests.test_runs import cfg, wait_status, wait_training
from tests.tmpfs import mount_tmpfs, umount

# A run that writes a lot, early: a 512 x 512 plan snapshot (about 1 MB a matrix) every
# step and a checkpoint every 5 steps.
HEAVY: dict[str, Any] = cfg(batch_size=256, snapshot_every=1, checkpoint_every=5, eval_every=0)


def fill(path: Path) -> int:
    """Write zeros to ``path`` until the disk is full; return the bytes written."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    written = 0
    try:
        while True:
            written += os.write(fd, bytes(1 << 16))
    except OSError:
        pass
    try:
        while True:  # the last few KB, page by page
            written += os.write(fd, bytes(4096))
    except OSError:
        pass
    finally:
        os.close(fd)
    return written


def fingerprint(store: RunStore, run_id: int) -> dict[str, Any]:
    """What must not change about a finished run: its row, metrics and snapshot bytes."""
    info = store.get(run_id)
    files = {
        str(p.relative_to(store.dir)): hashlib.sha256(p.read_bytes()).hexdigest()
        for _, p in store.snapshots(run_id, "embeddings") + store.snapshots(run_id, "plan")
    }
    return {
        "status": info.status,
        "step": info.step,
        "metrics": store.metrics_csv(run_id),
        "snapshots": files,
    }


def leftovers(run_dir: Path) -> list[str]:
    """Partial files a failed write could leave: ``*.tmp`` under the run's directory."""
    return sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*.tmp"))


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 48 MB tmpfs as the data directory; run processes are killed and it is unmounted
    after the test."""
    disk = tmp_path / "disk"
    mount_tmpfs(disk, "size=48m")
    try:
        yield disk
    finally:
        (disk / "filler").unlink(missing_ok=True)  # a failed test may leave the disk full
        kill_runs(disk)
        umount(disk)


def _finished_run(store: RunStore) -> int:
    run_id = store.launch(cfg(steps=20, snapshot_every=10, eval_every=10, checkpoint_every=10))
    wait_status(store, run_id, "finished")
    return run_id


def test_a_full_disk_fails_the_run_clearly_and_harms_nothing_else(small_disk: Path) -> None:
    store = RunStore(small_disk, max_concurrent=1)
    done = _finished_run(store)
    before = fingerprint(store, done)
    assert before["snapshots"] and "loss" in before["metrics"]

    run_id = store.launch(HEAVY)
    wait_training(store, run_id, min_step=6)  # it has a checkpoint
    assert (store.run_dir(run_id) / ".reserve").stat().st_size == RESERVE_BYTES
    filled_at = time.monotonic()
    fill(small_disk / "filler")
    wait_status(store, run_id, "failed", timeout=60)
    seconds = time.monotonic() - filled_at

    info = store.get(run_id)
    last = (info.error or "").strip().splitlines()[-1]
    assert "the disk is full" in last and str(store.run_dir(run_id)) in last, info.error
    assert leftovers(store.run_dir(run_id)) == []  # no partial snapshot or checkpoint
    assert not (store.run_dir(run_id) / ".reserve").exists()  # spent on the record
    assert fingerprint(store, done) == before  # the finished run is intact
    assert [r.id for r in store.list_runs()] == [run_id, done]  # still readable, full
    assert RunStore(small_disk).get(run_id).status == "failed"  # a new opener reads too
    fill(small_disk / "filler")  # the run's reserve is free space again: use it up too
    with pytest.raises(StoreError, match="disk is full"):  # a write: a clear error
        store.launch(HEAVY)
    assert store.reconcile() == []  # a page's reconcile does not raise on a full disk
    print(f"\nfull disk: run {run_id} failed {seconds:.1f} s after the disk filled: {last}")

    (small_disk / "filler").unlink()  # space is back: the run resumes from its checkpoint
    store.resume(run_id)
    wait_training(store, run_id, min_step=info.step + 1)  # past where it failed
    store.stop(run_id)
    wait_status(store, run_id, "stopped", timeout=30)
    assert fingerprint(store, done) == before


def test_a_file_size_limit_ends_the_run_with_the_reason(runs_dir: Path) -> None:
    """The same fault without a mount: the run process inherits ``RLIMIT_FSIZE`` of 512 KB
    (Python ignores SIGXFSZ, so a write past it raises ``EFBIG``). SQLite's write-ahead log
    is the first file to reach it, and then even the failure cannot be recorded: the
    process dies, and the reconcile that marks it ``interrupted`` quotes its log's last
    line, so the page still says why."""
    store = RunStore(runs_dir, max_concurrent=1)
    done = _finished_run(store)
    before = fingerprint(store, done)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (512 * 1024, hard))
    try:
        run_id = store.launch(HEAVY)  # the process starts with the limit
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    proc = wait_for(lambda: store.get(run_id).pid, 30, "the run's pid")
    wait_for_run(store, lambda: not pid_running(proc), "the run process to end")
    store.reconcile()
    info = store.get(run_id)
    assert info.status in ("failed", "interrupted"), info
    last = (info.error or "").strip().splitlines()[-1]
    # (where the limit hits first varies with the machine's load: while training, the
    # failure's own record or a traceback; before, the command line's "error: run store")
    assert any(s in last for s in ("could not write", "StoreError", "error: run store")), last
    assert "disk I/O error" in last or "File too large" in last, info.error
    assert leftovers(store.run_dir(run_id)) == []
    assert fingerprint(store, done) == before
    print(f"\nfile-size limit: run {run_id} {info.status}: {last}")


def test_a_locked_store_is_a_clear_error_and_reads_go_on(runs_dir: Path) -> None:
    store = RunStore(runs_dir, busy_timeout=0.3)
    run_id = add_run(store, name="done", config={"steps": 10}, status="finished")  # no process
    holder = sqlite3.connect(store.db_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process writing, for longer than 0.3 s
    try:
        start = time.monotonic()
        with pytest.raises(StoreError, match=r"locked by another process \(busy for 0.3 s\)"):
            store.delete(run_id)
        assert time.monotonic() - start < 5
        with pytest.raises(StoreError, match="locked"):
            store.launch(cfg())  # nothing is queued, no process starts
        assert [r.id for r in store.list_runs()] == [run_id]  # WAL: reads are not blocked
        assert store.reconcile() == []  # and a page's reconcile does not raise
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    store.delete(run_id)  # the lock is gone: writes work again
    assert store.list_runs() == []


def test_a_query_error_is_not_mistaken_for_a_storage_fault(runs_dir: Path) -> None:
    store = RunStore(runs_dir)
    with pytest.raises(sqlite3.OperationalError, match="no such table"), store._db() as db:
        db.execute("SELECT * FROM nothing_here")


def test_a_read_only_store_is_a_clear_error(tmp_path: Path) -> None:
    disk = tmp_path / "ro"
    mount_tmpfs(disk, "size=8m")
    try:
        store = RunStore(disk)
        add_run(store, name="done", config={"steps": 10}, status="finished")
        store._keeper.close()
        del store
        remount = subprocess.run(
            ["mount", "-o", "remount,ro", str(disk)], capture_output=True, text=True
        )
        if remount.returncode:
            pytest.skip(f"cannot remount read-only: {remount.stderr.strip()}")
        with pytest.raises(StoreError, match=r"run store .*ro: "):
            RunStore(disk)  # SQLite's WAL needs to write its shared-memory file
    finally:
        umount(disk)


def test_a_failed_snapshot_write_leaves_no_partial_file(tmp_path: Path) -> None:
    """``_write_npz`` under a file-size limit (no mount needed): neither the file nor its
    temporary name is left."""
    import numpy as np

    from gca_viz.runs import _write_npz

    dest = tmp_path / "snap.npz"
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, hard))
    try:
        with pytest.raises(OSError, match="File too large"):
            noise = np.random.default_rng(0).random((256, 256), dtype=np.float32)
            _write_npz(dest, {"z": noise})  # (compressed: zeros would fit in the limit)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    shutil.rmtree(tmp_path, ignore_errors=True)
