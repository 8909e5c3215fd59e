"""Fixtures of the page tests (AppTest, one file per page of views/): a run store with runs
trained by real run processes, shared by the Train and Geometry pages' tests; an empty store
without the demo runs; the fragments a page asked to refresh.

``st.fragment(run_every=...)`` never ticks in AppTest: every check is a full run, and
``fragment_timers`` records which fragments a run asked to refresh. The fresh store of the
app's own (``app_store``) is in tests/conftest.py, the helpers in tests/helpers.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import streamlit as st

from gca_viz.runs import ACTIVE, RunStore
from tests.helpers import kill_runs, store_without_demos, wait_for_run

TINY: dict[str, Any] = {
    "batch_size": 96,  # more than the 64 pairs a plan snapshot keeps
    "steps": 30,
    "encoder_params": {"hidden": 32},
    "head_hidden": 32,
    "device": "cpu",
    "eval_every": 10,
    "snapshot_every": 10,
    "checkpoint_every": 30,
    "eval_subset": 120,
}


@pytest.fixture(scope="session")
def trained_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with three finished-or-failed runs, trained through ``RunStore.launch`` (real
    background processes): 1 (sphere: a 3-D run on the digits, device "auto"), 2 (eight-d:
    8-D on the multi-domain digits), 3 (broken: the domain prior on data without domains)."""
    path = tmp_path_factory.mktemp("store")
    store_without_demos(path)
    store = RunStore(path, max_concurrent=2)
    store.launch({**TINY, "method": "gca_ince", "out_dim": 3, "device": "auto",
                  "loss_params": {"epsilon": 0.5, "n_iter": 5}}, name="sphere")  # fmt: skip
    store.launch({**TINY, "method": "ince", "out_dim": 8, "dataset": "multidomain_digits"},
                 name="eight-d")  # fmt: skip
    store.launch({**TINY, "method": "ince", "out_dim": 3, "target": "domain"}, name="broken")
    try:
        # The third run waits in the queue until a finishing run frees a slot and starts it.
        wait_for_run(store, lambda: all(r.status not in ACTIVE for r in store.list_runs()),
                     "the runs")  # fmt: skip
    finally:
        kill_runs(path)
    status = {r.id: r.status for r in store.list_runs()}
    assert status == {1: "finished", 2: "finished", 3: "failed"}, store.get(3).error
    return path


@pytest.fixture
def store_env(trained_store: Path, app_env: Callable[[Path], None]) -> Path:
    """The pages on :func:`trained_store`."""
    app_env(trained_store)
    return trained_store


@pytest.fixture
def no_demo_store(app_store: Path) -> Path:
    """The pages on an empty store of the test's own whose demo runs count as installed
    (none are imported): the test sees exactly the runs it makes."""
    store_without_demos(app_store)
    return app_store


@pytest.fixture
def fragment_timers(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """``{function name: run_every}`` of the fragments the pages made in their last run."""
    timers: dict[str, Any] = {}
    real = st.fragment

    def recording(func: Any = None, **kw: Any) -> Any:
        def wrap(f: Any) -> Any:
            timers[f.__name__] = kw.get("run_every")
            return real(f, **kw)

        return wrap if func is None else wrap(func)

    monkeypatch.setattr(st, "fragment", recording)
    return timers
