"""The Geometry page (views/geometry.py) against real run stores (AppTest, no browser;
tests/browser/test_geometry.py drives it in Chromium): the embeddings on the sphere or
projected, through time, coloured, filtered, pinned and compared; the alignment-uniformity
plane; t-SNE in the background; corrupt snapshots; external runs of gca_viz.watch. Runs
trained for the tests: tests/pages/conftest.py (the pinned sample's partner:
test_geometry_partner.py).
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import numpy as np

from gca_viz import data, demo, embed
from gca_viz.runs import RunStore
from tests.helpers import (
    assert_clean,
    assert_no_runs_yet,
    charts,
    names,
    open_page,
    open_quiet_page,
    record_external_run,
    texts,
    wait_for,
)
from tests.plotly_json import array


def test_geometry_draws_the_sphere_and_the_slider_moves_through_time(store_env: Path) -> None:
    at = open_page("geometry")
    at.selectbox(key="geo_run").set_value(1).run()
    assert_clean(at)
    fig = charts(at)["geo_fig_1"]
    kinds = {t["type"] for t in fig["data"]}
    assert kinds == {"surface", "scatter3d"}
    assert at.select_slider(key="geo_step").value == 30  # the newest snapshot
    late = np.concatenate([array(t["x"]) for t in fig["data"] if "customdata" in t])
    at.select_slider(key="geo_step").set_value(10).run()
    assert_clean(at)
    fig = charts(at)["geo_fig_1"]
    early = np.concatenate([array(t["x"]) for t in fig["data"] if "customdata" in t])
    assert early.shape == late.shape == (120,) and not np.allclose(early, late)
    assert "step 10" in fig["layout"]["title"]["text"]


def test_geometry_projects_wide_embeddings_and_colours_by_domain(store_env: Path) -> None:
    at = open_page("geometry")
    at.selectbox(key="geo_run").set_value(2).run()
    assert_clean(at)
    fig = charts(at)["geo_fig_2"]
    assert fig["layout"]["xaxis"]["title"]["text"].startswith("PC1")
    assert names(fig) == [str(c) for c in range(10)]
    at.selectbox(key="geo_color").set_value("domain").run()
    assert_clean(at)
    assert names(charts(at)["geo_fig_2"]) == ["original", "rotated", "inverted", "noisy"]
    at.selectbox(key="geo_run").set_value(1).run()  # digits: no domains, class colours
    assert_clean(at)
    # "domain" is not offered for it (it stayed chosen, the points coloured by class)
    assert at.selectbox(key="geo_color").options == ["class"]
    assert at.selectbox(key="geo_color").value == "class"
    assert names(charts(at)["geo_fig_1"]) == [str(c) for c in range(10)]
    at.selectbox(key="geo_compare").set_value(2).run()  # beside a run that has domains
    assert at.selectbox(key="geo_color").options == ["class", "domain"]


def test_geometry_computes_tsne_in_the_background(store_env: Path) -> None:
    at = open_page("geometry")
    at.selectbox(key="geo_run").set_value(2).run()
    at.selectbox(key="geo_method").set_value("tsne").run()
    assert_clean(at)
    assert "PCA" in charts(at)["geo_fig_2"]["layout"]["title"]["text"]  # until computed
    go = next(b for b in at.button if b.label.startswith("Compute t-SNE"))
    go.click().run()
    assert_clean(at)

    def ready() -> bool:
        at.run()
        assert_clean(at)
        return "t-SNE" in charts(at)["geo_fig_2"]["layout"]["title"]["text"]

    wait_for(ready, 60, "t-SNE")
    assert not any(b.label.startswith("Compute t-SNE") for b in at.button)


def test_a_tsne_asked_for_on_a_training_run_is_shown_at_its_step(
    no_demo_store: Path,
) -> None:
    """On a run still training, the step slider followed each new snapshot: the t-SNE asked
    for at step 4 was never shown and the button came back for the new step. The slider now
    stays on the step asked for until the t-SNE is there (and the user may move it)."""
    import torch

    from gca_viz.watch import Recorder

    rec = Recorder(no_demo_store, name="live", snapshot_every=2, config={"steps": 100})
    gen = torch.Generator().manual_seed(0)

    def snapshot(step: int) -> None:
        z1 = torch.randn(40, 8, generator=gen)
        rec.step(step, loss=1.0 / step)
        rec.batch(step, z1, z1 + 0.1 * torch.randn(40, 8, generator=gen), torch.arange(40) % 4)
        store = RunStore(no_demo_store)  # (the recorder writes from a thread of its own)
        wait_for(lambda: step in dict(store.snapshots(rec.run_id, "embeddings")), 20, "snapshot")

    try:
        for step in (2, 4):
            snapshot(step)
        at = open_page("geometry")
        at.selectbox(key="geo_run").set_value(rec.run_id).run()
        at.selectbox(key="geo_method").set_value("tsne").run()
        assert at.select_slider(key="geo_step").value == 4
        next(b for b in at.button if b.label.startswith("Compute t-SNE")).click().run()
        snapshot(6)  # the run trains on
        at.run()
        assert at.select_slider(key="geo_step").value == 4  # held (it went on to 6)
        key = f"geo_fig_{rec.run_id}"

        def ready() -> bool:
            at.run()
            assert_clean(at)
            return "t-SNE" in charts(at)[key]["layout"]["title"]["text"]

        wait_for(ready, 60, "t-SNE")
        assert "step 4" in charts(at)[key]["layout"]["title"]["text"]
        snapshot(8)
        at.run()
        assert at.select_slider(key="geo_step").value == 4  # still: the user looks at it
        at.select_slider(key="geo_step").set_value(8).run()  # back at the end: it follows
        snapshot(10)
        at.run()
        assert at.select_slider(key="geo_step").value == 10
    finally:
        rec.finish()


def test_the_first_umaps_note_keeps_its_estimate_while_the_job_runs(
    store_env: Path, monkeypatch: Any
) -> None:
    """The first UMAP's note read "compiles numba code (a minute or more)", then, as the
    compile wrote numba's disk cache, "loads ... from the disk cache (a few seconds)" while
    the same job ran on. The note is decided once per job. (UMAP itself is held back by an
    event here, standing in for its compile: the note, not UMAP, is under test.)"""
    cached = {"now": False}
    release = threading.Event()

    def held_umap(z: Any, k: int = 2, **params: Any) -> np.ndarray:
        release.wait(60)
        return embed.pca(z, k)

    monkeypatch.setattr(embed, "umap_ready", lambda: False)
    monkeypatch.setattr(embed, "umap_kernels_cached", lambda cache_dir=None: cached["now"])
    monkeypatch.setitem(embed.PROJECTORS, "umap", held_umap)
    try:
        at = open_page("geometry")
        at.selectbox(key="geo_run").set_value(2).run()
        at.selectbox(key="geo_method").set_value("umap").run()
        go = next(b for b in at.button if b.label.startswith("Compute UMAP"))
        go.click().run()
        assert_clean(at)

        def note() -> str:
            return " ".join(i.value for i in at.info if "UMAP of" in i.value)

        wait_for(lambda: (at.run(), "running for" in note())[1], 30, "the UMAP job to start")
        assert "compiles numba code (a minute or more" in note()
        cached["now"] = True  # the compile has written the disk cache: the same job runs on
        at.run()
        assert "compiles numba code" in note() and "disk cache" not in note()
    finally:
        release.set()

    def ready() -> bool:
        at.run()
        assert_clean(at)
        return "UMAP" in charts(at)["geo_fig_2"]["layout"]["title"]["text"]

    wait_for(ready, 60, "UMAP")


def test_geometry_compares_two_runs_side_by_side(store_env: Path) -> None:
    at = open_page("geometry")
    at.selectbox(key="geo_run").set_value(1).run()
    at.selectbox(key="geo_compare").set_value(2).run()
    assert_clean(at)
    assert {"geo_fig_1", "geo_fig_2"} <= set(charts(at))


def test_geometry_plane_places_evaluated_runs(store_env: Path) -> None:
    at = open_page("geometry")
    # the plane starts with the runs on the shown run's data: #1 is on the digits, #2 on the
    # multi-domain digits (a user's file beside the demo digits read as a ranking)
    shown = at.selectbox(key="geo_run").value
    label = {1: "#1 sphere", 2: "#2 eight-d"}
    assert names(charts(at)["geo_plane_fig"]) == [label[shown]]
    assert not any("Not like for like" in c.value for c in at.caption)
    at.multiselect(key="geo_plane").set_value([1, 2]).run()
    assert_clean(at)
    plane = charts(at)["geo_plane_fig"]
    assert sorted(names(plane)) == ["#1 sphere", "#2 eight-d"]  # run 3 was never evaluated
    note = next(c.value for c in at.caption if "Not like for like" in c.value)
    assert label[3 - shown] in note and "only runs on the same data compare" in note
    for trace in plane["data"]:
        x, y = array(trace["x"]), array(trace["y"])
        assert np.all(x <= 0) and np.all(
            (y >= 0) & (y <= 4)
        )  # uniformity <= 0, alignment in [0, 4]
    at.multiselect(key="geo_plane").set_value([2]).run()
    assert_clean(at)
    assert names(charts(at)["geo_plane_fig"]) == ["#2 eight-d"]


def test_a_corrupt_snapshot_is_a_warning_and_the_page_keeps_working(store_env: Path) -> None:
    store = RunStore(store_env)
    step, path = store.snapshots(1, "embeddings")[1]
    original = path.read_bytes()
    try:
        path.write_bytes(b"\x00corrupt")
        at = open_page("geometry")
        at.selectbox(key="geo_run").set_value(1).run()
        at.select_slider(key="geo_step").set_value(step).run()
        assert_clean(at)
        assert f"snapshot at step {step} is missing or unreadable" in texts(at.warning)
        assert "geo_plane_fig" in charts(at)  # the rest of the page is still there
        at.select_slider(key="geo_step").set_value(30).run()
        assert_clean(at)
        assert "geo_fig_1" in charts(at) and not at.warning
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
    return array(trace["customdata"]).reshape(-1, 2)[:, 0]


def test_geometry_plays_every_snapshot_with_fixed_axes(store_env: Path) -> None:
    at = open_page("geometry")
    at.selectbox(key="geo_run").set_value(1).run()
    fig = charts(at)["geo_fig_1"]
    assert [f["name"] for f in fig["frames"]] == ["10", "20", "30"]  # one per snapshot
    assert fig["layout"]["sliders"][0]["active"] == 2  # the step slider's snapshot
    for axis in ("xaxis", "yaxis", "zaxis"):
        assert fig["layout"]["scene"][axis]["range"] == [-1.1, 1.1]
    assert all(set(f["layout"]) == {"title"} for f in fig["frames"])  # no axis or camera change
    for frame, step in zip(fig["frames"], (10, 20, 30), strict=True):
        z = _snapshot(store_env, 1, step)["z"]
        for index, update in zip(frame["traces"], frame["data"], strict=True):
            if "text" in update:  # the clusters' names
                continue
            rows = _rows(fig["data"][index])
            np.testing.assert_allclose(array(update["x"]), z[rows, 0], rtol=1e-6)
    at.select_slider(key="geo_step").set_value(10).run()  # the step slider still works
    assert_clean(at)
    fig = charts(at)["geo_fig_1"]
    assert (
        fig["layout"]["sliders"][0]["active"] == 0 and "step 10" in fig["layout"]["title"]["text"]
    )


def test_geometry_hover_names_the_sample_and_shows_its_digit(store_env: Path) -> None:
    at = open_page("geometry")
    at.selectbox(key="geo_run").set_value(1).run()
    fig = charts(at)["geo_fig_1"]
    samples = embed.snapshot_samples(data.load_dataset("digits"), 120, test_fraction=0.25, seed=0)
    trace = _trace(fig, "3")
    for row, text in zip(_rows(trace), trace["text"], strict=True):
        lines = text.split("<br>")
        assert lines[0] == f"<b>sample {samples.index[row]}</b> · class 3"
        assert len(lines[1:]) == 8 and {len(line) for line in lines[1:]} == {16}  # 8x8 digit


def test_geometry_filter_dims_exactly_the_other_classes(store_env: Path) -> None:
    at = open_page("geometry")
    at.selectbox(key="geo_run").set_value(1).run()
    at.multiselect(key="geo_classes").set_value([3, 7]).run()
    assert_clean(at)
    fig = charts(at)["geo_fig_1"]
    y = _snapshot(store_env, 1, 30)["y"]
    dimmed = sorted(_rows(_trace(fig, "not highlighted")))
    assert dimmed == np.flatnonzero(~np.isin(y, [3, 7])).tolist()
    assert sorted(_rows(_trace(fig, "3"))) == np.flatnonzero(y == 3).tolist()
    assert at.query_params["geo_classes"] == "3,7"


def test_geometry_pins_a_sample_and_marks_its_cosine_neighbours(store_env: Path) -> None:
    samples = embed.snapshot_samples(data.load_dataset("digits"), 120, test_fraction=0.25, seed=0)
    at = open_page("geometry")
    at.selectbox(key="geo_run").set_value(1).run()
    at.slider(key="geo_k").set_value(4).run()
    row = 17
    at.session_state["_geo_click"] = {"chart": "geo_fig_1", "customdata": [row, 0]}  # a click
    at.run()
    assert_clean(at)
    assert at.selectbox(key="geo_pin").value == samples.index[row]
    assert at.query_params["geo_pin"] == str(samples.index[row])  # a link keeps the pin
    fig = charts(at)["geo_fig_1"]
    z = _snapshot(store_env, 1, 30)["z"].astype(np.float64)
    unit = z / np.linalg.norm(z, axis=1, keepdims=True)
    direct = [j for j in np.argsort(-(unit @ unit[row]), kind="stable") if j != row][:4]
    assert _rows(_trace(fig, "pinned sample")).tolist() == [row]
    assert _rows(_trace(fig, "its 4 nearest (cosine)")).tolist() == direct
    text = texts(at.markdown)
    assert f"**Sample {samples.index[row]}**" in text
    for j in direct:
        assert f"| {samples.index[j]} |" in text
    notes = texts(at.caption)
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
    assert _rows(_trace(charts(at)["geo_fig_1"], "its 4 nearest (cosine)")).tolist() == direct10
    at.selectbox(key="geo_pin").set_value(None).run()  # unpinned
    assert not [t for t in charts(at)["geo_fig_1"]["data"] if t.get("name") == "pinned sample"]
    assert "geo_pin" not in at.query_params


# ------------------------------------------------------------------ other stores


def test_geometry_page_renders_an_empty_store_with_guidance(no_demo_store: Path) -> None:
    assert_no_runs_yet(open_page("geometry"))


def test_geometry_page_shows_the_shipped_demo_runs(app_store: Path) -> None:
    """A new store gets the demo runs (imported CLI runs: no process); the page opens on
    the lecture's GCA-INCE run, as Train does (it opened on the newest, a noisy run)."""
    at, figs = open_quiet_page("geometry")
    assert any(t["type"] == "scatter3d" for f in figs.values() for t in f["data"])
    assert len(names(figs["geo_plane_fig"])) == len(demo.DEMO_RUNS)
    by_name = {r.name: r.id for r in RunStore(app_store).list_runs()}
    assert at.selectbox(key="geo_run").value == by_name["demo-gca-ince"]


