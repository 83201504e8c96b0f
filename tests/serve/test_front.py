"""The shedding front (slicing/serve/front.py): Debian's nginx before an upstream on 127.0.0.1. Excess requests get
a cheap 503 with Retry-After and a JSON body; what passes is the upstream's answer, 503s included, unchanged."""

from __future__ import annotations

import http.server
import json
import socketserver
import threading
from typing import ClassVar

import pytest
import requests

from slicing.serve.front import NginxFront, nginx_config
from slicing.serve.runner import free_port


class _Upstream(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    seen: ClassVar[dict[str, int]] = {}  # (method path) -> requests received

    def _flaky(self) -> bool:
        """The first request to /flaky... fails as a replica dying mid-request does behind Serve's proxy (500)."""
        key = f"{self.command} {self.path}"
        self.seen[key] = self.seen.get(key, 0) + 1
        return self.path.startswith("/flaky") and self.seen[key] == 1

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.do_GET()

    def do_GET(self) -> None:
        if self._flaky():
            body, status, extra = b"Internal Server Error", 500, {}
        elif self.path == "/busy":  # the service's own 503: must reach the client as it is
            body, status, extra = b'{"detail": "upstream busy"}', 503, {"Retry-After": "7"}
        else:
            body, status, extra = b'{"ok": true}', 200, {}
        self.send_response(status)
        for k, v in {"Content-Type": "application/json", "Content-Length": str(len(body)), **extra}.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def upstream():
    port = free_port()
    server = socketserver.ThreadingTCPServer(("127.0.0.1", port), _Upstream)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield port
    server.shutdown()
    server.server_close()


def test_the_config_limits_rate_and_connections_and_sheds_with_retry_after() -> None:
    conf = nginx_config(8080, 8000, rate_rps=299.6, burst=60, max_conns=128, prefix="/tmp/x")
    assert "rate=300r/s" in conf and "burst=60 nodelay" in conf and "limit_conn slicing_conn 128" in conf
    assert "listen 127.0.0.1:8080" in conf and "server 127.0.0.1:8000" in conf
    assert "add_header Retry-After 1 always" in conf and "limit_req_status 503" in conf


def test_excess_is_shed_with_503_retry_after_and_the_rest_passes(upstream) -> None:
    with NginxFront(free_port(), upstream, rate_rps=2, burst=3, max_conns=16) as front:
        answers = [requests.get(front.base_url + "/v1/x", timeout=10) for _ in range(20)]
        codes = [r.status_code for r in answers]
        assert codes[:4] == [200] * 4  # the burst passes at once
        assert codes.count(503) >= 14  # then 2 per second at most
        for r in answers:
            if r.status_code == 503:
                assert r.headers["Retry-After"] == "1" and r.headers["content-type"] == "application/json"
                assert "shed by the front" in json.loads(r.text)["detail"]
            else:
                assert r.json() == {"ok": True}
        proc = front.proc
    assert proc.poll() is not None  # stopped (by pid) on exit


def test_the_upstreams_own_503_passes_unchanged(upstream) -> None:
    with NginxFront(free_port(), upstream, rate_rps=100, burst=10, max_conns=16) as front:
        r = requests.get(front.base_url + "/busy", timeout=10)
    assert r.status_code == 503 and r.headers["Retry-After"] == "7" and r.json() == {"detail": "upstream busy"}


def test_a_read_that_failed_upstream_is_sent_once_more_and_a_write_never(upstream) -> None:
    """Serve's proxy answers 500 when the replica died mid-request; the front retries a GET once (the router has
    dropped the dead replica by then), never a POST."""
    _Upstream.seen.clear()
    with NginxFront(free_port(), upstream, rate_rps=100, burst=10, max_conns=16) as front:
        r = requests.get(front.base_url + "/flaky-read", timeout=10)
        assert r.status_code == 200 and r.json() == {"ok": True}
        assert _Upstream.seen["GET /flaky-read"] == 2
        w = requests.post(front.base_url + "/flaky-write", json={"a": 1}, timeout=10)
        assert w.status_code == 500 and _Upstream.seen["POST /flaky-write"] == 1
