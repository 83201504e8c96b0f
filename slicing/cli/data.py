"""`slicing collect` and `slicing train-estimator`: KPI samples to Parquet, the IDLA estimator from them."""

from __future__ import annotations

from pathlib import Path

import typer

from slicing.cli.app import app
from slicing.cli.common import (
    JsonOpt,
    ScenarioOpt,
    SetOpt,
    console,
    emit_json,
    guarded,
    load,
    progress_bar,
)


@app.command()
@guarded
def collect(
    scenario: ScenarioOpt = None,
    overrides: SetOpt = None,
    steps: int = typer.Option(1000, min=6, help="periods to simulate (the first H only fill the history)"),
    epsilon: float = typer.Option(0.5, min=0.0, max=1.0, help="probability a cell explores a random allocation"),
    augment: bool = typer.Option(True, help="apply IDLA's augmentation rules (1) and (2)"),
    out: Path = typer.Option(Path("out/samples.parquet"), help="Parquet file to write"),
    json_out: JsonOpt = False,
) -> None:
    """Simulate under an exploring behaviour policy and write KPI samples (x, z, r) to Parquet."""
    from slicing.data.parquet import write_samples
    from slicing.optim.rollout import collect as run_collect

    sc = load(scenario, overrides)
    with progress_bar() as bar:
        task = bar.add_task("collect", total=steps)
        samples = run_collect(sc, steps, epsilon, augment, sc.seed, lambda i, n: bar.update(task, completed=i))
    write_samples(samples, out, {"scenario": sc.name, "seed": sc.seed, "steps": steps, "epsilon": epsilon})
    augmented = int(samples["augmented"].sum())
    console.print(f"wrote {len(samples)} samples ({augmented} augmented) to {out}")
    emit_json(json_out, {"samples": len(samples), "augmented": augmented, "path": str(out)})


@app.command("train-estimator")
@guarded
def train_estimator_cmd(
    data: list[Path] = typer.Option(..., "--data", help="Parquet sample file(s) from `slicing collect`"),
    scenario: ScenarioOpt = None,
    overrides: SetOpt = None,
    out: Path = typer.Option(Path("out/estimator.pt"), help="where to save the estimator"),
    json_out: JsonOpt = False,
) -> None:
    """Train the IDLA QoS estimator f(x, z) (MLP, MAE loss, Adam, 75/25 split) and save it with its version."""
    from slicing.data.parquet import read_samples
    from slicing.data.samples import Samples
    from slicing.models.qos_estimator import save_estimator
    from slicing.models.qos_training import train_estimator

    sc = load(scenario, overrides)
    samples = Samples.concat([read_samples(p) for p in data])
    if len(samples) < 10:
        raise typer.BadParameter(f"--data holds only {len(samples)} samples; need at least 10")
    cfg = sc.estimator
    with progress_bar() as bar:
        task = bar.add_task("train", total=cfg.epochs)
        model, rep = train_estimator(samples.features(), samples.targets(), cfg, seed=sc.seed,
                                     progress=lambda e, loss: bar.update(task, completed=e,
                                                                         description=f"train (loss {loss:.4f})"))
    save_estimator(model, out)
    console.print(f"held-out MAE {rep.mae_test:.4f} (train {rep.mae_train:.4f}) on {rep.samples} samples; "
                  f"saved {out} version {model.version}")
    emit_json(json_out, {"mae": rep.mae_test, "mae_train": rep.mae_train, "samples": rep.samples,
                         "version": model.version, "path": str(out)})
