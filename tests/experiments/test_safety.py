"""Safe DRL (slicing/rl/safety.py, slicing/models/violation.py, driver slicing/experiments/safety.py): multiplier rule,
switching, violation predictor, the env, the settings, and a tiny end-to-end run of the experiment (two online
learning runs of real RLlib PPO, without / with switching) plus the CLI's flag checks."""

from __future__ import annotations

import json
from itertools import product

import numpy as np
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from slicing.cli import app
from slicing.config import load_scenario
from slicing.errors import FieldError
from slicing.experiments.safety import DEFAULT_OVERRIDES, run_safety_experiment
from slicing.models.violation import auc_score, train_predictor
from slicing.rl.safety import (
    SafeCellSlicingEnv,
    apply_switching,
    online_summary,
    run_days,
    update_multiplier,
    violation_cost,
)
from slicing.rl.settings import SafeEnvConfig, SafetySettings


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


def test_auc_matches_pairwise_definition():
    rng = np.random.default_rng(1)
    y = rng.uniform(size=60) < 0.3
    p = np.round(rng.uniform(size=60), 1)  # with ties
    pairs = [(1.0 if a > b else 0.5 if a == b else 0.0) for a, b in product(p[y], p[~y])]
    assert auc_score(y, p) == pytest.approx(np.mean(pairs))
    assert np.isnan(auc_score(np.zeros(5, bool), p[:5]))


def test_predictor_learns_a_separable_case_and_needs_both_classes():
    rng = np.random.default_rng(2)
    obs = rng.uniform(0, 2, (3000, 20)).astype(np.float32)
    shares = rng.dirichlet(np.ones(4), 3000).astype(np.float32)
    cost = (shares[:, 0] * 2.0 < obs[:, 2] * 0.3).astype(np.float32)  # too small a share for the slice's load
    assert 0.1 < cost.mean() < 0.9
    model, rep = train_predictor(obs, shares, cost, seed=0, epochs=30, batch=128)
    assert rep["accuracy"] > 0.95 and rep["auc"] > 0.98 and rep["accuracy"] > rep["majority_accuracy"] + 0.05
    p = model.predict_proba(obs[:200], shares[:200])
    assert ((p > 0.5) == cost[:200]).mean() > 0.95
    _, rep2 = train_predictor(obs, shares, cost, seed=0, epochs=30, batch=128)
    assert rep2 == rep  # seeded
    with pytest.raises(ValueError, match="both classes"):
        train_predictor(obs, shares, np.zeros(3000, np.float32))


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


@pytest.fixture(scope="module")
def tiny_run(ray_session, tmp_path_factory):
    out = tmp_path_factory.mktemp("safety")
    sc = load_scenario("scenarios/idla.yaml", [*DEFAULT_OVERRIDES, "steps=500"])
    s = SafetySettings(cells=3, iterations=4, warmup=2, refit_every=1, eval_days=1, threshold=0.0, seed=0)
    return run_safety_experiment(sc, s, out), out, s, sc


