"""Page tests (AppTest) of the Train and Geometry pages against a real run store.

A module fixture trains three tiny runs in a temporary store through ``RunStore.launch``
(real background processes): a 3-D run on the digits (device "auto"), an 8-D run on the
multi-domain digits and a run that fails (the domain prior on data without domains). The
pages are loaded on their own (``AppTest.from_file("views/...")``) with ``GCA_RUNS_DIR``
pointing at the store. ``st.fragment(run_every=...)`` never ticks in AppTest: every check is
a full run, and ``fragment_timers`` records which fragments a run asked to refresh.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from gca_viz import data, demo, embed
from gca_viz.runs import ACTIVE, RunStore
from tests.plotly_json import array as _array
from views._train_runs import AUTO_RERUN

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the pages import the shared `ui` module from the root
    sys.path.insert(0, str(ROOT))

TRAIN, GEOMETRY = str(ROOT / "views" / "train.py"), str(ROOT / "views" / "geometry.py")

TINY: dict[str, Any] = {
    "batch_size": 96,  # more than the 64 pairs a plan snapshot keeps
    "steps": 30,
    "encoder_params": {"hidden": 32},
    "head_hidden": 32,
    "device": "cpu",
    "eval_every": 10,
    "snapshot_every": 10,
    "checkpoint_every": 30,
    "eval_subset": 120,
}


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _store_without_demos(path: Path) -> RunStore:
    """A store whose shipped demo runs count as installed already (none are imported), so
    a test sees exactly the runs it made."""
    store = RunStore(path)
    demo.install(store, source=path / "no-demo-runs")
    return store


def _kill(store: RunStore) -> None:
    """Stop every active run of the store and make sure its process is gone."""
    for run in store.list_runs():
        if run.status in ACTIVE:
            store.stop(run.id)
    for run in store.list_runs():
        if run.pid:
            try:
                os.kill(run.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A store with three finished-or-failed runs: 1 (sphere), 2 (8-D, domains), 3 (failed)."""
    path = tmp_path_factory.mktemp("store")
    _store_without_demos(path)
    store = RunStore(path, max_concurrent=2)
    store.launch({**TINY, "method": "gca_ince", "out_dim": 3, "device": "auto",
                  "loss_params": {"epsilon": 0.5, "n_iter": 5}}, name="sphere")  # fmt: skip
    store.launch({**TINY, "method": "ince", "out_dim": 8, "dataset": "multidomain_digits"},
                 name="eight-d")  # fmt: skip
    store.launch({**TINY, "method": "ince", "out_dim": 3, "target": "domain"}, name="broken")
    try:
        # The third run waits in the queue until a finishing run frees a slot and starts it.
        _wait(lambda: all(r.status not in ACTIVE for r in store.list_runs()), 90, "the runs")
    finally:
        _kill(store)
    status = {r.id: r.status for r in store.list_runs()}
    assert status == {1: "finished", 2: "finished", 3: "failed"}, store.get(3).error
    yield path


@pytest.fixture
def store_env(runs_dir: Path, app_env: Callable[[Path], None]) -> Path:
    app_env(runs_dir)
    return runs_dir


@pytest.fixture
def fragment_timers(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """``{function name: run_every}`` of the fragments the pages made in their last run."""
    timers: dict[str, Any] = {}
    real = st.fragment

    def recording(func: Any = None, **kw: Any) -> Any:
        def wrap(f: Any) -> Any:
            timers[f.__name__] = kw.get("run_every")
            return real(f, **kw)

        return wrap if func is None else wrap(func)

    monkeypatch.setattr(st, "fragment", recording)
    return timers


def _page(path: str) -> AppTest:
    at = AppTest.from_file(path, default_timeout=60)
    at.run()
    _assert_clean(at)
    return at


def _assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]


def _charts(at: AppTest) -> dict[str, dict[str, Any]]:
    """The page's plotly figures by the key they were drawn with."""
    out = {}
    for chart in at.get("plotly_chart"):
        key = chart.proto.id.rsplit("-", 1)[-1]
        out[key] = json.loads(chart.proto.spec)
    return out


def _names(fig: dict[str, Any]) -> list[str]:
    return [t.get("name") for t in fig["data"] if t.get("showlegend", True) and t.get("name")]


def _texts(elements: Any) -> str:
    return " ".join(str(e.value) for e in elements)


# ------------------------------------------------------------------------- empty store


