"""`slicing bench overload`: the HTTP service under an open-loop load far above its capacity, measured from outside.

Phases, one asyncio client (raw keep-alive HTTP/1.1, ``_Pool``: one event loop, up to ``MAX_CONNECTIONS``
connections, so requests are not queued in the client's own pool), single-cell ``GET /v1/cells/{id}/allocation``
at random cells:

1. capacity: ``CAPACITY_CLIENTS`` closed-loop clients for ``capacity_s``: the answers per second the service
   gives when it is kept busy (``capacity_rps``);
2. baseline: ``PROBE_RPS`` for ``probe_s``, latency of a quiet service;
3. overload: open loop at ``factor`` x capacity (or ``rps``) for ``seconds``: request i leaves at start + i / rps,
   whatever happened to the earlier ones, and waits at most ``timeout_s``;
4. recovery: ``PROBE_RPS`` again for ``recovery_window_s``; ``recovery_s`` is the time from the end of the load to the
   first probe from which on every probe is a 200 within ``max(2 x baseline p99, baseline p99 + 50 ms)``.

The replica's memory is sampled every 0.2 s (resident set of the processes whose command line names the
``SlicingService`` deployment). Returns ``{offered_rps, ok_rps, shed_fraction, p99_ok_ms, max_rss_mb, recovery_s}``
plus the counts behind them (every status, time-outs, 503s without Retry-After, the slowest answer).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

Log = Callable[[str], None]
MAX_CONNECTIONS = 2000
CAPACITY_CLIENTS = 32
PROBE_RPS = 20.0


@dataclass
class Answer:
    sent: float  # perf_counter when sent
    seconds: float
    status: int | str  # HTTP status, or "timeout" / the client error's name
    retry_after: bool


class RssSampler(threading.Thread):
    """Max resident set (MB) of the processes whose command line contains ``needle`` (Ray titles a replica's process
    ``ray::ServeReplica:<app>:<deployment>``), read from /proc every ``every_s``."""

    def __init__(self, needle: str = "ServeReplica:slicing:SlicingService", every_s: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.needle, self.every_s, self.max_mb, self.seen = needle, every_s, 0.0, 0
        self.stop = threading.Event()

    def sample(self) -> None:
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                if self.needle not in (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    continue
                status = (proc / "status").read_text()
            except OSError:  # gone meanwhile, or not ours to read
                continue
            for line in status.splitlines():
                if line.startswith("VmRSS:"):
                    self.seen += 1
                    self.max_mb = max(self.max_mb, int(line.split()[1]) / 1024)

    def run(self) -> None:
        while not self.stop.is_set():
            self.sample()
            self.stop.wait(self.every_s)


class _Pool:
    """Keep-alive HTTP/1.1 connections to one host, a raw asyncio client: a GET costs the client ~0.1 ms of CPU,
    several times less than aiohttp's, which matters when client and service share 2 cores. Answers carry a
    Content-Length or chunks."""

    def __init__(self, base: str, max_connections: int) -> None:
        from urllib.parse import urlparse

        u = urlparse(base)
        self.host, self.port = u.hostname or "127.0.0.1", u.port or 80
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.open = 0
        self.max_connections = max_connections
        self.free = asyncio.Semaphore(max_connections)

    async def fetch(self, path: str, timeout_s: float) -> tuple[float, int | str, bool]:
        """(seconds, status or "timeout" / the error's name, Retry-After present)."""
        t = time.perf_counter()
        async with self.free:
            conn = self.idle.pop() if self.idle else None
            try:
                if conn is None:
                    conn = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), timeout_s)
                status, retry, keep = await asyncio.wait_for(self._exchange(conn, path),
                                                             max(0.001, timeout_s - (time.perf_counter() - t)))
            except TimeoutError:
                self._close(conn)
                return time.perf_counter() - t, "timeout", False
            except (OSError, asyncio.IncompleteReadError, ValueError) as err:
                self._close(conn)
                return time.perf_counter() - t, type(err).__name__, False
            if keep:
                self.idle.append(conn)
            else:
                self._close(conn)
            return time.perf_counter() - t, status, retry

    async def _exchange(self, conn, path: str) -> tuple[int, bool, bool]:
        reader, writer = conn
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while True:  # chunk-size line, data, CRLF; a 0-size chunk ends it (no trailers sent here)
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                await reader.readexactly(size + 2)
                if size == 0:
                    break
        elif "content-length" in headers:
            await reader.readexactly(int(headers["content-length"]))
        else:
            raise ValueError(f"an answer to GET {path} with neither Content-Length nor chunks")
        return status, "retry-after" in headers, headers.get("connection", "").lower() != "close"

    @staticmethod
    def _close(conn) -> None:
        if conn is not None:
            conn[1].close()

    def close(self) -> None:
        for conn in self.idle:
            conn[1].close()
        self.idle = []


async def _paced(pool: _Pool, ids: np.ndarray, rps: float, timeout_s: float) -> list[Answer]:
    """Open loop: request i leaves at start + i / rps."""
    start = time.perf_counter() + 0.05

    async def go(i: int) -> Answer:
        at = start + i / rps
        await asyncio.sleep(max(0.0, at - time.perf_counter()))
        sent = time.perf_counter()
        seconds, status, retry = await pool.fetch(f"/v1/cells/{int(ids[i])}/allocation", timeout_s)
        return Answer(sent, seconds, status, retry)

    return list(await asyncio.gather(*(go(i) for i in range(len(ids)))))


