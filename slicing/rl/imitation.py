"""Imitation learning with RLlib (paper 003, section V-C): record the baseline, behaviour-clone it, warm-start RL.

The paper offline-trains the DRL agent "to imitate the behavior of the baseline policy by using the behavior
cloning method ... by minimizing the action differences between the DRL policy and the baseline policy under
different states", and uses the cloned agent as "the start point for the online learning phase" (its Fig. 4 (d)).
Here:

1. **Record.** ``CellSlicingEnv`` is stepped for ``days`` episodes under the traffic-proportional baseline
   (``env.baseline_shares()``: shares proportional to each slice's offered traffic of the period being allocated).
   Its action is the normalised logit vector an RLModule would emit under ``normalize_actions=True``:

       a = shares_to_action(x_baseline, mask) / ACTION_LIMIT   in [-1, 1]^S

   (RLlib 2.60's env runner stores the module's action in the episode and sends ``unsquash_action(a)`` =
   ``ACTION_LIMIT * a`` to the env; ``action_to_shares(ACTION_LIMIT * a) = x_baseline`` up to the 1e-3 floor.)
   Each cell's trajectory in an episode is one single-agent episode (RLlib's BC/MARWIL read single-agent data only).
2. **Clone.** RLlib's BC (``BCConfig``, MARWIL with beta = 0) reads the Parquet through Ray Data and maximises
   the log-likelihood of the recorded action, L_BC = -E[log pi(a | o)], i.e. minimises the action difference
   (for a Gaussian policy, a variance-weighted squared error plus a log-variance term). BC uses PPO's default
   RLModule class (``DefaultPPOTorchRLModule``) with the RL agent's ``fcnet_hiddens``, so its state dict has
   exactly PPO's keys: the shared trunk ``encoder.encoder.*`` (``vf_share_layers``), ``pi.*`` and ``vf.*``.
   ``evaluate_clone`` then rolls the clone's deterministic action on the recorded days: its reward and its mean
   total-variation gap to the baseline's shares, 1/2 sum_s |x_clone - x_baseline| (the paper's "similar resource
   usage as the baseline policy").
3. **Warm-start.** ``slicing.rl.train.build_config`` builds the online algorithm (one shared module
   ``group_0``); BC's trunk and ``pi`` head are copied into the learner's module (``vf`` keeps PPO's own init)
   and synced to the env runner. "scratch" is the same config and seed without the copy.
   SAC: its policy is a tanh-squashed Gaussian, a = tanh(u); BC for SAC therefore clones u = atanh(a) (actions
   clipped to +-0.995 first) into SAC's ``pi_encoder``/``pi`` (same layer shapes), so tanh(mean) reproduces a;
   the Q networks start untrained.
4. **Measure.** Per training iteration, the mean sampled reward per agent-period (a callback sums the rewards of
   every sampled agent step; RLlib's ``episode_return_mean`` is a 100-episode running mean, which would blur the
   early iterations). "early reward" = mean over the first ``early`` iterations. For PPO one iteration samples
   one whole episode of every cell (``train_batch`` = cells * episode_len), so iterations are comparable days.

Parquet schema (RLlib 2.60 ``OfflinePreLearner`` default ``SCHEMA``; one row per agent transition, ordered by
(episode, t, cell); columns not in that schema would be read as extra model outputs, so there are none; RLlib's
default reader turns each row into a one-step ``SingleAgentEpisode`` carrying ``eps_id``, which is all BC needs):

    eps_id       string          "<episode>-<cell id>"  one single-agent episode per cell and recorded day
    agent_id     string          "cell_<id>"            (informational; RLlib reads single-agent episodes)
    t            int32           period within the episode, 0..episode_len-1
    obs          list<float32>   [5 S] observation before the action
    actions      list<float32>   [S] normalised action in [-1, 1] (see 1.)
    rewards      float32         the env's reward of that agent and period
    new_obs      list<float32>   [5 S] observation after the action
    terminateds  bool            always False (episodes are time limits)
    truncateds   bool            True on the last period of the episode

The driver (``run_imitation_experiment``, results to expect, deviations) is ``slicing.experiments.imitation``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from slicing.config import Scenario
from slicing.data.features import ACTION_LIMIT, action_to_shares, shares_to_action
from slicing.rl.env import CellSlicingEnv, EnvConfig
from slicing.rl.learner import load_weights, module_state
from slicing.rl.settings import ImitationSettings
from slicing.rl.train import (
    build_config,
    iteration_reward,
    module_id,
    region_cells,
    require_ray,
    sampled_reward_callback,
)

COLUMNS = ("eps_id", "agent_id", "t", "obs", "actions", "rewards", "new_obs", "terminateds", "truncateds")
SAC_CLIP = 0.995  # |a| bound before atanh for SAC's squashed policy


# ------------------------------------------------------------------------------------------------- 1. record
def _rollouts(scenario: Scenario, s: ImitationSettings, policy: Callable[[np.ndarray], np.ndarray] | None = None):
    """Step ``CellSlicingEnv`` for ``s.days`` seeded episodes; yields per period a dict of [N, ...] arrays:
    day, t, obs, logits (env action), baseline_shares, shares, rewards, new_obs, truncated. ``policy`` maps
    obs [N, 5S] -> logits [N, S]; None = the traffic-proportional baseline."""
    cells = region_cells(scenario, region=s.cells)
    env = CellSlicingEnv(EnvConfig(scenario=scenario, cell_ids=cells.tolist(), seed=s.seed, reward=s.reward,
                                   episode_len=s.episode_len))
    agents = env.possible_agents
    for day in range(s.days):
        obs_d, _ = env.reset(seed=s.seed * 100_003 + day)  # the same days for the recording and the clone
        obs = np.stack([obs_d[a] for a in agents])  # [N, 5S]
        for t in range(s.episode_len):
            base, mask = env.baseline_shares(), env.region_mask()  # [N, S]
            logits = shares_to_action(base, mask) if policy is None else policy(obs)  # [N, S] in [-5, 5]
            shares = action_to_shares(logits, mask)  # what the env allocates for this action
            new_d, rew, _, trunc, _ = env.step({a: logits[i] for i, a in enumerate(agents)})
            new_obs = np.stack([new_d[a] for a in agents])
            yield {"day": day, "t": t, "cells": cells, "obs": obs, "logits": logits, "baseline_shares": base,
                   "shares": shares, "rewards": np.array([rew[a] for a in agents]), "new_obs": new_obs,
                   "truncated": bool(trunc["__all__"])}
            obs = new_obs


def record_baseline(scenario: Scenario, s: ImitationSettings, path: Path) -> dict[str, Any]:
    """Roll the traffic-proportional baseline for ``s.days`` episodes and write the Parquet (module docstring)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    steps = list(_rollouts(scenario, s))
    n = len(steps[0]["cells"])

    def stack(key: str) -> np.ndarray:
        return np.concatenate([st[key] for st in steps]).astype(np.float32)  # [rows, ...], rows = (day, t, cell)

    def vectors(arr: np.ndarray) -> pa.Array:
        return pa.FixedSizeListArray.from_arrays(pa.array(arr.reshape(-1)), arr.shape[1]).cast(pa.list_(pa.float32()))

    table = pa.table({
        "eps_id": pa.array([f"{st['day']}-{c}" for st in steps for c in st["cells"]], pa.string()),
        "agent_id": pa.array([f"cell_{c}" for st in steps for c in st["cells"]], pa.string()),
        "t": pa.array(np.repeat([st["t"] for st in steps], n), pa.int32()),
        "obs": vectors(stack("obs")),
        "actions": vectors(stack("logits") / ACTION_LIMIT),
        "rewards": pa.array(stack("rewards"), pa.float32()),
        "new_obs": vectors(stack("new_obs")),
        "terminateds": pa.array(np.zeros(len(steps) * n, dtype=bool)),  # episodes end by time limit only
        "truncateds": pa.array(np.repeat([st["truncated"] for st in steps], n)),
    })
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return {"path": str(path), "rows": table.num_rows, "episodes": s.days * n,
            "baseline_reward": float(np.mean(stack("rewards")))}


