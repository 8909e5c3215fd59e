r"""Encoders and heads for the training engine, plus BYOL's predictor and moving-average target.

A contrastive model maps an input ``x`` to a feature ``h = f(x)`` (the backbone, what linear
probes and k-NN read) and a projection ``z = g(h)`` (the head, what the loss sees)::

    x (B, *input_shape) --encoder f--> h (B, feature_dim) --head g--> z (B, out_dim)

Projections are returned unnormalised; the losses normalise (or, for BYOL, do not need to).
An ``out_dim`` of 2 or 3 puts the normalised embeddings on a circle or a sphere the app can
draw; 128 is the usual SimCLR size.

Encoders live in the :data:`ENCODERS` registry, each with a parameter schema:

* ``"mlp"``: ``depth`` Linear-BN-ReLU blocks of width ``hidden`` on the flattened input
  (vectors ``(d,)`` or images ``(C, H, W)``).
* ``"cnn"``: conv3x3-BN-ReLU blocks with ``width, 2 width, 4 width, ...`` channels, 2x2
  max-pooling between blocks only while the image is at least 2 pixels on a side (so an 8x8
  digit is never over-pooled), then global average pooling.
* ``"resnet18"``: ResNet-18 with the CIFAR stem (3x3 convolution, stride 1, no max-pool),
  BasicBlocks ``[2, 2, 2, 2]`` of widths ``64-128-256-512``, global average pooling.

BYOL (``docs/math.md`` section 4) adds a :class:`Predictor` ``q`` and a target network that is
an exponential moving average of the online one: :func:`make_target`, :func:`ema_update` and
:func:`cosine_momentum`.

Public API::

    from gca_viz.models import ENCODERS, build_encoder, ContrastiveModel
    from gca_viz.models import ProjectionHead, Predictor
    from gca_viz.models import make_target, ema_update, cosine_momentum

Everything is device-agnostic (move modules with ``.to(device)``) and initialised from
torch's global generator, so ``torch.manual_seed`` fixes the initial parameters. Batch norm
in training mode needs at least 2 samples per batch.

References:
    He, Zhang, Ren, Sun (2016), Deep residual learning for image recognition. CVPR.
    Chen, Kornblith, Norouzi, Hinton (2020), A simple framework for contrastive learning of
    visual representations (SimCLR). ICML.
    Grill et al. (2020), Bootstrap your own latent (BYOL). NeurIPS.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator, Mapping
from numbers import Integral
from typing import Any, ClassVar, TypeVar

import torch
from torch import nn

from gca_viz._validate import integer, nonnegative
from gca_viz.registry import Param, Registry

M = TypeVar("M", bound=nn.Module)

ENCODERS = Registry("encoder")
"""Registry of encoder backbones: ``mlp``, ``cnn``, ``resnet18``."""

MAX_PARAMETERS = 100_000_000
"""The most weights an encoder's hidden layers may have (400 MB in float32, four times that
with AdamW's state): a size check before anything is allocated, since a few doublings too
many (a CNN's channels double at each block) ask for more memory than any machine has."""


_HIDDEN_WEIGHTS: dict[str, Callable[[Mapping[str, Any]], float]] = {
    "mlp": lambda p: p["hidden"] ** 2 * (p["depth"] - 1),
    # 3x3 convolutions from width * 2^l to width * 2^(l+1) channels
    "cnn": lambda p: sum(9 * (p["width"] * 2.0**l) ** 2 * 2 for l in range(p["depth"] - 1)),
    "resnet18": lambda p: 11.2e6 * (p["width"] / 64) ** 2,
}


def hidden_weights(name: str, params: Mapping[str, Any]) -> float:
    """The number of weights in encoder ``name``'s layers after its input layer, from its
    validated ``params`` (the input layer's depend on the data): ``hidden² (depth - 1)`` for
    the MLP, ``Σ_l 9 c_l c_{l+1}`` with ``c_l = width 2^l`` for the CNN, ``11.2M (width /
    64)²`` for ResNet-18. Weights of biases and BN are left out."""
    return float(_HIDDEN_WEIGHTS[name](params))


def _size_check(name: str, names: str) -> Callable[[Mapping[str, Any]], None]:
    """A :attr:`~gca_viz.registry.Stage.check` refusing encoder ``name`` when its hidden
    layers would have more than :data:`MAX_PARAMETERS` weights (:func:`hidden_weights`),
    naming ``names``."""

    def check(params: Mapping[str, Any]) -> None:
        weights = hidden_weights(name, params)
        if weights > MAX_PARAMETERS:
            settings = ", ".join(f"{n} = {params[n]}" for n in names.split(" and "))
            raise ValueError(
                f"{names}: {settings} would give {weights / 1e6:,.1f} million weights, more "
                f"than the {MAX_PARAMETERS / 1e6:,.0f} million allowed; lower {names}"
            )

    return check


MLP_LATEX = (
    r"h = \phi_L \circ \cdots \circ \phi_1(\mathrm{vec}(x)),\qquad"
    r" \phi_l(u) = \mathrm{ReLU}(\mathrm{BN}(W_l u + b_l))"
)
CNN_LATEX = (
    r"h = \mathrm{GAP}\big(\psi_L \circ \mathrm{pool} \circ \cdots \circ \psi_1(x)\big),\qquad"
    r" \psi_l(u) = \mathrm{ReLU}(\mathrm{BN}(\mathrm{conv}_{3\times 3}(u)))"
)
RESNET_LATEX = (
    r"h = \mathrm{GAP}(\text{stages}_{1..4}(\mathrm{stem}(x))),\qquad"
    r" \text{block}(u) = \mathrm{ReLU}\big(\mathrm{BN}(\mathrm{conv}(\mathrm{ReLU}("
    r"\mathrm{BN}(\mathrm{conv}(u))))) + \mathrm{shortcut}(u)\big)"
)
HEAD_LATEX = r"g(h) = W_2\, \mathrm{ReLU}(\mathrm{BN}(W_1 h + b_1)) + b_2"
"""The projection head and BYOL's predictor (same shape, different role)."""
EMA_LATEX = r"\xi \leftarrow m\, \xi + (1 - m)\, \theta"
"""BYOL's target update: target parameters ``ξ``, online parameters ``θ``, momentum ``m``."""
COSINE_MOMENTUM_LATEX = r"m_k = 1 - (1 - m_0)\,\frac{\cos(\pi k / K) + 1}{2}"
"""BYOL's momentum schedule from ``m_0`` at step 0 to 1 at step ``K``."""


# --------------------------------------------------------------------------- validation


def _is_int(value: Any) -> bool:
    """Whether ``value`` is an integer (Python or numpy), not a bool."""
    return isinstance(value, Integral) and not isinstance(value, bool)


def _check_dim(value: Any, name: str) -> int:
    """``value`` as an int ``>= 1`` (a width or a count), else ``ValueError``."""
    return integer(value, name, 1)


def _check_input_shape(input_shape: Any, encoder: str, image: bool) -> tuple[int, ...]:
    """Validate ``input_shape``: ``(d,)`` or ``(C, H, W)``, or only ``(C, H, W)`` if ``image``."""
    try:
        shape = tuple(input_shape)
    except TypeError:
        raise ValueError(
            f"input_shape must be a tuple (d,) or (C, H, W), got {input_shape!r}"
        ) from None
    if len(shape) not in (1, 3) or not all(_is_int(s) and int(s) >= 1 for s in shape):
        raise ValueError(
            f"input_shape must be (d,) or (C, H, W) with positive integers, got {input_shape!r}"
        )
    if image and len(shape) != 3:
        raise ValueError(
            f"encoder {encoder!r} needs an image input_shape (C, H, W), got {input_shape!r}"
        )
    return tuple(int(s) for s in shape)


# --------------------------------------------------------------------------- encoders


class Encoder(nn.Module):
    """Base of the registered encoders: a backbone ``(B, *input_shape) -> (B, feature_dim)``."""

    feature_dim: int
    """Dimension of the features the backbone outputs."""
    any_size: ClassVar[bool] = False
    """Whether images of another ``H, W`` than the ``input_shape`` built for are accepted."""


@ENCODERS.register(
    "mlp",
    params=(
        Param(
            "hidden",
            256,
            "Width of every hidden layer (= feature dimension).",
            kind="int",
            low=1,
            ui=(16, 1024),
        ),
        Param(
            "depth", 2, "Number of Linear-BN-ReLU blocks.", kind="int", low=1, high=32, ui=(1, 6)
        ),
    ),
    check=_size_check("mlp", "hidden and depth"),
    latex=MLP_LATEX,
    description="Multi-layer perceptron on the flattened input (vectors or small images).",
)
class MLPEncoder(Encoder):
    r"""Multi-layer perceptron on the flattened input.

    .. math::
        h = \phi_L \circ \cdots \circ \phi_1(\mathrm{vec}(x)),\qquad
        \phi_l(u) = \mathrm{ReLU}(\mathrm{BN}(W_l u + b_l))

    where ``L = depth`` and every ``W_l`` has ``hidden`` output rows.

    Args:
        input_shape: ``(d,)`` for vectors or ``(C, H, W)`` for images (flattened to
            ``C*H*W``).
        hidden: width of every block, which is also the feature dimension.
        depth: number of Linear-BN-ReLU blocks.

    Raises:
        ValueError: naming ``input_shape``, ``hidden`` or ``depth`` if it is invalid.
    """

    any_size: ClassVar[bool] = False  # it flattens: the input size is fixed

    def __init__(self, input_shape: tuple[int, ...], hidden: int = 256, depth: int = 2) -> None:
        super().__init__()
        shape = _check_input_shape(input_shape, "mlp", image=False)
        hidden, depth = _check_dim(hidden, "hidden"), _check_dim(depth, "depth")
        layers: list[nn.Module] = [nn.Flatten()]  # (B, *shape) -> (B, prod(shape))
        width = math.prod(shape)
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True)]
            width = hidden
        self.net = nn.Sequential(*layers)
        self.feature_dim = hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features ``(B, hidden)`` of inputs ``(B, *input_shape)``."""
        out: torch.Tensor = self.net(x)
        return out


def _conv_bn_relu(c_in: int, c_out: int) -> list[nn.Module]:
    """A 3x3 convolution (same padding, no bias: BN has one), batch norm and ReLU."""
    return [
        nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    ]


@ENCODERS.register(
    "cnn",
    params=(
        Param(
            "width",
            32,
            "Channels of the first block (doubled at each block).",
            kind="int",
            low=1,
            ui=(8, 128),
        ),
        Param(
            "depth", 3, "Number of conv3x3-BN-ReLU blocks.", kind="int", low=1, high=12, ui=(1, 5)
        ),
    ),
    check=_size_check("cnn", "width and depth"),
    latex=CNN_LATEX,
    description="Small CNN for small images (8x8 digits to 32x32), pooling adapted to the size.",
)
class SmallCNN(Encoder):
    r"""Small convolutional network for small images.

    .. math::
        h = \mathrm{GAP}\big(\psi_L \circ \mathrm{pool} \circ \cdots \circ \psi_1(x)\big),\qquad
        \psi_l(u) = \mathrm{ReLU}(\mathrm{BN}(\mathrm{conv}_{3\times 3}(u)))

    where ``L = depth``, block ``l`` has ``width * 2**(l-1)`` channels, ``pool`` is a 2x2
    max-pool inserted between blocks only while both sides are still at least 2 pixels (an
    8x8 image goes 8 -> 4 -> 2, a 32x32 one 32 -> 16 -> 8), and ``GAP`` is global average
    pooling. The defaults give channels 32, 64, 128.

    Args:
        input_shape: ``(C, H, W)``; the network accepts other ``H, W`` too, the pooling
            plan is computed for this one.
        width: channels of the first block.
        depth: number of blocks.

    Raises:
        ValueError: naming ``input_shape`` (not an image), ``width`` or ``depth``.
    """

    any_size: ClassVar[bool] = True  # global average pooling: any H, W

    def __init__(self, input_shape: tuple[int, ...], width: int = 32, depth: int = 3) -> None:
        super().__init__()
        c, h, w = _check_input_shape(input_shape, "cnn", image=True)
        width, depth = _check_dim(width, "width"), _check_dim(depth, "depth")
        layers: list[nn.Module] = []
        c_in = c
        for l in range(depth):
            c_out = width * 2**l
            layers += _conv_bn_relu(c_in, c_out)  # (B, c_in, h, w) -> (B, c_out, h, w)
            if l < depth - 1 and min(h, w) >= 2:
                layers.append(nn.MaxPool2d(2))  # (B, c_out, h, w) -> (B, c_out, h/2, w/2)
                h, w = h // 2, w // 2
            c_in = c_out
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]  # (B, c_out, h, w) -> (B, c_out)
        self.net = nn.Sequential(*layers)
        self.feature_dim = c_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features ``(B, width * 2**(depth-1))`` of images ``(B, C, H, W)``."""
        out: torch.Tensor = self.net(x)
        return out


