"""Shared fixtures for the test suite (the helpers they use are in tests/helpers.py)."""

import os
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from gca_viz.train import set_threads
from tests.helpers import REPO_ROOT, kill_runs

# One intra-op thread for the test process: the tests use small tensors, and the suite also
# runs subprocesses (CLI runs, torchrun ranks) whose threads would otherwise compete with
# spinning OpenMP workers here, which slows small steps down by an order of magnitude.
set_threads(1)

# No warm-up of the projection engines (UMAP's numba compile, about 35 s of CPU on a cold
# cache) in the app tests and the browser tests' servers, which inherit this environment;
# the tests of the warm-up turn it on (tests/test_pages_warm_up.py).
os.environ["GCA_WARM_UP"] = "0"

SEED = 0


@pytest.fixture(autouse=True)
def _seed_everything() -> Iterator[None]:
    """Seed Python, numpy and torch before every test, so every test is reproducible."""
    random.seed(SEED)
    np.random.seed(SEED)  # noqa: NPY002 - the legacy global RNG is what libraries fall back to
    torch.manual_seed(SEED)
    yield


@pytest.fixture
def app_env(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], None]:
    """``use(path)`` points the app's pages at the store directory ``path`` and clears the
    Streamlit caches (imported here only when an app test asks for it)."""
    import streamlit as st

    def use(path: Path) -> None:
        monkeypatch.setenv("GCA_RUNS_DIR", str(path))
        st.cache_resource.clear()
        st.cache_data.clear()

    return use


@pytest.fixture
def runs_dir(tmp_path: Path) -> Iterator[Path]:
    """A fresh run store directory (``tmp_path/runs``, not created yet); afterwards its queued
    runs are cancelled and every run process started in it is killed."""
    path = tmp_path / "runs"
    yield path
    kill_runs(path)


@pytest.fixture
def app_store(runs_dir: Path, app_env: Callable[[Path], None]) -> Iterator[Path]:
    """The app's pages on an empty run store of the test's own (``runs_dir``: the demo runs
    are imported into it when a page first opens it), with no Streamlit cache left from
    another test; afterwards every run the test started is killed and the caches cleared."""
    import streamlit as st

    app_env(runs_dir)
    yield runs_dir
    st.cache_data.clear()
    st.cache_resource.clear()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root (where app.py and .streamlit/ live)."""
    return REPO_ROOT
