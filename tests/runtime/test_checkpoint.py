"""Checkpoints: the store round trip, and a restarted driver or a killed shard continuing bit-identically."""

from __future__ import annotations

import time

import numpy as np
import pytest

from slicing.runtime.checkpoint import CheckpointMismatch, CheckpointStore, decode_state, encode_state
from slicing.runtime.population import Population
from tests.runtime.helpers import PERIODS, run_and_compare


def test_checkpoint_store_round_trip(tmp_path):
    state = {"a": np.arange(6.0).reshape(2, 3), "meta": {"period": 4, "version": None, "s": {"x": [1, 2]}},
             "h": {"count": np.array(3)}}
    for uri in (str(tmp_path / "plain"), (tmp_path / "uri").as_uri()):
        store = CheckpointStore(uri)
        assert store.load("shard-x") is None
        store.save("shard-x", state)
        back = store.load("shard-x")
        assert np.array_equal(back["a"], state["a"]) and back["meta"] == state["meta"]
        assert int(back["h"]["count"]) == 3
    assert sorted(p.name for p in (tmp_path / "plain").iterdir()) == ["shard-x"]  # no temp file left behind
    assert decode_state(encode_state({"k": np.zeros(2, np.float32)}))["k"].dtype == np.float32


def test_unknown_storage_scheme_is_rejected():
    with pytest.raises(ValueError, match="storage"):
        CheckpointStore("not-a-scheme://x/y")


def test_restart_from_checkpoint_continues_identically(tmp_path, scenario, model, reference):
    first = Population(scenario, 2, "idla", model, str(tmp_path), in_process=True)
    run_and_compare(first, reference, 0, 5, "before restart")
    again = Population(scenario, 2, "idla", model, str(tmp_path), in_process=True)  # a new driver, same storage
    assert again.period() == 5 and all(i["restored"] for i in again.shard_info())
    assert np.array_equal(again.allocations_array(), first.allocations_array())
    run_and_compare(again, reference, 5, PERIODS, "after restart")
    with pytest.raises(CheckpointMismatch, match="scheme"):
        Population(scenario, 2, "traffic", None, str(tmp_path), in_process=True)


@pytest.mark.parametrize("cut", ["step reached shard 0 only", "allocate reached shard 0 only", "step done"])
def test_a_driver_killed_mid_round_is_finished_by_the_next_one(tmp_path, scenario, model, reference, cut):
    """The population actor died during a round: some shards stepped (or allocated) and checkpointed, the others
    not. A new driver on the same storage finishes that round as it would have run, then goes on bit-identically."""
    first = Population(scenario, 3, "idla", model, str(tmp_path), in_process=True)
    run_and_compare(first, reference, 0, 5, "before the crash")
    util = np.zeros(scenario.cells)  # what run_period does for round 5, cut short by the crash
    for shard, ex in zip(first.shards, first._export, strict=True):
        util[ex] = shard.cell_util(ex)
    reached = first.shards[:1] if cut == "step reached shard 0 only" else first.shards
    for k, shard in enumerate(first.shards):
        if shard in reached:
            shard.step(5, util[first._halo[k]])
    if cut == "allocate reached shard 0 only":
        first.shards[0].allocate(6, first._estimator)
    again = Population(scenario, 3, "idla", model, str(tmp_path), in_process=True)  # the restarted driver
    assert again.period() == 6 and {(i["period"], i["alloc_period"]) for i in again.shard_info()} == {(6, 6)}
    assert np.array_equal(again.allocations_array(), reference[5][0])  # round 5 as the undisturbed run ended it
    run_and_compare(again, reference, 6, PERIODS, f"after the crash ({cut})")


def test_checkpoints_from_rounds_apart_are_refused(tmp_path, scenario, model):
    first = Population(scenario, 2, "idla", model, str(tmp_path), in_process=True)
    for _ in range(3):
        first.run_period()
    stale = CheckpointStore(str(tmp_path)).load(first.shards[0].name)
    first.run_period()
    first.run_period()
    CheckpointStore(str(tmp_path)).save(first.shards[0].name, stale)  # shard 0 two rounds behind shard 1
    with pytest.raises(RuntimeError, match="different rounds"):
        Population(scenario, 2, "idla", model, str(tmp_path), in_process=True)


def test_killed_shard_restores_and_run_continues(ray_session, tmp_path, scenario, model, reference):
    import ray

    with Population(scenario, 2, "idla", model, str(tmp_path)) as pop:
        run_and_compare(pop, reference, 0, 3, "before kill")
        pid = pop.shard_info()[0]["pid"]
        ray.kill(pop.shards[0], no_restart=False)
        run_and_compare(pop, reference, 3, PERIODS, "after kill")
        info = pop.shard_info()[0]
        assert info["restored"] and info["pid"] != pid and info["reloads"] == 1


def test_acknowledged_kpis_survive_the_loss_of_their_shard(ray_session, tmp_path, scenario, model):
    """POST /v1/kpis answers after Population.ingest returns: by then the records are in the shard's checkpoint."""
    import ray

    with Population(scenario, 2, "idla", model, str(tmp_path)) as pop:
        for _ in range(3):
            pop.run_period()
        cells = [1, 2, 30]  # two in the first shard (cells 0-17), one in the second
        slices = [pop.allocation(c)["slices"][0]["snssai"] for c in cells]
        records = [{"cell_id": c, "snssai": s, "users": 123.0 + c, "cqi": 14.5, "prb_util": 0.5,
                    "throughput_mbps": 1.0, "delay_ms": 10.0} for c, s in zip(cells, slices, strict=True)]
        pids = [i["pid"] for i in pop.shard_info()]
        assert pop.ingest(records) == 3
        for k in range(2):  # kill both shards right after the acknowledgement
            ray.kill(pop.shards[k], no_restart=False)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # ray.kill is asynchronous: wait for the new incarnations
            infos = pop.shard_info()
            if all(i["pid"] != p for i, p in zip(infos, pids, strict=True)):
                break
            time.sleep(0.2)
        assert all(i["restored"] and i["pid"] != p for i, p in zip(infos, pids, strict=True)), infos
        for c, s in zip(cells, slices, strict=True):
            k = pop.shard_of(c)
            hist = ray.get(pop.shards[k].history_of.remote(c, s))
            assert hist["users"][-1] == 123.0 + c and hist["cqi"][-1] == 14.5, hist
