"""The Geometry page's pinned sample: a click on a chart pins the point under it (or the
box names it); the side panel shows its input, its nearest neighbours in each run, how far
its positive partner (an augmented view of it) sits, and why no batch-plan row is marked."""

from __future__ import annotations

import numpy as np
import streamlit as st

import ui
from gca_viz import embed
from gca_viz.figures.geometry import clicked_row
from gca_viz.figures.plans import sample_image
from views._geometry_snapshots import Loaded, View, data_key, run_label_names
from views._plotly_bridge import last_click

PIN = "geo_pin"  # the pinned sample's position in its dataset (also a URL parameter)
CLICK = "_geo_click"  # the last click on a chart, until the view has read it
BRIDGE = "geo_bridge"  # the key of the page's click bridge


def on_click() -> None:
    """Keep the click for the view (a callback runs before the page does)."""
    st.session_state[CLICK] = last_click(BRIDGE)


def pinned_sample(shown: list[Loaded]) -> int | None:
    """The pinned sample (its dataset position): a click since the last run pins the point
    under it; one that is not in the main run's snapshot is dropped."""
    event = st.session_state.pop(CLICK, None)
    if isinstance(event, dict):
        data_ = event.get("customdata")
        tag = data_[1] if isinstance(data_, list) and len(data_) > 1 else 0  # which run
        if isinstance(tag, int) and 0 <= tag < len(shown):
            row = clicked_row(event, len(shown[tag].z))
            if row is not None and (tag == 0 or same_data(shown[0], shown[tag])):
                st.session_state[PIN] = int(shown[tag].index()[row])
    if PIN not in st.session_state:
        raw = st.query_params.get(PIN)
        chosen = ui.recall(PIN)  # pinned before a page switch (the link's pin comes first)
        linked = int(raw) if raw is not None and raw.isdigit() else None
        st.session_state[PIN] = linked if chosen is None else int(chosen)
    if shown[0].row_of(st.session_state[PIN]) is None:
        st.session_state[PIN] = None
    pin: int | None = st.session_state[PIN]
    return pin


def same_data(a: Loaded, b: Loaded) -> bool:
    """Whether two runs' snapshots hold the same samples in the same rows."""
    return (
        a.samples is not None
        and b.samples is not None
        and np.array_equal(a.samples.index, b.samples.index)
        and data_key(a.run) == data_key(b.run)
    )


def pin_chooser(shown: Loaded) -> int | None:
    """The pinned-sample box (a click on the chart fills it); the URL keeps the choice, and
    the session across page switches (:func:`ui.recall`)."""
    names, _ = run_label_names(shown.run)
    index, y = shown.index(), shown.arrays["y"]
    options = sorted(int(i) for i in index)
    label = {int(i): _class_name(int(c), names) for i, c in zip(index, y, strict=True)}
    value: int | None = st.selectbox(
        "Pinned sample",
        [None, *options],
        key=PIN,
        format_func=lambda i: "none" if i is None else f"{i} (class {label[i]})",
        placeholder="click a point",
        help="Click a point on the chart to pin it, or pick its number here (type to search).",
    )
    ui.remember(PIN, value, None)
    if value is None:
        if PIN in st.query_params:
            del st.query_params[PIN]
    elif st.query_params.get(PIN) != str(value):
        st.query_params[PIN] = str(value)
    return value


def _class_name(c: int, names: tuple[str, ...]) -> str:
    return names[c] if 0 <= c < len(names) else str(c)


def pin_details(shown: list[Loaded], view: View, pin: int) -> None:
    """The pinned sample's input, its nearest neighbours and its positive partner in each
    run, and why no plan row is marked."""
    main = shown[0]
    row = main.row_of(pin)
    if row is None:
        return
    names, domain_names = run_label_names(main.run)
    what = f"class {_class_name(int(main.arrays['y'][row]), names)}"
    if "domain" in main.arrays:
        what += f", domain {_class_name(int(main.arrays['domain'][row]), domain_names)}"
    st.markdown(f"**Sample {pin}** ({what})")
    if main.samples is not None and main.samples.kind == "image":
        st.image(sample_image(main.samples.x[row]), width=112, caption="its input")
    elif main.samples is not None:
        x = main.samples.x[row].reshape(-1)
        st.caption(
            f"its input: x = [{', '.join(f'{v:.3g}' for v in x[:8])}"
            + (", …]" if len(x) > 8 else "]")
        )
    for s in shown:
        r = s.row_of(pin) if (s is main or same_data(main, s)) else None
        if r is None:
            st.caption(f"{s.run.label()}: other samples, not marked.")
            continue
        k = min(view.k, len(s.z) - 1)
        rows, sims = embed.cosine_neighbours(s.z, r, k)
        y = s.arrays["y"]
        same = int((y[rows] == y[r]).sum())
        idx = s.index()
        table = "\n".join(
            f"| {int(idx[j])} | {_class_name(int(y[j]), names)} | {c:.3f} |"
            for j, c in zip(rows, sims, strict=True)
        )
        st.markdown(
            f"{s.run.label()}, step {s.step}: its {k} nearest (cosine of $\\hat z$), "
            f"**{same} of {k}** of its class\n\n| sample | class | cos |\n|--:|:--|--:|\n{table}"
        )
        st.markdown(partner_text(s, r))
    st.caption(plan_row_text(main))


def partner_text(s: Loaded, row: int) -> str:
    """How far the sample in ``row`` of ``s``'s snapshot sits from its positive partner,
    and where the partner ranks among its neighbours; or that the run has no partners."""
    if s.partner is None:
        return (
            f"**Its positive partner:** not available for {s.run.label()}: its snapshot "
            "stores one embedding per sample (runs from before partners were stored, and "
            "external loops that embed an eval batch, keep no second view)."
        )
    d = embed.partner_distance(s.z, row, s.partner[row])
    what = (
        "the other view the loop paired with it"
        if s.run.external
        else "its input under the run's augmentation"
    )
    where = (
        f"nearer to it than any of the {d.others} other samples: rank **1** among its neighbours"
        if d.rank == 1
        else f"{d.rank - 1} of the {d.others} other samples are nearer to it: rank "
        f"**{d.rank}** among its neighbours"
    )
    return (
        f"**Its positive partner** ({what}): cosine distance **{d.distance:.3f}** between "
        f"the two views ($\\|\\hat z - \\hat z'\\|^2$ = {d.squared:.3f}, their alignment "
        f"term); {where}."
    )


def plan_row_text(main: Loaded) -> str:
    """Why no row of a batch plan is marked for the pinned sample."""
    if main.run.external:
        return (
            "**Row of the batch plan:** not marked: the app cannot tell which row of this "
            "external run's plan snapshot, if any, a point of its embedding snapshot is."
        )
    return (
        "**Row of the batch plan:** none: these are held-out samples, never in a training "
        "batch (the Train page draws the plan of one)."
    )
