"""Training as Ray jobs on an existing cluster: a real head (`ray start --head` on 127.0.0.1, its dashboard and job
server on 127.0.0.1), jobs submitted with Ray's ``JobSubmissionClient`` (issue 12, item 4).

The head runs ``ray start --block`` in its own process group, with Ray's token authentication on and a token of its
own (the job client sends it); the fixture stops exactly that group (never
``ray stop``, which would stop every Ray on the machine). The jobs upload this repository as their working
directory (without .venv, out/, .git) and run ``slicing train-rl`` in it: RAY_ADDRESS, set by Ray in a job's driver,
makes the command join the cluster instead of starting its own Ray.
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

from slicing.serve.runner import free_port

ROOT = Path(__file__).resolve().parents[2]
EXCLUDES = [".venv", "out", ".git", ".pytest_cache", "**/__pycache__", "*.pt"]
TRAIN = "slicing train-rl --scenario scenarios/idla.yaml --cells 6 --episode-len 16 --algo ppo"


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    from ray.job_submission import JobSubmissionClient

    tmp = tmp_path_factory.mktemp("head")
    gcs, dash = free_port(), free_port()
    bin_dir = Path(sys.executable).parent
    token = secrets.token_hex(16)  # Ray 2.60's token authentication, with this head's own token
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
           "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
    env.pop("RAY_ADDRESS", None)
    env.pop("RAY_AUTH_TOKEN_PATH", None)
    log = open(tmp / "head.log", "w")  # noqa: SIM115 - the head writes to it for the whole module
    proc = subprocess.Popen(
        [str(bin_dir / "ray"), "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={gcs}",
         "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}", "--include-dashboard=true", "--num-cpus=2",
         f"--ray-client-server-port={free_port()}", f"--dashboard-agent-listen-port={free_port()}",
         f"--temp-dir={tmp / 'ray'}"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{dash}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                client = JobSubmissionClient(url, headers={"Authorization": f"Bearer {token}"})
                client.list_jobs()
                break
            except Exception:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the head did not start: {(tmp / 'head.log').read_text()[-2000:]}") from None
                time.sleep(1.0)
        yield {"client": client, "url": url, "tmp": tmp, "gcs": f"127.0.0.1:{gcs}"}
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)  # the group this fixture started: the head and what it spawned
            proc.wait(60)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def _wait(client, job: str, states: set[str], timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        status = str(client.get_job_status(job).value)
        if status in states:
            return status
        assert time.monotonic() < deadline, f"job {job} still {status}: {client.get_job_logs(job)[-3000:]}"
        time.sleep(1.0)


def test_every_node_of_the_head_is_on_loopback(head) -> None:
    client = head["client"]
    code = ("import ray, json; ray.init(); "
            "print('NODES', json.dumps(sorted({n['NodeManagerAddress'] for n in ray.nodes()})))")
    job = client.submit_job(entrypoint=f'python -c "{code}"')
    assert _wait(client, job, {"SUCCEEDED", "FAILED"}, 120) == "SUCCEEDED", client.get_job_logs(job)[-2000:]
    line = next(ln for ln in client.get_job_logs(job).splitlines() if ln.startswith("NODES"))
    assert json.loads(line.split(" ", 1)[1]) == ["127.0.0.1"]


def test_a_training_job_succeeds_leaves_a_checkpoint_and_its_logs_and_another_can_be_stopped(head) -> None:
    client, tmp = head["client"], head["tmp"]
    out = tmp / "job-rl"
    runtime_env = {"working_dir": str(ROOT), "excludes": EXCLUDES}
    job = client.submit_job(entrypoint=f"{TRAIN} --iterations 1 --num-env-runners 1 --out {out} --json",
                            runtime_env=runtime_env)
    assert _wait(client, job, {"SUCCEEDED", "FAILED", "STOPPED"}, 400) == "SUCCEEDED", client.get_job_logs(job)[-3000:]
    logs = client.get_job_logs(job)
    summary = json.loads(next(ln for ln in reversed(logs.splitlines()) if ln.startswith("{")))
    assert summary["iterations"] == 1 and Path(summary["checkpoint"]) == out / "checkpoint"
    assert (out / "checkpoint" / "learner_group").is_dir()  # left on the cluster's (here: this machine's) disk
    from slicing.rl.inference import RlPolicy

    assert RlPolicy.from_checkpoint(out / "checkpoint").n_slices == 4

    long = client.submit_job(entrypoint=f"{TRAIN} --iterations 100000 --out {tmp / 'job-long'}",
                             runtime_env=runtime_env)
    _wait(client, long, {"RUNNING"}, 120)
    assert client.stop_job(long)
    assert _wait(client, long, {"STOPPED", "FAILED", "SUCCEEDED"}, 120) == "STOPPED"
