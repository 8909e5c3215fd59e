"""Two ranks under torchrun (gloo) record one run (for tests/test_watch.py).

Usage: torchrun --nproc_per_node=2 --standalone tests/scripts/watch_ddp.py STORE OUT_DIR

Every rank encodes its half of a global batch, gathers the embeddings with gradients
(gca_viz.distributed) and calls the Recorder; only rank 0 writes. Rank 0 asks for a live
ε change through the store at step 3; the loop ends at the first step the change is in
effect on the ranks (they see it at the same step). Each rank writes the changes it
applied and its loss's final ε to OUT_DIR/rank<r>.json.
"""

import json
import os
import sys
from pathlib import Path

import torch

from gca_viz import distributed, losses
from gca_viz.runs import RunStore
from gca_viz.watch import Recorder

store_dir, out = sys.argv[1], Path(sys.argv[2])
torch.set_num_threads(1)
info = distributed.init_from_env(torch.device("cpu"))
torch.manual_seed(0)
model = torch.nn.Linear(16, 8)
criterion = losses.get("gca_ince", epsilon=0.5, n_iter=5)
opt = torch.optim.SGD(model.parameters(), lr=0.05)
rec = Recorder(store_dir, name="two ranks", loss=criterion, snapshot_every=2,
               flush_every=0.05, sync_every=1)  # fmt: skip
x = torch.randn(64, 16)
rows = slice(info.rank * 32, (info.rank + 1) * 32)
for step in range(1, 2001):
    z1 = distributed.gather_with_grad(model(x[rows] + 0.1 * torch.randn(32, 16)), info)
    z2 = distributed.gather_with_grad(model(x[rows] + 0.1 * torch.randn(32, 16)), info)
    loss = criterion(z1, z2)
    opt.zero_grad()
    loss.backward()
    distributed.all_reduce_gradients(model.parameters(), info)
    opt.step()
    rec.step(step, loss=loss)
    rec.batch(step, z1, z2)
    if step == 3 and rec.run_id is not None:
        RunStore(store_dir).request_change(rec.run_id, {"epsilon": 0.3})
    if rec.changes:
        break
rec.finish()
record = {"changes": rec.changes, "epsilon": criterion.params["epsilon"], "run_id": rec.run_id}
(out / f"rank{info.rank}.json").write_text(json.dumps(record))
torch.distributed.barrier()  # no rank leaves while the other still talks to it
distributed.shutdown(info)
# Skip the interpreter's teardown: gloo's threads can still abort a process there
# ("terminate called without an active exception", SIGABRT; seen once in a clean-clone CI
# run after every rank had written its results), which torchrun reports as a failure.
sys.stdout.flush()
sys.stderr.flush()
os._exit(0)
