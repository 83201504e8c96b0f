"""S-NSSAI forms (slicing/snssai.py): every accepted form gives one canonical string; anything else is refused
with the rule; the scenario catalogue keeps it canonical and sees duplicates across forms."""

from __future__ import annotations

import pytest

from slicing.config import ScenarioError, SliceType, build_scenario, default_catalogue
from slicing.snssai import as_3gpp, canonical


@pytest.mark.parametrize(("value", "expected"), [
    ("01-000001", "01-000001"),
    ("1-000001", "01-000001"),
    ("01-00000A", "01-00000a"),
    ("1", "01"),
    ("01", "01"),
    ("10", "10"),  # two digits are hex: SST 16
    ("128", "80"),  # three digits are decimal
    ("255-ABCDEF", "ff-abcdef"),
    ({"sst": 1, "sd": "000001"}, "01-000001"),
    ({"sst": 128}, "80"),
    ({"sst": 0, "sd": "FFFFFF"}, "00-ffffff"),
])
def test_every_form_gives_the_canonical_string(value, expected):
    assert canonical(value) == expected
    assert canonical(canonical(value)) == expected  # canonical is a fixed point


@pytest.mark.parametrize(("value", "message"), [
    ("256", "SST must be in 0..255, got '256'"),
    ("1-2", "expected an S-NSSAI"),
    ("0001", "expected an S-NSSAI"),
    ("01-0000001", "expected an S-NSSAI"),
    ("g1", "expected an S-NSSAI"),
    (1, "expected an S-NSSAI"),
    (None, "expected an S-NSSAI"),
    ({"sst": True}, "sst must be an integer in 0..255, got True"),
    ({"sst": "1"}, "sst must be an integer in 0..255, got '1'"),
    ({"sst": 256}, "sst must be an integer in 0..255, got 256"),
    ({"sst": 1, "sd": "12345"}, "sd must be six hex digits, got '12345'"),
    ({"sst": 1, "sd": 1}, "sd must be six hex digits, got 1"),
    ({"sd": "000001"}, "got the keys ['sd']"),
    ({"sst": 1, "plmn": "x"}, "got the keys ['plmn', 'sst']"),
])
def test_anything_else_is_refused_with_the_rule(value, message):
    with pytest.raises(ValueError) as err:
        canonical(value)
    assert message in str(err.value)


def test_3gpp_object_round_trip():
    assert as_3gpp("1-00000A") == {"sst": 1, "sd": "00000a"}
    assert as_3gpp("80") == {"sst": 128}
    assert canonical(as_3gpp("ff-abcdef")) == "ff-abcdef"


def test_the_catalogue_keeps_snssai_canonical_and_sees_duplicates_across_forms():
    st = SliceType(id=9, name="x", snssai={"sst": 2, "sd": "0000AB"}, throughput_req_mbps=1, delay_req_ms=10,
                   users_peak=1)
    assert st.snssai == "02-0000ab"
    slices = [s.model_dump() for s in default_catalogue()]
    slices[1]["snssai"] = "1-000001"  # the same as slice 1's 01-000001
    with pytest.raises(ScenarioError, match="snssai values must be unique"):
        build_scenario({"slices": slices})
    slices[1]["snssai"] = "1-999"
    with pytest.raises(ScenarioError, match="slices.1.snssai"):
        build_scenario({"slices": slices})
