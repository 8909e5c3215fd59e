"""Charts take their narrow layout where they are drawn narrow, on every page of the app.

A figure built by ``gca_viz`` may carry a second layout for charts narrower than some width
(``layout.meta["narrow"]``, :func:`gca_viz.figures._narrow.when_narrow`): the half-step
player stacks its KL curve under the plan where, side by side at 470 px (an 800 px window
beside the sidebar), the colour bar covered the curve's axis and the labels ran together.
The width a chart gets is known only in the browser, so this component (JavaScript in the
page itself, ``st.components.v2``, installed once per window by the router) looks at the
charts as they come, redraw and resize, and applies the narrow layout
(``Plotly.relayout`` and ``Plotly.restyle``) when a chart is narrower than its ``below``,
putting the figure's own values back when it is not. A chart the server sends again (a
control changed) starts from the figure's own layout and is looked at afresh; a live chart
(``views/_live_chart.py``) asks ``window.__gcaNarrow.prepare`` for the layout before it
draws, so a redraw (a clicked cell's outline) does not flash the wide layout first.
"""

from __future__ import annotations

import streamlit as st

JS = r"""
export default function () {
  if (window.__gcaNarrow) return;
  // "annotations[2].y" -> ["annotations", 2, "y"]
  const parts = (path) => path.split(".").flatMap((p) => {
    const m = p.match(/^([^\[]+)\[(\d+)\]$/);
    return m ? [m[1], Number(m[2])] : [p];
  });
  const read = (root, path) => parts(path).reduce((o, k) => (o == null ? undefined : o[k]), root);
  const copy = (v) => (v === undefined ? null : JSON.parse(JSON.stringify(v)));
  // a copy of `root` with `path` set, sharing everything off the path (a plan's z included)
  const put = (root, keys, value) => {
    if (!keys.length) return value;
    const out = Array.isArray(root) ? root.slice() : Object.assign({}, root || {});
    out[keys[0]] = put(out[keys[0]], keys.slice(1), value);
    return out;
  };
  const spec = (layout) => layout && layout.meta && layout.meta.narrow;
  // the figure's own values of what its narrow layout changes
  const own = (narrow, layout, data) => ({
    layout: Object.fromEntries(Object.keys(narrow.layout).map((k) => [k, copy(read(layout, k))])),
    traces: Object.fromEntries(Object.entries(narrow.traces || {}).map(([i, props]) => [
      i, Object.fromEntries(Object.keys(props).map((k) => [k, copy(read(data[i], k))])),
    ])),
  });
  const fitHeight = (gd) => {  // a chart whose element has a set height (views/_live_chart.py)
    if (gd.style.height && gd._fullLayout) gd.style.height = gd._fullLayout.height + "px";
  };

  const api = (window.__gcaNarrow = {
    // `figure` as a chart `width` px wide draws it: the narrow layout applied below its
    // width; `gd` remembers the figure's own values (a live chart calls this before drawing)
    prepare(gd, figure, width) {
      const narrow = spec(figure.layout);
      gd.__gcaFitPending = narrow ? own(narrow, figure.layout, figure.data) : null;
      if (!narrow || !(width < narrow.below)) return figure;
      let layout = figure.layout;
      for (const [k, v] of Object.entries(narrow.layout)) layout = put(layout, parts(k), v);
      let data = figure.data;
      for (const [i, props] of Object.entries(narrow.traces || {})) {
        for (const [k, v] of Object.entries(props)) data = put(data, [Number(i), ...parts(k)], v);
      }
      gd.__gcaFitPendingNarrow = true;
      return Object.assign({}, figure, { layout, data });
    },
    // after drawing a prepared figure: what it is now (no second layout pass)
    drawn(gd) {
      if (!gd.__gcaFitPending) return;
      gd.__gcaFitLayout = gd.layout;
      gd.__gcaFitWide = gd.__gcaFitPending;
      gd.__gcaFitNarrow = !!gd.__gcaFitPendingNarrow;
      gd.__gcaFitPending = null;
      gd.__gcaFitPendingNarrow = false;
      fitHeight(gd);
      gd.setAttribute("data-gca-layout", gd.__gcaFitNarrow ? "narrow" : "wide");
    },
  });

  function fit(gd) {
    const layout = gd.layout;
    const narrow = spec(layout);
    if (!narrow || !window.Plotly || !gd._fullLayout || gd.__gcaFitBusy) return;
    if (gd.__gcaFitLayout !== layout) {  // a figure the server sent: its own layout, wide
      gd.__gcaFitLayout = layout;
      gd.__gcaFitNarrow = false;
      gd.__gcaFitWide = own(narrow, layout, gd.data);
    }
    const want = gd.getBoundingClientRect().width < narrow.below;
    if (want === gd.__gcaFitNarrow) return;
    const to = want ? narrow : gd.__gcaFitWide;
    gd.__gcaFitBusy = true;
    gd.__gcaFitNarrow = want;
    let done = Promise.resolve();
    for (const [i, props] of Object.entries(to.traces || {})) {
      const update = Object.fromEntries(Object.entries(props).map(([k, v]) => [k, [v]]));
      done = done.then(() => window.Plotly.restyle(gd, update, [Number(i)]));
    }
    done = done.then(() => window.Plotly.relayout(gd, to.layout));
    done.catch(() => {}).finally(() => {
      gd.__gcaFitBusy = false;
      fitHeight(gd);
      gd.setAttribute("data-gca-layout", want ? "narrow" : "wide");
    });
  }

  const scan = () => document.querySelectorAll(".js-plotly-plot").forEach(fit);
  scan();
  setInterval(scan, 400);
  window.addEventListener("resize", scan);
}
"""

KEY = "gca_chart_fit"
"""The component's key (an empty element in the sidebar)."""
_component = st.components.v2.component("gca_chart_fit", js=JS)


def chart_fit() -> None:
    """Apply the charts' narrow layouts (see the module docstring): once per page run, by the
    router."""
    _component(key=KEY, data={})