@pytest.mark.parametrize("page", [TRAIN, GEOMETRY], ids=["train", "geometry"])
def test_pages_render_an_empty_store_with_guidance(
    page: str, tmp_path: Path, app_env: Callable[[Path], None]
) -> None:
    _store_without_demos(tmp_path / "empty")
    app_env(tmp_path / "empty")
    at = _page(page)
    assert "No runs yet" in _texts(at.info)
    assert not at.error and not at.get("plotly_chart")


@pytest.mark.parametrize("page", [TRAIN, GEOMETRY], ids=["train", "geometry"])
def test_pages_show_the_shipped_demo_runs(
    page: str, tmp_path: Path, app_env: Callable[[Path], None]
) -> None:
    """A new store gets the demo runs (imported CLI runs: no process, no checkpoint)."""
    app_env(tmp_path / "new")
    at = _page(page)
    assert not at.error and not at.warning
    charts = _charts(at)
    if page == TRAIN:
        assert {"tr_curves", "tr_plan", "tr_embed"} <= set(charts)
        assert _names(charts["tr_curves"])[0].split(" ", 1)[1].startswith("demo-")
        # the run's latest embeddings beside its plan (issue 14: a lecture stays on one page)
        store = RunStore(tmp_path / "new")
        run = at.selectbox(key="tr_run").value
        _, path = store.snapshots(run, "embeddings")[-1]
        z = store.load_snapshot(path)["z"]
        embed_fig = charts["tr_embed"]
        points = [t for t in embed_fig["data"] if t["type"] in ("scatter", "scatter3d")]
        assert [t["name"] for t in points] == [str(c) for c in range(10)]  # one per digit
        assert sum(len(_array(t["x"])) for t in points) == len(z)  # every held-out sample
        assert "Embeddings at step" in json.dumps(embed_fig["layout"])
    else:
        assert any(t["type"] == "scatter3d" for f in charts.values() for t in f["data"])
        assert len(_names(charts["geo_plane_fig"])) == len(demo.DEMO_RUNS)


# ------------------------------------------------------------------------------ train


def test_train_page_shows_the_newest_run_live(store_env: Path) -> None:
    at = _page(TRAIN)
    assert at.selectbox(key="tr_run").value == 3  # newest first
    at.selectbox(key="tr_run").set_value(1).run()
    _assert_clean(at)
    charts = _charts(at)
    assert {"tr_curves", "tr_plan"} <= set(charts)
    assert _names(charts["tr_curves"]) == ["#1 sphere"]
    plan = charts["tr_plan"]["data"][0]
    assert plan["type"] == "heatmap" and _array(plan["z"]).size == 128 * 128  # joint 2N = 128
    # the numbers beside the plan say which pairs they are on, and give the target's mass
    tables = [d.value for d in at.dataframe if "quantity" in d.value.columns]
    assert tables, "the snapshot's table of diagnostics"
    quantities = list(tables[0]["quantity"])
    assert "loss on these pairs" in quantities and "target's total mass Σ P_tgt" in quantities
    batch = int(RunStore(store_env).get(1).config["batch_size"])
    slice_note = [c.value for c in at.caption if c.value.startswith("The first 64 pairs")]
    assert len(slice_note) == (1 if batch > 64 else 0), (batch, slice_note)
    assert "step 30 of 30" in at.get("progress")[0].proto.text
    assert at.query_params["tr_run"] == "1"  # a copied link reopens this run
    assert not at.error and not at.warning


def test_the_progress_line_and_the_table_name_the_device_the_run_used(store_env: Path) -> None:
    device = RunStore(store_env).get(1).device
    assert device in ("cpu", "cuda:0")  # run 1 asked for "auto"; the run recorded its choice
    at = _page(TRAIN)
    at.selectbox(key="tr_run").set_value(1).run()
    _assert_clean(at)
    text = at.get("progress")[0].proto.text
    assert f"device {device}" in text and "auto" not in text
    table = at.dataframe[0].value.set_index("run")
    assert table.loc[1, "device"] == device


def _fake_run(store: RunStore, **row: Any) -> int:
    """A run row written straight to the store (no process), for pages to show."""
    config = {**TINY, "method": "gca_ince", "out_dim": 3, "steps": 30, "device": "auto"}
    values = {"name": "fake", "config": json.dumps(config), "status": "queued",
              "created": time.time(), **row}  # fmt: skip
    with store._db(write=True) as db:
        cur = db.execute(
            f"INSERT INTO runs ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",
            tuple(values.values()),
        )
    return int(cur.lastrowid or 0)


def _update(store: RunStore, run_id: int, **row: Any) -> None:
    with store._db(write=True) as db:
        sets = ", ".join(f"{k}=?" for k in row)
        db.execute(f"UPDATE runs SET {sets} WHERE id=?", (*row.values(), run_id))


