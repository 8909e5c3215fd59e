"""Geometry in a real browser with a shipped demo run (finished, 3-D embeddings): the
snapshot slider moves through training time, the views and the colouring redraw; the hover
shows a sample's digit, a click on the sphere pins it (with its positive partner, which the
shipped runs store), ▶ plays the snapshots with a steady camera, compared spheres turn
together, and the run labels on the plane do not overlap."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from playwright.sync_api import expect

from gca_viz.runs import RunStore

SCATTER = """gd => ({
    types: gd._fullData.map(t => t.type),
    names: gd._fullData.map(t => t.name),
    title: gd._fullLayout.title.text,
    first: Array.from(gd._fullData.find(t => t.type.startsWith('scatter')).x),
})"""


def scatter(app: Any) -> dict[str, Any]:
    """Types and names of the traces of the embedding figure of the run in the URL, its
    title, and the x coordinates of its first point cloud."""
    return app.chart_data(f"geo_fig_{app.query()['geo_run']}", SCATTER)


def test_snapshot_slider_and_views(app: Any) -> None:
    page = app.page
    app.goto("/geometry", charts=2)
    run = app.query()["geo_run"]
    last = app.query()["geo_step"]
    start = scatter(app)
    # The sphere: a surface, one 3-D point cloud per class and the clusters' names.
    assert start["types"][0] == "surface"
    assert set(start["types"][1:]) == {"scatter3d"}
    assert len(start["types"]) == 1 + 10 + 1  # ten digit classes
    assert f"step {last}" in start["title"]

    app.step_slider("geo_step", "ArrowLeft")
    app.until(lambda: app.query().get("geo_step") != last, 30, "geo_step to move back")
    earlier = app.query()["geo_step"]
    assert int(earlier) < int(last)
    moved = app.until(
        lambda: (s := scatter(app))["first"] != start["first"] and s, 30, "the points to move"
    )
    assert f"step {earlier}" in moved["title"]
    app.assert_healthy()

    # Colour by domain: the digits have none, so it is not offered.
    app.widget("geo_color").locator('button[aria-haspopup="listbox"]').first.click()
    options = page.get_by_role("listbox").get_by_role("option")
    expect(options).to_have_count(1)
    expect(options.first).to_have_text("class")
    page.keyboard.press("Escape")
    assert scatter(app)["names"] == moved["names"]

    # PCA: the same snapshot as a flat projection.
    app.choose("geo_method", "PCA")
    app.wait_for_query("geo_method", "pca")
    flat = app.until(
        lambda: (s := scatter(app))["types"][0] != "surface" and s, 30, "the PCA scatter"
    )
    assert set(flat["types"]) <= {"scatter", "scattergl"}
    assert app.query()["geo_run"] == run
    app.assert_healthy()


def title_of(app: Any, run: str) -> str:
    """The title of a run's embedding figure ("" until it is drawn)."""
    return app.read_chart(f"geo_fig_{run}", "gd => gd._fullLayout.title.text", "") or ""


def test_automatic_tsne_appears_without_user_action(app: Any) -> None:
    """With "Compute automatically" on, a finished run's t-SNE replaces the PCA stand-in by
    itself once the background job ends, and again after the step slider moves (the page
    used to stay on "is queued" until an unrelated widget changed: nothing polled)."""
    app.goto("/geometry", charts=2)
    run = app.query()["geo_run"]
    start = time.perf_counter()
    app.goto(f"/geometry?geo_run={run}&geo_method=tsne&geo_auto=True", charts=2)
    last = app.query()["geo_step"]
    # t-SNE of 300 points takes 1-2 s (up to 12 s measured on a loaded 2-core machine), and
    # the page shows it within about a second of the job's end. Before the fix it never
    # came without a click elsewhere.
    app.until(lambda: "t-SNE" in title_of(app, run), 30, "the t-SNE to replace the PCA")
    print(f"t-SNE drawn {time.perf_counter() - start:.1f} s after opening the page")
    assert f"step {last}" in title_of(app, run)
    expect(app.page.get_by_text("is queued")).to_have_count(0)

    app.step_slider("geo_step", "ArrowLeft")
    app.until(lambda: app.query().get("geo_step") != last, 30, "geo_step to move back")
    earlier = app.query()["geo_step"]
    start = time.perf_counter()
    app.until(
        lambda: (t := title_of(app, run)) and f"step {earlier}" in t and "t-SNE" in t,
        30,
        f"the t-SNE of step {earlier}",
    )
    print(f"t-SNE of step {earlier} drawn {time.perf_counter() - start:.1f} s after the move")
    app.assert_healthy()


