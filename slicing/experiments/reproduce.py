"""`slicing reproduce`: every paper's headline experiment over several seeds, its claims beside ours.

Each paper (``PAPERS``: idla, tl, safety, imitation, microopt, twin) is a ``Paper``: how to run its experiment for one
seed at a budget (the existing experiment functions underneath: ``experiments.idla.evaluate``,
``run_transfer_experiment``, ``run_safety_experiment``, ``run_imitation_experiment``, ``run_microopt_experiment``,
``run_twin_experiment``), and its claims. A claim reads one number per seed from the runs (``Claim.ours``) and
compares it with the paper's (``Claim.holds``: the same direction, e.g. "below scratch", "above zero"); the headline
is the mean over the seeds with its spread and how many seeds hold it on their own.

Budgets: ``full`` is each experiment's documented paper-length setting (hours for all of them); ``quick`` is cut
down to fit the six papers x 3 seeds in about 15 minutes on 2 cores (its numbers are a smoke test of the direction,
not the paper-length figures); ``tiny`` is for the tests (seconds per run). ``reproduce()`` returns the JSON
``{"papers": {NAME: {"claims": [...], "figures": [...], ...}}, "report": path}``; the report itself is
``reproduce_report.py``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from slicing.config import Scenario, load_scenario

Budget = Literal["tiny", "quick", "full"]
BUDGETS: tuple[Budget, ...] = ("tiny", "quick", "full")
Progress = Callable[[str, int, int], None]  # (stage, done, total)
Log = Callable[[str], None]
DEFAULT_SCENARIO = Path("scenarios/idla.yaml")
RUN_FORMAT = "slicing.reproduce-run/1"  # done.json of a stored run (``run_paper``)


@dataclass(frozen=True)
class Claim:
    """One of a paper's headline statements. ``ours(run)`` reads our number from one seed's run (None when the run
    has none, e.g. a level never reached); ``holds(value)`` says whether that number points the paper's way."""

    text: str
    paper: str  # the paper's number or statement, as the report prints it
    where: str  # figure / table / section of the paper
    ours: Callable[[dict[str, Any]], float | None]
    holds: Callable[[float], bool]
    unit: str = ""
    budgets: tuple[str, ...] = ("tiny", "quick", "full")  # the budgets whose runs have what it needs


@dataclass(frozen=True)
class Figure:
    key: str  # how the run names the file (see ``Paper.figures``)
    mirrors: str  # which figure of the paper, and what it shows


@dataclass(frozen=True)
class Paper:
    name: str
    title: str
    run: Callable[[int, Budget, Path, Scenario | None, Progress | None], dict[str, Any]]
    claims: tuple[Claim, ...]
    figures: tuple[Figure, ...]
    settings: Callable[[Budget], dict[str, Any]]
    note: str = ""
    seeds_inside: bool = False  # the experiment runs every seed itself (twin): one run covers them all


@dataclass
class PaperResult:
    name: str
    claims: list[dict[str, Any]]
    figures: list[dict[str, str]]
    settings: dict[str, Any]
    seeds: list[int]
    wall_s: float
    runs: list[dict[str, Any]] = field(default_factory=list)

    def json(self) -> dict[str, Any]:
        return {"claims": self.claims, "figures": self.figures, "settings": self.settings, "seeds": self.seeds,
                "wall_s": self.wall_s}


# --------------------------------------------------------------------------------------------------- helpers

def spread(values: list[float | None]) -> dict[str, Any]:
    """Mean and sample standard deviation of the defined values, their count, and how many were undefined."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=np.float64)
    return {"mean": round(float(v.mean()), 4) if v.size else None,
            "std": round(float(v.std(ddof=1)), 4) if v.size > 1 else (0.0 if v.size else None),
            "n": int(v.size), "undefined": len(values) - int(v.size)}


def fmt(s: dict[str, Any], unit: str = "") -> str:
    if s["mean"] is None:
        return "not reached"
    text = f"{s['mean']:.4g}{unit}"
    if s["n"] > 1:
        text += f" ± {s['std']:.2g}"
    if s["undefined"]:
        text += f" ({s['undefined']} seed(s) not reached)"
    return text


def judge(claim: Claim, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The claim's row: our mean ± std over the seeds, whether the mean holds it, and per seed."""
    values = [claim.ours(r) for r in runs]
    s = spread(values)
    per_seed = [None if v is None else bool(claim.holds(v)) for v in values]
    return {"claim": claim.text, "paper": claim.paper, "where": claim.where, "ours": fmt(s, claim.unit),
            "ours_mean": s["mean"], "ours_std": s["std"], "seeds": len(values),
            "holds": bool(s["mean"] is not None and claim.holds(s["mean"])),
            "seeds_holding": sum(1 for h in per_seed if h), "per_seed": values}


