"""`slicing evaluate` and `slicing demo`: the IDLA paper's protocol with one progress bar per stage."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from slicing.cli.app import app
from slicing.cli.common import (
    JsonOpt,
    OutOpt,
    ScenarioOpt,
    SetOpt,
    console,
    emit_json,
    guarded,
    load,
    load_or_default,
    progress_bar,
)


@app.command()
@guarded
def evaluate(
    scenario: ScenarioOpt = None,
    overrides: SetOpt = None,
    schemes: str = typer.Option("idla,traffic,equal,oracle",
                                help="comma-separated: idla,traffic,equal,oracle,drl (drl: RLlib SAC agents, "
                                     "minutes at full length)"),
    steps: int | None = typer.Option(None, min=20, help="rescale the whole run to this many periods"),
    out: Path | None = OutOpt,
    diagnose: bool = typer.Option(False, "--diagnose", help="add the satisfaction breakdown: P(r >= theta) for "
                                                            "several theta, shortfalls, per slice (docs/idla.md)"),
    json_out: JsonOpt = False,
) -> None:
    """Run the IDLA paper's protocol (H0 collect, train, H1 allocate, H2 slice added) and compare schemes."""
    from slicing.cli.tables import comparison_table
    from slicing.experiments.idla import DRL, phase_bounds
    from slicing.experiments.idla import evaluate as run_evaluation
    from slicing.optim.schemes import SCHEMES, UnknownSchemeError

    names = [s.strip() for s in schemes.split(",") if s.strip()]
    if "rl" in names:
        raise UnknownSchemeError("--schemes: 'rl' needs a trained RL checkpoint and runs in the runtime "
                                 "(CellShard / Population scheme='rl'), not in evaluate; the RL baseline here "
                                 "is 'drl'")
    known = sorted(set(SCHEMES) - {"rl"} | {DRL})
    unknown = [n for n in names if n not in known]
    if not names or unknown or len(set(names)) != len(names):
        raise UnknownSchemeError(f"--schemes: unknown or repeated {unknown or names}; choose from {known}")
    sc = load(scenario, list(overrides or []) + ([f"steps={steps}"] if steps else []))
    if DRL in names:  # the RLlib baseline needs Ray; the other schemes run in this process
        from slicing.runtime.ray_util import local_ray

        with local_ray():
            result = _evaluate_with_progress(sc, names, run_evaluation, phase_bounds, diagnose)
    else:
        result = _evaluate_with_progress(sc, names, run_evaluation, phase_bounds, diagnose)
    summary = result.summary()
    console.print(comparison_table(summary))
    if diagnose:
        from slicing.experiments.idla_diagnose import satisfaction_breakdown

        summary["diagnosis"] = satisfaction_breakdown(result)
        for name, phases in summary["diagnosis"].items():
            for phase, d in phases.items():
                console.print(f"{name} {phase}: P(r >= theta) {d['p_at_least']}, unsatisfied shortfall median "
                              f"{d['shortfall']['median']}, per slice "
                              f"{ {k: v['p_satisfied'] for k, v in d['per_slice'].items()} }")
    if out is not None:
        from slicing.experiments.idla_plots import write_plots

        for path in write_plots(result, out):
            console.print(f"plot: {path}")
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
    emit_json(json_out, summary)


def _evaluate_with_progress(sc, names, run_evaluation, phase_bounds, estimate: bool = False):
    """Run the evaluation with one bar per stage; a bar's clock starts when its stage does."""
    h0_end, _ = phase_bounds(sc)
    with progress_bar() as bar:
        tasks = {"H0 collect": bar.add_task("H0 collect", total=h0_end, start=False)}
        tasks["train"] = bar.add_task("train estimator", total=sc.estimator.epochs, start=False)
        for n in names:
            if n == "drl":  # its own agents are in control from period 0
                tasks[n] = bar.add_task("drl H0+H1+H2 (RLlib SAC)", total=sc.steps, start=False)
            else:
                tasks[n] = bar.add_task(f"{n} H1+H2", total=sc.steps - h0_end, start=False)

        def advance(stage: str, completed: int | None = None, step: int = 0) -> None:
            task = tasks[stage]
            if not bar.tasks[task].started:
                bar.start_task(task)
            if completed is None:
                bar.advance(task, step)
            else:
                bar.update(task, completed=completed)

        return run_evaluation(
            sc, names,
            progress=lambda stage, k: advance(stage, step=k),
            train_progress=lambda e, loss: advance("train", completed=e),
            estimate=estimate,
        )



@app.command()
@guarded
def demo(
    out: Path = typer.Option(Path("out"), help="folder for plots and the summary"),
    steps: int = typer.Option(1500, min=100, help="length of the shortened IDLA evaluation"),
    cells: int = typer.Option(20_000, min=3, help="population of the benchmark part"),
) -> None:
    """A shortened IDLA evaluation on scenarios/idla.yaml (table + plots) and a 20k-cell benchmark."""
    from slicing.bench.core import bench_core
    from slicing.cli.tables import comparison_table
    from slicing.experiments.idla import evaluate as run_evaluation
    from slicing.experiments.idla import phase_bounds
    from slicing.experiments.idla_plots import write_plots

    sc = load_or_default(None, None, [f"steps={steps}", "name=idla-demo"])
    console.rule(f"1/2  IDLA experiment, {sc.cells} cells, {steps} periods (full length: slicing evaluate)")
    result = _evaluate_with_progress(sc, ["idla", "traffic", "equal", "oracle"], run_evaluation, phase_bounds)
    summary = result.summary()
    console.print(comparison_table(summary))
    plots = write_plots(result, out / "idla")
    console.rule(f"2/2  benchmark, {cells} cells in one process")
    b = bench_core(cells, 0, log=console.print)
    console.print(f"sim step {b['sim_step_s']:.3f} s, IDLA allocation {b['allocate_s']:.2f} s "
                  f"= {b['cells_per_s']:.0f} cells/s, utility vs 0.05-grid oracle {b['utility_vs_grid_oracle']:.4f}")
    console.rule("done")
    for p in plots:
        console.print(f"plot: {p}")
    console.print("next: `slicing evaluate --scenario scenarios/idla.yaml --out out/idla` for the full-length run")
