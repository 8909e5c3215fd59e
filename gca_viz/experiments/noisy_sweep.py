"""The noisy-views sweep (``benchmarks/sweep_noisy.py``, shipped as
``assets/sweep_noisy.json``): its rows read back, the paired differences to INCE that are
measurable, and the gains laid out for a chart; the Noisy views page reads it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gca_viz import demo

NOISY_SWEEP_FILE = demo.ASSETS.parent / "sweep_noisy.json"
"""The shipped result of ``benchmarks/sweep_noisy.py`` (its ``--out`` file)."""


SWEEP_TESTS: dict[str, str] = {
    "clean": "clean k-NN (h)",
    "corrupted": "corrupted k-NN (h)",
    "clean_z": "clean k-NN (ẑ)",
    "corrupted_z": "corrupted k-NN (ẑ)",
}
"""A sweep run's accuracies: k-NN on clean test digits and on digits corrupted with severity
0.5, of the backbone features ``h`` and (``_z``) of the normalised 3-D embeddings ``ẑ``."""


@dataclass(frozen=True)
class NoisySweepRow:
    """One (setting, method) of the noisy-views sweep. Per test of :data:`SWEEP_TESTS`:
    ``mean`` and ``sd``, over seeds, of the accuracy; ``diff`` and ``diff_se``, the paired
    difference to INCE over the same seeds (mean and standard error; ``NaN`` for INCE
    itself). A test the file does not hold (the embedding's, in a sweep from before it was
    recorded) is absent from the dicts."""

    share: float
    epsilon: float
    method: str
    seeds: int
    mean: dict[str, float]
    sd: dict[str, float]
    diff: dict[str, float]
    diff_se: dict[str, float]

    def beats(self, test: str = "corrupted") -> bool:
        """The paired difference on ``test`` is positive and exceeds twice its standard
        error (``False`` for INCE and for a test the row lacks)."""
        d, se = self.diff.get(test, math.nan), self.diff_se.get(test, math.nan)
        return bool(d > 0 and d > 2 * se)

    def trails(self, test: str = "corrupted") -> bool:
        """The paired difference on ``test`` is negative and exceeds twice its standard
        error in size (``False`` for INCE and for a test the row lacks)."""
        d, se = self.diff.get(test, math.nan), self.diff_se.get(test, math.nan)
        return bool(d < 0 and -d > 2 * se)

    def points(self, test: str) -> str:
        """The paired difference on ``test`` in points of accuracy (× 100), as
        ``"+4.4 ± 1.7 points"`` (one standard error; ``""`` for INCE or when absent)."""
        d = self.diff.get(test, math.nan)
        if math.isnan(d):
            return ""
        return f"{100 * d:+.1f} ± {100 * self.diff_se[test]:.1f} points"

    def cell(self, test: str) -> str:
        """``"mean ± sd"`` of ``test`` to 3 decimals (``""`` when absent)."""
        return f"{self.mean[test]:.3f} ± {self.sd[test]:.3f}" if test in self.mean else ""

    def diff_cell(self, test: str) -> str:
        """``"+diff ± se"`` of ``test`` to 3 decimals (``""`` for INCE or when absent)."""
        d = self.diff.get(test, math.nan)
        return "" if math.isnan(d) else f"{d:+.3f} ± {self.diff_se[test]:.3f}"


@dataclass(frozen=True)
class SweepVerdict:
    """What the noisy-views sweep says on one test of :data:`SWEEP_TESTS`, at one setting
    (:func:`sweep_verdict`).

    Attributes:
        test: the test. share, epsilon: the setting ``(p, ε)`` looked at.
        at: method -> its row at the setting.
        clean_pairs: method -> its row at the same ``ε`` without mismatched pairs (``p = 0``).
        ahead: every row, any method and setting, measurably ahead of INCE on the test
            (:meth:`NoisySweepRow.beats`), in file order.
        behind: every row measurably behind INCE (:meth:`NoisySweepRow.trails`).
    """

    test: str
    share: float
    epsilon: float
    at: dict[str, NoisySweepRow]
    clean_pairs: dict[str, NoisySweepRow]
    ahead: list[NoisySweepRow]
    behind: list[NoisySweepRow]


def sweep_verdict(
    rows: Sequence[NoisySweepRow], test: str, share: float, epsilon: float
) -> SweepVerdict:
    """The sweep's rows on ``test`` (a key of :data:`SWEEP_TESTS`) at the setting
    ``(p, ε) = (share, epsilon)`` and at ``p = 0``, and the rows measurably ahead of or
    behind INCE anywhere: a row is ahead when its paired gain
    ``Δ = mean_s(acc_s − acc_INCE,s)`` over seeds ``s`` exceeds twice its standard error,
    behind when ``−Δ`` does.

    Raises:
        ValueError: for a ``test`` not in :data:`SWEEP_TESTS`.
    """
    if test not in SWEEP_TESTS:
        raise ValueError(f"test must be one of {list(SWEEP_TESTS)}, got {test!r}")
    measured = [r for r in rows if test in r.diff]
    return SweepVerdict(
        test=test,
        share=share,
        epsilon=epsilon,
        at={r.method: r for r in measured if (r.share, r.epsilon) == (share, epsilon)},
        clean_pairs={r.method: r for r in measured if (r.share, r.epsilon) == (0.0, epsilon)},
        ahead=[r for r in measured if r.beats(test)],
        behind=[r for r in measured if r.trails(test)],
    )


SWEEP_METHODS: dict[str, str] = {
    "ince": "INCE",
    "gca_ince": "GCA-INCE",
    "gca_uot": "GCA-UOT",
    "gca_uot_l0.01": "GCA-UOT, λ = 0.01",
    "gca_uot_kl": "GCA-UOT, r₂ = 0 (no RINCE term)",
    "gca_uot_l100": "GCA-UOT, λ = 100 (marginals held)",
    "rince": "RINCE",
}
"""The sweep's method names (``benchmarks/sweep_noisy.py``'s) -> their titles."""


def sweep_gains(
    rows: Sequence[NoisySweepRow], test: str
) -> tuple[list[float], list[float], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The sweep's paired gains over INCE on ``test``, laid out for a chart:
    ``(shares p, epsilons ε, {method: (e, s) Δ}, {method: (e, s) standard error})``,
    ``ε`` descending, ``p`` ascending, ``NaN`` where a method did not run; INCE left out
    (its own Δ is 0)."""
    shares = sorted({r.share for r in rows})
    epsilons = sorted({r.epsilon for r in rows}, reverse=True)
    gains: dict[str, np.ndarray] = {}
    errors: dict[str, np.ndarray] = {}
    for r in rows:
        if r.method == "ince" or test not in r.diff:
            continue
        for out, value in ((gains, r.diff[test]), (errors, r.diff_se[test])):
            grid = out.setdefault(r.method, np.full((len(epsilons), len(shares)), np.nan))
            grid[epsilons.index(r.epsilon), shares.index(r.share)] = value
    return shares, epsilons, gains, errors