def test_experiment_headline_is_the_online_learning_phase_of_both_runs(tiny_run):
    res, out, s, sc = tiny_run
    keys = {"with_switching", "without_switching"}
    assert set(res["violation_rate"]) == keys and set(res["mean_reward"]) == keys
    for block in (res, res["including_warmup"], res["final_policy"]):
        assert all(0.0 <= v <= 1.0 for g in ("violation_rate", "mean_reward") for v in block[g].values())
        assert 0.0 <= block["switch_rate"] <= 1.0
    hist = json.loads((out / "summary.json").read_text())["history"]
    plain, switched = hist["without_switching"], hist["with_switching"]
    assert [h["warmup"] for h in plain] == [True, True, False, False]
    # the shared warm-up is identical in both runs (same seeds, same days, no predictor yet), later days too
    for a, b in zip(plain[:2], switched[:2], strict=True):
        assert a | {"predictor_refit": None} == b | {"predictor_refit": None} and a["switch_rate"] == 0.0
    assert [h["days"] for h in plain] == [h["days"] for h in switched] and all(len(h["days"]) == 1 for h in plain)
    assert all(h["agent_periods"] == 3 * 96 for h in plain + switched)  # one day of the region per iteration
    # headline = the online phase (iterations 3-4) of each run, warm-up excluded; with it, all four iterations
    for run, h in hist.items():
        assert res["violation_rate"][run] == pytest.approx(np.mean([x["violation_rate"] for x in h[2:]]))
        assert res["mean_reward"][run] == pytest.approx(np.mean([x["reward"] for x in h[2:]]))
        assert res["including_warmup"]["violation_rate"][run] == pytest.approx(
            online_summary(h, warmup=True)["violation_rate"])
    # threshold 0: once the predictor exists every cell-period is switched, so each online iteration of the
    # switching run applied exactly the baseline's shares: its cost and min r are those of the baseline on that day
    assert res["switch_rate"] == 1.0 and [h["predictor_refit"] for h in switched] == [False, True, True, True]
    env = SafeCellSlicingEnv({"scenario": sc, "region": 3, "seed": 0})
    for h in switched[2:]:
        base = run_days(env, np.array(h["days"]), lambda o: np.zeros((3, 4)), lambda o, x: np.ones(len(o)), 0.5)
        assert base["switched"].all()
        assert h["violation_rate"] == pytest.approx(base["cost"].mean())
        assert h["reward"] == pytest.approx(base["reward"].mean())
        np.testing.assert_allclose(h["cell_violation_rate"], base["cost"].mean(axis=(0, 1)))
    assert res["warmup"]["violation_rate"] == pytest.approx(np.mean([x["violation_rate"] for x in plain[:2]]))
    # the multiplier: per iteration, from the violation rate of the applied actions
    for h in (plain, switched):
        lam = 0.0
        for x in h:
            assert x["lambda"] == pytest.approx(lam)
            lam = update_multiplier(lam, x["violation_rate"], s.target, s.eta, s.lambda_max)
        assert res["lambda_final"]["with_switching" if h is switched else "without_switching"] == pytest.approx(lam)
    # final policies on the held-out day: the switching run's, switched everywhere, is the baseline
    final = res["final_policy"]
    assert final["switch_rate"] == 1.0
    assert final["violation_rate"]["with_switching"] == final["baseline"]["violation_rate"]
    assert res["predictor"]["refits"] == 3 and 0.0 <= res["predictor"]["accuracy"] <= 1.0
    assert (out / "safety.png").stat().st_size > 0
    assert (out / "checkpoint_with_switching").is_dir() and (out / "checkpoint_without_switching").is_dir()


def test_settings_reject_a_warmup_as_long_as_the_run_and_unknown_keys():
    with pytest.raises(ValidationError) as err:
        SafetySettings(iterations=4, warmup=4)
    cause = err.value.errors()[0]["ctx"]["error"]
    assert isinstance(cause, FieldError) and cause.path == ("warmup",) and "< iterations (4)" in cause.message
    with pytest.raises(ValidationError, match="warmpu") as err:
        SafetySettings.model_validate({"warmpu": 3})
    assert err.value.errors()[0]["type"] == "extra_forbidden"
    with pytest.raises(ValidationError):  # frozen: derived values are computed, never written back
        SafetySettings().cells = 3  # type: ignore[misc]
    sc = load_scenario("scenarios/idla.yaml", ["steps=500"])  # 6 days
    assert SafetySettings(cells=999).region(sc) == sc.cells
    with pytest.raises(ValidationError, match="must leave training days"):
        SafetySettings.model_validate({"eval_days": 6}, context={"scenario": sc})
    SafetySettings.model_validate({"eval_days": 5}, context={"scenario": sc})


def test_safe_env_config_names_an_unknown_key():
    sc = load_scenario("scenarios/idla.yaml", ["steps=500"])
    with pytest.raises(ValidationError, match="safety_recrod"):
        SafeCellSlicingEnv({"scenario": sc, "region": 3, "safety_recrod": True})
    env = SafeCellSlicingEnv(SafeEnvConfig(scenario=sc, region=3, start_days=(1,), lagrange_lambda=0.5))
    assert env.start_days.tolist() == [1] and env.lagrange_lambda == 0.5


@pytest.mark.parametrize("args, needle", [
    (["--threshold", "1.5"], "--threshold"),
    (["--eval-days", "9999"], "--eval-days 9999: must leave training days"),
    (["--cells", "0"], "--cells"),
    (["--warmup", "9", "--iterations", "9"], "--warmup 9: must be < iterations (9)"),
])
def test_cli_rejects_bad_flags(args, needle):
    res = CliRunner().invoke(app, ["experiment", "safety", *args])
    assert res.exit_code == 2
    assert needle in " ".join(res.output.replace("│", " ").split()), res.output
