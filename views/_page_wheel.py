"""The mouse wheel over a 3-D chart scrolls the page, on every page of the app.

plotly.js lets a 3-D scene's camera take the wheel's events even when zooming by wheel is
off (:data:`ui.PLOTLY_CONFIG`): it cancels them, so a reader scrolling down the Train page
stopped dead with the mouse over the run's sphere, and on the Geometry page the sphere
filled most of a screen. This component is JavaScript only (``st.components.v2``, which runs
in the page itself, not in an iframe). It listens once per browser tab, on the document and
before plotly (the capture phase), for wheel events over a 3-D scene (plotly's
``.gl-container``), and scrolls the nearest scrolling container (Streamlit's main area) by
the wheel's amount. Elsewhere, flat charts and a 3-D chart's legend or margins included, the
browser scrolls the page by itself and is left alone; Ctrl + wheel (the browser's zoom) too.
The router mounts it in the sidebar, where its empty element takes no room.
"""

from __future__ import annotations

import streamlit as st

JS = r"""
export default function () {
  if (window.__gcaPageWheel) return;  // one listener per tab, whatever the page runs
  window.__gcaPageWheel = true;
  document.addEventListener("wheel", (ev) => {
    // Only over a scene itself (plotly's .gl-container): over the same chart's legend,
    // title or margins the browser scrolls the page by itself, and this scrolled it again.
    const scene = ev.ctrlKey || !ev.target.closest ? null : ev.target.closest(".gl-container");
    const gd = scene && scene.closest(".js-plotly-plot");
    if (!gd) return;
    let box = gd.parentElement;
    while (box && !(box.scrollHeight > box.clientHeight &&
                    /(auto|scroll)/.test(getComputedStyle(box).overflowY))) {
      box = box.parentElement;
    }
    const unit = ev.deltaMode === 1 ? 16 : ev.deltaMode === 2 ? window.innerHeight : 1;
    (box || document.scrollingElement).scrollBy(0, ev.deltaY * unit);
  }, { capture: true, passive: true });
}
"""

_component = st.components.v2.component("gca_page_wheel", js=JS)
KEY = "gca_page_wheel"  # its element's key (the lecture tests tell it from page controls)


def page_wheel() -> None:
    """Mount the wheel forwarding (call it once per page run; it listens once per tab)."""
    _component(key=KEY, height=0)
