"""What the user chose on a page is still there after a look at another page (AppTest).

Streamlit drops a page's widget state on a page switch and the navigation drops the query
string; the pages started at their defaults again (a half-filled New run form was lost by a
look at Geometry, Story went back to step 1). ``ui.recall``/``ui.remember`` keep the values
the user chose. AppTest keeps the query string across ``switch_page``: :func:`navigate`
drops it, as the browser's navigation does (tests/browser/test_controls.py checks the real
navigation)."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from gca_viz.runs import RunStore
from tests.helpers import add_run, assert_clean, charts, names, open_app, texts, view


def navigate(at: AppTest, page: str) -> AppTest:
    """Open ``views/<page>.py`` from the navigation: without the previous page's URL."""
    for key in list(at.query_params):
        del at.query_params[key]
    at.switch_page(view(page)).run()
    assert_clean(at)
    return at


def test_story_keeps_its_step_and_settings_across_a_page_switch() -> None:
    at = open_app()
    at.radio(key="story_step").set_value(3).run()
    at.number_input(key="story_eps").set_value(0.5).run()
    at.number_input(key="story_seed").set_value(4).run()
    navigate(at, "plan_lab")
    assert at.session_state["lab_eps"] == 0.1  # Plan lab has its own ε
    navigate(at, "story")
    assert at.session_state["story_step"] == 3
    assert at.session_state["story_eps"] == 0.5 and at.session_state["story_seed"] == 4
    # ... and the URL says so again, so a copied link reproduces the view
    assert at.query_params["story_eps"] == "0.5" and at.query_params["story_step"] == "3"


def test_a_value_set_back_to_its_default_is_not_kept_and_a_link_comes_first() -> None:
    at = open_app()
    at.number_input(key="story_seed").set_value(4).run()
    at.number_input(key="story_seed").set_value(0).run()  # the default again
    at.number_input(key="story_eps").set_value(0.5).run()
    navigate(at, "entropy")
    navigate(at, "story")
    assert at.session_state["story_seed"] == 0 and at.session_state["story_eps"] == 0.5
    # A link's value wins over the remembered one.
    for key in list(at.query_params):
        del at.query_params[key]
    at.query_params["story_eps"] = "0.05"
    at.switch_page(view("plan_lab")).run()
    at.switch_page(view("story")).run()
    assert at.session_state["story_eps"] == 0.05


def test_the_new_run_form_keeps_what_was_filled_in(no_demo_store: Path) -> None:
    at = open_app("views/train.py")
    at.selectbox(key="tr_method").set_value("gca_uot").run()
    at.number_input(key="tr_batch").set_value(128).run()
    at.number_input(key="tr_steps").set_value(800).run()
    at.selectbox(key="tr_data").set_value("path").run()
    at.text_input(key="tr_path").input("mine.npz").run()
    at.text_input(key="tr_name").input("long run").run()
    navigate(at, "geometry")
    navigate(at, "train")
    assert at.selectbox(key="tr_method").value == "gca_uot"
    assert at.number_input(key="tr_batch").value == 128
    assert at.number_input(key="tr_steps").value == 800
    assert at.text_input(key="tr_path").value == "mine.npz"
    assert at.text_input(key="tr_name").value == "long run"
    assert at.query_params["tr_method"] == "gca_uot"
    assert "tr_path" not in at.query_params  # a path is kept, not linked


def test_a_remembered_choice_that_is_gone_falls_back_to_the_default() -> None:
    """A remembered value that is no longer an option (a run since deleted) is not used."""
    at = open_app()
    at.session_state["_ui_chosen"] = {"story_source": "no such source", "story_step": 9}
    navigate(at, "story")
    assert at.session_state["story_source"] == "demo" and at.session_state["story_step"] == 1


def test_geometry_keeps_its_run_pin_and_plane(store_env: Path) -> None:
    """The Geometry page's own controls (the pinned sample, the runs on the plane) come
    back with the linked ones (the pin and the plane were drawn by plain widgets)."""
    at = open_app("views/geometry.py")
    at.selectbox(key="geo_run").set_value(1).run()
    pin = at.selectbox(key="geo_pin").options[3]
    at.selectbox(key="geo_pin").set_value(int(pin.split()[0])).run()
    at.multiselect(key="geo_plane").set_value([1, 2]).run()  # (by default: run 1's data)
    assert_clean(at)
    navigate(at, "story")
    navigate(at, "geometry")
    assert at.selectbox(key="geo_run").value == 1
    assert at.selectbox(key="geo_pin").value == int(pin.split()[0])
    assert at.query_params["geo_pin"] == pin.split()[0]
    assert at.multiselect(key="geo_plane").value == [1, 2]
    assert names(charts(at)["geo_plane_fig"]) == ["#1 sphere", "#2 eight-d"]


