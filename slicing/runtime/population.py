"""``Population``: the driver-side orchestrator of K ``CellShard``s, each a contiguous band of cell ids.

Sharding by geography: cell id = 3 * site + sector and sites are laid out row by row, so a range of ids is a band
of the map. Ranges are cut at site boundaries (``partition``). A shard needs, from other shards, only the last
load of its halo (the out-of-shard ones among its cells' K strongest interferers); those come from the band edges.

One period (``run_period``), for period t:

    halo      gather cell_util of the exported cells (those in some other shard's halo) from every shard into one
              global [n_cells] array; each shard gets the values of its own halo ids
    step      all shards simulate t in parallel
    allocate  all shards allocate t + 1 in parallel (each also gets the current estimator (version, ref))

The estimator is put into Ray's object store once per version (``set_estimator``: ``ray.put`` then the ref to every
shard); shards reload only when the version changes. Shard actors are restartable (``max_restarts``), their calls
retried (``max_task_retries``), and they restore their own checkpoints; see ``shard.py``.

Model roll-out: ``push_model`` validates an estimator and stages it; the next ``run_period`` switches to it before
its step, so every allocation of a period comes from one version. ``activate_model`` stages a kept version (roll
back); ``models()`` lists the last ``KEEP_MODELS``, stored with the checkpoints so that a restart keeps them. RL
checkpoints go the same way (``push_rl_model``: a ``pack_checkpoint`` archive; shards of scheme ``rl`` switch to
it, and the service's replicas use it for ``POST /v1/allocate``'s scheme ``rl``). Bulk reads: the last
``KEEP_PERIODS`` periods of every cell's allocation are held (``allocations``, ``allocations_page``) so that a
paged walk stays in one period.

A1 slice SLA policies (``slicing/a1.py``): ``put_policy`` / ``delete_policy`` change the set held (stored on the
storage path, so a restart keeps them); the next ``run_period`` sends the new set to every shard with its
allocation, so the period it allocates is the first under it. ``policy_status`` says whether a policy is enforced,
from the shards' reports of that allocation (cells in scope, slice active, infeasible) and of the step after it
(cells that met the requirements).

``in_process=True`` runs the same shards as plain objects, one after the other, without Ray.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Self

import numpy as np

from slicing import a1
from slicing.config import Scenario
from slicing.data.kpi import KpiBatch, parse_records
from slicing.errors import FieldError
from slicing.models.qos_estimator import QosEstimator, estimator_from_payload, estimator_payload
from slicing.runtime.checkpoint import CheckpointStore
from slicing.runtime.ray_util import unwrap
from slicing.runtime.shard import RUNTIME_SCHEMES, CellShard, UnknownCell

__all__ = ["AllocationSnapshot", "PeriodNotHeld", "PolicyConflict", "Population", "UnknownCell", "UnknownModel",
           "UnknownPolicy", "partition"]

MAX_SHARD_CPUS = 0.5  # logical CPUs per shard actor, at most; see _shard_cpus
_remote_class: Any = None


def partition(scenario: Scenario, shards: int) -> list[tuple[int, int]]:
    """K contiguous cell-id ranges [lo, hi) cut at site boundaries, as equal as possible."""
    sites = scenario.topology.sites
    if isinstance(shards, bool) or not isinstance(shards, int) or not 1 <= shards <= sites:
        raise FieldError(("shards",), f"must be an integer in [1, {sites}] (at least one site per shard), "
                                       f"got {shards!r}")
    edges = 3 * np.round(np.linspace(0, sites, shards + 1)).astype(np.int64)  # [K + 1]
    return [(int(a), int(b)) for a, b in itertools.pairwise(edges)]


def _shard_cpus(shards: int) -> float:
    """At most half a CPU per shard, and at most half the cluster's CPUs for all shards together (leaves room for
    the HTTP replicas and the driver on 2-CPU machines). Ray's resource granularity is 1e-4."""
    import ray

    total = float(ray.cluster_resources().get("CPU", 1.0))
    return max(1e-4, np.floor(min(MAX_SHARD_CPUS, 0.5 * total / shards) * 1e4) / 1e4)


KEEP_PERIODS = 4  # periods of whole-population allocations held for bulk reads (GET /v1/allocations)
KEEP_MODELS = 5  # estimator versions kept for roll-back (the active and the pending one are never dropped)
ESTIMATOR_OBJECT = "estimator-active"  # the storage object of the active estimator's payload
A1_OBJECT = "a1-policies"  # the storage object of the A1 policies held
RL_OBJECT = "rl-kept"  # the storage object of the kept RL checkpoints (archives) and the active one
MODELS_OBJECT = "estimators-kept"  # the storage object of the kept estimator versions (roll-back survives a restart)


class UnknownPolicy(LookupError):
    """An A1 policy id the population does not hold."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown policy"


class PolicyConflict(ValueError):
    """An A1 policy that cannot be held with the others (same slice, overlapping cells; or too many policies)."""


class UnknownModel(LookupError):
    """A model version the population does not keep."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown model version"


