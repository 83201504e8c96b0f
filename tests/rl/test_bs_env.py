"""The envs of paper 004 (slicing/rl/bs_env.py): Gymnasium's checker, seeding, the threshold clock, the recorded
transitions, and the twin env driven by a fitted twin."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from slicing.models.twin import DigitalTwin
from slicing.rl.bs_env import BaseStationEnv, TwinEnv
from slicing.rl.settings import BsEnvConfig, TwinSettings

CFG = {"episode_len": 5, "ramp_steps": 10}


def test_real_env_passes_gymnasiums_checker():
    env = BaseStationEnv(CFG)
    check_env(env, skip_render_check=True)
    assert env.action_space.n == 171
    assert BaseStationEnv({"resolution_hz": 200_000}).action_space.n == 4851


def test_twin_env_passes_gymnasiums_checker_before_and_after_calibration():
    check_env(TwinEnv(CFG), skip_render_check=True)
    env = BaseStationEnv(CFG)
    env.reset(seed=0)
    for a in range(40):
        env.step(a)
    twin = DigitalTwin(hidden=8, seed=0)
    twin.fit(env.drain(), gamma_max=2.75, updates=2)
    tenv = TwinEnv(CFG)
    tenv.set_twin(twin.payload(), real_steps=5)
    check_env(tenv, skip_render_check=True)
    tenv.reset(seed=1)
    _, reward, _, _, info = tenv.step(3)
    assert reward in (0.0, 1.0) or reward > 1.0
    assert np.isfinite(info["utility"])


def test_reset_with_a_seed_replays_the_same_trajectory():
    def run(seed):
        env = BaseStationEnv(CFG)
        obs, _ = env.reset(seed=seed)
        out = [obs]
        for a in (0, 50, 100, 170):
            out.append(env.step(a)[0])
        return np.asarray(out)

    assert np.array_equal(run(7), run(7))
    assert not np.array_equal(run(7), run(8))


def test_episodes_truncate_but_the_station_and_the_threshold_clock_carry_on():
    env = BaseStationEnv(CFG)
    env.reset(seed=0)
    gammas = []
    for _ in range(2):
        for t in range(5):
            _, _, terminated, truncated, info = env.step(10)
            gammas.append(info["gamma"])
            assert not terminated and truncated == (t == 4)
        env.reset()
    assert env.steps == 10
    assert gammas[0] == 2.0 and gammas[-1] == pytest.approx(2.0 + 0.75 * 9 / 10)
    assert all(b > a for a, b in itertools.pairwise(gammas))


def test_drained_transitions_are_the_steps_taken():
    env = BaseStationEnv(CFG)
    obs, _ = env.reset(seed=0)
    nxt, reward, *_ , info = env.step(42)
    d = env.drain()
    assert len(d) == 1 and env.history == []
    assert np.allclose(d.s[0], obs) and np.allclose(d.s_next[0], nxt)
    assert d.action[0] == 42 and np.allclose(d.a[0], env.table[42] / 20e6) and d.a[0].sum() == pytest.approx(1)
    assert d.r[0] == reward and d.u[0] == info["utility"]


def test_bad_env_config_names_the_field():
    with pytest.raises(ValueError, match="gamma_max"):
        BsEnvConfig(gamma_min=3.0, gamma_max=2.0)
    with pytest.raises(ValueError, match="resolution_hz"):
        BaseStationEnv({"resolution_hz": 300_000})
    with pytest.raises(ValueError, match="zeta"):
        TwinSettings(zeta=1.5)
    with pytest.raises(ValueError, match="algo"):
        TwinSettings(algo="a2c")