def test_geometry_compares_two_spheres_in_one_figure_with_one_camera(app_store: Path) -> None:
    """On the shipped demo runs: all on the sphere."""
    at = open_page("geometry")
    first, second = sorted(RunStore(app_store).list_runs(), key=lambda r: r.id)[:2]
    at.selectbox(key="geo_run").set_value(first.id).run()
    at.selectbox(key="geo_compare").set_value(second.id).run()
    assert_clean(at)
    figs = charts(at)
    fig = figs[f"geo_fig_{first.id}_with_{second.id}"]
    assert f"geo_fig_{first.id}" not in figs and f"geo_fig_{second.id}" not in figs
    layout = fig["layout"]
    assert layout["scene"]["camera"] == layout["scene2"]["camera"]
    assert {t.get("scene") for t in fig["data"]} == {"scene", "scene2"}
    assert len(fig["frames"]) == len(RunStore(app_store).snapshots(first.id, "embeddings"))
    assert "share one camera" in texts(at.caption)


def test_geometry_draws_an_external_runs_embeddings(no_demo_store: Path) -> None:
    """A run recorded by gca_viz.watch from a loop of the user's own (tests/test_watch.py)."""
    rec = record_external_run(no_demo_store, batch=64, dim=3, classes=4)
    at = open_page("geometry")
    assert not at.error
    figs = charts(at)
    drawn = figs[f"geo_fig_{rec.run_id}"]["data"]
    points = [t for t in drawn if "customdata" in t]  # (not the surface, not the names)
    assert sum(len(array(t["x"])) for t in points) == 64  # its snapshot's 64 points
    assert "surface" in {t["type"] for t in drawn}  # 3-D: on the sphere (its config: no out_dim)
    assert "geo_plane_fig" in figs  # its alignment and uniformity, on the plane
    # Without eval_batch its snapshots are each step's batch: they were called "held-out
    # samples" played "with the axes held still", as if a point followed one sample
    said = texts(at.caption)
    assert "The first 64 rows of the step's training batch (other samples at every step" in said
    assert "64 held-out samples" not in said
    assert "▶ plays" not in said  # its frames hold other samples: the shown step alone
    assert "an external run stores no inputs" in said


