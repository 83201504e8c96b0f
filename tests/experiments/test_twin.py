"""The twin experiment (slicing/experiments/twin.py, `slicing experiment twin`): every --part end to end on tiny
budgets (real RLlib DQN agents in Ray tasks, the twin, the real base station), its JSON beside the paper's and its
figures; bad input exits 2 naming the flag or the file."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from slicing.cli import app
from slicing.experiments.twin import PAPER, rounds_to, run_twin_experiment
from slicing.rl.settings import TwinSettings

PNG = b"\x89PNG\r\n\x1a\n"
TINY_FLAGS = ["--seeds", "0,1", "--rounds", "2", "--steps-per-round", "8", "--twin-steps", "8",
              "--learning-starts", "4", "--twin-updates", "2", "--eval-steps", "3", "--distill-epochs", "2",
              "--offline-transitions", "32", "--offline-epochs", "2", "--landscape-points", "5",
              "--hidden", "16,16", "--twin-hidden", "8", "--twin-seq-len", "2"]
TINY = TwinSettings(seeds=(0, 1), rounds=2, steps_per_round=8, twin_steps=8, learning_starts=4, twin_updates=2,
                    eval_steps=3, distill_epochs=2, offline_transitions=32, offline_epochs=2, landscape_points=5,
                    hidden=(16, 16), twin_hidden=8, twin_seq_len=2)


def _figures_ok(res):
    assert res["figures"]
    for path in res["figures"]:
        with open(path, "rb") as f:
            assert f.read(8) == PNG


@pytest.fixture(scope="module")
def trained(ray_session, tmp_path_factory):
    out = tmp_path_factory.mktemp("twin")
    res = CliRunner().invoke(app, ["experiment", "twin", "--part", "train", *TINY_FLAGS, "--out", str(out),
                                   "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout.strip().splitlines()[-1]), out


def test_train_reports_every_arm_and_seed_beside_the_paper(trained):
    res, out = trained
    assert res["part"] == "train" and res["algo"] == "ddqn" and res["seeds"] == [0, 1]
    assert set(res["final_reward"]) == {"plain", "twin", "random"}
    assert set(res["rounds_to_reward"]["0.8"]) == {"plain", "twin"}
    assert all(len(v) == 2 for v in res["rounds_to_reward_per_seed"]["0.8"].values())
    assert res["paper"]["ddqn_rounds_to_0.8"] == {"plain": 1500, "twin": 1000}
    assert {"state_rmse_1", "reward_mae", "utility_mae"} <= set(res["twin_fidelity"])
    assert res["steps_per_round"] == 8
    _figures_ok(res)
    for arm in ("plain", "twin"):
        for seed in (0, 1):
            assert (out / "agents" / "ddqn" / f"{arm}_s{seed}.pt").exists()
    assert (out / "agents" / "ddqn" / "digital_twin_s0.pt").exists()
    assert json.loads((out / "train.json").read_text())["part"] == "train"


def test_distill_and_landscape_reuse_the_trained_agents(trained):
    _, out = trained
    res = run_twin_experiment("distill", TINY, out)
    assert set(res["students"]) == {"plain", "twin"} and set(res["students"]["twin"]) == {"4", "16"}
    assert 0 <= res["students"]["twin"]["4"]["agreement"]["mean"] <= 1
    _figures_ok(res)
    res = run_twin_experiment("landscape", TINY, out)
    assert set(res["curvature"]) == {"gradient", "random"}
    assert res["flatter"]["gradient"] in ("plain", "twin") and res["paper"] == PAPER["landscape"]
    _figures_ok(res)


def test_offline_compares_algorithm2_with_and_without_the_twin(ray_session, tmp_path):
    res = run_twin_experiment("offline", TINY.model_copy(update={"seeds": (0,)}), tmp_path)
    assert set(res["offline"]) == {"plain", "twin"} and res["epochs"] == 2 and res["dataset"] == 32
    assert isinstance(res["twin_better"], bool)
    _figures_ok(res)


def test_rounds_to_is_the_first_round_reaching_the_level():
    assert rounds_to([0.1, 0.85, 0.7, 0.9], 0.8) == 2
    assert rounds_to([0.1, 0.2], 0.8) is None


@pytest.mark.parametrize(("args", "needle"), [
    (["--algo", "a2c"], "--algo 'a2c'"),
    (["--zeta", "1.5"], "--zeta"),
    (["--part", "everything"], "--part 'everything'"),
    (["--seeds", "x"], "--seeds 'x'"),
    (["--steps-per-round", "8"], "--steps-per-round 8: must be >= 2 * twin_seq_len (16)"),
])
def test_bad_flags_exit_2_naming_the_flag(args, needle):
    res = CliRunner().invoke(app, ["experiment", "twin", *args])
    assert res.exit_code == 2, res.output
    assert needle in " ".join(res.output.replace("│", " ").split()), res.output


def test_a_twin_file_of_the_wrong_shape_exits_2(tmp_path):
    bad = tmp_path / "twin.pt"
    torch.save({"kind": "slicing-twin", "hidden": 4, "state_dict": {"lstm.weight_ih_l0": torch.zeros(1)},
                "resid_std": [0.1] * 3, "start_states": [[1.0] * 3]}, bad)
    res = CliRunner().invoke(app, ["experiment", "twin", "--part", "offline", "--twin", str(bad)])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "weights do not fit" in " ".join(res.output.split()), res.output


TINY_SCENARIO = """name: tiny
seed: 3
steps: 100            # H0 = [0, 20), H1 = [20, 60)
topology:
  sites: 1
