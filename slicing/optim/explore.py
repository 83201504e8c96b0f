"""The H0 behaviour policy: epsilon-greedy around the traffic baseline.

``explore_policy``: per cell, with probability epsilon a random allocation (``random_shares``: uniform on the
simplex over the active slices, times a total in [0.6, 1.0]), otherwise the traffic baseline
(``baselines.proportional_shares``). Every draw comes from the counter RNG keyed by (seed, stream, period, cell
id), so a cell's allocation does not depend on which other cells are simulated beside it.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from slicing import rng
from slicing.optim.baselines import proportional_shares
from slicing.rng import Stream

MIN_TOTAL = 0.6  # a random allocation spends a total share in [MIN_TOTAL, MAX_TOTAL]
MAX_TOTAL = 1.0


class _Demand(Protocol):
    offered_mbps: np.ndarray  # [N, S]


class _PolicySim(Protocol):
    cell_ids: np.ndarray  # [N]
    n_slices: int
    period: int

    def slice_mask(self) -> np.ndarray: ...  # [N, S] bool


def random_shares(seed: int, period: int, cell_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """[N, S] uniform point of the simplex over active slices, scaled by a total ~ U[MIN_TOTAL, MAX_TOTAL]."""
    n_slices = mask.shape[1]
    u = rng.uniform(seed, Stream.EXPLORE_MIX, period, cell_ids, n_slices + 1)  # [N, S+1]
    expo = -np.log(u[:, :n_slices]) * mask  # [N, S] Exp(1) on active slices -> Dirichlet(1) once normalised
    total = MIN_TOTAL + (MAX_TOTAL - MIN_TOTAL) * u[:, n_slices:]  # [N, 1]
    norm = expo.sum(axis=1, keepdims=True)  # [N, 1]
    return expo / np.where(norm > 0, norm, 1.0) * total


def explore_policy(sim: _PolicySim, period_demand: _Demand, epsilon: float, seed: int) -> np.ndarray:
    """shares [N, S] float64 for ``sim.period``: random w.p. epsilon per cell, else traffic-proportional.

    Shares are >= 0, 0 on inactive slices, and sum to at most 1 per cell.
    """
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"explore_policy: epsilon must be in [0, 1], got {epsilon}")
    cell_ids = np.asarray(sim.cell_ids, dtype=np.int64)
    mask = np.asarray(sim.slice_mask(), dtype=bool)  # [N, S]
    explore = rng.uniform(seed, Stream.EXPLORE, sim.period, cell_ids, 1) < epsilon  # [N, 1]
    shares = np.where(explore, random_shares(seed, sim.period, cell_ids, mask),
                      proportional_shares(np.asarray(period_demand.offered_mbps, dtype=np.float64), mask))
    shares = np.where(mask, shares, 0.0)
    return shares / np.maximum(shares.sum(axis=1, keepdims=True), 1.0)  # guard against sum = 1 + ulp
