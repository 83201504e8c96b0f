"""Contract tests of the multi-agent slicing env and of the shared features / action mapping (no Ray started)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from slicing.config import load_scenario
from slicing.data.features import obs_dim
from slicing.rl.env import CellSlicingEnv


@pytest.fixture(scope="module")
def scenario():
    return load_scenario("scenarios/idla.yaml")


def _env(scenario, **kw):
    return CellSlicingEnv({"scenario": scenario, "region": 6, "seed": 1, "episode_len": 8} | kw)


def _actions(env, rng):
    return {a: rng.uniform(-5, 5, env.n_slices).astype(np.float32) for a in env.possible_agents}


def test_spaces_contain_observations_and_dict_contract(scenario):
    env = _env(scenario)
    assert env.possible_agents == [f"cell_{i}" for i in range(6)]
    assert len(env.sim.cell_ids) > 6  # the ring of out-of-region interferers is simulated too
    obs, infos = env.reset(seed=0)
    assert set(obs) == set(env.possible_agents) == set(infos)
    rng = np.random.default_rng(0)
    for t in range(env.episode_len):
        for a, o in obs.items():
            assert o.dtype == np.float32 and o.shape == (obs_dim(env.n_slices),) and np.isfinite(o).all()
            assert env.observation_spaces[a].contains(o), (a, o)
        obs, rew, term, trunc, infos = env.step(_actions(env, rng))
        assert set(obs) == set(rew) == set(env.possible_agents)  # every agent acts and observes every step
        assert "__all__" in term and "__all__" in trunc
        assert all(0.0 <= r <= 1.0 for r in rew.values())
        assert trunc["__all__"] == (t == env.episode_len - 1) and not term["__all__"]


def test_every_agent_must_act(scenario):
    env = _env(scenario)
    env.reset(seed=0)
    acts = _actions(env, np.random.default_rng(0))
    acts.pop("cell_3")
    with pytest.raises(ValueError, match="cell_3"):
        env.step(acts)


def _rollout(env, seed, steps=5):
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(42)
    out = [np.stack(list(obs.values()))]
    for _ in range(steps):
        obs, rew, *_ = env.step(_actions(env, rng))
        out += [np.stack(list(obs.values())), np.array(list(rew.values()))]
    return out


def test_seeding_is_deterministic(scenario):
    a, b = _rollout(_env(scenario), 7), _rollout(_env(scenario, seed=99), 7)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    env = _env(scenario)
    starts = set()
    for s in range(6):
        env.reset(seed=s)
        starts.add(env.sim.period)
    assert len(starts) > 1  # the day offset is drawn from the seed


def test_pickle_round_trip_continues_identically(scenario):
    env = _env(scenario, reward="sum_log")
    env.reset(seed=3)
    rng = np.random.default_rng(0)
    env.step(_actions(env, rng))
    clone = pickle.loads(pickle.dumps(env))
    for _ in range(3):
        acts = _actions(env, rng)
        o1, r1, *_ = env.step(acts)
        o2, r2, *_ = clone.step(acts)
        assert r1 == r2 and all(np.array_equal(o1[k], o2[k]) for k in o1)




def test_env_shares_feasible_and_reward_kinds(scenario):
    env = _env(scenario)
    env.reset(seed=1)
    shares = env.shares_from_actions(_actions(env, np.random.default_rng(1)))
    assert (shares >= 0).all() and (shares.sum(axis=1) <= 1 + 1e-9).all()
    with pytest.raises(ValueError, match="reward"):
        _env(scenario, reward="max")






def test_timeline_mode_continues_the_run_and_records_every_period(scenario):
    env = _env(scenario, timeline=True, record=True, episode_len=5)
    rng = np.random.default_rng(0)
    env.reset(seed=3)
    assert env.sim.period == 1 and [r.period for r in env.records] == [0]  # warm-up period 0
    for _ in range(5):
        *_, trunc, _ = env.step(_actions(env, rng))
    assert trunc["__all__"]
    obs_before = env._obs_array()
    obs, _ = env.reset()  # continues: no jump to a random day, no extra period
    assert env.sim.period == 6
    np.testing.assert_array_equal(np.stack(list(obs.values())), obs_before)
    env.step(_actions(env, rng))
    assert [r.period for r in env.records] == list(range(7))
    rec = env.records[-1]
    assert rec.r.shape == (6, env.n_slices) and np.all(rec.share.sum(axis=1) <= 1 + 1e-9)
    # the recorded shares are the agents' masked softmax
    plain = _env(scenario, episode_len=5)
    assert not plain.timeline and plain.records == []


def test_env_config_is_strict_and_round_trips_as_rllib_passes_it(scenario):
    from pydantic import ValidationError

    from slicing.rl.env import EnvConfig

    with pytest.raises(ValidationError, match="episode_length") as err:
        CellSlicingEnv({"scenario": scenario, "region": 6, "episode_length": 8})  # typo of episode_len
    assert err.value.errors()[0]["type"] == "extra_forbidden"
    with pytest.raises(ValidationError, match="episode_len"):
        _env(scenario, episode_len=0)
    cfg = EnvConfig(scenario=scenario, cell_ids=np.array([4, 2, 3]), seed=np.int64(1), episode_len=8)
    as_dict = cfg.model_dump(mode="json")  # what RLlib hands the env
    assert as_dict["cell_ids"] == [4, 2, 3] and isinstance(as_dict["scenario"], dict)
    a, b = CellSlicingEnv(cfg), CellSlicingEnv(as_dict)
    assert b.env_config == cfg and a.region.tolist() == b.region.tolist() == [2, 3, 4]
    assert all(np.array_equal(x, y) for x, y in zip(_rollout(a, 5), _rollout(b, 5), strict=True))
