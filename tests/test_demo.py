"""Demo runs: a CLI run directory imports into the store; the shipped demo runs install once,
and an install that fails part way (a full disk, an unreadable file) is completed by the next
start without importing a run twice."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from gca_viz import demo
from gca_viz.runs import RunStore
from tests.helpers import run_python
from tests.tmpfs import mount_tmpfs, umount


def test_cli_run_directory_imports_as_a_finished_run(tmp_path: Path) -> None:
    out = tmp_path / "cli-run"
    cfg = {
        "steps": 4,
        "batch_size": 32,
        "out_dim": 3,
        "eval_every": 2,
        "snapshot_every": 2,
        "encoder_params": {"hidden": 32},
        "head_hidden": 32,
        "device": "cpu",
    }
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    done = run_python(
        "-m", "gca_viz", "train", "--config", str(tmp_path / "cfg.json"), "--out", str(out),
        timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    store = RunStore(tmp_path / "store", max_concurrent=1)
    run_id = store.import_directory(out, name="imported")
    info = store.get(run_id)
    assert (info.status, info.step, info.name) == ("finished", 4, "imported")
    assert info.config["out_dim"] == 3
    loss = store.metrics(run_id, ["loss"])["loss"]
    assert loss[:, 0].tolist() == [1, 2, 3, 4]
    snaps = store.snapshots(run_id, "embeddings")
    assert [s for s, _ in snaps] == [2, 4]
    arrays = store.load_snapshot(snaps[-1][1])
    assert arrays is not None and arrays["z"].shape[1] == 3
    assert (store.run_dir(run_id) / "checkpoint.pt").exists()


def test_import_rejects_a_directory_that_is_not_a_run(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "store", max_concurrent=1)
    (tmp_path / "junk").mkdir()
    with pytest.raises(ValueError, match="not a run directory"):
        store.import_directory(tmp_path / "junk")
    assert store.list_runs() == []


def test_regenerating_a_demo_run_replaces_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``generate`` into a folder that holds the run already: the new files replace the old
    ones (the CLI's --out appends to a metrics.csv that is there, so regenerating in place
    doubled every row); a run that fails leaves the old one."""
    tiny = {"method": "ince", "steps": 4, "batch_size": 32, "eval_every": 2,
            "snapshot_every": 2, "eval_subset": 50, "encoder_params": {"hidden": 32},
            "head_hidden": 32}  # fmt: skip
    monkeypatch.setitem(demo.DEMO_RUNS, "demo-tiny", tiny)
    (first,) = demo.generate(tmp_path, ["demo-tiny"])
    rows = (first / "metrics.csv").read_text().splitlines()
    (again,) = demo.generate(tmp_path, ["demo-tiny"])
    assert again == first and sorted(p.name for p in tmp_path.iterdir()) == ["demo-tiny"]
    steps = [line.split(",")[:2] for line in (again / "metrics.csv").read_text().splitlines()]
    assert steps == [line.split(",")[:2] for line in rows]  # the same rows, once each
    assert (again / "events.jsonl").read_text().count('"start"') == 1
    snaps = sorted((again / "snapshots").glob("*_embeddings.npz"))
    assert [p.name[:7] for p in snaps] == ["0000002", "0000004"]
    with np.load(snaps[-1]) as arrays:
        assert arrays["z_partner"].shape == arrays["z"].shape  # what the Geometry pin shows
    kept = (again / "metrics.csv").read_text()
    monkeypatch.setitem(demo.DEMO_RUNS, "demo-tiny", {**tiny, "method": "no-such-method"})
    with pytest.raises(subprocess.CalledProcessError):
        demo.generate(tmp_path, ["demo-tiny"])
    assert (again / "metrics.csv").read_text() == kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo-tiny"]  # no half-made run


def test_the_shipped_demo_runs_store_partner_embeddings() -> None:
    """Regenerated after snapshots began to keep each sample's positive partner (78c10ae),
    so the Geometry page shows a pinned point's partner on the runs a lecture opens."""
    for name in demo.DEMO_RUNS:
        for path in sorted((demo.ASSETS / name / "snapshots").glob("*_embeddings.npz")):
            with np.load(path) as arrays:
                assert arrays["z_partner"].shape == arrays["z"].shape, path


def test_the_shipped_demo_runs_are_their_configs_and_the_lecture_pair_differs_in_loss_only() -> (
    None
):
    """Each shipped run was trained with its :data:`demo.DEMO_RUNS` config (a stale asset
    fails here), and the lecture's pair differs in its loss only: demo-gca-ince trained at
    ε = 0.2 beside demo-ince at 0.5, and Train then called their curves not comparable."""
    shipped = {n: json.loads((demo.ASSETS / n / "config.json").read_text()) for n in demo.DEMO_RUNS}
    for name, config in shipped.items():
        wanted = demo.demo_config(name)
        assert {k: config[k] for k in wanted} == wanted, name
    first, second = (shipped[n] for n in demo.LECTURE_PAIR)
    assert {k for k in first | second if first.get(k) != second.get(k)} == {"method"}


