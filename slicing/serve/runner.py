"""``slicing serve`` and ``slicing bench serve``: the whole service on one machine, and its benchmark.

``LocalService`` (a context manager) starts, in this order:

1. Ray: an embedded local instance (``address="local"``), or an existing cluster (``address="auto"``);
2. the estimator: ``--estimator PATH`` or the small ``slicing.optim.rollout.bootstrap_estimator`` trained now (~10 s);
3. the sharded population as the named actor ``slicing-population`` (``slicing.runtime.start_population_actor``,
   scheme idla), whose history is filled by H periods run at once (IDLA's warm-up; the traffic baseline
   allocates meanwhile), then advanced one period every ``period_s`` seconds in the background;
4. Serve with ``http_options`` host/port and the ingress of ``serve_app.py``, found by its Serve import path
   (``INGRESS``; nothing in ``slicing`` imports ``serve_app``); the replica takes the population's estimator
   (same ``model_version`` everywhere). ``SLICING_*`` variables of this process are passed to the replica's
   ``runtime_env``.

and tears everything down in reverse order on exit. ``slicing/bench/serve.py`` measures the running service.
"""

from __future__ import annotations

import importlib
import math
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

from slicing.config import HISTORY, Scenario, build_scenario
from slicing.runtime.ray_util import loopback_ray

Log = Callable[[str], None]
APP_NAME = "slicing"
INGRESS = "serve_app:SlicingIngress"  # Serve import path of the ingress deployment (top-level module of the wheel)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scenario_for(cells: int | None, scenario: Scenario | None, seed: int = 0) -> Scenario:
    """``scenario`` (or the defaults) with ceil(cells / 3) sites when ``cells`` is given (default 300 cells)."""
    if scenario is None:
        return build_scenario({"name": "serve", "seed": seed, "topology": {"sites": math.ceil((cells or 300) / 3)}})
    if cells is None:
        return scenario
    data = scenario.model_dump(mode="json")
    data["topology"]["sites"] = math.ceil(cells / 3)
    return build_scenario(data)


def _get_json(url: str, timeout: float = 5.0) -> tuple[int, dict]:
    import requests

    r = requests.get(url, timeout=timeout)
    try:
        return r.status_code, r.json()
    except ValueError:
        return r.status_code, {}


def wait_ready(base_url: str, timeout_s: float = 180.0) -> dict:
    """Poll ``/readyz`` until 200; returns its body, raises ``TimeoutError`` with the last answer."""
    import requests

    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            status, body = _get_json(base_url + "/readyz")
            if status == 200:
                return body
            last = body
        except requests.RequestException as err:
            last = str(err)
        time.sleep(0.5)
    raise TimeoutError(f"{base_url}/readyz not ready after {timeout_s:g} s: {last}")


def replica_env() -> dict[str, str]:
    """The ``SLICING_*`` variables of this process, for the replica's runtime_env."""
    return {k: v for k, v in os.environ.items() if k.startswith("SLICING_")}


def deploy_app(settings: dict[str, Any] | None = None, num_cpus: float = 0.0, name: str = APP_NAME,
               env: dict[str, str] | None = None, num_replicas: int = 1) -> None:
    """``serve.run`` the ingress ``INGRESS`` (Serve must be started); returns once its replicas are up."""
    from ray import serve

    module, _, attr = INGRESS.partition(":")
    ingress = getattr(importlib.import_module(module), attr)  # by import path, as `serve run` does
    options: dict[str, Any] = {"num_cpus": num_cpus}
    env = replica_env() if env is None else env
    if env:
        options["runtime_env"] = {"env_vars": env}
    serve.run(ingress.options(ray_actor_options=options, num_replicas=num_replicas).bind(settings or {}), name=name,
              route_prefix="/")


