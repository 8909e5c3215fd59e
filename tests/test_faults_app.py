"""Faults the app must survive (issue 8: the app keeps working, shows what happened, loses no
finished run's data), each made real rather than mocked:

* a checkpoint write that fails (a directory where the file goes; a file-size limit,
  ``RLIMIT_FSIZE``, in a subprocess) leaves the previous checkpoint and no temporary file;
* a run store that cannot be opened (a damaged database file, a file where the directory
  should be, a read-only file system: a tmpfs mounted read-only, skipped where ``mount`` is
  not permitted; ``chmod`` would not stop root) is an ``st.error`` naming the directory and
  the problem on the pages that need runs, while the other pages keep working, and the app
  opens the store once the fault is gone, without a restart;
* demo runs that do not fit on a full disk (a 1 MB tmpfs) are a warning, and the next start
  completes the set;
* the Train page's live monitor shows a store that cannot be read now as an error and keeps
  polling, without the rerun loop it keeps for a run deleted meanwhile.

The app is driven with AppTest (``GCA_RUNS_DIR`` points at the store; Streamlit's caches
are cleared, as a fresh app process would have them).
"""

from __future__ import annotations

import subprocess
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import streamlit as st
import torch
from streamlit.testing.v1 import AppTest

from gca_viz import demo
from gca_viz.runs import RunStore
from gca_viz.train import TrainConfig, Trainer
from tests import test_train as train_tests
from tests.helpers import REPO_ROOT, add_run, run_python, texts
from tests.plotly_json import live_figures
from tests.tmpfs import mount_tmpfs, umount

APP = str(REPO_ROOT / "app.py")
SMALL = {**train_tests.SMALL, "batch_size": 32, "steps": 4, "out_dim": 8}


# ------------------------------------------------------------------------ checkpoints


def test_a_checkpoint_that_cannot_be_renamed_into_place_leaves_no_temporary_file(
    tmp_path: Path,
) -> None:
    trainer = Trainer(TrainConfig.from_dict(SMALL))
    trainer.train_step()
    target = tmp_path / "checkpoint.pt"
    (target / "in-the-way").mkdir(parents=True)  # a directory where the file goes
    with pytest.raises(OSError):
        trainer.save_checkpoint(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]  # no .tmp
    assert (target / "in-the-way").is_dir()  # what was there is left alone


_FSIZE_SCRIPT = """
import resource, sys
from pathlib import Path
from gca_viz.train import TrainConfig, Trainer

out = Path(sys.argv[1])
trainer = Trainer(TrainConfig.from_dict({config}))
trainer.train_step()
trainer.save_checkpoint(out / "checkpoint.pt")  # step 1: the previous checkpoint
trainer.train_step()
hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, hard))
try:
    trainer.save_checkpoint(out / "checkpoint.pt")  # step 2: fails part way
except BaseException as exc:
    print("save failed:", type(exc).__name__, exc)
    sys.exit(3)
print("save succeeded")
"""


def test_a_checkpoint_write_past_the_file_size_limit_keeps_the_previous_one(
    tmp_path: Path,
) -> None:
    """The write itself fails part way (``EFBIG``: Python ignores ``SIGXFSZ``), so without
    the clean-up a truncated ``checkpoint.pt.tmp`` would stay behind."""
    limit = 16 * 1024
    script = _FSIZE_SCRIPT.format(config=repr(SMALL), limit=limit)
    done = run_python("-c", textwrap.dedent(script), str(tmp_path))
    assert done.returncode == 3, done.stdout + done.stderr
    assert "save failed" in done.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]  # no .tmp
    ckpt = tmp_path / "checkpoint.pt"
    assert ckpt.stat().st_size > limit  # the limit did cut the second write short
    assert torch.load(ckpt, weights_only=True)["step"] == 1  # the previous one, whole


# ------------------------------------------------------------ a store that cannot open


@pytest.fixture
def mounts(tmp_path: Path) -> Iterator[list[Path]]:
    """Mount points to unmount after the test."""
    points: list[Path] = []
    yield points
    st.cache_resource.clear()  # the app's store holds a connection open on the disk
    for where in reversed(points):
        umount(where)


