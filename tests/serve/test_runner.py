"""The local runner of `slicing serve` (slicing/serve/runner.py) without starting Ray: the scenario it serves, its
arguments, the replica's environment, and the readiness poll against a stand-in HTTP server. (The whole
``LocalService`` runs in tests/bench/test_serve.py, as `slicing bench serve` runs it.)"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from slicing.config import load_scenario
from slicing.serve.runner import LocalService, free_port, replica_env, scenario_for, wait_ready


def test_free_port_is_bindable_on_loopback():
    port = free_port()
    assert 1024 <= port <= 65535
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))  # still free: nothing holds it


def test_scenario_for_rounds_cells_up_to_whole_sites():
    assert scenario_for(None, None).cells == 300  # the default population
    assert scenario_for(100, None, seed=4).topology.sites == 34 and scenario_for(100, None, seed=4).seed == 4
    idla = load_scenario("scenarios/idla.yaml")
    assert scenario_for(None, idla) is idla  # a scenario without --cells is served as it is
    bigger = scenario_for(30, idla)
    assert bigger.cells == 30 and bigger.slices == idla.slices and bigger.schedule == idla.schedule


def test_local_service_arguments():
    svc = LocalService(host="0.0.0.0", port=8123, cells=30, shards=10, log=lambda m: None)
    assert svc.base_url == "http://127.0.0.1:8123"  # a wildcard bind is reached on loopback
    assert LocalService(host="127.0.0.2", port=80, cells=3).base_url == "http://127.0.0.2:80"
    for shards in (0, 11):
        with pytest.raises(ValueError, match=rf"--shards {shards}: must be in \[1, 10\]"):
            LocalService(cells=30, shards=shards)
    svc.stop()  # nothing started: nothing to stop, no Ray touched


def test_replica_env_passes_only_slicing_variables(monkeypatch):
    monkeypatch.setenv("SLICING_API_TOKEN", "t")
    monkeypatch.setenv("SLICING_SEED", "3")
    monkeypatch.setenv("NOT_SLICING_X", "1")
    env = replica_env()
    assert env["SLICING_API_TOKEN"] == "t" and env["SLICING_SEED"] == "3"
    assert all(k.startswith("SLICING_") for k in env)


class _Readyz(BaseHTTPRequestHandler):
    """/readyz answers 503 (with a JSON reason) until ``ready_after`` calls were made, then 200."""

    calls = 0
    ready_after = 3

    def do_GET(self) -> None:
        type(self).calls += 1
        ok = self.path == "/readyz" and type(self).calls >= self.ready_after
        body = json.dumps({"ready": ok, "detail": "ok" if ok else "estimator loading"}).encode()
        self.send_response(200 if ok else 503)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture()
def readyz() -> Iterator[str]:
    _Readyz.calls = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Readyz)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_wait_ready_polls_until_200_and_returns_the_body(readyz):
    assert wait_ready(readyz, timeout_s=20) == {"ready": True, "detail": "ok"}
    assert _Readyz.calls == 3  # two 503 answers, then ready


def test_wait_ready_times_out_with_the_last_answer(readyz):
    _Readyz.ready_after = 10**6
    try:
        with pytest.raises(TimeoutError, match=r"/readyz not ready after 1 s: .*estimator loading"):
            wait_ready(readyz, timeout_s=1)
    finally:
        _Readyz.ready_after = 3
    with pytest.raises(TimeoutError, match="not ready after 0.6 s"):  # nothing listening: the error is the answer
        wait_ready(f"http://127.0.0.1:{free_port()}", timeout_s=0.6)
