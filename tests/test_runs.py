"""Background runs (gca_viz.runs): real run processes writing a real SQLite store.

Nothing is mocked: every run is ``python -m gca_viz train --store DIR --run-id N`` started by
:class:`RunStore`, and the assertions read what those processes wrote to ``runs.db`` and to
their run directories. The ``runs_dir`` fixture (tests/conftest.py) cancels queued runs and
SIGKILLs every run process a test left behind, so no process outlives its test. Waits for
a run's work last while the runs make progress (tests/helpers.py: a loaded machine is slow,
a stall fails); a wait that bounds how promptly something happens (a stop) is fixed.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from gca_viz.data import load_dataset
from gca_viz.device import KEEP_FREED_MEMORY_ENV
from gca_viz.runner import StoreWriter
from gca_viz.runs import (
    ACTIVE,
    DATA_DIR_ENV,
    NotOwner,
    RunStore,
    default_data_dir,
    default_max_concurrent,
)
from gca_viz.train import Callback, TrainConfig, Trainer
from tests.helpers import (
    add_run,
    cmdline,
    kill_runs,
    pid_running,
    record_external_run,
    wait_for,
    wait_for_run,
    wait_for_status,
)
from tests.test_data import write_user_data

# A small, fast run: digits through a narrow MLP, batches of 32 (about 150 steps/s on a core).
FAST: dict[str, Any] = {
    "batch_size": 32,
    "encoder_params": {"hidden": 32},
    "head_hidden": 32,
    "out_dim": 8,
    "method": "gca_ince",
    "device": "cpu",
    "eval_every": 0,
    "snapshot_every": 0,
    "checkpoint_every": 0,
    "steps": 100_000,  # "until stopped"; tests that need a natural end set fewer
}


def cfg(**changes: Any) -> dict[str, Any]:
    return {**FAST, **changes}


def status(store: RunStore, run_id: int) -> str:
    return store.get(run_id).status


def loss_steps(store: RunStore, run_id: int) -> np.ndarray:
    m = store.metrics(run_id, ["loss"])
    return m["loss"][:, 0].astype(int) if "loss" in m else np.zeros(0, dtype=int)


def wait_training(store: RunStore, run_id: int, min_step: int = 1) -> tuple[int, float]:
    """Wait until the run has recorded a loss at ``min_step`` or later; return it."""
    return wait_for_run(
        store,
        lambda: (m := store.latest_metrics(run_id).get("loss")) and m[0] >= min_step and m,
        f"run {run_id} to record a loss at step >= {min_step}",
    )


def wait_status(store: RunStore, run_id: int, want: str, timeout: float | None = None) -> None:
    """Wait until the run's status is ``want``: while the runs make progress, or within
    ``timeout`` seconds when the test bounds how soon it must happen."""
    if timeout is None:
        wait_for_status(store, run_id, want)
    else:
        wait_for(lambda: status(store, run_id) == want, timeout, f"run {run_id} to be {want}")


def load_checkpoint(store: RunStore, run_id: int) -> dict[str, Any]:
    state: dict[str, Any] = torch.load(
        store.run_dir(run_id) / "checkpoint.pt", map_location="cpu", weights_only=True
    )
    return state


# ---------------------------------------------------------------------------- lifecycle


def test_launch_streams_metrics_and_stop_checkpoints_within_two_seconds(runs_dir: Path) -> None:
    store = RunStore(runs_dir, max_concurrent=1)
    run_id = store.launch(cfg())

    first = wait_training(store, run_id)
    later = wait_training(store, run_id, first[0] + 1)
    assert later[0] > first[0] and np.isfinite(later[1])
    info = store.get(run_id)
    assert info.status == "running"
    assert pid_running(info.pid)
    assert info.heartbeat is not None and time.time() - info.heartbeat < 5.0
    args = cmdline(info.pid)  # type: ignore[arg-type]
    assert args[args.index("--run-id") + 1] == str(run_id)
    # One run at a time on this machine: it gets all the cores as threads.
    assert args[args.index("--threads") + 1] == str(max(1, (os.cpu_count() or 1) // 1))

    t0 = time.monotonic()
    store.stop(run_id)
    wait_for(lambda: status(store, run_id) == "stopped", 10, "the stop")
    elapsed = time.monotonic() - t0
    assert elapsed < 2.0, f"stop took {elapsed:.2f}s"

    info = store.get(run_id)
    assert info.ended is not None and info.error is None
    state = load_checkpoint(store, run_id)
    assert state["step"] == info.step > 0
    assert loss_steps(store, run_id)[-1] == info.step
    wait_for(lambda: not pid_running(info.pid), 10, "the stopped process to exit")


def test_a_run_records_the_device_it_trains_on(runs_dir: Path) -> None:
    store = RunStore(runs_dir, max_concurrent=1)
    run_id = store.launch(cfg(device="auto", steps=5))
    assert store.get(run_id).device is None  # not known before the process starts
    wait_status(store, run_id, "finished")
    expected = "cuda:0" if torch.cuda.is_available() else "cpu"  # auto on a Linux machine
    assert store.get(run_id).device == expected
    assert store.get(run_id).config["device"] == "auto"  # the request is kept as is


def test_a_run_trains_on_an_uploaded_npz_as_the_train_page_launches_it(
    runs_dir: Path, tmp_path: Path
) -> None:
    """The Train page saves an upload under the store's uploads/ and launches a run on its
    resolved path; the run process loads it, trains, evaluates and checkpoints, and the lab
    pages rebuild its encoder from the same path."""
    from gca_viz.lab.batches import data_batch, trained_encoder
    from gca_viz.userdata import save_upload

    store = RunStore(runs_dir, max_concurrent=1)
    upload = write_user_data(tmp_path)["npz"].read_bytes()
    path = save_upload(upload, "mine.npz", store.dir / "uploads", max_bytes=2**20)
    dataset = str(path.resolve())  # what views/_train_launch.choose_dataset returns
    run_id = store.launch(
        cfg(dataset=dataset, dataset_params={}, steps=5, batch_size=8, eval_every=5,
            checkpoint_every=5),
        name=None,
    )  # fmt: skip
    wait_for_run(store, lambda: status(store, run_id) not in ACTIVE, "the run to end")
    info = store.get(run_id)
    assert info.status == "finished", info.error
    assert info.step == 5 and info.config["dataset"] == dataset
    assert path.name != "mine.npz"  # stored under a content hash: not how pages name it
    assert info.name == "GCA-INCE on mine.npz"
    assert loss_steps(store, run_id).tolist() == [1, 2, 3, 4, 5]
    assert "knn_acc" in store.latest_metrics(run_id)
    trained = trained_encoder(store, run_id)
    batch = data_batch(encoder=trained, n=6, seed=0)
    assert batch.z1.shape == (6, 8) and trained.dataset == dataset


def test_stop_right_after_launch_ends_stopped(runs_dir: Path) -> None:
    store = RunStore(runs_dir, max_concurrent=1)
    run_id = store.launch(cfg())
    store.stop(run_id)

    def ended() -> bool:
        store.reconcile()
        return status(store, run_id) not in ACTIVE

    wait_for_run(store, ended, "the run to end")
    assert status(store, run_id) == "stopped"


def test_a_checkpoint_is_written_after_the_metrics_of_its_steps(runs_dir: Path) -> None:
    """When a checkpoint exists, the store holds the metrics of every step up to it: a run
    killed right after writing it resumes at the next step and never records them again.
    (The writer buffers metrics for up to ``flush_every`` seconds; here 150 steps/s.)"""
    store = RunStore(runs_dir, max_concurrent=1)
    with store._db(write=True) as db:  # a run record without a process: trained in here
        run_id = int(
            db.execute(
                "INSERT INTO runs (name, config, status, created) VALUES ('t', '{}', 'running', ?)",
                (time.time(),),
            ).lastrowid
            or 0
        )
    store.run_dir(run_id).mkdir(parents=True)
    seen: list[tuple[int, list[int]]] = []

    class Checker(Callback):
        def on_checkpoint(self, trainer: Trainer, state: dict[str, Any]) -> None:
            seen.append((trainer.step, loss_steps(store, run_id).tolist()))

    writer = StoreWriter(store, run_id, flush_every=3600.0)
    trainer = Trainer(TrainConfig.from_dict(cfg(steps=12, checkpoint_every=5)), [writer, Checker()])
    assert trainer.fit() == "finished"
    assert [step for step, _ in seen] == [5, 10, 12]
    for step, recorded in seen:
        assert recorded == list(range(1, step + 1)), f"at the checkpoint of step {step}"


def test_killed_run_is_interrupted_and_resumes_from_its_checkpoint(runs_dir: Path) -> None:
    steps = 500
    store = RunStore(runs_dir, max_concurrent=1)
    run_id = store.launch(cfg(steps=steps, checkpoint_every=5))
    ckpt = store.run_dir(run_id) / "checkpoint.pt"
    wait_training(store, run_id, 12)
    wait_for_run(store, ckpt.exists, "a checkpoint")
    pid = store.get(run_id).pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not pid_running(pid), 10, "the killed process to exit")

    assert status(store, run_id) == "running"  # nobody noticed yet
    assert store.reconcile() == [run_id]
    info = store.get(run_id)
    assert info.status == "interrupted" and info.error
    ckpt_step = int(load_checkpoint(store, run_id)["step"])
    assert 5 <= ckpt_step < steps and ckpt_step % 5 == 0
    with store._db() as db:
        (kept_rowid,) = db.execute(
            "SELECT MAX(rowid) FROM metrics WHERE run_id=? AND step<=?", (run_id, ckpt_step)
        ).fetchone()

    store.resume(run_id)
    wait_status(store, run_id, "finished")

    info = store.get(run_id)
    assert info.step == steps and info.error is None
    recorded = loss_steps(store, run_id)
    np.testing.assert_array_equal(recorded, np.arange(1, steps + 1))  # no gap, no duplicate
    with store._db() as db:
        (first_new,) = db.execute(
            "SELECT MIN(step) FROM metrics WHERE run_id=? AND name='loss' AND rowid>?",
            (run_id, kept_rowid),
        ).fetchone()
    assert first_new == ckpt_step + 1
    assert load_checkpoint(store, run_id)["step"] == steps


def _suspended_and_marked_interrupted(store: RunStore, run_id: int) -> int:
    """Suspend the run's process (SIGSTOP: a laptop's sleep, a debugger) until the store,
    which has a 1 s heartbeat timeout, marks it interrupted; return its pid."""
    pid = store.get(run_id).pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    wait_for(lambda: store.reconcile() == [run_id], 30, "the silent run to be marked")
    assert status(store, run_id) == "interrupted" and pid_running(pid)
    return pid


def test_a_suspended_run_marked_interrupted_takes_its_run_back_when_it_answers(
    runs_dir: Path,
) -> None:
    """A process marked interrupted while it was suspended came back and trained on, and
    the store kept saying "interrupted" (the page offered Resume: two writers)."""
    steps = 400
    store = RunStore(runs_dir, max_concurrent=1, heartbeat_timeout=1.0)
    run_id = store.launch(cfg(steps=steps, checkpoint_every=50))
    wait_training(store, run_id, 20)
    pid = _suspended_and_marked_interrupted(store, run_id)
    assert store.get(run_id).live  # (the pages keep polling it)
    os.kill(pid, signal.SIGCONT)
    wait_status(store, run_id, "finished")
    info = store.get(run_id)
    assert info.step == steps and info.error is None and info.pid == pid
    np.testing.assert_array_equal(loss_steps(store, run_id), np.arange(1, steps + 1))
    notes = [e["message"] for e in store.events(run_id)]
    assert any("answered again after it was marked interrupted" in n for n in notes), notes


def test_resuming_a_suspended_run_leaves_one_process_training_it(runs_dir: Path) -> None:
    """Resume on a run marked interrupted whose process was only suspended started a
    second process; once the first woke, both wrote (700 loss rows for 400 steps)."""
    steps = 400
    store = RunStore(runs_dir, max_concurrent=1, heartbeat_timeout=1.0)
    run_id = store.launch(cfg(steps=steps, checkpoint_every=20))
    ckpt = store.run_dir(run_id) / "checkpoint.pt"
    wait_training(store, run_id, 30)
    wait_for_run(store, ckpt.exists, "a checkpoint")
    old = _suspended_and_marked_interrupted(store, run_id)
    started = store.get(run_id).started
    store.resume(run_id)
    wait_for(lambda: not pid_running(old), 10, "the suspended process to be killed")
    wait_status(store, run_id, "finished")
    info = store.get(run_id)
    assert info.step == steps and info.pid != old
    assert info.started == started  # (a resume moved it: the runs table's order broke)
    np.testing.assert_array_equal(loss_steps(store, run_id), np.arange(1, steps + 1))


def test_a_process_whose_run_went_to_another_writes_nothing(runs_dir: Path) -> None:
    """The store refuses the writes of a process that is not the run's (the resumed run's
    new process owns it; a late write of the old one would duplicate records)."""
    store = RunStore(runs_dir)
    run_id = add_run(store, config=cfg(steps=10), status="running", pid=4242, heartbeat=time.time())
    store.write_metrics(run_id, [(run_id, 1, "loss", 1.0)], 1, owner=4242)
    for write in (
        lambda: store.write_metrics(run_id, [(run_id, 2, "loss", 1.0)], 2, owner=99),
        lambda: store.beat(run_id, owner=99),
        lambda: store.end(run_id, "failed", 2, "late", owner=99),
        lambda: store.write_snapshot(run_id, 2, "plan", {"plan": np.eye(2)}, owner=99),
    ):
        with pytest.raises(NotOwner, match=rf"^run {run_id} is no longer trained by process 99"):
            write()
    info = store.get(run_id)
    assert info.status == "running" and info.step == 1 and info.error is None
    assert loss_steps(store, run_id).tolist() == [1] and not store.snapshots(run_id, "plan")


def test_a_recorded_loop_marked_interrupted_is_running_again_when_it_writes(
    runs_dir: Path,
) -> None:
    """A notebook suspended past the heartbeat timeout wrote on when it woke, and its run
    stayed "interrupted" (its loop is the only writer of an external run)."""
    store = RunStore(runs_dir)
    run_id = add_run(store, config={"method": "gca_ince", "recorder": {"host": "h"}},
                     status="interrupted", external=1, error="silent", pid=1)  # fmt: skip
    store.write_metrics(run_id, [(run_id, 7, "loss", 0.5)], 7)
    info = store.get(run_id)
    assert (info.status, info.error, info.step) == ("running", None, 7)
    mine = add_run(store, config=cfg(steps=10), status="interrupted", pid=1, error="silent")
    store.write_metrics(mine, [(mine, 3, "loss", 0.5)], 3)  # (not the store's own runs)
    assert store.get(mine).status == "interrupted"


def test_exception_in_the_loss_fails_the_run_with_its_traceback(runs_dir: Path) -> None:
    store = RunStore(runs_dir, max_concurrent=1)
    # Valid as a config, but digits has no domain labels: the loss raises at the first step.
    run_id = store.launch(cfg(target="domain", steps=50))
    wait_for_run(store, lambda: status(store, run_id) not in ACTIVE, "the run to end")

    info = store.get(run_id)
    assert info.status == "failed"
    assert info.error is not None
    assert "Traceback" in info.error and "domain" in info.error
    assert info.ended is not None and info.step == 0
    wait_for_run(store, lambda: not pid_running(info.pid), "the failed process to exit")
    assert store.reconcile() == []  # a failed run is not 'running': nothing to reconcile


def test_queued_run_starts_when_the_running_one_finishes(runs_dir: Path) -> None:
    store = RunStore(runs_dir, max_concurrent=1)
    first = store.launch(cfg(steps=40))
    second = store.launch(cfg(steps=20))
    third = store.launch(cfg(steps=20))
    assert status(store, first) == "running"
    assert status(store, second) == "queued" and store.get(second).pid is None
    store.stop(third)  # a queued run stops at once, without a process
    assert status(store, third) == "stopped" and store.get(third).pid is None

    both_running = []

    def second_done() -> bool:
        # No schedule() here: the finishing run process starts the next one itself.
        states = {r.id: r.status for r in store.list_runs()}
        if states[first] == "running" and states[second] == "running":
            both_running.append(states)
        return states[second] == "finished"

    wait_for_run(store, second_done, "the queued run to start and finish")
    a, b = store.get(first), store.get(second)
    assert a.status == "finished" and a.step == 40
    assert b.step == 20
    assert not both_running
    assert a.ended is not None and b.started is not None and b.started >= a.ended
    assert status(store, third) == "stopped" and store.get(third).pid is None


@pytest.mark.skipif(
    default_max_concurrent() != 1,
    reason="the wrong limit only shows when the app's limit differs from the machine default",
)
def test_finishing_run_fills_the_apps_free_slot(runs_dir: Path) -> None:
    store = RunStore(runs_dir, max_concurrent=2)
    short = store.launch(cfg(steps=30))
    long = store.launch(cfg())
    queued = store.launch(cfg(steps=20))
    assert [status(store, r) for r in (short, long, queued)] == ["running", "running", "queued"]
    pid = store.get(long).pid
    assert pid is not None
    args = wait_for(lambda: cmdline(pid), 10, "the run's command line")
    assert args[args.index("--threads") + 1] == str(max(1, (os.cpu_count() or 1) // 2))

    wait_status(store, short, "finished")
    short_pid = store.get(short).pid
    wait_for_run(store, lambda: not pid_running(short_pid), "the short run to exit")
    assert status(store, long) == "running"
    assert status(store, queued) != "queued"  # a slot of 2 was free


def test_concurrent_readers_see_consistent_growing_metrics(runs_dir: Path) -> None:
    steps = 300
    store = RunStore(runs_dir, max_concurrent=1)
    run_id = store.launch(cfg(steps=steps, snapshot_every=25))
    wait_for(lambda: status(store, run_id) == "running", 10)

    errors: list[str] = []
    counts: list[list[int]] = [[] for _ in range(3)]
    stop = threading.Event()

    def reader(k: int) -> None:
        mine = RunStore(runs_dir)  # each reader has its own store object and connections
        try:
            while not stop.is_set():
                done = status(mine, run_id) not in ACTIVE  # read before the metrics
                seen = loss_steps(mine, run_id)
                if not np.array_equal(seen, np.arange(1, len(seen) + 1)):
                    errors.append(f"reader {k}: steps not contiguous from 1: {seen[:5]}...")
                if counts[k] and len(seen) < counts[k][-1]:
                    errors.append(f"reader {k}: count fell from {counts[k][-1]} to {len(seen)}")
                counts[k].append(len(seen))
                if run_id not in [r.id for r in mine.list_runs()]:
                    errors.append(f"reader {k}: run missing from list_runs()")
                if done:
                    return
                time.sleep(0.005)  # leave the run's process some CPU on a small machine
            errors.append(f"reader {k}: the run did not finish")
        except Exception as exc:  # every failure of a reader is reported
            errors.append(f"reader {k}: {exc!r}")

    threads = [threading.Thread(target=reader, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    try:
        wait_for_run(store, lambda: not any(t.is_alive() for t in threads), "the readers")
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert not errors, errors[:5]
    assert status(store, run_id) == "finished"
    for seen in counts:
        assert seen[-1] == steps
        assert any(0 < c < steps for c in seen), "a reader should see the run mid-way"
        assert len(seen) > 5


# --------------------------------------------------------------------------- live controls


def test_live_change_is_validated_applied_and_recorded(runs_dir: Path) -> None:
    store = RunStore(runs_dir, max_concurrent=1)
    run_id = store.launch(cfg())
    wait_training(store, run_id, 5)

    def pending_and_total() -> tuple[int, int]:
        with store._db() as db:
            row = db.execute(
                "SELECT SUM(applied_step IS NULL), COUNT(*) FROM changes WHERE run_id=?",
                (run_id,),
            ).fetchone()
        return int(row[0] or 0), int(row[1])

    # Invalid changes are rejected here, naming the parameter, and never reach the run.
    for change, name in (({"epsilon": 0}, "epsilon"), ({"n_iter": 0}, "n_iter"),
                         ({"lr": 0.1}, "lr"), ({"bogus": 1.0}, "bogus")):  # fmt: skip
        with pytest.raises(ValueError, match=name):
            store.request_change(run_id, change)
    assert pending_and_total() == (0, 0)
    assert store.applied_changes(run_id) == []

    # Steps per second, to bound how late the change may take effect.
    s0, t0 = store.get(run_id).step, time.monotonic()
    wait_for_run(store, lambda: store.get(run_id).step >= s0 + 20, "20 more steps")
    rate = (store.get(run_id).step - s0) / (time.monotonic() - t0)

    before = store.get(run_id).step  # lags the run by at most one flush
    t_request = time.monotonic()
    store.request_change(run_id, {"epsilon": 0.2})
    applied = wait_for_run(store, lambda: store.applied_changes(run_id), "the change to apply")
    waited = time.monotonic() - t_request
    assert len(applied) == 1 and applied[0]["epsilon"] == 0.2
    step = applied[0]["step"]
    # The run polls before every step: the change lands within the time it took us to see it.
    assert before <= step <= before + rate * (waited + 0.5) + 5, (before, step, rate, waited)
    assert pending_and_total() == (0, 1)

    store.stop(run_id)
    wait_status(store, run_id, "stopped", 10)
    state = load_checkpoint(store, run_id)
    assert json.loads(state["config"])["loss_params"]["epsilon"] == 0.2
    assert json.loads(state["changes"]) == [{"step": step, "epsilon": 0.2}]
    assert store.get(run_id).config["loss_params"] == {}  # the launch config is kept as is

    with pytest.raises(ValueError, match="stopped"):
        store.request_change(run_id, {"epsilon": 0.3})
    assert pending_and_total() == (0, 1)


def test_current_settings_fold_the_applied_changes_in_order(runs_dir: Path) -> None:
    store = RunStore(runs_dir)
    config = cfg(loss_params={"epsilon": 0.5, "n_iter": 5})
    with store._db(write=True) as db:  # a run row and its changes, without a process
        run_id = db.execute(
            "INSERT INTO runs (name, config, status, created) VALUES (?, ?, ?, ?)",
            ("steered", json.dumps(config), "stopped", time.time()),
        ).lastrowid
        for applied, params in ((3, {"epsilon": 0.2}), (7, {"n_iter": 9, "target": "class"}),
                                (None, {"epsilon": 0.9})):  # fmt: skip
            db.execute(
                "INSERT INTO changes (run_id, requested, params, applied_step) VALUES (?,?,?,?)",
                (run_id, time.time(), json.dumps(params), applied),
            )
    target, params = store.current_settings(int(run_id or 0))
    assert target == "class"
    assert (params["epsilon"], params["n_iter"]) == (0.2, 9)  # the pending 0.9 is not in effect
    with pytest.raises(ValueError, match="no run"):
        store.current_settings(999)


def test_change_after_the_checkpoint_does_not_survive_a_resume_as_applied(
    runs_dir: Path,
) -> None:
    store = RunStore(runs_dir, max_concurrent=1)
    run_id = store.launch(cfg(checkpoint_every=100_000))  # no checkpoint before the kill
    wait_training(store, run_id, 5)
    store.request_change(run_id, {"epsilon": 0.2})
    wait_for_run(store, lambda: store.applied_changes(run_id), "the change to apply")
    pid = store.get(run_id).pid
    os.kill(pid, signal.SIGKILL)  # type: ignore[arg-type]
    wait_for(lambda: not pid_running(pid), 10)
    assert store.reconcile() == [run_id]

    before = len(loss_steps(store, run_id))
    store.resume(run_id)  # no checkpoint: it starts over from step 0, dropping old metrics
    wait_for_run(store, lambda: len(loss_steps(store, run_id)) < before, "the restart")
    wait_training(store, run_id, 5)
    store.stop(run_id)
    wait_status(store, run_id, "stopped", 10)
    state = load_checkpoint(store, run_id)
    epsilon = json.loads(state["config"])["loss_params"].get("epsilon")
    recorded = [c["epsilon"] for c in store.applied_changes(run_id)]
    # What the store says took effect must be what the run trained with.
    assert (recorded == [0.2]) == (epsilon == 0.2), (recorded, epsilon, state["changes"])


# ------------------------------------------------------------------ snapshots and export


def test_corrupt_and_missing_snapshots_are_skipped(runs_dir: Path, tmp_path: Path) -> None:
    steps = 600
    store = RunStore(runs_dir, max_concurrent=1)
    run_id = store.launch(cfg(steps=steps, snapshot_every=5))
    wait_for_run(store, lambda: len(store.snapshots(run_id, "embeddings")) >= 3, "snapshots")
    wait_for_run(store, lambda: len(store.snapshots(run_id, "plan")) >= 3, "plan snapshots")
    embeddings = store.snapshots(run_id, "embeddings")
    plans = store.snapshots(run_id, "plan")
    assert store.load_snapshot(embeddings[0][1]) is not None
    assert set(store.load_snapshot(plans[0][1]) or {}) >= {"cost", "kernel", "plan", "target"}

    (garbage_step, garbage), (missing_step, missing) = embeddings[1], embeddings[2]
    garbage.write_bytes(b"PK\x03\x04 this is not a zip archive" * 50)
    missing.unlink()
    plans[1][1].write_bytes(os.urandom(300))
    assert status(store, run_id) == "running"  # the files went bad under a live run
    assert store.load_snapshot(garbage) is None
    assert store.load_snapshot(missing) is None
    assert store.load_snapshot(plans[1][1]) is None

    wait_status(store, run_id, "finished")
    assert store.get(run_id).step == steps

    paths = store.export(run_id, tmp_path / "export")
    assert json.loads(paths["config"].read_text()) == store.get(run_id).config
    assert paths["metrics"].read_text().splitlines()[0] == "step,name,value"
    all_steps = [s for s, _ in store.snapshots(run_id, "embeddings")]
    good = [s for s in all_steps if s not in (garbage_step, missing_step)]
    assert len(good) == len(all_steps) - 2 and good[-1] == steps
    with np.load(paths["embeddings"], allow_pickle=False) as z:
        np.testing.assert_array_equal(z["steps"], good)
        assert z["z"].shape[:1] == (len(good),) and z["z"].shape[2] == FAST["out_dim"]
        assert z["y"].shape == (z["z"].shape[1],)
        last = store.load_snapshot(store.snapshots(run_id, "embeddings")[-1][1])
        assert last is not None
        np.testing.assert_array_equal(z["z"][-1], last["z"])


# ------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"steps": 0}, "steps"),
        ({"nonsense_field": 1}, "nonsense_field"),
        ({"batch_size": 1}, "batch_size"),
        ({"dataset": "/no/such/data.npz"}, "dataset"),
        ({"method": "nope"}, "method"),
    ],
)
def test_invalid_config_is_rejected_before_any_process(
    runs_dir: Path, changes: dict[str, Any], field: str
) -> None:
    store = RunStore(runs_dir, max_concurrent=1)
    with pytest.raises(ValueError, match=field):
        store.launch(cfg(**changes))
    assert store.list_runs() == []
    assert not list(runs_dir.glob("run-*"))


def test_invalid_method_is_rejected_before_any_process(runs_dir: Path) -> None:
    store = RunStore(runs_dir, max_concurrent=1)
    with pytest.raises(ValueError, match="nope"):
        store.launch(cfg(method="nope"))
    assert store.list_runs() == []
    with pytest.raises(ValueError, match="max_concurrent"):
        RunStore(runs_dir, max_concurrent=-1)


# ---------------------------------------------------------------------- app restarts


def test_a_new_store_object_sees_and_controls_existing_runs(runs_dir: Path) -> None:
    app = RunStore(runs_dir, max_concurrent=1)
    run_id = app.launch(cfg(), name="survivor")
    wait_training(app, run_id)

    restarted = RunStore(runs_dir)  # the app came back: a new object, same directory
    assert restarted.reconcile() == []  # a live run is not mistaken for a lost one
    (info,) = restarted.list_runs()
    assert (info.id, info.name, info.status) == (run_id, "survivor", "running")
    assert info.config == app.get(run_id).config
    assert restarted.list_runs(status="running", method="gca_ince") == [info]
    assert restarted.list_runs(method="ince") == []

    restarted.stop(run_id)
    wait_status(app, run_id, "stopped", 10)


def test_a_store_made_before_devices_were_recorded_gains_the_column(tmp_path: Path) -> None:
    old = tmp_path / "old"
    old.mkdir()
    with sqlite3.connect(old / "runs.db") as db:  # the runs table as it was, one run in it
        db.execute(
            "CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, "
            "config TEXT NOT NULL, status TEXT NOT NULL, pid INTEGER, heartbeat REAL, "
            "created REAL NOT NULL, started REAL, ended REAL, step INTEGER NOT NULL DEFAULT 0, "
            "error TEXT, stop_requested INTEGER NOT NULL DEFAULT 0, ready INTEGER NOT NULL "
            "DEFAULT 0, resume INTEGER NOT NULL DEFAULT 0, parent INTEGER)"
        )
        db.execute(
            "INSERT INTO runs (name, config, status, created, step) VALUES (?, ?, ?, ?, ?)",
            ("old run", json.dumps(cfg(steps=10)), "finished", time.time(), 10),
        )
    store = RunStore(old)
    (info,) = store.list_runs()
    assert (info.name, info.status, info.device) == ("old run", "finished", None)
    RunStore(old)  # opening it again leaves it alone
    with sqlite3.connect(old / "runs.db") as db:
        columns = [r[1] for r in db.execute("PRAGMA table_info(runs)")]
    assert columns.count("device") == 1


def test_default_data_dir_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "from-env"))
    assert default_data_dir() == tmp_path / "from-env"
    assert RunStore().db_path == tmp_path / "from-env" / "runs.db"
    assert (tmp_path / "from-env" / "runs.db").exists()

    monkeypatch.delenv(DATA_DIR_ENV)
    assert default_data_dir() == Path("runs")
    assert RunStore().dir.resolve() == (tmp_path / "runs").resolve()
    assert (tmp_path / "runs" / "runs.db").exists()


# ----------------------------------------------------------- duplicate, delete, export


def test_a_copy_of_a_run_named_by_the_store_is_named_after_its_own_method(
    runs_dir: Path,
) -> None:
    """A copy of "gca_ince on digits" with method gca_uot was "gca_ince on digits (copy)",
    and that name went on into Geometry and the compare lists. A name the store gave names
    the copy's method; a name the user gave is kept."""
    store = RunStore(runs_dir, max_concurrent=2)
    given = store.launch(cfg(steps=2), name="mine")
    auto = store.launch(cfg(steps=2))
    assert store.get(auto).name == "GCA-INCE on digits"  # (not the method's id, gca_ince)
    for run in (given, auto):
        wait_status(store, run, "finished")
    copies = [
        store.duplicate(auto, method="gca_uot"),
        store.duplicate(auto, steps=3),
        store.duplicate(given, method="gca_uot"),
    ]
    names = [store.get(c).name for c in copies]
    assert names == ["GCA-UOT on digits (copy)", "GCA-INCE on digits (copy)", "mine (copy)"]
    again = store.duplicate(copies[0], method="ince")  # a copy of a copy: one "(copy)"
    assert store.get(again).name == "INCE on digits (copy)"
    older = store.launch(cfg(steps=2), name="gca_ince on digits")  # an older store's name
    wait_status(store, older, "finished")
    copies.append(store.duplicate(older, method="ince"))
    assert store.get(copies[-1]).name == "INCE on digits (copy)"
    for run in (*copies, again):
        wait_status(store, run, "finished")


