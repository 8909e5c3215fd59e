"""What a keyboard and a screen reader get from the app's plotly charts.

Every chart is named: a screen reader heard a chart as its tick labels strung together
("img: 0 20 40 60 60 50 40 ..."); a still chart is now one image named by its title
(``role="img"``, ``aria-label="Chart: <title>"``, kept up to date as the chart redraws).

The animations (the half-step player, the Geometry explorer's snapshots) get a keyboard:
plotly draws their ▶ / ❚❚ buttons and frame slider in SVG, which a keyboard cannot reach
(their elements have ``tabIndex = -1``), so a reader without a mouse could see no
half-step but the first. A chart with frames and a frame slider is one stop of the Tab
order (``role="group"``, named by its title and the keys it takes, with a visible focus
ring):

* ← / → (↓ / ↑, and a clicker's PageUp / PageDown) step one frame back or on, Home and
  End go to the first and the last:
  the frame the slider's step would show (``Plotly.animate`` with the step's own args);
* Space or Enter plays from the current frame, or pauses a play (the ▶ / ❚❚ buttons' own
  args);
* a polite live region says which frame is shown (the slider's label, ``k = 3``; after a
  play, where it stopped) and the
  frame's words on the chart, if any (the player's marginals: "rows on target · columns off
  by up to 12.2%").

This component (``st.components.v2``, JavaScript in the page itself) finds the charts
(``.js-plotly-plot`` elements, polled as charts come and go); it is installed once per
browser window: the router (``app.py``) calls :func:`chart_access` on every page run.
"""

from __future__ import annotations

import streamlit as st

JS = r"""
export default function () {
  if (window.__gcaChartAccess) return;
  window.__gcaChartAccess = true;
  const plain = (text) => String(text || "").replace(/<[^>]*>/g, " ").replace(/\s+/g, " ").trim();

  function attach(gd) {
    const fl = gd._fullLayout;
    const slider = fl && fl.sliders && fl.sliders[0];
    if (!slider || !slider.steps || !slider.steps.length || !window.Plotly) return;
    if (!((gd._transitionData || {})._frames || []).length) return;
    gd.__gcaKeys = true;
    gd.tabIndex = 0;
    gd.setAttribute("role", "group");
    const live = document.createElement("div");
    live.className = "gca-sr-only";
    live.setAttribute("aria-live", "polite");
    gd.appendChild(live);
    let current = Number(slider.active) || 0;
    let playing = false;
    const steps = () => gd._fullLayout.sliders[0].steps;
    const name = () => {
      const title = plain(((gd._fullLayout.title || {}).text) || "Animation");
      return `${title}: ${steps().length} frames. Left and right arrow keys step through ` +
        "them, Home and End go to the first and the last, Space plays and pauses.";
    };
    gd.__gcaName = name;  // (read again as the chart redraws: T changes the frames)
    gd.setAttribute("aria-label", name());
    const words = (frameName) => {
      const frame = (gd._transitionData._frames || []).find((f) => f.name === frameName);
      const texts = ((frame && frame.data) || [])
        .filter((t) => t && t.mode === "text" && t.text)
        .map((t) => plain([].concat(t.text).join(" ")));
      return texts.join(". ");
    };
    const say = (i) => {
      const step = steps()[i];
      const prefix = ((gd._fullLayout.sliders[0].currentvalue || {}).prefix) || "";
      const frameName = step.args && step.args[0] && step.args[0][0];
      live.textContent = [plain(prefix + step.label), words(frameName)].filter(Boolean).join(": ");
    };
    gd.on("plotly_animatingframe", (e) => {
      const i = steps().findIndex((s) => s.args && s.args[0] && s.args[0][0] === e.name);
      if (i >= 0) current = i;
    });
    gd.on("plotly_animated", () => {  // a play's end: say where it stopped
      if (playing) say(current);
      playing = false;
    });
    gd.on("plotly_animationinterrupted", () => { playing = false; });
    gd.on("plotly_sliderchange", (e) => {
      if (e && e.step && typeof e.step._index === "number") current = e.step._index;
    });
    // (an animation that another interrupts rejects its promise: a pause is no error)
    const animate = (...args) =>
      Promise.resolve(window.Plotly.animate(gd, ...args)).catch(() => {});
    const show = (i) => {
      const all = steps();
      current = Math.max(0, Math.min(all.length - 1, i));
      playing = false;
      animate(...all[current].args);
      say(current);
    };
    gd.addEventListener("keydown", (e) => {
      const last = steps().length - 1;
      const buttons = (gd._fullLayout.updatemenus || [])[0];
      // (a presentation clicker sends PageDown / PageUp for next / back)
      const moves = {
        ArrowRight: 1, ArrowUp: 1, PageDown: 1, ArrowLeft: -1, ArrowDown: -1, PageUp: -1,
      };
      if (e.key in moves) show(current + moves[e.key]);
      else if (e.key === "Home") show(0);
      else if (e.key === "End") show(last);
      else if ((e.key === " " || e.key === "Enter") && buttons && buttons.buttons) {
        const [play, pause] = buttons.buttons;
        if (playing) {
          animate(...pause.args);
          playing = false;
          say(current);
        } else {
          if (current >= last) {  // at the end: from the start again
            const names = steps().map((s) => s.args[0][0]);
            animate(names, Object.assign({}, play.args[1], { fromcurrent: false }));
          } else {
            animate(...play.args);
          }
          playing = true;
          live.textContent = "Playing";
        }
      } else return;
      e.preventDefault();
    });
  }

  const scan = () => {
    document.querySelectorAll(".js-plotly-plot").forEach((gd) => {
      if (!gd._fullLayout) return;
      if (gd.closest(".st-key-gca_plotly_loader")) {  // the hidden, empty plotly loader
        gd.setAttribute("aria-hidden", "true");
        return;
      }
      if (!gd.__gcaKeys) attach(gd);
      if (gd.__gcaKeys) {
        const name = gd.__gcaName();
        if (gd.getAttribute("aria-label") !== name) gd.setAttribute("aria-label", name);
        return;
      }
      // a still chart: one image named by its title, not its ticks strung together
      const title = plain(((gd._fullLayout.title || {}).text) || "");
      const label = title ? `Chart: ${title}` : "Chart";
      if (gd.getAttribute("aria-label") !== label) {
        gd.setAttribute("role", "img");
        gd.setAttribute("aria-label", label);
      }
    });
  };
  scan();
  setInterval(scan, 700);
}
"""

CSS = """
/* A player given focus scrolls clear of the top bar, and in lecture mode of Plan lab's
   pinned panel under it (it hid the plan's top rows and the KL curve's INCE line). */
.js-plotly-plot[role="group"] { scroll-margin-top: 70px; }
@media (min-height: 650px) {
  body:has([class*="st-key-lecture_controls_"][class*="_pinned"]) .js-plotly-plot[role="group"] {
    scroll-margin-top: 260px;
  }
}
.js-plotly-plot[role="group"]:focus { outline: none; }
.js-plotly-plot[role="group"]:focus-visible { outline: 3px solid #1d4ed8; outline-offset: 3px; }
.gca-sr-only {
  position: absolute; width: 1px; height: 1px; margin: -1px; padding: 0; border: 0;
  overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap;
}
"""

KEY = "gca_chart_access"
"""The component's key (an empty element in the sidebar)."""
_component = st.components.v2.component("gca_chart_access", js=JS, css=CSS, isolate_styles=False)


def chart_access() -> None:
    """Name every chart and give the animated ones their keyboard (see the module
    docstring): once per page run, by the router."""
    _component(key=KEY, data={})
