"""(state, reward) samples of a cell group under the default action, the input of the inter-agent similarity.

Paper (TL-aided MADRL, section IV-B, "Sample collection"): the target agent is new, so its policy is unknown and
its only samples were collected under the default configuration a_0. To compare a source agent i with the target
j on both domain (state distribution) and task (reward given state), we compare the joint distributions
p(s, r | a = a_0) of the two, estimated from samples collected with the same default action on both sides.

Here an *agent* is a group of cells (one RLlib module shared by several cells, or one cell). Its samples are the
rows ``[s_t (obs_dim) | r_t (1)]`` of every cell of the group and every period t, where s_t is the cell's
``CellSlicingEnv`` observation before the allocation and r_t the reward of the period after it, while every cell
of the group takes the default action: all logits 0, i.e. equal shares over the active slices (the masked
softmax of ``slicing/data/features.py``). ``data[n, obs_dim + 1]`` is period-major: rows ``t * cells + c``.

Choices and deviations:
- The default action is "equal shares", a configuration an operator can apply to a new cell without any model
  (the paper leaves a_0 unspecified). The out-of-group interferers (the env's ring) keep the env's
  traffic-proportional baseline, so a group's samples do not depend on which other groups are collected.
- One env per agent. Episodes start at midnight of a day drawn by the env's RNG seeded with ``seed``: the same
  seed gives the same days to every agent, so source and target are sampled over the same periods of the run
  (same slice set, same daily traffic phase) and differ only by their cells.
- The paper keeps all target samples and a subset of the source samples; here every agent gets the same number
  of episodes (pass a smaller ``episodes`` for a cheaper, noisier estimate).

This module holds the sample containers (pure numpy); ``slicing/rl/transfer_samples.py`` collects them by
stepping the RLlib env.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
