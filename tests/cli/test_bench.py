"""`slicing bench` (slicing/cli/bench.py): bad input -> one clear line, exit 2, before anything is timed. The
benchmarks themselves are tested in tests/bench/."""

from __future__ import annotations

from slicing.cli import app
from tests.cli.helpers import runner


def test_bad_estimator_file(tmp_path):
    bad_model = tmp_path / "bad.pt"
    bad_model.write_bytes(b"garbage")
    res = runner.invoke(app, ["bench", "--cells", "30", "--estimator", str(bad_model)])
    assert res.exit_code == 2 and "bad.pt" in res.output


def test_more_shards_than_sites_names_the_flag():
    res = runner.invoke(app, ["bench", "--cells", "6", "--shards", "3"])  # 6 cells = 2 sites
    assert res.exit_code == 2
    assert "--shards 3: at most one shard per site (2 sites)" in " ".join(res.output.replace("│", " ").split())


def test_ranges_of_the_subcommands_are_checked():
    res = runner.invoke(app, ["bench", "rl", "--cells", "2"])
    assert res.exit_code == 2 and "--cells" in res.output
    res = runner.invoke(app, ["bench", "serve", "--requests", "5"])
    assert res.exit_code == 2 and "--requests" in res.output
