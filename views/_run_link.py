"""A link naming a run that is not in the store (``/geometry?geo_run=999``): the pages say so
instead of silently opening another run. What a page says of a run it just launched, and
the colour a run has on every page."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence

import streamlit as st

import ui
from gca_viz.figures._palette import run_palette
from gca_viz.runs import RunInfo, RunStore

_LABEL_ID = re.compile(r"#(\d+)(?:\s|$)")


def run_colors(runs: Iterable[RunInfo]) -> dict[int, str]:
    """``{run id: colour}`` over every run of the store (``runs``): a run keeps its colour
    on Train's curves and on Geometry's plane (:func:`gca_viz.figures._palette.run_palette`)."""
    return run_palette([(r.id, r.config.get("method")) for r in runs])


def recover_run(key: str, ids: Sequence[int]) -> None:
    """Put back the run a run chooser ``key`` shows when the browser sent a stale label.

    A selectbox's value travels as its option's text. The run choosers' texts carry the
    run's status (``#6 name · running``), so after the run ends the browser may still send
    the old text with another widget's change; Streamlit then hands the page that string,
    not the run id, and the page would fall back to the newest run (another user's run, on
    a shared store). Call it before the chooser: a string naming a run of ``ids`` by its
    ``#id`` prefix becomes that id again."""
    value = st.session_state.get(key)
    if isinstance(value, str) and (m := _LABEL_ID.match(value)) and int(m[1]) in ids:
        st.session_state[key] = int(m[1])


def missing_run_warning(
    key: str,
    ids: Sequence[int],
    shown: int,
    describe: Callable[[int], str],
    options: Sequence[int] | None = None,
) -> None:
    """Warn that the run the URL's ``key`` names does not exist, if it does not; or that the
    run the user chose (before a page switch, :func:`ui.recall`, or on this page: the chooser
    still holds it) has been deleted since.

    Call it right before the run chooser ``key`` (before anything else puts the chooser
    back on a run that exists), with the store's run ``ids``, the run
    the chooser falls back to (``shown``; ``describe`` names it) and the chooser's
    ``options`` (``ids`` if not given). The URL is read when the chooser's state is new (a
    session's first visit), the memory when the page is opened again; the warning stays
    until the user picks a run in the chooser, and goes with the chooser's state (a page
    switch) or when the run it names as shown is no longer an option."""
    marker = f"_{key}_missing"
    current = st.session_state.get(key)
    if isinstance(current, int) and not isinstance(current, bool) and current not in ids:
        # deleted while this session showed it (from another tab, or by another user)
        st.session_state[marker] = (str(current), shown, "chosen")
        st.session_state[key] = shown
    if key not in st.session_state:
        st.session_state.pop(marker, None)  # said on an earlier visit: not again
        requested = st.query_params.get(key)
        chosen = ui.recall(key)
        if requested is not None and requested not in {str(i) for i in ids}:
            st.session_state[marker] = (requested, shown, "link")
            del st.query_params[key]  # said here: the chooser must not warn a second time
        elif chosen is not None and chosen not in ids:
            st.session_state[marker] = (str(chosen), shown, "chosen")
            ui.remember(key, shown, shown)  # forgotten: said once
    if marker not in st.session_state:
        return
    requested, fallback, *why = st.session_state[marker]  # (a 2-tuple: from a link)
    chosen = st.session_state.get(key, fallback)
    if chosen != fallback or fallback not in (ids if options is None else options):
        del st.session_state[marker]  # the user chose a run, or the one shown is gone
        return
    name = f"#{requested}" if requested.isdigit() else repr(requested)
    if why == ["chosen"]:
        st.warning(
            f"Run {name}, which you were looking at, has been deleted since (on the Train "
            f"page, or by another user of this run store). Showing {describe(fallback)} "
            "instead: choose the run to look at under **Run**.",
            icon=":material/delete:",
        )
        return
    st.warning(
        f"Run {name} does not exist in this app's run store: it was deleted, or the link was "
        f"made with another store (another machine, or another `GCA_RUNS_DIR`). Showing "
        f"{describe(fallback)} instead: choose the run to look at under **Run**.",
        icon=":material/link_off:",
    )


def launch_status(store: RunStore, run_id: int) -> str:
    """What a launched run is doing, to follow its name (``"Run #3 " + ...``): training,
    queued behind how many runs (at most ``store.max_concurrent`` train at once), or how it
    ended. Ends with a full stop."""
    try:
        info = store.get(run_id)
    except ValueError:  # deleted since (on the Train page, or by another user)
        return "has been deleted."
    if info.status == "running":
        return "is training in the background."
    if info.status == "queued":
        ahead = store.queued_ahead(run_id)
        behind = f"behind {ahead} other queued run{'s' * (ahead != 1)}, " if ahead else ""
        return (
            f"is queued {behind}and starts when a slot frees (at most "
            f"{store.max_concurrent} train at once)."
        )
    return {"interrupted": "was interrupted.", "failed": "failed."}.get(
        info.status, f"has {info.status}."
    )
