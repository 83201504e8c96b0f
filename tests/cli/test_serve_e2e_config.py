"""`slicing serve --slice-model F --e2e-config Y`: the YAML is checked before anything starts."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from slicing.cli import app
from slicing.cli.serve import _e2e_config

ROOT = Path(__file__).resolve().parents[2]


def _flat(text: str) -> str:
    return " ".join(text.replace("│", " ").split())


def test_the_shipped_example_is_valid() -> None:
    cfg = _e2e_config(ROOT / "scenarios" / "e2e.yaml", Path("model.pt"))
    assert set(cfg["slas"]) == {"1", "4"} and cfg["sites_per_instance"] == 1


def test_bad_configs_exit_2_naming_the_problem(tmp_path) -> None:
    model = tmp_path / "m.pt"
    model.write_bytes(b"x")
    bad = tmp_path / "bad.yaml"
    runner = CliRunner()
    bad.write_text("slas: {1: {latency_ms: 1, reliability: 0.99, throughput_mbps: 5}}")
    out = runner.invoke(app, ["serve", "--slice-model", str(model), "--e2e-config", str(bad)])
    assert out.exit_code == 2 and "slas.1: cannot be decomposed" in _flat(out.output)
    bad.write_text("beta_thresh: 2")
    out = runner.invoke(app, ["serve", "--slice-model", str(model), "--e2e-config", str(bad)])
    assert out.exit_code == 2 and "beta_thresh" in _flat(out.output)
    out = runner.invoke(app, ["serve", "--e2e-config", str(bad)])
    assert out.exit_code == 2 and "needs --slice-model" in _flat(out.output)
    out = runner.invoke(app, ["serve", "--slice-model", str(tmp_path / "none.pt")])
    assert out.exit_code == 2 and "no such file" in _flat(out.output)
