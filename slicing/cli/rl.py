"""`slicing train-rl`: per-cell slicing policies with RLlib, saved as a checkpoint."""

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


@app.command("train-rl")
@guarded
def train_rl_cmd(
    scenario: ScenarioOpt = None,
    overrides: SetOpt = None,
    algo: str = typer.Option("ppo", help="ppo | sac (twin-Q SAC, standing in for TD3)"),
    groups: int = typer.Option(1, min=1, help="policies: contiguous groups of cells, 1 = one shared policy"),
    iterations: int = typer.Option(5, min=1, help="RLlib training iterations"),
    cells: int | None = typer.Option(None, min=1, help="region size: cells 0..N-1 (default: all of the scenario)"),
    episode_len: int = typer.Option(96, "--episode-len", min=1, help="periods per episode (96 = one day)"),
    reward: str = typer.Option("min", help="min (min over active slices of r) | sum_log (sum log(1 + r))"),
    out: Path = typer.Option(Path("out/rl"), "--out", help="folder; the checkpoint goes to OUT/checkpoint"),
    json_out: JsonOpt = False,
) -> None:
    """Train per-cell slicing policies with RLlib (multi-agent, one agent per cell) and save a checkpoint."""
    from slicing.rl.train import ALGOS, TrainSettings, train

    if algo not in ALGOS:
        raise typer.BadParameter(f"--algo {algo!r}: choose from {list(ALGOS)}")
    if reward not in ("min", "sum_log"):
        raise typer.BadParameter(f"--reward {reward!r}: choose from ['min', 'sum_log']")
    sc = load(scenario, overrides)
    n = min(cells, sc.cells) if cells else sc.cells
    if groups > n:
        raise typer.BadParameter(f"--groups {groups}: at most one group per cell ({n} cells in the region)")
    settings = TrainSettings(algo=algo, groups=groups, iterations=iterations, region=n, episode_len=episode_len,
                             reward=reward, seed=sc.seed)
    with progress_bar() as bar:
        task = bar.add_task(f"train {algo}", total=iterations)

        def show(i: int, result: dict) -> None:
            ret = result.get("env_runners", {}).get("episode_return_mean")
            label = f"train {algo}" + (f" (episode return {ret:.2f})" if isinstance(ret, float) and ret == ret else "")
            bar.update(task, completed=i, description=label)

        summary = train(sc, settings, out, progress=show)
    mean = summary["mean_reward"]
    console.print(f"{summary['iterations']} iterations, {summary['agent_steps']} agent steps "
                  f"({summary['env_steps']} env steps), mean reward per agent-period "
                  f"{'n/a' if mean is None else f'{mean:.4f}'}; checkpoint {summary['checkpoint']}")
    emit_json(json_out, summary)
