"""`slicing tune` (slicing/cli/tune.py): the command's flags replace the sweep file's values, bad input fails
before Ray starts, and a sweep whose every trial failed exits 1 with one line. Ray and Tune are replaced by
stand-ins here; real sweeps run in tests/sweeps/."""

from __future__ import annotations

import contextlib

import pytest

from slicing.cli import app
from slicing.sweeps import run
from tests.cli.helpers import runner


@pytest.fixture
def sweeps(monkeypatch) -> list:
    """The sweeps handed to ``run_sweep`` (which fails as if every trial errored), without starting Ray."""
    seen: list = []

    def failing_sweep(sweep, **kwargs):
        seen.append(sweep)
        raise run.SweepFailed(f"{sweep.name}: no trial reported {sweep.metric}")

    def no_ray(num_cpus: int = 2, address: str | None = None):
        ADDRESSES.append(address)
        return contextlib.nullcontext()

    ADDRESSES.clear()
    monkeypatch.setattr(run, "run_sweep", failing_sweep)
    monkeypatch.setattr("slicing.runtime.ray_util.local_ray", no_ray)
    return seen


ADDRESSES: list = []  # the Ray address each `slicing tune` asked for (None: RAY_ADDRESS, else an embedded Ray)


def test_flags_replace_the_files_values_and_a_failed_sweep_exits_1(sweeps, tmp_path):
    res = runner.invoke(app, ["tune", "tune_configs/estimator.yaml", "--num-samples", "3", "--storage-path",
                              str(tmp_path), "--set", "seed=5"])
    assert res.exit_code == 1, res.output
    assert "error: estimator: no trial reported mae" in " ".join(res.output.split())
    (sweep,) = sweeps
    assert sweep.num_samples == 3 and sweep.storage_path == tmp_path
    assert sweep.overrides[-1] == "seed=5" and "steps=600" in sweep.overrides  # appended to the file's
    assert ADDRESSES == [None]
    res = runner.invoke(app, ["tune", "tune_configs/estimator.yaml", "--address", "127.0.0.1:6379"])
    assert res.exit_code == 1 and ADDRESSES == [None, "127.0.0.1:6379"]  # a cluster's address goes to Ray


def test_bad_input_fails_before_the_sweep_with_exit_2(sweeps, tmp_path):
    res = runner.invoke(app, ["tune", "tune_configs/estimator.yaml", "--num-samples", "0"])
    assert res.exit_code == 2 and "Invalid value for '--num-samples'" in res.output
    res = runner.invoke(app, ["tune", "tune_configs/estimator.yaml", "--set", "topology.sitez=3"])
    assert res.exit_code == 2 and "sitez" in res.output and "Traceback" not in res.output
    assert sweeps == []  # nothing was run
