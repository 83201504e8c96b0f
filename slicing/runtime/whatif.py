"""The what-if runner: a study's variants x schemes x seeds as Ray tasks with explicit resource requests.

Every run is one Ray task asking for ``Study.cpus_per_run`` CPUs (and ``memory_mb_per_run``), so on a ``ray up``
cluster the autoscaler adds workers while runs wait and removes them when they are done. A run builds its
variant's population, sharded as the service's is (``Population``, ``Study.shards`` shards, stepped in the task's
process: halo, step, allocate per period), runs the horizon and returns:

- per period (``series``): P(r >= 0.999) over active (cell, slice), mean r, mean utility sum_s log(1 + r) and PRB
  utilisation over live cells, and the fraction of live cells with any active slice below 0.999 ("violating");
- per cell (``cells``): the same over the horizon, for the map;
- with ``detail``: every (period, cell, slice)'s share, r, PRB utilisation and users.

A cell is live in a period when it carries a slice (a cell of a site that is down carries none). The driver
(``run_study``) trains or loads scheme idla's estimator once, puts it in the object store, submits every run,
reports progress per variant (runs report periods done to a small progress actor) and writes the results to
Parquet (``write_results``). ``summarise`` turns the runs into the per-variant figures and deltas vs the base.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from slicing.config import Scenario
from slicing.data.augment import SATISFIED
from slicing.study import BASE, LoadedStudy

DETAIL_MAX_CELL_PERIODS = 2_000_000  # detail "auto": per-cell KPIs up to this many cell-periods per run
METRICS = ("p_satisfied", "mean_r", "utility", "prb_util", "cells_violating")
Log = Callable[[str], None]


@dataclass
class RunResult:
    """One (variant, scheme, seed) run."""

    variant: str
    scheme: str
    seed: int
    metrics: dict[str, float]
    series: dict[str, np.ndarray]  # metric -> [T]
    cells: dict[str, np.ndarray]  # cell_id [N], p_satisfied, mean_r, violating, live [N]
    detail: dict[str, np.ndarray] | None = None  # period, cell_id, slice_id, share, r, prb_util, users [M]
    seconds: float = 0.0
    cell_periods: int = 0
    notes: list[str] = field(default_factory=list)


class _Accumulator:
    """Per-period and per-cell sums of one run's KPIs."""

    def __init__(self, cell_ids: np.ndarray, slice_ids: np.ndarray, detail: bool) -> None:
        n = len(cell_ids)
        self.cell_ids, self.slice_ids, self.detail = cell_ids, slice_ids, detail
        self.series: dict[str, list[float]] = {m: [] for m in METRICS}
        self.sat = np.zeros(n)  # satisfied active slice-periods
        self.active = np.zeros(n)  # active slice-periods
        self.r_sum = np.zeros(n)
        self.viol = np.zeros(n)  # periods with a violating slice
        self.live = np.zeros(n)  # periods live
        self.util_sum = 0.0
        self.prb_sum = 0.0
        self.rows: list[dict[str, np.ndarray]] = []

    def add(self, period: int, k: dict[str, np.ndarray]) -> None:
        mask = np.asarray(k["mask"], dtype=bool)  # [N, S]
        r = np.where(mask, k["r"], 0.0)  # [N, S]
        sat = (r >= SATISFIED) & mask
        live = mask.any(axis=1)  # [N]
        viol = (mask & ~sat).any(axis=1)  # [N]
        util = np.where(mask, np.log1p(r), 0.0).sum(axis=1)  # [N]
        prb = np.where(mask, k["prb_util"], 0.0).sum(axis=1)  # [N]
        n_active, n_live = int(mask.sum()), int(live.sum())
        self.series["p_satisfied"].append(sat.sum() / n_active if n_active else np.nan)
        self.series["mean_r"].append(r[mask].mean() if n_active else np.nan)
        self.series["utility"].append(util[live].mean() if n_live else np.nan)
        self.series["prb_util"].append(prb[live].mean() if n_live else np.nan)
        self.series["cells_violating"].append(viol[live].mean() if n_live else np.nan)
        self.sat += sat.sum(axis=1)
        self.active += mask.sum(axis=1)
        self.r_sum += r.sum(axis=1)
        self.viol += viol
        self.live += live
        self.util_sum += float(util[live].sum())
        self.prb_sum += float(prb[live].sum())
        if self.detail:
            c, s = np.nonzero(mask)
            self.rows.append({"period": np.full(len(c), period, dtype=np.int32), "cell_id": self.cell_ids[c],
                              "slice_id": self.slice_ids[s].astype(np.int16),
                              **{f: np.asarray(k[f])[c, s].astype(np.float32)
                                 for f in ("share", "r", "prb_util", "users")}})

    def result(self, variant: str, scheme: str, seed: int, seconds: float) -> RunResult:
        active, live = self.active.sum(), self.live.sum()
        metrics = {"p_satisfied": float(self.sat.sum() / active) if active else float("nan"),
                   "mean_r": float(self.r_sum.sum() / active) if active else float("nan"),
                   "utility": self.util_sum / live if live else float("nan"),
                   "prb_util": self.prb_sum / live if live else float("nan"),
                   "cells_violating": float(self.viol.sum() / live) if live else float("nan")}
        with np.errstate(invalid="ignore", divide="ignore"):
            cells = {"cell_id": self.cell_ids, "p_satisfied": self.sat / self.active,
                     "mean_r": self.r_sum / self.active, "violating": self.viol / self.live, "live": self.live}
        detail = None
        if self.detail and self.rows:
            detail = {k: np.concatenate([row[k] for row in self.rows]) for k in self.rows[0]}
        return RunResult(variant, scheme, seed, metrics, {m: np.asarray(v) for m, v in self.series.items()}, cells,
                         detail, seconds, int(live))


