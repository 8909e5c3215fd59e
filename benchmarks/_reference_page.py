"""The reference page of bench_browser.py: one slider and one small plotly chart whose data
depends on it, nothing else. What Streamlit and Plotly cost for a control change on this
machine, measured in the same run as the app's pages."""

import numpy as np
import plotly.graph_objects as go
import streamlit as st

k = st.slider("k", 1, 20, 5, key="ref_k")
x = np.linspace(0.0, 1.0, 64)
st.plotly_chart(go.Figure(go.Scatter(x=x, y=np.sin(2 * np.pi * k * x))), key="ref_chart")
