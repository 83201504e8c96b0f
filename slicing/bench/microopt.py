"""`slicing bench microopt`: MicroOpt over many e2e slice instances in one call, against one Peak-alloc grid
evaluation of the same instances on the same slice model (the issue's target: ratio <= 3).

Instances (seeded): traffic centre uniform in [1, 5] users/s, std 0.5 or 1.5 (the experiment's sigma_mean and
sigma_max), ``slots`` equal-probability traffic points each (the runtime step uses 16); q_thresh in {3, 4, 5},
beta_thresh in {0.1, 0.2, 0.3}.

- ``microopt_s``: one ``microopt`` call over all instances (default settings: 15 outer x 20 inner steps at most);
- ``peak_grid_s``: ``peak.grid_evaluate`` of every instance at its peak traffic over the default grid
  (51 x 91 = 4,641 allocations), the costly part of Peak-alloc, once;
- ``ratio`` = microopt_s / peak_grid_s; the quality figures are on the model: the share of instances MicroOpt
  made feasible, the largest E[beta] - beta_thresh among those (exact), and the mean normalised resource of
  MicroOpt and of Peak-alloc's per-instance choice at the asked thresholds (peak traffic).

Both run in this process with the same torch thread count (``torch_threads``). The model is ``model`` or, when
absent, a slice model trained for ``train_epochs`` on the paper's grid first (untimed).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from slicing.models.slice_model import ETA, SliceModel, load_slice_model
from slicing.models.slice_model import R_MAX as SLICE_R_MAX

Log = Callable[[str], None]
R_MAX = np.array(SLICE_R_MAX)


def bench_instances(n: int, slots: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(traffic [n, slots], peak [n], q_thresh [n], beta_thresh [n])."""
    from slicing.optim.microopt import traffic_points

    rng = np.random.default_rng(seed)
    mean = rng.uniform(1.0, 5.0, n)
    std = rng.choice([0.5, 1.5], n)
    traffic = traffic_points(mean, std, 1.0, 5.0, slots)
    return traffic, traffic.max(axis=1), rng.choice([3.0, 4.0, 5.0], n), rng.choice([0.1, 0.2, 0.3], n)


def bench_microopt(instances: int = 10_000, slots: int = 16, model: str | Path | None = None, seed: int = 0,
                   train_epochs: int = 300, log: Log = print) -> dict:
    from slicing.optim.degradation import model_e_beta
    from slicing.optim.microopt import MicroOptSettings, microopt
    from slicing.optim.peak import DEFAULT_GRID, grid_evaluate, grid_points

    if model is not None:
        m: SliceModel = load_slice_model(model)
    else:
        from slicing.config import E2eConfig
        from slicing.models.slice_training import SliceModelSettings, train_slice_model

        log(f"no --model: training a slice model for {train_epochs} epochs on the paper's grid (untimed)")
        m, _ = train_slice_model(E2eConfig(seed=seed), SliceModelSettings(epochs=train_epochs, seed=seed))
    m.eval()
    traffic, peak, q, b = bench_instances(instances, slots, seed)
    eta = np.asarray(ETA)

    t0 = time.perf_counter()
    res = microopt(m.qos, traffic, q, b, eta=eta, r_max=R_MAX, settings=MicroOptSettings(seed=seed))
    microopt_s = time.perf_counter() - t0
    log(f"MicroOpt: {instances} instances x {slots} slots in {microopt_s:.2f} s "
        f"({res.outer_iterations} outer iterations, {res.inner_steps} inner steps)")

    points = grid_points(DEFAULT_GRID)
    t0 = time.perf_counter()
    beta_grid = grid_evaluate(m.qos, peak, q, points)  # [I, G]
    peak_s = time.perf_counter() - t0
    log(f"Peak-alloc grid: {instances} instances x {len(points)} allocations in {peak_s:.2f} s")

    cost = points @ eta  # [G]
    ok = beta_grid <= b[:, None]
    peak_norm = np.where(ok.any(axis=1), np.where(ok, cost[None, :], np.inf).min(axis=1), cost.max())
    e_beta = model_e_beta(m.qos, traffic, res.r, q)
    return {"instances": instances, "slots": slots, "grid_points": len(points), "microopt_s": round(microopt_s, 3),
            "peak_grid_s": round(peak_s, 3), "ratio": round(microopt_s / peak_s, 3), "target_ratio": 3.0,
            "instances_per_s": round(instances / microopt_s, 1),
            "feasible_share": round(float(res.feasible.mean()), 4),
            "max_e_beta_excess_feasible": round(float((e_beta - b)[res.feasible].max(initial=-1.0)), 5),
            "mean_norm_microopt": round(float(res.objective.mean()), 4),
            "mean_norm_peak_at_thresholds": round(float(peak_norm.mean()), 4),
            "outer_iterations": res.outer_iterations, "inner_steps": res.inner_steps,
            "torch_threads": torch.get_num_threads(), "model_version": m.version}
