"""The `slicing` command. Each subcommand reads top to bottom and calls the library.

Shared behaviour lives in ``slicing/cli_common.py``: --scenario/--set loading, bad input turned into one clear
line on stderr and exit code 2, progress bars on stderr, and ``--json`` printing one JSON object as the last line
of stdout.
"""

from __future__ import annotations

from pathlib import Path

import typer

from slicing.cli_common import (
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

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__.splitlines()[0])
bench_app = typer.Typer(add_completion=False, invoke_without_command=True,
                        help="Benchmarks: `slicing bench --cells N` times one simulator period and one IDLA "
                             "allocation in one process.")
app.add_typer(bench_app, name="bench")
experiment_app = typer.Typer(add_completion=False, no_args_is_help=True,
                             help="Reproduce a paper's experiment: one command each, a figure and a JSON line.")
app.add_typer(experiment_app, name="experiment")


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
    from slicing.data.collect import collect as run_collect
    from slicing.data.parquet import write_samples

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
    from slicing.models.qos_estimator import save_estimator, train_estimator

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
    json_out: JsonOpt = False,
) -> None:
    """Run the IDLA paper's protocol (H0 collect, train, H1 allocate, H2 slice added) and compare schemes."""
    from slicing.evaluation.protocol import DRL, phase_bounds
    from slicing.evaluation.protocol import evaluate as run_evaluation
    from slicing.evaluation.report import comparison_table
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
    started = False
    if DRL in names:
        import ray

        from slicing.rl.train import ensure_ray

        started = not ray.is_initialized()
        ensure_ray()
    try:
        result = _evaluate_with_progress(sc, names, run_evaluation, phase_bounds)
    finally:
        if started:
            ray.shutdown()
    summary = result.summary()
    console.print(comparison_table(summary))
    if out is not None:
        from slicing.evaluation.plots import write_plots

        for path in write_plots(result, out):
            console.print(f"plot: {path}")
        (out / "summary.json").write_text(__import__("json").dumps(summary, indent=2))
    emit_json(json_out, summary)


def _evaluate_with_progress(sc, names, run_evaluation, phase_bounds):
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
        )


