"""Background runs: a SQLite run store and the processes that train in it (each runs
:func:`gca_viz.runner.run_in_store`).

A run is a separate OS process started with the same entry point as the command line,
``python -m gca_viz train --store DIR --run-id N``, in its own session, so a crash, a hang
or a kill of one run cannot take the app down, and runs outlive the app. The app talks to
runs only through the store, a directory holding:

* ``runs.db``: an SQLite database in WAL mode (readers never block the writer and never see
  a partial transaction) with tables ``runs`` (config, status, pid, heartbeat, timestamps,
  error text, the device it trains on), ``metrics`` (run, step, name, value), ``snapshots``
  (run, step, kind, file) and ``changes`` (live control requests and the step each took
  effect at);
* ``run-<id>/``: the run's ``checkpoint.pt``, ``log.txt`` and ``snapshots/*.npz`` (written
  to a temporary name and renamed, so a reader sees a whole file or none).

Faults: a store the process cannot write (a full disk, a read-only file system, a database
locked past the busy timeout) raises :class:`StoreError`, a ``ValueError`` naming the
store and the problem. A run that cannot write its metrics, snapshots or checkpoint fails,
and its error says why: each run keeps a small reserve file (:data:`RESERVE_BYTES`) that
it deletes to make room for that last record on a full disk. Every :class:`RunStore` keeps
one idle connection open, so SQLite's shared-memory file stays in place and the store can
still be read when the disk fills up.

Status is one of ``queued``, ``running``, ``finished``, ``stopped``, ``failed``,
``interrupted``. A dead pid or a stale heartbeat turns ``running`` into ``interrupted``
(:meth:`RunStore.reconcile`); stopped, interrupted and failed runs can resume from their
last checkpoint. At most ``max_concurrent`` runs train at once; the rest wait in the queue.
A run process owns its run: its writes name its pid, so one that was only silent (suspended)
takes an interrupted run back when it wakes, and one whose run was resumed by another
process writes nothing more (:class:`NotOwner`).
"""

from __future__ import annotations

import csv
import dataclasses
import filecmp
import hashlib
import io
import json
import math
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gca_viz import losses
from gca_viz._processes import last_error_line, run_alive, trains
from gca_viz.data import DATASETS, loaded_params
from gca_viz.device import KEEP_FREED_MEMORY_ENV
from gca_viz.train import (
    LIVE_PARAMS,
    ConfigError,
    TrainConfig,
    _rebuild_loss,
    build_loss,
    copy_config,
)
from gca_viz.userdata import UPLOADS, data_label

DATA_DIR_ENV = "GCA_RUNS_DIR"
"""Environment variable overriding the default data directory ``./runs``."""

RESERVE_BYTES = 1 << 20
"""Size of a run's reserve file (``run-<id>/.reserve``): deleted when the run ends, it makes
room to record the end, or the error, on a disk that filled up."""

_NOT_OURS = (
    "run {run_id} is an external run (a training loop of its own, recorded with "
    "gca_viz.watch.Recorder): it cannot be {what} from here; run its script again"
)

STATUSES = ("queued", "running", "finished", "stopped", "failed", "interrupted")
ACTIVE = ("queued", "running")
RESUMABLE = ("stopped", "interrupted", "failed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    config TEXT NOT NULL,
    status TEXT NOT NULL,
    pid INTEGER,
    heartbeat REAL,
    created REAL NOT NULL,
    started REAL,
    ended REAL,
    step INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    stop_requested INTEGER NOT NULL DEFAULT 0,
    ready INTEGER NOT NULL DEFAULT 0,
    resume INTEGER NOT NULL DEFAULT 0,
    parent INTEGER,
    device TEXT,
    external INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id INTEGER NOT NULL, step INTEGER NOT NULL, name TEXT NOT NULL, value REAL
);
CREATE INDEX IF NOT EXISTS metrics_run ON metrics (run_id, name, step);
CREATE TABLE IF NOT EXISTS snapshots (
    run_id INTEGER NOT NULL, step INTEGER NOT NULL, kind TEXT NOT NULL, file TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS snapshots_run ON snapshots (run_id, kind, step);
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER NOT NULL,
    requested REAL NOT NULL,
    params TEXT NOT NULL,
    applied_step INTEGER
);
CREATE TABLE IF NOT EXISTS events (
    run_id INTEGER NOT NULL, step INTEGER, time REAL NOT NULL, level TEXT NOT NULL,
    message TEXT NOT NULL
);
"""


FROM_BATCH = "from_batch"
"""The key of an embedding snapshot made of the step's training batch (the first rows of
``z1``, their partners ``z2``) because the loop gave :class:`gca_viz.watch.Recorder` no
``eval_batch``: other samples at every step, where an eval batch (and an app run's held-out
samples) are the same ones."""


class StoreError(ValueError):
    """The run store cannot be read or written: a full disk, a read-only file system, a
    database locked by another process for longer than the busy timeout, a missing or
    damaged database file. A ``ValueError``, so the pages show it as an error message."""


class NotOwner(StoreError):
    """A run process wrote to a run that is no longer its own: the store gave the run to
    another process (resumed after this one was marked ``interrupted``), or it ended. The
    process stops without writing anything more."""


# SQLite's messages for faults of the storage, not of the query, and what they mean here.
_STORAGE_FAULTS = (
    ("locked", "the database is locked by another process (busy for {timeout:g} s)"),
    ("busy", "the database is locked by another process (busy for {timeout:g} s)"),
    ("full", "the disk is full"),
    ("readonly", "the database is read-only (a read-only file system or file)"),
    ("read-only", "the database is read-only (a read-only file system or file)"),
    ("disk i/o error", "a disk I/O error (a full disk, or the database files are damaged)"),
    ("unable to open", "the database file cannot be opened"),
    ("malformed", "the database file is damaged"),
    ("not a database", "the file is not an SQLite database"),
)


def default_data_dir() -> Path:
    """``$GCA_RUNS_DIR`` if set, else ``./runs``."""
    return Path(os.environ.get(DATA_DIR_ENV) or "runs")


def default_max_concurrent() -> int:
    """Half the cores (at least 1): each run then gets two threads or more."""
    return max(1, (os.cpu_count() or 1) // 2)


@dataclass(frozen=True)
class RunInfo:
    """One row of the ``runs`` table, with the config parsed."""

    id: int
    name: str
    config: dict[str, Any]
    status: str
    pid: int | None
    heartbeat: float | None
    created: float
    started: float | None
    ended: float | None
    step: int
    error: str | None
    parent: int | None
    device: str | None = None
    """The torch device the run process trains on (``"cpu"``, ``"cuda:0"``), recorded when
    it starts; ``None`` before that and for imported runs."""
    external: bool = False
    """Whether the run is a training loop of its own that a :class:`gca_viz.watch.Recorder`
    streams into the store (:meth:`RunStore.register_external`): the app did not start it,
    cannot resume or duplicate it, and a stop is only a request the loop reads."""

    @property
    def steps(self) -> int:
        return int(self.config.get("steps", 0))

    silent: bool = False
    """Whether the run is ``interrupted`` while its process still lives, silent (suspended,
    as on a laptop's sleep): it takes the run back when it answers (see
    :meth:`RunStore.check_owner`), and a resume replaces it."""

    @property
    def live(self) -> bool:
        """Whether the run may still change: queued or running, or :attr:`silent`. Pages
        keep polling such a run."""
        return self.status in ACTIVE or self.silent

    @property
    def progress(self) -> float:
        return min(1.0, self.step / self.steps) if self.steps else 0.0

    def label(self, status: bool = False, step: bool = False) -> str:
        """``#id name``, the run's name in every chooser and title; with ``status``, its
        status in brackets unless it finished (``#4 name (running)``: its snapshots and
        checkpoint still change), and with ``step`` too the step it reached (``#4 name
        (running, step 120)``). A chooser's text stays short enough for its box at 1093 px."""
        label = f"#{self.id} {self.name}"
        if not status or self.status == "finished":
            return label
        return f"{label} ({self.status}, step {self.step})" if step else f"{label} ({self.status})"

    COMPARED_ON = ("dataset", "dataset_params", "batch_size", "layout")
    """The config fields two runs share to be drawn on one chart (see :meth:`comparable`)."""

    def comparable(self, other: RunInfo) -> bool:
        """Whether ``other``'s curves mean the same as this run's on one chart: the same data
        (dataset and its parameters), batch size and layout (:data:`COMPARED_ON`). The loss
        of a batch of ``N`` pairs starts near ``log(2N - 1)`` (joint layout) or ``log N``
        (cross), and accuracies on other data are other numbers: a run on a user's file next
        to a demo run on the digits read as a gap that means nothing. Compared by
        :meth:`differences` (a field neither config has counts as equal: a
        :class:`gca_viz.watch.Recorder` run has its own config)."""
        return not self.differences(other)

    def differences(self, other: RunInfo) -> dict[str, tuple[Any, Any]]:
        """The :data:`COMPARED_ON` fields in which ``other``'s config differs from this
        run's, each with ``(this run's value, other's value)``, compared by what they mean
        (an embedded dataset's parameters with their defaults: the form stores them all,
        the command line none); a field neither config has counts as equal, one that only
        one has (a :class:`gca_viz.watch.Recorder` run's own config) as a difference, with
        ``None`` for the missing value. Empty when comparable."""
        out = {}
        for k in self.COMPARED_ON:
            mine, theirs = self._meaning(k), other._meaning(k)
            if mine != theirs:
                out[k] = (mine, theirs)
        return out

    def _meaning(self, field: str) -> Any:
        value = self.config.get(field)
        if field == "dataset_params" and isinstance(value, dict):
            return loaded_params(str(self.config.get("dataset")), value)
        return value


