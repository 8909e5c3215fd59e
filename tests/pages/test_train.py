"""The Train page (views/train.py) against real run stores (AppTest, no browser;
tests/browser/test_train.py drives it in Chromium): the runs table and the live monitor,
curves and plan, the launch form and its validation, uploads and paths, live changes and
stop, external runs of gca_viz.watch. Runs trained for the tests: tests/pages/conftest.py.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from streamlit.proto.WidgetStates_pb2 import WidgetState
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Selectbox

from gca_viz import data, losses, metrics
from gca_viz.runs import ACTIVE, RunStore
from gca_viz.train import TrainConfig
from gca_viz.watch import Recorder
from tests.helpers import (
    add_run,
    assert_clean,
    assert_no_runs_yet,
    charts,
    kill_runs,
    metric,
    names,
    open_app,
    open_page,
    open_quiet_page,
    record_external_run,
    texts,
    update_run,
    wait_for,
    wait_for_run,
)
from tests.pages.conftest import TINY
from tests.plotly_json import array
from views._train_monitor import card
from views._train_runs import AUTO_RERUN

# ------------------------------------------------------------------------- demo runs


def test_train_page_renders_an_empty_store_with_guidance(no_demo_store: Path) -> None:
    assert_no_runs_yet(open_page("train"))


def test_train_page_shows_the_shipped_demo_runs(app_store: Path) -> None:
    """A new store gets the demo runs (imported CLI runs: no process)."""
    at, figs = open_quiet_page("train")
    assert {"tr_curves", "tr_plan", "tr_embed"} <= set(figs)
    assert names(figs["tr_curves"])[0].split(" ", 1)[1].startswith("demo-")
    # it opens on the lecture's pair, GCA-INCE's curves beside InfoNCE's (trained alike)
    by_name = {r.name: r.id for r in RunStore(app_store).list_runs()}
    assert at.selectbox(key="tr_run").value == by_name["demo-gca-ince"]
    assert at.multiselect(key="tr_compare").value == [by_name["demo-ince"]]
    assert [n.split(" ", 1)[1] for n in names(figs["tr_curves"])][:2] == [
        "demo-gca-ince",
        "demo-ince",
    ]
    # the run's latest embeddings beside its plan (issue 14: a lecture stays on one page)
    store = RunStore(app_store)
    run = at.selectbox(key="tr_run").value
    _, path = store.snapshots(run, "embeddings")[-1]
    z = store.load_snapshot(path)["z"]
    embed_fig = figs["tr_embed"]
    points = [t for t in embed_fig["data"] if "customdata" in t]  # (not the clusters' names)
    assert [t["name"] for t in points] == [str(c) for c in range(10)]  # one per digit
    assert sum(len(array(t["x"])) for t in points) == len(z)  # every held-out sample
    assert "Embeddings at step" in json.dumps(embed_fig["layout"])
    runs_table = [d for d in at.dataframe if "k-NN acc." in d.value.columns]
    assert runs_table[0].proto.placeholder == "—"  # a metric not recorded: not "None"
    # the caption reads the snapshot: the demo's classes have gathered
    said = [c.value for c in at.caption if "The Geometry page plays" in c.value]
    assert len(said) == 1 and said[0].startswith("The classes gather: two samples"), said


def test_a_relaxed_plan_says_why_its_mass_and_marginal_error_are_large(app_store: Path) -> None:
    """GCA-UOT's batch table showed a total mass of 870 against a target of 128 and a
    marginal error of 1485 without a word: a caption says they are by design. Balanced
    losses' tables get no such caption."""
    at = open_page("train")  # (it installs the demo runs)
    by_name = {r.name: r.id for r in RunStore(app_store).list_runs()}
    note = "This loss relaxes the marginals (unbalanced OT)"
    assert not [c for c in at.caption if note in c.value]  # the lecture pair: balanced
    at.selectbox(key="tr_run").set_value(by_name["demo-gca-uot"]).run()
    (said,) = [c.value for c in at.caption if note in c.value]
    assert "large by design" in said
    # ... above the table, and on its rows (under it, it went unread: a student took the
    # marginal error of 1498 for a failing solver)
    blocks = [e for e in at.main if e.type in ("caption", "dataframe")]
    first_table = next(i for i, e in enumerate(blocks) if e.type == "dataframe"
                       and "quantity" in e.value.columns)  # fmt: skip
    assert any(note in str(e.value) for e in blocks[:first_table])
    rows = list(blocks[first_table].value["quantity"])
    assert any(r.startswith("marginal error") and "large by design" in r for r in rows), rows
    assert any(r.startswith("total mass Σ P") and "follows ΣK" in r for r in rows), rows


def test_a_byol_run_shows_no_plan_it_does_not_have(app_store: Path) -> None:
    """A BYOL run's Train page drew its kernel as "Plan P" (marginal error 1e4, "a smaller
    ε or more Sinkhorn sweeps make it sharper"): it now says there is no plan, even for a
    run that saved such snapshots before."""
    store = RunStore(app_store)
    config = json.loads(TrainConfig.from_dict({"method": "byol", "steps": 4}).to_json())
    run = add_run(store, config=config, status="finished", step=4)
    store.write_metrics(run, [(run, 4, "loss", 0.5)], 4)
    (store.run_dir(run) / "snapshots").mkdir(parents=True)  # (a launch makes it)
    store.write_snapshot(run, 4, "plan", {"plan": np.ones((4, 4)), "kernel": np.ones((4, 4))})
    at = open_page("train")
    at.selectbox(key="tr_run").set_value(run).run()
    assert_clean(at)
    assert f"Run #{run} trains byol without a transport plan" in texts(at.caption)
    assert "tr_plan" not in charts(at)
    store.delete(run)


def test_a_run_recorded_before_the_demos_is_the_one_shown(app_store: Path) -> None:
    """A loop recorded before the app's first start: the demo runs were imported after it
    (newer ids), and Train and Geometry opened on a demo run, the user's run at the bottom."""
    rec = record_external_run(app_store, batch=32, dim=3, classes=3, name="mine")
    at = open_page("train")  # (it installs the demo runs: newer than the user's)
    assert max(r.id for r in RunStore(app_store).list_runs()) > rec.run_id
    assert at.selectbox(key="tr_run").value == rec.run_id
    assert open_page("geometry").selectbox(key="geo_run").value == rec.run_id


