"""The training flow in a real browser: launch a run from the Train page, watch it live
(the monitor and the "All runs" table follow it without a reload), change its ε while it
trains, stop it, and look at its embeddings on the Geometry page.

The run trains in its own process on the session's run store; it is stopped through the UI
and the ``no_run_survives`` fixture kills anything left. It is long enough (1000 steps) never
to finish while the test interacts with it, whatever the machine's load.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

from gca_viz.figures.training import CHANGE_MARKS
from tests.browser.test_geometry import check_missing_run_link, check_wheel_scrolls

STEPS = 1000
NEW_EPS = "0.25"


def progress(app: Any) -> tuple[str, int]:
    """``(status, step)`` from the live monitor's progress bar (``**running** · step 12 of
    1000 · ...``); ``("", -1)`` while it is not drawn."""
    bar = app.page.locator('[data-testid="stMain"] [data-testid="stProgress"]')
    if not bar.count():
        return "", -1
    text = bar.first.inner_text()
    found = re.search(r"(\w+)\s*·\s*step (\d+) of (\d+)", text)
    return (found.group(1), int(found.group(2))) if found else ("", -1)


def progress_text(app: Any) -> str:
    """The whole text of the live monitor's progress bar ("" while it is not drawn)."""
    bar = app.page.locator('[data-testid="stMain"] [data-testid="stProgress"]')
    return bar.first.inner_text() if bar.count() else ""


def table_row(app: Any, run_id: str) -> dict[str, str]:
    """The "All runs" table's row of a run as ``{column: cell text}`` ({} until drawn). The
    table is a canvas data grid; its accessible twin (``table[role=grid]``) holds the text."""
    table = app.page.locator('[data-testid="stExpander"]', has_text="All runs").locator(
        'table[role="grid"]'
    )
    script = """t => {
        const head = [...t.querySelectorAll('thead th')].map(c => c.innerText.trim());
        return [...t.querySelectorAll('tbody tr')].map(r => Object.fromEntries(
            [...r.querySelectorAll('td')].map((c, i) => [head[i], c.innerText.trim()])));
    }"""
    try:
        rows = table.first.evaluate(script, timeout=5000) if table.count() else []
    except PlaywrightError:  # redrawn while being read
        return {}
    return next((r for r in rows if r.get("run") == str(run_id)), {})


def table_step(app: Any, run_id: str) -> int:
    """The step the "All runs" table shows for a run (-1 until it is shown)."""
    cell = table_row(app, run_id).get("step", "").replace(",", "")
    return int(cell) if cell.isdigit() else -1


def plan_title(app: Any) -> str:
    """The title of the plan heatmap, e.g. ``"... at step 40"`` ("" until it is drawn)."""
    return app.read_chart("tr_plan", "gd => gd._fullLayout.title.text", "") or ""


def change_labels(app: Any) -> list[str]:
    """What the numbered lines on the metric curves mark (① ... on the chart, the caption
    says what each is): the changes, from the caption's key."""
    script = "gd => (gd._fullLayout.annotations || []).map(a => a.text)"
    # (a mark is its number, or its number and the change's words: "① ε 0.5 → 0.25")
    texts = app.read_chart("tr_curves", script, None) or []
    marks = [t for t in texts if t and t[0] in CHANGE_MARKS]
    caption = app.page.get_by_text(re.compile("Dotted lines mark live changes: "))
    if not marks or caption.count() == 0:
        return []
    key = caption.first.inner_text().split("Dotted lines mark live changes: ", 1)[1]
    return [part.split(": ", 1)[1].rstrip(".") for part in key.split("; ")][: len(marks)]