def test_a_recorded_runs_3d_embeddings_are_a_sphere_with_its_class_names(
    no_demo_store: Path,
) -> None:
    """A loop recorded with Recorder: its 3-D embeddings got only PCA, UMAP and t-SNE (its
    config has no out_dim) and its classes read 0, 1, 2 (there was no way to name them)."""
    labels = ["bird", "cat", "dog"]
    rec = record_external_run(no_demo_store, batch=30, dim=3, classes=3, class_names=labels)
    assert RunStore(no_demo_store).get(rec.run_id).config["class_names"] == labels
    at = open_page("geometry")
    at.selectbox(key="geo_run").set_value(rec.run_id).run()
    assert_clean(at)
    assert at.selectbox(key="geo_method").value == "native"  # the sphere itself
    fig = charts(at)[f"geo_fig_{rec.run_id}"]
    assert {t["type"] for t in fig["data"]} >= {"surface", "scatter3d"}
    assert [n for n in names(fig) if n in labels] == labels


def test_geometry_opens_on_a_run_just_started_before_its_first_snapshot(app_store: Path) -> None:
    """The newest run training (here a Recorder's loop, registered with no snapshot yet) is
    the one shown, not the newest older run with snapshots: its first snapshot appears as
    it arrives."""
    import os

    open_page("geometry")  # (installs the demo runs)
    store = RunStore(app_store)
    new = store.register_external("just started", {"out_dim": 3}, pid=os.getpid())
    at = open_page("geometry")  # a new visit
    assert not at.exception
    assert at.selectbox(key="geo_run").value == new
    assert any(f"Run #{new} has no embedding snapshot" in i.value for i in at.info)


