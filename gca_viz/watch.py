"""Watch and steer your own training loop in the app.

A :class:`Recorder` streams any PyTorch training loop into a run store
(:class:`gca_viz.runs.RunStore`), so the app's pages show it like one of their own runs:
Train's live monitor (loss curve, plan snapshot), Geometry, the alignment-uniformity
plane, comparisons::

    from gca_viz.watch import Recorder

    rec = Recorder("runs", name="simclr-r18", config={"lr": 0.3}, loss=criterion)
    for step, (x1, x2, y) in enumerate(loader):
        z1, z2 = model(x1), model(x2)
        loss = criterion(z1, z2)
        loss.backward()
        opt.step()
        opt.zero_grad()
        rec.step(step, loss=loss, lr=sched.get_last_lr()[0])
        rec.batch(step, z1, z2, labels=y)  # throttled: plan snapshot + geometry
        if rec.should_stop:  # the app's Stop button
            break
    rec.finish()

The run is **external** (``RunInfo.external``): the app did not start it, so it cannot
resume or duplicate it, and its Stop only sets :attr:`Recorder.should_stop`.

What it stores, as the app's own runs do (:meth:`gca_viz.train.Trainer.snapshot_plan`,
:meth:`~gca_viz.train.Trainer.snapshot_embeddings`): every ``rec.step`` value as a metric;
every ``snapshot_every`` steps (or ``snapshot_seconds``) the plan of the batch's first pairs
(the run's loss when it is a ``gca_viz`` loss, else InfoNCE's plan at ``epsilon``), with its
diagnostics; alignment, uniformity, positive mass, marginal error and plan entropy as
metrics; the normalised embeddings of ``eval_batch`` (embedded with ``model``), else of the
batch's first rows with their positives (``z2``'s rows, Geometry's positive partners), for
Geometry.

It never blocks the loop: ``rec.step`` appends to a buffer that a background thread writes
every ``flush_every`` seconds; tensors are detached and copied off the GPU only when a
snapshot is due, and the snapshot is computed and written by that thread. A store that
cannot be written (read-only, full) is reported once (a :class:`RecorderWarning` and, where
it can be written, an event) and the loop goes on. Bad input (a non-tensor, mismatched
shapes, NaN embeddings or losses, a value that is not a number, a step that goes back) is a
warning event; the loop goes on.

Steering: with a :class:`gca_viz.losses.GCALoss`, live changes made in the app (``ε``,
``n_iter``, relaxations, target prior) are applied to that loss object at the next
``rec.step`` and recorded with that step. The target prior can switch between ``pairs``
and the loss's own target (a class or domain prior needs labels the loop passes to the
loss).

End: ``rec.finish()`` (or leaving ``with Recorder(...) as rec:``); an uncaught exception
marks the run ``failed`` with its traceback (``sys.excepthook``), a normal exit without
``finish`` ends it (``atexit``), and a killed process becomes ``interrupted`` when the app
next reconciles the store (its pid is gone or its heartbeat stale).

Distributed (``torchrun``): create a Recorder on every rank and call it on every rank; only
rank 0 writes (the others keep no buffers and write nothing), and every ``sync_every``
steps rank 0 broadcasts stop requests and live changes, so every rank's loss changes at the
same step. Pass the embeddings the loss saw (the global batch, gathered with
:func:`gca_viz.distributed.gather_with_grad`) to ``rec.batch``.

Lightning: :class:`RecorderCallback` (a ``lightning.pytorch.Callback``) exists only when
``lightning`` is installed.
"""

from __future__ import annotations

import atexit
import copy
import inspect
import json
import math
import numbers
import os
import socket
import sqlite3
import sys
import threading
import time
import traceback
import warnings
import weakref
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from gca_viz import distributed, losses, metrics
from gca_viz._validate import FLOAT32_SQUARE_SAFE, integer, positive
from gca_viz.device import device_name
from gca_viz.runs import FROM_BATCH, RESERVE_BYTES, RunStore, StoreError
from gca_viz.train import _rebuild_loss, plan_arrays

__all__ = ["Recorder", "RecorderWarning", "apply_live_change"]  # + RecorderCallback (lightning)

_FAULTS = (StoreError, OSError, sqlite3.Error)
MAX_EMBEDDING_VALUE = FLOAT32_SQUARE_SAFE
"""The largest magnitude of an embedding entry a snapshot takes (its float32 square, in a
row's norm, must not overflow)."""
_MAX_ROWS = 100_000
"""Metric rows kept while the store cannot be written; older ones are dropped."""


class RecorderWarning(UserWarning):
    """A problem the recorder reports instead of raising into the training loop."""


def apply_live_change(loss: losses.GCALoss, change: Mapping[str, Any]) -> None:
    """Apply a live change (``epsilon``, ``n_iter``, relaxations, ``target`` and its
    weights) to ``loss`` in place, as :meth:`gca_viz.train.Trainer.apply_changes` does to
    its own loss; validated first: a ``ValueError`` changes nothing."""
    params = {k: v for k, v in change.items() if k not in ("step", "target")}
    target = change.get("target", loss.stages["target"].name)
    if target == loss.stages["target"].name:
        loss.set_params(**params)
        return
    new = _rebuild_loss(loss, target, params)
    loss.stages, loss.params, loss.target_matrix = new.stages, new.params, new.target_matrix