def test_duplicate_delete_and_export(runs_dir: Path, tmp_path: Path) -> None:
    store = RunStore(runs_dir, max_concurrent=1)
    original = store.launch(cfg(steps=30, snapshot_every=10))
    wait_status(store, original, "finished")

    with pytest.raises(ValueError, match="steps"):
        store.duplicate(original, steps=0)
    assert [r.id for r in store.list_runs()] == [original]

    copy = store.duplicate(original, steps=40)
    info = store.get(copy)
    assert info.parent == original and info.config["steps"] == 40
    assert {**info.config, "steps": 30} == store.get(original).config
    assert info.status in ACTIVE
    with pytest.raises(ValueError, match="stop it"):
        store.delete(copy)  # refused while active
    wait_status(store, copy, "finished")
    assert store.get(copy).step == 40

    paths = store.export(original, tmp_path / "export")
    lines = paths["metrics"].read_text().splitlines()
    assert lines[0] == "step,name,value"
    loss_rows = [line.split(",") for line in lines[1:] if line.split(",")[1] == "loss"]
    assert [int(s) for s, _, _ in loss_rows] == list(range(1, 31))
    assert all(np.isfinite(float(v)) for _, _, v in loss_rows)
    with np.load(paths["embeddings"], allow_pickle=False) as z:
        assert list(z["steps"]) == [10, 20, 30]
        assert z["z"].shape[0] == 3 and z["z_partner"].shape == z["z"].shape
        assert not np.array_equal(z["z_partner"], z["z"])  # another view of each sample
        # each row's place in the dataset and the labels' names (a user could not tell which
        # of their samples a row was, nor what class 2 meant)
        digits = load_dataset("digits")
        assert z["class_names"].tolist() == list(digits.class_names)
        index = z["index"]
        assert index.shape == z["y"].shape and len(set(index.tolist())) == len(index)
        assert np.array_equal(digits.y.numpy()[index], z["y"])
        _, held_out = digits.split_index(TrainConfig.test_fraction, TrainConfig.seed)
        assert np.array_equal(index, held_out[: len(index)])

    store.delete(original)
    with pytest.raises(ValueError, match="no run"):
        store.get(original)
    assert not store.run_dir(original).exists()
    with store._db() as db:
        for table in ("metrics", "snapshots", "changes"):
            count = db.execute(f"SELECT COUNT(*) FROM {table} WHERE run_id=?", (original,))
            assert count.fetchone()[0] == 0, table
    # The copy is untouched.
    assert [r.id for r in store.list_runs()] == [copy]
    assert len(loss_steps(store, copy)) == 40
    assert store.run_dir(copy).exists()


