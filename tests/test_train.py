"""Tests of the training engine (gca_viz.train), its CLI and torchrun scale-out."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from gca_viz import distributed, losses, metrics
from gca_viz.train import Callback, ConfigError, TrainConfig, Trainer, build_loss, copy_config
from tests.helpers import REPO_ROOT
from tests.test_data import write_user_data

# A small, fast configuration: digits, a narrow MLP, batches of 64.
SMALL = {
    "batch_size": 64,
    "steps": 50,
    "encoder_params": {"hidden": 64},
    "head_hidden": 64,
    "out_dim": 16,
    "device": "cpu",
    "eval_every": 0,
    "snapshot_every": 0,
    "checkpoint_every": 0,
}


def small(**changes: Any) -> TrainConfig:
    return TrainConfig.from_dict({**SMALL, **changes})


def _fixed_batch_loss(trainer: Trainer, idx: torch.Tensor, seed: int) -> float:
    """The training loss on one fixed batch and fixed views (no parameter change)."""
    gen = torch.Generator().manual_seed(seed)
    x = trainer.x_train[idx]
    v1, v2 = trainer.augment(x, gen), trainer.augment(x, gen)
    state = {k: v.clone() for k, v in trainer.model.state_dict().items()}  # BN buffers
    with torch.no_grad():
        value = float(trainer._loss(v1, v2, idx))
    trainer.model.load_state_dict(state)
    return value


@pytest.mark.parametrize("method", list(losses.LOSSES))
def test_fifty_steps_lower_the_loss(method: str) -> None:
    trainer = Trainer(small(method=method))
    idx = torch.arange(64)
    before = _fixed_batch_loss(trainer, idx, seed=3)
    for _ in range(50):
        trainer.train_step()
    after = _fixed_batch_loss(trainer, idx, seed=3)
    assert np.isfinite(after)
    assert after < before - 1e-3, (method, before, after)


def test_composed_loss_trains() -> None:
    cfg = small(
        method="composed",
        stages={"cost": "cosine", "projection": "unbalanced", "divergence": "kl"},
        loss_params={"epsilon": 0.3, "n_iter": 5},
    )
    trainer = Trainer(cfg)
    idx = torch.arange(64)
    before = _fixed_batch_loss(trainer, idx, seed=4)
    for _ in range(50):
        trainer.train_step()
    assert _fixed_batch_loss(trainer, idx, seed=4) < before


def test_a_composed_loss_without_stages_names_every_missing_one_with_an_example() -> None:
    """--method composed without --stages named one missing stage per attempt (the cost,
    then the projection, ...): all are named at once, with an example of the format that
    completes what was given and builds, and the names each stage takes."""
    with pytest.raises(ValueError) as none:
        build_loss(small(method="composed"))
    message = str(none.value)
    assert message.startswith("stages must name the cost, projection and divergence of a "
                              "composed loss: --stages '")  # fmt: skip
    example = json.loads(message.split("--stages '")[1].split("'")[0])
    assert example == {"cost": "cosine", "projection": "sinkhorn", "divergence": "kl"}
    for kind, registry in (("cost", losses.COSTS), ("projection", losses.PROJECTIONS),
                           ("divergence", losses.DIVERGENCES)):  # fmt: skip
        assert f"{kind}: {', '.join(registry)}" in message
    built = build_loss(small(method="composed", stages=example))
    assert {k: s.name for k, s in built.stages.items()} == {**example, "target": "pairs"}
    with pytest.raises(ValueError, match=r"^stages must name the projection and divergence of "
                       r"a composed loss: --stages '\{\"cost\": \"sqeuclidean\", "):  # fmt: skip
        build_loss(small(method="composed", stages={"cost": "sqeuclidean"}))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"target": "class"}, r"^stages: the target prior is the config's target field.*"
                              r"move 'class' to target \(--target class\)"),
        ({"bogus": "x"}, r"^stages: unknown key \['bogus'\]; a composed loss's stages are "
                         r"\['cost', 'projection', 'divergence'\]"),
    ],
    ids=["target", "unknown"],
)  # fmt: skip
def test_a_composed_loss_refuses_stages_it_would_not_use(extra: dict, message: str) -> None:
    """A "target" key in stages was kept in the config and dropped from the loss, which
    trained with the pairs target; an unknown key was dropped without a word."""
    stages = {"cost": "cosine", "projection": "unbalanced", "divergence": "kl", **extra}
    with pytest.raises(ValueError, match=message):
        TrainConfig.from_dict({"method": "composed", "stages": stages})


def test_short_run_beats_random_encoder_knn_on_the_sphere() -> None:
    """On the 3-D sphere the app draws, a random encoder's k-NN accuracy is near chance;
    200 steps of INCE lift it by a wide margin (measured ~0.32 -> ~0.8)."""
    cfg = TrainConfig(method="ince", out_dim=3, steps=200, device="cpu", seed=1)
    trainer = Trainer(cfg)

    def knn() -> float:
        _, z_tr = trainer.embed(trainer.train_set.x)
        _, z_te = trainer.embed(trainer.test_set.x)
        return metrics.knn_accuracy(z_tr, trainer.train_set.y, z_te, trainer.test_set.y)

    random_acc = knn()
    for _ in range(200):
        trainer.train_step()
    trained_acc = knn()
    assert random_acc < 0.5
    assert trained_acc > random_acc + 0.25, (random_acc, trained_acc)


def test_evaluate_reports_every_metric_with_domains() -> None:
    trainer = Trainer(small(dataset="multidomain_digits", steps=5))
    logs = trainer.evaluate()
    expected = {
        "knn_acc",
        "knn_acc_embedding",
        "probe_acc",
        "alignment",
        "uniformity",
        "embedding_std",
        "effective_rank",
        "domain_acc",
    }
    assert expected <= set(logs)
    assert all(np.isfinite(v) for v in logs.values())
    assert 0.0 <= logs["domain_acc"] <= 1.0


@pytest.mark.parametrize("method", ["gca_uot", "byol"])
def test_resume_continues_exactly(method: str, tmp_path: Path) -> None:
    """Checkpoint at step 12, restore in a fresh Trainer, continue: identical to never
    stopping (weights, optimiser, RNG streams, live changes)."""
    cfg = small(method=method, steps=24)
    full = Trainer(cfg)
    for _ in range(12):
        full.train_step()
    if method == "gca_uot":
        full.apply_changes({"epsilon": 0.3, "relax_a": 0.5})
    full.save_checkpoint(tmp_path / "ck.pt")
    rest_full = [full.train_step()["loss"] for _ in range(12)]

    resumed = Trainer(copy_config(cfg))
    resumed.load_checkpoint(tmp_path / "ck.pt")
    assert resumed.step == 12
    rest_resumed = [resumed.train_step()["loss"] for _ in range(12)]
    assert rest_resumed == rest_full
    for (k, a), b in zip(
        full.model.state_dict().items(), resumed.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), k
    if method == "gca_uot":
        assert resumed.loss_fn.params["epsilon"] == 0.3
        assert resumed.changes == full.changes


def test_a_loss_without_a_plan_saves_no_plan_snapshot() -> None:
    """BYOL (projection none) saved its kernel as "the plan": the Train page showed a plan
    with a marginal error of 1e4 and told the user that a smaller ε would sharpen it."""
    byol, ince = Trainer(small(method="byol", steps=2)), Trainer(small(steps=2))
    assert not byol.loss_fn.has_plan and ince.loss_fn.has_plan
    for trainer in (byol, ince):
        trainer.train_step()
    assert byol.snapshot_plan() == {} and "plan" in ince.snapshot_plan()
    assert byol.snapshot_embeddings()  # its embeddings are still snapshotted


def test_checkpoint_loads_with_weights_only(tmp_path: Path) -> None:
    trainer = Trainer(small(steps=2))
    trainer.train_step()
    trainer.save_checkpoint(tmp_path / "ck.pt")
    state = torch.load(tmp_path / "ck.pt", weights_only=True)
    assert state["step"] == 1
    assert TrainConfig.from_json(state["config"]) == trainer.config


def test_live_change_is_validated_and_recorded() -> None:
    trainer = Trainer(small(method="gca_ince", steps=4))
    trainer.train_step()
    record = trainer.apply_changes({"epsilon": 0.25, "n_iter": 3})
    assert record == {"step": 1, "epsilon": 0.25, "n_iter": 3}
    assert trainer.loss_fn.params["epsilon"] == 0.25
    for bad, match in (
        ({"epsilon": 0}, "epsilon"),
        ({"n_iter": 0}, "n_iter"),
        ({"lr": 1.0}, "lr"),
        ({"relax_a": 0.2}, "relax_a"),
    ):
        with pytest.raises(ValueError, match=match):
            trainer.apply_changes(bad)
    assert trainer.loss_fn.params["epsilon"] == 0.25  # a rejected change changes nothing
    trainer.apply_changes({"target": "class", "gamma": 0.3})
    assert trainer.loss_fn.stages["target"].name == "class"
    assert np.isfinite(trainer.train_step()["loss"])
    assert len(trainer.changes) == 2


class _Recorder(Callback):
    def __init__(self, stop_at: int | None = None) -> None:
        self.events: list[tuple[str, int]] = []
        self.snapshots: dict[str, dict[str, np.ndarray]] = {}
        self.stop_at = stop_at

    def on_step(self, trainer: Trainer, logs: dict[str, float]) -> None:
        self.events.append(("step", trainer.step))

    def on_eval(self, trainer: Trainer, logs: dict[str, float]) -> None:
        self.events.append(("eval", trainer.step))

    def on_snapshot(self, trainer: Trainer, kind: str, arrays: dict[str, np.ndarray]) -> None:
        self.events.append((kind, trainer.step))
        self.snapshots[kind] = arrays

    def on_checkpoint(self, trainer: Trainer, state: dict[str, Any]) -> None:
        self.events.append(("checkpoint", trainer.step))

    def on_end(self, trainer: Trainer, reason: str) -> None:
        self.events.append((reason, trainer.step))

    def should_stop(self, trainer: Trainer) -> bool:
        return self.stop_at is not None and trainer.step >= self.stop_at


def test_fit_calls_back_on_schedule_and_snapshots_what_the_loss_saw() -> None:
    rec = _Recorder()
    cfg = small(method="gca_ince", steps=6, eval_every=3, snapshot_every=2, checkpoint_every=6)
    assert Trainer(cfg, [rec]).fit() == "finished"
    assert ("eval", 3) in rec.events and ("eval", 6) in rec.events
    assert [s for k, s in rec.events if k == "plan"] == [2, 4, 6]
    assert ("checkpoint", 6) in rec.events and rec.events[-1] == ("finished", 6)
    plan = rec.snapshots["plan"]
    n = plan["plan"].shape[0]
    assert plan["cost"].shape == plan["kernel"].shape == plan["target"].shape == (n, n)
    np.testing.assert_allclose(plan["kernel"], np.exp(-plan["cost"] / 0.5), rtol=1e-5)
    np.testing.assert_allclose(plan["plan"].sum(1), plan["target"].sum(1), rtol=1e-3)
    assert int(plan["batch"]) == cfg.batch_size  # the batch the matrices' pairs come from
    emb = rec.snapshots["embeddings"]
    np.testing.assert_allclose(np.linalg.norm(emb["z"], axis=1), 1.0, rtol=1e-5)
    assert emb["z"].shape[0] == emb["y"].shape[0]


def test_an_embedding_snapshot_holds_each_samples_augmented_partner() -> None:
    """``z_partner``: per sample, the normalised embedding of an augmented view of the same
    input, the same views at every snapshot (a seeded generator of its own: taking
    snapshots leaves training's random streams and so the run unchanged), nearer its own
    sample than other samples' partners are once the encoder has trained."""
    cfg = small(method="ince", steps=40)
    trainer, plain = Trainer(cfg), Trainer(cfg)
    for _ in range(40):
        trainer.train_step()
        plain.train_step()
        if trainer.step % 10 == 0:
            trainer.snapshot_embeddings()
    first, again = trainer.snapshot_embeddings(), trainer.snapshot_embeddings()
    z, p = first["z"], first["z_partner"]
    assert p.shape == z.shape == (min(cfg.eval_subset, len(trainer.test_set.y)), 16)
    np.testing.assert_allclose(np.linalg.norm(p, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(again["z_partner"], p)  # deterministic
    cos = np.sum(z * p, axis=1)  # (n,) each sample with its own partner
    assert np.all(cos < 1 - 1e-6) and cos.mean() < 0.999  # another view, not the same input
    # the snapshot embeds the run's augmentation of the snapshot's inputs
    gen = torch.Generator().manual_seed(cfg.seed + 13)
    x = trainer.test_set.x[: len(z)]
    _, direct = trainer.embed(trainer.augment(x, gen))
    np.testing.assert_allclose(p, direct.numpy(), atol=1e-6)
    # training is not disturbed by the snapshots: same weights as a run that took none
    for a, b in zip(trainer.model.parameters(), plain.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # alignment: a sample is nearer its own partner than, on average, others' partners
    others = (z @ p.T).sum(axis=1) - cos  # (n,)
    assert cos.mean() > others.mean() / (len(z) - 1) + 0.2


def test_stop_request_ends_between_steps_with_a_checkpoint() -> None:
    rec = _Recorder(stop_at=3)
    assert Trainer(small(steps=50), [rec]).fit() == "stopped"
    assert rec.events[-2:] == [("checkpoint", 3), ("stopped", 3)]


# ------------------------------------------------------------------- config validation

BAD_FIELDS = [
    ("steps", 0, "steps"),
    ("batch_size", 1, "batch_size"),
    ("lr", -1.0, "lr"),
    ("lr", 0.0, "lr must be a number > 0"),  # a run that cannot learn
    ("lr", -1.0, r"lr must be a number > 0, got -1"),  # the same rule as for 0
    ("steps", 10**12, r"steps must be an integer <= 10,000,000, got 1000000000000"),
    ("out_dim", 0, "out_dim"),
    ("test_fraction", 1.0, "test_fraction"),
    ("momentum", 1.5, "momentum"),
    ("eval_corruption", 2.0, "eval_corruption"),
    ("noisy_pairs", 1.5, "noisy_pairs"),
    ("noisy_strength", -0.5, "noisy_strength"),
    ("encoder", "transformer", "encoder"),
    ("augment", "wild", "augment"),
    ("device", "tpu", "device"),
    ("optimizer", "lion", "optimizer"),
    ("dataset", "no_such_dataset", "dataset"),
    ("method", "simsiam", "simsiam"),
    ("layout", "diagonal", "layout"),
    ("target", "nope", "nope"),
    # offered among the choices, then refused for the matrix no config can hold
    (
        "target",
        "custom",
        r"^target must be one of \['pairs', 'class', 'domain'\], got 'custom' \(a custom "
        r"plan needs its matrix",
    ),
    ("loss_params", {"epsilon": 0}, "epsilon"),
    ("loss_params", {"q": 2.0}, "q"),
    ("loss_params", {"warp": 1}, "warp"),
    ("dataset_params", [1], "dataset_params"),
    # the parameters of an embedded dataset and of the encoder, checked before a run starts
    ("dataset_params", {"n_points": 5}, r"^dataset_params: digits has no parameter 'n_points'"),
    ("encoder_params", {"depth": 0}, r"^encoder_params: depth must be an integer >= 1, got 0"),
    ("encoder_params", {"width": 8}, r"^encoder_params: mlp has no parameter 'width'"),
    ("encoder_params", {"depth": "two"}, r"^encoder_params: depth must be a number"),
    ("encoder_params", {"hidden": 10**5}, r"^encoder_params: hidden and depth: .* million"),
    ("head_hidden", 10**7, r"^head_hidden and out_dim: "),
    ("steps", "three", "steps"),
    ("batch_size", 32.5, "batch_size"),
    ("lr", True, "lr"),
    # stages with a named method were ignored: the run trained another loss than asked for
    ("stages", {"divergence": "rince"}, r"^stages: only a composed loss .* ince has its own"),
]


@pytest.mark.parametrize(("field", "value", "match"), BAD_FIELDS)
def test_config_rejects_each_invalid_field(field: str, value: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        TrainConfig.from_dict({field: value})


def test_config_names_every_bad_field_at_once() -> None:
    """One call names each bad field (a user fixing one at a time met them one by one);
    a field checked against a bad one (the encoder's parameters against an unknown
    encoder) is left out rather than reported against the wrong schema."""
    bad = {"lr": -1, "steps": 0, "batch_size": 1, "encoder": "vgg", "encoder_params": {"x": 1},
           "augment": "wild", "loss_params": {"epsilon": 0}}  # fmt: skip
    with pytest.raises(ConfigError) as caught:
        TrainConfig.from_dict(bad)
    problems = caught.value.problems
    named = [p.split(" ", 1)[0].rstrip(":") for p in problems]
    assert named == ["batch_size", "steps", "lr", "encoder", "augment", "epsilon"], problems
    assert str(caught.value) == "; ".join(problems)
    with pytest.raises(ConfigError) as one:  # a single bad field: one problem, as before
        TrainConfig.from_dict({"lr": 0})
    assert one.value.problems == ["lr must be a number > 0, got 0"]


def test_config_converts_numbers_given_as_strings_or_integral_floats() -> None:
    """A JSON file may hold "3" or 32.0: validation stores them as the field's kind, so a run
    built from them trains (before, the strings reached the training loop and crashed it)."""
    cfg = TrainConfig.from_json('{"steps": "2", "lr": "0.01", "batch_size": 32.0, "seed": 1.0}')
    assert (cfg.steps, cfg.lr, cfg.batch_size, cfg.seed) == (2, 0.01, 32, 1)
    assert [type(v) for v in (cfg.steps, cfg.lr, cfg.batch_size)] == [int, float, int]
    quick = {"eval_every": 0, "snapshot_every": 0, "checkpoint_every": 0, "dataset": "digits"}
    cfg = TrainConfig.from_dict({**quick, "steps": "2", "batch_size": 16.0, "lr": "1e-3"})
    trainer = Trainer(cfg)
    assert trainer.fit() == "finished" and trainer.step == 2


def test_config_converts_loss_params_given_as_strings() -> None:
    """``loss_params`` are converted as the other numeric fields (``"0.4"`` stayed a string
    in the config the run stores, beside the float its loss was built with)."""
    cfg = TrainConfig.from_dict(
        {"method": "gca_uot", "loss_params": {"epsilon": "0.4", "n_iter": 7.0, "relax_a": "2"}}
    )
    assert cfg.loss_params == {"epsilon": 0.4, "n_iter": 7, "relax_a": 2.0}
    assert type(cfg.loss_params["n_iter"]) is int
    assert json.loads(cfg.to_json())["loss_params"]["epsilon"] == 0.4


def test_config_checks_dataset_and_encoder_params_against_their_schemas() -> None:
    """Out-of-range ``dataset_params``/``encoder_params`` are refused by validation, naming the
    field (before, they passed it and the run failed in its subprocess); good ones given as
    strings are converted like the other fields, and defaults are not written in."""
    cfg = TrainConfig.from_dict(
        {
            "dataset": "rings",
            "dataset_params": {"n_points": "64", "noise": 0.1},
            "encoder_params": {"depth": 1.0},
        }
    )
    assert cfg.dataset_params == {"n_points": 64, "noise": 0.1}
    assert cfg.encoder_params == {"depth": 1}
    with pytest.raises(ValueError, match=r"^dataset_params: n_points must be an integer >= "):
        TrainConfig.from_dict({"dataset": "rings", "dataset_params": {"n_points": -5}})
    with pytest.raises(ValueError, match=r"^encoder_params: resnet18 has no parameter 'depth'"):
        TrainConfig.from_dict({"encoder": "resnet18", "encoder_params": {"depth": 2}})


def test_config_rejects_unknown_fields_and_round_trips_json() -> None:
    with pytest.raises(ValueError, match="colour"):
        TrainConfig.from_dict({"colour": "red"})
    cfg = TrainConfig.from_dict({"method": "gca_uot", "loss_params": {"epsilon": 0.3}})
    assert TrainConfig.from_json(cfg.to_json()) == cfg


# -------------------------------------------------------------------------------- CLI


def _cli(*args: str, cwd: Path = REPO_ROOT, timeout: int = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gca_viz", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_cli_writes_a_run_directory_and_resumes(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({**SMALL, "steps": 4, "method": "gca_ince"}))
    out = tmp_path / "run"
    args = [
        "train",
        "--config",
        str(cfg),
        "--out",
        str(out),
        "--eval-every",
        "2",
        "--snapshot-every",
        "2",
        "--checkpoint-every",
        "2",
        "--epsilon",
        "0.4",
    ]
    done = _cli(*args)
    assert done.returncode == 0, done.stderr
    written = json.loads((out / "config.json").read_text())
    assert written["steps"] == 4 and written["loss_params"]["epsilon"] == 0.4
    rows = (out / "metrics.csv").read_text().splitlines()
    assert rows[0] == "step,name,value"
    names = {r.split(",")[1] for r in rows[1:]}
    assert {"loss", "knn_acc", "probe_acc", "alignment", "uniformity"} <= names
    snaps = sorted(p.name for p in (out / "snapshots").iterdir())
    assert snaps == [
        "0000002_embeddings.npz",
        "0000002_plan.npz",
        "0000004_embeddings.npz",
        "0000004_plan.npz",
    ]
    with np.load(out / "snapshots" / snaps[1], allow_pickle=False) as z:
        assert z["plan"].ndim == 2
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 4

    # a run killed after its checkpoint had written rows of steps it trains again on resume
    # (they were kept twice) and half a row
    with open(out / "metrics.csv", "a") as fh:
        fh.write("5,loss,9.0\n5,knn_acc,0.5\n6,lo")
    stale = out / "snapshots" / "0000005_plan.npz"  # and a snapshot past the checkpoint
    stale.write_bytes((out / "snapshots" / "0000004_plan.npz").read_bytes())
    again = _cli(*args, "--resume", "--steps", "6")
    assert again.returncode == 0, again.stderr
    assert "9.0" not in (out / "metrics.csv").read_text()
    assert not stale.exists() and (out / "snapshots" / "0000006_plan.npz").exists()
    assert (out / "snapshots" / "0000004_plan.npz").exists()
    steps = [
        int(r.split(",")[0])
        for r in (out / "metrics.csv").read_text().splitlines()[1:]
        if r.split(",")[1] == "loss"
    ]
    assert steps == [1, 2, 3, 4, 5, 6]
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert events[-1] == {"event": "finished", "step": 6}
    assert events[0] == {"event": "start", "step": 0, "device": "cpu"}  # where it trained
    from gca_viz.runs import RunStore

    store = RunStore(tmp_path / "store")  # imported: "device cpu", not the config's "auto"
    assert store.get(store.import_directory(out)).device == "cpu"

    # the same command without --resume would append a second run to the first one's files
    before = {p.name: p.stat().st_mtime_ns for p in out.rglob("*")}
    mixed = _cli(*args)
    assert mixed.returncode == 2 and "Traceback" not in mixed.stderr
    assert "--out" in mixed.stderr and "already holds a run" in mixed.stderr
    assert {p.name: p.stat().st_mtime_ns for p in out.rglob("*")} == before  # untouched


def test_cli_resume_to_a_step_the_run_has_reached_says_there_is_nothing_to_train(
    tmp_path: Path,
) -> None:
    """`--resume --steps 1` on a run at step 2 trained nothing, printed only "finished at
    step 2" and rewrote config.json with steps 1: a note now says why, and the run's files
    are left as they were."""
    out = tmp_path / "run"
    first = _cli(
        "train", "--batch-size", "32", "--encoder-params", '{"hidden": 32}', "--head-hidden",
        "32", "--out-dim", "8", "--steps", "2", "--eval-every", "0", "--snapshot-every", "0",
        "--device", "cpu", "--out", str(out),
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert "note:" not in first.stderr
    before = {p.name: p.stat().st_mtime_ns for p in out.rglob("*")}
    again = _cli("train", "--out", str(out), "--resume", "--steps", "1")
    assert again.returncode == 0, again.stderr
    assert again.stderr == ("note: --steps 1: the run is already at step 2; nothing to train "
                            "(raise --steps to go on)\n")  # fmt: skip
    assert {p.name: p.stat().st_mtime_ns for p in out.rglob("*")} == before  # untouched
    assert json.loads((out / "config.json").read_text())["steps"] == 2
    same = _cli("train", "--out", str(out), "--resume")  # the run's own steps: reached too
    assert same.returncode == 0 and "note: steps = 2: the run is already at step 2" in same.stderr


def test_cli_resume_keeps_the_runs_own_config_and_refuses_a_different_one(
    tmp_path: Path,
) -> None:
    """`--out DIR --resume --steps N` without the first run's flags trained the default
    config (INCE, batch 256) on top of the saved weights and overwrote config.json. It now
    continues the saved run; a flag that would change what it trains is refused."""
    out = tmp_path / "run"
    first = _cli(
        "train", "--method", "gca_uot", "--batch-size", "32", "--encoder-params",
        '{"hidden": 32}', "--head-hidden", "32", "--out-dim", "8", "--steps", "2",
        "--eval-every", "0", "--snapshot-every", "0", "--device", "cpu", "--out", str(out),
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    again = _cli("train", "--out", str(out), "--resume", "--steps", "3")
    assert again.returncode == 0, again.stderr
    config = json.loads((out / "config.json").read_text())
    assert (config["method"], config["batch_size"], config["steps"]) == ("gca_uot", 32, 3)
    assert config["encoder_params"] == {"hidden": 32}
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 3

    before = {p.name: p.stat().st_mtime_ns for p in out.rglob("*")}
    other = _cli("train", "--out", str(out), "--resume", "--steps", "4", "--method", "ince")
    assert other.returncode == 2 and "Traceback" not in other.stderr, other.stderr
    assert "method 'ince' (the run's: 'gca_uot')" in other.stderr
    assert "may change only steps" in other.stderr
    clash = _cli("train", "--out", str(out), "--resume", "--epsilon", "0.9")
    assert clash.returncode == 2 and "loss_params {'epsilon': 0.9" in clash.stderr
    typo = tmp_path / "typo.json"
    typo.write_text(json.dumps({"typo_field": 1}))
    unknown = _cli("train", "--out", str(out), "--resume", "--config", str(typo))
    assert unknown.returncode == 2 and "Traceback" not in unknown.stderr, unknown.stderr
    assert "unknown config field 'typo_field'" in unknown.stderr
    assert {p.name: p.stat().st_mtime_ns for p in out.rglob("*")} == before  # untouched

    # the same settings said otherwise agree: the default ε, a number as a string, and the
    # evaluation's settings may change
    same = tmp_path / "same.json"
    same.write_text(json.dumps({"batch_size": "32", "method": "gca_uot", "knn_k": 5}))
    agreed = _cli(
        "train", "--out", str(out), "--resume", "--config", str(same), "--epsilon", "0.5",
        "--steps", "4",
    )  # fmt: skip
    assert agreed.returncode == 0, agreed.stderr
    config = json.loads((out / "config.json").read_text())
    assert (config["steps"], config["knn_k"], config["loss_params"]) == (4, 5, {})


def test_cli_keeps_a_user_data_path_absolute_so_resume_works_from_anywhere(
    tmp_path: Path,
) -> None:
    """config.json kept "mine.npz" as typed: --resume from another folder did not find the
    data, and --dataset ./mine.npz (the same file) was refused as other settings."""
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "mine.npz", x=rng.normal(size=(80, 6)), y=rng.integers(0, 3, 80))
    quick = ["--batch-size", "16", "--encoder-params", '{"hidden": 16}', "--head-hidden",
             "16", "--out-dim", "4", "--eval-every", "0", "--snapshot-every", "0", "--device",
             "cpu"]  # fmt: skip
    first = _cli("train", "--dataset", "mine.npz", "--steps", "2", *quick, "--out", "run",
                 cwd=tmp_path)  # fmt: skip
    assert first.returncode == 0, first.stderr
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["dataset"] == str((tmp_path / "mine.npz").resolve())
    elsewhere = _cli("train", "--out", str(tmp_path / "run"), "--resume", "--steps", "3")
    assert elsewhere.returncode == 0, elsewhere.stderr
    same = _cli("train", "--dataset", "./mine.npz", "--out", "run", "--resume", "--steps", "4",
                cwd=tmp_path)  # fmt: skip
    assert same.returncode == 0, same.stderr
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["step"] == 4
    assert "note:" not in first.stderr
    large = _cli("train", "--dataset", "mine.npz", "--steps", "1", *quick[2:], "--batch-size",
                 "1000", cwd=tmp_path)  # fmt: skip
    assert large.returncode == 0, large.stderr
    assert ("note: --batch-size 1000: the training split holds 60 samples, so each batch "
            "holds 60 (all of them)") in large.stderr  # fmt: skip
    # features varying by 1e-3: the app warned that the augmentation's noise drowns them,
    # the command line trained on to a collapse without a word
    assert "warning:" not in first.stderr
    np.savez(tmp_path / "small.npz", x=1e-3 * rng.normal(size=(80, 6)), y=np.arange(80) % 3)
    small = _cli("train", "--dataset", "small.npz", "--steps", "1", *quick, cwd=tmp_path)
    assert small.returncode == 0, small.stderr
    assert "warning: augment: the standard augmentation adds noise" in small.stderr
    assert "Standardise each feature" in small.stderr


def test_directory_writer_from_python_refuses_a_folder_holding_a_run_and_resumes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From Python, a second run in a run's folder erased its metrics and snapshots and left
    its checkpoint beside the new config (a --resume then mixed two runs); it is refused
    now, as the command line refuses it, with nothing touched. A resumed trainer goes on
    with the folder, and config.json keeps the data's path absolute (--resume from anywhere
    found "mine.npz" only in the folder the run was started from)."""
    from gca_viz.cli import DirectoryWriter

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "mine.npz", x=rng.normal(size=(80, 6)), y=rng.integers(0, 3, 80))
    monkeypatch.chdir(tmp_path)
    quick = {"dataset": "mine.npz", "batch_size": 16, "encoder_params": {"hidden": 16},
             "head_hidden": 16, "out_dim": 4, "eval_every": 0, "snapshot_every": 2,
             "checkpoint_every": 2, "device": "cpu"}  # fmt: skip
    run = tmp_path / "run"
    Trainer(TrainConfig(method="gca_ince", steps=4, **quick), [DirectoryWriter(run)]).fit()
    config = json.loads((run / "config.json").read_text())
    assert config["dataset"] == str((tmp_path / "mine.npz").resolve())
    files = {f: f.read_bytes() for f in sorted(run.rglob("*")) if f.is_file()}
    second = Trainer(TrainConfig(method="ince", steps=3, **quick), [DirectoryWriter(run)])
    with pytest.raises(ValueError, match=r"run already holds a run \(metrics.csv\); write to"):
        second.fit()
    assert {f: f.read_bytes() for f in sorted(run.rglob("*")) if f.is_file()} == files
    resumed = Trainer(TrainConfig(method="gca_ince", steps=6, **quick), [DirectoryWriter(run)])
    resumed.load_checkpoint(run / "checkpoint.pt")
    assert resumed.fit() == "finished"
    steps = [int(r.split(",")[0]) for r in (run / "metrics.csv").read_text().splitlines()[1:]]
    assert sorted(set(steps)) == list(range(1, 7))


def test_each_trainers_threads_apply_and_zero_leaves_the_count_alone() -> None:
    """``threads`` was applied once per process: a second Trainer's was ignored, and the
    first one's default of 0 set every core over a script's ``torch.set_num_threads(1)``."""
    before = torch.get_num_threads()
    quick = {"batch_size": 16, "steps": 1, "eval_every": 0, "snapshot_every": 0}
    try:
        torch.set_num_threads(1)
        Trainer(TrainConfig(**quick))
        assert torch.get_num_threads() == 1  # 0: as the script set it
        Trainer(TrainConfig(**quick, threads=2))
        assert torch.get_num_threads() == 2
        Trainer(TrainConfig(**quick, threads=1))
        assert torch.get_num_threads() == 1  # the second one's count too
    finally:
        torch.set_num_threads(before)


def test_a_diverging_cli_run_says_where_and_what_to_lower_in_one_line(tmp_path: Path) -> None:
    """At lr = 1e6 the run ended in a 40-line traceback whose last line, "z1 contains NaN
    or inf", named neither the step nor the learning rate; the folder it left was refused
    by the same command ("add --resume") and by --resume ("no checkpoint") in turn."""
    out = tmp_path / "run"
    args = ["train", "--lr", "1e6", "--steps", "40", "--batch-size", "32", "--eval-every",
            "0", "--snapshot-every", "0", "--device", "cpu", "--out", str(out)]  # fmt: skip
    done = _cli(*args)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    (line,) = [x for x in done.stderr.splitlines() if x.startswith("error:")]
    assert re.fullmatch(
        r"error: training diverged at step \d+: (its embeddings are no longer finite|the "
        r"loss became (nan|inf)) \(NaN or inf\); lower the learning rate \(lr = 1e\+06\) and "
        r"start again",
        line,
    ), line
    failed = json.loads((out / "events.jsonl").read_text().splitlines()[-1])
    assert failed["event"] == "failed" and "TrainingDiverged" in failed["error"]
    for again in (_cli(*args), _cli("train", "--out", str(out), "--resume")):
        assert again.returncode == 2 and "Traceback" not in again.stderr, again.stderr
        assert "with no checkpoint yet" in again.stderr and "failed or was killed" in again.stderr
        assert "delete the folder or choose a new one" in again.stderr


def test_cli_says_a_malformed_json_flag_is_not_valid_json() -> None:
    """``--loss-params '{epsilon:1}'`` said "invalid loads value" (argparse's words for the
    type function's name)."""
    done = _cli("train", "--loss-params", "{epsilon:1}", "--steps", "1")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "argument --loss-params: not valid JSON" in done.stderr
    assert """keys and strings need double quotes, e.g. '{"epsilon": 0.3}'""" in done.stderr
    listed = _cli("train", "--loss-params", "[1]", "--steps", "1")  # (JSON, not an object)
    assert "--loss-params (or loss_params in --config) must be a JSON" in listed.stderr


def test_cli_refuses_an_out_that_is_a_file_before_training(tmp_path: Path) -> None:
    """--out naming a file trained, failed on snapshots/ and failed again writing the
    failure: two tracebacks. It is refused first, like the other arguments."""
    afile = tmp_path / "afile"
    afile.write_text("mine")
    done = _cli("train", "--steps", "2", "--out", str(afile))
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert f"--out: {afile} is a file, not a folder" in done.stderr
    assert afile.read_text() == "mine"


def test_cli_rejects_a_bad_config_naming_the_field(tmp_path: Path) -> None:
    done = _cli("train", "--steps", "0", "--out", str(tmp_path / "x"))
    assert done.returncode == 2
    assert "steps" in done.stderr and "Traceback" not in done.stderr
    done = _cli("train", "--epsilon", "-1")
    assert done.returncode == 2 and "epsilon" in done.stderr
    if Path("/proc/self").is_dir():  # a folder that cannot be made (even by root): named
        done = _cli("train", "--steps", "2", "--out", "/proc/no/such/run")
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith("error: --out: /proc/no/such/run cannot be made")
    done = _cli("train", "--lr", "-1", "--steps", "0")  # every bad field, one line each
    assert done.returncode == 2
    assert done.stderr.splitlines()[:2] == [
        "error: steps must be an integer >= 1, got 0",
        "error: lr must be a number > 0, got -1.0",
    ], done.stderr
    config = tmp_path / "list.json"
    config.write_text("[1, 2]")
    for args, match in (
        (("--loss-params", "[1]"), "--loss-params (or loss_params in --config) must be a JSON"),
        (("--config", str(config)), f"--config {config}: must hold a JSON object"),
    ):
        done = _cli("train", *args)
        assert done.returncode == 2 and match in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
    # refused before training: the domain prior on data without domains (it failed at
    # step 1 with a traceback), and no folder left behind for a run that never started
    done = _cli("train", "--target", "domain", "--out", str(tmp_path / "never"))
    assert done.returncode == 2 and done.stderr.startswith("error: target: the domain prior")
    assert "Traceback" not in done.stderr and not (tmp_path / "never").exists()


def test_cli_records_a_failed_run_and_prints_progress_off_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run that raises mid-training ends its events with 'failed' and the error (they
    ended at 'start', like a run still going), and off a terminal the progress prints a line
    at every tenth of the run (it printed nothing without evaluations)."""
    from gca_viz import cli

    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({**SMALL, "steps": 20}))
    out = tmp_path / "ok"
    assert cli.train_main(["--config", str(cfg), "--out", str(out)]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("step ")]
    assert [line.split()[1] for line in lines] == [f"{s}/20" for s in range(2, 21, 2)]
    real = Trainer.train_step

    def fails_at_3(self: Trainer) -> dict[str, float]:
        if self.step == 2:
            raise RuntimeError("out of memory (simulated)")
        return real(self)

    monkeypatch.setattr(Trainer, "train_step", fails_at_3)
    with pytest.raises(RuntimeError, match="simulated"):
        cli.train_main(["--config", str(cfg), "--out", str(tmp_path / "bad")])
    events = [json.loads(x) for x in (tmp_path / "bad" / "events.jsonl").read_text().splitlines()]
    assert events[-1] == {
        "event": "failed",
        "step": 2,
        "error": "RuntimeError: out of memory (simulated)",
    }


def test_cli_help_and_unknown_commands() -> None:
    """--help prints the usage and succeeds; an unknown command is named."""
    for flag in ("--help", "-h", "help"):
        done = _cli(flag)
        assert done.returncode == 0 and done.stdout.startswith("usage: python -m gca_viz train")
    done = _cli("trian")
    assert done.returncode == 2 and "unknown command 'trian'" in done.stderr
    flags = " ".join(_cli("train", "--help").stdout.split())  # argparse wraps its lines
    assert "TrainConfig.method (default 'ince'; one of ince, gca_ince," in flags
    assert "TrainConfig.target (default 'pairs'; one of pairs, class, domain)" in flags
    assert "one of auto, cpu, cuda, mps, cuda:<index>" in flags
    # the description is the module's docstring without its reST markup, the references
    # spelled out ("(:data:`RESUME_FREE`)" was printed as it is)
    assert not re.search(r"``|:\w+:`", flags), flags
    assert "(config.json, metrics.csv, events.jsonl, snapshots/<step>_<kind>.npz, " in flags
    assert "(steps, device, threads, eval_every, " in flags


@pytest.mark.parametrize("kind", ["npz", "folder", "cifar"])
def test_cli_trains_on_user_data_from_a_path(kind: str, tmp_path: Path) -> None:
    """``--dataset PATH`` (the README's promise): a whole short run on an .npz, an image
    folder and a CIFAR-10 binary file, with an evaluation at the end."""
    path = write_user_data(tmp_path)[kind]
    out = tmp_path / "run"
    done = _cli(
        "train",
        "--dataset",
        str(path),
        "--steps",
        "3",
        "--batch-size",
        "8",
        "--encoder-params",
        '{"hidden": 16}',
        "--head-hidden",
        "16",
        "--out-dim",
        "8",
        "--device",
        "cpu",
        "--eval-every",
        "3",
        "--snapshot-every",
        "0",
        "--checkpoint-every",
        "3",
        "--out",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "config.json").read_text())["dataset"] == str(path)
    rows = [r.split(",") for r in (out / "metrics.csv").read_text().splitlines()[1:]]
    assert [int(step) for step, name, _ in rows if name == "loss"] == [1, 2, 3]
    assert {name for _, name, _ in rows} >= {"loss", "knn_acc", "probe_acc", "alignment"}
    assert all(np.isfinite(float(value)) for *_, value in rows)
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert events[-1] == {"event": "finished", "step": 3}


def test_config_with_a_user_data_path_validates_and_trains(tmp_path: Path) -> None:
    path = write_user_data(tmp_path)["folder"]
    cfg = TrainConfig(dataset=str(path), **{**SMALL, "steps": 2, "batch_size": 4})
    cfg.validate()
    trainer = Trainer(cfg)
    assert trainer.train_set.n + trainer.test_set.n == 8
    assert trainer.train_set.input_shape == (1, 6, 6)
    assert trainer.fit() == "finished" and trainer.step == 2
    with pytest.raises(ValueError, match=r"^dataset: unknown dataset .*no file or folder"):
        TrainConfig(dataset=str(tmp_path / "gone.npz")).validate()
    with pytest.raises(ValueError, match=r"^dataset_params: user data .* takes no parameters"):
        TrainConfig(dataset=str(path), dataset_params={"n_points": 5}, **SMALL).validate()


def test_data_too_small_for_a_run_fails_before_the_first_step(tmp_path: Path) -> None:
    """A run on 3 samples failed at step 50 (its first evaluation) with an error about z's
    rows; the trainer now refuses it at once, naming the dataset and the split, and trains
    it when evaluation and snapshots are off."""
    path = tmp_path / "tiny.npz"
    np.savez(path, x=np.ones((3, 4), dtype=np.float32), y=np.array([0, 1, 0]))
    cfg = TrainConfig(dataset=str(path), steps=2, batch_size=2)
    with pytest.raises(ValueError, match=r"^dataset: its 3 samples split into 2 .* and 1 "):
        Trainer(cfg)
    quiet = dataclasses.replace(cfg, eval_every=0, snapshot_every=0, checkpoint_every=0)
    assert Trainer(quiet).fit() == "finished"
    # two samples split 1 / 1 whatever is evaluated: the advice to turn evaluation off was
    # followed and refused again; it is not given
    np.savez(path, x=np.ones((2, 4), dtype=np.float32), y=np.array([0, 1]))
    for config in (cfg, quiet):
        with pytest.raises(ValueError, match="split into 1 for training") as caught:
            Trainer(config)
        advice = str(caught.value).split(";")[-1]
        assert advice.endswith("use more data") and "eval_every" not in advice, advice


# -------------------------------------------------------------------------- torchrun


def _ddp_result(tmp_path: Path, method: str, ranks: int) -> dict[str, Any]:
    out = tmp_path / f"{method}-{ranks}.pt"
    script = str(REPO_ROOT / "tests" / "scripts" / "ddp_step.py")
    if ranks == 1:
        cmd = [sys.executable, script, str(out), method, "3"]
    else:
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            f"--nproc_per_node={ranks}",
            "--standalone",
            script,
            str(out),
            method,
            "3",
        ]
    done = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = torch.load(out, weights_only=True)
    return result


@pytest.mark.parametrize("method", ["gca_ince", "byol"])
def test_two_gloo_ranks_equal_one_process_on_the_global_batch(method: str, tmp_path: Path) -> None:
    """Embeddings gathered with gradients and batch norm over the global batch: two ranks
    give the single process's losses, gradients and updated parameters."""
    one, two = _ddp_result(tmp_path, method, 1), _ddp_result(tmp_path, method, 2)
    torch.testing.assert_close(two["losses"], one["losses"], rtol=1e-5, atol=1e-6)
    for k in one["grads"]:
        torch.testing.assert_close(two["grads"][k], one["grads"][k], rtol=1e-4, atol=1e-5)
    for k in one["params"]:
        torch.testing.assert_close(two["params"][k], one["params"][k], rtol=1e-4, atol=1e-5)


def test_gather_with_grad_in_a_users_loop_uneven_batches_and_ddp(tmp_path: Path) -> None:
    """Two gloo ranks in a hand-written loop give the one-process gradient of the global
    batch: with batches of 7 and 9 rows (an uneven split aborted the process in gloo) and
    under DistributedDataParallel with ``ddp=True`` (without it, DDP's average is half of
    it). Rows of different widths are a ValueError naming each rank's shape. A global batch
    norm with ``momentum=None`` keeps the cumulative average, as torch's does (it used 0.1).
    """
    out = tmp_path / "gather.pt"
    script = str(REPO_ROOT / "tests" / "scripts" / "ddp_gather.py")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone"]
    done = subprocess.run(
        [*cmd, script, str(out)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-3000:]
    got = torch.load(out, weights_only=True)
    gen = torch.Generator().manual_seed(0)
    x1, x2 = torch.randn(16, 10, generator=gen), torch.randn(16, 10, generator=gen)
    torch.manual_seed(0)
    net = torch.nn.Linear(10, 8)
    losses.get("gca_ince", layout="joint")(net(x1), net(x2)).backward()
    assert net.weight.grad is not None
    assert int(got["rows"]) == 16
    torch.testing.assert_close(got["plain"], net.weight.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got["ddp"], net.weight.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got["ddp_default"], net.weight.grad / 2, rtol=1e-5, atol=1e-6)
    reference = torch.nn.BatchNorm1d(10, momentum=None)  # a cumulative average
    for step in range(3):
        reference(x1 + step)
    assert bool(got["norm"])  # convert_batchnorm converts a batch norm given alone
    torch.testing.assert_close(got["running_mean"], reference.running_mean)
    torch.testing.assert_close(got["running_var"], reference.running_var)
    assert got["error"].startswith("z: every rank must gather rows of one shape")
    assert "rank 0: (2, 3, 4), rank 1: (2, 3, 5)" in got["error"]


def test_the_readmes_torchrun_command_trains_one_run_written_once(tmp_path: Path) -> None:
    """``torchrun ... -m gca_viz train`` (the README's scale-out command, small): both ranks
    exit 0 and the run directory holds one run, written by rank 0 only (each step's loss
    once, one start and one end event, a checkpoint that loads)."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           "--nproc_per_node=2", "-m", "gca_viz", "train", "--method", "gca_ince",
           "--batch-size", "32", "--steps", "4", "--device", "cpu", "--threads", "1",
           "--out", str(out)]  # fmt: skip
    done = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = (out / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows if ",loss," in r] == ["1", "2", "3", "4"]
    events = [json.loads(x)["event"] for x in (out / "events.jsonl").read_text().splitlines()]
    assert events == ["start", "finished"]
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["step"] == 4


def test_noisy_pairs_mismatch_a_share_of_the_training_views() -> None:
    """With noisy_pairs > 0 a share of each batch's second views comes from other samples:
    the loss on the same first batch is higher (positives no longer match), p = 0 is the
    unchanged run."""
    base = {**SMALL, "steps": 1, "device": "cpu", "seed": 3}
    clean = Trainer(TrainConfig(**base)).train_step()["loss"]
    same = Trainer(TrainConfig(**base, noisy_pairs=0.0)).train_step()["loss"]
    noisy = Trainer(TrainConfig(**base, noisy_pairs=0.5)).train_step()["loss"]
    assert same == clean
    assert noisy > clean + 0.1


def test_convert_batchnorm_keeps_a_root_layers_mode_dtype_and_state() -> None:
    """A batch norm given alone becomes a GlobalBatchNorm in its own mode and dtype, with its
    statistics; one without weights or statistics converts too (it raised StopIteration)."""
    root = torch.nn.BatchNorm1d(4).double()
    root.running_mean.fill_(0.5)
    root.eval()
    new = distributed.convert_batchnorm(root)
    assert isinstance(new, distributed.GlobalBatchNorm) and not new.training
    assert new.weight.dtype == torch.float64 and torch.equal(new.running_mean, root.running_mean)
    bare = torch.nn.BatchNorm1d(4, affine=False, track_running_stats=False)
    assert isinstance(distributed.convert_batchnorm(bare), distributed.GlobalBatchNorm)
    nested = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    assert isinstance(distributed.convert_batchnorm(nested)[1], distributed.GlobalBatchNorm)


def test_a_trainer_that_only_evaluates_builds_no_optimizer() -> None:
    """torch's first optimiser imports its compiler stack (about a second of the Noisy views
    page's first visit, which only evaluates encoders): it is built on the first step."""
    cfg = TrainConfig(steps=1, batch_size=16, eval_every=0, snapshot_every=0, checkpoint_every=0)
    trainer = Trainer(cfg)
    trainer.evaluate()
    assert "optimizer" not in vars(trainer)
    trainer.fit()
    assert isinstance(vars(trainer)["optimizer"], torch.optim.AdamW) and trainer.step == 1
