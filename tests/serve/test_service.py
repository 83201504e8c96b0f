"""The replica's service composed of its parts (slicing/serve/service.py), in-process without a population. (Its
settings are tested in test_settings.py.)"""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from slicing.bench.serve import random_cells
from slicing.models.qos_estimator import build_estimator, save_estimator
from slicing.serve.errors import ServiceError
from slicing.serve.models import AllocateRequest
from slicing.serve.service import SlicingService
from slicing.serve.settings import ServiceSettings


def _no_population():
    raise LookupError("no population actor")


@pytest.fixture(scope="module")
def estimator_file(tmp_path_factory):
    model = build_estimator((16, 8), seed=1)
    path = tmp_path_factory.mktemp("est") / "m.pt"
    save_estimator(model, path)
    return path, model.version


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