async def _closed(pool: _Pool, ids: np.ndarray, clients: int, seconds: float, timeout_s: float) -> list[Answer]:
    """``clients`` loops, each sending its next request when the last one is answered."""
    stop = time.perf_counter() + seconds
    out: list[Answer] = []

    async def loop(k: int) -> None:
        i = k
        while time.perf_counter() < stop:
            sent = time.perf_counter()
            s, status, retry = await pool.fetch(f"/v1/cells/{int(ids[i % len(ids)])}/allocation", timeout_s)
            out.append(Answer(sent, s, status, retry))
            i += clients

    await asyncio.gather(*(loop(k) for k in range(clients)))
    return out


def _p(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


async def _capacity(base: str, n_cells: int, seconds: float, timeout_s: float, seed: int) -> float:
    rng = np.random.default_rng(seed)
    pool = _Pool(base, CAPACITY_CLIENTS)
    try:
        cap = await _closed(pool, rng.integers(0, n_cells, 10_000), CAPACITY_CLIENTS, seconds, timeout_s)
    finally:
        pool.close()
    return sum(a.status == 200 for a in cap) / seconds


async def _overload(base: str, n_cells: int, offered: float, seconds: float, timeout_s: float, probe_s: float,
                    recovery_window_s: float, seed: int, log: Log) -> dict:
    rng = np.random.default_rng(seed + 1)
    pool = _Pool(base, MAX_CONNECTIONS)
    try:
        base_probes = await _paced(pool, rng.integers(0, n_cells, int(PROBE_RPS * probe_s)), PROBE_RPS, timeout_s)
        base_ok = [a.seconds for a in base_probes if a.status == 200]
        n = int(offered * seconds)
        log(f"overload: {n} GETs at {offered:.0f}/s for {seconds:g} s (time-out {timeout_s:g} s)")
        t_load = time.perf_counter()
        load = await _paced(pool, rng.integers(0, n_cells, n), offered, timeout_s)
        t_end = max(t_load + seconds, max(a.sent for a in load))  # the last request left here
        probes = await _paced(pool, rng.integers(0, n_cells, int(PROBE_RPS * recovery_window_s)), PROBE_RPS,
                              timeout_s)
    finally:
        pool.close()
    base_p99 = _p(base_ok, 99)
    limit = max(2 * base_p99, base_p99 + 0.05)
    good = [a.status == 200 and a.seconds <= limit for a in probes]
    first_good = next((k for k in range(len(probes)) if all(good[k:])), None)
    recovery = None if first_good is None else max(0.0, probes[first_good].sent - t_end)
    statuses = Counter(str(a.status) for a in load)
    ok = [a.seconds for a in load if a.status == 200]
    return {
        "offered_rps": round(n / seconds, 1), "ok_rps": round(len(ok) / seconds, 1),
        "shed_fraction": round(statuses.get("503", 0) / max(n, 1), 4),
        "p99_ok_ms": round(_p(ok, 99) * 1000, 1),
        "recovery_s": None if recovery is None else round(recovery, 2),
        "requests": n, "statuses": dict(sorted(statuses.items())),
        "timeouts": statuses.get("timeout", 0),
        "past_timeout": sum(a.seconds > timeout_s for a in load),
        "shed_without_retry_after": sum(1 for a in load if a.status == 503 and not a.retry_after),
        "max_s": round(max((a.seconds for a in load), default=0.0), 3),
        "p99_shed_ms": round(_p([a.seconds for a in load if a.status == 503], 99) * 1000, 1),
        "baseline_p99_ms": round(base_p99 * 1000, 1), "timeout_s": timeout_s,
    }


def bench_overload(base_url: str, n_cells: int, rps: float | None = None, factor: float = 5.0,
                   seconds: float = 10.0, timeout_s: float = 10.0, front: str = "nginx", front_share: float = 0.9,
                   capacity_s: float = 3.0, probe_s: float = 3.0, recovery_window_s: float = 10.0, seed: int = 0,
                   log: Log = print) -> dict:
    """Measure the service at ``base_url`` under overload (module docstring). ``front="nginx"`` puts the shedding
    front (``slicing.serve.front``) between the client and the service, its rate ``front_share`` x the measured
    capacity; ``"none"`` offers the load to Serve's proxy directly."""
    from urllib.parse import urlparse

    from slicing.serve.front import NginxFront
    from slicing.serve.runner import free_port

    if front not in ("nginx", "none"):
        raise ValueError(f"front: {front!r} is not one of ['nginx', 'none']")
    capacity = asyncio.run(_capacity(base_url, n_cells, capacity_s, timeout_s, seed))
    log(f"capacity: {capacity:.0f} answers/s with {CAPACITY_CLIENTS} closed-loop clients")
    offered = rps if rps is not None else factor * capacity
    rss = RssSampler()
    rss.start()
    try:
        with contextlib.ExitStack() as stack:
            target = base_url
            if front == "nginx":
                rate = max(1.0, front_share * capacity)
                nginx = stack.enter_context(NginxFront(free_port(), urlparse(base_url).port, rate_rps=rate,
                                                       burst=max(10, int(0.2 * rate)), max_conns=128))
                target = nginx.base_url
                log(f"front: nginx on {target}, {rate:.0f} requests/s to the service, the rest 503")
            time.sleep(1.0)
            out = asyncio.run(_overload(target, n_cells, offered, seconds, timeout_s, probe_s, recovery_window_s,
                                        seed, log))
    finally:
        rss.stop.set()
        rss.join(5)
    out = {"front": front, "capacity_rps": round(capacity, 1)} | out
    out["max_rss_mb"] = round(rss.max_mb, 1) if rss.seen else None
    log(f"offered {out['offered_rps']}/s: {out['ok_rps']}/s answered 200 (p99 {out['p99_ok_ms']} ms), shed "
        f"{100 * out['shed_fraction']:.1f} %, statuses {out['statuses']}; replica RSS max {out['max_rss_mb']} MB; "
        f"back to normal {out['recovery_s']} s after the load")
    return out
