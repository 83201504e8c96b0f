"""`slicing train-rl` (slicing/cli/rl.py): options generated from ``TrainSettings``; a bad value exits 2 naming
the flag and the rule. The training itself is tested in tests/rl/test_train.py."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from slicing.cli import app
from tests.rl.helpers import TRAIN_RL_TINY as TINY


@pytest.mark.parametrize(("args", "needle"), [
    (["--algo", "dqn"], "--algo 'dqn': Input should be 'ppo' or 'sac'"),
    (["--reward", "max"], "--reward 'max': Input should be 'min' or 'sum_log'"),
    (["--groups", "7"], "--groups 7: at most one group per cell (6 cells in the region)"),
    (["--iterations", "0"], "--iterations"),
])
def test_cli_rejects_bad_values_naming_the_flag(args, needle):
    res = CliRunner().invoke(app, ["train-rl", *TINY, *args])
    assert res.exit_code == 2, res.output
    assert needle in " ".join(res.output.replace("│", " ").split()), res.output


def test_cells_flag_is_the_region_capped_at_the_scenario(monkeypatch, tmp_path):
    """--cells is TrainSettings.region (capped at the scenario's cells), the seed is the scenario's; train() gets
    the validated settings (Ray and training replaced by stand-ins that record what they were given)."""
    import slicing.rl.train
    import slicing.runtime.ray_util

    got = {}

    def fake_train(sc, settings, out, progress=None):
        got.update(settings=settings, cells=sc.cells, out=out)
        return {"iterations": 0, "env_steps": 0, "agent_steps": 0, "mean_reward": None, "checkpoint": str(out)}

    monkeypatch.setattr(slicing.runtime.ray_util, "ensure_ray", lambda *a, **k: None)
    monkeypatch.setattr(slicing.rl.train, "train", fake_train)
    res = CliRunner().invoke(app, ["train-rl", "--scenario", "scenarios/idla.yaml", "--set", "seed=7", "--cells",
                                   "999", "--algo", "sac", "--out", str(tmp_path), "--json"])
    assert res.exit_code == 0, res.output
    s = got["settings"]
    assert s.region == got["cells"] == 12 and s.seed == 7 and s.algo == "sac" and s.iterations == 5
    assert '"checkpoint"' in res.stdout.strip().splitlines()[-1]
