r"""Batched data augmentations in torch, reproducible through an explicit generator.

Every operation takes a batch ``x`` and a ``torch.Generator`` and draws all its randomness
from that generator, on the batch's device, so a seed fixes the augmentations and a saved
``generator.get_state()`` resumes them exactly. Create the generator on the batch's device::

    g = torch.Generator(device=x.device)
    g.manual_seed(0)

Images are ``(B, C, H, W)`` in ``[0, 1]`` and stay there; vectors are ``(B, d)``. Presets
live in the :data:`AUGMENTATIONS` registry under ``"<kind>/<preset>"`` (for example
``"image/standard"``) with a parameter schema each; :func:`make_augment` builds one::

    from gca_viz.augment import make_augment, corrupt

    aug = make_augment("standard", "image", erase_p=0.5)
    view1, view2 = aug(x, g), aug(x, g)  # two random views: a positive pair
    view, strength = aug.apply_with_strength(x, g)  # strength: (B,) mean |view - x|
    x_test = corrupt(x, "image", severity=0.5, generator=g)  # robustness evaluation

The ``"extreme"`` image preset follows the paper's noisy-view setting (large random erasing,
strong crops, strong brightness changes, noise), where some positive pairs share little
content and a hard alignment of every pair is a poor target.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from gca_viz.registry import Param, ParamValue, Registry

Op = Callable[[torch.Tensor, torch.Generator], torch.Tensor]
"""One augmentation step: ``(x, generator) -> x'`` of the same shape."""

KINDS = ("image", "vector")
"""The kinds of data an augmentation applies to."""

PRESETS = ("none", "standard", "extreme")
"""The presets every kind offers."""

AUGMENTATIONS = Registry("augmentation")
"""Presets under ``"<kind>/<preset>"``: a function ``(**params) -> tuple[Op, ...]``."""


# ------------------------------------------------------------------------------ checks


def _check_batch(x: Any, generator: Any, ndim: int) -> None:
    """Raise ``ValueError`` unless ``x`` is a float ``ndim``-D tensor on the generator's device."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise ValueError(f"x must be a floating-point tensor, got {type(x).__name__}")
    if x.ndim != ndim:
        what = "(B, C, H, W) images" if ndim == 4 else "(B, d) vectors"
        raise ValueError(f"x must be {what}, got shape {tuple(x.shape)}")
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    if generator.device.type != x.device.type:
        raise ValueError(
            f"generator is on {generator.device} but x is on {x.device}; "
            "create it with torch.Generator(device=x.device)"
        )


def _check_prob(p: float, name: str) -> float:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {p!r}")
    return float(p)


def _check_range(r: tuple[float, float], name: str, low: float, high: float) -> None:
    if len(r) != 2 or not (low <= r[0] <= r[1] <= high):
        raise ValueError(f"{name} must be a pair low <= high within [{low:g}, {high:g}], got {r}")


def _uniform(
    n: int, low: float, high: float, x: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """``(n,)`` samples of ``U(low, high)`` on ``x``'s device and dtype."""
    u = torch.rand(n, generator=generator, device=x.device, dtype=x.dtype)
    return low + (high - low) * u