def _row(at: AppTest, run_id: int) -> dict[str, Any]:
    """The "All runs" table's row of a run."""
    table = at.dataframe[0].value
    return dict(table[table["run"] == run_id].iloc[0])


def test_the_runs_table_and_the_run_choice_follow_the_store_between_reruns(
    tmp_path: Path, app_env: Callable[[Path], None], fragment_timers: dict[str, Any]
) -> None:
    store_dir = tmp_path / "live"
    store = _store_without_demos(store_dir)
    app_env(store_dir)
    finished = _fake_run(store, name="done", status="finished", step=30, device="cpu")
    # A stand-in for a run process: alive, with "gca_viz" on its command line (what
    # RunStore.reconcile checks), and a fresh heartbeat.
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "gca_viz"])
    try:
        live = _fake_run(store, name="live", status="running", pid=proc.pid,
                         heartbeat=time.time(), started=time.time(), step=12)  # fmt: skip
        at = _page(TRAIN)
        assert at.selectbox(key="tr_run").value == live
        assert (_row(at, live)["status"], _row(at, live)["step"]) == ("running", 12)
        assert "#2 live · running" in at.selectbox(key="tr_run").options
        text = at.get("progress")[0].proto.text
        assert "**running** · step 12 of 30" in text and "device auto" in text  # not started
        # While a run is active the table, the choice and the monitor poll the store.
        assert fragment_timers["_panel"] and fragment_timers["live_monitor"]

        _update(store, live, step=20, device="cuda:0", heartbeat=time.time())
        at.selectbox(key="tr_run").set_value(finished).run()  # watch the other run
        _assert_clean(at)
        assert _row(at, live)["step"] == 20 and _row(at, live)["device"] == "cuda:0"
        assert fragment_timers["_panel"] and not fragment_timers["live_monitor"]

        _update(store, live, status="finished", step=30, ended=time.time())
        at.run()
        _assert_clean(at)
        assert (_row(at, live)["status"], _row(at, live)["step"]) == ("finished", 30)
        assert _row(at, live)["progress"] == 1.0
        assert "#2 live · finished" in at.selectbox(key="tr_run").options
        assert at.selectbox(key="tr_run").value == finished  # the choice survived
        assert not fragment_timers["_panel"]  # nothing active: nothing polls
    finally:
        proc.kill()
        proc.wait()


def test_selecting_and_comparing_runs_changes_the_curves(store_env: Path) -> None:
    at = _page(TRAIN)
    at.selectbox(key="tr_run").set_value(1).run()
    first = _charts(at)["tr_curves"]
    at.selectbox(key="tr_run").set_value(2).run()
    _assert_clean(at)
    second = _charts(at)["tr_curves"]
    assert _names(first) == ["#1 sphere"] and _names(second) == ["#2 eight-d"]
    assert not np.array_equal(_array(first["data"][-1]["y"]), _array(second["data"][-1]["y"]))
    at.multiselect(key="tr_compare").set_value([1]).run()
    _assert_clean(at)
    assert _names(_charts(at)["tr_curves"]) == ["#2 eight-d", "#1 sphere"]


def test_metric_and_plan_controls_change_the_figures(store_env: Path) -> None:
    at = _page(TRAIN)
    at.selectbox(key="tr_run").set_value(1).run()
    before = _charts(at)
    at.multiselect(key="tr_metrics").set_value(["probe_acc"]).run()
    at.selectbox(key="tr_plan_view").set_value("kernel").run()
    _assert_clean(at)
    after = _charts(at)
    titles = [a["text"] for a in after["tr_curves"]["layout"]["annotations"]]
    assert titles == ["Linear-probe accuracy"]
    assert after["tr_plan"]["layout"]["title"]["text"].startswith("Kernel")
    assert not np.allclose(
        _array(before["tr_plan"]["data"][0]["z"]),
        _array(after["tr_plan"]["data"][0]["z"]),
        equal_nan=True,
    )


