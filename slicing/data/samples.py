"""The columnar sample table of the QoS estimator: (x, z) -> r, one row per active (cell, slice, period).

``FEATURE_COLUMNS`` are the estimator inputs in order: the applied share x, then z = [users t-H .. t-1,
cqi t-H .. t-1, throughput requirement, delay requirement] (``users_h1`` is the oldest period, t-H). The target is
``r``; the remaining columns are provenance and the achieved KPIs that augmentation rule (1) needs.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from slicing.config import HISTORY

USERS_COLUMNS: list[str] = [f"users_h{i}" for i in range(1, HISTORY + 1)]
CQI_COLUMNS: list[str] = [f"cqi_h{i}" for i in range(1, HISTORY + 1)]
FEATURE_COLUMNS: list[str] = ["x", *USERS_COLUMNS, *CQI_COLUMNS, "throughput_req_mbps", "delay_req_ms"]
TARGET_COLUMN = "r"
EXTRA_COLUMNS: list[str] = [TARGET_COLUMN, "augmented", "period", "cell_id", "slice_id",
                            "throughput_mbps", "delay_ms", "prb_util"]
ALL_COLUMNS: list[str] = FEATURE_COLUMNS + EXTRA_COLUMNS

# numpy dtype of every column (the Parquet schema in ``parquet.py`` mirrors this).
COLUMN_DTYPES: dict[str, np.dtype] = {
    **{c: np.dtype(np.float32) for c in FEATURE_COLUMNS},
    "r": np.dtype(np.float32),
    "augmented": np.dtype(np.bool_),
    "period": np.dtype(np.int32),
    "cell_id": np.dtype(np.int64),
    "slice_id": np.dtype(np.int16),
    "throughput_mbps": np.dtype(np.float32),
    "delay_ms": np.dtype(np.float32),
    "prb_util": np.dtype(np.float32),
}


class _Report(Protocol):
    period: int
    cell_ids: np.ndarray  # [N]
    mask: np.ndarray  # [N, S]
    share: np.ndarray  # [N, S]
    r: np.ndarray  # [N, S]
    throughput_mbps: np.ndarray  # [N, S]
    delay_ms: np.ndarray  # [N, S]
    prb_util: np.ndarray  # [N, S]


@dataclass(frozen=True)
class Samples:
    """A dict of equal-length 1-D numpy columns, one per name in ``ALL_COLUMNS``, cast to ``COLUMN_DTYPES``."""

    columns: dict[str, np.ndarray]

    def __post_init__(self) -> None:
        missing = [c for c in ALL_COLUMNS if c not in self.columns]
        if missing:
            raise ValueError(f"Samples: missing columns {missing}")
        unknown = [c for c in self.columns if c not in COLUMN_DTYPES]
        if unknown:
            raise ValueError(f"Samples: unknown columns {unknown}")
        cast = {c: np.ascontiguousarray(self.columns[c], dtype=COLUMN_DTYPES[c]) for c in ALL_COLUMNS}
        lengths = {c: a.shape for c, a in cast.items()}
        n = cast["x"].shape[0] if cast["x"].ndim == 1 else -1
        bad = {c: s for c, s in lengths.items() if s != (n,)}
        if n < 0 or bad:
            raise ValueError(f"Samples: every column must be 1-D of one length; got shapes {lengths}")
        object.__setattr__(self, "columns", cast)

    @classmethod
    def empty(cls) -> Samples:
        return cls({c: np.zeros(0, dtype=COLUMN_DTYPES[c]) for c in ALL_COLUMNS})

    @classmethod
    def concat(cls, parts: Sequence[Samples]) -> Samples:
        """Rows of ``parts`` one after the other (an empty table for no parts)."""
        if not parts:
            return cls.empty()
        return cls({c: np.concatenate([p.columns[c] for p in parts]) for c in ALL_COLUMNS})

    def __len__(self) -> int:
        return int(self.columns["x"].shape[0])

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]

    def __iter__(self) -> Iterator[str]:
        return iter(ALL_COLUMNS)

    def take(self, index: np.ndarray) -> Samples:
        """Rows selected by an integer index or a boolean mask [n]."""
        return Samples({c: a[index] for c, a in self.columns.items()})

    def replace(self, **columns: np.ndarray) -> Samples:
        """A copy with some columns replaced (same length)."""
        return Samples({**self.columns, **columns})

    def features(self) -> np.ndarray:
        """[n, 2H+3] float32 estimator inputs in ``FEATURE_COLUMNS`` order."""
        return np.stack([self.columns[c] for c in FEATURE_COLUMNS], axis=1).astype(np.float32, copy=False)

    def targets(self) -> np.ndarray:
        """[n] float32 QoS satisfaction r."""
        return self.columns[TARGET_COLUMN]


def samples_from_report(report: _Report, z: np.ndarray, slice_ids: np.ndarray | Sequence[int]) -> Samples:
    """One row per active (cell, slice) of ``report``; ``z`` [N, S, 2H+2] is the context known before the period.

    x is the applied share ``report.share``; ``slice_ids`` [S] maps columns to catalogue ids.
    """
    mask = np.asarray(report.mask, dtype=bool)  # [N, S]
    n_cells, n_slices = mask.shape
    z = np.asarray(z)
    if z.shape != (n_cells, n_slices, 2 * HISTORY + 2):
        raise ValueError(f"samples_from_report: z must have shape {(n_cells, n_slices, 2 * HISTORY + 2)}, "
                         f"got {z.shape}")
    ids = np.asarray(slice_ids)
    if ids.shape != (n_slices,):
        raise ValueError(f"samples_from_report: slice_ids must have shape ({n_slices},), got {ids.shape}")
    ci, si = np.nonzero(mask)  # [n] row-major: cell, then slice
    zr = z[ci, si]  # [n, 2H+2]
    n = ci.shape[0]
    cols: dict[str, np.ndarray] = {"x": np.asarray(report.share)[ci, si]}
    for k, name in enumerate(FEATURE_COLUMNS[1:]):
        cols[name] = zr[:, k]
    cols.update(
        r=np.asarray(report.r)[ci, si],
        augmented=np.zeros(n, dtype=bool),
        period=np.full(n, int(report.period), dtype=np.int32),
        cell_id=np.asarray(report.cell_ids, dtype=np.int64)[ci],
        slice_id=ids[si],
        throughput_mbps=np.asarray(report.throughput_mbps)[ci, si],
        delay_ms=np.asarray(report.delay_ms)[ci, si],
        prb_util=np.asarray(report.prb_util)[ci, si],
    )
    return Samples(cols)
