"""Digital-twin-enhanced DRL (paper 004) reproduced: Algorithm 1 against the same agent without the twin, knowledge
distillation, offline RL (Algorithm 2) and loss landscapes. One function per ``--part``; each returns its JSON
payload (ours beside the paper's under ``"paper"``) and writes its figure and ``<part>.json`` to ``out``.

How to run: ``slicing experiment twin --part train|distill|offline|landscape|multicell [--algo dqn|ddqn|dueling]
[--json] [--out DIR]``. ``distill`` and ``landscape`` use the agents ``train`` saved under ``<out>/agents`` (same
algo and seeds), and run ``train`` first when they are missing.

- ``train``: Figs. 5-6: per round (T = 200 real steps) the mean reward (eq. 6) and utility (eq. 5) of Agent 1 with
  the twin, without it, and of a random policy; every seed in its own Ray task (one CPU each); the rounds each
  arm needs to reach a mean reward of 0.8; the twin's fidelity per round.
- ``distill``: Fig. 8: students (2 layers of 4 or 16 neurons) of the teachers trained with and without the twin,
  evaluated greedily on the real env.
- ``offline``: Fig. 9: Algorithm 2 on a fixed random-policy dataset, with the twin (Agent 2 trained in a twin fitted
  on that dataset; upsilon > 0 towards its weights, starting from them) and without (upsilon = 0, random start).
- ``landscape``: Fig. 7: L(theta + lambda v) along the gradient and a random direction for the trained agents;
  flatness = curvature at lambda = 0.
- ``multicell`` (beyond the paper): the same loop on the IDLA scenario's ``drl`` scheme (SAC cell agents,
  ``slicing/rl/cell_twin.py``), plain and twin arms per seed as Ray tasks; H1 learning curves against the
  traffic-proportional baseline, and the periods each arm needs to reach 0.9 / 0.95 of it.

Evaluations (distill, offline) run the greedy policy for ``eval_steps`` real steps on a fresh base station with
the reward threshold at its final value gamma_max.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from slicing.errors import FieldError
from slicing.experiments import twin_plots as plots
from slicing.models.twin import DigitalTwin, Transitions, load_twin, save_twin_blob
from slicing.rl.settings import TwinSettings

Progress = Callable[[str, int, int], None]
THRESHOLDS = (0.8,)
MULTICELL_LEVELS = (0.9, 0.95)  # of the traffic baseline's trailing-day reward, fixed before any run
ARMS = ("plain", "twin")

PAPER: dict[str, Any] = {
    "train": {"ddqn_rounds_to_0.8": {"plain": 1500, "twin": 1000},
              "finding": "every phi learns faster with the twin; random is worst (Figs. 5-6)"},
    "distill": {"finding": "students of the twin-trained teacher beat those of the plain teacher (Fig. 8)"},
    "offline": {"finding": "offline DRL with the twin beats offline DRL without it (Fig. 9)"},
    "landscape": {"finding": "twin-trained agents sit in flatter minima (Fig. 7)"},
    "multicell": {"finding": "not in the paper: its twin serves one base station with a discrete DQN agent; here "
                             "the same loop serves the IDLA scenario's SAC cell agents (the drl scheme)"},
}


# ----------------------------------------------------------------------------------------------------- helpers

def _mean_std(values: list[float]) -> dict[str, float]:
    v = np.asarray(values, dtype=np.float64)
    return {"mean": round(float(v.mean()), 4), "std": round(float(v.std()), 4)}


def rounds_to(rewards: list[float], level: float) -> int | None:
    """The first round (1-based) whose mean reward reaches ``level``; None if none does."""
    for i, r in enumerate(rewards):
        if r >= level:
            return i + 1
    return None


def agents_dir(out: Path, s: TwinSettings) -> Path:
    return Path(out) / "agents" / s.algo


def _save_arm(path: Path, res) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"arm": res.arm, "seed": res.seed, "weights": res.weights, "twin_weights": res.twin_weights,
                "data": asdict(res.data) if res.data is not None else None,
                "rounds": [asdict(r) for r in res.rounds]}, path)


def load_arm(path: Path) -> dict[str, Any]:
    blob = torch.load(path, map_location="cpu", weights_only=False)
    blob["data"] = Transitions(**blob["data"]) if blob.get("data") else None
    return blob


# ----------------------------------------------------------------------------------------------------- train

class ProgressBoard:
    """Rounds done per (arm, seed): written by the training tasks, read by the driver's progress bars (a Ray
    actor in ``part_train``)."""

    def __init__(self) -> None:
        self.state: dict[str, tuple[int, int]] = {}

    def update(self, label: str, done: int, total: int) -> None:
        self.state[label] = (done, total)

    def read(self) -> dict[str, tuple[int, int]]:
        return dict(self.state)

def _arms_as_tasks(fn: Callable[..., Any], args: Callable[[int, str], tuple], seeds: tuple[int, ...], part: str,
                   progress: Progress | None) -> dict[tuple[str, int], Any]:
    """``fn(*args(seed, arm), report)`` for every (arm, seed) as a Ray task of one CPU; their progress reports go
    through a ``ProgressBoard`` actor to the driver's ``progress``."""
    import ray

    board = ray.remote(num_cpus=0)(ProgressBoard).remote()

    def report(label: str, done: int, total: int) -> None:
        board.update.remote(label, done, total)

    remote = ray.remote(num_cpus=1)(fn)
    pending = {(arm, seed): remote.remote(*args(seed, arm), report) for seed in seeds for arm in ARMS}
    results = {}
    try:
        while pending:
            ready, _ = ray.wait(list(pending.values()), num_returns=1, timeout=2.0)
            if progress:
                for label, (done, total) in sorted(ray.get(board.read.remote()).items()):
                    progress(f"{part}: {label}", done, total)
            for ref in ready:
                key = next(k for k, v in pending.items() if v == ref)
                results[key] = ray.get(ref)
                del pending[key]
    finally:
        ray.kill(board)
    return results