def test_the_embedding_caption_says_collapsed_mixed_or_gathered() -> None:
    """It said "Classes gather as the loss aligns the two views" under every run, also
    under a run collapsed to one point (a composer loss with nothing pushing samples apart).
    """
    from views._train_monitor import classes_text

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 25)
    centres = rng.normal(size=(4, 8))
    gathered = centres[y] + 0.1 * rng.normal(size=(100, 8))
    mixed = rng.normal(size=(100, 8))
    collapsed = np.ones((100, 8)) + 1e-4 * rng.normal(size=(100, 8))
    assert classes_text(gathered, y).startswith("The classes gather: two samples")
    assert classes_text(mixed, y).startswith("The classes are still mixed: ")
    assert classes_text(collapsed, y).startswith("**Collapsed**: every sample")
    assert metrics.class_separation(mixed, y) == pytest.approx(1.0, abs=0.1)
    assert metrics.class_separation(gathered, y) > 3


def test_in_lecture_mode_the_plan_is_large_with_its_colour_bar_beside_it(
    app_store: Path,
) -> None:
    """Stretched to the page in lecture mode, the plan's square sat left of centre at 270
    px with its colour bar at the page's far right: the map now has LECTURE_PLAN_SIDE
    pixels a side in a figure as wide as the square, its margins and the bar."""
    from views._train_monitor import LECTURE_PLAN_SIDE

    at = open_app("views/train.py", lecture="1")
    layout = charts(at)["tr_plan"]["layout"]
    margin = layout["margin"]
    assert layout["height"] - margin["t"] - margin["b"] == LECTURE_PLAN_SIDE
    assert layout["width"] - margin["l"] - margin["r"] - LECTURE_PLAN_SIDE <= 140
    assert LECTURE_PLAN_SIDE >= 500
    plain = open_page("train")
    assert "width" not in charts(plain)["tr_plan"]["layout"]  # beside the embeddings


# ------------------------------------------------------------------------------ train


def test_train_page_shows_the_newest_run_live(store_env: Path) -> None:
    at = open_page("train")
    assert at.selectbox(key="tr_run").value == 3  # newest first
    at.selectbox(key="tr_run").set_value(1).run()
    assert_clean(at)
    figs = charts(at)
    assert {"tr_curves", "tr_plan"} <= set(figs)
    assert names(figs["tr_curves"]) == ["#1 sphere"]
    plan = figs["tr_plan"]["data"][0]
    assert plan["type"] == "heatmap" and array(plan["z"]).size == 128 * 128  # joint 2N = 128
    # the numbers beside the plan say which pairs they are on, and give the target's mass
    tables = [d.value for d in at.dataframe if "quantity" in d.value.columns]
    assert tables, "the snapshot's table of diagnostics"
    quantities = list(tables[0]["quantity"])
    assert "loss on these pairs" in quantities and "target's total mass Σ P_tgt" in quantities
    # a share, written as one: 0.08056 beside "total mass 128" read as an absolute mass
    share = dict(zip(tables[0]["quantity"], tables[0]["value"], strict=True))
    assert re.fullmatch(r"\d+\.\d%", share["share of the mass on positive pairs"]), share
    batch = int(RunStore(store_env).get(1).config["batch_size"])
    slice_note = [c.value for c in at.caption if c.value.startswith("The first 64 pairs")]
    assert len(slice_note) == (1 if batch > 64 else 0), (batch, slice_note)
    assert "blank diagonal is the excluded self-pairs (i, i)" in texts(at.caption)  # joint
    assert "step 30 of 30" in at.get("progress")[0].proto.text
    assert at.query_params["tr_run"] == "1"  # a copied link reopens this run
    assert not at.error and not at.warning
    # The run on the Geometry page, in this session (a link in the caption opened a tab);
    # the page on its own has no navigation: a Markdown link
    assert "[Run #1 on the Geometry page](geometry?geo_run=1)" in texts(at.markdown)
    at = open_app("views/train.py", tr_run="1")
    links = [e.proto for e in at.get("page_link")]
    assert any("geometry" in link.page and "geo_run=1" in link.query_string for link in links), (
        links
    )


def test_the_progress_line_and_the_table_name_the_device_the_run_used(store_env: Path) -> None:
    device = RunStore(store_env).get(1).device
    assert device in ("cpu", "cuda:0")  # run 1 asked for "auto"; the run recorded its choice
    at = open_page("train")
    at.selectbox(key="tr_run").set_value(1).run()
    assert_clean(at)
    text = at.get("progress")[0].proto.text
    assert f"device {device}" in text and "auto" not in text
    table = at.dataframe[0].value.set_index("run")
    assert table.loc[1, "device"] == device


def _fake_run(store: RunStore, config: dict[str, Any] | None = None, **row: Any) -> int:
    """A run row written straight to the store (no process), for the page to show."""
    config = config or {**TINY, "method": "gca_ince", "out_dim": 3, "steps": 30, "device": "auto"}
    return add_run(store, config=config, **row)


def _row(at: AppTest, run_id: int) -> dict[str, Any]:
    """The "All runs" table's row of a run."""
    table = at.dataframe[0].value
    return dict(table[table["run"] == run_id].iloc[0])


def test_the_runs_table_tells_apart_two_uploads_sent_under_one_name(no_demo_store: Path) -> None:
    """Runs on two different files both sent as mine.npz read "mine.npz" in the data column
    alike; each now names the start of its content hash."""
    store = RunStore(no_demo_store)
    uploads = no_demo_store / "uploads"
    for name, stored in (("a", "mine-0fc1f609f5fb.npz"), ("b", "mine-9a8b7c6d5e4f.npz")):
        _fake_run(store, {**TINY, "dataset": str(uploads / stored)}, name=name, status="finished")
    at = open_page("train")
    assert_clean(at)
    data = sorted(at.dataframe[0].value["data"])
    assert data == ["mine.npz · 0fc1f6", "mine.npz · 9a8b7c"]


def test_the_runs_table_and_the_run_choice_follow_the_store_between_reruns(
    no_demo_store: Path, fragment_timers: dict[str, Any]
) -> None:
    store = RunStore(no_demo_store)
    finished = _fake_run(store, name="done", status="finished", step=30, device="cpu")
    # A stand-in for a run process: alive, with "gca_viz" on its command line (what
    # RunStore.reconcile checks), and a fresh heartbeat.
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "gca_viz"])
    try:
        live = _fake_run(store, name="live", status="running", pid=proc.pid,
                         heartbeat=time.time(), started=time.time(), step=12)  # fmt: skip
        at = open_page("train")
        assert at.selectbox(key="tr_run").value == live
        assert (_row(at, live)["status"], _row(at, live)["step"]) == ("running", 12)
        assert "#2 live · running" in at.selectbox(key="tr_run").options
        text = at.get("progress")[0].proto.text
        assert "**running** · step 12 of 30" in text and "device auto" in text  # not started
        # While a run is active the table, the choice and the monitor poll the store.
        assert fragment_timers["_panel"] and fragment_timers["live_monitor"]

        update_run(store, live, step=20, device="cuda:0", heartbeat=time.time())
        at.selectbox(key="tr_run").set_value(finished).run()  # watch the other run
        assert_clean(at)
        assert _row(at, live)["step"] == 20 and _row(at, live)["device"] == "cuda:0"
        assert fragment_timers["_panel"] and not fragment_timers["live_monitor"]

        update_run(store, live, status="finished", step=30, ended=time.time())
        at.run()
        assert_clean(at)
        assert (_row(at, live)["status"], _row(at, live)["step"]) == ("finished", 30)
        assert _row(at, live)["progress"] == 100.0
        assert "#2 live · finished" in at.selectbox(key="tr_run").options
        assert at.selectbox(key="tr_run").value == finished  # the choice survived
        assert not fragment_timers["_panel"]  # nothing active: nothing polls
    finally:
        proc.kill()
        proc.wait()


