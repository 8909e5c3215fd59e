"""Shared Streamlit helpers for the pages (UI only: no math lives here).

* Widgets whose value lives in the URL query string (``slider``, ``select``,
  ``select_slider``, ``number``, ``toggle``, ``checkbox``, ``multiselect``), so a copied link
  reproduces the view, and which keep their value while a page run skips them and, when the
  user chose it, across page switches (``recall``/``remember``; ``text`` too, out of the
  URL). Keys are namespaced per page (``"lab_eps"``); the key is both the session-state key
  and the query parameter.
* ``epsilon`` and ``relaxation``: the one control of ``ε`` and of the marginal weights
  ``λ₁, λ₂`` on every page (a log-scale slider over the schema's range plus a typed value);
  ``param_slider`` draws them for those schema parameters, a linear slider for the others,
  and ``param_label`` labels a schema parameter by its symbol (LaTeX) and description.
* ``param_step``: the +/- step of a number input for a schema parameter.
* ``show_code``: the "Show the code" expander with the library function behind a figure.
* ``guard``: turns a ``ValueError`` from the library into an ``st.error`` (never a traceback).
* ``run_store``: the process-wide :class:`gca_viz.runs.RunStore`; a store that cannot be
  opened is an ``st.error`` naming the directory, the problem and the fix, never a traceback.
* Lecture mode (a toggle the router draws, ``lecture=1`` in the URL): ``controls`` is where a
  page draws its controls (the sidebar, or inline above the figures), ``chart`` draws a
  plotly figure (projector-sized in lecture mode: the library's figures stay as they are),
  ``page_style`` the CSS (formulas that wrap, always; larger type in lecture mode), ``title``
  the page's title (in lecture mode a row that holds the folded parts as popovers).
"""

from __future__ import annotations

import html
import inspect
import math
import os
import re
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, TypeVar, overload
from urllib.parse import urlencode

import numpy as np
import pandas as pd
import streamlit as st
from streamlit.errors import StreamlitPageNotFoundError

