"""`slicing tune`: a Ray Tune sweep from a YAML file in tune_configs/."""

from __future__ import annotations

from pathlib import Path

import typer

from slicing.cli.app import app
from slicing.cli.common import (
    JsonOpt,
    SetOpt,
    console,
    emit_json,
    guarded,
    progress_bar,
)

# ------------------------------------------------------------------------------------------------ Tune sweeps


@app.command()
@guarded
def tune(
    file: Path = typer.Argument(..., help="sweep YAML (tune_configs/estimator.yaml, idla.yaml, sac.yaml)"),
    num_samples: int | None = typer.Option(None, "--num-samples", min=1, help="trials (default: the file's)"),
    storage_path: Path | None = typer.Option(None, "--storage-path", help="Tune's folder (default: the file's, "
                                                                          "out/tune)"),
    overrides: SetOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Run a Ray Tune sweep (estimator, IDLA or SAC hyperparameters) on local Ray; write the best configuration.

    --set adds scenario overrides to the file's. Prints the trials sorted by the metric and writes
    <storage_path>/<name>/best_config.yaml.
    """
    from rich.table import Table

    from slicing.sweeps.run import EXTRA_METRICS, SweepFailed, ensure_ray, run_sweep
    from slicing.sweeps.spec import load_sweep, sweep_scenario
    from slicing.sweeps.trainables import sac_trainable_factory

    sweep = load_sweep(file, num_samples=num_samples, storage_path=storage_path, extra_overrides=overrides)
    sweep_scenario(sweep)  # bad scenario keys fail before Ray starts
    if sweep.target == "sac":
        sac_trainable_factory()  # exits 2 with what is missing until slicing.rl provides the training function
    started = ensure_ray()
    try:
        with progress_bar() as bar:
            task = bar.add_task(f"tune {sweep.name}", total=sweep.num_samples)
            result = run_sweep(sweep, log=console.print, on_trial_done=lambda k: bar.update(task, completed=k))
    except SweepFailed as err:
        console.print(f"[bold red]error:[/bold red] {err}")
        raise typer.Exit(code=1) from None
    finally:
        if started:
            import ray

            ray.shutdown()
    keys = list(sweep.search_space)
    extras = list(EXTRA_METRICS[sweep.target])
    table = Table(title=f"{sweep.name}: {len(result.trials)} trials, {result.metric} ({result.mode}), best first")
    for col in ["trial", "status", *keys, result.metric, *extras, "reports"]:
        table.add_column(col, justify="right" if col not in ("trial", "status") else "left")
    for row in result.trials:
        table.add_row(row.trial_id, row.status, *[_cell(row.config.get(k)) for k in keys],
                      "-" if row.metric is None else f"{row.metric:.5f}",
                      *[_cell(row.extras.get(k, "-")) for k in extras], str(row.reports))
    if console.is_terminal:
        console.print(table)
    else:  # piped / captured: do not squeeze the table into 80 columns
        from rich.console import Console

        Console(width=160, highlight=False).print(table)
    console.print(f"best {result.metric} {result.best_metric:.6g} with {result.best_config}; "
                  f"wrote {result.best_config_path}")
    emit_json(json_out, result.summary())


def _cell(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
