"""Settings of the HTTP service (slicing/serve/settings.py): read from ``SLICING_*`` when loaded, overrides win,
strict and frozen, the token kept secret."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from slicing.serve.settings import ServiceSettings, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """No SLICING_* variable of the machine leaks into a test."""
    import os

    for key in [k for k in os.environ if k.startswith("SLICING_")]:
        monkeypatch.delenv(key)


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


def test_defaults_are_the_documented_ones():
    s = load_settings()
    assert s.api_token is None and not s.ingest_enabled
    assert (s.max_cells_per_request, s.max_inflight_requests, s.retry_after_s) == (2000, 32, 1)
    assert (s.estimator_path, s.rl_checkpoint) == (None, None)
    assert (s.train_epochs, s.seed, s.population_timeout_s, s.torch_threads) == (40, 0, 5.0, 1)
    import slicing.serve.settings as module

    for name in ServiceSettings.model_fields:  # every setting has a row in the module's table
        assert f"SLICING_{name.upper()}" in module.__doc__, name


def test_read_when_loaded_not_at_import(monkeypatch, tmp_path):
    before = load_settings()
    monkeypatch.setenv("SLICING_ESTIMATOR_PATH", str(tmp_path / "m.pt"))
    monkeypatch.setenv("SLICING_POPULATION_TIMEOUT_S", "2.5")
    after = load_settings()
    assert before.estimator_path is None
    assert after.estimator_path == Path(tmp_path / "m.pt") and after.population_timeout_s == 2.5
    assert load_settings(population_timeout_s=9).population_timeout_s == 9  # an override wins over the environment


def test_empty_token_disables_ingest_and_settings_are_frozen(monkeypatch):
    monkeypatch.setenv("SLICING_API_TOKEN", "")
    s = load_settings()
    assert s.api_token is not None and not s.ingest_enabled  # set but empty: still disabled
    with pytest.raises(ValidationError, match="frozen"):
        s.seed = 3  # type: ignore[misc]
    monkeypatch.setenv("SLICING_TORCH_THREADS", "many")
    with pytest.raises(ValidationError, match="torch_threads"):
        load_settings()
