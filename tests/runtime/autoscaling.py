"""A real autoscaling Ray cluster on one machine, all on 127.0.0.1 (test harness, not a test module).

``fake_autoscaling_cluster(yaml_path, tmp_path, head_cpus=1)`` is a context manager that starts a Ray head with the
autoscaler driven by Ray's ``fake_multinode`` node provider (``cluster/fake_multinode.yaml``), yields a
``FakeAutoscalingCluster`` handle and, on exit (also on failure), stops every process it caused and nothing else::

    with fake_autoscaling_cluster(ROOT / "cluster" / "fake_multinode.yaml", tmp_path, head_cpus=1) as c:
        c.assert_loopback()                                 # every node registered with 127.0.0.1
        out = c.run_python(DRIVER_CODE, c.address, timeout=120)  # a driver: ray.init(address=sys.argv[1])
        c.wait_for(lambda: len(c.nodes()) == 1, timeout=90, what="idle workers removed")

How the pieces fit (read from ray 2.60, ``ray/autoscaler/_private/fake_multi_node/node_provider.py``):

- The head is ``ray start --head --block`` in a new session (its process group id is its pid). Its autoscaler
  monitor (``ray/autoscaler/_private/monitor.py``, a child of the head) loads ``FakeMultiNodeProvider``, which
  refuses to start without ``RAY_FAKE_CLUSTER`` in the environment.
- The provider starts a worker node *inside the monitor process*: ``ray._private.node.Node(ray_params,
  head=False, shutdown_at_exit=False, spawn_reaper=False)`` spawns the node's raylet (and its agents) as children
  of the monitor, so they stay in the head's process group; their command lines carry the head's temp dir (a
  worker node takes its temp and session dirs from the head's node info). ``terminate_node`` calls
  ``node.kill_all_processes()``. The node joins the GCS at ``provider.gcs_address`` (the provider falls back to
  ``<node ip>:6379`` without it), so the harness rewrites that key to this head's free port in a copy of the YAML.
- The IP of such a node comes from ``ray._private.services.get_node_ip_address()`` in the monitor process, which
  is ``127.0.0.1`` only when ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (otherwise the host's outbound interface
  address). The harness sets it for the head (the monitor inherits it) and checks every node the GCS knows.

Stopping: SIGTERM to the head's process group (the head, GCS, monitor, the provider's nodes and their agents), then
whatever of this cluster is left is killed by pid, re-checked as ours just before: still in that group, or naming
this cluster's own temp dir on its command line, or carrying this cluster's marker (``SLICING_FAKE_CLUSTER=<temp dir
name>``) in its environment. The marker is what finds Ray's worker processes: each raylet starts them in process
groups of their own and they rename themselves ``ray::...``. ``ray stop`` is never run (it stops every Ray on the
host) and ``ray.cluster_utils.AutoscalingCluster`` is not used (it runs ``ray stop --force``).

Other Ray instances on the host are not disturbed: free ports for the GCS, the Ray client server and the dashboard
agent, random ports for everything else, no dashboard, its own short temp dir under /tmp (unix socket paths must
stay under ~107 characters) and Ray's token authentication with a token of its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DEFAULT_YAML = ROOT / "cluster" / "fake_multinode.yaml"
LOOPBACK = "127.0.0.1"
_MARK = "@@"  # prefix of the probe's answer lines (Ray may print other lines on stdout)
MARKER_ENV = "SLICING_FAKE_CLUSTER"  # set to the cluster's temp dir name for every process it starts

# A driver that stays connected and answers each line on stdin with the nodes the GCS knows (ray.nodes()).
_PROBE = r"""
import json, sys, time
import ray
deadline = time.monotonic() + float(sys.argv[2])
while True:
    try:
        ray.init(address=sys.argv[1], log_to_driver=False, logging_level="WARNING")
        break
    except Exception as e:
        if time.monotonic() > deadline:
            raise
        print("probe: not connected yet:", repr(e)[:300], file=sys.stderr, flush=True)
        time.sleep(1.0)
