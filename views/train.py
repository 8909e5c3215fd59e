"""Train: configure and launch runs, watch them live, steer them, compare them.

The page is assembled from its parts in ``views/_train_*.py``: the "New run" form
(``_train_launch``), the runs table and the run choice (``_train_runs``), the actions on the
selected run (``_train_actions``), its live controls (``_train_steer``) and the live
monitor (``_train_monitor``).
"""

from __future__ import annotations

import streamlit as st

import ui
from views import _train_actions as actions
from views._train_launch import new_run_form
from views._train_monitor import monitor
from views._train_runs import runs_panel
from views._train_steer import steering

ui.title("Train")
ui.intro(
    "Train a small encoder with any loss of the GCA family. Each run is its own process: it "
    "keeps going if you close this page, and this page only reads what it writes (metrics, "
    "the plan of its current batch, snapshots of the embeddings). While a run trains you can "
    "change its $\\varepsilon$, its Sinkhorn iterations, its marginal relaxations and its "
    "target prior; the charts mark the step where each change took effect."
)
st.latex(
    r"\mathcal{L} = \frac{1}{n}\sum_i d_M\!\Big(P_{\mathrm{tgt}}\,\Big\|\,"
    r"\mathrm{proj}_B\big(e^{-C(z', z'')/\varepsilon}\big)\Big)_i"
)

store = ui.run_store()
if isinstance(store, ui.UnavailableStore):  # its error is already on the page
    st.stop()
store.reconcile()
new_run_form(store, expanded=not store.list_runs())

st.subheader("Runs")
runs = store.list_runs()
if not runs:
    st.info(
        "No runs yet. Configure one under **New run** above and press **Launch run**: on the "
        "digits a few hundred steps take about a minute on a laptop CPU. Runs keep training "
        "when you leave this page, and the **Geometry** page then shows their embeddings.",
        icon=":material/info:",
    )
    st.stop()

selection, runs = runs_panel(store, runs)
info = next(r for r in runs if r.id == selection.run_id)
changed = actions.live_changes_text(store, info.id)  # (the downloads' and the copy's note)
actions.action_row(store, info, changed)
actions.problems(info)
steering(store, info)
with st.container(key="tr_monitor"):
    monitor(store, info, selection, runs)
# just launched: bring the monitor into view; a live change: the curves, where it is marked
ui.scroll_if_asked("tr_monitor", "tr_curves")
actions.duplicate(store, info, changed)