@pytest.mark.parametrize(
    ("state", "cmdline", "ours"),
    [
        ("S", b"/usr/bin/python\0-m\0gca_viz.cli\0train\0", True),
        ("R", b"", True),  # inside execve: Popen has returned, the arguments are not mapped yet
        ("Z", b"", False),  # a zombie
        ("Z", b"python\0-m\0gca_viz.cli\0", False),
        ("S", b"/usr/bin/sleep\0100\0", False),  # a recycled pid running something else
    ],
)
def test_run_process_liveness_from_proc(state: str, cmdline: bytes, ours: bool) -> None:
    """A run launched a moment ago (still inside ``execve``, empty command line) is alive;
    a zombie or a recycled pid running another program is not. (CI once marked a run
    ``interrupted`` right after its launch under load.)"""
    from gca_viz._processes import is_run_process

    assert is_run_process(state, cmdline) is ours


def test_a_runs_process_keeps_freed_memory_unless_the_user_set_malloc(
    runs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run's process starts with glibc told to keep freed memory (gca_viz.device
    KEEP_FREED_MEMORY_ENV); a value the user exported is left as it is."""
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "12345678")
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    store = RunStore(runs_dir, max_concurrent=1)
    run_id = store.launch(cfg(steps=100_000))
    try:
        wait_training(store, run_id)
        pid = store.get(run_id).pid
        raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        env = dict(item.decode().split("=", 1) for item in raw if b"=" in item)
        assert env["MALLOC_MMAP_THRESHOLD_"] == KEEP_FREED_MEMORY_ENV["MALLOC_MMAP_THRESHOLD_"]
        assert env["MALLOC_TRIM_THRESHOLD_"] == "12345678"
    finally:
        kill_runs(runs_dir)


def test_a_run_process_refuses_what_it_should_not_train(tmp_path: Path) -> None:
    """``python -m gca_viz train --store DIR --run-id N`` checks before it writes: a store
    that is not there (it was created), a run that is not in it (a traceback), a finished
    run or a recorded training loop (each was marked failed, silently) are refused with
    an ``error:`` line naming the option, exit status 2, and the store as it was."""
    import subprocess
    import sys

    def train(store: Path, run_id: int) -> subprocess.CompletedProcess[str]:
        args = ["train", "--store", str(store), "--run-id", str(run_id)]
        return subprocess.run(
            [sys.executable, "-m", "gca_viz", *args], capture_output=True, text=True, timeout=120
        )

    missing = tmp_path / "nowhere"
    done = train(missing, 1)
    assert done.returncode == 2 and not missing.exists(), done.stderr
    assert done.stderr.startswith(f"error: --store: {missing} is not a run store")
    store = RunStore(tmp_path / "store", max_concurrent=1)
    finished = store.launch(TrainConfig(steps=2, eval_every=0, snapshot_every=0))
    assert wait_for_status(store, finished, "finished", "failed") == "finished"
    recorded = store.register_external("my loop", {"lr": 0.1}, pid=os.getpid())
    store.end(recorded, "finished", step=5)
    before = {r.id: (r.status, r.error) for r in store.list_runs()}
    for run_id, says in (
        (99, "error: --run-id: the store"),
        (finished, f"error: --run-id {finished}: run {finished} is finished"),
        (recorded, f"error: --run-id {recorded}: run {recorded} is an external run"),
    ):
        done = train(store.dir, run_id)
        assert done.returncode == 2 and done.stderr.startswith(says), done.stderr
        assert "Traceback" not in done.stderr
    assert {r.id: (r.status, r.error) for r in store.list_runs()} == before


def test_runs_are_comparable_only_on_the_same_data_batch_and_layout() -> None:
    from gca_viz.runs import RunInfo

    def run(**config: Any) -> RunInfo:
        base = {"dataset": "digits", "dataset_params": {}, "batch_size": 256, "layout": "joint"}
        return RunInfo(1, "r", {**base, **config}, "finished", None, None, 0.0, None, None, 0,
                       None, None)  # fmt: skip

    a = run(method="ince", loss_params={"epsilon": 0.5})
    assert a.comparable(run(method="gca_uot", steps=99, seed=3))  # loss, steps, seed: free
    for change in ({"dataset": "/data/mine.npz"}, {"dataset_params": {"n": 300}},
                   {"batch_size": 64}, {"layout": "cross"}):  # fmt: skip
        other = run(**change)
        assert not a.comparable(other) and not other.comparable(a), change
    bare = RunInfo(2, "recorded", {"lr": 0.3}, "running", None, None, 0.0, None, None, 0, None,
                   None)  # fmt: skip
    assert bare.comparable(bare) and not bare.comparable(a)  # a Recorder run's own config


def test_a_run_s_label_names_its_status_only_while_it_may_change() -> None:
    """One ``#id name`` for every chooser and title (the views and the lab wrote it twice);
    a run that has not finished says so, and with ``step`` how far it got."""
    from gca_viz.runs import RunInfo

    def run(status: str) -> RunInfo:
        return RunInfo(4, "demo", {}, status, None, None, 0.0, None, None, 120, None, None)

    assert run("running").label() == "#4 demo"
    assert run("finished").label(status=True, step=True) == "#4 demo"
    assert run("running").label(status=True) == "#4 demo (running)"
    assert run("stopped").label(status=True, step=True) == "#4 demo (stopped, step 120)"


def test_runs_differ_by_what_their_configs_mean(runs_dir: Path) -> None:
    """The form stores every parameter of an embedded dataset, the command line none: two
    runs on the same multi-domain digits were called different ("data settings {} ...");
    a field only one config records (an external run's own config) is reported as such."""
    from tests.helpers import add_run

    store = RunStore(runs_dir)
    base = {"dataset": "multidomain_digits", "batch_size": 64, "layout": "joint"}
    form = store.get(add_run(store, config={**base, "dataset_params": {"noise": 0.2, "seed": 0}}))
    cli = store.get(add_run(store, config={**base, "dataset_params": {}}))
    other = store.get(add_run(store, config={**base, "dataset_params": {"noise": 0.5}}))
    loop = store.get(add_run(store, config={"dataset": "multidomain_digits"}))
    assert form.differences(cli) == {} and form.comparable(cli)
    assert form.differences(loop) == {  # not recorded there: not known to be the same
        "dataset_params": ({"noise": 0.2, "seed": 0}, None),
        "batch_size": (64, None),
        "layout": ("joint", None),
    }
    assert cli.differences(other) == {
        "dataset_params": ({"noise": 0.2, "seed": 0}, {"noise": 0.5, "seed": 0})
    }


def test_an_export_imports_back_whole(runs_dir: Path, tmp_path: Path) -> None:
    """An exported run came back with its metrics only: no snapshots (Geometry and the plan
    empty), no live changes (its config says where it started), and a recorded run's export
    could not be imported at all ("unknown config field 'recorder'")."""
    store = RunStore(runs_dir)
    full = json.loads(TrainConfig.from_dict(cfg(steps=10, method="gca_ince")).to_json())
    run = add_run(store, config=full, status="running")  # as a launch stores it
    (store.run_dir(run) / "snapshots").mkdir(parents=True)  # (a launch makes it)
    store.write_metrics(run, [(run, s, "loss", 1.0 / s) for s in range(1, 11)], 10)
    rng = np.random.default_rng(0)
    embeddings = {"z": rng.normal(size=(6, 3)).astype(np.float32), "y": np.arange(6) % 2}
    store.write_snapshot(run, 5, "embeddings", embeddings)
    store.write_snapshot(run, 5, "plan", {"plan": np.eye(4) / 4})
    store.mark_applied(store.request_change(run, {"epsilon": 0.2}), 6)
    (store.run_dir(run) / "checkpoint.pt").write_bytes(b"weights")
    store.end(run, "stopped", step=10)

    paths = store.export(run, tmp_path / "export")
    other = RunStore(tmp_path / "other")
    back = other.get(other.import_directory(paths["config"].parent, name="again"))
    info = store.get(run)
    assert (back.status, back.step, back.config, back.external) == (
        "stopped",
        10,
        info.config,
        False,
    )
    assert other.metrics_csv(back.id) == store.metrics_csv(run)
    for kind, arrays in (("embeddings", embeddings), ("plan", {"plan": np.eye(4) / 4})):
        ((step, path),) = other.snapshots(back.id, kind)
        loaded = other.load_snapshot(path)
        assert step == 5 and loaded is not None
        for key, value in arrays.items():
            np.testing.assert_array_equal(loaded[key], value)
    assert other.applied_changes(back.id) == [{"step": 6, "epsilon": 0.2}]
    assert other.current_settings(back.id) == store.current_settings(run)
    assert (other.run_dir(back.id) / "checkpoint.pt").read_bytes() == b"weights"

    archive = tmp_path / "exported.zip"  # the Train page's "Run (zip)"
    archive.write_bytes(store.export_zip(run))
    zipped = other.get(other.import_directory(archive))  # (named as it was, not "exported")
    assert (zipped.name, zipped.status, zipped.config) == (info.name, "stopped", info.config)
    assert other.metrics_csv(zipped.id) == store.metrics_csv(run)
    assert other.applied_changes(zipped.id) == [{"step": 6, "epsilon": 0.2}]
    assert len(other.snapshots(zipped.id, "embeddings")) == len(other.snapshots(zipped.id, "plan"))
    assert (other.run_dir(zipped.id) / "checkpoint.pt").read_bytes() == b"weights"
    (tmp_path / "bad.zip").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"bad\.zip: not a readable zip archive"):
        other.import_directory(tmp_path / "bad.zip")

    rec = record_external_run(runs_dir, batch=8, dim=4, classes=2)
    store.export(rec.run_id, tmp_path / "recorded")
    mine = other.get(other.import_directory(tmp_path / "recorded"))
    assert mine.external and mine.config == store.get(rec.run_id).config
    assert other.metrics_csv(mine.id) == store.metrics_csv(rec.run_id)
    assert (
        len(other.snapshots(mine.id, "embeddings"))
        == len(store.snapshots(rec.run_id, "embeddings"))
        > 0
    )


