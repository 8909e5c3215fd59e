"""Tests for gca_viz.augment: reproducible batched augmentations and test-time corruption."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F

from gca_viz.augment import (
    AUGMENTATIONS,
    KINDS,
    PRESETS,
    color_jitter,
    corrupt,
    feature_dropout,
    gaussian_blur,
    gaussian_noise,
    make_augment,
    mismatch_views,
    noise_to_signal,
    noise_warning,
    random_erasing,
    random_hflip,
    random_resized_crop,
    random_scaling,
    vector_noise,
)
from gca_viz.data import load_dataset


def _gen(seed: int = 0, device: torch.device | str = "cpu") -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return load_dataset("digits").x[:128]  # (128, 1, 8, 8)


@pytest.fixture(scope="module")
def vectors() -> torch.Tensor:
    return load_dataset("sphere_mixture", n_points=128).x  # (128, 8)


def _batch(kind: str, images: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
    return images if kind == "image" else vectors


def _change(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().mean())


ALL = [(kind, preset) for kind in KINDS for preset in PRESETS]


def test_registry_has_every_preset_for_every_kind() -> None:
    assert {f"{kind}/{preset}" for kind, preset in ALL} == set(AUGMENTATIONS)
    for stage in AUGMENTATIONS.values():
        assert stage.description and stage.latex
        stage.validate({})  # defaults lie within their own schema


@pytest.mark.parametrize(("kind", "preset"), ALL)
def test_output_shape_dtype_device_range(
    kind: str, preset: str, images: torch.Tensor, vectors: torch.Tensor
) -> None:
    x = _batch(kind, images, vectors)
    out = make_augment(preset, kind)(x, _gen())
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    assert bool(torch.isfinite(out).all())
    if kind == "image":
        assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    x64 = x.double()
    assert make_augment(preset, kind)(x64, _gen()).dtype == torch.float64


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("preset", ["standard", "extreme"])
def test_seed_reproducible_and_views_differ(
    kind: str, preset: str, images: torch.Tensor, vectors: torch.Tensor
) -> None:
    x = _batch(kind, images, vectors)
    aug = make_augment(preset, kind)
    same_a, same_b = aug(x, _gen(1)), aug(x, _gen(1))
    assert torch.equal(same_a, same_b)
    assert not torch.equal(same_a, aug(x, _gen(2)))
    g = _gen(1)
    view1, view2 = aug(x, g), aug(x, g)  # a positive pair: two draws from one generator
    assert torch.equal(view1, same_a)
    assert _change(view1, view2) > 0.01


@pytest.mark.parametrize("kind", KINDS)
def test_none_is_identity_with_zero_strength(
    kind: str, images: torch.Tensor, vectors: torch.Tensor
) -> None:
    x = _batch(kind, images, vectors)
    out, strength = make_augment("none", kind).apply_with_strength(x, _gen())
    assert torch.equal(out, x) and out is not x
    assert strength.shape == (x.shape[0],) and float(strength.abs().max()) == 0.0


@pytest.mark.parametrize("kind", KINDS)
def test_extreme_changes_more_than_standard(
    kind: str, images: torch.Tensor, vectors: torch.Tensor
) -> None:
    x = _batch(kind, images, vectors)
    standard, s_strength = make_augment("standard", kind).apply_with_strength(x, _gen())
    extreme, e_strength = make_augment("extreme", kind).apply_with_strength(x, _gen())
    assert _change(extreme, x) > 1.2 * _change(standard, x) > 0.0
    assert float(e_strength.mean()) > float(s_strength.mean()) > 0.0


def test_strength_is_mean_absolute_change(images: torch.Tensor) -> None:
    aug = make_augment("extreme", "image")
    out, strength = aug.apply_with_strength(images, _gen(5))
    assert torch.equal(out, aug(images, _gen(5)))
    expected = torch.stack([(o - x).abs().mean() for o, x in zip(out, images, strict=True)])
    assert torch.allclose(strength, expected, atol=1e-6)


def test_generator_state_restores_augmentations(images: torch.Tensor) -> None:
    aug = make_augment("standard", "image")
    g = _gen(3)
    aug(images, g)  # advance the generator, as a training run would
    state = g.get_state()
    before = [aug(images, g) for _ in range(2)]
    resumed = torch.Generator()
    resumed.set_state(state)
    after = [aug(images, resumed) for _ in range(2)]
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))


def test_overrides_and_hflip_option(images: torch.Tensor) -> None:
    assert make_augment("standard", "image").params["hflip_p"] == 0.0  # off for digits
    flip_only = make_augment(
        "standard",
        "image",
        crop_scale=1.0,
        shift=0.0,
        hflip_p=1.0,
        brightness=0.0,
        contrast=0.0,
        noise=0.0,
        blur_p=0.0,
        erase_p=0.0,
    )
    assert len(flip_only.ops) == 1
    assert torch.equal(flip_only(images, _gen()), images.flip(-1))


@pytest.mark.parametrize(
    ("args", "overrides", "match"),
    [
        (("wild", "image"), {}, "preset"),
        (("standard", "audio"), {}, "kind"),
        (("standard", "image"), {"blur": 0.3}, "blur"),
        (("standard", "image"), {"erase_p": 1.5}, "erase_p"),
        (("extreme", "image"), {"erase_value": "mean"}, "erase_value"),
        (("standard", "vector"), {"dropout_p": 1.0}, "dropout_p"),
        (("none", "vector"), {"noise": 0.1}, "noise"),
    ],
)
def test_make_augment_rejects_bad_arguments(args: tuple, overrides: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make_augment(*args, **overrides)


def test_bad_batches_and_generators(images: torch.Tensor, vectors: torch.Tensor) -> None:
    aug = make_augment("standard", "image")
    with pytest.raises(ValueError, match="x must be"):
        aug(vectors, _gen())
    with pytest.raises(ValueError, match="floating"):
        aug((images * 255).to(torch.uint8), _gen())
    with pytest.raises(ValueError, match="generator"):
        aug(images, 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="x must be"):
        make_augment("standard", "vector")(images, _gen())


# ------------------------------------------------------------------------- image ops


def test_crop_with_full_scale_is_identity(images: torch.Tensor) -> None:
    out = random_resized_crop(images, _gen(), scale=(1.0, 1.0), ratio=(1.0, 1.0), shift=0.0)
    assert torch.allclose(out, images, atol=1e-6)


def test_crop_of_constant_image_stays_constant() -> None:
    x = torch.full((16, 3, 12, 12), 0.7)
    out = random_resized_crop(x, _gen(), scale=(0.1, 1.0))
    assert torch.allclose(out, x, atol=1e-6)  # the window never leaves the image
    shifted = random_resized_crop(x, _gen(), scale=(1.0, 1.0), ratio=(1.0, 1.0), shift=0.5)
    assert float(shifted.min()) == 0.0  # shifting beyond the border fills zeros


def test_crop_zooms_in() -> None:
    # A left-right ramp; a crop of width w rescales the ramp's slope by w.
    ramp = torch.linspace(0.0, 1.0, 32).expand(4, 1, 32, 32).contiguous()
    out = random_resized_crop(ramp, _gen(), scale=(0.25, 0.25), ratio=(1.0, 1.0))
    slope = (out[..., 20] - out[..., 10]).mean() / 10
    assert math.isclose(float(slope), 0.5 / 31, rel_tol=0.05)


def test_hflip_probabilities(images: torch.Tensor) -> None:
    assert torch.equal(random_hflip(images, _gen(), p=1.0), images.flip(-1))
    assert torch.equal(random_hflip(images, _gen(), p=0.0), images)
    half = random_hflip(images, _gen(), p=0.5)
    flipped = (half == images.flip(-1)).flatten(1).all(1) & ~(half == images).flatten(1).all(1)
    assert 0.3 < float(flipped.float().mean()) < 0.7


def test_color_jitter_identity_and_contrast_keeps_mean() -> None:
    x = 0.4 + 0.2 * torch.rand(32, 3, 8, 8, generator=_gen(9))
    assert torch.allclose(color_jitter(x, _gen(), brightness=0.0, contrast=0.0), x)
    out = color_jitter(x, _gen(), brightness=0.0, contrast=0.5)  # no clipping at mid-grey
    assert torch.allclose(out.mean(dim=(1, 2, 3)), x.mean(dim=(1, 2, 3)), atol=1e-5)
    assert not torch.allclose(out, x)
    spread_ratio = out.std(dim=(1, 2, 3)) / x.std(dim=(1, 2, 3))
    assert float(spread_ratio.min()) >= 0.5 - 1e-4 and float(spread_ratio.max()) <= 1.5 + 1e-4


def test_gaussian_noise_level() -> None:
    x = torch.full((64, 1, 16, 16), 0.5)
    out = gaussian_noise(x, _gen(), std=0.05)
    assert math.isclose(float((out - x).std()), 0.05, rel_tol=0.05)
    assert torch.equal(gaussian_noise(x, _gen(), std=0.0), x)


def test_gaussian_blur_matches_direct_convolution() -> None:
    x = torch.rand(3, 2, 7, 9, generator=_gen(4))
    sigma = 0.8
    out = gaussian_blur(x, _gen(), p=1.0, sigma=(sigma, sigma), kernel_size=5)
    t = torch.arange(-2.0, 3.0)
    k1 = torch.exp(-(t**2) / (2 * sigma**2))
    k2 = torch.outer(k1, k1) / k1.sum() ** 2  # (5, 5) normalised 2-D kernel
    padded = F.pad(x, (2, 2, 2, 2), mode="replicate")
    expected = torch.empty_like(x)
    for i in range(7):  # the formula, one output pixel at a time
        for j in range(9):
            expected[:, :, i, j] = (padded[:, :, i : i + 5, j : j + 5] * k2).sum(dim=(-2, -1))
    assert torch.allclose(out, expected, atol=1e-5)
    assert torch.equal(gaussian_blur(x, _gen(), p=0.0), x)


def test_random_erasing_rectangle_area() -> None:
    x = torch.ones(200, 1, 32, 32)
    out = random_erasing(x, _gen(), p=1.0, area=(0.25, 0.25), value="zero")
    erased = out == 0  # (200, 1, 32, 32)
    fraction = erased.float().mean(dim=(1, 2, 3))
    assert math.isclose(float(fraction.mean()), 0.25, abs_tol=0.03)
    rows, cols = erased[:, 0].any(dim=2), erased[:, 0].any(dim=1)  # (200, 32) each
    rectangle = rows[:, :, None] & cols[:, None, :]
    assert torch.equal(rectangle, erased[:, 0])  # the erased set is one rectangle
    noise = random_erasing(x * 0.5, _gen(), p=1.0, area=(0.5, 0.5), value="random")
    assert float(noise.min()) >= 0.0 and float(noise.max()) <= 1.0 and bool((noise != 0.5).any())
    assert torch.equal(random_erasing(x, _gen(), p=0.0), x)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda x: random_resized_crop(x, _gen(), scale=(0.9, 0.5)), "scale"),
        (lambda x: random_resized_crop(x, _gen(), shift=2.0), "shift"),
        (lambda x: random_hflip(x, _gen(), p=-0.1), "p"),
        (lambda x: color_jitter(x, _gen(), brightness=-1.0), "brightness"),
        (lambda x: gaussian_noise(x, _gen(), std=-1.0), "std"),
        (lambda x: gaussian_blur(x, _gen(), kernel_size=4), "kernel_size"),
        (lambda x: random_erasing(x, _gen(), value="mean"), "value"),
        (lambda x: random_erasing(x, _gen(), area=(0.1, 1.5)), "area"),
    ],
)
def test_image_ops_reject_bad_parameters(
    call: Callable[[torch.Tensor], torch.Tensor], match: str, images: torch.Tensor
) -> None:
    with pytest.raises(ValueError, match=match):
        call(images)


# ------------------------------------------------------------------------ vector ops


def test_vector_ops(vectors: torch.Tensor) -> None:
    x = vectors.repeat(8, 1)  # (1024, 8)
    noisy = vector_noise(x, _gen(), std=0.1)
    assert noisy.shape == x.shape and math.isclose(float((noisy - x).std()), 0.1, rel_tol=0.05)
    dropped = feature_dropout(x, _gen(), p=0.3)
    zeroed = (dropped == 0) & (x != 0)
    assert dropped.shape == x.shape
    assert math.isclose(float(zeroed.float().mean()), 0.3, abs_tol=0.02)
    kept = dropped != 0
    assert torch.equal(dropped[kept], x[kept])  # not rescaled by default
    rescaled = feature_dropout(x, _gen(), p=0.3, rescale=True)
    assert torch.allclose(rescaled[kept], x[kept] / 0.7)
    scaled = random_scaling(x, _gen(), scale=(0.5, 2.0))
    factor = scaled.norm(dim=1) / x.norm(dim=1)
    assert float(factor.min()) >= 0.5 - 1e-5 and float(factor.max()) <= 2.0 + 1e-5
    assert torch.allclose(F.normalize(scaled, dim=1), F.normalize(x, dim=1), atol=1e-5)
    with pytest.raises(ValueError, match="p must"):
        feature_dropout(x, _gen(), p=1.0)


# ------------------------------------------------------------------------ corruption


@pytest.mark.parametrize("kind", KINDS)
def test_corrupt_identity_at_zero_and_increasing(
    kind: str, images: torch.Tensor, vectors: torch.Tensor
) -> None:
    x = _batch(kind, images, vectors)
    assert torch.equal(corrupt(x, kind, 0.0, _gen()), x)
    changes = [_change(corrupt(x, kind, s, _gen()), x) for s in (0.0, 0.25, 0.5, 1.0)]
    assert all(a < b for a, b in itertools.pairwise(changes))
    again = corrupt(x, kind, 0.5, _gen(7))
    assert torch.equal(again, corrupt(x, kind, 0.5, _gen(7)))
    assert not torch.equal(again, corrupt(x, kind, 0.5, _gen(8)))
    if kind == "image":
        out = corrupt(x, kind, 1.0, _gen())
        assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_corrupt_rejects_bad_arguments(images: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="severity"):
        corrupt(images, "image", 1.5, _gen())
    with pytest.raises(ValueError, match="kind"):
        corrupt(images, "audio", 0.5, _gen())
    with pytest.raises(ValueError, match="x must be"):
        corrupt(images, "vector", 0.5, _gen())


# ---------------------------------------------------------------------------- device


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize(("kind", "preset"), ALL)
def test_cuda_matches_shapes_and_device(
    kind: str, preset: str, images: torch.Tensor, vectors: torch.Tensor
) -> None:
    x = _batch(kind, images, vectors).cuda()
    g = _gen(0, x.device)
    out, strength = make_augment(preset, kind).apply_with_strength(x, g)
    assert out.device == x.device and strength.device == x.device and out.shape == x.shape
    assert corrupt(x, kind, 0.5, g).device == x.device
    with pytest.raises(ValueError, match="generator is on"):
        make_augment(preset, kind)(x, _gen())


def test_mismatch_views_blends_a_share_with_other_samples(images: torch.Tensor) -> None:
    gen = torch.Generator().manual_seed(0)
    x = images[:10]
    out, bad = mismatch_views(x, 0.4, 1.0, gen)
    assert bad.sum() == 4 and out.shape == x.shape and out.dtype == x.dtype
    assert torch.equal(out[~bad], x[~bad])  # the other pairs are untouched
    # strength 1 swaps: every chosen view is another chosen sample's view, none its own
    chosen = torch.nonzero(bad).flatten()
    for i in chosen:
        match = [int(j) for j in chosen if torch.equal(out[i], x[j])]
        assert match and int(i) not in match
    half, bad_half = mismatch_views(x, 0.4, 0.5, torch.Generator().manual_seed(0))
    assert torch.equal(bad_half, bad)  # same draw from the same generator state
    donors = {int(i): next(int(j) for j in chosen if torch.equal(out[i], x[j])) for i in chosen}
    for i, j in donors.items():
        assert torch.allclose(half[i], 0.5 * x[i] + 0.5 * x[j])
    same, none = mismatch_views(x, 0.4, 0.0, gen)
    assert torch.equal(same, x) and not none.any()
    for share, strength, name in ((1.5, 1.0, "share"), (0.5, -0.1, "strength")):
        with pytest.raises(ValueError, match=name):
            mismatch_views(x, share, strength, gen)


def test_noise_to_signal_is_the_presets_noise_over_the_features_rms() -> None:
    """The vector presets' noise is absolute: next to standardised features it is 5% (the
    standard preset), next to features of size 1e-3 fifty times larger."""
    x = torch.randn(500, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    rms = float((x - x.mean(0)).square().mean().sqrt())
    assert noise_to_signal(x) == pytest.approx(0.05 / rms, rel=1e-12)
    assert noise_to_signal(1e-3 * x.numpy(), "extreme") == pytest.approx(200 / rms)
    assert noise_to_signal(1000 + 1e-3 * x) == pytest.approx(50 / rms, rel=1e-6)  # offset
    assert noise_to_signal(x, "none") == 0.0
    assert noise_to_signal(torch.full((3, 2), 7.0)) == math.inf
    with pytest.raises(ValueError, match=r"^preset must be one of"):
        noise_to_signal(x, "heavy")
    assert noise_warning(x) is None and noise_warning(1e-3 * x, "none") is None
    assert noise_warning(torch.full((3, 2), 7.0)) is None  # (nothing varies: no ratio)
    said = noise_warning(1e-3 * x)
    assert said is not None and said.startswith("the standard augmentation adds noise 50")
