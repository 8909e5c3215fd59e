"""Finished demo runs, so a lecture can start the moment the app opens.

:data:`DEMO_RUNS` are short runs on the embedded data with 3-D embeddings (the sphere the
Geometry page draws). :func:`generate` trains them with the project's own command line
(``python -m gca_viz train --out DIR``) into ``assets/demo_runs``; the files are shipped with
the repository. :func:`install` imports them into a run store once, as finished runs: the
store is marked as having its demo runs only after every one of them is in, so a first start
that fails part way (a full disk, a crash) is completed by the next one, without importing
a run twice.

    python -m gca_viz.demo               # regenerate assets/demo_runs (a few minutes)
    python -m gca_viz.demo demo-ince     # regenerate one of them
    python -m gca_viz.demo domain-sweep  # regenerate assets/domain_sweep, the α - β sweep
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; one app process per store there
    fcntl = None  # type: ignore[assignment]

ASSETS: Path = Path(__file__).resolve().parents[1] / "assets" / "demo_runs"
"""Where the shipped demo runs live (one ``--out`` directory each)."""

_COMMON: dict[str, Any] = {
    "dataset": "digits",
    "out_dim": 3,
    "steps": 300,
    "batch_size": 256,
    "eval_every": 50,
    "snapshot_every": 30,
    "checkpoint_every": 0,
    "eval_subset": 300,
    "seed": 0,
    "device": "cpu",
}

DEMO_RUNS: dict[str, dict[str, Any]] = {
    "demo-ince": {"method": "ince"},
    "demo-gca-ince": {"method": "gca_ince"},
    "demo-gca-uot": {"method": "gca_uot"},
    "demo-ince-noisy": {"method": "ince", "noisy_pairs": 0.5, "checkpoint_every": 300},
    "demo-gca-uot-noisy": {"method": "gca_uot", "noisy_pairs": 0.5, "checkpoint_every": 300},
}
"""Demo run name -> the config fields that differ from the shared ones."""

WITH_ENCODER = tuple(name for name, cfg in DEMO_RUNS.items() if cfg.get("checkpoint_every"))
"""The demo runs shipped with their final encoder (those that checkpoint): a
``checkpoint.pt`` of the model's weights, config and step, without the optimiser's state
(0.6 MB each). The Noisy views page evaluates them on corrupted test data the moment it
opens, and its experiments and the Plan lab embed batches with them; such a checkpoint can
be evaluated, not resumed."""

LECTURE_PAIR = ("demo-ince", "demo-gca-ince")
"""The comparison a lecture opens with: InfoNCE and GCA-INCE, trained alike (same ε, data,
seed and steps), so their curves compare."""


def lecture_defaults(runs: Iterable[Any]) -> tuple[int, int] | None:
    """The runs Train shows first while the store holds only demo runs: ``(run, compared
    with)`` = the ids of GCA-INCE's and InfoNCE's :data:`LECTURE_PAIR` runs, or ``None``
    once the user has a run of their own (then the newest run comes first) or the pair is
    not both there. ``runs``: objects with ``id`` and ``name`` (:class:`gca_viz.runs.RunInfo`)."""
    runs = list(runs)
    if not runs or any(r.name not in DEMO_RUNS for r in runs):
        return None
    ids = {r.name: int(r.id) for r in reversed(runs)}  # (the newest of a name wins)
    if not all(name in ids for name in LECTURE_PAIR):
        return None
    first, second = LECTURE_PAIR
    return ids[second], ids[first]


R = TypeVar("R")


def own_first(runs: Iterable[R]) -> list[R]:
    """``runs`` (newest first, as :meth:`gca_viz.runs.RunStore.list_runs` gives them) with
    the user's own runs before the demo runs, each group in its order: the run a page opens
    on is the user's newest even when the demo runs were imported after it (a loop recorded
    before the app's first start sat under the five demos). ``runs``: objects with ``name``."""
    runs = list(runs)
    own = [r for r in runs if getattr(r, "name", None) not in DEMO_RUNS]
    return own + [r for r in runs if getattr(r, "name", None) in DEMO_RUNS]


