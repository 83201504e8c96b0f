"""Exact grid oracles for the per-cell problem max sum_s v_s(x_s) s.t. x >= 0, sum x <= 1, x on a grid.

``values[N, S, G]`` holds each slice's utility (e.g. log(1 + f)) at x = k * step, k = 0..G-1, step = 1/(G-1).
Inactive slices (``mask`` False) are forced to k = 0 and contribute exactly 0. Both oracles add the slice terms
in slice order starting from 0.0, so their optimal utilities are bitwise equal (a max-plus DP of sums equals
the max over all sums because float addition is monotone); the argmax shares may differ on ties.

- ``grid_oracle_bruteforce``: enumerates every composition k_1..k_S with sum <= G-1 (fine for S <= 4, G ~ 21).
- ``dp_oracle``: max-plus dynamic programming over the slices ([N, G, G] per slice) with backtracking.
"""

from __future__ import annotations

import numpy as np
import torch

from slicing.models.qos_estimator import QosEstimator, tabulate
from slicing.optim.feasible import enforce_budget
from slicing.sim.utility import log1p_terms

_CHUNK_BYTES = 64 * 2**20


def _check(values: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    v = np.asarray(values, dtype=np.float64)
    m = np.asarray(mask, dtype=bool)
    if v.ndim != 3 or m.shape != v.shape[:2]:
        raise ValueError(f"values must be [N, S, G] and mask [N, S]; got {v.shape} and {m.shape}")
    if v.shape[2] < 2:
        raise ValueError("values need at least 2 grid points")
    return v, m


def _shares(k: np.ndarray, points: int) -> np.ndarray:
    return enforce_budget(k.astype(np.float64) / (points - 1))  # [N, S]


def compositions(slices: int, total: int) -> np.ndarray:
    """All k in {0..total}^slices with sum(k) <= total, lexicographic: int64 ``[C, slices]``."""
    k = np.zeros((1, 0), dtype=np.int64)
    for _ in range(slices):
        rest = total - k.sum(axis=1)  # [C]
        reps = rest + 1
        prefix = np.repeat(k, reps, axis=0)  # [C', s]
        nxt = np.concatenate([np.arange(r, dtype=np.int64) for r in reps])  # [C']
        k = np.concatenate([prefix, nxt[:, None]], axis=1)
    return k


def grid_oracle_bruteforce(values: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exhaustive search over grid compositions: ``(shares[N, S] float64, utility[N])``."""
    v, m = _check(values, mask)
    n, s, g = v.shape
    combos = compositions(s, g - 1)  # [C, S]
    used = (combos > 0).astype(np.int64)  # [C, S]
    vm = np.where(m[:, :, None], v, 0.0)  # [N, S, G]
    best_k = np.zeros((n, s), dtype=np.int64)
    best_u = np.zeros(n)
    step = max(1, _CHUNK_BYTES // (8 * len(combos) * 2))
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        u = np.zeros((hi - lo, len(combos)))  # [n, C]
        for j in range(s):  # slice order, starting from 0.0 (same float sums as the DP)
            u = u + vm[lo:hi, j, :][:, combos[:, j]]  # [n, C]
        invalid = (~m[lo:hi]).astype(np.int64) @ used.T > 0  # [n, C] a combo allocating to an inactive slice
        u[invalid] = -np.inf
        arg = np.argmax(u, axis=1)  # [n]
        best_k[lo:hi] = combos[arg]
        best_u[lo:hi] = u[np.arange(hi - lo), arg]
    return _shares(best_k, g), best_u


def dp_oracle(values: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Max-plus DP over slices with one budget of G-1 grid units: ``(shares[N, S] float64, utility[N])``."""
    v, m = _check(values, mask)
    n, s, g = v.shape
    b = np.arange(g)
    src = b[:, None] - b[None, :]  # [G(budget), G(k)] budget left for the earlier slices
    allowed = src >= 0  # [G, G]
    src = np.maximum(src, 0)
    step = max(1, _CHUNK_BYTES // (8 * g * g * 3))
    shares = np.zeros((n, s))
    util = np.zeros(n)
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        vc = np.where(m[lo:hi, :, None], v[lo:hi], -np.inf)  # [n, S, G]
        vc[:, :, 0] = np.where(m[lo:hi], v[lo:hi, :, 0], 0.0)  # inactive: only k = 0, worth exactly 0
        best = np.zeros((hi - lo, g))  # [n, G] best value of the slices so far with budget <= b
        choice = np.zeros((s, hi - lo, g), dtype=np.int64)  # [S, n, G]
        for j in range(s):
            cand = best[:, src] + vc[:, j, None, :]  # [n, G, G]
            cand[:, ~allowed] = -np.inf
            choice[j] = np.argmax(cand, axis=2)  # [n, G]
            best = np.take_along_axis(cand, choice[j][:, :, None], axis=2)[:, :, 0]  # [n, G]
        rows = np.arange(hi - lo)
        left = np.full(hi - lo, g - 1)  # [n] budget still to assign, backwards
        k = np.zeros((hi - lo, s), dtype=np.int64)
        for j in range(s - 1, -1, -1):
            k[:, j] = choice[j][rows, left]
            left = left - k[:, j]
        shares[lo:hi] = _shares(k, g)
        util[lo:hi] = best[:, g - 1]
    return shares, util


def grid_values(model: QosEstimator, z: np.ndarray | torch.Tensor, mask: np.ndarray, points: int = 21) -> np.ndarray:
    """``log(1 + f)`` at x = k / (points - 1) for every (cell, slice): float64 ``[N, S, points]``, 0 if inactive."""
    grid = np.linspace(0.0, 1.0, points)
    f = tabulate(model, z, grid).astype(np.float64)  # [N, S, G]
    return log1p_terms(f, mask)  # [N, S, G]
