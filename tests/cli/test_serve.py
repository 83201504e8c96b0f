"""`slicing serve` refuses argument combinations that cannot work, before starting anything (slicing/cli/serve.py)."""

from __future__ import annotations

from typer.testing import CliRunner

from slicing.cli import app


def test_no_http_needs_a_cluster_address() -> None:
    r = CliRunner().invoke(app, ["serve", "--no-http"])  # a local population would die with the process
    assert r.exit_code == 2
    assert "--no-http needs --address of a running cluster" in " ".join(r.output.split())


def test_port_zero_is_refused() -> None:
    r = CliRunner().invoke(app, ["serve", "--port", "0"])
    assert r.exit_code == 2 and "Invalid value for '--port'" in r.output