def test_selecting_and_comparing_runs_changes_the_curves(store_env: Path) -> None:
    at = open_page("train")
    at.selectbox(key="tr_run").set_value(1).run()
    first = charts(at)["tr_curves"]
    at.selectbox(key="tr_run").set_value(2).run()
    assert_clean(at)
    second = charts(at)["tr_curves"]
    assert names(first) == ["#1 sphere"] and names(second) == ["#2 eight-d"]
    assert not np.array_equal(array(first["data"][-1]["y"]), array(second["data"][-1]["y"]))
    at.multiselect(key="tr_compare").set_value([1]).run()
    assert_clean(at)
    assert names(charts(at)["tr_curves"]) == ["#2 eight-d", "#1 sphere"]


def test_metric_and_plan_controls_change_the_figures(store_env: Path) -> None:
    at = open_page("train")
    at.selectbox(key="tr_run").set_value(1).run()
    before = charts(at)
    at.multiselect(key="tr_metrics").set_value(["probe_acc"]).run()
    at.selectbox(key="tr_plan_view").set_value("kernel").run()
    assert_clean(at)
    after = charts(at)
    titles = [a["text"] for a in after["tr_curves"]["layout"]["annotations"]]
    assert titles == ["Linear-probe accuracy"]
    assert after["tr_plan"]["layout"]["title"]["text"].startswith("Kernel")
    assert not np.allclose(
        array(before["tr_plan"]["data"][0]["z"]),
        array(after["tr_plan"]["data"][0]["z"]),
        equal_nan=True,
    )


def test_an_epsilon_change_and_runs_of_different_epsilon_are_flagged_on_the_loss(
    no_demo_store: Path,
) -> None:
    """ε sets the loss's scale: the step where it changed is marked ① on the curves, the
    caption's key saying "ε 0.5 → 0.2", with a line under them saying the losses before and
    after are not comparable; comparing with a run of another ε says the same."""
    store = RunStore(no_demo_store)
    config = {**TINY, "method": "gca_ince", "out_dim": 3}
    ids = []
    for name, eps in (("changed", 0.5), ("other", 0.1)):
        cfg = {**config, "loss_params": {"epsilon": eps}}
        ids.append(_fake_run(store, cfg, name=name, status="finished", step=30))
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
    at = open_page("train")
    at.selectbox(key="tr_run").set_value(ids[1]).run()
    assert_clean(at)
    assert "not comparable" not in texts(at.caption)  # one run, one ε
    at.selectbox(key="tr_run").set_value(ids[0]).run()
    assert_clean(at)
    labels = [a["text"] for a in charts(at)["tr_curves"]["layout"]["annotations"]]
    assert "① ε 0.5 → 0.2" in labels  # the line's number and its change's words
    assert "Dotted lines mark live changes: ① #1 at step 15: ε 0.5 → 0.2." in texts(at.caption)
    assert (
        "ε changed during training (#1 changed at step 15, ε 0.5 → 0.2): ε sets the scale of "
        "the loss, so loss values before and after the line are not comparable."
    ) in texts(at.caption)
    at.multiselect(key="tr_compare").set_value([ids[1]]).run()
    assert_clean(at)
    assert (
        "The runs drawn train with different ε (#1 changed: ε 0.5 → 0.2, #2 other: ε 0.1): "
        "their losses are on different scales and not comparable."
    ) in texts(at.caption)


def test_a_failed_run_shows_its_error_and_traceback(store_env: Path) -> None:
    at = open_page("train")
    at.selectbox(key="tr_run").set_value(3).run()
    assert_clean(at)
    assert "Run #3 failed" in texts(at.error)
    assert "domain labels" in texts(at.error)
    assert any("Error details" in e.label for e in at.expander)
    assert "Traceback" in texts(at.code)


@pytest.mark.parametrize(("batch", "noted"), [(9, False), (64, True)])
def test_the_plans_pairs_are_called_a_slice_only_when_the_batch_has_more(
    no_demo_store: Path, batch: int, noted: bool
) -> None:
    """A run on 12 samples with batch size 64 trains on batches of 9 (its training split):
    its plan of 9 pairs was called "the first 9 pairs of the step's batch of up to 64 ...
    the training loss averages over the whole batch, so it is larger", beside a loss on
    these pairs equal to the training loss. The snapshot records the batch it was cut from
    (plan_arrays' ``batch``)."""
    store = RunStore(no_demo_store)
    run = _fake_run(store, {**TINY, "batch_size": 64}, status="finished")
    pairs = np.arange(9) % 3
    (store.run_dir(run) / "snapshots").mkdir(parents=True)
    snap = {"plan": np.eye(9) / 9, "y": pairs, "diag_loss": np.array(1.0), "batch": np.array(batch)}
    store.write_snapshot(run, 30, "plan", snap)
    at = open_page("train")
    at.selectbox(key="tr_run").set_value(run).run()
    assert_clean(at)
    slice_note = [c.value for c in at.caption if c.value.startswith("The first 9 pairs")]
    assert len(slice_note) == noted, slice_note


def test_a_batch_larger_than_the_training_split_is_announced(no_demo_store: Path) -> None:
    """The run caps the batch at the training split; the form says so before the launch."""
    at = open_page("train")
    at.selectbox(key="tr_data").set_value("digits").run()
    note = "The training split of this dataset holds"
    assert not [c for c in at.caption if c.value.startswith(note)]  # 256 fits
    at.number_input(key="tr_batch").set_value(100000).run()
    assert_clean(at)
    train = data.load_dataset("digits").split(0.25)[0].n
    shown = [c.value for c in at.caption if c.value.startswith(note)]
    assert shown == [
        f"{note} {train} samples, so each batch will hold all {train} "
        "(a batch size of 100000 is capped there)."
    ]