class BasicBlock(nn.Module):
    r"""ResNet basic block: two 3x3 convolutions and a shortcut.

    .. math::
        y = \mathrm{ReLU}\big(\mathrm{BN}(\mathrm{conv}(\mathrm{ReLU}(\mathrm{BN}(
        \mathrm{conv}_s(u))))) + \mathrm{shortcut}(u)\big)

    where ``conv_s`` has stride ``s`` and the shortcut is the identity, or a strided 1x1
    convolution with batch norm when the shape changes.

    Args:
        c_in: input channels.
        c_out: output channels.
        stride: stride of the first convolution (2 halves the spatial size).
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, c_in, H, W) -> (B, c_out, ceil(H/s), ceil(W/s))``."""
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


@ENCODERS.register(
    "resnet18",
    params=(
        Param(
            "width",
            64,
            "Channels of the first stage (64 is the standard ResNet-18).",
            kind="int",
            low=1,
            ui=(8, 64),
        ),
    ),
    check=_size_check("resnet18", "width"),
    latex=RESNET_LATEX,
    description="ResNet-18 with the CIFAR stem (3x3 conv, stride 1, no max-pool); 512 features.",
)
class ResNet18(Encoder):
    r"""ResNet-18 with the CIFAR stem, written from scratch.

    .. math::
        h = \mathrm{GAP}(\text{stages}_{1..4}(\mathrm{stem}(x)))

    where ``stem`` is a 3x3 convolution with stride 1 plus BN and ReLU (no max-pool, so a
    32x32 image keeps its resolution), the four stages hold two :class:`BasicBlock` each with
    ``width * (1, 2, 4, 8)`` channels (64-128-256-512 by default), stages 2-4 halve the
    spatial size (32 -> 32, 16, 8, 4; 8 -> 8, 4, 2, 1), and ``GAP`` is global average pooling.
    About 11.2M parameters for 3-channel input at ``width = 64``. Convolutions use He
    (Kaiming) normal initialisation, as in torchvision.

    Args:
        input_shape: ``(C, H, W)``; any channel count and any size (``1x8x8`` works).
        width: channels of the first stage.

    Raises:
        ValueError: naming ``input_shape`` (not an image) or ``width``.
    """

    any_size: ClassVar[bool] = True  # global average pooling: any H, W

    def __init__(self, input_shape: tuple[int, ...], width: int = 64) -> None:
        super().__init__()
        c, _, _ = _check_input_shape(input_shape, "resnet18", image=True)
        width = _check_dim(width, "width")
        self.stem = nn.Sequential(*_conv_bn_relu(c, width))  # (B, C, H, W) -> (B, w, H, W)
        stages: list[nn.Module] = []
        c_in = width
        for i, stride in enumerate((1, 2, 2, 2)):
            c_out = width * 2**i
            stages.append(nn.Sequential(BasicBlock(c_in, c_out, stride), BasicBlock(c_out, c_out)))
            c_in = c_out
        self.stages = nn.Sequential(*stages)  # -> (B, 8w, H/8, W/8)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())  # -> (B, 8w)
        self.feature_dim = c_in
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features ``(B, 8 * width)`` of images ``(B, C, H, W)``."""
        out: torch.Tensor = self.pool(self.stages(self.stem(x)))
        return out


def build_encoder(name: str, input_shape: tuple[int, ...], **params: Any) -> tuple[nn.Module, int]:
    """Build the encoder registered as ``name`` for inputs of shape ``input_shape``.

    Args:
        name: a key of :data:`ENCODERS` (``"mlp"``, ``"cnn"``, ``"resnet18"``).
        input_shape: shape of one input without the batch axis: ``(d,)`` or ``(C, H, W)``.
        **params: encoder parameters (see the entry's schema), validated here.

    Returns:
        ``(encoder, feature_dim)``: a module mapping ``(B, *input_shape)`` to
        ``(B, feature_dim)``, and that feature dimension.

    Raises:
        ValueError: naming ``encoder`` if the name is unknown or needs an image and
            ``input_shape`` is a vector; naming ``input_shape`` if it is not ``(d,)`` or
            ``(C, H, W)`` of positive integers; naming a parameter outside its schema.
    """
    stage = ENCODERS[name]  # UnknownNameError (a ValueError): "unknown encoder ..."
    shape = _check_input_shape(input_shape, name, image=False)
    encoder: Encoder = stage.fn(shape, **stage.validate(params))
    return encoder, encoder.feature_dim


# --------------------------------------------------------------------------- heads


class _MLPHead(nn.Module):
    """Linear-BN-ReLU-Linear, shared by :class:`ProjectionHead` and :class:`Predictor`."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int) -> None:
        super().__init__()
        in_dim = _check_dim(in_dim, "in_dim")
        hidden_dim = _check_dim(hidden_dim, "hidden_dim")
        out_dim = _check_dim(out_dim, "out_dim")
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden_dim),  # (B, in_dim) -> (B, hidden_dim)
            nn.BatchNorm1d(hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, out_dim),  # (B, hidden_dim) -> (B, out_dim)
        )
        self.in_dim, self.hidden_dim, self.out_dim = in_dim, hidden_dim, out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_dim) -> (B, out_dim)``."""
        out: torch.Tensor = self.net(x)
        return out


class ProjectionHead(_MLPHead):
    r"""SimCLR's projection head ``g``: features to the space the loss compares.

    .. math::
        z = g(h) = W_2\, \mathrm{ReLU}(\mathrm{BN}(W_1 h + b_1)) + b_2

    Args:
        in_dim: feature dimension of ``h``.
        hidden_dim: width of the hidden layer.
        out_dim: dimension of ``z``; 128 is SimCLR's, 2 or 3 put the normalised embeddings
            on a circle or a sphere the app can draw (any ``>= 1`` is accepted).

    Raises:
        ValueError: naming ``in_dim``, ``hidden_dim`` or ``out_dim`` if it is not a positive
            integer.
    """

    def __init__(self, in_dim: int, hidden_dim: int = 256, out_dim: int = 128) -> None:
        super().__init__(in_dim, hidden_dim, out_dim)


class Predictor(_MLPHead):
    r"""BYOL's predictor ``q``: maps an online projection to a guess of the target's.

    .. math::
        q(z) = W_2\, \mathrm{ReLU}(\mathrm{BN}(W_1 z + b_1)) + b_2, \qquad
        L = 2 - 2 \cos\big(q(z'), \mathrm{sg}(z''_{\mathrm{target}})\big)

    The output has the same dimension ``dim`` as the input.

    Args:
        dim: projection dimension (input and output).
        hidden_dim: width of the hidden layer.

    Raises:
        ValueError: naming ``dim`` or ``hidden_dim`` if it is not a positive integer.
    """

    def __init__(self, dim: int, hidden_dim: int = 256) -> None:
        super().__init__(_check_dim(dim, "dim"), hidden_dim, dim)


class ContrastiveModel(nn.Module):
    """An encoder (backbone ``f``) followed by a :class:`ProjectionHead` (``g``).

    ``forward(x)`` returns the projections ``z = g(f(x))``, unnormalised (the losses
    normalise); ``features(x)`` returns ``h = f(x)`` for probes.

    Args:
        encoder: a key of :data:`ENCODERS`.
        input_shape: shape of one input: ``(d,)`` or ``(C, H, W)``.
        out_dim: projection dimension (2 or 3 for drawable embeddings, 128 usual).
        head_hidden: hidden width of the projection head.
        **encoder_params: parameters of the encoder (see its schema).

    Attributes:
        encoder: the backbone module; ``encoder_name`` its registry name.
        head: the projection head.
        input_shape, feature_dim, out_dim: the shapes ``x -> h -> z`` (without batch axis).

    Raises:
        ValueError: as :func:`build_encoder` and :class:`ProjectionHead` (naming
            ``encoder``, ``input_shape``, an encoder parameter, ``out_dim`` or
            ``head_hidden``).
    """

    def __init__(
        self,
        encoder: str,
        input_shape: tuple[int, ...],
        out_dim: int = 128,
        head_hidden: int = 256,
        **encoder_params: Any,
    ) -> None:
        super().__init__()
        self.encoder, self.feature_dim = build_encoder(encoder, input_shape, **encoder_params)
        head_hidden = _check_dim(head_hidden, "head_hidden")  # name the caller's argument
        self.head = ProjectionHead(self.feature_dim, head_hidden, out_dim)
        self.encoder_name = encoder
        self.input_shape = tuple(int(s) for s in input_shape)
        self.out_dim = self.head.out_dim

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone features ``h``: ``(B, *input_shape) -> (B, feature_dim)``.

        Convolutional encoders (``any_size``) also accept images ``(B, C, H', W')`` of
        another size with the same channel count ``C``.

        Raises:
            ValueError: naming ``x`` if its shape does not fit ``input_shape``.
        """
        shape = tuple(x.shape[1:])  # without the batch axis
        same_channels = len(shape) == 3 and shape[0] == self.input_shape[0]
        any_size = isinstance(self.encoder, Encoder) and self.encoder.any_size
        if shape != self.input_shape and not (any_size and same_channels):
            raise ValueError(f"x must have shape (B, *{self.input_shape}), got {tuple(x.shape)}")
        out: torch.Tensor = self.encoder(x)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Projections ``z`` (unnormalised): ``(B, *input_shape) -> (B, out_dim)``."""
        out: torch.Tensor = self.head(self.features(x))
        return out


# --------------------------------------------------------------------------- BYOL target


def make_target(model: M) -> M:
    """A frozen copy of ``model`` to serve as BYOL's moving-average target network.

    The copy has the same parameters and buffers (on the same device), ``requires_grad``
    switched off and no ``.grad``; it stays in the training mode of ``model`` (BYOL's
    target uses batch statistics like the online network). Update it with
    :func:`ema_update`.

    Args:
        model: the online network (for example encoder and projection head, without the
            predictor).

    Returns:
        The target copy.
    """
    target = copy.deepcopy(model)
    for p in target.parameters():
        p.requires_grad_(False)
        p.grad = None
    return target


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, momentum: float) -> None:
    r"""Move the target's parameters towards the online ones (BYOL), in place.

    .. math::
        \xi \leftarrow m\, \xi + (1 - m)\, \theta

    where ``ξ`` are the target parameters, ``θ`` the online parameters and ``m`` the
    momentum (``m = 1`` keeps the target, ``m = 0`` copies the online network). Buffers
    (batch-norm running statistics) are copied from the online network.

    Args:
        target: the target network (from :func:`make_target`), updated in place.
        online: the online network, with the same parameter and buffer names and shapes,
            on the same device.
        momentum: ``m`` in ``[0, 1]``, typically 0.99 or :func:`cosine_momentum`.

    Raises:
        ValueError: naming ``momentum`` if it is outside ``[0, 1]``, or ``target`` if its
            parameters or buffers do not match ``online``'s.
    """
    m = nonnegative(momentum, "momentum", 1.0)  # (no str or bool; NaN refused)
    pairs = _matched(target.named_parameters(), online.named_parameters(), "parameters")
    for xi, theta in pairs:
        xi.mul_(m).add_(theta, alpha=1.0 - m)  # ξ <- m ξ + (1 - m) θ
    for t_buf, o_buf in _matched(target.named_buffers(), online.named_buffers(), "buffers"):
        t_buf.copy_(o_buf)


def _matched(
    target: Iterator[tuple[str, torch.Tensor]],
    online: Iterator[tuple[str, torch.Tensor]],
    kind: str,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Pair the target's and the online network's tensors, checking names and shapes."""
    t_items, o_items = list(target), list(online)
    if [(n, t.shape) for n, t in t_items] != [(n, o.shape) for n, o in o_items]:
        raise ValueError(f"target and online have different {kind} (names or shapes)")
    return [(t, o) for (_, t), (_, o) in zip(t_items, o_items, strict=True)]


def cosine_momentum(step: int, total_steps: int, base: float = 0.99) -> float:
    r"""BYOL's momentum schedule: from ``base`` at step 0 up to 1 at the last step.

    .. math::
        m_k = 1 - (1 - m_0)\,\frac{\cos(\pi k / K) + 1}{2}

    where ``k = step``, ``K = total_steps`` and ``m_0 = base``.

    Args:
        step: current step ``k`` in ``[0, total_steps]``.
        total_steps: number of steps ``K >= 1``.
        base: momentum ``m_0`` at step 0, in ``[0, 1]``.

    Returns:
        The momentum ``m_k``.

    Raises:
        ValueError: naming ``total_steps``, ``step`` or ``base`` if it is out of range.
    """
    total_steps = _check_dim(total_steps, "total_steps")
    if not _is_int(step) or not 0 <= int(step) <= total_steps:
        raise ValueError(f"step must be an integer in [0, {total_steps}], got {step!r}")
    m0 = float(base)
    if not 0.0 <= m0 <= 1.0:  # also rejects NaN
        raise ValueError(f"base must be in [0, 1], got {base!r}")
    return 1.0 - (1.0 - m0) * (math.cos(math.pi * int(step) / total_steps) + 1.0) / 2.0
