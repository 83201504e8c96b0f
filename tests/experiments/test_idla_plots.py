"""Figures of an IDLA evaluation (slicing/experiments/idla_plots.py) from a tiny synthetic result."""

from __future__ import annotations

import numpy as np

from slicing.config import load_scenario
from slicing.experiments.idla import EvaluationResult, Trace, phase_bounds
from slicing.experiments.idla_plots import plot_satisfaction_cdf, plot_throughput, write_plots
from tests.experiments.conftest import PNG


def _trace(rng: np.random.Generator, periods: int, n: int, s: int, level: float) -> Trace:
    tr = Trace()
    for _ in range(periods):
        mask = np.ones((n, s), dtype=bool)
        mask[:, -1] = False  # one slice inactive throughout
        r = np.clip(rng.uniform(level - 0.3, level + 0.2, (n, s)), 0, 1)
        tr.r.append(r)
        tr.mask.append(mask)
        tr.tput_ratio.append(np.where(mask, r * 1.1, np.nan))
        tr.share_sum.append(np.full(n, 0.9))
    return tr


def _result() -> EvaluationResult:
    sc = load_scenario("scenarios/idla.yaml", ["steps=40"])
    h0_end, h1_end = phase_bounds(sc)  # (8, 24)
    rng = np.random.default_rng(0)
    n, s = 3, len(sc.slices)
    traces = {"idla": _trace(rng, sc.steps - h0_end, n, s, 0.95), "equal": _trace(rng, sc.steps - h0_end, n, s, 0.7)}
    return EvaluationResult(scenario=sc, h0_end=h0_end, h1_end=h1_end, estimator=None, model=None,
                            h0=_trace(rng, h0_end, n, s, 0.8), traces=traces)


def test_throughput_has_one_panel_per_slice_and_a_line_per_scheme(tmp_path, figures):
    res = _result()
    path = plot_throughput(res, tmp_path / "t.png")
    assert path.read_bytes()[:8] == PNG and path.stat().st_size > 1000
    (fig,) = figures
    assert len(fig.axes) == len(res.scenario.slices) == 4
    for ax in fig.axes:  # a line per scheme, the r = 1 line and the two phase boundaries
        assert len(ax.lines) == 2 + 1 + 2
        assert [line.get_label() for line in ax.lines[:2]] == ["idla", "equal"]
        assert len(ax.lines[0].get_xdata()) == res.scenario.steps  # H0 then the scheme's own periods
    assert "idla" in fig.axes[0].get_title() and "H0 | H1 | H2" in fig.axes[0].get_title()
    assert np.isnan(fig.axes[-1].lines[0].get_ydata()).all()  # the inactive slice: no line drawn


def test_satisfaction_cdf_has_h1_and_h2_panels_with_a_cdf_per_scheme(tmp_path, figures):
    res = _result()
    path = plot_satisfaction_cdf(res, tmp_path / "cdf.png")
    assert path.read_bytes()[:8] == PNG
    (fig,) = figures
    assert [ax.get_title() for ax in fig.axes] == ["CDF of QoS satisfaction r, H1 (initial slices)",
                                                   "CDF of QoS satisfaction r, H2 (slice added)"]
    for ax, (lo, hi) in zip(fig.axes, [(0, 16), (16, None)], strict=True):
        assert [line.get_label().split(":")[0] for line in ax.lines] == ["idla", "equal"]
        r, mask, _ = res.traces["idla"].arrays(lo, hi)
        np.testing.assert_array_equal(ax.lines[0].get_xdata(), np.sort(r[mask]))  # over the active entries
        assert ax.lines[0].get_ydata()[-1] == 1.0


def test_write_plots_writes_both_files(tmp_path, figures):
    paths = write_plots(_result(), tmp_path / "new")
    assert [p.name for p in paths] == ["throughput.png", "satisfaction_cdf.png"]
    assert all(p.read_bytes()[:8] == PNG for p in paths) and len(figures) == 2