def part_train(s: TwinSettings, out: Path, progress: Progress | None) -> dict[str, Any]:
    from slicing.rl.twin import run_arm, run_random
    from slicing.runtime.ray_util import ensure_ray

    ensure_ray()
    results = {}
    for seed in s.seeds:
        results[("random", seed)] = run_random(s, seed)
        if progress:
            progress("train: random policy", len(results), len(s.seeds))
    results |= _arms_as_tasks(run_arm, lambda seed, arm: (s, seed, arm == "twin"), s.seeds, "train", progress)
    for (arm, seed), res in results.items():
        if arm != "random":
            _save_arm(agents_dir(out, s) / f"{arm}_s{seed}.pt", res)
        if res.twin_blob is not None:
            save_twin_blob(res.twin_blob, agents_dir(out, s) / f"digital_twin_s{seed}.pt")

    curves = {arm: {seed: [r.reward for r in results[(arm, seed)].rounds] for seed in s.seeds}
              for arm in (*ARMS, "random")}
    utils = {arm: {seed: [r.utility for r in results[(arm, seed)].rounds] for seed in s.seeds}
             for arm in (*ARMS, "random")}
    tail = max(1, min(3, s.rounds))
    per_seed = {str(level): {arm: [rounds_to(curves[arm][seed], level) for seed in s.seeds] for arm in ARMS}
                for level in THRESHOLDS}
    to_reward = {lvl: {arm: (None if any(v is None for v in vals) else round(float(np.mean(vals)), 1))
                       for arm, vals in arms.items()} for lvl, arms in per_seed.items()}
    fidelity_rounds = [[r.twin for r in results[("twin", seed)].rounds] for seed in s.seeds]
    last_fid = [f[-1] for f in fidelity_rounds]
    twin_fidelity = {k: round(float(np.mean([f[k] for f in last_fid])), 4)
                     for k in last_fid[0] if k not in ("transitions", "held_out")}
    figures = plots.train_curves(curves, utils, s, out) + plots.twin_fidelity(fidelity_rounds, out)
    wall = {arm: round(float(np.mean([results[(arm, seed)].wall_s for seed in s.seeds])), 1)
            for arm in (*ARMS, "random")}
    return {
        "algo": s.algo,
        "rounds_to_reward": to_reward,
        "rounds_to_reward_per_seed": per_seed,
        "final_reward": {arm: _mean_std([np.mean(curves[arm][sd][-tail:]) for sd in s.seeds])
                         for arm in curves},
        "final_utility": {arm: _mean_std([np.mean(utils[arm][sd][-tail:]) for sd in s.seeds]) for arm in utils},
        "final_reward_per_seed": {arm: [round(float(np.mean(curves[arm][sd][-tail:])), 4) for sd in s.seeds]
                                  for arm in curves},
        "twin_fidelity": twin_fidelity,
        "steps_per_round": s.steps_per_round, "rounds": s.rounds, "twin_steps": s.twin_steps, "zeta": s.zeta,
        "seeds": list(s.seeds), "arm_wall_s": wall, "figures": figures,
        "paper": PAPER["train"],
    }


