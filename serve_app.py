"""The slicing HTTP service v1: Ray Serve + FastAPI ingress. Thin: typed models in, ``SlicingService`` does the work.

Run it:

- ``slicing serve`` (local Ray, simulated population, this app; see ``slicing/cli/__init__.py``);
- ``serve run serve_app:app`` / ``serve deploy cluster/serve.yaml`` (import path ``serve_app:build_app`` with
  ``args``, any ``ServiceSettings`` field except ``api_token``) on a cluster where a population actor runs.

Endpoints (README.md, "HTTP service and clusters"): ``GET /healthz``, ``GET /readyz``, ``POST /v1/allocate``,
``GET /v1/cells``, ``GET /v1/cells/{cell_id}/allocation``, ``GET /v1/allocations`` (pages of every cell's
RRMPolicyRatio in one period) and ``GET /v1/allocations/export`` (all of them streamed: NDJSON or Arrow IPC),
``POST /v1/kpis``, ``POST /v1/models`` / ``GET /v1/models`` / ``POST /v1/models/{version}/activate`` (estimator
and RL checkpoint roll-out and roll-back), ``GET /v1/agents``,
``POST /v1/transfer`` (the ``slicing-transfer`` actor, ``slicing/runtime/transfer_actor.py``),
``POST /v1/e2e/allocate`` (MicroOpt for e2e slices, ``slicing/serve/e2e.py``), ``GET /v1/e2e/allocations`` (the
population's microopt step), ``GET /v1/cells/{cell_id}/requirements`` (the slice requirements in force),
``GET /openapi.json``; and the A1-P v2 policy resource under ``/A1-P/v2`` (``ORAN_SliceSLATarget_1.0.0``,
``slicing/a1.py``): policy types, PUT / GET / DELETE of policies, their status. Under ``/A1-P/v2`` every error is
``application/problem+json`` (RFC 7807) and a bad policy is 400, as A1-P has it.

Errors: 422 ``{"detail": [{"path": "body.cells.0.slices.1.users_history", "msg", "type"}]}``; 404 unknown cell
or a period not allocated yet; 410 a period no longer held; 406 an export ``Accept`` naming neither form;
413 more cells than ``max_cells_per_request``; 401 bearer token; 503 + ``Retry-After`` on overload, while the
estimator loads or when the population is unreachable; 503 on ``/v1/kpis`` when ``SLICING_API_TOKEN`` is unset.

Bad input found below the HTTP layer (a KPI record the population refuses, an unknown transfer source) is a
``slicing.errors.FieldError`` carried across Ray as data: answered 422 with ``body.<its path>``, never parsed.

The replica's ``SlicingService`` lives in ``api.state.service`` (set by ``SlicingIngress``): the dependencies read it
from ``request.app``, the middleware from ``scope["app"]``.

Overload: each replica counts the requests it is working on (``InflightLimiter``, pure ASGI, before the body is
read); above ``max_inflight_requests`` it answers 503 with ``Retry-After`` at once. Serve itself sends at most
``max_ongoing_requests`` (64) to a replica and queues at most ``max_queued_requests`` (256) per proxy, rejecting
the rest with 503 + Retry-After too (``backpressure_config``), so nothing waits unboundedly.
"""

# No `from __future__ import annotations`: FastAPI must see the real types of the class-based view's methods.
import asyncio
import functools
from http import HTTPStatus
from typing import Any, Literal

from fastapi import Depends, FastAPI, Header, Path, Query, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from ray import serve
from ray.serve.config import BackpressureConfig
from starlette.exceptions import HTTPException as StarletteHTTPException

