"""`slicing bench --cells N` in one process: its figures on a small population and a saved estimator."""

from __future__ import annotations

from pathlib import Path

from slicing.bench.core import bench_core
from slicing.models.qos_estimator import save_estimator
from tests.models.helpers import synth_dataset


def test_bench_core_reports_a_feasible_allocation_close_to_the_grid_oracle(tmp_path: Path) -> None:
    from slicing.config import EstimatorConfig
    from slicing.models.qos_training import train_estimator

    x, y = synth_dataset(4000, seed=2)
    model, _ = train_estimator(x, y, EstimatorConfig(epochs=3), seed=1)
    save_estimator(model, tmp_path / "e.pt")
    logs: list[str] = []
    out = bench_core(30, seed=0, log=logs.append, estimator=tmp_path / "e.pt")
    assert set(out) == {"cells", "sim_step_s", "allocate_s", "cells_per_s", "utility_vs_grid_oracle", "oracle_s",
                        "max_share_sum"}
    assert out["cells"] == 30 and out["max_share_sum"] <= 1.0
    assert 0.97 <= out["utility_vs_grid_oracle"] <= 1.05  # IDLA is continuous, the oracle on the 0.05 grid
    assert any("IDLA allocated 30 cells" in m for m in logs)
    again = bench_core(30, seed=0, log=logs.append, estimator=tmp_path / "e.pt")
    assert again["utility_vs_grid_oracle"] == out["utility_vs_grid_oracle"]  # deterministic
