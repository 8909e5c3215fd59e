"""The browser's Back button goes back to the page before, on every page of the app.

Streamlit writes a page's settings into its URL (its query string) with
``history.pushState``, one new history entry per write: a first visit to the Story left ten
entries, three pages 47, and Back only walked through the settings of the page shown (the app
wrote its own settings back over them), so Back seemed to do nothing. This component is
JavaScript only (``st.components.v2``, which runs in the page itself, not in an iframe):
once per browser tab it makes a ``pushState`` that keeps the page's path (a settings write)
replace the current entry instead, so the history holds one entry per page visited and Back
returns to the page before, with the settings it was left with (Streamlit follows a Back
to another path). A change of page still adds an entry. The router mounts it in the
sidebar, where its empty element takes no room.
"""

from __future__ import annotations

import streamlit as st

JS = r"""
export default function () {
  if (window.__gcaHistory) return;  // once per tab, whatever the page runs
  window.__gcaHistory = true;
  const push = window.history.pushState.bind(window.history);
  window.history.pushState = function (state, title, url) {
    let same = false;
    try {
      const path = url != null && new URL(url, window.location.href).pathname;
      same = path === window.location.pathname;
    } catch (e) {
      same = false;
    }
    return same ? window.history.replaceState(state, title, url) : push(state, title, url);
  };
}
"""

_component = st.components.v2.component("gca_history", js=JS)
KEY = "gca_history"  # its element's key


def history() -> None:
    """Mount the history rule (call it once per page run; it is set once per tab)."""
    _component(key=KEY, height=0)
