"""A shedding front for the HTTP service: nginx in front of Ray Serve's proxy, answering excess load with a cheap 503.

Why: Ray Serve's HTTP proxy is a Python process. Beyond the service's capacity it still parses every request, and
its own 503s (``max_queued_requests``) cost it nearly as much as a served request, so under a flood it saturates a
core and every answer, 503s included, waits seconds (measured on 2 cores: a closed-loop Go client with 1,000
connections got 95th-percentile answers at 5-9 s, with the proxy at 106 % CPU). nginx, in C, refuses the excess in
microseconds before it reaches the proxy: ``limit_req`` (requests per second, a small burst) and ``limit_conn``
(connections in progress) answer 503 with ``Retry-After``; what passes, Serve serves. The same nginx is where TLS
terminates in production (cluster/README.md), so this is one config, not an extra hop.

``nginx_config(...)`` renders the config (also what the runbook shows); ``NginxFront`` runs Debian's nginx with it
on 127.0.0.1 for ``slicing bench overload``, ``slicing bench chaos`` and the tests, and stops it by pid. The
upstream's own answers, 503s included, pass through unchanged, with one exception: a GET (or HEAD) that Serve's proxy
answers 500, 502 or 504 is sent once more. Serve's proxy answers 500 when the replica serving a request dies
mid-request (a replica crash, or the loss of its node). By the retry its router has dropped that replica, so the
retry lands on a live one. The upstream is listed twice (the second as ``backup``, ``max_fails=0``) because nginx
retries only on another upstream entry. Writes (POST, PUT, DELETE) are never retried.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

SHED_BODY = '{"detail": "overloaded: shed by the front (nginx limit_req / limit_conn); retry after 1 s"}'


def nginx_config(listen_port: int, upstream_port: int, rate_rps: float, burst: int, max_conns: int,
                 prefix: str, listen_host: str = "127.0.0.1", upstream_host: str = "127.0.0.1") -> str:
    """The front's nginx.conf: ``rate_rps`` requests/s with ``burst`` (served at once, not delayed), at most
    ``max_conns`` requests in progress; the rest 503 + Retry-After: 1."""
    return f"""# slicing: shedding front for Ray Serve (slicing/serve/front.py)
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    limit_req_zone $server_port zone=slicing_rate:1m rate={max(1, int(round(rate_rps)))}r/s;
    limit_conn_zone $server_port zone=slicing_conn:1m;
    upstream slicing_serve {{
        server {upstream_host}:{upstream_port} max_fails=0;
        server {upstream_host}:{upstream_port} max_fails=0 backup;  # the same proxy: the retry's way back in
        keepalive 128;
    }}
    server {{
        listen {listen_host}:{listen_port};
        client_max_body_size 64m;
        location / {{
            limit_req zone=slicing_rate burst={burst} nodelay;
            limit_conn slicing_conn {max_conns};
            limit_req_status 503;
            limit_conn_status 503;
            proxy_pass http://slicing_serve;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_read_timeout 120s;
            proxy_next_upstream error timeout http_500 http_502 http_504;  # idempotent requests only
            proxy_next_upstream_tries 2;
        }}
        error_page 503 = @shed;
        location @shed {{
            default_type application/json;
            add_header Retry-After 1 always;
            return 503 '{SHED_BODY}';
        }}
    }}
}}
"""


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class NginxFront:
    """Debian's nginx on ``127.0.0.1:listen_port`` in front of ``127.0.0.1:upstream_port`` (context manager)."""

    def __init__(self, listen_port: int, upstream_port: int, rate_rps: float, burst: int = 50,
                 max_conns: int = 256) -> None:
        self.listen_port, self.upstream_port = listen_port, upstream_port
        self.rate_rps, self.burst, self.max_conns = rate_rps, burst, max_conns
        self.proc: subprocess.Popen | None = None
        self._dir: str | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.listen_port}"

    def __enter__(self) -> NginxFront:
        exe = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
        if exe is None:
            raise RuntimeError("nginx not found: install Debian's nginx (`apt-get install nginx`; `make test` does)")
        self._dir = tempfile.mkdtemp(prefix="slicing-front-")
        conf = Path(self._dir) / "nginx.conf"
        conf.write_text(nginx_config(self.listen_port, self.upstream_port, self.rate_rps, self.burst,
                                     self.max_conns, self._dir))
        self.proc = subprocess.Popen([exe, "-p", self._dir, "-c", str(conf), "-e", f"{self._dir}/error.log",
                                      "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while not _port_open(self.listen_port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.poll() is not None else ""
                self.__exit__()
                raise RuntimeError(f"nginx did not start on 127.0.0.1:{self.listen_port}: {err.strip()[:500]}")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # our own nginx master, by pid; it stops its worker
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