def evaluate_clone(scenario: Scenario, s: ImitationSettings, bc_state: dict[str, Any]) -> dict[str, float]:
    """Run BC's deterministic action (PPO: the Gaussian mean; SAC: tanh of it) on the recorded days: its mean reward
    per agent-period and the mean absolute difference of its shares from the baseline's ("resource usage")."""
    import torch
    from ray.rllib.core.columns import Columns

    module = bc_module_spec(scenario, s).build()
    module.load_state_dict({k: torch.as_tensor(v) for k, v in bc_state.items()})
    module.eval()
    n_slices = len(scenario.slices)

    def policy(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = module.forward_inference({Columns.OBS: torch.as_tensor(obs, dtype=torch.float32)})
        mean = out[Columns.ACTION_DIST_INPUTS][:, :n_slices].numpy().astype(np.float64)  # [N, S]
        a = np.tanh(mean) if s.algo == "sac" else mean
        return np.clip(a, -1.0, 1.0) * ACTION_LIMIT

    rewards, gaps = [], []
    for st in _rollouts(scenario, s, policy):
        rewards.append(st["rewards"].mean())
        gaps.append(np.abs(st["shares"] - st["baseline_shares"]).sum(axis=1).mean() / 2)  # total variation
    return {"clone_reward": float(np.mean(rewards)), "clone_share_gap": float(np.mean(gaps))}


# -------------------------------------------------------------------------------------------------- 2. clone
def _spaces(scenario: Scenario):
    import gymnasium as gym

    from slicing.data.features import obs_dim

    s = len(scenario.slices)
    return (gym.spaces.Box(0.0, 10.0, (obs_dim(s),), np.float32),
            gym.spaces.Box(-1.0, 1.0, (s,), np.float32))  # the normalised actions the module emits


def bc_module_spec(scenario: Scenario, s: ImitationSettings):
    """BC's RLModuleSpec: PPO's default torch module (policy keys identical to PPO's) with the RL agent's MLP."""
    from ray.rllib.algorithms.ppo.ppo_catalog import PPOCatalog
    from ray.rllib.algorithms.ppo.torch.default_ppo_torch_rl_module import DefaultPPOTorchRLModule
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    obs_space, act_space = _spaces(scenario)
    return RLModuleSpec(module_class=DefaultPPOTorchRLModule, catalog_class=PPOCatalog, observation_space=obs_space,
                        action_space=act_space, model_config=_model_config(s))


def _model_config(s: ImitationSettings):
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

    return DefaultModelConfig(fcnet_hiddens=list(s.hidden), fcnet_activation="relu")  # as slicing.rl.train


def bc_config(scenario: Scenario, data: Path | str, s: ImitationSettings):
    """RLlib ``BCConfig`` reading ``data`` (single agent, local learner) with ``bc_module_spec``."""
    from ray.rllib.algorithms.bc import BCConfig

    obs_space, act_space = _spaces(scenario)
    return (
        BCConfig()
        .environment(observation_space=obs_space, action_space=act_space)
        .framework("torch")
        .offline_data(input_=[str(Path(data).resolve())], dataset_num_iters_per_learner=1,
                      map_batches_kwargs={"concurrency": 1, "num_cpus": 1},
                      iter_batches_kwargs={"prefetch_batches": 1})
        .learners(num_learners=0)
        .training(train_batch_size_per_learner=s.bc_batch, lr=s.bc_lr)
        .rl_module(rl_module_spec=bc_module_spec(scenario, s), model_config=_model_config(s))
        .reporting(min_time_s_per_iteration=0)
        .debugging(seed=s.seed, log_level="ERROR")
    )


def train_bc(scenario: Scenario, data: Path | str, s: ImitationSettings,
             progress: Callable[[int, float], None] | None = None) -> tuple[dict[str, Any], list[float]]:
    """Behaviour-clone ``data`` for ``s.bc_iterations`` iterations; returns (module state dict, BC loss per
    iteration). For ``s.algo == "sac"`` the recorded actions are first mapped to atanh(a) (module docstring)."""
    from ray.rllib.core.rl_module.rl_module import DEFAULT_MODULE_ID
    from ray.rllib.utils.metrics import LEARNER_RESULTS

    require_ray()
    if s.algo == "sac":
        data = _atanh_copy(Path(data))
    with _quiet_ray_data():
        algo = bc_config(scenario, data, s).build_algo()
    try:
        losses = []
        for i in range(s.bc_iterations):
            with _quiet_ray_data():
                result = algo.train()
            losses.append(float(result[LEARNER_RESULTS][DEFAULT_MODULE_ID]["policy_loss"]))
            if progress:
                progress(i + 1, losses[-1])
        state = module_state(algo, DEFAULT_MODULE_ID)
    finally:
        algo.stop()
    return state, losses


@contextlib.contextmanager
def _quiet_ray_data():
    """Ray Data's progress reporting off (it logs a block per dataset execution when stdout is not a terminal)."""
    import ray.data

    ctx = ray.data.DataContext.get_current()
    logger = logging.getLogger("ray.data")
    saved = ctx.enable_progress_bars, logger.level
    ctx.enable_progress_bars = False
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        ctx.enable_progress_bars = saved[0]
        logger.setLevel(saved[1])


def _atanh_copy(path: Path) -> Path:
    """A copy of the recording whose actions are atanh(clip(a)): SAC's pre-squash Gaussian targets."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    flat = pc.list_flatten(table["actions"]).to_numpy().astype(np.float64)
    u = np.arctanh(np.clip(flat, -SAC_CLIP, SAC_CLIP)).astype(np.float32)
    offsets = table["actions"].combine_chunks().offsets
    table = table.set_column(table.schema.get_field_index("actions"), "actions",
                             pa.ListArray.from_arrays(offsets, pa.array(u, pa.float32())))
    out = path.with_name(path.stem + "_atanh.parquet")
    pq.write_table(table, out)
    return out


# ---------------------------------------------------------------------------------------------- 3. warm start
def policy_key_map(algo_name: str, bc_keys: list[str], target_keys: list[str]) -> dict[str, str]:
    """BC state-dict key -> target module key, for the policy part only (PPO: identical keys minus the value head;
    SAC: BC's ``encoder.encoder.*`` -> ``pi_encoder.*``, ``pi.*`` -> ``pi.*``). BC's encoder is the shared
    actor-critic trunk (``vf_share_layers``); its ``vf.*`` head is never copied."""
    policy = [k for k in bc_keys if k.startswith(("encoder.", "pi."))]
    if algo_name == "ppo":
        mapping = {k: k for k in policy}
    else:
        trunk = "encoder.encoder."
        mapping = {k: ("pi_encoder." + k[len(trunk):] if k.startswith(trunk) else k) for k in policy}
    missing = sorted(v for v in mapping.values() if v not in target_keys)
    if missing:
        raise ValueError(f"warm start: the {algo_name} module has no parameter(s) {missing[:4]}; BC's and the RL "
                         "agent's networks must match (same fcnet_hiddens)")
    return mapping


def warm_start(algo, algo_name: str, bc_state: dict[str, Any], mid: str = "group_0") -> list[str]:
    """Copy BC's policy weights into the learner's module ``mid`` and sync them to the env runner(s); returns the
    target keys written."""
    mapping = policy_key_map(algo_name, list(bc_state), list(module_state(algo, mid)))
    load_weights(algo, bc_state, mapping, mid, "warm start", "use the same fcnet_hiddens")
    return sorted(mapping.values())


# ------------------------------------------------------------------------------------------------ 4. measure
def learning_curve(scenario: Scenario, s: ImitationSettings, bc_state: dict[str, Any] | None,
                   progress: Callable[[int], None] | None = None) -> list[float | None]:
    """Train ``s.iterations`` iterations of ``s.algo`` (warm-started from ``bc_state`` unless None); returns the
    mean sampled reward per agent-period of each iteration."""
    require_ray()
    config, _ = build_config(scenario, s.train_settings(len(region_cells(scenario, region=s.cells))))
    algo = config.callbacks(sampled_reward_callback()).build_algo()
    try:
        if bc_state is not None:
            warm_start(algo, s.algo, bc_state, module_id(0))
        curve = []
        for i in range(s.iterations):
            curve.append(iteration_reward(algo.train()))
            if progress:
                progress(i + 1)
    finally:
        algo.stop()
    return curve
