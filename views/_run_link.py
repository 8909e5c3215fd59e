"""A link naming a run that is not in the store (``/geometry?geo_run=999``): the pages say so
instead of silently opening another run."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import streamlit as st


def missing_run_warning(
    key: str, ids: Sequence[int], shown: int, describe: Callable[[int], str]
) -> None:
    """Warn that the run the URL's ``key`` names does not exist, if it does not.

    Call it right before the run chooser ``key``, with the store's run ``ids`` and the run
    the chooser falls back to (``shown``; ``describe`` names it). The URL is read on the
    session's first page run only (later the chooser's state holds the choice); the warning
    stays until the user picks a run in the chooser."""
    marker = f"_{key}_missing"
    if key not in st.session_state:
        requested = st.query_params.get(key)
        if requested is not None and requested not in {str(i) for i in ids}:
            st.session_state[marker] = (requested, shown)
    if marker not in st.session_state:
        return
    requested, fallback = st.session_state[marker]
    if st.session_state.get(key, fallback) != fallback:  # the user chose a run
        del st.session_state[marker]
        return
    name = f"#{requested}" if requested.isdigit() else repr(requested)
    st.warning(
        f"Run {name} does not exist in this app's run store: it was deleted, or the link was "
        f"made with another store (another machine, or another `GCA_RUNS_DIR`). Showing "
        f"{describe(fallback)} instead: choose the run to look at under **Run**.",
        icon=":material/link_off:",
    )
