"""Shared Streamlit helpers for the pages (UI only: no math lives here).

* Widgets whose value lives in the URL query string (``slider``, ``select``, ``number``,
  ``toggle``), so a copied link reproduces the view. Keys are namespaced per page
  (``"lab_eps"``); the key is both the session-state key and the query parameter.
* ``param_step``: the +/- step of a number input for a schema parameter.
* ``show_code``: the "Show the code" expander with the library function behind a figure.
* ``guard``: turns a ``ValueError`` from the library into an ``st.error`` (never a traceback).
* ``run_store``: the process-wide :class:`gca_viz.runs.RunStore`.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import streamlit as st

from gca_viz import demo
from gca_viz.registry import Param
from gca_viz.runs import RunStore, default_data_dir

T = TypeVar("T")


def _from_query(key: str, default: T, parse: Callable[[str], T]) -> T:
    raw = st.query_params.get(key)
    if raw is None:
        return default
    try:
        return parse(raw)
    except (TypeError, ValueError):
        return default


def _sync(key: str, value: Any) -> None:
    text = str(value)
    if st.query_params.get(key) != text:
        st.query_params[key] = text


def slider(
    label: str,
    key: str,
    low: float,
    high: float,
    default: float,
    step: float | None = None,
    **kwargs: Any,
) -> Any:
    """``st.slider`` whose value is read from and written to the query string."""
    kind = type(default)
    if key not in st.session_state:
        st.session_state[key] = _from_query(key, default, kind)
    # Clip into the current range before drawing: when the range changes (a half-step slider
    # whose maximum follows T), Streamlit would otherwise reset the value to the minimum.
    st.session_state[key] = kind(min(max(st.session_state[key], low), high))
    value = st.slider(label, kind(low), kind(high), step=step, key=key, **kwargs)
    _sync(key, value)
    return value


def select(label: str, key: str, options: Sequence[T], default: T, **kwargs: Any) -> T:
    """``st.selectbox`` over ``options`` backed by the query string."""
    if key not in st.session_state:
        names = {str(o): o for o in options}
        st.session_state[key] = names.get(str(st.query_params.get(key)), default)
    value: T = st.selectbox(label, options, key=key, **kwargs)
    _sync(key, value)
    return value


def select_slider(label: str, key: str, options: Sequence[T], default: T, **kwargs: Any) -> T:
    """``st.select_slider`` over ``options`` backed by the query string."""
    if key not in st.session_state:
        names = {str(o): o for o in options}
        st.session_state[key] = names.get(str(st.query_params.get(key)), default)
    value: T = st.select_slider(label, options, key=key, **kwargs)
    _sync(key, value)
    return value


def number(label: str, key: str, default: float, **kwargs: Any) -> Any:
    """``st.number_input`` backed by the query string (no bounds forced here: pages let the
    library validate, so a typed-in bad value gets a clear ``st.error``)."""
    if key not in st.session_state:
        st.session_state[key] = _from_query(key, default, type(default))
    value = st.number_input(label, key=key, **kwargs)
    _sync(key, value)
    return value


def toggle(label: str, key: str, default: bool = False, **kwargs: Any) -> bool:
    """``st.toggle`` backed by the query string."""
    if key not in st.session_state:
        st.session_state[key] = _from_query(key, default, lambda s: s == "True")
    value = bool(st.toggle(label, key=key, **kwargs))
    _sync(key, value)
    return value


def param_step(p: Param) -> float:
    """The +/- step of a number input for ``p``: a power of ten near a fiftieth of the
    parameter's slider range (``p.ui``, else its bounds, else 0 to 1)."""
    low, high = p.ui or (p.low or 0.0, p.high or 1.0)
    span = float(high) - float(low)
    return 10.0 ** math.floor(math.log10(span / 50)) if span > 0 else 0.01


def show_code(*functions: Callable[..., Any], label: str = "Show the code") -> None:
    """An expander with the source of the library functions behind a figure."""
    with st.expander(label):
        for fn in functions:
            st.caption(f"`{fn.__module__}.{fn.__qualname__}`")
            st.code(inspect.getsource(fn), language="python")


@contextmanager
def guard(what: str = "") -> Iterator[None]:
    """Show a library ``ValueError`` as ``st.error`` and stop the page run (no traceback)."""
    try:
        yield
    except ValueError as exc:
        st.error(f"{what}: {exc}" if what else str(exc))
        st.stop()


@st.cache_resource
def run_store() -> RunStore:
    """The run store of this app process (data directory ``./runs`` or ``$GCA_RUNS_DIR``),
    with the shipped demo runs imported on first use so there is something to look at."""
    store = RunStore(default_data_dir())
    demo.install(store)
    return store
