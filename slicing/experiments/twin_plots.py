"""The figures of ``slicing experiment twin``, after paper 004's Figs. 5-9 (mean over seeds, band = min..max)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from slicing.rl.settings import TwinSettings

LABELS = {"plain": "without twin", "twin": "with twin (Algorithm 1)", "random": "random"}
COLORS = {"plain": "tab:orange", "twin": "tab:blue", "random": "tab:gray"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    _plt().close(fig)
    return str(path)


def train_curves(rewards: dict[str, dict[int, list[float]]], utilities: dict[str, dict[int, list[float]]],
                 s: TwinSettings, out: Path) -> list[str]:
    """Figs. 5 and 6: mean reward and utility per round, every arm (the x axis in real steps too)."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, data, name in ((axes[0], rewards, "mean reward (eq. 6)"), (axes[1], utilities, "mean utility (eq. 5)")):
        for arm, by_seed in data.items():
            m = np.asarray(list(by_seed.values()))
            x = np.arange(1, m.shape[1] + 1)
            ax.plot(x, m.mean(axis=0), color=COLORS[arm], label=LABELS[arm])
            ax.fill_between(x, m.min(axis=0), m.max(axis=0), color=COLORS[arm], alpha=0.2)
        ax.set_xlabel(f"round ({s.steps_per_round} real steps each)")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    axes[0].axhline(0.8, color="k", lw=0.8, ls=":")
    axes[0].legend()
    fig.suptitle(f"{s.algo.upper()}: Agent 1 in the real env, {len(s.seeds)} seeds")
    return [_save(fig, Path(out) / "train_curves.png")]


def twin_fidelity(per_seed: list[list[dict[str, float] | None]], out: Path) -> list[str]:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    keys = [k for k in (per_seed[0][0] or {}) if k not in ("transitions", "held_out")]
    for k in keys:
        m = np.asarray([[f[k] if f else np.nan for f in seed] for seed in per_seed], dtype=np.float64)
        # a round without a value (e.g. the k-step error when fewer than k transitions were held out) is a gap
        counts = (~np.isnan(m)).sum(axis=0)
        mean = np.where(counts > 0, np.nansum(m, axis=0) / np.maximum(counts, 1), np.nan)
        ax.plot(np.arange(1, m.shape[1] + 1), mean, label=k)
    ax.set_xlabel("round (twin recalibrated on all transitions so far)")
    ax.set_ylabel("held-out error")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return [_save(fig, Path(out) / "twin_fidelity.png")]


def distill_bars(students: dict[str, dict[str, dict[str, Any]]], teachers: dict[str, dict[str, Any]],
                 out: Path) -> list[str]:
    """Fig. 8: reward and utility of each student (and teacher), teachers trained with / without the twin."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    sizes = sorted(next(iter(students.values())), key=int)
    groups = [f"student {h}" for h in sizes] + ["teacher"]
    x = np.arange(len(groups))
    for ax, key in zip(axes, ("reward", "utility"), strict=True):
        for j, arm in enumerate(("plain", "twin")):
            vals = [students[arm][h][key] for h in sizes] + [teachers[arm][key]]
            ax.bar(x + (j - 0.5) * 0.38, [v["mean"] for v in vals], 0.38, yerr=[v["std"] for v in vals],
                   color=COLORS[arm], label=f"teacher {LABELS[arm]}")
        ax.set_xticks(x, groups)
        ax.set_ylabel(f"greedy {key} (real env)")
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8)
    return [_save(fig, Path(out) / "distill.png")]


def offline_curves(losses: dict[str, list[list[float]]], summary: dict[str, dict[str, Any]],
                   out: Path) -> list[str]:
    """Fig. 9: Algorithm 2's loss per epoch and the evaluated reward / utility, with and without the twin."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for arm, runs in losses.items():
        m = np.asarray(runs)
        axes[0].plot(np.arange(1, m.shape[1] + 1), m.mean(axis=0), color=COLORS[arm], label=LABELS[arm])
    axes[0].set_xlabel("epoch")
    axes[0].set_ylabel("training loss (eq. 13)")
    axes[0].set_yscale("log")
    axes[0].legend()
    keys = ("reward", "utility")
    x = np.arange(len(keys))
    for j, arm in enumerate(("plain", "twin")):
        axes[1].bar(x + (j - 0.5) * 0.38, [summary[arm][k]["mean"] for k in keys], 0.38,
                    yerr=[summary[arm][k]["std"] for k in keys], color=COLORS[arm], label=LABELS[arm])
    axes[1].set_xticks(x, keys)
    axes[1].set_ylabel("greedy, real env")
    axes[1].grid(axis="y", alpha=0.3)
    return [_save(fig, Path(out) / "offline.png")]


