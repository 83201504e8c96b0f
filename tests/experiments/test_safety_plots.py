"""The figure of the safe-DRL experiment (slicing/experiments/safety_plots.py) from two tiny synthetic histories."""

from __future__ import annotations

import numpy as np
import pytest

from slicing.experiments.safety_plots import write_safety_plot
from slicing.rl.settings import SafetySettings
from tests.experiments.conftest import PNG


def _history(rates: list[float], cells: int = 3, warmup: int = 2) -> list[dict]:
    return [{"iteration": i + 1, "warmup": i < warmup, "violation_rate": rate, "reward": 1.0 - rate,
             "lambda": 0.1 * i, "switch_rate": 0.0 if i < warmup else 0.5, "agent_periods": 96 * cells,
             "cell_violation_rate": list(np.linspace(0, rate, cells))} for i, rate in enumerate(rates)]


def test_three_panels_cdf_rates_and_lambda(tmp_path, figures):
    s = SafetySettings(iterations=4, warmup=2, target=0.05)
    hist = {"without_switching": _history([0.4, 0.3, 0.2, 0.1]), "with_switching": _history([0.4, 0.3, 0.1, 0.05])}
    path = write_safety_plot(hist, s, tmp_path / "sub" / "safety.png")
    assert path.read_bytes()[:8] == PNG and path.stat().st_size > 1000
    (fig,) = figures
    cdf, rates, lam = fig.axes
    assert len(fig.axes) == 3
    # CDF over (cell, online iteration): 2 online iterations x 3 cells per run, labelled with the online rate
    assert [line.get_label() for line in cdf.lines] == ["without switching (0.150)", "with switching (0.075)"]
    assert all(len(line.get_xdata()) == 2 * 3 for line in cdf.lines)
    # per iteration: both violation rates, the switch rate, the target line
    assert [line.get_label() for line in rates.lines[:3]] == ["violation rate, without switching",
                                                              "violation rate, with switching", "switch rate"]
    assert len(rates.lines) == 4 and list(rates.lines[3].get_ydata()) == [0.05, 0.05]
    assert list(lam.lines[0].get_ydata()) == pytest.approx([0.0, 0.1, 0.2, 0.3]) and len(lam.lines) == 2
