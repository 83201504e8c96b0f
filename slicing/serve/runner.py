"""``slicing serve`` and ``slicing bench serve``: the whole service on one machine, and its benchmark.

``LocalService`` (a context manager) starts, in this order:

1. Ray: an embedded local instance (``address="local"``), or an existing cluster (``address="auto"``);
2. the estimator: ``--estimator PATH`` or the small ``slicing.bench.core.bench_estimator`` trained now (~10 s);
3. the sharded population as the named actor ``slicing-population`` (``slicing.runtime.start_population_actor``,
   scheme idla), whose history is filled by H periods run at once (IDLA's warm-up; the traffic baseline
   allocates meanwhile), then advanced one period every ``period_s`` seconds in the background;
4. Serve with ``http_options`` host/port and the app of ``serve_app.py``; the replica takes the population's
   estimator (same ``model_version`` everywhere). ``SLICING_*`` variables of this process are passed to the
   replica's ``runtime_env``.

and tears everything down in reverse order on exit. ``bench_serve`` measures the running service over HTTP.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import socket
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

import numpy as np

from slicing.config import HISTORY, Scenario, build_scenario

Log = Callable[[str], None]
APP_NAME = "slicing"


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
               env: dict[str, str] | None = None) -> None:
    """``serve.run`` the app of ``serve_app.py`` (Serve must be started); returns once the replica is up."""
    from ray import serve

    import serve_app

    options: dict[str, Any] = {"num_cpus": num_cpus}
    env = replica_env() if env is None else env
    if env:
        options["runtime_env"] = {"env_vars": env}
    serve.run(serve_app.SlicingIngress.options(ray_actor_options=options).bind(settings or {}),
              name=name, route_prefix="/")


class LocalService:
    """The population + the HTTP service on Ray (see the module docstring). Use as a context manager."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8000, cells: int | None = 300,
                 scenario: Scenario | None = None, shards: int = 1, period_s: float = 900.0,
                 estimator: Path | None = None, address: str = "local", seed: int = 0,
                 settings: dict[str, Any] | None = None, log: Log = print, train_epochs: int = 40) -> None:
        self.host, self.port, self.shards, self.period_s = host, port, shards, period_s
        self.scenario = scenario_for(cells, scenario, seed)
        if not 1 <= shards <= self.scenario.topology.sites:
            raise ValueError(f"--shards {shards}: must be in [1, {self.scenario.topology.sites}] (one site at least "
                             "per shard)")
        self.estimator, self.address, self.seed = estimator, address, seed
        self.settings = dict(settings or {})
        self.log, self.train_epochs = log, train_epochs
        self.population = None
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
            if self.address == "local":
                ray.init(address="local", include_dashboard=False, log_to_driver=False)
            else:
                ray.init(address=self.address, log_to_driver=False)
            self._ray_started = True
        if self.estimator is not None:
            model = load_estimator(self.estimator)
        else:
            from slicing.bench.core import bench_estimator

            model = bench_estimator(self.seed, self.log, epochs=self.train_epochs)
        sc = self.scenario
        self.log(f"starting the population: {sc.cells} cells on {self.shards} shard(s)")
        self.population = start_population_actor(sc, self.shards, "idla", model,
                                                 detached=self.address != "local")
        for _ in range(HISTORY):  # fill the history now: IDLA (not its traffic-baseline warm-up) from the start
            ray.get(self.population.run_period.remote())
        ray.get(self.population.run_periods_every.remote(self.period_s))

    def start_http(self) -> None:
        """Serve on host:port with the app; waits until /readyz says ready."""
        from ray import serve

        serve.start(http_options={"host": self.host, "port": self.port},
                    logging_config={"enable_access_log": False})  # the proxy's per-request log line
        self._serve_started = True
        deploy_app(self.settings)
        self.ready_info = wait_ready(self.base_url)

    def stop(self) -> None:
        import ray
        from ray import serve

        if self._serve_started:
            try:
                serve.shutdown()
            except Exception as err:  # noqa: BLE001 - keep tearing down
                self.log(f"serve shutdown: {err}")
            self._serve_started = False
        if self.population is not None:
            try:
                ray.get(self.population.shutdown.remote(), timeout=60)
                ray.kill(self.population)
            except Exception as err:  # noqa: BLE001
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


# ------------------------------------------------------------------------------------------------ benchmark


