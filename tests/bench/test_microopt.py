"""`slicing bench microopt` (slicing/bench/microopt.py) on a few instances and a tiny model."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from slicing.cli import app
from tests.optim.slice_fixtures import tiny_slice_model_file


def test_bench_microopt_small(tmp_path) -> None:
    model = tiny_slice_model_file(tmp_path / "slice.pt")
    result = CliRunner().invoke(app, ["bench", "microopt", "--instances", "40", "--slots", "4", "--model", str(model),
                                      "--json"])
    assert result.exit_code == 0, result.output
    res = json.loads(result.output.strip().splitlines()[-1])
    assert res["instances"] == 40 and res["grid_points"] == 51 * 91
    assert res["microopt_s"] > 0 and res["peak_grid_s"] > 0
    # both times are rounded to 1 ms: a grid pass of ~20 ms moves their quotient by up to ~3 %
    rounding = 0.0005 / res["peak_grid_s"] + 0.0005 / res["microopt_s"]
    assert abs(res["ratio"] - res["microopt_s"] / res["peak_grid_s"]) <= (0.02 + rounding) * res["ratio"]
    assert res["feasible_share"] > 0.9 and res["max_e_beta_excess_feasible"] <= 1e-4
    assert res["mean_norm_microopt"] < res["mean_norm_peak_at_thresholds"] * 1.05


def test_bench_microopt_missing_model_is_a_clear_error(tmp_path) -> None:
    result = CliRunner().invoke(app, ["bench", "microopt", "--model", str(tmp_path / "nope.pt")])
    assert result.exit_code == 2 and "no such file" in " ".join(result.output.replace("│", " ").split())
