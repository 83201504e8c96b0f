"""`slicing bench chaos`: the service under a steady request load while a seeded random sequence of faults hits it.

One machine plays a cluster (``ray.cluster_utils.Cluster``: a head and two worker nodes, every node on 127.0.0.1,
fast node-death detection). On it: the population actor (restartable, checkpoints on a temporary storage path,
``shards`` shards spread over the nodes, a period every ``period_s``) and the HTTP service (Ray Serve, 2 replicas,
its proxy on the head only: every node shares 127.0.0.1, so a proxy per node would fight over the port), behind
the nginx front as deployed (``slicing/serve/front.py``: limits far above this load; a read that Serve's proxy
answers 500 because its replica died mid-request is sent once more; ``front="none"`` talks to Serve's proxy
directly). A load thread sends ``rps`` requests per second (single-cell GETs, a page of ``/v1/allocations`` now and
then).

Faults, drawn with ``seed`` (each kind once in every block of four, in a shuffled order):

- ``shard``: SIGKILL a shard actor's process (Ray restarts it; it restores its checkpoint);
- ``node``: remove a worker node that holds a shard, without grace (its raylet and workers die), and add a fresh
  one, as a cluster's autoscaler or supervisor would;
- ``population``: SIGKILL the population actor's process (Ray restarts it; its shards died with it and are created
  again from their checkpoints; its period loop resumes);
- ``replica``: SIGKILL one Serve replica's process (Serve's controller starts another).

Right before each fault, one KPI record per shard is POSTed (``/v1/kpis``); once the fault has hit, the records
acknowledged with 200 are read back from the shards that hold them after the fault (restarted ones where the fault
restarted them): ``kpis_acked_lost`` counts those missing. A fault has recovered when the population has completed
a period after it, a GET for a cell of every shard answers 200 from that period, and the Serve app runs both replicas
again; ``max_recovery_s`` is the longest such time (node-death detection included). After each recovery and at the
end, every cell must hold a finite allocation with a positive budget (``cells_unallocated``).

A request fails (``failed_requests``) unless it answers 200, or 503 with ``Retry-After`` (the documented answer while
the population is unreachable). It must run in a process without Ray initialised; it stops only what it started
(its Serve app, its cluster's processes by pid through ``Cluster.shutdown``, its temporary storage).
"""

from __future__ import annotations

import os
import random
import secrets
import shutil
import signal
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

Log = Callable[[str], None]
KINDS = ("shard", "node", "population", "replica")
REQUEST_TIMEOUT_S = 10.0  # a request that takes longer counts as failed
RECOVERY_LIMIT_S = 120.0  # a fault not recovered by then stops the run (reported, not hidden)
REPLICAS = 2
_MB = 1024 * 1024
# A killed raylet is declared dead after ~2 s instead of ~30 s (Ray's defaults), as in tests/runtime/multinode.py.
FAST_HEALTH = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 500, "health_check_timeout_ms": 1000,
               "health_check_failure_threshold": 4}


def fault_plan(faults: int, seed: int) -> list[str]:
    """``faults`` fault kinds: every kind once in each block of four, each block shuffled by ``seed``."""
    if faults < 1:
        raise ValueError(f"faults: must be >= 1, got {faults}")
    rng = random.Random(seed)
    plan: list[str] = []
    while len(plan) < faults:
        block = list(KINDS)
        rng.shuffle(block)
        plan += block
    return plan[:faults]


def unallocated(alloc: Any) -> int:
    """Cells of an ``AllocationSnapshot`` without a finite allocation and a positive budget on their active slices."""
    shares, mask = np.asarray(alloc.shares), np.asarray(alloc.mask)
    bad = ~np.isfinite(shares).all(axis=1) | ((np.where(mask, shares, 0).sum(axis=1) <= 0) & mask.any(axis=1))
    return int(bad.sum())


class Load(threading.Thread):
    """``rps`` requests per second on a schedule (a slow answer does not delay the next send), answered by a pool of
    ``workers`` threads; records (sent, path, status, retry_after, seconds)."""

    def __init__(self, base: str, cells: int, rps: float, seed: int, workers: int = 16) -> None:
        super().__init__(daemon=True, name="chaos-load")
        self.base, self.cells, self.rps, self.workers = base, cells, rps, workers
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.log: list[tuple[float, str, int | str, bool, float]] = []
        self._local = threading.local()
        self._lock = threading.Lock()

    def _one(self, path: str, sent: float) -> None:
        import requests

        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        try:
            r = session.get(self.base + path, timeout=REQUEST_TIMEOUT_S)
            status: int | str = r.status_code
            retry = "retry-after" in {h.lower() for h in r.headers}
        except requests.RequestException as err:
            status, retry = type(err).__name__, False
        with self._lock:
            self.log.append((sent, path, status, retry, time.monotonic() - sent))

    def run(self) -> None:
        with ThreadPoolExecutor(self.workers) as pool:
            start, k = time.monotonic(), 0
            while not self.stop.is_set():
                due = start + k / self.rps
                if (wait := due - time.monotonic()) > 0 and self.stop.wait(wait):
                    break
                path = (f"/v1/allocations?offset={self.rng.randrange(self.cells)}&limit=10" if k % 10 == 9
                        else f"/v1/cells/{self.rng.randrange(self.cells)}/allocation")
                pool.submit(self._one, path, time.monotonic())
                k += 1


