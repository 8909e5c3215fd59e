"""Tests of the pinned sample's positive partner in gca_viz.figures.geometry's explorer
(drawn by gca_viz.figures._pin), and of gca_viz.embed.partner_distance."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gca_viz import embed
from gca_viz.figures import geometry
from gca_viz.figures._pin import PARTNER_NAME
from tests.helpers import cielab, contrast_with_white
from tests.plotly_json import array, decode


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    z = rng.standard_normal((n, d))
    return z / np.linalg.norm(z, axis=1, keepdims=True)


def _figure(panel: geometry.Panel, view: str = "sphere", frames: int = 3) -> dict:
    names = [str(10 * (f + 1)) for f in range(frames)]
    fig = geometry.explorer_figure([panel], view=view, frame_names=names)  # type: ignore[arg-type]
    return json.loads(fig.to_json())


def _xyz(trace: dict, dims: int = 3) -> np.ndarray:
    return np.stack([array(trace[c]).astype(np.float64) for c in "xyz"[:dims]], axis=1)


def test_a_pinned_rows_partner_is_a_hollow_mark_of_its_colour_on_a_dashed_line() -> None:
    rng = np.random.default_rng(3)
    zs = [_unit(rng, 30, 3) for _ in range(3)]
    y = np.arange(30) % 3
    row = 7  # class 1: the second label colour
    partner = [_unit(rng, 1, 3)[0], np.full(3, np.nan), _unit(rng, 1, 3)[0]]  # none at 20
    near = [embed.cosine_neighbours(z, row, 4)[0] for z in zs]
    fig = _figure(geometry.Panel("#1", zs, y, pinned=row, neighbours=near, partner=partner))
    shown = 0  # the frame drawn first (explorer_figure's start)
    (mark,) = [t for t in fig["data"] if t.get("name") == PARTNER_NAME]
    assert mark["marker"]["symbol"] == "diamond-open"
    assert mark["marker"]["color"] == geometry.LABEL_COLORS[1]  # the pinned point's class
    np.testing.assert_allclose(_xyz(mark)[0], partner[shown], rtol=1e-6)
    assert decode(mark["customdata"]).reshape(-1, 2)[0].tolist() == [row, 0]  # keeps the pin
    index = fig["data"].index(mark)
    line = fig["data"][index - 1]  # the dashed line from the pinned point to it
    assert line["line"]["dash"] == "dash" and line["mode"] == "lines"
    np.testing.assert_allclose(_xyz(line)[:2], [zs[shown][row], partner[shown]], rtol=1e-6)
    for f, frame in enumerate(fig["frames"]):  # the ▶ moves the partner with its snapshot
        at = _xyz(frame["data"][frame["traces"].index(index)])[0]
        if f == 1:
            assert np.isnan(at).all()  # a snapshot without partners draws none
        else:
            np.testing.assert_allclose(at, partner[f], rtol=1e-6)
        ends = _xyz(frame["data"][frame["traces"].index(index - 1)])[:2]
        np.testing.assert_allclose(ends[0], zs[f][row], rtol=1e-6)


def test_no_partner_is_drawn_without_a_pin_or_without_partners() -> None:
    rng = np.random.default_rng(4)
    zs = [_unit(rng, 20, 3) for _ in range(3)]
    y = np.arange(20) % 2
    partner = [_unit(rng, 1, 3)[0] for _ in range(3)]
    for panel in (
        geometry.Panel("#1", zs, y, partner=partner),  # nothing pinned
        geometry.Panel("#1", zs, y, pinned=3),  # an old snapshot: no partners
    ):
        fig = _figure(panel)
        assert not [t for t in fig["data"] if t.get("name") == PARTNER_NAME]
    with pytest.raises(ValueError, match="partner must hold one"):
        _figure(geometry.Panel("#1", zs, y, pinned=3, partner=partner[:2]))


def test_the_plane_keeps_a_partner_outside_the_cloud_in_view() -> None:
    rng = np.random.default_rng(5)
    xy = rng.uniform(-1, 1, (25, 2))
    far = np.array([4.0, -3.0])
    fig = _figure(
        geometry.Panel("#1", [xy], np.zeros(25, int), pinned=0, partner=[far]), "plane", 1
    )
    (mark,) = [t for t in fig["data"] if t.get("name") == PARTNER_NAME]
    np.testing.assert_allclose(_xyz(mark, 2)[0], far)
    x_range, y_range = fig["layout"]["xaxis"]["range"], fig["layout"]["yaxis"]["range"]
    assert x_range[0] < -1 and x_range[1] > 4 and y_range[0] < -3 and y_range[1] > 1


@pytest.mark.parametrize("view", ["plane", "circle"])
def test_a_unit_is_as_long_across_as_up(view: str) -> None:
    """A PCA's distances are faithful only with equal scales: a disk of the sphere drew as
    an ellipse 1.5x taller than wide. Every panel's y axis is anchored to its x axis."""
    rng = np.random.default_rng(2)
    xy = rng.normal(size=(40, 2)) * [3.0, 1.0]  # wide data: the ranges differ
    panels = [geometry.Panel(f"#{k}", [xy], np.zeros(40, int)) for k in (1, 2)]
    fig = json.loads(geometry.explorer_figure(panels, view=view, frame_names=["1"]).to_json())
    for suffix in ("", "2"):
        y = fig["layout"]["yaxis" + suffix]
        assert y["scaleanchor"] == "x" + suffix and y["scaleratio"] == 1


