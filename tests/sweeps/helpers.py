"""Helpers of the sweep tests (not a test module)."""

from __future__ import annotations

from pathlib import Path

import yaml


def write_sweep(tmp_path: Path, data: dict) -> Path:
    """``data`` as the sweep file ``tmp_path/sweep.yaml``."""
    p = tmp_path / "sweep.yaml"
    p.write_text(yaml.safe_dump(data))
    return p
