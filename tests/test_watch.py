"""Tests of gca_viz.watch: a training loop of its own recorded into the run store.

Real processes: tests/scripts/watch_loop.py trains with a Recorder in a subprocess while
the test reads the store, steers the loss, stops, kills or crashes it; two torchrun ranks
(gloo) run tests/scripts/watch_ddp.py. In-process recorders test bad input and a store
that cannot be written; an AppTest of the Train page shows an external run.
"""

from __future__ import annotations

import importlib.util
import json
import os
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

from gca_viz import demo, losses
from gca_viz.runs import RunStore
from gca_viz.watch import Recorder, RecorderWarning, apply_live_change
from tests.plotly_json import array as _array
from tests.tmpfs import mount_tmpfs, umount

ROOT = Path(__file__).resolve().parents[1]
LOOP = str(ROOT / "tests" / "scripts" / "watch_loop.py")
TRAIN = str(ROOT / "views" / "train.py")


def _wait(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _start(store: Path, mode: str) -> subprocess.Popen[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, LOOP, str(store), mode, "5"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.communicate(timeout=10)


def _the_run(store: RunStore, timeout: float = 30) -> int:
    _wait(lambda: store.list_runs(), timeout, "the loop to register its run")
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
        run_id = _the_run(store)
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

        _wait(streamed, 30, "metrics and snapshots")
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
        _wait(lambda: store.applied_changes(run_id), 15, "the change to take effect")
        (change,) = store.applied_changes(run_id)
        at = change["step"]
        _wait(lambda: store.latest_metrics(run_id)["epsilon"][0] > at + 1, 15, "later steps")
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
        run_id = _the_run(store)
        _wait(lambda: store.metrics(run_id, ["loss"]), 30, "the first metrics")
        assert store.reconcile() == []  # alive, although it does not run gca_viz's CLI
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        _stop(proc)
    assert store.reconcile() == [run_id]
    info = store.get(run_id)
    assert info.status == "interrupted" and "died" in (info.error or "")


def test_a_crash_marks_the_run_failed_with_its_traceback(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    proc = _start(tmp_path, "crash")
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        _stop(proc)
    assert proc.returncode == 1 and "the loop broke at step 5" in err  # the hook chains
    info = store.get(_the_run(store, 1))
    assert info.status == "failed" and info.step == 5
    assert "RuntimeError: the loop broke at step 5" in (info.error or "")
    assert store.metrics(info.id, ["loss"])["loss"][-1, 0] == 5  # buffered metrics written


def test_two_torchrun_ranks_record_one_run_and_change_at_the_same_step(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    script = str(ROOT / "tests" / "scripts" / "watch_ddp.py")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
           script, str(tmp_path / "store"), str(out)]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
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
        rec.step(3, loss="again")  # the same problem warns once
        rec.batch(3, z1.numpy(), z2)
        rec.batch(4, z1, torch.randn(8, 4))
        rec.batch(5, torch.full((16, 4), float("nan")), z2)
        rec.batch(6, z1, z2, labels=[1, 2])
        rec.step(6, loss=float("nan"))
        rec.step(7, loss=torch.tensor(0.5))
        rec.batch(7, z1, z2)
        rec.finish()
    messages = [str(w.message) for w in caught]
    expected = ("step must be an integer", "loss must be a number", "must be a torch.Tensor",
                "same shape", "NaN or inf", "labels must be 16", "loss is nan")  # fmt: skip
    for words in expected:
        assert sum(words in m for m in messages) == 1, (words, messages)
    assert len(messages) == 7
    store = RunStore(tmp_path)
    assert len(store.events(rec.run_id)) == 7
    loss = store.metrics(rec.run_id, ["loss"])["loss"]
    assert loss[-1].tolist() == [7, 0.5] and np.isnan(loss[loss[:, 0] == 6, 1]).all()
    assert [s for s, _ in store.snapshots(rec.run_id, "plan")] == [6, 7]  # not 4, not 5
    assert store.get(rec.run_id).status == "finished"


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
        _wait(lambda: store.latest_metrics(rec.run_id).get("loss") == (41, 2.0), 10, "a write")
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
    with pytest.raises(ImportError, match="pip install lightning"):
        from gca_viz.watch import RecorderCallback  # noqa: F401


# ----------------------------------------------------------------------------- page


def test_the_train_page_marks_external_runs_and_draws_their_curve_and_plan(
    tmp_path: Path, app_env: Callable[[Path], None]
) -> None:
    from streamlit.testing.v1 import AppTest

    if str(ROOT) not in sys.path:  # the pages import the shared `ui` module from the root
        sys.path.insert(0, str(ROOT))
    demo.install(RunStore(tmp_path), source=tmp_path / "no-demo-runs")
    done = Recorder(tmp_path, name="mine", loss=losses.get("gca_ince", n_iter=3),
                    snapshot_every=2, flush_every=0.05, config={"steps": 6})  # fmt: skip
    for step in range(1, 7):
        z1, z2 = _pair(32, 4)
        done.step(step, loss=1.0 / step)
        done.batch(step, z1, z2, labels=torch.arange(32) % 3)
    done.finish()
    plain = Recorder(tmp_path, name="plain", loss=torch.nn.MSELoss(), flush_every=0.05)
    steered = Recorder(tmp_path, name="steered", loss=losses.get("gca_ince"), flush_every=0.05)
    plain.step(1, loss=1.0)
    app_env(tmp_path)
    try:
        at = AppTest.from_file(TRAIN, default_timeout=60)
        at.run()
        assert not at.exception, [e.message for e in at.exception]
        at.selectbox(key="tr_run").set_value(done.run_id).run()
        assert not at.exception
        charts = {c.proto.id.rsplit("-", 1)[-1]: json.loads(c.proto.spec) for c in
                  at.get("plotly_chart")}  # fmt: skip
        assert {"tr_curves", "tr_plan"} <= set(charts)
        assert charts["tr_plan"]["data"][0]["type"] == "heatmap"
        table = next(d.value for d in at.dataframe if "status" in d.value.columns)
        assert set(table["name"]) == {"mine (external)", "plain (external)", "steered (external)"}
        captions = " ".join(c.value for c in at.caption)
        assert "External run" in captions and "cannot be resumed" in captions
        assert at.button(key="tr_resume").disabled
        assert not [e for e in at.expander if "Duplicate" in e.label]
        assert "step 6 of 6" in " ".join(str(p.proto.text) for p in at.get("progress"))

        at.selectbox(key="tr_run").set_value(plain.run_id).run()
        assert not at.exception
        assert "no live controls" in " ".join(c.value for c in at.caption)
        assert not [e for e in at.expander if "Live controls" in e.label]
        at.button(key="tr_stop").click().run()  # asks; this process is not signalled
        _wait(lambda: plain.step(2, loss=1.0) or plain.should_stop, 10, "the stop request")

        at.selectbox(key="tr_run").set_value(steered.run_id).run()
        assert not at.exception
        assert [e for e in at.expander if "Live controls" in e.label]
        assert at.selectbox(key=f"tr_live_{steered.run_id}_target").options == ["pairs"]
    finally:
        plain.finish()
        steered.finish()
    assert RunStore(tmp_path).get(plain.run_id).status == "stopped"


def test_geometry_draws_an_external_runs_embeddings(
    tmp_path: Path, app_env: Callable[[Path], None]
) -> None:
    from streamlit.testing.v1 import AppTest

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    demo.install(RunStore(tmp_path), source=tmp_path / "no-demo-runs")
    rec = Recorder(tmp_path, name="mine", loss=losses.get("gca_ince", n_iter=3),
                   snapshot_every=2, config={"steps": 6})  # fmt: skip
    for step in range(1, 7):
        z1, z2 = _pair(64, 3)
        rec.step(step, loss=1.0 / step)
        rec.batch(step, z1, z2, labels=torch.arange(64) % 4)
    rec.finish()
    app_env(tmp_path)
    at = AppTest.from_file(str(ROOT / "views" / "geometry.py"), default_timeout=60)
    at.run()
    assert not at.exception and not at.error, [e.message for e in at.exception]
    charts = {c.proto.id.rsplit("-", 1)[-1]: json.loads(c.proto.spec) for c in
              at.get("plotly_chart")}  # fmt: skip
    points = [t for t in charts[f"geo_fig_{rec.run_id}"]["data"] if t.get("x") is not None]
    assert sum(len(_array(t["x"])) for t in points) == 64  # its snapshot's 64 points
    assert "geo_plane_fig" in charts  # its alignment and uniformity, on the plane


# ------------------------------------------------------------ example and benchmark


def test_the_example_trains_a_simclr_loop_into_the_store(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "examples/watch_simclr.py", "20", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    store = RunStore(tmp_path)
    (run,) = store.list_runs()
    assert run.external and run.status == "finished" and run.step == 20
    assert run.config["dataset"] == "digits" and run.config["method"] == "gca_ince"
    assert [s for s, _ in store.snapshots(run.id, "plan")] == [1, 20]  # first and last
    emb = store.load_snapshot(store.snapshots(run.id, "embeddings")[-1][1])
    assert emb is not None and emb["z"].shape == (256, 32)  # eval_batch, embed_points rows
    assert set(np.unique(emb["y"])) <= set(range(10)) and len(np.unique(emb["y"])) > 1


@pytest.mark.slow
def test_the_overhead_benchmark_runs() -> None:
    done = subprocess.run(
        [sys.executable, "benchmarks/bench_watch.py", "--quick", "--threads", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "overhead" in done.stdout and "target < 3%" in done.stdout