def test_a_rince_loss_at_a_small_epsilon_warns_that_its_terms_underflow(
    no_demo_store: Path,
) -> None:
    """RINCE at ε = 0.01 (the slider's low end) in float32, the runs' dtype: random pairs'
    terms exp(-q C/ε) are 0, so they would train nothing; the form says so before the
    launch, and not at ε = 0.5 or for a KL loss."""
    at = open_page("train")
    note = "RINCE's terms exp(-q C/ε) underflow float32"
    at.selectbox(key="tr_method").set_value("rince").run()
    assert not [c for c in at.caption if note in c.value]
    at.number_input(key="tr_epsilon").set_value(0.01).run()
    assert_clean(at)
    shown = [c.value for c in at.caption if note in c.value]
    assert shown == [f":material/warning: {losses.rince_underflow(1.0, 0.01)}"]
    assert "cosine below 0.13" in shown[0]
    at.selectbox(key="tr_method").set_value("gca_ince").run()
    assert not [c for c in at.caption if note in c.value]


def test_invalid_configs_show_an_error_and_launch_nothing(no_demo_store: Path) -> None:
    at = open_page("train")
    at.number_input(key="tr_steps").set_value(0)
    at.button(key="tr_launch").click().run()
    assert_clean(at)
    assert "Steps (`steps`) must be an integer >= 1" in texts(at.error)  # named as on screen
    at.number_input(key="tr_steps").set_value(10)
    at.number_input(key="tr_lr").set_value(0.0)
    at.button(key="tr_launch").click().run()
    assert "Learning rate (`lr`) must be a number > 0" in texts(at.error)
    at.number_input(key="tr_steps").set_value(0)  # two bad fields: both named at once
    at.button(key="tr_launch").click().run()
    both = texts(at.error)
    assert both.startswith("Cannot launch this run; change these 2 settings:")
    assert "- Steps (`steps`) must be an integer >= 1" in both
    assert "- Learning rate (`lr`) must be a number > 0" in both
    at.number_input(key="tr_steps").set_value(10)
    at.number_input(key="tr_lr").set_value(0.01)
    at.number_input(key="tr_n_iter").set_value(0)
    at.button(key="tr_launch").click().run()
    assert "$T$ (`n_iter`) must be an integer >= 1" in texts(at.error)
    at.number_input(key="tr_n_iter").set_value(10)
    at.selectbox(key="tr_method").set_value("composed").run()
    at.selectbox(key="tr_projection").set_value("unbalanced").run()
    at.number_input(key="tr_relax_a").set_value(-1.0).run()  # the shared λ control refuses it
    assert_clean(at)
    assert "$λ_1$ = -1 is not used: $λ_1$ must be a number > 0" in texts(at.warning)
    assert at.number_input(key="tr_relax_a").value == 0.2  # the value in use stays
    at.number_input(key="tr_relax_a").set_value(0.5)
    at.selectbox(key="tr_target").set_value("domain").run()
    at.button(key="tr_launch").click().run()
    assert "domain prior needs a dataset with domain labels" in texts(at.error)
    assert RunStore(no_demo_store).list_runs() == []


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def test_uploads_are_saved_in_the_store_and_validated(no_demo_store: Path, tmp_path: Path) -> None:
    store_dir = no_demo_store
    at = open_page("train")
    at.selectbox(key="tr_data").set_value("upload").run()
    assert at.button(key="tr_launch").disabled  # nothing to train on yet
    uploader = at.get("file_uploader")[0]
    uploader.set_value(("not really.npz", b"not a zip archive", "application/octet-stream"))
    at.run()
    assert_clean(at)
    assert "This data cannot be used" in texts(at.error)
    assert not list((store_dir / "uploads").glob("*.npz"))  # the bad file is not kept
    rng = np.random.default_rng(0)
    good = _npz_bytes(x=rng.standard_normal((40, 5)).astype(np.float32), y=np.arange(40) % 2)
    at.get("file_uploader")[0].set_value(("../../evil name.npz", good, "application/x-npz"))
    at.run()  # a name with a path is refused, whatever it holds (browsers send none)
    assert_clean(at)
    assert "the name holds a path" in texts(at.error)
    assert not list((store_dir / "uploads").glob("*.npz"))
    at.get("file_uploader")[0].set_value(("evil name.npz", good, "application/x-npz"))
    at.run()
    assert_clean(at)
    assert "40 vector samples of shape (5,), 2 classes" in texts(at.success)
    saved = list((store_dir / "uploads").glob("*.npz"))
    assert len(saved) == 1 and saved[0].name.startswith("evil_name-")
    assert not (tmp_path / "evil name.npz").exists()
    assert not at.button(key="tr_launch").disabled


