"""Shared fixtures. Ray is started at most once per session, only by tests that ask for it."""

from __future__ import annotations

import os

import pytest

# Ray takes the loopback address as the node IP only when this is 0 (ray/_private/services.py,
# get_node_ip_address); otherwise it resolves the host's interface address. Keep all of Ray on 127.0.0.1.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

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
