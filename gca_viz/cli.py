"""Command line: ``python -m gca_viz train --config cfg.json`` or flags, also under ``torchrun``;
``python -m gca_viz import DIR ...`` adds such runs (or exported ones) to the app's run store,
and ``python -m gca_viz export RUN_ID DEST`` writes one of its runs whole.

``--out DIR`` writes the run's files there (the layout :class:`DirectoryWriter` documents);
``--resume`` continues from ``DIR/checkpoint.pt`` exactly where it stopped, with the run's
own configuration (``DIR/config.json``): flags may extend ``--steps`` or change where and how
often it reports (:data:`RESUME_FREE`), and a flag that would change what it trains is
refused; ``--steps`` at or below the checkpoint's step trains nothing and says so (a note on
stderr, exit status 0). On a terminal a progress line shows the step, the loss, the
throughput and the time left.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import itertools
import json
import os
import re
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from gca_viz import __version__, _signals, augment, data, distributed, losses, models, targets
from gca_viz.device import DEVICE_NAMES, device_name, keep_freed_memory
from gca_viz.train import (
    CONFIG_TARGETS,
    DICT_FIELDS,
    OPTIMIZERS,
    Callback,
    ConfigError,
    TrainConfig,
    Trainer,
    TrainingDiverged,
    build_loss,
)

_DICT_HELP = {
    "stages": ' (with --method composed only: {"cost": ..., "projection": ..., "divergence": ...})'
}
_LOSS_FLAGS = {"epsilon": float, "n_iter": int, "relax_a": float, "relax_b": float}
BACKGROUND_NICENESS = 10
"""How much a background run of the app (``--store``) lowers its CPU priority: while it
trains on every core, the app's pages still get the CPU first (docs/reliability.md);
alone on a machine it trains as fast as before."""


def write_npz_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` to ``path`` so that a reader sees the old file or the whole new one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)  # type: ignore[arg-type]
    os.replace(tmp, path)


def _cut_metrics(path: Path, step: int) -> None:
    """Cut ``metrics.csv`` back to the rows of steps up to ``step`` (a resumed run's
    checkpoint): the rows a stopped run wrote after its last checkpoint are written again as
    it retrains those steps, and were kept twice (a half-written last line is dropped too)."""
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    kept = [rows[0]] if rows else [["step", "name", "value"]]
    for row in rows[1:]:
        try:
            if len(row) == 3 and int(row[0]) <= step:
                float(row[2])
                kept.append(row)
        except ValueError:
            continue
    if len(kept) == len(rows):
        return
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as fh:
        csv.writer(fh).writerows(kept)
    os.replace(tmp, path)


def _holds_rows(metrics: Path) -> bool:
    """Whether a run's ``metrics.csv`` holds a row past its header."""
    try:
        with open(metrics, newline="") as fh:
            return sum(1 for _ in itertools.islice(fh, 2)) > 1
    except FileNotFoundError:
        return False