def noisy_sweep_results(path: Path | None = None) -> list[NoisySweepRow]:
    """The rows of a noisy-views sweep file (default :data:`NOISY_SWEEP_FILE`), in its order.

    Raises:
        ValueError: naming the file when it is missing or not a sweep's output.
    """
    file = Path(path) if path is not None else NOISY_SWEEP_FILE
    try:
        table = json.loads(file.read_text())["table"]
        rows = []
        for r in table:
            tests = [t for t in SWEEP_TESTS if t in r]
            if "clean" not in tests or "corrupted" not in tests:
                raise KeyError("clean, corrupted")
            rows.append(
                NoisySweepRow(
                    share=float(r["share"]),
                    epsilon=float(r["epsilon"]),
                    method=str(r["method"]),
                    seeds=int(r["seeds"]),
                    mean={t: float(r[t]) for t in tests},
                    sd={t: float(r[f"{t}_sd"]) for t in tests},
                    diff={t: float(r.get(f"{t}_diff", math.nan)) for t in tests},
                    diff_se={t: float(r.get(f"{t}_se", math.nan)) for t in tests},
                )
            )
        return rows
    except (OSError, KeyError, TypeError, ValueError, json.JSONDecodeError) as exc:
        raise ValueError(f"path: {file} is not a noisy-views sweep result ({exc})") from None
