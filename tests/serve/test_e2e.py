"""POST /v1/e2e/allocate without HTTP (slicing/serve/e2e.py): loading, MicroOpt over the request's slices, the SLA
decomposition, the shared capacity, and refusals naming the field. The route itself is in tests/test_serve_app.py."""

from __future__ import annotations

import threading

import pytest
from pydantic import ValidationError

from slicing.errors import FieldError
from slicing.models.slice_model import load_slice_model
from slicing.serve.e2e import SliceModels, allocate_e2e
from slicing.serve.errors import ServiceError
from slicing.serve.models import E2eAllocateRequest
from slicing.serve.settings import ServiceSettings
from tests.optim.slice_fixtures import tiny_slice_model_file


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    return tiny_slice_model_file(tmp_path_factory.mktemp("slice") / "slice.pt")


@pytest.fixture(scope="module")
def loaded(model_file):
    settings = ServiceSettings(slice_model_path=model_file)
    models = SliceModels(settings)
    models.start()
    models.wait(60)
    assert models.source == "file" and models.error is None
    return models, settings


def req(*slices, capacity=None) -> E2eAllocateRequest:
    body = {"slices": list(slices)} | ({"capacity": capacity} if capacity else {})
    return E2eAllocateRequest.model_validate(body)


def one(sid: str = "a", **kw) -> dict:
    return {"slice_id": sid, "traffic": {"mean_users_per_s": 3.0, "std_users_per_s": 0.5}} | kw


def test_allocation_meets_beta_thresh_on_the_model(loaded, model_file) -> None:
    models, settings = loaded
    out = allocate_e2e(req(one("a"), one("b", beta_thresh=0.3), one("c", traffic={"samples": [1, 2, 2, 4]})),
                       models, settings)
    assert out["model_version"] == load_slice_model(model_file).version
    by = {s["slice_id"]: s for s in out["slices"]}
    for s in by.values():
        assert s["feasible"] and s["predicted_e_beta"] <= 0.3 + 1e-6
        assert 0 < s["transport_mbps"] <= 50 and 0 < s["cpu_millicores"] <= 4500
    assert by["a"]["predicted_e_beta"] <= 0.1 + 1e-6
    assert by["b"]["normalised_resource"] < by["a"]["normalised_resource"]  # a looser threshold costs less


def test_sla_is_decomposed_and_bounds_the_allocation(loaded) -> None:
    models, settings = loaded
    sla = {"latency_ms": 30.0, "reliability": 0.999, "throughput_mbps": 20.0}
    out = allocate_e2e(req(one("s", sla=sla), one("bad", sla=sla | {"latency_ms": 1.0})), models, settings)
    s, bad = out["slices"]
    assert set(s["targets"]) == {"ran", "transport", "core"}
    assert sum(t["latency_ms"] for t in s["targets"].values()) == pytest.approx(30.0)
    assert s["ran_delay_req_ms"] == s["targets"]["ran"]["latency_ms"]
    assert s["transport_mbps"] >= s["targets"]["transport"]["capacity_mbps"] - 1e-3
    assert not bad["feasible"] and bad["reason"].startswith("sla: latency_ms 1")


def test_shared_capacity_bounds_the_sum(loaded) -> None:
    models, settings = loaded
    out = allocate_e2e(req(one("a"), one("b"), capacity={"bandwidth_mbps": 30.0, "cpu_millicores": 3000.0}),
                       models, settings)
    assert sum(s["transport_mbps"] for s in out["slices"]) <= 30.0 * 1.001
    assert sum(s["cpu_millicores"] for s in out["slices"]) <= 3000.0 * 1.001


def test_traffic_beyond_the_trained_range_is_refused_naming_the_field(loaded) -> None:
    models, settings = loaded
    with pytest.raises(FieldError) as err:
        allocate_e2e(req(one("a"), one("b", traffic={"mean_users_per_s": 9.0})), models, settings)
    assert err.value.path == ("slices", 1, "traffic", "mean_users_per_s")
    with pytest.raises(FieldError) as err:
        allocate_e2e(req(one("a", traffic={"samples": [1.0, 7.5]})), models, settings)
    assert err.value.path == ("slices", 0, "traffic", "samples")


def test_too_many_slices_is_413(loaded, model_file) -> None:
    models, _ = loaded
    settings = ServiceSettings(slice_model_path=model_file, max_e2e_slices_per_request=2)
    with pytest.raises(ServiceError) as err:
        allocate_e2e(req(one("a"), one("b"), one("c")), models, settings)
    assert err.value.status == 413


@pytest.mark.parametrize(("body", "where"), [
    ({"slices": []}, "slices"),
    ({"slices": [one(beta_thresh=1.0)]}, "beta_thresh"),
    ({"slices": [one(beta_thresh=True)]}, "beta_thresh"),
    ({"slices": [one(traffic={"mean_users_per_s": -1.0})]}, "mean_users_per_s"),
    ({"slices": [one(traffic={"mean_users_per_s": 2.0, "samples": [1.0]})]}, "either"),
    ({"slices": [one(traffic={"samples": [1.0], "std_users_per_s": 1.0})]}, "std_users_per_s"),
    ({"slices": [one(sla={"latency_ms": 10.0, "reliability": 1.0, "throughput_mbps": 1.0})]}, "reliability"),
    ({"slices": [one(extra=1)]}, "extra")])
def test_bad_requests_are_refused_by_the_model(body: dict, where: str) -> None:
    with pytest.raises(ValidationError, match=where):
        E2eAllocateRequest.model_validate(body)


def test_503_while_the_fallback_model_trains_then_it_answers(model_file) -> None:
    gate = threading.Event()

    def slow_train(seed: int, epochs: int):
        gate.wait(30)
        return load_slice_model(model_file)

    settings = ServiceSettings(retry_after_s=2)
    models = SliceModels(settings, train=slow_train)
    models.start()  # no file configured: nothing starts until the first request
    assert models._thread is None
    with pytest.raises(ServiceError) as err:
        allocate_e2e(req(one()), models, settings)
    assert err.value.status == 503 and err.value.headers["Retry-After"] == "2"
    gate.set()
    models.wait(30)
    assert models.source == "trained"
    assert allocate_e2e(req(one()), models, settings)["slices"][0]["feasible"]


def test_a_broken_model_file_is_503_with_the_reason(tmp_path) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"junk")
    settings = ServiceSettings(slice_model_path=bad)
    models = SliceModels(settings)
    models.start()
    models.wait(30)
    with pytest.raises(ServiceError) as err:
        allocate_e2e(req(one()), models, settings)
    assert err.value.status == 503 and "failed to load" in err.value.detail
