"""Model-free allocation baselines: equal shares and shares proportional to offered traffic.

Both return float64 ``[N, S]`` with 0 on inactive slices and row sums <= 1 exactly; a cell with no active
slice gets an all-zero row.
"""

from __future__ import annotations

import numpy as np

from slicing.optim.feasible import enforce_budget


def equal_share(mask: np.ndarray) -> np.ndarray:
    """1 / (number of active slices) on every active slice of a cell."""
    m = np.asarray(mask, dtype=bool)  # [N, S]
    count = m.sum(axis=1, keepdims=True)  # [N, 1]
    shares = np.divide(m.astype(np.float64), count, out=np.zeros(m.shape), where=count > 0)  # [N, S]
    return enforce_budget(shares)


def traffic_proportional(offered_mbps: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Shares proportional to each active slice's current offered traffic (negatives count as 0).

    A cell whose active slices offer no traffic at all gets equal shares.
    """
    m = np.asarray(mask, dtype=bool)  # [N, S]
    offered = np.asarray(offered_mbps, dtype=np.float64)
    if offered.shape != m.shape:
        raise ValueError(f"offered_mbps shape {offered.shape} does not match mask shape {m.shape}")
    w = np.where(m & np.isfinite(offered), np.maximum(offered, 0.0), 0.0)  # [N, S]
    total = w.sum(axis=1, keepdims=True)  # [N, 1]
    shares = np.divide(w, total, out=np.zeros(m.shape), where=total > 0)  # [N, S]
    idle = total[:, 0] <= 0
    shares[idle] = equal_share(m[idle])
    return enforce_budget(shares)
