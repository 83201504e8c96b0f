"""Safe DRL with RLlib (slicing/rl/safety.py): the multiplier rule, the cost, switching and the safe env."""

from __future__ import annotations

import numpy as np
import pytest

from slicing.config import load_scenario
from slicing.experiments.safety import DEFAULT_OVERRIDES
from slicing.rl.safety import (
    SafeCellSlicingEnv,
    apply_switching,
    run_days,
    update_multiplier,
    violation_cost,
)


def test_multiplier_rises_above_target_falls_below_and_stays_in_range():
    assert update_multiplier(1.0, 0.30, 0.05, 2.0, 10.0) == pytest.approx(1.5)  # 1 + 2 * 0.25
    assert update_multiplier(1.0, 0.00, 0.05, 2.0, 10.0) == pytest.approx(0.9)
    assert update_multiplier(0.05, 0.0, 0.05, 2.0, 10.0) == 0.0  # projected: never below 0
    assert update_multiplier(9.9, 1.0, 0.05, 2.0, 10.0) == 10.0  # nor above lambda_max
    lam = 0.0
    for c in [0.5, 0.5, 0.0, 0.0, 0.0, 0.0]:
        new = update_multiplier(lam, c, 0.05, 1.0, 5.0)
        assert (new > lam) == (c > 0.05) or new == lam == 0.0
        assert 0.0 <= new <= 5.0
        lam = new


def test_violation_cost_counts_only_active_slices():
    r = np.array([[1.0, 0.2, 1.0], [1.0, 1.0, 1.0], [0.99, 1.0, 0.0], [0.0, 0.0, 0.0]])
    mask = np.array([[1, 0, 1], [1, 1, 1], [1, 1, 0], [0, 0, 0]], dtype=bool)
    np.testing.assert_array_equal(violation_cost(r, mask), [0.0, 0.0, 1.0, 0.0])


def test_switching_applies_baseline_rows_exactly_where_predictor_is_confident():
    rng = np.random.default_rng(0)
    agent, base = rng.dirichlet(np.ones(4), 50), rng.dirichlet(np.ones(4), 50)
    prob = rng.uniform(size=50)
    prob[:3] = [0.9, 0.9000001, 0.8999999]  # the threshold itself does not switch
    x, switched = apply_switching(agent, base, prob, 0.9)
    np.testing.assert_array_equal(switched, prob > 0.9)
    np.testing.assert_array_equal(x[switched], base[switched])
    np.testing.assert_array_equal(x[~switched], agent[~switched])
    assert not switched[0] and switched[1] and not switched[2]


def test_env_shapes_reward_records_transitions_and_switches():
    sc = load_scenario("scenarios/idla.yaml", [*DEFAULT_OVERRIDES, "steps=500"])
    env = SafeCellSlicingEnv({"scenario": sc, "region": 6, "seed": 0, "safety_record": True, "start_days": [2]})
    env.lagrange_lambda, env.switch_penalty = 2.0, True
    flagged = np.arange(6) % 2 == 0
    env.switch, env.threshold = (lambda o, x: flagged.astype(float)), 0.5
    env.reset(seed=0)
    assert env.sim.period == 2 * 96 + 1  # start day 2, after one warm-up period
    base = env.baseline_shares()
    acts = {a: np.array([5.0, -5.0, 0.0, 0.0]) for a in env.possible_agents}
    _, rew, _, _, infos = env.step(acts)
    applied = env._report.share[env._rows]
    np.testing.assert_allclose(applied[flagged], base[flagged])
    assert not np.allclose(applied[~flagged], base[~flagged])
    r, m = env._report.r[env._rows], env._report.mask[env._rows]
    c = violation_cost(r, m)
    raw = np.where(m, r, np.inf).min(axis=1)
    # the switched agents are charged c = 1 in their reward (switch_penalty), the others their own cost
    np.testing.assert_allclose([rew[a] for a in env.possible_agents], raw - 2.0 * np.maximum(c, flagged))
    assert [infos[a]["switched"] for a in env.possible_agents] == flagged.tolist()
    o, x, cost = env.transitions()
    assert o.shape == (6, 20) and np.allclose(x, applied) and np.array_equal(cost, c)
    stats = env.pop_stats()
    assert stats["n"] == 6 and stats["switch_rate"] == 0.5 and stats["cost"] == c.mean() and stats["days"] == [2]
    np.testing.assert_array_equal(stats["cell_cost"], c)
    assert env.pop_stats()["n"] == 0
    # run_days: whole days, same day -> same traffic -> identical results without switching
    a1 = run_days(env, np.array([3]), lambda o: np.zeros((6, 4)))
    a2 = run_days(env, np.array([3]), lambda o: np.zeros((6, 4)))
    assert a1["cost"].shape == (1, 96, 6) and np.array_equal(a1["reward"], a2["reward"])
    assert env.switch is None and not a1["switched"].any()
