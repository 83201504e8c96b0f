"""Per-phase metrics of one scheme's run.

- mean_satisfaction: mean r over active (cell, slice, period)
- p_satisfied: fraction of active (cell, slice, period) with r >= 0.999
- mean_utility: mean over (cell, period) of sum_s log(1 + r)   (IDLA eq. 5 per cell)
- max_share_sum: the largest sum of shares any cell was given
"""

from __future__ import annotations

import numpy as np

from slicing.sim.utility import utility as cell_utility

SATISFIED = 0.999


def phase_metrics(r: np.ndarray, mask: np.ndarray, share_sum: np.ndarray) -> dict[str, float]:
    """r, mask: [T, N, S]; share_sum: [T, N]."""
    active = r[mask]
    t, n, s = r.shape
    utility = cell_utility(r.reshape(t * n, s), mask.reshape(t * n, s)).reshape(t, n)  # [T, N]
    return {
        "mean_satisfaction": float(active.mean()) if active.size else float("nan"),
        "p_satisfied": float((active >= SATISFIED).mean()) if active.size else float("nan"),
        "mean_utility": float(utility.mean()),
        "max_share_sum": float(share_sum.max()),
    }
