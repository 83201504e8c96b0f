"""Shared fixtures. Ray is started at most once per session, only by tests that ask for it."""

from __future__ import annotations

import pytest

from slicing.config import Scenario, load_scenario


@pytest.fixture(scope="session")
def idla_scenario() -> Scenario:
    return load_scenario("scenarios/idla.yaml")


@pytest.fixture(scope="session")
def small_scenario() -> Scenario:
    """12 sites (36 cells), short run, all four slices exercised by the schedule."""
    return load_scenario("scenarios/idla.yaml", ["topology.sites=12", "steps=200", "seed=3"])


@pytest.fixture(scope="session")
def ray_session():
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
