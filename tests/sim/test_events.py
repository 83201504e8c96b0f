"""Scenario events in the simulator: each kind's effect, outage physics, shard equivalence, no-event runs unchanged."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from slicing.config import Scenario, build_scenario, load_scenario
from slicing.sim.simulator import KpiReport, Simulator

DOWN_SITE = 5  # cells 15, 16, 17: the last of the first half of 36 cells, so its users cross a 2-way split


def _scenario(events: list[dict], **changes) -> Scenario:
    """12 sites (36 cells), 40 periods, every slice everywhere (so no moved user lacks a slice) unless changed."""
    base = load_scenario("scenarios/idla.yaml", ["topology.sites=12", "steps=40", "seed=3"]).model_dump(mode="json")
    return build_scenario(base | {"schedule": [], "initial_slices": [1, 2, 3, 4], "events": events} | changes)


def _traffic_shares(sim: Simulator) -> np.ndarray:
    off = np.where(sim.slice_mask(), sim.demand().offered_mbps, 0.0)
    return off / np.maximum(off.sum(axis=1, keepdims=True), 1e-12)


def _assert_same(a: KpiReport, b: KpiReport) -> None:
    for f in dataclasses.fields(a):
        assert np.array_equal(getattr(a, f.name), getattr(b, f.name)), f.name


def test_no_event_run_matches_the_simulator_before_events():
    """Sums of a 40-period run (with the schedule's slice addition at period 24), computed with the simulator as it
    was before events existed (git HEAD 9ddc23b): moving the users, masks and geometry code changed no number."""
    sim = Simulator(load_scenario("scenarios/idla.yaml", ["topology.sites=12", "steps=40", "seed=3"]))
    totals = dict.fromkeys(["users", "r", "cqi", "delay_ms", "prb_util"], 0.0)
    for _ in range(40):
        rep = sim.step(_traffic_shares(sim))
        for k in totals:
            totals[k] += float(getattr(rep, k).sum())
    before = {"users": 20180.190867877747, "r": 4858.920539254683, "cqi": 54852.599999999984,
              "delay_ms": 80867.83917413726, "prb_util": 358.08839419385134}
    for k, v in before.items():
        assert totals[k] == pytest.approx(v, rel=1e-10), k


def test_events_change_nothing_before_they_start():
    events = [{"kind": "traffic", "all": 2.0, "start": 6}, {"kind": "outage", "region": {"sites": [DOWN_SITE]},
                                                            "start": 6, "stop": 9},
              {"kind": "add_slice", "slice": 3, "start": 6}, {"kind": "requirement", "slice": 1, "delay_ms": 5,
                                                               "start": 6}]
    plain, evented = Simulator(_scenario([], initial_slices=[1, 2, 4])), Simulator(
        _scenario(events, initial_slices=[1, 2, 4]))
    for t in range(8):
        a, b = plain.step(_traffic_shares(plain)), evented.step(_traffic_shares(evented))
        if t < 6:
            _assert_same(a, b)
    assert not np.array_equal(a.users, b.users)  # and they do act from their start


def test_traffic_event_scales_users_in_its_region_and_window_only():
    region = np.arange(0, 11)
    base = Simulator(_scenario([]))
    sim = Simulator(_scenario([{"kind": "traffic", "region": {"cells": {"first": 0, "last": 10}},
                                "slices": {1: 1.5}, "start": 3, "stop": 6}]))
    for t in range(9):
        u0, u1 = base.demand(t).users, sim.demand(t).users  # [N, S]
        expect = u0.copy()
        if 3 <= t < 6:
            expect[region, 0] *= 1.5
            assert (u1.sum() > u0.sum()) and np.array_equal(u1[11:], u0[11:])
        np.testing.assert_allclose(u1, expect, rtol=1e-13)
        np.testing.assert_allclose(sim.demand(t).offered_mbps, u1 * sim.demand_per_user_mbps, rtol=1e-13)


def test_traffic_event_all_multiplies_every_slice_and_events_multiply():
    base = Simulator(_scenario([]))
    sim = Simulator(_scenario([{"kind": "traffic", "all": 0.5}, {"kind": "traffic", "region": {"sites": [0]},
                                                                  "all": 3.0}]))
    u0, u1 = base.demand(2).users, sim.demand(2).users
    np.testing.assert_allclose(u1[:3], u0[:3] * 1.5, rtol=1e-13)
    np.testing.assert_allclose(u1[3:], u0[3:] * 0.5, rtol=1e-13)


def test_add_slice_reaches_its_fraction_with_draws_independent_of_the_cell_subset():
    sc = _scenario([{"kind": "add_slice", "slice": 3, "fraction": 0.3, "start": 4,
                     "region": {"cells": {"first": 0, "last": 599}}}], initial_slices=[1, 2, 4],
                   topology={"sites": 300})  # 900 cells, the region is the first 600
    col = sc.slice_index[3]
    whole = Simulator(sc)
    assert not whole.slice_mask(3)[:, col].any()
    got = whole.slice_mask(4)[:, col]
    assert not got[600:].any()
    n, f = 600, 0.3
    assert abs(got[:600].sum() - n * f) < 4 * np.sqrt(n * f * (1 - f))  # binomial, 4 sigma
    for ids in (np.arange(250, 500), np.arange(1, 900, 7)):
        np.testing.assert_array_equal(Simulator(sc, ids).slice_mask(10), whole.slice_mask(10)[ids])
    other = Simulator(build_scenario(sc.model_dump(mode="json") | {"seed": 4}))
    assert not np.array_equal(other.slice_mask(4)[:, col], got)  # the draw is the seed's


def test_add_slice_outlasts_a_schedule_removal_while_it_lasts():
    sc = _scenario([{"kind": "add_slice", "slice": 2, "region": {"sites": [0]}, "start": 20, "stop": 30}],
                   schedule=[{"at_fraction": 0.25, "remove": [2]}])  # removed everywhere at period 10
    sim, col = Simulator(sc), sc.slice_index[2]
    assert sim.slice_mask(5)[:, col].all() and not sim.slice_mask(15)[:, col].any()
    assert sim.slice_mask(25)[:3, col].all() and not sim.slice_mask(25)[3:, col].any()
    assert not sim.slice_mask(30)[:, col].any()


def test_requirement_event_lowers_r_in_its_region_only_and_shows_in_requirements():
    region, col = np.arange(0, 6), 1  # sites 0 and 1; slice 2 (web, d* = 150 ms) is column 1
    base = Simulator(_scenario([]))
    sim = Simulator(_scenario([{"kind": "requirement", "slice": 2, "delay_ms": 12, "region": {"sites": [0, 1]},
                                "start": 3}]))
    lowered = False
    for t in range(8):
        x = _traffic_shares(base)
        a, b = base.step(x), sim.step(x)
        for name in ["users", "cqi", "prb_util", "throughput_mbps", "delay_ms"]:
            assert np.array_equal(getattr(a, name), getattr(b, name)), name  # a requirement changes no physics
        outside = np.ones(a.r.shape, dtype=bool)
        if t >= 3:
            outside[region, col] = False
            assert np.all(b.r[region, col] <= a.r[region, col])
            lowered |= bool((b.r[region, col] < a.r[region, col]).any())
        assert np.array_equal(a.r[outside], b.r[outside])
    assert lowered
    tp, dl = sim.requirements()
    assert np.all(dl[region, col] == 12) and np.all(np.delete(dl[:, col], region) == 150)
    assert np.array_equal(tp, base.requirements()[0])


def test_requirement_event_takes_precedence_over_a1_policies_for_what_it_sets():
    sim = Simulator(_scenario([{"kind": "requirement", "slice": 2, "delay_ms": 12, "region": {"sites": [0, 1]}}]))
    shape = (len(sim.cell_ids), sim.n_slices)
    sim.set_requirements(np.full(shape, 0.7), np.full(shape, 99.0))  # A1 policies on every cell and slice
    tp, dl = sim.requirements()
    assert np.all(tp == 0.7)  # the event sets no throughput: A1's stands
    assert np.all(dl[:6, 1] == 12) and np.all(dl[6:, 1] == 99) and np.all(np.delete(dl, 1, axis=1) == 99)
    sim.set_requirements()
    assert np.all(sim.requirements()[1][:6, 1] == 12)


def test_outage_physics():
    """Down cells: no slice, no load, no interference; their users move to nearby live cells, none is lost."""
    down = np.arange(3 * DOWN_SITE, 3 * DOWN_SITE + 3)
    base = Simulator(_scenario([]))
    sim = Simulator(_scenario([{"kind": "outage", "region": {"sites": [DOWN_SITE]}, "start": 4, "stop": 9}]))
    live = np.setdiff1d(sim.cell_ids, down)
    for _ in range(4):
        x = _traffic_shares(base)
        _assert_same(base.step(x), sim.step(x))
    # the first down period: same history, so only the outage differs
    near = np.isin(sim.geometry.nbr_ids, down).any(axis=1)  # cells the down cells interfered with
    i0, i1 = base.interference_mw(None), sim.interference_mw(None)
    assert np.all(i1 <= i0) and np.all(i1[near] < i0[near]) and np.array_equal(i1[~near], i0[~near])
    x = _traffic_shares(base)
    a, b = base.step(x), sim.step(x)
    assert not b.mask[down].any() and not b.share[down].any() and not b.prb_util[down].any()
    assert not b.users[down].any() and not b.r[down].any() and np.all(sim.cell_util[down] == 0)
    assert np.all(b.cqi[live] >= a.cqi[live]) and (b.cqi[near & ~np.isin(sim.cell_ids, down)] >
                                                    a.cqi[near & ~np.isin(sim.cell_ids, down)]).any()
    gained = b.users - a.users  # [N, S]
    assert np.all(gained[live] >= -1e-12)
    np.testing.assert_allclose(gained[live].sum(axis=0), a.users[down].sum(axis=0), rtol=1e-12)  # conserved
    receivers = live[(gained[live] > 1e-12).any(axis=1)]
    assert 3 <= len(receivers) <= 9  # three per down cell, shared
    topo = sim.scenario.topology
    sites_xy = topo.site_xy_m()
    dist = np.hypot(*(sites_xy[receivers // 3] - sites_xy[DOWN_SITE]).T)
    assert dist.max() < 1.01 * topo.isd_m  # cells of the first ring of sites around the hole
    for t in range(5, 9):  # users stay conserved over the outage
        np.testing.assert_allclose(sim.demand(t).users.sum(axis=0), base.demand(t).users.sum(axis=0), rtol=1e-12)
    for _ in range(5, 10):
        rep = sim.step(_traffic_shares(sim))
    assert rep.period == 9 and rep.mask[down].all() and (rep.prb_util[down].sum(axis=1) > 0).all()  # back up


def test_outage_users_of_a_slice_no_receiver_carries_are_lost():
    down = np.arange(3 * DOWN_SITE, 3 * DOWN_SITE + 3)
    events = [{"kind": "add_slice", "slice": 3, "region": {"sites": [DOWN_SITE]}}]
    base = Simulator(_scenario(events, initial_slices=[1, 2, 4]))
    sim = Simulator(_scenario([*events, {"kind": "outage", "region": {"sites": [DOWN_SITE]}, "start": 2}],
                              initial_slices=[1, 2, 4]))
    a, b, col = base.demand(3).users, sim.demand(3).users, sim.scenario.slice_index[3]
    assert a[down, col].sum() > 0 and b[:, col].sum() == 0  # only the down site carried slice 3
    keep = [j for j in range(sim.n_slices) if j != col]
    np.testing.assert_allclose(b[:, keep].sum(axis=0), a[:, keep].sum(axis=0), rtol=1e-12)


@pytest.mark.parametrize("k", [2, 3])
def test_split_run_matches_unsplit_run_with_every_event_kind(k):
    sc = _scenario([
        {"kind": "outage", "region": {"sites": [DOWN_SITE]}, "start": 3, "stop": 9},
        {"kind": "outage", "region": {"disc": {"x_m": 0, "y_m": 0, "radius_m": 200}}, "start": 6},
        {"kind": "traffic", "region": {"cells": {"first": 10, "last": 25}}, "slices": {1: 1.7, 4: 0.5}, "start": 2},
        {"kind": "add_slice", "slice": 3, "fraction": 0.5, "start": 4},
        {"kind": "requirement", "slice": 2, "delay_ms": 20, "throughput_mbps": 1.2, "start": 5}],
        initial_slices=[1, 2, 4])
    whole, plain = Simulator(sc), Simulator(_scenario([], initial_slices=[1, 2, 4]))
    parts = [Simulator(sc, ids) for ids in np.array_split(whole.cell_ids, k)]
    crossed = False
    for _ in range(12):
        ref, no_event = whole.step(_traffic_shares(whole)), plain.step(_traffic_shares(plain))
        util = np.concatenate([p.cell_util for p in parts])  # halo exchange of last-period loads
        reps = [p.step(_traffic_shares(p), halo_util=util[p.halo_ids]) for p in parts]
        for f in dataclasses.fields(ref):
            if f.name != "period":
                assert np.array_equal(np.concatenate([getattr(r, f.name) for r in reps]), getattr(ref, f.name)), f.name
        if 3 <= ref.period < 4:  # site 5 down, nothing else yet: users it sends beyond its own shard (cells >= 18)
            crossed = bool((ref.users[18:, [0, 1, 3]] > no_event.users[18:, [0, 1, 3]] + 1e-9).any())
    assert crossed