class DirectoryWriter(Callback):
    """Callback writing a run into a directory:

    * ``config.json``: the run's configuration;
    * ``metrics.csv``: ``step,name,value`` rows (losses, evaluation metrics);
    * ``events.jsonl``: one JSON object per live change or status change;
    * ``snapshots/<step>_<kind>.npz``: plan and embedding snapshots;
    * ``checkpoint.pt``: the latest checkpoint (``torch.load(..., weights_only=True)``).
    """

    def __init__(self, out: str | Path, log_every: int = 1) -> None:
        self.out = Path(out)
        self.log_every = log_every
        self._metrics: TextIO | None = None

    def on_start(self, trainer: Trainer) -> None:
        """Start the run's files, or go on with them for a resumed trainer (its steps past
        the checkpoint's are cut). A trainer at step 0 in a folder that holds a run is
        refused (``ValueError``), as the command line refuses it: writing there erased the
        run's metrics and snapshots and left its checkpoint beside the new config.
        ``config.json`` keeps a path to user data absolute (:func:`dataset_path`)."""
        if trainer.step == 0 and _holds_rows(self.out / "metrics.csv"):
            raise ValueError(
                f"DirectoryWriter: {self.out} already holds a run (metrics.csv); write to "
                "another folder, or resume that run (python -m gca_viz train --out "
                f"{self.out} --resume, or Trainer.load_checkpoint of its checkpoint.pt "
                "before fit())"
            )
        (self.out / "snapshots").mkdir(parents=True, exist_ok=True)  # a refused run makes none
        config = dataclasses.replace(trainer.config, dataset=dataset_path(trainer.config.dataset))
        (self.out / "config.json").write_text(config.to_json())
        new = not (self.out / "metrics.csv").exists()
        if not new:
            _cut_metrics(self.out / "metrics.csv", trainer.step)
            for snap in (self.out / "snapshots").glob("*_*.npz"):  # (their steps come again)
                head = snap.name.split("_", 1)[0]
                if head.isdigit() and int(head) > trainer.step:
                    snap.unlink(missing_ok=True)
        self._metrics = open(self.out / "metrics.csv", "a", newline="")
        if new:
            self._metrics.write("step,name,value\n")
        self._event({"event": "start", "step": trainer.step, "device": device_name(trainer.device)})

    def _write(self, step: int, logs: dict[str, float]) -> None:
        assert self._metrics is not None
        w = csv.writer(self._metrics)
        for name, value in logs.items():
            w.writerow([step, name, repr(float(value))])
        self._metrics.flush()

    def _event(self, record: dict[str, Any]) -> None:
        with open(self.out / "events.jsonl", "a") as fh:
            fh.write(json.dumps(record) + "\n")

    def on_step(self, trainer: Trainer, logs: dict[str, float]) -> None:
        if trainer.step % self.log_every == 0 or trainer.step == trainer.config.steps:
            self._write(trainer.step, logs)

    def on_eval(self, trainer: Trainer, logs: dict[str, float]) -> None:
        self._write(trainer.step, logs)

    def on_snapshot(self, trainer: Trainer, kind: str, arrays: dict[str, np.ndarray]) -> None:
        write_npz_atomic(self.out / "snapshots" / f"{trainer.step:07d}_{kind}.npz", arrays)

    def on_checkpoint(self, trainer: Trainer, state: dict[str, Any]) -> None:
        trainer.save_checkpoint(self.out / "checkpoint.pt")

    def on_end(self, trainer: Trainer, reason: str) -> None:
        self._event({"event": reason, "step": trainer.step})
        if self._metrics is not None:
            self._metrics.close()

    def on_failure(self, trainer: Trainer, exc: BaseException) -> None:
        """Record that the run failed, and why (its events ended at ``start`` before, the
        same as a run still in progress)."""
        self._event(
            {"event": "failed", "step": trainer.step, "error": f"{type(exc).__name__}: {exc}"}
        )
        if self._metrics is not None:
            self._metrics.close()


