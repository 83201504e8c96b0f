"""The twin-enhanced loop on the multi-cell drl scheme (slicing/rl/cell_twin.py): the real transitions it reads
from a timeline env's records, the twin env's agents, spaces, seeding and dynamics, and one tiny run of each arm."""

from __future__ import annotations

import numpy as np
import pytest

from slicing.config import load_scenario
from slicing.data.features import action_to_shares
from slicing.models.cell_twin import CellTwin, mask_block
from slicing.rl.cell_twin import CellTwinEnv, cell_transitions, run_cell_arm
from slicing.rl.env import CellSlicingEnv
from slicing.rl.settings import TwinSettings


@pytest.fixture(scope="module")
def tiny():
    """3 cells, 100 periods: H0 = [0, 20), H1 = [20, 60)."""
    return load_scenario("scenarios/idla.yaml", ["topology.sites=1", "steps=100", "seed=3"])


def _run_real(scenario, steps: int, seed: int = 0):
    env = CellSlicingEnv({"scenario": scenario, "seed": seed, "timeline": True, "record": True})
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    seen = []
    for _ in range(steps):
        mask = env.region_mask()
        acts = {a: rng.uniform(-2, 2, env.n_slices).astype(np.float32) for a in env.possible_agents}
        obs, rew, *_ = env.step(acts)
        shares = action_to_shares(np.stack([acts[a] for a in env.possible_agents]), mask)
        seen.append((np.stack([obs[a] for a in env.possible_agents]), np.array([rew[a] for a in env.possible_agents]),
                     shares))
    return env, seen


def test_transitions_are_the_envs_own_observations_shares_and_rewards(tiny):
    env, seen = _run_real(tiny, 30)
    d = cell_transitions(env.records, "min")
    assert d.obs.shape == (3, 30, 20) and d.shares.shape == (3, 30, 4) and d.reward.shape == (3, 30)
    for t, (obs, rew, shares) in enumerate(seen):
        assert np.allclose(d.next_obs[:, t], obs)
        assert np.allclose(d.reward[:, t], rew)
        assert np.allclose(d.shares[:, t], shares)
    assert np.array_equal(d.obs[:, 1:], d.next_obs[:, :-1])  # consecutive periods
    with pytest.raises(ValueError, match="record=True"):
        cell_transitions(env.records[:1], "min")


def test_twin_env_matches_the_real_agents_and_follows_the_fitted_twin(tiny):
    real, _ = _run_real(tiny, 60)
    env = CellTwinEnv({"scenario": tiny, "seed": 1, "episode_len": 5})
    assert env.possible_agents == real.possible_agents
    assert env.observation_spaces == real.observation_spaces and env.action_spaces == real.action_spaces
    obs, _ = env.reset(seed=0)
    out = env.step({a: np.zeros(4, np.float32) for a in env.possible_agents})
    assert all(r == 0.0 for r in out[1].values())  # before calibration: a constant world
    twin = CellTwin(4, hidden=8, seq_len=4, seed=0)
    twin.fit(cell_transitions(real.records, "min"), updates=20)
    env.set_twin(twin.payload())
    first, _ = env.reset(seed=7)
    again, _ = env.reset(seed=7)
    assert all(np.array_equal(first[a], again[a]) for a in first)
    m = mask_block(4)
    lo, hi = twin.reward_range
    for t in range(5):
        obs, rew, term, trunc, _ = env.step({a: np.full(4, 0.5, np.float32) for a in env.possible_agents})
        for a in env.possible_agents:
            assert env.observation_spaces[a].contains(obs[a])
            assert np.array_equal(obs[a][m], first[a][m])  # the mask is carried over, not predicted
            assert lo <= rew[a] <= hi
        assert trunc["__all__"] == (t == 4) and not term["__all__"]
    bad = twin.payload()
    bad.start_states = bad.start_states[:, :2]
    with pytest.raises(ValueError, match="do not fit 3 cells"):
        env.set_twin(bad)


def test_the_twin_arm_steps_the_real_network_as_often_as_the_plain_arm(ray_session, tiny):
    s = TwinSettings(seeds=(0,), h1_periods=16, round_periods=8, twin_periods=8, twin_updates=2, twin_hidden=8,
                     twin_seq_len=2)
    arms = {arm: run_cell_arm(tiny, s, 0, arm == "twin", 20, 36) for arm in ("plain", "twin")}
    for res in arms.values():
        assert [rec.period for rec in res.records] == list(range(20, 36))  # only Agent 1 touches the network
    assert arms["plain"].rounds == []
    periods = [r["period"] for r in arms["twin"].rounds]
    assert len(periods) == 2 and 20 <= periods[0] < 28 <= periods[1] < 36
    assert arms["twin"].rounds[0]["transitions"] == 3 * (periods[0] - 1)  # all real transitions so far
