"""Whole-population allocations as the 3GPP objects an rApp writes to cells over O1 (``GET /v1/allocations``).

One cell of one period::

    {"cell_id": "42", "period": 17, "slices": [{"snssai": "01-000001", "share": 0.4825,
     "rRMPolicyRatio": {"rRMPolicyMemberList": [{"plmnId": {"mcc": "001", "mnc": "01"},
                                                 "snssai": {"sst": 1, "sd": "000001"}}],
                        "resourceType": "prb", "rRMPolicyMaxRatio": 49, "rRMPolicyMinRatio": 48,
                        "rRMPolicyDedicatedRatio": 24}}]}

``rRMPolicyRatio`` is TS 28.541's ``RRMPolicyRatio`` (its member list as in the stage-3 OpenAPI: PLMN and S-NSSAI),
the ratios from ``slicing/optim/rrm.py``; only the cell's active slices are listed. Three forms, all from one
``AllocationSnapshot`` (``slicing/runtime/population.py``):

- ``cell_objects``: such dicts (the reference the text forms are tested against);
- ``page_json``: a page as JSON text, and ``ndjson_chunks``: the whole population, one JSON line per cell; both
  from ``cell_lines``, per-slice text templates giving the same JSON as ``cell_objects`` (json.dumps of 100k
  nested dicts would take most of the time budget);
- ``arrow_chunks``: Arrow IPC stream, one row per (cell, active slice): ``cell_id, snssai, sst, sd, share,
  max_ratio, min_ratio, dedicated_ratio``, with period, model version, scheme and PLMN in the schema metadata.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np

from slicing.optim.rrm import rrm_policy_ratios
from slicing.runtime.population import AllocationSnapshot
from slicing.serve.errors import ServiceError
from slicing.snssai import as_3gpp

NDJSON_MEDIA = "application/x-ndjson"
ARROW_MEDIA = "application/vnd.apache.arrow.stream"
CHUNK_CELLS = 5000


def export_media(accept: str | None) -> str:
    """The export's media type for an ``Accept`` header: Arrow IPC when it names it, else NDJSON when it accepts
    NDJSON, JSON or anything; a 406 ``ServiceError`` otherwise."""
    wanted = [part.split(";")[0].strip().lower() for part in (accept or "*/*").split(",")]
    if ARROW_MEDIA in wanted:
        return ARROW_MEDIA
    if any(w in (NDJSON_MEDIA, "application/json", "application/*", "*/*", "") for w in wanted):
        return NDJSON_MEDIA
    raise ServiceError(406, f"Accept {accept!r}: the export is {NDJSON_MEDIA} or {ARROW_MEDIA}")


def _members(snssai: tuple[str, ...], mcc: str, mnc: str) -> list[list[dict[str, Any]]]:
    return [[{"plmnId": {"mcc": mcc, "mnc": mnc}, "snssai": as_3gpp(s)}] for s in snssai]


def cell_objects(snap: AllocationSnapshot, first_cell: int, mcc: str, mnc: str) -> list[dict[str, Any]]:
    """One dict per cell of ``snap`` (cells ``first_cell`` ..), as in the module doc."""
    rrm = rrm_policy_ratios(snap.shares, snap.mask)
    members = _members(snap.snssai, mcc, mnc)
    out = []
    for i in range(len(snap.shares)):  # per cell of a page (<= 10,000)
        slices = [{"snssai": snap.snssai[j], "share": float(snap.shares[i, j]),
                   "rRMPolicyRatio": {"rRMPolicyMemberList": members[j], "resourceType": "prb",
                                      "rRMPolicyMaxRatio": int(rrm.max_ratio[i, j]),
                                      "rRMPolicyMinRatio": int(rrm.min_ratio[i, j]),
                                      "rRMPolicyDedicatedRatio": int(rrm.dedicated_ratio[i, j])}}
                  for j in np.flatnonzero(snap.mask[i])]
        out.append({"cell_id": str(first_cell + i), "period": snap.period, "slices": slices})
    return out


def cell_lines(snap: AllocationSnapshot, first_cell: int, mcc: str, mnc: str) -> list[str]:
    """The JSON text of each cell of ``snap`` (cells ``first_cell`` ..), the same as ``cell_objects`` gives,
    built from per-slice text templates (json.dumps of 100k nested dicts would take most of the time budget)."""
    members = _members(snap.snssai, mcc, mnc)
    templates = [
        '{"snssai":' + json.dumps(s) + ',"share":%r,"rRMPolicyRatio":{"rRMPolicyMemberList":'
        + json.dumps(members[j], separators=(",", ":")).replace("%", "%%")
        + ',"resourceType":"prb","rRMPolicyMaxRatio":%d,"rRMPolicyMinRatio":%d,"rRMPolicyDedicatedRatio":%d}}'
        for j, s in enumerate(snap.snssai)]
    head = '{"cell_id":"%d","period":' + str(int(snap.period)) + ',"slices":['
    rrm = rrm_policy_ratios(snap.shares, snap.mask)
    shares = snap.shares.tolist()
    mx, mn, dd = rrm.max_ratio.tolist(), rrm.min_ratio.tolist(), rrm.dedicated_ratio.tolist()
    lines = []
    for i, active in enumerate(snap.mask.tolist()):  # per cell
        body = ",".join(templates[j] % (shares[i][j], mx[i][j], mn[i][j], dd[i][j]) for j, on in enumerate(active)
                        if on)
        lines.append(head % (first_cell + i) + body + "]}")
    return lines


def page_json(snap: AllocationSnapshot, header: dict[str, Any], first_cell: int, mcc: str, mnc: str) -> bytes:
    """A ``GET /v1/allocations`` page: ``header``'s fields, then ``cells`` (``cell_lines``)."""
    head = json.dumps(header, separators=(",", ":"))[:-1]
    return (head + ',"cells":[' + ",".join(cell_lines(snap, first_cell, mcc, mnc)) + "]}").encode()


