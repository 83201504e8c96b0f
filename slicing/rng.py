"""Counter-based random numbers: a pure function of (seed, stream, period, cell id, slot).

Every random draw in the simulator (and IDLA's start points) is a hash of its coordinates, not a state that
advances. So a cell's randomness does not depend on which process or shard simulates it, or on how many other
cells are simulated beside it: a population split into K shards gives exactly the KPIs of the unsplit run.

The hash is splitmix64's finaliser over uint64 arrays: a few vectorised multiply/xor-shift passes, ~5 ns per value.
"""

from __future__ import annotations

import numpy as np

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(z: np.ndarray) -> np.ndarray:
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def _key(seed: int, stream: int, period: int) -> np.uint64:
    with np.errstate(over="ignore"):
        k = _mix(np.array([seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))
        k = _mix(k ^ (np.uint64(stream) * _GOLDEN))
        k = _mix(k ^ (np.uint64(period & 0xFFFFFFFFFFFFFFFF) * _M2))
    return k[0]


def uniform(seed: int, stream: int, period: int, cell_ids: np.ndarray, slots: int) -> np.ndarray:
    """U(0, 1) values of shape [len(cell_ids), slots], strictly inside (0, 1)."""
    key = _key(seed, stream, period)
    cells = np.asarray(cell_ids, dtype=np.uint64)[:, None]  # [cells, 1]
    slot = np.arange(slots, dtype=np.uint64)[None, :]  # [1, slots]
    with np.errstate(over="ignore"):
        z = _mix(key ^ (cells * _GOLDEN + slot * _M1))  # [cells, slots]
        z = _mix(z + _GOLDEN)
    return ((z >> np.uint64(11)).astype(np.float64) + 0.5) * (1.0 / 9007199254740992.0)


def normal(seed: int, stream: int, period: int, cell_ids: np.ndarray, slots: int) -> np.ndarray:
    """N(0, 1) values of shape [len(cell_ids), slots] (Box-Muller on two independent uniform streams)."""
    u1 = uniform(seed, 2 * stream, period, cell_ids, slots)
    u2 = uniform(seed, 2 * stream + 1, period, cell_ids, slots)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


# Named streams, so two components never draw the same numbers by accident.
class Stream:
    CELL_SCALE = 1
    CELL_PHASE = 2
    GEOMETRY = 3
    USERS = 4
    FADING = 5
    EVENTS = 6
    EXPLORE = 7
    EXPLORE_MIX = 8
    IDLA_STARTS = 9
    AUGMENT = 10
    SPLIT = 11
    # the end-to-end slice simulator (slicing/sim/e2e.py); far from the ids above, so neither their uniform
    # streams nor the pairs 2k, 2k+1 that normal() draws on overlap them
    E2E_TRAFFIC = 40
    E2E_DEMAND = 41
    E2E_CHANNEL = 42
    E2E_FAIRNESS = 43
    E2E_JITTER = 44
