"""KPI reports pushed into a running population: validation and columnar form.

A record is one (cell, slice) report of the last period::

    {"cell_id": int | str of digits, "snssai": "01-000001", "users": >= 0, "cqi": 0..15, "prb_util": 0..1,
     "throughput_mbps": >= 0, "delay_ms": >= 0}

``parse_records`` checks every field and returns a ``KpiBatch`` of arrays; a bad record raises ``ValueError``
naming it and the field (``records[3].cqi: must be in [0, 15], got 17.0``). Which cells and S-NSSAIs exist is
checked by the shard that owns the cell (``CellShard.ingest``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

VALUE_FIELDS = ("users", "cqi", "prb_util", "throughput_mbps", "delay_ms")
FIELDS = ("cell_id", "snssai", *VALUE_FIELDS)
_RANGES = {"users": (0.0, np.inf), "cqi": (0.0, 15.0), "prb_util": (0.0, 1.0), "throughput_mbps": (0.0, np.inf),
           "delay_ms": (0.0, np.inf)}


@dataclass(frozen=True)
class KpiBatch:
    """Records as columns; ``index[M]`` is each record's position in the caller's list (for error messages)."""

    cell_ids: np.ndarray  # [M] int64
    snssai: list[str]  # [M] lower case
    values: dict[str, np.ndarray]  # field -> [M] float64
    index: np.ndarray  # [M] int64

    def __len__(self) -> int:
        return len(self.cell_ids)

    def take(self, rows: np.ndarray) -> KpiBatch:
        return KpiBatch(self.cell_ids[rows], [self.snssai[i] for i in rows],
                        {k: v[rows] for k, v in self.values.items()}, self.index[rows])


def _cell_id(value: object, where: str) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{where}.cell_id: expected an integer cell id, got {value!r}")
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, str) and value.isdigit() and len(value) <= 18:
        return int(value)
    raise ValueError(f"{where}.cell_id: expected an integer cell id, got {value!r}")


def parse_records(records: Sequence[Mapping[str, object]] | KpiBatch) -> KpiBatch:
    """Validate KPI records (a list of dicts, or an already parsed batch) into a ``KpiBatch``."""
    if isinstance(records, KpiBatch):
        return records
    if isinstance(records, Mapping | str | bytes) or not isinstance(records, Sequence):
        raise ValueError(f"records: expected a list of records, got {type(records).__name__}")
    m = len(records)
    cells = np.empty(m, dtype=np.int64)
    snssai: list[str] = []
    cols = {k: np.empty(m, dtype=np.float64) for k in VALUE_FIELDS}
    for i, rec in enumerate(records):  # per record (input parsing), not per cell
        where = f"records[{i}]"
        if not isinstance(rec, Mapping):
            raise ValueError(f"{where}: expected an object, got {type(rec).__name__}")
        extra = sorted(set(rec) - set(FIELDS))
        if extra:
            raise ValueError(f"{where}.{extra[0]}: unknown field (expected {list(FIELDS)})")
        missing = [k for k in FIELDS if k not in rec]
        if missing:
            raise ValueError(f"{where}.{missing[0]}: missing")
        cells[i] = _cell_id(rec["cell_id"], where)
        s = rec["snssai"]
        if not isinstance(s, str):
            raise ValueError(f"{where}.snssai: expected a string like '01-000001', got {s!r}")
        snssai.append(s.lower())
        for k in VALUE_FIELDS:
            v = rec[k]
            if isinstance(v, bool) or not isinstance(v, int | float | np.floating | np.integer):
                raise ValueError(f"{where}.{k}: expected a number, got {v!r}")
            cols[k][i] = float(v)
    for k, (lo, hi) in _RANGES.items():
        v = cols[k]
        bad = ~np.isfinite(v) | (v < lo) | (v > hi)  # [M]
        if bad.any():
            i = int(np.argmax(bad))
            rng = f"[{lo:g}, {hi:g}]" if np.isfinite(hi) else f">= {lo:g}"
            raise ValueError(f"records[{i}].{k}: must be finite and {rng}, got {v[i]!r}")
    return KpiBatch(cells, snssai, cols, np.arange(m, dtype=np.int64))
