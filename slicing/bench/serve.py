"""`slicing bench serve`: the HTTP service measured from outside, over HTTP (a load-test client, not service code).

``bench_serve`` times one ``POST /v1/allocate`` of ``allocate_cells`` cells (after an untimed warm-up call) and
``requests_total`` single-cell ``GET /v1/cells/{id}/allocation`` paced at ``rps`` (open loop), and returns
``{allocate_1000_cells_s, get_p50_ms, get_p99_ms, rps}``. ``random_cells`` makes request cells (also used by the
tests). The service itself is started by ``slicing.serve.runner.LocalService``.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Callable

import numpy as np

from slicing.config import HISTORY

Log = Callable[[str], None]


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