def test_features_small_next_to_the_augmentation_noise_are_warned_of(no_demo_store: Path) -> None:
    """Standardised features times 1e-3 trained at chance (the standard views add noise of
    standard deviation 0.05, 50x the features) and the monitor called the run collapsed as
    if the loss had no negatives. The form warns at upload, naming the ratio and the fix;
    unit-scale features and the 'none' augmentation get no warning."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 8)).astype(np.float32)
    at = open_page("train")
    at.selectbox(key="tr_data").set_value("upload").run()
    for scale, name in ((1e-3, "small.npz"), (1.0, "unit.npz")):
        data_ = _npz_bytes(x=scale * x, y=np.arange(60) % 3)
        at.get("file_uploader")[0].set_value((name, data_, "application/x-npz"))
        at.run()
        assert_clean(at)
        warned = [w for w in texts(at.warning).split("\n") if "Standardise each feature" in w]
        assert len(warned) == (scale < 1), (scale, texts(at.warning))
        if warned:
            ratio = float(re.search(r"adds noise ([\d.]+) times the spread", warned[0]).group(1))
            assert 40 < ratio < 60, warned  # 0.05 / 1e-3
    at.get("file_uploader")[0].set_value(("small.npz", _npz_bytes(x=1e-3 * x, y=np.arange(60) % 3),
                                          "application/x-npz"))  # fmt: skip
    at.selectbox(key="tr_augment").set_value("none").run()
    assert "Standardise each feature" not in texts(at.warning)


def test_data_too_small_to_evaluate_is_refused_at_launch(no_demo_store: Path) -> None:
    """Three samples split 2 / 1: the run launched and failed at its first evaluation with
    'z must have at least 2 rows'. The launch now refuses it, saying what to change."""
    at = open_page("train")
    at.selectbox(key="tr_data").set_value("upload").run()
    tiny = _npz_bytes(x=np.ones((3, 16), dtype=np.float32), y=np.array([0, 1, 0]))
    at.get("file_uploader")[0].set_value(("tiny.npz", tiny, "application/x-npz"))
    at.run()
    assert "3 vector samples" in texts(at.success)
    at.button(key="tr_launch").click().run()
    assert_clean(at)
    error = texts(at.error)
    assert "Cannot launch this run" in error and "3 samples split into 2 for training" in error
    assert "use more data" in error and RunStore(no_demo_store).list_runs() == []
    # the advice names the fields by the form's labels (it said "set eval_every and ...")
    assert "set Evaluate every (steps) (`eval_every`) and Snapshot every (steps)" in error


def test_a_path_is_confined_to_the_data_directory_and_validated(
    no_demo_store: Path, tmp_path: Path
) -> None:
    store_dir = no_demo_store
    at = open_page("train")
    at.selectbox(key="tr_data").set_value("path").run()
    assert "holds no .npz file" in texts(at.caption)  # the folder is empty
    at.text_input(key="tr_path").set_value("missing.npz").run()
    assert_clean(at)
    assert "no such file or folder" in texts(at.error)
    outside = tmp_path / "outside.npz"
    np.savez(outside, x=np.zeros((4, 3)), y=np.arange(4) % 2)
    for escape in (str(outside), "../../outside.npz"):
        at.text_input(key="tr_path").set_value(escape).run()
        assert_clean(at)
        assert "leaves the data directory" in texts(at.error)
        assert at.button(key="tr_launch").disabled
    bad = store_dir / "datasets" / "bad.npz"
    np.savez(bad, x=np.zeros((4, 3)))  # no labels
    at.text_input(key="tr_path").set_value("bad.npz").run()
    assert_clean(at)
    assert "This data cannot be used" in texts(at.error) and "y" in texts(at.error)
    assert "In this folder: `bad.npz`" in texts(at.caption)  # what can be typed
    assert at.button(key="tr_launch").disabled


def test_launch_from_the_page_then_steer_the_run_live(no_demo_store: Path) -> None:
    store = RunStore(no_demo_store)
    try:
        at = open_page("train")
        at.selectbox(key="tr_method").set_value("gca_ince").run()
        at.number_input(key="tr_steps").set_value(20000)
        at.number_input(key="tr_out_dim").set_value(2)
        at.number_input(key="tr_batch").set_value(32)
        at.number_input(key="tr_enc_hidden").set_value(16)
        at.number_input(key="tr_epsilon").set_value(0.4)
        at.number_input(key="tr_n_iter").set_value(3)
        at.text_input(key="tr_name").set_value("from the page")
        at.button(key="tr_launch").click().run()
        assert_clean(at)
        runs = store.list_runs()
        assert len(runs) == 1 and "Launched run #1" in texts(at.success)
        cfg = runs[0].config
        assert runs[0].name == "from the page" and runs[0].status in ACTIVE
        assert at.text_input(key="tr_name").value == ""  # (the next run took the name too)
        assert (cfg["method"], cfg["steps"], cfg["out_dim"], cfg["batch_size"]) == (
            "gca_ince", 20000, 2, 32)  # fmt: skip
        assert cfg["loss_params"]["epsilon"] == 0.4 and cfg["loss_params"]["n_iter"] == 3
        assert cfg["encoder_params"]["hidden"] == 16 and cfg["dataset"] == "digits"
        # The notice stays through the page's own reruns (the run left the queue, the other
        # run ended) and goes at the user's next action.
        for _ in range(2):
            at.session_state[AUTO_RERUN] = True
            at.run()
            assert "Launched run #1" in texts(at.success)
        at.run()
        assert "Launched run #1" not in texts(at.success)

        # Live controls: ε is the control of every page (a log slider and a typed value);
        # a typed ε that is not > 0 is named and not used, a valid one is applied and marked.
        at.run()
        assert at.select_slider(key="tr_live_1_epsilon_slider").value == 0.4  # the run's ε
        at.number_input(key="tr_live_1_epsilon").set_value(-1.0).run()
        assert_clean(at)
        assert "$ε$ = -1 is not used" in texts(at.warning)
        at.button(key="tr_live_1_apply").click().run()
        assert "Nothing changed: edit a value first." in texts(at.info)
        at.select_slider(key="tr_live_1_epsilon_slider").set_value(0.3).run()
        at.number_input(key="tr_live_1_epsilon").set_value(0.25).run()  # typed off the stops
        at.button(key="tr_live_1_apply").click().run()
        assert_clean(at)
        assert "Requested ε=0.25" in texts(at.success)
        assert not [k for k in at.query_params if k.startswith("tr_live")]  # not in links
        wait_for_run(store, lambda: bool(store.applied_changes(1)), "the change to take effect")
        wait_for_run(store, lambda: bool(store.metrics(1, ["loss"])), "the first metrics")
        at.run()
        assert_clean(at)
        curves = charts(at)["tr_curves"]
        step = store.applied_changes(1)[0]["step"]
        lines = [s for s in curves["layout"]["shapes"] if s["type"] == "line"]
        assert lines and all(s["x0"] == step for s in lines)
        assert "① ε 0.4 → 0.25" in [a["text"] for a in curves["layout"]["annotations"]]
        assert f"① #1 at step {step}: ε 0.4 → 0.25" in texts(at.caption)  # launch's ε → new

        # The Geometry page draws the 2-D run on the circle and follows its new snapshots.
        wait_for_run(store, lambda: len(store.snapshots(1, "embeddings")) >= 2, "two snapshots")
        geo = open_page("geometry")
        fig = charts(geo)["geo_fig_1"]
        assert [s["type"] for s in fig["layout"]["shapes"]] == ["circle"]

        def newest() -> int:
            return store.snapshots(1, "embeddings")[-1][0]

        first = geo.select_slider(key="geo_step").value
        wait_for_run(store, lambda: newest() > first, "a new snapshot")
        before = newest()
        geo.run()  # on the newest snapshot, the slider follows the run
        assert_clean(geo)
        assert before <= geo.select_slider(key="geo_step").value <= newest()
        geo.select_slider(key="geo_step").set_value(first).run()  # looking back: it stays
        wait_for_run(store, lambda: newest() > before, "another snapshot")
        geo.run()
        assert geo.select_slider(key="geo_step").value == first

        # Stop from the page.
        at.button(key="tr_stop").click().run()
        assert_clean(at)
        wait_for_run(store, lambda: store.get(1).status == "stopped", "the run to stop")
    finally:
        kill_runs(no_demo_store)


def test_a_launched_run_stays_compared_only_with_runs_that_mean_the_same(
    app_store: Path,
) -> None:
    """The page opens on the lecture pair (demo-gca-ince compared with demo-ince). A run
    launched on the same data, batch and layout keeps demo-ince beside it; one on another
    batch size does not: a user's run on their own file was drawn beside demo-ince, a loss
    gap that meant nothing (RunInfo.comparable)."""
    store = RunStore(app_store)
    try:
        at = open_page("train")
        demo_ince = next(r for r in store.list_runs() if r.name == "demo-ince")
        assert at.multiselect(key="tr_compare").value == [demo_ince.id]
        at.number_input(key="tr_steps").set_value(20000)
        at.button(key="tr_launch").click().run()  # the form's defaults: the demo's setting
        assert_clean(at)
        first = max(r.id for r in store.list_runs())
        assert store.get(first).comparable(demo_ince)
        assert at.selectbox(key="tr_run").value == first
        assert at.multiselect(key="tr_compare").value == [demo_ince.id]
        at.number_input(key="tr_batch").set_value(64)
        at.button(key="tr_launch").click().run()
        assert_clean(at)
        second = max(r.id for r in store.list_runs())
        assert not store.get(second).comparable(demo_ince)
        assert at.selectbox(key="tr_run").value == second
        assert at.multiselect(key="tr_compare").value == []
        assert at.query_params.get("tr_compare") in ("", [""], None)
    finally:
        kill_runs(app_store)


# ---------------------------------------------------------------------- external runs


def test_a_loop_stopped_by_ctrl_c_says_so(no_demo_store: Path) -> None:
    """A loop ended by KeyboardInterrupt is "stopped" as by the app's Stop button: it said
    nothing more; the page says it was Ctrl-C and shows where the loop was."""
    from gca_viz.watch import _failure

    rec = Recorder(no_demo_store, name="interrupted", loss="ince")
    rec.step(1, loss=1.0)
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt as exc:
        rec.finish(*_failure(type(exc), exc, exc.__traceback__))
    at = open_page("train")
    assert RunStore(no_demo_store).get(rec.run_id).status == "stopped"
    assert "stopped on Ctrl-C in its loop" in texts(at.info)
    assert [e for e in at.expander if "its traceback" in e.label]


@pytest.mark.filterwarnings("ignore::gca_viz.watch.RecorderWarning")
def test_a_loop_whose_loss_went_nan_is_listed_and_can_be_stopped(no_demo_store: Path) -> None:
    """A loop's loss went NaN (the commonest way a loop goes wrong): the store keeps it as
    NULL, and float(None) replaced the Train page's runs with a TypeError, so the user could
    not even press Stop on the diverging loop. The run is listed, its loss shown as NaN, its
    curve drawn where the values were finite, and Stop reaches the loop."""
    rec = Recorder(no_demo_store, name="diverging", loss=losses.get("gca_ince"), flush_every=0.05)
    rec.step(1, loss=2.0)
    rec.step(2, loss=1.5)
    rec.step(3, loss=float("nan"))  # (a RecorderWarning, filtered above)
    try:
        wait_for(lambda: RunStore(no_demo_store).get(rec.run_id).step == 3, 10, "step 3")
        at = open_page("train")
        assert_clean(at)
        table = next(d.value for d in at.dataframe if "status" in d.value.columns)
        row = table[table["run"] == rec.run_id].iloc[0]
        assert row["name"] == "diverging (external)" and math.isnan(row["loss"])
        assert metric(at, "loss") == "NaN"  # not a dash: the loss went NaN
        assert names(charts(at)["tr_curves"]) == ["#1 diverging"]
        at.button(key="tr_stop").click().run()
        assert_clean(at)
        wait_for(lambda: rec.step(4, loss=1.0) or rec.should_stop, 10, "the stop request")
    finally:
        rec.finish()


def test_the_train_page_marks_external_runs_and_draws_their_curve_and_plan(
    no_demo_store: Path,
) -> None:
    """Runs recorded by gca_viz.watch from a loop of the user's own (tests/test_watch.py)."""
    done = record_external_run(no_demo_store, batch=32, dim=4, classes=3, flush_every=0.05)
    plain = Recorder(no_demo_store, name="plain", loss=torch.nn.MSELoss(), flush_every=0.05)
    steered = Recorder(no_demo_store, name="steered", loss=losses.get("gca_ince"), flush_every=0.05)
    plain.step(1, loss=1.0)
    try:
        at = open_page("train")
        at.selectbox(key="tr_run").set_value(done.run_id).run()
        assert not at.exception
        figs = charts(at)
        assert {"tr_curves", "tr_plan"} <= set(figs)
        assert figs["tr_plan"]["data"][0]["type"] == "heatmap"
        table = next(d.value for d in at.dataframe if "status" in d.value.columns)
        assert set(table["name"]) == {"mine (external)", "plain (external)", "steered (external)"}
        captions = " ".join(c.value for c in at.caption)
        assert "External run" in captions and "cannot be resumed" in captions
        assert "The loop has ended (finished)" in captions and "Stop asks" not in captions
        assert at.button(key="tr_resume").disabled
        assert not [e for e in at.expander if "Duplicate" in e.label]
        assert "step 6 of 6" in " ".join(str(p.proto.text) for p in at.get("progress"))
        # no eval_batch: the embeddings are rows of the step's batch, not held-out samples
        assert "rows of the step's batch" in json.dumps(figs["tr_embed"]["layout"])
        assert "These are the first 32 rows of the step's training batch" in captions

        at.selectbox(key="tr_run").set_value(plain.run_id).run()
        assert not at.exception
        assert "no live controls" in " ".join(c.value for c in at.caption)
        assert not [e for e in at.expander if "Live controls" in e.label]
        at.button(key="tr_stop").click().run()  # asks; this process is not signalled
        wait_for(lambda: plain.step(2, loss=1.0) or plain.should_stop, 10, "the stop request")

        at.selectbox(key="tr_run").set_value(steered.run_id).run()
        assert not at.exception
        assert [e for e in at.expander if "Live controls" in e.label]
        assert at.selectbox(key=f"tr_live_{steered.run_id}_target").options == ["pairs"]
    finally:
        plain.finish()
        steered.finish()
    assert RunStore(no_demo_store).get(plain.run_id).status == "stopped"


