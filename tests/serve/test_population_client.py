"""The replica's side of the population actor (slicing/serve/population_client.py), against a real
``slicing-population`` actor on the session's local Ray (12 cells, 1 shard, traffic scheme)."""

from __future__ import annotations

import asyncio

import pytest

from slicing.config import build_scenario
from slicing.errors import FieldError
from slicing.runtime.ray_util import unwrap
from slicing.serve.errors import ServiceError
from slicing.serve.models import KpiIngest
from slicing.serve.population_client import PopulationClient
from slicing.serve.settings import ServiceSettings

SETTINGS = ServiceSettings(population_timeout_s=30)


@pytest.fixture(scope="module")
def pop(ray_session):
    from slicing.runtime.population_actor import start_population_actor, stop_population_actor

    sc = build_scenario({"name": "client-test", "seed": 1, "topology": {"sites": 4}, "initial_slices": [1, 2]})
    handle = start_population_actor(sc, 1, "traffic")
    ray_session.get(handle.run_period.remote())
    yield {"handle": handle, "cells": sc.cells}
    stop_population_actor(handle)


def _record(cell: int, **kw) -> dict:
    return {"cell_id": cell, "snssai": "01-000001", "users": 3.0, "cqi": 9.0, "prb_util": 0.2,
            "throughput_mbps": 1.0, "delay_ms": 30.0} | kw


def test_field_error_survives_the_actor_call_with_its_path(pop, ray_session) -> None:
    import ray

    with pytest.raises(ray.exceptions.RayTaskError) as err:
        ray.get(pop["handle"].ingest.remote([_record(0), _record(1, cqi=16.0)]))
    cause = unwrap(err.value, FieldError)
    assert type(cause) is FieldError and cause.path == ("records", 1, "cqi")
    assert cause.message == "must be finite and [0, 15], got np.float64(16.0)"


@pytest.mark.parametrize(("records", "path", "starts"), [
    ([_record(0), _record(0, users=-1.0)], ("records", 1, "users"), "must be finite and [0, 1e+09]"),
    ([_record(1), _record(12)], ("records", 1, "cell_id"), "unknown cell 12; the population has cells 0..11"),
])
def test_call_raises_the_populations_field_error(pop, records, path, starts: str) -> None:
    client = PopulationClient(SETTINGS, lambda: pop["handle"])
    with pytest.raises(FieldError) as err:
        asyncio.run(client.call("ingest", records))
    assert err.value.path == path and err.value.message.startswith(starts)


def test_ingest_accepts_valid_records(pop) -> None:
    client = PopulationClient(SETTINGS, lambda: pop["handle"])
    body = KpiIngest.model_validate({"records": [_record(2) | {"cell_id": "2"}, _record(5) | {"cell_id": "5"}]})
    assert asyncio.run(client.ingest(body)) == {"accepted": 2}
    bad = KpiIngest.model_validate({"records": [_record(2) | {"cell_id": "99"}]})
    with pytest.raises(FieldError) as err:
        asyncio.run(client.ingest(bad))
    assert err.value.detail("body")["path"] == "body.records.0.cell_id"


def test_cells_pages_and_readiness(pop) -> None:
    client = PopulationClient(SETTINGS, lambda: pop["handle"])
    assert asyncio.run(client.cells(5, 10)) == {"cells": ["10", "11"], "total": 12, "limit": 5, "offset": 10}
    assert asyncio.run(client.readiness()) == (True, None)
    assert client.ready_model_version() is None  # the traffic scheme has no estimator: nothing to follow


def test_cell_allocation_is_cached_for_the_current_period(pop, ray_session) -> None:
    client = PopulationClient(SETTINGS, lambda: pop["handle"])

    async def scenario() -> tuple[dict, dict, dict]:
        first = await client.cell_allocation("4")
        for _ in range(100):  # the watcher has seen the period: the next answer is cached
            if client._cache_period == first["period"]:
                break
            await asyncio.sleep(0.05)
        again = await client.cell_allocation("4")
        cached = await client.cell_allocation("4")
        await asyncio.to_thread(ray_session.get, pop["handle"].run_period.remote())
        for _ in range(100):
            newer = await client.cell_allocation("4")
            if newer["period"] == first["period"] + 1:
                break
            await asyncio.sleep(0.05)
        client.stop()
        return first, cached if cached is again else {}, newer

    first, cached, newer = asyncio.run(scenario())
    assert cached == first  # the same object served twice from the cache
    assert newer["period"] == first["period"] + 1  # a new period empties the cache
    shares = [s["share"] for s in first["slices"]]
    assert first["cell_id"] == "4" and first["scheme"] == "traffic" and sum(shares) <= 1 + 1e-12
    assert all(0 <= s["rrm_policy"]["min_ratio"] <= s["rrm_policy"]["max_ratio"] <= 100 for s in first["slices"])


@pytest.mark.parametrize("cell", ["12", "abc", "-1", "99999999999999999999"])
def test_unknown_cell_is_404(pop, cell: str) -> None:
    client = PopulationClient(SETTINGS, lambda: pop["handle"])
    with pytest.raises(ServiceError) as err:
        asyncio.run(client.cell_allocation(cell))
    assert err.value.status == 404 and err.value.detail == f"unknown cell {cell!r}"
    client.stop()


def test_no_population_is_503_with_retry_after() -> None:
    def missing():
        raise LookupError("no population actor")

    client = PopulationClient(ServiceSettings(retry_after_s=4), missing)
    with pytest.raises(ServiceError) as err:
        asyncio.run(client.cells(10, 0))
    assert err.value.status == 503 and err.value.headers == {"Retry-After": "4"}
    assert asyncio.run(client.readiness()) == (False, "population not available")
    assert client.ready_model_version() is None