class PeriodNotHeld(LookupError):
    """A bulk read asked for a period the population does not hold: ``gone`` when it is older than the oldest held
    (it was dropped), else it is newer than the newest (not allocated yet)."""

    def __init__(self, period: int, held: list[int]) -> None:
        self.period, self.held = int(period), [int(p) for p in held]
        self.gone = bool(self.held) and self.period < min(self.held)
        why = "no longer held" if self.gone else "not allocated yet"
        super().__init__(f"period {self.period}: {why}; the population holds periods {self.held}")

    def __reduce__(self) -> tuple[Any, ...]:  # survives Ray with its attributes
        return (type(self), (self.period, self.held))

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class AllocationSnapshot:
    """Every cell's allocation for one period: ``shares`` and ``mask`` [n_cells, S] in cell-id order."""

    period: int
    model_version: str
    scheme: str
    snssai: tuple[str, ...]  # [S] the catalogue's, canonical
    shares: np.ndarray
    mask: np.ndarray

    def page(self, offset: int, limit: int) -> AllocationSnapshot:
        """Cells offset .. offset + limit - 1 (their ids: offset onwards, the snapshot holds no ids)."""
        sl = slice(offset, offset + limit)
        return AllocationSnapshot(self.period, self.model_version, self.scheme, self.snssai, self.shares[sl],
                                  self.mask[sl])


