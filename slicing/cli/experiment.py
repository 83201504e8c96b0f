"""`slicing experiment safety|imitation|transfer`: one paper experiment each, a figure and a JSON line."""

from __future__ import annotations

from pathlib import Path

import typer

from slicing.cli.app import experiment_app
from slicing.cli.common import (
    JsonOpt,
    OutOpt,
    ScenarioOpt,
    SetOpt,
    console,
    emit_json,
    guarded,
    load,
    progress_bar,
    stage_progress,
)

# ------------------------------------------------------------------------------- experiment safety (paper 003)

# (slicing experiment safety: see slicing/experiments/safety.py)


@experiment_app.command("safety")
@guarded
def experiment_safety_cmd(
    scenario: ScenarioOpt = None,
    overrides: SetOpt = None,
    cells: int = typer.Option(12, min=1, help="region size: cells 0..N-1 (capped at the scenario's cells)"),
    iterations: int = typer.Option(100, min=2, help="PPO iterations per run (one day of the region each), one "
                                                    "multiplier update per iteration"),
    warmup: int = typer.Option(5, min=1, help="first iterations, identical in both runs and left out of the "
                                              "headline, whose transitions train the first predictor"),
    refit_every: int = typer.Option(5, "--refit-every", min=1, help="refit the predictor every N iterations"),
    eval_days: int = typer.Option(5, "--eval-days", min=1, help="held-out days (the last days of the run)"),
    threshold: float = typer.Option(0.5, min=0.0, max=1.0, help="switch to the baseline when P(violation) > P"),
    target: float = typer.Option(0.05, min=0.0, max=1.0, help="constraint: violation rate <= TARGET"),
    switch_penalty: bool = typer.Option(True, "--switch-penalty/--no-switch-penalty",
                                        help="charge the agent c = 1 in its reward where it was switched"),
    out: Path = typer.Option(Path("out/safety"), "--out", help="folder for safety.png, summary.json, checkpoints"),
    json_out: JsonOpt = False,
) -> None:
    """Safe DRL (paper 003): Lagrangian PPO learning online without vs with baseline switching (Fig. 4b).

    Two runs of the same agent, same seeds and traffic days; the headline is each run's violation rate over its
    online learning (after the shared warm-up). Without --scenario: scenarios/idla.yaml (else the defaults) at
    traffic.load_scale=0.4, where the traffic baseline rarely violates (the paper's premise); --set overrides
    apply after that. Set PYTHONHASHSEED (e.g. 0) to repeat a run exactly.
    """
    import os

    from slicing.experiments.safety import DEFAULT_OVERRIDES, SafetySettings, run_safety_experiment
    from slicing.sim.traffic import PERIODS_PER_DAY

    if warmup >= iterations:
        raise typer.BadParameter(f"--warmup {warmup}: must be < --iterations ({iterations})")
    if scenario is None:
        default_file = Path("scenarios/idla.yaml")
        sc = load(default_file if default_file.is_file() else None, DEFAULT_OVERRIDES + list(overrides or []))
    else:
        sc = load(scenario, overrides)
    days = -(-sc.steps // PERIODS_PER_DAY)
    if eval_days >= days:
        raise typer.BadParameter(f"--eval-days {eval_days}: must leave training days (the run has {days} days)")
    if os.environ.get("PYTHONHASHSEED") is None:
        typer.echo("note: PYTHONHASHSEED is unset; RLlib orders agents through Python sets, so this run repeats "
                   "exactly only with e.g. PYTHONHASHSEED=0", err=True)
    settings = SafetySettings(cells=cells, iterations=iterations, warmup=warmup, refit_every=refit_every,
                              eval_days=eval_days, threshold=threshold, target=target,
                              switch_penalty=switch_penalty, seed=sc.seed)
    with progress_bar() as bar:
        show = stage_progress(bar)
        res = run_safety_experiment(sc, settings, out, progress=show)
    from rich.table import Table

    table = Table(title=f"safe DRL, {settings.cells} cells, threshold {threshold:g}: online learning (iterations "
                        f"{warmup + 1}-{iterations}) and final policies on held-out days {res['eval_days']}")
    for col in ("phase", "violation rate", "mean min r", "switch rate", "final lambda"):
        table.add_column(col, justify="left" if col == "phase" else "right")
    final = res["final_policy"]
    for run in ("without_switching", "with_switching"):
        sw = f"{res['switch_rate']:.4f}" if run == "with_switching" else "-"
        table.add_row(f"online, {run.replace('_', ' ')}", f"{res['violation_rate'][run]:.4f}",
                      f"{res['mean_reward'][run]:.4f}", sw, f"{res['lambda_final'][run]:.3f}")
    for run in ("without_switching", "with_switching"):
        sw = f"{final['switch_rate']:.4f}" if run == "with_switching" else "-"
        table.add_row(f"final policy, {run.replace('_', ' ')}", f"{final['violation_rate'][run]:.4f}",
                      f"{final['mean_reward'][run]:.4f}", sw, "")
    for name, label in (("switching_run_unshielded", "final policy of the switching run, unshielded"),
                        ("baseline", "traffic-proportional baseline")):
        table.add_row(label, f"{final[name]['violation_rate']:.4f}", f"{final[name]['mean_reward']:.4f}",
                      "1" if name == "baseline" else "-", "")
    console.print(table)
    pred = res["predictor"]
    console.print(f"warm-up ({warmup} iterations, shared): violation rate {res['warmup']['violation_rate']:.3f}; "
                  f"predictor refit {pred['refits']} times, last on {pred.get('samples', 0)} transitions: held-out "
                  f"accuracy {pred.get('accuracy', float('nan')):.3f} (majority class "
                  f"{pred.get('majority_accuracy', float('nan')):.3f}), AUC {pred.get('auc', float('nan')):.3f}; "
                  f"plot {res['plot']}")
    emit_json(json_out, res)

# ---------------------------------------------------------------------------- experiment imitation (paper 003)

# (slicing experiment imitation: see slicing/experiments/imitation.py)


@experiment_app.command("imitation")
@guarded
def experiment_imitation_cmd(
    scenario: ScenarioOpt = None,
    overrides: SetOpt = None,
    cells: int | None = typer.Option(None, min=1, help="region size: cells 0..N-1 (default: all of the scenario)"),
    days: int = typer.Option(10, min=1, help="baseline episodes recorded for behaviour cloning"),
    episode_len: int = typer.Option(96, "--episode-len", min=1, help="periods per episode (96 = one day)"),
    bc_iterations: int = typer.Option(200, "--bc-iterations", min=1, help="BC training iterations (one batch each)"),
    iterations: int = typer.Option(12, min=1, help="online RL iterations per curve (warm start and scratch)"),
    early: int = typer.Option(3, min=1, help="first iterations averaged into the early reward"),
    algo: str = typer.Option("ppo", help="ppo | sac: the online algorithm warm-started from BC"),
    out: Path | None = OutOpt,
    json_out: JsonOpt = False,
) -> None:
    """Behaviour-clone the traffic-proportional baseline with RLlib BC and warm-start RL from it (paper 003, V-C).

    Scenario: scenarios/idla.yaml when present and --scenario is not given. Prints the per-iteration reward of the
    warm-started and the scratch run; writes OUT (default out/imitation)/imitation_learning_curve.png, the
    rollouts Parquet and summary.json.
    """
    from slicing.experiments.imitation import ImitationSettings, run_imitation_experiment
    from slicing.rl.train import ALGOS

    if algo not in ALGOS:
        raise typer.BadParameter(f"--algo {algo!r}: choose from {list(ALGOS)}")
    if early > iterations:
        raise typer.BadParameter(f"--early {early}: must be <= --iterations ({iterations})")
    if scenario is None and Path("scenarios/idla.yaml").is_file():
        scenario = Path("scenarios/idla.yaml")
    sc = load(scenario, overrides)
    s = ImitationSettings(algo=algo, cells=min(cells, sc.cells) if cells else None, days=days,
                          episode_len=episode_len, bc_iterations=bc_iterations, iterations=iterations, early=early,
                          seed=sc.seed)
    with progress_bar() as bar:
        show = stage_progress(bar)
        res = run_imitation_experiment(sc, s, out or Path("out/imitation"), progress=show)
    _print_imitation(res)
    emit_json(json_out, res)


def _print_imitation(res: dict) -> None:
    from rich.table import Table

    def fmt(v: float | None) -> str:
        return "-" if v is None else f"{v:.4f}"

    warm, scratch = res["curves"]["bc_warm_start"], res["curves"]["scratch"]
    table = Table(title=f"{res['algo'].upper()}: mean reward per agent-period (baseline {res['baseline_reward']:.4f})")
    for col in ("iteration", "BC warm start", "scratch"):
        table.add_column(col, justify="right")
    for i, (w, c) in enumerate(zip(warm, scratch, strict=True)):
        table.add_row(str(i + 1) + (" *" if i < res["early_iterations"] else ""), fmt(w), fmt(c))
    console.print(table)
    e = res["early_reward"]
    console.print(f"BC loss {res['bc_loss_first']:.3f} -> {res['bc_loss']:.3f} ({res['rows']} recorded transitions); "
                  f"the clone on the recorded days: reward {res['clone_reward']:.4f}, share gap to the baseline "
                  f"{res['clone_share_gap']:.4f}")
    console.print(f"early reward (* iterations) warm start {fmt(e['bc_warm_start'])} vs scratch {fmt(e['scratch'])}; "
                  f"plot {res['plot']}")




# ----------------------------------------------------------------------------- experiment transfer (paper 002)

# (slicing experiment transfer: see slicing/experiments/transfer.py)


@experiment_app.command("transfer")
@guarded
def experiment_transfer_cmd(
    scenario: ScenarioOpt = None,
    overrides: SetOpt = None,
    iterations: int = typer.Option(8, min=1, help="SAC iterations of every target run (scratch and transfers)"),
    early: int = typer.Option(3, min=1, help="first iterations averaged into the early reward (the gain)"),
    pretrain_iterations: int = typer.Option(12, "--pretrain-iterations", min=1, help="SAC iterations per source"),
    sources: int = typer.Option(4, min=2, max=4, help="source agents (groups src_1..src_N)"),
    strategies: str = typer.Option("model,instance,integrated,feature", help="comma-separated transfer strategies "
                                   "compared from the nearest source (integrated is always run)"),
    episode_len: int = typer.Option(96, "--episode-len", min=1, help="periods per episode (96 = one day)"),
    sample_episodes: int = typer.Option(2, "--sample-episodes", min=1, help="default-action episodes per agent "
                                                                            "for the VAE"),
    out: Path = typer.Option(Path("out/transfer"), "--out", help="folder: plots, summary.json, checkpoints"),
    json_out: JsonOpt = False,
) -> None:
    """Similarity-guided transfer (paper 002): rank 4 pre-trained sources by VAE distance, transfer to a new group.

    Without --scenario: scenarios/idla.yaml at topology.sites=5 (15 cells: 4 source groups + the target group,
    made heterogeneous by the experiment's cell classes unless the scenario defines its own cell_classes).
    """
    from slicing.experiments.transfer import heterogeneous, run_transfer_experiment
    from slicing.rl.transfer import STRATEGIES

    names = [n.strip() for n in strategies.split(",") if n.strip()]
    bad = [n for n in names if n not in STRATEGIES]
    if bad or not names:
        raise typer.BadParameter(f"--strategies {strategies!r}: choose from {list(STRATEGIES)}")
    names = list(dict.fromkeys([*names, "integrated"]))
    if early > iterations:
        raise typer.BadParameter(f"--early {early}: must be <= --iterations ({iterations})")
    if scenario is None and Path("scenarios/idla.yaml").is_file():
        scenario = Path("scenarios/idla.yaml")
        overrides = ["topology.sites=5", *(overrides or [])]
    sc = load(scenario, overrides)
    try:
        heterogeneous(sc)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    with progress_bar() as bar:
        show = stage_progress(bar)
        res = run_transfer_experiment(sc, out, iterations=iterations, early=early, seed=sc.seed, progress=show,
                                      pretrain_iterations=pretrain_iterations, sources=sources, strategies=names,
                                      episode_len=episode_len, sample_episodes=sample_episodes)
    _print_transfer(res)
    emit_json(json_out, res)


def _print_transfer(res: dict) -> None:
    from rich.table import Table

    def fmt(v: float | None) -> str:
        return "-" if v is None else f"{v:+.4f}"

    table = Table(title=f"sources ranked by latent distance to the target (early = first {res['early_iterations']} "
                        f"of {res['iterations']} iterations)")
    for col in ("source", "distance", "integrated TL gain", "iterations to 95% of scratch's final"):
        table.add_column(col, justify="left" if col == "source" else "right")
    for row in res["ranking"]:
        n = row["source"]
        table.add_row(n, f"{row['distance']:.4f}", fmt(res["source_gains"][n]),
                      str(res["iterations_to_95pct_scratch_final"].get(f"integrated_{n}") or "-"))
    console.print(table)
    console.print("strategies from the nearest source (gain over scratch): "
                  + ", ".join(f"{k} {fmt(v)}" for k, v in res["strategies"].items()))
    def num(v: float | None) -> str:
        return "-" if v is None else f"{v:.4f}"

    console.print(f"scratch early {num(res['early_reward']['scratch'])}, final {num(res['final_reward']['scratch'])} "
                  f"(95% of it reached at iteration {res['iterations_to_95pct_scratch_final']['scratch'] or '-'}); "
                  f"traffic baseline {num(res['baseline_reward'])}; Spearman(distance, gain) "
                  f"{res['spearman_distance_gain']}; plots {res['plots']['curves']}, {res['plots']['distance_gain']}")
