"""Request and response models of the HTTP API v1 (``serve_app.py``). Pydantic 2; no Ray, no FastAPI.

Every request model forbids unknown keys and non-finite numbers, so a bad field is answered with 422 naming its
JSON path (``body.cells.0.slices.1.users_history``). Cell ids are strings in the API; the running population's
cells are the strings of their integer ids. ``KpiRecord`` is generated from the one KPI contract,
``slicing/data/kpi.py``. (``FieldError`` here is the OpenAPI schema of one 422 entry; the exception of that name is
``slicing.errors.FieldError``.)
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    create_model,
    field_validator,
    model_validator,
)
from pydantic.json_schema import WithJsonSchema

from slicing import snssai
from slicing.config import HISTORY
from slicing.data.kpi import KPI_VALUES, KpiValue
from slicing.rl.settings import STRATEGIES
from slicing.transfer.ranking import METHODS

MAX_SLICES_PER_CELL = 16
SCHEME_NAMES = ("idla", "traffic", "equal", "oracle", "rl")

# Any form of slicing/snssai.py in (one error naming the rule otherwise), the canonical string after validation and
# in every response; the OpenAPI schema lists both forms.
SNSSAI_SCHEMA = {"anyOf": [
    {"type": "string", "pattern": snssai.STRING_PATTERN, "examples": ["01-000001", "1-000001", "1"]},
    {"type": "object", "title": "Snssai (TS 29.571)", "additionalProperties": False, "required": ["sst"],
     "properties": {"sst": {"type": "integer", "minimum": 0, "maximum": 255},
                    "sd": {"type": "string", "pattern": snssai.SD_PATTERN}}},
]}
Snssai = Annotated[str, BeforeValidator(snssai.canonical), WithJsonSchema(SNSSAI_SCHEMA, mode="validation")]


def _utf8(v: str) -> str:
    """Echoed strings must be text that UTF-8 can carry back (JSON allows lone surrogates such as \\udb86)."""
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (no lone surrogate code points)") from None
    return v


# Numbers are strict: a JSON boolean or a numeric string is refused (pydantic's lax mode would take false as 0.0);
# an integer is still a number.
CellId = Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(_utf8)]
IntCellId = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,18}$")]
# Magnitudes are bounded too: the models compute in float32, where 1e300 is inf and 1e-300 is 0.
MAX_VALUE, MIN_POSITIVE = 1e9, 1e-6
NonNegFinite = Annotated[float, Field(ge=0, le=MAX_VALUE, allow_inf_nan=False, strict=True)]
PosFinite = Annotated[float, Field(ge=MIN_POSITIVE, le=MAX_VALUE, allow_inf_nan=False, strict=True)]
Cqi = Annotated[float, Field(ge=0, le=15, allow_inf_nan=False, strict=True)]
Fraction = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False, strict=True)]
SchemeName = Literal["idla", "traffic", "equal", "oracle", "rl"]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ------------------------------------------------------------------------------------------ POST /v1/allocate


class LastPeriod(_Request):
    """The slice's KPIs of the last period: the RL policy's observation (scheme ``rl`` only)."""

    throughput_mbps: NonNegFinite = Field(description="achieved per-user throughput (Mbit/s)")
    prb_util: Fraction = Field(description="fraction of the cell's PRBs the slice used")
    nbr_prb_util: Fraction = Field(default=0.0, description="mean PRB utilisation of this slice in the cell's "
                                                            "strongest interfering neighbours (0 if unknown)")


class SliceRequest(_Request):
    snssai: Snssai = Field(description="S-NSSAI: {sst, sd} or 'SST-SD' / 'SST' (e.g. 01-000001, 1-000001, 1); "
                                       "answered as 01-000001; unique within the cell")
    throughput_req_mbps: PosFinite = Field(description="per-user throughput requirement phi* (Mbit/s, 1e-6..1e9)")
    delay_req_ms: PosFinite = Field(description="delay requirement d* (ms, 1e-6..1e9)")
    users_history: list[NonNegFinite] = Field(
        min_length=HISTORY, max_length=HISTORY,
        description=f"mean active users of the slice in the last {HISTORY} periods, oldest first")
    cqi_history: list[Cqi] = Field(
        min_length=HISTORY, max_length=HISTORY,
        description=f"mean CQI (0..15) of the slice's users in the last {HISTORY} periods, oldest first")
    last_period: LastPeriod | None = Field(default=None, description="required by scheme rl, ignored otherwise")


class CellRequest(_Request):
    cell_id: CellId = Field(description="any string id; echoed back")
    slices: list[SliceRequest] = Field(min_length=1, max_length=MAX_SLICES_PER_CELL)

    @field_validator("slices")
    @classmethod
    def _unique_snssai(cls, v: list[SliceRequest]) -> list[SliceRequest]:
        seen: dict[str, int] = {}
        for i, s in enumerate(v):
            key = s.snssai.lower()
            if key in seen:
                raise ValueError(f"duplicate S-NSSAI {s.snssai!r} (slices {seen[key]} and {i})")
            seen[key] = i
        return v


class AllocateRequest(_Request):
    scheme: SchemeName = Field(default="idla", description="idla | traffic | equal | oracle | rl (the service's "
                                                           "RL checkpoint, SLICING_RL_CHECKPOINT)")
    cells: list[CellRequest] = Field(min_length=1, description="at most max_cells_per_request (else 413)")


class RrmPolicy(BaseModel):
    """3GPP TS 28.541 RRMPolicyRatio in percent: dedicated_ratio <= min_ratio <= max_ratio; per cell sum(min) <= 100."""

    max_ratio: int = Field(ge=0, le=100)
    min_ratio: int = Field(ge=0, le=100)
    dedicated_ratio: int = Field(ge=0, le=100)


class SliceAllocation(BaseModel):
    snssai: str
    share: float = Field(ge=0, le=1, description="fraction of the cell's PRBs; a cell's shares add up to <= 1")
    rrm_policy: RrmPolicy


class CellAllocation(BaseModel):
    cell_id: str
    predicted_utility: float = Field(description="sum over slices of log(1 + f(share, z)) on the estimator")
    slices: list[SliceAllocation]


class AllocateResponse(BaseModel):
    model_version: str = Field(description="content hash of the QoS estimator used; for scheme rl, of the RL "
                                           "checkpoint's weights")
    allocations: list[CellAllocation]


# ------------------------------------------------------------------------------------ population (stateful)


class CellsPage(BaseModel):
    cells: list[str]
    total: int
    limit: int
    offset: int


class PopulationAllocation(BaseModel):
    cell_id: str
    period: int
    model_version: str
    scheme: str
    slices: list[SliceAllocation]


# ------------------------------------------------------------------ GET /v1/allocations (slicing/serve/rrm_export.py)


class PlmnId(BaseModel):
    mcc: str
    mnc: str


class SnssaiOut(BaseModel):
    sst: int
    sd: str | None = Field(default=None, description="absent when the S-NSSAI has no SD")


class RrmPolicyMember(BaseModel):
    """One member of an RRM policy (TS 28.541's attribute names, camel case, here and below)."""

    plmnId: PlmnId
    snssai: SnssaiOut


class RrmPolicyRatio(BaseModel):
    """TS 28.541 ``RRMPolicyRatio`` of one slice in one cell, as an rApp writes it over O1."""

    rRMPolicyMemberList: list[RrmPolicyMember]
    resourceType: Literal["prb"]
    rRMPolicyMaxRatio: int = Field(ge=0, le=100)
    rRMPolicyMinRatio: int = Field(ge=0, le=100)
    rRMPolicyDedicatedRatio: int = Field(ge=0, le=100)


class BulkSliceAllocation(BaseModel):
    snssai: str
    share: float
    rRMPolicyRatio: RrmPolicyRatio


class BulkCellAllocation(BaseModel):
    cell_id: str
    period: int
    slices: list[BulkSliceAllocation] = Field(description="the cell's active slices")


class AllocationsPage(BaseModel):
    period: int = Field(description="every page of one walk is of this period (pass it on: see next)")
    model_version: str
    scheme: str
    total: int
    offset: int
    limit: int
    next: str | None = Field(description="the next page of the same period, or null after the last")
    cells: list[BulkCellAllocation]


# ------------------------------------------------------------------------------------- /v1/models (roll-out)


class ModelStaged(BaseModel):
    version: str = Field(description="the estimator's content hash")
    status: Literal["pending", "active"] = Field(description="pending: the population switches at effective_period")
    effective_period: int = Field(description="the first period allocated with it")


class ModelVersion(BaseModel):
    version: str
    pushed_at: float = Field(description="Unix time it was first seen by the population")
    status: Literal["active", "pending", "previous"]


class RlModelsList(BaseModel):
    active: str | None = Field(description="the RL policy the population's scheme rl and POST /v1/allocate use")
    pending: str | None
    versions: list[ModelVersion] = Field(description="newest first; the population keeps the last 5")


class ModelsList(BaseModel):
    active: str | None
    pending: str | None
    versions: list[ModelVersion] = Field(description="newest first; the population keeps the last 5")
    rl: RlModelsList = Field(description="the RL checkpoints, likewise")


def _kpi_value(spec: KpiValue) -> tuple[object, object]:
    """A numeric KPI field of ``slicing.data.kpi.KPI_VALUES`` as a pydantic field: finite, within its range."""
    return (Annotated[float, Field(ge=spec.lo, le=spec.hi, allow_inf_nan=False, strict=True)],
            Field(description=spec.description))


# The record contract is slicing/data/kpi.py's (fields in its order, ranges and descriptions from KPI_VALUES), so
# what the HTTP layer accepts is what the population's parse_records accepts.
KpiRecord = create_model(
    "KpiRecord", __base__=_Request,
    cell_id=(IntCellId, Field(description="a cell of the running population (string of its integer id)")),
    snssai=(Snssai, ...),
    **{spec.name: _kpi_value(spec) for spec in KPI_VALUES},
)


class KpiIngest(_Request):
    records: list[KpiRecord] = Field(min_length=1, max_length=1_000_000, description="one per (cell, slice)")


class KpiIngestResponse(BaseModel):
    accepted: int


# ------------------------------------------------------------------------------------------------- probes/errors


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    ready: bool
    estimator: bool = Field(description="the QoS estimator is loaded")
    population: bool = Field(description="the population actor is reachable and ready")
    model_version: str | None = None
    estimator_source: str | None = Field(default=None, description="file | population | trained")
    rl_version: str | None = Field(default=None, description="weight hash of the RL policy (scheme rl), if loaded")
    detail: str = ""


class FieldError(BaseModel):
    path: str = Field(description="JSON path of the offending field, e.g. body.cells.0.slices.1.users_history")
    msg: str
    type: str


class ValidationErrorBody(BaseModel):
    detail: list[FieldError]


class ErrorBody(BaseModel):
    detail: str


# ------------------------------------------------------------------------------ transfer service (issue 5)


AgentName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]


