"""The tables and summary lines the commands print (rich), apart from the commands that compute them."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from slicing.cli.common import console
from slicing.rl.settings import SafetySettings

COLUMNS = [("mean_satisfaction", "mean r"), ("p_satisfied", "P(r>=0.999)"), ("mean_utility", "utility"),
           ("max_share_sum", "max sum x")]


def comparison_table(summary: dict) -> Table:
    """One row per (scheme, phase); the best value of each column within a phase in bold."""
    t = Table(title=f"{summary['scenario']}: {summary['cells']} cells, {summary['steps']} periods, "
                    f"estimator MAE {summary['estimator']['mae']:.4f} (held out)")
    t.add_column("phase")
    t.add_column("scheme")
    for _, label in COLUMNS:
        t.add_column(label, justify="right")
    for phase in ("H1", "H2"):
        rows = {name: m[phase] for name, m in summary["schemes"].items()}
        best = {k: max(r[k] for r in rows.values()) for k, _ in COLUMNS[:3]}
        for i, (name, m) in enumerate(rows.items()):
            cells = [f"[bold]{m[k]:.4f}[/bold]" if best.get(k) == m[k] else f"{m[k]:.4f}" for k, _ in COLUMNS]
            t.add_row(phase if i == 0 else "", name, *cells, end_section=i == len(rows) - 1)
    return t


def print_safety(res: dict, settings: SafetySettings) -> None:
    warmup, iterations = settings.warmup, settings.iterations
    table = Table(title=f"safe DRL, {res['settings']['cells']} cells, threshold {settings.threshold:g}: online "
                        f"learning (iterations {warmup + 1}-{iterations}) and final policies on held-out days "
                        f"{res['eval_days']}")
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


def print_imitation(res: dict) -> None:
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


def print_transfer(res: dict) -> None:
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


def print_sweep(sweep: Any, result: Any, extra_metrics: tuple[str, ...]) -> None:
    """The trials of a Tune sweep, best first (wide when captured, so a pipe does not squeeze it)."""
    keys = list(sweep.search_space)
    extras = list(extra_metrics)
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
        Console(width=160, highlight=False).print(table)


def _cell(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def print_microopt(res: dict) -> None:
    """One table per ``slicing experiment microopt`` part: ours beside the paper's where the paper has a number."""
    part, paper = res["part"], res.get("paper", {})
    if part == "model":
        t = Table(title=f"slice model {res['version']}: ours (paper)")
        t.add_column("split")
        for m in ("nll", "mse", "mae"):
            t.add_column(m.upper(), justify="right")
        for split in ("train", "val", "test"):
            t.add_row(split, *[f"{res[m][split]:.3f} ({paper[m][split]:.2f})" for m in ("nll", "mse", "mae")])
        console.print(t)
    elif "mean_norm" in res and isinstance(res["mean_norm"], dict):
        saving_paper = paper.get("saving_pct", {})
        t = Table(title=f"microopt --part {part}: mean normalised resource (eta^T r) and MicroOpt's saving")
        for col in ("approach", "mean eta^T r", "saving %", "paper saving %", "max E\\[beta]-thresh"):
            t.add_column(col, justify="left" if col == "approach" else "right")
        excess = res.get("e_beta_excess", {})
        if not excess and isinstance(res.get("max_e_beta_excess"), dict):
            excess = res["max_e_beta_excess"]
        for name, v in res["mean_norm"].items():
            s, p = res.get("saving_pct", {}).get(name), saving_paper.get(name)
            e = excess.get(name)
            t.add_row(name, f"{v:.4f}", "" if s is None else f"{s:.2f}", "" if p is None else f"{p:.2f}",
                      "" if e is None else f"{e:+.4f}")
        console.print(t)
    elif part == "ablation":
        t = Table(title="microopt --part ablation: E\\[beta] on the full distribution (beta_thresh 0.1)")
        for col in ("approach", "mean eta^T r", "mean E\\[beta]", "distributions violating"):
            t.add_column(col, justify="left" if col == "approach" else "right")
        for name, v in res["approaches"].items():
            t.add_row(name, f"{v['mean_norm']:.4f}", f"{v['mean_e_beta']:.4f}", f"{v['violations']}/"
                      f"{res['distributions']}")
        console.print(t)
    elif part == "groundtruth":
        t = Table(title=f"microopt --part groundtruth: MicroOpt's allocations on the simulator "
                        f"({res['intervals']} intervals each)")
        for col in ("(q_thresh, beta_thresh)", "E\\[beta] simulator", "E\\[beta] model"):
            t.add_column(col, justify="right")
        for name, v in res["settings"].items():
            t.add_row(name, f"{v['e_beta_groundtruth']:.4f}", f"{v['e_beta_model']:.4f}")
        console.print(t)
        console.print(f"settings over beta_thresh on the simulator: {res['exceeding']} (paper: "
                      f"{paper.get('exceeding')})")
    elif part == "domains":
        t = Table(title=f"microopt --part domains: {res['slices']} unseen SLA-carrying slices")
        for col in ("approach", "mean eta^T r", "mean E\\[beta] model", "model violations", "simulator violation rate"):
            t.add_column(col, justify="left" if col == "approach" else "right")
        for name, v in res["approaches"].items():
            t.add_row(name, f"{v['mean_norm']:.4f}", f"{v['mean_e_beta']:.4f}", str(v["model_violations"]),
                      f"{v['groundtruth_violation_rate']:.3f}")
        console.print(t)
    else:
        console.print({k: v for k, v in res.items() if k not in ("paper", "plots")})
    console.print(f"figures: {', '.join(res.get('plots', []))}")