@dataclass
class _Snapshot:
    """What a due ``rec.batch`` hands to the writer thread (CPU copies)."""

    step: int
    z1: torch.Tensor  # (n, d) the batch's first rows
    z2: torch.Tensor
    y: np.ndarray  # (n,) the labels given, or zeros
    domains: np.ndarray | None
    loss: losses.GCALoss
    z_eval: torch.Tensor | None
    y_eval: np.ndarray | None
    labelled: bool = True  # whether the loop gave labels (else ``y`` is zeros)


def _names(value: Any, name: str) -> list[str]:
    """Label names given to :class:`Recorder` as a list of strings, or a ``ValueError``."""
    if isinstance(value, str) or not isinstance(value, Sequence | np.ndarray):
        raise ValueError(f"{name} must be a sequence of names, got {value!r}")
    return [str(v) for v in value]


class Recorder:
    """Streams a training loop of your own into a run store, as an external run.

    Args:
        store_dir: the store's directory (default :func:`gca_viz.runs.default_data_dir`:
            ``$GCA_RUNS_DIR`` or ``./runs``), created if missing; point the app at it.
        name: the run's name (default: the method and the script's name).
        config: your settings, stored as the run's config (JSON; other values as text).
            The recorder adds ``method``, ``layout``, ``target``, ``loss_params``,
            ``stages`` (a ``gca_viz`` loss), ``snapshot_every``, ``steps`` and
            ``recorder`` (host, pid, ranks, what can be steered).
        loss: your loss. A :class:`gca_viz.losses.GCALoss` is drawn as it is (its plan) and
            can be steered from the app; a name in :data:`gca_viz.losses.LOSSES`
            (``"gca_ince"``) is that method with its defaults, ``losses.get(name)``, kept as
            :attr:`loss` for your loop to call; any other callable gets InfoNCE's plan at
            ``epsilon``; ``None`` (default) records the loop without a loss of its own.
            Anything else (an unknown name, a number) is a ``ValueError``.
        snapshot_every: a snapshot at every multiple of this step (and at the first and the
            last step; 0: by time only).
        snapshot_seconds: seconds between two snapshots (``None``: by steps only).
        eval_batch: held-out inputs ``x`` or ``(x, labels)`` embedded with ``model`` at each
            snapshot for Geometry (a fixed subset: frames of the same points). Default:
            the first rows of the batch given to :meth:`batch`.
        model: the encoder ``model(x) -> (N, d)`` for ``eval_batch`` (the module itself,
            not a DDP wrapper).
        epsilon: ``ε`` of the InfoNCE plan drawn for a loss that is not a ``gca_viz`` loss
            (default: the loss's ``temperature``/``epsilon``/``tau`` attribute, else 0.5).
            A ``gca_viz`` loss draws its own plan at its own ``ε``: giving ``epsilon`` with
            one is a ``ValueError`` (it would be ignored).
        layout: that plan's layout, ``"cross"`` (default) or ``"joint"`` (NT-Xent); with a
            ``gca_viz`` loss, likewise refused (the loss has its ``layout``).
        steps: the steps you plan, for the progress bar (default ``config["steps"]``).
        embed_points: rows kept for Geometry and for alignment and uniformity.
        flush_every: seconds between two writes of the background thread.
        sync_every: under ``torchrun``, steps between two broadcasts of the app's requests.
        class_names, domain_names: the names of labels ``0, 1, ...`` and of domains, for the
            app's legends and pinned samples (stored in the config; default: the numbers).

    Attributes:
        loss: the loss given, or the one built from its name.
        run_id: the run's id in the store (``None`` on ranks other than 0, or when the
            store could not be written).
        changes: the live changes applied, each with its ``step``.
        writer_cpu: CPU seconds the background thread has spent (its share of the cost).
    """

    def __init__(
        self,
        store_dir: str | Path | None = None,
        *,
        name: str | None = None,
        config: Mapping[str, Any] | None = None,
        loss: Any = None,
        snapshot_every: int = 50,
        snapshot_seconds: float | None = None,
        eval_batch: Any = None,
        model: Callable[[torch.Tensor], Any] | None = None,
        epsilon: float | None = None,
        layout: str | None = None,
        steps: int | None = None,
        embed_points: int = 256,
        flush_every: float = 0.5,
        sync_every: int = 10,
        class_names: Sequence[str] | None = None,
        domain_names: Sequence[str] | None = None,
    ) -> None:
        snapshot_every = integer(snapshot_every, "snapshot_every", 0)
        if snapshot_seconds is not None:
            snapshot_seconds = positive(snapshot_seconds, "snapshot_seconds")
        embed_points = integer(embed_points, "embed_points", 2)
        # (flush_every = 0 spun the writer thread on a core; a steps of -3 was kept)
        flush_every = positive(flush_every, "flush_every")
        sync_every = integer(sync_every, "sync_every", 1)
        if steps is not None:
            steps = integer(steps, "steps", 1)
        self._names = {
            key: _names(value, key)
            for key, value in (("class_names", class_names), ("domain_names", domain_names))
            if value is not None
        }
        if eval_batch is not None and model is None:
            raise ValueError("eval_batch needs model= (the encoder that embeds it)")
        loss = _resolve_loss(loss)
        self.loss = loss
        self.gca = isinstance(loss, losses.GCALoss)
        if self.gca:
            _own_plan(loss, epsilon=epsilon, layout=layout)
        self.snapshot_every, self.snapshot_seconds = int(snapshot_every), snapshot_seconds
        self.model, self.embed_points = model, int(embed_points)
        self.eval_x, self.eval_y = _split_eval(eval_batch)
        self.flush_every, self.sync_every = flush_every, sync_every
        self.changes: list[dict[str, Any]] = []
        self.writer_cpu = 0.0
        self.run_id: int | None = None
        self.store: RunStore | None = None
        self._plan_loss: losses.GCALoss = (
            loss
            if self.gca
            else losses.get("ince", layout=layout or "cross", epsilon=_loss_epsilon(loss, epsilon))
        )
        self._dist = distributed.current()
        self._main = self._dist.is_main
        self._synced = self._dist.enabled and dist.is_available() and dist.is_initialized()
        self._stop = self._asked_stop = self._finished = False
        self._calls = 0
        self._last_step: int | None = None  # of rec.step (a step going back warns)
        self._reached: int | None = None  # of rec.step or rec.batch: the run's step
        self._last_snap: tuple[int, float] | None = None
        self._device_seen = False
        self._queue: deque[tuple[Any, ...]] = deque()
        self._inbox: list[tuple[int, dict[str, Any]]] = []
        self._seen_changes: set[int] = set()
        self._lock = threading.Lock()
        self._notices: deque[str] = deque()
        self._warned: set[str] = set()
        self._fault: str | None = None
        self._rows: list[tuple[int, int, str, float]] = []
        self._nan_since: int | None = None  # the loss is NaN or inf since this step
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self._reserve: Path | None = None
        self._total = 0
        if self._main:
            self._register(store_dir, name, dict(config or {}), steps)
        self._flush_notices()

    # ------------------------------------------------------------------ set-up

    def _describe(self, user: dict[str, Any], steps: int | None) -> dict[str, Any]:
        """The run's config: the user's settings and what the recorder knows."""
        loss = self._plan_loss
        steerable = self.gca and (not self._dist.enabled or self._synced)
        target = loss.stages["target"].name
        described: dict[str, Any] = {
            "method": loss.name if self.gca else user.get("method", _loss_name(self.loss)),
            "layout": loss.layout,
            "target": target,
            "loss_params": dict(loss.params),
            "snapshot_every": self.snapshot_every,
            "steps": int(steps if steps is not None else user.get("steps", 0) or 0),
            "recorder": {
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "argv": list(sys.argv),
                "world_size": self._dist.world_size,
                "gca_viz_loss": self.gca,
                "steerable": steerable,
                "targets": sorted({"pairs", target} - {"custom"}) if steerable else [],
                "snapshot_seconds": self.snapshot_seconds,
            },
        }
        if self.gca:
            described["stages"] = {k: s.name for k, s in loss.stages.items()}
        else:
            described["loss_params"] = {"epsilon": loss.params["epsilon"]}  # the drawn plan's
        safe = json.loads(json.dumps(user, default=str))
        return {"dataset": "own data", **safe, **described, **self._names}

    def _register(
        self, store_dir: str | Path | None, name: str | None, user: dict[str, Any], steps: Any
    ) -> None:
        config = self._describe(user, steps)
        self._total = int(config["steps"])
        script = Path(sys.argv[0]).stem if sys.argv and sys.argv[0] else "python"
        name = name or f"{config['method']} ({script})"
        try:
            self.store = RunStore(store_dir)
            self.run_id = self.store.register_external(name, config, pid=os.getpid())
        except _FAULTS as exc:
            self.store = None
            self._report("register", f"cannot record into the run store: {exc}; the loop goes "
                         "on unrecorded")  # fmt: skip
            return
        self._reserve = self.store.run_dir(self.run_id) / ".reserve"
        try:  # room for the fault event and the end on a disk that fills up
            self._reserve.write_bytes(bytes(RESERVE_BYTES))
        except OSError:
            self._reserve.unlink(missing_ok=True)
        _LIVE.add(self)
        _install_hooks()
        self._thread = threading.Thread(target=self._work, name="gca-recorder", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ the loop's calls

    @property
    def should_stop(self) -> bool:
        """Whether the app asked this run to stop (seen at the last :meth:`step`)."""
        return self._stop

    def step(self, step: int, loss: Any = None, **scalars: Any) -> None:
        """Record ``loss`` and other scalars (numbers or one-element tensors) at ``step``;
        apply the app's pending live changes to the loss and read its stop request.

        A value that is neither (a string, a tensor of several elements) is not recorded:
        a warning and an event, once per name and kind of value. A ``step`` below the
        previous call's is recorded as given (the curves are drawn by step, so its values
        land among the earlier ones) with one warning and event per run: pass a step that
        keeps counting across epochs."""
        if self._finished:
            self._after_finish()
            return
        number = _as_step(step)
        if number is None:
            self._bad("step", f"step must be an integer, got {step!r}; this call is skipped",
                      self._last_step)  # fmt: skip
            self._flush_notices()  # (at this call's line, not the next one's)
            return
        self._sync(number)
        previous, self._last_step = self._last_step, number
        self._reached = number
        if self.run_id is not None:
            if previous is not None and number < previous:
                self._bad("step:back", f"step {number} comes after step {previous}: steps "
                          "should not go back (keep counting across epochs); its values are "
                          f"recorded at step {number}", number)  # fmt: skip
            values = {"loss": loss, **scalars} if loss is not None else scalars
            good: dict[str, Any] = {}
            for key, value in values.items():
                if isinstance(value, torch.Tensor) and value.numel() == 1:
                    good[key] = value.detach()
                    if not self._device_seen:
                        self._device_seen = True
                        self._queue.append(("device", device_name(value.device)))
                elif isinstance(value, numbers.Real):
                    good[key] = value
                else:
                    what = f"{key} must be a number or a one-element tensor, got {_what(value)}"
                    self._bad(f"value:{key}:{type(value).__name__}",
                              f"step {number}: {what}; it is not recorded", number)  # fmt: skip
            self._queue.append(("metrics", number, good))
        self._flush_notices()

    def batch(
        self,
        step: int,
        z1: Any,
        z2: Any,
        labels: Any = None,
        domains: Any = None,
    ) -> None:
        """Offer the batch's embeddings (``(N, d)`` each, row ``i`` paired, as the loss saw
        them); when a snapshot is due, its first rows are copied off the device and the
        writer thread stores their plan, metrics and embeddings. ``labels`` colour the
        points (and feed a class prior), ``domains`` feed a domain prior."""
        if self._finished:
            self._after_finish()
            return
        if self.run_id is None:
            return
        number = _as_step(step)
        if number is None:
            return
        self._reached = number
        due = self._due(number)
        if due:
            self._last_snap = (number, time.monotonic())
        # shapes and dtypes at every call (metadata: no copy, no device sync); the labels'
        # values only when a snapshot takes them
        kind, problem = _check_pair(z1, z2)
        if problem:
            what = f"step {number}: {problem}" + ("; no snapshot" if due else "")
            self._bad(f"batch:{kind}", what, number)
            self._flush_notices()
            return
        if not due:
            for values, name in ((labels, "labels"), (domains, "domains")):
                if found := _label_layout(values, len(z1), name):
                    self._bad(name, f"step {number}: {found}", number)
            self._flush_notices()
            return
        if not self._device_seen:
            self._device_seen = True
            self._queue.append(("device", device_name(z1.device)))
        n = len(z1)
        rows = min(n, max(self.embed_points, 128))
        y = self._side(labels, n, "labels", number) if labels is not None else None
        dom = self._side(domains, n, "domains", number) if domains is not None else None
        labelled = y is not None
        y = np.zeros(n, dtype=np.int64) if y is None else y
        z_eval, y_eval = self._embed_eval(number)
        self._queue.append(
            (
                "snapshot",
                _Snapshot(
                    number,
                    z1[:rows].detach().to("cpu", copy=True),  # float32 in the writer thread,
                    z2[:rows].detach().to("cpu", copy=True),  # after a check of their range
                    y[:rows],
                    None if dom is None else dom[:rows],
                    _frozen(self._plan_loss),  # the writer thread's own, unsteered
                    z_eval,
                    y_eval,
                    labelled,
                ),
            )
        )
        self._flush_notices()

    def _side(self, values: Any, n: int, name: str, step: int) -> np.ndarray | None:
        """Labels or domains of a batch as ``(n,)`` integers, ``None`` (with a warning)
        if they are not that."""
        found = _labels(values, n, name)
        if isinstance(found, str):
            self._bad(name, f"step {step}: {found}; the snapshot goes without them", step)
            return None
        return found

    def finish(self, status: str | None = None, error: str | None = None) -> None:
        """End the run: write what is buffered and mark it ``finished`` (``stopped`` after
        a stop request; or ``status``, one of :data:`gca_viz.runs.STATUSES`), with
        ``error`` the text the app shows for it (a traceback for ``failed``). Idempotent."""
        self._finish(status, error)

    def _finish(self, status: str | None, error: str | None) -> None:
        """:meth:`finish`, called by it or by ``with``'s exit (its warnings name their line)."""
        if self._finished:
            return
        self._finished = True
        _LIVE.discard(self)
        if self.store is None or self.run_id is None:
            return
        self._closing.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=30)
        self._drain()
        self._release_reserve()
        if status is None and self._nan_since is not None:
            status, error = (
                "failed",
                (
                    f"The loss was not finite from step {self._nan_since} to the last step "
                    f"recorded, {self._reached}: the training diverged (a learning rate too "
                    "high, a log of 0 or a division by 0 in the loop?)."
                ),
            )
        status = status or ("stopped" if self._stop or self._asked_stop else "finished")
        try:
            self.store.end(self.run_id, status, self._reached, error)
        except _FAULTS as exc:
            self._report("end", f"could not record the end of run {self.run_id}: {exc}")
        self._flush_notices(depth=1)

    def __enter__(self) -> Recorder:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None:
            self._finish(None, None)
        else:
            self._finish(*_failure(kind, exc, tb))

    # --------------------------------------------------------- steering and stop

    def _sync(self, step: int) -> None:
        """Take the app's requests (all ranks at once under torchrun) and apply them."""
        if self._dist.enabled:
            if not self._synced:
                return
            self._calls += 1
            if self._calls % self.sync_every:
                return
            payload: list[Any] = [self._take() if self._main else None]
            dist.broadcast_object_list(payload, src=0)
            stop, changes = payload[0]
        else:
            stop, changes = self._take()
        self._stop = self._stop or stop
        for change_id, params in changes:
            self._apply(change_id, params, step)

    def _take(self) -> tuple[bool, list[tuple[int, dict[str, Any]]]]:
        with self._lock:
            inbox, self._inbox = self._inbox, []
            return self._asked_stop, inbox

    def _apply(self, change_id: int, params: dict[str, Any], step: int) -> None:
        try:
            if not self.gca:
                raise ValueError("the loss is not a gca_viz loss")
            apply_live_change(self.loss, params)
        except ValueError as exc:
            if self._main:
                self._queue.append(("drop", change_id))
                why = f"the live change {params} was not applied: {exc}"
                self._bad(f"change:{change_id}", f"step {step}: {why}", step)
            return
        self.changes.append({"step": step, **params})
        if self._main:
            self._queue.append(("applied", change_id, step))

    # -------------------------------------------------------------- snapshots

    def _due(self, step: int) -> bool:
        if self._last_snap is None or step == self._total:  # the first and the last
            return True
        last_step, last_time = self._last_snap
        # at the multiples of snapshot_every, as a Trainer snapshots (a loop counting from 1
        # snapshotted steps 1, 6, 11, ...; now 1, 5, 10, ...), or the first step past one
        every = self.snapshot_every
        by_steps = every > 0 and step // every > last_step // every
        by_time = (
            self.snapshot_seconds is not None
            and time.monotonic() - last_time >= self.snapshot_seconds
        )
        return by_steps or by_time

    def _embed_eval(self, step: int) -> tuple[torch.Tensor | None, np.ndarray | None]:
        """``eval_batch`` embedded with ``model`` (eval mode, no gradients), on the CPU."""
        if self.eval_x is None or self.model is None:
            return None, None
        model = self.model
        training = getattr(model, "training", None)
        try:
            if isinstance(model, torch.nn.Module):
                model.eval()
                device = next(model.parameters(), torch.empty(0)).device
            else:
                device = self.eval_x.device
            with torch.no_grad():
                z = model(self.eval_x[: self.embed_points].to(device))
        except Exception as exc:  # never into the loop: the README promises it
            why = f"model(eval_batch) failed ({type(exc).__name__}: {exc})"
            self._bad("eval", f"step {step}: {why}; Geometry uses the batch instead", step)
            self.eval_x = None  # not tried again at every snapshot
            return None, None
        finally:
            if isinstance(model, torch.nn.Module) and training:
                model.train()
        if not isinstance(z, torch.Tensor) or z.ndim != 2:
            why = f"model(eval_batch) gave {_what(z)}, not an (N, d) tensor"
            self._bad("eval", f"step {step}: {why}; Geometry uses the batch instead", step)
            return None, None
        y = self.eval_y if self.eval_y is not None else np.zeros(len(z), dtype=np.int64)
        return z.detach().to("cpu", torch.float32, copy=True), y[: len(z)]

    def _snapshot(self, snap: _Snapshot) -> None:
        """Compute and write one snapshot (writer thread)."""
        assert self.store is not None and self.run_id is not None
        step = snap.step
        if not (bool(torch.isfinite(snap.z1).all()) and bool(torch.isfinite(snap.z2).all())):
            self._event("nan", f"step {step}: the embeddings contain NaN or inf; no snapshot",
                        step)  # fmt: skip
            return
        top = max(float(snap.z1.abs().max()), float(snap.z2.abs().max()))
        if top > MAX_EMBEDDING_VALUE:  # (float32 squares overflow: norms became inf, rows 0)
            self._event("large", f"step {step}: the embeddings reach {top:.3g}, beyond the "
                        f"±{MAX_EMBEDDING_VALUE:g} a float32 snapshot can normalise; no "
                        "snapshot (scale them down)", step)  # fmt: skip
            return
        snap.z1, snap.z2 = snap.z1.float(), snap.z2.float()
        side: dict[str, Any] = {}
        target = snap.loss.stages["target"].name
        if target == "class":
            side["labels"] = torch.as_tensor(snap.y)
        elif target == "domain" and snap.domains is not None:
            side["domains"] = torch.as_tensor(snap.domains)
        plan = None
        if target == "class" and not snap.labelled:  # (zeros would make one class of all)
            why = "the loss's class prior needs labels: rec.batch(step, z1, z2, labels=y)"
            self._event("plan", f"step {step}: no plan snapshot ({why})", step)
        else:
            try:
                plan = plan_arrays(snap.loss, snap.z1, snap.z2, snap.y, step, **side)
            except ValueError as exc:
                self._event("plan", f"step {step}: no plan snapshot ({exc})", step)
        partner = None  # an eval batch has one view; a batch's rows have their positives
        n = min(len(snap.z1), self.embed_points)
        if snap.z_eval is not None and bool(torch.isfinite(snap.z_eval).all()):
            z, y = snap.z_eval, snap.y_eval
        else:
            if snap.z_eval is not None:
                self._event("eval", f"step {step}: model(eval_batch) gave NaN or inf; "
                            "Geometry uses the batch instead", step)  # fmt: skip
            z, y, partner = snap.z1[:n], snap.y[:n], snap.z2[:n]
        z = torch.nn.functional.normalize(z, dim=1)
        rows = [
            ("alignment", metrics.alignment(snap.z1[:n], snap.z2[:n])),
            ("uniformity", metrics.uniformity(z)),
        ]
        if plan is not None:
            for key, name in (("positive_mass", "positive_mass"),
                              ("marginal_error", "marginal_error"),
                              ("entropy", "plan_entropy")):  # fmt: skip
                if f"diag_{key}" in plan:
                    rows.append((name, float(plan[f"diag_{key}"])))
            self.store.write_snapshot(self.run_id, step, "plan", plan)
        self._check_names("class_names", snap.y if snap.labelled else None, step)
        self._check_names("domain_names", snap.domains, step)
        emb = {"z": z.numpy(), "y": np.asarray(y), "step": np.array(step)}
        if "class_names" in self._names:  # as a Trainer's snapshots carry them
            emb["class_names"] = np.array(self._names["class_names"], dtype=str)
        if partner is not None:  # the batch's rows (their domains), other samples each step
            emb["z_partner"] = torch.nn.functional.normalize(partner, dim=1).numpy()
            emb[FROM_BATCH] = np.array(True)
            if snap.domains is not None:
                emb["domain"] = np.asarray(snap.domains)[: len(z)]
        self.store.write_snapshot(self.run_id, step, "embeddings", emb)
        self._rows += [(self.run_id, step, k, v) for k, v in rows]

    def _check_names(self, key: str, values: np.ndarray | None, step: int) -> None:
        """A warning, once, when the labels or domains of a snapshot reach past the names
        given for them (the app's legends show the others as numbers)."""
        names = self._names.get(key)
        if names is None or values is None or not len(values):
            return
        top = int(np.max(values))
        if top >= len(names) or int(np.min(values)) < 0:
            self._event(key, f"step {step}: the {_WHAT_NAMED[key]} run from "
                        f"{int(np.min(values))} to {top}, but {key} names {len(names)} "
                        f"(0 to {len(names) - 1}); the legends show the others as numbers",
                        step)  # fmt: skip

    # ---------------------------------------------------------- writer thread

    def _work(self) -> None:
        last_beat = time.monotonic()
        while not self._closing.wait(self.flush_every):
            start = time.thread_time()
            wrote = self._drain()
            self._poll()
            if not wrote and time.monotonic() - last_beat > 2.0:
                try:
                    assert self.store is not None and self.run_id is not None
                    self.store.beat(self.run_id)
                except _FAULTS:
                    pass
            if wrote:
                last_beat = time.monotonic()
            self.writer_cpu += time.thread_time() - start

    def _poll(self) -> None:
        assert self.store is not None and self.run_id is not None
        try:
            stop, pending = self.store.requests(self.run_id)
        except (*_FAULTS, ValueError):  # ValueError: the run was deleted from the app
            return
        with self._lock:
            self._asked_stop = self._asked_stop or stop
            for change_id, params in pending:
                if change_id not in self._seen_changes:
                    self._seen_changes.add(change_id)
                    self._inbox.append((change_id, params))

    def _drain(self) -> bool:
        """Write what the loop queued; ``True`` if metrics were written. Faults of the
        store are reported once; metric rows wait for the next try."""
        assert self.store is not None and self.run_id is not None
        store, run_id = self.store, self.run_id
        step = self._reached or 0
        while self._queue:
            item = self._queue.popleft()
            try:
                if item[0] == "metrics":
                    step = item[1]
                    for key, value in item[2].items():
                        number = float(value)
                        if not math.isfinite(number):
                            more = (
                                "; if it stays so, the run ends as failed (diverged)"
                                if key == "loss"
                                else ""
                            )
                            self._event(f"nan:{key}", f"step {step}: {key} is {number}{more}",
                                        step)  # fmt: skip
                        if key == "loss":  # the first step of a non-finite stretch, or None
                            finite = math.isfinite(number)
                            self._nan_since = None if finite else (self._nan_since or step)
                        self._rows.append((run_id, step, key, number))
                elif item[0] == "snapshot":
                    self._snapshot(item[1])
                elif item[0] == "applied":
                    store.mark_applied(item[1], item[2])
                elif item[0] == "drop":
                    store.drop_change(item[1])
                elif item[0] == "device":
                    store.set_device(run_id, item[1])
                elif item[0] == "event":
                    store.add_event(run_id, "warning", item[1], item[2])
            except _FAULTS as exc:
                self._write_fault(exc)
            except Exception as exc:  # never into the loop: a bug here is an event
                self._event("internal", f"the recorder skipped {item[0]}: {exc!r}", step)
        if not self._rows:
            return False
        try:
            store.write_metrics(
                run_id, self._rows, step if self._reached is None else self._reached
            )
        except _FAULTS as exc:
            self._write_fault(exc)
            del self._rows[:-_MAX_ROWS]
            return False
        self._rows = []
        if self._fault is not None:
            try:
                store.add_event(run_id, "info", "the run store can be written again", step)
            except _FAULTS:
                pass
            self._fault = None
        return True

    def _write_fault(self, exc: BaseException) -> None:
        if self._fault is None:
            self._fault = str(exc)
            self._release_reserve()  # room for the event on a full disk
            self._event("fault", f"the recorder cannot write to the run store ({exc}); the "
                        "loop goes on, and metrics wait in memory")  # fmt: skip

    def _release_reserve(self) -> None:
        if self._reserve is not None:
            try:
                self._reserve.unlink(missing_ok=True)
            except OSError:
                pass

    # ------------------------------------------------------------------ notices

    def _report(self, key: str, message: str) -> None:
        """A warning, once per ``key``, raised in the loop's thread at its next call."""
        if key not in self._warned:
            self._warned.add(key)
            self._notices.append(message)

    def _bad(self, key: str, message: str, step: int | None = None) -> None:
        """Bad input from the loop: a warning and an event, once per ``key``."""
        if key in self._warned:
            return
        self._report(key, message)
        if self.run_id is not None:
            self._queue.append(("event", message, step))

    def _event(self, key: str, message: str, step: int | None = None) -> None:
        """A warning event in the store (writer thread), once per ``key``."""
        if key in self._warned:
            return
        self._report(key, message)
        if self.store is None or self.run_id is None:
            return
        try:
            self.store.add_event(self.run_id, "warning", message, step)
        except _FAULTS:
            pass

    def _after_finish(self) -> None:
        """A warning, once, for a call to :meth:`step` or :meth:`batch` after :meth:`finish`."""
        if self.run_id is not None:
            self._report("finished", f"run {self.run_id} is finished: step() and batch() "
                         "after finish() are not recorded")  # fmt: skip
        self._flush_notices(depth=1)

    def _flush_notices(self, depth: int = 0) -> None:
        """Raise the pending notices as warnings at the loop's line that called the public
        method (``depth``: the frames between that method and this one)."""
        while self._notices:
            warnings.warn(self._notices.popleft(), RecorderWarning, stacklevel=3 + depth)


