"""The app's projection worker, shared by every session of the server process, and the
warm-up of the projection engines that starts on it with the server's first page run
(app.py), so the first UMAP or t-SNE a user asks for does not pay their start-up cost
(numba's compile for UMAP, see :mod:`gca_viz.embed`). ``GCA_WARM_UP=0`` turns it off."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import streamlit as st

from gca_viz import embed

WARM_UP_ENV = "GCA_WARM_UP"
"""Environment variable: ``0`` (or ``false``, ``no``, ``off``) starts no warm-up."""

WARM_UP: Callable[[Callable[[str], None]], Any] = embed.warm_up
"""The warm-up's work, ``fn(report)`` (a test puts a slower one here, to watch it run)."""


@st.cache_resource(show_spinner=False)
def projection_jobs() -> embed.ProjectionJobs:
    """UMAP and t-SNE run here, one at a time, off the page's thread; results are cached."""
    return embed.ProjectionJobs()


def warm_up_enabled() -> bool:
    """Whether ``GCA_WARM_UP`` allows the warm-up (it does unless set to an off value)."""
    return os.environ.get(WARM_UP_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


@st.cache_resource(show_spinner=False)
def start_warm_up() -> bool:
    """Start warming the projection engines on :func:`projection_jobs`'s worker, once per
    server process: app.py calls this on every page run and the cache makes every call but
    the first free. Returns whether a warm-up was started (``False`` with ``GCA_WARM_UP=0``)."""
    if not warm_up_enabled():
        return False
    # pandas before the worker starts: scikit-learn imports it on the worker while a page's
    # table imports it on the script's thread, and two threads importing a package with
    # import cycles can get it half-initialised ("partially initialized module 'pandas'
    # has no attribute 'Series'", seen on a fresh process's first page run)
    import pandas  # noqa: F401

    projection_jobs().warm_up(WARM_UP)
    return True


def warming(jobs: embed.ProjectionJobs) -> str | None:
    """What the warm-up is doing and for how long, in words, while it is queued or
    running; ``None`` otherwise (finished, failed or never started)."""
    status = jobs.warm_up_status()
    if status.state == "pending":
        return "about to start"
    if status.state == "running":
        return f"{status.phase or 'warming up'}; {status.seconds:.0f} s so far"
    return None
