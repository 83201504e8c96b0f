"""A what-if study on an autoscaling cluster, for real on one machine (issue 12, item 3).

The head is ``RAY_FAKE_CLUSTER=1 ray start --head --block --autoscaling-config`` with ``cluster/fake_multinode.yaml``
(Ray's fake_multinode provider: the autoscaler starts each worker node as Ray processes on this host), no CPUs of
its own, everything on 127.0.0.1 (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``; the YAML's ``gcs_address`` is rewritten
to this head's free port). A watcher process records the alive nodes and their addresses every second. Then
``slicing whatif --address`` runs a study whose two runs ask for 2 CPUs and the ``study`` resource each: the
autoscaler must add worker nodes, the study must complete, and the idle workers must be removed.

The head runs in its own process group and the fixture stops exactly that group, which holds the nodes the
provider started (they are processes of the autoscaler's monitor); it never runs ``ray stop``, and
``ray.cluster_utils.AutoscalingCluster`` is not used (it runs ``ray stop --force``).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from slicing.serve.runner import free_port

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
WATCH = """
import json, sys, time, ray
ray.init(address=sys.argv[1], log_to_driver=False)
while True:
    alive = [n for n in ray.nodes() if n["Alive"]]
    print(json.dumps({"t": time.time(), "nodes": len(alive),
                      "ips": sorted({n["NodeManagerAddress"] for n in alive}),
                      "study": sum(n["Resources"].get("study", 0) for n in alive)}), flush=True)
    time.sleep(1.0)
"""
STUDY = {
    "name": "scale", "sites": 4, "periods": 10, "schemes": ["traffic"], "seeds": [0],
    "cpus_per_run": 2, "resources": {"study": 1}, "set": ["initial_slices=[1, 2, 4]"],
    "variants": [{"name": "busier", "events": [{"kind": "traffic", "all": 1.5}]}],
}


def _env(token: str) -> dict[str, str]:
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
           "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
    env.pop("RAY_ADDRESS", None)
    env.pop("RAY_AUTH_TOKEN_PATH", None)
    return env


def _stop_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)


def _group_members(pgid: int) -> list[int]:
    """Pids still in process group ``pgid`` (from /proc)."""
    left = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                if int((d / "stat").read_text().rsplit(")", 1)[1].split()[2]) == pgid:
                    left.append(int(d.name))
    return left


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("autoscale")
    gcs = free_port()
    config = yaml.safe_load((ROOT / "cluster" / "fake_multinode.yaml").read_text())
    config["provider"]["gcs_address"] = f"127.0.0.1:{gcs}"
    (tmp / "fake_multinode.yaml").write_text(yaml.safe_dump(config))
    token = secrets.token_hex(16)
    env = _env(token) | {"RAY_FAKE_CLUSTER": "1"}
    log = open(tmp / "head.log", "w")  # noqa: SIM115 - the head writes to it for the whole module
    head = subprocess.Popen(
        [str(BIN / "ray"), "start", "--head", "--block", "--node-ip-address=127.0.0.1",
         f"--port={gcs}", "--num-cpus=0", f"--autoscaling-config={tmp / 'fake_multinode.yaml'}",
         "--include-dashboard=false", f"--ray-client-server-port={free_port()}",
         f"--dashboard-agent-listen-port={free_port()}", f"--temp-dir={tmp / 'ray'}"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    watch_log = open(tmp / "watch.jsonl", "w")  # noqa: SIM115
    watcher = None
    try:
        address = f"127.0.0.1:{gcs}"
        deadline = time.monotonic() + 120
        while True:  # the watcher connects once the GCS answers
            watcher = subprocess.Popen([sys.executable, "-c", WATCH, address], env=_env(token), stdout=watch_log,
                                       stderr=subprocess.DEVNULL, start_new_session=True)
            time.sleep(3.0)
            if watcher.poll() is None and (tmp / "watch.jsonl").read_text().strip():
                break
            _stop_group(watcher)
            if head.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the head did not start: {(tmp / 'head.log').read_text()[-3000:]}")
        yield {"address": address, "tmp": tmp, "token": token, "watch": tmp / "watch.jsonl", "pgid": head.pid}
    finally:
        if watcher is not None:
            _stop_group(watcher)
        _stop_group(head)
        watch_log.close()
        log.close()
        # the worker nodes are processes of the autoscaler's monitor, in the head's group: nothing may outlive it
        deadline = time.monotonic() + 20
        while _group_members(head.pid) and time.monotonic() < deadline:
            time.sleep(0.5)
        left = _group_members(head.pid)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        assert not left, f"processes of the fake cluster outlived the head: {left}"


def _samples(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip().startswith("{")]


def _wait_for(path: Path, predicate, timeout_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        samples = _samples(path)
        if samples and predicate(samples[-1]):
            return samples[-1]
        time.sleep(1.0)
    raise AssertionError(f"not within {timeout_s} s; last samples: {_samples(path)[-3:]}")


def test_a_study_makes_the_autoscaler_add_workers_and_remove_them_after(cluster) -> None:
    watch = cluster["watch"]
    first = _samples(watch)[0]
    assert first["nodes"] == 1 and first["ips"] == ["127.0.0.1"] and first["study"] == 0  # the head alone
    study = cluster["tmp"] / "scale.yaml"
    study.write_text(yaml.safe_dump(STUDY))
    t0 = time.time()
    proc = subprocess.run([str(BIN / "slicing"), "whatif", str(study), "--address", cluster["address"],
                           "--out", str(cluster["tmp"] / "out"), "--json"],
                          env=_env(cluster["token"]), capture_output=True, text=True, timeout=420, cwd=ROOT)
    t1 = time.time()
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["runs"] == 2 and set(result["variants"]) == {"base", "busier"}
    assert result["variants"]["busier"]["delta_vs_base"]["p_satisfied"] < 0

    during = [s for s in _samples(watch) if t0 <= s["t"] <= t1]
    assert max(s["nodes"] for s in during) >= 2, during[-5:]  # workers were launched for the runs
    assert max(s["study"] for s in during) >= 2  # ... of the study type
    assert all(s["ips"] == ["127.0.0.1"] for s in _samples(watch))  # every node, every time, on loopback
    up = next(s["t"] for s in during if s["nodes"] >= 2)

    last = _wait_for(watch, lambda s: s["nodes"] == 1, timeout_s=180)  # the idle workers are removed
    print(f"autoscaling: first worker {up - t0:.1f} s after the study started; study {t1 - t0:.1f} s; back to the "
          f"head alone {last['t'] - t1:.1f} s after it ended (idle_timeout_minutes 0.1)")
    assert last["study"] == 0
