"""Lecture mode's page-layer helpers (ui.py): projector-sized copies of figures, chart titles
as safe HTML, the row height of a wrapping table, and the controls that move from the
sidebar into the page (AppTest, no browser; tests/browser/test_lecture.py measures them)."""

from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go
import pytest

import ui
from gca_viz.figures.alignment import (
    LABEL_FONT,
    LABEL_GAP_PX,
    Trajectory,
    alignment_uniformity_plane,
)
from gca_viz.figures.geometry import embedding_figure
from gca_viz.figures.player import half_step_player
from tests.helpers import open_app


def popovers(at: Any) -> dict[str, Any]:
    """The page's popovers by label (AppTest has no accessor for them: blocks whose proto
    is a popover)."""
    found: dict[str, Any] = {}

    def walk(node: Any) -> None:
        proto = getattr(node, "proto", None)
        if type(proto).__name__ == "Block" and proto.WhichOneof("type") == "popover":
            found[proto.popover.label] = node
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at.main)
    return found


def test_title_html_keeps_plotly_markup_and_escapes_the_rest() -> None:
    text = (
        "KL(P<sub>tgt</sub> ‖ P<sup>(k)</sup>) <b>#3 a<b</b><br><sup>run <script>x</script></sup>"
    )
    out = ui.title_html(text)
    assert out.startswith("KL(P<sub>tgt</sub> ‖ P<sup>(k)</sup>) <b>#3 a&lt;b</b>")
    assert out.endswith("<small>run x</small>")
    assert "<script>" not in out
    assert ui.title_html("plain") == "plain"


def test_lecture_figure_scales_a_copy_and_takes_the_title_out() -> None:
    fig = go.Figure(
        [
            go.Heatmap(z=np.eye(4)),
            go.Scatter(x=[0, 1], y=[0, 1], mode="markers", marker={"size": 10}),  # on the cells
            go.Scatter(x=[0, 1], y=[1, 0], xaxis="x2", yaxis="y2", marker={"size": 8}),
        ],
        layout={
            "title": {"text": "A plan<br><sup>small print</sup>", "font": {"size": 13}},
            "font": {"size": 12},
            "annotations": [{"text": "note", "font": {"size": 11}, "x": 0, "y": 0}],
            "xaxis2": {"domain": [0.6, 1], "tickfont": {"size": 20}},
            "yaxis2": {"anchor": "x2"},
            "margin": {"t": 90},
        },
    )
    big, title = ui.lecture_figure(fig)
    assert title == "A plan<br><sup>small print</sup>"
    assert big.layout.title.text == "" and big.layout.margin.t == 40
    assert big.layout.font.size == 15  # 12 x 1.25, at least 15
    assert big.layout.annotations[0].font.size == max(round(11 * ui.LECTURE_NOTE_FONT), 14)
    assert big.layout.xaxis2.tickfont.size == 25  # the figure's own size, scaled
    assert big.layout.xaxis.tickfont.size == 15 and big.layout.yaxis.title.font.size == 15
    assert big.data[1].marker.size == 10  # a cell marker keeps the cell's size
    assert big.data[2].marker.size == pytest.approx(8 * ui.LECTURE_MARKER)
    assert big.data[2].line.width == pytest.approx(2 * ui.LECTURE_MARKER)
    assert big.data[0].colorbar.tickfont.size == 15
    # the original (perhaps a cached object) is untouched
    assert fig.layout.title.text.startswith("A plan") and fig.layout.font.size == 12
    assert fig.data[2].marker.size == 8 and fig.data[0].colorbar.tickfont.size is None


def test_lecture_figure_keeps_an_animation_title_and_scales_its_frames() -> None:
    stack = np.random.default_rng(0).random((3, 6, 6))
    fig = half_step_player(stack, np.linspace(2.0, 1.0, 3))
    big, title = ui.lecture_figure(fig)
    assert title == "" and big.layout.title.text == fig.layout.title.text
    # the words over the plan (its marginals) grow with the text, in every frame, though
    # they sit on the heatmap's axes, whose cell marks keep their size
    assert big.data[5].mode == "text" and big.data[5].textfont.size >= 15
    # room under the plot for the slider's larger labels (the explorer's were cut 5 px)
    assert big.layout.margin.b >= fig.layout.margin.b + 2 * (big.layout.font.size - 12)
    assert all(fr.data[4].textfont.size >= 15 for fr in big.frames)
    sizes = {
        i: t.marker.size for i, t in enumerate(fig.data) if t.type == "scatter" and t.marker.size
    }
    for i, size in sizes.items():
        assert np.allclose(big.data[i].marker.size, np.asarray(size) * ui.LECTURE_MARKER)
    for frame, old in zip(big.frames, fig.frames, strict=True):
        for j, trace in enumerate(frame.data):
            index = frame.traces[j] if frame.traces else j
            before = old.data[j]
            if index in sizes and before.type == "scatter" and before.marker.size is not None:
                assert np.allclose(trace.marker.size, np.asarray(before.marker.size) * 1.6)


