"""Model-free allocation baselines: equal shares and shares proportional to offered traffic.

``equal_share`` and ``traffic_proportional`` return float64 ``[N, S]`` with 0 on inactive slices and row sums
<= 1 exactly; a cell with no active slice gets an all-zero row. ``proportional_shares`` is the traffic baseline
before that exact budget (row sums 1 up to rounding: an ulp above 1 is possible), as the H0 behaviour policy and
the warm-up of the benchmark and the sweeps apply it (the simulator accepts 1e-9 of slack).
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


def proportional_shares(offered_mbps: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Each active slice's current offered traffic (negatives and non-finite values count as 0) over the cell's
    total; a cell whose active slices offer no traffic at all gets equal shares. Row sums are 1 up to rounding."""
    m = np.asarray(mask, dtype=bool)  # [N, S]
    offered = np.asarray(offered_mbps, dtype=np.float64)
    if offered.shape != m.shape:
        raise ValueError(f"offered_mbps shape {offered.shape} does not match mask shape {m.shape}")
    w = np.where(m & np.isfinite(offered), np.maximum(offered, 0.0), 0.0)  # [N, S]
    total = w.sum(axis=1, keepdims=True)  # [N, 1]
    shares = np.divide(w, total, out=np.zeros(m.shape), where=total > 0)  # [N, S]
    idle = total[:, 0] <= 0  # [N]
    count = m[idle].sum(axis=1, keepdims=True)  # [n_idle, 1]
    shares[idle] = np.divide(m[idle].astype(np.float64), count, out=np.zeros((int(idle.sum()), m.shape[1])),
                             where=count > 0)
    return shares


def traffic_proportional(offered_mbps: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``proportional_shares`` with row sums <= 1 exactly (an ulp over is scaled off by ``enforce_budget``)."""
    return enforce_budget(proportional_shares(offered_mbps, mask))