def _per_sample_mask(p: float, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """``(B, 1, ..., 1)`` boolean mask: which samples an op with probability ``p`` applies to."""
    u = torch.rand(x.shape[0], generator=generator, device=x.device)
    return (u < p).view(-1, *([1] * (x.ndim - 1)))


# --------------------------------------------------------------------------- image ops


def random_resized_crop(
    x: torch.Tensor,
    generator: torch.Generator,
    *,
    scale: tuple[float, float] = (0.6, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    shift: float = 0.0,
) -> torch.Tensor:
    r"""Crop a random window of each image and resize it back to the full size.

    Each sample draws an area fraction ``s ~ U(scale)`` and an aspect ratio ``r``
    (log-uniform in ``ratio``); the window has width ``w = min(1, sqrt(s r))`` and height
    ``h = min(1, sqrt(s / r))`` of the image's, lies inside the image, and is then moved by
    up to ``shift`` of the image side in each direction (zero fill beyond the image's edge;
    the outer half pixel repeats the edge pixel). It is resampled bilinearly through the
    affine grid

    .. math::
        \begin{pmatrix} u \\ v \end{pmatrix} =
        \begin{pmatrix} w & 0 \\ 0 & h \end{pmatrix}
        \begin{pmatrix} u' \\ v' \end{pmatrix} + \begin{pmatrix} c_u \\ c_v \end{pmatrix}

    where ``(u', v')`` are output and ``(u, v)`` input coordinates in ``[-1, 1]`` and ``c``
    the window centre.

    Args:
        x: ``(B, C, H, W)`` images in ``[0, 1]``.
        generator: a ``torch.Generator`` on ``x``'s device.
        scale: range of the window's area fraction, within ``(0, 1]``.
        ratio: range of the window's aspect ratio (width / height), positive.
        shift: largest translation as a fraction of the side, in ``[0, 1]``.

    Returns:
        ``(B, C, H, W)`` images in ``[0, 1]``.

    Raises:
        ValueError: for a bad batch, generator, ``scale``, ``ratio`` or ``shift``.
    """
    _check_batch(x, generator, 4)
    _check_range(scale, "scale", 1e-6, 1.0)
    _check_range(ratio, "ratio", 1e-6, math.inf)
    if not 0.0 <= shift <= 1.0:
        raise ValueError(f"shift must lie in [0, 1], got {shift!r}")
    b = x.shape[0]
    area = _uniform(b, scale[0], scale[1], x, generator)  # (B,)
    log_r = _uniform(b, math.log(ratio[0]), math.log(ratio[1]), x, generator)  # (B,)
    w = (area * log_r.exp()).sqrt().clamp(max=1.0)  # (B,) window width / image width
    h = (area / log_r.exp()).sqrt().clamp(max=1.0)  # (B,)
    cu = (1.0 - w) * _uniform(b, -1.0, 1.0, x, generator)  # (B,) centre inside the image
    cv = (1.0 - h) * _uniform(b, -1.0, 1.0, x, generator)
    cu = cu + 2.0 * shift * _uniform(b, -1.0, 1.0, x, generator)  # normalised side is 2
    cv = cv + 2.0 * shift * _uniform(b, -1.0, 1.0, x, generator)
    theta = torch.zeros(b, 2, 3, device=x.device, dtype=x.dtype)  # (B, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = w, cu
    theta[:, 1, 1], theta[:, 1, 2] = h, cv
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)  # (B, H, W, 2)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    outside = (grid.abs() > 1.0).any(dim=-1).unsqueeze(1)  # (B, 1, H, W) beyond the image edge
    return out.masked_fill(outside, 0.0).clamp(0.0, 1.0)


def random_hflip(x: torch.Tensor, generator: torch.Generator, *, p: float = 0.5) -> torch.Tensor:
    """Mirror each image left-right with probability ``p``.

    Useful for natural images; off for digits, where a mirrored digit is another symbol.

    Args:
        x: ``(B, C, H, W)`` images.
        generator: a ``torch.Generator`` on ``x``'s device.
        p: probability of flipping a sample.

    Returns:
        ``(B, C, H, W)`` images.
    """
    _check_batch(x, generator, 4)
    mask = _per_sample_mask(_check_prob(p, "p"), x, generator)  # (B, 1, 1, 1)
    return torch.where(mask, x.flip(-1), x)


def color_jitter(
    x: torch.Tensor,
    generator: torch.Generator,
    *,
    brightness: float = 0.2,
    contrast: float = 0.2,
) -> torch.Tensor:
    r"""Random brightness and contrast per sample (torchvision's factors).

    .. math::
        x' = \mathrm{clip}_{[0,1]}\big(c\,(b x - m) + m\big),\qquad
        b \sim U(1 - \beta, 1 + \beta),\ c \sim U(1 - \kappa, 1 + \kappa)

    where ``β`` is ``brightness``, ``κ`` is ``contrast`` (factors clamped at 0) and ``m``
    the mean of ``b x`` over the sample's pixels and channels.

    Args:
        x: ``(B, C, H, W)`` images in ``[0, 1]``.
        generator: a ``torch.Generator`` on ``x``'s device.
        brightness: ``β >= 0``.
        contrast: ``κ >= 0``.

    Returns:
        ``(B, C, H, W)`` images in ``[0, 1]``.

    Raises:
        ValueError: for a negative ``brightness`` or ``contrast``.
    """
    _check_batch(x, generator, 4)
    if brightness < 0 or contrast < 0:
        raise ValueError(f"brightness and contrast must be >= 0, got {brightness}, {contrast}")
    b = x.shape[0]
    fb = _uniform(b, 1.0 - brightness, 1.0 + brightness, x, generator).clamp(min=0.0)  # (B,)
    fc = _uniform(b, 1.0 - contrast, 1.0 + contrast, x, generator).clamp(min=0.0)  # (B,)
    out = x * fb.view(-1, 1, 1, 1)
    mean = out.mean(dim=(1, 2, 3), keepdim=True)  # (B, 1, 1, 1)
    return ((out - mean) * fc.view(-1, 1, 1, 1) + mean).clamp(0.0, 1.0)


def gaussian_noise(
    x: torch.Tensor, generator: torch.Generator, *, std: float = 0.05
) -> torch.Tensor:
    """Add Gaussian noise of standard deviation ``std`` to every pixel, then clip to [0, 1].

    Args:
        x: ``(B, C, H, W)`` images in ``[0, 1]``.
        generator: a ``torch.Generator`` on ``x``'s device.
        std: noise level, ``>= 0``.

    Returns:
        ``(B, C, H, W)`` images in ``[0, 1]``.
    """
    _check_batch(x, generator, 4)
    if std < 0:
        raise ValueError(f"std must be >= 0, got {std!r}")
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return (x + std * noise).clamp(0.0, 1.0)


def gaussian_blur(
    x: torch.Tensor,
    generator: torch.Generator,
    *,
    p: float = 0.3,
    sigma: tuple[float, float] = (0.1, 1.0),
    kernel_size: int = 3,
) -> torch.Tensor:
    r"""Blur each image, with probability ``p``, by a Gaussian of random width.

    Each sample draws ``σ ~ U(sigma)`` and is convolved (separably, edges replicated) with
    the normalised kernel ``k_t ∝ exp(-t² / 2σ²)``, ``|t| <= kernel_size // 2``.

    Args:
        x: ``(B, C, H, W)`` images in ``[0, 1]``.
        generator: a ``torch.Generator`` on ``x``'s device.
        p: probability of blurring a sample.
        sigma: range of ``σ``, positive (a tiny ``σ`` leaves the image unchanged).
        kernel_size: odd kernel width; 3 suits 8x8 digits, 5 suits 32x32 images.

    Returns:
        ``(B, C, H, W)`` images in ``[0, 1]``.
    """
    _check_batch(x, generator, 4)
    _check_range(sigma, "sigma", 0.0, math.inf)
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size!r}")
    b, c, height, width = x.shape
    mask = _per_sample_mask(_check_prob(p, "p"), x, generator)  # (B, 1, 1, 1)
    s = _uniform(b, sigma[0], sigma[1], x, generator).clamp(min=1e-3)  # (B,)
    r = kernel_size // 2
    t = torch.arange(-r, r + 1, device=x.device, dtype=x.dtype)  # (k,)
    kernel = torch.exp(-(t[None, :] ** 2) / (2 * s[:, None] ** 2))  # (B, k)
    kernel = (kernel / kernel.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0)  # (B*C, k)
    flat = F.pad(x.reshape(1, b * c, height, width), (r, r, r, r), mode="replicate")
    flat = F.conv2d(flat, kernel.view(b * c, 1, 1, -1), groups=b * c)  # rows
    flat = F.conv2d(flat, kernel.view(b * c, 1, -1, 1), groups=b * c)  # columns
    blurred = flat.view(b, c, height, width)
    return torch.where(mask, blurred, x).clamp(0.0, 1.0)