def _ms(v: dict) -> str:
    return f"{v['mean']:.3f} ± {v['std']:.3f}"


def print_twin(res: dict) -> None:
    """One table per ``slicing experiment twin`` part (mean ± std over seeds), the paper's finding below it."""
    part, paper = res["part"], res.get("paper", {})
    if part == "train":
        t = Table(title=f"twin --part train ({res['algo']}): Agent 1 in the real env, last 3 rounds")
        for col in ("arm", "final reward", "final utility", "rounds to reward 0.8 (per seed)"):
            t.add_column(col, justify="left" if col == "arm" else "right")
        per_seed = res["rounds_to_reward_per_seed"]["0.8"]
        for arm in res["final_reward"]:
            t.add_row(arm, _ms(res["final_reward"][arm]), _ms(res["final_utility"][arm]),
                      ", ".join("-" if v is None else str(v) for v in per_seed.get(arm, [])))
        console.print(t)
        console.print(f"twin fidelity (last round, held out): {res['twin_fidelity']}")
    elif part == "distill":
        t = Table(title=f"twin --part distill ({res['algo']}): greedy reward / utility on the real env")
        for col in ("teacher", "model", "reward", "utility", "agreement"):
            t.add_column(col, justify="left" if col in ("teacher", "model") else "right")
        for arm, by_h in res["students"].items():
            teacher = res["teachers"][arm]
            t.add_row(arm, "teacher", _ms(teacher["reward"]), _ms(teacher["utility"]), "")
            for h, v in by_h.items():
                t.add_row(arm, f"student {h}x{h}", _ms(v["reward"]), _ms(v["utility"]), _ms(v["agreement"]))
        console.print(t)
    elif part == "offline":
        t = Table(title=f"twin --part offline ({res['algo']}): Algorithm 2, {res['epochs']} epochs")
        for col in ("arm", "reward", "utility"):
            t.add_column(col, justify="left" if col == "arm" else "right")
        for arm, v in res["offline"].items():
            t.add_row(arm, _ms(v["reward"]), _ms(v["utility"]))
        console.print(t)
    elif part == "landscape":
        t = Table(title=f"twin --part landscape ({res['algo']}): curvature of the loss at lambda = 0")
        for col in ("direction", "plain", "twin", "flatter"):
            t.add_column(col, justify="left" if col == "direction" else "right")
        for kind, c in res["curvature"].items():
            t.add_row(kind, _ms(c["plain"]), _ms(c["twin"]), res["flatter"][kind])
        console.print(t)
    elif part == "multicell":
        levels = list(res["periods_to_level"])
        t = Table(title=f"twin --part multicell: drl cell agents of {res['scenario']}, {res['h1_periods']} H1 "
                        f"periods")
        for col in ("arm", f"reward, first {res['early_periods']}", f"reward, last {res['window']}",
                    "P(r >= 0.999)", *(f"periods to {lvl} x traffic (per seed)" for lvl in levels)):
            t.add_column(col, justify="left" if col == "arm" else "right")
        for arm in res["early_reward"]:
            m = res["h1_metrics"].get(arm)
            t.add_row(arm, _ms(res["early_reward"][arm]), _ms(res["final_reward"][arm]),
                      _ms(m["p_satisfied"]) if m else "",
                      *(", ".join("-" if v is None else str(v) for v in res["periods_to_level_per_seed"][lvl]
                                  .get(arm, [])) for lvl in levels))
        console.print(t)
        console.print(f"twin fidelity (held out): {res['twin_fidelity']}")
    if paper.get("finding"):
        console.print(f"paper: {paper['finding']}")