# --------------------------------------------------------------------- helpers


def _frozen(loss: losses.GCALoss) -> losses.GCALoss:
    """A copy of ``loss`` that a live change to ``loss`` leaves alone (the changes replace
    its ``stages``, update its ``params`` in place; it holds no tensors but a custom
    target's matrix, which nothing changes). Cheaper than a deep copy: this runs in the
    loop's thread."""
    out = copy.copy(loss)
    out.stages, out.params = dict(loss.stages), dict(loss.params)
    return out


def _split_eval(batch: Any) -> tuple[torch.Tensor | None, np.ndarray | None]:
    if batch is None:
        return None, None
    x, y = batch if isinstance(batch, (tuple, list)) else (batch, None)
    if not isinstance(x, torch.Tensor) or x.ndim < 2 or len(x) < 2:
        raise ValueError(f"eval_batch must hold a tensor of >= 2 inputs, got {_what(x)}")
    labels = None if y is None else _labels(y, len(x), "eval_batch labels")
    if isinstance(labels, str):
        raise ValueError(labels)
    return x, labels


def _labels(values: Any, n: int, name: str) -> np.ndarray | str:
    """``(n,)`` integer labels, zeros for ``None``, or a message saying what is wrong."""
    if values is None:
        return np.zeros(n, dtype=np.int64)
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    try:
        arr = np.asarray(values)
    except (TypeError, ValueError):
        return f"{name} must be an array of {n} integers, got {_what(values)}"
    if arr.shape != (n,) or not np.issubdtype(arr.dtype, np.integer):
        names = (
            f" (names: pass their indices, np.unique(names, return_inverse=True)[1], and "
            f"the names as Recorder({_NAMES_FOR[name]}=...))"
            if arr.dtype.kind in "USO" and name in _NAMES_FOR
            else ""
        )
        return _not_integers(name, n, arr.dtype, arr.shape) + names
    return arr.astype(np.int64)


