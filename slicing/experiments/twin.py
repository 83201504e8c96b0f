"""Digital-twin-enhanced DRL (paper 004) reproduced: Algorithm 1 against the same agent without the twin, knowledge
distillation, offline RL (Algorithm 2) and loss landscapes. One function per ``--part``; each returns its JSON
payload (ours beside the paper's under ``"paper"``) and writes its figure and ``<part>.json`` to ``out``.

How to run: ``slicing experiment twin --part train|distill|offline|landscape [--algo dqn|ddqn|dueling] [--json]
[--out DIR]``. ``distill`` and ``landscape`` use the agents ``train`` saved under ``<out>/agents`` (same algo and
seeds), and run ``train`` first when they are missing.

- ``train``: Figs. 5-6: per round (T = 200 real steps) the mean reward (eq. 6) and utility (eq. 5) of Agent 1 with
  the twin, without it, and of a random policy; every seed in its own Ray task (one CPU each); the rounds each
  arm needs to reach a mean reward of 0.8; the twin's fidelity per round.
- ``distill``: Fig. 8: students (2 layers of 4 or 16 neurons) of the teachers trained with and without the twin,
  evaluated greedily on the real env.
- ``offline``: Fig. 9: Algorithm 2 on a fixed random-policy dataset, with the twin (Agent 2 trained in a twin fitted
  on that dataset; upsilon > 0 towards its weights, starting from them) and without (upsilon = 0, random start).
- ``landscape``: Fig. 7: L(theta + lambda v) along the gradient and a random direction for the trained agents;
  flatness = curvature at lambda = 0.

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

from slicing.experiments import twin_plots as plots
from slicing.models.twin import DigitalTwin, Transitions, load_twin, save_twin_blob
from slicing.rl.settings import TwinSettings

Progress = Callable[[str, int, int], None]
THRESHOLDS = (0.8,)
ARMS = ("plain", "twin")

PAPER: dict[str, Any] = {
    "train": {"ddqn_rounds_to_0.8": {"plain": 1500, "twin": 1000},
              "finding": "every phi learns faster with the twin; random is worst (Figs. 5-6)"},
    "distill": {"finding": "students of the twin-trained teacher beat those of the plain teacher (Fig. 8)"},
    "offline": {"finding": "offline DRL with the twin beats offline DRL without it (Fig. 9)"},
    "landscape": {"finding": "twin-trained agents sit in flatter minima (Fig. 7)"},
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

def part_train(s: TwinSettings, out: Path, progress: Progress | None) -> dict[str, Any]:
    import ray

    from slicing.rl.twin import run_arm, run_random
    from slicing.runtime.ray_util import ensure_ray

    ensure_ray()
    board = ray.remote(num_cpus=0)(ProgressBoard).remote()  # the tasks report their rounds; the driver shows them

    def report(label: str, done: int, total: int) -> None:
        board.update.remote(label, done, total)

    remote = ray.remote(num_cpus=1)(run_arm)
    jobs = {(arm, seed): remote.remote(s, seed, arm == "twin", report) for seed in s.seeds for arm in ARMS}
    results = {}
    for seed in s.seeds:
        results[("random", seed)] = run_random(s, seed)
        if progress:
            progress("train: random policy", len(results), len(s.seeds))
    pending = dict(jobs)
    while pending:
        ready, _ = ray.wait(list(pending.values()), num_returns=1, timeout=2.0)
        if progress:
            for label, (done, total) in sorted(ray.get(board.read.remote()).items()):
                progress(f"train: {label}", done, total)
        for ref in ready:
            key = next(k for k, v in pending.items() if v == ref)
            results[key] = ray.get(ref)
            del pending[key]
    ray.kill(board)
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
            summary["plain"]["reward"]["mean"], "upsilon": s.upsilon, "epochs": s.offline_epochs,
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


PARTS: dict[str, Callable[[TwinSettings, Path, Progress | None], dict[str, Any]]] = {
    "train": part_train, "distill": part_distill, "offline": part_offline, "landscape": part_landscape}


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
