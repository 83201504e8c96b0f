"""The TransferService as the named Ray actor with real transfers (RLlib SAC, tiny budgets), and `slicing transfer`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import ray
from typer.testing import CliRunner

from slicing.cli import app
from slicing.config import load_scenario
from slicing.rl.transfer import pretrain_source
from slicing.runtime.transfer_actor import (
    get_transfer_actor,
    start_transfer_actor,
    stop_transfer_actor,
)

EPISODE = 8


@pytest.fixture(scope="module")
def actor(ray_session, tmp_path_factory):
    sc = load_scenario("scenarios/idla.yaml")
    root = tmp_path_factory.mktemp("transfer")
    src = pretrain_source(sc, [0, 1, 2], root / "src_A", iterations=1, episode_len=EPISODE, hidden=(16,))
    handle = start_transfer_actor(sc, root / "registry", episodes=1, episode_len=EPISODE, iterations=1,
                                  vae_epochs=10)
    ray.get(handle.register.remote("A", "0-2", src["checkpoint"], src["transitions"]))
    ray.get(handle.register.remote("B", "6-8", src["checkpoint"], src["transitions"]))
    yield {"handle": handle, "root": root, "src": src}
    stop_transfer_actor()


def test_actor_is_named_and_transfers_from_the_nearest(actor):
    assert get_transfer_actor()._actor_id == actor["handle"]._actor_id
    out = ray.get(actor["handle"].transfer.remote("T", "0-2", None, "integrated", 1, "mean", True))
    assert out["source"] == "A" and out["ranking"][0]["source"] == "A"  # the source on the target's cells
    rec = out["agent"]
    assert rec["status"] == "ready", rec["error"]
    assert rec["source"] == "A" and rec["strategy"] == "integrated" and rec["cells"] == [0, 1, 2]
    assert 0 <= rec["early_reward"] <= 1 and (actor["root"] / "registry" / "agents" / "T").is_dir()
    names = [a["name"] for a in ray.get(actor["handle"].agents.remote())]
    assert names == ["A", "B", "T"]


def test_bad_input_crosses_ray_as_a_transfer_error_with_its_path(actor):
    from slicing.runtime.ray_util import unwrap
    from slicing.runtime.transfer_actor import TransferError

    with pytest.raises(ray.exceptions.RayTaskError) as err:
        ray.get(actor["handle"].transfer.remote("W", [0, 10**6], None, "model", 1, "mean", True))
    cause = unwrap(err.value, TransferError)
    assert type(cause) is TransferError and cause.path == ("cells",) and cause.message.startswith("ids [1000000]")


def test_background_transfer_reports_training_then_ready(actor):
    h = actor["handle"]
    out = ray.get(h.transfer.remote("U", "6-8", "B", "model", 1, "mean", False))
    assert out["agent"]["status"] == "training"
    rec = ray.get(h.wait.remote("U", 600))
    assert rec["status"] == "ready" and rec["source"] == "B"


def test_cli_transfer_reaches_the_running_actor(actor):
    res = CliRunner().invoke(app, ["transfer", "--target", "3-5", "--name", "V", "--strategy", "feature",
                                   "--iterations", "1", "--scenario", "scenarios/idla.yaml",
                                   "--registry", str(actor["root"] / "registry"), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["target"] == "V" and out["strategy"] == "feature"
    assert {r["source"] for r in out["ranking"]} >= {"A", "B"}
    assert np.isfinite(out["early_reward"])
    bad = CliRunner().invoke(app, ["transfer", "--target", "3-5", "--source", "nobody", "--registry",
                                   str(actor["root"] / "registry"), "--scenario", "scenarios/idla.yaml"])
    assert bad.exit_code == 2 and "unknown agent 'nobody'" in bad.output
