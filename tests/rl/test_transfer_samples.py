"""Collection of default-action samples by stepping the RLlib env (slicing/rl/transfer_samples.py): shapes,
statistics, determinism, equality with stepping the env by hand, and errors that name the agent."""

from __future__ import annotations

import numpy as np
import pytest

from slicing.data.features import obs_dim, shares_to_action
from slicing.rl.env import CellSlicingEnv
from slicing.rl.transfer_samples import collect_default_samples, collect_for_agents


def test_samples_shapes_stats_and_determinism(idla_scenario):
    kw = {"episodes": 2, "episode_len": 8, "seed": 3}
    a = collect_default_samples(idla_scenario, [2, 0, 1], name="src", **kw)
    b = collect_default_samples(idla_scenario, [0, 1, 2], name="src", **kw)
    d = obs_dim(len(idla_scenario.slices))
    assert a.data.shape == (2 * 8 * 3, d + 1) and a.data.dtype == np.float32
    np.testing.assert_array_equal(a.data, b.data)  # same seed (cell order irrelevant) -> same samples
    assert a.stats.cells == (0, 1, 2) and a.stats.count == 48 and a.stats.obs_dim == d
    np.testing.assert_allclose(a.stats.mean, a.data.mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a.stats.std, a.data.std(axis=0), rtol=1e-4, atol=1e-6)
    assert np.all((a.rewards >= 0) & (a.rewards <= 1))
    other = collect_default_samples(idla_scenario, [0, 1, 2], episodes=2, episode_len=8, seed=4)
    assert not np.array_equal(a.data, other.data)
    # the dict form gives each agent exactly what a single collection gives
    both = collect_for_agents(idla_scenario, {"src": [0, 1, 2], "tgt": [7]}, **kw)
    np.testing.assert_array_equal(both["src"].data, a.data)
    assert both["tgt"].data.shape == (16, d + 1) and both["tgt"].name == "tgt"


def test_samples_are_the_default_action(idla_scenario):
    """Rewards and states equal those of stepping the env with equal shares over the active slices."""
    cells, seed, steps = [4, 5, 9], 11, 6
    samples = collect_default_samples(idla_scenario, cells, episode_len=steps, seed=seed)
    env = CellSlicingEnv({"scenario": idla_scenario, "cell_ids": cells, "seed": seed, "episode_len": steps})
    obs, _ = env.reset(seed=seed)
    rows = samples.data.reshape(steps, len(cells), -1)  # [T, N, obs_dim + 1]
    for t in range(steps):
        mask = env.region_mask()
        equal = mask / mask.sum(axis=1, keepdims=True)  # [N, S]
        np.testing.assert_array_equal(rows[t, :, :-1], np.stack([obs[a] for a in env.possible_agents]))
        acts = shares_to_action(equal, mask)
        obs, rew, *_ = env.step({a: acts[i] for i, a in enumerate(env.possible_agents)})
        np.testing.assert_allclose(env._report.share[env._rows], equal, atol=1e-12)
        np.testing.assert_allclose(rows[t, :, -1], [rew[a] for a in env.possible_agents], rtol=1e-6)
    # ... and they are not what the traffic-proportional baseline would give
    env.reset(seed=seed)
    base = []
    for _ in range(steps):
        acts = shares_to_action(env.baseline_shares(), env.region_mask())
        _, rew, *_ = env.step({a: acts[i] for i, a in enumerate(env.possible_agents)})
        base.append([rew[a] for a in env.possible_agents])
    assert not np.allclose(np.array(base), rows[:, :, -1])


def test_sample_errors_name_agent_and_rule(idla_scenario):
    with pytest.raises(ValueError, match="agent 'far'.*within \\[0, 12\\)"):
        collect_for_agents(idla_scenario, {"far": [3, 99]}, episode_len=2)
    with pytest.raises(ValueError, match="episodes must be >= 1"):
        collect_default_samples(idla_scenario, [0], episodes=0)
    with pytest.raises(ValueError, match="agent 'empty'.*at least one cell"):
        collect_for_agents(idla_scenario, {"empty": []}, episode_len=2)
    with pytest.raises(ValueError, match="groups"):
        collect_for_agents(idla_scenario, {})