class Progress(Callback):
    """A one-line progress display on a terminal (step, loss, steps/s, ETA); elsewhere (a
    log file, a batch job) a plain line at every tenth of the run."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr  # as it is now, not at import
        self.enabled = self.stream.isatty()
        self.start = time.perf_counter()
        self.first_step = 0

    def on_start(self, trainer: Trainer) -> None:
        self.start, self.first_step = time.perf_counter(), trainer.step

    def on_step(self, trainer: Trainer, logs: dict[str, float]) -> None:
        total = trainer.config.steps
        if not self.enabled and trainer.step % max(total // 10, 1) and trainer.step != total:
            return
        done = trainer.step - self.first_step
        rate = done / max(time.perf_counter() - self.start, 1e-9)
        left = (total - trainer.step) / max(rate, 1e-9)
        line = (
            f"step {trainer.step}/{total}  loss {logs['loss']:.4f}  {rate:.1f} it/s  "
            f"ETA {left:.0f}s"
        )
        if self.enabled:
            bar = "#" * int(20 * trainer.step / total)
            self.stream.write(f"\r[{bar:<20}] {line} ")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def on_eval(self, trainer: Trainer, logs: dict[str, float]) -> None:
        text = "  ".join(f"{k} {v:.3f}" for k, v in logs.items())
        self.stream.write(("\n" if self.enabled else "") + f"step {trainer.step}: {text}\n")

    def on_end(self, trainer: Trainer, reason: str) -> None:
        self.stream.write(("\n" if self.enabled else "") + f"{reason} at step {trainer.step}\n")


class SignalStop(Callback):
    """Stop between steps on SIGTERM or SIGINT (a final checkpoint is still written)."""

    def __init__(self) -> None:
        self.requested = _signals.received  # a signal during start-up counts too
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True

    def should_stop(self, trainer: Trainer) -> bool:
        return self.requested


_CHOICES: dict[str, Callable[[], list[str]]] = {
    "method": lambda: [*losses.LOSSES, "composed"],
    "encoder": lambda: list(models.ENCODERS),
    "dataset": lambda: [*data.DATASETS, "a path to your data"],
    "target": lambda: list(CONFIG_TARGETS),
    "layout": lambda: list(targets.LAYOUTS),
    "optimizer": lambda: list(OPTIMIZERS),
    "augment": lambda: list(augment.PRESETS),
    "device": lambda: [*DEVICE_NAMES, "cuda:<index>"],
}
"""What ``train --help`` lists for the fields with named choices."""


def _plain(doc: str) -> str:
    """A docstring as ``--help`` prints it: without reST's markup (````x````, ``:class:`X```)
    and with the files a run writes (:class:`DirectoryWriter`) and the fields a resumed run
    may change (:data:`RESUME_FREE`) spelled out."""
    doc = doc.replace("the layout :class:`DirectoryWriter` documents", _written_files())
    doc = doc.replace(":data:`RESUME_FREE`", ", ".join(RESUME_FREE))
    doc = re.sub(r":\w+:`~?([^`]+)`", r"\1", doc)
    return re.sub(r"``(.+?)``", r"\1", doc, flags=re.DOTALL)


def _written_files() -> str:
    """The file names :class:`DirectoryWriter`'s docstring lists, comma-separated."""
    return ", ".join(re.findall(r"^\s*\* ``([^`]+)``", DirectoryWriter.__doc__ or "", re.M))


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m gca_viz train", description=_plain(__doc__ or ""))
    ap.add_argument("--config", help="JSON file of TrainConfig fields (flags override it)")
    ap.add_argument("--out", help="directory for metrics, snapshots and checkpoints")
    ap.add_argument(
        "--resume",
        action="store_true",
        help="continue from OUT/checkpoint.pt with the run's own config (--steps may extend it)",
    )
    ap.add_argument("--log-every", type=int, default=1, help="write the loss every N steps")
    ap.add_argument("--store", help="run store directory (with --run-id: a background run)")
    ap.add_argument("--run-id", type=int, help="the run's id in --store; its config is there")
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.name in DICT_FIELDS:
            extra = _DICT_HELP.get(f.name, "")
            ap.add_argument(flag, type=_json_object, help=f"JSON object for {f.name}{extra}")
        else:
            kind = type(f.default) if f.default is not dataclasses.MISSING else str
            choices = _CHOICES.get(f.name)
            listed = f"; one of {', '.join(choices())}" if choices else ""
            ap.add_argument(
                flag, type=kind, help=f"TrainConfig.{f.name} (default {f.default!r}{listed})"
            )
    for name, kind in _LOSS_FLAGS.items():
        ap.add_argument(
            "--" + name.replace("_", "-"),
            dest="loss_" + name,
            type=kind,
            help=f"loss_params['{name}']",
        )
    return ap


