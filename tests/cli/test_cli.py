"""The `slicing` command end to end: JSON contracts, files written, and bad input -> one clear line, exit 2."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from slicing.cli import app

runner = CliRunner()
FAST = ["--set", "estimator.epochs=8", "--set", "seed=1"]


def _last_json(output: str) -> dict:
    return json.loads(output.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def evaluation(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    res = runner.invoke(app, ["evaluate", "--scenario", "scenarios/idla.yaml", "--steps", "150",
                              "--out", str(out), "--json", *FAST])
    assert res.exit_code == 0, res.output
    return _last_json(res.stdout), out


def test_evaluate_json_contract(evaluation):
    summary, _ = evaluation
    assert summary["scenario"] == "idla" and summary["cells"] == 12 and summary["steps"] == 150
    assert 0 <= summary["estimator"]["mae"] <= 1 and summary["estimator"]["samples"] > 100
    assert set(summary["schemes"]) == {"idla", "traffic", "equal", "oracle"}
    for phases in summary["schemes"].values():
        assert set(phases) == {"H1", "H2"}
        for m in phases.values():
            assert set(m) == {"mean_satisfaction", "p_satisfied", "mean_utility", "max_share_sum"}
            assert 0 <= m["p_satisfied"] <= 1 and 0 <= m["mean_satisfaction"] <= 1
            assert m["max_share_sum"] <= 1.0
            assert 0 <= m["mean_utility"] <= 4 * np.log(2)


def test_evaluate_writes_plots(evaluation):
    _, out = evaluation
    for name in ["throughput.png", "satisfaction_cdf.png", "summary.json"]:
        assert (out / name).stat().st_size > 1000 or name == "summary.json"
    assert (out / "throughput.png").read_bytes()[:4] == b"\x89PNG"


def test_collect_then_train_roundtrip(tmp_path):
    data = tmp_path / "s.parquet"
    res = runner.invoke(app, ["collect", "--scenario", "scenarios/idla.yaml", "--steps", "40", "--out", str(data),
                              "--json"])
    assert res.exit_code == 0, res.output
    assert _last_json(res.stdout)["samples"] > 0 and data.is_file()
    model = tmp_path / "m.pt"
    res = runner.invoke(app, ["train-estimator", "--data", str(data), "--out", str(model), "--json", *FAST])
    assert res.exit_code == 0, res.output
    info = _last_json(res.stdout)
    assert len(info["version"]) == 12 and 0 <= info["mae"] < 0.5 and model.is_file()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["evaluate", "--scenario", "scenarios/idla.yaml", "--set", "topology.sites=-2"], "topology.sites"),
        (["evaluate", "--scenario", "scenarios/idla.yaml", "--set", "bogus.key=1"], "bogus"),
        (["evaluate", "--scenario", "scenarios/idla.yaml", "--schemes", "idla,magic"], "magic"),
        (["evaluate", "--scenario", "missing.yaml"], "does not exist"),
        (["collect", "--set", "traffic.model=csv_trace"], "trace_csv"),
    ],
)
def test_bad_input_exits_2_with_a_named_error(args, needle):
    res = runner.invoke(app, args)
    assert res.exit_code == 2
    assert needle in res.output and "Traceback" not in res.output


def test_corrupt_parquet_and_bad_estimator_files(tmp_path):
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    res = runner.invoke(app, ["train-estimator", "--data", str(bad)])
    assert res.exit_code == 2 and "bad.parquet" in res.output
    bad_model = tmp_path / "bad.pt"
    bad_model.write_bytes(b"garbage")
    res = runner.invoke(app, ["bench", "--cells", "30", "--estimator", str(bad_model)])
    assert res.exit_code == 2 and "bad.pt" in res.output
