"""A real multi-node run on one machine: head + 2 worker nodes (``ray.cluster_utils.Cluster``, all on 127.0.0.1).

``run_multinode()`` starts the cluster, connects to it, runs a sharded IDLA population with checkpoints (shards
spread over the nodes), removes (kills) a worker node that hosts a shard in the middle of the run, and keeps
running. Each period is compared with an undisturbed single-shard in-process run of the same scenario and seed.
At the end it ingests KPI records into the shards of the other worker, removes that node right after the
acknowledgement, and reads the records back from the restarted shards. It must run in a process without Ray
already initialised: ``python -m tests.runtime.multinode`` prints the result as one JSON line (used by
``tests/runtime/test_multinode.py``).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np

from slicing.config import Scenario, build_scenario
from slicing.models.qos_estimator import QosEstimator

_MB = 1024 * 1024
# Fast node-death detection: a killed raylet is declared dead after ~2 s instead of ~15 s.
_SYSTEM_CONFIG = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 500,
                  "health_check_timeout_ms": 1000, "health_check_failure_threshold": 4}


def small_scenario(sites: int = 12, seed: int = 3) -> Scenario:
    """The IDLA setting on ``sites`` sites; slice 3 joins at period 7 so a short run crosses the event."""
    return build_scenario({"name": "multinode", "seed": seed, "steps": 12, "topology": {"sites": sites},
                           "initial_slices": [1, 2, 4], "schedule": [{"at_fraction": 0.6, "add": [3]}]})


def tiny_estimator(scenario: Scenario, seed: int = 3, epochs: int = 5) -> QosEstimator:
    """A small estimator trained in about a second (deterministic given the seed)."""
    from slicing.models.qos_training import train_estimator
    from slicing.optim.rollout import collect

    cfg = scenario.estimator.model_copy(update={"epochs": epochs, "hidden": (16, 16)})
    samples = collect(scenario, 60, 0.5, True, seed)
    model, _ = train_estimator(samples.features(), samples.targets(), cfg, seed=seed)
    return model


def reference_run(scenario: Scenario, model: QosEstimator | None, periods: int,
                  scheme: str = "idla") -> list[tuple[np.ndarray, dict]]:
    """Undisturbed single-shard in-process run: per period (allocation [N, S] after it, KPI arrays)."""
    from slicing.runtime.population import Population

    pop = Population(scenario, 1, scheme, model, in_process=True)
    out = []
    for _ in range(periods):
        kpis = pop.run_period(kpis=True)["kpis"]
        out.append((pop.allocations_array(), kpis))
    return out


def _all_allocated(alloc: np.ndarray, mask: np.ndarray) -> bool:
    """Every cell has finite shares, and a positive budget on its active slices."""
    return bool(np.isfinite(alloc).all() and ((np.where(mask, alloc, 0).sum(axis=1) > 0) | ~mask.any(axis=1)).all())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _acked_kpis_survive_node_loss(cluster, pop, workers, node_args: dict) -> dict:
    """Ingest KPI records into the shards of a worker node, remove that node right after the acknowledgement
    (a spare node joins first, so the shards have somewhere to restart), and read the records back."""
    import ray

    cluster.add_node(**node_args)
    cluster.wait_for_nodes()
    infos = pop.shard_info()
    victim = next((w for w in workers if w.node_id in {i["node_id"] for i in infos}), None)
    if victim is None:
        return {"kpis_acked": 0, "kpis_found_after_node_loss": 0}
    shards = [k for k, i in enumerate(infos) if i["node_id"] == victim.node_id]
    targets = [(infos[k]["lo"], pop.allocation(infos[k]["lo"])["slices"][0]["snssai"]) for k in shards]
    records = [{"cell_id": c, "snssai": sn, "users": 321.0 + c, "cqi": 13.5, "prb_util": 0.4,
                "throughput_mbps": 1.0, "delay_ms": 20.0} for c, sn in targets]
    acked = pop.ingest(records)  # what POST /v1/kpis answers 200 for
    cluster.remove_node(victim, allow_graceful=False)
    deadline = time.perf_counter() + 90
    while time.perf_counter() < deadline:  # declared dead, and its shards answering from another node
        dead = not any(n["NodeID"] == victim.node_id and n["Alive"] for n in ray.nodes())
        if dead and all(pop.shard_info()[k]["node_id"] != victim.node_id for k in shards):
            break
        time.sleep(0.5)
    found = 0
    for k, (c, sn) in zip(shards, targets, strict=True):  # the calls wait for the restarted shards
        hist = ray.get(pop.shards[k].history_of.remote(c, sn), timeout=120)
        found += hist["users"][-1] == 321.0 + c and hist["cqi"][-1] == 13.5
    restarted = [i["node_id"] for i in pop.shard_info()]
    return {"kpis_acked": acked, "kpis_found_after_node_loss": int(found),
            "kpi_shards_moved": all(restarted[k] != victim.node_id for k in shards)}


def run_multinode(periods: int = 8, remove_after: int = 3, shards: int = 3, sites: int = 12, seed: int = 3) -> dict:
    # Every node, and the driver, on the loopback address: Ray then takes 127.0.0.1 as the node IP (it would
    # otherwise resolve 127.0.0.1 to the host's interface address). Inherited by the node processes.
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray
    from ray.cluster_utils import Cluster

    from slicing.runtime.population import Population

    if ray.is_initialized():
        raise RuntimeError("run_multinode needs a process without Ray initialised (it starts its own cluster)")
    t_start = time.perf_counter()
    scenario = small_scenario(sites, seed)
    model = tiny_estimator(scenario, seed)
    ref = reference_run(scenario, model, periods)
    storage = tempfile.mkdtemp(prefix="slicing-multinode-")
    node_args = {"num_cpus": 1, "object_store_memory": 80 * _MB}
    cluster = Cluster(initialize_head=True, head_node_args={
        **node_args, "include_dashboard": False, "_system_config": _SYSTEM_CONFIG})
    workers = [cluster.add_node(**node_args) for _ in range(2)]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    result: dict = {"nodes": len(ray.nodes()), "periods": []}
    try:
        pop = Population(scenario, shards, "idla", model, storage, num_cpus_per_shard=0.5)
        before = [i["node_id"] for i in pop.shard_info()]
        result["shard_nodes_before"] = before
        result["nodes_used_before"] = len(set(before))
        pids: list[int] = []
        for t in range(periods):
            if t == remove_after:
                victim = next(w for w in workers if w.node_id in before)
                result["removed_node"] = victim.node_id
                result["shards_on_removed_node"] = before.count(victim.node_id)
                pids = [i["pid"] for i in pop.shard_info() if i["node_id"] == victim.node_id]
                t0 = time.perf_counter()
                cluster.remove_node(victim, allow_graceful=False)
                while any(n["NodeID"] == victim.node_id and n["Alive"] for n in ray.nodes()):
                    if time.perf_counter() - t0 > 60:
                        raise TimeoutError("the removed node was not declared dead within 60 s")
                    time.sleep(0.2)
                result["node_dead_after_s"] = round(time.perf_counter() - t0, 2)
            r = pop.run_period(kpis=True)
            alloc = pop.allocations_array()
            ref_alloc, ref_kpis = ref[t]
            kpis_match = r["kpis"] is not None and all(np.array_equal(r["kpis"][k], ref_kpis[k]) for k in ref_kpis)
            result["periods"].append({
                "period": r["period"], "round_s": round(r["round_s"], 3), "fallback_cells": r["fallback_cells"],
                "all_allocated": _all_allocated(alloc, ref_kpis["mask"]) and alloc.shape == ref_alloc.shape,
                "allocation_match": bool(np.array_equal(alloc, ref_alloc)), "kpis_match": bool(kpis_match),
            })
        deadline = time.perf_counter() + 30  # the victim's worker processes exit once they miss their raylet
        while any(_alive(p) for p in pids) and time.perf_counter() < deadline:
            time.sleep(0.2)
        result["victim_pids_alive"] = [_alive(p) for p in pids]
        after = pop.shard_info()
        result["shard_nodes_after"] = [i["node_id"] for i in after]
        result["restored_shards"] = sum(bool(i["restored"]) for i in after)
        result["alive_nodes"] = sum(bool(n["Alive"]) for n in ray.nodes())
        result |= _acked_kpis_survive_node_loss(cluster, pop, [w for w in workers if w is not victim], node_args)
        pop.shutdown()
    finally:
        ray.shutdown()
        cluster.shutdown()
        shutil.rmtree(storage, ignore_errors=True)
    result["seconds"] = round(time.perf_counter() - t_start, 1)
    return result


if __name__ == "__main__":
    print(json.dumps(run_multinode()), flush=True)
    sys.exit(0)
