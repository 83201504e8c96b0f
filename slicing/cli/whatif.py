"""`slicing whatif STUDY.yaml`: a what-if study's variants x schemes x seeds on Ray, with a report against the base."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from slicing.cli.app import app
from slicing.cli.common import JsonOpt, console, emit_json, guarded, progress_bar


@app.command()
@guarded
def whatif(
    study: Path = typer.Argument(..., help="a study file (studies/*.yaml)"),
    out: Path | None = typer.Option(None, "--out", help="folder for the Parquet results and report.md "
                                                        "(default out/whatif/<study name>)"),
    set_: list[str] = typer.Option([], "--set", help="override a study key, e.g. --set periods=8 (repeatable)"),
    address: str | None = typer.Option(None, "--address", help="a running Ray cluster ('auto', host:port); "
                                                                "default: RAY_ADDRESS, else a local Ray"),
    num_cpus: int = typer.Option(2, "--num-cpus", min=1, help="CPUs of the local Ray (ignored on a cluster)"),
    json_out: JsonOpt = False,
) -> None:
    """Run a what-if study: every variant and the base, under every scheme and seed, as Ray tasks with explicit
    resource requests (a cluster's autoscaler adds workers for them); write Parquet results and a report comparing
    each variant with the base (OUT/report.md with figures and a map)."""
    from slicing.experiments.whatif_report import write_report
    from slicing.runtime.ray_util import local_ray
    from slicing.runtime.whatif import run_study, summarise, write_results
    from slicing.study import load_study

    t0 = time.perf_counter()
    loaded = load_study(study, set_)
    s = loaded.study
    folder = out or Path("out/whatif") / s.name
    runs_per_variant = len(s.schemes) * len(s.seeds)
    console.print(f"study {s.name}: {len(loaded.names)} variants (with the base) x {len(s.schemes)} schemes x "
                  f"{len(s.seeds)} seeds = {len(loaded.names) * runs_per_variant} runs of {loaded.cells} cells x "
                  f"{s.periods} periods")
    with local_ray(num_cpus=num_cpus, address=address), progress_bar() as bar:
        tasks = {n: bar.add_task(n, total=runs_per_variant * s.periods) for n in loaded.names}

        def show(done: dict[str, int]) -> None:
            for name, periods in done.items():
                bar.update(tasks[name], completed=periods)

        t_runs = time.perf_counter()
        results = run_study(loaded, on_progress=show, log=console.print)
        runs_s = time.perf_counter() - t_runs
        show(dict.fromkeys(loaded.names, runs_per_variant * s.periods))
    paths = write_results(folder, results)
    summary = summarise(loaded, results)
    cell_periods = sum(r.cell_periods for r in results)
    info = {"wall_s": time.perf_counter() - t0, "runs_s": runs_s, "cell_periods_per_s": cell_periods / runs_s,
            "paths": paths}
    report = write_report(folder, loaded, results, summary, info)
    (folder / "summary.json").write_text(json.dumps(summary, indent=1))
    _table(loaded, summary)
    console.print(f"report: {report}")
    emit_json(json_out, {
        "study": s.name, "scheme": s.schemes[0],
        "variants": {n: {k: v for k, v in e.items() if k != "by_scheme"} for n, e in summary["variants"].items()},
        "cells": loaded.cells, "periods": s.periods, "runs": len(results), "wall_s": round(info["wall_s"], 2),
        "runs_s": round(runs_s, 2), "cell_periods_per_s": round(info["cell_periods_per_s"], 1),
        "report": str(report)})


def _table(loaded, summary: dict) -> None:
    from rich.table import Table

    from slicing.experiments.whatif_report import LABELS
    from slicing.runtime.whatif import METRICS

    for scheme in loaded.study.schemes:
        t = Table(title=f"{loaded.study.name}, scheme {scheme}: mean over seeds (delta vs base)")
        t.add_column("variant")
        for m in METRICS:
            t.add_column(LABELS[m], justify="right")
        for name, e in summary["variants"].items():
            bs = e["by_scheme"][scheme]
            t.add_row(name, *(f"{bs[m]['mean']:.4f}" + ("" if name == "base" else
                                                          f" ({bs['delta_vs_base'][m]['mean']:+.4f})")
                              for m in METRICS))
        console.print(t)