def pick_other_run(app: Any, key: str) -> str:
    """Choose, in the run chooser ``key``, a run other than the one shown; returns its
    option text."""
    box = app.widget(key).get_by_role("combobox").first
    shown = box.input_value()
    app.widget(key).locator('button[aria-haspopup="listbox"]').first.click()
    options = app.page.get_by_role("listbox").get_by_role("option")
    expect(options.first).to_be_visible()
    other = next(t for t in options.all_inner_texts() if t != shown)
    app.page.get_by_role("listbox").get_by_role("option", name=other, exact=True).click()
    expect(box).to_have_value(other)
    return other


def check_missing_run_link(app: Any, page: str, key: str) -> None:
    """Open ``page`` with ``key=999`` (no such run): the page says so, once, and what to do,
    names the run it shows instead and offers its run chooser; choosing a run clears the
    warning."""
    app.goto(f"{page}?{key}=999", charts=1)
    warning = app.page.get_by_text("Run #999 does not exist in this app's run store")
    expect(warning).to_be_visible()
    expect(app.page.get_by_text("choose the run to look at under Run")).to_be_visible()
    expect(app.page.get_by_text("Run = 999 is not used")).to_have_count(0)  # said once
    shown = app.query()[key]
    assert shown != "999"
    assert warning.inner_text().count(f"#{shown} ") == 1  # names the run shown instead
    pick_other_run(app, key)
    app.until(lambda: app.query()[key] != shown, 30, f"{key} to change")
    expect(warning).to_have_count(0)
    app.assert_healthy()


def test_a_link_to_a_missing_run_says_so(app: Any) -> None:
    """``geo_run=999`` used to open another run without a word."""
    check_missing_run_link(app, "/geometry", "geo_run")


# ------------------------------------------------------------------ the embedding explorer

PROJECT = """(gd, [scene, curve, index]) => {
    // where a 3-D point is drawn on the screen: plotly's own model-view-projection
    const s = gd._fullLayout[scene]._scene, t = gd._fullData[curve], cam = s.glplot.cameraParams;
    const mul = (M, v) => [0, 1, 2, 3].map(r => M[r] * v[0] + M[4 + r] * v[1] + M[8 + r] * v[2]
        + M[12 + r] * v[3]);
    let p = [t.x[index] * s.dataScale[0], t.y[index] * s.dataScale[1],
             t.z[index] * s.dataScale[2], 1];
    p = mul(cam.projection, mul(cam.view, mul(cam.model, p)));
    const box = s.container.getBoundingClientRect();
    return [box.left + (0.5 + 0.5 * p[0] / p[3]) * box.width,
            box.top + (0.5 - 0.5 * p[1] / p[3]) * box.height, p[2] / p[3]];
}"""

CAMERAS = """gd => Object.keys(gd._fullLayout).filter(k => /^scene\\d*$/.test(k)).map(k => {
    const c = gd._fullLayout[k]._scene.getCamera();
    return [c.eye.x, c.eye.y, c.eye.z, c.up.x, c.up.y, c.up.z];
})"""


def front_point(app: Any, key: str) -> tuple[float, float, int, int]:
    """Screen position, trace and index of the class point nearest the camera (no other
    point hides it) in chart ``key``."""
    chart = app.chart(key)
    chart.scroll_into_view_if_needed()
    types = chart.evaluate("gd => gd._fullData.map(t => [t.type, t.name || '', t.x.length])")
    best = None
    for curve, (kind, name, n) in enumerate(types):
        if kind != "scatter3d" or not name.isdigit():
            continue
        for i in range(n):
            x, y, depth = chart.evaluate(PROJECT, ["scene", curve, i])
            if best is None or depth < best[2]:
                best = (x, y, depth, curve, i)
    assert best is not None
    return best[0], best[1], best[3], best[4]


