"""A training loop of its own, recorded with gca_viz.watch.Recorder (for tests/test_watch.py).

Usage: python tests/scripts/watch_loop.py STORE MODE [SNAPSHOT_EVERY]

MODE ``until_stop`` trains until the app asks it to stop (at most 3000 steps); ``crash``
raises at step 5 without calling ``finish``; ``exit`` leaves the loop at step 5 of the 3000
planned and ends without ``finish``; ``forever`` trains until it is killed. Each
step records the loss and the loss's current ``epsilon`` (a live change shows in it).
"""

import sys
import time

import torch

from gca_viz import losses
from gca_viz.watch import Recorder

store, mode = sys.argv[1], sys.argv[2]
every = int(sys.argv[3]) if len(sys.argv) > 3 else 5
torch.set_num_threads(1)
torch.manual_seed(0)
x = torch.randn(512, 16)
y = torch.randint(0, 4, (512,))
model = torch.nn.Linear(16, 8)
criterion = losses.get("gca_ince", epsilon=0.5, n_iter=5)
opt = torch.optim.SGD(model.parameters(), lr=0.05)
rec = Recorder(store, name=f"loop {mode}", config={"lr": 0.05, "mode": mode}, loss=criterion,
               snapshot_every=every, flush_every=0.1, steps=3000)  # fmt: skip
print(f"run {rec.run_id}", flush=True)
for step in range(1, 3001):
    idx = torch.randint(0, 512, (64,))
    xb = x[idx]
    z1, z2 = model(xb + 0.1 * torch.randn_like(xb)), model(xb + 0.1 * torch.randn_like(xb))
    loss = criterion(z1, z2)
    opt.zero_grad()
    loss.backward()
    opt.step()
    rec.step(step, loss=loss, epsilon=criterion.params["epsilon"])
    rec.batch(step, z1, z2, labels=y[idx])
    if mode == "crash" and step == 5:
        raise RuntimeError("the loop broke at step 5")
    if mode == "exit" and step == 5:
        sys.exit(0)  # (no finish: the process's exit ends the run)
    if rec.should_stop:
        break
    time.sleep(0.02)
rec.finish()
print(f"ended at {step}", flush=True)