def test_the_noisy_demo_runs_ship_their_final_encoder_and_no_optimiser(tmp_path: Path) -> None:
    """demo.WITH_ENCODER runs keep a weights-only checkpoint (the Noisy views page evaluates
    it on corrupted digits): it is the encoder that made the shipped metrics (evaluated on
    clean digits it gives them back exactly), it loads as a trained encoder, and resuming
    from it is refused by name. The other demo runs ship none."""
    import torch

    from gca_viz import experiments as ex
    from gca_viz import lab
    from gca_viz.train import TrainConfig, Trainer

    assert set(demo.WITH_ENCODER) == set(ex.NOISY_DEMOS.values())
    for name in demo.DEMO_RUNS:
        path = demo.ASSETS / name / "checkpoint.pt"
        assert path.exists() == (name in demo.WITH_ENCODER), name
    store = RunStore(tmp_path / "store")
    demo.install(store)
    for run_id in ex.demo_runs(store):
        info = store.get(run_id)
        state = torch.load(store.run_dir(run_id) / "checkpoint.pt", weights_only=True)
        assert tuple(state) == demo.WEIGHTS_ONLY_KEYS and state["step"] == info.step == 300
        last = store.latest_metrics(run_id)
        clean = ex.encoder_accuracies(store, run_id, 0.0)
        assert clean == {k: last[k][1] for k in ex.NOISY_METRICS}, info.name
        assert lab.trained_encoder(store, run_id).description.startswith(f"run #{run_id} (")
        trainer = Trainer(TrainConfig.from_dict(info.config))
        with pytest.raises(ValueError, match=r"weights only .* evaluated, not resumed"):
            trainer.load_state_dict(state)


def test_train_opens_on_the_lecture_pair_until_the_user_has_a_run() -> None:
    """While only demo runs are in the store, ``(GCA-INCE, InfoNCE)``; the newest of a
    name if imported twice; ``None`` once a run of the user's is there or the pair is not."""
    from types import SimpleNamespace as Run

    demos = [Run(id=i + 1, name=n) for i, n in enumerate(demo.DEMO_RUNS)][::-1]  # newest first
    ids = {r.name: r.id for r in demos}
    assert demo.lecture_defaults(demos) == (ids["demo-gca-ince"], ids["demo-ince"])
    again = [Run(id=9, name="demo-ince"), *demos]
    assert demo.lecture_defaults(again) == (ids["demo-gca-ince"], 9)
    assert demo.lecture_defaults([Run(id=10, name="my run"), *demos]) is None
    assert demo.lecture_defaults([r for r in demos if r.name != "demo-ince"]) is None
    assert demo.lecture_defaults([]) is None


def test_shipped_demo_runs_install_once(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "store", max_concurrent=1)
    ids = demo.install(store)
    assert len(ids) == len(demo.DEMO_RUNS)
    assert demo.install(store) == []  # only once, even after the user deletes some
    for run_id in ids:
        info = store.get(run_id)
        assert info.status == "finished" and info.step == info.config["steps"]
        assert info.config["out_dim"] == 3  # the Geometry page draws the sphere
        snaps = store.snapshots(run_id, "embeddings")
        assert len(snaps) >= 5
        z = store.load_snapshot(snaps[-1][1])["z"]  # type: ignore[index]
        np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, rtol=1e-4)
        latest = store.latest_metrics(run_id)
        assert latest["probe_acc"][1] > 0.9 and latest["knn_acc_embedding"][1] > 0.5


# ----------------------------------------------------------------- a failed first install


def _installed(store: RunStore) -> bool:
    with store._db() as db:
        return bool(db.execute("SELECT 1 FROM settings WHERE key=?", (demo._MARKER,)).fetchone())