def test_a_run_on_the_users_own_file_imports_on_another_machine(
    runs_dir: Path, tmp_path: Path
) -> None:
    """A run trained on an upload could not be imported where its file's path does not
    exist (a colleague's machine): "not a run directory: dataset: unknown dataset". The
    export now carries the file, the import puts it in the store's uploads and points the
    run at it; an export without it still imports, as a run to look at, and says why it
    cannot be resumed."""
    from gca_viz import userdata

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 5)).astype(np.float32), np.arange(40) % 2
    buffer = io.BytesIO()
    np.savez(buffer, x=x, y=y)
    store = RunStore(runs_dir)
    upload = userdata.save_upload(
        buffer.getvalue(), "mine.npz", store.dir / userdata.UPLOADS, max_bytes=1 << 20
    )
    full = json.loads(TrainConfig.from_dict(cfg(steps=4, dataset=str(upload))).to_json())
    run = add_run(store, config=full, status="finished", step=4)
    store.write_metrics(run, [(run, 4, "loss", 0.5)], 4)
    archive = tmp_path / "run.zip"
    archive.write_bytes(store.export_zip(run))
    bare = tmp_path / "bare"
    store.export(run, bare)
    shutil.rmtree(bare / "data")  # an export without its data (as before this change)
    upload.unlink()  # the colleague's machine: the path in the config leads nowhere

    other = RunStore(tmp_path / "colleague")
    back = other.get(other.import_directory(archive))
    moved = Path(back.config["dataset"])
    assert moved.parent == other.dir / userdata.UPLOADS and moved.read_bytes() == buffer.getvalue()
    TrainConfig.from_dict(back.config)  # a config that resumes and duplicates
    np.testing.assert_array_equal(load_dataset(str(moved)).x, x)
    assert "came with it" in " ".join(e["message"] for e in other.events(back.id))
    again = other.get(other.import_directory(archive))  # the same file is not copied twice
    assert again.config["dataset"] == str(moved)
    assert len(list((other.dir / userdata.UPLOADS).iterdir())) == 1

    kept = other.get(other.import_directory(bare))
    assert kept.config["dataset"] == str(upload) and other.metrics_csv(kept.id).count("\n") == 2
    note = " ".join(e["message"] for e in other.events(kept.id))
    assert "is not on this machine" in note and "cannot be resumed" in note
    broken = json.loads((bare / "config.json").read_text())
    (bare / "config.json").write_text(json.dumps({**broken, "lr": -1}))
    with pytest.raises(ValueError, match=r"config\.json is not a usable run config: lr"):
        other.import_directory(bare)  # another problem than the data is still refused


