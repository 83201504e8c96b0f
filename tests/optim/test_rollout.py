"""The period loop: ``rollout`` equals the loop written by hand; policies; collection; the bootstrap estimator."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from slicing.config import HISTORY, IdlaConfig, Scenario, Topology
from slicing.data.history import History
from slicing.data.parquet import read_samples, write_samples
from slicing.data.samples import ALL_COLUMNS
from slicing.models.qos_estimator import QosEstimator
from slicing.optim.baselines import proportional_shares
from slicing.optim.explore import explore_policy
from slicing.optim.rollout import (
    Period,
    bootstrap_estimator,
    collect,
    explore,
    rollout,
    scheme_policy,
    traffic_policy,
)
from slicing.optim.schemes import AllocationContext, make_scheme
from slicing.sim.simulator import Simulator


def small_scenario() -> Scenario:
    return Scenario(name="data-test", seed=3, steps=40, topology=Topology(sites=2))


def test_collect_samples_valid_and_seeded(tmp_path: Path) -> None:
    sc = small_scenario()
    calls: list[tuple[int, int]] = []
    steps = HISTORY + 12
    smp = collect(sc, steps=steps, epsilon=0.5, augment=False, seed=5, progress=lambda i, n: calls.append((i, n)))
    assert calls[-1] == (steps, steps) and len(calls) == steps
    assert len(smp) > 0 and not smp["augmented"].any()
    f = smp.features()
    assert f.shape == (len(smp), 2 * HISTORY + 3) and np.all(np.isfinite(f))
    r = smp.targets()
    assert np.all((r >= 0) & (r <= 1)) and np.all(np.isfinite(r))
    assert np.all((f[:, 0] >= 0) & (f[:, 0] <= 1))
    assert smp["period"].min() == HISTORY and smp["period"].max() == steps - 1
    assert set(np.unique(smp["slice_id"])) <= {s.id for s in sc.slices}
    again = collect(sc, steps=steps, epsilon=0.5, augment=False, seed=5)
    for c in ALL_COLUMNS:
        np.testing.assert_array_equal(again[c], smp[c])
    other = collect(sc, steps=steps, epsilon=0.5, augment=False, seed=6)
    assert not np.array_equal(other["x"], smp["x"]) or len(other) != len(smp)
    aug = collect(sc, steps=steps, epsilon=0.5, augment=True, seed=5)
    assert len(aug) > len(smp) and aug["augmented"].any()
    np.testing.assert_array_equal(aug["x"][: len(smp)], smp["x"])
    assert np.all(np.isfinite(aug.features())) and np.all((aug.targets() >= 0) & (aug.targets() <= 1))
    path = tmp_path / "c.parquet"
    write_samples(aug, path, {"scenario": sc.name, "seed": sc.seed})
    assert len(read_samples(path)) == len(aug)


def test_collect_history_matches_reports() -> None:
    """z of a row at period t holds the users/CQI of the same (cell, slice) at t-H .. t-1."""
    sc = small_scenario()
    steps = HISTORY + 3
    smp = collect(sc, steps=steps, epsilon=0.3, augment=False, seed=1)
    sim = Simulator(sc)
    reports = []
    for _ in range(steps):
        reports.append(sim.step(explore_policy(sim, sim.demand(), 0.3, 1)))
    users = np.stack([rep.users for rep in reports]).astype(np.float32)  # [T, N, S]
    cqi = np.stack([rep.cqi for rep in reports]).astype(np.float32)
    col = {sid: j for j, sid in enumerate(np.asarray(sim.slice_ids).tolist())}
    row = {int(c): i for i, c in enumerate(sim.cell_ids)}
    ci = np.array([row[int(c)] for c in smp["cell_id"]])
    si = np.array([col[int(s)] for s in smp["slice_id"]])
    t = smp["period"].astype(int)
    for h in range(HISTORY):
        lag = HISTORY - h
        np.testing.assert_array_equal(smp[f"users_h{h + 1}"], users[t - lag, ci, si])
        np.testing.assert_array_equal(smp[f"cqi_h{h + 1}"], cqi[t - lag, ci, si])
    np.testing.assert_array_equal(smp["x"], np.stack([rep.share for rep in reports])[t, ci, si].astype(np.float32))


def test_rollout_equals_the_loop_by_hand() -> None:
    sc = small_scenario()
    sim, ref = Simulator(sc), Simulator(sc)
    history, ref_history = History(len(sim.cell_ids), sim.n_slices), History(len(ref.cell_ids), ref.n_slices)
    seen: list[Period] = []
    last = rollout(sim, history, explore(0.4, 9), HISTORY + 3, seen.append, features=True)
    for t in range(HISTORY + 3):
        z = ref_history.features(ref.throughput_req_mbps, ref.delay_req_ms) if ref_history.ready else None
        shares = explore_policy(ref, ref.demand(), 0.4, 9)
        rep = ref.step(shares)
        ref_history.push(rep)
        p = seen[t]
        assert p.report.period == t
        np.testing.assert_array_equal(p.shares, shares)
        np.testing.assert_array_equal(p.report.r, rep.r)
        assert (p.z is None) == (z is None)
        if z is not None:
            np.testing.assert_array_equal(p.z, z)
    np.testing.assert_array_equal(last, seen[-1].shares)
    assert sim.period == ref.period == HISTORY + 3
    np.testing.assert_array_equal(history.state_dict()["users"], ref_history.state_dict()["users"])
    rollout(sim, history, traffic_policy, 2, seen.append)
    assert len(seen) == HISTORY + 5 and seen[-1].z is None  # features not asked for


def test_zero_periods_return_the_warm_start() -> None:
    sim = Simulator(small_scenario())
    history = History(len(sim.cell_ids), sim.n_slices)
    warm = np.zeros((len(sim.cell_ids), sim.n_slices))
    assert rollout(sim, history, traffic_policy, 0, warm=warm) is warm and sim.period == 0


def test_traffic_policy_is_the_traffic_baseline() -> None:
    sim = Simulator(small_scenario())
    history = History(len(sim.cell_ids), sim.n_slices)
    x = traffic_policy(sim, history, None)
    np.testing.assert_array_equal(x, proportional_shares(sim.demand().offered_mbps, sim.slice_mask()))


def test_scheme_policy_warm_starts_from_the_last_shares(monotone_model: QosEstimator) -> None:
    """Each period's context carries the previous period's shares; IDLA through the loop equals IDLA by hand."""
    sc = small_scenario()
    sim, ref = Simulator(sc), Simulator(sc)
    history, ref_history = History(len(sim.cell_ids), sim.n_slices), History(len(ref.cell_ids), ref.n_slices)
    last = rollout(sim, history, traffic_policy, HISTORY)
    ref_last = rollout(ref, ref_history, traffic_policy, HISTORY)
    scheme = make_scheme("idla", model=monotone_model, idla=IdlaConfig(max_iter=30), seed=4)
    seen: list[Period] = []
    rollout(sim, history, scheme_policy(scheme), 3, seen.append, warm=last)
    warm = ref_last
    for p in seen:
        ctx = AllocationContext.of(ref, ref_history, warm)
        warm = scheme.allocate(ctx)
        np.testing.assert_array_equal(p.shares, warm)
        ref_history.push(ref.step(warm))


def test_bootstrap_estimator_trains_a_small_estimator() -> None:
    logs: list[str] = []
    model = bootstrap_estimator(0, logs.append, epochs=1)
    assert isinstance(model, QosEstimator) and not model.training
    assert len(logs) == 1 and logs[0].startswith("bench estimator: ") and "held-out MAE" in logs[0]
