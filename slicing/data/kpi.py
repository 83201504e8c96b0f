"""The one KPI record contract: fields, ranges, validation and columnar form, for the HTTP models and the runtime.

A record is one (cell, slice) report of the last period::

    {"cell_id": int | str of digits, "snssai": "01-000001", "users": >= 0, "cqi": 0..15, "prb_util": 0..1,
     "throughput_mbps": >= 0, "delay_ms": >= 0}

``snssai`` takes every form of ``slicing/snssai.py`` (``{"sst": 1, "sd": "000001"}``, ``"1-000001"``, ...) and is
kept canonical.

``KPI_VALUES`` is the table of the numeric fields (range, description); the HTTP model ``KpiRecord``
(``slicing/serve/models.py``) is generated from it, so the two cannot disagree. ``parse_records`` checks every
field and returns a ``KpiBatch`` of arrays; a bad record raises ``slicing.errors.FieldError`` with the path of the
record and field (``records.3.cqi: must be finite and [0, 15], got 17.0``), which the HTTP layer answers as 422
``body.records.3.cqi``. Which cells and S-NSSAIs exist is checked by the shard that owns the cell
(``CellShard.ingest``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from slicing.errors import FieldError
from slicing.snssai import canonical as canonical_snssai


@dataclass(frozen=True)
class KpiValue:
    """A numeric KPI field: finite, in [lo, hi] (``hi`` None: no upper bound)."""

    name: str
    lo: int | float
    hi: int | float | None
    description: str


KPI_VALUES = (
    KpiValue("users", 0, 1e9, "mean active users in the period"),
    KpiValue("cqi", 0, 15, "mean CQI of the slice's users (0..15)"),
    KpiValue("prb_util", 0, 1, "fraction of the cell's PRBs used by the slice"),
    KpiValue("throughput_mbps", 0, 1e9, "achieved per-user throughput"),
    KpiValue("delay_ms", 0, 1e9, "achieved delay"),
)
VALUE_FIELDS = tuple(v.name for v in KPI_VALUES)
FIELDS = ("cell_id", "snssai", *VALUE_FIELDS)


@dataclass(frozen=True)
class KpiBatch:
    """Records as columns; ``index[M]`` is each record's position in the caller's list (for error paths)."""

    cell_ids: np.ndarray  # [M] int64
    snssai: list[str]  # [M] lower case
    values: dict[str, np.ndarray]  # field -> [M] float64
    index: np.ndarray  # [M] int64

    def __len__(self) -> int:
        return len(self.cell_ids)

    def take(self, rows: np.ndarray) -> KpiBatch:
        return KpiBatch(self.cell_ids[rows], [self.snssai[i] for i in rows],
                        {k: v[rows] for k, v in self.values.items()}, self.index[rows])


def _cell_id(value: object, i: int) -> int:
    if isinstance(value, bool):
        raise FieldError(("records", i, "cell_id"), f"expected an integer cell id, got {value!r}")
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, str) and value.isdigit() and len(value) <= 18:
        return int(value)
    raise FieldError(("records", i, "cell_id"), f"expected an integer cell id, got {value!r}")


def _check_ranges(cols: dict[str, np.ndarray]) -> None:
    """FieldError naming the first record out of range, field by field in ``KPI_VALUES`` order."""
    for spec in KPI_VALUES:
        v = cols[spec.name]  # [M]
        hi = np.inf if spec.hi is None else spec.hi
        bad = ~np.isfinite(v) | (v < spec.lo) | (v > hi)  # [M]
        if bad.any():
            i = int(np.argmax(bad))
            rng = f"[{spec.lo:g}, {hi:g}]" if np.isfinite(hi) else f">= {spec.lo:g}"
            raise FieldError(("records", i, spec.name), f"must be finite and {rng}, got {v[i]!r}")


def parse_records(records: Sequence[Mapping[str, object]] | KpiBatch) -> KpiBatch:
    """Validate KPI records (a list of dicts, or an already parsed batch) into a ``KpiBatch``."""
    if isinstance(records, KpiBatch):
        return records
    if isinstance(records, Mapping | str | bytes) or not isinstance(records, Sequence):
        raise FieldError(("records",), f"expected a list of records, got {type(records).__name__}")
    m = len(records)
    cells = np.empty(m, dtype=np.int64)
    snssai: list[str] = []
    cols = {k: np.empty(m, dtype=np.float64) for k in VALUE_FIELDS}
    for i, rec in enumerate(records):  # per record (input parsing), not per cell
        if not isinstance(rec, Mapping):
            raise FieldError(("records", i), f"expected an object, got {type(rec).__name__}")
        extra = sorted(set(rec) - set(FIELDS))
        if extra:
            raise FieldError(("records", i, extra[0]), f"unknown field (expected {list(FIELDS)})")
        missing = [k for k in FIELDS if k not in rec]
        if missing:
            raise FieldError(("records", i, missing[0]), "missing")
        cells[i] = _cell_id(rec["cell_id"], i)
        try:
            snssai.append(canonical_snssai(rec["snssai"]))
        except ValueError as err:
            raise FieldError(("records", i, "snssai"), str(err)) from None
        for k in VALUE_FIELDS:
            v = rec[k]
            if isinstance(v, bool) or not isinstance(v, int | float | np.floating | np.integer):
                raise FieldError(("records", i, k), f"expected a number, got {v!r}")
            cols[k][i] = float(v)
    _check_ranges(cols)
    return KpiBatch(cells, snssai, cols, np.arange(m, dtype=np.int64))
