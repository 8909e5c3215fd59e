"""Reading plotly figures that AppTest exposes as JSON (``proto.spec``).

Plotly sends numpy arrays as base64 typed arrays ``{"dtype", "bdata", "shape"}``
(plotly 6 and later); these helpers turn them back into numpy arrays for the page tests.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np


def decode(value: Any) -> Any:
    """``value`` with every typed array (at any depth) replaced by a numpy array."""
    if isinstance(value, dict) and "bdata" in value and "dtype" in value:
        arr = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        if value.get("shape"):
            arr = arr.reshape([int(s) for s in str(value["shape"]).split(",")])
        return arr
    if isinstance(value, dict):
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


def array(value: Any) -> np.ndarray:
    """One figure array (typed or a plain list) as a numpy array."""
    return np.asarray(decode(value))


LIVE_SENT = "_live_chart_sent"  # views/_live_chart.py: {key: (hash, JSON)} in session state


def live_figures(at: Any) -> dict[str, dict[str, Any]]:
    """The figures an AppTest page drew with ``views._live_chart.live_chart``, decoded, by
    chart key (the component sends a figure only when it changed; the page keeps the last)."""
    import json

    try:
        sent = at.session_state[LIVE_SENT]
    except KeyError:
        return {}
    return {key: decode(json.loads(spec)) for key, (_, spec) in sent.items()}


LOADER_KEY = "gca_plotly_loader"  # views/_live_chart.py's hidden, empty plotly figure


def chart_key(proto_id: str) -> str:
    """The key a chart was drawn with, from its element id (``$$ID-<hash>-<key>``)."""
    return proto_id.rsplit("-", 1)[-1]


def page_figures(at: Any) -> dict[str, dict[str, Any]]:
    """Every figure an AppTest page drew, decoded, by the key it was drawn with:
    ``st.plotly_chart``'s (the hidden plotly loader of views/_live_chart left out) and the
    live charts'."""
    import json

    out = {}
    for chart in at.get("plotly_chart"):
        key = chart_key(chart.proto.id)
        if key != LOADER_KEY:
            out[key] = decode(json.loads(chart.proto.spec))
    out.update(live_figures(at))
    return out


def title_of(spec: dict[str, Any]) -> str:
    """A figure's title text ("" if it has none)."""
    title = spec["layout"].get("title", {})
    return str(title.get("text", "")) if isinstance(title, dict) else str(title)


def colour_range(colorbar_title: str) -> tuple[float, float]:
    """The range a half-step player's colour bar names under its title
    (``"P<br><sub>lo … hi</sub>"``, :func:`gca_viz.figures.player.half_step_player`)."""
    lo, hi = colorbar_title.split("<sub>")[1].removesuffix("</sub>").split(" … ")
    return float(lo), float(hi)