def test_the_plane_starts_with_the_shown_runs_and_the_lecture_pair() -> None:
    """With more runs than the plane shows, the demo INCE / GCA-INCE pair (what a lecture
    compares) stays on it: a reviewer's eight newest runs pushed it off."""
    from views._geometry_snapshots import plane_defaults

    names = {i: f"run {i}" for i in range(3, 15)} | {1: "demo-ince", 2: "demo-gca-ince"}
    measured = sorted(names, reverse=True)  # newest first
    shown = plane_defaults(measured, names, run_id=7, compare_id=9)
    assert shown[:4] == [7, 9, 1, 2] and len(shown) == 8
    assert shown[4:] == [14, 13, 12, 11]  # then the newest others
    assert plane_defaults([5, 4], names, run_id=5, compare_id=0) == [5, 4]  # no demo runs


def test_a_run_keeps_its_colour_on_train_and_on_the_plane(app_store: Path) -> None:
    """Each page coloured the runs it showed, in its own order: with a user's runs beside
    the demos, the same run was green on Train and red on Geometry's plane. A run's colour
    now comes from the whole store, in the order of the ids."""
    from tests.helpers import add_run

    open_page("geometry")  # (it installs the demo runs)
    store = RunStore(app_store)
    newer = add_run(store, config={"method": "gca_ince", "steps": 5}, name="student-gca",
                    status="finished", step=5)  # fmt: skip
    store.write_metrics(newer, [(newer, 5, "alignment", 0.4), (newer, 5, "uniformity", -2.0)], 5)

    def colours(fig: dict[str, Any]) -> dict[str, str]:
        return {
            t["name"]: (t.get("line") or {}).get("color") or t["marker"]["color"]
            for t in fig["data"]
            if t.get("name") and t.get("showlegend", True) is not False
        }

    at = open_page("geometry")
    plane = colours(charts(at)["geo_plane_fig"])
    assert len(set(plane.values())) == len(plane)  # five runs, five colours
    at = open_page("train")  # (on the newest run, the user's)
    mine = colours(charts(at)["tr_curves"])[f"#{newer} student-gca"]
    assert mine == plane.get(f"#{newer} student-gca", mine)
    demo_gca = next(r.id for r in store.list_runs() if r.name == "demo-gca-ince")
    at.selectbox(key="tr_run").set_value(demo_gca).run()
    train = colours(charts(at)["tr_curves"])
    assert "#2 demo-gca-ince" in train
    for name, colour in train.items():
        assert plane[name] == colour, (name, plane, train)
    assert mine != train["#2 demo-gca-ince"]  # (the first GCA-INCE run keeps the green)