@bench_app.callback()
@guarded
def bench(
    ctx: typer.Context,
    cells: int = typer.Option(20_000, min=3, max=3_000_000, help="population size (rounded up to whole sites)"),
    seed: int = typer.Option(0, min=0, help="seed of the benchmark scenario"),
    estimator: Path | None = typer.Option(None, help="a saved estimator (default: train a small one first)"),
    shards: int | None = typer.Option(None, min=1, help="run whole periods on K Ray shard actors instead "
                                                        "(slicing/runtime/bench.py)"),
    json_out: JsonOpt = False,
) -> None:
    """Time one simulator period and one IDLA allocation of N cells; compare IDLA with the 0.05-grid oracle."""
    if ctx.invoked_subcommand is not None:
        return
    if shards is not None:
        from slicing.runtime.bench import bench_population

        if shards > -(-cells // 3):
            raise typer.BadParameter(f"--shards {shards}: at most one shard per site ({-(-cells // 3)} sites)")
        result = bench_population(cells, shards, seed=seed, log=console.print, estimator=estimator)
        console.print(f"{result['cells']} cells on {shards} shard(s): round {result['round_s']:.2f} s (halo "
                      f"{result['halo_s']:.3f} s, step {result['step_s']:.2f} s, allocate {result['allocate_s']:.2f} s)"
                      f" = {result['cells_per_s']:.0f} cells/s")
        emit_json(json_out, result)
        return
    from slicing.bench import bench_core

    result = bench_core(cells, seed, log=console.print, estimator=estimator)
    console.print(f"{result['cells']} cells: sim step {result['sim_step_s']:.3f} s, IDLA {result['allocate_s']:.2f} s "
                  f"({result['cells_per_s']:.0f} cells/s), utility vs 0.05-grid oracle "
                  f"{result['utility_vs_grid_oracle']:.4f}")
    emit_json(json_out, result)


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


@app.command()
@guarded
def demo(
    out: Path = typer.Option(Path("out"), help="folder for plots and the summary"),
    steps: int = typer.Option(1500, min=100, help="length of the shortened IDLA evaluation"),
    cells: int = typer.Option(20_000, min=3, help="population of the benchmark part"),
) -> None:
    """A shortened IDLA evaluation on scenarios/idla.yaml (table + plots) and a 20k-cell benchmark."""
    from slicing.bench import bench_core
    from slicing.evaluation.plots import write_plots
    from slicing.evaluation.protocol import evaluate as run_evaluation
    from slicing.evaluation.protocol import phase_bounds
    from slicing.evaluation.report import comparison_table

    scenario_file = Path("scenarios/idla.yaml")
    sc = load(scenario_file if scenario_file.is_file() else None, [f"steps={steps}", "name=idla-demo"])
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


@bench_app.command("rl")
@guarded
def bench_rl_cmd(
    cells: int = typer.Option(48, min=3, max=3000, help="region size of the multi-agent env"),
    inference_cells: int = typer.Option(100_000, "--inference-cells", min=1, help="cells of the batched inference"),
    json_out: JsonOpt = False,
) -> None:
    """Agent steps/s of the multi-agent env alone and through RLlib sampling, and batched inference time."""
    from slicing.rl.bench import bench_rl

    emit_json(json_out, bench_rl(cells=cells, inference_cells=inference_cells, log=console.print))


# ------------------------------------------------------------------------------- experiment safety (paper 003)

# (slicing experiment safety: see slicing/rl/safety.py)


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

    from slicing.rl.safety import DEFAULT_OVERRIDES, SafetySettings, run_safety_experiment
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

# (slicing experiment imitation: see slicing/rl/imitation.py)


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
    from slicing.rl.imitation import ImitationSettings, run_imitation_experiment
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


# ----------------------------------------------------------------------------- transfer service (paper 002)

agents_app = typer.Typer(add_completion=False, no_args_is_help=True,
                         help="The transfer service's registry of trained cell agents (list, register, remove).")
app.add_typer(agents_app, name="agents")
RegistryOpt = typer.Option(Path("out/agents"), "--registry", help="registry folder of the transfer service")


def _transfer_service(scenario: Path | None, overrides: list[str] | None, registry: Path, **kwargs):
    """The TransferService actor on local Ray, over the registry folder (created if missing)."""
    from slicing.rl.train import ensure_ray
    from slicing.runtime.transfer_service import start_transfer_actor

    sc = load(scenario, overrides)
    ensure_ray()
    return start_transfer_actor(sc, registry, **kwargs)


def _remote(ref):
    """ray.get that turns the service's TransferError into the CLI's one-line error (exit 2)."""
    import ray

    from slicing.runtime.transfer_service import TransferError

    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as err:
        cause = getattr(err, "cause", None)
        if isinstance(cause, ValueError):
            raise TransferError(str(cause)) from None
        raise


@agents_app.command("list")
@guarded
def agents_list(scenario: ScenarioOpt = None, overrides: SetOpt = None, registry: Path = RegistryOpt,
                json_out: JsonOpt = False) -> None:
    """List the registered agents (name, status, cells, source, strategy, rewards)."""
    handle = _transfer_service(scenario, overrides, registry)
    agents = _remote(handle.agents.remote())
    for a in agents:
        console.print(f"{a['name']:<20} {a['status']:<9} cells {_span(a['cells'])}"
                      + (f"  from {a['source']} ({a['strategy']}, distance {a['distance']:.4g})" if a["source"] else ""))
    if not agents:
        console.print(f"no agents registered in {registry}")
    emit_json(json_out, {"agents": agents})


def _span(cells: list[int]) -> str:
    return f"{cells[0]}-{cells[-1]} ({len(cells)})" if len(cells) > 1 else str(cells[0])


@agents_app.command("register")
@guarded
def agents_register(
    name: str = typer.Argument(..., help="agent name (letters, digits, _ . -)"),
    checkpoint: Path = typer.Option(..., "--checkpoint", help="its RLlib checkpoint (slicing train-rl --out X: "
                                                            "X/checkpoint)"),
    cells: str = typer.Option(..., "--cells", help="its cells: ids and ranges, e.g. 0-5,9"),
    transitions: Path | None = typer.Option(None, "--transitions", help="its transitions (.npz) for instance "
                                                                         "transfer"),
    scenario: ScenarioOpt = None, overrides: SetOpt = None, registry: Path = RegistryOpt,
    replace: bool = typer.Option(False, "--replace", help="overwrite an agent of the same name"),
    json_out: JsonOpt = False,
) -> None:
    """Register a trained agent as a transfer source (collects its default-action samples)."""
    handle = _transfer_service(scenario, overrides, registry)
    rec = _remote(handle.register.remote(name, cells, str(checkpoint),
                                         None if transitions is None else str(transitions), replace))
    console.print(f"registered {rec['name']}: cells {_span(rec['cells'])}, {rec['samples']['count']} samples")
    emit_json(json_out, rec)


@app.command()
@guarded
def transfer(
    target: str = typer.Option(..., "--target", help="the target's cells: ids and ranges, e.g. 12-17"),
    name: str | None = typer.Option(None, "--name", help="name of the new agent (default: target-<cells>)"),
    source: str | None = typer.Option(None, "--source", help="source agent (default: the nearest in the VAE "
                                                             "latent space)"),
    strategy: str = typer.Option("integrated", help="model | instance | integrated | feature"),
    iterations: int = typer.Option(10, min=1, help="RLlib training iterations of the target"),
    method: str = typer.Option("mean", help="latent distance: mean (Lemma 1) | kl"),
    rank_only: bool = typer.Option(False, "--rank-only", help="print the ranking, do not train"),
    scenario: ScenarioOpt = None, overrides: SetOpt = None, registry: Path = RegistryOpt,
    json_out: JsonOpt = False,
) -> None:
    """Rank the registered agents by latent distance to TARGET and train a new agent by transfer from one."""
    from slicing.runtime.transfer_service import STRATEGIES

    if strategy not in STRATEGIES:
        raise typer.BadParameter(f"--strategy {strategy!r}: choose from {list(STRATEGIES)}")
    if method not in ("mean", "kl"):
        raise typer.BadParameter(f"--method {method!r}: choose from ['mean', 'kl']")
    agent = name or "target-" + target.replace(",", "_")
    handle = _transfer_service(scenario, overrides, registry)
    if rank_only:
        ranking = _remote(handle.rank_sources.remote(agent, target, method))
        _print_ranking(ranking)
        emit_json(json_out, {"target": agent, "ranking": ranking})
        return
    console.print(f"transfer to {agent} ({strategy}, {iterations} iterations) ...")
    out = _remote(handle.transfer.remote(agent, target, source, strategy, iterations, method, True))
    _print_ranking(out["ranking"])
    rec = out["agent"]
    if rec["status"] != "ready":
        console.print(f"[bold red]error:[/bold red] transfer failed: {rec['error']}")
        raise typer.Exit(code=1)
    console.print(f"{agent}: from {out['source']} ({strategy}); early reward {rec['early_reward']:.4f}, final "
                  f"{rec['final_reward']:.4f}; checkpoint {rec['checkpoint']}")
    emit_json(json_out, {"target": agent, "source": out["source"], "strategy": strategy,
                         "iterations": out["iterations"], "ranking": out["ranking"],
                         "early_reward": rec["early_reward"], "final_reward": rec["final_reward"],
                         "checkpoint": rec["checkpoint"]})


def _print_ranking(ranking: list[dict]) -> None:
    for k, r in enumerate(ranking, 1):
        console.print(f"  {k}. {r['source']:<20} distance {r['distance']:.5g}")


# ----------------------------------------------------------------------------- experiment transfer (paper 002)

# (slicing experiment transfer: see slicing/transfer/experiment.py)


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
    from slicing.transfer.experiment import heterogeneous, run_transfer_experiment
    from slicing.transfer.strategies import STRATEGIES

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

# ------------------------------------------------------------------------------------------ HTTP service (v1)


def _serve_settings(max_inflight: int | None, max_cells: int | None) -> dict:
    return {k: v for k, v in {"max_inflight_requests": max_inflight, "max_cells_per_request": max_cells}.items()
            if v is not None}


@app.command()
@guarded
def serve(
    host: str = typer.Option("127.0.0.1", help="HTTP address (0.0.0.0 exposes the service to the network)"),
    port: int = typer.Option(8000, min=1, max=65535, help="HTTP port"),
    cells: int | None = typer.Option(None, min=3, max=3_000_000,
                                     help="population size, rounded up to whole sites (default: 300, or the "
                                          "scenario's topology with --scenario)"),
    scenario: ScenarioOpt = None,
    overrides: SetOpt = None,
    period_s: float = typer.Option(900.0, "--period-s", min=0.01, help="advance the population every S seconds"),
    shards: int = typer.Option(2, min=1, help="population shards (Ray actors)"),
    estimator: Path | None = typer.Option(None, help="a saved estimator (default: train a small one, ~10 s)"),
    address: str = typer.Option("local", help="'local': an embedded Ray; 'auto' or host:port: join a cluster"),
    no_http: bool = typer.Option(False, "--no-http", help="cluster only: start the population (detached) and exit; "
                                                          "deploy the HTTP app with `serve deploy cluster/serve.yaml`"),
    max_inflight: int | None = typer.Option(None, min=1, help="requests in progress per replica before 503"),
    max_cells: int | None = typer.Option(None, min=1, help="cells per POST /v1/allocate before 413"),
) -> None:
    """Run the HTTP service (serve_app.py) on Ray Serve over a simulated, sharded population until Ctrl-C.

    POST /v1/kpis needs SLICING_API_TOKEN in the environment (else it answers 503).
    """
    import signal
    import time

    from slicing.serve_runner import LocalService

    if no_http and address == "local":
        raise typer.BadParameter("--no-http needs --address of a running cluster (the population would stop with "
                                 "this process)")
    sc = load(scenario, overrides) if (scenario is not None or overrides) else None
    n_cells = cells if cells is not None else (None if scenario is not None else 300)
    svc = LocalService(host=host, port=port, cells=n_cells, scenario=sc, shards=shards,
                       period_s=period_s, estimator=estimator, address=address,
                       settings=_serve_settings(max_inflight, max_cells), log=console.print)
    if no_http:
        svc.start_population()
        console.print("population started (detached); now `serve deploy cluster/serve.yaml`")
        return

    def _terminate(signum, frame):  # SIGTERM (e.g. ray job stop) shuts down like Ctrl-C
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        with svc:
            console.print(f"ready: {svc.base_url}/readyz, API docs {svc.base_url}/docs; Ctrl-C to stop")
            while True:
                time.sleep(1.0)
    except KeyboardInterrupt:
        console.print("shutting down")
    finally:
        signal.signal(signal.SIGTERM, previous)


@bench_app.command("serve")
@guarded
def bench_serve_cmd(
    cells: int = typer.Option(300, min=3, max=3_000_000, help="population size behind the GET endpoint"),
    shards: int = typer.Option(2, min=1, help="population shards"),
    requests_total: int = typer.Option(1000, "--requests", min=10, max=100_000, help="paced single-cell GETs"),
    rps: float = typer.Option(100.0, min=1.0, max=10_000.0, help="pace of the GETs (requests per second)"),
    estimator: Path | None = typer.Option(None, help="a saved estimator (default: train a small one first)"),
    json_out: JsonOpt = False,
) -> None:
    """Start the service on 127.0.0.1 (own local Ray) and time POST /v1/allocate (1,000 cells) and paced GETs."""
    from slicing.serve_runner import LocalService, bench_serve, free_port

    with LocalService(host="127.0.0.1", port=free_port(), cells=cells, shards=shards, period_s=900.0,
                      estimator=estimator, log=console.print) as svc:
        result = bench_serve(svc.base_url, svc.scenario.cells, allocate_cells=1000, rps=rps,
                             requests_total=requests_total, log=console.print)
    emit_json(json_out, result)


def main() -> None:  # pragma: no cover - console script
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
