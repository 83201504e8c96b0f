"""The imitation experiment's driver (slicing/experiments/imitation.py) end to end through its command, at a tiny
budget: recording, BC, the warm-started and the scratch curve, the plot and summary.json."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from slicing.cli import app


def test_experiment_cli_tiny_end_to_end(ray_session, tmp_path):
    args = ["experiment", "imitation", "--cells", "3", "--days", "1", "--episode-len", "16", "--bc-iterations",
            "3", "--iterations", "1", "--early", "1", "--out", str(tmp_path), "--json"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert set(summary["early_reward"]) == {"bc_warm_start", "scratch"} and summary["iterations"] == 1
    assert all(0 <= v <= 1 for v in summary["early_reward"].values())
    assert len(summary["curves"]["bc_warm_start"]) == 1 and Path(summary["data"]).is_file()
    assert {"bc_loss", "baseline_reward", "clone_reward", "final_reward"} <= set(summary)
    assert Path(summary["plot"]).stat().st_size > 0 and (tmp_path / "summary.json").is_file()