def _agents(s: TwinSettings, out: Path, progress: Progress | None) -> dict[tuple[str, int], dict[str, Any]]:
    """The saved Agent 1s of ``train`` (running it first when any is missing)."""
    paths = {(arm, seed): agents_dir(out, s) / f"{arm}_s{seed}.pt" for arm in ARMS for seed in s.seeds}
    if not all(p.exists() for p in paths.values()):
        part_train(s, out, progress)
    return {k: load_arm(p) for k, p in paths.items()}


# ----------------------------------------------------------------------------------------------------- distill

def part_distill(s: TwinSettings, out: Path, progress: Progress | None) -> dict[str, Any]:
    from slicing.rl.twin_derived import build_module, distill, evaluate, greedy, student_policy

    agents = _agents(s, out, progress)
    rows: dict[str, dict[str, list[dict[str, float]]]] = {arm: {} for arm in ARMS}
    teachers: dict[str, list[dict[str, float]]] = {arm: [] for arm in ARMS}
    total = len(agents) * (1 + len(s.student_hidden))
    done = 0
    for (arm, seed), blob in sorted(agents.items()):
        teacher = build_module(s, blob["weights"], seed)
        teachers[arm].append(evaluate(greedy(teacher), s, seed))
        done += 1
        states = blob["data"].s  # the experience pool: Agent 1's real states
        for h in s.student_hidden:
            student, fit = distill(teacher, states, h, s.distill_epochs, seed)
            rows[arm].setdefault(str(h), []).append(evaluate(student_policy(student), s, seed) | fit)
            done += 1
            if progress:
                progress("distill: teachers and students", done, total)
    students = {arm: {h: {k: _mean_std([r[k] for r in runs]) for k in ("reward", "utility", "agreement")}
                      for h, runs in by_h.items()} for arm, by_h in rows.items()}
    figures = plots.distill_bars(students, {a: {k: _mean_std([t[k] for t in v]) for k in ("reward", "utility")}
                                            for a, v in teachers.items()}, out)
    return {"algo": s.algo, "students": students,
            "teachers": {a: {k: _mean_std([t[k] for t in v]) for k in ("reward", "utility")}
                         for a, v in teachers.items()},
            "twin_students_better": {h: students["twin"][h]["reward"]["mean"] > students["plain"][h]["reward"]["mean"]
                                     for h in students["twin"]},
            "distill_epochs": s.distill_epochs, "eval_steps": s.eval_steps, "seeds": list(s.seeds),
            "figures": figures, "paper": PAPER["distill"]}


# ----------------------------------------------------------------------------------------------------- offline