def random_erasing(
    x: torch.Tensor,
    generator: torch.Generator,
    *,
    p: float = 0.25,
    area: tuple[float, float] = (0.02, 0.15),
    ratio: tuple[float, float] = (0.3, 3.3),
    value: str = "zero",
) -> torch.Tensor:
    """Replace a random rectangle of each image, with probability ``p``.

    Each sample draws an area fraction ``a ~ U(area)`` and an aspect ratio (log-uniform in
    ``ratio``); the rectangle (``round(sqrt(a r) H)`` by ``round(sqrt(a / r) W)`` pixels,
    clipped to the image) is placed uniformly inside the image and set to 0 (``"zero"``)
    or to uniform noise in ``[0, 1]`` (``"random"``).

    Args:
        x: ``(B, C, H, W)`` images in ``[0, 1]``.
        generator: a ``torch.Generator`` on ``x``'s device.
        p: probability of erasing in a sample.
        area: range of the erased area fraction, within ``[0, 1]``.
        ratio: range of the rectangle's aspect ratio (height / width), positive.
        value: ``"zero"`` or ``"random"``.

    Returns:
        ``(B, C, H, W)`` images in ``[0, 1]``.
    """
    _check_batch(x, generator, 4)
    _check_range(area, "area", 0.0, 1.0)
    _check_range(ratio, "ratio", 1e-6, math.inf)
    if value not in ("zero", "random"):
        raise ValueError(f"value must be 'zero' or 'random', got {value!r}")
    b, _, height, width = x.shape
    apply = _per_sample_mask(_check_prob(p, "p"), x, generator).view(-1, 1, 1)  # (B, 1, 1)
    a = _uniform(b, area[0], area[1], x, generator)  # (B,)
    r = _uniform(b, math.log(ratio[0]), math.log(ratio[1]), x, generator).exp()  # (B,)
    h = ((a * r).sqrt() * height).round().clamp(0, height)  # (B,) rows erased
    w = ((a / r).sqrt() * width).round().clamp(0, width)  # (B,) columns erased
    top = (_uniform(b, 0.0, 1.0, x, generator) * (height - h + 1)).floor()  # (B,)
    left = (_uniform(b, 0.0, 1.0, x, generator) * (width - w + 1)).floor()  # (B,)
    rows = torch.arange(height, device=x.device, dtype=x.dtype)  # (H,)
    cols = torch.arange(width, device=x.device, dtype=x.dtype)  # (W,)
    in_rows = (rows >= top[:, None]) & (rows < (top + h)[:, None])  # (B, H)
    in_cols = (cols >= left[:, None]) & (cols < (left + w)[:, None])  # (B, W)
    mask = (in_rows[:, :, None] & in_cols[:, None, :] & apply).unsqueeze(1)  # (B, 1, H, W)
    if value == "zero":
        fill = torch.zeros((), device=x.device, dtype=x.dtype)
    else:
        fill = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return torch.where(mask, fill, x)