def test_hover_shows_the_sample_and_its_digit_and_a_click_pins_it(
    app: Any, screenshot: Any
) -> None:
    """The hover names the sample and draws its 8x8 digit; a click on a point of the sphere
    (which Streamlit's own selection does not report) pins that sample: the URL, the box and
    the marks follow."""
    app.goto("/geometry", charts=2)
    key = f"geo_fig_{app.query()['geo_run']}"
    x, y, curve, index = front_point(app, key)
    page = app.page
    page.mouse.move(x - 4, y)
    page.mouse.move(x, y)
    label = app.until(
        lambda: app.chart(key).evaluate(
            "gd => (gd.querySelector('.hovertext') || {}).textContent || ''"
        ),
        10,
        "a hover label",
    )
    found = re.match(r"sample (\d+) · class \S+", label)
    assert found, label
    sample = found.group(1)
    assert sum(ch in "░▒▓█" for ch in label) > 8  # the digit, drawn in shaded blocks
    page.mouse.down()
    page.mouse.up()
    app.wait_for_query("geo_pin", sample)
    app.settle(charts=2)
    expect(app.widget("geo_pin").get_by_role("combobox").first).to_have_value(
        re.compile(rf"^{sample} \(class ")
    )
    expect(page.get_by_text(f"Sample {sample}", exact=False).first).to_be_visible()
    marks = app.chart_data(
        key,
        """gd => {
            const byName = n => gd._fullData.find(t => t.name === n);
            const pin = byName('pinned sample'), near = gd._fullData.find(
                t => (t.name || '').includes('nearest'));
            return pin && near && {pin: [pin.x[0], pin.y[0], pin.z[0]], near: near.x.length};
        }""",
    )
    point = "gd => (t => [t.x[INDEX], t.y[INDEX], t.z[INDEX]])(gd._fullData[CURVE])"
    clicked = app.chart_data(key, point.replace("INDEX", str(index)).replace("CURVE", str(curve)))
    assert marks["pin"] == pytest.approx(clicked) and marks["near"] == 5
    screenshot("geometry_pinned")
    app.assert_healthy()


PARTNER = """gd => {
    const mark = gd._fullData.find(t => t.name === 'its partner (augmented view)');
    const pin = gd._fullData.find(t => t.name === 'pinned sample');
    const line = gd._fullData.find(t => t.mode === 'lines' && t.line && t.line.dash === 'dash');
    const at = t => [t.x[0], t.y[0], ...(t.z ? [t.z[0]] : [])];
    return mark && pin && line && {partner: at(mark), pin: at(pin), row: pin.customdata[0][0],
        symbol: mark.marker.symbol, color: mark.marker.color, line: Array.from(line.x)};
}"""


def test_a_pinned_point_shows_its_positive_partner(
    app: Any, runs_dir: Path, screenshot: Any
) -> None:
    """On the demo run the page opens on (the shipped runs store partner embeddings): a
    click pins a point of the sphere; its partner, a hollow diamond of its class colour on a
    dashed line, sits at the snapshot's z_partner of that row, and the details give the
    distance between the two views and the partner's rank. PCA draws it too; t-SNE says why
    it cannot."""
    app.goto("/geometry", charts=2)
    run = int(app.query()["geo_run"])
    store = RunStore(runs_dir)
    key = f"geo_fig_{run}"
    x, y, _, _ = front_point(app, key)
    page = app.page
    page.mouse.move(x - 4, y)
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.up()
    app.until(lambda: app.query().get("geo_pin"), 30, "the click to pin a point")
    app.settle(charts=2)
    marks = app.chart_data(key, PARTNER)
    snap = store.load_snapshot(store.snapshots(run, "embeddings")[-1][1])
    assert snap is not None
    assert marks["partner"] == pytest.approx(snap["z_partner"][marks["row"]].tolist(), abs=1e-5)
    assert marks["symbol"] == "diamond-open" and marks["color"].startswith("#")
    assert marks["line"][:2] == pytest.approx([marks["pin"][0], marks["partner"][0]])
    expect(page.get_by_text("cosine distance", exact=False).first).to_be_visible()
    expect(page.get_by_text("among its neighbours", exact=False).first).to_be_visible()
    expect(page.get_by_text("The hollow diamond on a dashed line")).to_be_visible()
    expect(page.get_by_text("these are held-out samples, never in a training batch",
                            exact=False)).to_be_visible()  # fmt: skip
    screenshot("geometry_partner")

    app.choose("geo_method", "PCA")
    app.wait_for_query("geo_method", "pca")
    flat = app.until(
        lambda: (m := app.read_chart(key, PARTNER)) and len(m["partner"]) == 2 and m,
        30,
        "the partner in the PCA view",
    )
    assert flat["row"] == marks["row"]
    legend = app.chart(key).locator(".legendtext", has_text="its partner (augmented view)")
    expect(legend).to_be_visible()

    pin = app.query()["geo_pin"]
    app.goto(f"/geometry?geo_run={run}&geo_pin={pin}&geo_method=tsne&geo_auto=True", charts=2)
    app.until(lambda: "t-SNE" in title_of(app, str(run)), 60, "the t-SNE")
    expect(page.get_by_text("partner is not drawn: t-SNE is fitted", exact=False)).to_be_visible()
    assert app.read_chart(key, PARTNER) is None  # no partner mark on the t-SNE
    app.assert_healthy()


