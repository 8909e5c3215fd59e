"""Plotly figure builders: arrays in, ``plotly.graph_objects.Figure`` out (no Streamlit).

* :mod:`gca_viz.figures.plans`: heatmaps of costs, kernels and plans with their marginals,
  the KL-over-half-steps curve, loss bars, ε and iteration sweeps.
* :mod:`gca_viz.figures.player`: the half-steps played in the browser (the play controls
  every animated figure shares are in ``_controls``).
* :mod:`gca_viz.figures.mechanism`: where GCA-UOT's mass and gradient go (Noisy views).
* :mod:`gca_viz.figures.training`: metric curves of runs with live-change markers.
* :mod:`gca_viz.figures.geometry`: embeddings on the circle or sphere, 2-D projections.
* :mod:`gca_viz.figures.alignment`: the alignment-uniformity plane across runs.

Pass numpy arrays or torch tensors (any device; a tensor that requires grad is detached);
plans above 256 x 256 are downsampled for display (:func:`gca_viz.lab.downsample`).

Outside the app, save a figure with :func:`write_html` (a standalone page; the animated
ones open on their first frame instead of playing), or show it in a notebook with
``fig.show(auto_play=False)``. PNG export (``fig.write_image``) needs the ``kaleido``
package, which the requirements do not install.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import plotly.graph_objects as go

__all__ = ["write_html"]


def write_html(fig: go.Figure, path: str | Path, **kwargs: Any) -> Path:
    """Save ``fig`` as a standalone HTML page at ``path`` (plotly.js included, so it opens
    offline), with ``auto_play=False``: plotly's default plays an animated figure (the
    half-step player, the Geometry explorer) through all its frames on opening, which shows
    a blank plan while it plays; here it opens on its first frame and ▶ plays it.
    ``kwargs`` go to ``fig.write_html`` (they may override ``auto_play``). Returns the
    path."""
    out = Path(path)
    fig.write_html(out, **{"auto_play": False, "include_plotlyjs": True, **kwargs})
    return out
