"""Shares -> 3GPP TS 28.541 ``RRMPolicyRatio`` per slice (``rRMPolicyMaxRatio`` / ``MinRatio`` / ``DedicatedRatio``).

TS 28.541 expresses a slice's radio resources as three integer percentages of the cell's resources (PRBs),
``0 <= dedicated <= min <= max <= 100``, and requires the min ratios (the prioritised + dedicated resources) of
the slices of one cell to add up to at most 100. This module maps the allocators' shares x in [0, 1] (per cell
``sum_s x_s <= 1``) onto that, vectorised over ``[N cells, S slices]``:

- ``min_ratio = floor(100 x)``: guaranteed to the slice. Because every share is rounded down, the min ratios of a
  cell add up to at most ``floor(100 sum_s x_s) <= 100``.
- ``max_ratio = min(100, ceil(100 x) + headroom)``: the upper limit. With the default ``headroom = 0`` this is
  ``x`` rounded up, i.e. the allocation itself as an upper bound (the simulator's semantics: the budget
  x * N_PRB caps the slice); a positive headroom (percentage points) lets a slice borrow idle PRBs above its share.
- ``dedicated_ratio = floor(dedicated_fraction * min_ratio)``, ``dedicated_fraction = 0.5`` by default: half of
  the guaranteed part is reserved exclusively (not even lent out when idle), the rest is prioritised but shareable.

A share within ``ROUND_TOL`` (1e-6, i.e. 1e-4 percentage points) of a whole percentage is treated as that
percentage, so 0.29 (= 28.999999999999996 / 100 in float64) maps to 29, not 28, and the min/max ratios coincide.
This cannot push the sum of a cell's min ratios above 100: sum_s floor(100 x_s + tol) <= floor(100 sum_s x_s +
S tol) = 100 for S tol < 1. Inactive slices (``mask`` False) and zero shares get (0, 0, 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ROUND_TOL = 1e-6  # in percentage points
DEDICATED_FRACTION = 0.5
HEADROOM_PCT = 0


@dataclass(frozen=True)
class RrmPolicyRatios:
    """Integer percentages, each ``[N, S]`` int64: ``dedicated <= min <= max``, per cell ``sum(min) <= 100``."""

    max_ratio: np.ndarray
    min_ratio: np.ndarray
    dedicated_ratio: np.ndarray


def rrm_policy_ratios(
    shares: np.ndarray,
    mask: np.ndarray | None = None,
    dedicated_fraction: float = DEDICATED_FRACTION,
    headroom_pct: int = HEADROOM_PCT,
) -> RrmPolicyRatios:
    """Vectorised map of shares ``[N, S]`` (x >= 0, row sums <= 1) to TS 28.541 RRM policy ratios.

    Raises ``ValueError`` for non-finite or negative shares, a row sum above 1 (+1e-9 rounding slack), a
    ``dedicated_fraction`` outside [0, 1] or a ``headroom_pct`` outside [0, 100].
    """
    x = np.asarray(shares, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"rrm_policy_ratios: shares must be [N, S], got shape {x.shape}")
    m = np.ones(x.shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    if m.shape != x.shape:
        raise ValueError(f"rrm_policy_ratios: mask shape {m.shape} does not match shares shape {x.shape}")
    if not 0.0 <= dedicated_fraction <= 1.0:
        raise ValueError(f"rrm_policy_ratios: dedicated_fraction must be in [0, 1], got {dedicated_fraction}")
    if not 0 <= int(headroom_pct) <= 100:
        raise ValueError(f"rrm_policy_ratios: headroom_pct must be in [0, 100], got {headroom_pct}")
    x = np.where(m, x, 0.0)  # [N, S]
    if not np.isfinite(x).all() or (x < 0).any():
        raise ValueError("rrm_policy_ratios: shares must be finite and >= 0")
    if x.size and (x.sum(axis=1) > 1.0 + 1e-9).any():
        raise ValueError("rrm_policy_ratios: a cell's shares add up to more than 1")
    pct = np.minimum(100.0 * x, 100.0)  # [N, S]
    min_ratio = np.floor(pct + ROUND_TOL).astype(np.int64)  # [N, S]
    max_ratio = np.ceil(pct - ROUND_TOL).astype(np.int64)  # [N, S]
    max_ratio = np.clip(np.maximum(max_ratio, min_ratio) + int(headroom_pct), 0, 100)
    max_ratio = np.where(m, max_ratio, 0)  # headroom only for active slices
    min_ratio = np.clip(min_ratio, 0, 100)
    # Guard (unreachable for row sums <= 1 + 1e-9, see the module docstring): trim the largest min ratios.
    over = min_ratio.sum(axis=1) - 100 if min_ratio.size else np.zeros(0, dtype=np.int64)  # [N]
    while (over > 0).any():
        rows = np.flatnonzero(over > 0)
        cols = np.argmax(min_ratio[rows], axis=1)
        min_ratio[rows, cols] -= 1
        over[rows] -= 1
    dedicated = np.floor(dedicated_fraction * min_ratio + ROUND_TOL).astype(np.int64)  # [N, S]
    dedicated = np.minimum(dedicated, min_ratio)
    return RrmPolicyRatios(max_ratio=max_ratio, min_ratio=min_ratio, dedicated_ratio=dedicated)


def check_rrm_invariants(r: RrmPolicyRatios) -> None:
    """Raise ``AssertionError`` unless 0 <= dedicated <= min <= max <= 100 and every cell's sum(min) <= 100."""
    assert (r.dedicated_ratio >= 0).all(), "dedicated_ratio < 0"
    assert (r.dedicated_ratio <= r.min_ratio).all(), "dedicated_ratio > min_ratio"
    assert (r.min_ratio <= r.max_ratio).all(), "min_ratio > max_ratio"
    assert (r.max_ratio <= 100).all(), "max_ratio > 100"
    if r.min_ratio.size:
        assert (r.min_ratio.sum(axis=1) <= 100).all(), "sum of min_ratio over a cell > 100"