def test_each_frame_names_its_own_alignment_and_uniformity(app_store: Path) -> None:
    """While ▶ played the snapshots, the table beside the sphere said "step 300" and its
    numbers (a student read them as the frame's): each frame's title now carries that
    frame's uniformity and each sample's distance to a view of it, computed from its
    snapshot (not called "alignment": the evaluation's compares two augmented views, about
    twice it, and 0.100 beside the table's 0.205 read as a contradiction)."""
    from gca_viz import metrics

    _, figs = open_quiet_page("geometry")
    store = RunStore(app_store)
    run = next(r for r in store.list_runs() if r.name == "demo-gca-ince")
    fig = figs[f"geo_fig_{run.id}"]
    titles = {f["name"]: f["layout"]["title"]["text"] for f in fig["frames"]}
    assert len(titles) >= 5
    for step, path in store.snapshots(run.id, "embeddings")[:: max(len(titles) // 3, 1)]:
        snap = np.load(path)
        want = (f"sample to a view {metrics.alignment(snap['z'], snap['z_partner']):.3f} "
                "(≈ ½ alignment) · "
                f"uniformity {metrics.uniformity(snap['z']):.2f} (this frame)")  # fmt: skip
        assert want in titles[str(step)], (step, titles[str(step)])
    assert len({t.split("<br>")[1] for t in titles.values()}) > 1  # they differ by frame
    assert not any(re.search(r"alignment \d", t) for t in titles.values())
    # "≈ ½ alignment" holds: the last frame's distance against the evaluation's alignment
    step, path = store.snapshots(run.id, "embeddings")[-1]
    snap = np.load(path)
    evaluated = dict(store.metrics(run.id, ["alignment"])["alignment"].tolist())[step]
    assert 0.35 < metrics.alignment(snap["z"], snap["z_partner"]) / evaluated < 0.65