def _scenario(base: Scenario | None, overrides: list[str]) -> Scenario:
    """``base`` (a user's scenario) with ``overrides``, or scenarios/idla.yaml (the defaults outside a clone)."""
    if base is not None:
        from slicing.config import build_scenario

        return build_scenario(base.model_dump(mode="json"), overrides)
    return load_scenario(DEFAULT_SCENARIO if DEFAULT_SCENARIO.is_file() else None, overrides)


REPORT_ONLY = ("scenario", "parts")  # settings keys the report shows that are not the experiment's own settings


def _kwargs(settings: dict[str, Any]) -> dict[str, Any]:
    """A budget's settings as the experiment's settings model takes them (without the report-only keys)."""
    return {k: v for k, v in settings.items() if k not in REPORT_ONLY}


def _dig(obj: Any, *keys: Any) -> Any:
    for k in keys:
        if obj is None:
            return None
        obj = obj.get(k) if isinstance(obj, dict) else None
    return obj


def _num(x: Any) -> float | None:
    return None if x is None else float(x)


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


# ------------------------------------------------------------------------------------------------------ IDLA

IDLA_SCHEMES = ["idla", "traffic", "equal", "oracle"]
WINDOW = 0.1  # the windows of ``_windows``: this fraction of a phase


def _idla_schemes(budget: Budget) -> list[str]:
    """The full budget adds the paper's DRL baseline (``drl``, RLlib SAC online; the slow one)."""
    return IDLA_SCHEMES + ["drl"] if budget == "full" else IDLA_SCHEMES


def _idla_settings(budget: Budget) -> dict[str, Any]:
    return {"tiny": {"steps": 150, "estimator.epochs": 6}, "quick": {"steps": 5000, "estimator.epochs": 40},
            "full": {"steps": "scenario (5000)", "estimator.epochs": "scenario (200)"}}[budget] | {
        "scenario": "scenarios/idla.yaml (4 sites, 12 cells, 2.6 GHz / 20 MHz)", "schemes": _idla_schemes(budget)}


def _windows(result: Any) -> dict[str, dict[str, dict[str, float]]]:
    """Per scheme, the metrics of H1's last tenth (where online learners have converged) and of H2's first tenth
    (right after the slice change: who adapts at once, who re-learns)."""
    from slicing.experiments.metrics import phase_metrics

    split = result.h1_end - result.h0_end  # trace index of H2's first period (traces start at H1)
    n1 = max(round(WINDOW * split), 1)
    n2 = max(round(WINDOW * (result.scenario.steps - result.h1_end)), 1)
    out = {name: {"H1_last": phase_metrics(*tr.arrays(split - n1, split)),
                  "H2_first": phase_metrics(*tr.arrays(split, split + n2))} for name, tr in result.traces.items()}
    return {n: {w: {k: round(v, 5) for k, v in m.items()} for w, m in ws.items()} for n, ws in out.items()}


def _run_idla(seed: int, budget: Budget, out: Path, base: Scenario | None, progress: Progress | None) -> dict:
    from slicing.experiments.idla import evaluate, phase_bounds
    from slicing.experiments.idla_plots import write_plots

    overrides = [f"seed={seed}"]
    if budget != "full":
        s = _idla_settings(budget)
        overrides += [f"steps={s['steps']}", f"estimator.epochs={s['estimator.epochs']}"]
    sc = _scenario(base, overrides)
    h0_end, _ = phase_bounds(sc)
    schemes = _idla_schemes(budget)
    total = h0_end + len(schemes) * (sc.steps - h0_end) + (h0_end if "drl" in schemes else 0)  # drl runs its own H0
    done = [0]

    def tick(stage: str, k: int) -> None:
        done[0] += k
        if progress:
            progress("idla: H0, then H1+H2 per scheme (periods)", min(done[0], total), total)

    result = evaluate(sc, schemes, progress=tick)
    summary = result.summary()
    summary["windows"] = _windows(result)
    summary["figures"] = {p.stem: str(p) for p in write_plots(result, out)}
    return summary


