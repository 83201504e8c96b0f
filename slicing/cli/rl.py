"""`slicing train-rl`: per-cell slicing policies with RLlib, saved as a checkpoint."""

from __future__ import annotations

from pathlib import Path

import typer

from slicing.cli.app import app
from slicing.cli.common import (
    Flag,
    JsonOpt,
    ModelOptions,
    ScenarioOpt,
    SetOpt,
    console,
    emit_json,
    guarded,
    load,
    options_from,
    progress_bar,
)
from slicing.rl.settings import TrainSettings

TRAIN_FLAGS = {"algo": "--algo", "groups": "--groups",
               "iterations": Flag("--iterations", min=1, help="RLlib training iterations"),
               "region": Flag("--cells", help="region size: cells 0..N-1 (default: all of the scenario)"),
               "episode_len": "--episode-len", "reward": "--reward",
               "num_env_runners": Flag("--num-env-runners", help="remote EnvRunner actors sampling in parallel "
                                                                 "(spread over a cluster's nodes; 0: the driver)")}


@app.command("train-rl")
@guarded
@options_from(TrainSettings, TRAIN_FLAGS)
def train_rl_cmd(
    scenario: ScenarioOpt = None,
    overrides: SetOpt = None,
    out: Path = typer.Option(Path("out/rl"), "--out", help="folder; the checkpoint goes to OUT/checkpoint"),
    address: str | None = typer.Option(None, "--address", help="a running Ray cluster ('auto', host:port); default: "
                                                               "RAY_ADDRESS (set in a `ray job submit` job), else an "
                                                               "embedded local Ray"),
    json_out: JsonOpt = False,
    *,
    options: ModelOptions,
) -> None:
    """Train per-cell slicing policies with RLlib (multi-agent, one agent per cell) and save a checkpoint; on a
    cluster with --address or as a Ray job (`ray job submit --working-dir . -- slicing train-rl ...`)."""
    from slicing.rl.train import train
    from slicing.runtime.ray_util import ensure_ray

    sc = load(scenario, overrides)
    cells = options.values["region"]
    settings = options.build(context={"scenario": sc}, region=min(cells, sc.cells) if cells else sc.cells,
                             seed=sc.seed)
    ensure_ray(address=address)
    with progress_bar() as bar:
        task = bar.add_task(f"train {settings.algo}", total=settings.iterations)

        def show(i: int, result: dict) -> None:
            ret = result.get("env_runners", {}).get("episode_return_mean")
            label = f"train {settings.algo}" + (f" (episode return {ret:.2f})" if isinstance(ret, float) and ret == ret
                                                 else "")
            bar.update(task, completed=i, description=label)

        summary = train(sc, settings, out, progress=show)
    mean = summary["mean_reward"]
    console.print(f"{summary['iterations']} iterations, {summary['agent_steps']} agent steps "
                  f"({summary['env_steps']} env steps), mean reward per agent-period "
                  f"{'n/a' if mean is None else f'{mean:.4f}'}; checkpoint {summary['checkpoint']}")
    emit_json(json_out, summary)
