"""Fixtures of the RLlib tests, each built once.

- ``ppo_checkpoint`` (session): a tiny PPO checkpoint from `slicing train-rl`, used by the training, inference
  and ``rl`` scheme tests (three files, so session-scoped).
- ``scenario``, ``recording``, ``bc`` (module): the imitation recording and RLlib BC on it (test_imitation.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from slicing.cli import app
from slicing.config import load_scenario
from slicing.rl.imitation import record_baseline
from tests.rl.helpers import IMITATION_TINY, TRAIN_RL_TINY


@pytest.fixture(scope="session")
def ppo_checkpoint(ray_session, tmp_path_factory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("rl_ppo")
    res = CliRunner().invoke(app, ["train-rl", *TRAIN_RL_TINY, "--algo", "ppo", "--groups", "2", "--iterations",
                                   "2", "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    return summary, Path(summary["checkpoint"])


@pytest.fixture(scope="module")
def scenario():
    return load_scenario("scenarios/idla.yaml")


@pytest.fixture(scope="module")
def recording(scenario, tmp_path_factory) -> dict:
    return record_baseline(scenario, IMITATION_TINY, tmp_path_factory.mktemp("imitation") / "rollouts.parquet")


@pytest.fixture(scope="module")
def bc(ray_session, scenario, recording) -> tuple[dict, list[float]]:
    from slicing.rl.imitation import train_bc

    return train_bc(scenario, recording["path"], IMITATION_TINY)