def _best_other(run: dict, phase: str) -> float:
    """The best P(r = 1) of the other schemes the paper's Fig. 5 compares (IDLA_SCHEMES: not drl, which the
    paper plots apart and only the full budget runs, so the claim means the same at every budget)."""
    return max(run["schemes"][s][phase]["p_satisfied"] for s in IDLA_SCHEMES if s != "idla")


def _window(run: dict, scheme: str, window: str, key: str = "mean_utility") -> float | None:
    return _dig(run, "windows", scheme, window, key)


IDLA = Paper(
    name="idla", title="IDLA: Intelligent Dynamic Resource Allocation for network slicing (paper 000)",
    run=_run_idla, settings=_idla_settings,
    claims=(
        Claim("P(QoS satisfied) of IDLA falls when slice 3 joins (H2 minus H1)", "0.629 - 0.973 = -0.344",
              "Fig. 5, Sec. V-C",
              lambda r: r["schemes"]["idla"]["H2"]["p_satisfied"] - r["schemes"]["idla"]["H1"]["p_satisfied"],
              lambda v: v < 0),
        Claim("IDLA's P(QoS satisfied) in H1, slices 1, 2, 4 (holds: within 0.05 of the paper's level)", "0.973",
              "Fig. 5", lambda r: r["schemes"]["idla"]["H1"]["p_satisfied"], lambda v: abs(v - 0.973) <= 0.05),
        Claim("IDLA's P(QoS satisfied) in H2, slice 3 added (holds: within 0.05 of the paper's level)", "0.629",
              "Fig. 5", lambda r: r["schemes"]["idla"]["H2"]["p_satisfied"], lambda v: abs(v - 0.629) <= 0.05),
        Claim("IDLA has the highest P(QoS satisfied) in H1: IDLA minus the best other scheme", "> 0 (IDLA highest)",
              "Fig. 5", lambda r: r["schemes"]["idla"]["H1"]["p_satisfied"] - _best_other(r, "H1"),
              lambda v: v >= 0),
        Claim("IDLA has the highest P(QoS satisfied) in H2: IDLA minus the best other scheme", "> 0 (IDLA highest)",
              "Fig. 5", lambda r: r["schemes"]["idla"]["H2"]["p_satisfied"] - _best_other(r, "H2"),
              lambda v: v >= 0),
        Claim("IDLA's mean utility minus the traffic-proportional baseline's, H2", "> 0", "Fig. 4",
              lambda r: r["schemes"]["idla"]["H2"]["mean_utility"] - r["schemes"]["traffic"]["H2"]["mean_utility"],
              lambda v: v > 0),
        Claim("IDLA's mean utility minus the 0.05-grid oracle's, H2 (IDLA optimises continuously)", ">= 0",
              "Sec. V-C",
              lambda r: r["schemes"]["idla"]["H2"]["mean_utility"] - r["schemes"]["oracle"]["H2"]["mean_utility"],
              lambda v: v >= 0),
        Claim("QoS estimator's mean absolute error on simulated data", "0.0639", "Fig. 3, Sec. V-B",
              lambda r: r["estimator"]["mae"], lambda v: v <= 0.0639),
        Claim("DRL, once trained, reaches about the oracle's level before the slice change: DRL's mean utility over "
              "H1's last tenth over the oracle's (holds: >= 0.98)", "about 1 (DRL converges near the oracle)",
              "Fig. 4", lambda r: _ratio(_window(r, "drl", "H1_last"), _window(r, "oracle", "H1_last")),
              lambda v: v >= 0.98, budgets=("full",)),
        Claim("IDLA adapts at once when slice 3 joins, DRL re-learns: IDLA minus DRL, mean utility over H2's first "
              "tenth", "> 0", "Fig. 4, Sec. V-C",
              lambda r: _diff(_window(r, "idla", "H2_first"), _window(r, "drl", "H2_first")),
              lambda v: v > 0, budgets=("full",)),
        Claim("IDLA's mean utility minus DRL's, all of H2", "> 0", "Fig. 4",
              lambda r: _diff(_dig(r, "schemes", "idla", "H2", "mean_utility"),
                              _dig(r, "schemes", "drl", "H2", "mean_utility")),
              lambda v: v > 0, budgets=("full",)),
    ),
    figures=(Figure("throughput", "Fig. 4: per-slice throughput / utility over time, each scheme, H0 to H2"),
             Figure("satisfaction_cdf", "Fig. 5: distribution of the satisfaction level r per scheme and phase")),
    note="The paper's simulator, traffic and load are not ours: its absolute levels are not comparable one to one "
         "(docs/idla.md); the directions are.",
)


