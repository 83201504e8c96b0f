"""(state, reward) samples of a cell group under the default action, the input of the inter-agent similarity.

Paper (TL-aided MADRL, section IV-B, "Sample collection"): the target agent is new, so its policy is unknown and
its only samples were collected under the default configuration a_0. To compare a source agent i with the target
j on both domain (state distribution) and task (reward given state), we compare the joint distributions
p(s, r | a = a_0) of the two, estimated from samples collected with the same default action on both sides.

Here an *agent* is a group of cells (one RLlib module shared by several cells, or one cell). Its samples are the
rows ``[s_t (obs_dim) | r_t (1)]`` of every cell of the group and every period t, where s_t is the cell's
``CellSlicingEnv`` observation before the allocation and r_t the reward of the period after it, while every cell
of the group takes the default action: all logits 0, i.e. equal shares over the active slices (the masked
softmax of ``slicing/rl/features.py``). ``data[n, obs_dim + 1]`` is period-major: rows ``t * cells + c``.

Choices and deviations:
- The default action is "equal shares", a configuration an operator can apply to a new cell without any model
  (the paper leaves a_0 unspecified). The out-of-group interferers (the env's ring) keep the env's
  traffic-proportional baseline, so a group's samples do not depend on which other groups are collected.
- One env per agent. Episodes start at midnight of a day drawn by the env's RNG seeded with ``seed``: the same
  seed gives the same days to every agent, so source and target are sampled over the same periods of the run
  (same slice set, same daily traffic phase) and differ only by their cells.
- The paper keeps all target samples and a subset of the source samples; here every agent gets the same number
  of episodes (pass a smaller ``episodes`` for a cheaper, noisier estimate).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from slicing.config import Scenario
from slicing.rl.env import CellSlicingEnv
from slicing.sim.traffic import PERIODS_PER_DAY


@dataclass(frozen=True)
class SampleStats:
    """Summary of one agent's samples. ``mean``/``std`` are per column ``[obs_dim + 1]`` (reward last)."""

    cells: tuple[int, ...]
    count: int
    obs_dim: int
    mean: np.ndarray  # [obs_dim + 1]
    std: np.ndarray  # [obs_dim + 1]
    episodes: int
    episode_len: int
    seed: int

    @property
    def reward_mean(self) -> float:
        return float(self.mean[-1])

    def as_dict(self) -> dict:
        """Plain JSON-able values (for a registry or a ``--json`` line)."""
        return {
            "cells": list(self.cells),
            "count": self.count,
            "obs_dim": self.obs_dim,
            "mean": [float(v) for v in self.mean],
            "std": [float(v) for v in self.std],
            "episodes": self.episodes,
            "episode_len": self.episode_len,
            "seed": self.seed,
        }


@dataclass(frozen=True)
class AgentSamples:
    """Samples of one agent: ``data[n, obs_dim + 1]`` float32 rows ``[state | reward]`` and their statistics."""

    name: str
    data: np.ndarray  # [n, obs_dim + 1]
    stats: SampleStats

    @property
    def states(self) -> np.ndarray:
        return self.data[:, :-1]  # [n, obs_dim]

    @property
    def rewards(self) -> np.ndarray:
        return self.data[:, -1]  # [n]


def default_action(n_slices: int) -> np.ndarray:
    """The default action a_0: all logits 0 -> equal shares over the active slices."""
    return np.zeros(int(n_slices), dtype=np.float32)


def _check_counts(episodes: int, episode_len: int) -> None:
    if int(episodes) < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if int(episode_len) < 1:
        raise ValueError(f"episode_len must be >= 1, got {episode_len}")


def _rollout(env: CellSlicingEnv, seed: int | None) -> np.ndarray:
    """One episode under the default action -> ``[episode_len, N, obs_dim + 1]``."""
    agents = env.possible_agents
    obs, _ = env.reset(seed=seed)
    action = {a: default_action(env.n_slices) for a in agents}
    rows = []
    for _ in range(env.episode_len):
        state = np.stack([obs[a] for a in agents])  # [N, obs_dim] before the allocation
        obs, rew, _, trunc, _ = env.step(action)
        reward = np.array([rew[a] for a in agents], dtype=np.float32)  # [N] after it
        rows.append(np.concatenate([state, reward[:, None]], axis=1))  # [N, obs_dim + 1]
        if trunc["__all__"]:
            break
    return np.stack(rows)  # [T, N, obs_dim + 1]


def collect_default_samples(
    scenario: Scenario,
    cell_ids: Sequence[int],
    *,
    episodes: int = 1,
    episode_len: int = PERIODS_PER_DAY,
    seed: int = 0,
    reward: str = "min",
    name: str = "agent",
) -> AgentSamples:
    """Samples of the cell group ``cell_ids`` under the default action: ``episodes`` episodes of ``episode_len``
    periods -> ``data[episodes * episode_len * cells, obs_dim + 1]``. Deterministic given the arguments."""
    _check_counts(episodes, episode_len)
    if len(cell_ids) == 0:
        raise ValueError(f"agent {name!r}: cell_ids must name at least one cell")
    try:
        env = CellSlicingEnv({"scenario": scenario, "cell_ids": list(cell_ids), "seed": int(seed),
                              "reward": reward, "episode_len": int(episode_len)})
    except ValueError as err:
        raise ValueError(f"agent {name!r}: {err}") from None
    # the first reset seeds the env's RNG; later ones continue it (a new day per episode)
    chunks = [_rollout(env, int(seed) if e == 0 else None) for e in range(int(episodes))]
    data = np.concatenate(chunks).reshape(-1, chunks[0].shape[-1]).astype(np.float32)  # [n, obs_dim + 1]
    stats = SampleStats(
        cells=tuple(int(c) for c in env.region),
        count=len(data),
        obs_dim=data.shape[1] - 1,
        mean=data.mean(axis=0, dtype=np.float64),
        std=data.std(axis=0, dtype=np.float64),
        episodes=int(episodes),
        episode_len=int(episode_len),
        seed=int(seed),
    )
    return AgentSamples(name=name, data=data, stats=stats)


def collect_for_agents(
    scenario: Scenario,
    groups: Mapping[str, Sequence[int]],
    *,
    episodes: int = 1,
    episode_len: int = PERIODS_PER_DAY,
    seed: int = 0,
    reward: str = "min",
) -> dict[str, AgentSamples]:
    """``{agent name: cell ids}`` -> ``{agent name: AgentSamples}``, one env per agent, every agent with the same
    ``seed`` (so the same days). Names must be non-empty strings; errors name the agent."""
    if not groups:
        raise ValueError("groups: give at least one agent {name: cell ids}")
    _check_counts(episodes, episode_len)
    out: dict[str, AgentSamples] = {}
    for agent, cells in groups.items():
        if not isinstance(agent, str) or not agent:
            raise ValueError(f"groups: agent names must be non-empty strings, got {agent!r}")
        out[agent] = collect_default_samples(scenario, cells, episodes=episodes, episode_len=episode_len,
                                             seed=seed, reward=reward, name=agent)
    return out
