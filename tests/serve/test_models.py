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
    above = hi * (1 + 1e-9) + 1e-9  # just above, also for hi = 1e9
    values = [spec.lo, spec.lo - 1e-9, spec.lo - 1, (spec.lo + hi) / 2, hi, above, math.nan, math.inf, -math.inf]
    verdicts = {v: (_http_accepts({**GOOD, spec.name: v}), _runtime_accepts({**GOOD, spec.name: v})) for v in values}
    assert all(h == r for h, r in verdicts.values()), verdicts
    assert verdicts[spec.lo] == (True, True) and verdicts[spec.lo - 1e-9] == (False, False)
    assert verdicts[math.nan] == (False, False)
    if spec.hi is not None:
        assert verdicts[above] == (False, False)


def test_kpi_record_forbids_unknown_fields() -> None:
    with pytest.raises(ValidationError, match="extra"):
        KpiRecord.model_validate({**GOOD, "weight": 1})


@pytest.mark.parametrize("value", [True, False, "1.5", 1e10, 1e-9])
def test_numbers_are_strict_and_bounded(value) -> None:
    """A boolean or a numeric string is not a number (pydantic's lax mode took false as 0.0), and magnitudes stay
    where the float32 models are finite."""
    from slicing.serve.models import SliceRequest

    good = {"snssai": "1", "throughput_req_mbps": 2, "delay_req_ms": 10.5, "users_history": [1, 2, 3, 4, 5],
            "cqi_history": [5.0] * 5, "last_period": {"throughput_mbps": 1.0, "prb_util": 0.2, "nbr_prb_util": 0.1}}
    assert SliceRequest.model_validate(good).throughput_req_mbps == 2.0  # an integer is a number
    for field in ("throughput_req_mbps", "delay_req_ms"):
        with pytest.raises(ValidationError, match=field):
            SliceRequest.model_validate({**good, field: value})
    if isinstance(value, bool | str):
        with pytest.raises(ValidationError, match="nbr_prb_util"):
            SliceRequest.model_validate({**good, "last_period": {**good["last_period"], "nbr_prb_util": value}})
        with pytest.raises(ValidationError, match="users"):
            KpiRecord.model_validate({**GOOD, "users": value})
