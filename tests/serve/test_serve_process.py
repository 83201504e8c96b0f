"""`slicing serve` as an operator runs it, in its own process (and its own local Ray on 127.0.0.1): SIGTERM drains and
exits 0 without a stack trace, and a restart on the same --storage resumes at the period it stopped with the model
that was active. Only the processes this test starts are signalled (by pid)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from slicing.serve.runner import free_port

SLICING = str(Path(sys.executable).parent / "slicing")


def _start(storage: Path, registry: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "SLICING_API_TOKEN": "serve-process-test"}
    return subprocess.Popen([SLICING, "serve", "--host", "127.0.0.1", "--port", str(port), "--cells", "30",
                             "--shards", "1", "--period-s", "1", "--storage", str(storage), "--registry",
                             str(registry)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _wait_ready(base: str, proc: subprocess.Popen, timeout_s: float = 240.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            r = requests.get(base + "/readyz", timeout=5)
            if r.status_code == 200:
                return r.json()
        except requests.RequestException:
            pass
        time.sleep(1.0)
    raise AssertionError("slicing serve did not get ready")


def _period(base: str) -> int:
    return requests.get(base + "/v1/allocations?limit=1", timeout=10).json()["period"]


def _stop(proc: subprocess.Popen) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"slicing serve did not stop on SIGTERM: {err[-2000:]}") from None
    return proc.returncode, out + err


def test_sigterm_drains_and_a_restart_resumes_where_it_stopped(tmp_path):
    storage, registry = tmp_path / "storage", tmp_path / "agents"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _start(storage, registry, port)
    try:
        ready = _wait_ready(base, proc)
        first = _period(base)
        deadline = time.monotonic() + 60
        while _period(base) < first + 2 and time.monotonic() < deadline:  # a period every second
            time.sleep(0.5)
        seen = _period(base)
        assert seen >= first + 2
    finally:
        code, output = _stop(proc)
    assert code == 0, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert "shutting down" in output
    assert any(storage.iterdir())  # the checkpoints

    proc = _start(storage, registry, port)
    try:
        again = _wait_ready(base, proc)
        resumed = _period(base)
        assert resumed >= seen  # not from period 0 again
        assert again["model_version"] == ready["model_version"]
    finally:
        code, output = _stop(proc)
    assert code == 0 and "Traceback" not in output, output[-3000:]
    assert f"resumed from {storage}" in " ".join(output.split())