def test_lecture_figure_takes_a_sphere_of_embeddings() -> None:
    """3-D traces and the sphere's surface have no x/y axes (the Train page's embeddings in
    lecture mode raised AttributeError)."""
    z = np.random.default_rng(0).standard_normal((20, 3))
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    fig = embedding_figure(z, np.arange(20) % 3, title="Embeddings")
    big, _ = ui.lecture_figure(fig)
    points = [t for t in big.data if t.type == "scatter3d"]
    assert points and all(np.all(np.asarray(t.marker.size) > 4) for t in points)
    assert any(t.type == "surface" for t in big.data)


def test_wrapped_row_height_fits_the_longest_cell() -> None:
    widths = {"a": 100, "b": 216}
    assert ui.wrapped_row_height([{"a": "x", "b": "y"}], widths) == 65  # wrapping needs > 64
    rows = [{"a": "x", "b": "w" * 90}]  # 90 x 6.5 px in 200 px: 3 lines
    assert ui.wrapped_row_height(rows, widths) == 3 * 20 + 12
    longer = [{"a": "x" * 60, "b": "w"}]  # 60 x 6.5 px in 84 px: 5 lines
    assert ui.wrapped_row_height(rows + longer, widths) == 5 * 20 + 12


@pytest.mark.usefixtures("app_store")
def test_lecture_mode_moves_the_controls_out_of_the_sidebar() -> None:
    at = open_app("views/noisy.py", lecture="1", noisy_rows="3")
    assert at.toggle(key="lecture").value is True
    assert [w.key for w in at.sidebar.slider] == []  # only the toggle and the status remain
    assert "Views" in [e.label for e in at.expander]
    assert at.slider(key="noisy_rows").value == 3  # the URL still sets it
    at.toggle(key="lecture").set_value(False).run()
    assert "lecture" not in at.query_params
    assert {w.key for w in at.sidebar.slider} >= {"noisy_sev", "noisy_rows"}
    assert at.slider(key="noisy_rows").value == 3


@pytest.mark.parametrize("page", ["plan_lab", "geometry", "noisy", "train"])
def test_lecture_mode_folds_the_pages_introduction(page: str) -> None:
    """On a projector the introductions pushed every page's figure 130 px further down (the
    lecturer says them): lecture mode folds each into "About this page", a popover in the
    title's row; without it, it is the page's first text."""
    lecture = open_app(f"views/{page}.py", lecture="1")
    about = popovers(lecture)["About this page"]
    assert about.markdown[0].value
    assert not [e for e in lecture.expander if e.label == "About this page"]
    plain = open_app(f"views/{page}.py")
    assert "About this page" not in popovers(plain)
    assert plain.markdown[0].value == about.markdown[0].value


def test_lecture_figure_enlarges_trace_labels_and_small_notes() -> None:
    """Text a trace draws (labels beside points) and notes of 11 px were left small on a
    projector: both reach a readable size."""
    fig = go.Figure(
        data=[go.Scatter(x=[0], y=[0], mode="markers+text", text=["#1"], textfont={"size": 11})],
        layout={"annotations": [{"text": "k = 0", "x": 0, "y": 0, "font": {"size": 11}}]},
    )
    big, _ = ui.lecture_figure(fig)
    assert big.data[0].textfont.size == 15
    assert big.layout.annotations[0].font.size == ui.LECTURE_NOTE_LEAST
    assert fig.data[0].textfont.size == 11  # a copy