def random_cells(n: int, rng: np.random.Generator, slices: tuple[int, int] = (1, 4), prefix: str = "c",
                 last_period: bool = False) -> list[dict]:
    """``n`` request cells with a random number of slices in ``slices`` (inclusive) and random histories;
    ``last_period`` adds each slice's last-period KPIs (what scheme ``rl`` needs)."""
    from slicing.config import default_catalogue

    cat = default_catalogue()
    extra = [f"0{k}-0000{j:02d}" for k in range(1, 4) for j in range(10, 99)]  # more S-NSSAIs for > 4 slices
    names = [c.snssai for c in cat] + extra
    out = []
    for i in range(n):
        k = int(rng.integers(slices[0], slices[1] + 1))
        chosen = rng.choice(len(names), size=k, replace=False)
        cell = []
        for j in chosen:
            base = cat[j % len(cat)]
            users = np.maximum(rng.normal(base.users_peak * rng.uniform(0.2, 1.0), 1.0, HISTORY), 0.0)
            cell.append({"snssai": names[j], "throughput_req_mbps": base.throughput_req_mbps,
                         "delay_req_ms": base.delay_req_ms, "users_history": [round(float(u), 3) for u in users],
                         "cqi_history": [round(float(c), 3) for c in rng.uniform(3, 14, HISTORY)]})
            if last_period:
                cell[-1]["last_period"] = {
                    "throughput_mbps": round(float(base.throughput_req_mbps * rng.uniform(0.2, 2.5)), 3),
                    "prb_util": round(float(rng.uniform(0.0, 1.0 / k)), 4),
                    "nbr_prb_util": round(float(rng.uniform(0.0, 0.5)), 4)}
        out.append({"cell_id": f"{prefix}{i}", "slices": cell})
    return out


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


async def _paced_gets(base_url: str, ids: np.ndarray, rps: float) -> tuple[list[tuple[float, int]], float]:
    """GET one cell's allocation per id, request i sent at start + i / rps (open loop: a slow answer does not
    delay later requests). One asyncio client thread with keep-alive connections, so the client's own CPU is
    small on a 2-core machine shared with the service (16 ``requests`` threads measured p99 44-55 ms where this
    client measures 28-33 ms, same service, quiet machine)."""
    import aiohttp

    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=32)) as http:

        async def get(i: int, at: float) -> tuple[float, int]:
            await asyncio.sleep(max(0.0, at - time.perf_counter()))
            t = time.perf_counter()
            async with http.get(f"{base_url}/v1/cells/{int(ids[i])}/allocation") as resp:
                await resp.read()
                return (time.perf_counter() - t) * 1000.0, resp.status

        await asyncio.gather(*(get(i, 0.0) for i in range(20)))  # warm the connections (not counted)
        start = time.perf_counter() + 0.05
        results = await asyncio.gather(*(get(i, start + i / rps) for i in range(len(ids))))
        return list(results), time.perf_counter() - start


def bench_serve(base_url: str, n_cells_population: int, allocate_cells: int = 1000, rps: float = 100.0,
                requests_total: int = 1000, seed: int = 0, log: Log = print) -> dict:
    """Time one ``POST /v1/allocate`` of ``allocate_cells`` cells and paced single-cell GETs (see README)."""
    import requests

    rng = np.random.default_rng(seed)
    session = requests.Session()
    body = {"scheme": "idla", "cells": random_cells(allocate_cells, rng, (4, 4))}
    payload = json.dumps(body)
    headers = {"content-type": "application/json"}
    warm = session.post(base_url + "/v1/allocate", data=payload, headers=headers, timeout=120)  # not timed
    warm.raise_for_status()
    t0 = time.perf_counter()
    r = session.post(base_url + "/v1/allocate", data=payload, headers=headers, timeout=120)
    allocate_s = time.perf_counter() - t0
    r.raise_for_status()
    assert len(r.json()["allocations"]) == allocate_cells
    log(f"POST /v1/allocate, {allocate_cells} cells: {allocate_s:.3f} s")

    ids = rng.integers(0, n_cells_population, requests_total)
    results, elapsed = asyncio.run(_paced_gets(base_url, ids, rps))
    lat = [ms for ms, code in results if code == 200]
    errors = sum(1 for _, code in results if code != 200)
    out = {"allocate_1000_cells_s": round(allocate_s, 4), "get_p50_ms": round(_percentile(lat, 50), 2),
           "get_p99_ms": round(_percentile(lat, 99), 2), "rps": round(len(results) / elapsed, 1)}
    log(f"GET /v1/cells/{{id}}/allocation x {requests_total} at {rps:g}/s: p50 {out['get_p50_ms']} ms, "
        f"p99 {out['get_p99_ms']} ms, achieved {out['rps']} req/s, {errors} non-200")
    if lat:
        log(f"GET mean {statistics.fmean(lat):.2f} ms, max {max(lat):.2f} ms")
    return out