# -------------------------------------------------------------------------- vector ops


def vector_noise(x: torch.Tensor, generator: torch.Generator, *, std: float = 0.05) -> torch.Tensor:
    """Add Gaussian noise of standard deviation ``std`` to every feature.

    Args:
        x: ``(B, d)`` vectors.
        generator: a ``torch.Generator`` on ``x``'s device.
        std: noise level, ``>= 0``.

    Returns:
        ``(B, d)`` vectors.
    """
    _check_batch(x, generator, 2)
    if std < 0:
        raise ValueError(f"std must be >= 0, got {std!r}")
    return x + std * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def feature_dropout(
    x: torch.Tensor, generator: torch.Generator, *, p: float = 0.1, rescale: bool = False
) -> torch.Tensor:
    """Set each feature to 0 with probability ``p``.

    By default the kept features are not rescaled: the view is the sample with some
    coordinates removed, which is what a cosine geometry sees. With ``rescale=True`` the
    kept features are divided by ``1 - p`` (inverted dropout), which preserves the
    expectation ``E[x'] = x``.

    Args:
        x: ``(B, d)`` vectors.
        generator: a ``torch.Generator`` on ``x``'s device.
        p: drop probability in ``[0, 1)``.
        rescale: divide the kept features by ``1 - p``.

    Returns:
        ``(B, d)`` vectors.
    """
    _check_batch(x, generator, 2)
    if not 0.0 <= p < 1.0:
        raise ValueError(f"p must lie in [0, 1), got {p!r}")
    keep = torch.rand(x.shape, generator=generator, device=x.device) >= p  # (B, d)
    out = x * keep
    return out / (1.0 - p) if rescale else out