# -------------------------------------------------------------------------------------------- TL-aided MADRL

def _tl_settings(budget: Budget) -> dict[str, Any]:
    return {"tiny": {"iterations": 2, "early": 1, "pretrain_iterations": 1, "sources": 2, "episode_len": 16,
                     "sample_episodes": 1},
            "quick": {"iterations": 4, "early": 2, "pretrain_iterations": 4, "sources": 4, "episode_len": 48,
                      "sample_episodes": 1},
            "full": {"iterations": 8, "early": 3, "pretrain_iterations": 12, "sources": 4, "episode_len": 96,
                     "sample_episodes": 2}}[budget] | {"strategies": ["integrated"], "scenario": "idla.yaml, 5 sites"}


def _run_tl(seed: int, budget: Budget, out: Path, base: Scenario | None, progress: Progress | None) -> dict:
    from slicing.experiments.transfer import heterogeneous, run_transfer_experiment
    from slicing.rl.settings import TransferSettings

    sc = _scenario(base, ["topology.sites=5", f"seed={seed}"])
    heterogeneous(sc)
    s = _kwargs(_tl_settings(budget))
    res = run_transfer_experiment(sc, TransferSettings(**s, seed=seed), out, progress=progress)
    res["figures"] = {Path(p).stem: p for p in res["plots"].values()}
    return res


TL = Paper(
    name="tl", title="Transfer-learning-aided multi-agent DRL for network slicing (paper 002)",
    run=_run_tl, settings=_tl_settings,
    claims=(
        Claim("Transfer from the nearest source starts above learning from scratch (early reward gain)",
              "> 0 (TL curves start well above DRL)", "Sec. V-3, reward curves",
              lambda r: r["gain_nearest"], lambda v: v > 0),
        Claim("The nearest source (smallest VAE distance) gains more than the farthest", "nearest > farthest",
              "Fig. 8, Sec. V-5",
              lambda r: None if r["gain_nearest"] is None or r["gain_farthest"] is None
              else r["gain_nearest"] - r["gain_farthest"], lambda v: v > 0),
        Claim("Gain falls with the source's distance: Spearman rank correlation", "< 0", "Fig. 8",
              lambda r: _num(r["spearman_distance_gain"]), lambda v: v < 0),
        Claim("Transfer converges at least as high as scratch: final reward, nearest minus scratch", ">= 0",
              "Sec. V-6",
              lambda r: None if _dig(r, "final_reward", f"integrated_{r['nearest']}") is None
              or _dig(r, "final_reward", "scratch") is None
              else r["final_reward"][f"integrated_{r['nearest']}"] - r["final_reward"]["scratch"],
              lambda v: v >= 0),
    ),
    figures=(Figure("transfer_reward_curves", "the reward curves of TL from each source against DRL from scratch"),
             Figure("transfer_distance_gain", "Fig. 8: the early gain against the VAE distance of the source")),
    note="The text copy of the paper has no numbers in Sec. V (blank where values stood): its claims are compared by "
         "direction only.",
)


# --------------------------------------------------------------------------------------- safety and imitation

def _safety_settings(budget: Budget) -> dict[str, Any]:
    return {"tiny": {"cells": 3, "iterations": 4, "warmup": 2, "refit_every": 1, "eval_days": 1},
            "quick": {"cells": 6, "iterations": 30, "warmup": 3, "refit_every": 3, "eval_days": 3},
            "full": {"cells": 12, "iterations": 100, "warmup": 5, "refit_every": 5, "eval_days": 5}}[budget] | {
        "scenario": "idla.yaml at traffic.load_scale=0.4"}


