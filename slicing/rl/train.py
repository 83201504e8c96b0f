"""Train per-cell slicing policies with RLlib (new API stack): PPO, or SAC (twin-Q, standing in for TD3).

Policies per cell group: the region's cells (sorted ids, i.e. bands of geography) are cut into ``groups``
contiguous groups, one RLModule ``group_<g>`` each; ``groups=1`` is one fully shared policy. Steps are counted
per agent (``count_steps_by="agent_steps"``). Defaults fit a laptop: no remote env runners, small batches and
networks, ``min_time_s_per_iteration=0``.

The checkpoint is ``algo.save_to_path(out / "checkpoint")``; ``Algorithm.from_checkpoint`` restores it, and
``slicing.rl.inference.RlPolicy`` loads only its RLModules.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from slicing.config import Scenario
from slicing.rl.env import CellSlicingEnv, agent_id, region_cells
from slicing.rl.settings import TrainSettings

META_FILE = "slicing_rl.json"  # next to the checkpoint: groups, mapping, scenario, obs layout


def require_ray() -> None:
    """Library code in ``slicing.rl`` does not start Ray: the entry points do (``slicing.runtime.ray_util``)."""
    import ray

    if not ray.is_initialized():
        raise RuntimeError("Ray is not running: call slicing.runtime.ray_util.ensure_ray() (or local_ray()) first; "
                           "the CLI commands, experiment drivers and benchmarks do")


def group_of(n_cells: int, groups: int) -> np.ndarray:
    """[n_cells] group index of each (sorted) cell: ``groups`` contiguous, near-equal blocks."""
    if not 1 <= groups <= n_cells:
        raise ValueError(f"groups: need 1 <= groups <= {n_cells} (cells in the region), got {groups}")
    return (np.arange(n_cells) * groups) // n_cells


def module_id(g: int) -> str:
    return f"group_{g}"


def agent_to_module(cell_ids: np.ndarray, groups: int) -> dict[str, str]:
    g = group_of(len(cell_ids), groups)
    return {agent_id(c): module_id(int(k)) for c, k in zip(cell_ids, g, strict=True)}


def build_config(scenario: Scenario, s: TrainSettings, env: type[CellSlicingEnv] = CellSlicingEnv):
    """The RLlib AlgorithmConfig (PPO or SAC) for ``scenario`` and ``s``, stepping ``env`` (whose config model
    validates the env config here, before RLlib builds anything)."""
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig
    from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    cells = region_cells(scenario, s.cell_ids, region=s.region)
    mapping = agent_to_module(cells, s.groups)
    modules = sorted(set(mapping.values()), key=lambda m: int(m.split("_")[1]))
    given = {"scenario": scenario, "cell_ids": cells.tolist(), "seed": s.seed, "reward": s.reward,
             "episode_len": s.episode_len} | dict(s.env_config)
    dump = env.config_model.model_validate(given).model_dump(mode="json")  # RLlib passes env_config as a dict
    env_config = {k: v for k, v in dump.items() if k in given}
    if s.algo == "ppo":
        from ray.rllib.algorithms.ppo import PPOConfig

        batch = s.train_batch or max(256, len(cells) * 32)
        per_iter = 0  # one training step = one batch
        config = PPOConfig().training(train_batch_size_per_learner=batch, minibatch_size=min(128, batch),
                                      num_epochs=4, lr=3e-4, gamma=0.9)
    else:
        from ray.rllib.algorithms.sac import SACConfig

        batch = s.train_batch or 64
        per_iter = 4 * batch  # agent steps sampled per iteration (several small update steps)
        config = SACConfig().training(
            twin_q=True, train_batch_size_per_learner=batch, gamma=0.9, actor_lr=3e-4, critic_lr=3e-4,
            num_steps_sampled_before_learning_starts=batch, n_step=1,
            replay_buffer_config={"type": "MultiAgentEpisodeReplayBuffer", "capacity": 50_000},
        )
    mapping_fn = _MappingFn(mapping)
    if s.algo == "sac":
        config = config.env_runners(rollout_fragment_length=8)
    config = (
        config.environment(env, env_config=env_config, normalize_actions=True, clip_actions=False)
        .framework("torch")
        .env_runners(num_env_runners=s.num_env_runners, num_envs_per_env_runner=1)
        .multi_agent(policies=set(modules), policy_mapping_fn=mapping_fn, count_steps_by="agent_steps")
        .rl_module(rl_module_spec=MultiRLModuleSpec(rl_module_specs={m: RLModuleSpec() for m in modules}),
                   model_config=DefaultModelConfig(fcnet_hiddens=list(s.hidden), fcnet_activation="relu"))
        .reporting(min_time_s_per_iteration=0, min_sample_timesteps_per_iteration=per_iter)
        .debugging(seed=s.seed, log_level="ERROR")
    )
    return config, mapping


REWARD_SUM = "slicing_sampled_reward_sum"  # metrics keys of sampled_reward_callback
AGENT_STEPS = "slicing_sampled_agent_steps"


def sampled_reward_callback():
    """An RLlibCallback class logging the summed reward and the agent steps of every ``EnvRunner.sample()``.

    "sum" metrics are reset at each reduction, so a ``train()`` result holds that iteration's own totals;
    ``iteration_reward`` turns them into the mean reward per agent-period. (RLlib's ``episode_return_mean`` is a
    100-episode running mean, which blurs early iterations.)"""
    from ray.rllib.callbacks.callbacks import RLlibCallback

    class SampledReward(RLlibCallback):
        def on_sample_end(self, *, env_runner=None, metrics_logger=None, samples=None, **kwargs) -> None:
            total, steps = 0.0, 0
            for episode in samples or []:
                for agent_episode in episode.agent_episodes.values():
                    r = np.asarray(agent_episode.get_rewards(), dtype=np.float64)
                    total, steps = total + float(r.sum()), steps + len(r)
            metrics_logger.log_value(REWARD_SUM, total, reduce="sum")
            metrics_logger.log_value(AGENT_STEPS, steps, reduce="sum")

    return SampledReward


def iteration_reward(result: dict) -> float | None:
    """Mean sampled reward per agent-period of one ``algo.train()`` result (None if nothing was sampled)."""
    from ray.rllib.utils.metrics import ENV_RUNNER_RESULTS

    runners = result.get(ENV_RUNNER_RESULTS, {})
    steps = runners.get(AGENT_STEPS)
    if not steps:
        return None
    return float(runners[REWARD_SUM]) / float(steps)


class _MappingFn:
    """Picklable agent -> module mapping for ``policy_mapping_fn``."""

    def __init__(self, mapping: dict[str, str]) -> None:
        self.mapping = mapping

    def __call__(self, aid: str, episode: Any = None, **kwargs: Any) -> str:
        return self.mapping[aid]


def _metric(result: dict, *keys: str) -> Any:
    node: Any = result
    for k in keys:
        if not isinstance(node, dict) or k not in node:
            return None
        node = node[k]
    return node


def train(scenario: Scenario, s: TrainSettings, out: Path,
          progress: Callable[[int, dict], None] | None = None) -> dict[str, Any]:
    """Train ``s.iterations`` iterations, save the checkpoint under ``out``; returns the summary dict. Needs a
    running Ray (``slicing.runtime.ray_util.ensure_ray``)."""
    from ray.rllib.utils.metrics import (
        ENV_RUNNER_RESULTS,
        EPISODE_RETURN_MEAN,
        NUM_AGENT_STEPS_SAMPLED_LIFETIME,
        NUM_ENV_STEPS_SAMPLED_LIFETIME,
    )

    require_ray()
    config, mapping = build_config(scenario, s)
    algo = config.build_algo()
    try:
        result: dict = {}
        returns = []
        for i in range(s.iterations):
            result = algo.train()
            ret = _metric(result, ENV_RUNNER_RESULTS, EPISODE_RETURN_MEAN)
            if ret is not None and math.isfinite(ret):
                returns.append(ret)
            if progress:
                progress(i + 1, result)
        env_steps = _metric(result, ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED_LIFETIME)
        agent_steps = _metric(result, ENV_RUNNER_RESULTS, NUM_AGENT_STEPS_SAMPLED_LIFETIME)
        if isinstance(agent_steps, dict):  # per agent id
            agent_steps = sum(agent_steps.values())
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        ckpt = algo.save_to_path(str((out / "checkpoint").resolve()))
    finally:
        algo.stop()
    n_agents = len(mapping)
    # mean reward per agent and period, over the last iteration's completed episodes (None if none completed)
    mean_reward = float(returns[-1]) / (n_agents * s.episode_len) if returns else None
    meta = {"algo": s.algo, "groups": s.groups, "mapping": mapping, "settings": s.model_dump(mode="json"),
            "scenario": scenario.model_dump(mode="json"), "n_slices": len(scenario.slices)}
    Path(ckpt, META_FILE).write_text(json.dumps(meta))
    return {"iterations": s.iterations, "env_steps": int(env_steps or 0), "agent_steps": int(agent_steps or 0),
            "mean_reward": mean_reward, "checkpoint": str(ckpt)}
