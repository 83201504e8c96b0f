"""IDLA paper section V-B data augmentation, vectorised over the sample table.

Rule (1), requirement relabelling: a sample that missed its requirements (r < 1) would have met requirements equal
to what it achieved. So it yields a new sample with (throughput_req_mbps, delay_req_ms) replaced by the achieved
(throughput_mbps, delay_ms) and r = 1. Rows with no throughput (<= 0) or a non-finite delay are skipped: they
would give a meaningless requirement.

Rule (2), monotonicity: more resources never lower QoS. A sample that met its requirements (r >= 0.999) yields a new
sample with x replaced by x' ~ U[x, 1] and r = 1.

Both rules read only original rows; the new rows carry ``augmented = True`` and keep the provenance columns.
"""

from __future__ import annotations

import numpy as np

from slicing.data.samples import Samples

SATISFIED = 0.999  # r at or above this counts as "requirements met" (rule 2)


def relabel_requirements(samples: Samples) -> Samples:
    """Rule (1): rows with r < 1, throughput > 0 and finite delay, requirements := achieved, r := 1."""
    r = samples["r"]
    tp = samples["throughput_mbps"]
    dl = samples["delay_ms"]
    keep = (r < 1.0) & (tp > 0) & np.isfinite(tp) & np.isfinite(dl) & (dl > 0)  # [n]
    sub = samples.take(keep)
    return sub.replace(
        throughput_req_mbps=sub["throughput_mbps"],
        delay_req_ms=sub["delay_ms"],
        r=np.ones(len(sub), dtype=np.float32),
        augmented=np.ones(len(sub), dtype=bool),
    )


def raise_allocation(samples: Samples, rng: np.random.Generator) -> Samples:
    """Rule (2): rows with r >= 0.999, x := x' ~ U[x, 1], r := 1."""
    sub = samples.take(samples["r"] >= SATISFIED)
    x = sub["x"]  # [m] float32
    hi = np.maximum(x, np.float32(1.0))  # [m] 1, or x itself should a share exceed 1
    x_new = x + rng.random(x.shape[0]) * (hi - x)  # [m] float64 in [x, hi]
    x_new = np.clip(x_new.astype(np.float32), x, hi)  # float32 rounding must not leave [x, hi]
    return sub.replace(
        x=x_new,
        r=np.ones(len(sub), dtype=np.float32),
        augmented=np.ones(len(sub), dtype=bool),
    )


def augment(samples: Samples, rng: np.random.Generator) -> Samples:
    """Originals followed by the rule (1) and rule (2) rows (``augmented = True``)."""
    originals = samples.take(~samples["augmented"])
    return Samples.concat([samples, relabel_requirements(originals), raise_allocation(originals, rng)])
