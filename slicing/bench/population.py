"""``slicing bench --cells N --shards K``: whole periods of a sharded population on Ray, with IDLA.

The scenario is ``slicing.bench.core``'s (default catalogue, all four slices active, ceil(N / 3) sites). Shards
checkpoint every period to a temporary folder, as in service. The first H - 1 rounds fill the history with the
traffic baseline (IDLA's warm-up, not timed); then ``periods`` rounds run IDLA with the small bench estimator
(``slicing.optim.rollout.bootstrap_estimator``, trained first and not timed, unless a saved one is given).
Reported values are medians over the timed rounds (default 8): ``cells_per_s = cells / round_s``; the first
timed round and the slowest are reported too (``round_first_s``, ``round_max_s``). The first two or three IDLA
rounds after the warm-up are slower on Ray actors (measured 1.4-2.0 s against about 1.0 s later at 100k cells on
2 shards) while the same allocation in one process takes the same time in every period (0.8-0.85 s per 50k
cells); the cause was not found (not the checkpoints, not the share of cells IDLA searches, not malloc's
thresholds), so both figures are shown rather than the median alone.

The yardstick, after every timed round and outside its timing: the exact 0.05-grid oracle (DP over the
estimator's values, ``slicing/optim/oracle.py``) on the very cells, features and slice masks that round's
allocation saw (``CellShard.allocation_inputs``), timed twice:

- ``oracle_s``: one process (this one, torch's default threads) solving all cells, what ``slicing bench
  --cells N`` times; ``round_vs_oracle = round_s / oracle_s``;
- ``oracle_shards_s``: every shard solving its own cells at once (``CellShard.grid_oracle``), with the cores and
  threads IDLA had; ``round_vs_oracle_shards = round_s / oracle_shards_s``, the like-for-like ratio.

``utility_idla`` and ``utility_oracle`` are the estimated utility (``slicing.optim.utility``) of the shares each
produced, summed over the cells and the timed rounds; ``utility_vs_oracle`` is their ratio.

Each shard runs torch with ``threads`` threads (default 1, what Ray gives a fractional-CPU actor): measured on 2
cores shared with another CPU-bound process, one shard with 2 threads took 12-41 s per round against 7 s with one
thread (intra-op thread synchronisation suffers badly from oversubscription); scale with shards instead.
"""

from __future__ import annotations

import math
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from slicing.config import HISTORY, build_scenario
from slicing.models.qos_estimator import QosEstimator, load_estimator
from slicing.optim.oracle import dp_oracle, grid_values
from slicing.optim.rollout import bootstrap_estimator
from slicing.optim.schemes import ORACLE_POINTS
from slicing.optim.utility import estimated_utility_tensor

Log = Callable[[str], None]


def _utility(model: QosEstimator, part: dict, shares: np.ndarray) -> float:
    """Estimated utility of ``shares`` on the cells of ``part`` (allocation inputs), summed."""
    w = None if part["weight"] is None else torch.from_numpy(np.asarray(part["weight"])).float()
    return float(estimated_utility_tensor(model, torch.from_numpy(part["z"]).float(), torch.from_numpy(part["mask"]),
                                          torch.from_numpy(shares).float(), w).sum())


def oracle_check(pop, model: QosEstimator) -> dict:
    """The grid oracle on the inputs of ``pop``'s last allocation: its times and both utilities (module doc)."""
    parts = pop.on_shards("allocation_inputs")
    z = np.concatenate([p["z"] for p in parts])  # [N, S, 2H + 2]
    mask = np.concatenate([p["mask"] for p in parts])  # [N, S]
    weight = None if all(p["weight"] is None for p in parts) else np.concatenate(
        [np.ones(p["mask"].shape) if p["weight"] is None else p["weight"] for p in parts])
    t0 = time.perf_counter()
    values = grid_values(model, z, mask, points=ORACLE_POINTS)  # [N, S, G]
    if weight is not None:
        values = values * weight[:, :, None]
    oracle, _ = dp_oracle(values, mask)  # [N, S]
    oracle_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    pop.on_shards("grid_oracle")
    oracle_shards_s = time.perf_counter() - t0
    whole = {"z": z, "mask": mask, "weight": weight}
    return {"oracle_s": oracle_s, "oracle_shards_s": oracle_shards_s,
            "utility_idla": _utility(model, whole, np.concatenate([p["shares"] for p in parts])),
            "utility_oracle": _utility(model, whole, oracle)}


