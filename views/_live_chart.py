"""A plotly chart that is updated in place and sent once: the charts a control changes.

Why it exists (measured with Streamlit 1.67, Chromium, N = 64 on Plan lab): the element id of
``st.plotly_chart`` is computed from its figure, so every changed figure is a new element and
the browser builds a new chart (a full ``newPlot``: 150-400 ms per heatmap on 2 cores), and
every page run sends every figure again, changed or not (a cell click re-sent 176 KB). This
component (``st.components.v2``, in the page itself, keyed by its Streamlit key alone):

* keeps one chart element per key and redraws it with ``Plotly.react`` (20-40 ms for a
  64 x 64 heatmap with its frames);
* sends a figure only when it differs from the one this session last sent under that key
  (a hash otherwise; the page keeps the figures it was sent, by hash, so a chart drawn again
  after a page switch needs nothing; one it lacks asks for it once, and the page runs again);
* sends arrays compactly (plotly's base64 typed arrays, float32 for float64 data);
* draws a small ``overlay`` (marked cells) over the figure without sending the figure again;
* reports a click on a point, as the trigger value ``clicked``: ``{"chart", "x", "y",
  "curve", "point", "customdata"}``.

It uses the ``Plotly`` global of Streamlit's own plotly bundle: a page that draws live charts
calls :func:`load_plotly` first (outside its fragments).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import streamlit as st

import ui
from gca_viz.lab import display_factor
from views._plotly_bridge import last_click as bridge_last_click

JS = r"""
const FIGS = (window.__gcaLiveFigs = window.__gcaLiveFigs || new Map());
const KEEP = 48;  // figures kept by hash in this page (oldest dropped first)

function remember(hash, fig) {
  FIGS.delete(hash);
  FIGS.set(hash, fig);
  while (FIGS.size > KEEP) FIGS.delete(FIGS.keys().next().value);
}

function overlayShapes(overlay) {
  const shapes = [];
  for (const c of (overlay && overlay.cells) || []) {
    const h = (c.size || 1) / 2;
    shapes.push({
      type: "rect", xref: c.xref || "x", yref: c.yref || "y",
      x0: c.x - h, x1: c.x + h, y0: c.y - h, y1: c.y + h,
      line: { color: c.color || "#111827", width: c.width || 2.5 },
      fillcolor: "rgba(0,0,0,0)", layer: "above",
    });
  }
  return shapes;
}

export default function (component) {
  const { data, parentElement, setTriggerValue } = component;
  if (!data) return;
  let gd = parentElement.querySelector(".gca-live");
  if (!gd) {
    gd = document.createElement("div");
    gd.className = "gca-live";
    parentElement.appendChild(gd);
  }
  gd.__gcaSend = setTriggerValue;  // the current callbacks, looked up at event time
  gd.__gcaKey = data.key;
  if (data.fig) remember(data.hash, data.fig);
  const fig = FIGS.get(data.hash);
  if (!fig) {  // this page never got (or dropped) the figure: ask once, the page runs again
    if (gd.__gcaAsked !== data.hash) {
      gd.__gcaAsked = data.hash;
      setTriggerValue("missing", data.hash);
    }
    return;
  }
  gd.__gcaHash = data.hash;
  const stamp = data.hash + JSON.stringify(data.overlay || {});
  const draw = () => {
    if (!window.Plotly) { setTimeout(draw, 30); return; }
    if (gd.__gcaDrawn === stamp) return;
    gd.__gcaDrawn = stamp;
    const layout = Object.assign({}, fig.layout);
    // The page's own type, as Streamlit's chart theme gives st.plotly_chart.
    const font = Object.assign({}, layout.font || {});
    if (!font.family) font.family = getComputedStyle(parentElement).fontFamily;
    layout.font = font;
    layout.shapes = (fig.layout.shapes || []).concat(overlayShapes(data.overlay));
    if (data.height) layout.height = data.height;
    // The width of the container, as st.plotly_chart does (plotly's own autosize can
    // measure the element before Streamlit's columns have their final width).
    if (!fig.layout.width && parentElement.clientWidth) layout.width = parentElement.clientWidth;
    let figure = { data: fig.data, layout, frames: fig.frames || [], config: data.config };
    const narrow = window.__gcaNarrow;  // its narrow layout, if any (views/_chart_fit.py)
    if (narrow) figure = narrow.prepare(gd, figure, layout.width || parentElement.clientWidth);
    gd.style.height = (figure.layout.height || 450) + "px";
    window.Plotly.react(gd, figure);
    if (narrow) narrow.drawn(gd);
    if (!gd.__gcaResize && window.ResizeObserver) {
      let width = parentElement.clientWidth;
      gd.__gcaResize = new ResizeObserver(() => {
        const now = parentElement.clientWidth;
        if (!now || Math.abs(now - width) < 2 || !gd._fullLayout) return;
        width = now;
        if (!(FIGS.get(gd.__gcaHash) || {}).layout?.width) {
          window.Plotly.relayout(gd, { width: now });
        }
      });
      gd.__gcaResize.observe(parentElement);
    }
    if (!gd.__gcaOn && typeof gd.on === "function") {
      gd.__gcaOn = true;
      let last = 0;
      gd.on("plotly_click", (e) => {
        const p = e && e.points && e.points[0];
        if (!p || Date.now() - last < 250) return;
        last = Date.now();
        const cd = p.customdata;
        gd.__gcaSend("clicked", {
          chart: gd.__gcaKey, x: p.x, y: p.y, curve: p.curveNumber, point: p.pointNumber,
          customdata: cd && typeof cd === "object" && "length" in cd ? Array.from(cd) : cd ?? null,
        });
      });
    }
  };
  draw();
}
"""

CSS = ".gca-live { width: 100%; }"

_component = st.components.v2.component("gca_live_chart", js=JS, css=CSS, isolate_styles=False)
_SENT = "_live_chart_sent"  # session state: {key: (hash, JSON) of the figure last sent}
CONFIG = {"displaylogo": False, "responsive": True, **ui.PLOTLY_CONFIG}


def _compact(node: Any) -> Any:
    """Float64 arrays as float32 (what plotly draws with anyway), in a figure's dict."""
    if isinstance(node, np.ndarray):
        return node.astype(np.float32) if node.dtype == np.float64 and node.size > 16 else node
    if isinstance(node, dict):
        return {k: _compact(v) for k, v in node.items()}
    if isinstance(node, list | tuple):
        return [_compact(v) for v in node]
    return node


