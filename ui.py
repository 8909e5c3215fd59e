"""Shared Streamlit helpers for the pages (UI only: no math lives here).

* Widgets whose value lives in the URL query string (``slider``, ``select``,
  ``select_slider``, ``number``, ``toggle``, ``checkbox``, ``multiselect``), so a copied link
  reproduces the view, and which keep their value while a page run skips them. Keys are
  namespaced per page (``"lab_eps"``); the key is both the session-state key and the query
  parameter.
* ``param_step``: the +/- step of a number input for a schema parameter.
* ``show_code``: the "Show the code" expander with the library function behind a figure.
* ``guard``: turns a ``ValueError`` from the library into an ``st.error`` (never a traceback).
* ``run_store``: the process-wide :class:`gca_viz.runs.RunStore`; a store that cannot be
  opened is an ``st.error`` naming the directory, the problem and the fix, never a traceback.
"""

from __future__ import annotations

import inspect
import math
import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import streamlit as st

from gca_viz import demo
from gca_viz.registry import Param
from gca_viz.runs import (
    DATA_DIR_ENV,
    RunInfo,
    RunStore,
    StoreError,
    default_data_dir,
    default_max_concurrent,
)

T = TypeVar("T")


_KEEP: dict[str, Any] = {"persist_state": "page"}
"""Keep a widget's value while a page run skips it (an early ``st.stop`` or an error box in
its place): without it the browser brought the widget back at its default (ε = 0, λ at its
minimum) instead of the value the URL still held."""


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
    value = st.slider(label, kind(low), kind(high), step=step, key=key, **_KEEP, **kwargs)
    _sync(key, value)
    return value


def select(label: str, key: str, options: Sequence[T], default: T, **kwargs: Any) -> T:
    """``st.selectbox`` over ``options`` backed by the query string."""
    return _choice(st.selectbox, label, key, options, default, **kwargs)


def select_slider(label: str, key: str, options: Sequence[T], default: T, **kwargs: Any) -> T:
    """``st.select_slider`` over ``options`` backed by the query string."""
    return _choice(st.select_slider, label, key, options, default, **kwargs)


def _choice(
    widget: Callable[..., Any],
    label: str,
    key: str,
    options: Sequence[T],
    default: T,
    **kwargs: Any,
) -> T:
    """A one-of-``options`` widget backed by the query string (the option whose ``str`` the
    URL holds, else ``default``)."""
    if key not in st.session_state:
        names = {str(o): o for o in options}
        st.session_state[key] = names.get(str(st.query_params.get(key)), default)
    value: T = widget(label, options, key=key, **_KEEP, **kwargs)
    _sync(key, value)
    return value


def number(label: str, key: str, default: float, **kwargs: Any) -> Any:
    """``st.number_input`` backed by the query string (no bounds forced here: pages let the
    library validate, so a typed-in bad value gets a clear ``st.error``)."""
    if key not in st.session_state:
        st.session_state[key] = _from_query(key, default, type(default))
    value = st.number_input(label, key=key, **_KEEP, **kwargs)
    _sync(key, value)
    return value


def toggle(label: str, key: str, default: bool = False, **kwargs: Any) -> bool:
    """``st.toggle`` backed by the query string."""
    return _switch(st.toggle, label, key, default, **kwargs)


def _switch(widget: Callable[..., Any], label: str, key: str, default: bool, **kwargs: Any) -> bool:
    """A two-state widget (``st.toggle``, ``st.checkbox``) backed by the query string."""
    if key not in st.session_state:
        st.session_state[key] = _from_query(key, default, lambda s: s == "True")
    value = bool(widget(label, key=key, **_KEEP, **kwargs))
    _sync(key, value)
    return value


def checkbox(label: str, key: str, default: bool = False, **kwargs: Any) -> bool:
    """``st.checkbox`` backed by the query string."""
    return _switch(st.checkbox, label, key, default, **kwargs)


def multiselect(label: str, key: str, options: list[Any], default: list[Any], **kw: Any) -> Any:
    """``st.multiselect`` backed by the query string (comma-separated values); choices that
    are no longer options (a deleted run) are dropped.

    Without the "Select all" / "Select N matches" row (``select_all=False`` unless given):
    Streamlit lists it first and Enter commits the first row, so typing a name and pressing
    Enter selected every match instead of the best one."""
    kw.setdefault("select_all", False)
    by_name = {str(o): o for o in options}
    if key not in st.session_state:
        raw = st.query_params.get(key)
        picked = [by_name[s] for s in raw.split(",") if s in by_name] if raw is not None else None
        st.session_state[key] = default if picked is None else picked
    st.session_state[key] = [o for o in st.session_state[key] if o in options]
    values = st.multiselect(label, options, key=key, **_KEEP, **kw)
    _sync(key, ",".join(str(v) for v in values))
    return values


def param_step(p: Param) -> float:
    """The +/- step of a number input for ``p``: a power of ten near a fiftieth of the
    parameter's slider range (``p.ui``, else its bounds, else 0 to 1)."""
    low, high = p.ui or (p.low or 0.0, p.high or 1.0)
    span = float(high) - float(low)
    return 10.0 ** math.floor(math.log10(span / 50)) if span > 0 else 0.01


