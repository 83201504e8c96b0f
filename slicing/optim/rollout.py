"""The period loop, written once: ``rollout`` steps a simulator under a policy and feeds the history.

One O&M period: the policy allocates shares for ``sim.period`` (from the simulator, the history of the H periods
before it and the last shares), ``sim.step`` simulates the period, its report is pushed into the history, and
``on_period`` sees what happened (``Period``: shares, the features z from before the period, the report).
Every driver runs its periods through it: the sample collection below, the IDLA experiment
(``slicing/experiments/idla.py``), the benchmark and the sweeps' warm-up.

Policies: ``traffic_policy`` (the traffic baseline), ``explore(epsilon, seed)`` (the H0 behaviour policy,
``explore.py``) and ``scheme_policy(scheme)`` (any registered allocation scheme, warm-started from the last shares).

Also here, because they are built from the loop: ``collect`` (H0 samples of a scenario) and
``bootstrap_estimator`` (the small estimator the HTTP service and the benchmarks train when none is given).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from slicing.config import Scenario, build_scenario
from slicing.data.augment import augment as augment_samples
from slicing.data.history import History
from slicing.data.samples import Samples, samples_from_report
from slicing.models.qos_estimator import QosEstimator
from slicing.models.qos_training import train_estimator
from slicing.optim.baselines import proportional_shares
from slicing.optim.explore import explore_policy
from slicing.optim.schemes import AllocationContext, Scheme
from slicing.sim.simulator import KpiReport, Simulator

Policy = Callable[[Simulator, History, np.ndarray | None], np.ndarray]  # (sim, history, last shares) -> [N, S]
Log = Callable[[str], None]


@dataclass(frozen=True)
class Period:
    """One simulated period, as ``on_period`` sees it."""

    shares: np.ndarray  # [N, S] the allocation applied
    z: np.ndarray | None  # [N, S, 2H+2] features before the period (t-H..t-1); None unless asked and ready
    report: KpiReport


def rollout(sim: Simulator, history: History, policy: Policy, periods: int,
            on_period: Callable[[Period], None] | None = None, *, features: bool = False,
            warm: np.ndarray | None = None) -> np.ndarray | None:
    """Run ``periods`` periods (see module docstring); returns the last shares applied (``warm`` if none).

    ``features`` computes z for ``on_period`` once the history is ready; ``warm`` is the policy's first "last
    shares".
    """
    shares = warm
    for _ in range(periods):
        z = history.features(sim.throughput_req_mbps, sim.delay_req_ms) if features and history.ready else None
        shares = policy(sim, history, shares)  # [N, S]
        report = sim.step(shares)
        history.push(report)
        if on_period is not None:
            on_period(Period(shares, z, report))
    return shares


def traffic_policy(sim: Simulator, history: History, warm: np.ndarray | None) -> np.ndarray:
    """The traffic baseline with perfect knowledge of the period's offered traffic (``proportional_shares``)."""
    return proportional_shares(sim.demand().offered_mbps, sim.slice_mask())


def explore(epsilon: float, seed: int) -> Policy:
    """The H0 behaviour policy (``explore.explore_policy``)."""
    return lambda sim, history, warm: explore_policy(sim, sim.demand(), epsilon, seed)


def scheme_policy(scheme: Scheme, offered: bool = False) -> Policy:
    """``scheme`` on ``AllocationContext.of`` the period, warm-started from the last shares; ``offered`` gives it
    the period's offered traffic (the traffic scheme)."""
    needs_z = bool(getattr(scheme, "needs_model", True))

    def policy(sim: Simulator, history: History, warm: np.ndarray | None) -> np.ndarray:
        return scheme.allocate(AllocationContext.of(sim, history, warm, z=needs_z, offered=offered))

    return policy


def collect(
    scenario: Scenario,
    steps: int,
    epsilon: float,
    augment: bool,
    seed: int,
    progress: Callable[[int, int], None] | None = None,
) -> Samples:
    """Simulate ``steps`` periods of ``scenario`` under the H0 behaviour policy and return the samples.

    The first H periods only fill the history; each later period gives one row per active (cell, slice), with z
    from the history before the period's report was pushed. With ``augment`` the IDLA rules (1) and (2) are
    applied using ``np.random.default_rng(seed)``.
    """
    if steps < 0:
        raise ValueError(f"collect: steps must be >= 0, got {steps}")
    sim = Simulator(scenario)
    history = History(len(sim.cell_ids), sim.n_slices)
    slice_ids = np.asarray(sim.slice_ids)
    parts: list[Samples] = []
    done = 0

    def on_period(p: Period) -> None:
        nonlocal done
        if p.z is not None:
            parts.append(samples_from_report(p.report, p.z, slice_ids))
        done += 1
        if progress is not None:
            progress(done, steps)

    rollout(sim, history, explore(epsilon, seed), steps, on_period, features=True)
    samples = Samples.concat(parts)
    return augment_samples(samples, np.random.default_rng(seed)) if augment else samples


def bootstrap_estimator(seed: int, log: Log, epochs: int = 40) -> QosEstimator:
    """A small estimator trained now (36 cells, 600 periods, all four slices; ~10 s): the HTTP service's fallback
    when no estimator is given, and the benchmarks' default."""
    sc = build_scenario({"name": "bench-train", "seed": seed, "topology": {"sites": 12}, "steps": 600,
                         "initial_slices": [1, 2, 3, 4], "estimator": {"epochs": epochs}})
    samples = collect(sc, sc.steps, 0.5, True, seed)
    model, rep = train_estimator(samples.features(), samples.targets(), sc.estimator, seed=seed)
    log(f"bench estimator: {rep.samples} samples, held-out MAE {rep.mae_test:.4f}, {rep.seconds:.1f} s")
    return model