def test_an_epsilon_change_and_runs_of_different_epsilon_are_flagged_on_the_loss(
    tmp_path: Path, app_env: Callable[[Path], None]
) -> None:
    """ε sets the loss's scale: the step where it changed is marked "ε 0.5 → 0.2" on the
    curves, with a line under them saying the losses before and after are not comparable;
    comparing with a run of another ε says the same."""
    store = _store_without_demos(tmp_path / "eps")
    app_env(tmp_path / "eps")
    config = {**TINY, "method": "gca_ince", "out_dim": 3}
    ids = []
    for name, eps in (("changed", 0.5), ("other", 0.1)):
        cfg = {**config, "loss_params": {"epsilon": eps}}
        ids.append(_fake_run(store, name=name, status="finished", step=30,
                             config=json.dumps(cfg)))  # fmt: skip
    with store._db(write=True) as db:
        for run_id in ids:
            db.executemany(
                "INSERT INTO metrics (run_id, step, name, value) VALUES (?, ?, 'loss', ?)",
                [(run_id, step, 4.0 - step / 30) for step in range(1, 31)],
            )
        db.execute(
            "INSERT INTO changes (run_id, requested, params, applied_step) VALUES (?, ?, ?, ?)",
            (ids[0], time.time(), json.dumps({"epsilon": 0.2}), 15),
        )
    at = _page(TRAIN)
    at.selectbox(key="tr_run").set_value(ids[1]).run()
    _assert_clean(at)
    assert "not comparable" not in _texts(at.caption)  # one run, one ε
    at.selectbox(key="tr_run").set_value(ids[0]).run()
    _assert_clean(at)
    labels = [a["text"] for a in _charts(at)["tr_curves"]["layout"]["annotations"]]
    assert "ε 0.5 → 0.2" in labels
    assert (
        "ε changed during training (#1 changed at step 15, ε 0.5 → 0.2): ε sets the scale of "
        "the loss, so loss values before and after the line are not comparable."
    ) in _texts(at.caption)
    at.multiselect(key="tr_compare").set_value([ids[1]]).run()
    _assert_clean(at)
    assert (
        "The runs drawn train with different ε (#1 changed: ε 0.5 → 0.2, #2 other: ε 0.1): "
        "their losses are on different scales and not comparable."
    ) in _texts(at.caption)


def test_a_failed_run_shows_its_error_and_traceback(store_env: Path) -> None:
    at = _page(TRAIN)
    at.selectbox(key="tr_run").set_value(3).run()
    _assert_clean(at)
    assert "Run #3 failed" in _texts(at.error)
    assert "domain labels" in _texts(at.error)
    assert any("Error details" in e.label for e in at.expander)
    assert "Traceback" in _texts(at.code)


def test_a_batch_larger_than_the_training_split_is_announced(
    tmp_path: Path, app_env: Callable[[Path], None]
) -> None:
    """The run caps the batch at the training split; the form says so before the launch."""
    _store_without_demos(tmp_path / "fresh")
    app_env(tmp_path / "fresh")
    at = _page(TRAIN)
    at.selectbox(key="tr_data").set_value("digits").run()
    note = "The training split of this dataset holds"
    assert not [c for c in at.caption if c.value.startswith(note)]  # 256 fits
    at.number_input(key="tr_batch").set_value(100000).run()
    _assert_clean(at)
    train = data.load_dataset("digits").split(0.25)[0].n
    shown = [c.value for c in at.caption if c.value.startswith(note)]
    assert shown == [
        f"{note} {train} samples, so each batch will hold all {train} "
        "(a batch size of 100000 is capped there)."
    ]


def test_invalid_configs_show_an_error_and_launch_nothing(
    tmp_path: Path, app_env: Callable[[Path], None]
) -> None:
    _store_without_demos(tmp_path / "fresh")
    app_env(tmp_path / "fresh")
    at = _page(TRAIN)
    at.number_input(key="tr_steps").set_value(0)
    at.button(key="tr_launch").click().run()
    _assert_clean(at)
    assert "steps must be >= 1" in _texts(at.error)
    at.number_input(key="tr_steps").set_value(10)
    at.selectbox(key="tr_method").set_value("composed").run()
    at.selectbox(key="tr_projection").set_value("unbalanced").run()
    at.number_input(key="tr_relax_a").set_value(-1.0).run()  # the shared λ control refuses it
    _assert_clean(at)
    assert "$λ_1$ = -1 is not used: $λ_1$ must be a number > 0" in _texts(at.warning)
    assert at.number_input(key="tr_relax_a").value == 0.2  # the value in use stays
    at.number_input(key="tr_relax_a").set_value(0.5)
    at.selectbox(key="tr_target").set_value("domain").run()
    at.button(key="tr_launch").click().run()
    assert "domain prior needs a dataset with domain labels" in _texts(at.error)
    assert RunStore(tmp_path / "fresh").list_runs() == []


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def test_uploads_are_saved_in_the_store_and_validated(
    tmp_path: Path, app_env: Callable[[Path], None]
) -> None:
    store_dir = tmp_path / "up"
    _store_without_demos(store_dir)
    app_env(store_dir)
    at = _page(TRAIN)
    at.selectbox(key="tr_data").set_value("upload").run()
    assert at.button(key="tr_launch").disabled  # nothing to train on yet
    uploader = at.get("file_uploader")[0]
    uploader.set_value(("not really.npz", b"not a zip archive", "application/octet-stream"))
    at.run()
    _assert_clean(at)
    assert "This data cannot be used" in _texts(at.error)
    assert not list((store_dir / "uploads").glob("*.npz"))  # the bad file is not kept
    rng = np.random.default_rng(0)
    good = _npz_bytes(x=rng.standard_normal((40, 5)).astype(np.float32), y=np.arange(40) % 2)
    at.get("file_uploader")[0].set_value(("../../evil name.npz", good, "application/x-npz"))
    at.run()  # a name with a path is refused, whatever it holds (browsers send none)
    _assert_clean(at)
    assert "the name holds a path" in _texts(at.error)
    assert not list((store_dir / "uploads").glob("*.npz"))
    at.get("file_uploader")[0].set_value(("evil name.npz", good, "application/x-npz"))
    at.run()
    _assert_clean(at)
    assert "40 vector samples of shape (5,), 2 classes" in _texts(at.success)
    saved = list((store_dir / "uploads").glob("*.npz"))
    assert len(saved) == 1 and saved[0].name.startswith("evil_name-")
    assert not (tmp_path / "evil name.npz").exists()
    assert not at.button(key="tr_launch").disabled


