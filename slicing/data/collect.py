"""The H0 behaviour policy and the sample collection loop.

``explore_policy`` is epsilon-greedy around the traffic baseline: per cell, with probability epsilon a random
allocation (uniform on the simplex over the active slices, times a total in [0.6, 1.0]), otherwise shares
proportional to the offered traffic. Every draw comes from the counter RNG keyed by (seed, stream, period, cell id),
so a cell's allocation does not depend on which other cells are simulated beside it.

``collect`` runs the simulator under that policy and turns each period's report into (x, z) -> r samples, with z
taken from the history *before* the period's report is pushed (it covers t-H .. t-1).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from slicing.config import Scenario
from slicing.data.augment import augment as augment_samples
from slicing.data.history import History
from slicing.data.samples import Samples, samples_from_report
from slicing import rng
from slicing.rng import Stream
from slicing.sim.simulator import Simulator

MIN_TOTAL = 0.6  # a random allocation spends a total share in [MIN_TOTAL, MAX_TOTAL]
MAX_TOTAL = 1.0


class _Demand(Protocol):
    offered_mbps: np.ndarray  # [N, S]


class _PolicySim(Protocol):
    cell_ids: np.ndarray  # [N]
    n_slices: int
    period: int

    def slice_mask(self) -> np.ndarray: ...  # [N, S] bool


def traffic_shares(offered_mbps: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """[N, S] offered traffic / row sum over active slices; equal split where no active slice offers traffic."""
    active = mask.astype(np.float64)  # [N, S]
    offered = np.where(mask, np.maximum(np.nan_to_num(offered_mbps, nan=0.0, posinf=0.0), 0.0), 0.0)  # [N, S]
    total = offered.sum(axis=1, keepdims=True)  # [N, 1]
    n_active = active.sum(axis=1, keepdims=True)  # [N, 1]
    proportional = offered / np.where(total > 0, total, 1.0)
    equal = active / np.maximum(n_active, 1.0)
    return np.where(total > 0, proportional, equal)


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
                      traffic_shares(np.asarray(period_demand.offered_mbps, dtype=np.float64), mask))
    shares = np.where(mask, shares, 0.0)
    return shares / np.maximum(shares.sum(axis=1, keepdims=True), 1.0)  # guard against sum = 1 + ulp


def collect(
    scenario: Scenario,
    steps: int,
    epsilon: float,
    augment: bool,
    seed: int,
    progress: Callable[[int, int], None] | None = None,
) -> Samples:
    """Simulate ``steps`` periods of ``scenario`` under ``explore_policy`` and return the samples.

    The first H periods only fill the history; each later period gives one row per active (cell, slice). With
    ``augment`` the IDLA rules (1) and (2) are applied using ``np.random.default_rng(seed)``.
    """
    if steps < 0:
        raise ValueError(f"collect: steps must be >= 0, got {steps}")
    sim = Simulator(scenario)
    history = History(len(sim.cell_ids), sim.n_slices)
    slice_ids = np.asarray(sim.slice_ids)
    tp_req = np.asarray(sim.throughput_req_mbps, dtype=np.float64)
    delay_req = np.asarray(sim.delay_req_ms, dtype=np.float64)
    parts: list[Samples] = []
    for step in range(steps):
        shares = explore_policy(sim, sim.demand(), epsilon, seed)  # [N, S]
        z = history.features(tp_req, delay_req) if history.ready else None  # [N, S, 2H+2], covers t-H..t-1
        report = sim.step(shares)
        if z is not None:
            parts.append(samples_from_report(report, z, slice_ids))
        history.push(report)
        if progress is not None:
            progress(step + 1, steps)
    samples = Samples.concat(parts)
    return augment_samples(samples, np.random.default_rng(seed)) if augment else samples