BROKEN = ["damaged database", "file in place of the directory", "read-only file system"]


def _broken_store(kind: str, tmp_path: Path, mounts: list[Path]) -> tuple[Path, str]:
    """A data directory the store cannot open, and what the error must say about it."""
    if kind == "damaged database":
        data = tmp_path / "runs"
        data.mkdir()
        (data / "runs.db").write_bytes(b"these bytes are not an SQLite database\n" * 100)
        return data, "not an SQLite database"
    if kind == "file in place of the directory":
        data = tmp_path / "runs"
        data.write_text("a file, not a directory\n")
        return data, f"{data} is a file, not a directory"
    data = tmp_path / "ro"
    mount_tmpfs(data, "ro,size=1m")
    mounts.append(data)
    return data, "not writable (a read-only file system"


@pytest.mark.parametrize("kind", BROKEN)
def test_a_store_that_cannot_be_opened_is_an_error_and_other_pages_keep_working(
    kind: str, tmp_path: Path, app_env: Callable[[Path], None], mounts: list[Path]
) -> None:
    data, problem = _broken_store(kind, tmp_path, mounts)
    app_env(data)
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()  # the default page: the story, which offers a demo run but needs none
    assert not at.exception, [e.message for e in at.exception]
    sidebar = texts(at.sidebar.error)  # the status strip, on every page
    assert str(data) in sidebar and problem in sidebar, sidebar
    assert "GCA_RUNS_DIR" in sidebar
    assert "story_p1" in live_figures(at), "the story draws its figures"

    for page in ("train", "geometry"):  # pages that need the store
        at.switch_page(f"views/{page}.py")
        at.run()
        assert not at.exception, (page, [e.message for e in at.exception])
        text = texts(at.main.error)
        assert str(data) in text and problem in text, (page, text)
        assert "cannot be opened" in text and "GCA_RUNS_DIR" in text
        # only the error: no empty-store content (a launch form, "No runs yet") below it
        assert not at.main.button and "No runs yet" not in texts(at.info), page

    at.switch_page("views/entropy.py")  # a page that needs no store
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert not at.main.error and "ent_chart_entropy" in live_figures(at)
    assert problem in texts(at.sidebar.error)  # what happened is still in view


def test_pages_that_need_no_store_keep_working_and_a_fixed_store_opens_without_restart(
    tmp_path: Path, app_env: Callable[[Path], None]
) -> None:
    data = tmp_path / "runs"
    data.mkdir()
    damaged = b"these bytes are not an SQLite database\n" * 100
    (data / "runs.db").write_bytes(damaged)
    app_env(data)
    at = AppTest.from_file(APP, default_timeout=120)
    at.switch_page("views/plan_lab.py")
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert "lab_chart_player" in live_figures(at), "the plan lab draws its plans"
    assert "not an SQLite database" in texts(at.main.error)
    source = at.sidebar.selectbox(key="lab_source")
    source.set_value("snapshot").run()  # runs as a source: none to offer, and no traceback
    assert not at.exception, [e.message for e in at.exception]

    (data / "runs.db").rename(data / "runs.db.damaged")  # what the message suggests
    at.switch_page("views/train.py")
    at.run()  # the same app process: the store opens now, demo runs and all
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, texts(at.error)
    store = RunStore(data)
    assert sorted(r.name for r in store.list_runs()) == sorted(demo.DEMO_RUNS)
    assert (data / "runs.db.damaged").read_bytes() == damaged  # nothing of it was touched