class Population:
    """All cells of ``scenario``, split into ``shards`` CellShards (Ray actors unless ``in_process``)."""

    def __init__(self, scenario: Scenario, shards: int = 1, scheme: str = "traffic",
                 model: QosEstimator | dict | None = None, storage: str | None = None, *, in_process: bool = False,
                 num_cpus_per_shard: float | None = None, threads_per_shard: int | None = None,
                 max_restarts: int = -1, max_task_retries: int = 3, fresh: bool = False,
                 rl_checkpoint: str | None = None, e2e: dict[str, Any] | None = None) -> None:
        if scheme not in RUNTIME_SCHEMES:
            raise FieldError(("scheme",), f"{scheme!r} is not a runtime scheme; choose from {list(RUNTIME_SCHEMES)}")
        if scheme == "idla" and model is None:
            raise FieldError(("model",), "scheme 'idla' needs a QoS estimator")
        if scheme == "rl" and rl_checkpoint is None:
            raise FieldError(("rl_checkpoint",), "scheme 'rl' needs a checkpoint from `slicing train-rl`")
        self.rl_checkpoint = str(rl_checkpoint) if rl_checkpoint else None
        self.e2e = e2e  # {"config", "model"}: the shards' microopt step (see shard.py), or None
        self.sla_targets: dict[int, dict[str, float]] = {}
        if e2e is not None and e2e.get("config", {}).get("slas"):
            from slicing.optim.sla import SliceSla, apply_slas

            slas = {int(k): SliceSla.model_validate(v) for k, v in e2e["config"]["slas"].items()}
            scenario, self.sla_targets = apply_slas(scenario, slas)  # the RAN targets become the cells' d*
        self.scenario, self.scheme, self.in_process = scenario, scheme, in_process
        self.bounds = partition(scenario, shards)
        self._hi = np.array([hi for _, hi in self.bounds], dtype=np.int64)  # [K] exclusive upper ids
        self._n = scenario.cells
        self.storage = str(storage) if storage else None
        if fresh and self.storage:
            store = CheckpointStore(self.storage)
            for lo, hi in self.bounds:
                store.delete(f"shard-{lo:09d}-{hi:09d}")
            store.delete(ESTIMATOR_OBJECT)
            store.delete(A1_OBJECT)
            store.delete(MODELS_OBJECT)
            store.delete(RL_OBJECT)
        if self.storage and not fresh:  # a restart goes on with the estimator that was active, not the given one
            stored = CheckpointStore(self.storage).load(ESTIMATOR_OBJECT)
            if stored is not None:
                model = stored
        self._lock = threading.RLock()
        self._a1_lock = threading.Lock()  # the policies only: a PUT or a read never waits for a running period
        self._policies: dict[str, dict[str, Any]] = {}  # id -> {policy, created_at, updated_at, effective_period}
        self._a1_sent: str | None = None  # the policy-set version the shards hold
        self._sla: dict[str, dict[str, Any]] = {}  # id -> the shards' reports of the last period, summed
        if self.storage and not fresh:
            stored_a1 = CheckpointStore(self.storage).load(A1_OBJECT)
            if stored_a1 is not None:
                self._policies = dict(stored_a1["policies"])
        self._models: dict[str, dict[str, Any]] = {}  # version -> {payload, pushed_at}, oldest first
        if self.storage and not fresh:
            kept = CheckpointStore(self.storage).load(MODELS_OBJECT)
            if kept is not None:
                self._models = {v: {"payload": kept["payloads"][v], "pushed_at": float(t)} for v, t in kept["versions"]}
        self._rl_models: dict[str, dict[str, Any]] = {}  # RL version -> {blob, pushed_at}, oldest first
        self._rl_version: str | None = None
        self._rl_pending: str | None = None
        self._rl: tuple[str, Any] | None = None  # (version, ref) sent with every allocation
        rl_active = None
        if self.storage and not fresh:
            kept_rl = CheckpointStore(self.storage).load(RL_OBJECT)
            if kept_rl is not None:
                self._rl_models = {v: {"blob": np.asarray(kept_rl["blobs"][v], dtype=np.uint8).tobytes(),
                                       "pushed_at": float(t)} for v, t in kept_rl["versions"]}
                rl_active = kept_rl["active"]
        self._pending: str | None = None  # the version the next period switches to
        self._version: str | None = None
        self._payload: dict | None = None
        self._estimator: tuple[str, Any] | None = None
        self.estimator_puts = 0
        self.timings: deque[dict] = deque(maxlen=1000)
        self.shards = [self._create(lo, hi, num_cpus_per_shard, threads_per_shard, max_restarts, max_task_retries)
                       for lo, hi in self.bounds]
        if model is not None:
            self.set_estimator(model)
        halo = self._get([self._call(s, "halo_ids") for s in self.shards])
        self._halo = [np.asarray(h, dtype=np.int64) for h in halo]  # [K] x [M_k] ids each shard needs
        needed = np.unique(np.concatenate(self._halo)) if self._halo else np.zeros(0, dtype=np.int64)
        self._export = [needed[(needed >= lo) & (needed < hi)] for lo, hi in self.bounds]  # [K] x ids it sends
        infos = self._get([self._call(s, "info") for s in self.shards])
        if rl_active is not None and rl_active in self._rl_models:  # a restart goes on with the active RL version
            self._activate_rl(rl_active)
        elif self.rl_checkpoint is not None and scheme == "rl":  # the given checkpoint is the first kept version
            from slicing.rl.inference import pack_checkpoint

            self._rl_version = str(infos[0]["model_version"])
            self._register_rl(self._rl_version, pack_checkpoint(self.rl_checkpoint))
        self._period = self._reconcile(infos)
        self._held: dict[int, AllocationSnapshot] = {}  # replaced whole on every change: reads need no lock
        self._hold()

    # -- plumbing -------------------------------------------------------------------------------------------
    def _create(self, lo: int, hi: int, cpus: float | None, threads: int | None, restarts: int, retries: int):
        args = (self.scenario, lo, hi, self.scheme, self.storage, None, threads, self.rl_checkpoint, self.e2e)
        if self.in_process:
            return CellShard(*args)
        import ray

        global _remote_class
        if _remote_class is None:
            _remote_class = ray.remote(CellShard)
        return _remote_class.options(
            num_cpus=cpus if cpus is not None else _shard_cpus(len(self.bounds)), scheduling_strategy="SPREAD",
            max_restarts=restarts, max_task_retries=retries, max_concurrency=4,  # reads never wait for a step
        ).remote(*args)

    def _call(self, shard: Any, method: str, *args: Any) -> Any:
        """Start ``method`` on a shard: an ObjectRef under Ray, the value itself in-process."""
        return getattr(shard, method)(*args) if self.in_process else getattr(shard, method).remote(*args)

    def on_shards(self, method: str, *args: Any) -> list[Any]:
        """``method(*args)`` of every shard at once, their results in shard order (e.g. the bench's yardstick,
        ``CellShard.allocation_inputs`` and ``grid_oracle``)."""
        return self._get([self._call(s, method, *args) for s in self.shards])

    def _get(self, pending: list[Any]) -> list[Any]:
        if self.in_process:
            return pending
        import ray

        try:
            return ray.get(pending)
        except ray.exceptions.RayTaskError as err:  # a shard's FieldError / UnknownCell arrives as itself
            raise unwrap(err, ValueError, KeyError) from None

    def _reconcile(self, infos: list[dict]) -> int:
        """The population's period from the shards' (restored) states; finishes a round a crash cut short.

        A shard's state is (simulated period, allocation period): (p, p) between rounds, (p + 1, p) after ``step(p)``,
        (p + 1, p + 1) after ``allocate(p + 1)``. A crash of the driver mid-round can leave the shards in any of
        these for one p: the ones behind step ``p`` (with the halo from before the step: ``cell_util(ids, p)``) and
        allocate ``p + 1``, so the round ends as it would have without the crash."""
        states = {(i["period"], i["alloc_period"]) for i in infos}
        p = min(a for _, a in states)
        if not states <= {(p, p), (p + 1, p), (p + 1, p + 1)}:
            detail = ", ".join(f"{i['name']}: period {i['period']} / allocation {i['alloc_period']}" for i in infos)
            raise RuntimeError(f"storage {self.storage}: the shards' checkpoints are from different rounds ({detail}); "
                               "use fresh=True or another storage path")
        if states == {(p, p)}:
            return p
        behind = [k for k, i in enumerate(infos) if i["period"] == p]
        if behind:  # the step of round p reached some shards only
            util = self._exported_util(p)
            self._get([self._call(self.shards[k], "step", p, util[self._halo[k]]) for k in behind])
        todo = [k for k, i in enumerate(infos) if i["alloc_period"] == p]
        self._get([self._call(self.shards[k], "allocate", p + 1, self._estimator) for k in todo])
        return p + 1

    def _exported_util(self, period: int | None = None) -> np.ndarray:
        """[n_cells] the exported cells' PRB utilisation (the halo's source; other entries 0): the last period's, or
        what ``step(period)`` takes as halo (``CellShard.cell_util``)."""
        util = np.zeros(self._n)
        if len(self.shards) > 1:
            parts = self._get([self._call(s, "cell_util", ex, period)
                               for s, ex in zip(self.shards, self._export, strict=True)])
            for ex, values in zip(self._export, parts, strict=True):  # per shard
                util[ex] = values
        return util

    # -- one period -----------------------------------------------------------------------------------------
    def run_period(self, kpis: bool = False) -> dict:
        """Halo exchange, step, allocate; returns {period, halo_s, step_s, allocate_s, round_s, ...}."""
        with self._lock:
            p = self._period
            if self._pending is not None:  # a roll-out switches at this period boundary
                self.set_estimator(self._models[self._pending]["payload"])
                self._pending = None
            if self._rl_pending is not None:
                self._activate_rl(self._rl_pending)
            t0 = time.perf_counter()
            util = self._exported_util()
            halos = [util[h] for h in self._halo]  # [K] x [M_k]
            t1 = time.perf_counter()
            steps = self._get([self._call(s, "step", p, h, kpis) for s, h in zip(self.shards, halos, strict=True)])
            t2 = time.perf_counter()
            with self._a1_lock:
                version, bodies = self._a1_set()
            policies = None if version == self._a1_sent else (version, bodies)
            allocs = self._get([self._call(s, "allocate", p + 1, self._estimator, policies, self._rl)
                                for s in self.shards])
            t3 = time.perf_counter()
            self._period = p + 1
            self._a1_sent = version
            with self._a1_lock:
                self._sla_report(p + 1, bodies, steps, allocs)
            self._hold()
            cells = np.array([st["cells"] for st in steps])
            out = {"period": p, "halo_s": t1 - t0, "step_s": t2 - t1, "allocate_s": t3 - t2, "round_s": t3 - t0,
                   "cells": int(cells.sum()), "fallback_cells": sum(a["fallback_cells"] for a in allocs),
                   "warmup": any(a["warmup"] for a in allocs),
                   "errors": [a["error"] for a in allocs if a["error"]],
                   "utility_mean": float(np.dot(cells, [st["utility_mean"] for st in steps]) / cells.sum())}
            e2e = [a for a in allocs if "e2e_instances" in a]
            if e2e:  # the microopt step ran (see shard.py)
                out |= {k: sum(a[k] for a in e2e) for k in ("e2e_instances", "e2e_infeasible", "e2e_clipped")}
                out["e2e_s"] = max(a["e2e_seconds"] for a in e2e)
            out["errors"] += [f"e2e: {a['e2e_error']}" for a in allocs if a.get("e2e_error")]
            self.timings.append(dict(out))
            if kpis:
                parts_k = [st.get("kpis") for st in steps]
                out["kpis"] = None if any(k is None for k in parts_k) else {
                    k: np.concatenate([pk[k] for pk in parts_k]) for k in parts_k[0]}
            return out

    # -- estimator ------------------------------------------------------------------------------------------
    def set_estimator(self, model: QosEstimator | dict) -> bool:
        """Ship a new estimator version to every shard (one ``ray.put``); False if that version is already set."""
        payload = model if isinstance(model, dict) else estimator_payload(model)
        version = str(payload["version"])
        with self._lock:
            if version == self._version:
                return False
            if self.in_process:
                ref: Any = payload
            else:
                import ray

                ref = [ray.put(payload)]  # a list, so Ray passes the ref itself and shards fetch it once per version
            self.estimator_puts += 1
            self._get([self._call(s, "set_estimator", version, ref) for s in self.shards])
            self._version, self._payload, self._estimator = version, payload, (version, ref)
            self._register(payload)
            if self.storage:  # the active version survives a restart on the same storage
                CheckpointStore(self.storage).save(ESTIMATOR_OBJECT, payload)
            return True

    # -- model roll-out: push a version, switch at the next period boundary, roll back ------------------------
    def _register(self, payload: dict) -> str:
        version = str(payload["version"])
        if version in self._models:
            return version
        self._models[version] = {"payload": payload, "pushed_at": time.time()}
        keep = {self._version, self._pending}
        while len(self._models) > KEEP_MODELS:
            old = next((v for v in self._models if v not in keep), None)
            if old is None:
                break
            del self._models[old]
        if self.storage:  # the kept versions survive a restart (roll back after it too)
            CheckpointStore(self.storage).save(MODELS_OBJECT, {
                "versions": [[v, m["pushed_at"]] for v, m in self._models.items()],
                "payloads": {v: m["payload"] for v, m in self._models.items()}})
        return version

    def push_model(self, model: QosEstimator | dict) -> dict[str, Any]:
        """Validate an estimator and make it the version the next period switches to; returns
        ``{version, status, effective_period}`` (status ``active`` when it already is)."""
        payload = model if isinstance(model, dict) else estimator_payload(model)
        try:
            estimator_from_payload(payload)  # refuse a bad payload before anything changes
        except (ValueError, KeyError, TypeError) as err:
            raise FieldError(("model",), str(err)) from None
        with self._lock:
            version = self._register(payload)
            return self._stage(version)

    def activate_model(self, version: str) -> dict[str, Any]:
        """Roll back (or forward) to a kept estimator or RL version at the next period boundary; ``UnknownModel``
        otherwise."""
        with self._lock:
            if version in self._models:
                return self._stage(version)
            if version in self._rl_models:
                return self._stage_rl(version)
            raise UnknownModel(f"model version {version!r} is not kept; kept: {list(self._models)} (estimators), "
                               f"{list(self._rl_models)} (RL)")

    def _stage(self, version: str) -> dict[str, Any]:
        self._pending = None if version == self._version else version
        status = "active" if self._pending is None else "pending"
        return {"version": version, "status": status,
                "effective_period": self._period if status == "active" else self._period + 1}

    def models(self) -> dict[str, Any]:
        """``{active, pending, versions: [{version, pushed_at, status}], rl: {active, pending, versions}}``, newest
        first."""
        with self._lock:  # the actor is threaded: a push may change the registry meanwhile
            def listing(models: dict, active: str | None, pending: str | None) -> dict[str, Any]:
                rows = [{"version": v, "pushed_at": m["pushed_at"],
                         "status": "active" if v == active else "pending" if v == pending else "previous"}
                        for v, m in reversed(models.items())]
                return {"active": active, "pending": pending, "versions": rows}

            return listing(self._models, self._version, self._pending) | {
                "rl": listing(self._rl_models, self._rl_version, self._rl_pending)}

    # -- RL checkpoints: the same roll-out for the policy of scheme rl (and the service's POST /v1/allocate) --
    def push_rl_model(self, blob: bytes) -> dict[str, Any]:
        """Validate an RL checkpoint archive (``slicing.rl.inference.pack_checkpoint``: it must load, and act on
        this catalogue's slices) and make it the version the next period switches to."""
        from slicing.rl.inference import policy_from_archive

        try:
            policy = policy_from_archive(blob)
        except ValueError as err:
            raise FieldError(("model",), str(err)) from None
        if policy.n_slices != len(self.scenario.slices):
            raise FieldError(("model",), f"the RL policy acts on {policy.n_slices} slices; the catalogue has "
                                         f"{len(self.scenario.slices)}")
        with self._lock:
            self._register_rl(policy.version, bytes(blob))
            return self._stage_rl(policy.version)

    def _register_rl(self, version: str, blob: bytes) -> None:
        if version not in self._rl_models:
            self._rl_models[version] = {"blob": blob, "pushed_at": time.time()}
            keep = {self._rl_version, self._rl_pending, version}
            while len(self._rl_models) > KEEP_MODELS:
                old = next((v for v in self._rl_models if v not in keep), None)
                if old is None:
                    break
                del self._rl_models[old]
        self._rl_store()

    def _rl_store(self) -> None:
        if self.storage:
            CheckpointStore(self.storage).save(RL_OBJECT, {
                "active": self._rl_version, "versions": [[v, m["pushed_at"]] for v, m in self._rl_models.items()],
                "blobs": {v: np.frombuffer(m["blob"], dtype=np.uint8) for v, m in self._rl_models.items()}})

    def _stage_rl(self, version: str) -> dict[str, Any]:
        self._rl_pending = None if version == self._rl_version else version
        status = "active" if self._rl_pending is None else "pending"
        return {"version": version, "status": status,
                "effective_period": self._period if status == "active" else self._period + 1}

    def _activate_rl(self, version: str) -> None:
        """Make a kept RL version the one every allocation gets (the shards of scheme rl switch to it)."""
        blob = self._rl_models[version]["blob"]
        if self.in_process:
            ref: Any = blob
        else:
            import ray

            ref = [ray.put(blob)]
        self._rl, self._rl_version, self._rl_pending = (version, ref), version, None
        self._rl_store()

    def rl_version(self) -> str | None:
        """The active RL checkpoint's version (None before one was given or pushed)."""
        return self._rl_version

    def rl_archive(self) -> bytes | None:
        """The active RL checkpoint as a ``pack_checkpoint`` archive (the service's replicas load it)."""
        v = self._rl_version
        return None if v is None else self._rl_models[v]["blob"]

    def model_version(self) -> str | None:
        return self._version

    def estimator_payload(self) -> dict | None:
        """The current estimator as a plain payload (``qos_estimator.estimator_from_payload`` rebuilds it)."""
        return self._payload

    # -- A1 slice SLA policies -------------------------------------------------------------------------------
    def _a1_set(self) -> tuple[str, dict[str, dict]]:
        """(version, {id: body}) of the policies held: the version is a content hash, stable across restarts."""
        bodies = {pid: rec["policy"] for pid, rec in sorted(self._policies.items())}
        return hashlib.sha256(json.dumps(bodies, sort_keys=True).encode()).hexdigest()[:16], bodies

    def _a1_store(self) -> None:
        if self.storage:
            CheckpointStore(self.storage).save(A1_OBJECT, {"policies": [[pid, rec]
                                                                       for pid, rec in self._policies.items()]})

    def _sla_report(self, period: int, bodies: dict[str, dict], steps: list[dict], allocs: list[dict]) -> None:
        """Sum the shards' per-policy reports; mark the policies the allocation of ``period`` was the first under."""
        # a policy changed or deleted while this period ran was not what the shards got: it waits for the next
        fresh = [pid for pid, body in bodies.items() if pid in self._policies
                 and self._policies[pid]["policy"] == body and self._policies[pid]["effective_period"] is None]
        for pid in fresh:
            self._policies[pid]["effective_period"] = period
        if fresh:
            self._a1_store()
        sla: dict[str, dict[str, Any]] = {}
        for a in allocs:
            for pid, e in (a.get("sla") or {}).items():
                if pid not in self._policies:  # deleted meanwhile
                    continue
                acc = sla.setdefault(pid, {"period": period, "cells": 0, "active": 0, "n_infeasible": 0,
                                           "infeasible": [], "measured": None})
                acc["cells"] += e["cells"]
                acc["active"] += e["active"]
                acc["n_infeasible"] = None if acc["n_infeasible"] is None or e["n_infeasible"] is None \
                    else acc["n_infeasible"] + e["n_infeasible"]
                acc["infeasible"] = (acc["infeasible"] + e["infeasible"])[:a1.MAX_LISTED_CELLS]
        for st in steps:
            for pid, m in (st.get("sla") or {}).items():
                rec = self._policies.get(pid)
                if pid in sla and rec is not None and rec["effective_period"] is not None \
                        and rec["effective_period"] <= m["period"]:
                    acc = sla[pid]["measured"] or {"period": m["period"], "active": 0, "satisfied": 0}
                    acc["active"] += m["active"]
                    acc["satisfied"] += m["satisfied"]
                    sla[pid]["measured"] = acc
        self._sla = sla

    def put_policy(self, policy_id: str, body: dict) -> dict[str, Any]:
        """Create or replace an A1 policy (in force from the next period); ``{created, policy}``. ``FieldError`` for
        a bad id or body, ``PolicyConflict`` for an overlap with another policy of the same slice."""
        import re

        if not isinstance(policy_id, str) or not re.match(a1.POLICY_ID_PATTERN, policy_id):
            raise FieldError(("policyId",), f"must match {a1.POLICY_ID_PATTERN}, got {policy_id!r}")
        policy = a1.parse_policy(body)
        a1.check_scope(policy, self.scenario)
        with self._a1_lock:
            held = {pid: a1.parse_policy(rec["policy"]) for pid, rec in self._policies.items()}
            other = a1.conflict(held, policy_id, policy)
            if other is not None:
                raise PolicyConflict(f"policy {other!r} already sets slice {policy.snssai()} in some of these cells; "
                                     "change or delete it first")
            created = policy_id not in self._policies
            if created and len(self._policies) >= a1.MAX_POLICIES:
                raise PolicyConflict(f"the population holds at most {a1.MAX_POLICIES} policies")
            now = time.time()
            stored = policy.model_dump(mode="json", exclude_none=True)
            old = self._policies.get(policy_id)
            self._policies[policy_id] = {"policy": stored, "created_at": old["created_at"] if old else now,
                                         "updated_at": now, "effective_period": None}
            self._sla.pop(policy_id, None)
            self._a1_store()
            return {"created": created, "policy": stored}

    def delete_policy(self, policy_id: str) -> None:
        """Remove an A1 policy; its cells go back to the catalogue's requirements from the next period."""
        with self._a1_lock:
            if policy_id not in self._policies:
                raise UnknownPolicy(f"policy {policy_id!r} is not held; held: {sorted(self._policies)}")
            del self._policies[policy_id]
            self._sla.pop(policy_id, None)
            self._a1_store()

    def policy_ids(self) -> list[str]:
        with self._a1_lock:  # the actor is threaded: a PUT may change the dict meanwhile
            return sorted(self._policies)

    def policy(self, policy_id: str) -> dict:
        """The body of a held policy (as stored: validated, without nulls)."""
        with self._a1_lock:
            rec = self._policies.get(policy_id)
        if rec is None:
            raise UnknownPolicy(f"policy {policy_id!r} is not held; held: {sorted(self._policies)}")
        return rec["policy"]

    def policy_status(self, policy_id: str) -> dict[str, Any]:
        """O-RAN policy status ``{enforceStatus, enforceReason}`` with this service's details (see the operator's
        guide): pending until a period was allocated under it; SCOPE_NOT_APPLICABLE when its slice is active in
        none of its cells; STATEMENT_NOT_APPLICABLE when the scheme does not take requirements, or when it is
        infeasible in some cells; else ENFORCED."""
        with self._a1_lock:
            rec = self._policies.get(policy_id)
            if rec is None:
                raise UnknownPolicy(f"policy {policy_id!r} is not held; held: {sorted(self._policies)}")
            eff, st = rec["effective_period"], self._sla.get(policy_id)
            out: dict[str, Any] = {"effectivePeriod": eff, "period": None, "cellsInScope": None,
                                   "cellsActive": None, "infeasibleCells": [], "infeasibleCount": None,
                                   "satisfied": None}
            if eff is None:
                return out | {"enforceStatus": "NOT_ENFORCED", "enforceReason": "OTHER_REASON",
                              "detail": f"pending: in force from period {self._period + 1} (the next allocation)"}
            if st is None:  # held since before a restart: the shards report at the next period
                return out | {"enforceStatus": "NOT_ENFORCED", "enforceReason": "OTHER_REASON",
                              "detail": f"in force since period {eff}; not reported since the restart (the next "
                                        "period reports it)"}
            m = st["measured"]
            out |= {"period": st["period"], "cellsInScope": st["cells"], "cellsActive": st["active"],
                    "infeasibleCells": st["infeasible"], "infeasibleCount": st["n_infeasible"],
                    "satisfied": None if m is None else {"period": m["period"], "cells": m["active"],
                                                         "met": m["satisfied"]}}
            sn = a1.parse_policy(rec["policy"]).snssai()
            if st["active"] == 0:
                return out | {"enforceStatus": "NOT_ENFORCED", "enforceReason": "SCOPE_NOT_APPLICABLE",
                              "detail": f"slice {sn} is active in none of the {st['cells']} cells in scope"}
            if self.scheme != "idla":
                return out | {"enforceStatus": "NOT_ENFORCED", "enforceReason": "STATEMENT_NOT_APPLICABLE",
                              "detail": f"scheme {self.scheme!r} allocates without slice requirements (only idla "
                                        "follows them)"}
            if st["n_infeasible"]:
                return out | {"enforceStatus": "NOT_ENFORCED", "enforceReason": "STATEMENT_NOT_APPLICABLE",
                              "detail": f"infeasible in {st['n_infeasible']} of {st['active']} cells (e.g. cells "
                                        f"{st['infeasible'][:5]}): even all of a cell's PRBs are estimated to give "
                                        f"slice {sn} r < {a1.INFEASIBLE_R}"}
            return out | {"enforceStatus": "ENFORCED", "enforceReason": None,
                          "detail": f"in force since period {eff} in {st['active']} cells"}

    def requirements(self, cell_id: Any) -> dict:
        """The requirements in force in one cell, per slice (``CellShard.requirements``)."""
        cid = self._cell(cell_id)
        return self._get([self._call(self.shards[self.shard_of(cid)], "requirements", cid)])[0]

    # -- reads ----------------------------------------------------------------------------------------------
    def period(self) -> int:
        """The next period to simulate (= the period the current allocations are for)."""
        return self._period

    def n_cells(self) -> int:
        return self._n

    def ready(self) -> bool:
        return len(self.shards) > 0

    def cell_ids(self, limit: int = 100, offset: int = 0) -> list[int]:
        """A page of the population's cell ids (sorted)."""
        for name, v in (("limit", limit), ("offset", offset)):
            if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 0:
                raise FieldError((name,), f"must be an integer >= 0, got {v!r}")
        return list(range(min(offset, self._n), min(self._n, offset + limit)))

    def _cell(self, cell_id: Any) -> int:
        if isinstance(cell_id, str) and cell_id.isdigit() and len(cell_id) <= 18:
            cell_id = int(cell_id)
        if isinstance(cell_id, bool) or not isinstance(cell_id, int | np.integer) or not 0 <= cell_id < self._n:
            raise UnknownCell(f"cell_id: unknown cell {cell_id!r}; the population has cells 0..{self._n - 1}")
        return int(cell_id)

    def shard_of(self, cell_id: Any) -> int:
        """Index of the shard that owns ``cell_id`` (UnknownCell if none)."""
        return int(np.searchsorted(self._hi, self._cell(cell_id), side="right"))

    def allocation(self, cell_id: Any) -> dict:
        """{cell_id, period, model_version, scheme, slices: [{snssai, share}]}, from the owning shard."""
        cid = self._cell(cell_id)
        return self._get([self._call(self.shards[self.shard_of(cid)], "allocation", cid)])[0]

    def history_of(self, cell_id: Any, snssai: str) -> dict[str, list[float]]:
        """One (cell, slice)'s users and CQI history, oldest first, from the owning shard (what its next allocation
        sees; an acknowledged KPI record is its newest entry until the next period)."""
        cid = self._cell(cell_id)
        return self._get([self._call(self.shards[self.shard_of(cid)], "history_of", cid, str(snssai))])[0]

    def allocations_array(self) -> np.ndarray:
        """[n_cells, S] current allocation of every cell."""
        return np.concatenate(self._get([self._call(s, "allocations_array") for s in self.shards]))

    def e2e_allocations(self) -> list[dict[str, Any]]:
        """Every shard's microopt step result (``CellShard.e2e_allocations``), shards without one left out."""
        return [r for r in self._get([self._call(s, "e2e_allocations") for s in self.shards]) if r is not None]

    def e2e_page(self, limit: int = 100, offset: int = 0) -> dict[str, Any]:
        """A page of the e2e slice instances of the last microopt step, in (group, slice) order over the shards:
        {period, model_version, total, limit, offset, instances}. LookupError when the population runs no
        microopt step, or before its first (the history is not full yet)."""
        if self.e2e is None:
            raise LookupError("this population runs no microopt step (start it with an e2e slice model, "
                              "`slicing serve --slice-model PATH`)")
        parts = self.e2e_allocations()
        if not parts:
            raise LookupError("no microopt step yet: it runs once the history is full")
        rows = [row for part in parts for row in part["instances"]]
        return {"period": min(part["period"] for part in parts), "model_version": parts[0]["model_version"],
                "total": len(rows), "limit": limit, "offset": offset, "instances": rows[offset:offset + limit]}

    # -- bulk reads: the last KEEP_PERIODS periods of every cell -------------------------------------------
    def _hold(self) -> None:
        """Keep the shards' current allocations as one snapshot (dropping the oldest beyond KEEP_PERIODS)."""
        parts = self._get([self._call(s, "allocation_snapshot") for s in self.shards])
        periods = {part["period"] for part in parts}
        if len(periods) != 1:  # cannot happen after a completed period; never keep a torn snapshot
            return
        snap = AllocationSnapshot(parts[0]["period"], parts[0]["model_version"], self.scheme,
                                  tuple(s.snssai for s in self.scenario.slices),
                                  np.concatenate([part["shares"] for part in parts]),
                                  np.concatenate([part["mask"] for part in parts]))
        held = {p: v for p, v in self._held.items() if p != snap.period} | {snap.period: snap}
        self._held = dict(sorted(held.items())[-KEEP_PERIODS:])

    def held_periods(self) -> list[int]:
        return list(self._held)

    def allocations(self, period: int | None = None) -> AllocationSnapshot:
        """Every cell's allocation for ``period`` (default: the newest held); ``PeriodNotHeld`` otherwise."""
        held = self._held
        if period is None:
            if not held:
                raise PeriodNotHeld(self._period, [])
            return held[max(held)]
        if isinstance(period, bool) or not isinstance(period, int | np.integer):
            raise FieldError(("period",), f"must be an integer, got {period!r}")
        if int(period) not in held:
            raise PeriodNotHeld(int(period), list(held))
        return held[int(period)]

    def allocations_page(self, offset: int = 0, limit: int = 1000, period: int | None = None) -> dict[str, Any]:
        """{total, offset, snapshot}: cells offset .. offset + limit - 1 of ``allocations(period)``."""
        for name, v in (("offset", offset), ("limit", limit)):
            if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 0:
                raise FieldError((name,), f"must be an integer >= 0, got {v!r}")
        snap = self.allocations(period)
        return {"total": self._n, "offset": int(offset), "snapshot": snap.page(int(offset), int(limit))}

    def shard_info(self) -> list[dict]:
        return self._get([self._call(s, "info") for s in self.shards])

    # -- KPI reports ----------------------------------------------------------------------------------------
    def ingest(self, records: list[dict] | KpiBatch) -> int:
        """Route KPI records to their shards; all-or-nothing (every shard checks before any applies)."""
        batch = parse_records(records)
        out = (batch.cell_ids < 0) | (batch.cell_ids >= self._n)
        if out.any():
            k = int(np.argmax(out))
            raise FieldError(("records", int(batch.index[k]), "cell_id"),
                             f"unknown cell {batch.cell_ids[k]}; the population has cells 0..{self._n - 1}")
        owner = np.searchsorted(self._hi, batch.cell_ids, side="right")  # [M] shard index
        groups = [(self.shards[k], batch.take(np.flatnonzero(owner == k))) for k in np.unique(owner)]
        with self._lock:
            self._get([self._call(s, "ingest", sub, True) for s, sub in groups])  # dry run: validate everywhere
            return sum(self._get([self._call(s, "ingest", sub) for s, sub in groups]))

    def shutdown(self) -> None:
        """Kill the shard actors (their checkpoints stay)."""
        if not self.in_process:
            import ray

            for s in self.shards:
                ray.kill(s)
        self.shards = []

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
