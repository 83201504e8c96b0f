"""A1 slice SLA policies (O-RAN ``ORAN_SliceSLATarget``) and what they make of the cells' slice requirements.

An operator's non-RT RIC states slice intents as A1 policies. This module holds the policy type (a strict pydantic
model shaped like O-RAN's SliceSLATarget schema, as published by onos-a1-dm, plus two objectives the service acts
on), validates a policy body into it (``parse_policy``: a ``FieldError`` naming the field and the rule), finds
conflicts between policies (``conflict``), and turns the policies in force into per-(cell, slice) requirement
arrays for a set of cells (``rules_of`` then ``cell_requirements``). No Ray, no HTTP: the population applies them,
``serve_app.py`` serves the A1-P v2 resource.

A policy::

    {"scope": {"sliceId": {"sst": 1, "sd": "000001", "plmnId": {"mcc": "001", "mnc": "01"}}},
     "sliceSlaObjectives": {"maxDlThptPerUe": 3000, "maxDlPacketDelayPerUe": 80, "slicePriority": 2},
     "sliceSlaResources": {"cellIdList": [{"plmnId": {"mcc": "001", "mnc": "01"}, "cId": {"ncI": 42}}]}}

Objectives and what they become in every cell in scope where the slice is active (units as O-RAN's: kbps, ms):

- ``maxDlThptPerUe`` (kbps): the per-UE DL rate the slice promises its users, i.e. the cell's per-user throughput
  requirement phi* (IDLA eq. 3: r = min(phi / phi*, d* / d, 1)). NG.116 calls it the maximum rate the slice
  supports per UE; supporting it means delivering it when asked, which is what phi* measures.
- ``maxDlPacketDelayPerUe`` (ms): the delay requirement d*. (Not in onos-a1-dm's v1 schema; O-RAN's later A1TD
  versions have it.)
- ``guaDlThptPerSlice`` (kbps): the slice's guaranteed aggregate DL throughput in each cell in scope, as NG.116's
  "guaranteed downlink throughput quota": of the traffic the slice offers, up to this much must be served. It adds
  a term to r: ``served / min(guaranteed, offered)`` (1 when nothing is offered). The allocator sees it as a
  per-user requirement: ``max(phi*, min(guaranteed / users, demand per user))`` with the users of the last period.
- ``slicePriority`` (an extension of this service, 0.01..100, default 1): the weight of the slice's term in each
  cell's utility, ``sum_s w_s log(1 + r_s)``.

Scope: ``sliceId`` must be a slice of the catalogue (``plmnId`` this network's, checked by the HTTP layer, which
knows it). ``sliceSlaResources.cellIdList`` (NR cell ids ``ncI`` = the population's cell ids) narrows the policy to
those cells; without it the policy covers every cell. Two policies conflict when they name the same slice and
their cells overlap (a policy without a cell list overlaps everything): the second is refused (HTTP 409).

Objectives O-RAN defines that this service does not act on (``maxDlThptPerSlice``, UL rates, UE and PDU session
counts, ``taIList``) are refused with the field's name, not accepted and ignored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from slicing import snssai
from slicing.config import Scenario
from slicing.errors import FieldError

POLICY_TYPE_ID = "ORAN_SliceSLATarget_1.0.0"
POLICY_ID_PATTERN = r"^[A-Za-z0-9_.~-]{1,128}$"
MAX_POLICIES = 1000  # policies held at once (a PUT beyond it is refused)
MAX_CELLS_PER_POLICY = 100_000
MAX_KBPS = 1e9  # 1 Tbit/s: above any cell
MAX_DELAY_MS = 1e6
PRIORITY_RANGE = (0.01, 100.0)
NO_GUARANTEE = np.inf  # slice_mbps of a (cell, slice) without a guaranteed aggregate
INFEASIBLE_R = 0.9  # a policy is infeasible in a cell when all its PRBs are estimated to give the slice r below this
MAX_LISTED_CELLS = 20  # infeasible cells named in a status

_STRICT = ConfigDict(extra="forbid", strict=True)
Kbps = Annotated[float, Field(gt=0, le=MAX_KBPS, allow_inf_nan=False, strict=True)]
GuaranteeKbps = Annotated[float, Field(ge=0, le=MAX_KBPS, allow_inf_nan=False, strict=True)]
DelayMs = Annotated[float, Field(gt=0, le=MAX_DELAY_MS, allow_inf_nan=False, strict=True)]
Priority = Annotated[float, Field(ge=PRIORITY_RANGE[0], le=PRIORITY_RANGE[1], allow_inf_nan=False, strict=True)]


class PlmnId(BaseModel):
    model_config = _STRICT
    mcc: str = Field(pattern=r"^[0-9]{3}$", description="mobile country code")
    mnc: str = Field(pattern=r"^[0-9]{2,3}$", description="mobile network code")

    def text(self) -> str:
        return f"{self.mcc}-{self.mnc}"


class SliceId(BaseModel):
    model_config = _STRICT
    sst: int = Field(ge=0, le=255, description="slice/service type")
    sd: str | None = Field(default=None, pattern=r"^[A-Fa-f0-9]{6}$", description="slice differentiator")
    plmnId: PlmnId

    def snssai(self) -> str:
        return snssai.canonical({"sst": self.sst} | ({"sd": self.sd} if self.sd is not None else {}))


class Scope(BaseModel):
    model_config = _STRICT
    sliceId: SliceId


class CId(BaseModel):
    model_config = _STRICT
    ncI: int = Field(ge=0, le=68_719_476_735, description="NR cell identity (36 bits): the population's cell id")


class CellId(BaseModel):
    model_config = _STRICT
    plmnId: PlmnId
    cId: CId


class SliceSlaObjectives(BaseModel):
    model_config = _STRICT
    guaDlThptPerSlice: GuaranteeKbps | None = Field(
        default=None, description="guaranteed aggregate DL throughput of the slice per cell in scope, kbps")
    maxDlThptPerUe: Kbps | None = Field(
        default=None, description="per-UE DL throughput the slice promises, kbps: the cells' phi*")
    maxDlPacketDelayPerUe: DelayMs | None = Field(
        default=None, description="maximum DL packet delay per UE, ms: the cells' d*")
    slicePriority: Priority | None = Field(
        default=None, description="weight of the slice's log(1 + r) in the cells' utility (this service's "
                                  "extension; default 1)")

    @model_validator(mode="after")
    def _one_at_least(self) -> SliceSlaObjectives:
        if all(v is None for v in self.model_dump().values()):
            raise ValueError("at least one objective is required")
        return self


class SliceSlaResources(BaseModel):
    model_config = _STRICT
    cellIdList: list[CellId] = Field(min_length=1, max_length=MAX_CELLS_PER_POLICY)


class SliceSlaPolicy(BaseModel):
    """``ORAN_SliceSLATarget``: scope, objectives, optional resources (module docstring)."""

    model_config = _STRICT
    scope: Scope
    sliceSlaObjectives: SliceSlaObjectives
    sliceSlaResources: SliceSlaResources | None = None

    def snssai(self) -> str:
        return self.scope.sliceId.snssai()

    def cells(self) -> np.ndarray | None:
        """Sorted unique cell ids in scope, or None for every cell."""
        res = self.sliceSlaResources
        if res is None:
            return None
        return np.unique(np.array([c.cId.ncI for c in res.cellIdList], dtype=np.int64))

    def plmns(self) -> set[str]:
        """Every PLMN the policy names (the slice's and its cells')."""
        res = self.sliceSlaResources
        cells = {c.plmnId.text() for c in res.cellIdList} if res is not None else set()
        return {self.scope.sliceId.plmnId.text()} | cells


def policy_schema() -> dict[str, Any]:
    """The policy type's JSON schema (``GET /A1-P/v2/policytypes/{id}``'s ``policySchema``)."""
    schema = SliceSlaPolicy.model_json_schema()
    return {"$schema": "http://json-schema.org/draft-07/schema#", "title": POLICY_TYPE_ID,
            "description": "O-RAN slice SLA target, as this service enforces it (see the operator's guide)"} | schema


STATUS_SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "description": "O-RAN policy status, with this service's details",
    "type": "object",
    "properties": {
        "enforceStatus": {"type": "string", "enum": ["ENFORCED", "NOT_ENFORCED"]},
        "enforceReason": {"type": "string",
                          "enum": ["SCOPE_NOT_APPLICABLE", "STATEMENT_NOT_APPLICABLE", "OTHER_REASON"]},
    },
    "required": ["enforceStatus"],
}


def parse_policy(body: Any) -> SliceSlaPolicy:
    """A policy body (parsed JSON) as a ``SliceSlaPolicy``; a ``FieldError`` naming the first bad field."""
    if not isinstance(body, Mapping):
        raise FieldError((), f"a policy must be a JSON object, got {type(body).__name__}")
    try:
        return SliceSlaPolicy.model_validate(dict(body))
    except ValidationError as err:
        first = err.errors(include_url=False, include_input=False)[0]
        path = tuple(p for p in first["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        msg = str(first["msg"])
        if first["type"] == "extra_forbidden":
            msg = "not a field of " + POLICY_TYPE_ID + " that this service acts on (see its policy schema)"
        raise FieldError(path, msg) from None


def conflict(policies: Mapping[str, SliceSlaPolicy], policy_id: str, new: SliceSlaPolicy) -> str | None:
    """The id of a held policy (other than ``policy_id``) for the same slice whose cells overlap ``new``'s."""
    cells = new.cells()
    for pid, other in policies.items():
        if pid == policy_id or other.snssai() != new.snssai():
            continue
        theirs = other.cells()
        if cells is None or theirs is None or len(np.intersect1d(cells, theirs, assume_unique=True)):
            return pid
    return None