def random_scaling(
    x: torch.Tensor, generator: torch.Generator, *, scale: tuple[float, float] = (0.8, 1.25)
) -> torch.Tensor:
    """Multiply each vector by a factor drawn log-uniformly from ``scale``.

    A cosine cost ignores this (it only changes the norm); a Euclidean cost does not.

    Args:
        x: ``(B, d)`` vectors.
        generator: a ``torch.Generator`` on ``x``'s device.
        scale: positive range of the factor.

    Returns:
        ``(B, d)`` vectors.
    """
    _check_batch(x, generator, 2)
    _check_range(scale, "scale", 1e-12, math.inf)
    log_f = _uniform(x.shape[0], math.log(scale[0]), math.log(scale[1]), x, generator)  # (B,)
    return x * log_f.exp()[:, None]


# ----------------------------------------------------------------------------- presets


@dataclass(frozen=True, eq=False)
class Augment:
    """A preset's pipeline of augmentation steps with its validated parameters.

    Call it as ``aug(x, generator)``; every call draws fresh randomness from ``generator``,
    so two calls on one batch give the two views of a positive pair. Build it with
    :func:`make_augment`.

    Attributes:
        preset: the preset name, for example ``"standard"``.
        kind: ``"image"`` or ``"vector"``.
        params: the preset's parameters after overrides and validation.
        ops: the steps, applied in order.
    """

    preset: str
    kind: str
    params: Mapping[str, ParamValue]
    ops: tuple[Op, ...] = field(default=(), repr=False)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augment a batch.

        Args:
            x: ``(B, C, H, W)`` images in ``[0, 1]`` or ``(B, d)`` vectors, per ``kind``.
            generator: a ``torch.Generator`` on ``x``'s device, e.g.
                ``torch.Generator(device=x.device)``.

        Returns:
            A new tensor of ``x``'s shape, dtype and device (images stay in ``[0, 1]``).

        Raises:
            ValueError: for a batch of the wrong shape or a generator on another device.
        """
        _check_batch(x, generator, 4 if self.kind == "image" else 2)
        out = x.clone() if not self.ops else x
        for op in self.ops:
            out = op(out, generator)
        return out

    def apply_with_strength(
        self, x: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        r"""Augment a batch and measure how much each sample changed.

        .. math::
            \mathrm{strength}_i = \frac{1}{D} \sum_j |x'_{ij} - x_{ij}|

        where ``j`` runs over the ``D`` entries (pixels and channels, or features) of a sample.

        Args:
            x: as for :meth:`__call__`.
            generator: as for :meth:`__call__`.

        Returns:
            ``(x', strength)``: the augmented batch and a ``(B,)`` tensor, 0 for an
            unchanged sample.
        """
        out = self(x, generator)
        return out, (out - x).abs().flatten(1).mean(dim=1)


def make_augment(preset: str = "standard", kind: str = "image", **overrides: Any) -> Augment:
    """Build the augmentation ``preset`` for data of ``kind``.

    Args:
        preset: one of :data:`PRESETS` (``"none"``, ``"standard"``, ``"extreme"``).
        kind: ``"image"`` or ``"vector"``.
        **overrides: values for the preset's parameters
            (``AUGMENTATIONS[f"{kind}/{preset}"].params``).

    Returns:
        The :class:`Augment`.

    Raises:
        ValueError: (naming the parameter) for an unknown kind, preset or parameter, or a
            value outside its range.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {PRESETS}, got {preset!r}")
    stage = AUGMENTATIONS[f"{kind}/{preset}"]
    params = stage.validate(overrides)
    return Augment(preset=preset, kind=kind, params=params, ops=stage.fn(**params))


NOISE_RATIO_WARN = 0.5
"""The :func:`noise_to_signal` ratio above which :func:`noise_warning` warns (a run on
features varying by 1e-3 under the standard preset, ``r = 50``, sat at chance)."""


def noise_warning(x: Any, preset: str = "standard") -> str | None:
    """A warning when ``preset``'s noise drowns the features ``x`` (:func:`noise_to_signal`
    above :data:`NOISE_RATIO_WARN`, features that vary), else ``None``: what the Train
    page shows before a launch and ``python -m gca_viz train`` prints at the start."""
    ratio = noise_to_signal(x, preset)
    if not NOISE_RATIO_WARN < ratio < math.inf:
        return None
    return (
        f"the {preset} augmentation adds noise {ratio:.3g} times the spread of your features: "
        "two views of a sample would share little but noise, and the loss would stay near "
        "chance. Standardise each feature first (subtract its mean, divide by its standard "
        "deviation), or choose a lighter augmentation"
    )


def noise_to_signal(x: Any, preset: str = "standard") -> float:
    r"""How large a vector preset's added noise is next to the features it is added to:

    .. math::
        r = \frac{\sigma_{\text{noise}}}{s(x)}, \qquad
        s(x) = \Big(\frac{1}{N d}\sum_{i,j} (x_{ij} - \bar x_j)^2\Big)^{1/2}

    ``σ_noise`` is the preset's ``noise`` (0.05 for ``"standard"``, 0.2 for ``"extreme"``,
    0 for ``"none"``) and ``s`` the features' spread about their means (``x̄_j``, a
    column's mean: an offset shared by every sample tells none apart). The noise is
    absolute, so features varying by 1e-3 get views that share almost nothing (``r = 50``)
    and a contrastive loss stays at chance, while standardised features (``s = 1``) get
    ``r = 0.05``. ``inf`` for features that do not vary.

    Args:
        x: ``(N, d)`` vectors (a tensor or an array).
        preset: one of :data:`PRESETS`.

    Returns:
        ``r >= 0``.
    """
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {PRESETS}, got {preset!r}")
    sigma = float(AUGMENTATIONS[f"vector/{preset}"].defaults().get("noise") or 0.0)
    t = torch.as_tensor(x, dtype=torch.float64)
    rms = float((t - t.mean(dim=0)).square().mean().sqrt())
    if sigma == 0.0:
        return 0.0
    return sigma / rms if rms > 0 else math.inf


def image_pipeline(
    crop_scale: float,
    shift: float,
    hflip_p: float,
    brightness: float,
    contrast: float,
    noise: float,
    blur_p: float,
    blur_sigma: float,
    erase_p: float,
    erase_area: float,
    erase_value: str,
) -> tuple[Op, ...]:
    """The image steps: crop, flip, colour, blur, noise, erasing (no-effect steps left out).

    Args:
        crop_scale: smallest crop area fraction (crops draw from ``(crop_scale, 1)``).
        shift: largest translation as a fraction of the side.
        hflip_p: probability of a horizontal flip.
        brightness: brightness factor range ``1 ± brightness``.
        contrast: contrast factor range ``1 ± contrast``.
        noise: standard deviation of the pixel noise.
        blur_p: probability of a blur, with ``σ ~ U(0.1, blur_sigma)``.
        blur_sigma: largest blur ``σ``.
        erase_p: probability of erasing a rectangle of area fraction ``U(0.02, erase_area)``.
        erase_area: largest erased area fraction.
        erase_value: ``"zero"`` or ``"random"`` fill.

    Returns:
        The steps, in order.
    """
    ops: list[Op] = []
    if crop_scale < 1.0 or shift > 0.0:
        ops.append(functools.partial(random_resized_crop, scale=(crop_scale, 1.0), shift=shift))
    if hflip_p > 0.0:
        ops.append(functools.partial(random_hflip, p=hflip_p))
    if brightness > 0.0 or contrast > 0.0:
        ops.append(functools.partial(color_jitter, brightness=brightness, contrast=contrast))
    if blur_p > 0.0:
        kernel_size = 2 * math.ceil(2 * blur_sigma) + 1
        sigma = (min(0.1, blur_sigma), blur_sigma)
        ops.append(functools.partial(gaussian_blur, p=blur_p, sigma=sigma, kernel_size=kernel_size))
    if noise > 0.0:
        ops.append(functools.partial(gaussian_noise, std=noise))
    if erase_p > 0.0 and erase_area > 0.0:
        area = (min(0.02, erase_area), erase_area)
        ops.append(functools.partial(random_erasing, p=erase_p, area=area, value=erase_value))
    return tuple(ops)


def vector_pipeline(noise: float, dropout_p: float, scale: float) -> tuple[Op, ...]:
    """The vector steps: scaling, feature dropout, noise (no-effect steps left out).

    Args:
        noise: standard deviation of the additive noise.
        dropout_p: probability of zeroing a feature (kept features are not rescaled).
        scale: factors are drawn log-uniformly from ``(1 / scale, scale)``.

    Returns:
        The steps, in order.
    """
    ops: list[Op] = []
    if scale > 1.0:
        ops.append(functools.partial(random_scaling, scale=(1.0 / scale, scale)))
    if dropout_p > 0.0:
        ops.append(functools.partial(feature_dropout, p=dropout_p))
    if noise > 0.0:
        ops.append(functools.partial(vector_noise, std=noise))
    return tuple(ops)


def _no_ops() -> tuple[Op, ...]:
    """No steps: the identity."""
    return ()


def _image_params(**defaults: ParamValue) -> tuple[Param, ...]:
    d = defaults
    return (
        Param("crop_scale", d["crop_scale"], "Smallest crop area fraction.", low=0.01, high=1.0),
        Param("shift", d["shift"], "Largest shift, fraction of the side.", low=0.0, high=0.5),
        Param("hflip_p", d["hflip_p"], "Horizontal flip probability.", low=0.0, high=1.0),
        Param("brightness", d["brightness"], "Brightness factor 1 ± this.", low=0.0, high=1.0),
        Param("contrast", d["contrast"], "Contrast factor 1 ± this.", low=0.0, high=1.0),
        Param("noise", d["noise"], "Pixel noise standard deviation.", "σ", low=0.0, high=1.0),
        Param("blur_p", d["blur_p"], "Blur probability.", low=0.0, high=1.0),
        Param("blur_sigma", d["blur_sigma"], "Largest blur σ (pixels).", low=0.1, high=5.0),
        Param("erase_p", d["erase_p"], "Random-erasing probability.", low=0.0, high=1.0),
        Param("erase_area", d["erase_area"], "Largest erased area fraction.", low=0.0, high=1.0),
        Param(
            "erase_value",
            d["erase_value"],
            "Fill of the erased rectangle.",
            kind="choice",
            choices=("zero", "random"),
        ),
    )


def _vector_params(**defaults: ParamValue) -> tuple[Param, ...]:
    d = defaults
    return (
        Param("noise", d["noise"], "Noise standard deviation.", "σ", low=0.0, ui=(0.0, 1.0)),
        Param("dropout_p", d["dropout_p"], "Feature dropout probability.", low=0.0, high=0.95),
        Param("scale", d["scale"], "Scale factors in (1/s, s).", "s", low=1.0, ui=(1.0, 3.0)),
    )


IMAGE_LATEX = (
    r"x' = (\mathrm{erase} \circ \mathrm{noise} \circ \mathrm{blur} \circ \mathrm{jitter}"
    r" \circ \mathrm{flip} \circ \mathrm{crop})(x)"
)
"""The image pipeline's composition."""

VECTOR_LATEX = r"x' = s\,(m \odot x) + \sigma\xi"
"""The vector pipeline: scale ``s``, dropout mask ``m``, noise ``σξ``."""

for _kind in KINDS:
    AUGMENTATIONS.register(
        f"{_kind}/none", latex="x' = x", description="No augmentation: both views are the input."
    )(_no_ops)

AUGMENTATIONS.register(
    "image/standard",
    params=_image_params(
        crop_scale=0.6,
        shift=0.1,
        hflip_p=0.0,
        brightness=0.2,
        contrast=0.2,
        noise=0.05,
        blur_p=0.3,
        blur_sigma=1.0,
        erase_p=0.25,
        erase_area=0.15,
        erase_value="zero",
    ),
    latex=IMAGE_LATEX,
    description="Moderate crops and shifts, colour jitter, light noise, blur and small erasing.",
)(image_pipeline)

AUGMENTATIONS.register(
    "image/extreme",
    params=_image_params(
        crop_scale=0.16,
        shift=0.15,
        hflip_p=0.0,
        brightness=0.5,
        contrast=0.5,
        noise=0.1,
        blur_p=0.5,
        blur_sigma=1.5,
        erase_p=0.9,
        erase_area=0.5,
        erase_value="random",
    ),
    latex=IMAGE_LATEX,
    description="The paper's noisy views: large erasing, strong crops and brightness, noise.",
)(image_pipeline)

AUGMENTATIONS.register(
    "vector/standard",
    params=_vector_params(noise=0.05, dropout_p=0.1, scale=1.2),
    latex=VECTOR_LATEX,
    description="Light noise, feature dropout and scaling.",
)(vector_pipeline)

AUGMENTATIONS.register(
    "vector/extreme",
    params=_vector_params(noise=0.2, dropout_p=0.3, scale=1.5),
    latex=VECTOR_LATEX,
    description="Strong noise and feature dropout: noisy positive pairs.",
)(vector_pipeline)


# --------------------------------------------------------------------------- corruption


def corrupt(
    x: torch.Tensor, kind: str, severity: float, generator: torch.Generator
) -> torch.Tensor:
    r"""Corrupt test data for robustness evaluation; ``severity`` 0 is the identity.

    Images (``s`` = severity): a blur of ``σ = 1.5 s`` pixels, pixel noise of standard
    deviation ``0.3 s``, and a zero-filled rectangle covering a fraction ``0.4 s`` of each
    image. Vectors: noise of ``0.5 s`` times the sample's RMS feature, then each feature
    dropped with probability ``0.5 s``.

    The random draws do not depend on ``severity``: from the same generator state, a higher
    severity corrupts the same samples in the same places, more strongly.

    Args:
        x: ``(B, C, H, W)`` images in ``[0, 1]`` or ``(B, d)`` vectors.
        kind: ``"image"`` or ``"vector"``.
        severity: in ``[0, 1]``.
        generator: a ``torch.Generator`` on ``x``'s device.

    Returns:
        The corrupted batch, same shape, dtype and device (images in ``[0, 1]``).

    Raises:
        ValueError: (naming the parameter) for an unknown ``kind``, a ``severity`` outside
            ``[0, 1]``, or a bad batch or generator.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if not isinstance(severity, int | float) or not 0.0 <= severity <= 1.0:
        raise ValueError(f"severity must be a number in [0, 1], got {severity!r}")
    s = float(severity)
    if kind == "image":
        _check_batch(x, generator, 4)
        out = gaussian_blur(x, generator, p=1.0, sigma=(1.5 * s, 1.5 * s), kernel_size=5)
        out = gaussian_noise(out, generator, std=0.3 * s)
        return random_erasing(out, generator, p=1.0, area=(0.4 * s, 0.4 * s), value="zero")
    _check_batch(x, generator, 2)
    rms = x.pow(2).mean(dim=1, keepdim=True).sqrt()  # (B, 1)
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return feature_dropout(x + 0.5 * s * rms * noise, generator, p=0.5 * s)


def mismatch_views(
    views: torch.Tensor, share: float, strength: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Make a share of the positive pairs mismatch: blend the second view of a random
    subset of the batch with another sample's view.

    .. math::
        x''_i \leftarrow (1 - s)\, x''_i + s\, x''_{\pi(i)}\quad\text{for } i \in \mathcal B,
        \qquad |\mathcal B| = \mathrm{round}(p B)

    where ``B`` is drawn from ``generator`` and ``π`` shifts ``B`` cyclically, so every
    chosen sample takes the view of a different chosen sample (``|B| >= 2``). ``s = 1``
    swaps the views (a pair that matches nothing: the noisy views of ``docs/math.md`` section 7);
    ``s = 0`` changes nothing.

    Args:
        views: ``(B, ...)`` second views (images or vectors).
        share: ``p`` in ``[0, 1]``. strength: ``s`` in ``[0, 1]``.
        generator: a ``torch.Generator`` on ``views``' device.

    Returns:
        ``(views', mismatched)``: the new views (same shape, dtype, device) and a ``(B,)``
        bool tensor marking the pairs in ``B``.

    Raises:
        ValueError: naming ``share`` or ``strength`` outside ``[0, 1]``.
    """
    p, s = _check_prob(share, "share"), _check_prob(strength, "strength")
    b = int(views.shape[0])
    chosen = torch.randperm(b, generator=generator, device=generator.device)[: round(p * b)]
    mismatched = torch.zeros(b, dtype=torch.bool, device=views.device)
    if len(chosen) < 2 or s == 0.0:
        return views, mismatched
    chosen = chosen.to(views.device)
    donors = chosen.roll(1)
    out = views.clone()
    out[chosen] = (1.0 - s) * views[chosen] + s * views[donors]
    mismatched[chosen] = True
    return out, mismatched