class TransferRequest(_Request):
    target: AgentName = Field(description="name of the new (target) agent")
    cells: list[Annotated[int, Field(ge=0, strict=True)]] = Field(min_length=1, max_length=100_000,
                                                     description="the target's cell ids (global integer ids)")
    source: AgentName | None = Field(default=None, description="source agent; default: the nearest in the VAE "
                                                               "latent space")
    strategy: Literal[STRATEGIES] = Field(  # type: ignore[valid-type] - the registry's names
        default="integrated", description="model | instance | integrated (both, the paper's) | feature")
    iterations: int = Field(default=10, ge=1, le=10_000, strict=True,
                            description="RLlib training iterations of the target")
    method: Literal[METHODS] = Field(  # type: ignore[valid-type]
        default="mean", description="latent distance: mean (Lemma 1) | kl")


class RankedSource(BaseModel):
    source: str
    distance: float


class AgentInfo(BaseModel):
    name: str
    cells: list[int]
    checkpoint: str | None
    status: str = Field(description="ready | training | failed")
    source: str | None = None
    strategy: str | None = None
    distance: float | None = None
    early_reward: float | None = None
    final_reward: float | None = None
    error: str | None = None
    obs_dim: int | None = None


class AgentsPage(BaseModel):
    agents: list[AgentInfo]


