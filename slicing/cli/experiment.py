"""`slicing experiment safety|imitation|transfer|microopt|twin`: one paper experiment each, figures and a JSON line."""

from __future__ import annotations

from pathlib import Path

import typer

from slicing.cli import tables
from slicing.cli.app import experiment_app
from slicing.cli.common import (
    JsonOpt,
    ModelOptions,
    OutOpt,
    ScenarioOpt,
    SetOpt,
    emit_json,
    guarded,
    load_or_default,
    options_from,
    progress_bar,
    stage_progress,
)
from slicing.errors import FieldError
from slicing.experiments.microopt_settings import PARTS as MICROOPT_PARTS
from slicing.experiments.microopt_settings import MicroOptExperimentSettings
from slicing.rl.settings import ImitationSettings, SafetySettings, TransferSettings, TwinSettings

TWIN_PARTS = ("train", "distill", "offline", "landscape", "multicell")

SAFETY_FLAGS = {"cells": "--cells", "iterations": "--iterations", "warmup": "--warmup",
                "refit_every": "--refit-every", "eval_days": "--eval-days", "threshold": "--threshold",
                "target": "--target", "switch_penalty": "--switch-penalty"}
IMITATION_FLAGS = {"cells": "--cells", "days": "--days", "episode_len": "--episode-len",
                   "bc_iterations": "--bc-iterations", "iterations": "--iterations", "early": "--early",
                   "algo": "--algo"}
TRANSFER_FLAGS = {"iterations": "--iterations", "early": "--early", "pretrain_iterations": "--pretrain-iterations",
                  "sources": "--sources", "strategies": "--strategies", "episode_len": "--episode-len",
                  "sample_episodes": "--sample-episodes"}
MICROOPT_FLAGS = {"seed": "--seed", "model": "--model", "epochs": "--epochs", "atlas_iterations": "--atlas-iterations",
                  "cadrl_iterations": "--cadrl-iterations", "cadrl_plus_iterations": "--cadrl-plus-iterations",
                  "rl_batch": "--rl-batch",
                  "sigma_mean": "--sigma-mean", "sigma_max": "--sigma-max", "slots": "--slots",
                  "gt_intervals": "--gt-intervals", "domain_slices": "--domain-slices",
                  "domain_iterations": "--domain-iterations"}

# ------------------------------------------------------------------------------- experiment safety (paper 003)

@experiment_app.command("safety")
@guarded
@options_from(SafetySettings, SAFETY_FLAGS)
def experiment_safety_cmd(
    scenario: ScenarioOpt = None,
    overrides: SetOpt = None,
    out: Path = typer.Option(Path("out/safety"), "--out", help="folder for safety.png, summary.json, checkpoints"),
    json_out: JsonOpt = False,
    *,
    options: ModelOptions,
) -> None:
    """Safe DRL (paper 003): Lagrangian PPO learning online without vs with baseline switching (Fig. 4b).

    Two runs of the same agent, same seeds and traffic days; the headline is each run's violation rate over its
    online learning (after the shared warm-up). Without --scenario: scenarios/idla.yaml (else the defaults) at
    traffic.load_scale=0.4, where the traffic baseline rarely violates (the paper's premise); --set overrides
    apply after that. Set PYTHONHASHSEED (e.g. 0) to repeat a run exactly.
    """
    import os

    from slicing.experiments.safety import DEFAULT_OVERRIDES, run_safety_experiment

    sc = load_or_default(scenario, overrides, DEFAULT_OVERRIDES)
    settings = options.build(context={"scenario": sc}, seed=sc.seed)
    if os.environ.get("PYTHONHASHSEED") is None:
        typer.echo("note: PYTHONHASHSEED is unset; RLlib orders agents through Python sets, so this run repeats "
                   "exactly only with e.g. PYTHONHASHSEED=0", err=True)
    with progress_bar() as bar:
        show = stage_progress(bar)
        res = run_safety_experiment(sc, settings, out, progress=show)
    tables.print_safety(res, settings)
    emit_json(json_out, res)


# ---------------------------------------------------------------------------- experiment imitation (paper 003)

@experiment_app.command("imitation")
@guarded
@options_from(ImitationSettings, IMITATION_FLAGS)
def experiment_imitation_cmd(
    scenario: ScenarioOpt = None,
    overrides: SetOpt = None,
    out: Path | None = OutOpt,
    json_out: JsonOpt = False,
    *,
    options: ModelOptions,
) -> None:
    """Behaviour-clone the traffic-proportional baseline with RLlib BC and warm-start RL from it (paper 003, V-C).

    Scenario: scenarios/idla.yaml when present and --scenario is not given. Prints the per-iteration reward of the
    warm-started and the scratch run; writes OUT (default out/imitation)/imitation_learning_curve.png, the
    rollouts Parquet and summary.json.
    """
    from slicing.experiments.imitation import run_imitation_experiment

    sc = load_or_default(scenario, overrides)
    cells = options.values["cells"]
    s = options.build(cells=min(cells, sc.cells) if cells else None, seed=sc.seed)
    with progress_bar() as bar:
        show = stage_progress(bar)
        res = run_imitation_experiment(sc, s, out or Path("out/imitation"), progress=show)
    tables.print_imitation(res)
    emit_json(json_out, res)


# ----------------------------------------------------------------------------- experiment transfer (paper 002)

