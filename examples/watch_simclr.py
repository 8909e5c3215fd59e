"""A SimCLR loop of your own on the embedded digits, watched and steered in the app.

    python examples/watch_simclr.py [STEPS] [STORE]   # default: 300 steps into $GCA_RUNS_DIR
                                                        # (the app's store), else ./runs
    streamlit run app.py                                # Train: the run, marked external

The app's Train page shows its loss curve and the plan of its batches, Geometry its
embeddings; its live controls change the loss's ε and Sinkhorn sweeps while it trains,
and its Stop button ends the loop. About 20 s on a laptop CPU.
"""

import argparse

import torch

from gca_viz import augment, data, losses, models
from gca_viz.runs import default_data_dir
from gca_viz.watch import Recorder


def _steps(text: str) -> int:
    """STEPS as argparse reads it: an integer >= 1 (else argparse's usage error)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {value}")
    return value


parser = argparse.ArgumentParser(
    description="A SimCLR loop on the embedded digits, recorded for the app (Train page)."
)
parser.add_argument(
    "steps",
    metavar="STEPS",
    nargs="?",
    type=_steps,
    default=300,
    help="training steps (default: 300)",
)
parser.add_argument(
    "store",
    metavar="STORE",
    nargs="?",
    default=str(default_data_dir()),
    help="the folder of the run store the app reads (default: $GCA_RUNS_DIR, else runs)",
)
args = parser.parse_args()
steps, store = args.steps, args.store
torch.manual_seed(0)
train, test = data.load_dataset("digits").split(0.25, seed=0)
aug, gen = augment.make_augment("standard", train.kind), torch.Generator().manual_seed(1)
model = models.ContrastiveModel("mlp", train.input_shape, out_dim=32, head_hidden=128)
criterion = losses.get("gca_ince", epsilon=0.5, n_iter=10)
opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
config = {"dataset": "digits", "lr": 2e-3, "batch_size": 256, "steps": steps}
rec = Recorder(store, name="simclr on digits", config=config, loss=criterion,
               eval_batch=(test.x[:256], test.y[:256]), model=model)  # fmt: skip
for step in range(1, steps + 1):
    idx = torch.randint(len(train.y), (256,))
    x = train.x[idx]
    z1, z2 = model(aug(x, gen)), model(aug(x, gen))
    loss = criterion(z1, z2)
    opt.zero_grad()
    loss.backward()
    opt.step()
    rec.step(step, loss=loss, epsilon=criterion.params["epsilon"])
    rec.batch(step, z1, z2, labels=train.y[idx])
    if rec.should_stop:  # Stop in the app
        break
rec.finish()
print(f"run #{rec.run_id} in {store}: {'stopped' if rec.should_stop else 'finished'} at {step}")
