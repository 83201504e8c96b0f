"""Synthetic KPI reports and samples shared by the data tests (not a test module)."""

from __future__ import annotations

import numpy as np

from slicing.config import HISTORY
from slicing.data.samples import Samples, samples_from_report
from slicing.sim.simulator import KpiReport

N, S = 6, 4


def make_report(period: int, gen: np.random.Generator, n: int = N, s: int = S) -> KpiReport:
    """A KpiReport with users = 100 * period + 10 * cell + slice (so the history order is visible)."""
    mask = gen.random((n, s)) < 0.75
    mask[:, 0] = True
    cells = np.arange(n)[:, None]
    slices = np.arange(s)[None, :]
    users = np.where(mask, 100.0 * period + 10 * cells + slices, 0.0)
    cqi = np.where(mask, (period % 15) + 0.5, 0.0)
    share = np.where(mask, gen.random((n, s)), 0.0)
    share /= np.maximum(share.sum(axis=1, keepdims=True), 1.0)
    r = np.where(mask, np.clip(gen.random((n, s)) * 1.3, 0.0, 1.0), 0.0)
    tp = np.where(mask, gen.random((n, s)) * 3.0, 0.0)
    delay = np.where(mask, 20.0 + 100.0 * gen.random((n, s)), 0.0)
    delay[0, 0] = np.inf  # a starved slice
    return KpiReport(
        period=period, cell_ids=np.arange(100, 100 + n, dtype=np.int64), mask=mask, share=share,
        users=users, cqi=cqi, prb_util=share * 0.9, offered_mbps=users * 1.5,
        throughput_mbps=tp, delay_ms=delay, r=r,
    )


def make_samples(seed: int = 0, periods: int = 4) -> Samples:
    gen = np.random.default_rng(seed)
    z = gen.random((N, S, 2 * HISTORY + 2)).astype(np.float32)
    return Samples.concat([samples_from_report(make_report(p, gen), z, np.arange(1, S + 1)) for p in range(periods)])