print("@@" + json.dumps({"ready": True}), flush=True)
for _ in sys.stdin:
    try:
        nodes = [{"node_id": n["NodeID"], "ip": n["NodeManagerAddress"], "alive": bool(n["Alive"]),
                  "resources": n.get("Resources", {}), "labels": n.get("Labels", {}),
                  "is_head": bool(n.get("Resources", {}).get("node:__internal_head__"))} for n in ray.nodes()]
        print("@@" + json.dumps({"t": time.time(), "nodes": nodes}), flush=True)
    except Exception as e:
        print("@@" + json.dumps({"t": time.time(), "error": repr(e)}), flush=True)
ray.shutdown()
"""


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports nothing on this host uses now (bound together on 127.0.0.1, then released)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind((LOOPBACK, 0))
        return [int(s.getsockname()[1]) for s in socks]


def _proc_info(pid: int) -> tuple[int, str, str] | None:
    """(process group id, state, command line) of ``pid`` from /proc, or None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (OSError, ValueError):
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state, ppid, pgrp, ...
    return int(fields[2]), fields[0], cmdline


def _has_env(pid: int, entry: bytes) -> bool:
    """Whether the environment ``pid`` started with holds ``entry`` (b"NAME=value")."""
    try:
        return entry in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a running process (not gone, not a zombie)."""
    info = _proc_info(pid)
    return info is not None and info[1] not in ("Z", "X")


def _kill_group(proc: subprocess.Popen, grace_s: float) -> None:
    """SIGTERM the process group that ``proc`` leads (started with start_new_session=True), SIGKILL after grace."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)


