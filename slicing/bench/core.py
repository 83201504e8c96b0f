"""`slicing bench --cells N`: one simulator period and one IDLA allocation of N cells in one process.

The population is the default catalogue with all four slices active (the IDLA paper's H2 configuration), sized
to ceil(N / 3) three-sector sites. Its history is filled by H periods of the traffic baseline (not timed); then
one period is timed (``sim_step_s``) and one IDLA allocation of every cell, warm-started from the last shares
(``allocate_s``). The estimator is ``slicing.optim.rollout.bootstrap_estimator`` (36 cells; trained first, not
timed), unless a saved one is given. ``utility_vs_grid_oracle`` is IDLA's estimated utility
(``slicing.optim.utility.estimated_utility``) over the exact 0.05-grid optimum (the DP oracle,
identical to brute force on that grid) on the same cells and estimator, both evaluated with the network itself.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

from slicing.config import build_scenario
from slicing.data.history import History
from slicing.models.qos_estimator import load_estimator
from slicing.optim.idla import allocate_idla
from slicing.optim.oracle import dp_oracle, grid_values
from slicing.optim.rollout import bootstrap_estimator, rollout, traffic_policy
from slicing.optim.utility import estimated_utility
from slicing.sim.simulator import Simulator

Log = Callable[[str], None]


def bench_core(cells: int, seed: int = 0, log: Log = print, estimator: Path | None = None) -> dict:
    model = load_estimator(estimator) if estimator else bootstrap_estimator(seed, log)
    sites = math.ceil(cells / 3)
    sc = build_scenario({"name": "bench", "seed": seed, "topology": {"sites": sites}, "initial_slices": [1, 2, 3, 4]})
    t0 = time.perf_counter()
    sim = Simulator(sc)
    history = History(len(sim.cell_ids), sim.n_slices)
    log(f"built {len(sim.cell_ids)} cells in {time.perf_counter() - t0:.1f} s; filling the history")
    shares = rollout(sim, history, traffic_policy, history.horizon)  # [N, S] the last period's
    t0 = time.perf_counter()
    history.push(sim.step(shares))
    sim_step_s = time.perf_counter() - t0

    z = history.features(sim.throughput_req_mbps, sim.delay_req_ms)  # [N, S, 12]
    mask = sim.slice_mask()
    t0 = time.perf_counter()
    res = allocate_idla(model, z, mask, shares, sc.idla, seed, sim.period, sim.cell_ids)
    allocate_s = time.perf_counter() - t0
    log(f"IDLA allocated {len(sim.cell_ids)} cells in {allocate_s:.2f} s; solving the 0.05-grid oracle")
    t0 = time.perf_counter()
    oracle_shares, _ = dp_oracle(grid_values(model, z, mask, points=21), mask)
    oracle_s = time.perf_counter() - t0
    u_idla = estimated_utility(model, z, mask, res.shares).sum()
    u_oracle = estimated_utility(model, z, mask, oracle_shares).sum()
    return {
        "cells": len(sim.cell_ids),
        "sim_step_s": round(sim_step_s, 4),
        "allocate_s": round(allocate_s, 3),
        "cells_per_s": round(len(sim.cell_ids) / allocate_s, 1),
        "utility_vs_grid_oracle": round(float(u_idla / u_oracle), 5),
        "oracle_s": round(oracle_s, 3),
        "max_share_sum": round(float(res.shares.sum(axis=1).max()), 6),
    }
