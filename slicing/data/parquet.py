"""Parquet I/O of the sample table, with an explicit schema checked on read.

File metadata: ``slicing_schema = "kpi-samples/1"``, ``history = "5"`` (H), plus what the caller passes
(scenario name, seed, ...), all as strings. One row per active (cell, slice, period); ``augmented`` rows are
synthetic (IDLA section V-B rules).

=======================  =======  ======  ===================================================================
column                   type     unit    meaning
=======================  =======  ======  ===================================================================
x                        float32  --      share of the cell's PRBs allocated to the slice in the period
users_h1 .. users_h5     float32  users   mean active users of the slice in periods t-5 (h1) .. t-1 (h5)
cqi_h1 .. cqi_h5         float32  0..15   mean CQI of the slice's users in periods t-5 (h1) .. t-1 (h5)
throughput_req_mbps      float32  Mbit/s  per-user throughput requirement phi*
delay_req_ms             float32  ms      delay requirement d*
r                        float32  0..1    QoS satisfaction min(phi/phi*, d*/d, 1) in period t (the target)
augmented                bool     --      true for rows made by augmentation rule (1) or (2)
period                   int32    period  index t of the 15-minute period the row describes
cell_id                  int64    --      global cell id
slice_id                 int16    --      catalogue slice id (1-based)
throughput_mbps          float32  Mbit/s  achieved per-user throughput phi in period t
delay_ms                 float32  ms      achieved delay d in period t (the simulator caps it at 10 s)
prb_util                 float32  0..1    fraction of the cell's PRBs used by the slice in period t
=======================  =======  ======  ===================================================================

The estimator inputs are the first 13 columns in the order above; ``read_samples`` rejects a file whose inputs or
target are non-finite, or whose r leaves [0, 1], with a ``DataFileError`` naming the file and the column.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from slicing.config import HISTORY
from slicing.data.samples import ALL_COLUMNS, COLUMN_DTYPES, FEATURE_COLUMNS, TARGET_COLUMN, Samples

SCHEMA_VERSION = "kpi-samples/1"
_RESERVED = ("slicing_schema", "history")


class DataFileError(ValueError):
    """A sample file that cannot be used; the one-line message names the file and the problem."""


def _arrow_type(dtype: np.dtype) -> pa.DataType:
    return pa.from_numpy_dtype(dtype)


SCHEMA: pa.Schema = pa.schema([pa.field(c, _arrow_type(COLUMN_DTYPES[c]), nullable=False) for c in ALL_COLUMNS])


def file_metadata(metadata: Mapping[str, Any]) -> dict[bytes, bytes]:
    """Caller metadata (stringified) plus the schema version and history length."""
    clash = [k for k in metadata if k in _RESERVED]
    if clash:
        raise ValueError(f"write_samples: metadata keys {clash} are reserved")
    meta = {str(k): str(v) for k, v in metadata.items()}
    meta.update(slicing_schema=SCHEMA_VERSION, history=str(HISTORY))
    return {k.encode(): v.encode() for k, v in meta.items()}


def write_samples(samples: Samples, path: str | Path, metadata: Mapping[str, Any]) -> None:
    """Write ``samples`` to ``path`` (parent directories created) with the schema above."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = [pa.array(samples[c], type=SCHEMA.field(c).type) for c in ALL_COLUMNS]
    table = pa.Table.from_arrays(arrays, schema=SCHEMA.with_metadata(file_metadata(metadata)))
    pq.write_table(table, path)


def _fail(path: Path, problem: str) -> DataFileError:
    return DataFileError(f"{path}: {problem}")


def _read_table(path: Path) -> pa.Table:
    if not path.exists():
        raise _fail(path, "file does not exist")
    if not path.is_file():
        raise _fail(path, "not a regular file")
    try:
        return pq.read_table(path)
    except (pa.ArrowException, OSError) as err:
        detail = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise _fail(path, f"not a Parquet file or corrupt ({detail})") from None


def read_metadata(path: str | Path) -> dict[str, str]:
    """The file's key/value metadata as strings (raises ``DataFileError`` if unreadable)."""
    path = Path(path)
    try:
        meta = pq.read_schema(path).metadata or {}
    except FileNotFoundError:
        raise _fail(path, "file does not exist") from None
    except (pa.ArrowException, OSError) as err:
        raise _fail(path, f"not a Parquet file or corrupt ({str(err).splitlines()[0]})") from None
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in meta.items()}


def _check_metadata(path: Path, schema: pa.Schema) -> None:
    meta = {k.decode(errors="replace"): v.decode(errors="replace") for k, v in (schema.metadata or {}).items()}
    version = meta.get("slicing_schema")
    if version is None:
        raise _fail(path, f"no 'slicing_schema' metadata: not a slicing sample file (expected {SCHEMA_VERSION!r})")
    if version != SCHEMA_VERSION:
        raise _fail(path, f"schema version {version!r}, expected {SCHEMA_VERSION!r}")
    if meta.get("history") != str(HISTORY):
        raise _fail(path, f"history length {meta.get('history')!r}, expected '{HISTORY}' (slicing.config.HISTORY)")


def _check_columns(path: Path, schema: pa.Schema) -> None:
    missing = [c for c in ALL_COLUMNS if c not in schema.names]
    if missing:
        raise _fail(path, f"missing column {missing[0]!r}" + (f" (and {missing[1:]})" if len(missing) > 1 else ""))
    for c in ALL_COLUMNS:
        found, expected = schema.field(c).type, SCHEMA.field(c).type
        if found != expected:
            raise _fail(path, f"column {c!r} has type {found}, expected {expected}")


def _check_values(path: Path, columns: dict[str, np.ndarray]) -> None:
    for c in FEATURE_COLUMNS + [TARGET_COLUMN]:
        bad = ~np.isfinite(columns[c])
        if bad.any():
            raise _fail(path, f"column {c!r} has {int(bad.sum())} non-finite value(s) (NaN or inf)")
    r = columns[TARGET_COLUMN]
    out = (r < 0) | (r > 1)
    if out.any():
        raise _fail(path, f"column 'r' has {int(out.sum())} value(s) outside [0, 1] (e.g. {float(r[out][0]):g})")


def read_samples(path: str | Path) -> Samples:
    """Read and validate a file written by ``write_samples``; ``DataFileError`` on any problem."""
    path = Path(path)
    table = _read_table(path)
    _check_metadata(path, table.schema)
    _check_columns(path, table.schema)
    columns: dict[str, np.ndarray] = {}
    for c in ALL_COLUMNS:
        col = table.column(c)
        if col.null_count:
            raise _fail(path, f"column {c!r} has {col.null_count} null value(s)")
        columns[c] = col.to_numpy()
    _check_values(path, columns)
    return Samples(columns)
