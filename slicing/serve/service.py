"""What the HTTP service does, without HTTP: estimator loading, vectorised stateless allocation, population calls.

``serve_app.py`` is the thin FastAPI/Serve layer on top of ``SlicingService``; this module imports neither
FastAPI nor Serve (Ray only lazily, for the population actor), so it is unit-testable in-process.

Estimator (which one ``POST /v1/allocate`` uses), decided in a background thread when the replica starts, so that
``/healthz`` answers at once and ``/readyz`` says 503 until it is done:

1. ``SLICING_ESTIMATOR_PATH`` (``ServiceSettings.estimator_path``) if set: that file, for good (source ``file``);
2. else the running population's estimator (``estimator_payload()`` of the ``slicing-population`` actor, source
   ``population``), waited for up to ``POPULATION_WAIT_S``; the service then follows it: every
   ``REFRESH_S`` it compares the population's ``model_version()`` with its own and reloads on a change, so the
   stateless and the stateful endpoints report the same ``model_version``;
3. else a small estimator trained at start with ``slicing.bench.core.bench_estimator`` (36 cells, 600 periods,
   ``SLICING_TRAIN_EPOCHS`` epochs, about 10 s on 2 cores; source ``trained``), replaced by the population's as
   soon as one appears.

RL policy (scheme ``rl`` of ``POST /v1/allocate``): ``SLICING_RL_CHECKPOINT`` names a ``slicing train-rl``
checkpoint, loaded once by the same background thread (``slicing.rl.inference.RlPolicy``; imports RLlib). The
request's slices fill the policy's slice slots in order (a cell may not have more slices than the policy was
trained with); the observation is built by ``slicing.data.features.build_observations`` from ``users_history[-1]``
and each slice's ``last_period`` (throughput, PRB use, neighbours' PRB use), and all cells go through one batched
forward pass. ``model_version`` is then the checkpoint's weight hash; ``predicted_utility`` stays the estimator's.

Stateless allocation (``allocate``): every cell of a request in ONE call of the scheme, on arrays padded to the
request's largest slice count with a slice mask: ``z[N, S, 12] = [users_history, cqi_history, throughput_req,
delay_req]``; the ``traffic`` scheme's current offered traffic is ``users_history[-1] * throughput_req``. IDLA has
no warm start here (equal shares, the paper's default action, period 0); its start-point noise is keyed by the
cell id (the integer itself for digit-only ids, else a 63-bit hash of the string), so a cell's answer does not
depend on the other cells of the request. Shares are projected onto {x >= 0, sum <= 1} once more (a no-op for
the schemes, which guarantee it) and mapped to TS 28.541 RRM policy ratios (``slicing/optim/rrm.py``).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from slicing.config import HISTORY, IdlaConfig
from slicing.models.qos_estimator import QosEstimator, load_estimator, save_estimator, weights_version
from slicing.optim.feasible import project
from slicing.optim.rrm import rrm_policy_ratios
from slicing.optim.schemes import AllocationContext, make_scheme
from slicing.serve.models import AllocateRequest, KpiIngest
from slicing.serve.settings import ServiceSettings

log = logging.getLogger("slicing.serve.service")

POPULATION_WAIT_S = 10.0  # how long the estimator loader waits for a population before training its own
REFRESH_S = 30.0  # how often the service compares its estimator with the population's
PERIOD_POLL_S = 0.5  # how often the service asks the population for its period (allocation cache validity)
CACHE_MAX_CELLS = 200_000  # allocations cached per period at most


class ServiceError(Exception):
    """An HTTP error answer: status code, detail message, extra headers."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None,
                 path: str | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers, self.path = status, detail, headers or {}, path


def unavailable(detail: str, retry_after_s: int) -> ServiceError:
    return ServiceError(503, detail, {"Retry-After": str(retry_after_s)})


