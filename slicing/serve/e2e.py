"""``POST /v1/e2e/allocate``: MicroOpt for end-to-end slices (transport Mbit/s and CPU millicores), stateless.

The slice model (``slicing/models/slice_model.py``) is decided by a background thread when the replica starts, so
``/healthz`` answers at once and the endpoint answers 503 + Retry-After until it is there:

1. ``SLICING_SLICE_MODEL_PATH`` (``ServiceSettings.slice_model_path``): that file, loaded when the replica starts
   (source ``file``);
2. else a small model trained on the ground-truth simulator's grid (``SLICING_SLICE_MODEL_EPOCHS`` epochs; source
   ``trained``), started by the first ``POST /v1/e2e/allocate`` (so replicas that never serve e2e slices spend
   nothing on it); that request and the next ones answer 503 + Retry-After until it is done.

One request is one vectorised MicroOpt call over all its slices (``allocate_e2e``):

- traffic: a (mean, std) forecast becomes ``POINTS`` equal-probability points of the normal truncated to
  [0, the model's highest trained traffic]; given samples become their ``POINTS`` quantiles (E[beta] is a
  traffic-weighted mean over slots, so only the distribution matters, not the order);
- traffic above the model's trained range is refused (422 naming the field): the model would extrapolate;
- an ``sla`` is decomposed across domains (``slicing/optim/sla.py``); its transport and core targets become lower
  bounds of the slice's bandwidth and CPU (the returned allocation is the larger of MicroOpt's and the bound in
  each resource; more resource never raises E[beta] on a monotone model); an SLA that cannot be decomposed makes
  that slice ``feasible: false`` with the reason, while the others are allocated;
- ``capacity`` couples the request's slices through the constraint sum_s r_s <= R.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from slicing.config import E2eConfig
from slicing.errors import FieldError
from slicing.models.slice_model import ETA, SliceModel, load_slice_model
from slicing.models.slice_model import R_MAX as SLICE_R_MAX
from slicing.optim.degradation import model_e_beta
from slicing.serve.errors import ServiceError
from slicing.serve.models import E2eAllocateRequest
from slicing.serve.settings import ServiceSettings

log = logging.getLogger("slicing.serve.e2e")

POINTS = 32  # traffic points per slice handed to MicroOpt
R_MAX = np.array(SLICE_R_MAX)  # the paper's largest allocations (Mbit/s, millicores): MicroOpt's box


def train_fallback_slice_model(seed: int, epochs: int) -> SliceModel:
    """The small slice model of source ``trained``."""
    from slicing.models.slice_training import SliceModelSettings, train_slice_model

    model, _ = train_slice_model(E2eConfig(seed=seed), SliceModelSettings(epochs=epochs, seed=seed))
    model.eval()
    return model


class SliceModels:
    """The replica's slice model, loaded or trained by a background thread started with ``start()``."""

    def __init__(self, settings: ServiceSettings,
                 train: Callable[[int, int], SliceModel] = train_fallback_slice_model) -> None:
        self.settings = settings
        self.train = train
        self.model: SliceModel | None = None
        self.source: str | None = None
        self.error: str | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the loader now when a file is configured (else the first request starts the training)."""
        if self.settings.slice_model_path is not None:
            self.ensure_started()

    def ensure_started(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._load, name="slice-model-loader", daemon=True)
                self._thread.start()

    def wait(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _load(self) -> None:
        try:
            if self.settings.slice_model_path is not None:
                model, source = load_slice_model(self.settings.slice_model_path), "file"
            else:
                model, source = self.train(self.settings.seed, self.settings.slice_model_epochs), "trained"
            model.eval()
            self.model, self.source = model, source
            log.info("slice model %s ready (source %s)", model.version, source)
        except Exception as err:  # reported by /v1/e2e/allocate (503) and /readyz, never raised in the thread
            self.error = f"{type(err).__name__}: {err}"
            log.exception("slice model failed to load")


def _traffic(req: E2eAllocateRequest, traffic_max: float) -> np.ndarray:
    """[I, POINTS] traffic points of every slice; FieldError for traffic beyond the model's range."""
    from slicing.optim.microopt import traffic_points

    rows = np.empty((len(req.slices), POINTS))
    probs = (np.arange(POINTS) + 0.5) / POINTS
    for i, sl in enumerate(req.slices):
        t = sl.traffic
        if t.samples is not None:
            values = np.asarray(t.samples, dtype=np.float64)
            if values.max() > traffic_max:
                raise FieldError(("slices", i, "traffic", "samples"),
                                 f"{values.max():g} users/s is above the slice model's trained range "
                                 f"(at most {traffic_max:g} users/s)")
            rows[i] = np.quantile(values, probs)
        else:
            assert t.mean_users_per_s is not None  # guaranteed by TrafficForecast
            if t.mean_users_per_s > traffic_max:
                raise FieldError(("slices", i, "traffic", "mean_users_per_s"),
                                 f"{t.mean_users_per_s:g} users/s is above the slice model's trained range "
                                 f"(at most {traffic_max:g} users/s)")
            rows[i] = traffic_points(np.array([t.mean_users_per_s]), np.array([t.std_users_per_s]), 0.0,
                                     traffic_max, POINTS)[0]
    return rows