def test_play_moves_through_the_snapshots_with_a_steady_camera(app: Any) -> None:
    app.goto("/geometry", charts=2)
    run, step = app.query()["geo_run"], app.query()["geo_step"]
    app.step_slider("geo_step", "Home")  # the first snapshot
    app.until(lambda: app.query().get("geo_step") != step, 30, "the step slider to move")
    key = f"geo_fig_{run}"
    app.settle(charts=2)
    state = """gd => ({active: gd._fullLayout.sliders[0].active,
        n: gd._fullLayout.sliders[0].steps.length, title: gd._fullLayout.title.text,
        ranges: ['xaxis', 'yaxis', 'zaxis'].map(a => gd._fullLayout.scene[a].range),
        first: Array.from(gd._fullData[1].x)})"""
    start = app.chart_data(key, state)
    camera = app.chart_data(key, CAMERAS)[0]
    assert start["active"] == 0
    app.chart(key).get_by_text("▶ Play").click()
    end = app.until(
        lambda: (s := app.read_chart(key, state)) and s["active"] == s["n"] - 1 and s,
        30,
        "the player to reach the last snapshot",
    )
    assert end["title"] != start["title"] and end["first"] != start["first"]  # points moved
    # (to rounding: with the clusters' names inside the box plotly rewrites a range as
    # -1.0999999999999999)
    assert np.ravel(end["ranges"]) == pytest.approx(np.ravel(start["ranges"]), abs=1e-9)
    assert np.ravel(start["ranges"]) == pytest.approx([-1.1, 1.1] * 3, abs=1e-9)
    assert app.chart_data(key, CAMERAS)[0] == pytest.approx(camera)  # the camera stayed
    assert app.query()["geo_step"] != step  # no server round trip moved the step slider
    app.assert_healthy()


def drag(app: Any, key: str, at: float, step: tuple[int, int]) -> np.ndarray:
    """Drag across chart ``key`` from ``at`` of its width (9 mouse moves of ``step``
    pixels); returns each scene's camera (eye, up) read while the button is still down."""
    box = app.chart(key).bounding_box()
    x, y = box["x"] + box["width"] * at, box["y"] + box["height"] * 0.45
    page = app.page
    page.mouse.move(x, y)
    page.mouse.down()
    for i in range(1, 10):
        page.mouse.move(x + step[0] * i, y + step[1] * i)
        page.wait_for_timeout(30)
    during = np.array(app.chart_data(key, CAMERAS))
    page.mouse.up()
    return during


