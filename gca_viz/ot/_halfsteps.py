r"""A stretch of kernel-domain half-steps as one autograd node with a hand-written backward.

Plain autograd through ``2T`` half-steps records one ``(n, m)`` outer product per
half-step for the kernel's gradient; this node forms it with a single matrix product.
"""

from __future__ import annotations

from typing import Any

import torch

from gca_viz.ot._loop import _advance, _Stretch


class _FusedHalfSteps(torch.autograd.Function):
    r"""A stretch of kernel-domain half-steps as one autograd node.

    Backward, from the last half-step to the first, with ``ū``, ``v̄`` the incoming
    gradients: a column step ``v = (ν / r)^ρ2``, ``r = K~^T u`` gives
    ``r̄ = -ρ2 v̄ v / r``, ``ν̄ += ρ2 v̄ v / ν``, ``ū += K~ r̄``; a row step
    ``u = (μ / s)^ρ1``, ``s = K~ v`` gives ``s̄ = -ρ1 ū u / s``, ``μ̄ += ρ1 ū u / μ``,
    ``v̄ += K~^T s̄``. The kernel's gradient ``K̄ = sum_rows s̄ v^T + sum_cols u r̄^T`` is one
    ``(n, k) x (k, m)`` product.

    The backward is not itself differentiable (it reads the scalings detached): a second
    derivative raises (:func:`first_order_only`; ``method="log"`` has them).
    """

    @staticmethod
    def forward(
        ctx: Any,
        K: torch.Tensor,
        mu_eff: torch.Tensor,
        nu_eff: torch.Tensor,
        u: torch.Tensor,
        v: torch.Tensor,
        stretch: _Stretch,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        u_out, v_out = _advance(stretch, u, v, graph=False)
        # Keep only what backward reads, never `stretch` (whose state holds this node's own
        # outputs: output -> grad_fn -> ctx -> stretch -> output is a cycle through
        # autograd's C++ graph that the garbage collector cannot see, and leaked every
        # solve). Tensors are kept detached for the same reason (the last step's scaling is
        # an output).
        ctx.steps = [(is_row, *(a.detach() for a in arrays)) for is_row, *arrays in stretch.steps]
        ctx.rho = (stretch.state.p.rho_a, stretch.state.p.rho_b)
        ctx.save_for_backward(K, mu_eff, nu_eff)
        # An input returned unchanged must be a new tensor for autograd.
        return (u_out.clone() if u_out is u else u_out, v_out.clone() if v_out is v else v_out)

    @staticmethod
    def backward(ctx: Any, gu: torch.Tensor, gv: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        saved = ctx.saved_tensors  # K, μ_eff, ν_eff
        with torch.no_grad():
            grads = _FusedHalfSteps._backward(ctx, saved, gu, gv)
        return first_order_only(grads, (*saved, gu, gv))

    @staticmethod
    def _backward(
        ctx: Any, saved: tuple[torch.Tensor, ...], gu: torch.Tensor, gv: torch.Tensor
    ) -> tuple[torch.Tensor | None, ...]:
        rho_a, rho_b = ctx.rho
        K, mu_eff, nu_eff = saved
        g_mu = torch.zeros_like(mu_eff)
        g_nu = torch.zeros_like(nu_eff)
        left: list[torch.Tensor] = []
        right: list[torch.Tensor] = []
        for is_row, *arrays in reversed(ctx.steps):
            x, prod, y = arrays  # (torch: the stretch runs in the problem's namespace)
            if is_row:  # y = u = (μ / s)^ρ1 with s = K~ x, x = v
                t = gu * y
                g_mu += rho_a * t / mu_eff
                gs = -rho_a * t / prod
                gv = gv + torch.mv(K.T, gs)
                gu = torch.zeros_like(gu)
                left.append(gs)
                right.append(x)
            else:  # y = v = (ν / r)^ρ2 with r = K~^T x, x = u
                t = gv * y
                g_nu += rho_b * t / nu_eff
                gr = -rho_b * t / prod
                gu = gu + torch.mv(K, gr)
                gv = torch.zeros_like(gv)
                left.append(x)
                right.append(gr)
        g_K = torch.stack(left, 1) @ torch.stack(right, 0) if left else torch.zeros_like(K)
        need = ctx.needs_input_grad
        return (
            g_K if need[0] else None,
            g_mu if need[1] else None,
            g_nu if need[2] else None,
            gu if need[3] else None,
            gv if need[4] else None,
            None,
        )


SECOND_DERIVATIVE = (
    "gca_viz.ot: a second derivative through a Sinkhorn solve of the absorbing engine "
    "(method='absorb', the default) is not available; call gca_viz.ot.sinkhorn(..., "
    "method='log') to differentiate twice. The losses of gca_viz.losses solve with the "
    "absorbing engine: they give first derivatives only"
)


class _FirstOrderOnly(torch.autograd.Function):
    """The identity on a computed gradient; differentiating through it raises."""

    @staticmethod
    def forward(ctx: Any, grad: torch.Tensor, *sources: torch.Tensor) -> torch.Tensor:
        return grad.clone()

    @staticmethod
    def backward(ctx: Any, *_: Any) -> Any:
        raise RuntimeError(SECOND_DERIVATIVE)


def first_order_only(
    grads: tuple[torch.Tensor | None, ...], sources: tuple[torch.Tensor, ...]
) -> tuple[torch.Tensor | None, ...]:
    """A hand-written backward's ``grads``, computed without autograd from ``sources`` (its
    saved tensors and incoming gradients). Where autograd records the backward
    (``create_graph=True``) and a source requires a gradient, each one is tied to the
    sources by a node whose own backward raises: a second derivative fails with a clear
    message instead of silently missing this node's part."""
    if not torch.is_grad_enabled():
        return grads
    tracked = tuple(t for t in sources if t.requires_grad)
    if not tracked:
        return grads
    return tuple(None if g is None else _FirstOrderOnly.apply(g, *tracked) for g in grads)
