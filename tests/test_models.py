"""Tests for gca_viz.models: encoders, heads, the contrastive model and BYOL's EMA target."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from gca_viz.models import (
    ENCODERS,
    ContrastiveModel,
    Predictor,
    ProjectionHead,
    build_encoder,
    cosine_momentum,
    ema_update,
    hidden_weights,
    make_target,
)

# A small input each encoder fits (resnet18 kept tiny: 1x8x8; 3x32x32 is tested separately).
FITTING_SHAPE = {"mlp": (5,), "cnn": (1, 8, 8), "resnet18": (1, 8, 8)}
TINY = {"mlp": {"hidden": 16}, "cnn": {"width": 4}, "resnet18": {"width": 4}}


def _params(module: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def test_every_encoder_has_a_fitting_shape() -> None:
    assert set(FITTING_SHAPE) == set(ENCODERS)


@pytest.mark.parametrize("name", list(ENCODERS))
def test_encoder_output_shape(name: str) -> None:
    shape = FITTING_SHAPE[name]
    encoder, feature_dim = build_encoder(name, shape)
    h = encoder(torch.randn(2, *shape))
    assert h.shape == (2, feature_dim)
    assert torch.isfinite(h).all()


@pytest.mark.parametrize(
    ("name", "shape", "params", "feature_dim"),
    [
        ("mlp", (3, 4, 4), {}, 256),
        ("mlp", (7,), {"hidden": 32, "depth": 3}, 32),
        ("cnn", (3, 32, 32), {}, 128),
        ("cnn", (1, 8, 8), {"width": 8, "depth": 2}, 16),
        ("cnn", (1, 1, 1), {"width": 4}, 16),  # no pooling at all, still works
        ("resnet18", (1, 8, 8), {"width": 8}, 64),
    ],
)
def test_feature_dim_matches_schema(
    name: str, shape: tuple[int, ...], params: dict[str, int], feature_dim: int
) -> None:
    encoder, dim = build_encoder(name, shape, **params)
    assert dim == feature_dim
    assert encoder(torch.randn(2, *shape)).shape == (2, feature_dim)


@pytest.mark.parametrize("name", list(ENCODERS))
@pytest.mark.parametrize("out_dim", [2, 3, 128])
def test_contrastive_model_shapes(name: str, out_dim: int) -> None:
    shape = FITTING_SHAPE[name]
    model = ContrastiveModel(name, shape, out_dim=out_dim, head_hidden=32, **TINY[name])
    x = torch.randn(4, *shape)
    assert model(x).shape == (4, out_dim)
    assert model.features(x).shape == (4, model.feature_dim)
    assert model.out_dim == out_dim
    assert model.input_shape == shape


def test_conv_model_accepts_other_image_sizes_mlp_does_not() -> None:
    cnn = ContrastiveModel("cnn", (1, 8, 8), out_dim=2, width=4)
    assert cnn(torch.randn(2, 1, 16, 16)).shape == (2, 2)
    mlp = ContrastiveModel("mlp", (1, 8, 8), out_dim=2, hidden=8)
    with pytest.raises(ValueError, match=r"\bx\b"):
        mlp(torch.randn(2, 1, 16, 16))
    with pytest.raises(ValueError, match=r"\bx\b"):
        cnn(torch.randn(2, 3, 8, 8))  # wrong channel count


def test_heads_shapes() -> None:
    h = torch.randn(4, 10)
    assert ProjectionHead(10, 16, 3)(h).shape == (4, 3)
    assert ProjectionHead(10).out_dim == 128
    assert Predictor(10, 16)(h).shape == (4, 10)


@pytest.mark.parametrize("name", list(ENCODERS))
def test_gradients_reach_every_parameter(name: str) -> None:
    shape = FITTING_SHAPE[name]
    model = ContrastiveModel(name, shape, out_dim=3, head_hidden=16, **TINY[name])
    model(torch.randn(4, *shape)).sum().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
    assert any(p.grad.abs().sum() > 0 for p in model.parameters() if p.grad is not None)


def test_predictor_gradients() -> None:
    q = Predictor(3, 8)
    q(torch.randn(4, 3)).pow(2).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in q.parameters())


@pytest.mark.parametrize("name", list(ENCODERS))
def test_same_seed_same_init(name: str) -> None:
    shape = FITTING_SHAPE[name]
    torch.manual_seed(3)
    a = _params(ContrastiveModel(name, shape, out_dim=2, head_hidden=8, **TINY[name]))
    torch.manual_seed(3)
    b = _params(ContrastiveModel(name, shape, out_dim=2, head_hidden=8, **TINY[name]))
    torch.manual_seed(4)
    c = _params(ContrastiveModel(name, shape, out_dim=2, head_hidden=8, **TINY[name]))
    assert all(torch.equal(p, q) for p, q in zip(a, b, strict=True))
    assert not all(torch.equal(p, q) for p, q in zip(a, c, strict=True))


@pytest.mark.parametrize("name", list(ENCODERS))
def test_eval_mode_is_deterministic(name: str) -> None:
    shape = FITTING_SHAPE[name]
    model = ContrastiveModel(name, shape, out_dim=3, head_hidden=8, **TINY[name]).eval()
    x = torch.randn(3, *shape)
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
        # in eval mode a sample's output does not depend on the rest of the batch
        assert torch.allclose(model(x[:1]), model(x)[:1], atol=1e-6)


# --------------------------------------------------------------------------- validation


def test_unknown_encoder_names_encoder() -> None:
    with pytest.raises(ValueError, match="encoder 'vit'"):
        build_encoder("vit", (3, 32, 32))
    with pytest.raises(ValueError, match="encoder 'vit'"):
        ContrastiveModel("vit", (3, 32, 32))


@pytest.mark.parametrize("name", ["cnn", "resnet18"])
def test_image_encoder_rejects_vector_shape(name: str) -> None:
    with pytest.raises(ValueError, match=rf"encoder '{name}'.*input_shape"):
        build_encoder(name, (64,))


@pytest.mark.parametrize("shape", [(), (2, 3), (1, 2, 3, 4), (0,), (3, -1, 8), (2.5,), 7])
def test_bad_input_shape_names_input_shape(shape: object) -> None:
    with pytest.raises(ValueError, match="input_shape"):
        build_encoder("mlp", shape)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "params", "bad"),
    [
        ("mlp", {"hidden": -1}, "hidden"),
        ("mlp", {"hidden": 0}, "hidden"),
        ("mlp", {"depth": 0}, "depth"),
        ("mlp", {"hidden": 2.5}, "hidden"),
        ("cnn", {"width": -8}, "width"),
        ("resnet18", {"width": 0}, "width"),
        ("mlp", {"widht": 8}, "widht"),
        ("mlp", {"depth": 1000}, "depth must be an integer <= 32"),  # trained to NaN before
    ],
)
def test_bad_encoder_param_names_it(name: str, params: dict[str, float], bad: str) -> None:
    with pytest.raises(ValueError, match=bad):
        build_encoder(name, FITTING_SHAPE[name], **params)


@pytest.mark.parametrize(
    ("name", "params", "bad"),
    [
        ("cnn", {"depth": 11}, "width and depth: width = 32, depth = 11"),  # 32768 channels
        ("cnn", {"width": 4096, "depth": 2}, "width and depth"),
        ("mlp", {"hidden": 100_000}, "hidden and depth"),
        ("resnet18", {"width": 256}, "width: width = 256"),
    ],
)
def test_an_encoder_too_large_to_allocate_is_refused_before_it_is_built(
    name: str, params: dict[str, int], bad: str
) -> None:
    """A CNN of depth 20 asked for 10^15 weights: the process grew past the machine's 24 GB
    before failing. The schema's size check refuses it at once, naming the parameters, and
    the estimate it uses is the real count (within the input layer) for sizes it admits."""
    with pytest.raises(ValueError, match=rf"^{bad}.* million weights, more than the 100 million"):
        ENCODERS[name].validate(params)
    for ok_name, ok in [("cnn", {"depth": 5}), ("mlp", {"hidden": 512, "depth": 3})]:
        estimate = hidden_weights(ok_name, ENCODERS[ok_name].validate(ok))
        model, _ = build_encoder(ok_name, FITTING_SHAPE[ok_name], **ok)
        weights = sum(p.numel() for p in model.parameters() if p.dim() > 1)
        assert estimate <= weights <= estimate * 1.05 + 10_000, (ok_name, estimate, weights)
    resnet = sum(p.numel() for p in build_encoder("resnet18", (3, 32, 32))[0].parameters())
    assert hidden_weights("resnet18", {"width": 64}) == pytest.approx(resnet, rel=0.01)


def test_bad_head_dims_name_them() -> None:
    with pytest.raises(ValueError, match="out_dim"):
        ContrastiveModel("mlp", (4,), out_dim=0)
    with pytest.raises(ValueError, match="head_hidden"):
        ContrastiveModel("mlp", (4,), head_hidden=-3)
    with pytest.raises(ValueError, match="in_dim"):
        ProjectionHead(0)
    with pytest.raises(ValueError, match="hidden_dim"):
        ProjectionHead(8, hidden_dim=-1)
    with pytest.raises(ValueError, match="dim"):
        Predictor(0)
    with pytest.raises(ValueError, match="hidden_dim"):
        Predictor(4, hidden_dim=0)


@pytest.mark.parametrize("momentum", [1.5, -0.1, math.nan])
def test_bad_momentum_names_momentum(momentum: float) -> None:
    online = ProjectionHead(4, 8, 2)
    with pytest.raises(ValueError, match="momentum"):
        ema_update(make_target(online), online, momentum)


def test_ema_update_rejects_mismatched_networks() -> None:
    with pytest.raises(ValueError, match="target"):
        ema_update(ProjectionHead(4, 8, 2), ProjectionHead(4, 8, 3), 0.5)


@pytest.mark.parametrize("momentum", ["0.9", "high", True, 1.5, float("nan")])
def test_ema_update_rejects_a_momentum_that_is_not_a_number_in_range(momentum: object) -> None:
    head = ProjectionHead(4, 8, 2)
    before = [p.clone() for p in head.parameters()]
    with pytest.raises(ValueError, match=r"^momentum must be"):
        ema_update(head, ProjectionHead(4, 8, 2), momentum)  # type: ignore[arg-type]
    assert all(torch.equal(p, q) for p, q in zip(head.parameters(), before, strict=True))


# --------------------------------------------------------------------------- BYOL target


def _perturbed_pair() -> tuple[nn.Module, nn.Module]:
    """An online head and a target whose parameters and buffers differ from it."""
    online = ContrastiveModel("mlp", (4,), out_dim=3, head_hidden=8, hidden=8)
    target = make_target(online)
    online(torch.randn(8, 4))  # moves the online BN running statistics
    with torch.no_grad():
        for p in online.parameters():
            p.add_(torch.randn_like(p))
    return target, online


def test_make_target_is_frozen_copy() -> None:
    online = ContrastiveModel("mlp", (4,), out_dim=3, head_hidden=8, hidden=8)
    online(torch.randn(4, 4)).sum().backward()
    target = make_target(online)
    assert type(target) is ContrastiveModel
    for p, q in zip(target.parameters(), online.parameters(), strict=True):
        assert not p.requires_grad
        assert p.grad is None
        assert torch.equal(p, q)
        assert p.data_ptr() != q.data_ptr()  # a copy, not a view
    assert all(p.requires_grad for p in online.parameters())


def test_ema_momentum_one_keeps_target() -> None:
    target, online = _perturbed_pair()
    before = _params(target)
    ema_update(target, online, 1.0)
    assert all(torch.equal(p, q) for p, q in zip(target.parameters(), before, strict=True))


def test_ema_momentum_zero_copies_online() -> None:
    target, online = _perturbed_pair()
    ema_update(target, online, 0.0)
    for p, q in zip(target.parameters(), online.parameters(), strict=True):
        assert torch.equal(p, q)
    for b, c in zip(target.buffers(), online.buffers(), strict=True):
        assert torch.equal(b, c)


def test_ema_momentum_half_averages_exactly_and_copies_buffers() -> None:
    target, online = _perturbed_pair()
    before = _params(target)
    ema_update(target, online, 0.5)
    for p, t0, o in zip(target.parameters(), before, online.parameters(), strict=True):
        assert torch.equal(p, (t0 + o) / 2)
        assert not p.requires_grad
    for b, c in zip(target.buffers(), online.buffers(), strict=True):
        assert torch.equal(b, c)  # running statistics are copied, not averaged


def test_ema_general_momentum_matches_formula() -> None:
    target, online = _perturbed_pair()
    before = _params(target)
    ema_update(target, online, 0.9)
    for p, t0, o in zip(target.parameters(), before, online.parameters(), strict=True):
        assert torch.allclose(p, 0.9 * t0 + 0.1 * o, atol=1e-6)


@pytest.mark.parametrize("base", [0.99, 0.996, 0.9, 0.0])
def test_cosine_momentum_schedule(base: float) -> None:
    K = 100
    values = [cosine_momentum(k, K, base) for k in range(K + 1)]
    assert values[0] == pytest.approx(base, abs=1e-15)
    assert values[K] == 1.0
    assert values[K // 2] == pytest.approx(1 - (1 - base) / 2)
    assert all(a <= b for a, b in itertools.pairwise(values))  # non-decreasing


def test_cosine_momentum_default_base_is_exact() -> None:
    assert cosine_momentum(0, 10) == 0.99


@pytest.mark.parametrize(
    ("args", "bad"),
    [((0, 0), "total_steps"), ((-1, 10), "step"), ((11, 10), "step"), ((0, 10, 1.5), "base")],
)
def test_cosine_momentum_validation(args: tuple[float, ...], bad: str) -> None:
    with pytest.raises(ValueError, match=bad):
        cosine_momentum(*args)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- architecture


def test_resnet18_size_and_cifar_stem() -> None:
    encoder, dim = build_encoder("resnet18", (3, 32, 32))
    n_params = sum(p.numel() for p in encoder.parameters())
    assert 10.5e6 < n_params < 11.5e6
    assert dim == 512
    assert not any(isinstance(m, nn.MaxPool2d) for m in encoder.modules())
    first_conv = next(m for m in encoder.modules() if isinstance(m, nn.Conv2d))
    assert first_conv.kernel_size == (3, 3)
    assert first_conv.stride == (1, 1)
    assert first_conv.in_channels == 3
    assert sum(isinstance(m, nn.Conv2d) for m in encoder.modules()) == 1 + 16 + 3  # + shortcuts
    out = encoder(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 512)


def test_resnet18_one_channel_8x8_trains() -> None:
    model = ContrastiveModel("resnet18", (1, 8, 8), out_dim=2)
    model(torch.randn(2, 1, 8, 8)).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_cnn_does_not_over_pool_8x8() -> None:
    encoder, _ = build_encoder("cnn", (1, 8, 8), depth=5)
    pools = sum(isinstance(m, nn.MaxPool2d) for m in encoder.modules())
    assert pools == 3  # 8 -> 4 -> 2 -> 1, then no more pooling
    assert encoder(torch.randn(2, 1, 8, 8)).shape == (2, 32 * 16)


def test_mlp_features_can_overfit_digits_like_data() -> None:
    x = torch.randn(64, 1, 8, 8)
    y = torch.randint(0, 10, (64,))
    model = ContrastiveModel("mlp", (1, 8, 8), out_dim=2)
    probe = nn.Linear(model.feature_dim, 10)
    opt = torch.optim.Adam([*model.parameters(), *probe.parameters()], lr=1e-2)
    losses = []
    for _ in range(50):
        loss = nn.functional.cross_entropy(probe(model.features(x)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0]
    model.eval()
    with torch.no_grad():
        accuracy = (probe(model.features(x)).argmax(1) == y).float().mean().item()
    assert accuracy > 0.9


def test_cuda_if_available() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    model = ContrastiveModel("cnn", (1, 8, 8), out_dim=3, width=4).cuda()
    target = make_target(model)
    z = model(torch.randn(4, 1, 8, 8, device="cuda"))
    assert z.device.type == "cuda"
    ema_update(target, model, cosine_momentum(1, 10))
    assert next(target.parameters()).device.type == "cuda"