def param_slider(p: Param, key: str, step: float = 0.05, **kwargs: Any) -> Any:
    """:func:`slider` for a float parameter: labelled ``"symbol: description"``, over its
    slider range (``p.ui``, else its bounds, else 0 to 1), starting at its default."""
    low, high = p.ui or (p.low or 0.0, p.high or 1.0)
    label = f"{p.symbol}: {p.description}" if p.symbol else p.description
    default = float(p.default or 0.0)
    return slider(label, key, float(low), float(high), default, step=step, **kwargs)


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


class UnavailableStore(RunStore):
    """What :func:`run_store` returns when the store cannot be opened: it holds no runs, so
    pages that only offer runs as an option (the plan lab, the story) keep working, and
    anything that needs a run or writes (``get``, ``launch``, ``stop``, ``delete``, ...)
    raises :class:`StoreError` with :attr:`reason`, which the pages show as an error."""

    def __init__(self, data_dir: Path, reason: str) -> None:
        self.dir = Path(data_dir)
        self.db_path = self.dir / "runs.db"
        self.reason = reason
        self.heartbeat_timeout = 30.0
        self.busy_timeout = 0.0
        self.max_concurrent = default_max_concurrent()

    def close(self) -> None:
        pass

    @contextmanager
    def _db(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        raise StoreError(self.reason)
        yield  # unreachable: makes this a generator for contextmanager

    def reconcile(self) -> list[int]:
        return []

    def schedule(self) -> list[int]:
        return []

    def list_runs(self, status: str | None = None, method: str | None = None) -> list[RunInfo]:
        return []

    def metrics(self, run_id: int, names: list[str] | None = None) -> dict[str, np.ndarray]:
        return {}

    def latest_metrics(self, run_id: int) -> dict[str, tuple[int, float]]:
        return {}

    def snapshots(self, run_id: int, kind: str) -> list[tuple[int, Path]]:
        return []

    def applied_changes(self, run_id: int) -> list[dict[str, Any]]:
        return []


def store_problem(data_dir: Path, exc: BaseException) -> str:
    """The message shown when the run store in ``data_dir`` cannot be opened: the directory,
    the problem and what to do about it."""
    where = data_dir.absolute()
    if isinstance(exc, StoreError):  # "run store DIR: why (SQLite: ...)"
        why = str(exc).removeprefix(f"run store {data_dir}: ")
    elif isinstance(exc, FileExistsError | NotADirectoryError):
        bad = Path(exc.filename) if exc.filename else data_dir
        why = f"{bad} is a file, not a directory"
    elif isinstance(exc, OSError):
        why = f"{exc.strerror or exc} ({exc.filename or where})"
    else:
        why = str(exc)
    if data_dir.is_dir() and not os.access(data_dir, os.W_OK):
        why += "; the directory is not writable (a read-only file system, or its permissions)"
    env = os.environ.get(DATA_DIR_ENV)
    now = f"now {env!r}" if env else "not set, so ./runs"
    return (
        f"The run store in {where} cannot be opened: {why}. Runs cannot be listed, launched "
        f"or shown until this is fixed; the pages that need no runs keep working. Point the "
        f"environment variable {DATA_DIR_ENV} ({now}) at a directory this app can write, or "
        "make this one and its runs.db writable by the user running the app (a damaged "
        "runs.db can be moved aside: an empty store is made in its place), then reload the page."
    )


@st.cache_resource(show_spinner=False)
def _open_store(data_dir: str) -> tuple[RunStore, str]:
    """Open the store in ``data_dir`` (once per directory and app process) and install the
    shipped demo runs; returns the store and why the demo runs could not all be installed
    (``""`` if they could). A store that cannot be opened raises, and is not cached: the
    next page run tries again."""
    store = RunStore(data_dir)
    try:
        demo.install(store)
    except (OSError, ValueError) as exc:  # a full disk, say: the store itself still works
        return store, str(exc)
    return store, ""


def run_store() -> RunStore:
    """The run store of this app process (data directory ``./runs`` or ``$GCA_RUNS_DIR``),
    with the shipped demo runs imported on first use so there is something to look at.

    When the store cannot be opened (a file where the directory should be, a read-only or
    damaged database), this shows an ``st.error`` naming the directory and the problem, and
    returns an :class:`UnavailableStore`: no runs, and a clear :class:`StoreError` for
    anything that needs one. Demo runs that could not all be installed are a warning; the
    next start of the app installs the rest."""
    data_dir = default_data_dir()
    try:
        store, demo_problem = _open_store(str(data_dir))
    except (OSError, sqlite3.Error, ValueError) as exc:
        message = store_problem(data_dir, exc)
        st.error(message, icon=":material/error:")
        return UnavailableStore(data_dir, message)
    if demo_problem:
        st.warning(
            f"The demo runs could not all be installed into {store.dir.absolute()}: "
            f"{demo_problem}. The app works without them; the next start of the app "
            "installs the missing ones.",
            icon=":material/warning:",
        )
    return store
