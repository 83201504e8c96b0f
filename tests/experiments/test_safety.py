"""The safe-DRL experiment's driver (slicing/experiments/safety.py): a tiny end-to-end run of the two online
learning runs of real RLlib PPO, without and with switching, checked against the library pieces."""

from __future__ import annotations

import json

import numpy as np
import pytest

from slicing.config import load_scenario
from slicing.experiments.safety import DEFAULT_OVERRIDES, run_safety_experiment
from slicing.rl.safety import SafeCellSlicingEnv, online_summary, run_days, update_multiplier
from slicing.rl.settings import SafetySettings


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
