"""Tests of gca_viz.watch: a training loop of its own recorded into the run store.

Real processes: tests/scripts/watch_loop.py trains with a Recorder in a subprocess while
the test reads the store, steers the loss, stops, kills or crashes it; two torchrun ranks
(gloo) run tests/scripts/watch_ddp.py. In-process recorders test bad input and a store
that cannot be written. Waits on a loop last while it makes progress (tests/helpers.py).
How the pages show an external run: tests/pages/test_train.py and test_geometry.py.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from gca_viz import losses
from gca_viz.runs import RunStore
from gca_viz.watch import Recorder, RecorderWarning, apply_live_change
from tests.helpers import REPO_ROOT, run_python, wait_for, wait_for_run
from tests.tmpfs import mount_tmpfs, umount

LOOP = str(REPO_ROOT / "tests" / "scripts" / "watch_loop.py")


def _start(store: Path, mode: str) -> subprocess.Popen[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, LOOP, str(store), mode, "5"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.communicate(timeout=10)


def _wait(
    store: RunStore, proc: subprocess.Popen[str], cond: Callable[[], object], what: str
) -> None:
    """Wait for ``cond`` while the loop ``proc`` makes progress (CPU time, steps)."""
    wait_for_run(store, cond, what, pids=[proc.pid])


def _the_run(store: RunStore, proc: subprocess.Popen[str]) -> int:
    _wait(store, proc, lambda: store.list_runs(), "the loop to register its run")
    (run,) = store.list_runs()
    return run.id


def _pair(n: int = 16, d: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    z = torch.randn(n, d)
    return z, z + 0.1 * torch.randn(n, d)


# ------------------------------------------------------------------- real processes


def test_a_loop_streams_into_the_store_takes_a_live_change_and_stops(tmp_path: Path) -> None:
    """Metrics and snapshots arrive while the loop trains; an ε change made through the
    store reaches the loop's loss at the step it records; a stop request ends the loop."""
    store = RunStore(tmp_path)
    proc = _start(tmp_path, "until_stop")
    try:
        run_id = _the_run(store, proc)
        info = store.get(run_id)
        assert info.external and info.status == "running" and info.pid == proc.pid
        assert info.config["lr"] == 0.05 and info.config["method"] == "gca_ince"
        assert info.config["recorder"]["steerable"] and info.config["stages"]["target"] == "pairs"

        def streamed() -> bool:
            return (
                len(store.metrics(run_id, ["loss"]).get("loss", [])) >= 10
                and bool(store.snapshots(run_id, "plan"))
                and bool(store.snapshots(run_id, "embeddings"))
            )

        _wait(store, proc, streamed, "metrics and snapshots")
        assert store.get(run_id).status == "running" and store.get(run_id).device == "cpu"
        plan = store.load_snapshot(store.snapshots(run_id, "plan")[0][1])
        assert plan is not None and plan["plan"].shape == (64, 64)  # 64 pairs, cross layout
        assert {"cost", "kernel", "target", "y", "diag_positive_mass"} <= set(plan)
        emb = store.load_snapshot(store.snapshots(run_id, "embeddings")[0][1])
        assert emb is not None and emb["z"].shape == (64, 8) and emb["y"].shape == (64,)
        np.testing.assert_allclose(np.linalg.norm(emb["z"], axis=1), 1.0, atol=1e-5)
        assert {"alignment", "uniformity", "positive_mass", "marginal_error"} <= set(
            store.latest_metrics(run_id)
        )

        store.request_change(run_id, {"epsilon": 0.25})
        _wait(store, proc, lambda: store.applied_changes(run_id), "the change to take effect")
        (change,) = store.applied_changes(run_id)
        at = change["step"]
        _wait(
            store, proc, lambda: store.latest_metrics(run_id)["epsilon"][0] > at + 1, "later steps"
        )
        eps = store.metrics(run_id, ["epsilon"])["epsilon"]
        assert set(eps[eps[:, 0] <= at, 1]) == {0.5}  # the step it was applied after
        assert set(eps[eps[:, 0] > at, 1]) == {0.25}
        assert store.current_settings(run_id)[1]["epsilon"] == 0.25

        store.stop(run_id)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err[-2000:]
    finally:
        _stop(proc)
    info = store.get(run_id)
    assert info.status == "stopped" and f"ended at {info.step}" in out