def _run_safety(seed: int, budget: Budget, out: Path, base: Scenario | None, progress: Progress | None) -> dict:
    from slicing.experiments.safety import DEFAULT_OVERRIDES, run_safety_experiment
    from slicing.rl.settings import SafetySettings

    sc = _scenario(base, [*DEFAULT_OVERRIDES, f"seed={seed}"])
    s = _kwargs(_safety_settings(budget))
    res = run_safety_experiment(sc, SafetySettings(**s, seed=seed), out, progress=progress)
    res["figures"] = {Path(res["plot"]).stem: res["plot"]}
    return res


SAFETY = Paper(
    name="safety", title="DRL for end-to-end network slicing: safe online learning (paper 003, Sec. V-A)",
    run=_run_safety, settings=_safety_settings,
    claims=(
        Claim("SLA violation rate while learning online, without baseline switching", "about 15 %", "Fig. 4b",
              lambda r: 100 * r["violation_rate"]["without_switching"], lambda v: v > 0, unit=" %"),
        Claim("... with baseline switching", "about 1 %", "Fig. 4b",
              lambda r: 100 * r["violation_rate"]["with_switching"], lambda v: v >= 0, unit=" %"),
        Claim("Switching to the baseline lowers the violation rate (with minus without)", "about -14 points",
              "Fig. 4b",
              lambda r: 100 * (r["violation_rate"]["with_switching"] - r["violation_rate"]["without_switching"]),
              lambda v: v < 0, unit=" points"),
    ),
    figures=(Figure("safety", "Fig. 4b: the violation rate per iteration without and with baseline switching"),),
    note="Set PYTHONHASHSEED=0 to repeat a seed exactly (RLlib orders agents through Python sets).",
)


def _imitation_settings(budget: Budget) -> dict[str, Any]:
    return {"tiny": {"cells": 3, "days": 1, "episode_len": 16, "bc_iterations": 3, "iterations": 1, "early": 1},
            "quick": {"cells": 6, "days": 4, "episode_len": 96, "bc_iterations": 100, "iterations": 6, "early": 2},
            "full": {"cells": None, "days": 10, "episode_len": 96, "bc_iterations": 200, "iterations": 12,
                     "early": 3}}[budget]


def _run_imitation(seed: int, budget: Budget, out: Path, base: Scenario | None, progress: Progress | None) -> dict:
    from slicing.experiments.imitation import run_imitation_experiment
    from slicing.rl.settings import ImitationSettings

    sc = _scenario(base, [f"seed={seed}"])
    s = dict(_imitation_settings(budget))
    if s["cells"] is not None:
        s["cells"] = min(s["cells"], sc.cells)
    res = run_imitation_experiment(sc, ImitationSettings(**s, seed=seed), out, progress=progress)
    res["figures"] = {Path(res["plot"]).stem: res["plot"]}
    return res


IMITATION = Paper(
    name="imitation", title="DRL for end-to-end network slicing: imitation of the baseline (paper 003, Sec. V-C)",
    run=_run_imitation, settings=_imitation_settings,
    claims=(
        Claim("The behaviour clone performs like the baseline it imitates: clone's reward / baseline's",
              "about 1 (the clone uses resources like the baseline)", "Fig. 4d, Sec. V-C",
              lambda r: r["clone_reward"] / r["baseline_reward"] if r["baseline_reward"] else None,
              lambda v: v >= 0.9),
        Claim("Online RL warm-started from the clone starts above RL from scratch (early reward difference)", "> 0",
              "Fig. 4d",
              lambda r: r["early_reward"]["bc_warm_start"] - r["early_reward"]["scratch"], lambda v: v > 0),
    ),
    figures=(Figure("imitation_learning_curve", "Fig. 4d: online learning from the clone and from scratch, with "
                                                "the baseline's and the clone's reward"),),
    note="The paper reports this result without numbers.",
)


# --------------------------------------------------------------------------------------------------- MicroOpt