def test_compared_spheres_turn_together(app: Any, runs_dir: Path) -> None:
    """Rotating either sphere of a comparison turns the other with it, while dragging and
    after; a drag up to the pole (eye along the up vector) and a drag after it on the other
    sphere raise nothing (a camera copied at the pole left plotly a singular matrix)."""
    store = RunStore(runs_dir)
    spheres = [
        r.id
        for r in store.list_runs()
        if r.config.get("out_dim") == 3 and store.snapshots(r.id, "embeddings")
    ]
    run, other = spheres[:2]
    app.goto(f"/geometry?geo_run={run}&geo_compare={other}", charts=2)
    key = f"geo_fig_{run}_with_{other}"
    app.chart(key).scroll_into_view_if_needed()
    start = np.array(app.chart_data(key, CAMERAS))
    assert len(start) == 2 and start[0] == pytest.approx(start[1])
    stored = "gd => ['scene', 'scene2'].map(s => gd._fullLayout[s].camera.eye)"
    for at, step in ((0.2, (12, 1)), (0.7, (-10, 2)), (0.2, (4, 30)), (0.7, (3, -20))):
        before = app.chart_data(key, stored)[0]
        still = np.array(app.chart_data(key, CAMERAS))
        during = drag(app, key, at, step)  # the left sphere, then the right one
        moved = 0 if at < 0.5 else 1
        turned = np.linalg.norm(during[moved] - still[moved])
        assert turned > 0.05  # the dragged sphere turned, and the other turned with it
        # (it follows plotly's camera events, one per drawn frame: it may be a frame behind)
        assert np.linalg.norm(during[1 - moved] - still[1 - moved]) > 0.2 * turned
        app.until(
            lambda b=before: (c := app.read_chart(key, stored)) and c[0] == c[1] != b,
            10,
            "both scenes to store the new camera (so a page run keeps it)",
        )
        now = app.chart_data(key, CAMERAS)
        assert now[1] == pytest.approx(now[0])
    expect(app.page.get_by_text("The two spheres share one camera")).to_be_visible()
    app.assert_healthy()


def test_run_labels_on_the_plane_do_not_overlap(app: Any, screenshot: Any) -> None:
    app.goto("/geometry", charts=2)
    plane = app.chart("geo_plane_fig")
    plane.scroll_into_view_if_needed()
    boxes = app.until(
        lambda: plane.evaluate(
            """gd => Array.from(gd.querySelectorAll('.annotation-text-g')).map(g => {
                const r = g.getBoundingClientRect();
                return [g.textContent, r.left, r.top, r.right, r.bottom];
            })"""
        ),
        15,
        "the run labels",
    )
    names = app.chart_data(
        "geo_plane_fig",
        "gd => gd._fullData.filter(t => t.name && !t.name.startsWith('trace')).map(t => t.name)",
    )
    assert sorted(b[0] for b in boxes) == sorted(names)
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            apart = a[3] <= b[1] or b[3] <= a[1] or a[4] <= b[2] or b[4] <= a[2]
            assert apart, f"{a[0]!r} overlaps {b[0]!r}: {a[1:]} vs {b[1:]}"
    screenshot("geometry_plane")
    app.assert_healthy()


def test_the_wheel_over_the_sphere_scrolls_the_page(app: Any) -> None:
    """The mouse wheel over the sphere scrolled nothing and zoomed the camera instead: a
    reader scrolling down the page shrank the embeddings to a dot (ui.PLOTLY_CONFIG)."""
    app.goto("/geometry", charts=2)
    check_wheel_scrolls(app, f"geo_fig_{app.query()['geo_run']}", charts=2)


def check_wheel_scrolls(app: Any, key: str, charts: int) -> None:
    """The wheel turned over the 3-D chart ``key`` scrolls the page by about its amount and
    leaves the camera where it was (views/_page_wheel.py)."""
    app.settle(charts=charts)
    camera = app.chart_data(key, CAMERAS)[0]
    box = app.chart(key).bounding_box()
    page = app.page
    page.mouse.move(box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.5)
    top = app.chart(key).bounding_box()["y"]
    page.mouse.wheel(0, 400)
    app.until(lambda: app.chart(key).bounding_box()["y"] < top - 100, 10, "the page to scroll")
    page.wait_for_timeout(500)  # one listener: the page moved by one wheel turn, not two
    assert top - app.chart(key).bounding_box()["y"] == pytest.approx(400, abs=60)
    assert app.chart_data(key, CAMERAS)[0] == pytest.approx(camera)  # no zoom
    # Over the same chart's legend (not the scene) the browser scrolls by itself: once.
    legend = app.chart(key).locator("g.legend").first
    legend.scroll_into_view_if_needed()
    box = legend.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    top = app.chart(key).bounding_box()["y"]
    page.mouse.wheel(0, 100)  # (a small turn: the Train page's end is near there)
    app.until(lambda: app.chart(key).bounding_box()["y"] < top - 50, 10, "the page to scroll")
    page.wait_for_timeout(500)
    assert top - app.chart(key).bounding_box()["y"] == pytest.approx(100, abs=25)
    app.assert_healthy()
