"""``CellSlicingEnv``: a region of cells of the simulator as an RLlib ``MultiAgentEnv``, one agent per cell.

- Agents: ``"cell_<global id>"``, all of them act every step.
- Observation (``slicing/data/features.py``): per slice, throughput / requirement (capped at 2), PRB utilisation,
  users (scaled), the neighbours' mean per-slice load and the slice mask -> Box of 5 * S float32.
- Action: Box(-5, 5, [S]) logits, mapped to shares by the masked softmax ``action_to_shares`` (sum = 1 over the
  active slices, 0 on inactive ones). Inference uses the same function.
- Reward: ``"min"`` = min over active slices of r = min(phi / phi*, d* / d, 1); ``"sum_log"`` = sum log(1 + r).
- Episodes: ``episode_len`` periods (default one day, 96), starting at midnight of a random day within the
  scenario's run (drawn from the env's RNG; ``reset(seed=...)`` makes the episode reproducible), after one
  warm-up period under the traffic-proportional baseline that gives the first observation.
- Timeline mode (``timeline=True``, used by the ``drl`` scheme of ``slicing evaluate``): the env is one run of the
  scenario from period 0 (one warm-up period, then the agents), and ``reset`` after a truncated episode continues
  where the last one stopped instead of jumping to a random day. ``record=True`` keeps every simulated period's
  KPIs of the region's cells in ``records`` (``PeriodRecord``).

Surroundings. The simulator covers the region plus its out-of-region interferers (the "ring"). Ring cells are
allocated by the traffic-proportional baseline; the ring's own outside neighbours are fed the mean load of the
simulated cells (a mean-field boundary). So every neighbour of a region cell is simulated, and its per-slice
PRB utilisation of the last period is known for the ``nbr_load`` feature. (In the runtime, a shard's
out-of-shard neighbours contribute their halo load instead; see ``slicing/data/features.py``.)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from ray.rllib.env.multi_agent_env import MultiAgentEnv

from slicing.data.features import ACTION_LIMIT, action_to_shares, obs_dim, observations_from_report
from slicing.optim.baselines import traffic_proportional
from slicing.rl.settings import EnvConfig, region_cells
from slicing.sim.simulator import INITIAL_UTIL, Simulator
from slicing.sim.topology import build_geometry
from slicing.sim.traffic import PERIODS_PER_DAY
from slicing.sim.utility import utility

REWARDS = ("min", "sum_log")
@dataclass(frozen=True)
class PeriodRecord:
    """One simulated period of the region's cells (timeline recording): [N, S] arrays, ``share`` what was applied;
    ``obs`` [N, 5 S] the observation the agents got after it (for the next period)."""

    period: int
    r: np.ndarray
    mask: np.ndarray
    throughput_mbps: np.ndarray
    share: np.ndarray
    obs: np.ndarray | None = None


def period_reward(r: np.ndarray, mask: np.ndarray, kind: str) -> np.ndarray:
    """[N] reward of each cell from its [N, S] satisfaction r and slice mask (``REWARDS``; module doc)."""
    if kind == "min":
        return np.where(mask.any(axis=1), np.where(mask, r, np.inf).min(axis=1), 0.0)
    return utility(r, mask)


def agent_id(cell_id: int) -> str:
    return f"cell_{int(cell_id)}"


class CellSlicingEnv(MultiAgentEnv):
    """See module docstring. ``config``: an ``EnvConfig`` or its dict (``config_model`` of the class: subclasses
    with more keys extend it)."""

    config_model: ClassVar[type[EnvConfig]] = EnvConfig

    def __init__(self, config: EnvConfig | dict[str, Any] | None = None) -> None:
        super().__init__()
        model = type(self).config_model
        cfg = config if isinstance(config, model) else model.model_validate(dict(config or {}))
        self.env_config = cfg
        self.scenario = cfg.scenario
        self.reward_kind = cfg.reward
        self.episode_len = cfg.episode_len
        self.region = region_cells(self.scenario, cfg.cell_ids, cfg.region, cfg.region_start)
        ring = build_geometry(self.scenario.topology, self.scenario.radio, self.region).halo_ids
        self.sim = Simulator(self.scenario, np.union1d(self.region, ring))
        self._rows = np.searchsorted(self.sim.cell_ids, self.region)  # region rows of the simulator
        self._is_region = np.zeros(len(self.sim.cell_ids), dtype=bool)
        self._is_region[self._rows] = True
        self._nbr = self.sim.geometry.nbr_ids[self._rows]  # [N, K]
        self.n_slices = self.sim.n_slices
        self.days = max(1, -(-self.scenario.steps // PERIODS_PER_DAY))
        self.possible_agents = [agent_id(c) for c in self.region]
        self.agents = list(self.possible_agents)
        obs_space = gym.spaces.Box(0.0, 10.0, (obs_dim(self.n_slices),), np.float32)
        act_space = gym.spaces.Box(-ACTION_LIMIT, ACTION_LIMIT, (self.n_slices,), np.float32)
        self.observation_spaces = dict.fromkeys(self.possible_agents, obs_space)
        self.action_spaces = dict.fromkeys(self.possible_agents, act_space)
        self._rng = np.random.default_rng(cfg.seed)
        self._t = 0
        self._report = None
        self.timeline = cfg.timeline
        self.record = cfg.record
        self.records: list[PeriodRecord] = []

    # -- helpers --------------------------------------------------------------------------------------------
    def _halo(self) -> np.ndarray | None:
        if not len(self.sim.halo_ids):
            return None
        return np.full(len(self.sim.halo_ids), float(self.sim.cell_util.mean()))  # mean-field boundary

    def _obs_array(self) -> np.ndarray:
        mask = self.sim.slice_mask()[self._rows]  # slices of the period to allocate
        return observations_from_report(self._report, mask, self.sim.throughput_req_mbps, self._nbr, rows=self._rows)

    def _obs_dict(self, arr: np.ndarray) -> dict[str, np.ndarray]:
        return {a: arr[i] for i, a in enumerate(self.possible_agents)}

    def _baseline(self) -> np.ndarray:
        return traffic_proportional(self.sim.demand().offered_mbps, self.sim.slice_mask())

    def baseline_shares(self) -> np.ndarray:
        """[N, S] traffic-proportional shares of the region's cells for the period about to be stepped (perfect
        knowledge of its offered traffic): the baseline that imitation records and safety switches to."""
        return self._baseline()[self._rows]

    def region_mask(self) -> np.ndarray:
        """[N, S] slices active in the region's cells in the period about to be stepped."""
        return self.sim.slice_mask()[self._rows]

    def shares_from_actions(self, action_dict: dict[str, np.ndarray]) -> np.ndarray:
        """[N_sim, S] shares: agents' masked softmax on region rows, traffic baseline on the ring."""
        missing = [a for a in self.possible_agents if a not in action_dict]
        if missing:
            raise ValueError(f"step: every agent acts each period; missing {missing[:3]}")
        shares = self._baseline()
        acts = np.stack([np.asarray(action_dict[a], dtype=np.float64) for a in self.possible_agents])  # [N, S]
        shares[self._rows] = action_to_shares(acts, self.sim.slice_mask()[self._rows])
        return shares

    # -- gym API --------------------------------------------------------------------------------------------
    def _sim_step(self, shares: np.ndarray, halo: np.ndarray | None):
        rep = self.sim.step(shares, halo)
        if self.record:
            rows = self._rows
            self.records.append(PeriodRecord(rep.period, rep.r[rows], rep.mask[rows], rep.throughput_mbps[rows],
                                             rep.share[rows]))
        return rep

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        if not (self.timeline and self._report is not None):  # timeline mode continues after the first reset
            day = 0 if self.timeline else int(self._rng.integers(0, self.days))
            self.sim.load_state_dict({"period": day * PERIODS_PER_DAY,
                                      "cell_util": np.full(len(self.sim.cell_ids), INITIAL_UTIL),
                                      "backlog_mbit": np.zeros((len(self.sim.cell_ids), self.n_slices))})
            self._report = self._sim_step(self._baseline(), self._halo_first())  # warm-up period
        self._t = 0
        self.agents = list(self.possible_agents)
        return self._obs_dict(self._observe()), {a: {} for a in self.possible_agents}

    def _observe(self) -> np.ndarray:
        """[N, 5 S] observations after the last simulated period (kept in its record when recording)."""
        arr = self._obs_array()
        if self.record and self.records and self.records[-1].obs is None:
            self.records[-1] = replace(self.records[-1], obs=arr)
        return arr

    def _halo_first(self) -> np.ndarray | None:
        return None if not len(self.sim.halo_ids) else np.full(len(self.sim.halo_ids), INITIAL_UTIL)

    def step(self, action_dict: dict[str, np.ndarray]):
        shares = self.shares_from_actions(action_dict)
        rep = self._sim_step(shares, self._halo())
        self._report = rep
        self._t += 1
        rew = period_reward(rep.r[self._rows], rep.mask[self._rows], self.reward_kind)
        done = self._t >= self.episode_len
        obs = self._obs_dict(self._observe())
        rewards = {a: float(rew[i]) for i, a in enumerate(self.possible_agents)}
        terminateds = dict.fromkeys(self.possible_agents, False) | {"__all__": False}
        truncateds = dict.fromkeys(self.possible_agents, done) | {"__all__": done}
        infos = {a: {} for a in self.possible_agents}
        return obs, rewards, terminateds, truncateds, infos