@experiment_app.command("transfer")
@guarded
@options_from(TransferSettings, TRANSFER_FLAGS)
def experiment_transfer_cmd(
    scenario: ScenarioOpt = None,
    overrides: SetOpt = None,
    out: Path = typer.Option(Path("out/transfer"), "--out", help="folder: plots, summary.json, checkpoints"),
    json_out: JsonOpt = False,
    *,
    options: ModelOptions,
) -> None:
    """Similarity-guided transfer (paper 002): rank 4 pre-trained sources by VAE distance, transfer to a new group.

    Without --scenario: scenarios/idla.yaml at topology.sites=5 (15 cells: 4 source groups + the target group,
    made heterogeneous by the experiment's cell classes unless the scenario defines its own cell_classes).
    """
    from slicing.experiments.transfer import heterogeneous, run_transfer_experiment

    sc = load_or_default(scenario, overrides, ["topology.sites=5"])
    settings = options.build(seed=sc.seed)
    try:
        heterogeneous(sc)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    with progress_bar() as bar:
        show = stage_progress(bar)
        res = run_transfer_experiment(sc, settings, out, progress=show)
    tables.print_transfer(res)
    emit_json(json_out, res)


# ----------------------------------------------------------------------------- experiment microopt (paper 001)

@experiment_app.command("microopt")
@guarded
@options_from(MicroOptExperimentSettings, MICROOPT_FLAGS)
def experiment_microopt_cmd(
    part: str = typer.Option("model", "--part", help=f"one of {', '.join(MICROOPT_PARTS)}"),
    out: Path = typer.Option(Path("out/microopt"), "--out", help="folder: the slice model, figures, <part>.json"),
    json_out: JsonOpt = False,
    *,
    options: ModelOptions,
) -> None:
    """MicroOpt (paper 001): the slice model's fit, MicroOpt against Peak-alloc, Atlas(+) and CaDRL(+), the
    ablation, allocations checked on the ground-truth simulator, per-domain agents (docs/microopt.md).

    model: Table/Fig. 4; constant: Table I; thresholds: Fig. 6; dynamic: Figs. 7-8; ablation: Fig. 9;
    groundtruth: Fig. 10; domains: paper 003's per-domain agents vs MicroOpt + SLA decomposition. The parts
    after `model` reuse OUT/slice_model.pt (or --model) and train it first when it is missing.
    """
    from slicing.experiments.microopt import run_microopt_experiment

    if part not in MICROOPT_PARTS:
        raise typer.BadParameter(f"--part {part!r}: must be one of {', '.join(MICROOPT_PARTS)}")
    s = options.build()
    with progress_bar() as bar:
        show = stage_progress(bar)
        res = run_microopt_experiment(part, s, out, progress=show)
    tables.print_microopt(res)
    emit_json(json_out, res)


# ------------------------------------------------------------------------------- experiment twin (paper 004)

TWIN_FLAGS = {"algo": "--algo", "seeds": "--seeds", "rounds": "--rounds", "steps_per_round": "--steps-per-round",
              "twin_steps": "--twin-steps", "zeta": "--zeta", "twin_updates": "--twin-updates",
              "epsilon_steps": "--epsilon-steps", "learning_starts": "--learning-starts",
              "distill_epochs": "--distill-epochs", "eval_steps": "--eval-steps",
              "offline_transitions": "--offline-transitions", "offline_epochs": "--offline-epochs",
              "upsilon": "--upsilon", "landscape_points": "--landscape-points", "twin": "--twin",
              "hidden": "--hidden", "twin_hidden": "--twin-hidden", "twin_seq_len": "--twin-seq-len",
              "scenario": "--scenario", "h1_periods": "--h1-periods", "round_periods": "--round-periods",
              "twin_periods": "--twin-periods"}


@experiment_app.command("twin")
@guarded
@options_from(TwinSettings, TWIN_FLAGS)
def experiment_twin_cmd(
    part: str = typer.Option("train", "--part", help=f"one of {', '.join(TWIN_PARTS)}"),
    out: Path = typer.Option(Path("out/twin"), "--out", help="folder: agents, figures, <part>.json"),
    json_out: JsonOpt = False,
    *,
    options: ModelOptions,
) -> None:
    """Digital-twin-enhanced DRL (paper 004): Algorithm 1 with RLlib DQN/DDQN/dueling DDQN against the same agent
    without the twin and a random policy; distillation, offline RL, loss landscapes (docs/twin.md).

    train: Figs. 5-6; distill: Fig. 8; offline: Fig. 9; landscape: Fig. 7. distill and landscape reuse the
    agents train saved under OUT/agents/ALGO (and run train first when they are missing). multicell (beyond the
    paper): the same loop on the drl scheme's SAC cell agents of --scenario; does the twin shorten H1?
    """
    from slicing.experiments.twin import multicell_bounds, run_twin_experiment

    if part not in TWIN_PARTS:
        raise typer.BadParameter(f"--part {part!r}: must be one of {', '.join(TWIN_PARTS)}")
    s = options.build()
    if s.twin is not None:
        from slicing.models.twin import load_twin

        load_twin(s.twin)  # a bad file fails now (exit 2), not after the dataset is collected
    if part == "multicell":
        try:
            multicell_bounds(s)  # a bad scenario or budget fails now
        except FieldError as err:
            raise options.bad_parameter(err) from None
    with progress_bar() as bar:
        show = stage_progress(bar)
        res = run_twin_experiment(part, s, out, progress=show)
    tables.print_twin(res)
    emit_json(json_out, res)
