"""The head's GCS lost and restarted under a running service: GCS fault tolerance on a real Redis, on one machine.

``run_gcs_ft()`` starts ``redis-server`` (Debian's, on 127.0.0.1 and a free port), a Ray head whose GCS keeps its
tables in it (``RAY_REDIS_ADDRESS``, ``ray.cluster_utils.Cluster``, every node on 127.0.0.1), the population actor
(2 shards, IDLA, checkpoints) and the HTTP service (Ray Serve on 127.0.0.1). A client thread keeps reading through
the service. Then the GCS server process is killed, the service is read for a few seconds without it, and the GCS
is started again (what a supervisor, e.g. KubeRay's head pod, does). Recorded: every answer during the run (status,
Retry-After, latency), the actors before and after (pids, names), and the periods run after the restart.

It must run in a process without Ray initialised: ``python -m tests.runtime.gcs_ft`` prints one JSON line (used by
``tests/runtime/test_gcs_ft.py``). It stops only what it started: its Serve app, its cluster (by pid, through
``Cluster.shutdown``) and its Redis (by pid).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

OUTAGE_S = 6.0  # how long the GCS stays down
REQUEST_TIMEOUT_S = 10.0  # a read that takes longer counts as a hang
_SYSTEM_CONFIG = {"gcs_rpc_server_reconnect_timeout_s": 60}  # raylets and workers wait this long for the GCS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def redis_keys(port: int) -> int:
    """DBSIZE of the Redis on 127.0.0.1:port (the GCS's tables are keys there)."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(b"DBSIZE\r\n")
        reply = s.recv(64)
    if not reply.startswith(b":"):
        raise RuntimeError(f"unexpected DBSIZE reply {reply!r}")
    return int(reply[1:].strip())


def start_redis(port: int, folder: str) -> subprocess.Popen:
    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError("redis-server not found: `make test` installs Debian's redis-server (see the Makefile)")
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", folder], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while not redis_ping(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"redis-server did not start on 127.0.0.1:{port}")
        time.sleep(0.1)
    return proc


class Reader(threading.Thread):
    """Reads one cell's allocation and a page of every cell's, in a loop, recording (t, path, status, retry, s)."""

    def __init__(self, base: str) -> None:
        super().__init__(daemon=True)
        self.base, self.stop, self.log = base, threading.Event(), []

    def run(self) -> None:
        import requests

        session = requests.Session()
        paths = ["/v1/cells/5/allocation", "/v1/allocations?offset=0&limit=20"]
        k = 0
        while not self.stop.is_set() and len(self.log) < 5000:
            path = paths[k % 2]
            k += 1
            t0 = time.monotonic()
            try:
                r = session.get(self.base + path, timeout=REQUEST_TIMEOUT_S)
                status, retry = r.status_code, "retry-after" in {h.lower() for h in r.headers}
            except requests.RequestException as err:
                status, retry = f"{type(err).__name__}", False
            self.log.append((t0, path, status, retry, time.monotonic() - t0))
            time.sleep(0.05)


def run_gcs_ft(sites: int = 12, seed: int = 3) -> dict:
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # Ray takes 127.0.0.1 as the node IP
    import ray

    if ray.is_initialized():
        raise RuntimeError("run_gcs_ft needs a process without Ray initialised (it starts its own cluster)")
    from ray import serve
    from ray.cluster_utils import Cluster

    from slicing.bench.chaos import unallocated as count_unallocated
    from slicing.runtime import start_population_actor
    from slicing.serve.runner import deploy_app, wait_ready
    from tests.runtime.multinode import small_scenario, tiny_estimator

    folder = tempfile.mkdtemp(prefix="slicing-gcs-ft-")
    redis_port = free_port()
    redis = start_redis(redis_port, folder)
    os.environ["RAY_REDIS_ADDRESS"] = f"127.0.0.1:{redis_port}"
    cluster = None
    result: dict = {"redis": f"127.0.0.1:{redis_port}"}
    try:
        cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 2, "include_dashboard": False, "_system_config": _SYSTEM_CONFIG})
        ray.init(address=cluster.address, log_to_driver=False)
        result["node_ips"] = sorted({n["NodeManagerAddress"] for n in ray.nodes()})
        if result["node_ips"] != ["127.0.0.1"]:
            raise RuntimeError(f"a node registered with {result['node_ips']}, not 127.0.0.1: nothing sent")
        result["gcs_address"] = cluster.address
        scenario = small_scenario(sites, seed)
        model = tiny_estimator(scenario, seed)
        pop = start_population_actor(scenario, 2, "idla", model, storage=os.path.join(folder, "state"))
        for _ in range(5):
            ray.get(pop.run_period.remote(), timeout=120)
        port = free_port()
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        deploy_app({}, env={})
        base = f"http://127.0.0.1:{port}"
        wait_ready(base, timeout_s=180)

        def actors() -> dict:
            shards = ray.get(pop.shard_info.remote(), timeout=60)
            return {"population_pid": ray.get(pop.__ray_call__.remote(lambda self: os.getpid()), timeout=60),
                    "shard_pids": [s["pid"] for s in shards],
                    "named": sorted(a["name"] for a in ray.util.list_named_actors(all_namespaces=True))}

        before = actors()
        result["redis_keys_before_kill"] = redis_keys(redis_port)
        period_before = ray.get(pop.period.remote(), timeout=60)
        reader = Reader(base)
        reader.start()
        time.sleep(2.0)
        gcs_pid = cluster.head_node.all_processes["gcs_server"][0].process.pid
        t_kill = time.monotonic()
        cluster.head_node.kill_gcs_server()
        result["gcs_killed_pid"] = gcs_pid
        time.sleep(OUTAGE_S)
        t_restart = time.monotonic()
        cluster.head_node.start_gcs_server()
        result["gcs_restarted_pid"] = cluster.head_node.all_processes["gcs_server"][0].process.pid
        deadline = time.monotonic() + 60
        while True:  # the cluster answers again once the raylet and the driver have reconnected
            try:
                ray.nodes()
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        t_back = time.monotonic()
        periods = []
        for _ in range(2):
            stats = ray.get(pop.run_period.remote(), timeout=180)
            unallocated = count_unallocated(ray.get(pop.allocations.remote(), timeout=120))
            periods.append({"period": stats["period"], "fallback_cells": stats["fallback_cells"],
                            "errors": stats["errors"], "cells_unallocated": unallocated})
        time.sleep(2.0)
        reader.stop.set()
        reader.join(30)
        after = actors()
        wait_ready(base, timeout_s=60)

        def window(a: float, b: float) -> list:
            return [e for e in reader.log if a <= e[0] < b]

        outage = window(t_kill, t_restart)
        result |= {
            "period_before": period_before, "periods_after": periods,
            "same_population": before["population_pid"] == after["population_pid"],
            "same_shards": before["shard_pids"] == after["shard_pids"],
            "same_named_actors": before["named"] == after["named"], "named_actors": after["named"],
            "requests": len(reader.log),
            "statuses": sorted({str(e[2]) for e in reader.log}),
            "outage_requests": len(outage),
            "outage_statuses": sorted({str(e[2]) for e in outage}),
            "outage_503_without_retry_after": sum(1 for e in outage if e[2] == 503 and not e[3]),
            "max_latency_s": max(e[4] for e in reader.log),
            "outage_max_latency_s": max((e[4] for e in outage), default=0.0),
            "after_statuses": sorted({str(e[2]) for e in window(t_back, float("inf"))}),
            "outage_s": t_restart - t_kill, "reconnect_s": t_back - t_restart,
        }
        return result
    finally:
        try:
            if ray.is_initialized():
                serve.shutdown()
                ray.shutdown()
        finally:
            if cluster is not None:
                cluster.shutdown()
            redis.terminate()
            try:
                redis.wait(10)
            except subprocess.TimeoutExpired:
                redis.kill()
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    print(json.dumps(run_gcs_ft()), flush=True)
    sys.exit(0)