def test_partner_distance_counts_the_samples_nearer_than_the_partner() -> None:
    rng = np.random.default_rng(6)
    z = rng.standard_normal((50, 8)) * rng.uniform(0.5, 2, (50, 1))  # not normalised
    for i in (0, 17, 49):
        partner = z[i] + 0.8 * rng.standard_normal(8)
        d = embed.partner_distance(z, i, partner)

        def cos(a: np.ndarray, b: np.ndarray) -> float:  # straight from the formula
            return float(a @ b / np.sqrt((a @ a) * (b @ b)))

        c = cos(z[i], partner)
        nearer = sum(1 for j in range(50) if j != i and cos(z[i], z[j]) > c)
        assert d.cosine == pytest.approx(c) and d.rank == 1 + nearer and d.others == 49
        assert d.distance == pytest.approx(1 - c)
        zi, p = z[i] / np.linalg.norm(z[i]), partner / np.linalg.norm(partner)
        assert d.squared == pytest.approx(float(np.sum((zi - p) ** 2)))
    assert embed.partner_distance(z, 3, z[3] * 2).rank == 1  # the same direction: nearest
    with pytest.raises(ValueError, match="partner"):
        embed.partner_distance(z, 3, np.zeros(8))
    with pytest.raises(ValueError, match="partner"):
        embed.partner_distance(z, 3, np.ones(7))


def test_class_and_run_colours_stay_apart_on_a_projector() -> None:
    """Plotly's defaults gave digits 5, 7, 8, 9 pastels (1.4-1.9:1 on white) that washed
    out when projected: each of the ten label and run colours keeps 3:1 on white, and every
    two of them, the pin's near-black and the dimmed grey stay 20 apart in CIELAB."""
    from itertools import combinations

    from gca_viz.figures import _pin, training

    ten = geometry.LABEL_COLORS[:10]
    assert training.RUN_COLORS[: len(ten)] == ten
    assert all(contrast_with_white(c) >= 3.0 for c in ten), ten
    dimmed = "#{:02x}{:02x}{:02x}".format(*map(int, geometry.DIMMED[4:-1].split(",")))
    marks = [*ten, _pin.PIN_COLOR, dimmed]
    gaps = {(a, b): float(np.linalg.norm(cielab(a) - cielab(b))) for a, b in combinations(marks, 2)}
    assert min(gaps.values()) >= 20, min(gaps.items(), key=lambda kv: kv[1])


