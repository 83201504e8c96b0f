"""The sweep file (slicing/sweeps/spec.py): the files of tune_configs/ validate, bad keys fail naming them, the
search space goes to Tune and back, and the CLI reports a bad file with exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from slicing.cli import app
from slicing.config import IdlaConfig
from slicing.sweeps.spec import Sweep, SweepFileError, apply_params, decode, load_sweep, sweep_scenario, to_tune_space
from tests.sweeps.helpers import write_sweep

runner = CliRunner()


def _flat(output: str) -> str:
    """Rich wraps long error lines at the console width; compare on single spaces."""
    return " ".join(output.split())


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
        load_sweep(write_sweep(tmp_path, data))
    assert needle.replace("Value error, ", "") in str(err.value)


def test_cli_bad_file_exits_2(tmp_path):
    data = yaml.safe_load(Path("tune_configs/idla.yaml").read_text())
    data["search_space"]["decay"]["hgih"] = 0.99
    res = runner.invoke(app, ["tune", str(write_sweep(tmp_path, data))])
    assert res.exit_code == 2
    assert "search_space.decay" in _flat(res.output) and "hgih" in _flat(res.output)
    res = runner.invoke(app, ["tune", "tune_configs/idla.yaml", "--set", "topology.sitez=3"])
    assert res.exit_code == 2 and "topology.sitez" in _flat(res.output)
    res = runner.invoke(app, ["tune", str(tmp_path / "missing.yaml")])
    assert res.exit_code == 2 and "does not exist" in _flat(res.output)


def test_cli_values_replace_the_file_and_the_scenario_is_found_beside_it(tmp_path):
    sweep = load_sweep("tune_configs/idla.yaml", num_samples=3, storage_path=tmp_path / "st",
                       extra_overrides=["seed=5"])
    assert sweep.num_samples == 3 and sweep.storage_path == tmp_path / "st"
    assert sweep.overrides[-1] == "seed=5" and len(sweep.overrides) > 1  # appended after the file's own
    assert sweep.scenario == Path("tune_configs/../scenarios/idla.yaml")  # relative to the sweep file
    sc = sweep_scenario(sweep)
    assert sc.seed == 5 and sc.topology.sites == 12  # the file's override and the CLI's
    with pytest.raises(SweepFileError, match=r"scenario \(.*\): topology.sitez"):
        sweep_scenario(sweep.model_copy(update={"overrides": ["topology.sitez=1"]}))


def test_metric_defaults_and_apply_params():
    sweep = load_sweep("tune_configs/idla.yaml")
    assert (sweep.metric_name, sweep.metric_mode, sweep.asha) == ("utility_vs_grid_oracle", "max", None)
    est = load_sweep("tune_configs/estimator.yaml")
    assert (est.metric_name, est.metric_mode) == ("mae", "min") and est.asha.max_t == 12
    with pytest.raises(ValueError, match="mode: required when metric is set"):
        Sweep.model_validate({**sweep.model_dump(), "metric": "allocate_s", "mode": None})
    cfg = apply_params(sweep, IdlaConfig(), {"starts": 3, "decay": 0.95})
    assert isinstance(cfg, IdlaConfig) and (cfg.starts, cfg.decay) == (3, 0.95)
    assert cfg.step_x == IdlaConfig().step_x  # the other fields are the base's
    with pytest.raises(SweepFileError, match="idla parameters: starts"):
        apply_params(sweep, IdlaConfig(), {"starts": 0})
