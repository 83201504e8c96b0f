"""Helpers of the runtime tests (not a test module): period-by-period comparison with the reference run."""

from __future__ import annotations

import numpy as np

from slicing.runtime.population import Population

PERIODS = 9  # 4 warm-up periods (traffic baseline), then IDLA; slice 3 joins at period 7


def assert_period_equal(pop_result: dict, alloc: np.ndarray, ref: tuple[np.ndarray, dict], where: str) -> None:
    ref_alloc, ref_kpis = ref
    assert pop_result["kpis"] is not None, where
    for k, v in ref_kpis.items():
        # Exact: every random draw is keyed by global cell id, IDLA's start points too, and a cell's IDLA result
        # does not depend on the other cells of its batch (per-row stopping; float32 rows are computed
        # independently, and measured identical with 1 and 2 torch threads).
        assert np.array_equal(pop_result["kpis"][k], v), f"{where}: KPI {k} differs"
    assert np.array_equal(alloc, ref_alloc), f"{where}: allocations differ"


def run_and_compare(pop: Population, reference, start: int = 0, stop: int = PERIODS, label: str = "") -> None:
    for t in range(start, stop):
        r = pop.run_period(kpis=True)
        assert r["period"] == t and r["fallback_cells"] == 0 and not r["errors"]
        assert_period_equal(r, pop.allocations_array(), reference[t], f"{label} period {t}")


def record(cell, snssai="01-000001", **kw):
    return {"cell_id": cell, "snssai": snssai, "users": 3.0, "cqi": 9.0, "prb_util": 0.2, "throughput_mbps": 1.5,
            "delay_ms": 20.0} | kw