class Chaos:
    """The cluster, the population, the service and the fault injectors of one run (see the module docstring)."""

    def __init__(self, cells: int, shards: int, period_s: float, seed: int, log: Log, front: str = "nginx") -> None:
        if front not in ("nginx", "none"):
            raise ValueError(f"front: {front!r} is not one of ['nginx', 'none']")
        self.cells, self.shards, self.period_s, self.seed, self.log = cells, shards, period_s, seed, log
        self.front = front
        self._nginx: Any = None
        self.rng = random.Random(seed + 1)
        self.cluster: Any = None
        self.workers: list[Any] = []
        self.pop: Any = None
        self.base = ""
        self.token = secrets.token_hex(16)
        self.storage = tempfile.mkdtemp(prefix="slicing-chaos-")
        self.node_args = {"num_cpus": 1, "object_store_memory": 100 * _MB}
        self.kpi_value = 1000.0
        self.killed_replica: str | None = None
        self.kpi_posts: Counter[str] = Counter()  # status of each POST /v1/kpis made before a fault

    # -- set up / tear down ----------------------------------------------------------------------------------
    def start(self) -> None:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # Ray takes 127.0.0.1 as the node IP
        import ray
        from ray import serve
        from ray.cluster_utils import Cluster

        from slicing.config import HISTORY
        from slicing.optim.rollout import bootstrap_estimator
        from slicing.runtime import start_population_actor
        from slicing.serve.runner import deploy_app, free_port, scenario_for, wait_ready

        if ray.is_initialized():
            raise RuntimeError("the chaos run needs a process without Ray initialised (it starts its own cluster)")
        model = bootstrap_estimator(self.seed, self.log, epochs=8)
        self.cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 2, "include_dashboard": False, "_system_config": FAST_HEALTH})
        self.workers = [self.cluster.add_node(**self.node_args) for _ in range(2)]
        self.cluster.wait_for_nodes()
        ray.init(address=self.cluster.address, log_to_driver=False)
        self.check_loopback()
        scenario = scenario_for(self.cells, None, self.seed)
        self.cells = scenario.cells
        self.log(f"cluster: 3 nodes on 127.0.0.1; population: {self.cells} cells on {self.shards} shards")
        self.pop = start_population_actor(scenario, self.shards, "idla", model, storage=self.storage,
                                          num_cpus_per_shard=0.5)
        for _ in range(HISTORY):  # IDLA from the first period of the run, not its warm-up
            ray.get(self.pop.run_period.remote())
        ray.get(self.pop.run_periods_every.remote(self.period_s))
        port = free_port()
        serve.start(proxy_location="HeadOnly", http_options={"host": "127.0.0.1", "port": port},
                    logging_config={"enable_access_log": False})
        deploy_app({}, env={"SLICING_API_TOKEN": self.token}, num_replicas=REPLICAS)
        self.base = f"http://127.0.0.1:{port}"
        wait_ready(self.base, timeout_s=180)
        if self.front == "nginx":  # as deployed (cluster/README.md): limits far above this load, reads retried once
            from slicing.serve.front import NginxFront

            self._nginx = NginxFront(free_port(), port, rate_rps=10_000, burst=10_000, max_conns=4096).__enter__()
            self.base = self._nginx.base_url
        self.log(f"service on {self.base} ({REPLICAS} replicas, front: {self.front}), a period every "
                 f"{self.period_s:g} s")

    def check_loopback(self) -> None:
        import ray

        ips = sorted({n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]})
        if ips != ["127.0.0.1"]:
            raise RuntimeError(f"a node registered with {ips}, not only 127.0.0.1: nothing is sent")

    def stop(self) -> None:
        import ray
        from ray import serve

        if self._nginx is not None:
            self._nginx.__exit__()
        try:
            if ray.is_initialized():
                try:
                    serve.shutdown()
                finally:
                    from slicing.runtime import stop_population_actor

                    try:
                        stop_population_actor(self.pop)
                    finally:
                        ray.shutdown()
        finally:
            if self.cluster is not None:
                self.cluster.shutdown()
            shutil.rmtree(self.storage, ignore_errors=True)

    # -- state -----------------------------------------------------------------------------------------------
    def call(self, method: str, *args: Any, timeout_s: float = RECOVERY_LIMIT_S) -> Any:
        """A population call, retried while the actor restarts (until ``timeout_s``)."""
        import ray

        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return ray.get(getattr(self.pop, method).remote(*args), timeout=10)
            except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    @staticmethod
    def replica_names() -> list[str]:
        """Names of the live replica actors of the app's deployment (Serve names them ``SERVE_REPLICA::...``)."""
        import ray

        return sorted(a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                      if a["namespace"] == "serve" and "SlicingService" in a["name"] and "REPLICA" in a["name"].upper())

    def replicas_back(self) -> bool:
        """The app runs all its replicas, and the one killed is not among them."""
        from ray import serve

        app = serve.status().applications.get("slicing")
        if app is None or "SlicingService" not in app.deployments:
            return False
        running = int(app.deployments["SlicingService"].replica_states.get("RUNNING", 0))
        names = self.replica_names()
        return running == REPLICAS and len(names) == REPLICAS and self.killed_replica not in names

    # -- faults ----------------------------------------------------------------------------------------------
    def inject(self, kind: str) -> dict:
        import ray

        if kind == "shard":
            info = self.rng.choice(self.call("shard_info"))
            os.kill(info["pid"], signal.SIGKILL)
            return {"target": info["name"], "replaced": [info["pid"]]}
        if kind == "population":
            shard_pids = [i["pid"] for i in self.call("shard_info")]  # its shards die with it
            os.kill(self.call("pid"), signal.SIGKILL)
            return {"target": "population", "replaced": shard_pids}
        if kind == "replica":
            self.killed_replica = self.rng.choice(self.replica_names())
            handle = ray.get_actor(self.killed_replica, namespace="serve")
            pid = ray.get(handle.__ray_call__.remote(lambda self: os.getpid()), timeout=30)
            os.kill(pid, signal.SIGKILL)
            return {"target": "replica", "replaced": []}
        if kind == "node":
            infos = self.call("shard_info")
            used = {i["node_id"] for i in infos}
            candidates = [w for w in self.workers if w.node_id in used] or self.workers
            victim = self.rng.choice(candidates)
            replaced = [i["pid"] for i in infos if i["node_id"] == victim.node_id]
            self.cluster.remove_node(victim, allow_graceful=False)
            self.workers.remove(victim)
            self.workers.append(self.cluster.add_node(**self.node_args))  # the replacement a supervisor starts
            self.check_loopback()
            return {"target": f"node {victim.node_id[:12]}", "replaced": replaced}
        raise ValueError(f"fault: unknown kind {kind!r}; choose from {list(KINDS)}")

    def post_kpis(self) -> list[tuple[int, str, float]]:
        """One record per shard (its first cell, first active slice), a value never used before; returns the
        acknowledged ones (200)."""
        import requests

        records = []
        for info in self.call("shard_info"):
            cell = int(info["lo"])
            snssai = self.call("allocation", cell)["slices"][0]["snssai"]
            self.kpi_value += 1.0
            records.append({"cell_id": str(cell), "snssai": snssai, "users": self.kpi_value, "cqi": 9.0,
                            "prb_util": 0.3, "throughput_mbps": 2.0, "delay_ms": 15.0})
        try:
            r = requests.post(self.base + "/v1/kpis", json={"records": records}, timeout=REQUEST_TIMEOUT_S,
                              headers={"Authorization": f"Bearer {self.token}"})
            self.kpi_posts[str(r.status_code)] += 1
        except requests.RequestException as err:
            self.kpi_posts[type(err).__name__] += 1
            return []
        if r.status_code != 200:
            self.log(f"POST /v1/kpis: {r.status_code} {r.text[:200]}")
            return []
        return [(int(r_["cell_id"]), r_["snssai"], r_["users"]) for r_ in records]

    def kpis_lost(self, acked: list[tuple[int, str, float]], replaced: list[int]) -> int:
        """How many acknowledged records the shards no longer hold, read once the shards the fault killed have been
        replaced (a removed node's worker processes can linger a moment: the read must come from the successors)."""
        deadline = time.monotonic() + RECOVERY_LIMIT_S
        while set(replaced) & {i["pid"] for i in self.call("shard_info")}:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the killed shards were not replaced within {RECOVERY_LIMIT_S:g} s")
            time.sleep(0.2)
        return sum(users not in self.call("history_of", cell, snssai)["users"] for cell, snssai, users in acked)

    def recover(self, t_fault: float, period_before: int) -> float:
        """Seconds from the fault until the population has run a period after it, every shard's cells answer 200
        over HTTP from that period, and the Serve app runs all its replicas again."""
        import requests

        probes = [int(i["lo"]) for i in self.call("shard_info")]
        session = requests.Session()
        while time.monotonic() - t_fault < RECOVERY_LIMIT_S:
            ok = self.replicas_back()
            for cell in probes if ok else []:
                try:
                    r = session.get(f"{self.base}/v1/cells/{cell}/allocation", timeout=REQUEST_TIMEOUT_S)
                    ok = r.status_code == 200 and r.json()["period"] > period_before
                except (requests.RequestException, ValueError, KeyError):
                    ok = False
                if not ok:
                    break
            if ok:
                return time.monotonic() - t_fault
            time.sleep(0.2)
        raise TimeoutError(f"no recovery within {RECOVERY_LIMIT_S:g} s")

    # -- the run ---------------------------------------------------------------------------------------------
    def run(self, faults: int, rps: float, gap_s: float) -> dict:
        plan = fault_plan(faults, self.seed)
        load = Load(self.base, self.cells, rps, self.seed)
        t0 = time.monotonic()
        period_start = self.call("period")
        load.start()
        done: list[dict] = []
        lost = acked_total = 0
        worst_unallocated = 0
        try:
            time.sleep(gap_s)
            for n, kind in enumerate(plan, 1):
                period_before = self.call("period")
                acked = self.post_kpis()
                t_fault = time.monotonic()
                detail = self.inject(kind)
                lost_now = self.kpis_lost(acked, detail.pop("replaced"))
                recovery = self.recover(t_fault, period_before)
                bad = unallocated(self.call("allocations"))
                worst_unallocated = max(worst_unallocated, bad)
                lost, acked_total = lost + lost_now, acked_total + len(acked)
                done.append({"kind": kind, "at_s": round(t_fault - t0, 2), "recovery_s": round(recovery, 2),
                             "kpis_acked": len(acked), "kpis_lost": lost_now, "cells_unallocated": bad} | detail)
                self.log(f"fault {n}/{len(plan)} {kind} ({detail['target']}): recovered in {recovery:.1f} s, "
                         f"{len(acked)} KPI records acked, {lost_now} lost, {bad} cells unallocated")
                time.sleep(gap_s)
        finally:
            load.stop.set()
            load.join(REQUEST_TIMEOUT_S + 5)
        worst_unallocated = max(worst_unallocated, unallocated(self.call("allocations")))
        answers = list(load.log)
        statuses = Counter(str(a[2]) for a in answers)
        failed = [a for a in answers if not (a[2] == 200 or (a[2] == 503 and a[3]))]
        seconds = [a[4] for a in answers]
        ok_seconds = [a[4] for a in answers if a[2] == 200]
        return {
            "faults": len(done), "periods": self.call("period") - period_start,
            "cells_unallocated": worst_unallocated, "kpis_acked_lost": lost,
            "requests": len(answers), "failed_requests": len(failed),
            "p99_ms": round(float(np.percentile(seconds, 99)) * 1000, 1) if seconds else None,
            "max_recovery_s": max((f["recovery_s"] for f in done), default=0.0),
            "p99_ok_ms": round(float(np.percentile(ok_seconds, 99)) * 1000, 1) if ok_seconds else None,
            "max_ms": round(max(seconds) * 1000, 1) if seconds else None,
            "kpis_acked": acked_total, "kpi_posts": dict(self.kpi_posts), "statuses": dict(statuses),
            "failed_examples": [{"path": a[1], "status": str(a[2])} for a in failed[:5]],
            "fault_log": done, "cells": self.cells, "shards": self.shards, "period_s": self.period_s,
            "rps": rps, "seed": self.seed, "front": self.front, "wall_s": round(time.monotonic() - t0, 1),
        }


def bench_chaos(cells: int = 36, shards: int = 3, faults: int = 8, seed: int = 0, rps: float = 20.0,
                period_s: float = 2.0, gap_s: float = 3.0, front: str = "nginx", log: Log = print) -> dict:
    """Start the cluster and the service, run ``faults`` faults under ``rps`` requests/s, tear down; the JSON."""
    chaos = Chaos(cells, shards, period_s, seed, log, front)
    try:
        chaos.start()
        return chaos.run(faults, rps, gap_s)
    finally:
        chaos.stop()
