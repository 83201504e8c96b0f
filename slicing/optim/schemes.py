"""Allocation schemes behind one interface, chosen by name from the registry ``SCHEMES``.

A scheme turns one period's ``AllocationContext`` (slice mask, features z from the last H periods, the warm start,
and, for the traffic baseline only, perfect knowledge of the current offered traffic) into shares [N, S] with
x >= 0 and sum_s x <= 1. The evaluation, the benchmark and the runtime's CellShard all allocate through this.

The registry knows the allocators of this layer (equal, traffic, idla, oracle). Schemes from layers above register
themselves with ``register_scheme(name, factory)`` when their module is imported (the RL layer's scheme module
adds ``rl``); this package imports nothing above it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from slicing.config import IdlaConfig
from slicing.data.history import History
from slicing.optim.baselines import equal_share, traffic_proportional
from slicing.optim.feasible import fill_slack, project
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
    weight: np.ndarray | None = None  # [N, S] slice weights of the utility (A1 slice priorities; idla only)

    @classmethod
    def of(cls, sim: PeriodSource, history: History | None, warm: np.ndarray | None = None,
           period: int | None = None, *, mask: np.ndarray | None = None, z: bool = True, offered: bool = False,
           obs: np.ndarray | None = None) -> AllocationContext:
        """The context of ``period`` (default ``sim.period``) for cells ``sim.cell_ids``.

        ``mask`` defaults to ``sim.slice_mask(period)``; ``z`` asks for the features of ``history`` (covering the H
        periods before ``period``); ``offered`` for the period's offered traffic ``sim.demand(period)`` (the traffic
        baseline's perfect knowledge); ``obs`` passes RL observations through.
        """
        t = sim.period if period is None else int(period)
        return cls(
            period=t, cell_ids=sim.cell_ids, mask=sim.slice_mask(t) if mask is None else mask,
            z=history.features(sim.throughput_req_mbps, sim.delay_req_ms) if z and history is not None else None,
            offered_mbps=sim.demand(t).offered_mbps if offered else None,
            warm=warm, obs=obs,
        )


class _Demand(Protocol):
    offered_mbps: np.ndarray  # [N, S]


class PeriodSource(Protocol):
    """What ``AllocationContext.of`` reads: a ``Simulator`` (or anything shaped like one)."""

    period: int
    cell_ids: np.ndarray  # [N] int64
    throughput_req_mbps: np.ndarray  # [S]
    delay_req_ms: np.ndarray  # [S]

    def slice_mask(self, period: int | None = None) -> np.ndarray: ...  # [N, S] bool

    def demand(self, period: int | None = None) -> _Demand: ...


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
        res = allocate_idla(self.model, ctx.z, ctx.mask, ctx.warm, self.cfg, self.seed, ctx.period, ctx.cell_ids,
                            ctx.weight)
        return res.shares


class OracleScheme:
    """Best point of the 0.05 simplex grid on the trained estimator: brute force for small batches, exact DP else.

    ``fill`` (``IdlaConfig.fill``, as for IDLA): the grid point's unused budget goes to the cell's slices in
    proportion to their shares."""

    name, needs_model = "oracle", True
    BRUTE_FORCE_MAX_CELLS = 2000

    def __init__(self, model, brute_force: bool = True, fill: bool = True) -> None:
        self.model, self.brute_force, self.fill = model, brute_force, fill

    def allocate(self, ctx: AllocationContext) -> np.ndarray:
        values = grid_values(self.model, ctx.z, ctx.mask, points=ORACLE_POINTS)  # [N, S, G]
        small = len(ctx.cell_ids) <= self.BRUTE_FORCE_MAX_CELLS and ctx.mask.shape[1] <= 4
        solve = grid_oracle_bruteforce if (self.brute_force and small) else dp_oracle
        shares, _ = solve(values, ctx.mask)
        shares = project(shares, ctx.mask)
        return fill_slack(shares, ctx.mask) if self.fill else shares


class UnknownSchemeError(ValueError):
    pass


class SchemeFactory(Protocol):
    """Builds a scheme from what ``make_scheme`` knows; a factory ignores what it does not need."""

    def __call__(self, *, model: object, idla: IdlaConfig, seed: int, checkpoint: str | None) -> Scheme: ...


SCHEMES: dict[str, SchemeFactory | Callable[..., Scheme]] = {}


def register_scheme(name: str, factory: SchemeFactory | Callable[..., Scheme]) -> None:
    """Make ``name`` available to ``make_scheme`` (a later registration of the same name replaces it)."""
    SCHEMES[name] = factory


def make_scheme(name: str, model=None, idla: IdlaConfig | None = None, seed: int = 0,
                checkpoint: str | None = None) -> Scheme:
    """The scheme registered as ``name``; ``UnknownSchemeError`` lists the registered names otherwise."""
    if name not in SCHEMES:
        raise UnknownSchemeError(f"unknown scheme {name!r}; choose from {sorted(SCHEMES)}")
    return SCHEMES[name](model=model, idla=idla or IdlaConfig(), seed=seed, checkpoint=checkpoint)


register_scheme("equal", lambda **_: EqualScheme())
register_scheme("traffic", lambda **_: TrafficScheme())
register_scheme("idla", lambda *, model, idla, seed, **_: IdlaScheme(model, idla, seed))
register_scheme("oracle", lambda *, model, idla, **_: OracleScheme(model, fill=idla.fill))