class RunStore:
    """The run store in ``data_dir`` (created if missing); safe to open from many processes.

    Args:
        data_dir: the directory (default :func:`default_data_dir`).
        max_concurrent: runs allowed to train at once; saved in the store, so every process
            that opens it obeys the same limit (default: the saved value, else
            :func:`default_max_concurrent`).
        heartbeat_timeout: seconds without a heartbeat after which a run counts as dead.
    """

    def __init__(
        self,
        data_dir: str | Path | None = None,
        *,
        max_concurrent: int | None = None,
        heartbeat_timeout: float = 30.0,
        busy_timeout: float = 30.0,
    ) -> None:
        self.dir = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
        if self.dir.exists() and not self.dir.is_dir():  # (mkdir said "File exists")
            raise NotADirectoryError(f"the run store {self.dir} is a file, not a folder")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.db_path = self.dir / "runs.db"
        if max_concurrent is not None and max_concurrent < 1:
            raise ValueError(f"max_concurrent must be >= 1, got {max_concurrent}")
        if not busy_timeout >= 0:
            raise ValueError(f"busy_timeout must be >= 0 seconds, got {busy_timeout}")
        self.heartbeat_timeout = heartbeat_timeout
        self.busy_timeout = float(busy_timeout)
        with self._db() as db:
            db.executescript(_SCHEMA)
        with self._db(write=True) as db:
            columns = {r["name"] for r in db.execute("PRAGMA table_info(runs)")}
            if "device" not in columns:  # a store made before runs recorded their device
                db.execute("ALTER TABLE runs ADD COLUMN device TEXT")
            if "external" not in columns:  # a store made before external runs
                db.execute("ALTER TABLE runs ADD COLUMN external INTEGER NOT NULL DEFAULT 0")
            # The limit is the store's, not the process's: an explicit value is saved, and
            # every process that opens the store (a run scheduling its successor) obeys it.
            if max_concurrent is not None:
                db.execute(
                    "INSERT OR REPLACE INTO settings VALUES ('max_concurrent', ?)",
                    (str(int(max_concurrent)),),
                )
            row = db.execute("SELECT value FROM settings WHERE key='max_concurrent'").fetchone()
        self.max_concurrent = int(row[0]) if row else default_max_concurrent()
        # An idle connection for the life of this object: while one is open, SQLite keeps
        # runs.db-shm (and the WAL's space), which every reader needs; the last connection
        # to close deletes them, and on a full disk they could not be made again.
        self._keeper = sqlite3.connect(self.db_path, check_same_thread=False)
        self._keeper.execute("SELECT COUNT(*) FROM settings").fetchone()

    def close(self) -> None:
        """Close the idle connection this object holds (to unmount the store's disk, say);
        the object still works, opening a connection per call as before."""
        self._keeper.close()

    # ------------------------------------------------------------------ plumbing

    @contextmanager
    def _db(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        """A connection; with ``write=True`` an immediate transaction (one writer at once).

        Raises:
            StoreError: when SQLite reports a fault of the storage (see the module notes).
        """
        try:
            db = sqlite3.connect(self.db_path, timeout=self.busy_timeout, isolation_level=None)
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.row_factory = sqlite3.Row
                if write:
                    db.execute("BEGIN IMMEDIATE")
                    try:
                        yield db
                    except BaseException:
                        if db.in_transaction:  # SQLite may have rolled back by itself
                            db.execute("ROLLBACK")
                        raise
                    db.execute("COMMIT")
                else:
                    yield db
            finally:
                db.close()
        except sqlite3.Error as exc:
            error = self._storage_error(exc)
            if error is None:  # a fault of the query, not of the storage
                raise
            raise error from exc

    def _storage_error(self, exc: sqlite3.Error) -> StoreError | None:
        """A :class:`StoreError` for a fault of the storage, else ``None``."""
        text = str(exc).lower()
        for needle, meaning in _STORAGE_FAULTS:
            if needle in text:
                why = meaning.format(timeout=self.busy_timeout)
                return StoreError(f"run store {self.dir}: {why} (SQLite: {exc})")
        return None

    def run_dir(self, run_id: int) -> Path:
        return self.dir / f"run-{int(run_id)}"

    # ---------------------------------------------------------------- launching

    def launch(
        self,
        config: TrainConfig | Mapping[str, Any],
        name: str | None = None,
        parent: int | None = None,
    ) -> int:
        """Validate ``config``, queue the run and start it if a slot is free; return its id.

        Raises:
            ValueError: naming the field, for an invalid config (no process starts).
        """
        cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config)
        cfg.validate()
        name = name or _default_name(cfg)
        with self._db(write=True) as db:
            cur = db.execute(
                "INSERT INTO runs (name, config, status, created, parent) VALUES (?, ?, ?, ?, ?)",
                (name, cfg.to_json(), "queued", time.time(), parent),
            )
            run_id = int(cur.lastrowid or 0)
        self.run_dir(run_id).mkdir(parents=True, exist_ok=True)
        self.schedule()
        return run_id

    def schedule(self) -> list[int]:
        """Start queued runs (oldest first) while fewer than ``max_concurrent`` run (external
        runs train on their own resources and take no slot)."""
        self.reconcile()
        started = []
        with self._db(write=True) as db:
            running = db.execute(
                "SELECT COUNT(*) FROM runs WHERE status='running' AND external=0"
            ).fetchone()[0]
            free = self.max_concurrent - running
            rows = db.execute(
                "SELECT id, resume FROM runs WHERE status='queued' ORDER BY id LIMIT ?",
                (max(free, 0),),
            ).fetchall()
            for row in rows:
                pid = self._spawn(int(row["id"]), bool(row["resume"]))
                db.execute(
                    "UPDATE runs SET status='running', pid=?, heartbeat=?, "
                    "started=COALESCE(started, ?), ended=NULL, error=NULL, ready=0 WHERE id=?",
                    (pid, time.time(), time.time(), row["id"]),
                )
                started.append(int(row["id"]))
        return started

    @property
    def _process_dir(self) -> str:
        """The store's folder as its run processes are given it (``--store``): what
        :func:`gca_viz._processes.trains` looks for in a process's command line."""
        return str(self.dir.resolve())

    def _spawn(self, run_id: int, resume: bool) -> int:
        """Start ``python -m gca_viz train`` for the run in its own session."""
        threads = max(1, (os.cpu_count() or 1) // self.max_concurrent)
        cmd = [sys.executable, "-m", "gca_viz", "train", "--store", self._process_dir,
               "--run-id", str(run_id), "--threads", str(threads)]  # fmt: skip
        if resume:
            cmd.append("--resume")
        env = {**KEEP_FREED_MEMORY_ENV, **os.environ}  # (the user's own settings win)
        env.update(OMP_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")
        log = open(self.run_dir(run_id) / "log.txt", "ab")
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
            cwd=Path(__file__).resolve().parents[1],
        )
        log.close()
        threading.Thread(target=proc.wait, daemon=True).start()  # reap it: no zombie
        return int(proc.pid)

    def reconcile(self) -> list[int]:
        """Mark ``running`` runs whose process is gone or silent as ``interrupted``.

        An external run's pid is checked only on the machine it runs on (its config's
        ``recorder.host``), and any live process counts (it runs the user's script, not
        gca_viz); elsewhere its heartbeat alone tells.

        Pages call this before they read; when the store cannot be written (a full disk, a
        lock held too long) nothing is marked, an empty list is returned and the next call
        tries again."""
        lost = []
        now = time.time()
        try:
            with self._db(write=True) as db:
                rows = db.execute(
                    "SELECT id, pid, heartbeat, external, config FROM runs WHERE status='running'"
                )
                for row in rows:
                    beat = row["heartbeat"]
                    stale = beat is None or now - beat > self.heartbeat_timeout
                    if stale or not run_alive(row["pid"], row["external"], row["config"]):
                        lost.append(int(row["id"]))
                for run_id in lost:
                    why = "the run process died or stopped responding"
                    last = last_error_line(self.run_dir(run_id) / "log.txt")
                    db.execute(
                        "UPDATE runs SET status='interrupted', ended=?, error=? WHERE id=?",
                        (now, f"{why}; its log ends with: {last}" if last else why, run_id),
                    )
        except StoreError:
            return []
        return lost

    # ------------------------------------------------------------------ control

    def stop(self, run_id: int) -> None:
        """Ask a run to stop: it finishes its step, checkpoints and becomes ``stopped``
        (within about a step); a queued run is stopped at once. An external run is only
        asked (its :attr:`gca_viz.watch.Recorder.should_stop` turns true): no signal is sent
        to a process the app did not start."""
        with self._db(write=True) as db:
            row = self._row(db, run_id)
            if row["status"] == "queued":
                db.execute(
                    "UPDATE runs SET status='stopped', ended=? WHERE id=?", (time.time(), run_id)
                )
                return
            db.execute("UPDATE runs SET stop_requested=1 WHERE id=?", (run_id,))
        # A process that has not installed its handler yet would die of SIGTERM; it reads
        # the flag above before its first step instead.
        if row["status"] == "running" and row["pid"] and row["ready"] and not row["external"]:
            try:
                os.kill(int(row["pid"]), signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass

    def resume(self, run_id: int) -> None:
        """Queue a stopped, interrupted or failed run to continue from its checkpoint.

        An interrupted run's process may still live, silent (suspended, stopped): it is
        killed first, and in any case the store no longer takes its writes (it is not the
        run's owner any more, see :class:`NotOwner`), so one process trains the run."""
        with self._db(write=True) as db:
            row = self._row(db, run_id)
            if row["external"]:
                raise ValueError(_NOT_OURS.format(run_id=run_id, what="resumed"))
            if row["status"] not in RESUMABLE:
                raise ValueError(f"run {run_id} is {row['status']}; only {RESUMABLE} can resume")
            db.execute(
                "UPDATE runs SET status='queued', stop_requested=0, resume=1, error=NULL "
                "WHERE id=?",
                (run_id,),
            )
        old = row["pid"]
        if row["status"] == "interrupted" and trains(old, self._process_dir, run_id):
            try:  # (SIGKILL: a stopped process does not act on SIGTERM until it continues)
                os.kill(int(old), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            deadline = time.monotonic() + 5.0  # gone before the new one checks for it
            while time.monotonic() < deadline and trains(old, self._process_dir, run_id):
                time.sleep(0.05)
        self.schedule()

    def duplicate(self, run_id: int, **changes: Any) -> int:
        """Launch a new run with this run's config and ``changes`` applied (validated)."""
        info = self.get(run_id)
        if info.external:
            raise ValueError(_NOT_OURS.format(run_id=run_id, what="duplicated"))
        old = TrainConfig.from_dict(info.config)
        cfg = copy_config(old, **changes)
        name = info.name
        while name.endswith(" (copy)"):
            name = name.removesuffix(" (copy)")
        # A name the store gave ("GCA-INCE on mine.npz"; an older store's "gca_ince on ...")
        # names the copy's own method and data: a copy with method gca_uot was called
        # "gca_ince on mine.npz (copy)".
        given = (_default_name(old), f"{old.method} on {data_label(old.dataset)}")
        name = _default_name(cfg) if name in given else name
        return self.launch(cfg, name=f"{name} (copy)", parent=run_id)

    def delete(self, run_id: int) -> None:
        """Remove a run that is not active, with its metrics, snapshots and files, and its
        uploaded data (a file in this store's uploads) when no other run uses it."""
        info = self.get(run_id)
        if info.status in ACTIVE:
            raise ValueError(f"run {run_id} is {info.status}; stop it before deleting it")
        sole = self.sole_upload(run_id)
        with self._db(write=True) as db:
            for table, key in (("metrics", "run_id"), ("snapshots", "run_id"),
                               ("changes", "run_id"), ("events", "run_id"),
                               ("runs", "id")):  # fmt: skip
                db.execute(f"DELETE FROM {table} WHERE {key}=?", (run_id,))
        shutil.rmtree(self.run_dir(run_id), ignore_errors=True)
        if sole is not None:  # (uploads piled up, with no way to remove them from the app)
            sole.unlink(missing_ok=True)

    def sole_upload(self, run_id: int) -> Path | None:
        """The run's data when it is a file of this store's uploads that no other run uses
        (what :meth:`delete` removes with the run), else ``None``."""
        dataset = self.get(run_id).config.get("dataset")
        path = _user_path(dataset)
        try:
            if path is None or path.parent.resolve() != (self.dir / UPLOADS).resolve():
                return None
            if not path.is_file():
                return None
        except (OSError, ValueError):
            return None
        others = (r for r in self.list_runs() if r.id != run_id)
        return None if any(r.config.get("dataset") == dataset for r in others) else path

    def request_change(self, run_id: int, changes: Mapping[str, Any]) -> int:
        """Queue a live change (``epsilon``, ``n_iter``, relaxations, target prior) for a
        running run; it is validated here, applied at the run's next step and recorded.

        Raises:
            ValueError: for a run that is not running or an invalid change.
        """
        info = self.get(run_id)
        if info.status != "running":
            raise ValueError(f"run {run_id} is {info.status}; live changes need a running run")
        _validate_change(info, self.applied_changes(run_id), changes)
        with self._db(write=True) as db:
            cur = db.execute(
                "INSERT INTO changes (run_id, requested, params) VALUES (?, ?, ?)",
                (run_id, time.time(), json.dumps(dict(changes))),
            )
            return int(cur.lastrowid or 0)

    # ------------------------------------------------------------ external runs

    def register_external(
        self, name: str, config: Mapping[str, Any], *, pid: int, device: str | None = None
    ) -> int:
        """Add a run that a training loop of its own records into the store
        (:class:`gca_viz.watch.Recorder`): ``running`` now, with ``pid`` and a heartbeat;
        ``config`` is stored as given (JSON). Returns its id."""
        now = time.time()
        with self._db(write=True) as db:
            cur = db.execute(
                "INSERT INTO runs (name, config, status, pid, heartbeat, created, started, "
                "ready, device, external) VALUES (?, ?, 'running', ?, ?, ?, ?, 1, ?, 1)",
                (name, json.dumps(dict(config), sort_keys=True), int(pid), now, now, now, device),
            )
            run_id = int(cur.lastrowid or 0)
        (self.run_dir(run_id) / "snapshots").mkdir(parents=True, exist_ok=True)
        return run_id

    def add_event(self, run_id: int, level: str, message: str, step: int | None = None) -> None:
        """Record a note about a run (``level`` ``info`` or ``warning``): a bad input an
        external run's recorder skipped, a store it could not write for a while."""
        with self._db(write=True) as db:
            _insert_event(db, run_id, step, level, message)

    # ------------------------------------------------- writing (by the run's process)

    def _own(self, db: sqlite3.Connection, run_id: int, owner: int | None) -> None:
        """In a write's transaction, with ``owner`` (the writing process's pid): check that
        the run is still that process's, or raise :class:`NotOwner`. A run the store marked
        ``interrupted`` (its process was silent: a suspended laptop, a stopped process) and
        gave to no one else is ``running`` again, with a note: the process came back. Without
        ``owner`` (a recorded loop's :class:`gca_viz.watch.Recorder`, the only writer of its
        run), an interrupted external run is ``running`` again."""
        if owner is None:  # (a recorded loop's writes: the loop is its run's only writer)
            db.execute(
                "UPDATE runs SET status='running', ended=NULL, error=NULL "
                "WHERE id=? AND external=1 AND status='interrupted'",
                (run_id,),
            )
            return
        row = db.execute("SELECT pid, status, step FROM runs WHERE id=?", (run_id,)).fetchone()
        if row is None or row["pid"] != owner or row["status"] not in ("running", "interrupted"):
            now = "deleted" if row is None else f"{row['status']}, process {row['pid']}"
            raise NotOwner(f"run {run_id} is no longer trained by process {owner} (now {now})")
        if row["status"] == "interrupted":
            db.execute(
                "UPDATE runs SET status='running', ended=NULL, error=NULL, heartbeat=? WHERE id=?",
                (time.time(), run_id),
            )
            _insert_event(
                db,
                run_id,
                row["step"],
                "warning",
                "the run process answered again after it was marked interrupted (it was "
                "suspended or too busy to send its heartbeat): training goes on",
            )

    def beat(self, run_id: int, owner: int | None = None) -> None:
        """Refresh the run's heartbeat (``owner``: the run process's pid, see :meth:`_own`)."""
        with self._db(write=True) as db:
            self._own(db, run_id, owner)
            db.execute("UPDATE runs SET heartbeat=? WHERE id=?", (time.time(), run_id))

    def write_metrics(
        self,
        run_id: int,
        rows: list[tuple[int, int, str, float]],
        step: int,
        owner: int | None = None,
    ) -> None:
        """Insert ``(run_id, step, name, value)`` rows; set the run's step and heartbeat
        (``owner``: the run process's pid, see :meth:`_own`)."""
        with self._db(write=True) as db:
            self._own(db, run_id, owner)
            db.executemany(
                "INSERT INTO metrics (run_id, step, name, value) VALUES (?, ?, ?, ?)", rows
            )
            db.execute(
                "UPDATE runs SET heartbeat=?, step=? WHERE id=?", (time.time(), step, run_id)
            )

    def write_snapshot(
        self,
        run_id: int,
        step: int,
        kind: str,
        arrays: Mapping[str, np.ndarray],
        owner: int | None = None,
    ) -> None:
        """Write ``run-<id>/snapshots/<step>_<kind>.npz`` (atomically) and record it
        (``owner``: the run process's pid, see :meth:`_own`)."""
        rel = Path(self.run_dir(run_id).name) / "snapshots" / f"{step:07d}_{kind}.npz"
        if owner is not None:
            self.check_owner(run_id, owner)  # (before the file: a new owner may write it)
        _write_npz(self.dir / rel, arrays)
        with self._db(write=True) as db:
            self._own(db, run_id, owner)
            db.execute(
                "INSERT INTO snapshots (run_id, step, kind, file) VALUES (?, ?, ?, ?)",
                (run_id, step, kind, str(rel)),
            )

    def requests(self, run_id: int) -> tuple[bool, list[tuple[int, dict[str, Any]]]]:
        """Whether a stop was requested, and the pending live changes ``(id, params)`` in
        the order they were requested."""
        with self._db() as db:
            stop = bool(self._row(db, run_id)["stop_requested"])
            pending = db.execute(
                "SELECT id, params FROM changes WHERE run_id=? AND applied_step IS NULL "
                "ORDER BY id",
                (run_id,),
            ).fetchall()
        return stop, [(int(i), json.loads(params)) for i, params in pending]

    def mark_applied(
        self, change_id: int, step: int, run_id: int | None = None, owner: int | None = None
    ) -> None:
        """Record the step a live change took effect at (``owner``: the pid of the process
        of run ``run_id``, see :meth:`_own`)."""
        with self._db(write=True) as db:
            if run_id is not None:
                self._own(db, run_id, owner)
            db.execute("UPDATE changes SET applied_step=? WHERE id=?", (step, change_id))

    def check_owner(self, run_id: int, owner: int) -> None:
        """Raise :class:`NotOwner` unless run ``run_id`` is still process ``owner``'s (see
        :meth:`_own`; a run marked interrupted that no one else took is running again)."""
        with self._db(write=True) as db:
            self._own(db, run_id, owner)

    def drop_change(self, change_id: int) -> None:
        """Forget a live change the run could not apply (it was never in effect)."""
        with self._db(write=True) as db:
            db.execute("DELETE FROM changes WHERE id=? AND applied_step IS NULL", (change_id,))

    def set_device(self, run_id: int, device: str) -> None:
        """Record the device the run trains on (``"cpu"``, ``"cuda:0"``)."""
        with self._db(write=True) as db:
            db.execute("UPDATE runs SET device=? WHERE id=?", (device, run_id))

    def end(
        self,
        run_id: int,
        status: str,
        step: int | None = None,
        error: str | None = None,
        owner: int | None = None,
    ) -> None:
        """Record that the run ended with ``status`` (and ``error``) at ``step`` (``owner``:
        the run process's pid, see :meth:`_own`)."""
        with self._db(write=True) as db:
            self._own(db, run_id, owner)
            db.execute(
                "UPDATE runs SET status=?, ended=?, error=?, heartbeat=?, "
                "step=COALESCE(?, step), stop_requested=0, resume=0 WHERE id=?",
                (status, time.time(), error, time.time(), step, run_id),
            )

    def events(self, run_id: int) -> list[dict[str, Any]]:
        """The run's notes, oldest first: ``{"step", "time", "level", "message"}`` each."""
        with self._db() as db:
            rows = db.execute(
                "SELECT step, time, level, message FROM events WHERE run_id=? ORDER BY rowid",
                (run_id,),
            ).fetchall()
        return [dict(r) for r in rows]

    # ------------------------------------------------------------------ reading

    @staticmethod
    def _row(db: sqlite3.Connection, run_id: int) -> sqlite3.Row:
        row: sqlite3.Row | None = db.execute(
            "SELECT * FROM runs WHERE id=?", (int(run_id),)
        ).fetchone()
        if row is None:
            raise ValueError(f"no run with id {run_id}")
        return row

    def _info(self, row: sqlite3.Row) -> RunInfo:
        fields = {f.name for f in dataclasses.fields(RunInfo)}
        values = {k: row[k] for k in row.keys() if k in fields}
        values["config"] = json.loads(values["config"])
        values["external"] = bool(values.get("external", 0))
        values["silent"] = (
            values["status"] == "interrupted"
            and not values["external"]
            and trains(values["pid"], self._process_dir, int(values["id"]))
        )
        return RunInfo(**values)

    def get(self, run_id: int) -> RunInfo:
        with self._db() as db:
            return self._info(self._row(db, run_id))

    def queued_ahead(self, run_id: int) -> int:
        """How many queued runs start before ``run_id`` (oldest first, :meth:`schedule`)."""
        with self._db() as db:
            row = db.execute(
                "SELECT COUNT(*) FROM runs WHERE status='queued' AND id < ?", (int(run_id),)
            ).fetchone()
        return int(row[0])

    def list_runs(self, status: str | None = None, method: str | None = None) -> list[RunInfo]:
        """All runs, newest first, optionally filtered by status and by method."""
        with self._db() as db:
            rows = db.execute("SELECT * FROM runs ORDER BY id DESC").fetchall()
        runs = [self._info(r) for r in rows]
        return [
            r for r in runs
            if (status is None or r.status == status)
            and (method is None or r.config.get("method") == method)
        ]  # fmt: skip

    def metrics(self, run_id: int, names: list[str] | None = None) -> dict[str, np.ndarray]:
        """``{name: (k, 2) array of (step, value)}`` in step order."""
        query, args = "SELECT name, step, value FROM metrics WHERE run_id=?", [str(run_id)]
        if names:
            query += f" AND name IN ({','.join('?' * len(names))})"
            args += names
        with self._db() as db:
            rows = db.execute(query + " ORDER BY name, step", args).fetchall()
        out: dict[str, list[tuple[int, float]]] = {}
        for name, step, value in rows:
            out.setdefault(name, []).append((step, _stored(value)))
        return {k: np.asarray(v, dtype=float).reshape(-1, 2) for k, v in out.items()}

    def latest_metrics(self, run_id: int) -> dict[str, tuple[int, float]]:
        """The last ``(step, value)`` of every metric of a run (NaN where the value was not
        finite: SQLite stores NaN as NULL)."""
        with self._db() as db:
            rows = db.execute(
                "SELECT name, MAX(step), value FROM metrics WHERE run_id=? GROUP BY name",
                (run_id,),
            ).fetchall()
        return {name: (int(step), _stored(value)) for name, step, value in rows}

    def snapshots(self, run_id: int, kind: str) -> list[tuple[int, Path]]:
        """``(step, path)`` of a run's snapshots of ``kind`` (``plan``, ``embeddings``)."""
        with self._db() as db:
            rows = db.execute(
                "SELECT step, file FROM snapshots WHERE run_id=? AND kind=? ORDER BY step",
                (run_id, kind),
            ).fetchall()
        return [(int(step), self.dir / file) for step, file in rows]

    def load_snapshot(self, path: Path) -> dict[str, np.ndarray] | None:
        """The arrays of a snapshot file, or ``None`` if it is missing or unreadable."""
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError, KeyError):
            return None
        except Exception:  # zipfile.BadZipFile and friends: a corrupt file is unavailable
            return None

    def applied_changes(self, run_id: int) -> list[dict[str, Any]]:
        """Live changes that took effect, each with the ``step`` it took effect at."""
        with self._db() as db:
            rows = db.execute(
                "SELECT applied_step, params FROM changes WHERE run_id=? AND applied_step "
                "IS NOT NULL ORDER BY id",
                (run_id,),
            ).fetchall()
        return [{"step": int(step), **json.loads(params)} for step, params in rows]

    def current_settings(self, run_id: int) -> tuple[str, dict[str, Any]]:
        """The run's target prior and loss parameters now: its config with the live changes
        that took effect applied in order.

        Raises:
            ValueError: for an unknown run or a config whose loss does not build.
        """
        info = self.get(run_id)
        target, params = str(info.config.get("target", "pairs")), dict(run_loss(info).params)
        for change in self.applied_changes(run_id):
            target = change.get("target", target)
            params.update({k: v for k, v in change.items() if k not in ("step", "target")})
        return target, params

    def import_directory(self, path: str | Path, name: str | None = None) -> int:
        """Add a run that ``python -m gca_viz train --out DIR`` wrote, or that :meth:`export`
        wrote (a folder, or the zip of one that :meth:`export_zip` makes: the app's "Run
        (zip)" download), as a finished (or stopped) run of this store: its config, metrics,
        snapshots, live changes (``changes.json``) and checkpoint are copied in. A run a
        :class:`gca_viz.watch.Recorder` recorded (its config has ``recorder``) comes back
        external, its config as it was. A run whose data file is not at its config's path
        takes the copy its export carried (:data:`DATA_FOLDER`, put in this store's
        uploads); without one it comes in to be looked at, with a note that it cannot be
        resumed. Returns the new run's id.

        Raises:
            ValueError: naming the file, if ``config.json`` or ``metrics.csv`` is missing or
                malformed, or the config is not a valid run config (but for a missing data
                file).
        """
        src = Path(path)
        if src.suffix.lower() == ".zip" and src.is_file():
            return self._import_zip(src, name)
        try:
            raw = json.loads((src / "config.json").read_text())
            if not isinstance(raw, dict):
                raise ValueError("config.json must hold a JSON object of fields")
            with open(src / "metrics.csv", newline="") as fh:
                rows = [(int(r["step"]), r["name"], float(r["value"])) for r in csv.DictReader(fh)]
            changes = _read_changes(src / CHANGES_FILE)
        except (OSError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f"{src}: not a run directory (from train --out or RunStore.export): {exc}"
            ) from None
        external = "recorder" in raw
        data_note, missing = "", False
        if external:
            config = json.dumps(raw, sort_keys=True)
        else:
            raw, data_note, missing = self._imported_data(src, raw)
            try:
                config = TrainConfig.from_dict(raw).to_json()
            except ConfigError as exc:
                if not missing or any(not p.startswith("dataset:") for p in exc.problems):
                    raise ValueError(
                        f"{src}: config.json is not a usable run config: {exc}"
                    ) from None
                config = json.dumps(raw, indent=2, sort_keys=True)  # the data is elsewhere
        events: list[dict[str, Any]] = []
        if (src / "events.jsonl").exists():
            events = [json.loads(line) for line in (src / "events.jsonl").read_text().splitlines()]
        last_step = rows[-1][0] if rows else 0
        last: dict[str, Any] = events[-1] if events else {"event": "finished", "step": last_step}
        status = "finished" if last.get("event") == "finished" else "stopped"
        now = time.time()
        with self._db(write=True) as db:
            cur = db.execute(
                "INSERT INTO runs (name, config, status, created, started, ended, step, "
                "external, device) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    name or _exported_name(src),
                    config,
                    status,
                    now,
                    now,
                    now,
                    int(last["step"]),
                    external,
                    # where it trained (train --out's start events and exports say; the
                    # status line read "device auto", the config's request)
                    next((str(e["device"]) for e in events if e.get("device")), None),
                ),
            )
            run_id = int(cur.lastrowid or 0)
            db.executemany(
                "INSERT INTO metrics (run_id, step, name, value) VALUES (?, ?, ?, ?)",
                [(run_id, *r) for r in rows],
            )
            db.executemany(
                "INSERT INTO changes (run_id, requested, params, applied_step) VALUES (?, ?, ?, ?)",
                [(run_id, now, json.dumps(c), step) for step, c in changes],
            )
            dest = self.run_dir(run_id)
            (dest / "snapshots").mkdir(parents=True, exist_ok=True)
            for snap in sorted((src / "snapshots").glob("*.npz")):
                step, kind = snap.stem.split("_", 1)
                shutil.copy(snap, dest / "snapshots" / snap.name)
                db.execute(
                    "INSERT INTO snapshots (run_id, step, kind, file) VALUES (?, ?, ?, ?)",
                    (run_id, int(step), kind, str(Path(dest.name) / "snapshots" / snap.name)),
                )
        if (src / "checkpoint.pt").exists():
            shutil.copy(src / "checkpoint.pt", dest / "checkpoint.pt")
        if data_note:
            self.add_event(run_id, "warning" if missing else "info", data_note)
        return run_id

    def _imported_data(self, src: Path, raw: dict[str, Any]) -> tuple[dict[str, Any], str, bool]:
        """An imported run's data file: where its config says when it exists there; else the
        copy an export put in the run folder (:data:`DATA_FOLDER`), placed in this store's
        uploads, the config pointed at it. Returns the config, a note for the run's events
        and whether the data is missing (the run can then be looked at, not resumed)."""
        dataset = raw.get("dataset")
        path = _user_path(dataset)
        if path is None:
            return raw, "", False
        try:
            if path.exists():
                return raw, "", False
        except (OSError, ValueError):  # a name the file system refuses
            pass
        shipped = src / DATA_FOLDER / path.name
        if not shipped.is_file():
            return (
                raw,
                f"Its data file {dataset} is not on this machine and did not come with the "
                "run: its metrics, snapshots and checkpoint are here, but it cannot be resumed "
                "or duplicated until the file is back at that path.",
                True,
            )
        dest = self.dir / UPLOADS / path.name
        if dest.exists() and not filecmp.cmp(dest, shipped, shallow=False):
            digest = hashlib.sha256(shipped.read_bytes()).hexdigest()[:12]
            dest = dest.with_name(f"{path.stem}-{digest}{path.suffix}")
        if not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(shipped, dest)
        return (
            {**raw, "dataset": str(dest)},
            f"Its data file came with it: {dataset} (not on this machine) is now {dest}.",
            False,
        )

    def export(self, run_id: int, dest: str | Path) -> dict[str, Path]:
        """Write ``config.json``, ``metrics.csv`` and ``embeddings.npz`` into ``dest``, and
        the run as a run directory that :meth:`import_directory` (``python -m gca_viz
        import``) reads back whole (its name in :data:`NAME_FILE`): ``snapshots/`` (every
        plan and embedding snapshot), ``changes.json`` (the live changes, each with the
        ``step`` it took effect at: the config is the run's start), ``events.jsonl`` (how it
        ended), ``checkpoint.pt`` (if it has one) and, for a run on a user's data file,
        that file in :data:`DATA_FOLDER` (``data``; an import elsewhere reads it from there).
        Returns the paths by name.

        The archive ``embeddings.npz`` holds ``steps`` ``(k,)`` and, stacked over the ``k``
        readable embedding snapshots, ``z`` ``(k, N, d)`` and, when every one of them has it,
        ``z_partner`` (each sample's positive partner, ``(k, N, d)``); ``y`` (and
        ``domain``) of the last, with ``index`` (each sample's row in the run's dataset) and
        ``class_names`` (``y``'s names) when the snapshots record them. Snapshots of each
        step's batch rows (:data:`FROM_BATCH`, other samples at every step) give ``y`` (and
        ``domain``) per snapshot, ``(k, N)``, and ``from_batch``."""
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        info = self.get(run_id)
        paths = {"config": dest / "config.json", "metrics": dest / "metrics.csv",
                 "embeddings": dest / "embeddings.npz"}  # fmt: skip
        paths["config"].write_text(json.dumps(info.config, indent=2, sort_keys=True))
        paths["name"] = dest / NAME_FILE
        paths["name"].write_text(info.name + "\n")
        paths["metrics"].write_text(self.metrics_csv(run_id))
        snaps = [(s, self.load_snapshot(p)) for s, p in self.snapshots(run_id, "embeddings")]
        good = [(s, a) for s, a in snaps if a is not None and "z" in a]
        arrays: dict[str, np.ndarray] = {"steps": np.array([s for s, _ in good], dtype=np.int64)}
        if good:
            arrays["z"] = np.stack([a["z"] for _, a in good])
            if all("z_partner" in a for _, a in good):
                arrays["z_partner"] = np.stack([a["z_partner"] for _, a in good])
            if any(bool(a.get(FROM_BATCH, False)) for _, a in good):
                arrays["y"] = np.stack([a["y"] for _, a in good])  # (k, N): each step's own
                if all("domain" in a for _, a in good):
                    arrays["domain"] = np.stack([a["domain"] for _, a in good])
                arrays[FROM_BATCH] = np.array(True)
            else:
                arrays["y"] = good[-1][1]["y"]
                for name in ("domain", "index", "class_names"):
                    if name in good[-1][1]:
                        arrays[name] = good[-1][1][name]
        _write_npz(paths["embeddings"], arrays)
        paths["snapshots"] = dest / "snapshots"
        paths["snapshots"].mkdir(exist_ok=True)
        for kind in ("plan", "embeddings"):
            for step, path in self.snapshots(run_id, kind):
                if path.exists():
                    shutil.copy(path, paths["snapshots"] / f"{step:07d}_{kind}.npz")
        paths["changes"] = dest / CHANGES_FILE
        paths["changes"].write_text(json.dumps(self.applied_changes(run_id), indent=2) + "\n")
        paths["events"] = dest / "events.jsonl"
        ended = "finished" if info.status == "finished" else "stopped"
        end = {
            "event": ended,
            "step": info.step,
            **({"device": info.device} if info.device else {}),
        }
        paths["events"].write_text(json.dumps(end) + "\n")
        checkpoint = self.run_dir(run_id) / "checkpoint.pt"
        if checkpoint.exists():
            paths["checkpoint"] = dest / "checkpoint.pt"
            shutil.copy(checkpoint, paths["checkpoint"])
        data_file = _user_data_file(info.config)
        if data_file is not None:
            paths["data"] = dest / DATA_FOLDER / data_file.name
            paths["data"].parent.mkdir(exist_ok=True)
            shutil.copy(data_file, paths["data"])
        return paths

    def export_zip(self, run_id: int) -> bytes:
        """:meth:`export` as the bytes of a zip archive holding one folder, ``run-<id>/``:
        what the Train page's "Run (zip)" download gives, and what :meth:`import_directory`
        (``python -m gca_viz import run-<id>.zip``) reads back whole."""
        with tempfile.TemporaryDirectory(prefix="gca-export-") as tmp:
            folder = Path(tmp) / f"run-{run_id}"
            self.export(run_id, folder)
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
                for file in sorted(folder.rglob("*")):
                    if file.is_file():
                        archive.write(file, file.relative_to(tmp).as_posix())
        return buffer.getvalue()

    def _import_zip(self, path: Path, name: str | None) -> int:
        """:meth:`import_directory` of a zip archive: the run folder in it (at its top, or
        the one folder there) is unpacked to a temporary folder and imported."""
        with tempfile.TemporaryDirectory(prefix="gca-import-") as tmp:
            try:
                with zipfile.ZipFile(path) as archive:
                    archive.extractall(tmp)  # (member names cannot leave tmp: zipfile strips
                    # absolute paths and "..")
            except (OSError, zipfile.BadZipFile) as exc:
                raise ValueError(f"{path}: not a readable zip archive: {exc}") from None
            root = Path(tmp)
            inner = [p for p in root.iterdir() if p.is_dir()]
            if not (root / "config.json").exists() and len(inner) == 1:
                root = inner[0]
            if name is None and not (root / NAME_FILE).exists():
                name = root.name if root != Path(tmp) else path.stem
            try:
                return self.import_directory(root, name=name)
            except ValueError as exc:  # (named by the archive, not the temporary folder)
                raise ValueError(str(exc).replace(str(root), f"{path} ({root.name})")) from None

    def metrics_csv(self, run_id: int) -> str:
        """The run's metrics as CSV text: ``step,name,value``."""
        with self._db() as db:
            rows = db.execute(
                "SELECT step, name, value FROM metrics WHERE run_id=? ORDER BY step, name",
                (run_id,),
            ).fetchall()
        lines = ["step,name,value"] + [f"{s},{n},{_stored(v)!r}" for s, n, v in rows]
        return "\n".join(lines) + "\n"


DATA_FOLDER = "data"
"""The folder of an exported run directory that holds the run's own data file (a user's
``.npz`` or CIFAR-10 binary, up to :data:`EXPORT_DATA_LIMIT`): an import on another machine
puts it in its store's uploads and points the run at it."""
EXPORT_DATA_LIMIT = 1 << 30
"""The largest data file an export carries (bytes); an image folder is never carried."""


def _user_data_file(config: Mapping[str, Any]) -> Path | None:
    """The run's data file, when it is a user's file (not an embedded dataset, not a folder)
    that exists and is at most :data:`EXPORT_DATA_LIMIT` bytes."""
    path = _user_path(config.get("dataset"))
    if path is None or "recorder" in config:
        return None
    try:
        return path if path.is_file() and path.stat().st_size <= EXPORT_DATA_LIMIT else None
    except (OSError, ValueError):
        return None


def _user_path(dataset: Any) -> Path | None:
    """A config's ``dataset`` as the path of user data (``~`` expanded), or ``None`` for an
    embedded dataset's name or a value that is no path; the file need not exist."""
    if not isinstance(dataset, str) or dataset in DATASETS:
        return None
    return Path(dataset).expanduser()


NAME_FILE = "name.txt"
"""The run's name in an exported run directory (:meth:`RunStore.export`); an import names
the run after it (after the folder when it is missing)."""
CHANGES_FILE = "changes.json"
"""The live changes in an exported run directory (:meth:`RunStore.export`): a JSON list of
``{"step": <the step it took effect at>, <parameter>: <value>, ...}``."""


def _insert_event(
    db: sqlite3.Connection, run_id: int, step: int | None, level: str, message: str
) -> None:
    """A note about a run, in the caller's transaction (see :meth:`RunStore.add_event`)."""
    db.execute(
        "INSERT INTO events (run_id, step, time, level, message) VALUES (?, ?, ?, ?, ?)",
        (run_id, step, time.time(), level, message),
    )


def _exported_name(src: Path) -> str:
    """The name an exported run had (its :data:`NAME_FILE`), else its folder's name."""
    try:
        return (src / NAME_FILE).read_text().strip() or src.name
    except OSError:
        return src.name


def _read_changes(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """``(step, params)`` of each live change in ``path`` (none if there is no such file)."""
    if not path.exists():
        return []
    records = json.loads(path.read_text())
    if not isinstance(records, list):
        raise ValueError(f"{path.name} must hold a JSON list of changes")
    out = []
    for record in records:
        params = {k: v for k, v in dict(record).items() if k != "step"}
        out.append((int(record["step"]), params))
    return out


def _stored(value: float | None) -> float:
    """A metric's value as read from the store: SQLite keeps a NaN as NULL (a loop's loss
    that went NaN); ``float(None)`` broke the Train page's table of runs."""
    return math.nan if value is None else float(value)


def _default_name(cfg: TrainConfig) -> str:
    """The name of a run launched without one: its method (as people write it, "GCA-INCE":
    the name shows on the lecture screens) and its data."""
    return f"{losses.title(cfg.method)} on {data_label(cfg.dataset)}"


def run_loss(info: RunInfo) -> losses.GCALoss:
    """The loss a run trains with, as its config describes it (before live changes).

    An external run's config holds its loss's stages, layout and parameters (a custom
    target's matrix is not stored: the pair target stands in, which has no parameters).

    Raises:
        ValueError: for an external run recorded without a ``gca_viz`` loss, or a config
            whose loss does not build.
    """
    if not info.external:
        return build_loss(TrainConfig.from_dict(info.config))
    stages = info.config.get("stages")
    if not isinstance(stages, dict) or not info.config.get("recorder", {}).get("steerable"):
        raise ValueError(
            f"run {info.id} was recorded without a gca_viz loss: live changes need one "
            "(Recorder(..., loss=a gca_viz loss))"
        )
    kinds = ("cost", "target", "projection", "divergence")
    names = {k: str(stages.get(k)) for k in kinds}
    if names["target"] == "custom":
        names["target"] = "pairs"
    return losses.GCALoss(
        **names,
        layout=str(info.config.get("layout", "cross")),
        name=str(info.config.get("method")),
        **dict(info.config.get("loss_params", {})),
    )


def live_targets(info: RunInfo) -> list[str]:
    """The target priors a run can switch to while it trains: any for the app's runs; for
    an external run those its loop gives the side information for (its config's
    ``recorder.targets``)."""
    if not info.external:
        return list(losses.TARGETS)
    return [str(t) for t in info.config.get("recorder", {}).get("targets", [])]


def _write_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``arrays`` to ``path`` atomically, compressed (a plan snapshot: 266 -> 165 KB,
    5 ms); a failed write (a full disk) leaves no partial file behind, neither at ``path``
    nor under its temporary name."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)  # type: ignore[arg-type]
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _validate_change(
    info: RunInfo, applied: list[dict[str, Any]], changes: Mapping[str, Any]
) -> None:
    """Raise ``ValueError`` unless ``changes`` applies to the run's current loss."""
    bad = sorted(set(changes) - set(LIVE_PARAMS))
    if bad:
        raise ValueError(f"{bad[0]!r} cannot be changed during a run; allowed: {LIVE_PARAMS}")
    if info.external:
        loss = run_loss(info)  # raises for a run recorded without a gca_viz loss
        allowed = live_targets(info)
        for change in [*applied, dict(changes)]:
            target = change.get("target", loss.stages["target"].name)
            if target != loss.stages["target"].name and target not in allowed:
                raise ValueError(
                    f"target {target!r}: run {info.id}'s loop gives its loss no side "
                    f"information for it; it can switch to {allowed}"
                )
            params = {k: v for k, v in change.items() if k not in ("step", "target")}
            loss = _rebuild_loss(loss, target, params)
        return
    cfg = TrainConfig.from_dict(info.config)
    for change in [*applied, dict(changes)]:
        params = {k: v for k, v in change.items() if k not in ("step", "target")}
        target = change.get("target", cfg.target)
        trial = copy_config(cfg, target=target, loss_params={**cfg.loss_params, **params})
        cfg = trial  # from_dict inside copy_config validates the loss with the change
