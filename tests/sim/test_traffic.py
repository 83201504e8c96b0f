"""Traffic models, parametrised from the registry ``TRAFFIC_MODELS``: every model honours the same contract."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from slicing.config import Scenario
from slicing.sim.traffic import PERIODS_PER_DAY, TRAFFIC_MODELS, TraceError, make_traffic

TRACE_PERIODS = 8


def _scenario(small_scenario: Scenario, model: str, tmp_path: Path) -> Scenario:
    update: dict = {"model": model}
    if model == "csv_trace":
        path = tmp_path / "trace.csv"
        rows = ["period,1,2,3,4"] + [f"{t},{(t % 4) / 4},0.5,{t / 10},1.0" for t in range(TRACE_PERIODS)]
        path.write_text("\n".join(rows))
        update["trace_csv"] = path
    return small_scenario.model_copy(update={"traffic": small_scenario.traffic.model_copy(update=update)})


@pytest.mark.parametrize("model", sorted(TRAFFIC_MODELS))
def test_activity_contract(model, small_scenario, tmp_path):
    """[N] periods -> [N, S] activity in [0, 1], a function of the period only, periodic, not constant."""
    sc = _scenario(small_scenario, model, tmp_path)
    traffic = make_traffic(sc)
    assert isinstance(traffic, TRAFFIC_MODELS[model])
    periods = np.arange(2 * PERIODS_PER_DAY)  # [N]
    a = traffic.activity(periods)  # [N, S]
    assert a.shape == (len(periods), len(sc.slices)) and a.dtype == np.float64
    assert np.all((a >= 0.0) & (a <= 1.0))
    cycle = PERIODS_PER_DAY if model == "daily_mask" else TRACE_PERIODS
    np.testing.assert_array_equal(a[:cycle], a[cycle: 2 * cycle])  # repeats with its own period
    np.testing.assert_array_equal(traffic.activity(periods[::-1]), a[::-1])  # elementwise in the period
    assert np.ptp(a, axis=0).max() > 0.1  # the activity varies over the cycle


def test_csv_trace_errors_name_the_key(small_scenario, tmp_path):
    sc = _scenario(small_scenario, "csv_trace", tmp_path)
    bad = tmp_path / "bad.csv"
    bad.write_text("period,1,2\n0,0.5,0.5\n")
    sc_bad = sc.model_copy(update={"traffic": sc.traffic.model_copy(update={"trace_csv": bad})})
    with pytest.raises(TraceError, match=r"traffic.trace_csv: .* has no column for slice ids \['3', '4'\]"):
        make_traffic(sc_bad)