def allocate_e2e(req: E2eAllocateRequest, models: SliceModels, settings: ServiceSettings) -> dict[str, Any]:
    """The response of POST /v1/e2e/allocate as plain data."""
    from slicing.optim.microopt import MicroOptSettings, microopt
    from slicing.optim.sla import decompose

    models.ensure_started()
    model = models.model
    if model is None:
        why = f"slice model failed to load: {models.error}" if models.error else "slice model loading"
        raise ServiceError(503, why, {"Retry-After": str(settings.retry_after_s)})
    if len(req.slices) > settings.max_e2e_slices_per_request:
        raise ServiceError(413, f"{len(req.slices)} slices in one request; at most "
                                f"{settings.max_e2e_slices_per_request} (max_e2e_slices_per_request)")
    traffic = _traffic(req, float(model.traffic_max))
    n = len(req.slices)
    q = np.array([sl.q_thresh_mbps for sl in req.slices])
    b = np.array([sl.beta_thresh for sl in req.slices])
    r_min = np.zeros((n, 2))
    ok = np.ones(n, dtype=bool)
    reasons: list[str | None] = [None] * n
    targets: list[dict[str, Any] | None] = [None] * n
    ran_delay: list[float | None] = [None] * n
    with_sla = [i for i, sl in enumerate(req.slices) if sl.sla is not None]
    if with_sla:
        slas = [req.slices[i].sla for i in with_sla]
        dec = decompose(latency_ms=np.array([s.latency_ms for s in slas]),
                        reliability=np.array([s.reliability for s in slas]),
                        throughput_mbps=np.array([s.throughput_mbps for s in slas]))
        for j, i in enumerate(with_sla):
            if not dec.feasible[j]:
                ok[i], reasons[i] = False, f"sla: {dec.reason[j]}"
                continue
            targets[i] = {d: {"latency_ms": float(dec.latency_ms[d][j]), "reliability": float(dec.reliability[d][j]),
                              "capacity_mbps": float(dec.capacity_mbps[d][j])} for d in dec.domains}
            ran_delay[i] = float(dec.latency_ms["ran"][j])
            r_min[i] = [dec.transport_mbps[j], dec.cpu_millicores[j]]
    out: list[dict[str, Any]] = [{"slice_id": sl.slice_id, "feasible": False, "reason": reasons[i],
                                  "targets": targets[i], "ran_delay_req_ms": ran_delay[i]}
                                 for i, sl in enumerate(req.slices)]
    idx = np.flatnonzero(ok)
    if len(idx):
        capacity = None if req.capacity is None else np.array([req.capacity.bandwidth_mbps,
                                                               req.capacity.cpu_millicores])
        res = microopt(model.qos, traffic[idx], q[idx], b[idx], eta=np.asarray(ETA), r_max=R_MAX,
                       capacity=capacity, settings=MicroOptSettings(seed=settings.seed))
        r = np.maximum(np.asarray(res.r, dtype=np.float64), r_min[idx])  # [I', 2]
        e_beta = model_e_beta(model.qos, traffic[idx], r, q[idx])
        for j, i in enumerate(idx):
            feasible = bool(e_beta[j] <= b[i] + 1e-6)
            out[i] |= {"feasible": feasible, "transport_mbps": round(float(r[j, 0]), 3),
                       "cpu_millicores": round(float(r[j, 1]), 1),
                       "normalised_resource": round(float(r[j] @ np.asarray(ETA)), 5),
                       "predicted_e_beta": round(float(e_beta[j]), 5),
                       "reason": None if feasible else "no allocation within the resource box"
                                                       f" {R_MAX.tolist()} (or the shared capacity) meets "
                                                       "beta_thresh"}
    return {"model_version": model.version, "allocator": "microopt", "slices": out}
