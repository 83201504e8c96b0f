"""The what-if report: each variant against the base, in a Markdown page with its figures.

- ``deltas.png``: per metric, the change of each variant vs the base, one bar per scheme (mean over seeds, the
  whiskers span the seeds' min..max; deltas are paired per seed, so the seeds' shared traffic cancels);
- ``series.png``: P(satisfied) and the fraction of violating cells per period, per variant (first scheme, mean
  over seeds, band = min..max);
- ``map_<variant>.png``: the hex grid of cells coloured by the change in each cell's P(satisfied) vs the base
  (first scheme, mean over seeds); cells that are down in the variant are grey (light, outlined: down for part of
  the horizon, so their P over the other periods is not compared).

``write_report(out, study, results, summary)`` returns the Markdown path. Inputs are the runner's
(``slicing/runtime/whatif.py``); this module only draws and writes.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from slicing.runtime.whatif import METRICS, RunResult
from slicing.sim.topology import cell_centroids
from slicing.study import BASE, LoadedStudy

LABELS = {"p_satisfied": "P(r >= 0.999)", "mean_r": "mean r", "utility": "utility (sum log(1 + r))",
          "prb_util": "PRB utilisation", "cells_violating": "violating cells (share)"}
MAP_MAX_VARIANTS = 12
ZOOM_MIN_CELLS = 3000  # larger networks get a second map panel zoomed on the cells that changed
ZOOM_CHANGE = 0.02  # ... by more than this in P(satisfied), or went down


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_deltas(path: Path, study: LoadedStudy, summary: dict[str, Any]) -> Path:
    plt = _plt()
    s = study.study
    variants = [n for n in study.names if n != BASE]
    fig, axes = plt.subplots(1, len(METRICS), figsize=(3.2 * len(METRICS), 3.4), squeeze=False)
    width = 0.8 / len(s.schemes)
    x = np.arange(len(variants))
    for ax, m in zip(axes[0], METRICS, strict=True):
        for j, scheme in enumerate(s.schemes):
            d = [summary["variants"][v]["by_scheme"][scheme]["delta_vs_base"][m] for v in variants]
            mean = np.array([e["mean"] for e in d])
            err = np.array([[e["mean"] - e["min"] for e in d], [e["max"] - e["mean"] for e in d]])
            ax.bar(x + (j - (len(s.schemes) - 1) / 2) * width, mean, width, yerr=err, capsize=2, label=scheme)
        ax.axhline(0.0, color="black", lw=0.6)
        ax.set_title(f"Δ {LABELS[m]}", fontsize=9)
        ax.set_xticks(x, variants, rotation=30, ha="right", fontsize=8)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"{s.name}: each variant minus the base ({len(s.seeds)} seeds; whiskers = min..max)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_series(path: Path, study: LoadedStudy, results: list[RunResult]) -> Path:
    plt = _plt()
    s = study.study
    scheme = s.schemes[0]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for ax, m in zip(axes, ("p_satisfied", "cells_violating"), strict=True):
        for name in study.names:
            runs = np.stack([r.series[m] for r in results if r.variant == name and r.scheme == scheme])  # [seeds, T]
            t = np.arange(runs.shape[1])
            line, = ax.plot(t, runs.mean(axis=0), lw=1.2 if name != BASE else 2.0, label=name,
                            color="black" if name == BASE else None)
            if len(runs) > 1:
                ax.fill_between(t, runs.min(axis=0), runs.max(axis=0), color=line.get_color(), alpha=0.15)
        ax.set_xlabel("period (15 min)")
        ax.set_title(f"{LABELS[m]}, scheme {scheme}", fontsize=10)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def cell_delta(study: LoadedStudy, results: list[RunResult], variant: str, scheme: str) -> tuple[np.ndarray, ...]:
    """(cell ids, change in P(satisfied) per cell vs the base (mean over seeds), down: cells never live)."""
    def mean_over_seeds(name: str, key: str) -> np.ndarray:
        return np.nanmean(np.stack([r.cells[key] for r in results if r.variant == name and r.scheme == scheme]),
                          axis=0)

    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # nanmean of a cell down in every seed
        p_var, p_base = mean_over_seeds(variant, "p_satisfied"), mean_over_seeds(BASE, "p_satisfied")
        live_var = mean_over_seeds(variant, "live")
    ids = next(r.cells["cell_id"] for r in results if r.variant == variant)
    return ids, p_var - p_base, live_var < study.study.periods  # a cell down for part of the horizon


def plot_map(path: Path, study: LoadedStudy, results: list[RunResult], variant: str) -> Path:
    plt = _plt()
    from matplotlib.colors import TwoSlopeNorm

    s = study.study
    scheme = s.schemes[0]
    sc = study.scenarios[variant]
    ids, delta, down = cell_delta(study, results, variant, scheme)
    xy = cell_centroids(sc.topology, ids) / 1000.0  # [N, 2] km
    n = len(ids)
    never = np.isnan(delta)  # down in every period (or never carried a slice)
    part = down & ~never  # down for part of the horizon: its P over the live periods is not comparable
    ok = ~never & ~part
    span = max(0.05, float(np.nanmax(np.abs(delta[ok]))) if ok.any() else 0.05)
    norm = TwoSlopeNorm(vcenter=0.0, vmin=-span, vmax=span)
    isd_km = sc.topology.isd_m / 1000.0
    changed = down | never | (np.abs(np.nan_to_num(delta)) > ZOOM_CHANGE)
    zoom = n > ZOOM_MIN_CELLS and changed.any()
    fig, axes = plt.subplots(1, 2 if zoom else 1, figsize=(13.5 if zoom else 7.5, 6.2), squeeze=False)
    views = [np.ones(n, dtype=bool)]
    if zoom:  # the whole network hides a local change: a second panel on the cells that changed, padded
        lo, hi = xy[changed].min(axis=0) - 3 * isd_km, xy[changed].max(axis=0) + 3 * isd_km
        views.append(np.all((xy >= lo) & (xy <= hi), axis=1))
    for ax, view in zip(axes[0], views, strict=True):
        extent = float(max(np.ptp(xy[view, 0]), np.ptp(xy[view, 1]))) + isd_km  # km the axes span, about
        size = float(np.clip((0.6 * isd_km * 400.0 / extent) ** 2, 0.05, 900.0))  # ~ a sector's width, points^2
        o, pt, nv = ok & view, part & view, never & view
        sc_ = ax.scatter(xy[o, 0], xy[o, 1], c=delta[o], s=size, marker="h", cmap="RdBu", norm=norm, linewidths=0)
        if pt.any():
            ax.scatter(xy[pt, 0], xy[pt, 1], s=size, marker="h", facecolors="0.85", edgecolors="0.2",
                       linewidths=0.6 if size > 4 else 0, label="down part of the horizon")
        if nv.any():
            ax.scatter(xy[nv, 0], xy[nv, 1], c="0.55", s=size, marker="h", linewidths=0, label="down all horizon")
        if pt.any() or nv.any():
            ax.legend(fontsize=8, loc="upper right")
        ax.set_xlabel("x (km)")
        ax.set_ylabel("y (km)")
        ax.set_aspect("equal")
    if zoom:
        axes[0][1].set_title(f"zoom: the {int(changed.sum())} cells that changed by > {ZOOM_CHANGE:g} or went "
                             "down, and around them", fontsize=9)
    fig.colorbar(sc_, ax=axes[0][-1], label="Δ P(r >= 0.999) of the cell vs base")
    lost = int(((delta < -0.01) & ok).sum())
    axes[0][0].set_title(f"{s.name} / {variant} ({scheme}): {lost} of {n} cells lose > 1 pt of P(satisfied)",
                         fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _fmt(e: dict[str, float], digits: int = 4) -> str:
    if e["min"] == e["max"]:
        return f"{e['mean']:+.{digits}f}"
    return f"{e['mean']:+.{digits}f} [{e['min']:+.{digits}f}, {e['max']:+.{digits}f}]"


def write_report(out: Path, study: LoadedStudy, results: list[RunResult], summary: dict[str, Any],
                 run_info: dict[str, Any]) -> Path:
    """report.md with the figures beside it; ``run_info``: wall_s, cell_periods_per_s, cells, periods, paths."""
    s = study.study
    out.mkdir(parents=True, exist_ok=True)
    figs = [plot_deltas(out / "deltas.png", study, summary), plot_series(out / "series.png", study, results)]
    variants = [n for n in study.names if n != BASE]
    maps = [plot_map(out / f"map_{v}.png", study, results, v) for v in variants[:MAP_MAX_VARIANTS]]
    lines = [f"# What-if study: {s.name}", ""]
    if s.description:
        lines += [s.description.strip(), ""]
    lines += [f"Study file `{study.path}`; {study.cells} cells, {s.periods} periods, schemes "
              f"{', '.join(s.schemes)}, seeds {', '.join(map(str, s.seeds))}, {s.shards} shard(s) per run. "
              f"{len(results)} runs in {run_info['wall_s']:.1f} s ({run_info['cell_periods_per_s']:.0f} "
              "cell-periods/s).", "",
              "Each figure is the mean over seeds; a delta is the variant minus the base with the same seed (same "
              "traffic realisation), shown as mean [min, max] over seeds. P(satisfied) counts active (cell, slice, "
              "period) with r >= 0.999; utility, PRB utilisation and violating cells (any active slice below 0.999) "
              "are per live cell and period (a cell of a site that is down is not live).", ""]
    for scheme in s.schemes:
        lines += [f"## Scheme {scheme}", "",
                  "| variant | " + " | ".join(LABELS[m] for m in METRICS) + " |",
                  "|---|" + "---|" * len(METRICS)]
        for name in study.names:
            bs = summary["variants"][name]["by_scheme"][scheme]
            cells = [f"{bs[m]['mean']:.4f}" + ("" if name == BASE else f" ({_fmt(bs['delta_vs_base'][m])})")
                     for m in METRICS]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Variants", ""]
    for v in s.variants:
        what = [*(f"`{o}`" for o in v.set), *(f"{e.get('kind', '?')} event" for e in v.events)]
        lines.append(f"- **{v.name}**: {v.description or ''} ({', '.join(what) or 'no change'})")
    lines += ["", "## Figures", ""]
    lines += [f"![{f.stem}]({f.name})" for f in figs]
    lines += ["", "Maps: the change of each cell's P(satisfied) vs the base (blue better, red worse).", ""]
    lines += [f"![{m.stem}]({m.name})" for m in maps]
    if len(variants) > MAP_MAX_VARIANTS:
        lines.append(f"(maps of the first {MAP_MAX_VARIANTS} variants only)")
    lines += ["", "## Data", ""]
    lines += [f"- `{p.name}`: {what}" for p, what in (
        (run_info["paths"]["runs"], "one row per run (variant, scheme, seed) with the metrics"),
        (run_info["paths"]["series"], "per run and period"),
        (run_info["paths"]["cells"], "per run and cell over the horizon"))]
    if "kpis" in run_info["paths"]:
        lines.append(f"- `{run_info['paths']['kpis'].name}`: per run, period, cell and active slice")
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
