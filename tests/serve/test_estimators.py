"""Which estimator a replica uses (slicing/serve/estimators.py): file, the population's (followed), or trained."""

from __future__ import annotations

import time

import pytest

import slicing.serve.estimators as est_mod
from slicing.models.qos_estimator import (
    QosEstimator,
    build_estimator,
    estimator_payload,
    save_estimator,
    weights_version,
)
from slicing.serve.estimators import Estimators, model_from_payload, train_fallback
from slicing.serve.population_client import PopulationClient
from slicing.serve.settings import ServiceSettings


@pytest.fixture(scope="module")
def model() -> QosEstimator:
    m = build_estimator((16, 8), seed=1)
    m.version = weights_version(m)
    return m


def _no_population():
    raise LookupError("no population actor")


def _wait(cond, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.02)


class FakePopulation:
    """The two estimator calls the loader makes, answering with real estimators' payloads; ``model`` can be swapped.
    It has no RL calls: the loader's RL refresh fails on it every time, and the estimator refresh must go on."""

    def __init__(self, model: QosEstimator) -> None:
        self.model = model
        self.payload_calls = 0

    def ready_model_version(self) -> str | None:
        return self.model.version

    def estimator_payload(self) -> dict:
        self.payload_calls += 1
        return estimator_payload(self.model)


def test_model_from_payload_accepts_each_form(model, tmp_path) -> None:
    assert model_from_payload(estimator_payload(model)).version == model.version
    path = tmp_path / "m.pt"
    save_estimator(model, path)
    assert model_from_payload(path.read_bytes()).version == model.version
    import torch

    assert model_from_payload(torch.load(path, weights_only=True)).version == model.version
    fresh = build_estimator((16, 8), seed=1)
    assert model_from_payload(fresh) is fresh and fresh.version == model.version and not fresh.training
    bad = estimator_payload(model)
    bad["version"] = "0" * 12
    with pytest.raises(ValueError):
        model_from_payload(bad)
    with pytest.raises(TypeError, match="unsupported type int"):
        model_from_payload(3)


def test_estimator_from_file_is_final(model, tmp_path) -> None:
    path = tmp_path / "est.pt"
    save_estimator(model, path)
    settings = ServiceSettings(estimator_path=path)
    est = Estimators(settings, PopulationClient(settings, _no_population))
    est.start()
    _wait(lambda: est.model is not None or est.load_error is not None)
    est.stop()
    assert est.source == "file" and est.model_version == model.version and est.load_error is None


def test_a_bad_file_is_a_load_error(tmp_path) -> None:
    path = tmp_path / "est.pt"
    path.write_bytes(b"not a torch file")
    settings = ServiceSettings(estimator_path=path)
    est = Estimators(settings, PopulationClient(settings, _no_population))
    est.start()
    _wait(lambda: est.model is not None or est.load_error is not None)
    assert est.model is None and str(path) in est.load_error


def test_trained_fallback_without_population(monkeypatch) -> None:
    """No file, no population: the real fallback training (1 epoch, seeded) is the estimator."""
    monkeypatch.setattr(est_mod, "POPULATION_WAIT_S", 0.2)
    settings = ServiceSettings(train_epochs=1, seed=3)
    est = Estimators(settings, PopulationClient(settings, _no_population))
    est.start()
    _wait(lambda: est.model is not None or est.load_error is not None, 120)
    est.stop()
    assert est.source == "trained" and est.load_error is None
    assert est.model_version == weights_version(est.model)  # content hash of the weights it serves
    assert est.model_version == train_fallback(3, 1).version  # the seeded training, not a stand-in
    assert est.model_version != train_fallback(4, 1).version


def test_follows_the_population_estimator(monkeypatch, model) -> None:
    monkeypatch.setattr(est_mod, "REFRESH_S", 0.05)
    pop = FakePopulation(model)
    est = Estimators(ServiceSettings(), pop)  # type: ignore[arg-type]
    est.start()
    try:
        _wait(lambda: est.model is not None)
        assert est.source == "population" and est.model_version == model.version
        calls = pop.payload_calls
        time.sleep(0.3)
        assert pop.payload_calls == calls  # same version: not reloaded
        newer = build_estimator((16, 8), seed=2)
        newer.version = weights_version(newer)
        pop.model = newer
        _wait(lambda: est.model_version == newer.version)
        assert est.model_version == newer.version != model.version and est.source == "population"
    finally:
        est.stop()


def test_rl_checkpoint_failure_is_kept(tmp_path) -> None:
    settings = ServiceSettings(rl_checkpoint=tmp_path / "nothing")
    est = Estimators(settings, PopulationClient(settings, _no_population))
    est.load_rl()
    assert est.rl_policy is None and est.rl_error
    quiet = Estimators(ServiceSettings(), PopulationClient(ServiceSettings(), _no_population))
    quiet.load_rl()
    assert quiet.rl_policy is None and quiet.rl_error is None
