"""Population: partition, arguments, equivalence with the unsplit run, weights shipping, ingest, reads. (The named
population actor is in test_population_actor.py.)"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from slicing.models.qos_estimator import model_version
from slicing.runtime.population import Population, partition
from slicing.runtime.shard import UnknownCell
from tests.runtime.helpers import PERIODS, record, run_and_compare
from tests.runtime.multinode import reference_run


def test_partition_cuts_at_site_boundaries(scenario):
    bounds = partition(scenario, 5)
    assert bounds[0][0] == 0 and bounds[-1][1] == scenario.cells
    assert all(lo % 3 == 0 and hi % 3 == 0 and lo < hi for lo, hi in bounds)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
    for bad in (0, 13, 2.5):
        with pytest.raises(ValueError, match="shards"):
            partition(scenario, bad)


def test_bad_population_arguments(scenario):
    with pytest.raises(ValueError, match="scheme"):
        Population(scenario, 1, "oracle", in_process=True)
    with pytest.raises(ValueError, match="model"):
        Population(scenario, 1, "idla", in_process=True)


def test_in_process_shards_match_unsplit(scenario, model, reference):
    run_and_compare(Population(scenario, 3, "idla", model, in_process=True), reference, label="in-process K=3")


@pytest.mark.parametrize("shards, scheme", [(1, "idla"), (2, "idla"), (3, "idla"), (3, "traffic")])
def test_ray_shards_match_in_process(ray_session, tmp_path, scenario, model, reference, shards, scheme):
    ref = reference if scheme == "idla" else reference_run(scenario, None, PERIODS, "traffic")
    with Population(scenario, shards, scheme, model if scheme == "idla" else None, str(tmp_path)) as pop:
        run_and_compare(pop, ref, label=f"Ray K={shards} {scheme}")
        assert {i["period"] for i in pop.shard_info()} == {PERIODS}


def test_weights_shipped_once_per_version(ray_session, scenario, model, other_model):
    with Population(scenario, 2, "idla", model) as pop:
        for _ in range(6):
            pop.run_period()
        assert pop.estimator_puts == 1
        assert [i["reloads"] for i in pop.shard_info()] == [1, 1]
        assert pop.set_estimator(model) is False  # same version: nothing shipped
        assert pop.set_estimator(other_model) is True
        for _ in range(2):
            r = pop.run_period()
            assert not r["warmup"] and r["fallback_cells"] == 0
        assert pop.estimator_puts == 2
        assert [i["reloads"] for i in pop.shard_info()] == [2, 2]
        assert pop.allocation(20)["model_version"] == model_version(other_model) == pop.model_version()


def test_ingest_replaces_newest_history_entry(scenario):
    pop = Population(scenario, 2, "traffic", in_process=True)
    for _ in range(3):
        pop.run_period()
    recs = [record(1, users=42.0, cqi=11.0), record(30, "02-000004", users=7.0), record("35", cqi=2.5)]
    assert pop.ingest(recs) == 3
    s0, s1 = pop.shards
    assert s0.history.users()[1, 0, -1] == 42.0 and s0.history.cqi()[1, 0, -1] == 11.0
    assert s1.history.users()[30 - s1.lo, 3, -1] == 7.0 and s1.history.cqi()[35 - s1.lo, 0, -1] == 2.5
    before = s0.history.state_dict()
    bad = [
        ([record(1), record(99)], r"records\.1\.cell_id: unknown cell 99"),
        ([record(1), record(30, "01-00000f")], r"records\.1\.snssai: unknown S-NSSAI"),
        ([record(1), record(30, "01-000003")], r"records\.1\.snssai: slice 01-000003 is not active"),
        ([record(1, cqi=17)], r"records\.0\.cqi"),
        ([record(1, users=float("nan"))], r"records\.0\.users"),
        ([{k: v for k, v in record(1).items() if k != "delay_ms"}], r"records\.0\.delay_ms: missing"),
        ([record(1) | {"extra": 1}], r"records\.0\.extra: unknown field"),
        ([record(1), record(1)], r"reported more than once"),
    ]
    for records, match in bad:
        with pytest.raises(ValueError, match=match):
            pop.ingest(records)
    after = s0.history.state_dict()  # all-or-nothing: shard 0's valid records were not applied
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_allocation_routing_and_cell_pages(scenario):
    pop = Population(scenario, 3, "equal", in_process=True)
    pop.run_period()
    alloc = pop.allocations_array()
    for cid in (0, 11, 12, 23, 35):
        a = pop.allocation(cid)
        assert a["cell_id"] == cid and a["period"] == 1 and a["scheme"] == "equal"
        assert [s["snssai"] for s in a["slices"]] == ["01-000001", "01-000002", "02-000004"]
        assert [s["share"] for s in a["slices"]] == pytest.approx(alloc[cid][[0, 1, 3]].tolist(), abs=0)
    assert pop.allocation("7")["cell_id"] == 7
    for bad in (-1, 36, "abc", 3.0, True):
        with pytest.raises(UnknownCell, match="cell_id"):
            pop.allocation(bad)
    assert issubclass(UnknownCell, KeyError)
    assert pop.cell_ids(limit=5, offset=33) == [33, 34, 35] and pop.n_cells() == 36
    with pytest.raises(ValueError, match="limit"):
        pop.cell_ids(limit=-1)


def test_the_last_periods_of_every_cell_are_held_for_bulk_reads(scenario):
    import pickle

    from slicing.errors import FieldError
    from slicing.runtime.population import KEEP_PERIODS, PeriodNotHeld

    pop = Population(scenario, 3, "traffic", in_process=True)
    assert pop.held_periods() == [0]
    seen = {}
    for _ in range(KEEP_PERIODS + 2):  # per period
        pop.run_period()
        seen[pop.period()] = pop.allocations_array()
    assert pop.held_periods() == list(range(3, 3 + KEEP_PERIODS))
    for p in pop.held_periods():  # each held period is that period's allocation of every cell, in id order
        snap = pop.allocations(p)
        assert snap.period == p and snap.scheme == "traffic" and snap.shares.shape == (36, 4)
        assert np.array_equal(snap.shares, seen[p]) and snap.snssai[3] == "02-000004"
    assert pop.allocations().period == pop.period()  # default: the newest
    page = pop.allocations_page(offset=30, limit=10, period=4)
    assert page["total"] == 36 and page["offset"] == 30
    assert np.array_equal(page["snapshot"].shares, seen[4][30:])
    with pytest.raises(PeriodNotHeld, match="no longer held") as gone:
        pop.allocations(2)
    assert gone.value.gone and isinstance(gone.value, LookupError)
    with pytest.raises(PeriodNotHeld, match="not allocated yet") as early:
        pop.allocations(99)
    assert not early.value.gone
    again = pickle.loads(pickle.dumps(gone.value))  # crosses Ray with its attributes
    assert again.gone and again.held == gone.value.held and str(again) == str(gone.value)
    for bad in ("4", 4.0, True):
        with pytest.raises(FieldError, match="period"):
            pop.allocations(bad)
    with pytest.raises(FieldError, match="offset"):
        pop.allocations_page(offset=-1)


def test_a_pushed_model_switches_at_the_next_period_and_rolls_back(scenario, model, other_model):
    from slicing.errors import FieldError
    from slicing.models.qos_estimator import estimator_payload
    from slicing.runtime.population import UnknownModel

    pop = Population(scenario, 2, "idla", model, in_process=True)
    pop.run_period()
    old, new = model_version(model), model_version(other_model)
    staged = pop.push_model(other_model)
    assert staged == {"version": new, "status": "pending", "effective_period": pop.period() + 1}
    assert pop.model_version() == old  # nothing changes before the period boundary
    listed = pop.models()
    assert listed["active"] == old and listed["pending"] == new
    assert [(r["version"], r["status"]) for r in listed["versions"]] == [(new, "pending"), (old, "active")]
    pop.run_period()
    assert pop.model_version() == new and pop.models()["pending"] is None
    assert {i["model_version"] for i in pop.shard_info()} == {new}  # every shard allocated with it
    assert pop.activate_model(old)["status"] == "pending"  # roll back
    pop.run_period()
    assert pop.model_version() == old
    with pytest.raises(UnknownModel, match="not kept"):
        pop.activate_model("abc")
    bad = estimator_payload(other_model)
    bad["state"] = {k: v[:1] for k, v in bad["state"].items()}
    with pytest.raises(FieldError, match="model"):
        pop.push_model(bad)
    assert pop.model_version() == old and pop.models()["pending"] is None  # a refused push changes nothing


def test_a_restart_on_the_same_storage_resumes_the_period_and_the_active_model(scenario, model, other_model,
                                                                               tmp_path):
    first = Population(scenario, 2, "idla", model, str(tmp_path), in_process=True)
    for _ in range(3):
        first.run_period()
    first.push_model(other_model)
    first.run_period()  # switches to other_model
    period, shares = first.period(), first.allocations_array()
    assert first.model_version() == model_version(other_model)
    again = Population(scenario, 2, "idla", model, str(tmp_path), in_process=True)  # given `model` again
    assert again.period() == period and np.array_equal(again.allocations_array(), shares)
    assert again.model_version() == model_version(other_model)  # the active version, not the given one
    assert {i["model_version"] for i in again.shard_info()} == {model_version(other_model)}
    # the previous version is kept across the restart: a roll back still works
    listed = again.models()
    assert [v["version"] for v in listed["versions"]] == [model_version(other_model), model_version(model)]
    assert [v["status"] for v in listed["versions"]] == ["active", "previous"]
    assert again.activate_model(model_version(model))["status"] == "pending"
    again.run_period()
    assert again.model_version() == model_version(model)
    fresh = Population(scenario, 2, "idla", model, str(tmp_path), in_process=True, fresh=True)
    assert fresh.period() == 0 and fresh.model_version() == model_version(model)
    assert [v["version"] for v in fresh.models()["versions"]] == [model_version(model)]
