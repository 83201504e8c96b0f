"""The figures of ``slicing experiment transfer``: reward curves of the target runs, and gain against distance."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from slicing.rl.transfer import SCRATCH


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(curves: dict[str, list[float | None]], nearest: str, farthest: str, baseline: float, early: int,
                path: Path) -> Path:
    """Reward per training iteration: scratch, integrated TL from the nearest and the farthest source (solid),
    the other strategies from the nearest (dashed)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    main = {SCRATCH: ("from scratch (DRL)", "tab:orange"),
            f"integrated_{nearest}": (f"integrated TL from nearest ({nearest})", "tab:blue"),
            f"integrated_{farthest}": (f"integrated TL from farthest ({farthest})", "tab:red")}
    for key, curve in curves.items():
        y = np.array([np.nan if v is None else v for v in curve], dtype=float)
        x = np.arange(1, len(y) + 1)
        if key in main:
            label, color = main[key]
            ax.plot(x, y, marker="o", ms=3, lw=1.6, label=label, color=color)
        elif not key.startswith("integrated_"):
            ax.plot(x, y, ls="--", lw=1.0, label=key.replace("_", " from ", 1))
    ax.axhline(baseline, color="grey", ls=":", lw=1.0, label="traffic-proportional baseline")
    ax.axvspan(0.5, early + 0.5, color="grey", alpha=0.08, lw=0)
    ax.set_xlabel("training iteration of the target agent")
    ax.set_ylabel("mean reward per agent-period")
    ax.set_title(f"Transfer to a new cell group (shaded: first {early} iterations = early reward)", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def plot_distance_gain(ranking: list[tuple[str, float]], gains: dict[str, float | None], path: Path) -> Path:
    """Integrated-transfer gain (early reward minus scratch's) against the source's latent distance."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 4))
    for name, d in ranking:
        g = gains.get(name)
        if g is None:
            continue
        ax.scatter([d], [g], color="tab:blue")
        ax.annotate(name, (d, g), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_xlabel("latent distance to the target (Lemma 1)")
    ax.set_ylabel("TL gain: early reward - scratch")
    ax.set_title("Distance vs transfer gain", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)
