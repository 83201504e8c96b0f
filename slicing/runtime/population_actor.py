"""The population as a named Ray actor, for the HTTP service (``serve_app.py``) and ``slicing serve``.

``PopulationActor`` runs a ``Population`` inside a threaded Ray actor registered as ``"slicing-population"`` in
namespace ``"slicing"``. Its getters are methods (actor handles call methods, not properties):
``allocation(cell_id)``, ``cell_ids(limit, offset)``, ``n_cells()``, ``ingest(records)``, ``model_version()``,
``period()``, ``ready()``, ``estimator_payload()``; the bulk reads ``allocations_page(offset, limit, period)``,
``allocations(period)`` and ``held_periods()`` (the last ``KEEP_PERIODS`` periods of every cell); the roll-out
``push_model(payload)``, ``push_rl_model(archive)``, ``activate_model(version)``, ``models()``, ``rl_version()``,
``rl_archive()``; the A1 policies ``put_policy(id, body)``,
``delete_policy(id)``, ``policy_ids()``, ``policy(id)``, ``policy_status(id)``, ``requirements(cell_id)``;
``history_of(cell_id, snssai)``, ``pid()``; plus
``run_period()``, ``run_periods_every(period_s)`` (a background thread advancing one period every ``period_s``
seconds), ``stop()``, ``timings()``, ``last_error()``.

With a storage path the actor is restartable (``max_restarts=-1``): killed, Ray starts it again with the same
arguments, its ``Population`` restores the shards' checkpoints (its old shards died with it) and, if its period loop
was running, starts the loop again (the loop's period is kept in the storage, object ``"period-loop"``). Calls
made while it restarts fail (``RayActorError``) or wait; the HTTP service answers them 503 + ``Retry-After``.

Reads (allocation, cell_ids, ...) do not wait for a running period: the population's lock is only taken by
``run_period``, ``ingest`` and ``set_estimator``, and shards answer reads from their last allocation.

Bad input (a KPI record out of range, an unknown cell) is raised as ``slicing.errors.FieldError`` (or
``UnknownCell``, a KeyError) and reaches the caller as the task error's ``cause``
(``slicing.runtime.ray_util.unwrap``), with its path (``records.3.cqi``).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import ray

from slicing.config import Scenario
from slicing.models.qos_estimator import QosEstimator, load_estimator
from slicing.runtime.checkpoint import CheckpointStore
from slicing.runtime.population import Population
from slicing.runtime.ray_util import NAMESPACE, named_actor

ACTOR_NAME = "slicing-population"
LOOP_OBJECT = "period-loop"  # the storage object of the running period loop: {"period_s"} (a restart resumes it)
_KEEP: list[Any] = []  # handles of the actors this process started


class PopulationService:
    """A ``Population`` plus a periodic driver loop; the body of ``PopulationActor``."""

    def __init__(self, scenario: Scenario, shards: int = 1, scheme: str = "idla",
                 model: QosEstimator | dict | str | Path | None = None, storage: str | None = None,
                 **population_kwargs: Any) -> None:
        if isinstance(model, str | Path):
            model = load_estimator(model)
        self.population = Population(scenario, shards, scheme, model, storage, **population_kwargs)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: str | None = None
        if self._store is not None and _reconstructed():  # restarted by Ray: go on as before the crash
            loop = self._store.load(LOOP_OBJECT)
            if loop is not None:
                self.run_periods_every(float(loop["period_s"]))

    @property
    def _store(self) -> CheckpointStore | None:
        return CheckpointStore(self.population.storage) if self.population.storage else None

    # -- driving --------------------------------------------------------------------------------------------
    def run_period(self) -> dict:
        """Run one period now; returns its timings."""
        return self.population.run_period()

    def run_periods_every(self, period_s: float) -> bool:
        """Start advancing one period every ``period_s`` seconds in the background; False if already running."""
        if not period_s > 0:
            raise ValueError(f"period_s: must be > 0, got {period_s!r}")
        if self._thread is not None and self._thread.is_alive():
            return False
        self._stop.clear()
        if self._store is not None:
            self._store.save(LOOP_OBJECT, {"period_s": float(period_s)})
        self._thread = threading.Thread(target=self._loop, args=(float(period_s),), daemon=True,
                                        name="population-periods")
        self._thread.start()
        return True

    def _loop(self, period_s: float) -> None:
        next_t = time.monotonic()
        while not self._stop.is_set():
            try:
                self.population.run_period()
                self._error = None
            except Exception as err:  # keep serving the last allocations; report via last_error()
                self._error = f"{type(err).__name__}: {err}"
            next_t += period_s
            self._stop.wait(max(0.0, next_t - time.monotonic()))
            next_t = max(next_t, time.monotonic() - period_s)  # a slow round does not cause a burst of catch-up

    def stop(self) -> bool:
        """Stop the background loop (the current period finishes); True if it was running."""
        running = self._thread is not None and self._thread.is_alive()
        self._stop.set()
        if self._store is not None:
            self._store.delete(LOOP_OBJECT)
        if running:
            self._thread.join()
        return running

    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def timings(self, last: int = 10) -> list[dict]:
        return list(self.population.timings)[-last:]

    def last_error(self) -> str | None:
        return self._error

    # -- the HTTP service's interface -----------------------------------------------------------------------
    def allocation(self, cell_id: int | str) -> dict:
        return self.population.allocation(cell_id)

    def cell_ids(self, limit: int = 100, offset: int = 0) -> list[int]:
        return self.population.cell_ids(limit, offset)

    def n_cells(self) -> int:
        return self.population.n_cells()

    def allocations_page(self, offset: int = 0, limit: int = 1000, period: int | None = None) -> dict:
        return self.population.allocations_page(offset, limit, period)

    def allocations(self, period: int | None = None):
        return self.population.allocations(period)

    def held_periods(self) -> list[int]:
        return self.population.held_periods()

    def e2e_page(self, limit: int = 100, offset: int = 0) -> dict:
        return self.population.e2e_page(limit, offset)

    def ingest(self, records: list[dict]) -> int:
        return self.population.ingest(records)

    def model_version(self) -> str | None:
        return self.population.model_version()

    def period(self) -> int:
        return self.population.period()

    def ready(self) -> bool:
        return self.population.ready()

    def estimator_payload(self) -> dict | None:
        return self.population.estimator_payload()

    def set_estimator(self, model: QosEstimator | dict | str | Path) -> bool:
        return self.population.set_estimator(load_estimator(model) if isinstance(model, str | Path) else model)

    def shard_info(self) -> list[dict]:
        return self.population.shard_info()

    def push_model(self, model: QosEstimator | dict) -> dict:
        return self.population.push_model(model)

    def activate_model(self, version: str) -> dict:
        return self.population.activate_model(version)

    def models(self) -> dict:
        return self.population.models()

    def push_rl_model(self, blob: bytes) -> dict:
        return self.population.push_rl_model(blob)

    def rl_version(self) -> str | None:
        return self.population.rl_version()

    def rl_archive(self) -> bytes | None:
        return self.population.rl_archive()

    def put_policy(self, policy_id: str, body: dict) -> dict:
        return self.population.put_policy(policy_id, body)

    def delete_policy(self, policy_id: str) -> None:
        self.population.delete_policy(policy_id)

    def policy_ids(self) -> list[str]:
        return self.population.policy_ids()

    def policy(self, policy_id: str) -> dict:
        return self.population.policy(policy_id)

    def policy_status(self, policy_id: str) -> dict:
        return self.population.policy_status(policy_id)

    def requirements(self, cell_id: int | str) -> dict:
        return self.population.requirements(cell_id)

    def history_of(self, cell_id: int | str, snssai: str) -> dict[str, list[float]]:
        return self.population.history_of(cell_id, snssai)

    def pid(self) -> int:
        import os

        return os.getpid()

    def shutdown(self) -> None:
        self.stop()
        self.population.shutdown()


def _reconstructed() -> bool:
    """True in an actor that Ray has restarted after a failure."""
    ctx = ray.get_runtime_context() if ray.is_initialized() else None
    return bool(ctx is not None and ctx.get_actor_id() is not None and ctx.was_current_actor_reconstructed)


# Threaded: HTTP reads run beside the background loop. It holds no CPU itself; its shards hold theirs.
PopulationActor = ray.remote(num_cpus=0, max_concurrency=16)(PopulationService)


def start_population_actor(scenario: Scenario, shards: int = 1, scheme: str = "idla",
                           model: QosEstimator | dict | str | Path | None = None, storage: str | None = None,
                           period_s: float | None = None, detached: bool = False, max_restarts: int | None = None,
                           **population_kwargs: Any):
    """Create the named actor (Ray must be initialised), wait until it is ready, optionally start its loop.

    The actor lives as long as the process that started it (``detached=True``: until killed); end it with
    ``stop_population_actor()``. ``max_restarts`` defaults to -1 (restart after any crash) with a ``storage``
    and to 0 without one (a restart without checkpoints would start the network anew).
    """
    if max_restarts is None:
        max_restarts = -1 if storage else 0
    options = {"name": ACTOR_NAME, "namespace": NAMESPACE, "lifetime": "detached" if detached else None,
               "max_restarts": max_restarts}
    deadline = time.monotonic() + 10.0
    while True:
        try:
            handle = PopulationActor.options(**options).remote(scenario, shards, scheme, model, storage,
                                                               **population_kwargs)
            break
        except ValueError as err:  # the name is still held by an actor being killed: wait for its release
            if "already taken" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    ray.get(handle.ready.remote())
    _KEEP.append(handle)  # a non-detached actor lives as long as a handle to it: keep one for this process
    if period_s is not None:
        ray.get(handle.run_periods_every.remote(period_s))
    return handle


def stop_population_actor(handle: Any = None, timeout_s: float = 30.0) -> bool:
    """Stop the loop and the shards, kill the actor and wait until its name is free; False if none ran."""
    try:
        handle = handle or get_population_actor()
    except LookupError:
        return False
    try:
        ray.get(handle.shutdown.remote(), timeout=timeout_s)
    finally:
        ray.kill(handle)
        if handle in _KEEP:
            _KEEP.remove(handle)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                named_actor(ACTOR_NAME)
            except ValueError:
                break
            time.sleep(0.1)
    return True


def get_population_actor():
    """The running population actor; raises ``LookupError`` if none is registered."""
    try:
        return named_actor(ACTOR_NAME)
    except ValueError:
        raise LookupError(f"no population actor {ACTOR_NAME!r} in namespace {NAMESPACE!r} "
                          "(start one with `slicing serve`)") from None
