"""Sample containers of the transfer similarity (slicing/transfer/samples.py): plain JSON-able statistics, the
state/reward views of the rows, and the default action a_0 (equal shares over the active slices)."""

from __future__ import annotations

import json

import numpy as np

from slicing.data.features import action_to_shares
from slicing.transfer.samples import AgentSamples, SampleStats, default_action


def _samples(seed: int = 0) -> AgentSamples:
    data = np.random.default_rng(seed).uniform(0, 1, (6, 5)).astype(np.float32)  # [n, obs_dim + 1]
    stats = SampleStats(cells=(3, 4), count=6, obs_dim=4, mean=data.mean(axis=0, dtype=np.float64),
                        std=data.std(axis=0, dtype=np.float64), episodes=1, episode_len=3, seed=seed)
    return AgentSamples(name="src", data=data, stats=stats)


def test_stats_as_dict_is_plain_json_with_every_field():
    s = _samples().stats
    d = s.as_dict()
    assert json.loads(json.dumps(d)) == d  # plain values only (no numpy)
    assert d == {"cells": [3, 4], "count": 6, "obs_dim": 4, "mean": s.mean.tolist(), "std": s.std.tolist(),
                 "episodes": 1, "episode_len": 3, "seed": 0}
    assert all(type(v) is float for v in d["mean"] + d["std"])
    assert s.reward_mean == d["mean"][-1]


def test_states_and_rewards_split_the_rows():
    a = _samples(1)
    assert a.states.shape == (6, 4) and a.rewards.shape == (6,)
    np.testing.assert_array_equal(np.concatenate([a.states, a.rewards[:, None]], axis=1), a.data)
    np.testing.assert_array_equal(a.rewards, a.data[:, 4])


def test_default_action_is_equal_shares_over_the_active_slices():
    a0 = default_action(4)
    assert a0.shape == (4,) and a0.dtype == np.float32 and not a0.any()
    mask = np.array([[True, True, False, True], [False, True, False, False]])
    shares = action_to_shares(np.stack([a0, a0]), mask)
    np.testing.assert_allclose(shares, [[1 / 3, 1 / 3, 0, 1 / 3], [0, 1, 0, 0]], atol=1e-9)
