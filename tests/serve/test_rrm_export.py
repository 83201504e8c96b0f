"""The bulk forms of every cell's RRMPolicyRatio (slicing/serve/rrm_export.py): the fast text forms are the same
JSON as the reference dicts, the Arrow stream has one row per active slice, and Accept picks the form."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from slicing.runtime.population import AllocationSnapshot
from slicing.serve.errors import ServiceError
from slicing.serve.rrm_export import (
    ARROW_MEDIA,
    NDJSON_MEDIA,
    arrow_chunks,
    cell_lines,
    cell_objects,
    export_media,
    ndjson_chunks,
    page_json,
)


@pytest.fixture
def snap() -> AllocationSnapshot:
    rng = np.random.default_rng(5)
    n = 230
    mask = rng.random((n, 4)) < 0.7
    mask[:, 0] = True
    mask[7] = [True, False, False, False]
    shares = rng.dirichlet(np.ones(4), n) * mask
    shares = shares / np.maximum(shares.sum(axis=1, keepdims=True), 1.0) * 0.97
    shares[3, 0] = 0.29  # 28.999999999999996 % in float64: the ratios round it to 29
    return AllocationSnapshot(9, "abc123", "idla", ("01-000001", "01-00000a", "80", "02-000004"), shares, mask)


def test_text_forms_are_the_reference_json(snap):
    ref = cell_objects(snap, 0, "001", "01")
    assert [json.loads(line) for line in cell_lines(snap, 0, "001", "01")] == ref
    lines = b"".join(ndjson_chunks(snap, "001", "01", chunk=50)).decode().splitlines()
    assert [json.loads(line) for line in lines] == ref  # chunks of 50 cells, cell ids carried on
    part = snap.page(100, 40)
    page = json.loads(page_json(part, {"period": 9, "next": None}, 100, "001", "01"))
    assert page["period"] == 9 and page["next"] is None and page["cells"] == ref[100:140]
    cell = ref[3]
    assert cell["cell_id"] == "3" and cell["period"] == 9
    first = cell["slices"][0]["rRMPolicyRatio"]
    assert (first["rRMPolicyMinRatio"], first["rRMPolicyMaxRatio"]) == (29, 29)
    assert ref[7]["slices"] == [ref[7]["slices"][0]] and len(ref[7]["slices"]) == 1  # only active slices
    sd_less = [s for c in ref for s in c["slices"] if s["snssai"] == "80"]
    assert sd_less and sd_less[0]["rRMPolicyRatio"]["rRMPolicyMemberList"] == [
        {"plmnId": {"mcc": "001", "mnc": "01"}, "snssai": {"sst": 128}}]
    for c in ref:
        mins = [s["rRMPolicyRatio"]["rRMPolicyMinRatio"] for s in c["slices"]]
        assert sum(mins) <= 100


def test_arrow_stream_has_a_row_per_active_slice(snap):
    table = pa.ipc.open_stream(b"".join(arrow_chunks(snap, "001", "01", chunk=64))).read_all()
    assert table.num_rows == int(snap.mask.sum())
    meta = table.schema.metadata
    assert meta[b"period"] == b"9" and meta[b"model_version"] == b"abc123" and meta[b"plmn_mcc"] == b"001"
    cells, slots = np.nonzero(snap.mask)
    assert table.column("cell_id").to_pylist() == cells.tolist()
    assert np.array_equal(table.column("share").to_numpy(), snap.shares[cells, slots])
    assert table.column("sd").to_pylist()[:1] == ["000001"]
    assert None in table.column("sd").to_pylist()  # the SD-less slice 80


@pytest.mark.parametrize(("accept", "media"), [
    (None, NDJSON_MEDIA), ("*/*", NDJSON_MEDIA), ("application/json", NDJSON_MEDIA),
    (ARROW_MEDIA, ARROW_MEDIA), (f"text/html, {ARROW_MEDIA};q=0.9", ARROW_MEDIA), (NDJSON_MEDIA, NDJSON_MEDIA)])
def test_accept_picks_the_form(accept, media):
    assert export_media(accept) == media


def test_an_accept_naming_neither_form_is_406():
    with pytest.raises(ServiceError) as err:
        export_media("text/html")
    assert err.value.status == 406
