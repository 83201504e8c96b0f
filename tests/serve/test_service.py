"""The HTTP service's logic without HTTP or Ray (slicing/serve/service.py, settings.py, serve_models.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from slicing.config import HISTORY
from slicing.models.qos_estimator import build_estimator, save_estimator
from slicing.optim.rrm import RrmPolicyRatios, check_rrm_invariants
from slicing.serve.models import AllocateRequest
from slicing.serve.runner import random_cells
from slicing.serve.service import (
    ServiceError,
    SlicingService,
    cell_key,
    check_token,
    ingest_error_detail,
    model_from_payload,
)
from slicing.serve.settings import ServiceSettings, load_settings


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    m = build_estimator((16, 8), seed=1)
    save_estimator(m, tmp_path_factory.mktemp("est") / "m.pt")
    return m


@pytest.fixture(scope="module")
def service(model):
    svc = SlicingService(ServiceSettings(), population_lookup=lambda: None)
    svc._set_model(model, "test")
    return svc


def test_settings_from_env(monkeypatch) -> None:
    monkeypatch.setenv("SLICING_API_TOKEN", "s3cret")
    monkeypatch.setenv("SLICING_MAX_CELLS_PER_REQUEST", "7")
    s = load_settings(max_inflight_requests=3)
    assert s.ingest_enabled and s.api_token.get_secret_value() == "s3cret"
    assert (s.max_cells_per_request, s.max_inflight_requests) == (7, 3)
    assert "s3cret" not in repr(s)
    monkeypatch.delenv("SLICING_API_TOKEN")
    assert not load_settings().ingest_enabled
    monkeypatch.setenv("SLICING_MAX_CELLS_PER_REQUEST", "0")
    with pytest.raises(ValidationError, match="max_cells_per_request"):
        load_settings()


def test_check_token() -> None:
    with pytest.raises(ServiceError) as err:
        check_token(ServiceSettings(api_token=None), "Bearer x")
    assert err.value.status == 503 and err.value.detail == "ingest disabled: SLICING_API_TOKEN not set"
    s = ServiceSettings(api_token="tok")
    for header in (None, "", "Bearer", "Bearer wrong", "Basic tok", "tok"):
        with pytest.raises(ServiceError) as err:
            check_token(s, header)
        assert err.value.status == 401 and err.value.headers["WWW-Authenticate"] == "Bearer"
    check_token(s, "Bearer tok")
    check_token(s, "bearer tok")


def test_cell_key_and_ingest_detail() -> None:
    assert cell_key("123") == 123
    k = cell_key("cell-a")
    assert k == cell_key("cell-a") and 0 <= k < 2**63 and k != cell_key("cell-b")
    assert ingest_error_detail("records[4].snssai: unknown S-NSSAI '09-000009'")["path"] == "body.records.4.snssai"
    assert ingest_error_detail("records[2]: expected an object")["path"] == "body.records.2"


def test_model_from_payload_roundtrips(model) -> None:
    from slicing.runtime.weights import estimator_payload

    rebuilt = model_from_payload(estimator_payload(model))
    assert rebuilt.version == model.version
    with pytest.raises(ValueError):
        bad = estimator_payload(model)
        bad["version"] = "0" * 12
        model_from_payload(bad)


def _check_response(out: dict, req: AllocateRequest, version: str) -> None:
    assert out["model_version"] == version
    assert [a["cell_id"] for a in out["allocations"]] == [c.cell_id for c in req.cells]
    for a, c in zip(out["allocations"], req.cells, strict=True):
        assert [s["snssai"] for s in a["slices"]] == [s.snssai for s in c.slices]
        shares = np.array([s["share"] for s in a["slices"]])
        assert (shares >= 0).all() and shares.sum() <= 1.0
        assert math.isfinite(a["predicted_utility"]) and 0 <= a["predicted_utility"] <= len(shares) * math.log(2)
        r = [s["rrm_policy"] for s in a["slices"]]
        ratios = RrmPolicyRatios(max_ratio=np.array([[x["max_ratio"] for x in r]]),
                                 min_ratio=np.array([[x["min_ratio"] for x in r]]),
                                 dedicated_ratio=np.array([[x["dedicated_ratio"] for x in r]]))
        check_rrm_invariants(ratios)


@pytest.mark.parametrize("scheme", ["idla", "traffic", "equal", "oracle"])
def test_allocate_vectorised_all_schemes(service, model, scheme: str) -> None:
    rng = np.random.default_rng(3)
    req = AllocateRequest.model_validate({"scheme": scheme, "cells": random_cells(150, rng, (1, 6))})
    out = service.allocate(req)
    _check_response(out, req, model.version)
    if scheme == "equal":
        for a in out["allocations"]:
            k = len(a["slices"])
            assert all(abs(s["share"] - 1.0 / k) < 1e-12 for s in a["slices"])


def test_traffic_scheme_uses_last_users_times_requirement(service) -> None:
    h = [1.0] * HISTORY

    def sl(sn: str, users_last: float, tp: float) -> dict:
        return {"snssai": sn, "throughput_req_mbps": tp, "delay_req_ms": 50.0,
                "users_history": h[:-1] + [users_last], "cqi_history": [9.0] * HISTORY}

    req = AllocateRequest.model_validate({"scheme": "traffic", "cells": [
        {"cell_id": "x", "slices": [sl("01-000001", 2.0, 1.0), sl("01-000002", 3.0, 2.0)]}]})
    shares = [s["share"] for s in service.allocate(req)["allocations"][0]["slices"]]
    assert shares == pytest.approx([2.0 / 8.0, 6.0 / 8.0])


def test_idla_answer_is_deterministic(service) -> None:
    rng = np.random.default_rng(5)
    req = AllocateRequest.model_validate({"scheme": "idla", "cells": random_cells(40, rng, (2, 4))})
    assert service.allocate(req) == service.allocate(req)


def test_allocate_without_model_is_503() -> None:
    svc = SlicingService(ServiceSettings(), population_lookup=lambda: None)
    req = AllocateRequest.model_validate({"cells": random_cells(1, np.random.default_rng(0))})
    with pytest.raises(ServiceError) as err:
        svc.allocate(req)
    assert err.value.status == 503 and "Retry-After" in err.value.headers


def _wait_loaded(svc: SlicingService, timeout: float = 20.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while svc.model is None and svc.load_error is None and time.monotonic() < deadline:
        time.sleep(0.05)


def _no_population():
    raise LookupError("no population actor")


def test_estimator_from_file(model, tmp_path) -> None:
    path = tmp_path / "est.pt"
    save_estimator(model, path)
    svc = SlicingService(ServiceSettings(estimator_path=path), population_lookup=_no_population)
    svc.start()
    _wait_loaded(svc)
    svc.stop()
    assert svc.estimator_source == "file" and svc.model_version == model.version


def test_estimator_trained_without_population_and_readiness(model, monkeypatch) -> None:
    import asyncio

    import slicing.serve.service as svc_mod

    monkeypatch.setattr(svc_mod, "POPULATION_WAIT_S", 0.2)
    calls = []
    svc = SlicingService(ServiceSettings(), population_lookup=_no_population,
                         train=lambda seed, epochs: calls.append((seed, epochs)) or model)
    svc.start()
    _wait_loaded(svc)
    svc.stop()
    assert svc.estimator_source == "trained" and calls == [(0, 40)]
    ready = asyncio.run(svc.readiness())
    assert ready["estimator"] and not ready["population"] and not ready["ready"]
    assert "population not available" in ready["detail"]
    with pytest.raises(ServiceError) as err:
        asyncio.run(svc.cells(10, 0))
    assert err.value.status == 503 and err.value.headers["Retry-After"] == "1"


def test_cli_serve_arguments() -> None:
    from typer.testing import CliRunner

    from slicing.cli import app

    runner = CliRunner()
    r = runner.invoke(app, ["serve", "--no-http"])  # a local population would die with the process
    assert r.exit_code == 2
    r = runner.invoke(app, ["serve", "--port", "0"])
    assert r.exit_code == 2
    r = runner.invoke(app, ["bench", "serve", "--help"])
    assert r.exit_code == 0 and "--requests" in r.output
