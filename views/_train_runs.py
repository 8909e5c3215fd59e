"""Train page, part 2: the table of all runs and the choice of the run to watch.

Both sit in one fragment that re-reads the store every couple of seconds while a run is
queued or running, so the table's status, step and progress and the labels of the run
choice stay current without rerunning the page (the form above keeps what is typed in it).
A different choice of run, or a run whose status changed (it finished, stopped, failed or
left the queue), reruns the whole page so its buttons and monitor follow.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, NoReturn

import streamlit as st

import ui
from gca_viz import demo, losses, userdata
from gca_viz.runs import ACTIVE, RunInfo, RunStore
from views._run_link import missing_run_warning, recover_run

REFRESH_S = 2.0
"""Seconds between two reads of the store while a run is active."""

AUTO_RERUN = "_tr_auto_rerun"


def refresh_page() -> NoReturn:
    """Rerun the whole page for a change the user did not make: a run left the queue,
    ended or went away. Notices meant to stay until the user acts, such as "Launched run
    #7", stay up through it (:func:`by_user`)."""
    st.session_state[AUTO_RERUN] = True
    st.rerun()


def by_user() -> bool:
    """Whether this run of the page comes from the user (a first load, a widget, a button)
    and not from :func:`refresh_page`. Call it once per page run: it resets the mark."""
    return not st.session_state.pop(AUTO_RERUN, False)


@dataclass(frozen=True)
class Selection:
    """The run to watch and the runs drawn beside it."""

    run_id: int
    compare: tuple[int, ...]


def name_text(info: RunInfo) -> str:
    """The run's name in the table; an external run (a loop of its own) says so."""
    return f"{info.name} (external)" if info.external else info.name


def device_text(run: RunInfo) -> str:
    """The device the run trains on; until the run process records it, the one requested."""
    if run.device:
        return run.device
    if run.external:  # recorded from the first tensors its loop hands over
        return "not seen yet" if run.status in ACTIVE else "not recorded (no tensor seen)"
    requested = str(run.config.get("device", "auto"))
    if run.status == "queued":
        return f"{requested} (not started yet)"
    # (a lecturer read "running · ... · device auto" and then "device cpu" as a change)
    return f"{requested} (starting)" if run.status == "running" else requested


def status_text(run: RunInfo) -> str:
    """The monitor's status line: ``**running** · step 40 of 200 · GCA-UOT on digits ·
    device cpu``. A run whose config lacks its method or data (an older store, a run of
    one's own loop) says what it has, not "None on None"."""
    method, dataset = run.config.get("method"), run.config.get("dataset")
    what = " on ".join(
        [losses.title(str(method))] * bool(method)
        + [userdata.data_label(str(dataset))] * bool(dataset)
    )
    steps = f" of {run.steps}" if run.steps else ""
    return (
        f"**{run.status}** · step {run.step}{steps} · "
        f"{f'{what} · ' if what else ''}device {device_text(run)}"
    )


def keep_valid(key: str, options: list[Any], default: Any) -> None:
    """Reset a widget's state when its value is no longer an option (a deleted run)."""
    if key in st.session_state and st.session_state[key] not in options:
        st.session_state[key] = default


def runs_table(store: RunStore, runs: list[RunInfo]) -> None:
    """Every run with its status, progress, device and latest loss and k-NN accuracy."""
    rows = []
    data = userdata.data_labels([str(r.config.get("dataset")) for r in runs])
    for r, data_text in zip(runs, data, strict=True):
        latest = store.latest_metrics(r.id)
        rows.append(
            {
                "run": r.id,
                "name": name_text(r),
                "status": r.status,
                "step": r.step,
                "progress": 100.0 * r.progress if r.steps else None,  # (a loop's unknown)
                "method": losses.title(m) if (m := r.config.get("method")) else None,
                "data": data_text,  # two uploads sent under one name told apart
                "dim": r.config.get("out_dim"),
                "device": device_text(r),
                "loss": latest.get("loss", (0, None))[1],
                "k-NN acc.": latest.get("knn_acc", (0, None))[1],
                "started": time.strftime("%d %b %H:%M", time.localtime(r.started or r.created)),
            }
        )
    with st.expander(f"All runs ({len(runs)})", expanded=len(runs) > 1):
        st.dataframe(
            rows,
            hide_index=True,
            placeholder="—",  # a metric not recorded (an external run's batch), not "None"
            column_config={  # widths in pixels: the table fits the page without scrolling
                "run": st.column_config.NumberColumn(width=36),
                "name": st.column_config.TextColumn(width=132),
                "status": st.column_config.TextColumn(width=68),
                "step": st.column_config.NumberColumn(width=46),
                "progress": st.column_config.ProgressColumn(  # 56%, not 56.27% beside 100%
                    "progress", min_value=0, max_value=100, format="%.0f%%", width=80
                ),
                "method": st.column_config.TextColumn(width=80),  # ("GCA-RINCE": titles, not ids)
                "data": st.column_config.TextColumn(width=100),
                "dim": st.column_config.NumberColumn(width=40),
                "device": st.column_config.TextColumn(width=56),
                "loss": st.column_config.NumberColumn(format="%.4f", width=60),
                "k-NN acc.": st.column_config.NumberColumn(format="%.3f", width=72),
                # (left to itself it got what was left: "06 Dec 2" at 1366 px, sidebar open)
                "started": st.column_config.TextColumn(width=100),
            },
        )


