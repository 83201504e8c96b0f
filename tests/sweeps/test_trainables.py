"""The trainables of the sweeps (slicing/sweeps/trainables.py): the data they share, the estimator's held-out
reports, and one tiny sweep per target end to end on Ray through `slicing tune`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import yaml
from typer.testing import CliRunner

from slicing.cli import app
from slicing.config import HISTORY
from slicing.sweeps.spec import load_sweep, sweep_scenario
from slicing.sweeps.trainables import estimator_data, idla_data
from tests.sweeps.helpers import write_sweep

runner = CliRunner()
# Tiny data for the trials: 4 sites x 60 periods of samples, a few epochs.
TINY = ["--set", "topology.sites=4", "--set", "steps=60", "--set", "seed=1"]


def _last_json(output: str) -> dict:
    return json.loads(output.strip().splitlines()[-1])


def test_estimator_data_is_the_scenario_samples():
    sweep = load_sweep("tune_configs/estimator.yaml", extra_overrides=["topology.sites=4", "steps=12"])
    logs: list[str] = []
    a = estimator_data(sweep, sweep_scenario(sweep), logs.append)
    b = estimator_data(sweep, sweep_scenario(sweep), logs.append)
    assert a.features.dtype == a.targets.dtype == np.float32
    assert a.features.shape == (len(a.targets), 2 * HISTORY + 3) and len(a.targets) > 100
    assert np.all((a.targets >= 0) & (a.targets <= 1))
    np.testing.assert_array_equal(a.features, b.features)  # the same data for every run of the sweep
    assert logs[0].startswith(f"collected {len(a.targets)} samples of 12 cells x 12 periods")


def test_idla_data_is_a_warm_population_and_its_grid_optimum():
    sweep = load_sweep("tune_configs/idla.yaml", extra_overrides=["topology.sites=4", "steps=20",
                                                                  "estimator.epochs=2"])
    sweep = sweep.model_copy(update={"trial": sweep.trial.model_copy(update={"cells": 10, "oracle_points": 6})})
    data = idla_data(sweep, sweep_scenario(sweep), lambda m: None)
    n = 12  # 10 cells rounded up to whole sites
    assert data.cell_ids.tolist() == list(range(n)) and data.period == HISTORY + 1
    assert data.z.shape == (n, 4, 2 * HISTORY + 2) and data.mask.shape == data.warm.shape == (n, 4)
    assert data.mask.all()  # the sweep file activates all four slices
    assert np.all(data.warm >= 0) and np.all(data.warm.sum(axis=1) <= 1 + 1e-9)
    assert 0 < data.oracle_utility <= n * 4 * math.log(2.0)




def _run(tmp_path: Path, name: str, extra: list[str]) -> dict:
    res = runner.invoke(app, ["tune", f"tune_configs/{name}.yaml", "--num-samples", "2", "--storage-path",
                              str(tmp_path), "--json", *TINY, *extra])
    assert res.exit_code == 0, res.output
    out = _last_json(res.stdout)
    sweep = load_sweep(f"tune_configs/{name}.yaml")
    assert out["trials"] == 2
    assert set(out["best_config"]) == set(sweep.search_space)
    assert math.isfinite(out["best_metric"])
    written = yaml.safe_load((tmp_path / name / "best_config.yaml").read_text())
    assert written == out["best_config"]
    return out


def test_tune_idla_cli(ray_session, tmp_path):
    out = _run(tmp_path, "idla", ["--set", "estimator.epochs=3"])
    assert 0.5 < out["best_metric"] < 1.1  # utility over the 0.05-grid oracle's
    assert 1 <= out["best_config"]["starts"] < 13


def test_tune_estimator_cli(ray_session, tmp_path):
    out = _run(tmp_path, "estimator", ["--set", "estimator.epochs=4"])
    assert 0 <= out["best_metric"] < 1  # held-out MAE
    assert out["best_config"]["hidden"] in [[36, 24, 16, 16], [64, 32], [32, 32, 32], [128, 64, 32]]


def test_tune_sac_cli(ray_session, tmp_path):
    """The SAC sweep end to end: two RLlib SAC trials on a 3-cell region, each reporting its reward per iteration."""
    data = yaml.safe_load(Path("tune_configs/sac.yaml").read_text())
    data["scenario"] = str(Path("scenarios/idla.yaml").resolve())
    data["trial"] = {"iterations": 2, "region": 3, "episode_len": 8}
    data["scheduler"] = None
    res = runner.invoke(app, ["tune", str(write_sweep(tmp_path, data)), "--num-samples", "2", "--storage-path",
                              str(tmp_path / "tune"), "--json", *TINY])
    assert res.exit_code == 0, res.output
    out = _last_json(res.stdout)
    assert out["trials"] == 2 and set(out["best_config"]) == {"lr", "gamma", "tau", "hidden"}
    assert math.isfinite(out["best_metric"]) and 0.0 <= out["best_metric"] <= 1.0  # min over slices of r, per step
    assert 1e-4 <= out["best_config"]["lr"] <= 1e-3 and out["best_config"]["hidden"] in [[64, 64], [128, 128],
                                                                                           [256, 256]]
