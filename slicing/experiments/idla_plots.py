"""Figures of an evaluation (matplotlib, Agg backend; files only, no windows).

- throughput.png: mean per-user throughput / requirement over time, one panel per slice, a line per scheme,
  smoothed over one day (96 periods), phase boundaries marked (the IDLA paper's Fig. 4).
- satisfaction_cdf.png: empirical CDF of the QoS satisfaction r over (cell, slice, period), per scheme, for H1 and
  H2 (the paper's Fig. 5).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from slicing.experiments.idla import EvaluationResult
from slicing.experiments.metrics import SATISFIED

DAY = 96


def _smooth(series: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over ``window`` periods, ignoring NaN (inactive slice)."""
    valid = np.isfinite(series)
    num = np.convolve(np.where(valid, series, 0.0), np.ones(window), mode="full")[: len(series)]
    den = np.convolve(valid.astype(float), np.ones(window), mode="full")[: len(series)]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def _slice_means(per_period: list[np.ndarray], n_slices: int) -> np.ndarray:
    """[T, N, S] with NaN for inactive -> [T, S] mean over cells (NaN where the slice is inactive everywhere)."""
    if not per_period:
        return np.zeros((0, n_slices))
    stacked = np.stack(per_period)  # [T, N, S]
    valid = np.isfinite(stacked)
    total = np.where(valid, stacked, 0.0).sum(axis=1)
    count = valid.sum(axis=1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def plot_throughput(result: EvaluationResult, path: Path) -> Path:
    sc = result.scenario
    n_slices = len(sc.slices)
    fig, axes = plt.subplots(n_slices, 1, figsize=(10, 2.2 * n_slices), sharex=True)
    axes = np.atleast_1d(axes)
    h0 = _slice_means(result.h0.tput_ratio, n_slices)
    window = min(DAY, max(sc.steps // 20, 1))
    for name, tr in result.traces.items():
        ratio = np.concatenate([h0, _slice_means(tr.tput_ratio, n_slices)])  # [T, S]
        for s, ax in enumerate(axes):
            ax.plot(np.arange(len(ratio)), _smooth(ratio[:, s], window), label=name, lw=1.2)
    for s, ax in enumerate(axes):
        st = sc.slices[s]
        ax.set_ylabel(f"slice {st.id}\n{st.throughput_req_mbps:g} Mbit/s", fontsize=8)
        ax.axhline(1.0, color="grey", lw=0.6, ls=":")
        for b in (result.h0_end, result.h1_end):
            ax.axvline(b, color="black", lw=0.8, ls="--")
    axes[0].set_title(f"{sc.name}: mean user throughput / requirement (smoothed over {window} periods); "
                      "H0 | H1 | H2", fontsize=9)
    axes[0].legend(fontsize=8, ncol=len(result.traces), loc="lower left")
    axes[-1].set_xlabel("period (15 min)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_satisfaction_cdf(result: EvaluationResult, path: Path) -> Path:
    """CDF of r per scheme; the y axis stops just above the unsatisfied mass (the rest is the jump at r = 1)."""
    split = result.h1_end - result.h0_end
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, (lo, hi), phase in zip(axes, [(0, split), (split, None)], ["H1 (initial slices)", "H2 (slice added)"],
                                   strict=True):
        top = 0.0
        for name, tr in result.traces.items():
            r, mask, _ = tr.arrays(lo, hi)
            values = np.sort(r[mask])
            cdf = np.arange(1, len(values) + 1) / len(values)
            top = max(top, float((values < SATISFIED).mean()))
            ax.step(values, cdf, where="post", label=f"{name}: P(r>=0.999) = {(values >= SATISFIED).mean():.3f}")
        ax.set_ylim(0, min(1.0, top * 1.15 + 0.01))
        ax.set_title(f"CDF of QoS satisfaction r, {phase}", fontsize=9)
        ax.set_xlabel("r = min(phi/phi*, d*/d, 1)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    axes[0].set_ylabel("fraction of (cell, slice, period) <= r")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_plots(result: EvaluationResult, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    return [plot_throughput(result, out / "throughput.png"),
            plot_satisfaction_cdf(result, out / "satisfaction_cdf.png")]
