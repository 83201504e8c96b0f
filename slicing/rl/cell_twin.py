"""Paper 004's twin-enhanced loop on the multi-cell ``drl`` scheme (issue 11, item 7: beyond the paper).

Question: does a digital twin trained on H0's data shorten the ``drl`` scheme's convergence in H1?

- **Agent 1** is the ``drl`` scheme exactly (``slicing/rl/drl.py``: RLlib SAC, one module per cell, timeline mode
  on ``CellSlicingEnv``): its own stochastic policies explore H0, online SAC updates from H1 on.
- *Twin arm*: at H1's start and then every ``round_periods`` real periods, the twin
  (``slicing/models/cell_twin.py``) is recalibrated on every real transition so far (at H1's start: H0's, with 5x
  ``twin_updates``), **Agent 2** (a second SAC algorithm with the same modules) takes Agent 1's weights, trains for
  ``twin_periods`` periods in ``CellTwinEnv``, and Agent 1 becomes zeta theta1 + (1 - zeta) theta2 (eq. 8),
  learner and env runner alike. Agent 2 keeps its replay buffer and entropy weights across rounds.
- *Plain arm*: the ``drl`` scheme unchanged. Both arms see the same traffic (same scenario seed) and take the same
  real periods; only Agent 1 ever steps the real network.

``CellTwinEnv`` is a ``MultiAgentEnv`` with ``CellSlicingEnv``'s agents and spaces: an episode starts from the
observations of all cells in a random real period; each step maps the logits to shares with the same masked softmax,
asks the twin for every cell's next observation (plus its residual noise, mask carried over) and reward.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from ray.rllib.env.multi_agent_env import MultiAgentEnv

from slicing.config import Scenario
from slicing.data.features import ACTION_LIMIT, action_to_shares, obs_dim
from slicing.models.cell_twin import CellTransitions, CellTwin, CellTwinPayload, mask_block
from slicing.rl.env import PeriodRecord, agent_id, period_reward
from slicing.rl.settings import EnvConfig, TwinSettings, region_cells

OBS_HIGH = 10.0  # CellSlicingEnv's observation box


def cell_transitions(records: list[PeriodRecord], reward: str) -> CellTransitions:
    """The real transitions in a timeline env's records (consecutive periods, each with its observation)."""
    if len(records) < 2 or any(rec.obs is None for rec in records):
        raise ValueError("records: need at least two periods, each with its observation (EnvConfig.record=True)")
    obs = np.stack([rec.obs for rec in records], axis=1).astype(np.float64)  # [C, T+1, D]
    shares = np.stack([rec.share for rec in records[1:]], axis=1)  # [C, T, S]
    rew = np.stack([period_reward(rec.r, rec.mask, reward) for rec in records[1:]], axis=1)  # [C, T]
    return CellTransitions(obs[:, :-1], shares, rew, obs[:, 1:])


class CellTwinEnv(MultiAgentEnv):
    """The twin as an env with ``CellSlicingEnv``'s agents and spaces (module doc). ``set_twin`` installs a
    recalibrated twin; before that the world is constant with reward 0."""

    def __init__(self, config: EnvConfig | dict[str, Any] | None = None) -> None:
        super().__init__()
        cfg = config if isinstance(config, EnvConfig) else EnvConfig.model_validate(dict(config or {}))
        self.cfg = cfg
        cells = region_cells(cfg.scenario, cfg.cell_ids, cfg.region, cfg.region_start)
        self.n_slices = len(cfg.scenario.slices)
        self.possible_agents = [agent_id(c) for c in cells]
        self.agents = list(self.possible_agents)
        obs_space = gym.spaces.Box(0.0, OBS_HIGH, (obs_dim(self.n_slices),), np.float32)
        act_space = gym.spaces.Box(-ACTION_LIMIT, ACTION_LIMIT, (self.n_slices,), np.float32)
        self.observation_spaces = dict.fromkeys(self.possible_agents, obs_space)
        self.action_spaces = dict.fromkeys(self.possible_agents, act_space)
        self.rng = np.random.default_rng(cfg.seed)
        self.net = None
        self.resid_std = np.zeros(obs_dim(self.n_slices))
        self.start_states = np.zeros((1, len(cells), obs_dim(self.n_slices)))
        self.reward_range_ = (0.0, 1.0)
        self.state = self.start_states[0].astype(np.float32)
        self.hc = None
        self._t = 0

    def set_twin(self, payload: CellTwinPayload) -> None:
        if payload.start_states.shape[1:] != self.start_states.shape[1:]:
            raise ValueError(f"twin: start states of shape {payload.start_states.shape[1:]} do not fit "
                             f"{len(self.possible_agents)} cells x {obs_dim(self.n_slices)} features")
        self.net = payload.net()
        self.resid_std = np.asarray(payload.resid_std, dtype=np.float64)
        self.start_states = np.asarray(payload.start_states, dtype=np.float64)
        self.reward_range_ = payload.reward_range

    def _dict(self, arr: np.ndarray) -> dict[str, np.ndarray]:
        return {a: arr[i] for i, a in enumerate(self.possible_agents)}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.state = self.start_states[self.rng.integers(len(self.start_states))].astype(np.float32)
        self.hc = None
        self._t = 0
        self.agents = list(self.possible_agents)
        return self._dict(self.state), {a: {} for a in self.possible_agents}

    def step(self, action_dict: dict[str, np.ndarray]):
        missing = [a for a in self.possible_agents if a not in action_dict]
        if missing:
            raise ValueError(f"step: every agent acts each period; missing {missing[:3]}")
        m = mask_block(self.n_slices)
        acts = np.stack([np.asarray(action_dict[a], dtype=np.float64) for a in self.possible_agents])
        shares = action_to_shares(acts, self.state[:, m] > 0.5)
        if self.net is None:
            rew, nxt = np.zeros(len(acts)), self.state.copy()
        else:
            with torch.no_grad():
                s = torch.as_tensor(self.state, dtype=torch.float32)[:, None]
                x = torch.as_tensor(shares, dtype=torch.float32)[:, None]
                rew = np.clip(self.net.utility(s, x)[:, 0].numpy(), *self.reward_range_)
                pred, self.hc = self.net.next_state(s, x, self.hc)
            nxt = pred[:, 0].numpy() + self.rng.normal(0.0, 1.0, self.state.shape) * self.resid_std
            nxt[:, m] = self.state[:, m]
            nxt = np.clip(nxt, 0.0, OBS_HIGH).astype(np.float32)
        self.state = nxt
        self._t += 1
        done = self._t >= self.cfg.episode_len
        rewards = {a: float(rew[i]) for i, a in enumerate(self.possible_agents)}
        return (self._dict(nxt), rewards, dict.fromkeys(self.possible_agents, False) | {"__all__": False},
                dict.fromkeys(self.possible_agents, done) | {"__all__": done}, {a: {} for a in self.possible_agents})


