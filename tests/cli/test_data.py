"""`slicing collect` and `slicing train-estimator` (slicing/cli/data.py): a round trip through Parquet, and bad
input -> one clear line, exit 2."""

from __future__ import annotations

import pytest

from slicing.cli import app
from tests.cli.helpers import FAST, runner
from tests.cli.helpers import last_json as _last_json


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
        (["collect", "--set", "traffic.model=csv_trace"], "trace_csv"),
    ],
)
def test_bad_input_exits_2_with_a_named_error(args, needle):
    res = runner.invoke(app, args)
    assert res.exit_code == 2
    assert needle in res.output and "Traceback" not in res.output


def test_corrupt_parquet_file(tmp_path):
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    res = runner.invoke(app, ["train-estimator", "--data", str(bad)])
    assert res.exit_code == 2 and "bad.parquet" in res.output
