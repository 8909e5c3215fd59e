"""GCA Explorer: the router. Page config, navigation over views/, a sidebar status strip
with the lecture-mode toggle (ui.lecture: the navigation at the top, the sidebar collapsed,
projector-sized type), and the projection engines' warm-up, started once per server process
by its first page run (views/_projections.py; ``GCA_WARM_UP=0`` turns it off)."""

import streamlit as st
import torch

import ui
from gca_viz import __version__
from gca_viz.device import resolve_device
from views._chart_access import chart_access
from views._chart_fit import chart_fit
from views._history import history
from views._page_wheel import page_wheel
from views._projections import start_warm_up

lecture = ui.lecture()
st.set_page_config(
    page_title="GCA Explorer",
    layout="wide",
    initial_sidebar_state="collapsed" if lecture else "auto",
)

PAGES = (  # (script, title, the title in lecture mode's top bar, icon)
    ("views/story.py", "Story", "Story", "auto_stories"),
    ("views/plan_lab.py", "Plan lab", "Plan lab", "grid_on"),
    ("views/entropy.py", "Entropy and iterations", "Entropy", "tune"),
    ("views/train.py", "Train", "Train", "model_training"),
    ("views/geometry.py", "Geometry", "Geometry", "scatter_plot"),
    ("views/domains.py", "Target plans and domains", "Domains", "join"),
    ("views/noisy.py", "Noisy views", "Noisy views", "blur_on"),
    ("views/composer.py", "Loss composer", "Composer", "extension"),
)
# In lecture mode the pages' short titles: the top bar folds what does not fit into "N more",
# and with the long ones three pages were hidden there at 1280 px.
pages = [
    st.Page(
        script,
        title=short if lecture else title,
        icon=f":material/{icon}:",
        default=k == 0,  # served at /, its own name kept for open_story (below)
        url_path="story_home" if k == 0 else None,
    )
    for k, (script, title, short, icon) in enumerate(PAGES)
]


def open_story() -> None:
    """/story (the default page's own name, served at /): the Story, with the link's query
    (a written or shared /story?story_step=3 showed "Page not found")."""
    st.switch_page(pages[0], query_params=st.query_params.to_dict())


hidden = st.Page(open_story, title="Story", url_path="story", visibility="hidden")
navigation = st.navigation([*pages, hidden], position="top" if lecture else "sidebar")
start_warm_up()  # UMAP's numba compile and t-SNE's imports, in the background, once


@st.fragment(run_every=3)
def status_strip() -> None:
    """Device and the runs in progress, refreshed every few seconds."""
    # (one line with the version: the page's own controls begin higher in the sidebar)
    st.caption(
        f"gca_viz {__version__} · Device: `{resolve_device('auto')}` · torch {torch.__version__}"
    )
    store = ui.run_store()
    store.reconcile()
    active = [r for r in store.list_runs() if r.status in ("running", "queued")]
    if not active:
        st.caption("No runs in progress.")
    for r in active:
        of = f"/{r.steps}" if r.steps else ""  # (a recorded loop may not say how many)
        st.progress(r.progress, text=f"#{r.id} {r.name}: {r.status}, step {r.step}{of}")


ui.page_style()
with st.sidebar:
    ui.lecture_toggle()
    status_strip()
    page_wheel()  # the wheel over a 3-D chart scrolls the page (views/_page_wheel.py)
    chart_access()  # charts named, animations played by keyboard (views/_chart_access.py)
    chart_fit()  # a narrow chart takes its figure's narrow layout (views/_chart_fit.py)
    history()  # Back returns to the page before (views/_history.py)

navigation.run()