def test_the_watched_run_stays_chosen_when_the_browser_sends_its_old_status_text(
    no_demo_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run chooser's option text carries the run's status, and a selectbox's value
    travels as that text. When the page has redrawn the chooser with the run's new status
    (a fragment rerun) but the browser sends another control's change with the text it still
    shows ("#1 mine · running"), Streamlit hands the page that text, which names no option.
    The page must keep watching run 1, not jump to the newest run (another user's, on a
    shared store): the load test's two Train sessions caught that jump."""
    store = RunStore(no_demo_store)
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "gca_viz"])
    try:
        mine = _fake_run(store, name="mine", status="running", pid=proc.pid,
                         heartbeat=time.time(), started=time.time(), step=12)  # fmt: skip
        theirs = _fake_run(store, name="theirs", status="finished", step=30)
        at = open_page("train")
        at.selectbox(key="tr_run").set_value(mine).run()
        stale = "#1 mine · running"
        assert stale in at.selectbox(key="tr_run").options
        update_run(store, mine, status="stopped", step=20, ended=time.time())
        at.run()  # the server now labels run 1 "· stopped"
        assert "#1 mine · stopped" in at.selectbox(key="tr_run").options

        def old_text(self: Selectbox[Any]) -> WidgetState:  # what a lagging browser sends
            if self.key != "tr_run":
                return sent(self)
            return WidgetState(id=self.id, string_value=stale)

        sent = Selectbox._widget_state.fget
        monkeypatch.setattr(Selectbox, "_widget_state", property(old_text))
        at.slider(key="tr_smooth").set_value(0.65).run()
        assert_clean(at)
        assert at.selectbox(key="tr_run").value == mine != theirs
        assert at.query_params["tr_run"] == str(mine)
    finally:
        proc.kill()
        proc.wait()