def _tail(path: Path, n: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


@dataclass
class Sample:
    """One look at the cluster: the time (time.time()), every node the GCS knows (alive or dead) and, in the
    background samples, the raylet processes of this cluster then (pid -> node id)."""

    t: float
    nodes: list[dict[str, Any]]
    raylets: dict[int, str] = field(default_factory=dict)

    @property
    def alive(self) -> list[dict[str, Any]]:
        return [n for n in self.nodes if n["alive"]]


@dataclass
class FakeAutoscalingCluster:
    """Handle of a running fake autoscaling cluster (made by ``fake_autoscaling_cluster``)."""

    address: str  # "127.0.0.1:PORT": for ray.init(address=...) and for a CLI's --address
    tmp: Path  # the test's directory: the head's and the probe's logs, the rewritten YAML, Ray's logs at the end
    ray_tmp: Path  # Ray's --temp-dir (short, under /tmp; removed at exit)
    config_path: Path  # the YAML the autoscaler reads
    config: dict[str, Any]
    env: dict[str, str]  # the environment for drivers and CLIs that join this cluster (token, loopback)
    head: subprocess.Popen
    samples: list[Sample] = field(default_factory=list)  # recorded every ~second by a background thread
    _probe: subprocess.Popen | None = None
    _answers: queue.Queue = field(default_factory=queue.Queue)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _sampler: threading.Thread | None = None
    _seen: set[int] = field(default_factory=set)  # every pid of this cluster ever seen (for the final check)

    # ------------------------------------------------------------------ nodes

    def all_nodes(self, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Every node the GCS knows (``ray.nodes()`` in the probe driver): node_id, ip, alive, is_head,
        resources, labels."""
        return self._look(timeout).nodes

    def _look(self, timeout: float) -> Sample:
        """Ask the probe for ``ray.nodes()``; the answer is recorded in ``samples`` and returned."""
        with self._lock:
            if self._probe is None or self._probe.poll() is not None:
                raise RuntimeError(f"the probe driver is not running: {_tail(self.tmp / 'probe.log')}")
            assert self._probe.stdin is not None
            with contextlib.suppress(queue.Empty):
                while True:  # a late answer to an earlier call that timed out
                    if self._answers.get_nowait() is None:
                        raise RuntimeError(f"the probe driver exited: {_tail(self.tmp / 'probe.log')}")
            self._probe.stdin.write("nodes\n")
            self._probe.stdin.flush()
            deadline = time.monotonic() + timeout
            while True:
                try:
                    line = self._answers.get(timeout=max(0.1, deadline - time.monotonic()))
                except queue.Empty:
                    raise TimeoutError(f"ray.nodes() did not answer within {timeout} s") from None
                if line is None:
                    raise RuntimeError(f"the probe driver exited: {_tail(self.tmp / 'probe.log')}")
                answer = json.loads(line)
                if "error" in answer:
                    raise RuntimeError(f"ray.nodes() failed: {answer['error']}")
                sample = Sample(answer["t"], answer["nodes"])
                self.samples.append(sample)
                return sample

    def nodes(self) -> list[dict[str, Any]]:
        """The alive nodes (each with its ``ip``, the NodeManagerAddress it registered with)."""
        return [n for n in self.all_nodes() if n["alive"]]

    def assert_loopback(self) -> None:
        """Fail with a clear message unless every node the GCS knows, now and in every sample, is on 127.0.0.1."""
        self.all_nodes()
        bad = sorted({(n["node_id"], n["ip"]) for s in self.samples for n in s.nodes if n["ip"] != LOOPBACK})
        if bad:
            raise AssertionError(f"nodes registered with an address other than {LOOPBACK} (node id, address): {bad}; "
                                 "the fake provider's nodes take the monitor's get_node_ip_address(), which is the "
                                 "loopback address only with RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0")

    def wait_for(self, predicate: Callable[[], Any], timeout: float, interval: float = 1.0, what: str = "") -> Any:
        """Call ``predicate`` until it returns something truthy (returned) or ``timeout`` seconds pass
        (TimeoutError with the alive nodes). Fails at once if the head exits."""
        deadline = time.monotonic() + timeout
        while True:
            if self.head.poll() is not None:
                raise RuntimeError(f"the head exited ({self.head.returncode}): {_tail(self.tmp / 'head.log')}")
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                alive = [(n["node_id"][:8], n["ip"], n["resources"]) for n in self.nodes()]
                raise TimeoutError(f"not within {timeout} s: {what or predicate}; alive nodes: {alive}")
            time.sleep(interval)

    def first_sample(self, predicate: Callable[[Sample], bool], since: float = 0.0) -> Sample | None:
        """The first recorded sample at or after ``since`` (time.time()) that satisfies ``predicate``."""
        return next((s for s in list(self.samples) if s.t >= since and predicate(s)), None)

    # ------------------------------------------------------------------ drivers

    def run(self, args: list[str], timeout: float, **kwargs: Any) -> subprocess.CompletedProcess:
        """Run a command (a driver, a CLI with ``--address``) with this cluster's environment, in its own process
        group, killed (the whole group) after ``timeout`` seconds (then TimeoutError)."""
        proc = subprocess.Popen(args, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True, **kwargs)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc, 5)
            out, err = proc.communicate()
            raise TimeoutError(f"{args[:3]} did not finish within {timeout} s; stderr: {err[-3000:]}") from None
        finally:
            if proc.poll() is None:  # interrupted (e.g. by pytest-timeout): stop it before leaving
                _kill_group(proc, 5)
        return subprocess.CompletedProcess(args, proc.returncode, out, err)

    def run_python(self, code: str, *args: str, timeout: float) -> subprocess.CompletedProcess:
        """``python -c code *args`` as a driver of this cluster (pass ``self.address`` for ``ray.init``)."""
        return self.run([sys.executable, "-c", code, *args], timeout=timeout, cwd=ROOT)

    # ------------------------------------------------------------------ processes

    def processes(self) -> dict[int, str]:
        """pid -> command line of every live process of this cluster (see ``_is_mine``)."""
        mine = {}
        for d in Path("/proc").iterdir():
            if d.name.isdigit() and int(d.name) != os.getpid():
                info = _proc_info(int(d.name))
                if info and info[1] not in ("Z", "X") and self._is_mine(int(d.name), info):
                    mine[int(d.name)] = info[2]
        self._seen.update(mine)
        return mine

    def raylet_pids(self) -> dict[int, str]:
        """pid -> node id of the raylets of this cluster (the head's and the provider's worker nodes')."""
        out = {}
        for pid, cmd in self.processes().items():
            if "/raylet/raylet " in cmd:
                node = next((a.split("=", 1)[1] for a in cmd.split() if a.startswith("--node_id=")), "?")
                out[pid] = node
        return out

    def _is_mine(self, pid: int, info: tuple[int, str, str] | None = None) -> bool:
        """In the head's process group (the head, GCS, monitor and the provider's nodes), or naming this cluster's
        temp dir (the provider's raylets do: their session dir is the head's), or started with this cluster's
        marker in its environment (Ray's worker processes, which the raylets start in process groups of their
        own and rename ray::...; the drivers of ``run``)."""
        info = info or _proc_info(pid)
        if info is None:
            return False
        return info[0] == self.head.pid or f"{self.ray_tmp}/" in info[2] or _has_env(pid, self._marker)

    @property
    def _marker(self) -> bytes:
        return f"{MARKER_ENV}={self.ray_tmp.name}".encode()

    # ------------------------------------------------------------------ lifecycle

    def _start_probe(self, timeout: float) -> None:
        log = open(self.tmp / "probe.log", "w")  # noqa: SIM115 - the probe writes to it while it runs
        self._probe = subprocess.Popen([sys.executable, "-u", "-c", _PROBE, self.address, str(timeout)],
                                       env=self.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                       text=True, start_new_session=True, cwd=self.tmp)
        log.close()  # the child holds its own copy

        def read(stream) -> None:
            for line in stream:
                if line.startswith(_MARK):
                    self._answers.put(line[len(_MARK):])
            self._answers.put(None)

        threading.Thread(target=read, args=(self._probe.stdout,), daemon=True).start()
        try:
            first = self._answers.get(timeout=timeout + 10)
        except queue.Empty:
            first = None
        if first is None or not json.loads(first).get("ready"):
            raise RuntimeError(f"could not connect to the head at {self.address}; head log: "
                               f"{_tail(self.tmp / 'head.log')}\nprobe log: {_tail(self.tmp / 'probe.log')}")

    def _sample_forever(self, interval: float) -> None:
        while not self._stop.wait(interval):
            with contextlib.suppress(Exception):  # a late answer after exit, a probe stopping: the next look counts
                sample = self._look(timeout=10)
                sample.raylets = self.raylet_pids()

    def _stop_probe(self) -> None:
        self._stop.set()
        if self._sampler is not None:
            self._sampler.join(15)
        if self._probe is not None:
            with contextlib.suppress(OSError):
                assert self._probe.stdin is not None
                self._probe.stdin.close()  # the probe shuts its driver down and exits
            try:
                self._probe.wait(15)
            except subprocess.TimeoutExpired:
                _kill_group(self._probe, 5)

    def leftovers(self) -> list[int]:
        """The pids of this cluster still running: seen before (the sampler looks every second) or found now."""
        self.processes()
        return sorted(pid for pid in self._seen if pid_alive(pid) and self._is_mine(pid))

    def stop(self, grace_s: float = 30.0) -> list[int]:
        """Stop the probe, then the head's process group (SIGTERM, SIGKILL after ``grace_s``), then whatever of
        this cluster is left (Ray's workers, in process groups of their own, exit when their raylet does; else
        SIGTERM, then SIGKILL, by pid, each re-checked as ours just before). Returns the pids that survived even
        SIGKILL (empty when all went)."""
        self._stop_probe()
        self.processes()  # remember the current pids: they are checked after the group is gone
        _kill_group(self.head, grace_s)
        left = self.leftovers()
        for sig, wait_s in ((None, 5.0), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            for pid in left if sig is not None else []:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + wait_s
            while (left := self.leftovers()) and time.monotonic() < deadline:
                time.sleep(0.5)
            if not left:
                break
        return left


def _write_config(yaml_path: Path, out: Path, gcs_port: int, head_cpus: int) -> dict[str, Any]:
    """A copy of the cluster YAML for this head: provider.gcs_address on its port, the head type's CPU = head_cpus."""
    config = yaml.safe_load(Path(yaml_path).read_text())
    if config.get("provider", {}).get("type") != "fake_multinode":
        raise ValueError(f"{yaml_path}: provider.type must be fake_multinode")
    config["provider"]["gcs_address"] = f"{LOOPBACK}:{gcs_port}"
    head_type = config["available_node_types"][config["head_node_type"]]
    head_type["resources"] = {**head_type.get("resources", {}), "CPU": head_cpus}
    out.write_text(yaml.safe_dump(config, sort_keys=False))
    return config


def cluster_env(token: str, marker: str) -> dict[str, str]:
    """Environment of the head and of the drivers: loopback node IPs, token auth, no usage stats, this venv's
    executables first, no inherited RAY_ADDRESS, and the marker that identifies this cluster's processes."""
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0",
           "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
           MARKER_ENV: marker}
    for key in ("RAY_ADDRESS", "RAY_AUTH_TOKEN_PATH", "RAY_FAKE_CLUSTER"):
        env.pop(key, None)
    return env


@contextlib.contextmanager
def fake_autoscaling_cluster(yaml_path: str | Path = DEFAULT_YAML, tmp_path: str | Path | None = None,
                             head_cpus: int = 1, *, start_timeout: float = 90.0, sample_interval: float = 1.0,
                             object_store_memory: int = 500_000_000, update_interval_s: int = 1,
                             stop_grace_s: float = 30.0) -> Iterator[FakeAutoscalingCluster]:
    """Start a head (``head_cpus`` CPUs) whose autoscaler adds and removes fake worker nodes per ``yaml_path``;
    yield its handle; stop everything it started on exit. ``update_interval_s`` is the autoscaler's loop period
    (AUTOSCALER_UPDATE_INTERVAL_S, 5 s by default in Ray)."""
    tmp = Path(tmp_path) if tmp_path is not None else Path(tempfile.mkdtemp(prefix="fakeas-"))
    tmp.mkdir(parents=True, exist_ok=True)
    ray_tmp = Path(tempfile.mkdtemp(prefix="r", dir="/tmp"))  # short: unix socket paths live under it
    gcs_port, client_port, agent_port = free_ports(3)  # the rest of Ray's ports are random (0)
    config_path = tmp / "fake_multinode.yaml"
    config = _write_config(Path(yaml_path), config_path, gcs_port, head_cpus)
    token = secrets.token_hex(16)
    env = cluster_env(token, ray_tmp.name)
    # RAY_FAKE_CLUSTER: the provider refuses to start without it. AUTOSCALER_UPDATE_INTERVAL_S: the autoscaler's
    # loop period. RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S=0: on SIGTERM the head stops at once instead of asking the
    # GCS (stopped by the same group signal) to drain it, which waits out 30 s.
    head_env = env | {"RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": str(update_interval_s),
                      "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}
    cmd = [str(BIN / "ray"), "start", "--head", "--block", f"--node-ip-address={LOOPBACK}", f"--port={gcs_port}",
           f"--num-cpus={head_cpus}", f"--autoscaling-config={config_path}", "--include-dashboard=false",
           f"--ray-client-server-port={client_port}", f"--dashboard-agent-listen-port={agent_port}",
           "--min-worker-port=0", "--max-worker-port=0", f"--object-store-memory={object_store_memory}",
           f"--temp-dir={ray_tmp}", "--disable-usage-stats"]
    try:
        with open(tmp / "head.log", "w") as log:
            head = subprocess.Popen(cmd, env=head_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                    cwd=tmp)
    except BaseException:
        shutil.rmtree(ray_tmp, ignore_errors=True)
        raise
    cluster = FakeAutoscalingCluster(address=f"{LOOPBACK}:{gcs_port}", tmp=tmp, ray_tmp=ray_tmp,
                                     config_path=config_path, config=config, env=env, head=head)
    left: list[int] = []
    try:
        cluster._start_probe(start_timeout)
        cluster._sampler = threading.Thread(target=cluster._sample_forever, args=(sample_interval,), daemon=True)
        cluster._sampler.start()
        yield cluster
    finally:
        try:
            left = cluster.stop(stop_grace_s)
        finally:
            logs = ray_tmp / "session_latest" / "logs"
            with contextlib.suppress(OSError, shutil.Error):
                if logs.is_dir():
                    shutil.copytree(logs, tmp / "ray-logs", dirs_exist_ok=True)
            shutil.rmtree(ray_tmp, ignore_errors=True)
    if left:
        raise RuntimeError(f"processes of the fake cluster outlived SIGKILL: {left}")