def _microopt_settings(budget: Budget) -> dict[str, Any]:
    return {"tiny": {"epochs": 60, "atlas_iterations": 2, "cadrl_iterations": 1, "rl_batch": 128, "slots": 8},
            "quick": {"epochs": 400, "atlas_iterations": 10, "cadrl_iterations": 8, "rl_batch": 512, "slots": 30},
            "full": {"epochs": 3000, "atlas_iterations": 40, "cadrl_iterations": 100, "rl_batch": 2048,
                     "slots": 60}}[budget] | {"parts": ["thresholds", "ablation"]}


def _run_microopt(seed: int, budget: Budget, out: Path, base: Scenario | None, progress: Progress | None) -> dict:
    from slicing.experiments.microopt import run_microopt_experiment
    from slicing.experiments.microopt_settings import MicroOptExperimentSettings

    s = _kwargs(_microopt_settings(budget))
    settings = MicroOptExperimentSettings(**s, seed=seed)
    res = {part: run_microopt_experiment(part, settings, out, progress=progress) for part in ("thresholds",
                                                                                                "ablation")}
    res["figures"] = {Path(p).stem: str(p) for part in ("thresholds", "ablation") for p in res[part]["plots"]}
    return res


MICROOPT = Paper(
    name="microopt", title="MicroOpt: SLA-aware resource allocation for e2e slices (paper 001)",
    run=_run_microopt, settings=_microopt_settings,
    claims=(
        Claim("MicroOpt's resource saving against Atlas", "7.65 %", "Fig. 6, Sec. VI-B",
              lambda r: r["thresholds"]["saving_pct"]["atlas"], lambda v: v > 0, unit=" %"),
        Claim("... against CaDRL", "21.90 %", "Fig. 6",
              lambda r: r["thresholds"]["saving_pct"]["cadrl"], lambda v: v > 0, unit=" %"),
        Claim("... against Peak-alloc", "53.14 %", "Fig. 6",
              lambda r: r["thresholds"]["saving_pct"]["peak"], lambda v: v > 0, unit=" %"),
        Claim("Ablation: MicroOpt-0sigma breaks the violation threshold (distributions violated of 10)",
              "E[beta] 0.49 > beta_thresh 0.1", "Fig. 9",
              lambda r: r["ablation"]["approaches"]["microopt_0sigma"]["violations"], lambda v: v > 0),
        Claim("Ablation: MicroOpt-2sigma needs more resource than MicroOpt (ratio of mean normalised resource)",
              "> 1", "Fig. 9",
              lambda r: r["ablation"]["approaches"]["microopt_2sigma"]["mean_norm"]
              / r["ablation"]["approaches"]["microopt"]["mean_norm"], lambda v: v > 1),
    ),
    figures=(Figure("thresholds", "Fig. 6: mean normalised resource of each approach over (q_thresh, beta_thresh, "
                                  "traffic)"),
             Figure("ablation", "Fig. 9: E[beta] and resource of MicroOpt with 0, 1 and 2 sigma")),
    note="The slice model is trained per seed; CaDRL at the quick budget has few PPO iterations (a weaker CaDRL "
         "than the paper's makes its saving larger).",
)


# --------------------------------------------------------------------------------------------- digital twin

def _twin_settings(budget: Budget) -> dict[str, Any]:
    return {"tiny": {"rounds": 2, "steps_per_round": 8, "twin_steps": 8, "learning_starts": 4, "twin_updates": 2,
                     "eval_steps": 3, "hidden": (16, 16), "twin_hidden": 8, "twin_seq_len": 2,
                     "offline_transitions": 32, "offline_epochs": 2},
            "quick": {"rounds": 12, "steps_per_round": 60, "twin_steps": 60, "learning_starts": 30,
                      "twin_updates": 30, "eval_steps": 60, "hidden": (64, 64), "twin_hidden": 16, "twin_seq_len": 4,
                      "epsilon_steps": 300, "offline_transitions": 300, "offline_epochs": 20},
            "full": {"rounds": 30, "steps_per_round": 200, "twin_steps": 400, "twin_updates": 300,
                     "offline_transitions": 2000, "offline_epochs": 200}}[budget] | {"parts": ["train", "offline"],
                                                                                      "algo": "ddqn"}


