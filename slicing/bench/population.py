"""``slicing bench --cells N --shards K``: whole periods of a sharded population on Ray, with IDLA.

The scenario is ``slicing.bench.core``'s (default catalogue, all four slices active, ceil(N / 3) sites). Shards
checkpoint every period to a temporary folder, as in service. The first H - 1 rounds fill the history with the
traffic baseline (IDLA's warm-up, not timed); then ``periods`` rounds run IDLA with the small bench estimator
(``slicing.optim.rollout.bootstrap_estimator``, trained first and not timed, unless a saved one is given).
Reported values are medians over the timed rounds: ``cells_per_s = cells / round_s``.

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

from slicing.config import HISTORY, build_scenario
from slicing.models.qos_estimator import load_estimator
from slicing.optim.rollout import bootstrap_estimator

Log = Callable[[str], None]


def bench_population(cells: int, shards: int, periods: int = 3, seed: int = 0, log: Log = print,
                     estimator: Path | None = None, checkpoint: bool = True, threads: int | None = None) -> dict:
    """Median timings of ``periods`` IDLA rounds of ``cells`` cells on ``shards`` Ray actors (see module doc)."""
    import ray

    from slicing.runtime.population import Population

    if periods < 1:
        raise ValueError(f"periods: must be >= 1, got {periods}")
    model = load_estimator(estimator) if estimator else bootstrap_estimator(seed, log)
    sc = build_scenario({"name": "bench", "seed": seed, "topology": {"sites": math.ceil(cells / 3)},
                         "initial_slices": [1, 2, 3, 4]})
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
                log(f"period {r['period']}: round {r['round_s']:.2f} s (halo {r['halo_s']:.3f}, step "
                    f"{r['step_s']:.2f}, allocate {r['allocate_s']:.2f})")
                rounds.append(r)
        finally:
            pop.shutdown()
    finally:
        if storage:
            shutil.rmtree(storage, ignore_errors=True)
        if started:
            ray.shutdown()
    med = {k: statistics.median(r[k] for r in rounds) for k in ("round_s", "halo_s", "step_s", "allocate_s")}
    return {"cells": sc.cells, "shards": shards, "round_s": round(med["round_s"], 3),
            "halo_s": round(med["halo_s"], 4), "step_s": round(med["step_s"], 3),
            "allocate_s": round(med["allocate_s"], 3), "cells_per_s": round(sc.cells / med["round_s"], 1)}