def test_an_empty_metric_says_whether_its_values_are_coming() -> None:
    from types import SimpleNamespace

    from views._train_monitor import _empty_notes

    view = SimpleNamespace(metrics=("loss", "knn_acc"))
    app_running = SimpleNamespace(status="running", external=False)
    app_done = SimpleNamespace(status="finished", external=False)
    loop = SimpleNamespace(status="running", external=True)
    assert _empty_notes([app_running], view) == {}  # evaluated every few steps: coming
    assert _empty_notes([app_done], view)["knn_acc"] == "not recorded by these runs"
    app_stopped = SimpleNamespace(status="stopped", external=False)  # it may record more
    assert _empty_notes([app_stopped], view)["knn_acc"].startswith("none before the run stopped")
    assert "rec.step(step, knn_acc=...)" in _empty_notes([loop], view)["knn_acc"]
    assert _empty_notes([app_running, loop], view) == {}


def test_a_small_metric_value_fits_its_card() -> None:
    """Uniformity -8.188e-05 (a collapsed run) was cut to "-8.188e…" on its card, a fifth of
    the page wide: three digits and a short exponent; other values as before."""
    values = (-8.188e-5, 1.2e-7, 5e-4, -0.000123, 9.99e-4, 0.07777, 4.844, 0.0, math.nan)
    assert [card(v) for v in values] == [
        "-8.19e-5", "1.2e-7", "0.0005", "-0.000123", "0.000999", "0.07777", "4.844", "0", "NaN"
    ]  # fmt: skip


def test_runs_compared_by_hand_on_other_data_are_said_not_to_be_like_for_like(
    no_demo_store: Path,
) -> None:
    """Compare with took a demo run on the digits (batch 256) beside a run on the user's
    file (batch 64): their loss curves sat 1.5 apart with nothing said. The page now names
    what differs; runs on the same data and batch draw without a note."""
    store = RunStore(no_demo_store)
    mine = _fake_run(store, {**TINY, "dataset": "/data/mine.npz", "batch_size": 64},
                     name="mine", status="finished")  # fmt: skip
    demo = _fake_run(store, {**TINY, "dataset": "digits", "batch_size": 256}, name="demo",
                     status="finished")  # fmt: skip
    twin = _fake_run(store, {**TINY, "dataset": "/data/mine.npz", "batch_size": 64},
                     name="twin", status="finished")  # fmt: skip
    at = open_page("train")
    at.selectbox(key="tr_run").set_value(mine).run()
    at.multiselect(key="tr_compare").set_value([twin]).run()
    assert_clean(at)
    assert "Not like for like" not in texts(at.caption)
    at.multiselect(key="tr_compare").set_value([twin, demo]).run()
    assert_clean(at)
    (note,) = [c.value for c in at.caption if c.value.startswith("Not like for like")]
    assert note.startswith(
        f"Not like for like with #{mine} mine: #{demo} demo (data digits, not mine.npz; "
        "batch size 256, not 64)."
    ), note
    assert "twin" not in note
    loop = _fake_run(store, {"dataset": "/data/mine.npz"}, name="loop", status="finished")
    at.run()  # (the page lists the new run)
    at.multiselect(key="tr_compare").set_value([loop]).run()  # a recorded loop's own config
    (note,) = [c.value for c in at.caption if c.value.startswith("Not like for like")]
    assert f"#{loop} loop (batch size unknown, not 64)." in note, note


def test_a_queued_run_says_what_it_waits_for_not_that_it_starts_in_seconds(
    no_demo_store: Path,
) -> None:
    """A run queued behind a 20,000-step run said "the first values arrive a few seconds
    after the run starts": it says it is queued, behind how many, and the slots."""
    store = RunStore(no_demo_store)
    first = _fake_run(store, name="first", status="queued")
    second = _fake_run(store, name="second", status="queued")
    at = open_page("train")
    at.selectbox(key="tr_run").set_value(second).run()
    assert_clean(at)
    (info,) = [i.value for i in at.info if i.value.startswith("No metrics yet")]
    assert info.startswith(f"No metrics yet: run #{second} is queued behind 1 other queued run")
    assert "a few seconds" not in info and store.get(first).status == "queued"


def test_a_long_run_says_how_many_snapshots_it_writes_and_their_size(
    no_demo_store: Path,
) -> None:
    """Snapshot every 20 steps stays at 20 when the steps go to 20,000: 1,000 snapshots,
    270 MB on disk, with nothing said. The form says so from 200 snapshots on."""
    at = open_page("train")
    assert not [c for c in texts(at.caption).split("\n") if "snapshots of the plan" in c]
    at.number_input(key="tr_steps").set_value(20000).run()
    assert_clean(at)
    (note,) = [c.value for c in at.caption if "snapshots of the plan" in c.value]
    megabytes = int(re.search(r"about ([\d,]+) MB", note).group(1).replace(",", ""))
    assert note.startswith("This run will write 1,000 snapshots") and 100 < megabytes < 300


def test_a_duplicate_reads_no_data_outside_the_data_directory(
    no_demo_store: Path, tmp_path: Path
) -> None:
    """The app reads data only inside its data directory (the form's path field refuses
    the rest); "Duplicate with changes" took any path typed into the JSON and trained on it."""
    store = RunStore(no_demo_store)
    run_id = _fake_run(store, {**TINY, "steps": 5}, name="base", status="finished")
    arrays = {"x": np.random.default_rng(0).normal(size=(40, 8)).astype(np.float32),
              "y": np.arange(40) % 4}  # fmt: skip
    outside = tmp_path / "outside.npz"
    np.savez(outside, **arrays)
    at = open_page("train")
    assert at.selectbox(key="tr_run").value == run_id

    def launch_copy(dataset: str) -> None:
        at.text_area(key=f"tr_dup_{run_id}").set_value(
            json.dumps({**store.get(run_id).config, "dataset": dataset})
        )
        next(b for b in at.button if b.key == "tr_dup_launch").click().run()

    launch_copy(str(outside))
    error = texts(at.error)
    assert "Cannot launch the copy: dataset:" in error and "leaves the data directory" in error
    assert [r.id for r in store.list_runs()] == [run_id]  # nothing launched
    inside = no_demo_store / "datasets" / "mine.npz"
    inside.parent.mkdir(exist_ok=True)
    np.savez(inside, **arrays)
    try:
        launch_copy("datasets/mine.npz")  # relative to the data directory, as the form
        assert not at.error, texts(at.error)
        (copy,) = [r for r in store.list_runs() if r.id != run_id]
        assert copy.config["dataset"] == str(inside.resolve()) and copy.parent == run_id
    finally:
        kill_runs(no_demo_store)