RESUME_FREE = (
    "steps",
    "device",
    "threads",
    "eval_every",
    "snapshot_every",
    "checkpoint_every",
    "eval_subset",
    "knn_k",
    "eval_corruption",
)
"""The fields a resumed run may change (``--resume --steps 600`` trains on): where and how
long it runs, how often it reports and how it evaluates; nothing that changes what it
trains."""


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The :class:`TrainConfig` described by a config file and flags (flags win), a dataset
    given as a path made absolute (:func:`dataset_path`)."""
    cfg = TrainConfig.from_dict(_given(args))
    return dataclasses.replace(cfg, dataset=dataset_path(cfg.dataset))


def dataset_path(dataset: str) -> str:
    """An embedded dataset's name as it is; a path to user data made absolute (``~`` and
    a relative path resolved against the current folder), as a run's ``config.json`` keeps
    it: with the path as typed, ``--resume`` from another folder did not find the data, and
    ``./mine.npz`` was refused as "other settings" than ``mine.npz``."""
    if dataset in data.DATASETS:
        return dataset
    return str(Path(dataset).expanduser().resolve())


def resumed_config(args: argparse.Namespace, folder: Path) -> TrainConfig:
    """The configuration of the run in ``folder`` (its ``config.json``, else its checkpoint's),
    with the :data:`RESUME_FREE` fields that the config file and flags give.

    The given fields are validated together with the saved ones (an unknown field is named),
    and compared by what they mean: ``--epsilon 0.5`` on a run trained with the default
    ``ε = 0.5`` agrees, so does ``"batch_size": "32"`` with 32.

    Raises:
        ValueError: naming the fields, if the config file or flags give another value for a
            field that would change what the run trains (its loss, data, model or optimiser);
            the run would go on from the saved weights as a different run.
    """
    saved_json = folder / "config.json"
    if saved_json.exists():
        saved = TrainConfig.from_json(saved_json.read_text())
    else:
        import torch

        state = torch.load(folder / "checkpoint.pt", map_location="cpu", weights_only=True)
        saved = TrainConfig.from_json(state["config"])
    given = _given(args)
    values = dataclasses.asdict(saved)
    for name, value in given.items():
        merge = name in DICT_FIELDS and isinstance(value, dict)
        values[name] = {**values.get(name, {}), **value} if merge else value
    asked = TrainConfig.from_dict(values)  # validated: unknown or bad fields are named here
    clashes = [
        f"{name} {_meaning(asked, name)!r} (the run's: {_meaning(saved, name)!r})"
        for name in given
        if name not in RESUME_FREE and _meaning(asked, name) != _meaning(saved, name)
    ]
    if clashes:
        raise ValueError(
            f"--resume: the run in {folder} was trained with other settings than "
            f"{', '.join(clashes)}; a resumed run keeps them (it may change only "
            f"{', '.join(RESUME_FREE)}). Drop those flags, or start a new run in a new folder"
        )
    fresh = dataclasses.asdict(saved)
    fresh.update({k: getattr(asked, k) for k in given if k in RESUME_FREE})
    return TrainConfig.from_dict(fresh)


def _meaning(cfg: TrainConfig, name: str) -> Any:
    """A field as it acts: the loss's parameters with their defaults, an encoder's or an
    embedded dataset's parameters with theirs, any other field as it is."""
    if name == "loss_params":
        return build_loss(cfg).params
    if name == "encoder_params":
        return {**models.ENCODERS[cfg.encoder].defaults(), **cfg.encoder_params}
    if name == "dataset_params":
        return data.loaded_params(cfg.dataset, cfg.dataset_params)
    if name == "dataset":
        return dataset_path(cfg.dataset)
    return getattr(cfg, name)


def _given(args: argparse.Namespace) -> dict[str, Any]:
    """The fields that the config file and flags give (flags win), nothing filled in."""
    values: dict[str, Any] = {}
    if args.config:
        try:
            values = json.loads(Path(args.config).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"--config {args.config}: {exc}") from None
        if not isinstance(values, dict):
            raise ValueError(f"--config {args.config}: must hold a JSON object of fields")
    for f in dataclasses.fields(TrainConfig):
        v = getattr(args, f.name)
        if v is not None:
            values[f.name] = v
    for name in DICT_FIELDS:
        if not isinstance(values.get(name, {}), dict):
            flag = "--" + name.replace("_", "-")
            raise ValueError(f"{flag} (or {name} in --config) must be a JSON object")
    loss = dict(values.get("loss_params", {}))
    for name in _LOSS_FLAGS:
        v = getattr(args, "loss_" + name)
        if v is not None:
            loss[name] = v
    if loss:
        values["loss_params"] = loss
    return values


def _json_object(text: str) -> Any:
    """A flag's JSON value (argparse names the flag in front of the message; that it is an
    object is checked with the config, which names the flag or the config's field)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(
            f"not valid JSON ({exc.msg} at character {exc.pos}): {text!r}; keys and strings "
            """need double quotes, e.g. '{"epsilon": 0.3}'"""
        ) from None
    return value


def _check_creatable(folder: Path) -> None:
    """Make ``folder`` (and its missing parents) and take them away again: a folder that
    cannot be made fails now with ``--out`` named, not at the run's start with a traceback,
    and a run refused later leaves no folder behind. Under ``torchrun`` only rank 0 (the
    one that writes) tries: two ranks making and removing the same folders at once failed
    one of them with ``FileNotFoundError``."""
    if not distributed.current().is_main:
        return
    made = [p for p in (folder, *folder.parents) if not p.exists()]  # deepest first
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"--out: {folder} cannot be made ({exc.strerror or exc})") from None
    finally:
        for p in made:
            try:
                p.rmdir()
            except OSError:  # gone, or in use by another process since: not ours to remove
                pass


_NO_CHECKPOINT = (
    " with no checkpoint yet (a run writes its first at checkpoint_every steps): if it "
    "ended before that (it failed or was killed) it cannot be resumed, so delete the folder "
    "or choose a new one to start again; if it is still training, wait for its checkpoint"
)


def train_main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    keep_freed_memory()  # a process that trains and ends (see gca_viz.device)
    if args.store is not None or args.run_id is not None:
        if args.store is None or args.run_id is None:
            print("error: --store and --run-id go together", file=sys.stderr)
            return 2
        from gca_viz.runner import run_in_store

        if hasattr(os, "nice"):  # before any thread starts: the threads inherit it
            try:
                os.nice(BACKGROUND_NICENESS)
            except OSError:
                pass
        try:
            return run_in_store(args.store, args.run_id, args.resume, threads=args.threads or 0)
        except ValueError as exc:  # refused before the run was touched (runner.open_run)
            print(f"error: {exc}", file=sys.stderr)
            return 2
    try:
        if args.resume:
            folder = Path(args.out or ".").expanduser()
            if not (folder / "checkpoint.pt").exists():
                raise ValueError(
                    f"--resume: no checkpoint at {folder / 'checkpoint.pt'}"
                    + (_NO_CHECKPOINT if (folder / "metrics.csv").exists() else "")
                )
            cfg = resumed_config(args, folder)
        else:
            cfg = config_from_args(args)
        callbacks: list[Any] = [SignalStop(), Progress()]
        if args.out:  # an unusable folder fails here, not after the first steps
            out = Path(args.out).expanduser()
            found = next(p for p in (out, *out.parents) if p.exists())  # (made at the start)
            if not found.is_dir():
                raise ValueError(f"--out: {found} is a file, not a folder")
            if not os.access(found, os.W_OK | os.X_OK):
                raise ValueError(f"--out: {found} cannot be written to (permission denied)")
            _check_creatable(out)
            args.out = str(out)
        if args.out and not args.resume and (Path(args.out) / "metrics.csv").exists():
            if not (Path(args.out) / "checkpoint.pt").exists():
                raise ValueError(f"--out: {args.out} already holds a run" + _NO_CHECKPOINT)
            raise ValueError(  # appending a second run to the first mixed their files
                f"--out: {args.out} already holds a run (metrics.csv); add --resume to "
                "continue it, or choose a new folder"
            )
        writer = DirectoryWriter(args.out, log_every=args.log_every) if args.out else None
        if writer is not None:
            callbacks.append(writer)
        trainer = Trainer(cfg, callbacks)
        if args.resume:
            trainer.load_checkpoint(Path(args.out or ".").expanduser() / "checkpoint.pt")
    except ValueError as exc:
        for problem in ConfigError.problems_of(exc):
            print(f"error: {problem}", file=sys.stderr)
        return 2
    if args.resume and trainer.step >= cfg.steps:  # (fit would rewrite config.json's steps)
        if trainer.dist.is_main:
            asked = "--steps " if args.steps is not None else "steps = "
            print(
                f"note: {asked}{cfg.steps}: the run is already at step {trainer.step}; "
                "nothing to train (raise --steps to go on)",
                file=sys.stderr,
            )
        distributed.shutdown(trainer.dist)
        return 0
    for note in trainer.notes if trainer.dist.is_main else []:
        print(f"warning: {note}", file=sys.stderr)
    split = len(trainer.train_set.y)
    held = split - split % trainer.dist.world_size  # (what Trainer._batch_indices draws)
    if cfg.batch_size > held and trainer.dist.is_main:  # (capped without a word)
        print(
            f"note: --batch-size {cfg.batch_size}: the training split holds {split} samples, "
            f"so each batch holds {held}" + (" (all of them)" if held == split else ""),
            file=sys.stderr,
        )
    try:
        reason = trainer.fit()
    except Exception as exc:
        if writer is not None and trainer.dist.is_main:
            try:
                writer.on_failure(trainer, exc)
            except OSError:  # the folder that failed the run cannot take its record either
                pass
        if isinstance(exc, TrainingDiverged):  # the user's settings, not a fault: one line
            if trainer.dist.is_main:  # (below the progress line a terminal shows)
                print(("\n" if sys.stderr.isatty() else "") + f"error: {exc}", file=sys.stderr)
            return 1
        raise
    finally:
        distributed.shutdown(trainer.dist)
    return 0 if reason in ("finished", "stopped") else 1


USAGE = (
    "usage: python -m gca_viz train [--config CFG.json] [--out DIR] [flags]\n"
    "       python -m gca_viz import DIR|ZIP [DIR|ZIP ...] [--store RUNS] [--name NAME]\n"
    "       python -m gca_viz export RUN_ID DEST [--store RUNS] [--zip]\n"
    "       python -m gca_viz --version\n"
    "'python -m gca_viz train --help' lists the flags."
)


def import_main(argv: list[str]) -> int:
    """``python -m gca_viz import DIR ...``: add runs that ``train --out DIR`` or
    :meth:`gca_viz.runs.RunStore.export` (the app's export) wrote to a run store, where the
    app shows them (:meth:`~gca_viz.runs.RunStore.import_directory`). Prints each new run's
    id; a folder that is not a run is named on stderr, the others are still imported
    (exit status 1 if any failed)."""
    from gca_viz.runs import DATA_DIR_ENV, RunStore, default_data_dir

    ap = argparse.ArgumentParser(
        prog="python -m gca_viz import",
        description="Add run directories (train --out, or an export) to the app's run store.",
    )
    ap.add_argument(
        "dirs", nargs="+", metavar="DIR", help="a run directory, or the zip of one (an export)"
    )
    ap.add_argument(
        "--store",
        help=f"the run store (default: ${DATA_DIR_ENV} or ./runs, as the app)",
    )
    ap.add_argument(
        "--name", help="the run's name (default: an exported run's own, else the folder's name)"
    )
    args = ap.parse_args(argv)
    if args.name and len(args.dirs) > 1:
        ap.error("--name: one name for one DIR")
    store = RunStore(args.store or default_data_dir())
    failed = 0
    for folder in args.dirs:
        try:
            run_id = store.import_directory(Path(folder).expanduser(), name=args.name)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
            continue
        print(f"run #{run_id}: {store.get(run_id).name} (from {folder}) in {store.dir}")
    return 1 if failed else 0


def export_main(argv: list[str]) -> int:
    """``python -m gca_viz export RUN_ID DEST``: write a run of the store whole (config, live
    changes, metrics, snapshots, checkpoint; :meth:`gca_viz.runs.RunStore.export`) into the
    folder ``DEST``, or with ``--zip`` into the zip archive ``DEST`` (the Train page's "Run
    (zip)" download); ``import`` reads either back."""
    from gca_viz.runs import DATA_DIR_ENV, RunStore, StoreError, default_data_dir

    ap = argparse.ArgumentParser(
        prog="python -m gca_viz export",
        description="Write a run of the app's run store whole, for import elsewhere.",
    )
    ap.add_argument("run_id", type=int, metavar="RUN_ID", help="the run's number (#N in the app)")
    ap.add_argument("dest", metavar="DEST", help="the folder to write (or the .zip, with --zip)")
    ap.add_argument(
        "--store",
        help=f"the run store (default: ${DATA_DIR_ENV} or ./runs, as the app)",
    )
    ap.add_argument("--zip", action="store_true", help="write one zip archive, DEST")
    args = ap.parse_args(argv)
    where = Path(args.store or default_data_dir()).expanduser()
    if not (where / "runs.db").is_file():
        ap.error(f"--store: {where} is not a run store (it holds no runs.db)")
    dest = Path(args.dest).expanduser()
    if args.zip and dest.exists():
        ap.error(f"DEST: {dest} exists; name a new .zip file")
    if args.zip and not dest.parent.is_dir():
        ap.error(f"DEST: the folder {dest.parent} does not exist")
    if not args.zip and dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        ap.error(f"DEST: {dest} exists and is not an empty folder")
    try:
        store = RunStore(where)
        store.get(args.run_id)
    except StoreError as exc:  # (a locked or damaged store, not a missing run)
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ValueError:
        ap.error(f"RUN_ID: the store {where} has no run {args.run_id}")
    try:
        if args.zip:
            dest.write_bytes(store.export_zip(args.run_id))
        else:
            store.export(args.run_id, dest)
    except (OSError, StoreError) as exc:
        print(f"error: could not write {dest}: {exc}", file=sys.stderr)
        return 1
    print(f"run #{args.run_id} written to {dest}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """The command line: ``train`` (see :func:`train_main`), ``import`` (see
    :func:`import_main`), ``export`` (see :func:`export_main`), ``--version``, ``--help``."""
    args = sys.argv[1:] if argv is None else argv
    if args == ["--version"]:
        print(f"gca_viz {__version__}")
        return 0
    if args and args[0] == "train":
        return train_main(args[1:])
    if args and args[0] == "import":
        return import_main(args[1:])
    if args and args[0] == "export":
        return export_main(args[1:])
    if args and args[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    if args:
        print(f"error: unknown command {args[0]!r}", file=sys.stderr)
    print(USAGE, file=sys.stderr)
    return 2
