"""The replica's side of the running population (the ``slicing-population`` actor): calls with a timeout, cell
pages, one cell's allocation through a per-period cache, KPI ingest, and the population part of readiness.

Every call has the configured timeout (``ServiceSettings.population_timeout_s``); an unreachable, dead or slow
population is 503 + ``Retry-After`` (and the handle is looked up again next time). The population's bad-input
errors arrive as themselves (``slicing.runtime.ray_util.unwrap``): ``UnknownCell`` (a KeyError) is a 404, a
``FieldError`` such as ``records.3.cqi`` a 422 with ``body.records.3.cqi`` (``serve_app.py``).

Allocation cache (``GET /v1/cells/{id}/allocation``): answers are kept per cell for the period the watcher last saw.
The watcher task (started by the first such request) polls the population's period every ``PERIOD_POLL_S``; a new
period (or a population that does not answer) empties the cache. An answer fetched just before a period switch
(older period) is returned but not kept, so the cache never holds a previous period's allocation.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from slicing.errors import FieldError
from slicing.optim.rrm import rrm_policy_ratios
from slicing.runtime.population import (
    AllocationSnapshot,
    PeriodNotHeld,
    PolicyConflict,
    UnknownModel,
    UnknownPolicy,
)
from slicing.runtime.ray_util import unwrap
from slicing.serve.errors import ServiceError, unavailable
from slicing.serve.models import KpiIngest
from slicing.serve.rrm_export import page_json
from slicing.serve.settings import ServiceSettings

PERIOD_POLL_S = 0.5  # how often the service asks the population for its period (allocation cache validity)
CACHE_MAX_CELLS = 200_000  # allocations cached per period at most
PAYLOAD_TIMEOUT_S = 60.0  # fetching the estimator's weights may take longer than a read


def population_handle():
    """The running population actor (``LookupError`` if none)."""
    from slicing.runtime import get_population_actor

    return get_population_actor()


def _unknown_cell(cell_id: str) -> ServiceError:
    return ServiceError(404, f"unknown cell {cell_id!r}")


class PopulationClient:
    """Calls to the population actor for one replica; ``lookup`` returns its handle (raises if there is none)."""

    def __init__(self, settings: ServiceSettings, lookup: Callable[[], Any] = population_handle) -> None:
        self.settings = settings
        self._lookup = lookup
        self._actor = None
        self._stop = threading.Event()
        self._cache: dict[int, dict] = {}  # cell id -> GET /v1/cells/{id}/allocation answer for _cache_period
        self._cache_period: int | None = None
        self._watcher: asyncio.Task | None = None

    def stop(self) -> None:
        self._stop.set()

    def handle(self) -> Any:
        if self._actor is None:
            self._actor = self._lookup()
        return self._actor

    # ------------------------------------------------------------------ blocking (the estimator loader thread)

    def ready_model_version(self) -> str | None:
        """The population's estimator version if it is running, ready and has one, else None (an unreachable
        population is looked up again next time)."""
        import ray

        timeout = self.settings.population_timeout_s
        try:
            actor = self.handle()
            if not ray.get(actor.ready.remote(), timeout=timeout):
                return None
            version = ray.get(actor.model_version.remote(), timeout=timeout)
            return None if version is None else str(version)  # None: a population without an estimator
        except Exception:  # no population (yet), or it died: look it up again next time
            self._actor = None
            return None

    def estimator_payload(self) -> Any:
        """The population's current estimator (``estimator_payload()`` of the actor); raises on any failure."""
        import ray

        return ray.get(self.handle().estimator_payload.remote(), timeout=PAYLOAD_TIMEOUT_S)

    # ---------------------------------------------------------------------------------------- async (requests)

    async def call(self, method: str, *args: Any) -> Any:
        """Call a population actor method with the configured timeout; 503 + Retry-After if it is unreachable."""
        retry = self.settings.retry_after_s
        try:
            actor = self.handle()
        except Exception:  # not started (yet)
            self._actor = None
            raise unavailable("population not available", retry) from None
        ref = getattr(actor, method).remote(*args)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(ref.future()), self.settings.population_timeout_s)
        except TimeoutError:
            raise unavailable(f"population did not answer {method} within "
                              f"{self.settings.population_timeout_s:g} s", retry) from None
        except Exception as err:
            from ray.exceptions import RayActorError

            if isinstance(err, RayActorError):
                self._actor = None
                raise unavailable("population not available", retry) from None
            cause = unwrap(err, LookupError, ValueError)  # UnknownCell (a KeyError), no e2e step, a FieldError
            if cause is not err:
                raise cause from None
            raise

    async def readiness(self) -> tuple[bool, str | None]:
        """(ready, why not) of the population."""
        try:
            if await self.call("ready"):
                return True, None
            return False, "population not ready"
        except ServiceError as err:
            return False, err.detail

    async def cells(self, limit: int, offset: int) -> dict:
        ids, total = await asyncio.gather(self.call("cell_ids", limit, offset), self.call("n_cells"))
        return {"cells": [str(int(i)) for i in ids], "total": int(total), "limit": limit, "offset": offset}

    async def e2e_page(self, limit: int, offset: int) -> dict:
        """A page of the population's e2e slice instances (its microopt step); 404 when it runs none (yet)."""
        try:
            return await self.call("e2e_page", limit, offset)
        except LookupError as err:
            raise ServiceError(404, str(err).strip("'\"")) from None

    async def allocations_page(self, offset: int, limit: int, period: int | None) -> bytes:
        """A page of every cell's allocation of one period, as TS 28.541 RRMPolicyRatio objects (JSON text);
        ``next`` walks on in the same period (410 once it is no longer held, 404 for a period not allocated yet)."""
        page = await self._held("allocations_page", offset, limit, period)
        snap = page["snapshot"]
        end = offset + len(snap.shares)
        nxt = (f"/v1/allocations?offset={end}&limit={limit}&period={snap.period}" if end < page["total"] else None)
        header = {"period": snap.period, "model_version": snap.model_version, "scheme": snap.scheme,
                  "total": page["total"], "offset": offset, "limit": limit, "next": nxt}
        return await asyncio.to_thread(page_json, snap, header, offset, self.settings.plmn_mcc,
                                       self.settings.plmn_mnc)

    async def allocations(self, period: int | None) -> AllocationSnapshot:
        """Every cell's allocation of one period (the newest held by default)."""
        return await self._held("allocations", period)

    async def _held(self, method: str, *args: Any) -> Any:
        try:
            return await self.call(method, *args)
        except PeriodNotHeld as err:
            raise ServiceError(410 if err.gone else 404, str(err)) from None

    async def push_rl_model(self, blob: bytes) -> dict:
        """Stage an RL checkpoint archive in the population (validated there: a FieldError on ``model``, 422)."""
        return await self.call("push_rl_model", blob)

    def ready_rl_version(self) -> str | None:
        """The population's active RL version (blocking; None if there is none or the population is unreachable)."""
        import ray

        try:
            version = ray.get(self.handle().rl_version.remote(), timeout=self.settings.population_timeout_s)
            return None if version is None else str(version)
        except Exception:
            self._actor = None
            return None

    def rl_archive(self) -> bytes | None:
        """The population's active RL checkpoint archive (blocking); raises on any failure."""
        import ray

        return ray.get(self.handle().rl_archive.remote(), timeout=PAYLOAD_TIMEOUT_S)

    async def push_model(self, payload: dict) -> dict:
        """Stage a validated estimator in the population (it switches at the next period boundary)."""
        return await self.call("push_model", payload)

    async def activate_model(self, version: str) -> dict:
        """Stage a kept version (roll back); 404 when the population does not keep it."""
        try:
            return await self.call("activate_model", version)
        except UnknownModel as err:
            raise ServiceError(404, str(err)) from None

    async def models(self) -> dict:
        return await self.call("models")

    # -- A1 policies: errors as they come (serve_app.py answers them as problem+json) ------------------------
    async def put_policy(self, policy_id: str, body: dict) -> dict:
        """``{created, policy}``; a ``FieldError`` (answered 400) or 409 for a conflict with another policy."""
        try:
            return await self.call("put_policy", policy_id, body)
        except PolicyConflict as err:
            raise ServiceError(409, str(err)) from None

    async def delete_policy(self, policy_id: str) -> None:
        await self._policy_call("delete_policy", policy_id)

    async def policy_ids(self) -> list[str]:
        return await self.call("policy_ids")

    async def policy(self, policy_id: str) -> dict:
        return await self._policy_call("policy", policy_id)

    async def policy_status(self, policy_id: str) -> dict:
        return await self._policy_call("policy_status", policy_id)

    async def _policy_call(self, method: str, policy_id: str) -> Any:
        try:
            return await self.call(method, policy_id)
        except UnknownPolicy as err:
            raise ServiceError(404, str(err)) from None

    async def requirements(self, cell_id: str) -> dict:
        """The requirements in force in one cell, per slice (404 for an unknown cell)."""
        if not (cell_id.isdigit() and len(cell_id) <= 18):
            raise _unknown_cell(cell_id)
        try:
            slices = await self.call("requirements", int(cell_id))
        except KeyError:
            raise _unknown_cell(cell_id) from None
        return {"cell_id": str(int(cell_id)), "slices": slices}

    async def cell_allocation(self, cell_id: str) -> dict:
        """A cell's current allocation with its RRM policy ratios, from the per-period cache when possible."""
        if not (cell_id.isdigit() and len(cell_id) <= 18):
            raise _unknown_cell(cell_id)
        cid = int(cell_id)
        self._ensure_watcher()
        hit = self._cache.get(cid)
        if hit is not None:
            return hit
        try:
            a = await self.call("allocation", cid)
        except KeyError:
            raise _unknown_cell(cell_id) from None
        out = _with_rrm(a)
        if out["period"] == self._cache_period and len(self._cache) < CACHE_MAX_CELLS:  # see module docstring
            self._cache[cid] = out
        return out

    def _ensure_watcher(self) -> None:
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.get_running_loop().create_task(self._watch_period())

    async def _watch_period(self) -> None:
        """Poll the population's period every PERIOD_POLL_S; a new period empties the allocation cache."""
        while not self._stop.is_set():
            try:
                period = int(await self.call("period"))
            except Exception:  # population gone: no cache until it is back
                period = None
            if period != self._cache_period or period is None:
                self._cache = {}
                self._cache_period = period
            await asyncio.sleep(PERIOD_POLL_S)

    async def ingest(self, body: KpiIngest) -> dict:
        """Push KPI records into the population, all or nothing; a refused record is a FieldError (422)."""
        records = [{**r.model_dump(), "cell_id": int(r.cell_id)} for r in body.records]
        try:
            n = await self.call("ingest", records)
        except FieldError:
            raise
        except ValueError as err:  # a refusal without a field path: about the records as a whole
            raise FieldError(("records",), str(err) or "invalid records") from None
        return {"accepted": int(n)}


def _with_rrm(a: dict) -> dict:
    """The population's ``allocation()`` answer with TS 28.541 RRM policy ratios per slice."""
    slices = a["slices"]
    shares = np.array([[float(sl["share"]) for sl in slices]], dtype=np.float64).reshape(1, len(slices))  # [1, S]
    rrm = rrm_policy_ratios(shares)
    return {
        "cell_id": str(a["cell_id"]), "period": int(a["period"]), "model_version": str(a["model_version"]),
        "scheme": str(a["scheme"]),
        "slices": [{"snssai": sl["snssai"], "share": float(shares[0, j]),
                    "rrm_policy": {"max_ratio": int(rrm.max_ratio[0, j]), "min_ratio": int(rrm.min_ratio[0, j]),
                                   "dedicated_ratio": int(rrm.dedicated_ratio[0, j])}}
                   for j, sl in enumerate(slices)],
    }
