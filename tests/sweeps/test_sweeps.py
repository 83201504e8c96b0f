"""Tune sweeps: the sweep files validate, bad keys fail naming them, and tiny sweeps run end to end on Ray."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from slicing.cli import app
from slicing.sweeps.spec import Sweep, SweepFileError, decode, load_sweep, sweep_scenario, to_tune_space

runner = CliRunner()
# Tiny data for the trials: 4 sites x 60 periods of samples, a few epochs.
TINY = ["--set", "topology.sites=4", "--set", "steps=60", "--set", "seed=1"]


def _flat(output: str) -> str:
    """Rich wraps long error lines at the console width; compare on single spaces."""
    return " ".join(output.split())


def _last_json(output: str) -> dict:
    return json.loads(output.strip().splitlines()[-1])


@pytest.mark.parametrize("name", ["estimator", "idla", "sac"])
def test_sweep_files_load(name):
    sweep = load_sweep(f"tune_configs/{name}.yaml")
    assert isinstance(sweep, Sweep) and sweep.target == name and sweep.name == name
    assert sweep.num_samples >= 2 and sweep.search_space
    space = to_tune_space(sweep)
    assert set(space) == set(sweep.search_space)
    sweep_scenario(sweep)  # the scenario and its overrides validate too


def test_non_scalar_choices_roundtrip():
    sweep = load_sweep("tune_configs/estimator.yaml")
    cats = to_tune_space(sweep)["hidden"].categories
    assert all(isinstance(c, str) for c in cats)  # Optuna's categorical distribution needs scalars
    config = {"hidden": cats[1], "lr": 1e-3, "batch_size": 128}
    assert decode(sweep, config) == {"hidden": [64, 32], "lr": 1e-3, "batch_size": 128}


def _write(tmp_path: Path, data: dict) -> Path:
    p = tmp_path / "sweep.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


@pytest.mark.parametrize(("edit", "needle"), [
    (lambda d: d.update(num_sample=3), "num_sample: Extra inputs are not permitted (unknown key)"),
    (lambda d: d["search_space"].update(bogus={"type": "uniform", "low": 0, "high": 1}),
     "search_space.bogus: not a parameter of the idla target"),
    (lambda d: d["search_space"].update(starts={"type": "randint", "low": 1, "high": 100}),
     "search_space.starts.high: Input should be less than or equal to 64"),
    (lambda d: d["search_space"].update(starts={"type": "uniform", "low": 1, "high": 8}),
     "search_space.starts: starts is an integer; use randint or choice"),
    (lambda d: d["search_space"].update(step_x={"type": "loguniform", "low": 0, "high": 1}),
     "search_space.step_x.loguniform: Value error, low (0.0) must be > 0"),
    (lambda d: d.update(scheduler={"type": "asha", "max_t": 2, "grace_period": 5}),
     "grace_period (5) must be <= max_t (2)"),
    (lambda d: d.update(target="ppo"), "target: Input should be 'estimator', 'idla' or 'sac'"),
], ids=["unknown-top-key", "unknown-param", "bound-out-of-range", "uniform-for-int", "loguniform-zero",
        "asha-grace", "bad-target"])
def test_bad_key_names_it(tmp_path, edit, needle):
    data = yaml.safe_load(Path("tune_configs/idla.yaml").read_text())
    data["scenario"] = str(Path("scenarios/idla.yaml").resolve())
    edit(data)
    with pytest.raises(SweepFileError) as err:
        load_sweep(_write(tmp_path, data))
    assert needle.replace("Value error, ", "") in str(err.value)


def test_cli_bad_file_exits_2(tmp_path):
    data = yaml.safe_load(Path("tune_configs/idla.yaml").read_text())
    data["search_space"]["decay"]["hgih"] = 0.99
    res = runner.invoke(app, ["tune", str(_write(tmp_path, data))])
    assert res.exit_code == 2
    assert "search_space.decay" in _flat(res.output) and "hgih" in _flat(res.output)
    res = runner.invoke(app, ["tune", "tune_configs/idla.yaml", "--set", "topology.sitez=3"])
    assert res.exit_code == 2 and "topology.sitez" in _flat(res.output)
    res = runner.invoke(app, ["tune", str(tmp_path / "missing.yaml")])
    assert res.exit_code == 2 and "does not exist" in _flat(res.output)


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
    res = runner.invoke(app, ["tune", str(_write(tmp_path, data)), "--num-samples", "2", "--storage-path",
                              str(tmp_path / "tune"), "--json", *TINY])
    assert res.exit_code == 0, res.output
    out = _last_json(res.stdout)
    assert out["trials"] == 2 and set(out["best_config"]) == {"lr", "gamma", "tau", "hidden"}
    assert math.isfinite(out["best_metric"]) and 0.0 <= out["best_metric"] <= 1.0  # min over slices of r, per step
    assert 1e-4 <= out["best_config"]["lr"] <= 1e-3 and out["best_config"]["hidden"] in [[64, 64], [128, 128],
                                                                                           [256, 256]]


def test_optuna_is_optional(tmp_path):
    import importlib.util

    from slicing.sweeps.run import _searcher

    data = yaml.safe_load(Path("tune_configs/idla.yaml").read_text())
    data.update(search="optuna", scenario=str(Path("scenarios/idla.yaml").resolve()))
    sweep = load_sweep(_write(tmp_path, data))
    if importlib.util.find_spec("optuna") is None:
        with pytest.raises(SweepFileError, match="pip install optuna"):
            _searcher(sweep)
    else:
        assert type(_searcher(sweep)).__name__ == "OptunaSearch"


def test_held_out_reports_do_not_change_training():
    import numpy as np

    from slicing.config import EstimatorConfig
    from slicing.models.qos_training import train_estimator

    rng = np.random.default_rng(0)
    x = rng.random((400, 13)).astype(np.float32)
    y = (x[:, 0] > 0.5).astype(np.float32)
    cfg = EstimatorConfig(hidden=(8,), epochs=7, batch_size=64)
    _, plain = train_estimator(x, y, cfg, seed=3)
    seen: list[tuple[int, float]] = []
    _, reported = train_estimator(x, y, cfg, seed=3, held_out=lambda e, m: seen.append((e, m)), held_out_every=3)
    assert [e for e, _ in seen] == [3, 6, 7]
    assert seen[-1][1] == pytest.approx(reported.mae_test) and reported.mae_test == plain.mae_test