@dataclass(frozen=True)
class SlaRule:
    """One policy as the shards apply it: the catalogue column of its slice and what it sets (None: unchanged)."""

    policy_id: str
    column: int
    cells: np.ndarray | None  # sorted global ids, or None for every cell
    throughput_req_mbps: float | None
    delay_req_ms: float | None
    slice_mbps: float | None
    weight: float | None


def rules_of(policies: Mapping[str, SliceSlaPolicy], scenario: Scenario) -> list[SlaRule]:
    """The rules of ``policies`` (in policy-id order); a ``FieldError`` for a slice outside the catalogue or a cell
    outside the population."""
    columns = {s.snssai: j for j, s in enumerate(scenario.slices)}
    out = []
    for pid in sorted(policies):
        pol = policies[pid]
        check_scope(pol, scenario)
        obj = pol.sliceSlaObjectives
        out.append(SlaRule(
            policy_id=pid, column=columns[pol.snssai()], cells=pol.cells(),
            throughput_req_mbps=None if obj.maxDlThptPerUe is None else obj.maxDlThptPerUe / 1000.0,
            delay_req_ms=obj.maxDlPacketDelayPerUe,
            slice_mbps=None if obj.guaDlThptPerSlice is None else obj.guaDlThptPerSlice / 1000.0,
            weight=obj.slicePriority))
    return out


