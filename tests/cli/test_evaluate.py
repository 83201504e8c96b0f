"""`slicing evaluate` (slicing/cli/evaluate.py) end to end: the JSON contract, the files written, and bad input
-> one clear line, exit 2."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from slicing.cli import app
from tests.cli.helpers import FAST, runner
from tests.cli.helpers import last_json as _last_json


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


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["evaluate", "--scenario", "scenarios/idla.yaml", "--set", "topology.sites=-2"], "topology.sites"),
        (["evaluate", "--scenario", "scenarios/idla.yaml", "--set", "bogus.key=1"], "bogus"),
        (["evaluate", "--scenario", "scenarios/idla.yaml", "--schemes", "idla,magic"], "magic"),
        (["evaluate", "--scenario", "missing.yaml"], "does not exist"),
    ],
)
def test_bad_input_exits_2_with_a_named_error(args, needle):
    res = runner.invoke(app, args)
    assert res.exit_code == 2
    assert needle in res.output and "Traceback" not in res.output


@pytest.mark.parametrize("schemes", ["rl", "drl,drl", "idla,foo"])
def test_cli_evaluate_bad_schemes_exit_2(schemes):
    res = CliRunner().invoke(app, ["evaluate", "--schemes", schemes, "--steps", "30"])
    assert res.exit_code == 2
    assert "--schemes" in res.output