WEIGHTS_ONLY_KEYS = ("model", "config", "step")
"""What a shipped checkpoint keeps of :meth:`gca_viz.train.Trainer.state_dict`."""

SWEEP = "domain-sweep"
"""The command line's name for the shipped α - β sweep
(:data:`gca_viz.experiments.domains.SHIPPED_SWEEP`)."""

_MARKER = "demo_runs_installed"
"""Key of the store's ``settings`` row written once every demo run is imported."""

_LOCK = ".demo-install.lock"
"""File in the store's directory that one installing process at a time holds a lock on."""


def demo_config(name: str) -> dict[str, Any]:
    """The full config of demo run ``name``."""
    return {**_COMMON, **DEMO_RUNS[name]}


def generate(dest: Path = ASSETS, names: Iterable[str] | None = None) -> list[Path]:
    """Train the demo runs ``names`` (default: every one) with the CLI into
    ``dest/<name>``, replacing what is there; returns the directories
    (:func:`train_into`; the :data:`WITH_ENCODER` runs keep their weights).

    Raises:
        ValueError: naming an unknown demo run.
        subprocess.CalledProcessError: when a run fails.
    """
    chosen = list(DEMO_RUNS) if names is None else list(names)
    unknown = [n for n in chosen if n not in DEMO_RUNS]
    if unknown:
        raise ValueError(f"names: unknown demo runs {unknown}; choose from {list(DEMO_RUNS)}")
    return [
        train_into(dest, name, demo_config(name), weights=name in WITH_ENCODER) for name in chosen
    ]


def train_into(
    dest: Path, name: str, config: Mapping[str, Any], *, weights: bool = False, plan: bool = True
) -> Path:
    """Train ``config`` with the project's command line (``python -m gca_viz train --out``)
    into ``dest/name``, replacing what is there, and prune it for shipping: the weights
    alone of its checkpoint if ``weights``, else no checkpoint, and only the last plan
    snapshot if ``plan``, else none. Returns the directory.

    The run trains into a fresh folder that then takes the old one's place (the CLI's
    ``--out`` appends to an existing ``metrics.csv``), so a failed run leaves the old one.

    Raises:
        subprocess.CalledProcessError: when the run fails.
    """
    dest.mkdir(parents=True, exist_ok=True)
    run_dir = dest / name
    with tempfile.TemporaryDirectory(dir=dest, prefix=f".{name}-") as tmp:
        cfg = Path(tmp) / "cfg.json"
        cfg.write_text(json.dumps(dict(config)))
        fresh = Path(tmp) / name
        cmd = [sys.executable, "-m", "gca_viz", "train", "--config", str(cfg),
               "--out", str(fresh), "--log-every", "5"]  # fmt: skip
        subprocess.run(cmd, check=True)
        _prune(fresh, weights, plan)
        shutil.rmtree(run_dir, ignore_errors=True)
        fresh.rename(run_dir)
    return run_dir


def _prune(run_dir: Path, weights: bool, plan: bool) -> None:
    """Keep the shipped files small: the weights alone of the checkpoint (``weights``) or no
    checkpoint, and the last plan snapshot (``plan``) or none (the embedding snapshots, a
    few KB each, are what the Geometry page animates)."""
    checkpoint = run_dir / "checkpoint.pt"
    if weights and checkpoint.exists():
        import torch

        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        torch.save({k: state[k] for k in WEIGHTS_ONLY_KEYS}, checkpoint)
    else:
        checkpoint.unlink(missing_ok=True)
    plans = sorted((run_dir / "snapshots").glob("*_plan.npz"))
    for path in plans[:-1] if plan else plans:
        path.unlink()