def figure_json(fig: go.Figure) -> str:
    """The figure as plotly JSON with base64 typed arrays (float64 sent as float32)."""
    text: str = pio.json.to_json_plotly(_compact(fig.to_plotly_json()))
    return text


def load_plotly() -> None:
    """Make the page load Streamlit's plotly bundle (it defines the ``Plotly`` global the live
    charts draw with): one empty, hidden ``st.plotly_chart`` that never changes."""
    st.html("<style>.st-key-gca_plotly_loader{display:none}</style>")
    st.plotly_chart(go.Figure(), key="gca_plotly_loader", height=10)


def _resend(key: str) -> Callable[[], None]:
    def forget() -> None:
        st.session_state.get(_SENT, {}).pop(key, None)

    return forget


def live_chart(
    fig: go.Figure | str,
    key: str,
    *,
    on_click: Callable[[], None] | None = None,
    overlay: dict[str, Any] | None = None,
) -> Any:
    """Draw ``fig`` (a figure, or its :func:`figure_json`) under ``key``, in place of the
    chart last drawn there; ``overlay = {"cells": [{"x", "y", "size", "color"}, ...]}``
    outlines cells over it. In lecture mode a projector-sized copy (``ui.lecture_figure``)
    under its title as text that wraps. A click runs ``on_click`` (before the page runs
    again); :func:`last_click` then reads it."""
    if ui.lecture():
        figure = fig if isinstance(fig, go.Figure) else go.Figure(json.loads(fig))
        figure, title = ui.lecture_figure(figure)
        if title:
            st.html(f'<div class="gca-chart-title">{ui.title_html(title)}</div>')
        fig = figure
    spec = fig if isinstance(fig, str) else figure_json(fig)
    digest = hashlib.blake2b(spec.encode(), digest_size=12).hexdigest()
    sent = st.session_state.setdefault(_SENT, {})
    data: dict[str, Any] = {"key": key, "hash": digest, "overlay": overlay or {}}
    data["config"] = CONFIG
    if sent.get(key, ("",))[0] != digest:
        data["fig"] = json.loads(spec)
    sent[key] = (digest, spec)  # also what tests read: the chart's current figure
    return _component(
        key=key,
        data=data,
        on_clicked_change=on_click or (lambda: None),
        on_missing_change=_resend(key),
    )


def marked_cell(
    cell: tuple[int, int], shape: tuple[int, int], max_size: int, color: str = "#e11d48"
) -> dict[str, Any]:
    """The overlay that outlines ``cell = (i, j)`` of an ``shape`` matrix drawn block-averaged
    to at most ``max_size`` a side (the block holding the cell, at the block's size)."""
    f = display_factor(shape, max_size)
    i, j = (int(v) // f * f for v in cell)
    return {"cells": [{"x": j, "y": i, "size": f, "color": color}]}


def clicked_cell(key: str, shape: tuple[int, int], curve: int = 0) -> tuple[int, int] | None:
    """The cell ``(i, j)`` a click on the heatmap (trace ``curve``) of live chart ``key``
    points at in this page run, or ``None``."""
    click = last_click(key)
    if not click or click.get("curve") != curve:
        return None
    try:
        i, j = round(float(click["y"])), round(float(click["x"]))
    except (KeyError, TypeError, ValueError):
        return None
    return (i, j) if 0 <= i < shape[0] and 0 <= j < shape[1] else None


def last_click(key: str) -> dict[str, Any] | None:
    """The click the live chart ``key`` reported for this page run, or ``None`` (read as
    the Geometry page's click bridge reads its clicks)."""
    value = bridge_last_click(key)
    return value if isinstance(value, dict) else None