def run_one(variant: str, scenario: Scenario, scheme: str, seed: int, periods: int, shards: int,
            model: dict | None, detail: bool, progress: Any = None) -> RunResult:
    """Run one variant's population for ``periods`` periods under ``scheme`` (in this process)."""
    from slicing.runtime.population import Population

    t0 = time.perf_counter()
    sc = scenario.model_copy(update={"seed": seed})
    pop = Population(sc, shards=min(shards, sc.topology.sites), scheme=scheme,
                     model=model if scheme == "idla" else None, in_process=True)
    try:
        slice_ids = np.array([s.id for s in sc.slices], dtype=np.int64)
        acc = _Accumulator(np.arange(sc.cells, dtype=np.int64), slice_ids, detail)
        for t in range(periods):
            out = pop.run_period(kpis=True)
            acc.add(t, out["kpis"])
            if progress is not None and (t % 4 == 3 or t == periods - 1):
                progress.add.remote(variant, 4 if t % 4 == 3 else (t % 4) + 1)
    finally:
        pop.shutdown()
    return acc.result(variant, scheme, seed, time.perf_counter() - t0)


def train_study_estimator(study: LoadedStudy, log: Log) -> dict:
    """Scheme idla's estimator as a payload: loaded from ``estimator.path``, else trained now on a small copy of
    the base scenario (``estimator.sites`` sites, every catalogue slice active, exploring policy)."""
    from slicing.models.qos_estimator import estimator_payload, load_estimator
    from slicing.models.qos_training import train_estimator
    from slicing.optim.rollout import collect

    path = study.estimator_path()
    if path is not None:
        model = load_estimator(path)
        log(f"estimator: {path}")
        return estimator_payload(model)
    spec, base = study.study.estimator, study.scenarios[BASE]
    sc = base.model_copy(update={
        "topology": base.topology.model_copy(update={"sites": spec.sites}), "steps": spec.periods,
        "initial_slices": tuple(s.id for s in base.slices), "schedule": (), "events": (),
        "estimator": base.estimator.model_copy(update={"epochs": spec.epochs})})
    sc = Scenario.model_validate(sc.model_dump())
    t0 = time.perf_counter()
    samples = collect(sc, sc.steps, 0.5, sc.estimator.augment, sc.seed)
    model, rep = train_estimator(samples.features(), samples.targets(), sc.estimator, seed=sc.seed)
    log(f"estimator: trained on {spec.sites} sites x {spec.periods} periods ({rep.samples} samples, held-out MAE "
        f"{rep.mae_test:.4f}, {time.perf_counter() - t0:.1f} s)")
    return estimator_payload(model)


def _progress_actor():
    import ray

    @ray.remote(num_cpus=0)
    class StudyProgress:
        def __init__(self) -> None:
            self.done: dict[str, int] = {}

        def add(self, variant: str, periods: int) -> None:
            self.done[variant] = self.done.get(variant, 0) + periods

        def get(self) -> dict[str, int]:
            return dict(self.done)

    return StudyProgress.remote()


def run_study(study: LoadedStudy, on_progress: Callable[[dict[str, int]], None] | None = None,
              log: Log = print) -> list[RunResult]:
    """Every (variant, scheme, seed) of ``study`` as a Ray task; Ray must be initialised. ``on_progress`` gets
    {variant: periods done} about twice a second."""
    import ray

    s = study.study
    model_ref = ray.put(train_study_estimator(study, log)) if "idla" in s.schemes else None
    detail = s.detail == "cells" or (s.detail == "auto" and study.cells * s.periods <= DETAIL_MAX_CELL_PERIODS)
    opts: dict[str, Any] = {"num_cpus": s.cpus_per_run, "max_retries": 2}
    if s.memory_mb_per_run:
        opts["memory"] = s.memory_mb_per_run * 1024 * 1024
    if s.resources:
        opts["resources"] = dict(s.resources)
    _check_resources(opts, log)
    task = ray.remote(run_one).options(**opts)
    progress = _progress_actor()
    pending = [task.remote(name, sc, scheme, seed, s.periods, s.shards, model_ref if scheme == "idla" else None, detail,
                           progress)
               for name, sc in study.scenarios.items() for scheme in s.schemes for seed in s.seeds]
    results: list[RunResult] = []
    try:
        while pending:
            ready, pending = ray.wait(pending, num_returns=len(pending), timeout=0.5)
            results += ray.get(ready)
            if on_progress is not None:
                on_progress(ray.get(progress.get.remote()))
    finally:
        ray.kill(progress)
    order = {(n, sch, sd): i for i, (n, sch, sd) in enumerate(
        (n, sch, sd) for n in study.names for sch in s.schemes for sd in s.seeds)}
    return sorted(results, key=lambda r: order[(r.variant, r.scheme, r.seed)])


