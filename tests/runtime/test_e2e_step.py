"""The population's microopt step: e2e slice instances per site group, allocated in one MicroOpt call per shard."""

from __future__ import annotations

import numpy as np
import pytest

from slicing.models.slice_model import load_slice_model, slice_model_payload
from slicing.runtime.e2e_step import E2eStep, E2eStepConfig
from slicing.runtime.population import Population
from tests.optim.slice_fixtures import tiny_slice_model_file


@pytest.fixture(scope="module")
def payload(tmp_path_factory):
    model = load_slice_model(tiny_slice_model_file(tmp_path_factory.mktemp("slice") / "slice.pt"))
    return slice_model_payload(model)


def test_instances_are_site_groups_with_summed_users(payload) -> None:
    step = E2eStep({"sites_per_instance": 2, "users_per_traffic_unit": 10.0}, payload)
    cells = np.arange(12)  # 4 sites -> 2 groups
    hist = np.zeros((12, 2, 4))
    hist[:6, 0] = 5.0  # group 0, slice 0: 6 cells x 5 users = 30 users -> 3 users/s
    hist[6:, 0] = 2.0  # group 1, slice 0: 12 users -> 1.2 users/s
    hist[6:, 1] = 100.0  # group 1, slice 1: 600 users -> clipped at the model's 5 users/s
    mask = np.zeros((12, 2), dtype=bool)
    mask[:, 0] = True
    mask[6:9, 1] = True  # slice 1 active in 3 cells of group 1 only
    hist[9:, 1] = 1e6  # inactive cells' users do not count
    res = step.allocate(cells, hist, mask)
    assert list(zip(res["group"].tolist(), res["slice"].tolist(), strict=True)) == [(0, 0), (1, 0), (1, 1)]
    np.testing.assert_allclose(res["traffic_mean"], [3.0, 1.2, 5.0])
    assert res["clipped"] == 1
    assert res["feasible"].all() and (res["e_beta"] <= 0.1 + 1e-6).all()
    assert res["r"][0] @ [1 / 50, 1 / 4500] > res["r"][1] @ [1 / 50, 1 / 4500]  # more traffic, more resource


def test_bad_config_is_refused_naming_the_field(payload) -> None:
    with pytest.raises(ValueError, match="beta_thresh"):
        E2eStep({"beta_thresh": 1.5}, payload)


def test_population_runs_the_microopt_step_each_period(scenario, payload) -> None:
    e2e = {"config": E2eStepConfig(users_per_traffic_unit=20.0).model_dump(), "model": payload}
    pop = Population(scenario, 2, "traffic", in_process=True, e2e=e2e)
    stats = [pop.run_period() for _ in range(6)]
    assert "e2e_instances" not in stats[0]  # nothing before the history is full
    last = stats[-1]
    assert last["e2e_instances"] > 0, last
    results = pop.e2e_allocations()
    assert len(results) == 2  # one per shard
    sites = set()
    for shard_result in results:
        assert shard_result["model_version"] == payload["version"]
        for row in shard_result["instances"]:
            assert 0 <= row["transport_mbps"] <= 50 and 0 <= row["cpu_millicores"] <= 4500
            assert row["snssai"]
            sites.add(row["group"])
    assert sites == set(range(scenario.cells // 3))  # every site has its instances
    page = pop.e2e_page(limit=3, offset=1)
    assert page["total"] == sum(len(r["instances"]) for r in results) and len(page["instances"]) == 3
    assert page["instances"][0] == results[0]["instances"][1]


def test_a_population_without_the_step_says_so(scenario) -> None:
    pop = Population(scenario, 1, "traffic", in_process=True)
    pop.run_period()
    with pytest.raises(LookupError, match="no microopt step"):
        pop.e2e_page()


def test_slas_set_the_cells_delay_requirement_and_floor_the_instances(scenario, payload) -> None:
    sla = {"latency_ms": 40.0, "reliability": 0.999, "throughput_mbps": 20.0}
    e2e = {"config": E2eStepConfig(slas={1: sla}).model_dump(), "model": payload}
    pop = Population(scenario, 1, "traffic", in_process=True, e2e=e2e)
    target = pop.sla_targets[1]
    assert 2.0 < target["ran_delay_req_ms"] < 40.0
    j = [s.id for s in scenario.slices].index(1)
    sim = pop.shards[0].sim
    assert sim.delay_req_ms[j] == pytest.approx(target["ran_delay_req_ms"])  # IDLA's d* for slice 1
    assert sim.delay_req_ms[j] != scenario.slices[j].delay_req_ms
    for _ in range(6):
        pop.run_period()
    rows = [r for r in pop.e2e_allocations()[0]["instances"] if r["slice"] == j]
    assert rows
    for r in rows:
        assert r["transport_mbps"] >= target["transport_mbps"] - 1e-6
        assert r["cpu_millicores"] >= target["cpu_millicores"] - 1e-6


def test_an_sla_that_cannot_be_met_is_refused_naming_the_slice(scenario, payload) -> None:
    from slicing.errors import FieldError

    bad = {"latency_ms": 1.0, "reliability": 0.999, "throughput_mbps": 5.0}
    with pytest.raises(FieldError) as err:
        Population(scenario, 1, "traffic", in_process=True,
                   e2e={"config": E2eStepConfig(slas={1: bad}).model_dump(), "model": payload})
    assert err.value.path == ("slas", 1) and "latency_ms 1" in err.value.message
    with pytest.raises(FieldError, match="no slice type 9"):
        Population(scenario, 1, "traffic", in_process=True,
                   e2e={"config": E2eStepConfig(slas={9: bad | {"latency_ms": 50.0}}).model_dump(),
                        "model": payload})
