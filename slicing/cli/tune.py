"""`slicing tune`: a Ray Tune sweep from a YAML file in tune_configs/."""

from __future__ import annotations

from pathlib import Path

import typer

from slicing.cli import tables
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
    address: str | None = typer.Option(None, "--address", help="a running Ray cluster ('auto', host:port); default: "
                                                               "RAY_ADDRESS (set in a `ray job submit` job), else an "
                                                               "embedded local Ray"),
    json_out: JsonOpt = False,
) -> None:
    """Run a Ray Tune sweep (estimator, IDLA or SAC hyperparameters) on local Ray or a cluster (--address, or as a
    Ray job); write the best configuration.

    --set adds scenario overrides to the file's. Prints the trials sorted by the metric and writes
    <storage_path>/<name>/best_config.yaml.
    """
    from slicing.runtime.ray_util import local_ray
    from slicing.sweeps.run import EXTRA_METRICS, SweepFailed, run_sweep
    from slicing.sweeps.spec import load_sweep, sweep_scenario

    sweep = load_sweep(file, num_samples=num_samples, storage_path=storage_path, extra_overrides=overrides)
    sweep_scenario(sweep)  # bad scenario keys fail before Ray starts
    try:
        with local_ray(address=address), progress_bar() as bar:
            task = bar.add_task(f"tune {sweep.name}", total=sweep.num_samples)
            result = run_sweep(sweep, log=console.print, on_trial_done=lambda k: bar.update(task, completed=k))
    except SweepFailed as err:
        console.print(f"[bold red]error:[/bold red] {err}")
        raise typer.Exit(code=1) from None
    tables.print_sweep(sweep, result, EXTRA_METRICS[sweep.target])
    console.print(f"best {result.metric} {result.best_metric:.6g} with {result.best_config}; "
                  f"wrote {result.best_config_path}")
    emit_json(json_out, result.summary())
