"""Checkpoints: the store round trip, and a restarted driver or a killed shard continuing bit-identically."""

from __future__ import annotations

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


def test_killed_shard_restores_and_run_continues(ray_session, tmp_path, scenario, model, reference):
    import ray

    with Population(scenario, 2, "idla", model, str(tmp_path)) as pop:
        run_and_compare(pop, reference, 0, 3, "before kill")
        pid = pop.shard_info()[0]["pid"]
        ray.kill(pop.shards[0], no_restart=False)
        run_and_compare(pop, reference, 3, PERIODS, "after kill")
        info = pop.shard_info()[0]
        assert info["restored"] and info["pid"] != pid and info["reloads"] == 1