def _not_integers(name: str, n: int, dtype: Any, shape: tuple[int, ...]) -> str:
    """The message for labels or domains that are not ``n`` integers."""
    return f"{name} must be {n} integers, got {dtype} of shape {tuple(shape)}"


_NAMES_FOR = {"labels": "class_names", "domains": "domain_names"}
_WHAT_NAMED = {names: what for what, names in _NAMES_FOR.items()}


def _label_layout(values: Any, n: int, name: str) -> str:
    """What is wrong with the shape or dtype of a batch's labels or domains, read without
    their values (``""``: nothing, or a list, whose values :func:`_labels` reads)."""
    if isinstance(values, torch.Tensor):
        kind = values.dtype
        integer = not (kind.is_floating_point or kind.is_complex or kind == torch.bool)
    elif isinstance(values, np.ndarray):
        kind, integer = values.dtype, np.issubdtype(values.dtype, np.integer)
    else:
        return ""
    if tuple(values.shape) == (n,) and integer:
        return ""
    return _not_integers(name, n, kind, tuple(values.shape))


def _check_pair(z1: Any, z2: Any) -> tuple[str, str]:
    """``(kind, message)`` of what is wrong with a batch's embeddings (``""`` if nothing)."""
    for name, z in (("z1", z1), ("z2", z2)):
        if not isinstance(z, torch.Tensor):
            return "type", f"{name} must be a torch.Tensor, got {_what(z)}"
        if z.ndim != 2 or len(z) < 2 or not z.is_floating_point():
            shape = f"{z.dtype} {tuple(z.shape)}"
            return "shape", f"{name} must be a float (N >= 2, d) tensor, got {shape}"
    if z1.shape != z2.shape:
        shapes = f"{tuple(z1.shape)} != {tuple(z2.shape)}"
        return "pair", f"z1 and z2 must have the same shape: {shapes}"
    return "", ""


