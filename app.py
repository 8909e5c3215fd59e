"""GCA Explorer: the router. Page config, navigation over views/, a sidebar status strip
with the lecture-mode toggle (ui.lecture: the navigation at the top, the sidebar collapsed,
projector-sized type), and the projection engines' warm-up, started once per server process
by its first page run (views/_projections.py; ``GCA_WARM_UP=0`` turns it off)."""

import streamlit as st
import torch

import ui
from gca_viz import __version__
from gca_viz.device import resolve_device
from views._projections import start_warm_up

lecture = ui.lecture()
st.set_page_config(
    page_title="GCA Explorer",
    layout="wide",
    initial_sidebar_state="collapsed" if lecture else "auto",
)

navigation = st.navigation(
    [
        st.Page("views/story.py", title="Story", icon=":material/auto_stories:", default=True),
        st.Page("views/plan_lab.py", title="Plan lab", icon=":material/grid_on:"),
        st.Page("views/entropy.py", title="Entropy and iterations", icon=":material/tune:"),
        st.Page("views/train.py", title="Train", icon=":material/model_training:"),
        st.Page("views/geometry.py", title="Geometry", icon=":material/scatter_plot:"),
        st.Page("views/domains.py", title="Target plans and domains", icon=":material/join:"),
        st.Page("views/noisy.py", title="Noisy views", icon=":material/blur_on:"),
        st.Page("views/composer.py", title="Loss composer", icon=":material/extension:"),
    ],
    position="top" if lecture else "sidebar",
)
start_warm_up()  # UMAP's numba compile and t-SNE's imports, in the background, once


@st.fragment(run_every=3)
def status_strip() -> None:
    """Device and the runs in progress, refreshed every few seconds."""
    st.caption(f"Device: `{resolve_device('auto')}` · torch {torch.__version__}")
    store = ui.run_store()
    store.reconcile()
    active = [r for r in store.list_runs() if r.status in ("running", "queued")]
    if not active:
        st.caption("No runs in progress.")
    for r in active:
        st.progress(r.progress, text=f"#{r.id} {r.name}: {r.status}, step {r.step}/{r.steps}")


ui.page_style()
with st.sidebar:
    st.caption(f"gca_viz {__version__}")
    ui.lecture_toggle()
    status_strip()

navigation.run()