@dataclass
class CellArmResult:
    """One arm (plain or twin) of one seed: the real periods' records from H1 on and the twin's rounds."""

    arm: str
    seed: int
    records: list[PeriodRecord] = field(default_factory=list)
    rounds: list[dict[str, Any]] = field(default_factory=list)  # twin arm: period, fidelity
    wall_s: float = 0.0


def run_cell_arm(scenario: Scenario, s: TwinSettings, seed: int, use_twin: bool, h0_end: int, h1_end: int,
                 progress: Callable[[str, int, int], None] | None = None) -> CellArmResult:
    """The ``drl`` scheme on ``scenario`` with ``seed`` from period 0 to ``h1_end``, with or without the twin."""
    from slicing.rl.drl import build_drl_config, timeline_env
    from slicing.rl.train import require_ray
    from slicing.rl.twin import get_weights, set_weights, soft_merge
    from slicing.threads import single_torch_thread

    require_ray()
    sc = scenario.model_copy(update={"seed": seed})
    arm = "twin" if use_twin else "plain"
    res = CellArmResult(arm, seed)
    t0 = time.perf_counter()
    with single_torch_thread():
        cells = region_cells(sc)
        config, _ = build_drl_config(sc, h0_end)
        # one train() = one SAC training step (periods_per_update periods), so rounds fall on their periods;
        # the updates per sampled period are the drl scheme's
        config = config.reporting(min_sample_timesteps_per_iteration=sc.drl.periods_per_update * len(cells))
        agent1 = config.build_algo()
        agent2, twin = None, None
        if use_twin:
            twin_env = EnvConfig(scenario=sc, cell_ids=cells.tolist(), seed=seed + 10_000, episode_len=s.round_periods)
            cfg2 = (config.copy(copy_frozen=False)
                    .environment(CellTwinEnv, env_config=twin_env.model_dump(mode="json"))
                    .training(num_steps_sampled_before_learning_starts=2 * sc.drl.periods_per_update * len(cells))
                    .reporting(min_sample_timesteps_per_iteration=s.twin_periods * len(cells))
                    .debugging(seed=seed + 1))
            agent2 = cfg2.build_algo()
            twin = CellTwin(len(sc.slices), hidden=s.twin_hidden, seq_len=s.twin_seq_len, seed=seed)
        try:
            env = timeline_env(agent1)
            boundary = h0_end
            while env.sim.period < h1_end:
                agent1.train()
                if use_twin and env.sim.period >= boundary and env.sim.period < h1_end:
                    assert agent2 is not None and twin is not None
                    first = not res.rounds  # the first calibration, on all of H0, gets 5x the updates
                    fid = twin.fit(cell_transitions(env.records, sc.drl.reward),
                                   updates=s.twin_updates * (5 if first else 1))
                    set_weights(agent2, get_weights(agent1))
                    timeline_env(agent2).set_twin(twin.payload())
                    agent2.train()  # twin_periods periods in the twin
                    set_weights(agent1, soft_merge(get_weights(agent1), get_weights(agent2), s.zeta))
                    res.rounds.append({"period": int(env.sim.period)} | {k: round(v, 5) for k, v in fid.items()})
                    boundary += s.round_periods
                if progress:
                    progress(f"{arm} seed {seed}", min(env.sim.period, h1_end), h1_end)
            res.records = [rec for rec in env.records if h0_end <= rec.period < h1_end]
        finally:
            agent1.stop()
            if agent2 is not None:
                agent2.stop()
    res.wall_s = time.perf_counter() - t0
    return res
