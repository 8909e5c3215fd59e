"""The body of a background run process: ``python -m gca_viz train --store DIR --run-id N``
(:func:`run_in_store`), which trains with a :class:`StoreWriter` callback that writes the
run's metrics, snapshots, heartbeats and status to the run store (:mod:`gca_viz.runs`),
applies the live changes the app requests and honours its stop requests.

A run that fails records why: the traceback, then one line naming a fault of the storage
(a full disk, a read-only file system, a file-size limit) whatever raised it
(:func:`describe_failure`). On a full disk the run first deletes its reserve file
(:data:`gca_viz.runs.RESERVE_BYTES`) to make room for that record.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from gca_viz import _signals
from gca_viz._processes import alive
from gca_viz.device import device_name
from gca_viz.runs import _NOT_OURS, ACTIVE, RESERVE_BYTES, NotOwner, RunStore, StoreError
from gca_viz.train import Callback, TrainConfig, Trainer


class StoreWriter(Callback):
    """Callback of a run process: writes metrics, snapshots, heartbeats and status to the
    store, applies pending live changes at each step and honours stop requests."""

    def __init__(self, store: RunStore, run_id: int, flush_every: float = 0.25) -> None:
        self.store, self.run_id = store, run_id
        self.dir = store.run_dir(run_id)
        (self.dir / "snapshots").mkdir(parents=True, exist_ok=True)
        self.flush_every = flush_every
        self._pending: list[tuple[int, int, str, float]] = []
        self._last_flush = 0.0
        self._stop = False
        self._lost: NotOwner | None = None  # set by the heartbeat thread
        self._beating = threading.Event()
        self.reserve = self.dir / ".reserve"
        try:  # room for the last record on a disk that fills up (see release_reserve)
            with open(self.reserve, "wb") as fh:
                fh.write(bytes(RESERVE_BYTES))
        except OSError:  # already full: whatever was written still helps
            pass

    def release_reserve(self) -> None:
        self.reserve.unlink(missing_ok=True)

    @property
    def owner(self) -> int:
        """This process's pid: every write names it, and the store refuses the writes of a
        process whose run was given to another one (:class:`gca_viz.runs.NotOwner`)."""
        return os.getpid()

    def _heartbeat_loop(self) -> None:
        while not self._beating.wait(2.0):
            try:
                self.store.beat(self.run_id, owner=self.owner)
            except NotOwner as exc:  # the training thread stops at its next step
                self._lost = exc
                return
            except StoreError:  # busy or full for now: the next beat tries again
                pass

    def on_start(self, trainer: Trainer) -> None:
        with self.store._db(write=True) as db:
            (pid,) = db.execute("SELECT pid FROM runs WHERE id=?", (self.run_id,)).fetchone()
            if pid not in (None, self.owner):  # (a late process: the run went to another)
                raise NotOwner(f"run {self.run_id} is now trained by process {pid}")
            db.execute(
                "UPDATE runs SET status='running', pid=?, heartbeat=?, "
                "started=COALESCE(started, ?), device=? WHERE id=?",
                (os.getpid(), time.time(), time.time(), device_name(trainer.device), self.run_id),
            )
            # Changes the checkpoint does not contain (applied after it was written) are
            # pending again, so the resumed run applies them at its next step.
            applied = db.execute(
                "SELECT id FROM changes WHERE run_id=? AND applied_step IS NOT NULL ORDER BY id",
                (self.run_id,),
            ).fetchall()
            for (change_id,) in applied[len(trainer.changes) :]:
                db.execute("UPDATE changes SET applied_step=NULL WHERE id=?", (change_id,))
            # Steps after the checkpoint we resume from are redone: drop their old records.
            for table in ("metrics", "snapshots"):
                db.execute(
                    f"DELETE FROM {table} WHERE run_id=? AND step>?", (self.run_id, trainer.step)
                )
        threading.Thread(target=self._heartbeat_loop, daemon=True).start()

    def _flush(self, trainer: Trainer, force: bool = False) -> None:
        """Write buffered metrics and the heartbeat (at most every ``flush_every`` s)."""
        now = time.time()
        if not force and now - self._last_flush < self.flush_every:
            return
        self._last_flush = now
        self.store.write_metrics(self.run_id, self._pending, trainer.step, owner=self.owner)
        self._pending = []

    def _poll(self, trainer: Trainer) -> None:
        """Before every step: honour a stop request and apply pending live changes, each
        recorded with ``trainer.step`` (the number of steps done; the change shapes the
        next one)."""
        if self._lost is not None:
            raise self._lost
        stop, pending = self.store.requests(self.run_id)
        self._stop = self._stop or stop
        for change_id, params in pending:
            trainer.apply_changes(params)  # validated when it was requested
            self.store.mark_applied(change_id, trainer.step, self.run_id, owner=self.owner)

    def _record(self, trainer: Trainer, logs: Mapping[str, float]) -> None:
        self._pending += [(self.run_id, trainer.step, k, float(v)) for k, v in logs.items()]

    def on_step(self, trainer: Trainer, logs: dict[str, float]) -> None:
        self._record(trainer, logs)
        self._flush(trainer)

    def on_eval(self, trainer: Trainer, logs: dict[str, float]) -> None:
        self._record(trainer, logs)
        self._flush(trainer, force=True)

    def on_snapshot(self, trainer: Trainer, kind: str, arrays: dict[str, np.ndarray]) -> None:
        self.store.write_snapshot(self.run_id, trainer.step, kind, arrays, owner=self.owner)

    def on_checkpoint(self, trainer: Trainer, state: dict[str, Any]) -> None:
        # The metrics of every step up to the checkpoint go in first: a run killed after
        # the checkpoint resumes at the step after it and would never record them again.
        self._flush(trainer, force=True)  # (checks that the run is still this process's)
        try:
            trainer.save_checkpoint(self.dir / "checkpoint.pt")
        finally:  # a failed save (a full disk) leaves the old checkpoint and no partial one
            (self.dir / "checkpoint.pt.tmp").unlink(missing_ok=True)

    def should_stop(self, trainer: Trainer) -> bool:
        self._poll(trainer)
        return self._stop

    def request_stop(self) -> None:
        self._stop = True

    def on_end(self, trainer: Trainer, reason: str) -> None:
        self._flush(trainer, force=True)
        self.finish("finished" if reason == "finished" else "stopped", step=trainer.step)

    def finish(self, status: str, step: int | None = None, error: str | None = None) -> None:
        self._beating.set()
        self.release_reserve()
        self.store.end(self.run_id, status, step, error, owner=self.owner)


def open_run(data_dir: str | Path, run_id: int) -> RunStore:
    """The store a run process trains in, checked before anything is written to it: the
    store exists, holds run ``run_id``, the app queued or started that run (a finished run,
    or a training loop recorded with :class:`gca_viz.watch.Recorder`, is not trained here)
    and no other live process trains it.

    Raises:
        ValueError: naming ``--store`` or ``--run-id``; the store is left as it was.
    """
    where = Path(data_dir).expanduser()
    if not (where / "runs.db").is_file():
        raise ValueError(f"--store: {where} is not a run store (it holds no runs.db)")
    store = RunStore(where)
    try:
        info = store.get(run_id)
    except ValueError:
        store.close()
        raise ValueError(f"--run-id: the store {where} has no run {run_id}") from None
    problem = ""
    if info.external:
        problem = _NOT_OURS.format(run_id=run_id, what="trained")
    elif info.status not in ACTIVE:
        problem = (
            f"run {run_id} is {info.status}: the app starts a run's process itself; to go on "
            "training it, resume it on the Train page (or RunStore.resume)"
        )
    elif info.pid and info.pid != os.getpid() and alive(info.pid):
        problem = f"run {run_id} is already training in process {info.pid}"
    if problem:
        store.close()
        raise ValueError(f"--run-id {run_id}: {problem}")
    return store


def run_in_store(data_dir: str | Path, run_id: int, resume: bool, threads: int = 0) -> int:
    """Body of a run process (``python -m gca_viz train --store DIR --run-id N``); the
    store and the run are checked first (:func:`open_run`)."""
    store = open_run(data_dir, run_id)
    info = store.get(run_id)
    writer = StoreWriter(store, run_id)
    if _signals.received:  # stop requested while the process was starting
        writer.request_stop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: writer.request_stop())
    with store._db(write=True) as db:  # from now on a SIGTERM is handled, not fatal
        db.execute(  # (not for a run that went to another process meanwhile)
            "UPDATE runs SET ready=1 WHERE id=? AND (pid IS NULL OR pid=?)", (run_id, os.getpid())
        )
    try:
        cfg = TrainConfig.from_dict({**info.config, **({"threads": threads} if threads else {})})
        trainer = Trainer(cfg, [writer])
        ckpt = store.run_dir(run_id) / "checkpoint.pt"
        if resume and ckpt.exists():
            trainer.load_checkpoint(ckpt)
        trainer.fit()
    except NotOwner as exc:  # resumed elsewhere while this process was silent: leave it be
        writer._beating.set()
        print(f"stopping without writing: {exc}", file=sys.stderr)
        return 0
    except BaseException as exc:
        free = free_bytes(store.run_dir(run_id))
        writer.release_reserve()  # first: on a full disk, this is the room to record why
        summary = describe_failure(exc, store.run_dir(run_id), free)
        try:
            writer.finish(
                "failed", error=traceback.format_exc() + (f"\n{summary}" if summary else "")
            )
        except NotOwner:  # (the run is another process's now: its record stays)
            return 1
        try:
            store.schedule()
        except StoreError:  # the failure is recorded; the next launch or page schedules
            pass
        return 1
    store.schedule()  # a slot is free: start the next queued run
    return 0


def describe_failure(exc: BaseException, where: Path, free: int | None) -> str:
    """One line saying why a run failed, for the end of its error text (the line the Train
    page shows): a fault of the storage is named as such, whatever raised it (torch reports
    a full disk as a ``RuntimeError``); anything else is left to the traceback. ``free`` is
    the space the disk had left when the run failed (``None`` if unknown)."""
    if isinstance(exc, OSError) and exc.errno == errno.EFBIG:
        return (
            f"The run could not write to {where}: a file would pass this process's file-size "
            f"limit (ulimit -f) ({exc.strerror or exc})"
        )
    full = isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
    if full or (free is not None and free < RESERVE_BYTES // 4):
        left = f" ({free} bytes were free)" if free is not None else ""
        return (
            f"The run could not write to {where}: the disk is full{left}; free some space, "
            "then resume it"
        )
    if isinstance(exc, StoreError):
        return f"The run could not write to its store: {exc}"
    if isinstance(exc, OSError) and exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"The run could not write to {where}: {exc.strerror or exc}"
    return ""


def free_bytes(path: Path) -> int | None:
    try:
        return int(shutil.disk_usage(path).free)
    except OSError:
        return None