def ndjson_chunks(snap: AllocationSnapshot, mcc: str, mnc: str, chunk: int = CHUNK_CELLS) -> Iterator[bytes]:
    """The whole snapshot as NDJSON (one ``cell_lines`` line per cell), ``chunk`` cells per yielded block."""
    for lo in range(0, len(snap.shares), chunk):  # per block of cells
        yield ("\n".join(cell_lines(snap.page(lo, chunk), lo, mcc, mnc)) + "\n").encode()


def arrow_chunks(snap: AllocationSnapshot, mcc: str, mnc: str, chunk: int = 4 * CHUNK_CELLS) -> Iterator[bytes]:
    """The whole snapshot as an Arrow IPC stream (long format, module doc), one record batch per ``chunk`` cells."""
    import pyarrow as pa

    sst = [as_3gpp(s)["sst"] for s in snap.snssai]
    sd = [as_3gpp(s).get("sd") for s in snap.snssai]
    schema = pa.schema(
        [("cell_id", pa.int64()), ("snssai", pa.dictionary(pa.int8(), pa.string())), ("sst", pa.uint8()),
         ("sd", pa.string()), ("share", pa.float64()), ("max_ratio", pa.uint8()), ("min_ratio", pa.uint8()),
         ("dedicated_ratio", pa.uint8())],
        metadata={"period": str(snap.period), "model_version": snap.model_version, "scheme": snap.scheme,
                  "plmn_mcc": mcc, "plmn_mnc": mnc, "resource_type": "prb"})
    sink = _Drain()
    writer = pa.ipc.new_stream(pa.PythonFile(sink, mode="w"), schema)
    for lo in range(0, len(snap.shares), chunk):  # per block of cells
        part = snap.page(lo, chunk)
        rrm = rrm_policy_ratios(part.shares, part.mask)
        cell, slot = np.nonzero(part.mask)  # one row per (cell, active slice), cell-major
        writer.write_batch(pa.record_batch([
            pa.array(cell + lo, pa.int64()),
            pa.DictionaryArray.from_arrays(pa.array(slot, pa.int8()), pa.array(list(snap.snssai), pa.string())),
            pa.array(np.asarray(sst, np.uint8)[slot]), pa.array([sd[j] for j in slot], pa.string()),
            pa.array(part.shares[cell, slot]), pa.array(rrm.max_ratio[cell, slot].astype(np.uint8)),
            pa.array(rrm.min_ratio[cell, slot].astype(np.uint8)),
            pa.array(rrm.dedicated_ratio[cell, slot].astype(np.uint8))], schema=schema))
        yield sink.take()
    writer.close()
    yield sink.take()


class _Drain:
    """A write-only file whose bytes are taken out after each record batch (so the stream is sent as written)."""

    closed = False

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def take(self) -> bytes:
        out, self.parts = b"".join(self.parts), []
        return out