def test_a_path_is_confined_to_the_data_directory_and_validated(
    tmp_path: Path, app_env: Callable[[Path], None]
) -> None:
    store_dir = tmp_path / "disk"
    _store_without_demos(store_dir)
    app_env(store_dir)
    at = _page(TRAIN)
    at.selectbox(key="tr_data").set_value("path").run()
    assert "holds no .npz file" in _texts(at.caption)  # the folder is empty
    at.text_input(key="tr_path").set_value("missing.npz").run()
    _assert_clean(at)
    assert "no such file or folder" in _texts(at.error)
    outside = tmp_path / "outside.npz"
    np.savez(outside, x=np.zeros((4, 3)), y=np.arange(4) % 2)
    for escape in (str(outside), "../../outside.npz"):
        at.text_input(key="tr_path").set_value(escape).run()
        _assert_clean(at)
        assert "leaves the data directory" in _texts(at.error)
        assert at.button(key="tr_launch").disabled
    bad = store_dir / "datasets" / "bad.npz"
    np.savez(bad, x=np.zeros((4, 3)))  # no labels
    at.text_input(key="tr_path").set_value("bad.npz").run()
    _assert_clean(at)
    assert "This data cannot be used" in _texts(at.error) and "y" in _texts(at.error)
    assert "In this folder: `bad.npz`" in _texts(at.caption)  # what can be typed
    assert at.button(key="tr_launch").disabled


