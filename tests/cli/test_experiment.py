"""`slicing experiment safety|imitation|transfer` (slicing/cli/experiment.py): bad flags exit 2 with one line
that names the flag and the rule, before anything runs. The end-to-end runs are in tests/experiments/."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from slicing.cli import app


@pytest.mark.parametrize("args, needle", [
    (["--threshold", "1.5"], "--threshold"),
    (["--eval-days", "9999"], "--eval-days 9999: must leave training days"),
    (["--cells", "0"], "--cells"),
    (["--warmup", "9", "--iterations", "9"], "--warmup 9: must be < iterations (9)"),
])
def test_cli_rejects_bad_flags(args, needle):
    res = CliRunner().invoke(app, ["experiment", "safety", *args])
    assert res.exit_code == 2
    assert needle in " ".join(res.output.replace("│", " ").split()), res.output


@pytest.mark.parametrize(("flags", "message"), [
    (["--algo", "dqn"], "--algo 'dqn': Input should be 'ppo' or 'sac'"),
    (["--iterations", "2", "--early", "3"], "--early 3: must be <= iterations (2)"),
    (["--days", "0"], "--days"),
])
def test_experiment_cli_rejects_bad_flags(flags, message):
    res = CliRunner().invoke(app, ["experiment", "imitation", *flags])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert message in " ".join(res.output.replace("│", " ").split()), res.output


@pytest.mark.parametrize(("args", "match"), [
    (["--early", "5", "--iterations", "2"], "--early 5: must be <= iterations (2)"),
    (["--strategies", "model,copy"], "--strategies 'model,copy'"),
    (["--sources", "1"], "--sources"),
    (["--set", "topology.sites=4"], "needs >= 15 cells"),
    (["--set", "cell_classes=[{name: a, cells: [99]}]"], "cell id 99 out of range"),
])
def test_cli_bad_input_is_one_line(args, match):
    res = CliRunner().invoke(app, ["experiment", "transfer", *args])
    assert res.exit_code == 2
    assert match in " ".join(res.output.replace("│", " ").split()), res.output