def test_launch_watch_steer_stop_then_geometry(
    app: Any, screenshot: Any, no_run_survives: Path
) -> None:
    page = app.page
    start = time.perf_counter()
    times: dict[str, float] = {}

    def mark(phase: str) -> None:
        times[phase] = time.perf_counter() - start

    app.goto("/train", charts=1)  # demo runs: the lecture pair's curves
    mark("Train page drawn")
    before = app.query().get("tr_run")

    # ------------------------------------------------------------ configure, launch
    app.open_new_run_form()
    app.choose("tr_data", "multidomain_digits")  # has domains: Geometry can colour by them
    app.type_number("tr_steps", str(STEPS))
    app.wait_for_query("tr_steps", str(STEPS))
    app.type_number("tr_batch", "128")
    app.wait_for_query("tr_batch", "128")
    page.get_by_text("Advanced settings", exact=True).click()
    app.type_number("tr_snap", "10")  # the plan and the embeddings every 10 steps
    app.wait_for_query("tr_snap", "10")
    assert app.query()["tr_out_dim"] == "3"
    page.locator(".st-key-tr_launch button").click()
    expect(page.get_by_text(re.compile(r"Launched run #\d+"))).to_be_visible(timeout=30_000)
    run_id = app.until(
        lambda: (r := app.query().get("tr_run")) != before and r, 30, "tr_run of the new run"
    )
    mark("run launched")
    app.assert_healthy()

    # ------------------------------------------------------- live progress, live plan
    _, first = app.until(
        lambda: (p := progress(app))[0] == "running" and p[1] > 0 and p,
        90,
        lambda: f"the run to report steps; progress {progress(app)}",
    )
    app.until(lambda: progress(app)[1] > first, 60, lambda: f"steps to increase past {first}")
    title = app.until(lambda: plan_title(app), 90, "the plan of the current batch")
    assert re.search(r"at step \d+", title), title
    app.until(lambda: plan_title(app) != title, 60, f"the plan to update after {title!r}")
    app.until(
        lambda: app.read_chart("tr_curves", "gd => gd._fullData.length"), 60, "the metric curves"
    )
    mark("progress, plan and curves live")
    device = re.search(r"device (\S+)", progress_text(app))
    assert device and device.group(1) in ("cpu", "cuda:0", "mps"), progress_text(app)

    # ------------------------- the runs table and the run choice follow the run live
    row = app.until(
        lambda: (r := table_row(app, run_id)).get("status") == "running" and r,
        30,
        lambda: f"the run in the All runs table; row {table_row(app, run_id)}",
    )
    assert row["device"] == device.group(1), row
    seen = table_step(app, run_id)
    app.until(
        lambda: table_step(app, run_id) > seen,
        30,
        lambda: f"the table's step to pass {seen} without a reload; row {table_row(app, run_id)}",
    )
    run_choice = app.widget("tr_run").get_by_role("combobox").first
    expect(run_choice).to_have_value(re.compile(r"· running$"))
    mark("runs table live")
    screenshot("train_live")

    # ----------------------------------------------- steer: ε while it trains
    eps_box = app.number_input(f"tr_live_{run_id}_epsilon")
    expect(eps_box).to_be_visible()
    eps_box.fill(NEW_EPS)
    page.get_by_role("button", name=re.compile("Apply at the next step")).click()
    expect(page.get_by_text(re.compile(r"Requested ε=0\.25")).first).to_be_attached(timeout=30_000)
    # the curves come into view, where the change will show (the button sat ~700 px above
    # them at 1366 x 768: a student changed ε and watched nothing)
    expect(app.chart("tr_curves")).to_be_in_viewport(timeout=15_000)
    labels = app.until(
        lambda: [t for t in change_labels(app) if t.endswith(f"→ {NEW_EPS}")],
        60,
        lambda: f"a chart mark of the change; annotations {change_labels(app)}",
    )
    assert len(labels) == 1 and re.fullmatch(rf"ε [\d.e-]+ → {NEW_EPS}", labels[0]), labels
    mark("live change marked on the chart")
    expect(
        page.get_by_text("loss values before and after the line are not comparable")
    ).to_be_visible()
    app.assert_healthy()

    # ------------------------------------------------------------------------ stop
    assert progress(app)[0] == "running", "the run ended before the test stopped it"
    stop = page.locator(".st-key-tr_stop").get_by_role("button", name="Stop", exact=True)
    stop.click()
    app.until(
        lambda: progress(app)[0] == "stopped", 60, lambda: f"stopped; progress {progress(app)}"
    )
    mark("run stopped")
    stopped_at = progress(app)[1]
    assert 0 < stopped_at < STEPS
    app.until(
        lambda: table_row(app, run_id).get("status") == "stopped",
        30,
        lambda: f"the All runs table to show the run stopped; row {table_row(app, run_id)}",
    )
    assert table_step(app, run_id) == stopped_at
    expect(run_choice).to_have_value(re.compile(r"· stopped$"))
    resume = page.locator(".st-key-tr_resume").get_by_role("button", name="Resume", exact=True)
    expect(resume).to_be_enabled()
    app.assert_healthy()

    # ------------------------------------------------- the run on the Geometry page
    app.goto(f"/geometry?geo_run={run_id}", charts=1)
    mark("Geometry of the run drawn")
    key = f"geo_fig_{run_id}"
    expect(app.chart(key)).to_be_visible()
    traces = app.chart_data(key, "gd => gd._fullData.map(t => [t.type, t.name])")
    assert traces[0][0] == "surface"  # out_dim 3: the unit sphere
    assert {t for t, _ in traces[1:]} == {"scatter3d"}
    assert len(traces) == 1 + 10 + 1, traces  # ten digit classes, and their names
    app.choose("geo_color", "domain")
    app.wait_for_query("geo_color", "domain")
    legend = (
        "gd => [gd._fullLayout.legend.title.text,"
        " gd._fullData.slice(1).filter(t => t.mode !== 'text').map(t => t.name)]"
    )
    title, names = app.until(
        lambda: (r := app.read_chart(key, legend)) and r[0] == "domain" and r,
        30,
        lambda: f"the colouring by domain; legend {app.read_chart(key, legend)}",
    )
    assert names == ["original", "rotated", "inverted", "noisy"], names
    expect(page.get_by_text("coloured by domain", exact=False).first).to_be_visible()
    screenshot("geometry_trained_run")
    app.assert_healthy()
    mark("coloured by domain")
    print(
        f"\nTrain flow, seconds since the start (informational), run stopped at step "
        f"{stopped_at} of {STEPS}:"
    )
    for phase, seconds in times.items():
        print(f"  {phase:<34} {seconds:6.1f}")