def test_runs_on_other_data_get_a_legend_each_and_like_runs_share_one() -> None:
    """Two runs compared side by side shared the first run's legend: a run on a file whose
    classes are bird / cat / dog next to one on labels 0 / 1 / 2 showed "bird" for the
    second run's class 0, and next to the digits only 3 of its 10 classes were named."""
    rng = np.random.default_rng(0)

    def panel(title: str, y: np.ndarray, names: list[str] | None) -> geometry.Panel:
        return geometry.Panel(title, [_unit(rng, len(y), 3)], y, names)

    def legend(*panels: geometry.Panel) -> list[str]:
        fig = json.loads(geometry.explorer_figure(list(panels), view="sphere").to_json())
        shown = [t for t in fig["data"] if t.get("showlegend") is not False]
        return [t["name"] for t in shown if t.get("name")]

    y = np.arange(12) % 3
    words, digits = panel("#8 names", y, ["bird", "cat", "dog"]), panel("#7 good", y, None)
    assert legend(words, digits) == ["#8 names: bird", "#8 names: cat", "#8 names: dog",
                                     "#7 good: 0", "#7 good: 1", "#7 good: 2"]  # fmt: skip
    same = panel("#9 names too", y, ["bird", "cat", "dog"])
    assert legend(words, same) == ["bird", "cat", "dog"]  # one legend, as before


def test_embedding_figure_draws_raw_embeddings_by_their_direction() -> None:
    """Points of norm ~13 sat far outside the unit sphere (a stray dot beside a big grey
    sphere): rows are L2-normalised; an all-zero row has no direction and is refused."""
    import torch

    rng = np.random.default_rng(0)
    z = 7 * rng.standard_normal((12, 3))
    y = np.repeat(np.arange(3), 4)
    for given in (z, torch.tensor(z, requires_grad=True)):
        fig = geometry.embedding_figure(given, y)
        points = [t for t in fig.data if t.type == "scatter3d" and t.mode == "markers"]
        assert points
        for t in points:
            xyz = np.c_[decode(t.x), decode(t.y), decode(t.z)]
            assert np.allclose(np.linalg.norm(xyz, axis=1), 1.0, atol=1e-5)
    z[3] = 0.0
    with pytest.raises(ValueError, match="z must be finite with no all-zero row"):
        geometry.embedding_figure(z, y)


def test_a_class_that_forms_a_cluster_is_named_on_it_in_its_colour() -> None:
    """The classes differed by colour only. A label's name is drawn at its cluster (just
    outside the sphere, in its mean direction) once its points gather: not while they are
    spread over the sphere, and not on a run collapsed to one spot (every class there is
    as tight as the whole); each frame moves and names them afresh."""
    rng = np.random.default_rng(8)
    y = np.repeat([0, 1, 2], 20)
    spread = _unit(rng, 60, 3)  # frame 0: everywhere
    poles = np.eye(3)[y]  # frame 1: three clusters, at the axes
    gathered = poles + 0.1 * rng.standard_normal((60, 3))
    gathered /= np.linalg.norm(gathered, axis=1, keepdims=True)
    collapsed = np.array([0.0, 0.0, 1.0]) + 0.05 * rng.standard_normal((60, 3))
    collapsed /= np.linalg.norm(collapsed, axis=1, keepdims=True)
    names = ("zero", "one", "two")
    fig = _figure(geometry.Panel("#1", [spread, gathered, collapsed], y, names=names))
    index = [t.get("name") for t in fig["data"]].index("names of the clusters")
    trace = fig["data"][index]
    assert trace["mode"] == "text" and trace["text"] == ["", "", ""]  # frame 0, shown first
    assert trace["textfont"]["color"] == [fig["data"][index - 3 + c]["marker"]["color"]
                                          for c in range(3)]  # fmt: skip
    texts = []
    for frame in fig["frames"]:
        (update,) = [d for d, t in zip(frame["data"], frame["traces"], strict=True) if t == index]
        texts.append(update["text"])
        if update["text"] == list(names):
            np.testing.assert_allclose(_xyz(update), 1.07 * np.eye(3), atol=0.1)
            assert np.abs(_xyz(update)).max() < 1.1  # inside the scene's box: not clipped
    assert texts == [["", "", ""], list(names), ["", "", ""]]
    one = _figure(geometry.Panel("#1", [gathered] * 3, np.zeros(60, int)))
    assert "names of the clusters" not in [t.get("name") for t in one["data"]]  # one label
