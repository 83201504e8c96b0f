"""A1 slice SLA policies below HTTP: the policy model's rules, conflicts, per-cell requirements, the simulator's
guaranteed aggregate, and a population that applies, reports and keeps policies (in-process, with storage)."""

from __future__ import annotations

import numpy as np
import pytest

from slicing import a1
from slicing.errors import FieldError
from slicing.runtime.population import PolicyConflict, Population, UnknownPolicy
from slicing.sim.simulator import Simulator
from tests.runtime.multinode import small_scenario, tiny_estimator

PLMN = {"mcc": "001", "mnc": "01"}


def policy(sst=1, sd="000001", cells=None, **objectives) -> dict:
    body = {"scope": {"sliceId": {"sst": sst, "sd": sd, "plmnId": PLMN}},
            "sliceSlaObjectives": objectives or {"slicePriority": 2.0}}
    if cells is not None:
        body["sliceSlaResources"] = {"cellIdList": [{"plmnId": PLMN, "cId": {"ncI": c}} for c in cells]}
    return body


@pytest.fixture(scope="module")
def scenario():
    return small_scenario(sites=12, seed=3).model_copy(update={"steps": 200})


@pytest.fixture(scope="module")
def model(scenario):
    return tiny_estimator(scenario, seed=3, epochs=20)


@pytest.mark.parametrize("body, path", [
    ([], ()),
    ({"scope": {"sliceId": {"sst": 1, "plmnId": PLMN}}}, ("sliceSlaObjectives",)),
    (policy(maxDlThptPerUe=-1), ("sliceSlaObjectives", "maxDlThptPerUe")),
    (policy(maxDlThptPerUe=float("nan")), ("sliceSlaObjectives", "maxDlThptPerUe")),
    (policy(maxDlThptPerUe="100"), ("sliceSlaObjectives", "maxDlThptPerUe")),
    (policy(slicePriority=1000), ("sliceSlaObjectives", "slicePriority")),
    (policy(maxUlThptPerUe=10), ("sliceSlaObjectives", "maxUlThptPerUe")),
    (policy(sd="xyz"), ("scope", "sliceId", "sd")),
    (policy(cells=[]), ("sliceSlaResources", "cellIdList")),
])
def test_a_bad_policy_names_the_field(body, path) -> None:
    with pytest.raises(FieldError) as err:
        a1.parse_policy(body)
    assert err.value.path == path, err.value


def test_objectives_are_optional_but_not_all_absent() -> None:
    with pytest.raises(FieldError, match="at least one objective") as err:
        a1.parse_policy(policy(slicePriority=None) | {"sliceSlaObjectives": {}})
    assert err.value.path == ("sliceSlaObjectives",)
    p = a1.parse_policy(policy(maxDlPacketDelayPerUe=20))
    assert p.snssai() == "01-000001" and p.cells() is None


def test_conflicts_are_same_slice_and_overlapping_cells(scenario) -> None:
    held = {"a": a1.parse_policy(policy(cells=[1, 2, 3]))}
    assert a1.conflict(held, "b", a1.parse_policy(policy(cells=[3, 4]))) == "a"
    assert a1.conflict(held, "b", a1.parse_policy(policy(cells=[4, 5]))) is None
    assert a1.conflict(held, "b", a1.parse_policy(policy())) == "a"  # every cell overlaps
    assert a1.conflict(held, "b", a1.parse_policy(policy(sst=1, sd="000002"))) is None  # another slice
    assert a1.conflict(held, "a", a1.parse_policy(policy())) is None  # replacing itself


def test_scope_is_checked_against_the_catalogue_and_the_population(scenario) -> None:
    with pytest.raises(FieldError, match="catalogue") as err:
        a1.check_scope(a1.parse_policy(policy(sst=9, sd="000009")), scenario)
    assert err.value.path == ("scope", "sliceId")
    with pytest.raises(FieldError, match="unknown cell 36") as err:
        a1.check_scope(a1.parse_policy(policy(cells=[0, 36])), scenario)
    assert err.value.path == ("sliceSlaResources", "cellIdList", 1, "cId", "ncI")