def check_token(settings: ServiceSettings, authorization: str | None) -> None:
    """503 if ingest is disabled (SLICING_API_TOKEN unset), 401 unless ``Authorization: Bearer <token>`` matches."""
    if not settings.ingest_enabled:
        raise ServiceError(503, "ingest disabled: SLICING_API_TOKEN not set")
    scheme, _, given = (authorization or "").partition(" ")
    expected = settings.api_token.get_secret_value()  # type: ignore[union-attr]
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected.encode()):
        raise ServiceError(401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"})


def cell_key(cell_id: str) -> int:
    """Integer key of a request's cell id for IDLA's counter-based start-point noise."""
    if cell_id.isdigit() and len(cell_id) <= 18:
        return int(cell_id)
    return int.from_bytes(hashlib.blake2b(cell_id.encode(), digest_size=8).digest(), "little") >> 1


def model_from_payload(payload: Any) -> QosEstimator:
    """Rebuild a QosEstimator from the population's ``estimator_payload()``.

    Accepted: the runtime's plain payload (``slicing.runtime.weights``, format ``slicing.estimator-payload/1``),
    the bytes of a ``save_estimator`` file or the dict such a file holds, or a QosEstimator itself. All but the
    last are checked (shapes and content-hash version).
    """
    if isinstance(payload, QosEstimator):
        payload.eval()
        if payload.version is None:
            payload.version = weights_version(payload)
        return payload
    if isinstance(payload, dict) and "state" in payload and "state_dict" not in payload:
        from slicing.runtime.weights import estimator_from_payload

        return estimator_from_payload(payload)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "estimator.pt"
        if isinstance(payload, bytes | bytearray | memoryview):
            path.write_bytes(bytes(payload))
        elif isinstance(payload, dict):
            torch.save(payload, path)
        else:
            raise TypeError(f"estimator payload of unsupported type {type(payload).__name__}")
        return load_estimator(path)


def _cause(err: BaseException) -> BaseException:
    """The user exception inside a Ray task error (Ray re-raises it as a subclass carrying ``cause``)."""
    cause = getattr(err, "cause", None)
    return cause if isinstance(cause, BaseException) else err


_RECORD_FIELD = re.compile(r"^records\[(\d+)\](?:\.(\w+))?:\s*(.*)$", re.DOTALL)


def ingest_error_detail(message: str) -> dict:
    """A population ingest ValueError ('records[3].cqi: must be ...') as a 422 detail entry with a JSON path."""
    m = _RECORD_FIELD.match(message.strip())
    if m:
        path = "body.records." + m.group(1) + (f".{m.group(2)}" if m.group(2) else "")
        return {"path": path, "msg": m.group(3).strip(), "type": "value_error"}
    return {"path": "body.records", "msg": message.strip(), "type": "value_error"}


def _population_handle():
    from slicing.runtime import get_population_actor

    return get_population_actor()


class SlicingService:
    """One per Serve replica. ``start()`` launches the estimator loader; the rest is called per request."""

    def __init__(self, settings: ServiceSettings,
                 population_lookup: Callable[[], Any] = _population_handle,
                 train: Callable[[int, int], QosEstimator] | None = None) -> None:
        self.settings = settings
        self.idla = IdlaConfig()
        self.model: QosEstimator | None = None
        self.model_version: str | None = None
        self.estimator_source: str | None = None
        self.load_error: str | None = None
        self.rl_policy = None  # slicing.rl.inference.RlPolicy when SLICING_RL_CHECKPOINT is set and loads
        self.rl_error: str | None = None
        self._lookup = population_lookup
        self._train = train
        self._actor = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._cache: dict[int, dict] = {}  # cell id -> GET /v1/cells/{id}/allocation answer for _cache_period
        self._cache_period: int | None = None
        self._watcher: asyncio.Task | None = None

    # ------------------------------------------------------------------------------------------- estimator

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loader, name="slicing-estimator-loader", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _set_model(self, model: QosEstimator, source: str) -> None:
        model.eval()
        version = model.version or weights_version(model)
        model.version = version
        self.model, self.model_version, self.estimator_source = model, version, source
        log.info("estimator %s loaded from %s", version, source)

    def _actor_sync(self):
        if self._actor is None:
            self._actor = self._lookup()
        return self._actor

    def _population_model_version(self) -> str | None:
        import ray

        try:
            actor = self._actor_sync()
            if not ray.get(actor.ready.remote(), timeout=self.settings.population_timeout_s):
                return None
            return str(ray.get(actor.model_version.remote(), timeout=self.settings.population_timeout_s))
        except Exception:  # noqa: BLE001 - no population (yet), or it died: look it up again next time
            self._actor = None
            return None

    def _load_from_population(self) -> bool:
        import ray

        version = self._population_model_version()
        if version is None:
            return False
        try:
            payload = ray.get(self._actor_sync().estimator_payload.remote(), timeout=60)
            model = model_from_payload(payload)
        except Exception as err:  # noqa: BLE001
            log.warning("could not load the population's estimator: %s", err)
            return False
        self._set_model(model, "population")
        return True

    def _load_rl(self) -> None:
        if self.settings.rl_checkpoint is None:
            return
        try:
            from slicing.rl.inference import RlPolicy

            self.rl_policy = RlPolicy.from_checkpoint(self.settings.rl_checkpoint)
            log.info("RL policy %s loaded from %s", self.rl_policy.version, self.settings.rl_checkpoint)
        except Exception as err:
            self.rl_error = f"{type(err).__name__}: {err}"
            log.exception("RL checkpoint loading failed")

    def _loader(self) -> None:
        self._load_rl()
        try:
            if self.settings.estimator_path is not None:
                self._set_model(load_estimator(self.settings.estimator_path), "file")
                return  # a file is final: no refresh
            deadline = time.monotonic() + POPULATION_WAIT_S
            while not self._load_from_population():
                if time.monotonic() > deadline or self._stop.wait(0.5):
                    break
            if self.model is None and not self._stop.is_set():
                self._set_model(self._train_fallback(), "trained")
        except Exception as err:  # reported by /readyz
            self.load_error = f"{type(err).__name__}: {err}"
            log.exception("estimator loading failed")
            return
        while not self._stop.wait(REFRESH_S):
            version = self._population_model_version()
            if version is not None and version != self.model_version:
                self._load_from_population()

    def _train_fallback(self) -> QosEstimator:
        if self._train is not None:
            return self._train(self.settings.seed, self.settings.train_epochs)
        from slicing.bench.core import bench_estimator

        model = bench_estimator(self.settings.seed, log.info, epochs=self.settings.train_epochs)
        with tempfile.TemporaryDirectory() as tmp:  # persisted once so that it has a content-hash version
            save_estimator(model, Path(tmp) / "estimator.pt")
        return model

    # ------------------------------------------------------------------------------------------ allocation

    def allocate(self, req: AllocateRequest) -> dict:
        """The response of POST /v1/allocate as plain data (all cells in one vectorised call)."""
        model = self.model
        if model is None:
            raise unavailable("estimator not loaded yet", self.settings.retry_after_s)
        cells = req.cells
        n = len(cells)
        counts = np.fromiter((len(c.slices) for c in cells), dtype=np.int64, count=n)  # [N]
        s = int(counts.max())
        mask = np.arange(s)[None, :] < counts[:, None]  # [N, S]
        flat = [sl for c in cells for sl in c.slices]  # row-major over the mask's True entries
        users = np.array([sl.users_history for sl in flat], dtype=np.float32).reshape(-1, HISTORY)  # [M, H]
        cqi = np.array([sl.cqi_history for sl in flat], dtype=np.float32).reshape(-1, HISTORY)  # [M, H]
        req_tp = np.array([sl.throughput_req_mbps for sl in flat], dtype=np.float32)  # [M]
        req_dl = np.array([sl.delay_req_ms for sl in flat], dtype=np.float32)  # [M]
        z = np.zeros((n, s, 2 * HISTORY + 2), dtype=np.float32)  # [N, S, 12]
        z[mask] = np.concatenate([users, cqi, req_tp[:, None], req_dl[:, None]], axis=1)
        offered = np.zeros((n, s), dtype=np.float64)  # [N, S]
        offered[mask] = users[:, -1].astype(np.float64) * req_tp
        keys = np.array([cell_key(c.cell_id) for c in cells], dtype=np.int64)  # [N]

        version = self.model_version
        if req.scheme == "rl":
            shares, version = self._rl_shares(req, mask, users[:, -1], req_tp)
        else:
            scheme = make_scheme(req.scheme, model, self.idla, seed=self.settings.seed)
            ctx = AllocationContext(period=0, cell_ids=keys, mask=mask, z=z, offered_mbps=offered, warm=None)
            shares = scheme.allocate(ctx)
        shares = project(shares, mask)  # [N, S] float64, x >= 0, row sums <= 1 exactly
        utility = self._utility(model, z, mask, shares)  # [N]
        rrm = rrm_policy_ratios(shares, mask)

        sh, mx, mn, dd = (a[mask].tolist() for a in (shares, rrm.max_ratio, rrm.min_ratio, rrm.dedicated_ratio))
        allocations, k = [], 0
        for i, c in enumerate(cells):
            out = []
            for sl in c.slices:
                out.append({"snssai": sl.snssai, "share": sh[k],
                            "rrm_policy": {"max_ratio": mx[k], "min_ratio": mn[k], "dedicated_ratio": dd[k]}})
                k += 1
            allocations.append({"cell_id": c.cell_id, "predicted_utility": float(utility[i]), "slices": out})
        return {"model_version": version, "allocations": allocations}

    def _rl_shares(self, req: AllocateRequest, mask: np.ndarray, users_now: np.ndarray,
                   req_tp: np.ndarray) -> tuple[np.ndarray, str]:
        """[N, S] shares of the RL policy (one batched forward pass) and its version. See module docstring."""
        from slicing.data.features import build_observations

        for i, c in enumerate(req.cells):
            for j, sl in enumerate(c.slices):
                if sl.last_period is None:
                    raise ServiceError(422, "required when scheme is 'rl' (the policy observes the last period's "
                                            "throughput and PRB use)", path=f"body.cells.{i}.slices.{j}.last_period")
        policy = self.rl_policy
        if policy is None:
            if self.settings.rl_checkpoint is None:
                raise ServiceError(422, "scheme 'rl' is not enabled on this service: set SLICING_RL_CHECKPOINT "
                                        "to a `slicing train-rl` checkpoint", path="body.scheme")
            if self.rl_error is not None:
                raise ServiceError(422, f"scheme 'rl' unavailable: the RL checkpoint failed to load "
                                        f"({self.rl_error})", path="body.scheme")
            raise unavailable("RL policy loading", self.settings.retry_after_s)
        n, s = mask.shape
        slots = policy.n_slices
        for i, c in enumerate(req.cells):
            if len(c.slices) > slots:
                raise ServiceError(422, f"{len(c.slices)} slices; the RL policy was trained with at most {slots} "
                                        "slices per cell", path=f"body.cells.{i}.slices")
        last = [sl.last_period for c in req.cells for sl in c.slices]  # row-major over the mask, all set (above)
        full = np.zeros((n, slots), dtype=bool)
        full[:, :s] = mask

        def grid(values: np.ndarray) -> np.ndarray:
            out = np.zeros((n, slots), dtype=np.float64)
            out[full] = values
            return out

        tp = grid(np.array([lp.throughput_mbps for lp in last]))
        util = grid(np.array([lp.prb_util for lp in last]))
        nbr = grid(np.array([lp.nbr_prb_util for lp in last]))
        users = grid(users_now.astype(np.float64))
        req_grid = np.where(full, grid(req_tp.astype(np.float64)), 1.0)
        obs = build_observations(users, util, tp, full, full, req_grid, nbr)  # [N, 5 * slots]
        shares = policy.allocate(obs, full)  # groups: contiguous blocks of the request's rows
        return shares[:, :s], policy.version

    @staticmethod
    def _utility(model: QosEstimator, z: np.ndarray, mask: np.ndarray, shares: np.ndarray) -> np.ndarray:
        """[N] sum over active slices of log(1 + f(x, z))."""
        feats = np.concatenate([shares[mask].astype(np.float32)[:, None], z[mask]], axis=1)  # [M, 13]
        with torch.inference_mode():
            f = model(torch.from_numpy(feats)).numpy().astype(np.float64)  # [M]
        out = np.zeros(mask.shape)
        out[mask] = np.log1p(f)
        return out.sum(axis=1)

    # ------------------------------------------------------------------------------------------ population

    async def _call(self, method: str, *args: Any) -> Any:
        """Call a population actor method with the configured timeout; 503 + Retry-After if it is unreachable."""
        retry = self.settings.retry_after_s
        try:
            actor = self._actor_sync()
        except Exception:  # noqa: BLE001 - not started (yet)
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
            cause = _cause(err)
            if cause is not err and isinstance(cause, KeyError | ValueError):
                raise cause from None  # e.g. UnknownCell (a KeyError), a ValueError naming the bad record
            raise

    # ------------------------------------------------------------------------------------ transfer service

    async def _transfer_call(self, actor_method: str, timeout_s: float, **kwargs: Any) -> Any:
        """Call the TransferService actor (``slicing-transfer``); 503 if it is not running, 422 for its
        TransferError (naming the field), 503 + Retry-After on timeout."""
        import ray

        from slicing.runtime.transfer_actor import get_transfer_actor

        retry = self.settings.retry_after_s
        try:
            actor = get_transfer_actor()
        except Exception:  # noqa: BLE001 - not started
            raise unavailable("transfer service not running (start it with `slicing transfer` or "
                              "slicing.runtime.transfer_actor.start_transfer_actor)", retry) from None
        ref = getattr(actor, actor_method).remote(**kwargs)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(ref.future()), timeout_s)
        except TimeoutError:
            raise unavailable(f"transfer service did not answer {actor_method} within {timeout_s:g} s",
                              retry) from None
        except ray.exceptions.RayActorError:
            raise unavailable("transfer service unavailable", retry) from None
        except Exception as err:  # noqa: BLE001
            cause = _cause(err)
            if isinstance(cause, ValueError):
                msg = str(cause)
                field_name, sep, rest = msg.partition(":")
                path = "body." + field_name.strip().replace(" ", "_") if sep and " " not in field_name.strip() \
                    else "body"
                raise ServiceError(422, rest.strip() if sep else msg, path=path) from None
            raise

    async def agents(self) -> dict:
        return {"agents": await self._transfer_call("agents", self.settings.population_timeout_s)}

    async def transfer(self, body) -> dict:
        """Start a transfer in the background: the ranking and the new agent's record (status ``training``)."""
        return await self._transfer_call(
            "transfer", max(self.settings.population_timeout_s, 300.0), target=body.target, cells=body.cells,
            source=body.source, strategy=body.strategy, iterations=body.iterations, method=body.method, wait=False)

    async def readiness(self) -> dict:
        population = False
        detail = []
        try:
            population = bool(await self._call("ready"))
            if not population:
                detail.append("population not ready")
        except ServiceError as err:
            detail.append(err.detail)
        if self.model is None:
            detail.append(f"estimator failed to load: {self.load_error}" if self.load_error
                          else "estimator loading")
        if self.rl_error is not None:
            detail.append(f"RL checkpoint failed to load: {self.rl_error}")
        return {"ready": population and self.model is not None, "estimator": self.model is not None,
                "population": population, "model_version": self.model_version,
                "estimator_source": self.estimator_source,
                "rl_version": None if self.rl_policy is None else self.rl_policy.version, "detail": "; ".join(detail)}

    async def cells(self, limit: int, offset: int) -> dict:
        ids, total = await asyncio.gather(self._call("cell_ids", limit, offset), self._call("n_cells"))
        return {"cells": [str(int(i)) for i in ids], "total": int(total), "limit": limit, "offset": offset}

    async def cell_allocation(self, cell_id: str) -> dict:
        """A cell's current allocation from the population, served from the per-period cache when possible."""
        if not (cell_id.isdigit() and len(cell_id) <= 18):
            raise ServiceError(404, f"unknown cell {cell_id!r}")
        cid = int(cell_id)
        self._ensure_watcher()
        hit = self._cache.get(cid)
        if hit is not None:
            return hit
        try:
            a = await self._call("allocation", cid)
        except KeyError:
            raise ServiceError(404, f"unknown cell {cell_id!r}") from None
        slices = a["slices"]
        shares = np.array([[float(sl["share"]) for sl in slices]], dtype=np.float64).reshape(1, len(slices))
        rrm = rrm_policy_ratios(shares)
        out = {
            "cell_id": str(a["cell_id"]), "period": int(a["period"]), "model_version": str(a["model_version"]),
            "scheme": str(a["scheme"]),
            "slices": [{"snssai": sl["snssai"], "share": float(shares[0, j]),
                        "rrm_policy": {"max_ratio": int(rrm.max_ratio[0, j]), "min_ratio": int(rrm.min_ratio[0, j]),
                                       "dedicated_ratio": int(rrm.dedicated_ratio[0, j])}}
                       for j, sl in enumerate(slices)],
        }
        # Only an answer for the period the watcher last saw is cached: one fetched just before a period switch
        # (older period) is returned but not kept, so the cache never holds a previous period's allocation.
        if out["period"] == self._cache_period and len(self._cache) < CACHE_MAX_CELLS:
            self._cache[cid] = out
        return out

    def _ensure_watcher(self) -> None:
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.get_running_loop().create_task(self._watch_period())

    async def _watch_period(self) -> None:
        """Poll the population's period every PERIOD_POLL_S; a new period empties the allocation cache."""
        while not self._stop.is_set():
            try:
                period = int(await self._call("period"))
            except Exception:  # noqa: BLE001 - population gone: no cache until it is back
                period = None
            if period != self._cache_period or period is None:
                self._cache = {}
                self._cache_period = period
            await asyncio.sleep(PERIOD_POLL_S)

    async def ingest(self, body: KpiIngest) -> dict:
        records = [{**r.model_dump(), "cell_id": int(r.cell_id)} for r in body.records]
        try:
            n = await self._call("ingest", records)
        except ValueError as err:  # the population names the record and field: records[3].cell_id: unknown cell
            raise ServiceError(422, str(err) or "invalid records") from None
        return {"accepted": int(n)}


CURRENT: SlicingService | None = None  # the service of this Serve replica process (set by serve_app.SlicingIngress)