from gca_viz import demo
from gca_viz.figures._legend import META_KEY as legend_below_meta
from gca_viz.figures._legend import legend_below
from gca_viz.figures.alignment import LABELS_META, respread_run_labels
from gca_viz.losses.stages import EPSILON, RELAX_A, RELAX_B
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
minimum) instead of the value the URL still held. Across page switches the values the user
chose come back through :func:`recall` (Streamlit's ``"session"`` persistence made run
choices keep a default the user never chose). A number typed without Enter and a page
switch clicked in the same millisecond (a test's synthetic click; a person's click, even
5 ms long, commits the number first) reruns the old page after the new one, and the
browser then shows 0 in its number boxes, whichever setting: tests click with a delay."""


CHOSEN = "_ui_chosen"
"""Session-state key of the values the user chose in this session's linked controls (those
unlike the control's default), by control key. Streamlit drops a page's widget state, and
the navigation its query string, on a page switch: without this memory a page opened again
from the navigation started at its defaults (a half-filled New run form was lost by a look
at Geometry, Story went back to step 1). A link's value still comes first; a value the user
left at the default, or at the default the control started at (the newest run when the page
opened, an older one since), is not kept: a default that moves moves with it."""
_FRESH = "_ui_fresh"  # controls set up in this visit whose start remember() has not seen yet
_STARTED = "_ui_started"  # {key: the default a control started at, the user choosing none}


def recall(
    key: str,
    link: bool = True,
    usable: Callable[[Any], bool] | None = None,
    *,
    url: bool = True,
    memory: str | None = None,
) -> Any:
    """The value the user chose for the linked control ``key`` earlier in this session
    (:data:`CHOSEN`), for a control being set up (its state is not set yet); ``None`` when
    the URL has a value for ``key`` (the link wins; not asked if not ``url``: a control that
    is never in the URL), the control is not ``link``-ed, nothing was chosen, or ``usable``
    refuses the value (a run since deleted, a value out of a new range). ``memory``: the key
    the value is kept under, if not ``key`` (Geometry's step, per run)."""
    if not link:
        return None
    kept = memory or key
    st.session_state.setdefault(_FRESH, set()).add(kept)
    if url and key in st.query_params:
        return None
    value = (st.session_state.get(CHOSEN) or {}).get(kept)
    return value if value is not None and (usable is None or usable(value)) else None


def remember(
    key: str, value: Any, default: Any, link: bool = True, *, memory: str | None = None
) -> None:
    """Keep ``value`` of the linked control ``key`` for :func:`recall` (under ``memory`` if
    given) if the user chose it: not if it is ``default``, or the default the control
    started at when :func:`recall` set it up (a default that moved since)."""
    if not link:
        return
    kept = memory or key
    chosen = st.session_state.setdefault(CHOSEN, {})
    started = st.session_state.setdefault(_STARTED, {})
    fresh = st.session_state.get(_FRESH) or set()
    if kept in fresh:  # its first run since it was set up: did it start at the default?
        fresh.discard(kept)
        if value == default:
            started[kept] = value
        else:
            started.pop(kept, None)
    if value == default or (kept in started and value == started[kept]):
        chosen.pop(kept, None)
    else:
        chosen[kept] = value


def _bounds(low: float | None, high: float | None) -> tuple[float, float]:
    """A number control's ``[low, high]``, an open side as ``∓inf``."""
    return (-math.inf if low is None else low), (math.inf if high is None else high)


def _within(low: float | None, high: float | None) -> Callable[[Any], bool]:
    lo, hi = _bounds(low, high)
    return lambda v: lo <= v <= hi


def _from_query(key: str, default: T, parse: Callable[[str], T]) -> T:
    raw = st.query_params.get(key)
    if raw is None:
        return default
    try:
        return parse(raw)
    except (TypeError, ValueError):
        return default


def _link_note(label: str, raw: str, why: str, used: Any) -> None:
    """Say that a link's value for a control is not used, and what is (shown on the run that
    reads the link; before, a bad N, T, seed or target in a link was replaced silently)."""
    st.warning(
        f"The link's {label} = {raw} is not used: {why}; {used} instead.",
        icon=":material/warning:",
    )


def _linked_number(
    key: str, default: float, low: float | None, high: float | None
) -> tuple[Any, str | None]:
    """A number control's first value from the query string: the link's if it parses (as
    ``default``'s type) and lies in ``[low, high]``, else the nearest usable one, with the
    reason (``None`` when the link's value is used or there is none)."""
    raw = st.query_params.get(key)
    kind = type(default)
    if raw is None:
        return default, None
    try:
        value = kind(raw)
    except (TypeError, ValueError):
        return default, "it is not a whole number" if kind is int else "it is not a number"
    lo, hi = _bounds(low, high)
    if not lo <= value <= hi:
        rule = (
            f"it must be at least {lo:g}"
            if hi == math.inf
            else f"it must be at most {hi:g}"
            if lo == -math.inf
            else f"it must be between {lo:g} and {hi:g}"
        )
        return kind(min(max(value, lo), hi)), rule
    return value, None


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
    why = None
    if key not in st.session_state:
        chosen = recall(key)
        st.session_state[key], why = (
            (kind(chosen), None) if chosen is not None else _linked_number(key, default, low, high)
        )
    # Clip into the current range before drawing: when the range changes (a half-step slider
    # whose maximum follows T), Streamlit would otherwise reset the value to the minimum.
    st.session_state[key] = kind(min(max(st.session_state[key], low), high))
    value = st.slider(label, kind(low), kind(high), step=step, key=key, **_KEEP, **kwargs)
    if why is not None:
        _link_note(label, st.query_params.get(key, ""), why, value)
    remember(key, value, default)
    _sync(key, value)
    return value


def select(
    label: str, key: str, options: Sequence[T], default: T, link: bool = True, **kwargs: Any
) -> T:
    """``st.selectbox`` over ``options`` backed by the query string (see :func:`_switch` for
    ``link``)."""
    return _choice(st.selectbox, label, key, options, default, link, **kwargs)


def select_slider(
    label: str, key: str, options: Sequence[T], default: T, memory: str | None = None, **kw: Any
) -> T:
    """``st.select_slider`` over ``options`` backed by the query string (``memory``: see
    :func:`recall`)."""
    return _choice(st.select_slider, label, key, options, default, memory=memory, **kw)


def _choice(
    widget: Callable[..., Any],
    label: str,
    key: str,
    options: Sequence[T],
    default: T,
    link: bool = True,
    memory: str | None = None,
    **kwargs: Any,
) -> T:
    """A one-of-``options`` widget backed by the query string (the option whose ``str`` the
    URL holds, else the one chosen before a page switch, else ``default``; see
    :func:`_switch` for ``link``, :func:`recall` for ``memory``)."""
    unknown = None
    if key not in st.session_state:
        names = {str(o): o for o in options}
        raw = st.query_params.get(key) if link else None
        chosen = recall(key, link, lambda v: str(v) in names, memory=memory)
        st.session_state[key] = (
            names[str(chosen)]
            if chosen is not None
            else names.get(str(raw), default)
            if raw is not None
            else default
        )
        unknown = raw if raw is not None and str(raw) not in names else None
    value: T = widget(label, options, key=key, **_KEEP, **kwargs)
    if unknown is not None:
        shown = kwargs.get("format_func", str)(value)
        _link_note(label, unknown, "not one of the choices", shown)
    remember(key, value, default, link, memory=memory)
    if link:
        _sync(key, value)
    return value


def number(label: str, key: str, default: float, link: bool = True, **kwargs: Any) -> Any:
    """``st.number_input`` backed by the query string (no bounds forced here: pages let the
    library validate, so a typed-in bad value gets a clear ``st.error``; see :func:`_switch`
    for ``link``)."""
    why = None
    if key not in st.session_state:
        low, high = kwargs.get("min_value"), kwargs.get("max_value")
        chosen = recall(key, link, _within(low, high))
        linked, why = (
            (type(default)(chosen), None)
            if chosen is not None
            else _linked_number(key, default, low, high)
            if link
            else (default, None)
        )
        st.session_state[key] = linked
    value = st.number_input(label, key=key, **_KEEP, **kwargs)
    if why is not None:
        _link_note(label, st.query_params.get(key, ""), why, value)
    remember(key, value, default, link)
    if link:
        _sync(key, value)
    return value


def toggle(label: str, key: str, default: bool = False, link: bool = True, **kwargs: Any) -> bool:
    """``st.toggle`` backed by the query string (see :func:`_switch` for ``link``)."""
    return _switch(st.toggle, label, key, default, link, **kwargs)


def _switch(
    widget: Callable[..., Any],
    label: str,
    key: str,
    default: bool,
    link: bool = True,
    **kwargs: Any,
) -> bool:
    """A two-state widget (``st.toggle``, ``st.checkbox``) backed by the query string
    (unless not ``link``: then it starts at ``default`` and stays out of the URL)."""
    if key not in st.session_state:
        chosen = recall(key, link)
        linked = _from_query(key, default, lambda s: s == "True") if link else default
        st.session_state[key] = bool(chosen) if chosen is not None else linked
    value = bool(widget(label, key=key, **_KEEP, **kwargs))
    remember(key, value, default, link)
    if link:
        _sync(key, value)
    return value


def checkbox(label: str, key: str, default: bool = False, link: bool = True, **kwargs: Any) -> bool:
    """``st.checkbox`` backed by the query string (see :func:`_switch` for ``link``)."""
    return _switch(st.checkbox, label, key, default, link, **kwargs)


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
        chosen = recall(key)
        st.session_state[key] = (
            list(chosen) if chosen is not None else default if picked is None else picked
        )
    st.session_state[key] = [o for o in st.session_state[key] if o in options]
    values = st.multiselect(label, options, key=key, **_KEEP, **kw)
    remember(key, list(values), list(default))
    _sync(key, ",".join(str(v) for v in values))
    return values


def text(label: str, key: str, default: str = "", **kwargs: Any) -> str:
    """``st.text_input`` kept across page switches like the linked controls (:func:`recall`)
    but never in the URL (a file path, a run name)."""
    if key not in st.session_state:
        chosen = recall(key, url=False)
        st.session_state[key] = default if chosen is None else str(chosen)
    value = str(st.text_input(label, key=key, **_KEEP, **kwargs))
    remember(key, value, default)
    return value


def param_step(p: Param) -> float:
    """The +/- step of a number input for ``p``: a power of ten near a fiftieth of the
    parameter's slider range (``p.ui``, else its bounds, else 0 to 1); the bottom of that
    range for ``ε`` and ``λ₁, λ₂`` (:data:`SHARED_PARAMS`), whose sliders are log-scale."""
    if p in SHARED_PARAMS and p.ui is not None:
        return float(p.ui[0])
    low, high = p.ui or (p.low or 0.0, p.high or 1.0)
    span = float(high) - float(low)
    return 10.0 ** math.floor(math.log10(span / 50)) if span > 0 else 0.01


_SUBSCRIPTS = dict(zip("0123456789aehijklmnoprstuvx", "₀₁₂₃₄₅₆₇₈₉ₐₑₕᵢⱼₖₗₘₙₒₚᵣₛₜᵤᵥₓ", strict=True))


def plain_symbol(symbol: str) -> str | None:
    """``symbol`` (a schema's LaTeX, ``"λ_1"``, ``"λ_1 = λ_2 = \\infty"``) in Unicode
    (``"λ₁"``, ``"λ₁ = λ₂ = ∞"``), or ``None`` where Unicode cannot write it (``"λ_R"``:
    no capital subscript). A widget's label is also its ``aria-label``: a screen reader
    reads ``"$λ_1$"`` with its dollars and underscore, ``"λ₁"`` as it is seen."""
    text = symbol.replace("\\infty", "∞").replace("\\varepsilon", "ε")
    text = re.sub(r"_\{?([0-9a-z])\}?", lambda m: _SUBSCRIPTS.get(m.group(1), m.group(0)), text)
    return None if re.search(r"[_^\\{}$]", text) else text


def math_label(symbol: str, text: str = "") -> str:
    """A widget label led by ``symbol``: in Unicode where :func:`plain_symbol` can write it
    (``"λ₁: KL weight"``, what a screen reader reads), else as inline LaTeX
    (``"$λ_R$: RINCE's weight"``)."""
    plain = plain_symbol(symbol)
    head = plain if plain is not None else f"${symbol}$"
    return f"{head}: {text}" if text else head


def param_label(p: Param) -> str:
    """A widget label for ``p``: its symbol (:func:`math_label`) and its description
    without a closing remark in parentheses (``"λ₁: KL weight of the row-marginal
    penalty"``; the whole description is the widget's help, :func:`param_help`), never the
    field's name; the description alone for a parameter without a symbol. A remark follows
    a space: the parentheses of a formula that ends the description (``P^(2T-1)``) stay."""
    text = re.sub(r"\s+\([^()]*\)$", "", p.description.rstrip(".")) or p.description
    return math_label(p.symbol, text) if p.symbol else text


def param_help(p: Param) -> str:
    """The help of a schema widget: the description and the configuration field's name."""
    return f"{p.description} (configuration field `{p.name}`)"


def param_slider(
    p: Param, key: str, step: float = 0.05, default: Any = None, link: bool = True, **kwargs: Any
) -> Any:
    """A control for a float parameter, labelled by :func:`param_label` and starting at
    ``default`` (else the schema's default): :func:`epsilon` for ``ε``, :func:`relaxation`
    for a marginal weight (with its "hard constraint" checkbox when the schema admits one),
    else a linear slider in ``step`` over the parameter's slider range (``p.ui``, else its
    bounds, else 0 to 1; an open bound is a step inside). ``link=False`` (ε and λ only):
    the value stays out of the URL and starts at ``default`` whatever the URL says."""
    value = p.default if default is None else default
    if p == EPSILON:
        return epsilon(key, float(value or EPSILON.default or 0.5), link=link)
    if p in RELAX_PARAMS:
        start = None if value is None else float(value)
        return relaxation(key, start, param=p, hard=p.optional, link=link)
    low, high = p.ui or (p.low or 0.0, p.high or 1.0)
    if p.low_open and p.low is not None and float(low) <= p.low:  # (q = 0 was offered, and
        low = float(p.low) + step  # refused by the loss: "q must be a number > 0")
    if p.high_open and p.high is not None and float(high) >= p.high:
        high = float(p.high) - step
    kwargs.setdefault("help", param_help(p))
    return slider(
        param_label(p), key, float(low), float(high), float(value or 0.0), step=step, **kwargs
    )


# --------------------------------------------------------- ε and λ: one control each

LOG_STOPS = (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.0)
"""The stops of a log-scale slider in each decade (about 10^(k/7) apart; 0.1, 0.2 and 0.5,
the paper's values, are stops)."""

RELAX_PARAMS = (RELAX_A, RELAX_B)
"""The schemas of the marginal weights ``λ₁, λ₂`` (:func:`relaxation`)."""
SHARED_PARAMS = (EPSILON, *RELAX_PARAMS)
"""The schema parameters that have one control on every page (:func:`param_slider`)."""


def log_stops(low: float, high: float) -> tuple[float, ...]:
    """Every ``m × 10^k`` (``m`` in :data:`LOG_STOPS`) from ``low`` to ``high``, both ends
    included: the options of a log-scale slider (``0.01, 0.015, 0.02, 0.03, ...``)."""
    if not 0 < low < high:
        raise ValueError(f"a log scale needs 0 < low < high, got {low:g}, {high:g}")
    decades = range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
    stops = {float(f"{m:g}e{k}") for k in decades for m in LOG_STOPS}  # exact decimals
    return tuple(sorted({v for v in stops if low <= v <= high} | {float(low), float(high)}))


def _stops(p: Param) -> tuple[float, ...]:
    assert p.ui is not None, f"{p.name} has no slider range"
    return log_stops(*p.ui)


EPSILON_STOPS = _stops(EPSILON)
"""The stops of every ``ε`` slider (:func:`epsilon`): 0.01 to 2."""


def epsilon(
    key: str, default: float, what: str = "temperature = regulariser", *, link: bool = True
) -> float:
    """The ``ε`` control of every page: a log-scale slider over the schema's range
    (:data:`gca_viz.losses.stages.EPSILON`, :data:`EPSILON_STOPS`) and a box to type any
    ``ε > 0`` (a value off the slider's stops is shown as a stop of its own), both in the
    URL as ``key``, labelled ``"$ε$: what"`` (short: it often shares a row; the schema's
    description is in the help). A typed value that is not ``> 0`` is not used: a message
    names ``ε`` and the value in use stays. ``link=False``: not in the URL (a control whose
    start is given by the page, as a running run's ε)."""
    label = math_label(EPSILON.symbol, what)
    return _log_control(
        EPSILON.symbol, key, default, label, EPSILON_STOPS, EPSILON.description, link
    )


@overload
def relaxation(
    key: str,
    default: float,
    *,
    param: Param = RELAX_A,
    both: bool = False,
    hard: Literal[False] = False,
    link: bool = True,
) -> float: ...


@overload
def relaxation(
    key: str,
    default: float | None,
    *,
    param: Param = RELAX_A,
    both: bool = False,
    hard: bool,
    link: bool = True,
) -> float | None: ...


def relaxation(
    key: str,
    default: float | None,
    *,
    param: Param = RELAX_A,
    both: bool = False,
    hard: bool = False,
    link: bool = True,
) -> float | None:
    """The control of a marginal weight ``λ₁`` or ``λ₂`` (``param``; ``both``: one value
    for ``λ₁ = λ₂``), made like :func:`epsilon`: a log-scale slider over the schema's range
    (0.001 to 100) and a typed value ``> 0``, in the URL as ``key``. With ``hard``, a
    checkbox above it (``key_hard`` in the URL) makes the marginal a hard constraint
    (``λ = ∞``) and returns ``None``; ``default=None`` starts there, as does a link with
    ``key=inf`` (and no ``key_hard``). ``link=False``: neither in the URL (see
    :func:`epsilon`)."""
    symbol = "λ_1 = λ_2" if both else param.symbol
    if both:
        label = math_label(symbol, "KL weight of both marginal penalties")
    else:
        label = param_label(param)
    hard_key = f"{key}_hard"
    starts_hard = default is None
    if link and hard and hard_key not in st.session_state and hard_key not in st.query_params:
        if _is_infinity(st.query_params.get(key)):  # a link saying λ = inf means "hard"
            starts_hard = True
            del st.query_params[key]
        elif key in st.query_params:  # a link's λ: not a "hard" remembered from before
            st.session_state[hard_key] = starts_hard
    if hard and checkbox(
        math_label(f"{symbol} = \\infty", "hard"),
        hard_key,
        starts_hard,
        link,
        help="A hard marginal constraint, as in balanced Sinkhorn: the limit λ → ∞ of the "
        "KL penalty.",
    ):
        return None
    start = float(default) if default is not None else float(param.default or 1.0)
    return _log_control(symbol, key, start, label, _stops(param), param.description, link)


def _log_control(
    symbol: str,
    key: str,
    default: float,
    label: str,
    stops: tuple[float, ...],
    about: str,
    link: bool = True,
) -> float:
    """A value ``> 0`` set by a slider over ``stops`` or typed (the number input has the
    key ``key``, the slider ``key_slider``), kept in the URL as ``key`` (unless not
    ``link``: then it starts at ``default``)."""
    slider_key, note_key = f"{key}_slider", f"_{key}_note"
    if key not in st.session_state:  # a new session, or the control was not drawn
        raw = st.query_params.get(key) if link else None
        chosen = recall(key, link, lambda v: v > 0)
        value, note = _positive(symbol, raw if raw is not None else default, float(default))
        st.session_state[key] = float(chosen) if chosen is not None else value
        st.session_state[note_key] = note and f"The link's {note}"
    value = float(st.session_state[key])
    st.session_state[slider_key] = value  # typed off the stops: the value is a stop of its own
    with st.container(key=f"{key}_control", gap="xxsmall"):
        st.select_slider(
            label,
            sorted({*stops, value}),
            key=slider_key,
            format_func=_short,
            on_change=_slid,
            args=(key, slider_key, note_key),
            help=f"{about} A log scale from {stops[0]:g} to {stops[-1]:g}; type any value "
            "> 0 in the box below it." + (" Kept in the link." if link else ""),
            **_KEEP,
        )
        st.number_input(
            # a hidden label, read by screen readers: the slider's, so that each box is told
            # apart ("ε: the smallest of the sweep, typed"), in plain text (math_label)
            f"{label}, typed",
            key=key,
            step=stops[0],
            format="%g",
            on_change=_typed,
            args=(symbol, key, slider_key, note_key),
            label_visibility="collapsed",
            width=150,
            **_KEEP,
        )
        if st.session_state.get(note_key):
            st.warning(st.session_state[note_key], icon=":material/warning:")
    remember(key, value, float(default), link)
    if link:
        _sync(key, value)
    return value


def _is_infinity(raw: Any) -> bool:
    try:
        return float(raw) == math.inf
    except (TypeError, ValueError):
        return False


def _short(value: float) -> str:
    return f"{value:g}"


def _positive(symbol: str, raw: Any, kept: float) -> tuple[float, str]:
    """``raw`` as a float ``> 0`` (to 12 digits: the input's +/- add float noise), or
    ``kept`` and a message naming the symbol."""
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = math.nan
    if math.isfinite(value) and value > 0:
        return float(f"{value:.12g}"), ""
    shown = "(empty)" if raw is None else raw if isinstance(raw, str) else f"{value:g}"
    return (
        kept,
        f"${symbol}$ = {shown} is not used: ${symbol}$ must be a number > 0, so it stays {kept:g}.",
    )


def _slid(key: str, slider_key: str, note_key: str) -> None:
    st.session_state[key] = float(st.session_state[slider_key])
    st.session_state[note_key] = ""


def _typed(symbol: str, key: str, slider_key: str, note_key: str) -> None:
    kept = float(st.session_state[slider_key])  # the value in use until now
    value, note = _positive(symbol, st.session_state.get(key), kept)
    st.session_state[key] = st.session_state[slider_key] = value
    st.session_state[note_key] = note


def page_link(page: str, label: str, **kwargs: Any) -> None:
    """``st.page_link`` to the app page ``page`` (``"views/geometry.py"``; ``kwargs`` such as
    ``query_params`` and ``icon`` go to it): it opens in this tab and session, where a Markdown
    link opened a new tab, a new session without the lecture mode and the settings the user
    chose. A page run outside the app's navigation (``streamlit run views/train.py``, a page
    test) has no pages to link to: a Markdown link then."""
    try:
        st.page_link(page, label=label, **kwargs)
    except StreamlitPageNotFoundError:
        query = urlencode(kwargs.get("query_params") or {})
        st.markdown(f"[{label}]({Path(page).stem}{'?' * bool(query)}{query})")


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


# ------------------------------------------------------------------------- lecture mode

LECTURE_KEY = "lecture"
"""Session-state key and query parameter (``lecture=1``) of lecture mode."""

WRAP_WIDTHS = (150, 180, 300, 360)
"""The column widths (px) below which :func:`wrapping` containers wrap; each has one rule in
the page's stylesheet (:data:`PAGE_CSS`)."""


PAGE_CSS = """
/* The sidebar's zero-height helpers (page wheel, chart access, chart fit, history, scroll
   placements) took a 16 px gap each: 64 px and more above the page's own controls, which
   began at the foot of a 1366 x 768 window. */
[data-testid="stSidebarUserContent"] [data-testid="stElementContainer"][class*="st-key-gca_"] {
  margin-bottom: -1rem;
}
/* The page starts 3rem from the top, not Streamlit's 6rem: at 1366 x 768 the 48 px went to
   the first figure (Geometry's sphere, Plan lab's player began below the first screen). */
[data-testid="stMainBlockContainer"] { padding-top: 3rem; }
/* Long display formulas wrap (after a top-level relation or operator, as KaTeX breaks
   inline math) instead of being clipped at the right edge of their column. */
.katex-display > .katex { white-space: normal; }
.katex-display > .katex > .katex-html > .base { margin: 0.2em 0; }
/* Captions carry the pages' claims: Streamlit fades them to 0.6 of a light grey (4.2:1 on
   white, under the 4.5:1 small text needs); a darker grey, still quieter than the text. */
[data-testid="stCaptionContainer"], [data-testid="stCaptionContainer"] p {
  color: #4b5563; opacity: 1 !important;
}
/* A metric's label, value and delta wrap rather than end in "…": at 125 % and 150 % zoom
   Story's "4.16 … …", "2.57…" and Noisy views' "-0.045 vs balance…" hid what they said. */
[data-testid="stMetricLabel"] p, [data-testid="stMetricValue"] p,
[data-testid="stMetricValue"] > div, [data-testid="stMetricDelta"] div {
  white-space: normal !important; text-overflow: clip !important; overflow-wrap: anywhere;
}
/* A row of metric cards (columns holding one metric each) wraps under 150 px a card: five
   cards beside the sidebar at 800 px broke their numbers in two ("0.937 / 6", "2.5929 / 63"). */
[data-testid="stHorizontalBlock"]:has(> [data-testid="stColumn"] > [data-testid="stVerticalBlock"]
  > [data-testid="stElementContainer"]:only-child > [data-testid="stMetric"]) { flex-wrap: wrap; }
[data-testid="stHorizontalBlock"] > [data-testid="stColumn"]:has(> [data-testid="stVerticalBlock"]
  > [data-testid="stElementContainer"]:only-child > [data-testid="stMetric"]) {
  min-width: min(150px, 100%);
}
/* ui.wrapping: columns that wrap below a minimum width; its own columns only (a wrapping
   pair nested in another's column took the outer minimum: Story's two numbers stacked). */
[class*="st-key-wrap"] [data-testid="stHorizontalBlock"] { flex-wrap: wrap; }
""" + "".join(
    f'[class*="st-key-wrap{w}_"] > [data-testid="stLayoutWrapper"]'
    f' > [data-testid="stHorizontalBlock"] > [data-testid="stColumn"]'
    f" {{ min-width: min({w}px, 100%); }}\n"
    for w in WRAP_WIDTHS
)

LECTURE_CSS = """
/* Lecture mode: projector-sized type (Streamlit sizes text, widgets and spacing in rem),
   less padding, chart titles as wrapping text above the charts. */
html { font-size: 20px; }
[data-testid="stMainBlockContainer"] { padding: 4.5rem 1.25rem 4rem; max-width: none; }
[data-testid="stMain"] h1 { font-size: 2.2rem; padding-top: 0.25rem; }
[data-testid="stCaptionContainer"], [data-testid="stCaptionContainer"] p {
  font-size: 0.95rem; color: #374151;  /* the theme's light grey washed out on a projector */
  opacity: 1 !important;  /* (Streamlit fades captions to 0.6: 3.4:1 contrast on white) */
}
[data-testid="stMetricValue"] { font-size: 2rem; }
[data-testid="stMetricLabel"] p { font-size: 1rem; }
[class*="st-key-lecture_controls_"] > div:has([data-testid="stHeading"]) { flex: 1 0 100%; }
[class*="st-key-lecture_controls_"] h3 { font-size: 1.05rem; padding: 0.25rem 0 0; }
/* A pinned panel (ui.controls(pinned=True): what a lecture moves, Plan lab's epsilon and T)
   stays under the top bar (75 px) while the page scrolls to the figures below it: at
   1280 x 720 the player began below the first screen, and scrolled into view it took the
   sliders off it. Folded by its header (over 900 px tall) it is a 50 px bar. Only on a
   screen at least 650 px tall: at 150 % zoom (1366 x 768 is 911 x 512) bar and panel took
   305 of 512 px, and the keyboard's focus went under the panel. */
@media (min-height: 650px) {
[data-testid="stMain"] [data-testid="stLayoutWrapper"]:has(
    > [data-testid="stExpander"] [class*="st-key-lecture_controls_"][class*="_pinned"]) {
  position: sticky; top: 75px; z-index: 20; background: white;
}
/* ... and compact: little padding, and under 900 px no header (176 px tall, it left 469 px
   of a 720 px screen: Plan lab's player, 554 px, was never seen whole beside it) */
[data-testid="stExpander"]:has([class*="st-key-lecture_controls_"][class*="_pinned"])
  [data-testid="stExpanderDetails"] { padding-top: 0.5rem; padding-bottom: 0.4rem; }
}
@media (min-height: 650px) and (max-height: 900px) {
[data-testid="stExpander"]:has([class*="st-key-lecture_controls_"][class*="_pinned"]) summary {
  display: none;
}
}
/* A pinned panel's log-scale controls (epsilon, relaxation): the typed value beside the slider,
   not under it, where it took a 75 px row of its own above the figures (in a panel of many
   controls, Entropy's six, a column has no room for both: some went beside, some under). */
[class*="st-key-lecture_controls_"][class*="_pinned"] .stVerticalBlock[class*="_control"] {
  flex-direction: row; flex-wrap: wrap; align-items: flex-end; column-gap: 1rem;
}
[class*="_pinned"] .stVerticalBlock[class*="_control"] > * { flex: 0 0 auto; }
[class*="_pinned"] .stVerticalBlock[class*="_control"] > [class*="_slider"] { flex: 1 1 12rem; }
[class*="_pinned"] .stVerticalBlock[class*="_control"] > :has([role="alert"]) { flex: 1 0 100%; }
/* The top bar: its spacing as margins, not padding (it decides which tabs fit by its width
   with the padding in, and clipped 35 px of the last one, "Composer", at 1280 px), and
   tabs 8 px narrower, so that all eight fit at 1280 px. */
[data-testid="stTopNav"] { padding: 0 !important; margin: 0 20px; }
[data-testid="stTopNav"] a { padding-left: 6px !important; padding-right: 6px !important; }
.gca-chart-title { font-weight: 600; font-size: 1.05rem; line-height: 1.3; }
.gca-chart-title small { display: block; font-weight: 400; font-size: 0.8rem; color: #4b5563; }
"""


def lecture() -> bool:
    """Whether lecture mode is on: the toggle's value in this session, else ``lecture=1`` in
    the URL (a link opened in a new session)."""
    if LECTURE_KEY in st.session_state:
        return bool(st.session_state[LECTURE_KEY])
    return st.query_params.get(LECTURE_KEY) in ("1", "True", "true")


def lecture_toggle() -> bool:
    """The lecture-mode toggle (the router draws it in the sidebar on every run).

    Its value lives in the session (``persist_state="session"``) and in the URL as
    ``lecture=1``. A page switch through the navigation drops the URL's query string; the
    toggle is drawn on every run, so its value survives and this puts ``lecture=1`` back."""
    if LECTURE_KEY not in st.session_state:
        st.session_state[LECTURE_KEY] = lecture()
    on = bool(
        st.toggle(
            "Lecture mode",
            key=LECTURE_KEY,
            persist_state="session",
            help="For projectors: the controls above the figures instead of in the sidebar, "
            "larger type and markers, the navigation at the top. Kept in the link (lecture=1).",
        )
    )
    if on and st.query_params.get(LECTURE_KEY) != "1":
        st.query_params[LECTURE_KEY] = "1"
    elif not on and LECTURE_KEY in st.query_params:
        del st.query_params[LECTURE_KEY]
    return on


TITLE_BAR = "_ui_title_bar"
"""Session-state key of this run's lecture-mode title row (:func:`title`); the router's
:func:`page_style`, first on every run, drops the last run's."""


def title(text: str) -> None:
    """The page's title (``st.title``). In lecture mode it heads a row that takes, at its
    right, the page's folded parts as popovers: "About this page" (:func:`intro`) and the
    folded settings (:func:`controls` with ``folded``). At 1280 x 720 each folded part was an
    expander's 70 px bar above the figure (three on Plan lab), and one opened pushed the
    figure down the screen; a popover opens over the page and the figure stays put."""
    if not lecture():
        st.title(text)
        return
    row = st.container(
        horizontal=True, vertical_alignment="center", gap="small", key="lecture_title_bar"
    )
    with row:
        st.title(text, width="stretch")
        # the popovers as one group, at the right or, where the title leaves no room, all
        # together on a row of their own (one by one, Entropy's split across two rows)
        bar = st.container(horizontal=True, width="content", wrap=False, gap="small")
    st.session_state[TITLE_BAR] = bar


@contextmanager
def _folded(label: str, icon: str, place: Any = None) -> Iterator[None]:
    """A folded part of the page: in lecture mode a popover in ``place`` or else the title's
    row (:func:`title`), else a closed expander at this point of the page."""
    bar = (place or st.session_state.get(TITLE_BAR)) if lecture() else None
    if bar is None:
        with st.expander(label, expanded=False):
            yield
        return
    with bar, st.popover(label, icon=icon), st.container(width=520):
        yield


def intro(text: str) -> None:
    """A page's introduction under its title (markdown): as text, or in lecture mode folded
    into "About this page" (a popover in the title's row, :func:`title`): on a projector the
    first screen goes to the controls and the figure, and the lecturer says the rest (the
    introductions pushed every page's figure 130 px further down)."""
    if lecture():
        with _folded("About this page", ":material/info:"):
            st.markdown(text)
    else:
        st.markdown(text)


def page_style() -> None:
    """The app's CSS: formulas and column pairs that wrap, and in lecture mode larger type
    (once per run)."""
    st.session_state.pop(TITLE_BAR, None)  # (a new run: the title draws its row again)
    css = PAGE_CSS + (LECTURE_CSS if lecture() else "")
    st.html(f"<style>{css}</style>")


def wrapping(key: str, min_width: int) -> Any:
    """A container whose ``st.columns`` wrap onto a new row when each would be narrower than
    ``min_width`` pixels (one of :data:`WRAP_WIDTHS`): a pair of heatmaps side by side on a
    wide screen, one above the other beside an open sidebar at 1000 px (squeezed there,
    each was a sliver, its title cut). Streamlit itself stacks columns only on phones.

    Its key is ``wrap{min_width}_{key}``, which the page's stylesheet selects."""
    if min_width not in WRAP_WIDTHS:
        raise ValueError(f"min_width must be one of {WRAP_WIDTHS}, got {min_width!r}")
    return st.container(key=f"wrap{min_width}_{key}")


def sidebar_slot() -> Any:
    """A place at this point of the sidebar for controls drawn later (:func:`controls`'s
    ``slot``), or ``None`` in lecture mode (no sidebar: the controls stay where drawn)."""
    return None if lecture() else st.sidebar.container()


@contextmanager
def controls(
    title: str = "Settings",
    *,
    folded: bool = False,
    place: Any = None,
    pinned: bool = False,
    slot: Any = None,
) -> Iterator[None]:
    """Where a page draws its controls: the sidebar under the subheader ``title`` (in
    ``slot``, a :func:`sidebar_slot` made earlier, if given: controls that depend on ones
    drawn before them but matter more, higher up), or in lecture mode at this point of the
    page (above the figures that follow) in an open expander named ``title``, its widgets
    side by side (a page's titles differ). Secondary settings that would push a projector's
    first screen down are ``folded``: a popover named ``title`` in the page title's row
    (:func:`title`) or in the container ``place``, a closed expander without either. An open
    panel ``pinned`` stays under the top bar while the page scrolls (the controls a lecture
    moves, beside the figure they move)."""
    if not lecture():
        with slot if slot is not None else st.sidebar:
            st.subheader(title)
            yield
        return
    if folded:
        with _folded(title, ":material/tune:", place):
            yield
        return
    slug = re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_")
    with (
        st.expander(title, expanded=True),
        st.container(
            horizontal=True,
            gap="medium",
            key=f"lecture_controls_{slug}" + ("_pinned" if pinned else ""),
        ),
    ):
        yield


def versus_ince(gap: float, rounding: float, spec: str) -> dict[str, Any]:
    """``st.metric``'s ``delta`` and ``delta_color`` for GCA-INCE beside INCE: the ``gap``
    GCA-INCE − INCE formatted by ``spec`` (lower is better), or "equal to INCE" when it is
    within ``rounding`` (a red "+0" read as a rise, against the theorem)."""
    if abs(gap) <= rounding:
        return {"delta": "equal to INCE (to rounding)", "delta_color": "off"}
    return {"delta": f"{gap:{spec}} vs INCE", "delta_color": "inverse"}


def wrapped_row_height(
    rows: Sequence[dict[str, Any]], widths: dict[str, int], char_px: float = 6.5, line_px: int = 20
) -> int:
    """A row height (px) for ``st.dataframe(rows, row_height=...)`` at which the longest cell
    of ``rows`` shows in full: above 64 px Streamlit wraps a text cell's lines instead of
    cutting them. ``widths`` are the columns' widths in px (at least what they get), text is
    about ``char_px`` a character and ``line_px`` a line."""
    lines = max(
        (
            math.ceil(len(str(row[c])) * char_px / max(w - 16, 1))
            for row in rows
            for c, w in widths.items()
        ),
        default=1,
    )
    return max(65, lines * line_px + 12)


HIGHLIGHT_CSS = "background-color: rgba(31, 119, 180, 0.14); font-weight: 600"
"""A table's chosen row (:func:`wrapped_table`): in lecture mode, where the selection column
of ``st.dataframe`` is not drawn, and beside it otherwise (a selection set by another
control, a selector or a link, does not tick the row's box)."""


def wrapped_table(
    rows: Sequence[dict[str, Any]],
    widths: dict[str, int],
    highlight: int | None = None,
    **kwargs: Any,
) -> Any:
    """``st.dataframe`` of ``rows`` without an index, its columns at ``widths`` (px), its
    rows tall enough for the longest cell to wrap in full (:func:`wrapped_row_height`) and
    every row shown (``height="content"``: the default height of ten 35 px rows showed four
    of Plan lab's eight methods, the rest behind a scroll that did not show).

    Row ``highlight`` is shaded (:data:`HIGHLIGHT_CSS`). In lecture mode an HTML table
    instead (``st.table``; ``kwargs`` such as a row selection are dropped): ``st.dataframe``
    draws on a canvas at screen size, so its 12 px text did not grow for the projector and
    its last columns were cut at 1024 px; an HTML table takes the lecture type and wraps its
    cells."""
    shown = pd.DataFrame(list(rows)).style.apply(
        lambda row: [HIGHLIGHT_CSS if row.name == highlight else ""] * len(row), axis=1
    )
    if lecture():
        return st.table(shown, hide_index=True, border="horizontal")
    return st.dataframe(
        shown,
        hide_index=True,
        column_config={c: st.column_config.TextColumn(width=w) for c, w in widths.items()},
        row_height=wrapped_row_height(rows, widths),
        **{"height": "content", **kwargs},  # ("auto" is ten rows of 35 px: tall rows were cut)
    )


def table(data: Any, **kwargs: Any) -> Any:
    """A table of numbers or short text without an index: ``st.dataframe`` (``kwargs`` such
    as ``key`` and ``column_config`` go to it; a missing value shows "—", not "None"), or in
    lecture mode an HTML table in the lecture type (``st.table``; ``kwargs`` are dropped;
    floats to 4 significant digits, NaN blank): the dataframe's canvas keeps 13 px text on a
    projector and cuts columns that do not fit."""
    if lecture():  # (a dict of numpy arrays as it is drew no header row)
        frame = pd.DataFrame(data)
        floats = {
            c: column_format(frame[c])
            for c in frame.columns
            if pd.api.types.is_float_dtype(frame[c])
        }
        shown = frame.style.format(floats, na_rep="")
        return st.table(shown, hide_index=True, border="horizontal")
    return st.dataframe(data, hide_index=True, **{"placeholder": "—", **kwargs})


def column_format(values: Any) -> str:
    """A format for numbers shown together (a table's column, two cards compared): four
    significant digits of the largest magnitude and that many decimals for each
    (``0.1328 0.2700 0.0959``: "0.27" beside "0.1328" read as a rougher value, "1.78" beside
    "1.789" as a different rounding); whole numbers without decimals (592, not 592.0000);
    ``.4g`` past 1e5 or under 1e-3 in magnitude."""
    x = np.asarray(values, dtype=float).reshape(-1)
    x = x[np.isfinite(x)]
    if not x.size:
        return "{:.4g}"
    top = float(np.abs(x).max())
    if np.all(x == np.round(x)) and top < 1e15:
        return "{:.0f}"
    if top >= 1e5 or top < 1e-3:
        return "{:.4g}"
    return f"{{:.{max(0, 3 - math.floor(math.log10(top)))}f}}"


LECTURE_FONT = 1.25
"""Lecture mode: chart type is this much larger (at least 15 px) ..."""
LECTURE_INK = "#1f2430"
"""... text without a colour of its own is this near-black, not the theme's grey ..."""
LECTURE_MARKER = 1.6
"""... markers and lines this much larger ..."""
LECTURE_NOTE_FONT = 1.15
"""... and annotations this much (a figure places them, some near its edges) ..."""
LECTURE_NOTE_LEAST = 14
"""... to at least this many pixels."""
_TAGS = re.compile(r"<[^>]+>")
_KEPT_TAGS = re.compile(r"&lt;(/?)(sup|sub|b|i)&gt;")


def _scaled_fonts(node: Any, factor: float = LECTURE_FONT, least: int = 15) -> Any:
    """A copy of a plotly layout (a JSON-like dict) with every font size scaled by ``factor``
    to at least ``least`` px; annotations (placed by the figure, often near an edge) by
    :data:`LECTURE_NOTE_FONT`, to at least :data:`LECTURE_NOTE_LEAST` px."""
    if isinstance(node, list):
        return [_scaled_fonts(v, factor, least) for v in node]
    if not isinstance(node, dict):
        return node
    out = {
        k: _scaled_fonts(
            v, *((LECTURE_NOTE_FONT, LECTURE_NOTE_LEAST) if k == "annotations" else (factor, least))
        )
        for k, v in node.items()
    }
    for k, v in out.items():
        if k.endswith("font") and isinstance(v, dict) and isinstance(v.get("size"), int | float):
            v["size"] = max(round(float(v["size"]) * factor), least)
    return out


def _scale_trace(trace: Any, defaults: bool = True) -> None:
    """Larger markers and lines of one scatter trace, in place (fixed and per-point sizes;
    with ``defaults``, plotly's default marker size and line width too). Colour bars follow
    the layout's font."""
    if trace.type not in ("scatter", "scattergl", "scatter3d"):
        return
    size = trace.marker.size
    if size is not None:
        trace.marker.size = (np.asarray(size) if np.ndim(size) else size) * LECTURE_MARKER
    elif defaults:
        trace.marker.size = (4 if trace.type == "scatter3d" else 6) * LECTURE_MARKER
    if trace.type != "scatter3d" and (trace.line.width is not None or defaults):
        trace.line.width = (trace.line.width or 2) * LECTURE_MARKER
    text_size = trace.textfont.size
    if isinstance(text_size, int | float):  # labels drawn by the trace (run names on a plane)
        trace.textfont.size = max(round(text_size * LECTURE_FONT), 15)


def title_html(title: str) -> str:
    """A plotly title (text with ``<br>``, ``<sup>``, ``<sub>``, ``<b>``, ``<i>``) as safe
    HTML: the first line a headline, the rest a ``<small>`` subtitle; every other tag and
    character escaped (titles can hold run names)."""
    first, _, rest = re.sub(r"<br\s*/?>", "\n", title).partition("\n")

    def safe(text: str) -> str:
        return _KEPT_TAGS.sub(r"<\1\2>", html.escape(text.replace("\n", " ").strip()))

    sub = _TAGS.sub("", rest)  # a subtitle is one line of small type: no nested <sup>
    return safe(first) + (f"<small>{safe(sub)}</small>" if sub.strip() else "")


def lecture_figure(fig: Any) -> tuple[Any, str]:
    """A copy of ``fig`` for a projector and its title text (``""`` if it keeps its own):
    fonts scaled by :data:`LECTURE_FONT` (at least 15 px), markers and lines by
    :data:`LECTURE_MARKER`. A title is taken out of a figure without animation frames, so
    the page can show it as text that wraps (a plotly title is clipped when it is wider than
    the chart)."""
    import plotly.graph_objects as go

    layout = _scaled_fonts(fig.layout.to_plotly_json())
    base = layout.setdefault("font", {}).setdefault("size", 16)
    tick = max(round(base * 0.85), 15)
    # Streamlit's chart theme gives axes, legends and colour bars small fonts of their own
    # (12 and 14 px): the figure's own sizes, if any, were scaled above; the others are set.
    used = {  # the axes of the figure's 2-D traces (unset: x and y)
        f"{ax[0]}axis{ax[1:]}"
        for t in fig.data
        if hasattr(t, "xaxis") and hasattr(t, "yaxis")
        for ax in (t.xaxis or "x", t.yaxis or "y")
    }
    # Its grey text also washed out on a projector: text without a colour of its own is ink.
    layout["font"].setdefault("color", LECTURE_INK)
    for name in used | {k for k in layout if re.fullmatch(r"[xy]axis\d*", k)}:
        axis = layout.setdefault(name, {})
        if isinstance(axis, dict):
            axis.setdefault("tickfont", {}).setdefault("size", tick)
            axis["tickfont"].setdefault("color", LECTURE_INK)
            title_ = axis.setdefault("title", {})
            if isinstance(title_, dict):
                title_.setdefault("font", {}).setdefault("size", base)
                title_["font"].setdefault("color", LECTURE_INK)
    legend_font = layout.setdefault("legend", {}).setdefault("font", {})
    legend_font.setdefault("size", tick)
    legend_font.setdefault("color", LECTURE_INK)
    title = ""
    text = (layout.get("title") or {}).get("text")
    if text and not fig.frames:
        title = text
        layout["title"] = {"text": ""}
        margin = layout.setdefault("margin", {})
        margin["t"] = min(int(margin.get("t", 40)), 40)
        # ... but room for the notes above the plot, such as subplot titles, at their new
        # size (Story's "row sums P1 (sent)" lost its top half under the cut)
        above = [
            a
            for a in layout.get("annotations") or []
            if a.get("yref") == "paper" and float(a.get("y") or 0) >= 1
        ]
        if above:  # lines of text times a line's height (1.45 font sizes), and a gap
            need = max(
                (str(a.get("text") or "").count("<br>") + 1)
                * 1.45
                * float((a.get("font") or {}).get("size") or base)
                for a in above
            )
            margin["t"] = max(margin["t"], math.ceil(need + 8))
    if layout.get("sliders"):  # its step labels and current value grow with the font: the
        # Geometry explorer's were cut 5 px at the figure's foot (two rows of text)
        margin = layout.setdefault("margin", {})
        margin["b"] = int(margin.get("b", 80)) + 2 * max(base - 12, 0)
    out = go.Figure(data=fig.data, layout=layout, frames=fig.frames)
    if legend_below_meta in (layout.get("meta") or {}):  # room under the axis for the new fonts
        legend_below(out)
    if LABELS_META in (layout.get("meta") or {}):  # labels apart at their new size
        respread_run_labels(out)
    for trace in out.data:
        if trace.type in ("heatmap", "contour", "histogram2d") and trace.showscale is not False:
            if trace.colorbar.tickfont.size is None:
                trace.colorbar.tickfont.size = tick
    # Markers over a heatmap mark its cells (positive pairs, the picked cell) at the cells'
    # size: they keep it. Words there (the half-step player's marginals) grow as all text.
    heat = {(t.xaxis, t.yaxis) for t in out.data if t.type == "heatmap"}
    scaled = {  # (3-D traces and surfaces have no x/y axes: never over a heatmap)
        i
        for i, t in enumerate(out.data)
        if (getattr(t, "xaxis", None), getattr(t, "yaxis", None)) not in heat
        or getattr(t, "mode", None) == "text"
    }
    for i in scaled:
        _scale_trace(out.data[i])
    for frame in out.frames or ():
        for j, trace in enumerate(frame.data or ()):
            if (frame.traces[j] if frame.traces else j) in scaled:
                _scale_trace(trace, defaults=False)
    return out, title


PLOTLY_CONFIG: dict[str, Any] = {
    "scrollZoom": False,
    "modeBarButtonsToRemove": [
        "select2d",
        "lasso2d",
        "zoomIn2d",
        "zoomOut2d",
        "autoScale2d",
        "toggleSpikelines",
        "hoverClosestCartesian",
        "hoverCompareCartesian",
    ],
}
"""Plotly settings of every chart: the mouse wheel scrolls the page (over a 3-D scene it
zoomed the camera instead, and a reader scrolling past the sphere shrank it to a dot; the
scene still cancels the wheel's events, which views/_page_wheel.py turns into page scroll);
the scene still zooms from its mode bar. The mode bar keeps the picture, zoom, pan and
reset: with ten buttons it ran over a chart's title on hover (no page selects points by
box or lasso; a click picks one)."""


def chart(fig: Any, key: str, **kwargs: Any) -> Any:
    """``st.plotly_chart(fig, key=key, **kwargs)`` with :data:`PLOTLY_CONFIG`; in lecture
    mode a projector-sized copy of ``fig`` (:func:`lecture_figure`) under its title, drawn
    as text that wraps."""
    if lecture():
        fig, title = lecture_figure(fig)
        if title:
            st.html(f'<div class="gca-chart-title">{title_html(title)}</div>')
    kwargs["config"] = {**PLOTLY_CONFIG, **kwargs.get("config", {})}
    return st.plotly_chart(dark_ticks(fig), key=key, **kwargs)


AXIS_INK = "#444444"
"""The ink of a chart's small text that sets no colour of its own: plotly's own (9.7:1 on
white; Streamlit's chart theme greys it to rgb(128, 132, 149), 3.7:1, under the 4.5:1 small
text needs)."""


def dark_ticks(fig: Any) -> Any:
    """``fig`` with :data:`AXIS_INK` on its small text that sets no colour of its own: the
    figure's font (what subplot titles, annotations, bar values, legends and sliders fall
    back on), every 2-D axis's ticks and title and every colour bar's ticks and title (a
    coloured axis, such as a marginal strip's, keeps its colour)."""
    import plotly.graph_objects as go

    def ink(axis: Any) -> None:
        if axis.tickfont.color is None:
            axis.tickfont.color = AXIS_INK
        if axis.title.font.color is None:
            axis.title.font.color = AXIS_INK

    if isinstance(fig, go.Figure):
        if fig.layout.font.color is None:
            fig.layout.font.color = AXIS_INK
        fig.for_each_xaxis(ink)
        fig.for_each_yaxis(ink)
        for trace in fig.data:
            if "colorbar" in trace:
                ink(trace.colorbar)
        for annotation in fig.layout.annotations:
            if annotation.font.color is None:
                annotation.font.color = AXIS_INK
        for slider in fig.layout.sliders:
            if slider.font.color is None:
                slider.font.color = AXIS_INK
            if slider.currentvalue.font.color is None:
                slider.currentvalue.font.color = AXIS_INK
    return fig


_SCROLL_JS = """
export default function (component) {
  const selector = component.data && component.data.selector;
  if (!selector) return;
  // a reader who scrolls, clicks or types meanwhile takes over: no more placing
  let taken = false;
  const take = () => { taken = true; };
  const cues = ["wheel", "touchstart", "keydown", "mousedown"];
  cues.forEach((cue) => window.addEventListener(cue, take, {capture: true, passive: true}));
  let left = null;  // the scroll offset at which the element was last seen in its place
  const scroller = (el) => {
    for (let p = el.parentElement; p; p = p.parentElement) {
      const y = getComputedStyle(p).overflowY;
      if (p.scrollHeight > p.clientHeight && (y === "auto" || y === "scroll")) return p;
    }
    return document.scrollingElement;
  };
  const place = (behavior) => {
    const el = document.querySelector(selector);
    if (!el || taken) return;
    // below the header (lecture mode's navigation bar sits over the page's top)
    const header = document.querySelector('[data-testid="stHeader"]');
    const below = (header ? header.getBoundingClientRect().bottom : 0) + 8;
    el.style.scrollMarginTop = `${below}px`;
    const box = scroller(el);
    if (Math.abs(el.getBoundingClientRect().top - below) <= 4) {
      left = box.scrollTop;
    } else if (left !== null && Math.abs(box.scrollTop - left) > 2) {
      taken = true;  // the page was scrolled away from its place since: not by us
    } else {
      el.scrollIntoView({behavior: behavior, block: "start"});
      if (behavior === "auto") {
        left = box.scrollTop;
      } else {  // where the smooth scroll ends, if it ends in place (a script's scroll after
        // it, before the first check, is then seen as one)
        const events = box === document.scrollingElement ? window : box;
        events.addEventListener("scrollend", () => {
          if (Math.abs(el.getBoundingClientRect().top - below) <= 4) left = box.scrollTop;
        }, {once: true});
      }
    }
  };
  // after this run's elements are laid out: the target may have been drawn just before
  setTimeout(() => place("smooth"), 50);
  // what is drawn above it later (formulas, a slow machine's late layout) pushed it down
  // after the scroll: put it back, while the reader has not moved
  // (a loaded 2-core machine drew the last chart above it after 3.5 s: checks until 7 s)
  [1000, 2000, 3500, 5000, 7000].forEach((t) => setTimeout(() => place("auto"), t));
  setTimeout(() => cues.forEach((cue) => window.removeEventListener(cue, take, true)), 7100);
}
"""
_scroller = st.components.v2.component("gca_scroll_to", js=_SCROLL_JS)


def scroll_to(key: str) -> None:
    """Scroll the page so that the element drawn with ``key`` (its ``.st-key-<key>``
    container) starts just below the header, from a zero-height component that runs in the
    page itself (``st.components.v2``; scripts in ``st.html`` do not run); put it back there
    during the next 7 s if what is drawn above it pushes it down, unless the reader
    scrolled, clicked or typed, or the page was scrolled away from it since.

    Each call mounts a new component (its key numbered), in the sidebar: one kept mounted
    from one run to the next does not run its script again, so the second "Next" of the
    Story left the page where it was."""
    count = st.session_state[_SCROLLS] = st.session_state.get(_SCROLLS, 0) + 1
    with st.sidebar:  # its empty element takes no room there: in the page, its gap left with
        # it on the next run and moved what was under the reader's pointer
        _scroller(key=f"gca_scroll_to_{key}_{count}", data={"selector": f".st-key-{key}"}, height=0)


_SCROLLS = "_gca_scrolls"  # placements so far this session: each one's component key
_ASKED = "_gca_scroll_asked"  # the keys scroll_later asked for, not yet placed


def scroll_later(key: str) -> None:
    """Ask for :func:`scroll_to` the element drawn with ``key`` where the page calls
    :func:`scroll_if_asked` for it, later in this run or in the next one (from a widget's
    callback, or code above the element: a button that launched a run, a step chosen, a
    row picked in a table)."""
    st.session_state.setdefault(_ASKED, set()).add(key)


def scroll_if_asked(*keys: str) -> bool:
    """:func:`scroll_to` the first of ``keys`` that :func:`scroll_later` asked for since
    the last placement, and forget the others' requests (one place per run); whether it
    scrolled."""
    asked = st.session_state.get(_ASKED, set())
    first = next((k for k in keys if k in asked), None)
    asked.difference_update(keys)
    if first is None:
        return False
    scroll_to(first)
    return True


_SCROLL_ON_CLICK_JS = """
export default function (component) {
  const { button, target } = component.data || {};
  if (!button || !target) return;
  // one listener per page for this button, on the document: the button itself is drawn
  // again on every run (and the component's script may run again)
  window.__gcaScrollOnClick = window.__gcaScrollOnClick || {};
  if (window.__gcaScrollOnClick[button]) return;
  window.__gcaScrollOnClick[button] = true;
  document.addEventListener("click", (ev) => {
    if (!ev.target.closest || !ev.target.closest(button)) return;
    const el = document.querySelector(target);
    if (!el) return;
    const header = document.querySelector('[data-testid="stHeader"]');
    el.style.scrollMarginTop = `${(header ? header.getBoundingClientRect().bottom : 0) + 8}px`;
    el.scrollIntoView({behavior: "instant", block: "start"});
    // hold the place while the new content arrives: shorter at first than the old, it
    // made the browser cut the scroll (the page moved twice); released after the
    // placement's last check (scroll_to: 7 s)
    const box = document.querySelector('[data-testid="stMainBlockContainer"]');
    if (!box) return;
    const top = el.getBoundingClientRect().top - box.getBoundingClientRect().top;
    box.style.minHeight = `${Math.ceil(top + window.innerHeight)}px`;
    clearTimeout(window.__gcaHoldPlace);
    window.__gcaHoldPlace = setTimeout(() => { box.style.minHeight = ""; }, 7500);
  }, true);
}
"""
_scroll_on_click = st.components.v2.component("gca_scroll_on_click", js=_SCROLL_ON_CLICK_JS)


def scroll_on_click(button: str, target: str) -> None:
    """When the button drawn with key ``button`` is clicked, bring the element drawn with
    key ``target`` under the header at once, in the browser, before the page runs again.

    For a button that changes what is drawn under ``target`` and then :func:`scroll_to` it
    (the Story's "Next"): the new content shorter at first than the old, the browser cut
    the scroll to the shorter page (the middle of the new step showed), and 0.4 s later the
    placement moved it again; from the click the place is already right, in one move, and
    the page keeps at least the height that holds it there for 7.5 s."""
    with st.sidebar:
        _scroll_on_click(
            key=f"gca_scroll_on_click_{button}",
            data={"button": f".st-key-{button}", "target": f".st-key-{target}"},
            height=0,
        )
