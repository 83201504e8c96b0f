"""Function trainables of the sweeps, and the data they share (built once in the driver, sent through the object
store with ``tune.with_parameters``).

- ``estimator``: KPI samples of the sweep's scenario are collected once. Each trial trains the QoS estimator with
  its sampled ``EstimatorConfig`` fields and reports ``mae`` (held-out, the same 25 % split in every trial because
  the split depends only on the seed) every ``trial.epochs_per_report`` epochs, so ASHA can stop it early.
- ``idla``: one estimator is trained once on the scenario's samples, and a population of ``trial.cells`` cells is
  simulated for H + 1 periods under the traffic baseline; the DP oracle's utility on the 0.05 grid is computed
  once. Each trial runs ``allocate_idla`` with its sampled ``IdlaConfig`` fields and reports
  ``utility_vs_grid_oracle`` (estimated utility of IDLA over the oracle's, both by the network), ``allocate_s``
  and ``mean_utility``.
- ``sac``: RLlib SAC through ``slicing.rl.train.build_config`` (see ``sac_trainable``) on a region of the
  sweep's scenario, reporting the mean reward per agent and period after every training iteration.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from slicing.config import Scenario
from slicing.sweeps.spec import Sweep, SweepFileError, apply_params, decode

Log = Callable[[str], None]


@dataclass(frozen=True)
class EstimatorData:
    features: np.ndarray  # [n, 13] float32
    targets: np.ndarray  # [n] float32


@dataclass(frozen=True)
class IdlaData:
    model: Any  # QosEstimator (trained once, shared by every trial)
    z: np.ndarray  # [N, S, 12]
    mask: np.ndarray  # [N, S] bool
    warm: np.ndarray  # [N, S] last shares (the warm start x*(t-1))
    cell_ids: np.ndarray  # [N]
    period: int
    oracle_utility: float  # sum over cells of the 0.05-grid optimum's estimated utility


def _samples(sc: Scenario, log: Log):
    from slicing.optim.rollout import collect

    t0 = time.perf_counter()
    samples = collect(sc, sc.steps, sc.evaluation.explore_epsilon, sc.estimator.augment, sc.seed)
    log(f"collected {len(samples)} samples of {sc.cells} cells x {sc.steps} periods "
        f"in {time.perf_counter() - t0:.1f} s")
    if len(samples) < 10:
        raise SweepFileError(f"scenario gives only {len(samples)} samples; raise steps or topology.sites")
    return samples


def estimator_data(sweep: Sweep, sc: Scenario, log: Log) -> EstimatorData:
    s = _samples(sc, log)
    return EstimatorData(features=s.features().astype(np.float32), targets=s.targets().astype(np.float32))


def idla_data(sweep: Sweep, sc: Scenario, log: Log) -> IdlaData:
    import torch

    from slicing.config import build_scenario
    from slicing.data.history import History
    from slicing.models.qos_training import train_estimator
    from slicing.optim.oracle import dp_oracle, grid_values
    from slicing.optim.rollout import rollout, traffic_policy
    from slicing.optim.utility import estimated_utility
    from slicing.sim.simulator import Simulator

    s = _samples(sc, log)
    model, rep = train_estimator(s.features(), s.targets(), sc.estimator, seed=sweep.seed)
    log(f"estimator: held-out MAE {rep.mae_test:.4f} on {rep.samples} samples, {rep.seconds:.1f} s")
    data = sc.model_dump(mode="json")
    data["topology"]["sites"] = math.ceil(sweep.trial.cells / 3)
    pop = build_scenario(data)
    sim = Simulator(pop)
    history = History(len(sim.cell_ids), sim.n_slices)
    shares = rollout(sim, history, traffic_policy, history.horizon + 1)  # [N, S] the last period's
    z = history.features(sim.throughput_req_mbps, sim.delay_req_ms)  # [N, S, 12]
    mask = np.asarray(sim.slice_mask(), dtype=bool)
    with torch.inference_mode():
        oracle_shares, _ = dp_oracle(grid_values(model, z, mask, points=sweep.trial.oracle_points), mask)
    u_oracle = float(estimated_utility(model, z, mask, oracle_shares).sum())
    log(f"population: {len(sim.cell_ids)} cells, period {sim.period}; 0.05-grid oracle utility {u_oracle:.2f}")
    return IdlaData(model=model, z=np.asarray(z), mask=mask, warm=np.asarray(shares), cell_ids=np.asarray(sim.cell_ids),
                    period=int(sim.period), oracle_utility=u_oracle)


def estimator_trainable(config: dict[str, Any], sweep: Sweep, base: dict[str, Any], data: EstimatorData) -> None:
    """One estimator trial: train with the sampled fields, report the held-out MAE per epoch chunk."""
    import torch
    from ray import tune

    from slicing.config import EstimatorConfig
    from slicing.models.qos_training import train_estimator

    torch.set_num_threads(sweep.trial.torch_threads)
    cfg = apply_params(sweep, EstimatorConfig.model_validate(base), decode(sweep, config))
    t0 = time.perf_counter()

    def report(epoch: int, mae: float) -> None:
        tune.report({"mae": mae, "epoch": epoch, "train_s": time.perf_counter() - t0})

    train_estimator(data.features, data.targets, cfg, seed=sweep.seed, held_out=report,
                    held_out_every=sweep.trial.epochs_per_report)


def idla_trainable(config: dict[str, Any], sweep: Sweep, base: dict[str, Any], data: IdlaData) -> None:
    """One IDLA trial: allocate the fixed population with the sampled fields, report the utility ratio."""
    import torch
    from ray import tune

    from slicing.config import IdlaConfig
    from slicing.optim.idla import allocate_idla
    from slicing.optim.utility import estimated_utility

    torch.set_num_threads(sweep.trial.torch_threads)
    cfg = apply_params(sweep, IdlaConfig.model_validate(base), decode(sweep, config))
    t0 = time.perf_counter()
    res = allocate_idla(data.model, data.z, data.mask, data.warm, cfg, sweep.seed, data.period, data.cell_ids)
    allocate_s = time.perf_counter() - t0
    u = float(estimated_utility(data.model, data.z, data.mask, res.shares).sum())
    tune.report({"utility_vs_grid_oracle": u / data.oracle_utility, "allocate_s": allocate_s,
                 "mean_utility": u / len(data.cell_ids), "iterations": int(res.iterations),
                 "max_share_sum": float(res.shares.sum(axis=1).max())})


def sac_trainable(config: dict[str, Any], sweep: Sweep, base: dict[str, Any], data: dict[str, Any]) -> None:
    """One SAC trial: RLlib SAC on the sweep's scenario (``slicing.rl.train.build_config``) with the sampled lr
    (actor, critic and alpha), gamma, tau, hidden sizes and batch; reports ``reward`` (mean reward per agent and
    period over the iteration's completed episodes) after every training iteration, up to ``trial.iterations``."""
    import torch
    from ray import tune
    from ray.rllib.utils.metrics import ENV_RUNNER_RESULTS, EPISODE_RETURN_MEAN

    from slicing.config import Scenario
    from slicing.rl.settings import TrainSettings
    from slicing.rl.train import build_config
    from slicing.sweeps.spec import SacParams

    torch.set_num_threads(sweep.trial.torch_threads)
    p = apply_params(sweep, SacParams.model_validate(base), decode(sweep, config))
    sc = Scenario.model_validate(data["scenario"])
    settings = TrainSettings(algo="sac", hidden=tuple(p.hidden), train_batch=p.train_batch_size,
                                      seed=sweep.seed, region=sweep.trial.region, episode_len=sweep.trial.episode_len,
                                      iterations=sweep.trial.iterations)
    algo_config, mapping = build_config(sc, settings)
    algo_config = algo_config.training(actor_lr=p.lr, critic_lr=p.lr, alpha_lr=p.lr, gamma=p.gamma, tau=p.tau)
    algo = algo_config.build_algo()
    per_agent_period = max(1, len(mapping) * sweep.trial.episode_len)
    last = float("nan")
    t0 = time.perf_counter()
    try:
        for i in range(sweep.trial.iterations):
            result = algo.train()
            ret = (result.get(ENV_RUNNER_RESULTS) or {}).get(EPISODE_RETURN_MEAN)
            if ret is not None and math.isfinite(float(ret)):
                last = float(ret) / per_agent_period
            tune.report({"reward": last, "iteration": i + 1, "train_s": time.perf_counter() - t0})
    finally:
        algo.stop()


def build(sweep: Sweep, sc: Scenario, log: Log) -> Callable[..., None]:
    """The trainable for ``sweep.target`` with its shared data bound through the object store."""
    from ray import tune

    if sweep.target == "sac":
        fn, data, base = sac_trainable, {"scenario": sc.model_dump(mode="json")}, {}
        return tune.with_parameters(fn, sweep=sweep, base=base, data=data)
    if sweep.target == "estimator":
        fn, data = estimator_trainable, estimator_data(sweep, sc, log)
        base = sc.estimator.model_dump()
    else:
        fn, data = idla_trainable, idla_data(sweep, sc, log)
        base = sc.idla.model_dump()
    return tune.with_parameters(fn, sweep=sweep, base=base, data=data)