def _run_twin(seeds: Any, budget: Budget, out: Path, base: Scenario | None, progress: Progress | None) -> dict:
    from slicing.experiments.twin import run_twin_experiment
    from slicing.rl.settings import TwinSettings

    s = _kwargs(_twin_settings(budget))
    settings = TwinSettings(**s, seeds=tuple(seeds))
    res = {part: run_twin_experiment(part, settings, out, progress=progress) for part in ("train", "offline")}
    res["figures"] = {Path(p).stem: str(p) for part in ("train", "offline") for p in res[part].get("figures", [])}
    return res


def _twin_per_seed(res: dict) -> list[dict]:
    """One pseudo-run per seed from the twin experiment (which runs its seeds itself)."""
    train, seeds = res["train"], res["train"]["seeds"]
    per = train["rounds_to_reward_per_seed"].get("0.8", {})
    runs = []
    for k, _ in enumerate(seeds):
        runs.append({"rounds_plain": per.get("plain", [None] * len(seeds))[k],
                     "rounds_twin": per.get("twin", [None] * len(seeds))[k],
                     "final": {arm: train["final_reward_per_seed"][arm][k] for arm in ("plain", "twin")},
                     "offline": {arm: res["offline"]["offline_per_seed"][arm][k] for arm in ("plain", "twin")}})
    return runs


TWIN = Paper(
    name="twin", title="Digital-twin-enhanced DRL for resource management (paper 004)",
    run=_run_twin, settings=_twin_settings, seeds_inside=True,
    claims=(
        Claim("Rounds for DDQN to reach reward 0.8: with the twin / without", "1000 / 1500 = 0.67", "Fig. 5b, Sec. VI",
              lambda r: None if r["rounds_plain"] is None or r["rounds_twin"] is None
              else r["rounds_twin"] / r["rounds_plain"], lambda v: v < 1),
        Claim("Final reward with the twin minus without", ">= 0 (the twin arm ends at least as high)", "Fig. 5",
              lambda r: r["final"]["twin"] - r["final"]["plain"], lambda v: v >= 0),
        Claim("Offline RL: reward with the twin minus without", "> 0", "Fig. 9",
              lambda r: r["offline"]["twin"] - r["offline"]["plain"], lambda v: v > 0),
    ),
    figures=(Figure("train_curves", "Figs. 5-6: reward and utility per round, with and without the twin"),
             Figure("offline", "Fig. 9: offline RL with and without the twin")),
    note="The paper's rounds and ours differ in length: the ratio is compared, not the counts.",
)

PAPERS: dict[str, Paper] = {p.name: p for p in (IDLA, TL, SAFETY, IMITATION, MICROOPT, TWIN)}


# ---------------------------------------------------------------------------------------------------- the run

def _run_record(paper: Paper, seeds: list[int], budget: Budget, base: Scenario | None) -> dict[str, Any]:
    """What a stored run must match to be reused by ``resume``: the paper, its seed(s), the budget, the settings
    and the base scenario (its fingerprint; None = each experiment's own). Not the code's version: after a code
    change, resume into a fresh folder."""
    from slicing.runtime.checkpoint import scenario_fingerprint

    return {"format": RUN_FORMAT, "paper": paper.name, "seeds": list(seeds), "budget": budget,
            "settings": json.loads(json.dumps(paper.settings(budget), default=str)),
            "scenario": None if base is None else scenario_fingerprint(base)}