from slicing import a1
from slicing.errors import FieldError
from slicing.serve.auth import check_read_token, check_token
from slicing.serve.errors import ServiceError
from slicing.serve.models import (
    AgentsPage,
    AllocateRequest,
    AllocateResponse,
    AllocationsPage,
    CellRequirements,
    CellsPage,
    E2eAllocateRequest,
    E2eAllocateResponse,
    E2ePage,
    ErrorBody,
    Health,
    KpiIngest,
    KpiIngestResponse,
    ModelsList,
    ModelStaged,
    PolicyStatus,
    PolicyTypeObject,
    PopulationAllocation,
    Problem,
    Readiness,
    TransferRequest,
    TransferResponse,
    ValidationErrorBody,
)
from slicing.serve.rrm_export import ARROW_MEDIA, NDJSON_MEDIA, arrow_chunks, export_media, ndjson_chunks
from slicing.serve.service import SlicingService
from slicing.serve.settings import ServiceSettings, load_settings

UNLIMITED_PATHS = ("/healthz", "/readyz", "/openapi.json", "/docs", "/redoc")
A1_PREFIX = "/A1-P/v2"
PROBLEM_MEDIA = "application/problem+json"
ERRORS: dict[int | str, dict[str, Any]] = {
    422: {"model": ValidationErrorBody, "description": "invalid field; `path` is its JSON path"},
    503: {"model": ErrorBody, "description": "overloaded, not ready or population unreachable (Retry-After)"},
}
READ_ERRORS: dict[int | str, dict[str, Any]] = {  # the reading /v1 routes
    **ERRORS,
    401: {"model": ErrorBody, "description": "SLICING_READ_TOKEN is set and the request has neither it nor the "
                                             "write token"},
}
BODY_ERRORS: dict[int | str, dict[str, Any]] = {  # routes that read a request body
    **ERRORS,
    400: {"model": ErrorBody, "description": "the body cannot be parsed (not JSON, or nested too deeply)"},
    413: {"model": ErrorBody, "description": "body larger than max_body_bytes, or too many cells / slices"},
}


class BodyLimit:
    """Pure ASGI middleware: 413 for a request body over ``max_body_bytes``, before any route parses it. A declared
    Content-Length over the limit is refused at once; otherwise the body is counted as it arrives (at most the
    limit is held) and handed on to the route."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        service = getattr(getattr(scope.get("app"), "state", None), "service", None)
        limit = service.settings.max_body_bytes if service else ServiceSettings.model_fields["max_body_bytes"].default
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await _too_large(scope["path"], limit, int(declared))(scope, receive, send)
            return
        body, more = bytearray(), True
        while more:  # per chunk of the body
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > limit:
                await _too_large(scope["path"], limit, None)(scope, receive, send)
                return
        replay = [{"type": "http.request", "body": bytes(body), "more_body": False}]

        async def receive_again():
            return replay.pop() if replay else await receive()

        await self.app(scope, receive_again, send)


def error_response(path: str, status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """An error answer: ``{"detail"}``, or RFC 7807 problem details under ``/A1-P/v2`` (A1-P's error form)."""
    if path.startswith(A1_PREFIX + "/") or path == A1_PREFIX:
        body = {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status, "detail": detail}
        return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_MEDIA)
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def _too_large(path: str, limit: int, size: int | None) -> JSONResponse:
    what = f"{size} bytes" if size is not None else f"more than {limit} bytes"
    return error_response(path, 413, f"request body of {what}; at most {limit} (max_body_bytes)")


class InflightLimiter:
    """Pure ASGI middleware: 503 + Retry-After when this replica already works on ``max_inflight_requests``."""

    def __init__(self, app) -> None:
        self.app = app
        self.inflight = 0

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(UNLIMITED_PATHS):
            await self.app(scope, receive, send)
            return
        service = getattr(getattr(scope.get("app"), "state", None), "service", None)  # None while starting
        limit = service.settings.max_inflight_requests if service else 1_000_000
        if self.inflight >= limit:
            retry = str(service.settings.retry_after_s if service else 1)
            response = error_response(scope["path"], 503, f"overloaded: {self.inflight} requests in progress "
                                                          f"(limit {limit})", {"Retry-After": retry})
            await response(scope, receive, send)
            return
        self.inflight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.inflight -= 1


