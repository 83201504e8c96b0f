"""The HTTP request models (slicing/serve/models.py): KpiRecord is the KPI contract of slicing/data/kpi.py."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from slicing.data.kpi import FIELDS, KPI_VALUES, parse_records
from slicing.errors import FieldError
from slicing.serve.models import KpiRecord

GOOD = {"cell_id": "3", "snssai": "01-000001", "users": 1.5, "cqi": 9.0, "prb_util": 0.3, "throughput_mbps": 1.2,
        "delay_ms": 40.0}


def test_kpi_record_has_the_contract_fields_in_order() -> None:
    assert tuple(KpiRecord.model_fields) == FIELDS
    for spec in KPI_VALUES:
        assert KpiRecord.model_fields[spec.name].description == spec.description


def _http_accepts(rec: dict) -> bool:
    try:
        KpiRecord.model_validate(rec)
        return True
    except ValidationError:
        return False


def _runtime_accepts(rec: dict) -> bool:
    try:
        parse_records([rec])
        return True
    except FieldError:
        return False


@pytest.mark.parametrize("spec", KPI_VALUES, ids=lambda s: s.name)
def test_http_and_runtime_accept_the_same_values(spec) -> None:
    hi = 1e6 if spec.hi is None else spec.hi
    values = [spec.lo, spec.lo - 1e-9, spec.lo - 1, (spec.lo + hi) / 2, hi, hi + 1e-9, math.nan, math.inf, -math.inf]
    verdicts = {v: (_http_accepts({**GOOD, spec.name: v}), _runtime_accepts({**GOOD, spec.name: v})) for v in values}
    assert all(h == r for h, r in verdicts.values()), verdicts
    assert verdicts[spec.lo] == (True, True) and verdicts[spec.lo - 1e-9] == (False, False)
    assert verdicts[math.nan] == (False, False)
    if spec.hi is not None:
        assert verdicts[spec.hi + 1e-9] == (False, False)


def test_kpi_record_forbids_unknown_fields() -> None:
    with pytest.raises(ValidationError, match="extra"):
        KpiRecord.model_validate({**GOOD, "weight": 1})
