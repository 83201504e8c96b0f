"""The figure of ``slicing experiment imitation``: learning curves of the BC warm start and of scratch."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from slicing.rl.settings import ImitationSettings


def plot_learning_curves(curves: dict[str, list[float | None]], baseline_reward: float, s: ImitationSettings,
                         path: Path, clone_reward: float | None = None) -> Path:
    """Mean sampled reward per agent-period vs training iteration: warm start, scratch, and as references the
    baseline and the deterministic BC clone on the recorded days."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    styles = {"bc_warm_start": ("BC warm start", "tab:blue"), "scratch": ("from scratch", "tab:orange")}
    for name, curve in curves.items():
        label, color = styles.get(name, (name, None))
        y = np.array([np.nan if v is None else v for v in curve], dtype=float)
        ax.plot(np.arange(1, len(y) + 1), y, marker="o", ms=3, lw=1.4, label=f"{s.algo.upper()} {label}", color=color)
    ax.axhline(baseline_reward, color="grey", ls="--", lw=1.0, label="traffic-proportional baseline (recorded days)")
    if clone_reward is not None:
        ax.axhline(clone_reward, color="tab:green", ls=":", lw=1.2, label="BC clone, deterministic (recorded days)")
    ax.axvspan(0.5, s.early + 0.5, color="grey", alpha=0.08, lw=0)
    ax.set_xlabel("training iteration")
    ax.set_ylabel("mean reward per agent-period")
    ax.set_ylim(bottom=0.0)
    ax.set_title(f"Imitation warm start vs scratch (shaded: first {s.early} iterations)", fontsize=10)
    ax.legend(fontsize=8, loc="center right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