def test_deleting_the_last_run_on_an_upload_deletes_the_upload(
    runs_dir: Path, tmp_path: Path
) -> None:
    """Every upload stayed in runs/uploads after its runs were deleted, and the app had no
    way to remove it. The last run's delete removes it; a file outside the store's uploads
    (the user's own, by path) is never touched."""
    from gca_viz import userdata

    store = RunStore(runs_dir)
    buffer = io.BytesIO()
    np.savez(buffer, x=np.random.default_rng(0).normal(size=(20, 3)), y=np.arange(20) % 2)
    upload = userdata.save_upload(
        buffer.getvalue(), "mine.npz", store.dir / userdata.UPLOADS, max_bytes=1 << 20
    )
    own = tmp_path / "own.npz"
    own.write_bytes(buffer.getvalue())
    first, second, elsewhere = (
        add_run(store, config={"dataset": str(path), "steps": 2}, status="finished")
        for path in (upload, upload, own)
    )
    assert store.sole_upload(first) is None and store.sole_upload(elsewhere) is None
    store.delete(first)
    assert upload.is_file()  # the second run still uses it
    assert store.sole_upload(second) == upload  # (the delete dialog says it goes too)
    store.delete(second)
    assert not upload.exists()
    store.delete(elsewhere)
    assert own.is_file()


