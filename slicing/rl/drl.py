"""The IDLA paper's DRL baseline (section V-C), scheme ``drl`` of ``slicing evaluate``.

The paper compares IDLA with "a distributed TD3-based DRL approach ... which solves cell-wise optimal slicing
resource partitions regarding the reward defined by the minimum of network QoS among all slices", run online:

  H0  the agents explore and fill their replay buffers, no training;
  H1  online training, with H0's samples in the replay buffer;
  H2  a slice is added (idla.yaml: slice 3 at 60 %); the agents carry on with what they learned and must re-learn.

Here: RLlib SAC (twin-Q, off-policy; TD3 is not in RLlib 2.60) with one RLModule per cell by default
(``DrlConfig.groups``), on ``CellSlicingEnv`` in timeline mode over all the scenario's cells: one env step is one
O&M period of the same run, so the traffic is the realisation every other scheme sees (counter RNG). Every period
all cells act with the stochastic SAC policy (that is the exploration of H0 and the behaviour in H1/H2);
``num_steps_sampled_before_learning_starts`` is H0's agent steps, so no update happens before H1 and the replay
buffer then holds all of H0. From H1 on, every ``periods_per_update`` periods one SAC update runs on a batch of
``train_batch`` transitions per module. The observation carries the slice mask; when slice 3 appears in H2 its
logit, masked out until then, starts to matter.

Unlike the other schemes, ``drl`` does not start H1 from the shared H0 end state: its own agents were in control in
H0, as in the paper. Its H1/H2 metrics are computed on the same periods as everyone else's.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from slicing.config import Scenario
from slicing.rl.env import CellSlicingEnv, EnvConfig, PeriodRecord


def build_drl_config(scenario: Scenario, h0_end: int):
    """The RLlib SACConfig of the ``drl`` scheme and the agent -> module mapping."""
    from ray.rllib.algorithms.sac import SACConfig
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig
    from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    from slicing.rl.train import _MappingFn, agent_to_module

    d = scenario.drl
    cells = np.arange(scenario.cells, dtype=np.int64)
    groups = d.groups or len(cells)
    if groups > len(cells):
        raise ValueError(f"drl.groups: at most one policy per cell ({len(cells)} cells), got {groups}")
    mapping = agent_to_module(cells, groups)
    modules = sorted(set(mapping.values()), key=lambda m: int(m.split("_")[1]))
    env_config = EnvConfig(scenario=scenario, cell_ids=cells.tolist(), seed=scenario.seed, reward=d.reward,
                           episode_len=96, timeline=True, record=True).model_dump(mode="json")
    config = (
        SACConfig()
        .training(twin_q=True, train_batch_size_per_learner=d.train_batch, gamma=d.gamma, actor_lr=d.lr,
                  critic_lr=d.lr, alpha_lr=d.lr, initial_alpha=d.initial_alpha, n_step=1,
                  num_steps_sampled_before_learning_starts=max(h0_end - 1, 1) * len(cells),
                  replay_buffer_config={"type": "MultiAgentEpisodeReplayBuffer", "capacity": d.buffer})
        .environment(CellSlicingEnv, env_config=env_config, normalize_actions=True, clip_actions=False)
        .framework("torch")
        .env_runners(num_env_runners=0, num_envs_per_env_runner=1, rollout_fragment_length=d.periods_per_update)
        .multi_agent(policies=set(modules), policy_mapping_fn=_MappingFn(mapping), count_steps_by="agent_steps")
        .rl_module(rl_module_spec=MultiRLModuleSpec(rl_module_specs={m: RLModuleSpec() for m in modules}),
                   model_config=DefaultModelConfig(fcnet_hiddens=list(d.hidden), fcnet_activation="relu"))
        .reporting(min_time_s_per_iteration=0, min_sample_timesteps_per_iteration=24 * len(cells))
        .debugging(seed=scenario.seed, log_level="ERROR")
    )
    return config, mapping


def timeline_env(algo) -> CellSlicingEnv:
    """The ``CellSlicingEnv`` stepped by the algorithm's local env runner."""
    env = algo.env_runner.env
    inner = env.envs[0] if hasattr(env, "envs") else env
    return inner.unwrapped


def run_drl(scenario: Scenario, h0_end: int, progress: Callable[[str, int], None] | None = None,
            label: str = "drl") -> list[PeriodRecord]:
    """Run the ``drl`` scheme over the whole scenario; returns the per-period records of periods 0 .. steps - 1.

    ``progress(label, periods)`` is called as periods advance (H0 included).
    """
    from slicing.rl.train import require_ray
    from slicing.threads import single_torch_thread

    require_ray()
    config, _ = build_drl_config(scenario, h0_end)
    with single_torch_thread():  # the learner runs in this process: many small updates, 8x faster single-threaded
        return _run(config, scenario, progress, label)


def _run(config, scenario: Scenario, progress, label: str) -> list[PeriodRecord]:
    algo = config.build_algo()
    try:
        env = timeline_env(algo)
        done = 0
        while env.sim.period < scenario.steps:
            algo.train()
            now = min(env.sim.period, scenario.steps)
            if progress and now > done:
                progress(label, now - done)
            done = now
        return [rec for rec in env.records if rec.period < scenario.steps]
    finally:
        algo.stop()
