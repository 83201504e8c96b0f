"""Parquet I/O of samples: round trip and every checked error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from slicing.config import HISTORY
from slicing.data.augment import augment
from slicing.data.parquet import DataFileError, read_metadata, read_samples, write_samples
from slicing.data.samples import ALL_COLUMNS, Samples
from tests.data.reports import make_samples


def write(tmp_path: Path, smp: Samples | None = None) -> Path:
    path = tmp_path / "sub" / "samples.parquet"
    write_samples(smp if smp is not None else make_samples(), path, {"scenario": "unit", "seed": 7})
    return path


def test_parquet_roundtrip(tmp_path: Path) -> None:
    smp = augment(make_samples(), np.random.default_rng(1))
    path = write(tmp_path, smp)
    back = read_samples(path)
    assert len(back) == len(smp)
    for c in ALL_COLUMNS:
        assert back[c].dtype == smp[c].dtype, c
        np.testing.assert_array_equal(back[c], smp[c])
    meta = read_metadata(path)
    assert meta["slicing_schema"] == "kpi-samples/1" and meta["history"] == str(HISTORY)
    assert meta["scenario"] == "unit" and meta["seed"] == "7"
    schema = pq.read_schema(path)
    assert schema.field("x").type == pa.float32() and schema.field("slice_id").type == pa.int16()
    assert schema.field("period").type == pa.int32() and schema.field("augmented").type == pa.bool_()


def rewrite(path: Path, table: pa.Table) -> Path:
    pq.write_table(table, path)
    return path


def test_error_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match=r"nope\.parquet: file does not exist"):
        read_samples(tmp_path / "nope.parquet")


def test_error_missing_column(tmp_path: Path) -> None:
    path = write(tmp_path)
    rewrite(path, pq.read_table(path).drop_columns(["cqi_h3"]))
    with pytest.raises(DataFileError, match="missing column 'cqi_h3'") as err:
        read_samples(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_error_wrong_type(tmp_path: Path) -> None:
    path = write(tmp_path)
    table = pq.read_table(path)
    i = table.schema.get_field_index("delay_req_ms")
    table = table.set_column(i, pa.field("delay_req_ms", pa.string()), table.column(i).cast(pa.string()))
    rewrite(path, table)
    with pytest.raises(DataFileError, match="column 'delay_req_ms' has type string, expected float"):
        read_samples(path)


@pytest.mark.parametrize("content", [b"", b"garbage, not parquet at all" * 10, "truncate"])
def test_error_corrupt(tmp_path: Path, content: bytes | str) -> None:
    path = write(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if content == "truncate" else content)
    with pytest.raises(DataFileError, match="not a Parquet file or corrupt") as err:
        read_samples(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_error_nan_feature(tmp_path: Path) -> None:
    smp = make_samples()
    users = smp["users_h2"].copy()
    users[3] = np.nan
    path = write(tmp_path, smp.replace(users_h2=users))
    with pytest.raises(DataFileError, match="column 'users_h2' has 1 non-finite"):
        read_samples(path)


def test_error_r_out_of_range(tmp_path: Path) -> None:
    smp = make_samples()
    r = smp["r"].copy()
    r[0] = 1.5
    path = write(tmp_path, smp.replace(r=r))
    with pytest.raises(DataFileError, match=r"column 'r' has 1 value\(s\) outside \[0, 1\]"):
        read_samples(path)


def test_error_schema_version_and_history(tmp_path: Path) -> None:
    path = write(tmp_path)
    table = pq.read_table(path)
    meta = dict(table.schema.metadata)
    rewrite(path, table.replace_schema_metadata({**meta, b"history": b"3"}))
    with pytest.raises(DataFileError, match="history length '3', expected '5'"):
        read_samples(path)
    rewrite(path, table.replace_schema_metadata({**meta, b"slicing_schema": b"kpi-samples/0"}))
    with pytest.raises(DataFileError, match="schema version 'kpi-samples/0'"):
        read_samples(path)
    rewrite(path, table.replace_schema_metadata({}))
    with pytest.raises(DataFileError, match="not a slicing sample file"):
        read_samples(path)
