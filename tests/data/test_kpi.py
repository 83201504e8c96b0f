"""The one KPI record contract (slicing/data/kpi.py): every rule raises a FieldError with the record's path."""

from __future__ import annotations

import numpy as np
import pytest

from slicing.data.kpi import FIELDS, KPI_VALUES, VALUE_FIELDS, KpiBatch, parse_records
from slicing.errors import FieldError

GOOD = {"cell_id": 3, "snssai": "01-000001", "users": 1.5, "cqi": 9.0, "prb_util": 0.3, "throughput_mbps": 1.2,
        "delay_ms": 40.0}


def test_good_records_become_columns_in_order() -> None:
    recs = [GOOD, {**GOOD, "cell_id": "17", "snssai": "01-00000A", "cqi": 15, "prb_util": 1}]
    batch = parse_records(recs)
    assert len(batch) == 2 and batch.cell_ids.tolist() == [3, 17] and batch.snssai == ["01-000001", "01-00000a"]
    # 3GPP's forms give the same canonical keys
    forms = [{**GOOD, "snssai": {"sst": 1, "sd": "000001"}}, {**GOOD, "snssai": "1-00000A"}, {**GOOD, "snssai": "2"}]
    assert parse_records(forms).snssai == ["01-000001", "01-00000a", "02"]
    assert set(batch.values) == set(VALUE_FIELDS) and batch.values["cqi"].tolist() == [9.0, 15.0]
    assert batch.index.tolist() == [0, 1]
    assert parse_records(batch) is batch  # already parsed
    sub = batch.take(np.array([1]))
    assert isinstance(sub, KpiBatch) and sub.cell_ids.tolist() == [17] and sub.index.tolist() == [1]


def test_the_table_is_the_field_list() -> None:
    assert ("cell_id", "snssai", *(v.name for v in KPI_VALUES)) == FIELDS
    assert {v.name: (v.lo, v.hi) for v in KPI_VALUES} == {
        "users": (0, 1e9), "cqi": (0, 15), "prb_util": (0, 1), "throughput_mbps": (0, 1e9), "delay_ms": (0, 1e9)}


@pytest.mark.parametrize(("records", "path", "message"), [
    ({"x": 1}, ("records",), "expected a list of records, got dict"),
    ([GOOD, 7], ("records", 1), "expected an object, got int"),
    ([{**GOOD, "zz": 1}], ("records", 0, "zz"), "unknown field (expected ['cell_id', 'snssai', 'users', 'cqi', "
                                                "'prb_util', 'throughput_mbps', 'delay_ms'])"),
    ([{k: v for k, v in GOOD.items() if k != "cqi"}], ("records", 0, "cqi"), "missing"),
    ([{**GOOD, "cell_id": True}], ("records", 0, "cell_id"), "expected an integer cell id, got True"),
    ([{**GOOD, "cell_id": "a1"}], ("records", 0, "cell_id"), "expected an integer cell id, got 'a1'"),
    ([{**GOOD, "snssai": 3}], ("records", 0, "snssai"), "expected an S-NSSAI: {'sst': 0..255, 'sd': six hex "
                                                        "digits (optional)} or a string 'SST-SD' / 'SST' (SST two "
                                                        "hex digits, or one or three decimal digits), e.g. "
                                                        "'01-000001', '1-000001', '1'; got 3"),
    ([{**GOOD, "snssai": {"sst": 300}}], ("records", 0, "snssai"), "sst must be an integer in 0..255, got 300"),
    ([{**GOOD, "users": "x"}], ("records", 0, "users"), "expected a number, got 'x'"),
    ([GOOD, GOOD, {**GOOD, "cqi": 17.0}], ("records", 2, "cqi"), "must be finite and [0, 15], got np.float64(17.0)"),
    ([{**GOOD, "prb_util": float("nan")}], ("records", 0, "prb_util"), "must be finite and [0, 1], got "
                                                                         "np.float64(nan)"),
    ([GOOD, {**GOOD, "delay_ms": -1}], ("records", 1, "delay_ms"), "must be finite and [0, 1e+09], got "
                                                                   "np.float64(-1.0)"),
    ([{**GOOD, "users": np.inf}], ("records", 0, "users"), "must be finite and [0, 1e+09], got np.float64(inf)"),
])
def test_each_rule_names_the_record_and_field(records, path, message: str) -> None:
    with pytest.raises(FieldError) as err:
        parse_records(records)
    assert err.value.path == path and err.value.message == message
    assert str(err.value) == ".".join(str(p) for p in path) + ": " + message  # what the CLI prints
    assert err.value.detail()["path"] == "body." + ".".join(str(p) for p in path)  # what the HTTP 422 carries


@pytest.mark.parametrize("spec", KPI_VALUES, ids=lambda s: s.name)
def test_ranges_are_inclusive_bounds(spec) -> None:
    ok = [{**GOOD, spec.name: spec.lo}] + ([{**GOOD, spec.name: spec.hi}] if spec.hi is not None else [])
    assert len(parse_records(ok)) == len(ok)
    below = spec.lo - 1e-9
    with pytest.raises(FieldError) as err:
        parse_records([{**GOOD, spec.name: below}])
    assert err.value.path == ("records", 0, spec.name)
    if spec.hi is not None:
        with pytest.raises(FieldError):
            parse_records([{**GOOD, spec.name: spec.hi * (1 + 1e-9) + 1e-9}])