def part_offline(s: TwinSettings, out: Path, progress: Progress | None) -> dict[str, Any]:
    from slicing.rl.bs_env import TWIN_ENV, register
    from slicing.rl.twin import dqn_config, get_weights, local_env, run_random
    from slicing.rl.twin_derived import build_module, evaluate, greedy, train_offline
    from slicing.runtime.ray_util import ensure_ray

    ensure_ray()
    register()
    results: dict[str, list[dict[str, float]]] = {"plain": [], "twin": []}
    losses: dict[str, list[list[float]]] = {"plain": [], "twin": []}
    fidelity = []
    steps_offline = s.offline_transitions // s.steps_per_round
    for k, seed in enumerate(s.seeds):
        # the fixed dataset: M transitions of a random policy
        ds = s.model_copy(update={"rounds": max(1, steps_offline)})
        data = run_random(ds, seed + 20_000).data
        assert data is not None
        # twin arm: fit a twin on the dataset, train Agent 2 in it, then Algorithm 2 anchored to Agent 2
        if s.twin is not None:
            payload = load_twin(s.twin)
        else:
            twin = DigitalTwin(hidden=s.twin_hidden, seq_len=s.twin_seq_len, seed=seed)
            fidelity.append(twin.fit(data, gamma_max=s.env.gamma_max, updates=s.twin_updates * 5))
            payload = twin.payload()
        # Agent 2 in the twin for as many steps as Algorithm 1 would give it over the whole run
        agent2_steps = s.twin_steps * s.rounds
        cfg = s.env.model_copy(update={"seed": seed + 10_000, "episode_len": s.steps_per_round})
        agent2 = dqn_config(s, TWIN_ENV, cfg, seed + 1, agent2_steps).build_algo()
        try:
            # the twin's threshold clock: the run's end (gamma_max), as in the evaluation
            local_env(agent2).set_twin(payload, s.env.ramp_steps)
            agent2.train()
            theta2 = get_weights(agent2)
        finally:
            agent2.stop()
        for arm in ("plain", "twin"):
            module = build_module(s, theta2 if arm == "twin" else None, seed)
            hist = train_offline(module, data, s, theta2 if arm == "twin" else None,
                                 s.upsilon if arm == "twin" else 0.0, seed,
                                 progress=_epochs_progress(progress, 2 * k + (arm == "twin"), 2 * len(s.seeds)))
            losses[arm].append(hist)
            results[arm].append(evaluate(greedy(module), s, seed))
    summary = {arm: {k: _mean_std([r[k] for r in rs]) for k in ("reward", "utility")} for arm, rs in results.items()}
    figures = plots.offline_curves(losses, summary, out)
    return {"algo": s.algo, "offline": summary, "twin_better": summary["twin"]["reward"]["mean"] >
            summary["plain"]["reward"]["mean"],
            "offline_per_seed": {arm: [round(float(r["reward"]), 4) for r in rs] for arm, rs in results.items()},
            "upsilon": s.upsilon, "epochs": s.offline_epochs,
            "dataset": len(data), "agent2_twin_steps": s.twin_steps * s.rounds,
            "twin_fidelity": ({k: round(float(np.mean([f[k] for f in fidelity])), 4) for k in fidelity[0]}
                              if fidelity else {"twin_file": s.twin}),
            "seeds": list(s.seeds), "figures": figures, "paper": PAPER["offline"]}


def _epochs_progress(progress: Progress | None, run: int, runs: int) -> Callable[[int, int], None] | None:
    if progress is None:
        return None
    return lambda epoch, n: progress("offline: Algorithm 2 epochs (every seed, both arms)", run * n + epoch, runs * n)


# ----------------------------------------------------------------------------------------------------- landscape

