"""`slicing bench --cells N --shards K`: whole IDLA periods of a sharded population on Ray."""

from __future__ import annotations

from pathlib import Path

import numpy as np
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
    assert out["periods"] == 1 and out["round_first_s"] == out["round_max_s"] == pytest.approx(out["round_s"], abs=1e-3)
    # the yardstick: the 0.05-grid oracle on the same cells and features, in one process and on the shards
    assert out["oracle_s"] > 0 and out["oracle_shards_s"] > 0
    assert out["round_vs_oracle"] == pytest.approx(out["round_s"] / out["oracle_s"], rel=0.05)
    assert out["utility_vs_oracle"] == pytest.approx(out["utility_idla"] / out["utility_oracle"], rel=1e-5)
    assert 0.97 <= out["utility_vs_oracle"] <= 1.05  # IDLA is continuous, the oracle on the 0.05 grid


def test_oracle_check_sees_the_cells_the_round_allocated() -> None:
    """The yardstick reads each shard's last allocation inputs: the features IDLA saw and the shares it gave."""
    from slicing.bench.population import oracle_check
    from slicing.config import HISTORY, build_scenario
    from slicing.runtime.population import Population

    model = build_estimator((16, 16), seed=0)
    sc = build_scenario({"name": "t", "seed": 0, "topology": {"sites": 10}, "initial_slices": [1, 2, 3, 4]})
    pop = Population(sc, 2, "idla", model, in_process=True)
    for _ in range(HISTORY):
        pop.run_period()
    shard = pop.shards[0]
    inputs = shard.allocation_inputs()
    assert inputs["period"] == pop.period() and inputs["weight"] is None
    np.testing.assert_array_equal(inputs["z"], shard._features())
    np.testing.assert_array_equal(inputs["shares"], shard.allocations_array())
    oracle = shard.grid_oracle()
    assert oracle["shares"].shape == inputs["mask"].shape and oracle["seconds"] > 0
    assert np.all(oracle["shares"].sum(axis=1) <= 1.0)
    out = oracle_check(pop, model)
    assert out["oracle_s"] > 0 and out["utility_oracle"] > 0
    assert 0.97 <= out["utility_idla"] / out["utility_oracle"] <= 1.05