def test_the_export_command_writes_a_run_that_import_reads_back(
    runs_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``python -m gca_viz export RUN_ID DEST [--zip]``: the app's whole-run export from a
    terminal (the Config JSON download's help pointed to RunStore.export, which no command
    offered); bad arguments are named."""
    from gca_viz import cli

    store = RunStore(runs_dir)
    run = add_run(store, config=cfg(steps=3), status="running", step=0)
    store.write_metrics(run, [(run, s, "loss", 1.0 / s) for s in (1, 2, 3)], 3)
    store.mark_applied(store.request_change(run, {"epsilon": 0.3}), 2)
    store.end(run, "finished", step=3)
    folder, archive, target = tmp_path / "out", tmp_path / "run.zip", tmp_path / "store"
    assert cli.main(["export", str(run), str(folder), "--store", str(runs_dir)]) == 0
    assert cli.main(["export", str(run), str(archive), "--store", str(runs_dir), "--zip"]) == 0
    assert cli.main(["import", str(folder), str(archive), "--store", str(target)]) == 0
    other = RunStore(target)
    for back in other.list_runs():
        assert other.metrics_csv(back.id) == store.metrics_csv(run)
        assert other.applied_changes(back.id) == [{"step": 2, "epsilon": 0.3}]
    capsys.readouterr()
    for argv, said in (
        (["export", "99", str(tmp_path / "x"), "--store", str(runs_dir)], "has no run 99"),
        (["export", str(run), str(folder), "--store", str(runs_dir)], "not an empty folder"),
        (["export", str(run), str(archive), "--store", str(runs_dir), "--zip"], "exists"),
        (["export", str(run), str(tmp_path / "no" / "r.zip"), "--zip"], "does not exist"),
        (["export", str(run), str(tmp_path / "y"), "--store", str(tmp_path)], "not a run store"),
    ):
        with pytest.raises(SystemExit) as stop:
            cli.main(argv)
        assert stop.value.code == 2 and said in capsys.readouterr().err


def test_the_import_command_adds_run_directories_to_a_store(
    runs_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``python -m gca_viz import DIR``: how a run trained with ``train --out`` (or exported)
    reaches the app; a folder that is not a run is named, the others still come in."""
    from gca_viz import cli

    store = RunStore(runs_dir)
    run = add_run(store, config=cfg(steps=3), status="finished", step=3)
    store.write_metrics(run, [(run, 3, "loss", 0.5)], 3)
    store.export(run, tmp_path / "mine")
    target = tmp_path / "store"
    argv = ["import", str(tmp_path / "mine"), str(tmp_path / "nothing"), "--store", str(target)]
    code = cli.main(argv)
    out, err = capsys.readouterr()
    assert code == 1 and "nothing: not a run directory" in err
    (imported,) = RunStore(target).list_runs()  # (named as it was exported, not "mine")
    assert imported.name == "fake" and f"run #{imported.id}: fake" in out
    assert RunStore(target).metrics_csv(imported.id) == store.metrics_csv(run)


def test_the_reason_a_silent_death_gives_is_the_logs_error_line(tmp_path: Path) -> None:
    """A run that died before it could record why is marked interrupted with its log's
    last line when that line says why: an exception's, or the command line's own "error:"
    (a store it could not write before training; that one was dropped)."""
    from gca_viz._processes import last_error_line

    log = tmp_path / "log.txt"
    for tail, said in (
        ("Traceback ...\ngca_viz.runs.StoreError: run store x: the disk is full", True),
        ("step 3\nerror: run store /r: a disk I/O error (SQLite: disk I/O error)", True),
        ("step 3 of 10\nloss 0.5", False),
    ):
        log.write_text(tail + "\n")
        assert last_error_line(log) == (tail.splitlines()[-1] if said else "")
