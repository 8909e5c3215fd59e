"""Train page, part 3: what can be done with the selected run. Stop, resume and delete it,
download its metrics, config and embeddings, read why it failed, launch an edited copy.
An external run (a loop of its own, recorded with ``gca_viz.watch.Recorder``) has no
resume and no copy, and its Stop only asks the loop to stop."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

import streamlit as st

import ui
from gca_viz import data, demo, userdata
from gca_viz.experiments.noisy import NOISY_DEMOS
from gca_viz.figures.training import describe_change
from gca_viz.runs import ACTIVE, RESUMABLE, RunInfo, RunStore, run_loss
from views._train_launch import announce_launch


def act(action: Callable[[], Any], done: str) -> None:
    """Run a store action; its ``ValueError`` is an ``st.error``, success reruns the page."""
    try:
        action()
    except ValueError as exc:
        st.error(str(exc), icon=":material/error:")
        return
    st.toast(done)
    st.rerun()


def _delete(store: RunStore, run_id: int) -> None:
    """Delete the run shown; the chooser lets it go (deleted here: nothing to warn about,
    unlike a run deleted from another tab, views/_run_link.py)."""
    store.delete(run_id)
    st.session_state.pop("tr_run", None)
    # ... nor the link the chooser wrote (tr_run=<id>: it read as a link to a missing run)
    if st.query_params.get("tr_run") == str(run_id):
        del st.query_params["tr_run"]


def embeddings_npz(store: RunStore, run_id: int) -> Callable[[], bytes]:
    """The embeddings download, built only when the button is pressed."""

    def build() -> bytes:
        with tempfile.TemporaryDirectory() as tmp:
            return store.export(run_id, tmp)["embeddings"].read_bytes()

    return build


def controls(store: RunStore, info: RunInfo, columns: Sequence[Any]) -> None:
    """Stop, Resume and Delete buttons, in three ``columns`` (containers: the same one thrice
    puts them in a row)."""
    run_id = info.id
    b_stop, b_resume, b_delete = columns
    with b_stop:
        if st.button(
            "Stop",
            key="tr_stop",
            icon=":material/stop:",
            disabled=info.status not in ACTIVE,
            help=EXTERNAL_STOP
            if info.external
            else "Finishes the current step, saves a checkpoint and stops.",
        ):
            act(lambda: store.stop(run_id), f"Stopping run #{run_id}…")
    with b_resume:
        if st.button(
            "Resume",
            key="tr_resume",
            icon=":material/replay:",
            disabled=info.external or info.status not in RESUMABLE,
            help="An external run continues only by running its script again."
            if info.external
            else "Its process still lives, silent (suspended?): Resume stops it and goes on "
            "from the last checkpoint; left alone, it takes the run back when it answers."
            if info.silent
            else "Continue from the last checkpoint.",
        ):
            act(lambda: store.resume(run_id), f"Resuming run #{run_id}")
    with b_delete, st.popover("Delete", icon=":material/delete:", disabled=info.status in ACTIVE):
        st.markdown(f"Delete run **#{run_id}** with its metrics, snapshots and checkpoint?")
        if info.name in NOISY_DEMOS.values():
            st.caption(
                "It shipped with the app: Noisy views compares it with its pair (and offers "
                "to restore it once it is deleted)."
            )
        elif info.name in demo.DEMO_RUNS:
            st.caption(
                "It shipped with the app: Train and Geometry open on the demo runs while the "
                "store holds nothing else."
            )
        if (sole := store.sole_upload(run_id)) is not None:
            st.caption(
                f"Its uploaded data, {userdata.data_label(str(sole))}, goes too: no other run "
                "uses it (the Run (zip) download keeps it)."
            )
        if st.button("Delete for good", key="tr_delete", type="primary"):
            act(lambda: _delete(store, run_id), f"Deleted run #{run_id}")


def downloads(store: RunStore, info: RunInfo, columns: Sequence[Any], changed: str) -> None:
    """Metrics CSV, config JSON, embeddings NPZ and the whole run as a zip, in four
    ``columns``; ``changed``: its live changes in words (:func:`live_changes_text`)."""
    run_id = info.id
    b_csv, b_cfg, b_npz, b_zip = columns
    with b_csv:
        st.download_button(
            "Metrics CSV",
            lambda: store.metrics_csv(run_id),
            f"run-{run_id}-metrics.csv",
            "text/csv",
            key="tr_dl_csv",
            icon=":material/download:",
            on_click="ignore",
        )
    with b_cfg:
        st.download_button(
            "Config JSON",
            # made on click, as the others: an eager file was deleted by Streamlit's media
            # cleanup while a rerun's browser still checked its URL (a console 404)
            lambda: json.dumps(info.config, indent=2, sort_keys=True),
            f"run-{run_id}-config.json",
            "application/json",
            key="tr_dl_cfg",
            icon=":material/download:",
            on_click="ignore",
            help="The configuration the run started with"
            + (f"; it changed while it trained: {changed}" if changed else "")
            + ". Run (zip) holds the run whole, live changes included.",
        )
    with b_npz:
        st.download_button(
            "Embeddings NPZ",
            embeddings_npz(store, run_id),
            f"run-{run_id}-embeddings.npz",
            "application/octet-stream",
            key="tr_dl_npz",
            icon=":material/download:",
            on_click="ignore",
            help="Every embedding snapshot: z (snapshots, n, d), steps, y, domain.",
        )
    with b_zip:
        st.download_button(
            "Run (zip)",
            lambda: store.export_zip(run_id),
            f"run-{run_id}.zip",
            "application/zip",
            key="tr_dl_zip",
            icon=":material/download:",
            on_click="ignore",
            help="The run whole: config, live changes, metrics, every snapshot and the "
            f"checkpoint. `python -m gca_viz import run-{run_id}.zip` adds it to another "
            "app's runs (`python -m gca_viz export` writes the same from a terminal).",
        )


def action_row(store: RunStore, info: RunInfo, changed: str) -> None:
    """The buttons in one row: run controls, then downloads; for an external run, a line
    saying what that means and the notes its recorder left. ``changed``: the run's live
    changes in words (:func:`live_changes_text`)."""
    # one row of buttons at their own widths, wrapping when the page is narrow (six equal
    # columns cut "Embeddings NPZ" to "Embeddi…" at 1280 px and three labels at 1024)
    row = st.container(horizontal=True, gap="small", key="tr_actions")
    controls(store, info, [row] * 3)
    downloads(store, info, [row] * 4, changed)
    if info.external:
        external_note(store, info)
    else:  # (a process that answered again after it was marked interrupted)
        run_notes(store, info, "Run notes", ":material/info:")


EXTERNAL_STOP = (
    "Asks the loop to stop: its Recorder's should_stop turns true at its next rec.step; "
    "the loop decides when to end."
)


def external_note(store: RunStore, info: RunInfo) -> None:
    """One line on an external run, and the warnings its recorder left (bad input, a
    store it could not write)."""
    rec = info.config.get("recorder", {})
    where = f"pid {info.pid} on {rec.get('host', '?')}"
    steer = (
        "live changes apply to its gca_viz loss at its next rec.step"
        if rec.get("steerable")
        else "it has no live controls (its Recorder was given no gca_viz loss)"
    )
    if info.status in ACTIVE:
        tail = f"Stop asks the loop to stop; it cannot be resumed or duplicated from here; {steer}."
    else:  # (Stop and live changes said on a run that had ended)
        tail = f"The loop has ended ({info.status}): it cannot be resumed or duplicated from here."
    st.caption(
        f":material/open_in_new: External run: your own training loop ({where}) records it "
        f"with gca_viz.watch.Recorder. {tail}"
    )
    run_notes(store, info, "Recorder notes", ":material/warning:")


def run_notes(store: RunStore, info: RunInfo, title: str, icon: str) -> None:
    """The notes the store keeps on the run (:meth:`RunStore.events`), folded under
    ``title``, if there are any."""
    notes = store.events(info.id)
    if notes:
        with st.expander(f"{title} ({len(notes)})", icon=icon):
            ui.table([{"step": e["step"], "note": e["message"]} for e in notes])


def problems(info: RunInfo) -> None:
    """Why a failed run failed (with its traceback) or how an interrupted one can go on."""
    if info.status == "failed":
        last = _last_line(info.error) or "unknown error"
        st.error(f"Run #{info.id} failed: {last}", icon=":material/error:")
        with st.expander("Error details: the run process's traceback"):
            st.code(info.error or "", language="text")
    elif info.status == "interrupted" and info.silent:
        st.warning(
            f"Run #{info.id} stopped answering ({info.error}), but its process {info.pid} "
            "still lives (suspended, or too busy to send its heartbeat): it goes on by itself "
            "when it answers again. Resume replaces it, from its last checkpoint.",
            icon=":material/hourglass:",
        )
    elif info.status == "interrupted":
        then = "run its script again" if info.external else "resume it from its last checkpoint"
        st.warning(
            f"Run #{info.id} was interrupted ({info.error}); {then}.", icon=":material/warning:"
        )
    elif info.external and info.status == "stopped" and _last_line(info.error) == CTRL_C:
        # (it read as the app's Stop; the store keeps where the loop was)
        st.info(f"Run #{info.id} stopped on Ctrl-C in its loop.", icon=":material/keyboard:")
        with st.expander("Where the loop was: its traceback"):
            st.code(info.error or "", language="text")


CTRL_C = "KeyboardInterrupt"  # the last line of the traceback of a loop ended by Ctrl-C


def _last_line(text: str | None) -> str:
    lines = (text or "").strip().splitlines()
    return lines[-1].strip() if lines else ""


def duplicate(store: RunStore, info: RunInfo, changed: str) -> None:
    """Edit the run's configuration as JSON and launch the copy as a new run (not for an
    external run: the app cannot train its loop); ``changed``: as for :func:`action_row`."""
    if info.external:
        return
    with st.expander("Duplicate with changes", icon=":material/content_copy:"):
        st.caption("Edit any field of this run's configuration and launch the copy as a new run.")
        if changed:
            st.caption(
                f":material/info: This is the configuration run #{info.id} started with; it "
                f"changed while it trained ({changed}). Edit loss_params to start the copy "
                "with those settings."
            )
        text = st.text_area(
            "Configuration (JSON)",
            json.dumps(info.config, indent=2, sort_keys=True),
            height=320,
            key=f"tr_dup_{info.id}",
        )
        if st.button("Launch the copy", key="tr_dup_launch", icon=":material/play_arrow:"):
            try:
                edited = json.loads(text)
                if not isinstance(edited, dict):
                    raise ValueError("the configuration must be a JSON object of fields")
                edited = confined_data(store, edited)
                new_id = store.duplicate(
                    info.id, **{k: v for k, v in edited.items() if info.config.get(k) != v}
                )
            except json.JSONDecodeError as exc:
                st.error(f"The configuration is not valid JSON: {exc}", icon=":material/error:")
            except ValueError as exc:
                st.error(f"Cannot launch the copy: {exc}", icon=":material/error:")
            else:
                announce_launch(new_id)
                st.rerun()


def confined_data(store: RunStore, config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with its ``dataset``, when a path, resolved inside the store's directory,
    where the app's uploads and data folder live: the app reads nothing outside it (a
    duplicate's edited path trained on any file the server could read).

    Raises:
        ValueError: naming ``dataset``, for a path that leaves the directory or is missing.
    """
    name = config.get("dataset", "digits")
    if isinstance(name, str) and name in data.DATASETS:
        return config
    try:
        path = userdata.resolve_data_path(store.dir, str(name))
    except ValueError as exc:
        raise ValueError(
            f"dataset: {exc}. Copy the data into {store.dir / 'datasets'} and name it there"
        ) from None
    return {**config, "dataset": str(path)}


def live_changes_text(store: RunStore, run_id: int) -> str:
    """The run's live changes in words, ``"from step 51: ε 0.5 → 0.2"`` joined by ``"; "``
    (``""`` if none): what its configuration, the settings it started with, leaves out."""
    changes = store.applied_changes(run_id)
    if not changes:
        return ""
    try:
        before = dict(run_loss(store.get(run_id)).params)
    except ValueError:  # a recorded loop's loss that is not a gca_viz loss
        before = {}
    parts = []
    for change in changes:
        shown = {k: v for k, v in change.items() if k != "step"}
        parts.append(f"from step {change['step']}: {describe_change(shown, before)}")
        before |= shown
    return "; ".join(parts)
