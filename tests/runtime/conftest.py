"""Fixtures of the runtime tests: a 36-cell scenario crossing a slice event, two tiny estimators, and the
undisturbed single-shard reference run every sharded or restarted run is compared with."""

from __future__ import annotations

import pytest

from tests.runtime.helpers import PERIODS
from tests.runtime.multinode import reference_run, small_scenario, tiny_estimator


@pytest.fixture(scope="session")
def scenario():
    return small_scenario(sites=12, seed=3)


@pytest.fixture(scope="session")
def model(scenario):
    return tiny_estimator(scenario, seed=3)


@pytest.fixture(scope="session")
def other_model(scenario):
    return tiny_estimator(scenario, seed=4)


@pytest.fixture(scope="session")
def reference(scenario, model):
    """Undisturbed 1-shard in-process IDLA run: per period (allocation after it, KPI arrays)."""
    return reference_run(scenario, model, PERIODS)
