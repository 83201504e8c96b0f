"""`slicing bench --cells N --shards K`: whole IDLA periods of a sharded population on Ray."""

from __future__ import annotations

from pathlib import Path

import pytest

from slicing.bench.population import bench_population
from slicing.models.qos_estimator import build_estimator, save_estimator


def test_bench_population_times_idla_rounds(ray_session, tmp_path: Path) -> None:
    save_estimator(build_estimator((16, 16), seed=0), tmp_path / "e.pt")
    logs: list[str] = []
    out = bench_population(30, 2, periods=1, log=logs.append, estimator=tmp_path / "e.pt", checkpoint=False)
    assert out["cells"] == 30 and out["shards"] == 2
    assert out["round_s"] > 0 and out["cells_per_s"] == pytest.approx(30 / out["round_s"], rel=0.05)
    assert any(m.startswith("period ") for m in logs)  # one timed IDLA round, no warm-up or fallback cells