def test_launch_from_the_page_then_steer_the_run_live(
    tmp_path: Path, app_env: Callable[[Path], None]
) -> None:
    store_dir = tmp_path / "launch"
    store = _store_without_demos(store_dir)
    app_env(store_dir)
    try:
        at = _page(TRAIN)
        at.selectbox(key="tr_method").set_value("gca_ince").run()
        at.number_input(key="tr_steps").set_value(20000)
        at.number_input(key="tr_out_dim").set_value(2)
        at.number_input(key="tr_batch").set_value(32)
        at.number_input(key="tr_enc_hidden").set_value(16)
        at.number_input(key="tr_epsilon").set_value(0.4)
        at.number_input(key="tr_n_iter").set_value(3)
        at.text_input(key="tr_name").set_value("from the page")
        at.button(key="tr_launch").click().run()
        _assert_clean(at)
        runs = store.list_runs()
        assert len(runs) == 1 and "Launched run #1" in _texts(at.success)
        cfg = runs[0].config
        assert runs[0].name == "from the page" and runs[0].status in ACTIVE
        assert (cfg["method"], cfg["steps"], cfg["out_dim"], cfg["batch_size"]) == (
            "gca_ince", 20000, 2, 32)  # fmt: skip
        assert cfg["loss_params"]["epsilon"] == 0.4 and cfg["loss_params"]["n_iter"] == 3
        assert cfg["encoder_params"]["hidden"] == 16 and cfg["dataset"] == "digits"
        # The notice stays through the page's own reruns (the run left the queue, the other
        # run ended) and goes at the user's next action.
        for _ in range(2):
            at.session_state[AUTO_RERUN] = True
            at.run()
            assert "Launched run #1" in _texts(at.success)
        at.run()
        assert "Launched run #1" not in _texts(at.success)

        # Live controls: an invalid change is an error, a valid one is applied and marked.
        at.run()
        apply = next(b for b in at.button if b.label == "Apply at the next step")
        at.number_input(key="tr_live_1_epsilon").set_value(-1.0)
        apply.click().run()
        _assert_clean(at)
        assert "epsilon must be > 0" in _texts(at.error)
        at.number_input(key="tr_live_1_epsilon").set_value(0.25)
        next(b for b in at.button if b.label == "Apply at the next step").click().run()
        _assert_clean(at)
        assert "Requested ε=0.25" in _texts(at.success)
        _wait(lambda: bool(store.applied_changes(1)), 60, "the change to take effect")
        _wait(lambda: bool(store.metrics(1, ["loss"])), 60, "the first metrics")
        at.run()
        _assert_clean(at)
        curves = _charts(at)["tr_curves"]
        step = store.applied_changes(1)[0]["step"]
        lines = [s for s in curves["layout"]["shapes"] if s["type"] == "line"]
        assert lines and all(s["x0"] == step for s in lines)
        labels = [a["text"] for a in curves["layout"]["annotations"]]
        assert "ε 0.4 → 0.25" in labels  # from the launch's ε to the new one

        # The Geometry page draws the 2-D run on the circle and follows its new snapshots.
        _wait(lambda: len(store.snapshots(1, "embeddings")) >= 2, 60, "two snapshots")
        geo = _page(GEOMETRY)
        fig = _charts(geo)["geo_fig_1"]
        assert [s["type"] for s in fig["layout"]["shapes"]] == ["circle"]

        def newest() -> int:
            return store.snapshots(1, "embeddings")[-1][0]

        first = geo.select_slider(key="geo_step").value
        _wait(lambda: newest() > first, 60, "a new snapshot")
        before = newest()
        geo.run()  # on the newest snapshot, the slider follows the run
        _assert_clean(geo)
        assert before <= geo.select_slider(key="geo_step").value <= newest()
        geo.select_slider(key="geo_step").set_value(first).run()  # looking back: it stays
        _wait(lambda: newest() > before, 60, "another snapshot")
        geo.run()
        assert geo.select_slider(key="geo_step").value == first

        # Stop from the page.
        at.button(key="tr_stop").click().run()
        _assert_clean(at)
        _wait(lambda: store.get(1).status == "stopped", 60, "the run to stop")
    finally:
        _kill(store)


# --------------------------------------------------------------------------- geometry


def test_geometry_draws_the_sphere_and_the_slider_moves_through_time(store_env: Path) -> None:
    at = _page(GEOMETRY)
    at.selectbox(key="geo_run").set_value(1).run()
    _assert_clean(at)
    fig = _charts(at)["geo_fig_1"]
    kinds = {t["type"] for t in fig["data"]}
    assert kinds == {"surface", "scatter3d"}
    assert at.select_slider(key="geo_step").value == 30  # the newest snapshot
    late = np.concatenate([_array(t["x"]) for t in fig["data"] if t["type"] == "scatter3d"])
    at.select_slider(key="geo_step").set_value(10).run()
    _assert_clean(at)
    fig = _charts(at)["geo_fig_1"]
    early = np.concatenate([_array(t["x"]) for t in fig["data"] if t["type"] == "scatter3d"])
    assert early.shape == late.shape == (120,) and not np.allclose(early, late)
    assert "step 10" in fig["layout"]["title"]["text"]


def test_geometry_projects_wide_embeddings_and_colours_by_domain(store_env: Path) -> None:
    at = _page(GEOMETRY)
    at.selectbox(key="geo_run").set_value(2).run()
    _assert_clean(at)
    fig = _charts(at)["geo_fig_2"]
    assert fig["layout"]["xaxis"]["title"]["text"].startswith("PC1")
    assert _names(fig) == [str(c) for c in range(10)]
    at.selectbox(key="geo_color").set_value("domain").run()
    _assert_clean(at)
    assert _names(_charts(at)["geo_fig_2"]) == ["original", "rotated", "inverted", "noisy"]
    at.selectbox(key="geo_run").set_value(1).run()  # digits: no domains, class colours
    _assert_clean(at)
    assert "no domains" in _texts(at.caption)
    assert _names(_charts(at)["geo_fig_1"]) == [str(c) for c in range(10)]


def test_geometry_computes_tsne_in_the_background(store_env: Path) -> None:
    at = _page(GEOMETRY)
    at.selectbox(key="geo_run").set_value(2).run()
    at.selectbox(key="geo_method").set_value("tsne").run()
    _assert_clean(at)
    assert "PCA" in _charts(at)["geo_fig_2"]["layout"]["title"]["text"]  # until computed
    go = next(b for b in at.button if b.label.startswith("Compute t-SNE"))
    go.click().run()
    _assert_clean(at)

    def ready() -> bool:
        at.run()
        _assert_clean(at)
        return "t-SNE" in _charts(at)["geo_fig_2"]["layout"]["title"]["text"]

    _wait(ready, 60, "t-SNE")
    assert not any(b.label.startswith("Compute t-SNE") for b in at.button)