def check_scope(policy: SliceSlaPolicy, scenario: Scenario) -> None:
    """``FieldError`` unless the policy's slice is in the catalogue and its cells in the population."""
    known = [s.snssai for s in scenario.slices]
    if policy.snssai() not in known:
        raise FieldError(("scope", "sliceId"), f"S-NSSAI {policy.snssai()} is not in the slice catalogue {known}")
    cells = policy.cells()
    if cells is not None and len(cells) and cells[-1] >= scenario.cells:
        k = next(i for i, c in enumerate(policy.sliceSlaResources.cellIdList) if c.cId.ncI >= scenario.cells)
        raise FieldError(("sliceSlaResources", "cellIdList", k, "cId", "ncI"),
                         f"unknown cell {cells[-1]}; the population has cells 0..{scenario.cells - 1}")


@dataclass(frozen=True)
class CellRequirements:
    """Per-(cell, slice) requirements of a set of cells under some rules; arrays [N, S] float64."""

    throughput_req_mbps: np.ndarray
    delay_req_ms: np.ndarray
    slice_mbps: np.ndarray  # guaranteed aggregate, NO_GUARANTEE where none
    weight: np.ndarray
    covered: dict[str, tuple[np.ndarray, int]]  # policy id -> (rows of the cells it covers, its column)

    @property
    def has_guarantee(self) -> bool:
        return bool(np.isfinite(self.slice_mbps).any())

    def context_throughput(self, users: np.ndarray, demand_per_user: np.ndarray) -> np.ndarray:
        """[N, S] the per-user requirement the allocator sees: phi*, raised where a guaranteed aggregate asks more
        of the expected ``users`` [N, S] (never above their demand ``demand_per_user`` [S]): module docstring."""
        if not self.has_guarantee:
            return self.throughput_req_mbps
        per_user = np.minimum(self.slice_mbps / np.maximum(users, 1.0), demand_per_user)  # inf/u -> demand
        return np.where(np.isfinite(self.slice_mbps), np.maximum(self.throughput_req_mbps, per_user),
                        self.throughput_req_mbps)


def cell_requirements(rules: Sequence[SlaRule], scenario: Scenario, cell_ids: np.ndarray) -> CellRequirements:
    """The catalogue's requirements for ``cell_ids`` (sorted global ids), overridden where ``rules`` cover them."""
    ids = np.asarray(cell_ids, dtype=np.int64)
    n, s = len(ids), len(scenario.slices)
    tp = np.broadcast_to([x.throughput_req_mbps for x in scenario.slices], (n, s)).astype(np.float64)
    dl = np.broadcast_to([x.delay_req_ms for x in scenario.slices], (n, s)).astype(np.float64)
    agg = np.full((n, s), NO_GUARANTEE)
    w = np.ones((n, s))
    covered = {}
    for rule in rules:
        rows = np.arange(n) if rule.cells is None else np.flatnonzero(np.isin(ids, rule.cells, assume_unique=True))
        j = rule.column
        for arr, value in ((tp, rule.throughput_req_mbps), (dl, rule.delay_req_ms), (agg, rule.slice_mbps),
                           (w, rule.weight)):
            if value is not None:
                arr[rows, j] = value
        covered[rule.policy_id] = (rows, j)
    return CellRequirements(tp, dl, agg, w, covered)
