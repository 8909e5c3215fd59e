"""One training step under torchrun (or alone) on a fixed global batch; saves the result.

Usage: [torchrun --nproc_per_node=K] python tests/scripts/ddp_step.py OUT.pt METHOD STEPS
Rank 0 writes the losses, the parameters after the steps and the last step's gradients
to OUT.pt.
"""

import os
import sys

import torch

from gca_viz import distributed
from gca_viz.train import TrainConfig, Trainer

out, method, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
cfg = TrainConfig(
    method=method,
    batch_size=32,
    steps=steps,
    encoder="mlp",
    optimizer="sgd",
    lr=0.05,
    encoder_params={"hidden": 32},
    head_hidden=32,
    out_dim=8,
    device="cpu",
    threads=1,
)
trainer = Trainer(cfg)
losses = [trainer.train_step()["loss"] for _ in range(steps)]
if trainer.dist.is_main:
    params = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
    grads = {k: p.grad.clone() for k, p in trainer.model.named_parameters() if p.grad is not None}
    result = {"losses": torch.tensor(losses, dtype=torch.float64), "params": params, "grads": grads}
    torch.save(result, out)
distributed.shutdown(trainer.dist)
# Skip the interpreter's teardown, as python -m gca_viz does under torchrun (gca_viz/__main__.py):
# gloo's threads can abort a process there after it has finished.
sys.stdout.flush()
sys.stderr.flush()
os._exit(0)