class TransferResponse(BaseModel):
    target: str
    source: str
    strategy: str
    iterations: int
    ranking: list[RankedSource]
    agent: AgentInfo


# ------------------------------------------------------------------------- POST /v1/e2e/allocate (MicroOpt)


OpenFraction = Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False, strict=True)]


class TrafficForecast(_Request):
    """The slice's predicted traffic over the next reconfiguration interval, in users/s: either a truncated-normal
    forecast (``mean_users_per_s``, ``std_users_per_s``) or the predicted per-slot values (``samples``)."""

    mean_users_per_s: PosFinite | None = Field(default=None, description="centre of the forecast (users/s)")
    std_users_per_s: NonNegFinite = Field(default=0.0, description="its standard deviation (0 = constant)")
    samples: list[NonNegFinite] | None = Field(default=None, min_length=1, max_length=10_000,
                                               description="predicted users/s per slot (instead of mean/std)")

    @model_validator(mode="after")
    def _one_form(self) -> TrafficForecast:
        if (self.mean_users_per_s is None) == (self.samples is None):
            raise ValueError("give either mean_users_per_s (with std_users_per_s) or samples, not both or neither")
        if self.samples is not None and self.std_users_per_s != 0.0:
            raise ValueError("std_users_per_s goes with mean_users_per_s, not with samples")
        return self


