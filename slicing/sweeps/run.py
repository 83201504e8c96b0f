"""Run a sweep with Ray Tune (``Tuner`` + ``TuneConfig`` + ``RunConfig(storage_path=...)``) and collect its trials."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from slicing.sweeps.spec import Sweep, SweepFileError, decode, sweep_scenario, to_tune_space

Log = Callable[[str], None]


# Reported metrics shown beside the optimised one in the trials table.
EXTRA_METRICS = {"estimator": ("epoch", "train_s"), "idla": ("allocate_s",), "sac": ("iteration", "train_s")}


class SweepFailed(RuntimeError):
    """No trial of the sweep reported its metric (every trial errored)."""


@dataclass
class TrialRow:
    trial_id: str
    status: str
    config: dict[str, Any]
    metric: float | None
    reports: int
    error: str | None = None
    extras: dict[str, float] = field(default_factory=dict)  # EXTRA_METRICS of the target, last report


@dataclass
class SweepResult:
    name: str
    metric: str
    mode: str
    best_config: dict[str, Any]
    best_metric: float
    trials: list[TrialRow] = field(default_factory=list)
    best_config_path: Path | None = None
    experiment_path: str = ""

    def summary(self) -> dict[str, Any]:
        return {"best_config": self.best_config, "best_metric": self.best_metric, "trials": len(self.trials)}


def _searcher(sweep: Sweep) -> Any:
    if sweep.search == "random":
        from ray.tune.search.basic_variant import BasicVariantGenerator

        return BasicVariantGenerator(random_state=sweep.seed)
    try:
        import optuna
    except ImportError:
        raise SweepFileError("search: 'optuna' needs the optuna package: `.venv/bin/pip install optuna` "
                             "(or use search: random)") from None
    from ray.tune.search.optuna import OptunaSearch

    return OptunaSearch(sampler=optuna.samplers.TPESampler(seed=sweep.seed))


def _scheduler(sweep: Sweep) -> Any:
    asha = sweep.asha
    if asha is None:
        return None
    from ray.tune.schedulers import ASHAScheduler

    return ASHAScheduler(time_attr="training_iteration", max_t=asha.max_t, grace_period=asha.grace_period,
                         reduction_factor=asha.reduction_factor)


def _progress_callback(on_trial_done: Callable[[int], None] | None) -> list[Any]:
    if on_trial_done is None:
        return []
    from ray.tune import Callback

    class TrialsDone(Callback):
        """Counts finished trials for the progress bar (driver side). Tune pickles its run config with the
        experiment state, so the (unpicklable) bar callback is kept out of the class and out of the pickle."""

        def __init__(self, fn: Callable[[int], None] | None) -> None:
            self.done = 0
            self.fn = fn

        def __getstate__(self) -> dict[str, Any]:
            return {"done": self.done, "fn": None}

        def _bump(self) -> None:
            self.done += 1
            if self.fn is not None:
                self.fn(self.done)

        def on_trial_complete(self, iteration, trials, trial, **info):
            self._bump()

        def on_trial_error(self, iteration, trials, trial, **info):
            self._bump()

    return [TrialsDone(on_trial_done)]


def run_sweep(sweep: Sweep, log: Log = print, on_trial_done: Callable[[int], None] | None = None) -> SweepResult:
    """Build the shared data, run the trials on the running Ray, write ``best_config.yaml``; return the trials."""
    import os

    from ray import tune

    # Tune's newer console output prints its own experiment box and tables to stdout even at verbose=0; the
    # classic reporter at verbose=0 prints nothing, so stdout keeps only our table and the --json line.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    from slicing.sweeps.trainables import build

    sc = sweep_scenario(sweep)
    trainable = build(sweep, sc, log)
    trainable = tune.with_resources(trainable, {"cpu": sweep.resources_per_trial.cpu})
    storage = Path(sweep.storage_path).resolve()
    storage.mkdir(parents=True, exist_ok=True)
    metric, mode = sweep.metric_name, sweep.metric_mode
    tuner = tune.Tuner(
        trainable,
        param_space=to_tune_space(sweep),
        tune_config=tune.TuneConfig(metric=metric, mode=mode, num_samples=sweep.num_samples,
                                    search_alg=_searcher(sweep), scheduler=_scheduler(sweep)),
        run_config=tune.RunConfig(name=sweep.name, storage_path=str(storage), verbose=0,
                                  callbacks=_progress_callback(on_trial_done)),
    )
    grid = tuner.fit()

    rows: list[TrialRow] = []
    for res in grid:
        m = res.metrics or {}
        value = m.get(metric)
        value = float(value) if value is not None and math.isfinite(float(value)) else None
        error = None
        if res.error is not None:
            text = str(res.error).strip()
            error = text.splitlines()[-1][:200] if text else type(res.error).__name__
        trial_id = str(m.get("trial_id") or (res.path.rsplit("/", 1)[-1] if res.path else "?"))
        rows.append(TrialRow(trial_id=trial_id.rsplit("_", 1)[-1], status="error" if error else "ok",
                             config=decode(sweep, res.config), metric=value,
                             reports=int(m.get("training_iteration", 0)), error=error,
                             extras={k: float(m[k]) for k in EXTRA_METRICS[sweep.target] if m.get(k) is not None}))
    longest = max((r.reports for r in rows), default=0)
    if sweep.asha is not None:  # ASHA ended these before the longest trial's length
        for r in rows:
            if r.status == "ok" and r.reports < longest:
                r.status = "stopped"
    scored = [r for r in rows if r.metric is not None]
    if not scored:
        first = next((r.error for r in rows if r.error), "no trial reported the metric")
        raise SweepFailed(f"sweep {sweep.name}: no trial reported a finite {metric!r} ({first})")
    best = grid.get_best_result(metric=metric, mode=mode, scope="last")
    best_config = decode(sweep, best.config)
    best_metric = float(best.metrics[metric])
    rows.sort(key=lambda r: (r.metric is None, (r.metric or 0.0) * (1 if mode == "min" else -1)))
    exp_dir = storage / sweep.name
    exp_dir.mkdir(parents=True, exist_ok=True)
    path = exp_dir / "best_config.yaml"
    if sweep.target == "sac":
        how = "# SacParams of slicing.sweeps.spec (lr for actor, critic and alpha; gamma; tau; hidden; batch)\n"
    else:
        sets = " ".join(f"--set {sweep.target}.{k}={_flow(v)}" for k, v in best_config.items())
        how = f"# apply to a scenario with: {sets}\n"
    path.write_text(f"# best of {len(rows)} trials of sweep {sweep.name!r} ({sweep.target}): {metric} = "
                    f"{best_metric:.6g} ({mode})\n{how}"
                    + yaml.safe_dump(best_config, sort_keys=True, default_flow_style=False))
    return SweepResult(name=sweep.name, metric=metric, mode=mode, best_config=best_config, best_metric=best_metric,
                       trials=rows, best_config_path=path, experiment_path=str(exp_dir))


def _flow(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip().replace(" ", "")