def landscapes(curves: dict[str, dict[str, list[dict[str, Any]]]], out: Path) -> list[str]:
    """Fig. 7: L(theta + lambda v) along the gradient and a random direction, with and without the twin."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, kind in zip(axes, ("gradient", "random"), strict=True):
        for arm, runs in curves[kind].items():
            lam = np.asarray(runs[0]["lambda"])
            m = np.asarray([r["loss"] for r in runs])
            ax.plot(lam, m.mean(axis=0), color=COLORS[arm], label=LABELS[arm])
            ax.fill_between(lam, m.min(axis=0), m.max(axis=0), color=COLORS[arm], alpha=0.2)
        ax.set_xlabel("lambda (filter-normalised direction)")
        ax.set_ylabel("DQN loss on held-out transitions")
        ax.set_yscale("log")
        ax.set_title(f"{kind} direction")
        ax.grid(alpha=0.3)
    axes[0].legend()
    return [_save(fig, Path(out) / "landscape.png")]


def multicell_curves(smooth: dict[str, np.ndarray], window: int, rounds: list[list[dict[str, Any]]], h0_end: int,
                     out: Path) -> list[str]:
    """--part multicell: the drl scheme's trailing-day mean cell reward in H1 with and without the twin, the
    traffic baseline's beside them (``smooth[arm]``: [seeds, H1 periods]); and the twin's held-out fidelity per
    round next to the naive predictors'."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    ax = axes[0]
    colors = COLORS | {"traffic": "tab:green"}
    labels = {"plain": "drl (SAC) without twin", "twin": "drl with twin", "traffic": "traffic-proportional"}
    for arm, m in smooth.items():
        x = h0_end + np.arange(m.shape[1])
        ax.plot(x, m.mean(axis=0), color=colors[arm], label=labels[arm], ls="--" if arm == "traffic" else "-")
        ax.fill_between(x, m.min(axis=0), m.max(axis=0), color=colors[arm], alpha=0.2)
    for r in rounds[0] if rounds else []:
        ax.axvline(r["period"], color="tab:blue", lw=0.5, alpha=0.4)
    ax.set_xlabel(f"period (H1 from {h0_end}; thin lines: twin rounds)")
    ax.set_ylabel(f"mean cell reward, trailing {window} periods")
    ax.grid(alpha=0.3)
    ax.legend()
    ax = axes[1]
    for key, style in (("state_rmse_1", "-"), ("persistence_rmse_1", "--"), ("reward_mae", "-"),
                       ("mean_predictor_reward_mae", "--")):
        if not rounds or not rounds[0] or key not in rounds[0][0]:
            continue
        m = np.asarray([[r[key] for r in seed] for seed in rounds])
        ax.plot([r["period"] for r in rounds[0]], m.mean(axis=0), ls=style, marker="o", label=key)
    ax.set_xlabel("period of recalibration")
    ax.set_ylabel("held-out error (scaled units)")
    ax.set_title("twin fidelity (dashed: naive predictors)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.suptitle(f"twin-enhanced drl on the multi-cell network, {len(smooth['traffic'])} seeds (band = min..max)")
    return [_save(fig, Path(out) / "multicell.png")]