def _stored(folder: Path, record: dict[str, Any]) -> tuple[dict[str, Any], float] | None:
    """The run stored in ``folder`` (``run.json`` + ``done.json``) if its record matches, else None."""
    try:
        done = json.loads((folder / "done.json").read_text())
        if {k: done.get(k) for k in record} != record:
            return None
        return json.loads((folder / "run.json").read_text()), float(done["wall_s"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _store(folder: Path, record: dict[str, Any], res: dict[str, Any], wall_s: float) -> None:
    """``run.json`` (the whole result), then ``done.json`` (the record and wall time): written last, so an
    interrupted run is never taken for a finished one."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "run.json").write_text(json.dumps(res, indent=1, default=str))
    (folder / "done.json").write_text(json.dumps(record | {"wall_s": round(wall_s, 1)}, indent=1))


def run_paper(paper: Paper, seeds: list[int], budget: Budget, out: Path, base: Scenario | None = None,
              progress: Progress | None = None, log: Log = print, resume: bool = False) -> PaperResult:
    """Run ``paper``'s experiment once per seed (or once for all, ``seeds_inside``) under ``out/NAME``.

    Every finished run is stored (``_store``). ``resume``: a run already stored under ``out`` with the same
    paper, seed(s), budget, settings and base scenario is read back instead of run again; ``wall_s`` then
    counts its stored time, so the report shows what the whole result cost."""
    folder = out / paper.name

    def labelled(run: str) -> Progress | None:
        return None if progress is None else lambda stage, done, total: progress(f"{run}: {stage}", done, total)

    def one(run_seeds: list[int], where: Path, label: str, run: Callable[[], dict[str, Any]]) -> tuple[dict, float]:
        record = _run_record(paper, run_seeds, budget, base)
        if resume and (hit := _stored(where, record)) is not None:
            log(f"{label}: stored in {where}, reused (--resume)")
            return hit
        t0 = time.perf_counter()
        res = run()
        wall = time.perf_counter() - t0
        _store(where, record, res, wall)
        return res, wall

    if paper.seeds_inside:
        res, wall_s = one(seeds, folder, f"{paper.name} seeds {seeds}",
                          lambda: paper.run(seeds, budget, folder, base, labelled(f"{paper.name} seeds {seeds}")))  # type: ignore
        runs, figure_files = _twin_per_seed(res), res["figures"]
    else:
        runs, figure_files, wall_s = [], {}, 0.0
        for k, seed in enumerate(seeds):
            log(f"{paper.name}: seed {seed} ({k + 1} of {len(seeds)})")
            where = folder / f"seed{seed}"
            res, wall = one([seed], where, f"{paper.name} seed {seed}",
                            lambda seed=seed, where=where: paper.run(seed, budget, where, base,  # type: ignore
                                                                     labelled(f"{paper.name} seed {seed}")))
            runs.append(res)
            wall_s += wall
            if k == 0:
                figure_files = res["figures"]
    claims = [judge(c, runs) for c in paper.claims if budget in c.budgets]
    figures = [{"path": figure_files[f.key], "mirrors": f.mirrors} for f in paper.figures if f.key in figure_files]
    return PaperResult(paper.name, claims, figures, paper.settings(budget), list(seeds), round(wall_s, 1), runs)


def reproduce(names: list[str], seeds: list[int], budget: Budget, out: Path, base: Scenario | None = None,
              progress: Progress | None = None, log: Log = print, resume: bool = False) -> dict[str, Any]:
    """Every named paper in turn, then the report (Markdown + HTML) under ``out``; the JSON of `--json`.

    ``resume``: reuse the runs already stored under ``out`` that match (``run_paper``); the total wall time is
    then the sum of the papers' (stored and new) times."""
    unknown = [n for n in names if n not in PAPERS]
    if unknown or not names:
        raise ValueError(f"paper: unknown {unknown or names}; choose from {[*PAPERS, 'all']}")
    if budget not in BUDGETS:
        raise ValueError(f"budget: {budget!r} is not one of {list(BUDGETS)}")
    if not seeds or len(set(seeds)) != len(seeds) or any(s < 0 for s in seeds):
        raise ValueError(f"seeds: distinct non-negative integers expected, got {seeds}")
    from slicing.experiments.reproduce_report import write_report

    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for n in names:
        log(f"== {PAPERS[n].title}")
        results[n] = run_paper(PAPERS[n], seeds, budget, out, base, progress, log, resume)
        held = sum(c["holds"] for c in results[n].claims)
        log(f"{n}: {held} of {len(results[n].claims)} claims hold, {results[n].wall_s:.0f} s")
    wall = round(sum(r.wall_s for r in results.values()) if resume else time.perf_counter() - t0, 1)
    report = write_report(results, PAPERS, budget, out, wall)
    return {"papers": {n: r.json() for n, r in results.items()}, "report": str(report["html"]),
            "markdown": str(report["markdown"]), "budget": budget, "seeds": seeds, "wall_s": wall}
