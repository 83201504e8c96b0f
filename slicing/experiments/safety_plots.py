"""The figure of ``slicing experiment safety`` (paper 003, Fig. 4b): violation CDFs, rates and lambda per iteration."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from slicing.rl.safety import online_summary
from slicing.rl.settings import SafetySettings


def write_safety_plot(histories: dict[str, list[dict]], s: SafetySettings, path: Path) -> Path:
    """Left: CDF over (cell, online iteration) of the fraction of the day's periods in violation (the paper's
    Fig. 4b); middle: violation rate (and switch rate) per iteration of both runs; right: lambda per iteration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx, cx) = plt.subplots(1, 3, figsize=(15, 4))
    colors = {"without_switching": "C3", "with_switching": "C2"}
    for name, hist in histories.items():
        color, label = colors[name], name.replace("_", " ")
        online = [h for h in hist if not h["warmup"]]
        frac = np.sort(np.concatenate([h["cell_violation_rate"] for h in online]))  # [iterations * N]
        ax.step(frac, np.arange(1, len(frac) + 1) / len(frac), where="post", color=color,
                label=f"{label} ({online_summary(hist)['violation_rate']:.3f})")
        it = [h["iteration"] for h in hist]
        bx.plot(it, [h["violation_rate"] for h in hist], color=color, label=f"violation rate, {label}")
        cx.plot(it, [h["lambda"] for h in hist], color=color, label=label)
    sw = histories["with_switching"]
    bx.plot([h["iteration"] for h in sw], [h["switch_rate"] for h in sw], color="C0", ls="--", label="switch rate")
    for x in (ax, bx, cx):
        x.legend(fontsize=7)
    for x in (bx, cx):
        x.axvspan(0.5, s.warmup + 0.5, color="grey", alpha=0.15)  # the shared warm-up
        x.set_xlabel("training iteration (one day of the region each)")
    bx.axhline(s.target, color="k", ls=":", lw=0.8)
    ax.set_xlabel("fraction of the day's periods with an SLA violation (per cell)")
    ax.set_ylabel("CDF over (cell, online iteration)")
    bx.set_ylabel("rate over the iteration's (cell, period)")
    cx.set_ylabel("Lagrange multiplier lambda (used while sampling)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
