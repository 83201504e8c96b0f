"""The replica's service composed of its parts (slicing/serve/service.py) and its settings (settings.py), in-process
without a population."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from pydantic import ValidationError

from slicing.bench.serve import random_cells
from slicing.models.qos_estimator import build_estimator, save_estimator
from slicing.serve.errors import ServiceError
from slicing.serve.models import AllocateRequest
from slicing.serve.service import SlicingService
from slicing.serve.settings import ServiceSettings, load_settings


def _no_population():
    raise LookupError("no population actor")


@pytest.fixture(scope="module")
def estimator_file(tmp_path_factory):
    model = build_estimator((16, 8), seed=1)
    path = tmp_path_factory.mktemp("est") / "m.pt"
    save_estimator(model, path)
    return path, model.version


def test_settings_from_env(monkeypatch) -> None:
    monkeypatch.setenv("SLICING_API_TOKEN", "s3cret")
    monkeypatch.setenv("SLICING_MAX_CELLS_PER_REQUEST", "7")
    s = load_settings(max_inflight_requests=3, seed=None)
    assert s.ingest_enabled and s.api_token.get_secret_value() == "s3cret"
    assert (s.max_cells_per_request, s.max_inflight_requests, s.seed) == (7, 3, 0)
    assert "s3cret" not in repr(s)
    monkeypatch.delenv("SLICING_API_TOKEN")
    assert not load_settings().ingest_enabled
    monkeypatch.setenv("SLICING_MAX_CELLS_PER_REQUEST", "0")
    with pytest.raises(ValidationError, match="max_cells_per_request"):
        load_settings()
    with pytest.raises(ValidationError, match="extra"):
        ServiceSettings(no_such_setting=1)


def test_service_starts_serves_and_reports_readiness(estimator_file) -> None:
    path, version = estimator_file
    svc = SlicingService(ServiceSettings(estimator_path=path), population_lookup=_no_population)
    req = AllocateRequest.model_validate({"scheme": "equal", "cells": random_cells(3, np.random.default_rng(0))})
    with pytest.raises(ServiceError) as err:  # before start: no estimator yet
        svc.allocate(req)
    assert err.value.status == 503
    before = asyncio.run(svc.readiness())
    assert not before["ready"] and "estimator loading" in before["detail"]

    svc.start()
    deadline = time.monotonic() + 20
    while svc.estimators.model is None and time.monotonic() < deadline:
        time.sleep(0.02)
    svc.stop()
    assert svc.allocate(req)["model_version"] == version
    ready = asyncio.run(svc.readiness())
    assert ready == {"ready": False, "estimator": True, "population": False, "model_version": version,
                     "estimator_source": "file", "rl_version": None, "detail": "population not available"}


def test_readiness_reports_a_failed_rl_checkpoint(estimator_file, tmp_path) -> None:
    svc = SlicingService(ServiceSettings(rl_checkpoint=tmp_path / "missing"), population_lookup=_no_population)
    svc.estimators.load_rl()
    detail = asyncio.run(svc.readiness())["detail"].split("; ")
    assert detail[0] == "population not available" and detail[1] == "estimator loading"
    assert detail[2].startswith("RL checkpoint failed to load: ")