def test_geometry_compares_two_runs_side_by_side(store_env: Path) -> None:
    at = _page(GEOMETRY)
    at.selectbox(key="geo_run").set_value(1).run()
    at.selectbox(key="geo_compare").set_value(2).run()
    _assert_clean(at)
    charts = _charts(at)
    assert {"geo_fig_1", "geo_fig_2"} <= set(charts)


def test_geometry_plane_places_evaluated_runs(store_env: Path) -> None:
    at = _page(GEOMETRY)
    plane = _charts(at)["geo_plane_fig"]
    assert sorted(_names(plane)) == ["#1 sphere", "#2 eight-d"]  # run 3 was never evaluated
    for trace in plane["data"]:
        x, y = _array(trace["x"]), _array(trace["y"])
        assert np.all(x <= 0) and np.all(
            (y >= 0) & (y <= 4)
        )  # uniformity <= 0, alignment in [0, 4]
    at.multiselect(key="geo_plane").set_value([2]).run()
    _assert_clean(at)
    assert _names(_charts(at)["geo_plane_fig"]) == ["#2 eight-d"]


def test_a_corrupt_snapshot_is_a_warning_and_the_page_keeps_working(store_env: Path) -> None:
    store = RunStore(store_env)
    step, path = store.snapshots(1, "embeddings")[1]
    original = path.read_bytes()
    try:
        path.write_bytes(b"\x00corrupt")
        at = _page(GEOMETRY)
        at.selectbox(key="geo_run").set_value(1).run()
        at.select_slider(key="geo_step").set_value(step).run()
        _assert_clean(at)
        assert f"snapshot at step {step} is missing or unreadable" in _texts(at.warning)
        assert "geo_plane_fig" in _charts(at)  # the rest of the page is still there
        at.select_slider(key="geo_step").set_value(30).run()
        _assert_clean(at)
        assert "geo_fig_1" in _charts(at) and not at.warning
    finally:
        path.write_bytes(original)


def _snapshot(store_env: Path, run_id: int, step: int) -> dict[str, np.ndarray]:
    path = dict(RunStore(store_env).snapshots(run_id, "embeddings"))[step]
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def _trace(fig: dict[str, Any], name: str) -> dict[str, Any]:
    (trace,) = [t for t in fig["data"] if t.get("name") == name]
    return trace


def _rows(trace: dict[str, Any]) -> np.ndarray:
    return _array(trace["customdata"]).reshape(-1, 2)[:, 0]


def test_geometry_plays_every_snapshot_with_fixed_axes(store_env: Path) -> None:
    at = _page(GEOMETRY)
    at.selectbox(key="geo_run").set_value(1).run()
    fig = _charts(at)["geo_fig_1"]
    assert [f["name"] for f in fig["frames"]] == ["10", "20", "30"]  # one per snapshot
    assert fig["layout"]["sliders"][0]["active"] == 2  # the step slider's snapshot
    for axis in ("xaxis", "yaxis", "zaxis"):
        assert fig["layout"]["scene"][axis]["range"] == [-1.1, 1.1]
    assert all(set(f["layout"]) == {"title"} for f in fig["frames"])  # no axis or camera change
    for frame, step in zip(fig["frames"], (10, 20, 30), strict=True):
        z = _snapshot(store_env, 1, step)["z"]
        for index, update in zip(frame["traces"], frame["data"], strict=True):
            rows = _rows(fig["data"][index])
            np.testing.assert_allclose(_array(update["x"]), z[rows, 0], rtol=1e-6)
    at.select_slider(key="geo_step").set_value(10).run()  # the step slider still works
    _assert_clean(at)
    fig = _charts(at)["geo_fig_1"]
    assert (
        fig["layout"]["sliders"][0]["active"] == 0 and "step 10" in fig["layout"]["title"]["text"]
    )


def test_geometry_hover_names_the_sample_and_shows_its_digit(store_env: Path) -> None:
    at = _page(GEOMETRY)
    at.selectbox(key="geo_run").set_value(1).run()
    fig = _charts(at)["geo_fig_1"]
    samples = embed.snapshot_samples(data.load_dataset("digits"), 120, test_fraction=0.25, seed=0)
    trace = _trace(fig, "3")
    for row, text in zip(_rows(trace), trace["text"], strict=True):
        lines = text.split("<br>")
        assert lines[0] == f"<b>sample {samples.index[row]}</b> · class 3"
        assert len(lines[1:]) == 8 and {len(line) for line in lines[1:]} == {16}  # 8x8 digit


