"""Helpers of the CLI tests (not a test module)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

runner = CliRunner()
FAST = ["--set", "estimator.epochs=8", "--set", "seed=1"]  # a short estimator training


def last_json(output: str) -> dict:
    """The JSON object a ``--json`` command prints as the last line of stdout."""
    return json.loads(output.strip().splitlines()[-1])