initial_slices: [1, 2, 4]
schedule:
  - at_fraction: 0.6
    add: [3]
"""
MULTICELL_FLAGS = ["--h1-periods", "16", "--round-periods", "8", "--twin-periods", "8", "--twin-updates", "2",
                   "--twin-hidden", "8", "--twin-seq-len", "2"]


def test_multicell_compares_the_drl_scheme_with_and_without_the_twin(ray_session, tmp_path):
    scenario = tmp_path / "tiny.yaml"
    scenario.write_text(TINY_SCENARIO)
    res = CliRunner().invoke(app, ["experiment", "twin", "--part", "multicell", "--scenario", str(scenario),
                                   "--seeds", "0,1", *MULTICELL_FLAGS, "--out", str(tmp_path), "--json"])
    assert res.exit_code == 0, res.output
    res = json.loads(res.stdout.strip().splitlines()[-1])
    assert res["part"] == "multicell" and res["cells"] == 3 and res["h0_end"] == 20 and res["h1_periods"] == 16
    assert set(res["periods_to_level"]) == {"0.9", "0.95"}
    assert all(len(v) == 2 for v in res["periods_to_level_per_seed"]["0.9"].values())
    assert set(res["early_reward"]) == set(res["final_reward"]) == {"plain", "twin", "traffic"}
    assert all(0 <= v["mean"] <= 1 for v in res["final_reward"].values())  # min over slices of r
    assert res["twin_rounds"] == 2  # H1 periods 20..35, a round every 8
    assert {"state_rmse_1", "persistence_rmse_1", "reward_mae"} <= set(res["twin_fidelity"]["h0_only"])
    assert "not in the paper" in res["paper"]["finding"]
    _figures_ok(res)


@pytest.mark.parametrize(("args", "needle"), [
    (["--h1-periods", "41"], "--h1-periods 41"),  # H1 of the tiny scenario has 40 periods
    (["--h1-periods", "16", "--twin-seq-len", "10"], "--twin-seq-len 10"),  # H0 has 19 transitions
])
def test_multicell_budgets_beyond_the_scenario_exit_2(tmp_path, args, needle):
    scenario = tmp_path / "tiny.yaml"
    scenario.write_text(TINY_SCENARIO)
    res = CliRunner().invoke(app, ["experiment", "twin", "--part", "multicell", "--scenario", str(scenario), *args])
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output
    assert needle in " ".join(res.output.replace("│", " ").split()), res.output


def test_multicell_with_a_missing_scenario_exits_2(tmp_path):
    res = CliRunner().invoke(app, ["experiment", "twin", "--part", "multicell", "--scenario",
                                   str(tmp_path / "none.yaml")])
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output
    assert "none.yaml" in res.output
