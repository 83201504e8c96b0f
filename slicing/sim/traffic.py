"""Traffic models: how many users each (cell, slice) has in a period. Chosen by name from ``TRAFFIC_MODELS``.

Both models produce a normalised daily activity a_s(t) in [0, 1] per slice; the simulator turns it into users:
users[c, s, t] = users_peak_s * load_scale * scale_c * a_s(t + phase_c) * exp(sigma n - sigma^2 / 2)
with a static lognormal per-cell volume scale, a static per-cell phase shift of the day and per-period noise
(all from the counter RNG, so per cell and shard-invariant).

- ``daily_mask``: a synthetic 96-period day per slice profile (business hours, evening, flat, night), made of
  smooth bumps like the measured masks of the IDLA paper's Fig. 2.
- ``csv_trace``: replay of a CSV of normalised activity, one row per period (wrapping around), one column per
  slice id (header ``period,1,2,3,4``; the ``period`` column is optional). Values are clipped to [0, 1].

``CellUsers`` turns a model into the users of any set of global cell ids (the simulator's own cells, or the down
cells of an outage whose users move into them), with the cell classes' multipliers (``Scenario.cell_classes``).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Protocol

import numpy as np

from slicing import rng
from slicing.config import Scenario
from slicing.rng import Stream

PERIODS_PER_DAY = 96


def _bump(hours: np.ndarray, centre_h: float, width_h: float) -> np.ndarray:
    d = (hours - centre_h + 12.0) % 24.0 - 12.0
    return np.exp(-0.5 * (d / width_h) ** 2)


def daily_profile(name: str) -> np.ndarray:
    """[96] activity in [0, 1] with max 1."""
    h = np.arange(PERIODS_PER_DAY) * 24.0 / PERIODS_PER_DAY
    shapes = {
        "business": 0.15 + _bump(h, 10.5, 2.0) + 0.9 * _bump(h, 15.0, 2.2),
        "evening": 0.10 + 0.5 * _bump(h, 13.0, 1.5) + _bump(h, 20.5, 2.5),
        "flat": 0.55 + 0.3 * _bump(h, 12.0, 5.0),
        "night": 0.2 + _bump(h, 2.0, 2.0),
    }
    p = shapes[name]
    return p / p.max()


class TrafficModel(Protocol):
    def activity(self, periods: np.ndarray) -> np.ndarray:
        """[N] integer periods (already shifted per cell) -> [N, S] activity in [0, 1]."""
        ...


class DailyMask:
    def __init__(self, scenario: Scenario) -> None:
        self.table = np.stack([daily_profile(s.profile) for s in scenario.slices], axis=1)  # [96, S]

    def activity(self, periods: np.ndarray) -> np.ndarray:
        return self.table[periods % PERIODS_PER_DAY]


class TraceError(ValueError):
    pass


def read_trace(path: Path, slice_ids: list[int]) -> np.ndarray:
    """[L, S] activity from a CSV with one column per slice id; clear errors for a bad file."""
    if not path.is_file():
        raise TraceError(f"traffic.trace_csv: {path} does not exist")
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    if len(rows) < 2:
        raise TraceError(f"traffic.trace_csv: {path} needs a header and at least one row")
    header = [h.strip() for h in rows[0]]
    missing = [str(s) for s in slice_ids if str(s) not in header]
    if missing:
        raise TraceError(f"traffic.trace_csv: {path} has no column for slice ids {missing} (header: {header})")
    cols = [header.index(str(s)) for s in slice_ids]
    try:
        table = np.array([[float(r[c]) for c in cols] for r in rows[1:]], dtype=np.float64)
    except (ValueError, IndexError) as err:
        raise TraceError(f"traffic.trace_csv: {path}: every cell must be a number ({err})") from None
    if not np.isfinite(table).all():
        raise TraceError(f"traffic.trace_csv: {path}: values must be finite")
    return np.clip(table, 0.0, 1.0)


class CsvTrace:
    def __init__(self, scenario: Scenario) -> None:
        assert scenario.traffic.trace_csv is not None  # guaranteed by the Traffic validator
        self.table = read_trace(Path(scenario.traffic.trace_csv), [s.id for s in scenario.slices])  # [L, S]

    def activity(self, periods: np.ndarray) -> np.ndarray:
        return self.table[periods % len(self.table)]


TRAFFIC_MODELS: dict[str, type[DailyMask] | type[CsvTrace]] = {"daily_mask": DailyMask, "csv_trace": CsvTrace}


def make_traffic(scenario: Scenario) -> TrafficModel:
    return TRAFFIC_MODELS[scenario.traffic.model](scenario)


CELL_CLASS_STREAM = 101  # counter-RNG stream of the fraction-based cell classes (ids of rng.Stream are < 100)


def cell_classes_of(scenario: Scenario, cell_ids: np.ndarray) -> np.ndarray:
    """[N] index into ``scenario.cell_classes`` of each global cell id, -1 for cells in no class. Listed cells
    first; the unlisted ones fall in the fraction classes by one uniform draw per global id (consecutive
    intervals of [0, 1)), so membership does not depend on which cells are simulated together."""
    ids = np.asarray(cell_ids, dtype=np.int64)
    out = np.full(len(ids), -1, dtype=np.int64)
    if not scenario.cell_classes:
        return out
    for k, c in enumerate(scenario.cell_classes):
        if c.cells is not None:
            out[np.isin(ids, np.asarray(c.cells, dtype=np.int64))] = k
    u = rng.uniform(scenario.seed, CELL_CLASS_STREAM, 0, ids, 1)[:, 0]
    low = 0.0
    for k, c in enumerate(scenario.cell_classes):
        if c.fraction is not None:
            out[(out == -1) & (u >= low) & (u < low + c.fraction)] = k
            low += c.fraction
    return out


def cell_class_scale(scenario: Scenario, cell_ids: np.ndarray) -> np.ndarray:
    """[N, S] multiplier of the users (and offered traffic) of each cell and slice: its class's ``load_scale``
    times ``slice_load[slice id]`` (1 for cells in no class)."""
    cls = cell_classes_of(scenario, cell_ids)
    table = np.ones((len(scenario.cell_classes) + 1, len(scenario.slices)))  # last row: no class
    col = scenario.slice_index
    for k, c in enumerate(scenario.cell_classes):
        table[k] *= c.load_scale
        for sid, mult in c.slice_load.items():
            table[k, col[sid]] *= mult
    return table[cls]  # index -1 -> the last row


class CellUsers:
    """Mean active users [N, S] of a set of global cell ids per period, before slice masks and events:
    users_peak * load_scale * scale_c * class_cs * a_s(t + phase_c) * noise. Every draw is keyed by the global
    cell id, so a cell gets the same users whichever set it is computed in."""

    def __init__(self, scenario: Scenario, cell_ids: np.ndarray, model: TrafficModel | None = None) -> None:
        sc, ids = scenario, np.asarray(cell_ids, dtype=np.int64)
        self.scenario, self.cell_ids = sc, ids
        self.model = make_traffic(sc) if model is None else model
        self._users_peak = np.array([s.users_peak for s in sc.slices]) * sc.traffic.load_scale  # [S]
        self._cell_scale = np.exp(
            sc.traffic.cell_scale_sigma * rng.normal(sc.seed, Stream.CELL_SCALE, 0, ids, 1)[:, 0]
            - 0.5 * sc.traffic.cell_scale_sigma**2
        )  # [N]
        jitter = sc.traffic.phase_jitter_periods
        u = rng.uniform(sc.seed, Stream.CELL_PHASE, 0, ids, 1)[:, 0]
        self._phase = np.floor(u * (2 * jitter + 1)).astype(np.int64) - jitter + 10 * PERIODS_PER_DAY  # [N] >= 0
        self._class_scale = cell_class_scale(sc, ids)  # [N, S] users multiplier of each cell's class

    def at(self, period: int) -> np.ndarray:
        """[N, S] users of ``period``."""
        sc = self.scenario
        activity = self.model.activity(period + self._phase)  # [N, S]
        sigma = sc.traffic.noise_sigma
        noise = np.exp(sigma * rng.normal(sc.seed, Stream.USERS, period, self.cell_ids, len(sc.slices))
                       - 0.5 * sigma**2)  # [N, S]
        return self._users_peak * self._cell_scale[:, None] * self._class_scale * activity * noise
