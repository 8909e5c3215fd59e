"""A small browser-side companion of the Geometry page's plotly charts: clicks on points
(3-D ones included) come back to Python, and the scenes of one figure share one camera.

Why it exists (measured with Streamlit 1.67 and plotly.js 3.8): ``st.plotly_chart``'s
``on_select="rerun"`` reports plotly's ``plotly_selected`` event, which a 3-D scatter never
emits, so a click on a point of the sphere came back as an empty selection; and plotly has
no setting that links the cameras of two 3-D scenes. This component is JavaScript only
(``st.components.v2``, which runs in the page itself, not in an iframe): it finds the charts
by their Streamlit keys (``.st-key-<key> .js-plotly-plot``) and

* reports a click on a point as the trigger value ``clicked`` (the chart's key and the
  point's ``customdata``): plotly's own ``plotly_click`` on flat charts, and on 3-D scenes a
  press and release within 4 pixels over the point plotly last reported under the mouse
  (plotly's 3-D click fires only if the scene redraws while the button is down);
* copies a scene's camera to the figure's other scenes while it is dragged (plotly's
  ``plotly_relayouting`` events; the scenes' own ``setViewport``), and when the button is
  released stores it in every scene (``Plotly.relayout``, the global that the page's plotly
  bundle defines; plotly's own ``plotly_relayout`` at the end of a drag did not always
  come).

A chart that is drawn again keeps its listeners (they live on the chart's element, and the
current callbacks are looked up at event time); a new chart element is found by polling.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import streamlit as st

JS = r"""
export default function (component) {
  const { data, setTriggerValue } = component;
  const charts = (data && data.charts) || [];
  const cameraKey = (ev) => Object.keys(ev || {}).find((k) => /^scene\d*\.camera$/.test(k));
  const scenesOf = (gd) => Object.keys(gd._fullLayout || {}).filter((k) => /^scene\d*$/.test(k));
  // A camera looking straight along its up vector (a turntable dragged to the pole) has no
  // view matrix once written back as eye / up: plotly's next rotation then fails on a
  // singular matrix. Such a camera is moved a hair off the pole before it is copied.
  const safe = (camera) => {
    const e = camera.eye, c = camera.center || { x: 0, y: 0, z: 0 };
    const u = camera.up || { x: 0, y: 0, z: 1 };
    const d = [e.x - c.x, e.y - c.y, e.z - c.z];
    const cross = [d[1] * u.z - d[2] * u.y, d[2] * u.x - d[0] * u.z, d[0] * u.y - d[1] * u.x];
    const n = Math.hypot(...d);
    if (Math.hypot(...cross) > 1e-3 * n * Math.hypot(u.x, u.y, u.z)) return camera;
    return { ...camera, eye: { x: e.x + 0.01 * n, y: e.y + 0.01 * n, z: e.z } };
  };

  function attach(key) {
    const gd = document.querySelector(`.st-key-${key} .js-plotly-plot`);
    if (!gd || typeof gd.on !== "function") return;
    gd.__gcaBridge = { key, send: setTriggerValue };  // refreshed on every page run
    if (gd.__gcaAttached) return;
    gd.__gcaAttached = true;
    let hovered = null, down = null, syncing = false, lastSent = 0;
    const send = (point) => {
      if (!point || Date.now() - lastSent < 300) return;
      lastSent = Date.now();
      const cd = point.customdata;
      gd.__gcaBridge.send("clicked", {
        chart: gd.__gcaBridge.key,
        curve_number: point.curveNumber,
        point_index: point.pointNumber,
        customdata: cd && typeof cd === "object" && "length" in cd ? Array.from(cd) : cd,
      });
    };
    gd.on("plotly_hover", (e) => { hovered = e && e.points && e.points[0]; });
    gd.on("plotly_unhover", () => { hovered = null; });
    gd.on("plotly_click", (e) => send(e && e.points && e.points[0]));
    gd.addEventListener("pointerdown", (e) => { down = [e.clientX, e.clientY]; }, true);
    gd.addEventListener("pointerup", (e) => {
      const start = down;
      down = null;
      if (!start || !hovered || !scenesOf(gd).length) return;  // flat charts: plotly_click
      if (Math.hypot(e.clientX - start[0], e.clientY - start[1]) > 4) return;  // a drag
      send(hovered);
    }, true);
    // Cameras: while a scene is dragged, the others are moved directly (no relayout per
    // mouse move); when the button is released, one relayout stores every scene's camera.
    let dragged = null;  // {source, camera} of the drag in progress
    const store = (camera) => {
      if (!window.Plotly || !window.Plotly.relayout) return;
      const update = {};
      for (const s of scenesOf(gd)) update[`${s}.camera`] = safe(camera);
      syncing = true;
      Promise.resolve(window.Plotly.relayout(gd, update)).finally(() => { syncing = false; });
    };
    gd.on("plotly_relayouting", (ev) => {
      const key = cameraKey(ev);
      if (syncing || !key) return;
      const source = key.split(".")[0];
      dragged = { source, camera: ev[key] };
      for (const s of scenesOf(gd)) {
        const scene = s !== source && gd._fullLayout[s] && gd._fullLayout[s]._scene;
        if (scene && scene.setViewport) {
          scene.setViewport({ camera: safe(ev[key]), aspectratio: gd._fullLayout[s].aspectratio });
        }
      }
    });
    const released = () => {
      if (!gd.isConnected) window.removeEventListener("pointerup", released, true);
      else if (dragged) {  // where the dragged scene ended, a step past its last event
        const scene = gd._fullLayout[dragged.source] && gd._fullLayout[dragged.source]._scene;
        store(scene && scene.getCamera ? scene.getCamera() : dragged.camera);
      }
      dragged = null;
    };
    window.addEventListener("pointerup", released, true);  // also outside the chart
    gd.on("plotly_relayout", (ev) => {  // a drag plotly ended itself
      const key = cameraKey(ev);
      if (syncing || !key) return;
      dragged = null;
      store(ev[key]);
    });
  }

  const attachAll = () => charts.forEach(attach);
  attachAll();
  const timer = setInterval(attachAll, 500);
  return () => clearInterval(timer);
}
"""

_component = st.components.v2.component("gca_plotly_bridge", js=JS)


def plotly_bridge(
    charts: Sequence[str], key: str, on_click: Callable[[], None] | None = None
) -> Any:
    """Mount the bridge for the plotly charts drawn with the Streamlit keys ``charts``.

    ``on_click`` runs (before the page runs again) when a point is clicked; the click is then
    ``st.session_state[key]["clicked"]``: ``{"chart", "curve_number", "point_index",
    "customdata"}``, for that one run only."""
    return _component(
        key=key,
        data={"charts": list(charts)},
        on_clicked_change=on_click or (lambda: None),
        height=0,
    )


def last_click(key: str) -> Any:
    """The click the bridge ``key`` reported for this page run, or ``None``."""
    state = st.session_state.get(key)
    if state is None:
        return None
    try:
        return state["clicked"]
    except (KeyError, TypeError):
        return getattr(state, "clicked", None)