def test_a_killed_loop_becomes_interrupted(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    proc = _start(tmp_path, "forever")
    try:
        run_id = _the_run(store, proc)
        _wait(store, proc, lambda: store.metrics(run_id, ["loss"]), "the first metrics")
        assert store.reconcile() == []  # alive, although it does not run gca_viz's CLI
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        _stop(proc)
    assert store.reconcile() == [run_id]
    info = store.get(run_id)
    assert info.status == "interrupted" and "died" in (info.error or "")


def _to_the_end(store: Path, mode: str) -> tuple[int | None, str]:
    """Run the loop in ``mode`` until its process ends: its exit code and standard error."""
    proc = _start(store, mode)
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        _stop(proc)
    return proc.returncode, err


def test_a_crash_marks_the_run_failed_with_its_traceback(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    code, err = _to_the_end(tmp_path, "crash")
    assert code == 1 and "the loop broke at step 5" in err  # the hook chains
    (info,) = store.list_runs()  # registered before it crashed
    assert info.status == "failed" and info.step == 5
    assert "RuntimeError: the loop broke at step 5" in (info.error or "")
    assert store.metrics(info.id, ["loss"])["loss"][-1, 0] == 5  # buffered metrics written


def test_a_script_that_ends_early_without_finish_is_interrupted(tmp_path: Path) -> None:
    """A loop that left at step 5 of 3000 planned and never called finish() was marked
    finished: the exit now says it was interrupted, and why."""
    store = RunStore(tmp_path)
    code, err = _to_the_end(tmp_path, "exit")
    assert code == 0, err[-2000:]
    (info,) = store.list_runs()
    assert info.status == "interrupted" and info.step == 5
    assert "ended at step 5 of the 3000 planned without rec.finish()" in (info.error or "")


def test_two_torchrun_ranks_record_one_run_and_change_at_the_same_step(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    script = str(REPO_ROOT / "tests" / "scripts" / "watch_ddp.py")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
           script, str(tmp_path / "store"), str(out)]  # fmt: skip
    done = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    store = RunStore(tmp_path / "store")
    (run,) = store.list_runs()
    assert ranks[0]["run_id"] == run.id and ranks[1]["run_id"] is None  # rank 1 writes nothing
    assert run.config["recorder"]["world_size"] == 2 and run.status == "finished"
    assert ranks[0]["changes"] == ranks[1]["changes"] == store.applied_changes(run.id)
    assert ranks[0]["epsilon"] == ranks[1]["epsilon"] == 0.3
    assert len(store.metrics(run.id, ["loss"])["loss"]) == run.step
    plan = store.load_snapshot(store.snapshots(run.id, "plan")[0][1])
    assert plan is not None and plan["plan"].shape == (64, 64)  # the global batch


# ------------------------------------------------------------------------ in process


def test_bad_input_is_a_warning_event_and_the_loop_goes_on(tmp_path: Path) -> None:
    rec = Recorder(tmp_path, loss=losses.get("gca_ince", n_iter=3), snapshot_every=1,
                   flush_every=0.05)  # fmt: skip
    z1, z2 = _pair()
    with pytest.warns(RecorderWarning) as caught:
        rec.step("one", loss=1.0)
        rec.step(1, loss="high")
        rec.step(2, loss=torch.ones(3))
        rec.step(3, loss="again")  # the same problem warns once (a str, as at step 1)
        rec.batch(3, z1.numpy(), z2)
        rec.batch(4, z1, torch.randn(8, 4))
        rec.batch(5, torch.full((16, 4), float("nan")), z2)
        rec.batch(6, z1, z2, labels=[1, 2])
        rec.step(6, loss=float("nan"))
        rec.step(7, loss=torch.tensor(0.5))
        rec.batch(7, z1, z2)
        rec.finish()
    messages = [str(w.message) for w in caught]
    expected = ("step must be an integer", "loss must be a number or a one-element tensor, "
                "got a str", "got a torch.float32 tensor of shape (3,)", "must be a torch.Tensor",
                "same shape", "NaN or inf", "labels must be 16", "loss is nan")  # fmt: skip
    for words in expected:
        assert sum(words in m for m in messages) == 1, (words, messages)
    assert len(messages) == 8
    store = RunStore(tmp_path)
    assert len(store.events(rec.run_id)) == 8
    loss = store.metrics(rec.run_id, ["loss"])["loss"]
    assert loss[-1].tolist() == [7, 0.5] and np.isnan(loss[loss[:, 0] == 6, 1]).all()
    assert [s for s, _ in store.snapshots(rec.run_id, "plan")] == [6, 7]  # not 4, not 5
    assert store.get(rec.run_id).status == "finished"


def test_a_loss_that_stays_nan_to_the_end_fails_the_run_as_diverged(tmp_path: Path) -> None:
    """A loop whose loss turned NaN at step 5 and stayed so to step 20 ended "finished",
    with one warning and a folded note: it now ends failed, naming the step it diverged
    at; a loss that recovers ends finished (test_bad_input_...)."""
    rec = Recorder(tmp_path, flush_every=0.05, steps=20)
    with pytest.warns(RecorderWarning) as caught:
        for step in range(1, 21):
            rec.step(step, loss=1.0 / step if step < 5 else float("nan"))
        rec.finish()
    (message,) = [str(w.message) for w in caught]
    assert "step 5: loss is nan" in message and "ends as failed (diverged)" in message
    info = RunStore(tmp_path).get(rec.run_id)
    assert info.status == "failed" and info.step == 20
    assert "not finite from step 5 to the last step recorded, 20" in (info.error or "")
    # a NaN stretch that ends is no divergence; an inf is
    rec = Recorder(tmp_path, flush_every=0.05)
    with pytest.warns(RecorderWarning):
        for step, value in enumerate([1.0, float("nan"), 0.5, float("inf")], start=1):
            rec.step(step, loss=value)
        rec.finish()
    info = RunStore(tmp_path).get(rec.run_id)
    assert info.status == "failed" and "from step 4" in (info.error or "")


def test_a_bad_batch_warns_at_any_step_not_only_a_snapshot_s(tmp_path: Path) -> None:
    """Shapes and labels were checked only on snapshot steps (1, then every 50): a mistake
    that began at step 2 went without a word. Their shapes and dtypes are metadata, read at
    every call; text labels say how to name classes; names that do not cover the labels
    warn once."""
    rec = Recorder(tmp_path, loss=losses.get("gca_ince", n_iter=3), snapshot_every=50,
                   flush_every=0.05, class_names=["a", "b"])  # fmt: skip
    z1, z2 = _pair()
    labels = torch.arange(16) % 2
    with pytest.warns(RecorderWarning) as caught:
        rec.batch(1, z1, z2, labels=labels)  # a snapshot, good
        rec.batch(2, z1, z2[:15])
        rec.batch(3, z1, z2, labels=labels[:10])
        rec.batch(4, z1, z2, domains=torch.zeros(16))
        rec.batch(50, z1, z2, labels=torch.arange(16) % 5)  # a snapshot: labels 0-4
        rec.finish()
    messages = [str(w.message) for w in caught]
    assert len(messages) == 4, messages
    assert messages[0] == "step 2: z1 and z2 must have the same shape: (16, 4) != (15, 4)"
    assert messages[1] == "step 3: labels must be 16 integers, got torch.int64 of shape (10,)"
    assert messages[2].startswith("step 4: domains must be 16 integers, got torch.float32")
    assert messages[3] == (
        "step 50: the labels run from 0 to 4, but class_names names 2 (0 to 1); the "
        "legends show the others as numbers"
    )
    rec = Recorder(tmp_path, snapshot_every=1, flush_every=0.05)
    with pytest.warns(RecorderWarning, match=r"class_names=\.\.\.\)\)") as caught:
        rec.batch(1, z1, z2, labels=np.array(["cat", "dog"] * 8))
        rec.finish()
    assert "np.unique(names, return_inverse=True)[1]" in str(caught[0].message)


def test_each_kind_of_bad_value_warns_and_a_step_going_back_warns_once(tmp_path: Path) -> None:
    """A tensor of several elements given as the loss hid a later string loss (one warning
    per name, whatever was wrong), and a step going back was taken without a word: each
    kind of bad value now warns, and the first step below the previous one warns; its
    values are still recorded, at the step given."""
    rec = Recorder(tmp_path, loss=losses.get("gca_ince", n_iter=3), flush_every=0.05)
    with pytest.warns(RecorderWarning) as caught:
        rec.step(3, loss=torch.ones(5))
        rec.step(4, loss="abc")
        rec.step(5, loss=1.0)
        rec.step(2, loss=2.0)
        rec.step(1, loss=3.0)  # going back again: no second warning
        rec.finish()
    messages = [str(w.message) for w in caught]
    assert len(messages) == 3, messages
    assert "step 3: loss must be a number" in messages[0] and "shape (5,)" in messages[0]
    assert "step 4: loss must be a number" in messages[1] and "got a str" in messages[1]
    assert messages[2].startswith("step 2 comes after step 5: steps should not go back")
    store = RunStore(tmp_path)
    assert [e["step"] for e in store.events(rec.run_id)] == [3, 4, 2]
    loss = store.metrics(rec.run_id, ["loss"])["loss"]
    assert loss.tolist() == [[1, 3.0], [2, 2.0], [5, 1.0]]  # sorted by step; 3 and 4 dropped


def test_a_loss_given_by_name_is_that_method_and_other_values_are_refused(
    tmp_path: Path,
) -> None:
    """loss="gca_ince" was stored as method 'str' and drawn as InfoNCE; it is now the
    named method with its defaults (steerable), and a value that is no loss is refused."""
    rec = Recorder(tmp_path, loss="gca_ince")
    rec.finish()
    assert isinstance(rec.loss, losses.GCALoss) and rec.loss.name == "gca_ince"
    assert rec.loss.params == losses.get("gca_ince").params
    config = RunStore(tmp_path).get(rec.run_id).config
    assert config["method"] == "gca_ince" and config["stages"]["projection"] == "sinkhorn"
    assert config["recorder"]["steerable"]
    with pytest.raises(ValueError, match=r"unknown loss 'gca-ince'; choose one of \["):
        Recorder(tmp_path, loss="gca-ince")
    with pytest.raises(ValueError, match=r"loss must be None, a loss name \(ince, gca_ince"):
        Recorder(tmp_path, loss=0.5)
    # epsilon= and layout= set the plan drawn for a loss of one's own; with a gca_viz loss
    # they were ignored without a word
    with pytest.raises(
        ValueError,
        match=r"^epsilon: a gca_viz loss \(gca_ince\) draws its own plan, at its own "
        r"epsilon \(0.5\)",
    ):
        Recorder(tmp_path, loss="gca_ince", epsilon=0.3)
    with pytest.raises(ValueError, match=r"^layout: .* at its own layout \(joint\)"):
        Recorder(tmp_path, loss=losses.get("ince", layout="joint"), layout="cross")
    assert len(RunStore(tmp_path).list_runs()) == 1  # a refused loss registers no run
    own = Recorder(tmp_path, loss=lambda z1, z2: (z1 - z2).pow(2).sum(), epsilon=0.3)
    own.finish()
    assert own._plan_loss.params["epsilon"] == 0.3 and own._plan_loss.layout == "cross"


def test_snapshots_of_batch_rows_are_marked_and_exported_with_their_own_labels(
    tmp_path: Path,
) -> None:
    """Without eval_batch a snapshot holds the first rows of its step's batch: other samples
    at every step. They are marked (the app says so), and the export gives each snapshot's
    own labels: it paired every step's z with the last step's y."""
    rec = Recorder(tmp_path, loss="ince", snapshot_every=1)
    ys = []
    for step in (1, 2):
        y = torch.randperm(8) % 3
        ys.append(y.numpy())
        z1 = torch.randn(8, 3)
        rec.step(step, loss=1.0)
        rec.batch(step, z1, z1 + 0.1, labels=y)
    rec.finish()
    store = RunStore(tmp_path)
    snap = store.load_snapshot(store.snapshots(rec.run_id, "embeddings")[-1][1])
    assert snap is not None and bool(snap["from_batch"])
    out = np.load(store.export(rec.run_id, tmp_path / "out")["embeddings"])
    assert out["z"].shape == (2, 8, 3) and bool(out["from_batch"])
    np.testing.assert_array_equal(out["y"], np.stack(ys))  # (k, N): each step's own labels


def test_a_warning_points_at_the_loops_own_line(tmp_path: Path) -> None:
    """A step after finish() warned at a line inside gca_viz/watch.py, and a step that is no
    integer warned only at the next call (naming the next line): both name the call that
    caused them."""
    rec = Recorder(tmp_path, loss="ince")
    with pytest.warns(RecorderWarning, match="must be an integer") as caught:
        rec.step(7.5, loss=1.0)
    assert caught[0].filename == __file__
    rec.finish()
    with pytest.warns(RecorderWarning, match="after finish") as caught:
        rec.step(8, loss=1.0)
    assert caught[0].filename == __file__
    # a note the writer thread left, raised as a `with` block ends: at the `with` line
    z = torch.full((8, 3), math.nan)
    with pytest.warns(RecorderWarning, match="NaN or inf") as caught:
        with Recorder(tmp_path, loss="ince", snapshot_every=1) as rec:
            rec.step(1, loss=1.0)
            rec.batch(1, z, z)
    assert caught[0].filename == __file__


def test_a_loss_of_the_users_own_is_named_as_they_named_it(tmp_path: Path) -> None:
    """A hand-written loss function was listed as method "function" ("function on own
    data"); it is its own name, and a loss module its class's."""

    def ntxent(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        return (z1 - z2).pow(2).sum(1).mean()

    for loss, name in ((ntxent, "ntxent"), (torch.nn.MSELoss(), "MSELoss")):
        rec = Recorder(tmp_path, loss=loss)
        rec.finish()
        assert RunStore(tmp_path).get(rec.run_id).config["method"] == name


def test_a_model_that_fails_on_the_eval_batch_is_a_warning_not_an_exception(
    tmp_path: Path,
) -> None:
    """A model whose input size does not match eval_batch raised its RuntimeError from
    rec.batch into the loop, against the README's "never raises into the loop": now one
    warning and event, and Geometry draws the batch's embeddings."""
    rec = Recorder(tmp_path, loss=losses.get("gca_ince", n_iter=3), snapshot_every=1,
                   eval_batch=torch.randn(6, 7), model=torch.nn.Linear(10, 4),
                   flush_every=0.05)  # fmt: skip
    z1, z2 = _pair()
    with pytest.warns(RecorderWarning) as caught:
        for step in (1, 2):
            rec.step(step, loss=1.0)
            rec.batch(step, z1, z2)
        rec.finish()
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and "model(eval_batch) failed (RuntimeError" in messages[0]
    assert "Geometry uses the batch instead" in messages[0]
    store = RunStore(tmp_path)
    assert [s for s, _ in store.snapshots(rec.run_id, "embeddings")] == [1, 2]
    assert len(store.events(rec.run_id)) == 1


def test_a_non_finite_eval_batch_falls_back_to_the_batch_with_its_domains(
    tmp_path: Path,
) -> None:
    """A model whose eval_batch embeddings are NaN: the snapshot holds the batch's rows,
    marked as such, with the batch's domains (they were left out: the check asked whether
    there was an eval batch, not whether it was used)."""
    model = torch.nn.Linear(7, 4)
    with torch.no_grad():
        model.weight.fill_(math.nan)
    rec = Recorder(tmp_path, loss="ince", snapshot_every=1, eval_batch=torch.randn(6, 7),
                   model=model)  # fmt: skip
    z1, z2 = _pair()
    domains = np.arange(16) % 2
    said = "step 1: model(eval_batch) gave NaN or inf; Geometry uses the batch instead"
    with pytest.warns(RecorderWarning, match=re.escape(said)):
        rec.step(1, loss=1.0)
        rec.batch(1, z1, z2, domains=domains)
        rec.finish()
    store = RunStore(tmp_path)
    snap = store.load_snapshot(store.snapshots(rec.run_id, "embeddings")[-1][1])
    assert snap is not None and bool(snap["from_batch"]) and snap["z"].shape == (16, 4)
    np.testing.assert_array_equal(snap["domain"], domains)
    assert [e["message"] for e in store.events(rec.run_id)] == [said]


def test_a_class_prior_without_labels_gets_no_plan_and_says_why(tmp_path: Path) -> None:
    """The loss's class prior needs labels; rec.batch without them filled in zeros, one
    class of everything, and stored that plan (positive mass 1.0) without a word."""
    rec = Recorder(tmp_path, loss=losses.get("gca_ince", target="class", n_iter=3),
                   snapshot_every=1, flush_every=0.05)  # fmt: skip
    z1, z2 = _pair()
    with pytest.warns(RecorderWarning, match=r"class prior needs labels: rec.batch\("):
        rec.batch(1, z1, z2)
        rec.finish()
    store = RunStore(tmp_path)
    assert store.snapshots(rec.run_id, "plan") == []
    assert [s for s, _ in store.snapshots(rec.run_id, "embeddings")] == [1]
    labelled = Recorder(tmp_path, loss=losses.get("gca_ince", target="class", n_iter=3),
                        snapshot_every=1, flush_every=0.05)  # fmt: skip
    labelled.batch(1, z1, z2, labels=torch.arange(16) % 4)
    labelled.finish()
    assert [s for s, _ in store.snapshots(labelled.run_id, "plan")] == [1]


def test_a_loop_that_only_offers_batches_moves_the_runs_step(tmp_path: Path) -> None:
    """The run's step (Train's progress, the end's "ended at") followed rec.step only: a
    loop that called rec.batch alone stayed at step 0 with snapshots up to step 9."""
    rec = Recorder(tmp_path, loss=losses.get("gca_ince", n_iter=3), snapshot_every=3,
                   flush_every=0.05)  # fmt: skip
    z1, z2 = _pair()
    for step in range(10):
        rec.batch(step, z1, z2)
    store = RunStore(tmp_path)
    wait_for(lambda: store.get(rec.run_id).step == 9, what="the run step to reach 9")
    rec.finish()
    info = store.get(rec.run_id)
    assert info.status == "finished" and info.step == 9
    assert [s for s, _ in store.snapshots(rec.run_id, "embeddings")] == [0, 3, 6, 9]


def test_snapshots_fall_on_the_multiples_of_snapshot_every_and_carry_class_names(
    tmp_path: Path,
) -> None:
    """A loop counting from 1 with snapshot_every=5 was snapshotted at steps 1, 6, 11, 16,
    20 (a Trainer snapshots at the multiples); the snapshots had no class_names, which a
    Trainer's carry (KeyError for a student reading them)."""
    rec = Recorder(tmp_path, loss=losses.get("gca_ince", n_iter=3), snapshot_every=5,
                   steps=20, class_names=["zero", "one"], flush_every=0.05)  # fmt: skip
    z1, z2 = _pair()
    labels = torch.arange(16) % 2
    for step in range(1, 21):
        rec.batch(step, z1, z2, labels=labels)
    rec.finish()
    store = RunStore(tmp_path)
    snaps = store.snapshots(rec.run_id, "embeddings")
    assert [s for s, _ in snaps] == [1, 5, 10, 15, 20]
    arrays = store.load_snapshot(snaps[-1][1])
    assert arrays is not None and list(arrays["class_names"]) == ["zero", "one"]


def test_embeddings_too_large_for_float32_are_named_as_such(tmp_path: Path) -> None:
    """float64 embeddings of 1e200 were reported as "contain NaN or inf" (the float32 copy
    overflowed), float32 ones of 1e30 as "an all-zero row" (their squares overflowed): each
    now says how large they are; a float64 batch in range is snapshotted as before."""
    rec = Recorder(tmp_path, loss=losses.get("gca_ince", n_iter=3), snapshot_every=1,
                   flush_every=0.05)  # fmt: skip
    z1, z2 = _pair()
    with pytest.warns(RecorderWarning) as caught:
        rec.batch(1, z1.double() * 1e200, z2.double() * 1e200)
        rec.batch(2, z1 * 1e30, z2)
        rec.batch(3, z1.double(), z2.double())
        rec.finish()
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1, messages  # the same problem twice: one warning
    assert "step 1: the embeddings reach" in messages[0] and "e+200" in messages[0]
    assert "scale them down" in messages[0]
    store = RunStore(tmp_path)
    assert [s for s, _ in store.snapshots(rec.run_id, "plan")] == [3]
    assert [e["step"] for e in store.events(rec.run_id)] == [1]


def test_calls_after_finish_warn_once_and_bad_settings_are_refused(tmp_path: Path) -> None:
    """step() and batch() after finish() were dropped without a word; settings given as a
    string raised a TypeError, embed_points = 0 skipped every snapshot, and a store path
    that is a file was reported as "File exists"."""
    rec = Recorder(tmp_path, loss=losses.get("gca_ince"))
    rec.finish()
    z1, z2 = _pair()
    with pytest.warns(RecorderWarning, match=r"is finished: step\(\) and batch\(\) after") as w:
        rec.step(1, loss=1.0)
        rec.batch(1, z1, z2)
        rec.step(2, loss=1.0)
    assert len(w) == 1
    for kwargs, match in (
        ({"snapshot_every": "50"}, "snapshot_every must be an integer >= 0"),
        ({"snapshot_seconds": 0}, "snapshot_seconds must be a number > 0"),
        ({"embed_points": 0}, "embed_points must be an integer >= 2"),
        ({"flush_every": 0}, "flush_every must be a number > 0"),
        ({"flush_every": math.nan}, "flush_every must be a number > 0"),
        ({"flush_every": "x"}, "flush_every must be a number"),
        ({"sync_every": -5}, "sync_every must be an integer >= 1"),
        ({"steps": -3}, "steps must be an integer >= 1"),
        ({"class_names": "cat"}, "class_names must be a sequence of names"),
    ):
        with pytest.raises(ValueError, match=match):
            Recorder(tmp_path, **kwargs)  # type: ignore[arg-type]
    afile = tmp_path / "afile"
    afile.write_text("")
    with pytest.warns(RecorderWarning, match="afile is a file, not a folder"):
        assert Recorder(afile).run_id is None


def test_a_full_store_warns_once_and_the_loop_goes_on(tmp_path: Path) -> None:
    disk = tmp_path / "small"
    mount_tmpfs(disk, "size=3m")
    store = RunStore(disk)
    rec = Recorder(disk, loss=losses.get("gca_ince", n_iter=3), snapshot_every=1,
                   flush_every=0.05)  # fmt: skip
    try:
        filler = disk / "filler"
        with open(filler, "wb") as fh, pytest.raises(OSError):
            while True:
                fh.write(bytes(1 << 16))
                fh.flush()
        z1, z2 = _pair(64, 16)
        with pytest.warns(RecorderWarning) as caught:
            for step in range(1, 40):
                rec.step(step, loss=1.0)
                rec.batch(step, z1, z2)
                time.sleep(0.01)
            time.sleep(0.3)
            rec.step(40, loss=1.0)
        assert ["cannot write to the run store" in str(w.message) for w in caught] == [True]
        filler.unlink()
        rec.step(41, loss=2.0)
        wait_for(lambda: store.latest_metrics(rec.run_id).get("loss") == (41, 2.0), 10, "a write")
        rec.finish()
        assert store.get(rec.run_id).status == "finished"
        notes = [(e["level"], e["message"]) for e in store.events(rec.run_id)]
        assert [level for level, m in notes if "cannot write" in m] == ["warning"]
        assert ("info", "the run store can be written again") in notes
    finally:
        rec.finish()  # before the disk goes, whatever happened
        for opened in (store, rec.store):
            if opened is not None:
                opened.close()
        umount(disk)


def test_a_read_only_store_warns_once_and_records_nothing(tmp_path: Path) -> None:
    disk = tmp_path / "ro"
    mount_tmpfs(disk, "size=4m")
    try:
        RunStore(disk).close()
        remount = subprocess.run(["mount", "-o", "remount,ro", str(disk)], capture_output=True)
        if remount.returncode:
            pytest.skip("cannot remount read-only")
        with pytest.warns(RecorderWarning, match="cannot record into the run store"):
            rec = Recorder(disk, loss=losses.get("gca_ince"))
        assert rec.run_id is None
        z1, z2 = _pair()
        rec.step(1, loss=1.0)  # no-ops, nothing raised
        rec.batch(1, z1, z2)
        rec.finish()
    finally:
        umount(disk)


def test_apply_live_change_changes_the_loss_in_place_or_not_at_all() -> None:
    loss = losses.get("gca_ince", target="class", epsilon=0.5)
    same = loss
    apply_live_change(loss, {"epsilon": 0.2, "n_iter": 4})
    assert loss.params["epsilon"] == 0.2 and loss.params["n_iter"] == 4
    apply_live_change(loss, {"target": "pairs"})
    assert loss is same and loss.stages["target"].name == "pairs"
    z1, z2 = _pair()
    assert torch.isfinite(loss(z1, z2))  # no labels needed any more
    with pytest.raises(ValueError, match="epsilon"):
        apply_live_change(loss, {"epsilon": -1.0, "n_iter": 7})
    assert loss.params["n_iter"] == 4


def test_the_store_treats_external_runs_as_not_its_own(tmp_path: Path) -> None:
    """Stop only asks (no signal), no resume, no copy, no live change without a gca_viz
    loss, the pid is checked on its own host only, a stale heartbeat interrupts."""
    store = RunStore(tmp_path)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        here = {"recorder": {"host": socket.gethostname(), "steerable": False}}
        mine = store.register_external("mine", here, pid=sleeper.pid)
        far = store.register_external("far", {"recorder": {"host": "elsewhere"}}, pid=2**22 + 7)
        assert store.get(mine).external and store.get(mine).status == "running"
        store.stop(mine)
        time.sleep(0.3)
        assert sleeper.poll() is None and store.requests(mine)[0]
        for action in (lambda: store.resume(mine), lambda: store.duplicate(mine)):
            with pytest.raises(ValueError, match="external run"):
                action()
        with pytest.raises(ValueError, match="without a gca_viz loss"):
            store.request_change(mine, {"epsilon": 0.1})
        assert store.reconcile() == []  # alive here; elsewhere the heartbeat is fresh
        with store._db(write=True) as db:
            db.execute("UPDATE runs SET heartbeat=0 WHERE id=?", (far,))
        sleeper.kill()
        sleeper.wait(timeout=10)
        assert sorted(store.reconcile()) == [mine, far]
    finally:
        if sleeper.poll() is None:
            sleeper.kill()


def test_live_targets_of_an_external_run_are_those_its_loop_can_feed(tmp_path: Path) -> None:
    rec = Recorder(tmp_path, loss=losses.get("gca_ince"), flush_every=0.05)
    store = RunStore(tmp_path)
    try:
        assert store.get(rec.run_id).config["recorder"]["targets"] == ["pairs"]
        with pytest.raises(ValueError, match="no side information"):
            store.request_change(rec.run_id, {"target": "class", "gamma": 0.5})
        store.request_change(rec.run_id, {"epsilon": 0.3})
    finally:
        rec.finish()


def test_a_store_made_before_external_runs_gains_the_column(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "runs.db") as db:
        db.execute(
            "CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, "
            "config TEXT NOT NULL, status TEXT NOT NULL, pid INTEGER, heartbeat REAL, "
            "created REAL NOT NULL, started REAL, ended REAL, step INTEGER NOT NULL DEFAULT 0, "
            "error TEXT, stop_requested INTEGER NOT NULL DEFAULT 0, ready INTEGER NOT NULL "
            "DEFAULT 0, resume INTEGER NOT NULL DEFAULT 0, parent INTEGER, device TEXT)"
        )
        db.execute(
            "INSERT INTO runs (name, config, status, created) VALUES ('old', '{}', 'finished', 0)"
        )
    store = RunStore(tmp_path)
    (info,) = store.list_runs()
    assert info.name == "old" and info.external is False and store.events(info.id) == []


def test_the_lightning_callback_needs_lightning() -> None:
    if importlib.util.find_spec("lightning") is not None:
        pytest.skip("lightning is installed")
    with pytest.raises(ImportError, match=r"gca-explorer\[lightning\]"):
        from gca_viz.watch import RecorderCallback  # noqa: F401


# ------------------------------------------------------------------------ example


def test_the_example_trains_a_simclr_loop_into_the_store(tmp_path: Path) -> None:
    done = run_python("examples/watch_simclr.py", "20", str(tmp_path), OMP_NUM_THREADS="1")
    assert done.returncode == 0, done.stderr[-3000:]
    store = RunStore(tmp_path)
    (run,) = store.list_runs()
    assert run.external and run.status == "finished" and run.step == 20
    assert run.config["dataset"] == "digits" and run.config["method"] == "gca_ince"
    assert [s for s, _ in store.snapshots(run.id, "plan")] == [1, 20]  # first and last
    emb = store.load_snapshot(store.snapshots(run.id, "embeddings")[-1][1])
    assert emb is not None and emb["z"].shape == (256, 32)  # eval_batch, embed_points rows
    assert "from_batch" not in emb  # the same held-out samples at every step
    assert set(np.unique(emb["y"])) <= set(range(10)) and len(np.unique(emb["y"])) > 1


def test_the_example_prints_its_usage_and_refuses_bad_steps(tmp_path: Path) -> None:
    """`--help` crashed with int('--help'); it now prints the usage and exits 0, and a
    STEPS that is not a positive integer is argparse's usage error (exit 2), no run."""
    shown = run_python("examples/watch_simclr.py", "--help")
    assert shown.returncode == 0, shown.stderr[-3000:]
    assert shown.stdout.startswith("usage: watch_simclr.py") and "[STEPS] [STORE]" in shown.stdout
    for bad in ("ten", "0"):
        refused = run_python("examples/watch_simclr.py", bad, str(tmp_path))
        assert refused.returncode == 2 and "usage: watch_simclr.py" in refused.stderr
        assert "argument STEPS: must be an integer >= 1" in refused.stderr
    assert list(tmp_path.iterdir()) == []  # nothing was recorded