def test_geometry_filter_dims_exactly_the_other_classes(store_env: Path) -> None:
    at = _page(GEOMETRY)
    at.selectbox(key="geo_run").set_value(1).run()
    at.multiselect(key="geo_classes").set_value([3, 7]).run()
    _assert_clean(at)
    fig = _charts(at)["geo_fig_1"]
    y = _snapshot(store_env, 1, 30)["y"]
    assert (
        sorted(_rows(_trace(fig, "filtered out"))) == np.flatnonzero(~np.isin(y, [3, 7])).tolist()
    )
    assert sorted(_rows(_trace(fig, "3"))) == np.flatnonzero(y == 3).tolist()
    assert at.query_params["geo_classes"] == "3,7"


def test_geometry_pins_a_sample_and_marks_its_cosine_neighbours(store_env: Path) -> None:
    samples = embed.snapshot_samples(data.load_dataset("digits"), 120, test_fraction=0.25, seed=0)
    at = _page(GEOMETRY)
    at.selectbox(key="geo_run").set_value(1).run()
    at.slider(key="geo_k").set_value(4).run()
    row = 17
    at.session_state["_geo_click"] = {"chart": "geo_fig_1", "customdata": [row, 0]}  # a click
    at.run()
    _assert_clean(at)
    assert at.selectbox(key="geo_pin").value == samples.index[row]
    assert at.query_params["geo_pin"] == str(samples.index[row])  # a link keeps the pin
    fig = _charts(at)["geo_fig_1"]
    z = _snapshot(store_env, 1, 30)["z"].astype(np.float64)
    unit = z / np.linalg.norm(z, axis=1, keepdims=True)
    direct = [j for j in np.argsort(-(unit @ unit[row]), kind="stable") if j != row][:4]
    assert _rows(_trace(fig, "pinned sample")).tolist() == [row]
    assert _rows(_trace(fig, "its 4 nearest (cosine)")).tolist() == direct
    text = _texts(at.markdown)
    assert f"**Sample {samples.index[row]}**" in text
    for j in direct:
        assert f"| {samples.index[j]} |" in text
    notes = _texts(at.caption)
    assert "hollow diamond on a dashed line is the pinned sample's positive partner" in notes
    partner = "**Its positive partner** (its input under the run's augmentation): cosine distance"
    assert partner in text
    assert "Row of the batch plan:** none: these are held-out samples" in notes
    assert len(at.get("image")) == 1  # the digit itself
    # an earlier step: its own neighbours, the same pinned sample
    at.select_slider(key="geo_step").set_value(10).run()
    z10 = _snapshot(store_env, 1, 10)["z"].astype(np.float64)
    u10 = z10 / np.linalg.norm(z10, axis=1, keepdims=True)
    direct10 = [j for j in np.argsort(-(u10 @ u10[row]), kind="stable") if j != row][:4]
    assert _rows(_trace(_charts(at)["geo_fig_1"], "its 4 nearest (cosine)")).tolist() == direct10
    at.selectbox(key="geo_pin").set_value(None).run()  # unpinned
    assert not [t for t in _charts(at)["geo_fig_1"]["data"] if t.get("name") == "pinned sample"]
    assert "geo_pin" not in at.query_params


def test_geometry_compares_two_spheres_in_one_figure_with_one_camera(
    tmp_path: Path, app_env: Callable[[Path], None]
) -> None:
    app_env(tmp_path / "demos")  # the shipped demo runs: all on the sphere
    at = _page(GEOMETRY)
    first, second = sorted(RunStore(tmp_path / "demos").list_runs(), key=lambda r: r.id)[:2]
    at.selectbox(key="geo_run").set_value(first.id).run()
    at.selectbox(key="geo_compare").set_value(second.id).run()
    _assert_clean(at)
    charts = _charts(at)
    fig = charts[f"geo_fig_{first.id}_with_{second.id}"]
    assert f"geo_fig_{first.id}" not in charts and f"geo_fig_{second.id}" not in charts
    layout = fig["layout"]
    assert layout["scene"]["camera"] == layout["scene2"]["camera"]
    assert {t.get("scene") for t in fig["data"]} == {"scene", "scene2"}
    assert len(fig["frames"]) == len(RunStore(tmp_path / "demos").snapshots(first.id, "embeddings"))
    assert "share one camera" in _texts(at.caption)