class E2eSlaRequest(_Request):
    """An end-to-end SLA to split across the RAN, transport and core domains (``slicing/optim/sla.py``)."""

    latency_ms: PosFinite = Field(description="end-to-end latency budget (ms)")
    reliability: OpenFraction = Field(description="probability that the e2e latency stays within the budget")
    throughput_mbps: PosFinite = Field(description="slice throughput the domains must carry (Mbit/s)")


class E2eSliceRequest(_Request):
    slice_id: CellId = Field(description="any string id; echoed back")
    traffic: TrafficForecast
    q_thresh_mbps: PosFinite = Field(default=5.0, description="per-user throughput below which a slot degrades")
    beta_thresh: OpenFraction = Field(default=0.1, description="allowed E[beta], the traffic-weighted share of "
                                                               "degraded slots, in (0, 1)")
    sla: E2eSlaRequest | None = Field(default=None, description="optional e2e SLA: per-domain targets are returned "
                                                                "and the transport/CPU minimums bound MicroOpt")


class E2eCapacity(_Request):
    bandwidth_mbps: PosFinite = Field(description="transport bandwidth shared by the request's slices")
    cpu_millicores: PosFinite = Field(description="CPU shared by the request's slices")


class E2eAllocateRequest(_Request):
    slices: list[E2eSliceRequest] = Field(min_length=1, description="at most max_e2e_slices_per_request (else 413)")
    capacity: E2eCapacity | None = Field(default=None, description="shared capacity R (default: unconstrained)")


class DomainTarget(BaseModel):
    latency_ms: float
    reliability: float
    capacity_mbps: float = Field(description="service capacity the domain needs for its target")


