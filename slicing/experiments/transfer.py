"""``slicing experiment transfer``: similarity-guided transfer learning in a heterogeneous network (TL-aided
MADRL, sections V-3, V-5).

Network (the paper: cells with two "labels" of slice requirements and traffic). Five groups of three cells (one
three-sector site each) of a >= 5-site scenario: four source agents and one new target. Without
``cell_classes`` in the scenario, ``DEFAULT_CLASSES`` makes the network heterogeneous: two labels = two slice mixes
(``slice_load``: label A eMBB-heavy, label B IoT-heavy) at two traffic volumes (``load_scale``):

    src_1  cells 0-2   label A, load 1.0   <- the target resembles this one by construction
    src_2  cells 3-5   label A, load 1.6
    src_3  cells 6-8   label B, load 1.0
    src_4  cells 9-11  label B, load 1.6
    target cells 12-14 label A, load 0.9

(Our slice catalogue is global, so a "label" is a different mix and volume of the same slice types, not different
requirements per slice; see ``Scenario.cell_classes``.)

Pipeline: pre-train each source (``strategies.pretrain_source``: one shared SAC module per group) -> default-action
samples of all five agents (``samples.collect_for_agents``) -> one general VAE on all of them and the ranking of
the sources by latent distance (``ranking``, Lemma 1) -> train the target ``iterations`` iterations: from scratch,
with integrated transfer (model + instance) from every source, and with model / instance / feature transfer from
the nearest. Every target run uses the same seed (same initial weights where not transferred, same days).

Gain (the issue's definition, the paper's "TL gain" of Fig. 8 at the early steps): mean reward per agent-period
over the first ``early`` iterations minus that of scratch. ``spearman_distance_gain``: Spearman rank correlation
between the sources' distances and their integrated-transfer gains (the paper expects it negative).
``iterations_to_scratch_final``: first iteration at which a run's reward reaches scratch's final reward (mean of
its last ``early`` iterations), None if never; ``iterations_to_95pct_scratch_final`` the same for 95 % of it (the
sampled rewards are noisy, and a transferred agent that plateaus just below scratch's last days never "reaches"
it). ``baseline_reward``: the traffic-proportional baseline on the target over the sampled days, for reference.

Results to expect (defaults: 12 source iterations, 8 target iterations, early = 3; 4.5-7 min on 2 busy cores):
ranking src_1 < src_2 < src_3 < src_4 (the same-label sources first); early reward ~0.10 from scratch, ~0.91 with
integrated TL from src_1, ~0.66 from src_4 (gains ~+0.8 / ~+0.55, Spearman -0.8 to -1); model transfer carries
the gain (~+0.8), instance transfer alone ~0, feature transfer ~+0.25; after 8 iterations scratch (~0.95) is
level with TL from the nearest and ahead of TL from the label-B sources (~0.80-0.85).

Runtime: torch is limited to one thread while the experiment runs (``strategies.single_torch_thread``: the env runner
and learner are local; on two shared cores torch's thread pool otherwise spins and is several times slower).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from slicing.config import Scenario, build_scenario
from slicing.experiments.transfer_plots import plot_curves, plot_distance_gain
from slicing.models.vae import VaeConfig
from slicing.rl.env import EnvConfig
from slicing.rl.settings import TransferSettings
from slicing.rl.transfer import (
    SCRATCH,
    pretrain_source,
    single_torch_thread,
    transfer_train,
)
from slicing.rl.transfer_samples import collect_for_agents
from slicing.runtime.ray_util import ensure_ray
from slicing.transfer.ranking import fit_general_vae, rank_sources

TARGET = "target"
GROUPS: dict[str, tuple[int, ...]] = {"src_1": (0, 1, 2), "src_2": (3, 4, 5), "src_3": (6, 7, 8),
                                      "src_4": (9, 10, 11), TARGET: (12, 13, 14)}
MIX_A = {1: 1.5, 2: 1.0, 4: 0.5}  # label A: eMBB-heavy
MIX_B = {1: 0.4, 2: 1.0, 4: 2.0}  # label B: IoT-heavy
DEFAULT_CLASSES = (
    {"name": "A", "cells": list(GROUPS["src_1"]), "load_scale": 1.0, "slice_load": MIX_A},
    {"name": "A_busy", "cells": list(GROUPS["src_2"]), "load_scale": 1.6, "slice_load": MIX_A},
    {"name": "B", "cells": list(GROUPS["src_3"]), "load_scale": 1.0, "slice_load": MIX_B},
    {"name": "B_busy", "cells": list(GROUPS["src_4"]), "load_scale": 1.6, "slice_load": MIX_B},
    {"name": "A_target", "cells": list(GROUPS[TARGET]), "load_scale": 0.9, "slice_load": MIX_A},
)
MIN_CELLS = 15


def default_scenario() -> Scenario:
    """The experiment's network when no scenario is given: the defaults at 5 sites, seed 7."""
    return build_scenario({"name": "transfer", "seed": 7, "topology": {"sites": 5}})