class LocalService:
    """The population + the HTTP service on Ray (see the module docstring). Use as a context manager."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8000, cells: int | None = 300,
                 scenario: Scenario | None = None, shards: int = 1, period_s: float = 900.0,
                 estimator: Path | None = None, address: str = "local", seed: int = 0,
                 settings: dict[str, Any] | None = None, log: Log = print, train_epochs: int = 40,
                 slice_model: Path | None = None, e2e_config: dict[str, Any] | None = None,
                 registry: Path | None = Path("out/agents"), storage: str | None = None) -> None:
        self.host, self.port, self.shards, self.period_s = host, port, shards, period_s
        self.scenario = scenario_for(cells, scenario, seed)
        if not 1 <= shards <= self.scenario.topology.sites:
            raise ValueError(f"--shards {shards}: must be in [1, {self.scenario.topology.sites}] (one site at least "
                             "per shard)")
        self.estimator, self.address, self.seed = estimator, address, seed
        self.settings = dict(settings or {})
        self.log, self.train_epochs = log, train_epochs
        self.slice_model = slice_model  # e2e slice model: the population's microopt step and POST /v1/e2e/allocate
        self.e2e_config = dict(e2e_config or {})  # E2eStepConfig fields of that step
        self.registry = registry  # the transfer service's registry folder (GET /v1/agents, POST /v1/transfer)
        self.storage = str(storage) if storage else None  # checkpoints: a restart resumes where it stopped
        self.population = None
        self.transfer = None
        self._ray_started = self._serve_started = False
        self.ready_info: dict = {}

    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> Self:
        t0 = time.perf_counter()
        self.start_population()
        self.start_http()
        self.log(f"serving on {self.base_url} (model_version {self.ready_info.get('model_version')}, "
                 f"a period every {self.period_s:g} s) after {time.perf_counter() - t0:.1f} s")
        return self

    def start_population(self) -> None:
        """Ray, the estimator, the population actor (detached on a cluster) with its period loop."""
        import ray

        from slicing.models.qos_estimator import load_estimator
        from slicing.runtime import start_population_actor

        if not ray.is_initialized():
            handler = signal.getsignal(signal.SIGTERM)
            if self.address == "local":
                loopback_ray()  # GCS, raylet and object manager on 127.0.0.1 only
                ray.init(address="local", include_dashboard=False, log_to_driver=False)
            else:
                ray.init(address=self.address, log_to_driver=False)
            self._ray_started = True
            if callable(handler) and threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGTERM, handler)  # keep the caller's: Ray's own aborts with a stack dump
        if self.estimator is not None:
            model = load_estimator(self.estimator)
        else:
            from slicing.optim.rollout import bootstrap_estimator

            model = bootstrap_estimator(self.seed, self.log, epochs=self.train_epochs)
        sc = self.scenario
        self.log(f"starting the population: {sc.cells} cells on {self.shards} shard(s)")
        e2e = None
        if self.slice_model is not None:
            from slicing.models.slice_model import load_slice_model, slice_model_payload
            from slicing.runtime.e2e_step import E2eStepConfig

            e2e = {"config": E2eStepConfig.model_validate({"seed": self.seed} | self.e2e_config).model_dump(),
                   "model": slice_model_payload(load_slice_model(self.slice_model))}
        self.population = start_population_actor(sc, self.shards, "idla", model, storage=self.storage,
                                                 detached=self.address != "local", e2e=e2e)
        resumed = ray.get(self.population.period.remote())
        if resumed:
            self.log(f"resumed from {self.storage} at period {resumed}")
        for _ in range(max(0, HISTORY - resumed)):  # fill the history now: IDLA (not its warm-up) from the start
            ray.get(self.population.run_period.remote())
        ray.get(self.population.run_periods_every.remote(self.period_s))
        if self.registry is not None:  # its routes answer instead of 503
            from slicing.runtime.transfer_actor import start_transfer_actor

            self.transfer = start_transfer_actor(sc, self.registry, detached=self.address != "local")
            self.log(f"transfer service over the registry {self.registry}")

    def start_http(self) -> None:
        """Serve on host:port with the app; waits until /readyz says ready."""
        from ray import serve

        serve.start(http_options={"host": self.host, "port": self.port},
                    logging_config={"enable_access_log": False})  # the proxy's per-request log line
        self._serve_started = True
        env = replica_env()
        if self.slice_model is not None:
            env["SLICING_SLICE_MODEL_PATH"] = str(Path(self.slice_model).resolve())
        deploy_app(self.settings, env=env)
        self.ready_info = wait_ready(self.base_url)

    def stop(self) -> None:
        import ray
        from ray import serve

        if self._serve_started:
            try:
                serve.shutdown()
            except Exception as err:  # keep tearing down
                self.log(f"serve shutdown: {err}")
            self._serve_started = False
        if self.transfer is not None and self.address == "local":
            try:
                ray.kill(self.transfer)
            except Exception as err:  # keep tearing down
                self.log(f"transfer service shutdown: {err}")
            self.transfer = None
        if self.population is not None:
            try:
                ray.get(self.population.shutdown.remote(), timeout=60)
                ray.kill(self.population)
            except Exception as err:  # keep tearing down
                self.log(f"population shutdown: {err}")
            self.population = None
        if self._ray_started:
            ray.shutdown()
            self._ray_started = False

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()
