"""The IDLA experiment's driver (slicing/experiments/idla.py): the H0/H1/H2 protocol."""

from __future__ import annotations

import numpy as np
import pytest

from slicing.config import load_scenario
from slicing.experiments.idla import evaluate, phase_bounds


def test_phase_bounds_follow_the_paper(idla_scenario):
    assert phase_bounds(idla_scenario) == (1000, 3000)  # H0 [0,1000), H1 [1000,3000), H2 [3000,5000)
    short = load_scenario("scenarios/idla.yaml", ["steps=500"])
    assert phase_bounds(short) == (100, 300)


@pytest.fixture(scope="module")
def short_run():
    sc = load_scenario("scenarios/idla.yaml", ["steps=120", "estimator.epochs=3", "seed=2"])
    return sc, evaluate(sc, ["equal", "traffic", "idla"])


def test_all_schemes_face_the_same_network(short_run):
    sc, res = short_run
    masks = [np.stack(t.mask) for t in res.traces.values()]
    assert all(np.array_equal(masks[0], m) for m in masks[1:])
    col = sc.slice_index[3]
    split = res.h1_end - res.h0_end
    assert not masks[0][:split, :, col].any() and masks[0][split:, :, col].all()  # slice 3 joins at H2


def test_schemes_respect_the_budget_and_differ(short_run):
    _, res = short_run
    for name, tr in res.traces.items():
        assert np.stack(tr.share_sum).max() <= 1.0, name
    eq = np.stack(res.traces["equal"].share_sum)
    assert np.allclose(eq, 1.0)  # equal share hands out the whole cell
    assert not np.array_equal(np.stack(res.traces["idla"].r), np.stack(res.traces["equal"].r))
    summary = res.summary()
    assert summary["estimator"]["samples"] > 0 and set(summary["schemes"]) == {"equal", "traffic", "idla"}


def test_estimator_learns_the_share_dependence_from_a_short_h0():
    """Regression: with a sigmoid head, MAE training on 300 H0 periods collapsed to f = 1 for every x."""
    from slicing.data.augment import augment
    from slicing.experiments.idla import run_h0
    from slicing.models.qos_estimator import tabulate
    from slicing.models.qos_training import train_estimator

    sc = load_scenario("scenarios/idla.yaml", ["steps=1500", "estimator.epochs=60"])
    sim, history, _, samples, _ = run_h0(sc, phase_bounds(sc)[0])
    samples = augment(samples, np.random.default_rng(sc.seed))
    model, report = train_estimator(samples.features(), samples.targets(), sc.estimator, seed=sc.seed)
    assert report.mae_test < 0.064  # the paper's 0.0639
    z = history.features(sim.throughput_req_mbps, sim.delay_req_ms)
    f = tabulate(model, z, np.linspace(0, 1, 11))[sim.slice_mask()]  # [active pairs, 11]
    # no resource, no QoS, for most pairs (the collapse gave none); 0.89 to 0.97 measured, with the CPU's numerics
    assert (f[:, 0] < 0.5).mean() > 0.8
    assert (f[:, -1] > 0.9).mean() > 0.9  # the whole cell satisfies a slice
    assert np.mean(np.diff(f, axis=1) >= -0.02) > 0.95  # (nearly) monotone in the share


def test_the_satisfaction_breakdown_counts_thresholds_shortfalls_and_slices():
    from types import SimpleNamespace

    from slicing.experiments.idla import Trace
    from slicing.experiments.idla_diagnose import satisfaction_breakdown

    tr = Trace()
    mask = np.array([[True, True, False]])  # one cell, slices 1 and 2 active
    ests = ([0.98, 0.97], [1.0, 0.9], [1.0, 0.92], [1.0, 1.0])  # the estimator's r at the applied shares
    for r, e in zip(([1.0, 0.96], [1.0, 0.5], [0.999, 0.92], [1.0, 1.0]), ests, strict=True):  # 2 of H1, 2 of H2
        tr.r.append(np.array([r + [0.0]]))
        tr.est.append(np.array([e + [0.5]]))
        tr.mask.append(mask)
        tr.share_sum.append(np.ones(1))
    sc = SimpleNamespace(slices=[SimpleNamespace(id=1), SimpleNamespace(id=2), SimpleNamespace(id=3)])
    res = SimpleNamespace(h0_end=10, h1_end=12, scenario=sc, traces={"x": tr})
    d = satisfaction_breakdown(res)["x"]  # type: ignore[arg-type]
    assert d["H1"]["p_at_least"] == {"0.9": 0.75, "0.95": 0.75, "0.99": 0.5, "0.999": 0.5}
    assert d["H1"]["shortfall"] == {"unsatisfied": 0.5, "median": pytest.approx(0.27), "p90": pytest.approx(0.454)}
    assert d["H1"]["per_slice"] == {"1": {"p_satisfied": 1.0, "mean_r": 1.0, "samples": 2},
                                    "2": {"p_satisfied": 0.0, "mean_r": 0.73, "samples": 2}}
    assert d["H2"]["p_at_least"]["0.999"] == 0.75 and "3" not in d["H2"]["per_slice"]  # slice 3 never active
    # H1: satisfied (1.0 -> 0.98, 1.0 -> 1.0), unsatisfied (0.96 -> 0.97, 0.5 -> 0.9): one of two called satisfied
    assert d["H1"]["estimator"] == {"mae": pytest.approx(0.1075), "mae_satisfied": pytest.approx(0.01),
                                    "mae_unsatisfied": pytest.approx(0.205), "bias_unsatisfied": pytest.approx(0.205),
                                    "unsatisfied_called_satisfied": 0.5}