def test_a_remembered_run_deleted_since_is_said_to_be_gone(store_env: Path) -> None:
    """The run the user was looking at before a page switch was deleted meanwhile: the page
    says so and shows another run (it fell back without a word); the note goes when the
    user chooses a run."""
    at = open_app("views/train.py")
    at.session_state["_ui_chosen"] = {"geo_run": 99, "tr_run": 98}
    navigate(at, "geometry")
    said = texts(at.warning)
    assert "Run #99, which you were looking at, has been deleted since" in said
    shown = at.selectbox(key="geo_run").value
    assert shown in (1, 2, 3)
    at.selectbox(key="geo_run").set_value(1 if shown != 1 else 2).run()
    assert "#99" not in texts(at.warning)
    navigate(at, "train")
    assert "Run #98, which you were looking at, has been deleted since" in texts(at.warning)


def test_plan_lab_says_when_its_run_is_gone(store_env: Path) -> None:
    """Plan lab's run chooser (plan snapshots of a run) fell back to another run without a
    word when the remembered run was deleted; a link naming a missing run is said once."""
    at = open_app("views/train.py")
    at.session_state["_ui_chosen"] = {"lab_source": "snapshot", "lab_run": 99}
    navigate(at, "plan_lab")
    assert "Run #99, which you were looking at, has been deleted since" in texts(at.warning)
    linked = open_app("views/plan_lab.py", lab_source="snapshot", lab_run="77")
    said = texts(linked.warning)
    assert "Run #77 does not exist in this app's run store" in said
    assert "The link's Run" not in said  # not said twice


def test_the_deleted_run_note_is_said_once(store_env: Path) -> None:
    """The note that the remembered run is gone lived in the session: it came back on every
    visit, naming as shown a run the page no longer showed."""
    at = open_app("views/train.py")
    at.session_state["_ui_chosen"] = {"geo_run": 99}
    navigate(at, "geometry")
    assert "Run #99" in texts(at.warning)
    navigate(at, "story")
    navigate(at, "geometry")
    assert "Run #99" not in texts(at.warning)


def test_a_run_deleted_while_shown_is_said_to_be_gone(store_env: Path) -> None:
    """A tab showed a run that another tab (or user) deleted: on its next run the page
    switched to another run without a word."""
    store = RunStore(store_env)  # (shared by the module's tests: a run of this test's own)
    for path, key in (("views/train.py", "tr_run"), ("views/geometry.py", "geo_run")):
        run = add_run(store, name="doomed", status="finished", step=5)
        try:
            at = open_app(path)
            at.selectbox(key=key).set_value(run).run()
        finally:
            store.delete(run)  # from elsewhere (and never left behind for the next tests)
        at.run()
        said = texts(at.warning)
        assert f"Run #{run}, which you were looking at, has been deleted since" in said, path
        assert at.selectbox(key=key).value != run
        assert_clean(at)


def test_a_run_deleted_on_its_own_page_is_not_warned_about(store_env: Path) -> None:
    """Train's Delete of the run shown: the chooser's link (tr_run=<id>) stayed in the URL
    and the next run warned that the run "does not exist in this app's run store"."""
    store = RunStore(store_env)
    run = add_run(store, name="doomed", status="finished", step=5)
    try:
        at = open_app("views/train.py")
        at.selectbox(key="tr_run").set_value(run).run()
        assert at.query_params.get("tr_run") in (str(run), [str(run)])
        at.button(key="tr_delete").click().run()
        at.run()
        assert f"Run #{run}" not in texts(at.warning)
        assert at.selectbox(key="tr_run").value != run
        assert_clean(at)
    finally:
        if run in [r.id for r in store.list_runs()]:
            store.delete(run)


def test_geometry_remembers_the_step_of_each_run(store_env: Path) -> None:
    """The step chosen on one run opened another run (a link naming only the run, as the
    Train page's) at that step, not at its newest snapshot."""
    at = open_app("views/geometry.py")
    at.selectbox(key="geo_run").set_value(1).run()
    steps = at.select_slider(key="geo_step").options
    at.select_slider(key="geo_step").set_value(int(steps[0])).run()
    navigate(at, "story")
    at.query_params["geo_run"] = "2"  # Train's link to run 2
    at.switch_page(view("geometry")).run()
    assert at.select_slider(key="geo_step").value == int(
        at.select_slider(key="geo_step").options[-1]
    )
    navigate(at, "story")
    at.query_params["geo_run"] = "1"
    at.switch_page(view("geometry")).run()
    assert at.select_slider(key="geo_step").value == int(steps[0])  # run 1's step, kept


def test_a_default_that_moved_is_not_taken_for_a_choice(no_demo_store: Path) -> None:
    """Train opened on the newest run; a newer one started while the page was open; the run
    the page had started on was then kept as if chosen, and came back after a page switch
    instead of the newest."""
    import os

    store = RunStore(no_demo_store)
    first = store.register_external("older", {"out_dim": 3}, pid=os.getpid())
    new = None
    try:
        at = open_app("views/train.py")
        assert at.selectbox(key="tr_run").value == first
        new = store.register_external("newer", {"out_dim": 3}, pid=os.getpid())
        at.run()
        assert at.selectbox(key="tr_run").value == first  # the page keeps what it shows
        navigate(at, "geometry")
        navigate(at, "train")
        assert at.selectbox(key="tr_run").value == new  # the newest, not a stale default
    finally:
        for run in (first, new):
            if run is not None:
                store.end(run, "finished", 0, None)