api = FastAPI(
    title="slicing",
    version="1",
    description="RAN slice resource allocation (IDLA and baselines) with TS 28.541 RRM policy ratios.",
)
api.add_middleware(BodyLimit)
api.add_middleware(InflightLimiter)  # added last, so it runs first: an overloaded replica reads no body


def _is_a1(request: Request) -> bool:
    return request.url.path.startswith(A1_PREFIX + "/")


@api.exception_handler(RequestValidationError)
async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    detail = [{"path": ".".join(str(p) for p in e.get("loc", ())), "msg": str(e.get("msg", "")),
               "type": str(e.get("type", ""))} for e in exc.errors()]  # no "input": it may hold NaN
    if _is_a1(request):  # A1-P: 400, the first problem's field path (without "body.") and message
        first = detail[0] if detail else {"path": "", "msg": "invalid request"}
        where = first["path"].removeprefix("body").lstrip(".") or "body"
        return error_response(request.url.path, 400, f"{where}: {first['msg']}")
    return JSONResponse({"detail": detail}, status_code=422)


@api.exception_handler(StarletteHTTPException)
async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    """FastAPI's own errors (an unparseable body: 400): problem details under /A1-P/v2, FastAPI's answer elsewhere."""
    if _is_a1(request):
        return error_response(request.url.path, exc.status_code, str(exc.detail), getattr(exc, "headers", None))
    return await http_exception_handler(request, exc)


@api.exception_handler(ServiceError)
async def _service_error(request: Request, exc: ServiceError) -> JSONResponse:
    if _is_a1(request):
        return error_response(request.url.path, exc.status, exc.detail, exc.headers)
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


@api.exception_handler(FieldError)
async def _field_error(request: Request, exc: FieldError) -> JSONResponse:
    """Input refused below the HTTP layer (a KPI record, a transfer's source): 422 with its JSON path (400 under
    /A1-P/v2)."""
    if _is_a1(request):
        return error_response(request.url.path, 400, str(exc))
    return JSONResponse({"detail": [exc.detail("body")]}, status_code=422)


def _service(request: Request) -> SlicingService:
    service = getattr(request.app.state, "service", None)
    if service is None:
        raise ServiceError(503, "service starting", {"Retry-After": "1"})
    return service


async def _cell_limit(request: Request) -> None:
    """413 before the (costly) validation of the cells when there are too many; runs ahead of body validation."""
    limit = _service(request).settings.max_cells_per_request
    try:
        body = await request.json()
    except (ValueError, RecursionError):
        return  # reported by FastAPI's own parsing (400)
    cells = body.get("cells") if isinstance(body, dict) else None
    if isinstance(cells, list) and len(cells) > limit:
        raise ServiceError(413, f"{len(cells)} cells in one request; at most {limit} (max_cells_per_request)")


async def _ingest_auth(request: Request,
                       authorization: str | None = Header(default=None, description="Bearer <token>")) -> None:
    check_token(_service(request).settings, authorization)


async def _read_auth(request: Request,
                     authorization: str | None = Header(default=None, description="Bearer <token> (when reads "
                                                                                    "need one)")) -> None:
    check_read_token(_service(request).settings, authorization)


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM_MEDIA: {"schema": Problem.model_json_schema()}}}


A1_READ_ERRORS: dict[int | str, dict[str, Any]] = {
    401: _problem("SLICING_READ_TOKEN is set and the request has neither it nor the write token"),
    404: _problem("unknown policy type or policy"),
    503: _problem("overloaded, or the population is unreachable (Retry-After)"),
}
A1_WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    **A1_READ_ERRORS,
    401: _problem("missing or wrong bearer token"),
    503: _problem("overloaded, the population is unreachable, or writes are disabled (SLICING_API_TOKEN unset); "
                  "Retry-After"),
}
A1_POLICY_READ_ERRORS: dict[int | str, dict[str, Any]] = {  # routes with a policy id
    **A1_READ_ERRORS, 400: _problem(f"the policy id does not match {a1.POLICY_ID_PATTERN}")}