def test_lecture_figure_spreads_the_plane_s_run_labels_for_their_new_size() -> None:
    """The alignment-uniformity plane spreads its run labels for 11 px; on a projector they
    are at least 14 px, and the copy spreads them again so that they do not overlap."""
    runs = [
        Trajectory(f"#{i} run", np.array([1.0]), np.array([-2.0]), np.array([0.3 + 1e-3 * i]))
        for i in range(6)
    ]
    fig = alignment_uniformity_plane(runs)
    big, _ = ui.lecture_figure(fig)
    size = big.layout.annotations[0].font.size
    assert size >= ui.LECTURE_NOTE_LEAST
    y0, y1 = big.layout.yaxis.range
    plot = big.layout.height - big.layout.margin.t - big.layout.margin.b
    tops = [(a.y - y0) / (y1 - y0) * plot - a.ay for a in big.layout.annotations]
    gap = LABEL_GAP_PX * size / LABEL_FONT
    assert np.diff(np.sort(tops)).min() >= gap - 1e-6 > LABEL_GAP_PX


def test_lecture_figure_keeps_room_for_subplot_titles_above_the_plot() -> None:
    """Taking a figure's title out cut its top margin to 40 px: Story's subplot titles
    ("row sums P1 (sent)"), scaled for the projector, lost their top half. The margin now
    holds the tallest note above the plot at its new size."""
    from plotly.subplots import make_subplots

    titles = ("row sums P1<br>(sent)", "column sums Pᵀ1<br>(received)")  # two lines each
    fig = make_subplots(rows=1, cols=2, subplot_titles=titles)
    fig.add_bar(y=[1, 2], row=1, col=1)
    fig.add_bar(y=[2, 1], row=1, col=2)
    fig.update_layout(title="Marginals", margin={"t": 90})
    big, title = ui.lecture_figure(fig)
    assert title == "Marginals"
    sizes = [a.font.size for a in big.layout.annotations]
    assert min(sizes) >= 15
    assert big.layout.margin.t >= 2 * 1.45 * max(sizes) + 8 > 40
    plain = go.Figure(go.Scatter(y=[1, 2]), layout={"title": "t", "margin": {"t": 90}})
    assert ui.lecture_figure(plain)[0].layout.margin.t == 40  # nothing above: as before


def test_lecture_mode_folds_secondary_settings_and_the_figures_come_first() -> None:
    """At 1024 x 768 in lecture mode Story's first screen was all controls and its step
    selector sat below the fold: its secondary settings (seed, float64, log scale) are
    folded there. Entropy's controls took 1.5 screens before its first chart: the sweeps'
    ranges stay open, the batch, marginal weights and tolerance are folded. Folded is a
    popover (in the title's row; Story's under its batch), which opens over the figure
    instead of pushing it down as an expander did."""
    at = open_app(lecture="1")
    assert list(popovers(at)) == ["About this page", "Story settings"]
    assert not [e for e in at.expander if e.label == "Story settings"]
    assert at.number_input(key="story_seed").value == 0  # still there, one click away
    entropy = open_app("views/entropy.py", lecture="1")
    expanded = {e.label: e.proto.expanded for e in entropy.expander if e.label != "Show the code"}
    assert expanded == {"Sweeps": True}
    assert list(popovers(entropy)) == ["About this page", "Batch, marginals and solver"]
    # Plan lab: its two open panels took a projector's first screen; only ε and T stay open.
    lab = open_app("views/plan_lab.py", lecture="1")
    expanded = {e.label: e.proto.expanded for e in lab.expander if e.label != "Show the code"}
    assert expanded == {"Problem": True}
    assert list(popovers(lab)) == ["About this page", "Batch", "Target, marginals and display"]
    assert lab.number_input(key="lab_eps").value == 0.1  # ε and T open, the rest folded:
    assert lab.selectbox(key="lab_target").value == "pairs"  # still there, one click away
    assert entropy.slider(key="ent_n").value == 48  # folded, still there
    # Domains' ε and T: a popover of their own (inside "Batch" a lecturer did not look)
    domains = open_app("views/domains.py", lecture="1")
    assert list(popovers(domains)) == ["About this page", "Batch", "GCA-INCE plan"]
    assert popovers(domains)["GCA-INCE plan"].number_input(key="dom_eps").value == 0.5
    plain = open_app("views/plan_lab.py")  # without lecture mode: the sidebar, no popovers
    assert not popovers(plain) and plain.sidebar.selectbox(key="lab_target").value == "pairs"
