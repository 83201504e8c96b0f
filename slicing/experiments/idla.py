"""The IDLA experiment (paper section V-C), for any scenario and any set of schemes.

  H0  first h0_fraction of the run: the exploring behaviour policy (traffic-proportional, a random allocation
      in a cell with probability explore_epsilon) is in control; KPI samples are collected.
  --  the QoS estimator is trained on H0's samples (with IDLA's augmentation rules).
  H1  next h1_fraction: every scheme allocates online from the same H0 end state (same traffic realisation).
  H2  the rest: the scenario's schedule adds a slice (idla.yaml: slice 3 at 60 %); IDLA keeps the same estimator.

Scheme ``drl`` (``slicing/rl/drl.py``, RLlib) is the paper's DRL baseline: its cell-wise agents are in control
from period 0, explore in H0, train online from H1, and are scored on the same H1/H2 periods.

Every scheme sees the same random traffic (counter RNG), so differences are the schemes' alone.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from slicing.config import Scenario
from slicing.data.augment import augment
from slicing.data.history import History
from slicing.data.samples import Samples, samples_from_report
from slicing.experiments.metrics import phase_metrics
from slicing.models.qos_estimator import QosEstimator
from slicing.models.qos_training import TrainReport, train_estimator
from slicing.optim.rollout import Period, explore, rollout, scheme_policy
from slicing.optim.schemes import make_scheme
from slicing.sim.simulator import KpiReport, Simulator

Progress = Callable[[str, int], None]  # (stage label, periods advanced)


@dataclass
class Trace:
    """Per-period records of one run: [T, N, S] arrays (share_sum [T, N])."""

    r: list[np.ndarray] = field(default_factory=list)
    mask: list[np.ndarray] = field(default_factory=list)
    tput_ratio: list[np.ndarray] = field(default_factory=list)
    share_sum: list[np.ndarray] = field(default_factory=list)
    est: list[np.ndarray] = field(default_factory=list)  # [N, S] the estimator's r at the applied shares, if asked

    def add(self, rep: KpiReport, req_mbps: np.ndarray) -> None:
        """Append one period (a ``KpiReport``, or any record with r, mask, throughput_mbps and share)."""
        self.r.append(rep.r)
        self.mask.append(rep.mask)
        self.tput_ratio.append(np.where(rep.mask, rep.throughput_mbps / req_mbps, np.nan))
        self.share_sum.append(rep.share.sum(axis=1))

    def arrays(self, start: int = 0, stop: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        sl = slice(start, stop)
        return np.stack(self.r[sl]), np.stack(self.mask[sl]), np.stack(self.share_sum[sl])


@dataclass
class EvaluationResult:
    scenario: Scenario
    h0_end: int
    h1_end: int
    estimator: TrainReport
    model: QosEstimator
    h0: Trace  # the shared behaviour-policy phase
    traces: dict[str, Trace]  # per scheme, periods h0_end .. steps - 1

    def metrics(self) -> dict[str, dict[str, dict[str, float]]]:
        split = self.h1_end - self.h0_end
        out = {}
        for name, tr in self.traces.items():
            out[name] = {"H1": phase_metrics(*tr.arrays(0, split)), "H2": phase_metrics(*tr.arrays(split))}
        return out

    def summary(self) -> dict:
        """The JSON object `slicing evaluate --json` prints."""
        return {
            "scenario": self.scenario.name,
            "cells": self.scenario.cells,
            "steps": self.scenario.steps,
            "estimator": {"mae": round(float(self.estimator.mae_test), 5), "samples": int(self.estimator.samples)},
            "schemes": {n: {p: {k: round(v, 5) for k, v in m.items()} for p, m in ph.items()}
                        for n, ph in self.metrics().items()},
        }


def phase_bounds(scenario: Scenario) -> tuple[int, int]:
    ev = scenario.evaluation
    h0_end = max(round(ev.h0_fraction * scenario.steps), 1)
    h1_end = max(round((ev.h0_fraction + ev.h1_fraction) * scenario.steps), h0_end + 1)
    return h0_end, min(h1_end, scenario.steps - 1)


def run_h0(scenario: Scenario, h0_end: int, progress: Progress | None = None):
    """Behaviour policy in control for H0; returns (sim, history, last shares, samples, H0 trace)."""
    sim = Simulator(scenario)
    history = History(len(sim.cell_ids), sim.n_slices)
    trace, parts = Trace(), []

    def on_period(p: Period) -> None:
        if p.z is not None:
            parts.append(samples_from_report(p.report, p.z, sim.slice_ids))
        trace.add(p.report, sim.throughput_req_mbps)
        if progress:
            progress("H0 collect", 1)

    policy = explore(scenario.evaluation.explore_epsilon, scenario.seed)
    shares = rollout(sim, history, policy, h0_end, on_period, features=True)
    return sim, history, shares, Samples.concat(parts), trace


def run_scheme(name: str, model: QosEstimator, sim: Simulator, history: History, warm: np.ndarray,
               scenario: Scenario, progress: Progress | None = None, estimate: bool = False) -> Trace:
    """Run one scheme online from the H0 end state to the end of the run. ``estimate``: also record the
    estimator's r at the applied shares (``Trace.est``, for ``idla_diagnose``)."""
    scheme = make_scheme(name, model=model, idla=scenario.idla, seed=scenario.seed)
    trace = Trace()

    def on_period(p: Period) -> None:
        trace.add(p.report, sim.throughput_req_mbps)
        if estimate and p.z is not None:
            feats = np.concatenate([p.shares[..., None], p.z], axis=-1).astype(np.float32)  # [N, S, 13]
            with torch.inference_mode():
                est = model(torch.from_numpy(feats.reshape(-1, feats.shape[-1]))).numpy()
            trace.est.append(est.reshape(p.shares.shape))
        if progress:
            progress(name, 1)

    policy = scheme_policy(scheme, offered=name == "traffic")
    rollout(sim, history, policy, max(0, scenario.steps - sim.period), on_period, features=estimate, warm=warm)
    return trace


DRL = "drl"  # the RLlib DRL baseline: not a per-period allocator, it runs its own online training loop


def run_drl_trace(scenario: Scenario, h0_end: int, progress: Progress | None = None) -> Trace:
    """The ``drl`` scheme's trace of periods h0_end .. steps - 1 (imports RLlib)."""
    from slicing.rl.drl import run_drl

    req = np.array([s.throughput_req_mbps for s in scenario.slices], dtype=np.float64)
    trace = Trace()
    for rec in run_drl(scenario, h0_end, progress):
        if rec.period >= h0_end:
            trace.add(rec, req)
    return trace


def evaluate(scenario: Scenario, schemes: list[str], progress: Progress | None = None,
             train_progress: Callable[[int, float], None] | None = None, estimate: bool = False) -> EvaluationResult:
    h0_end, h1_end = phase_bounds(scenario)
    sim, history, warm, samples, h0_trace = run_h0(scenario, h0_end, progress)
    if scenario.estimator.augment:
        samples = augment(samples, np.random.default_rng(scenario.seed))
    model, report = train_estimator(samples.features(), samples.targets(), scenario.estimator,
                                    seed=scenario.seed, progress=train_progress)
    traces = {}
    for name in schemes:
        if name == DRL:
            traces[name] = run_drl_trace(scenario, h0_end, progress)
            continue
        s, h = copy.deepcopy(sim), copy.deepcopy(history)
        traces[name] = run_scheme(name, model, s, h, warm.copy(), scenario, progress, estimate)
    return EvaluationResult(scenario, h0_end, h1_end, report, model, h0_trace, traces)
