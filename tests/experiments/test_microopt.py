"""The MicroOpt experiment driver (slicing/experiments/microopt.py): every --part end to end on tiny budgets (real
slice-model training, BoTorch, RLlib PPO, the ground-truth simulator), checked for the paper's layout and for
what must hold whatever the budget."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from slicing.cli import app
from slicing.experiments.microopt import PAPER, norm, run_microopt_experiment
from slicing.experiments.microopt_settings import MicroOptExperimentSettings

PNG = b"\x89PNG\r\n\x1a\n"
TINY = MicroOptExperimentSettings(epochs=60, atlas_iterations=2, cadrl_iterations=1, cadrl_plus_iterations=1,
                                  rl_batch=128, slots=8, gt_intervals=2, domain_iterations=1, domain_slices=6)


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return tmp_path_factory.mktemp("microopt")


@pytest.fixture(scope="module")
def model_part(out):
    return run_microopt_experiment("model", TINY, out)


def _figures_ok(res: dict) -> None:
    assert res["plots"]
    for path in res["plots"]:
        with open(path, "rb") as f:
            assert f.read(8) == PNG


def test_model_part_reports_every_split_beside_the_paper(model_part, out) -> None:
    res = model_part
    assert res["paper"] == PAPER["model"] and res["epochs"] == 60
    for m in ("nll", "mse", "mae"):
        assert set(res[m]) == {"train", "val", "test"} and all(np.isfinite(v) for v in res[m].values())
    assert res["samples"]["train"] == 4 * res["samples"]["val"]  # the 0.2 validation split of the grid samples
    assert (out / "slice_model.pt").is_file() and json.loads((out / "model.json").read_text()) == res
    _figures_ok(res)


def test_constant_part_is_table_one(model_part, out, ray_session) -> None:
    res = run_microopt_experiment("constant", TINY, out)
    assert set(res["table"]) == {"microopt", "atlas", "cadrl", "peak"}
    assert res["model_version"] == model_part["version"]
    mo = np.array(res["table"]["microopt"])
    assert mo[:, 0].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert res["max_e_beta_excess"]["microopt"] <= 1e-3  # MicroOpt meets beta_thresh on the model
    peak = np.array(res["table"]["peak"])
    assert (peak[:, 1:3] == peak[0, 1:3]).all()  # Peak-alloc: one allocation whatever the traffic
    assert res["mean_norm"]["microopt"] == pytest.approx(float(norm(mo[:, [2, 1]]).mean()), abs=1e-3)
    assert res["paper"]["table"] == PAPER["constant"]
    assert (out / "cadrl" / "slicing_cadrl.json").is_file()
    _figures_ok(res)


def test_thresholds_part_covers_nine_settings(model_part, out, ray_session) -> None:
    res = run_microopt_experiment("thresholds", TINY, out)
    by = res["by_threshold"]["microopt"]
    assert set(by["q_thresh"]) == {"3.0", "4.0", "5.0"} and set(by["beta_thresh"]) == {"0.1", "0.2", "0.3"}
    assert by["q_thresh"]["3.0"] < by["q_thresh"]["5.0"]  # a lower QoS threshold needs less
    assert by["beta_thresh"]["0.3"] < by["beta_thresh"]["0.1"]  # a looser degradation threshold needs less
    assert set(res["saving_pct"]) == {"atlas", "cadrl", "peak"} and res["max_e_beta_excess"] <= 1e-3
    _figures_ok(res)


def test_dynamic_part_adds_atlas_plus_and_cadrl_plus(model_part, out, ray_session) -> None:
    res = run_microopt_experiment("dynamic", TINY, out)
    assert len(res["distributions"]) == 10
    assert set(res["mean_norm"]) == {"microopt", "atlas", "atlas_plus", "cadrl", "cadrl_plus", "peak"}
    assert all(len(v["norm"]) == 10 for v in res["per_distribution"].values())
    assert res["e_beta_excess"]["microopt"] <= 1e-3
    assert len(list((out / "cadrl_plus").iterdir())) == 10  # one CaDRL+ per predicted distribution
    _figures_ok(res)


def test_ablation_part(model_part, out) -> None:
    res = run_microopt_experiment("ablation", TINY, out)
    a = res["approaches"]
    assert a["microopt"]["violations"] == 0
    assert a["microopt_2sigma"]["mean_norm"] > a["microopt"]["mean_norm"]
    assert a["microopt_0sigma"]["mean_e_beta"] > a["microopt"]["mean_e_beta"]
    _figures_ok(res)


def test_groundtruth_part_measures_on_the_simulator(model_part, out) -> None:
    res = run_microopt_experiment("groundtruth", TINY, out)
    assert len(res["settings"]) == 9 and res["instances"] == 45 and res["intervals"] == 2
    assert 0.0 <= res["violation_rate"] <= 1.0
    for v in res["settings"].values():
        assert 0.0 <= v["e_beta_groundtruth"] <= 1.0 and v["e_beta_model"] <= v["beta_thresh"] + 1e-3
    _figures_ok(res)


def test_domains_part_compares_the_agents_with_microopt(model_part, out, ray_session) -> None:
    res = run_microopt_experiment("domains", TINY, out)
    a = res["approaches"]
    assert set(a) == {"microopt_decomposition", "domain_agents", "decomposition_floor"} and res["slices"] == 6
    # the decomposition floors alone are the least resource; MicroOpt lifts them where E[beta] needs it
    assert a["decomposition_floor"]["mean_norm"] <= a["microopt_decomposition"]["mean_norm"] + 1e-9
    assert a["microopt_decomposition"]["model_violations"] == 0
    assert res["training"]["iterations"] == 1
    _figures_ok(res)


def test_cli_runs_a_part_and_refuses_an_unknown_one(model_part, out) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["experiment", "microopt", "--part", "ablation", "--out", str(out), "--epochs", "60",
                                 "--slots", "8", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.strip().splitlines()[-1])["part"] == "ablation"
    bad = runner.invoke(app, ["experiment", "microopt", "--part", "nope", "--out", str(out)])
    assert bad.exit_code == 2 and "must be one of" in " ".join(bad.output.replace("│", " ").split())
