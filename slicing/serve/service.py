"""What the HTTP service does, without HTTP: one ``SlicingService`` per Serve replica, composed of its parts.

``serve_app.py`` is the thin FastAPI/Serve layer on top; this package imports neither FastAPI nor Serve (Ray only
lazily, for the actors), so it is unit-testable in-process. The parts, one module each:

- ``estimators.Estimators``: the QoS estimator (file, population or trained; refreshed from the population) and
  the RL policy, loaded by a background thread started with ``start()``;
- ``allocate.allocate``: stateless ``POST /v1/allocate``, every cell in one vectorised call;
- ``e2e.allocate_e2e``: stateless ``POST /v1/e2e/allocate`` (MicroOpt over the request's e2e slices) with its
  slice model (``e2e.SliceModels``);
- ``population_client.PopulationClient``: the ``slicing-population`` actor (cell pages, one cell's allocation
  through a per-period cache, KPI ingest);
- ``transfer_client.TransferClient``: the ``slicing-transfer`` actor (agents, transfers);
- ``errors``/``auth``: the HTTP error answers and the bearer token.

The ingress (``serve_app.SlicingIngress``) holds its replica's service in ``app.state.service``, where the
FastAPI dependencies and the ``InflightLimiter`` middleware find it: there is no module-global service.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from slicing.a1 import SliceSlaPolicy
from slicing.config import IdlaConfig
from slicing.errors import FieldError
from slicing.models.qos_estimator import EstimatorFileError, QosEstimator, estimator_payload
from slicing.serve.allocate import allocate
from slicing.serve.e2e import SliceModels, allocate_e2e
from slicing.serve.errors import invalid
from slicing.serve.estimators import Estimators, model_from_payload, train_fallback
from slicing.serve.models import AllocateRequest, E2eAllocateRequest
from slicing.serve.population_client import PopulationClient, population_handle
from slicing.serve.settings import ServiceSettings
from slicing.serve.transfer_client import TransferClient


class SlicingService:
    """One per Serve replica. ``start()`` launches the estimator loader; the rest is called per request.

    ``population_lookup`` returns the population actor's handle (raises if none runs); ``train(seed, epochs)``
    is the fallback estimator's training (``estimators.train_fallback``).
    """

    def __init__(self, settings: ServiceSettings, population_lookup: Callable[[], Any] = population_handle,
                 train: Callable[[int, int], QosEstimator] = train_fallback) -> None:
        self.settings = settings
        self.idla = IdlaConfig()
        self.population = PopulationClient(settings, population_lookup)
        self.estimators = Estimators(settings, self.population, train)
        self.transfers = TransferClient(settings)
        self.slice_models = SliceModels(settings)

    def start(self) -> None:
        self.estimators.start()
        self.slice_models.start()

    def stop(self) -> None:
        self.estimators.stop()
        self.population.stop()

    def allocate(self, req: AllocateRequest) -> dict:
        """The response of POST /v1/allocate as plain data (``slicing/serve/allocate.py``)."""
        return allocate(req, self.estimators, self.settings, self.idla)

    def allocate_e2e(self, req: E2eAllocateRequest) -> dict:
        """The response of POST /v1/e2e/allocate as plain data (``slicing/serve/e2e.py``)."""
        return allocate_e2e(req, self.slice_models, self.settings)

    async def push_model(self, body: bytes, kind: str = "estimator") -> dict:
        """POST /v1/models: validate the estimator file (``kind`` estimator) or the RL checkpoint archive (``kind``
        rl, ``slicing.rl.inference.pack_checkpoint``) in ``body`` here (422 naming the problem, and nothing
        changes), then stage it in the population, which switches at its next period boundary; every replica
        follows within ``estimators.REFRESH_S``."""
        if kind == "rl":
            if not body:
                raise invalid((), "empty body: send a gzipped tar of a `slicing train-rl` checkpoint")
            from slicing.rl.inference import policy_from_archive

            try:
                await asyncio.to_thread(policy_from_archive, body)
            except ValueError as err:
                raise invalid((), str(err)) from None
            return await self.population.push_rl_model(body)
        if not body:
            raise invalid((), "empty body: send the bytes of a `slicing train-estimator` file")
        try:
            model = await asyncio.to_thread(model_from_payload, body)
        except (EstimatorFileError, ValueError, TypeError) as err:
            raise invalid((), str(err)) from None
        return await self.population.push_model(estimator_payload(model))

    async def put_policy(self, policy_id: str, policy: SliceSlaPolicy) -> dict:
        """PUT an A1 policy: its PLMNs must be this network's (a ``FieldError`` naming the field otherwise), then
        the population checks its slice and cells and holds it (``{created, policy}``)."""
        plmn = f"{self.settings.plmn_mcc}-{self.settings.plmn_mnc}"
        if policy.scope.sliceId.plmnId.text() != plmn:
            raise FieldError(("scope", "sliceId", "plmnId"), f"PLMN {policy.scope.sliceId.plmnId.text()} is not "
                                                             f"this network's ({plmn})")
        res = policy.sliceSlaResources
        for k, cell in enumerate(res.cellIdList if res is not None else []):
            if cell.plmnId.text() != plmn:
                raise FieldError(("sliceSlaResources", "cellIdList", k, "plmnId"),
                                 f"PLMN {cell.plmnId.text()} is not this network's ({plmn})")
        return await self.population.put_policy(policy_id, policy.model_dump(mode="json", exclude_none=True))

    async def readiness(self) -> dict:
        """GET /readyz: ready when the estimator is loaded and the population answers ready."""
        est = self.estimators
        population, why = await self.population.readiness()
        detail = [] if why is None else [why]
        if est.model is None:
            detail.append(f"estimator failed to load: {est.load_error}" if est.load_error else "estimator loading")
        if est.rl_error is not None:
            detail.append(f"RL checkpoint failed to load: {est.rl_error}")
        return {"ready": population and est.model is not None, "estimator": est.model is not None,
                "population": population, "model_version": est.model_version, "estimator_source": est.source,
                "rl_version": None if est.rl_policy is None else est.rl_policy.version, "detail": "; ".join(detail)}
