"""Gymnasium envs of paper 004: the real base station (``BaseStationEnv``) and its digital twin (``TwinEnv``).

Both share the MDP of the paper (Section II-C):

- **State**: packets that arrived per slice in the last step (400 slots), divided by the expected count per step
  (``EXPECTED_ARRIVALS``) so each entry is about 1, clipped to [0, 10]. Box(3) float32.
- **Action**: one of the splits of 20 MHz into three positive multiples of the resolution (1 MHz: 171 actions;
  200 kHz: 4851). Discrete(A); ``action_table`` maps the index to Hz.
- **Reward**: eq. 6 on the utility of eq. 5, with the rising threshold gamma^t = min(gamma_min + sigma t, gamma_max),
  t = the real env's step count (the real agent's sample budget; the twin env is told it).
- **Episodes**: ``episode_len`` steps (200 = the paper's round), then truncated; the base station keeps running
  across episodes (its queues and clock carry on) unless ``reset(seed=...)`` is given, which starts a new one.

``BaseStationEnv.history`` keeps every real step (state, action, utility, reward, threshold, next state) for the
twin's data collection and the experiment's curves; ``drain()`` hands them over and clears the list.
The RL side never imports this module's envs by string: ``register()`` registers both names for RLlib.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch

from slicing.models.twin import Transitions, TwinPayload, net_from_payload
from slicing.rl.settings import BsEnvConfig
from slicing.sim.basestation import (
    BANDWIDTH_HZ,
    EXPECTED_ARRIVALS,
    BaseStation,
    action_table,
    shaped_reward,
    threshold,
)

OBS_HIGH = 10.0
REAL_ENV = "slicing-basestation"
TWIN_ENV = "slicing-basestation-twin"


def scale_obs(arrived: np.ndarray) -> np.ndarray:
    return np.clip(np.asarray(arrived) / EXPECTED_ARRIVALS, 0.0, OBS_HIGH).astype(np.float32)


class BaseStationEnv(gym.Env):
    """The real environment (``slicing/sim/basestation.py``)."""

    metadata: ClassVar[dict[str, Any]] = {}

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        self.cfg = BsEnvConfig.model_validate(dict(config or {}))
        self.table = action_table(self.cfg.resolution_hz)
        self.observation_space = gym.spaces.Box(0.0, OBS_HIGH, (3,), np.float32)
        self.action_space = gym.spaces.Discrete(len(self.table))
        self.bs: BaseStation | None = None
        self.steps = 0  # real steps since the base station started (the threshold's clock)
        self.t_episode = 0
        self.obs = np.ones(3, np.float32)
        self.history: list[tuple] = []

    def _new_station(self, seed: int) -> None:
        self.bs = BaseStation(seed, alpha=self.cfg.alpha, beta=self.cfg.beta)
        self.steps = 0
        warm = self.bs.step(np.full(3, BANDWIDTH_HZ / 3))  # one step under an equal split gives the first state
        self.obs = scale_obs(warm.arrived)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if self.bs is None or seed is not None:
            self._new_station(self.cfg.seed if seed is None else seed)
        self.t_episode = 0
        return self.obs.copy(), {}

    def gamma(self) -> float:
        return float(threshold(self.steps, self.cfg.gamma_min, self.cfg.gamma_max, self.cfg.ramp_steps))

    def step(self, action):
        assert self.bs is not None, "step() before reset()"
        a = int(action)
        g = self.gamma()
        rep = self.bs.step(self.table[a])
        reward = float(shaped_reward(rep.utility, g, self.cfg.gamma_max))
        nxt = scale_obs(rep.arrived)
        self.history.append((self.obs.copy(), a, rep.utility, reward, g, nxt.copy(), rep.ssr.copy()))
        self.obs = nxt
        self.steps += 1
        self.t_episode += 1
        info = {"utility": rep.utility, "ssr": rep.ssr, "gamma": g}
        return nxt.copy(), reward, False, self.t_episode >= self.cfg.episode_len, info

    def drain(self) -> Transitions:
        """The recorded real steps as ``Transitions`` (time order); clears the record."""
        h, self.history = self.history, []
        if not h:
            return Transitions.empty()
        s, a, u, r, g, s1, _ = zip(*h, strict=True)
        acts = np.asarray(a, dtype=np.int64)
        return Transitions(np.asarray(s, np.float64), self.table[acts] / BANDWIDTH_HZ, np.asarray(u),
                           np.asarray(r), np.asarray(g), np.asarray(s1, np.float64), acts)


class TwinEnv(gym.Env):
    """The digital twin as an env: the LSTM's next state (plus its residual noise) and eq. 6 on the predicted
    utility. ``set_twin`` installs a recalibrated twin and the real env's threshold clock."""

    metadata: ClassVar[dict[str, Any]] = {}

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        self.cfg = BsEnvConfig.model_validate(dict(config or {}))
        self.table = action_table(self.cfg.resolution_hz)
        self.shares = torch.as_tensor(self.table / BANDWIDTH_HZ, dtype=torch.float32)
        self.observation_space = gym.spaces.Box(0.0, OBS_HIGH, (3,), np.float32)
        self.action_space = gym.spaces.Discrete(len(self.table))
        self.rng = np.random.default_rng(self.cfg.seed)
        self.net = None
        self.resid_std = np.zeros(3)
        self.start_states = np.ones((1, 3))
        self.real_steps = 0
        self.state = np.ones(3, np.float32)
        self.hc = None
        self.t_episode = 0

    def set_twin(self, payload: TwinPayload, real_steps: int) -> None:
        self.net = net_from_payload(payload)
        self.resid_std = np.asarray(payload.resid_std, dtype=np.float64)
        self.start_states = np.asarray(payload.start_states, dtype=np.float64)
        self.real_steps = int(real_steps)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.state = self.start_states[self.rng.integers(len(self.start_states))].astype(np.float32)
        self.hc = None
        self.t_episode = 0
        return self.state.copy(), {}

    def step(self, action):
        a = int(action)
        g = float(threshold(self.real_steps, self.cfg.gamma_min, self.cfg.gamma_max, self.cfg.ramp_steps))
        if self.net is None:  # before the first calibration: a constant world
            u, nxt = 0.0, self.state.copy()
        else:
            with torch.no_grad():
                s = torch.as_tensor(self.state, dtype=torch.float32)[None, None]
                sh = self.shares[a][None, None]
                u = float(self.net.utility(s, sh)[0, 0])
                pred, self.hc = self.net.next_state(s, sh, self.hc)
            noise = self.rng.normal(0.0, 1.0, 3) * self.resid_std
            nxt = np.clip(pred[0, 0].numpy() + noise, 0.0, OBS_HIGH).astype(np.float32)
        reward = float(shaped_reward(u, g, self.cfg.gamma_max))
        self.state = nxt
        self.t_episode += 1
        return nxt.copy(), reward, False, self.t_episode >= self.cfg.episode_len, {"utility": u}


def register() -> None:
    """Register both envs with RLlib's registry (idempotent)."""
    from ray.tune.registry import register_env

    register_env(REAL_ENV, lambda cfg: BaseStationEnv(cfg))
    register_env(TWIN_ENV, lambda cfg: TwinEnv(cfg))