A1_POLICY_WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    **A1_WRITE_ERRORS, 400: _problem(f"the policy id does not match {a1.POLICY_ID_PATTERN}")}
PolicyTypeId = Path(description=f"the policy type; this service has {a1.POLICY_TYPE_ID}")
PolicyId = Path(pattern=a1.POLICY_ID_PATTERN, description="chosen by the A1 consumer")


def _policy_type(policy_type_id: str) -> None:
    if policy_type_id != a1.POLICY_TYPE_ID:
        raise ServiceError(404, f"unknown policy type {policy_type_id!r}; this service has {[a1.POLICY_TYPE_ID]}")


def _openapi_without_a1_422(app: FastAPI) -> dict[str, Any]:
    """FastAPI's OpenAPI, less the 422 it adds to every route with parameters: under /A1-P/v2 a bad request is a
    400 (documented per route), never a 422. Set before ``serve.ingress`` freezes a copy of the app."""
    if app.openapi_schema is None:
        schema = FastAPI.openapi(app)
        for path, ops in schema["paths"].items():
            if path.startswith(A1_PREFIX):
                for op in ops.values():
                    op["responses"].pop("422", None)
        app.openapi_schema = schema
    return app.openapi_schema


api.openapi = functools.partial(_openapi_without_a1_422, api)
CellLimit = Depends(_cell_limit)
BearerToken = Depends(_ingest_auth)
ReadToken = Depends(_read_auth)  # open unless SLICING_READ_TOKEN is set


