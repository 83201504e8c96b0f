"""Collection of default-action (state, reward) samples for the transfer service: steps ``CellSlicingEnv``.

The containers and the paper's rationale are in ``slicing/transfer/samples.py``; this module is the RLlib-side
half (the env is an RLlib ``MultiAgentEnv``), so ``slicing.transfer`` itself stays pure torch/numpy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from slicing.config import Scenario
from slicing.rl.env import CellSlicingEnv, EnvConfig
from slicing.sim.traffic import PERIODS_PER_DAY
from slicing.transfer.samples import AgentSamples, SampleStats, default_action


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
        env = CellSlicingEnv(EnvConfig(scenario=scenario, cell_ids=list(cell_ids), seed=int(seed), reward=reward,
                                       episode_len=int(episode_len)))
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