def bench_population(cells: int, shards: int, periods: int = 8, seed: int = 0, log: Log = print,
                     estimator: Path | None = None, checkpoint: bool = True, threads: int | None = None,
                     idla: dict | None = None) -> dict:
    """Median timings of ``periods`` IDLA rounds of ``cells`` cells on ``shards`` Ray actors (see module doc).

    ``idla``: ``IdlaConfig`` fields that differ from the defaults (the comparisons of docs/runtime.md)."""
    import ray

    from slicing.runtime.population import Population

    if periods < 1:
        raise ValueError(f"periods: must be >= 1, got {periods}")
    model = load_estimator(estimator) if estimator else bootstrap_estimator(seed, log)
    sc = build_scenario({"name": "bench", "seed": seed, "topology": {"sites": math.ceil(cells / 3)},
                         "initial_slices": [1, 2, 3, 4], "idla": idla or {}})
    started = not ray.is_initialized()
    if started:
        ray.init(address="local", include_dashboard=False, log_to_driver=False)
    storage = tempfile.mkdtemp(prefix="slicing-bench-ckpt-") if checkpoint else None
    threads = threads or 1
    try:
        t0 = time.perf_counter()
        pop = Population(sc, shards, "idla", model, storage, threads_per_shard=threads)
        log(f"{sc.cells} cells on {shards} shard(s) ({threads} torch thread(s) each) in "
            f"{time.perf_counter() - t0:.1f} s; warm-up ({HISTORY - 1} traffic-baseline periods)")
        try:
            for _ in range(HISTORY - 1):
                pop.run_period()
            rounds = []
            for _ in range(periods):
                r = pop.run_period()
                if r["warmup"] or r["fallback_cells"]:
                    raise RuntimeError(f"bench round {r['period']}: warm-up or fallback cells ({r})")
                r |= oracle_check(pop, model)
                log(f"period {r['period']}: round {r['round_s']:.2f} s (halo {r['halo_s']:.3f}, step "
                    f"{r['step_s']:.2f}, allocate {r['allocate_s']:.2f}); grid oracle {r['oracle_s']:.2f} s in one "
                    f"process, {r['oracle_shards_s']:.2f} s on the shards; utility vs oracle "
                    f"{r['utility_idla'] / r['utility_oracle']:.5f}")
                rounds.append(r)
        finally:
            pop.shutdown()
    finally:
        if storage:
            shutil.rmtree(storage, ignore_errors=True)
        if started:
            ray.shutdown()
    med = {k: statistics.median(r[k] for r in rounds)
           for k in ("round_s", "halo_s", "step_s", "allocate_s", "oracle_s", "oracle_shards_s")}
    u_idla, u_oracle = sum(r["utility_idla"] for r in rounds), sum(r["utility_oracle"] for r in rounds)
    return {"cells": sc.cells, "shards": shards, "round_s": round(med["round_s"], 3),
            "halo_s": round(med["halo_s"], 4), "step_s": round(med["step_s"], 3),
            "allocate_s": round(med["allocate_s"], 3), "cells_per_s": round(sc.cells / med["round_s"], 1),
            "periods": len(rounds), "round_first_s": round(rounds[0]["round_s"], 3),
            "round_max_s": round(max(r["round_s"] for r in rounds), 3),
            "oracle_s": round(med["oracle_s"], 4), "oracle_shards_s": round(med["oracle_shards_s"], 4),
            "round_vs_oracle": round(med["round_s"] / med["oracle_s"], 3),
            "round_vs_oracle_shards": round(med["round_s"] / med["oracle_shards_s"], 3),
            "utility_idla": round(u_idla, 3), "utility_oracle": round(u_oracle, 3),
            "utility_vs_oracle": round(u_idla / u_oracle, 6)}