def _as_step(step: Any) -> int | None:
    if isinstance(step, bool):
        return None
    if isinstance(step, numbers.Integral):
        return int(step)
    if isinstance(step, torch.Tensor) and step.numel() == 1 and not step.is_floating_point():
        return int(step)
    return None


def _what(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return f"a {type(value).__name__}"


def _resolve_loss(loss: Any) -> Any:
    """``loss`` as the recorder keeps it: a name built with :func:`gca_viz.losses.get` (an
    unknown one refused there, naming the known ones), ``None`` or a callable as given."""
    if isinstance(loss, str):
        return losses.get(loss)
    if loss is not None and not callable(loss):
        raise ValueError(
            f"loss must be None, a loss name ({', '.join(losses.LOSSES)}) or a callable loss "
            f"such as losses.get('gca_ince'), got {_what(loss)}"
        )
    return loss


def _loss_name(loss: Any) -> str:
    """The method the app shows for ``loss``: a preset's or module's ``name``, else a plain
    function's own name (``ntxent``, not "function"), else its class's (``MSELoss``)."""
    if loss is None:
        return "external"
    named = getattr(loss, "name", None)
    if not named and inspect.isroutine(loss):
        named = getattr(loss, "__name__", None)
    return str(named or type(loss).__name__)


def _own_plan(loss: losses.GCALoss, **given: Any) -> None:
    """Refuse ``epsilon`` / ``layout`` given with a ``gca_viz`` loss: its plan is drawn at
    its own (they were ignored without a word)."""
    for name, value in given.items():
        if value is not None:
            own = loss.params.get("epsilon") if name == "epsilon" else loss.layout
            raise ValueError(
                f"{name}: a gca_viz loss ({loss.name}) draws its own plan, at its own {name} "
                f"({own}); {name}= is for a loss of your own. Drop it, or build the loss with "
                f"losses.get(..., {name}=...)"
            )


def _loss_epsilon(loss: Any, epsilon: float | None) -> float:
    if epsilon is not None:
        return float(epsilon)
    for attr in ("temperature", "epsilon", "tau"):
        value = getattr(loss, attr, None)
        if isinstance(value, numbers.Real) and float(value) > 0:
            return float(value)
    return 0.5


def _failure(
    kind: type[BaseException] | None, exc: BaseException, tb: TracebackType | None
) -> tuple[str, str]:
    """``(status, error text)`` for an exception that ended the loop."""
    text = "".join(traceback.format_exception(kind, exc, tb))
    return ("stopped" if isinstance(exc, KeyboardInterrupt) else "failed"), text


# ------------------------------------------------- process end: crash and exit

_LIVE: weakref.WeakSet[Recorder] = weakref.WeakSet()
_HOOKED = False


def _install_hooks() -> None:
    """Once per process: an uncaught exception fails the live recorders' runs, an exit
    without :meth:`Recorder.finish` ends them."""
    global _HOOKED
    if _HOOKED:
        return
    _HOOKED = True
    previous = sys.excepthook

    def hook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        for rec in list(_LIVE):
            try:
                rec.finish(*_failure(kind, exc, tb))
            except Exception:  # never hide the original error
                pass
        previous(kind, exc, tb)

    sys.excepthook = hook
    atexit.register(_finish_all)


def _finish_all() -> None:
    """At the process's exit, the runs whose loop never called :meth:`Recorder.finish`:
    ``finished`` when they reached the steps planned (or none were planned), else
    ``interrupted``, saying so."""
    for rec in list(_LIVE):
        try:
            planned, reached = rec._total, rec._reached or 0  # (0: none planned)
            if planned and reached < planned - 1:  # (a loop may count from 0)
                rec.finish("interrupted", f"The script ended at step {reached} of the "
                           f"{planned} planned without rec.finish().")  # fmt: skip
            else:
                rec.finish()
        except Exception:
            pass


# ------------------------------------------------------------------ lightning


def __getattr__(name: str) -> Any:
    if name == "RecorderCallback":
        return _lightning_callback()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _lightning_callback() -> type:
    """:class:`RecorderCallback`, built on first use (lightning is an optional extra)."""
    try:
        from lightning.pytorch import Callback  # type: ignore[import-not-found, unused-ignore]
    except ImportError as exc:
        raise ImportError(
            "gca_viz.watch.RecorderCallback needs lightning "
            "(pip install 'gca-explorer[lightning]'); without it, call a Recorder from your loop"
        ) from exc

    class RecorderCallback(Callback):  # type: ignore[misc, unused-ignore]
        """Records a ``lightning.Trainer`` fit with a :class:`Recorder`: the step's loss
        (``outputs["loss"]``) and the module's ``last_embeddings`` (``(z1, z2)`` or
        ``(z1, z2, labels)``, if it sets them); the app's Stop stops the trainer."""

        def __init__(self, store_dir: str | Path | None = None, **kwargs: Any) -> None:
            self.store_dir, self.kwargs = store_dir, kwargs
            self.recorder: Recorder | None = None

        def on_train_start(self, trainer: Any, pl_module: Any) -> None:
            self.recorder = Recorder(self.store_dir, **self.kwargs)

        def on_train_batch_end(
            self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
        ) -> None:
            rec = self.recorder
            if rec is None:
                return
            step = int(trainer.global_step)
            loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
            rec.step(step, loss=loss)
            seen = getattr(pl_module, "last_embeddings", None)
            if isinstance(seen, (tuple, list)) and len(seen) >= 2:
                rec.batch(step, *seen[:3])
            if rec.should_stop:
                trainer.should_stop = True

        def on_train_end(self, trainer: Any, pl_module: Any) -> None:
            if self.recorder is not None:
                self.recorder.finish()

        def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
            if self.recorder is not None:
                self.recorder.finish(*_failure(type(exception), exception, exception.__traceback__))

    globals()["RecorderCallback"] = RecorderCallback
    return RecorderCallback