def _check_resources(opts: dict[str, Any], log: Log) -> None:
    """Warn when no node has what a run asks for: the runs then wait for an autoscaler to add such a node."""
    import ray

    have = ray.cluster_resources()
    want = {"CPU": opts["num_cpus"], "memory": opts.get("memory", 0), **opts.get("resources", {})}
    missing = [k for k, v in want.items() if v and have.get(k, 0) < v]
    if missing:
        log(f"waiting for resources: a run asks for {want}, the cluster has "
            f"{ {k: have.get(k, 0) for k in want} }; the runs start when an autoscaler adds a node with "
            f"{', '.join(missing)} (Ctrl-C to stop)")


def summarise(study: LoadedStudy, results: list[RunResult]) -> dict[str, Any]:
    """Per variant and scheme, each metric and its change vs the base over the seeds.

    Returns ``{"variants": {name: {metric: mean, "delta_vs_base": {metric: mean}, "by_scheme": {scheme: {metric:
    {"mean", "min", "max"}, "delta_vs_base": {metric: {"mean", "min", "max"}}}}}}}``; the top-level figures of a
    variant are its first scheme's. A delta is taken per seed (the same traffic realisation in the variant and the
    base), then summarised over the seeds.
    """
    s = study.study
    runs = {(r.variant, r.scheme, r.seed): r for r in results}
    out: dict[str, Any] = {}
    for name in study.names:
        by_scheme: dict[str, Any] = {}
        for scheme in s.schemes:
            vals = {m: np.array([runs[(name, scheme, sd)].metrics[m] for sd in s.seeds]) for m in METRICS}
            base = {m: np.array([runs[(BASE, scheme, sd)].metrics[m] for sd in s.seeds]) for m in METRICS}
            by_scheme[scheme] = {m: _spread(vals[m]) for m in METRICS}
            by_scheme[scheme]["delta_vs_base"] = {m: _spread(vals[m] - base[m]) for m in METRICS}
        first = by_scheme[s.schemes[0]]
        out[name] = {m: first[m]["mean"] for m in METRICS}
        out[name]["delta_vs_base"] = {m: first["delta_vs_base"][m]["mean"] for m in METRICS}
        out[name]["by_scheme"] = by_scheme
    return {"variants": out}


def _spread(v: np.ndarray) -> dict[str, float]:
    return {"mean": round(float(np.mean(v)), 5), "min": round(float(np.min(v)), 5), "max": round(float(np.max(v)), 5)}


def write_results(out: Path, results: list[RunResult]) -> dict[str, Path]:
    """runs.parquet (one row per run), series.parquet (per period), cells.parquet (per cell over the horizon) and,
    when runs carry detail, kpis.parquet (per period, cell and active slice)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out.mkdir(parents=True, exist_ok=True)
    key = ("variant", "scheme", "seed")
    runs = pa.table({**{k: [getattr(r, k) for r in results] for k in key},
                     **{m: [r.metrics[m] for r in results] for m in METRICS},
                     "seconds": [r.seconds for r in results], "cell_periods": [r.cell_periods for r in results]})
    paths = {"runs": out / "runs.parquet", "series": out / "series.parquet", "cells": out / "cells.parquet"}
    pq.write_table(runs, paths["runs"])

    def stacked(part: Callable[[RunResult], dict[str, np.ndarray] | None], extra: dict[str, Any] | None = None):
        tables = []
        for r in results:
            cols = part(r)
            if cols is None:
                continue
            n = len(next(iter(cols.values())))
            tables.append(pa.table({"variant": pa.array([r.variant] * n).dictionary_encode(),
                                    "scheme": pa.array([r.scheme] * n).dictionary_encode(),
                                    "seed": np.full(n, r.seed, dtype=np.int32), **cols}))
        return pa.concat_tables(tables) if tables else None

    pq.write_table(stacked(lambda r: {"period": np.arange(len(r.series["p_satisfied"]), dtype=np.int32),
                                      **r.series}), paths["series"])
    pq.write_table(stacked(lambda r: r.cells), paths["cells"])
    kpis = stacked(lambda r: r.detail)
    if kpis is not None:
        paths["kpis"] = out / "kpis.parquet"
        pq.write_table(kpis, paths["kpis"])
    return paths