def test_the_duplicate_and_the_config_download_say_the_run_changed_live(
    no_demo_store: Path,
) -> None:
    """The config a run keeps is the one it started with: the Duplicate editor and the
    Config JSON download showed ε = 0.5 for a run steered to 0.2, without a word."""
    store = RunStore(no_demo_store)
    config = {**TINY, "method": "gca_ince", "loss_params": {"epsilon": 0.5}}
    run_id = _fake_run(store, config, name="steered", status="running")
    store.mark_applied(store.request_change(run_id, {"epsilon": 0.2}), 6)
    update_run(store, run_id, status="finished", step=30)
    at = open_page("train")
    assert at.selectbox(key="tr_run").value == run_id
    said = "changed while it trained (from step 6: ε 0.5 → 0.2)"
    assert any(said in c.value for c in at.caption), [c.value for c in at.caption]
    download = next(e for e in at.get("download_button") if "Config JSON" in str(e.proto))
    assert "it changed while it trained: from step 6: ε 0.5 → 0.2" in download.proto.help


def test_a_loop_that_gave_no_step_count_shows_its_step_not_a_share(no_demo_store: Path) -> None:
    """A recorded loop without ``steps`` read "step 107/0" in the sidebar and 0% in the
    table after 347 steps: its step alone, and no progress."""
    store = RunStore(no_demo_store)
    config = {"method": "gca_ince", "recorder": {"host": "h", "pid": 1}}
    run_id = add_run(store, config=config, name="loop", status="running", step=107,
                     external=1, pid=os.getpid(), heartbeat=time.time())  # fmt: skip
    at = open_app("views/train.py")
    progress = _row(at, run_id)["progress"]
    assert progress is None or math.isnan(progress)
    bars = [p.proto.text for p in at.sidebar.get("progress")]
    assert any("#1 loop: running, step 107" == t for t in bars), bars


def test_a_silent_run_is_said_to_be_alive_and_a_stranger_is_never_killed(
    no_demo_store: Path,
) -> None:
    """An interrupted run whose process still lives (suspended) was offered "resume it from
    its last checkpoint", which now replaces that process; the page says it lives and goes
    on by itself. A recycled pid (another program) is neither "alive" nor killed by Resume."""
    store = RunStore(no_demo_store)
    run_id = _fake_run(store, status="running", pid=1, heartbeat=time.time())
    where = str(store.dir.resolve())
    sleep = [sys.executable, "-c", "import time; time.sleep(60)", "gca_viz"]
    # a process whose command line is the run's (as the store spawns it)
    sleeper = subprocess.Popen([*sleep, "train", "--store", where, "--run-id", str(run_id)])
    stranger = subprocess.Popen(sleep)
    try:
        update_run(store, run_id, status="interrupted", pid=sleeper.pid, error="silent")
        assert store.get(run_id).silent and store.get(run_id).live
        at = open_page("train")
        said = texts(at.warning)
        assert f"its process {sleeper.pid} still lives" in said, said
        other = _fake_run(store, status="interrupted", pid=stranger.pid, error="gone")
        assert not store.get(other).silent  # (not this run's process)
        (store.run_dir(other) / "snapshots").mkdir(parents=True)  # (as a launch makes it)
        store.resume(other)
        assert stranger.poll() is None  # not killed
    finally:
        for proc in (sleeper, stranger):
            proc.kill()
            proc.wait()


def test_the_form_and_the_teaching_pages_name_loss_settings_alike(no_demo_store: Path) -> None:
    """A student compared the form with the pages: T was "T (Sinkhorn sweeps)" on the
    sliders and "T: Number of Sinkhorn sweeps" in the form, whose Loss column's first
    control was called "Loss" again. One label for T everywhere, and the control is the
    method."""
    form = open_page("train")
    assert form.selectbox(key="tr_method").label == "Method"
    t_form = form.number_input(key="tr_n_iter").label
    assert t_form == "T: Sinkhorn sweeps"
    for page, key in (("story", "story_T"), ("plan_lab", "lab_T"), ("domains", "dom_T")):
        assert open_page(page).slider(key=key).label == t_form, page


def test_a_run_s_device_says_it_is_being_chosen_until_the_run_records_it() -> None:
    """A lecturer read "running · ... · device auto", then "device cpu", as a change of
    device: until the run process records its device, a running run's requested one says
    it is starting."""
    from gca_viz.runs import RunInfo
    from views._train_runs import device_text

    def run(status: str, device: str | None, external: bool = False) -> RunInfo:
        return RunInfo(3, "r", {"device": "auto"}, status, None, None, 0.0, None, None, 0,
                       None, None, device=device, external=external)  # fmt: skip

    assert device_text(run("queued", None)) == "auto (not started yet)"
    assert device_text(run("running", None)) == "auto (starting)"
    assert device_text(run("running", "cpu")) == "cpu"
    assert device_text(run("failed", None)) == "auto"
    # a loop of one's own: its device is the first tensor's; an ended one never will be seen
    assert device_text(run("running", None, external=True)) == "not seen yet"
    assert device_text(run("finished", None, external=True)) == "not recorded (no tensor seen)"


def test_the_status_line_says_what_a_run_has_not_none_on_none() -> None:
    """A run of one's own loop (or of an older store) may lack its method or its data; its
    status line read "None on None". It says what the run has, and nothing in between."""
    from gca_viz.runs import RunInfo
    from views._train_runs import status_text

    def run(config: dict[str, object]) -> RunInfo:
        return RunInfo(3, "r", config, "running", None, None, 0.5, None, None, 40,
                       None, None, device="cpu")  # fmt: skip

    full = run({"method": "gca_uot", "dataset": "digits", "steps": 200})
    assert status_text(full) == "**running** · step 40 of 200 · GCA-UOT on digits · device cpu"
    assert status_text(run({"dataset": "digits"})) == "**running** · step 40 · digits · device cpu"
    assert status_text(run({"method": "ince"})) == "**running** · step 40 · INCE · device cpu"
    assert status_text(run({})) == "**running** · step 40 · device cpu"
