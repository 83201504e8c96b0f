"""The transfer service (slicing/runtime/transfer_actor.py): its registry, ranking and errors in-process, then the
named Ray actor with real transfers (RLlib SAC, tiny budgets), and `slicing transfer` reaching it."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import ray
from typer.testing import CliRunner

from slicing.cli import app
from slicing.config import load_scenario
from slicing.errors import FieldError
from slicing.rl.transfer import pretrain_source
from slicing.runtime.transfer_actor import (
    TransferError,
    TransferService,
    get_transfer_actor,
    parse_cells,
    start_transfer_actor,
    stop_transfer_actor,
)

# ------------------------------------------------------------------------------ in-process service


@pytest.fixture(scope="module")
def scenario():
    return load_scenario("scenarios/idla.yaml")


@pytest.fixture()
def service(scenario, tmp_path):
    svc = TransferService(scenario, tmp_path / "registry", episodes=1, episode_len=12, seed=1, vae_epochs=15)
    for name, cells in (("A", "0-2"), ("B", "3-5"), ("C", "6-8")):
        ckpt = tmp_path / f"ckpt_{name}"
        ckpt.mkdir()
        svc.register(name, cells, str(ckpt))
    return svc


def test_parse_cells():
    assert parse_cells("0-2,5,4", 12) == [0, 1, 2, 4, 5]
    assert parse_cells([3, 1, 3], 12) == [1, 3]
    for bad, rule in (("2-0", "empty"), ("x", "not an id"), ("10-12", "outside"), ("", "at least one")):
        with pytest.raises(TransferError, match=rule) as err:
            parse_cells(bad, 12)
        assert err.value.path == ("cells",) and str(err.value).startswith("cells: ")
    with pytest.raises(TransferError) as err:
        parse_cells("x", 12, "target_cells")
    assert err.value.path == ("target_cells",) and err.value.message == "'x' is not an id or a range like 0-5"


def test_transfer_error_is_a_field_error_that_pickles():
    err = TransferError(("source",), "unknown agent 'Z'; registered: []")
    assert isinstance(err, FieldError) and isinstance(err, ValueError)
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is TransferError and back.path == ("source",) and str(back) == str(err)
    assert back.detail("body") == {"path": "body.source", "msg": "unknown agent 'Z'; registered: []",
                                   "type": "value_error"}
    plain = TransferError("agent 'Z': no default-action samples (register it again)")  # a rule about no field
    assert plain.path == () and str(plain) == plain.message and plain.detail()["path"] == "body"


def test_registry_persists_and_reloads(service, scenario):
    names = [a["name"] for a in service.agents()]
    assert names == ["A", "B", "C"]
    a = service.agent("A")
    assert a["cells"] == [0, 1, 2] and a["status"] == "ready" and a["samples"]["count"] == 3 * 12
    assert a["obs_dim"] == 5 * len(scenario.slices)
    raw = json.loads(service.registry_file.read_text())
    assert [d["name"] for d in raw["agents"]] == ["A", "B", "C"]
    again = TransferService(scenario, service.root, episodes=1, episode_len=12, seed=1, vae_epochs=15)
    assert again.agents() == service.agents()
    again.unregister("B")
    assert [a["name"] for a in TransferService(scenario, service.root).agents()] == ["A", "C"]


def test_ranking_puts_the_source_with_the_targets_cells_first(service):
    ranking = service.rank_sources("new", "0-2")
    assert ranking[0]["source"] == "A"
    assert ranking[0]["distance"] == pytest.approx(0.0, abs=1e-9)  # same cells, same days: identical samples
    assert all(r["distance"] > 1e-6 for r in ranking[1:])
    assert [r["distance"] for r in ranking] == sorted(r["distance"] for r in ranking)
    kl = service.rank_sources("new", "0-2", method="kl")
    assert kl[0]["source"] == "A"


def test_errors_name_the_field(service, tmp_path):
    cases = [
        (lambda: service.register("A", "0-1", str(tmp_path)), ("name",), "^name: agent 'A' is already registered"),
        (lambda: service.register("bad name", "0-1", str(tmp_path)), ("name",), "^name: .* must be 1-64"),
        (lambda: service.register("D", "0-1", str(tmp_path / "missing")), ("checkpoint",),
         "^checkpoint: .* is not a folder"),
        (lambda: service.rank_sources("new", "0-2", sources=["Z"]), ("source",), "^source: unknown agent 'Z'"),
        (lambda: service.rank_sources("nobody"), ("target",), "^target: 'nobody' is not registered"),
        (lambda: service.transfer("new", "0-2", strategy="magic"), ("strategy",), "^strategy: 'magic'"),
        (lambda: service.transfer("new", "0-2", source="A", strategy="integrated"), ("strategy",),
         "^strategy: 'integrated' needs the source's transitions"),
        (lambda: service.transfer("new", "0-99", strategy="model"), ("cells",), "^cells: ids"),
        (lambda: service.transfer("new", "0-2", strategy="model", iterations=0), ("iterations",),
         "^iterations: 0 must be in"),
        (lambda: service.agent("Q"), ("agent",), "^agent: unknown agent 'Q'"),
    ]
    for call, path, pattern in cases:
        with pytest.raises(TransferError, match=pattern) as err:
            call()
        assert err.value.path == path, pattern
    assert [a["name"] for a in service.agents()] == ["A", "B", "C"]  # nothing half-registered


# ------------------------------------------------------------------------------------- the actor

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
