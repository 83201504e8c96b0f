"""Allocation schemes behind one interface, chosen by name from ``SCHEMES``.

A scheme turns one period's ``AllocationContext`` (slice mask, features z from the last H periods, the warm start,
and, for the traffic baseline only, perfect knowledge of the current offered traffic) into shares [N, S] with
x >= 0 and sum_s x <= 1. The evaluation, the benchmark and the runtime's CellShard all allocate through this.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from slicing.config import IdlaConfig
from slicing.optim.baselines import equal_share, traffic_proportional
from slicing.optim.feasible import project
from slicing.optim.idla import allocate_idla
from slicing.optim.oracle import dp_oracle, grid_oracle_bruteforce, grid_values

ORACLE_POINTS = 21  # the paper's 0.05 grid


@dataclass(frozen=True)
class AllocationContext:
    period: int
    cell_ids: np.ndarray  # [N] int64
    mask: np.ndarray  # [N, S] bool
    z: np.ndarray | None = None  # [N, S, 2H + 2] features without x
    offered_mbps: np.ndarray | None = None  # [N, S] current traffic (traffic baseline only)
    warm: np.ndarray | None = None  # [N, S] last period's shares
    obs: np.ndarray | None = None  # [N, 5S] RL observations (rl scheme only; slicing/data/features.py)


class Scheme(Protocol):
    name: str
    needs_model: bool

    def allocate(self, ctx: AllocationContext) -> np.ndarray: ...


class EqualScheme:
    name, needs_model = "equal", False

    def allocate(self, ctx: AllocationContext) -> np.ndarray:
        return equal_share(ctx.mask)


class TrafficScheme:
    name, needs_model = "traffic", False

    def allocate(self, ctx: AllocationContext) -> np.ndarray:
        if ctx.offered_mbps is None:
            raise ValueError("traffic scheme needs offered_mbps (current per-slice traffic)")
        return traffic_proportional(ctx.offered_mbps, ctx.mask)


class IdlaScheme:
    name, needs_model = "idla", True

    def __init__(self, model, cfg: IdlaConfig, seed: int) -> None:
        self.model, self.cfg, self.seed = model, cfg, seed

    def allocate(self, ctx: AllocationContext) -> np.ndarray:
        res = allocate_idla(self.model, ctx.z, ctx.mask, ctx.warm, self.cfg, self.seed, ctx.period, ctx.cell_ids)
        return res.shares


class OracleScheme:
    """Best point of the 0.05 simplex grid on the trained estimator: brute force for small batches, exact DP else."""

    name, needs_model = "oracle", True
    BRUTE_FORCE_MAX_CELLS = 2000

    def __init__(self, model, brute_force: bool = True) -> None:
        self.model, self.brute_force = model, brute_force

    def allocate(self, ctx: AllocationContext) -> np.ndarray:
        values = grid_values(self.model, ctx.z, ctx.mask, points=ORACLE_POINTS)  # [N, S, G]
        small = len(ctx.cell_ids) <= self.BRUTE_FORCE_MAX_CELLS and ctx.mask.shape[1] <= 4
        solve = grid_oracle_bruteforce if (self.brute_force and small) else dp_oracle
        shares, _ = solve(values, ctx.mask)
        return project(shares, ctx.mask)


class RlScheme:
    """A trained RLlib policy (``slicing.rl.inference.RlPolicy``) on per-cell observations built by the caller.

    The policy is loaded lazily from ``checkpoint`` by ``make_scheme`` (that import needs Ray/RLlib; this module
    does not). The caller fills ``ctx.obs`` with ``slicing.data.features`` from its last KPI report.
    """

    name, needs_model, needs_obs = "rl", False, True

    def __init__(self, policy) -> None:
        self.policy = policy
        self.version = getattr(policy, "version", None)

    def allocate(self, ctx: AllocationContext) -> np.ndarray:
        if ctx.obs is None:
            raise ValueError("rl scheme needs obs (per-cell observations from the last KPI report)")
        return self.policy.allocate(ctx.obs, ctx.mask)


SCHEMES = {"equal": EqualScheme, "traffic": TrafficScheme, "idla": IdlaScheme, "oracle": OracleScheme,
           "rl": RlScheme}


class UnknownSchemeError(ValueError):
    pass


def make_scheme(name: str, model=None, idla: IdlaConfig | None = None, seed: int = 0,
                checkpoint: str | None = None) -> Scheme:
    if name not in SCHEMES:
        raise UnknownSchemeError(f"unknown scheme {name!r}; choose from {sorted(SCHEMES)}")
    if name == "rl":
        if checkpoint is None:
            raise UnknownSchemeError("scheme 'rl' needs an RL checkpoint (slicing train-rl); it runs in the runtime's "
                                     "CellShard(scheme='rl', rl_checkpoint=...)")
        from slicing.rl.inference import RlPolicy  # imports RLlib, only for this scheme

        return RlScheme(RlPolicy.from_checkpoint(checkpoint))
    if name == "idla":
        return IdlaScheme(model, idla or IdlaConfig(), seed)
    if name == "oracle":
        return OracleScheme(model)
    return SCHEMES[name]()