def _assert_complete(store: RunStore, source: Path, run_id: int) -> None:
    """The run holds every metric and snapshot of the shipped run it was imported from."""
    name = store.get(run_id).name
    with open(source / name / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert store.metrics_csv(run_id).count("\n") == len(rows) + 1  # the header too
    files = sorted(p.name for p in (source / name / "snapshots").glob("*.npz"))
    stored = store.snapshots(run_id, "embeddings") + store.snapshots(run_id, "plan")
    assert sorted(p.name for _, p in stored) == files
    assert all(p.is_file() for _, p in stored)


def _assert_exactly_the_demo_set(store: RunStore, source: Path) -> None:
    runs = store.list_runs()
    assert sorted(r.name for r in runs) == sorted(demo.DEMO_RUNS)  # each once
    for run in runs:
        _assert_complete(store, source, run.id)
    # no files of a run that is not in the store (a failed import's partial copy)
    assert sorted(p.name for p in store.dir.glob("run-*")) == sorted(f"run-{r.id}" for r in runs)
    assert _installed(store)


def test_an_install_that_fails_part_way_is_completed_once_on_the_next_start(
    tmp_path: Path,
) -> None:
    """A real file-system fault: the third demo run's last snapshot is a directory, so
    copying it fails after the run's other snapshots were copied."""
    source = tmp_path / "assets"
    shutil.copytree(demo.ASSETS, source)
    third = list(demo.DEMO_RUNS)[2]
    bad = sorted((source / third / "snapshots").glob("*.npz"))[-1]
    good = bad.read_bytes()
    bad.unlink()
    (bad / "inside").mkdir(parents=True)
    store = RunStore(tmp_path / "store", max_concurrent=1)

    with pytest.raises(IsADirectoryError):
        demo.install(store, source=source)
    first = store.list_runs()
    assert sorted(r.name for r in first) == sorted(list(demo.DEMO_RUNS)[:2])
    for run in first:
        _assert_complete(store, source, run.id)
    assert sorted(p.name for p in store.dir.glob("run-*")) == sorted(f"run-{r.id}" for r in first)
    assert not _installed(store)  # the next start tries again

    shutil.rmtree(bad)  # the fault is gone
    bad.write_bytes(good)
    again = RunStore(tmp_path / "store")  # the next start of the app
    new = demo.install(again, source=source)
    assert len(new) == len(demo.DEMO_RUNS) - 2
    _assert_exactly_the_demo_set(again, source)
    assert {r.id: r.step for r in first} == {r.id: again.get(r.id).step for r in first}
    assert demo.install(again, source=source) == []


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MB tmpfs: room for the store and about two of the five demo runs (about 2 MB in
    all). Unmounted after the test."""
    disk = tmp_path / "disk"
    mount_tmpfs(disk, "size=1m")
    try:
        yield disk
    finally:
        umount(disk)


def test_a_disk_that_fills_up_during_the_install_keeps_whole_runs_and_the_next_start_completes(
    small_disk: Path,
) -> None:
    store = RunStore(small_disk / "store", max_concurrent=1)
    with pytest.raises((OSError, ValueError)) as failed:  # ENOSPC, or StoreError "disk is full"
        demo.install(store)
    print(f"\nfirst install on a full disk: {type(failed.value).__name__}: {failed.value}")
    first = store.list_runs()
    assert len(first) < len(demo.DEMO_RUNS)
    for run in first:  # whole runs only
        _assert_complete(store, demo.ASSETS, run.id)
    assert not _installed(store)
    store.close()

    remount = ["mount", "-o", "remount,size=16m", str(small_disk)]
    subprocess.run(remount, check=True, capture_output=True)  # space is back
    again = RunStore(small_disk / "store")  # the next start of the app
    assert len(demo.install(again)) == len(demo.DEMO_RUNS) - len(first)
    _assert_exactly_the_demo_set(again, demo.ASSETS)
    assert demo.install(again) == []
    again.close()


def test_installs_racing_on_one_store_import_each_demo_run_once(tmp_path: Path) -> None:
    RunStore(tmp_path / "store", max_concurrent=1)
    stores = [RunStore(tmp_path / "store") for _ in range(3)]
    results: list[list[int]] = []
    errors: list[BaseException] = []

    def start(store: RunStore) -> None:
        try:
            results.append(demo.install(store))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert sorted(len(r) for r in results) == [0, 0, len(demo.DEMO_RUNS)]
    _assert_exactly_the_demo_set(stores[0], demo.ASSETS)


def test_restore_brings_back_deleted_demo_runs_only(tmp_path: Path) -> None:
    """A demo run the user deleted stays deleted on the next start (install), and comes
    back when asked by name; a run still there is not imported twice."""
    store = RunStore(tmp_path / "store", max_concurrent=1)
    demo.install(store)
    by_name = {r.name: r.id for r in store.list_runs()}
    store.delete(by_name["demo-gca-uot-noisy"])
    assert demo.install(store) == []  # (installed once: deletions stay)
    (new,) = demo.restore(store, ["demo-gca-uot-noisy", "demo-ince-noisy"])
    again = store.get(new)
    assert again.name == "demo-gca-uot-noisy" and again.status == "finished"
    assert sorted(r.name for r in store.list_runs()) == sorted(demo.DEMO_RUNS)
    assert demo.restore(store, ["demo-ince"]) == []
    with pytest.raises(ValueError, match=r"^names: unknown demo runs \['nope'\]"):
        demo.restore(store, ["nope"])
