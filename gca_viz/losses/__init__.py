r"""The GCA loss family: every contrastive loss as ``d_M(P_tgt || proj_B(K(C(z', z''))))``.

Public API::

    from gca_viz import losses

    loss = losses.get("gca_ince", epsilon=0.5, n_iter=10)  # a torch.nn.Module
    value = loss(z1, z2)  # z1, z2: (N, d), row i paired
    seen = loss.inspect(z1, z2)  # cost, target, plan, diagnostics

``LOSSES`` holds the named methods (INCE, GCA-INCE, RINCE, GCA-RINCE, GCA-UOT, IOT,
IOT-uni, BYOL); ``COSTS``, ``PROJECTIONS``, ``DIVERGENCES`` (and
:data:`gca_viz.targets.TARGETS`) hold the stages they are made of, and :func:`compose`
combines any four of them into a new loss; :func:`title` writes a method's name for people
(``"GCA-UOT"``). :func:`rince_underflow` says when RINCE's
terms underflow a dtype at a small ``ε``. See ``docs/math.md`` sections 3 and 4.
"""

from gca_viz.losses.divergences import DIVERGENCES, rince_underflow
from gca_viz.losses.methods import LOSSES, Method, compose, get, title
from gca_viz.losses.module import GCALoss, LossOutput
from gca_viz.losses.stages import COSTS, PROJECTIONS, Projection
from gca_viz.targets import TARGETS

__all__ = [
    "COSTS",
    "DIVERGENCES",
    "LOSSES",
    "PROJECTIONS",
    "TARGETS",
    "GCALoss",
    "LossOutput",
    "Method",
    "Projection",
    "compose",
    "get",
    "rince_underflow",
    "title",
]
