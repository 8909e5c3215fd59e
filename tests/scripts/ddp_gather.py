"""A user's own loop under torchrun: gather_with_grad with uneven batches, with DDP, and a
shape mismatch; rank 0 saves the gradients and the error to OUT.pt.

Usage: torchrun --nproc_per_node=2 tests/scripts/ddp_gather.py OUT.pt
The global batch is 16 pairs of 10-d inputs from seed 0 through a seed-0 ``Linear(10, 8)``
(the test recomputes it in one process): ``plain`` splits it 7 + 9 and sums the gradients
with ``all_reduce_gradients``; ``ddp`` splits it 8 + 8 under DistributedDataParallel with
``ddp=True``; ``ddp_default`` the same without it. ``running_mean``, ``running_var``: a batch
norm (``momentum=None``, converted at the root) after three global batches.
"""

import os
import sys

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from gca_viz import distributed, losses

out = sys.argv[1]
torch.set_num_threads(1)
info = distributed.init_from_env(torch.device("cpu"))
rank = info.rank
gen = torch.Generator().manual_seed(0)
x1, x2 = torch.randn(16, 10, generator=gen), torch.randn(16, 10, generator=gen)
loss_fn = losses.get("gca_ince", layout="joint")


def model() -> nn.Linear:
    torch.manual_seed(0)
    return nn.Linear(10, 8)


result = {}
plain = model()
rows = slice(0, 7) if rank == 0 else slice(7, 16)
z1 = distributed.gather_with_grad(plain(x1[rows]), info)
z2 = distributed.gather_with_grad(plain(x2[rows]), info)
loss_fn(z1, z2).backward()
distributed.all_reduce_gradients(plain.parameters(), info)
result["plain"] = plain.weight.grad.clone()
result["rows"] = torch.tensor(z1.shape[0])

for name, summed in (("ddp", True), ("ddp_default", False)):
    wrapped = DistributedDataParallel(model())
    half = slice(8 * rank, 8 * rank + 8)
    z1 = distributed.gather_with_grad(wrapped(x1[half]), info, ddp=summed)
    z2 = distributed.gather_with_grad(wrapped(x2[half]), info, ddp=summed)
    loss_fn(z1, z2).backward()
    result[name] = wrapped.module.weight.grad.clone()

norm = distributed.convert_batchnorm(nn.BatchNorm1d(10, momentum=None))  # the root itself
for step in range(3):  # cumulative running statistics over the global batches
    norm(x1[8 * rank : 8 * rank + 8] + step)
result["running_mean"], result["running_var"] = norm.running_mean, norm.running_var
result["norm"] = torch.tensor(isinstance(norm, distributed.GlobalBatchNorm))

try:
    distributed.gather_with_grad(torch.zeros(3, 4 + rank), info)
except ValueError as exc:
    result["error"] = str(exc)

if rank == 0:
    torch.save(result, out)
distributed.shutdown(info)
sys.stdout.flush()
sys.stderr.flush()
os._exit(0)  # as tests/scripts/ddp_step.py: gloo's threads can abort the teardown