def test_the_wheel_over_the_runs_sphere_scrolls_the_page(app: Any) -> None:
    """The monitor's sphere of embeddings swallowed the wheel: a reader scrolling down the
    Train page stopped dead with the mouse over it (the Geometry page's fix covered only its
    own charts)."""
    app.goto("/train", charts=3)
    app.chart("tr_embed").scroll_into_view_if_needed()
    check_wheel_scrolls(app, "tr_embed", charts=3)


def test_a_link_to_a_missing_run_says_so(app: Any) -> None:
    """``tr_run=999`` used to open the newest run without a word."""
    check_missing_run_link(app, "/train", "tr_run")


def test_typing_a_run_in_compare_and_enter_selects_that_run(app: Any) -> None:
    """Typing a run's name in "Compare with" and pressing Enter adds that run. Streamlit
    1.67 puts "Select all" / "Select N matches" first in the list and Enter commits the
    first row: "demo-ince" added all three runs whose names it fuzzily matches."""
    app.goto("/train", charts=1)
    box = app.widget("tr_compare").get_by_role("combobox").first
    box.click()
    box.press_sequentially("demo-ince")
    options = app.page.get_by_role("listbox").get_by_role("option")
    expect(options.first).to_be_visible()
    assert len(options.all_inner_texts()) >= 2  # the demo-ince-noisy run matches too
    box.press("Enter")
    app.until(lambda: app.query().get("tr_compare"), 30, "tr_compare in the URL")
    chips = app.widget("tr_compare").locator("[data-tag] span[title]")
    expect(chips).to_have_count(1)
    assert re.fullmatch(r"#\d+ demo-ince", chips.first.inner_text().strip())
    assert "," not in app.query()["tr_compare"]
    app.assert_healthy()


def test_launch_folds_the_form_and_shows_the_live_monitor(app: Any, no_run_survives: Path) -> None:
    """After "Launch run" the form folds away and the new run's live monitor comes into view
    (the form stayed open and the monitor sat a screen below it)."""
    page = app.page
    app.goto("/train", charts=1)
    app.open_new_run_form()
    launch = page.locator(".st-key-tr_launch button")
    app.type_number("tr_steps", str(STEPS))
    app.wait_for_query("tr_steps", str(STEPS))
    launch.click()
    expect(page.get_by_text(re.compile(r"Launched run #\d+"))).to_be_visible(timeout=30_000)
    expect(launch).to_be_hidden(timeout=15_000)  # the form is folded
    monitor = page.locator(".st-key-tr_monitor")

    def in_view() -> bool:
        box = monitor.bounding_box()
        height = page.viewport_size["height"] if page.viewport_size else 0
        return bool(box and 0 <= box["y"] < height * 0.5)

    app.until(in_view, 15, "the live monitor to scroll into view")
    app.until(lambda: progress(app)[0] in ("queued", "running"), 60, "the new run's monitor")
    app.assert_healthy()


def test_a_runs_downloads_hold_its_config_and_embeddings(app: Any, runs_dir: Path) -> None:
    """Config JSON, Embeddings NPZ and Run (zip) are the shown run's (the zip imports back
    whole), built on click (the config was
    built eagerly: Streamlit's media cleanup deleted it while the browser still checked its
    URL after a rerun, a console 404 that failed the launch test above)."""
    import json

    import numpy as np

    from gca_viz.runs import RunStore

    page = app.page
    store = RunStore(runs_dir)  # (a demo run: other tests' runs may not have snapshots yet)
    run_id = next(r.id for r in store.list_runs() if r.name == "demo-gca-ince")
    app.goto(f"/train?tr_run={run_id}", charts=1)
    app.wait_for_query("tr_run", str(run_id))
    with page.expect_download() as config:
        page.locator(".st-key-tr_dl_cfg button").first.click()  # (help adds a wrapper)
    assert json.loads(Path(config.value.path()).read_text()) == store.get(run_id).config
    with page.expect_download() as npz:
        page.locator(".st-key-tr_dl_npz button").first.click()  # (help adds a wrapper)
    with np.load(npz.value.path()) as arrays:
        steps = [s for s, _ in store.snapshots(run_id, "embeddings")]
        assert arrays["steps"].tolist() == steps and arrays["z"].shape[0] == len(steps)
    with page.expect_download() as whole:
        page.locator(".st-key-tr_dl_zip button").first.click()  # (help adds a wrapper)
    assert whole.value.suggested_filename == f"run-{run_id}.zip"
    other = RunStore(Path(whole.value.path()).parent / "imported")
    back = other.get(other.import_directory(Path(whole.value.path()).rename(
        Path(whole.value.path()).with_suffix(".zip"))))  # fmt: skip
    assert back.config == store.get(run_id).config
    assert other.metrics_csv(back.id) == store.metrics_csv(run_id)
    assert len(other.snapshots(back.id, "embeddings")) == len(steps)
    app.assert_healthy()