def test_demo_runs_that_do_not_fit_are_a_warning_and_the_next_start_completes_them(
    tmp_path: Path, app_env: Callable[[Path], None], mounts: list[Path]
) -> None:
    disk = tmp_path / "disk"
    mount_tmpfs(disk, "size=1m")  # room for the store and about two of the five demo runs
    mounts.append(disk)
    app_env(disk)
    at = AppTest.from_file(APP, default_timeout=120)
    at.switch_page("views/train.py")
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    warning = texts(at.main.warning)
    assert "demo runs could not all be installed" in warning and str(disk) in warning
    assert "No space left" in warning or "disk is full" in warning, warning
    assert not at.main.error
    reader = RunStore(disk)
    first = reader.list_runs()
    reader.close()
    assert 0 < len(first) < len(demo.DEMO_RUNS)
    assert "No runs yet" not in texts(at.info)  # the ones that fit are shown ...

    st.cache_resource.clear()  # ... the app stops (its store closes) ...
    subprocess.run(["mount", "-o", "remount,size=16m", str(disk)], check=True)
    app_env(disk)  # ... and starts again with room on the disk
    at = AppTest.from_file(APP, default_timeout=120)
    at.switch_page("views/train.py")
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert not at.main.warning and not at.main.error
    reader = RunStore(disk)
    runs = reader.list_runs()
    reader.close()
    assert sorted(r.name for r in runs) == sorted(demo.DEMO_RUNS)  # each exactly once
    assert {r.id for r in first} <= {r.id for r in runs}


# ------------------------------------------------------------------------ the monitor


def _monitor_script(store: object, view: object) -> None:
    """The Train page's live monitor as its fragment runs it, counting script runs (a rerun
    loop is cut off after a few, so the test ends either way). AppTest runs its source alone,
    so it imports what it uses and its annotations are builtins."""
    import streamlit as st

    from views._train_monitor import REFRESH_S, live_monitor

    st.session_state["script_runs"] = st.session_state.get("script_runs", 0) + 1
    if st.session_state["script_runs"] > 4:
        st.write("rerun loop cut off")
        st.stop()
    st.fragment(run_every=REFRESH_S)(live_monitor)(store, view)


def _monitored_run(tmp_path: Path) -> tuple[RunStore, Any, int]:
    from views._train_monitor import MonitorView

    store = RunStore(tmp_path / "store")
    demo.install(store, source=tmp_path / "no-demo-runs")  # none: only the run below
    config = {**SMALL, "method": "gca_ince", "steps": 30}
    run_id = add_run(store, name="watched", config=config, status="finished", step=30)
    with store._db(write=True) as db:
        db.execute(
            "INSERT INTO metrics (run_id, step, name, value) VALUES (?, 30, 'loss', 1.5)",
            (run_id,),
        )
    view = MonitorView(run_id, (), "finished", ("loss",), 0.6, "plan", True, True)
    return store, view, run_id


def test_the_monitor_shows_a_store_it_cannot_read_and_keeps_polling_without_a_rerun_loop(
    tmp_path: Path,
) -> None:
    store, view, run_id = _monitored_run(tmp_path)
    at = AppTest.from_function(_monitor_script, args=(store, view), default_timeout=60)
    at.run()
    assert not at.exception and not at.error, [e.message for e in at.exception]
    assert "step 30 of 30" in at.get("progress")[0].proto.text
    assert at.session_state["script_runs"] == 1

    db_file = store.db_path
    good = db_file.read_bytes()
    with open(db_file, "r+b") as fh:  # a damaged file: the header is overwritten
        fh.write(b"these bytes are not an SQLite database")
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert at.session_state["script_runs"] == 2  # one run, no rerun loop
    text = texts(at.error)
    assert f"Run #{run_id} cannot be shown now" in text and "not an SQLite database" in text
    assert str(store.dir) in text and "tries again every 1.5 s" in text
    assert not at.get("progress")

    with open(db_file, "r+b") as fh:  # repaired: the next poll draws the run again
        fh.write(good[:64])
    at.run()
    assert not at.exception and not at.error, [e.message for e in at.exception]
    assert "step 30 of 30" in at.get("progress")[0].proto.text
    assert at.session_state["script_runs"] == 3


def test_the_monitor_reruns_the_page_when_its_run_was_deleted(tmp_path: Path) -> None:
    store, view, run_id = _monitored_run(tmp_path)
    at = AppTest.from_function(_monitor_script, args=(store, view), default_timeout=60)
    at.run()
    assert at.session_state["script_runs"] == 1
    store.delete(run_id)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error  # a deleted run is not a fault: the whole page runs again
    assert at.session_state["script_runs"] > 2