def heterogeneous(scenario: Scenario) -> Scenario:
    """``scenario`` with ``DEFAULT_CLASSES`` unless it defines its own ``cell_classes``; needs >= 15 cells."""
    if scenario.cells < MIN_CELLS:
        raise ValueError(f"topology.sites: the transfer experiment needs >= {MIN_CELLS} cells (5 sites), the "
                         f"scenario has {scenario.cells}; e.g. --set topology.sites=5")
    if scenario.cell_classes:
        return scenario
    known = {s.id for s in scenario.slices}
    classes = [c | {"slice_load": {k: v for k, v in c["slice_load"].items() if k in known}} for c in DEFAULT_CLASSES]
    return build_scenario(scenario.model_dump(mode="json") | {"cell_classes": classes})


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman rank correlation (average ranks for ties); None if fewer than 2 points or a constant side."""
    if len(x) < 2:
        return None

    def ranks(v: Sequence[float]) -> np.ndarray:
        v = np.asarray(v, dtype=np.float64)
        order = np.argsort(v, kind="stable")
        r = np.empty(len(v))
        r[order] = np.arange(len(v), dtype=np.float64)
        for val in np.unique(v):  # average ranks of ties
            r[v == val] = r[v == val].mean()
        return r

    rx, ry = ranks(x), ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return None
    return float(np.corrcoef(rx, ry)[0, 1])


def baseline_reward(scenario: Scenario, cells: Sequence[int], episodes: int, episode_len: int, seed: int) -> float:
    """Mean reward per agent-period of the traffic-proportional baseline on ``cells`` (same days as the samples)."""
    from slicing.data.features import shares_to_action
    from slicing.rl.env import CellSlicingEnv

    env = CellSlicingEnv(EnvConfig(scenario=scenario, cell_ids=list(cells), seed=seed, episode_len=episode_len))
    total, n = 0.0, 0
    for e in range(int(episodes)):
        env.reset(seed=int(seed) if e == 0 else None)
        for _ in range(env.episode_len):
            logits = shares_to_action(env.baseline_shares(), env.region_mask())
            _, rew, _, trunc, _ = env.step({a: logits[i] for i, a in enumerate(env.possible_agents)})
            total, n = total + sum(rew.values()), n + len(rew)
            if trunc["__all__"]:
                break
    return total / n


def _reach(curve: Sequence[float | None], level: float | None) -> int | None:
    if level is None:
        return None
    for i, v in enumerate(curve):
        if v is not None and v >= level:
            return i + 1
    return None


def run_transfer_experiment(scenario: Scenario | None, s: TransferSettings, out: str | Path,
                            log: Callable[[str], None] | None = None,
                            progress: Callable[[str, int, int], None] | None = None,
                            vae: VaeConfig | None = None) -> dict[str, Any]:
    """Run the experiment (module docstring) with ``s`` (and ``vae``: the general VAE's training settings, None =
    defaults); writes plots and summary.json to ``out``; returns the JSON dict. Starts a local Ray unless one is
    running."""
    iterations, early, seed, episode_len = s.iterations, s.early, s.seed, s.episode_len
    pretrain_iterations, sample_episodes, strategies = s.pretrain_iterations, s.sample_episodes, s.compared
    say = log or (lambda msg: None)
    step = progress or (lambda stage, done, total: None)
    t0 = time.perf_counter()
    ensure_ray()
    sc = heterogeneous(scenario if scenario is not None else default_scenario())
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = [f"src_{k}" for k in range(1, s.sources + 1)]
    groups = {n: GROUPS[n] for n in names} | {TARGET: GROUPS[TARGET]}
    common = {"episode_len": episode_len, "train_batch": s.train_batch}
    with single_torch_thread():
        pre: dict[str, dict] = {}
        for n in names:
            say(f"pre-training {n} on cells {list(groups[n])} ({pretrain_iterations} iterations)")
            pre[n] = pretrain_source(sc, groups[n], out / "sources" / n, pretrain_iterations, seed=seed,
                                     progress=lambda i, n=n: step(f"pretrain {n}", i, pretrain_iterations), **common)
        say("default-action samples, general VAE, ranking")
        samples = collect_for_agents(sc, groups, episodes=sample_episodes, episode_len=episode_len, seed=seed)
        model, report = fit_general_vae(samples, vae, seed=seed)
        ranking = rank_sources(samples, TARGET, model, "mean")
        nearest, farthest = ranking[0][0], ranking[-1][0]
        runs: dict[str, dict] = {}

        def target_run(key: str, strategy: str, src: str | None) -> dict:
            say(f"target: {key}")
            res = transfer_train(sc, groups[TARGET], strategy, None if src is None else pre[src], iterations, seed,
                                 out / "target" / key, early=early,
                                 progress=lambda i: step(key, i, iterations), **common)
            runs[key] = res
            return res

        target_run(SCRATCH, SCRATCH, None)
        for n, _ in ranking:
            target_run(f"integrated_{n}", "integrated", n)
        for strat in strategies:
            if strat != "integrated":
                target_run(f"{strat}_{nearest}", strat, nearest)
    scratch = runs[SCRATCH]

    def gain(key: str) -> float | None:
        e, s0 = runs[key]["early_reward"], scratch["early_reward"]
        return None if e is None or s0 is None else float(e - s0)

    source_gain = {n: gain(f"integrated_{n}") for n, _ in ranking}
    pairs = [(d, source_gain[n]) for n, d in ranking if source_gain[n] is not None]
    strategy_gain = {strat: gain(f"{strat}_{nearest}") for strat in strategies}
    base = baseline_reward(sc, groups[TARGET], sample_episodes, episode_len, seed)
    curves = {key: r["rewards"] for key, r in runs.items()}
    plots = {"curves": str(plot_curves(curves, nearest, farthest, base, early, out / "transfer_reward_curves.png")),
             "distance_gain": str(plot_distance_gain(ranking, source_gain, out / "transfer_distance_gain.png"))}
    result = {
        "ranking": [{"source": n, "distance": float(d)} for n, d in ranking],
        "gain_nearest": source_gain[nearest],
        "gain_farthest": source_gain[farthest],
        "spearman_distance_gain": spearman([p[0] for p in pairs], [p[1] for p in pairs]),
        "strategies": strategy_gain,
        "nearest": nearest,
        "farthest": farthest,
        "source_gains": source_gain,
        "early_iterations": int(early),
        "iterations": int(iterations),
        "pretrain_iterations": int(pretrain_iterations),
        "early_reward": {key: r["early_reward"] for key, r in runs.items()},
        "final_reward": {key: r["final_reward"] for key, r in runs.items()},
        "iterations_to_scratch_final": {key: _reach(r["rewards"], scratch["final_reward"]) for key, r in runs.items()},
        "iterations_to_95pct_scratch_final": {
            key: _reach(r["rewards"], None if scratch["final_reward"] is None else 0.95 * scratch["final_reward"])
            for key, r in runs.items()},
        "source_final_reward": {n: p["final_reward"] for n, p in pre.items()},
        "baseline_reward": base,
        "vae": {"recon": report.recon, "kl": report.kl, "samples": report.samples},
        "plots": plots,
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    (out / "summary.json").write_text(json.dumps(result | {"curves": curves}, indent=2))
    return result