def install(store: Any, source: Path | None = None) -> list[int]:
    """Import the shipped demo runs (from ``source``, default :data:`ASSETS`) into ``store``
    (a :class:`gca_viz.runs.RunStore`) unless that was done before; returns the new run ids
    (empty when nothing was imported).

    The store counts as having its demo runs only once all of them are in. An install that
    failed part way (a full disk, a crash) is completed by the next call: a demo run already
    in the store under its name is not imported again. Once complete, runs the user deletes
    stay deleted. One process at a time installs into a store (a lock on a file in it).

    Raises:
        OSError, ValueError: (:class:`gca_viz.runs.StoreError` among them) when the store
            cannot be written, or a shipped run cannot be read; the runs imported until then
            stay, and the next call imports the rest.
    """
    source = ASSETS if source is None else Path(source)
    with install_lock(Path(store.dir)):
        with store._db() as db:
            if db.execute("SELECT 1 FROM settings WHERE key=?", (_MARKER,)).fetchone():
                return []
        new = _import_missing(store, source, DEMO_RUNS)
        with store._db(write=True) as db:
            db.execute("INSERT OR REPLACE INTO settings VALUES (?, '1')", (_MARKER,))
    return new


def restore(store: Any, names: Iterable[str], source: Path | None = None) -> list[int]:
    """Import the shipped demo runs ``names`` again (from ``source``, default
    :data:`ASSETS`) where the store no longer holds a run of that name (the user deleted
    it; a page that compares them offers this); returns the new run ids.

    Raises:
        ValueError: naming an unknown demo run; as :func:`install` otherwise.
    """
    names = list(names)
    unknown = sorted(set(names) - set(DEMO_RUNS))
    if unknown:
        raise ValueError(f"names: unknown demo runs {unknown}; choose from {list(DEMO_RUNS)}")
    source = ASSETS if source is None else Path(source)
    with install_lock(Path(store.dir)):
        return _import_missing(store, source, names)


def _import_missing(store: Any, source: Path, names: Iterable[str]) -> list[int]:
    """Import each shipped run of ``names`` that the store holds no run of that name of
    (under the install lock); a failed import leaves no partial files."""
    present = {run.name for run in store.list_runs()}
    new = []
    for name in names:
        if name in present or not (source / name / "config.json").exists():
            continue
        expected = _next_run_id(store)
        try:
            new.append(store.import_directory(source / name, name=name))
        except BaseException:
            _discard_partial(store, expected)
            raise
    return new


@contextmanager
def install_lock(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``directory/.demo-install.lock`` (released when the process
    dies, so a crash leaves no stale lock): one process at a time imports shipped runs."""
    if fcntl is None:
        yield
        return
    with open(directory / _LOCK, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _next_run_id(store: Any) -> int:
    """The id the store's next run gets (``AUTOINCREMENT``: past every id ever used)."""
    with store._db() as db:
        top = db.execute("SELECT MAX(id) FROM runs").fetchone()[0] or 0
        if db.execute("SELECT 1 FROM sqlite_master WHERE name='sqlite_sequence'").fetchone():
            row = db.execute("SELECT seq FROM sqlite_sequence WHERE name='runs'").fetchone()
            top = max(top, row[0] if row else 0)
    return int(top) + 1


def _discard_partial(store: Any, run_id: int) -> None:
    """Remove the files a failed import copied for ``run_id`` (its database rows were rolled
    back), unless a run with that id exists: another process took the id meanwhile."""
    try:
        with store._db() as db:
            taken = db.execute("SELECT 1 FROM runs WHERE id=?", (run_id,)).fetchone()
    except (OSError, ValueError):  # the store cannot be read now: leave the files
        return
    if not taken:
        shutil.rmtree(store.run_dir(run_id), ignore_errors=True)


if __name__ == "__main__":
    wanted = sys.argv[1:]
    if SWEEP in wanted:  # (experiments imports this module: imported here, not above)
        from gca_viz.experiments.domains import generate_sweep

        wanted.remove(SWEEP)
        for path in generate_sweep():
            print(path)
        if not wanted:
            sys.exit(0)
    for path in generate(names=wanted or None):
        print(path)