def part_landscape(s: TwinSettings, out: Path, progress: Progress | None) -> dict[str, Any]:
    from slicing.rl.twin import run_random
    from slicing.rl.twin_derived import build_module, landscape

    agents = _agents(s, out, progress)
    # the same held-out transitions for every agent: a random policy on a base station none of them saw
    probe = run_random(s.model_copy(update={"rounds": max(1, 512 // s.steps_per_round)}), 99_999).data
    assert probe is not None
    curves: dict[str, dict[str, list[dict[str, Any]]]] = {kind: {arm: [] for arm in ARMS}
                                                         for kind in ("gradient", "random")}
    done = 0
    for (arm, seed), blob in sorted(agents.items()):
        for kind in curves:
            module = build_module(s, blob["weights"], seed)
            curves[kind][arm].append(landscape(module, probe, s, kind, seed))
            done += 1
            if progress:
                progress("landscape: agents x directions", done, 2 * len(agents))
    curvature = {kind: {arm: _mean_std([c["curvature"] for c in runs]) for arm, runs in by_arm.items()}
                 for kind, by_arm in curves.items()}
    flatter = {kind: ("twin" if c["twin"]["mean"] < c["plain"]["mean"] else "plain")
               for kind, c in curvature.items()}
    figures = plots.landscapes(curves, out)
    return {"algo": s.algo, "curvature": curvature, "flatter": flatter,
            "loss_at_0": {arm: _mean_std([c["loss_at_0"] for c in curves["gradient"][arm]]) for arm in ARMS},
            "probe_transitions": len(probe), "points": s.landscape_points, "seeds": list(s.seeds),
            "figures": figures, "paper": PAPER["landscape"]}


# ----------------------------------------------------------------------------------------------------- multicell

def _trailing(x: np.ndarray, window: int) -> np.ndarray:
    """Trailing means over ``window`` (the first window - 1 entries average what there is so far)."""
    c = np.cumsum(np.insert(np.asarray(x, dtype=np.float64), 0, 0.0))
    idx = np.arange(1, len(x) + 1)
    lo = np.maximum(idx - window, 0)
    return (c[idx] - c[lo]) / (idx - lo)


def periods_to(relative: np.ndarray, level: float, window: int) -> int | None:
    """The first H1 period (1-based) from a full day on whose trailing-day reward, relative to the traffic
    baseline's, reaches ``level``; None if none does."""
    hits = np.flatnonzero(relative[window - 1:] >= level) if len(relative) >= window else np.zeros(0, dtype=int)
    return int(hits[0] + window) if len(hits) else None


def traffic_rewards(scenario, h0_end: int, h1_end: int, reward: str) -> np.ndarray:
    """[h1_end - h0_end] per-period mean cell reward of the traffic-proportional baseline over the same periods
    (in control from period 0, all cells simulated, perfect knowledge of the offered traffic)."""
    from slicing.optim.baselines import traffic_proportional
    from slicing.rl.env import period_reward
    from slicing.sim.simulator import Simulator

    sim = Simulator(scenario)
    out = []
    while sim.period < h1_end:
        rep = sim.step(traffic_proportional(sim.demand().offered_mbps, sim.slice_mask()))
        if rep.period >= h0_end:
            out.append(float(period_reward(rep.r, rep.mask, reward).mean()))
    return np.asarray(out)


def multicell_bounds(s: TwinSettings):
    """(scenario, H0's end, the last scored period + 1) of ``--part multicell``; bad settings raise ``FieldError``
    (and a bad scenario file ``ScenarioError``) before anything runs."""
    from slicing.config import load_scenario
    from slicing.experiments.idla import phase_bounds

    scenario = load_scenario(s.scenario)
    h0_end, h1_phase_end = phase_bounds(scenario)
    if s.h1_periods > h1_phase_end - h0_end:
        raise FieldError(("h1_periods",), f"{s.scenario}'s H1 has {h1_phase_end - h0_end} periods, got "
                                          f"{s.h1_periods}")
    if h0_end - 1 < 2 * s.twin_seq_len:
        raise FieldError(("twin_seq_len",), f"{s.scenario}'s H0 has {h0_end - 1} transitions; the twin needs at "
                                            f"least 2 * twin_seq_len = {2 * s.twin_seq_len}")
    return scenario, h0_end, h0_end + s.h1_periods


def part_multicell(s: TwinSettings, out: Path, progress: Progress | None) -> dict[str, Any]:
    from slicing.experiments.metrics import phase_metrics
    from slicing.rl.cell_twin import run_cell_arm
    from slicing.rl.env import period_reward
    from slicing.runtime.ray_util import ensure_ray

    scenario, h0_end, h1_end = multicell_bounds(s)
    ensure_ray()
    results = _arms_as_tasks(run_cell_arm, lambda seed, arm: (scenario, s, seed, arm == "twin", h0_end, h1_end),
                             s.seeds, "multicell", progress)
    kind = scenario.drl.reward
    window = min(96, s.h1_periods)
    traffic = {seed: traffic_rewards(scenario.model_copy(update={"seed": seed}), h0_end, h1_end, kind)
               for seed in s.seeds}
    curves = {arm: {seed: np.asarray([period_reward(rec.r, rec.mask, kind).mean() for rec in results[(arm, seed)]
                                      .records]) for seed in s.seeds} for arm in ARMS}
    smooth = {arm: np.asarray([_trailing(by_seed[sd], window) for sd in s.seeds])
              for arm, by_seed in (curves | {"traffic": traffic}).items()}  # [seeds, H1 periods]
    relative = {arm: {sd: smooth[arm][i] / np.maximum(smooth["traffic"][i], 1e-9) for i, sd in enumerate(s.seeds)}
                for arm in ARMS}
    per_seed = {str(lvl): {arm: [periods_to(relative[arm][sd], lvl, window) for sd in s.seeds] for arm in ARMS}
                for lvl in MULTICELL_LEVELS}
    to_level = {lvl: {arm: (None if any(v is None for v in vals) else round(float(np.mean(vals)), 1))
                      for arm, vals in arms.items()} for lvl, arms in per_seed.items()}
    early = min(2 * window, s.h1_periods)

    def h1(arm: str, seed: int) -> dict[str, float]:
        recs = results[(arm, seed)].records
        return phase_metrics(np.stack([r.r for r in recs]), np.stack([r.mask for r in recs]),
                             np.stack([r.share.sum(axis=1) for r in recs]))

    metrics = {arm: {k: _mean_std([h1(arm, sd)[k] for sd in s.seeds])
                     for k in ("mean_satisfaction", "p_satisfied", "mean_utility")} for arm in ARMS}
    rounds = [results[("twin", sd)].rounds for sd in s.seeds]
    fid_keys = [k for k in rounds[0][0] if k not in ("period", "transitions", "held_out")] if rounds[0] else []
    twin_fidelity = {when: {k: round(float(np.mean([r[i][k] for r in rounds])), 4) for k in fid_keys}
                     for when, i in (("h0_only", 0), ("last_round", -1))} if fid_keys else {}
    figures = plots.multicell_curves(smooth, window, rounds, h0_end, out)
    return {
        "scenario": s.scenario, "cells": int(scenario.cells), "h0_end": h0_end, "h1_periods": s.h1_periods,
        "periods_to_level": to_level, "periods_to_level_per_seed": per_seed,
        "early_reward": {arm: _mean_std([curves[arm][sd][:early].mean() for sd in s.seeds]) for arm in ARMS}
        | {"traffic": _mean_std([traffic[sd][:early].mean() for sd in s.seeds])},
        "final_reward": {arm: _mean_std([curves[arm][sd][-window:].mean() for sd in s.seeds]) for arm in ARMS}
        | {"traffic": _mean_std([traffic[sd][-window:].mean() for sd in s.seeds])},
        "h1_metrics": metrics, "twin_fidelity": twin_fidelity, "twin_rounds": len(rounds[0]),
        "round_periods": s.round_periods, "twin_periods": s.twin_periods, "zeta": s.zeta, "seeds": list(s.seeds),
        "reward": kind, "window": window, "early_periods": early,
        "arm_wall_s": {arm: round(float(np.mean([results[(arm, sd)].wall_s for sd in s.seeds])), 1) for arm in ARMS},
        "figures": figures, "paper": PAPER["multicell"],
    }


PARTS: dict[str, Callable[[TwinSettings, Path, Progress | None], dict[str, Any]]] = {
    "train": part_train, "distill": part_distill, "offline": part_offline, "landscape": part_landscape,
    "multicell": part_multicell}


def run_twin_experiment(part: str, s: TwinSettings, out: Path, progress: Progress | None = None) -> dict[str, Any]:
    """Run one ``--part``; returns its JSON payload (also written to ``<out>/<part>.json``)."""
    from slicing.threads import single_torch_thread

    if part not in PARTS:
        raise ValueError(f"part: must be one of {', '.join(PARTS)}; got {part!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with single_torch_thread():
        payload = PARTS[part](s, out, progress)
    payload = {"part": part} | payload | {"wall_s": round(time.perf_counter() - t0, 1)}
    (out / f"{part}.json").write_text(json.dumps(payload, indent=2))
    return payload
