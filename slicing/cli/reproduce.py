"""`slicing reproduce`: every paper's headline experiment over seeds, one report beside the papers' numbers."""

from __future__ import annotations

from pathlib import Path

import typer

from slicing.cli.app import app
from slicing.cli.common import JsonOpt, ScenarioOpt, console, emit_json, guarded, progress_bar


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise typer.BadParameter(f"--seeds {text!r}: comma-separated integers, e.g. 0,1,2") from None
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise typer.BadParameter(f"--seeds {text!r}: distinct non-negative integers, e.g. 0,1,2")
    return seeds


@app.command()
@guarded
def reproduce(
    paper: str = typer.Argument("all", help="idla | tl | safety | imitation | microopt | twin | all"),
    quick: bool = typer.Option(False, "--quick", help="the quick budget: all papers in about 15 min on 2 cores"),
    budget: str | None = typer.Option(None, help="tiny | quick | full (default full; --quick = quick; tiny is the "
                                                 "tests' wiring check)"),
    seeds: str = typer.Option("0,1,2", help="comma-separated seeds: every headline is their mean ± std"),
    out: Path = typer.Option(Path("out/reproduce"), "--out", help="folder: report.md, report.html, every run"),
    scenario: ScenarioOpt = None,
    resume: bool = typer.Option(False, "--resume", help="reuse the runs already stored under OUT with the same "
                                                       "paper, seed, budget, settings and scenario (an interrupted "
                                                       "full run carries on where it stopped)"),
    json_out: JsonOpt = False,
) -> None:
    """Run each paper's headline experiment (the `evaluate` / `experiment` commands underneath) for every seed and
    write one report: per paper, a table *paper's number | ours | same direction?* and our figures beside the
    paper's figure they mirror, with settings, seeds and wall time (OUT/report.md, OUT/report.html)."""
    from slicing.experiments.reproduce import BUDGETS, PAPERS
    from slicing.experiments.reproduce import reproduce as run_all

    names = list(PAPERS) if paper == "all" else [paper]
    if paper != "all" and paper not in PAPERS:
        raise typer.BadParameter(f"PAPER {paper!r}: choose from {', '.join([*PAPERS, 'all'])}")
    if budget is not None and quick and budget != "quick":
        raise typer.BadParameter(f"--quick and --budget {budget}: give one of them")
    chosen = budget or ("quick" if quick else "full")
    if chosen not in BUDGETS:
        raise typer.BadParameter(f"--budget {chosen!r}: choose from {', '.join(BUDGETS)}")
    base = None
    if scenario is not None:
        from slicing.config import load_scenario

        base = load_scenario(scenario)
    seed_list = _seeds(seeds)
    with progress_bar() as bar:
        tasks: dict[str, int] = {}

        def show(stage: str, done: int, total: int) -> None:
            """One bar per stage of the current run ("paper seed N: stage"); a new run clears the last one's."""
            run = stage.split(":", 1)[0]
            for old in [k for k in tasks if k.split(":", 1)[0] != run]:
                bar.remove_task(tasks.pop(old))
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        res = run_all(names, seed_list, chosen, out, base, progress=show, log=console.print, resume=resume)
    for name, r in res["papers"].items():
        held = sum(c["holds"] for c in r["claims"])
        console.print(f"{name}: {held} of {len(r['claims'])} claims in the paper's direction ({r['wall_s']:.0f} s)")
    console.print(f"report: {res['report']} and {res['markdown']}")
    emit_json(json_out, res)
