"""CellShard: idempotent periods, per-cell fallback when the scheme fails, and the rl scheme registered on demand."""

from __future__ import annotations

import numpy as np
import pytest

from slicing.data.features import obs_dim
from slicing.optim.baselines import equal_share, traffic_proportional
from slicing.optim.schemes import SCHEMES
from slicing.runtime.population import Population
from slicing.runtime.shard import CellShard


def test_step_and_allocate_are_idempotent_per_period(tmp_path, scenario):
    shard = CellShard(scenario, 0, 18, "traffic", str(tmp_path))
    halo = np.full(len(shard.halo_ids()), 0.5)
    first = shard.step(0, halo)
    assert shard.step(0, halo) == first and shard.sim.period == 1  # a retried call is not simulated twice
    # the actor dies between step and allocate: a new incarnation restores the post-step state and allocates
    reborn = CellShard(scenario, 0, 18, "traffic", str(tmp_path))
    assert reborn.restored and reborn.sim.period == 1
    a, b = shard.allocate(1), reborn.allocate(1)
    assert shard.allocate(1) == a and a["period"] == b["period"] == 1
    assert np.array_equal(shard.allocations_array(), reborn.allocations_array())
    with pytest.raises(RuntimeError, match="period"):
        shard.step(5, halo)


def test_failed_scheme_keeps_last_good_allocation(scenario, model):
    pop = Population(scenario, 1, "idla", model, in_process=True)
    for _ in range(6):
        pop.run_period()
    shard = pop.shards[0]
    good = pop.allocations_array()
    real = shard._scheme.allocate

    def partly_nan(ctx):
        x = real(ctx)
        x[:5] = np.nan
        return x

    shard._scheme.allocate = partly_nan
    r = pop.run_period()
    assert r["fallback_cells"] == 5 and np.array_equal(pop.allocations_array()[:5], good[:5])

    def broken(ctx):
        raise FloatingPointError("solver diverged")

    shard._scheme.allocate = broken
    last = pop.allocations_array()
    r = pop.run_period()
    assert r["fallback_cells"] == scenario.cells and "solver diverged" in r["errors"][0]
    assert np.array_equal(pop.allocations_array(), last)  # every cell keeps its last good shares


class _EqualPolicy:
    """Stands in for an RLlib checkpoint: checks the observations' shape, returns equal shares."""

    version = "fake-policy"

    def allocate(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        assert obs.shape == (len(mask), obs_dim(mask.shape[1]))
        return equal_share(mask)


def test_rl_shard_registers_the_rl_scheme_and_allocates(scenario, monkeypatch):
    monkeypatch.setattr("slicing.rl.inference.RlPolicy.from_checkpoint", lambda path: _EqualPolicy())
    shard = CellShard(scenario, 0, 18, "rl", rl_checkpoint="ckpt")
    assert "rl" in SCHEMES and shard.info()["model_version"] == "fake-policy"
    shard.step(0, np.full(len(shard.halo_ids()), 0.5))
    r = shard.allocate(1)
    assert r["fallback_cells"] == 0 and r["error"] is None and r["model_version"] == "fake-policy"
    np.testing.assert_array_equal(shard.allocations_array(), equal_share(shard.sim.slice_mask()))
    with pytest.raises(ValueError, match="rl_checkpoint"):
        CellShard(scenario, 0, 18, "rl")


def test_traffic_shard_allocates_the_traffic_baseline_of_the_next_period(scenario):
    shard = CellShard(scenario, 18, 36, "traffic")
    shard.step(0, np.full(len(shard.halo_ids()), 0.3))
    shard.allocate(1)
    expected = traffic_proportional(shard.sim.demand(1).offered_mbps, shard.sim.slice_mask(1))
    np.testing.assert_array_equal(shard.allocations_array(), expected)


def test_the_allocators_features_follow_a_requirement_event(scenario):
    """A what-if requirement event (slicing/sim/events.py) reaches IDLA's features, not only the simulator's r."""
    sc = scenario.model_copy(update={"events": ()})
    data = sc.model_dump(mode="json")
    data["events"] = [{"kind": "requirement", "slice": 4, "delay_ms": 15.0, "start": 2,
                       "region": {"cells": {"first": 0, "last": 5}}}]
    sc = type(sc).model_validate(data)
    shard = CellShard(sc, 0, 18, "traffic")
    j = [s.id for s in sc.slices].index(4)
    catalogue = sc.slices[j].delay_req_ms
    for t in range(3):
        shard.step(t, np.full(len(shard.halo_ids()), 0.5))
        delay = shard._features()[:, j, -1]  # z's last column: the delay requirement in force next period
        if t + 1 < 2:
            assert np.all(delay == catalogue)
        else:
            np.testing.assert_array_equal(delay[:6], 15.0)
            assert np.all(delay[6:] == catalogue)
        shard.allocate(t + 1)