def test_cell_requirements_override_only_the_covered_cells_and_slice(scenario) -> None:
    parsed = {"gold": a1.parse_policy(policy(cells=[4, 5], maxDlThptPerUe=3000, maxDlPacketDelayPerUe=40,
                                             guaDlThptPerSlice=20_000, slicePriority=3)),
              "iot": a1.parse_policy(policy(sst=2, sd="000004", maxDlPacketDelayPerUe=10))}
    ids = np.arange(3, 9)
    req = a1.cell_requirements(a1.rules_of(parsed, scenario), scenario, ids)
    cat_tp = np.array([s.throughput_req_mbps for s in scenario.slices])
    assert np.array_equal(req.throughput_req_mbps[[0, 3, 4, 5]], np.broadcast_to(cat_tp, (4, 4)))
    assert np.array_equal(req.throughput_req_mbps[1:3, 0], [3.0, 3.0]) and req.delay_req_ms[1, 0] == 40
    assert np.array_equal(req.slice_mbps[1:3, 0], [20.0, 20.0]) and np.isinf(req.slice_mbps[0, 0])
    assert np.array_equal(req.weight[:, 0], [1, 3, 3, 1, 1, 1]) and (req.weight[:, 1:] == 1).all()
    assert (req.delay_req_ms[:, 3] == 10).all()  # the iot policy has no cell list: every cell
    assert np.array_equal(req.covered["gold"][0], [1, 2]) and req.covered["iot"][1] == 3
    # what the allocator sees: phi* raised to the guaranteed aggregate per expected user, at most the demand
    users = np.full((6, 4), 4.0)
    demand = np.array([4.0, 1.0, 1.0, 1.0])
    ctx = req.context_throughput(users, demand)
    assert ctx[1, 0] == 4.0  # min(20 / 4, 4.0) = 4 > phi* = 3
    assert ctx[0, 0] == cat_tp[0] and ctx[1, 1] == cat_tp[1]


def test_the_simulator_measures_a_guaranteed_aggregate(scenario) -> None:
    sim = Simulator(scenario, np.arange(6))
    shares = np.full((6, 4), 0.25)
    base = Simulator(scenario, np.arange(6)).step(shares)
    n, s = 6, 4
    agg = np.full((n, s), np.inf)
    agg[:, 0] = 1e6  # more than any cell can serve: r is served / offered for slice 0
    sim.set_requirements(slice_mbps=agg)
    rep = sim.step(shares)
    served_fraction = np.minimum(rep.throughput_mbps[:, 0] * rep.users[:, 0] / np.maximum(rep.offered_mbps[:, 0],
                                                                                          1e-12), 1.0)
    act = rep.mask[:, 0] & (rep.users[:, 0] > 1e-6)
    assert np.all(rep.r[act, 0] <= served_fraction[act] + 1e-9)
    assert np.array_equal(rep.r[:, 1:], base.r[:, 1:])  # other slices untouched
    sim.set_requirements()  # back to the catalogue
    assert sim._cell_req is None
    with pytest.raises(ValueError, match="throughput_req_mbps"):
        sim.set_requirements(throughput_req_mbps=np.zeros((n, s)))


def test_population_applies_reports_keeps_and_drops_policies(scenario, model, tmp_path) -> None:
    store = str(tmp_path / "store")
    pop = Population(scenario, 2, "idla", model, storage=store, in_process=True)
    for _ in range(6):
        pop.run_period()
    gold = policy(cells=list(range(12)), maxDlPacketDelayPerUe=40, slicePriority=4)
    assert pop.put_policy("gold", gold)["created"] is True
    assert pop.policy_status("gold")["enforceStatus"] == "NOT_ENFORCED"
    with pytest.raises(PolicyConflict, match="gold"):
        pop.put_policy("silver", policy(cells=[11, 12]))
    with pytest.raises(FieldError) as err:
        pop.put_policy("bad id", gold)
    assert err.value.path == ("policyId",)
    ref = Population(scenario, 2, "idla", model, in_process=True)  # the same run without the policy
    for _ in range(7):
        ref.run_period()
    pop.run_period()
    with_policy, without = pop.allocations_array(), ref.allocations_array()
    assert with_policy[:12, 0].mean() > without[:12, 0].mean() + 0.05  # more for the prioritised slice
    assert np.array_equal(with_policy[18:], without[18:])  # the other shard's cells are untouched
    status = pop.policy_status("gold")
    assert status["enforceStatus"] == "ENFORCED" and status["cellsActive"] == 12 and status["infeasibleCount"] == 0

    # a restart on the same storage keeps the policy, its effective period, and the shards' requirements
    pop.shutdown()
    again = Population(scenario, 2, "idla", model, storage=store, in_process=True)
    assert again.policy_ids() == ["gold"] and again.policy("gold") == gold
    assert again.policy_status("gold")["effectivePeriod"] == 7
    assert again.requirements(3)["01-000001"]["policy"] == "gold"
    assert again.requirements(3)["01-000001"]["delay_req_ms"] == 40.0
    again.run_period()
    assert again.policy_status("gold")["enforceStatus"] == "ENFORCED"

    again.delete_policy("gold")
    with pytest.raises(UnknownPolicy):
        again.delete_policy("gold")
    again.run_period()
    assert again.requirements(3)["01-000001"] == {"throughput_req_mbps": 2.0, "delay_req_ms": 100.0,
                                                   "guaranteed_mbps": None, "priority": 1.0, "policy": None}
    assert Population(scenario, 2, "idla", model, storage=store, in_process=True).policy_ids() == []
