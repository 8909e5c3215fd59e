"""Plotly figure builders: arrays in, ``plotly.graph_objects.Figure`` out (no Streamlit).

* :mod:`gca_viz.figures.plans`: heatmaps of costs, kernels and plans with their marginals,
  the KL-over-half-steps curve, loss bars, ε and iteration sweeps.
* :mod:`gca_viz.figures.player`: the half-steps played in the browser, and the play
  controls of every animated figure.
* :mod:`gca_viz.figures.mechanism`: where GCA-UOT's mass and gradient go (Noisy views).
* :mod:`gca_viz.figures.training`: metric curves of runs with live-change markers.
* :mod:`gca_viz.figures.geometry`: embeddings on the circle or sphere, 2-D projections.
* :mod:`gca_viz.figures.alignment`: the alignment-uniformity plane across runs.

Pass numpy arrays (plotly sends them as typed arrays); plans above 256 x 256 are
downsampled for display (:func:`gca_viz.lab.downsample`).
"""
