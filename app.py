"""GCA Explorer: the router. Page config, navigation over pages/, a sidebar status strip."""

import streamlit as st
import torch

from gca_viz import __version__
from gca_viz.device import resolve_device

st.set_page_config(page_title="GCA Explorer", layout="wide")

navigation = st.navigation([st.Page("pages/home.py", title="Home", default=True)])

with st.sidebar:
    st.caption(f"gca_viz {__version__} · torch {torch.__version__}")
    st.caption(f"Device: `{resolve_device('auto')}`")

navigation.run()