def choose_runs(runs: list[RunInfo]) -> Selection:
    """The run to watch (newest by default, or the one just launched) and runs to compare."""
    by_id = {r.id: r for r in runs}
    ids = list(by_id)

    def label(i: int) -> str:
        external = " · external" if by_id[i].external else ""
        return f"{by_id[i].label()} · {by_id[i].status}{external}"

    # The user's newest run; while only the demo runs are here, the lecture's pair compared.
    default_run, default_compare = demo.lecture_defaults(runs) or (demo.own_first(runs)[0].id, None)
    if "tr_select_next" in st.session_state:
        # A run just launched is shown; of the runs compared before, only those whose curves
        # mean the same on its charts stay (the lecture's demo run stayed beside a user's
        # run on their own file, a loss gap that meant nothing).
        new = st.session_state["tr_run"] = st.session_state.pop("tr_select_next")
        if new in by_id:
            kept = st.session_state.get("tr_compare", [])
            st.session_state["tr_compare"] = [
                i for i in kept if i in by_id and by_id[i].comparable(by_id[new])
            ]
    recover_run("tr_run", ids)
    missing_run_warning("tr_run", ids, default_run, lambda i: by_id[i].label())
    keep_valid("tr_run", ids, default_run)
    chosen = st.session_state.get("tr_run")
    shown = st.session_state.get("_tr_run_shown")  # (run, label) the box last received
    if chosen in by_id and shown and shown[0] == chosen and shown[1] != label(chosen):
        # The box keeps the text of the option it was given: hand it the value again so it
        # shows the run's new status.
        st.session_state["tr_run"] = chosen
    c_run, c_cmp = ui.wrapping("tr_run_row", 180).columns([1, 2])  # (800 px: "#2 demo-gca-inc")
    with c_run:
        run_id = ui.select("Run", "tr_run", ids, default_run, format_func=label)
    st.session_state["_tr_run_shown"] = (run_id, label(run_id))
    with c_cmp:
        others = [i for i in ids if i != run_id]
        compare = ui.multiselect(
            "Compare with",
            "tr_compare",
            others,
            [default_compare] if default_compare in others else [],
            format_func=lambda i: by_id[i].label(),
            placeholder="Other runs to draw on the same charts",
        )
    note = unlike_note(by_id[int(run_id)], [by_id[i] for i in compare])
    if note:
        st.caption(note)
    return Selection(int(run_id), tuple(compare))


_COMPARED_WORDS = {
    "dataset": "data",
    "dataset_params": "data settings",
    "batch_size": "batch size",
    "layout": "layout",
}


CURVES_UNLIKE = (
    "A loss starts near log of the batch's candidates and accuracies are measured on each "
    "run's own data, so a gap between these curves says little about the methods."
)


def _said(value: Any) -> str:
    """A config value as the note writes it: a dict as ``k=v, ...``, a value the run's
    config lacks (a recorded loop's own config) as "unknown"."""
    if value is None:
        return "unknown"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "none"
    return str(value)


def unlike_note(
    run: RunInfo,
    others: list[RunInfo],
    why: str = CURVES_UNLIKE,
    fields: tuple[str, ...] = RunInfo.COMPARED_ON,
) -> str:
    """Say which runs drawn beside ``run`` were trained on other data, batches or layout
    (:meth:`~gca_viz.runs.RunInfo.differences`, of ``fields``), then ``why`` that matters
    ("" when all are like for like). A demo run on the digits
    beside one on a user's file read as a 1.5 gap in loss with nothing said."""
    parts = []
    for other in others:
        diff = {k: v for k, v in run.differences(other).items() if k in fields}
        if not diff:
            continue
        said = []
        for field, (mine, theirs) in diff.items():
            if field == "dataset" and None not in (mine, theirs):
                mine, theirs = userdata.data_labels([str(mine), str(theirs)])
            mine, theirs = (_said(v) for v in (mine, theirs))
            said.append(f"{_COMPARED_WORDS.get(field, field)} {theirs}, not {mine}")
        parts.append(f"{other.label()} ({'; '.join(said)})")
    if not parts:
        return ""
    return f"Not like for like with {run.label()}: {', '.join(parts)}. {why}"


def _panel(store: RunStore, page: dict[str, Any]) -> tuple[Selection, list[RunInfo]]:
    """The fragment's body. ``page`` holds what the last full page run showed (empty during
    that run): a fragment rerun that differs from it reruns the page."""
    runs = store.list_runs()
    statuses = {r.id: r.status for r in runs}
    if not runs or (page and page["statuses"] != statuses):
        refresh_page()  # a run ended, started or went away: the whole page follows
    runs_table(store, runs)
    selection = choose_runs(runs)
    if page and page["selection"] != selection:
        st.rerun()
    page.update(selection=selection, statuses=statuses)
    return selection, runs


def runs_panel(store: RunStore, runs: list[RunInfo]) -> tuple[Selection, list[RunInfo]]:
    """The runs table and the run choice, refreshed while any of ``runs`` is active;
    returns the choice and the runs as the table showed them."""
    active = any(r.live for r in runs)
    panel = st.fragment(run_every=REFRESH_S if active else None)(_panel)
    shown: tuple[Selection, list[RunInfo]] = panel(store, {})
    return shown
