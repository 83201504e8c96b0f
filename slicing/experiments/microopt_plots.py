"""The figures of ``slicing experiment microopt``, one per part, after the MicroOpt paper's Figs. 4 and 6-10."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

LABELS = {"microopt": "MicroOpt", "atlas": "Atlas", "atlas_plus": "Atlas+", "cadrl": "CaDRL",
          "cadrl_plus": "CaDRL+", "peak": "Peak-alloc", "microopt_0sigma": "MicroOpt-0sigma",
          "microopt_2sigma": "MicroOpt-2sigma"}
COLORS = {"microopt": "tab:blue", "atlas": "tab:orange", "atlas_plus": "tab:brown", "cadrl": "tab:green",
          "cadrl_plus": "tab:olive", "peak": "tab:red", "microopt_0sigma": "tab:purple",
          "microopt_2sigma": "tab:gray"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    path = Path(path)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    _plt().close(fig)
    return path


def model_fit(report: dict[str, Any], path: Path) -> Path:
    """Fig. 4a/4b: NLL and MSE per epoch, train and validation."""
    plt = _plt()
    hist = report.get("history") or {}
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    epochs = np.asarray(hist.get("epoch", []))
    for ax, metric, title in ((axes[0], "nll", "negative log-likelihood (eq. 4)"), (axes[1], "mse", "MSE of mu")):
        for split, style in (("train", "-"), ("val", "--")):
            y = np.asarray(hist.get(f"{split}_{metric}", []), dtype=float)
            if len(y):
                ax.plot(epochs[:len(y)] if len(epochs) else np.arange(1, len(y) + 1), y, style,
                        label="training" if split == "train" else "validation")
        ax.set_xscale("log")  # the first epochs fall by an order of magnitude; the rest is the slow part
        ax.set_xlabel("epoch (log scale)")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, path)


def cpu_bottleneck(bws: np.ndarray, cpus: np.ndarray, mu: np.ndarray, path: Path) -> Path:
    """Fig. 4c: predicted mean throughput vs bandwidth, one line per CPU level (3 users/s)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    mu = np.asarray(mu, dtype=float).reshape(len(bws), len(cpus)) if mu.shape != (len(bws), len(cpus)) else mu
    for j, c in enumerate(cpus):
        ax.plot(bws, mu[:, j], marker="o", ms=3, label=f"{c:.0f} millicores")
    ax.set_xlabel("transport bandwidth (Mbit/s)")
    ax.set_ylabel("predicted mean throughput mu (Mbit/s)")
    ax.set_title("Slice model at 3 users/s: below a CPU level, bandwidth stops helping", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def constant_table(table: dict[str, list[list[float]]], paper: dict[str, list[list[float]]], path: Path) -> Path:
    """Table I as a figure: CPU and bandwidth vs constant traffic, ours (solid) and the paper's (dotted)."""
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for name, rows in table.items():
        a = np.asarray(rows)
        p = np.asarray(paper.get(name, []))
        kw = {"color": COLORS.get(name), "marker": "o", "ms": 3}
        for ax, col in ((axes[0], 1), (axes[1], 2), (axes[2], 3)):
            ax.plot(a[:, 0], a[:, col], label=LABELS.get(name, name), **kw)
            if len(p):
                ax.plot(p[:, 0], p[:, col], ls=":", color=COLORS.get(name), marker="x", ms=4)
    for ax, label in zip(axes, ("CPU (millicores)", "bandwidth (Mbit/s)", "E[β] on the model"), strict=True):
        ax.set_xlabel("constant slice traffic (users/s)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[2].axhline(0.1, color="k", lw=0.8, ls="--")
    axes[0].legend(fontsize=8, title="solid: ours, dotted: paper", title_fontsize=7)
    return _save(fig, path)


def thresholds(by: dict[str, dict[str, dict[str, float]]], path: Path) -> Path:
    """Fig. 6a/b/c: mean normalised resource vs q_thresh and vs beta_thresh; mean E[beta] vs beta_thresh."""
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    names = list(by)
    width = 0.8 / max(len(names), 1)
    for ax, key, xlabel in ((axes[0], "q_thresh", "QoS threshold q_thresh (Mbit/s)"),
                            (axes[1], "beta_thresh", "QoS degradation threshold β_thresh"),
                            (axes[2], "e_beta_by_beta_thresh", "QoS degradation threshold β_thresh")):
        for k, name in enumerate(names):
            values = by[name][key]
            x = np.arange(len(values)) + k * width
            ax.bar(x, list(values.values()), width, label=LABELS.get(name, name), color=COLORS.get(name))
        ax.set_xticks(np.arange(len(values)) + 0.4 - width / 2, list(values))
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3, axis="y")
    axes[0].set_ylabel("mean normalised resource η^T r")
    axes[1].set_ylabel("mean normalised resource η^T r")
    axes[2].set_ylabel("mean E[β] (model)")
    for i, bt in enumerate((0.1, 0.2, 0.3)):
        axes[2].hlines(bt, i - 0.05, i + 0.85, color="k", lw=0.8, ls="--")
    axes[0].legend(fontsize=8)
    return _save(fig, path)


def dynamic(means: np.ndarray, stds: np.ndarray, per: dict[str, dict[str, list[float]]], path: Path) -> Path:
    """Fig. 7/8: normalised resource and E[beta] per traffic distribution and approach."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(13, 4))
    x = np.arange(len(means))
    width = 0.8 / max(len(per), 1)
    for k, (name, v) in enumerate(per.items()):
        kw = {"label": LABELS.get(name, name), "color": COLORS.get(name)}
        axes[0].bar(x + k * width, v["norm"], width, **kw)
        axes[1].bar(x + k * width, v["e_beta"], width, **kw)
    ticks = [f"{m:g}±{sd:g}" for m, sd in zip(means, stds, strict=True)]
    for ax in axes:
        ax.set_xticks(x + 0.4 - width / 2, ticks, fontsize=7, rotation=30)
        ax.set_xlabel("slice traffic distribution (centre ± std, users/s)")
        ax.grid(alpha=0.3, axis="y")
    axes[0].set_ylabel("normalised resource η^T r")
    axes[1].set_ylabel("E[β] (model)")
    axes[1].axhline(0.1, color="k", lw=0.8, ls="--")
    axes[0].legend(fontsize=7, ncol=2)
    return _save(fig, path)


def ablation(means: np.ndarray, stds: np.ndarray, summary: dict[str, dict[str, Any]], beta: float,
             path: Path) -> Path:
    """Fig. 9: E[beta] per distribution for MicroOpt, -0sigma and -2sigma."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4))
    x = np.arange(len(means))
    width = 0.8 / max(len(summary), 1)
    for k, (name, v) in enumerate(summary.items()):
        ax.bar(x + k * width, v["e_beta"], width, color=COLORS.get(name),
               label=f"{LABELS.get(name, name)} (mean η^T r {v['mean_norm']:.3f})")
    ax.axhline(beta, color="k", lw=0.8, ls="--", label="β_thresh")
    ax.set_xticks(x + 0.4 - width / 2, [f"{m:g}±{sd:g}" for m, sd in zip(means, stds, strict=True)], fontsize=7,
                  rotation=30)
    ax.set_xlabel("slice traffic distribution (users/s)")
    ax.set_ylabel("E[β] on the full predicted distribution")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    return _save(fig, path)


def groundtruth(cells: dict[str, dict[str, float]], path: Path) -> Path:
    """Fig. 10: E[beta] measured on the ground-truth simulator per (q_thresh, beta_thresh), next to the model's."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 4))
    names = list(cells)
    x = np.arange(len(names))
    ax.bar(x - 0.2, [cells[n]["e_beta_groundtruth"] for n in names], 0.4, label="ground-truth simulator")
    ax.bar(x + 0.2, [cells[n]["e_beta_model"] for n in names], 0.4, label="slice model", alpha=0.7)
    for i, n in enumerate(names):
        ax.hlines(cells[n]["beta_thresh"], i - 0.45, i + 0.45, color="k", lw=1.0, ls="--")
    ax.set_xticks(x, [n.replace("_", "\n") for n in names], fontsize=8)
    ax.set_xlabel("(q_thresh, β_thresh); dashed: β_thresh")
    ax.set_ylabel("mean E[β] of MicroOpt's allocations")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    return _save(fig, path)


def domains(summary: dict[str, dict[str, Any]], rewards: list[float], path: Path) -> Path:
    """Per-domain agents vs MicroOpt + decomposition: resource, E[beta] (model and ground truth), training curve."""
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    names = list(summary)
    x = np.arange(len(names))
    axes[0].bar(x, [summary[n]["mean_norm"] for n in names])
    axes[0].set_ylabel("mean normalised resource η·r")
    axes[1].bar(x - 0.2, [summary[n]["mean_e_beta"] for n in names], 0.4, label="slice model")
    axes[1].bar(x + 0.2, [summary[n]["groundtruth_mean_e_beta"] for n in names], 0.4, label="ground truth")
    axes[1].set_ylabel("mean E[β]")
    axes[1].legend(fontsize=8)
    for ax in axes[:2]:
        ax.set_xticks(x, [n.replace("_", "\n") for n in names], fontsize=8)
        ax.grid(alpha=0.3, axis="y")
    axes[2].plot(np.arange(1, len(rewards) + 1), rewards)
    axes[2].set_xlabel("PPO iteration")
    axes[2].set_ylabel("mean team reward")
    axes[2].grid(alpha=0.3)
    fig.suptitle("per-domain agents (paper 003) vs MicroOpt + SLA decomposition")
    return _save(fig, path)