class E2eSliceAllocation(BaseModel):
    slice_id: str
    feasible: bool = Field(description="MicroOpt found an allocation with predicted E[beta] <= beta_thresh and the "
                                       "SLA (if any) could be decomposed")
    transport_mbps: float | None = None
    cpu_millicores: float | None = None
    normalised_resource: float | None = Field(default=None, description="eta^T r, eta = [1/50, 1/4500]")
    predicted_e_beta: float | None = Field(default=None, description="E[beta] on the slice model (exact)")
    targets: dict[str, DomainTarget] | None = Field(default=None, description="ran / transport / core targets")
    ran_delay_req_ms: float | None = Field(default=None, description="the RAN latency target: the cells' d*")
    reason: str | None = Field(default=None, description="why feasible is false")


class E2eAllocateResponse(BaseModel):
    model_version: str = Field(description="content hash of the slice model used")
    allocator: Literal["microopt"] = "microopt"
    slices: list[E2eSliceAllocation]


class E2eInstance(BaseModel):
    group: int = Field(description="site group id: (cell id // 3) // sites_per_instance")
    slice: int = Field(description="slice index in the scenario's catalogue")
    snssai: str
    transport_mbps: float
    cpu_millicores: float
    traffic_mean: float = Field(description="forecast centre, users/s of the slice model")
    traffic_std: float
    e_beta: float = Field(description="predicted E[beta] on the slice model")
    feasible: bool


class E2ePage(BaseModel):
    period: int = Field(description="the period the microopt step ran for")
    model_version: str = Field(description="content hash of the slice model")
    total: int
    limit: int
    offset: int
    instances: list[E2eInstance]


# ------------------------------------------------------------------------------- A1 policies (slicing/a1.py)


class Problem(BaseModel):
    """RFC 7807 problem details (``application/problem+json``), as A1-P answers errors."""

    type: str = Field(default="about:blank")
    title: str = Field(description="the HTTP reason phrase")
    status: int
    detail: str = Field(description="what was wrong; for a bad policy the field's path first, e.g. "
                                    "`scope.sliceId.sst: ...`")


class PolicyTypeObject(BaseModel):
    policySchema: dict = Field(description="JSON schema of the policies of this type")
    statusSchema: dict = Field(description="JSON schema of their status objects")


class SatisfiedCells(BaseModel):
    period: int = Field(description="the simulated period measured")
    cells: int = Field(description="cells in scope where the slice was active")
    met: int = Field(description="of those, cells whose slice met the policy's requirements (r >= 0.999)")


class PolicyStatus(BaseModel):
    enforceStatus: Literal["ENFORCED", "NOT_ENFORCED"]
    enforceReason: Literal["SCOPE_NOT_APPLICABLE", "STATEMENT_NOT_APPLICABLE", "OTHER_REASON"] | None = None
    detail: str = Field(description="why, in words")
    effectivePeriod: int | None = Field(description="the first period allocated under the policy")
    period: int | None = Field(description="the allocation this status is about")
    cellsInScope: int | None = None
    cellsActive: int | None = Field(default=None, description="cells in scope where the slice is active")
    infeasibleCount: int | None = Field(
        default=None, description="active cells where even all PRBs are estimated to give r < 0.9 (null without an "
                                  "estimator)")
    infeasibleCells: list[int] = Field(default=[], description="the first 20 of them")
    satisfied: SatisfiedCells | None = Field(default=None, description="the last simulated period under the policy")


class SliceRequirement(BaseModel):
    throughput_req_mbps: float = Field(description="per-user throughput requirement phi*")
    delay_req_ms: float = Field(description="delay requirement d*")
    guaranteed_mbps: float | None = Field(description="guaranteed aggregate throughput (guaDlThptPerSlice)")
    priority: float = Field(description="weight of the slice in the cell's utility")
    policy: str | None = Field(description="the A1 policy that sets them; null: the catalogue's")


class CellRequirements(BaseModel):
    cell_id: str
    slices: dict[str, SliceRequirement] = Field(description="by canonical S-NSSAI")
