"""The transfer service's registry and ranking in-process (slicing/runtime/transfer_actor.py); the actor, the CLI
and the HTTP endpoints with real transfers are in tests/test_transfer_actor.py."""

from __future__ import annotations

import json
import pickle

import pytest

from slicing.config import load_scenario
from slicing.errors import FieldError
from slicing.runtime.transfer_actor import TransferError, TransferService, parse_cells


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