@serve.deployment(
    name="SlicingService",
    max_ongoing_requests=64,
    max_queued_requests=256,
    # a log line per request costs CPU that the 100 req/s GET target cannot spare on 2 cores; errors still log
    logging_config={"enable_access_log": False},
    backpressure_config=BackpressureConfig(status_code=503, retry_after_s=1),
    health_check_period_s=10,
    graceful_shutdown_timeout_s=20,
    ray_actor_options={"num_cpus": 1},
)
@serve.ingress(api)
class SlicingIngress:
    """One replica: settings from the environment at start, the estimator loaded in the background."""

    def __init__(self, settings: dict[str, Any] | None = None) -> None:
        import torch

        self.svc = SlicingService(load_settings(**(settings or {})))
        # One thread by default: on a shared node, more OpenMP threads than free cores made a 1,000-cell IDLA
        # allocation ~10x slower (1.5-2.6 s instead of 0.1 s, measured on 2 busy cores).
        torch.set_num_threads(self.svc.settings.torch_threads)
        api.state.service = self.svc
        self.svc.start()

    @api.get("/healthz", response_model=Health, summary="the process is up")
    async def healthz(self) -> dict:
        return {"status": "ok"}

    @api.get("/readyz", response_model=Readiness, summary="estimator loaded and population ready (else 503)",
             responses={503: {"model": Readiness}})
    async def readyz(self) -> JSONResponse:
        r = await self.svc.readiness()
        return JSONResponse(r, status_code=200 if r["ready"] else 503)

    @api.post("/v1/allocate", response_model=AllocateResponse, dependencies=[CellLimit],
              summary="stateless allocation of the given cells (one vectorised call)",
              responses=BODY_ERRORS)
    async def allocate(self, req: AllocateRequest) -> JSONResponse:
        return JSONResponse(await asyncio.to_thread(self.svc.allocate, req))

    @api.get("/v1/cells", response_model=CellsPage, dependencies=[ReadToken],
             summary="page of the running population's cell ids", responses=READ_ERRORS)
    async def cells(self, limit: int = Query(100, ge=1, le=10_000), offset: int = Query(0, ge=0)) -> dict:
        return await self.svc.population.cells(limit, offset)

    @api.get("/v1/cells/{cell_id}/allocation", response_model=PopulationAllocation, dependencies=[ReadToken],
             summary="the running population's current allocation of one cell",
             responses={**READ_ERRORS, 404: {"model": ErrorBody, "description": "unknown cell"}})
    async def cell_allocation(self, cell_id: str) -> dict:
        return await self.svc.population.cell_allocation(cell_id)

    @api.get("/v1/allocations", response_model=AllocationsPage, dependencies=[ReadToken],
             summary="a page of every cell's allocation of one period, as TS 28.541 RRMPolicyRatio objects; follow "
                     "next to walk the population in one period",
             responses={**READ_ERRORS, 404: {"model": ErrorBody, "description": "period not allocated yet"},
                        410: {"model": ErrorBody, "description": "period no longer held (the population keeps the "
                                                                 "last few)"}})
    async def allocations(self, offset: int = Query(0, ge=0), limit: int = Query(1000, ge=1, le=10_000),
                          period: int | None = Query(None, ge=0, description="default: the newest")) -> Response:
        return Response(await self.svc.population.allocations_page(offset, limit, period),
                        media_type="application/json")

    @api.get("/v1/allocations/export", response_class=StreamingResponse, dependencies=[ReadToken],
             summary="every cell's allocation of one period in one streamed response: NDJSON (one "
                     "/v1/allocations cell per line) or, with Accept: application/vnd.apache.arrow.stream, Arrow "
                     "IPC (one row per cell and slice). Headers X-Period, X-Model-Version, X-Cells",
             responses={**READ_ERRORS,
                        200: {"content": {NDJSON_MEDIA: {}, ARROW_MEDIA: {}}, "description": "the stream"},
                        404: {"model": ErrorBody, "description": "period not allocated yet"},
                        406: {"model": ErrorBody, "description": "Accept names neither form"},
                        410: {"model": ErrorBody, "description": "period no longer held"}})
    async def export_allocations(self, period: int | None = Query(None, ge=0, description="default: the newest"),
                                 accept: str | None = Header(None)) -> StreamingResponse:
        media = export_media(accept)
        snap = await self.svc.population.allocations(period)
        s = self.svc.settings
        chunks = (arrow_chunks if media == ARROW_MEDIA else ndjson_chunks)(snap, s.plmn_mcc, s.plmn_mnc)
        return StreamingResponse(chunks, media_type=media, headers={
            "X-Period": str(snap.period), "X-Model-Version": snap.model_version, "X-Cells": str(len(snap.shares))})

    @api.post("/v1/kpis", response_model=KpiIngestResponse, dependencies=[BearerToken],
              summary="ingest KPI records into the running population (bearer token)",
              responses={**BODY_ERRORS, 401: {"model": ErrorBody, "description": "missing or wrong token"}})
    async def kpis(self, body: KpiIngest) -> dict:
        return await self.svc.population.ingest(body)

    @api.post("/v1/models", response_model=ModelStaged, status_code=202, dependencies=[BearerToken],
              summary="push a QoS estimator (kind=estimator: the bytes of a `slicing train-estimator` file) or an RL "
                      "checkpoint (kind=rl: a gzipped tar of a `slicing train-rl` checkpoint folder), bearer token: "
                      "validated here, then the population switches to it at its next period and every replica "
                      "follows",
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                  "application/gzip": {"schema": {"type": "string", "format": "binary"}}}}},
              responses={**BODY_ERRORS, 401: {"model": ErrorBody, "description": "missing or wrong token"}})
    async def push_model(self, request: Request,
                         kind: Literal["estimator", "rl"] = Query("estimator", description="what the body is")
                         ) -> JSONResponse:
        return JSONResponse(await self.svc.push_model(await request.body(), kind), status_code=202)

    @api.get("/v1/models", response_model=ModelsList, dependencies=[ReadToken],
             summary="the population's estimator versions: active, pending, previous", responses=READ_ERRORS)
    async def models(self) -> dict:
        return await self.svc.population.models()

    @api.post("/v1/models/{version}/activate", response_model=ModelStaged, status_code=202,
              dependencies=[BearerToken], summary="switch back (or forward) to a kept version at the next period "
                                                  "(bearer token)",
              responses={**ERRORS, 401: {"model": ErrorBody, "description": "missing or wrong token"},
                         404: {"model": ErrorBody, "description": "version not kept"}})
    async def activate_model(self, version: str) -> JSONResponse:
        return JSONResponse(await self.svc.population.activate_model(version), status_code=202)

    @api.get("/v1/agents", response_model=AgentsPage, dependencies=[ReadToken],
             summary="the transfer service's registry of trained agents", responses=READ_ERRORS)
    async def agents(self) -> dict:
        return await self.svc.transfers.agents()

    @api.post("/v1/transfer", response_model=TransferResponse, status_code=202,
              dependencies=[BearerToken],
              summary="rank the sources for new target cells and start a transfer (bearer token); the new agent "
                      "is listed by GET /v1/agents, status training -> ready",
              responses={**BODY_ERRORS, 401: {"model": ErrorBody, "description": "missing or wrong token"}})
    async def transfer(self, body: TransferRequest) -> JSONResponse:
        return JSONResponse(await self.svc.transfers.transfer(body), status_code=202)

    @api.post("/v1/e2e/allocate", response_model=E2eAllocateResponse,
              summary="stateless MicroOpt allocation of e2e slices: transport Mbit/s and CPU millicores per slice, "
                      "per-domain targets of an optional e2e SLA (one vectorised call)",
              responses=BODY_ERRORS)
    async def allocate_e2e(self, req: E2eAllocateRequest) -> JSONResponse:
        return JSONResponse(await asyncio.to_thread(self.svc.allocate_e2e, req))

    @api.get("/v1/cells/{cell_id}/requirements", response_model=CellRequirements, dependencies=[ReadToken],
             summary="the slice requirements in force in one cell: the catalogue's, or an A1 policy's",
             responses={**READ_ERRORS, 404: {"model": ErrorBody, "description": "unknown cell"}})
    async def cell_requirements(self, cell_id: str) -> dict:
        return await self.svc.population.requirements(cell_id)

    # -- A1-P v2: slice SLA policies ------------------------------------------------------------------------
    @api.get("/A1-P/v2/policytypes", response_model=list[str], dependencies=[ReadToken],
             summary="A1-P: the policy types this service takes", responses=A1_READ_ERRORS)
    async def policy_types(self) -> list[str]:
        return [a1.POLICY_TYPE_ID]

    @api.get("/A1-P/v2/policytypes/{policyTypeId}", response_model=PolicyTypeObject, dependencies=[ReadToken],
             summary="A1-P: a policy type's policy and status schemas", responses=A1_READ_ERRORS)
    async def policy_type(self, policyTypeId: str = PolicyTypeId) -> dict:
        _policy_type(policyTypeId)
        return {"policySchema": a1.policy_schema(), "statusSchema": a1.STATUS_SCHEMA}

    @api.get("/A1-P/v2/policytypes/{policyTypeId}/policies", response_model=list[str],
             dependencies=[ReadToken], summary="A1-P: the ids of the policies held", responses=A1_READ_ERRORS)
    async def policies(self, policyTypeId: str = PolicyTypeId) -> list[str]:
        _policy_type(policyTypeId)
        return await self.svc.population.policy_ids()

    @api.get("/A1-P/v2/policytypes/{policyTypeId}/policies/{policyId}", response_model=a1.SliceSlaPolicy,
             response_model_exclude_none=True, dependencies=[ReadToken], summary="A1-P: a policy",
             responses=A1_POLICY_READ_ERRORS)
    async def policy(self, policyTypeId: str = PolicyTypeId, policyId: str = PolicyId) -> dict:
        _policy_type(policyTypeId)
        return await self.svc.population.policy(policyId)

    @api.put("/A1-P/v2/policytypes/{policyTypeId}/policies/{policyId}", response_model=a1.SliceSlaPolicy,
             response_model_exclude_none=True, dependencies=[BearerToken],
             summary="A1-P: create (201, Location) or replace (200) a policy (bearer token); in force from the "
                     "population's next period",
             responses={**A1_WRITE_ERRORS, 201: {"model": a1.SliceSlaPolicy, "description": "created"},
                        400: _problem("the policy breaks its schema, names another PLMN, a slice outside the "
                                      "catalogue or an unknown cell; the detail names the field"),
                        409: _problem("another policy sets the same slice in some of the same cells, or the "
                                      "population holds its maximum of policies"),
                        413: _problem("body larger than max_body_bytes")})
    async def put_policy(self, body: a1.SliceSlaPolicy, policyTypeId: str = PolicyTypeId,
                         policyId: str = PolicyId) -> JSONResponse:
        _policy_type(policyTypeId)
        res = await self.svc.put_policy(policyId, body)
        if res["created"]:
            where = f"{A1_PREFIX}/policytypes/{policyTypeId}/policies/{policyId}"
            return JSONResponse(res["policy"], status_code=201, headers={"Location": where})
        return JSONResponse(res["policy"], status_code=200)

    @api.delete("/A1-P/v2/policytypes/{policyTypeId}/policies/{policyId}", status_code=204,
                response_class=Response, dependencies=[BearerToken],
                summary="A1-P: delete a policy (bearer token); its cells go back to the catalogue's requirements "
                        "from the next period", responses=A1_POLICY_WRITE_ERRORS)
    async def delete_policy(self, policyTypeId: str = PolicyTypeId, policyId: str = PolicyId) -> Response:
        _policy_type(policyTypeId)
        await self.svc.population.delete_policy(policyId)
        return Response(status_code=204)

    @api.get("/A1-P/v2/policytypes/{policyTypeId}/policies/{policyId}/status", response_model=PolicyStatus,
             dependencies=[ReadToken], summary="A1-P: is the policy enforced, and if not why",
             responses=A1_POLICY_READ_ERRORS)
    async def policy_status(self, policyTypeId: str = PolicyTypeId, policyId: str = PolicyId) -> dict:
        _policy_type(policyTypeId)
        return await self.svc.population.policy_status(policyId)

    @api.get("/v1/e2e/allocations", response_model=E2ePage, dependencies=[ReadToken],
             summary="page of the running population's e2e slice instances (its microopt step): transport Mbit/s "
                     "and CPU millicores per site group and slice",
             responses={**READ_ERRORS, 404: {"model": ErrorBody, "description": "the population runs no microopt step "
                                                                          "(yet)"}})
    async def e2e_allocations(self, limit: int = Query(100, ge=1, le=10_000), offset: int = Query(0, ge=0)) -> dict:
        return await self.svc.population.e2e_page(limit, offset)


def build_app(args: dict[str, Any] | None = None) -> serve.Application:
    """Application builder (``serve run serve_app:build_app key=value`` / ``args`` in cluster/serve.yaml).

    ``args`` are ``ServiceSettings`` overrides (e.g. ``max_inflight_requests``); they win over ``SLICING_*``
    environment variables, which are read in the replica when it starts. ``api_token`` and ``read_token`` are
    refused here: set them with ``SLICING_API_TOKEN`` / ``SLICING_READ_TOKEN`` (or their ``_FILE`` forms) in the
    replica's environment (``runtime_env.env_vars``) so they are not in the config.
    """
    args = dict(args or {})
    allowed = set(ServiceSettings.model_fields) - {"api_token", "read_token"}
    unknown = sorted(set(args) - allowed)
    if unknown:
        raise ValueError(f"serve_app.build_app: unknown args {unknown}; allowed: {sorted(allowed)}")
    return SlicingIngress.bind(args)


app = SlicingIngress.bind()
