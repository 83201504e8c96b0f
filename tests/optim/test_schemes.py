"""The scheme registry: every registered scheme allocates feasibly; the registry knows no RL until it registers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import slicing.rl.scheme  # noqa: F401 - registers "rl", so the parametrisation below covers it
from slicing.config import HISTORY, IdlaConfig, Scenario, Topology
from slicing.data.features import obs_dim
from slicing.data.history import History
from slicing.models.qos_estimator import QosEstimator
from slicing.optim.baselines import equal_share
from slicing.optim.rollout import rollout, traffic_policy
from slicing.optim.schemes import SCHEMES, AllocationContext, UnknownSchemeError, make_scheme, register_scheme
from slicing.sim.simulator import Simulator

OPTIM = Path(__file__).resolve().parents[2] / "slicing" / "optim"


class _EqualPolicy:
    """Stands in for an RLlib checkpoint: equal shares on the observations' cells."""

    version = "fake-policy"

    def allocate(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        assert obs.shape == (len(mask), obs_dim(mask.shape[1]))
        return equal_share(mask)


@pytest.fixture(scope="module")
def warm_sim() -> tuple[Simulator, History, np.ndarray]:
    sim = Simulator(Scenario(name="schemes", seed=2, steps=20, topology=Topology(sites=3)))
    history = History(len(sim.cell_ids), sim.n_slices)
    last = rollout(sim, history, traffic_policy, HISTORY)
    return sim, history, last


@pytest.mark.parametrize("name", sorted(SCHEMES))
def test_every_registered_scheme_allocates_feasibly(name: str, warm_sim, monotone_model: QosEstimator,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    sim, history, last = warm_sim
    monkeypatch.setattr("slicing.rl.inference.RlPolicy.from_checkpoint", lambda path: _EqualPolicy())
    scheme = make_scheme(name, model=monotone_model, idla=IdlaConfig(), seed=1, checkpoint="ckpt")
    mask = sim.slice_mask()
    obs = np.zeros((len(mask), obs_dim(mask.shape[1]))) if getattr(scheme, "needs_obs", False) else None
    ctx = AllocationContext.of(sim, history, last, z=scheme.needs_model, offered=name == "traffic", obs=obs)
    x = np.asarray(scheme.allocate(ctx))
    assert x.shape == mask.shape and np.all(np.isfinite(x)) and np.all(x >= 0)
    assert np.all(x[~mask] == 0) and np.all(x.sum(axis=1) <= 1.0 + 1e-9)
    assert x[mask.any(axis=1)].sum(axis=1).min() > 0.5  # every scheme hands out most of the budget
    assert scheme.name == name


def test_allocation_context_of_a_simulator(warm_sim) -> None:
    sim, history, last = warm_sim
    ctx = AllocationContext.of(sim, history, last, offered=True)
    assert ctx.period == sim.period and ctx.warm is last and ctx.obs is None
    np.testing.assert_array_equal(ctx.cell_ids, sim.cell_ids)
    np.testing.assert_array_equal(ctx.mask, sim.slice_mask())
    np.testing.assert_array_equal(ctx.z, history.features(sim.throughput_req_mbps, sim.delay_req_ms))
    np.testing.assert_array_equal(ctx.offered_mbps, sim.demand().offered_mbps)
    bare = AllocationContext.of(sim, None, period=sim.period + 1, mask=ctx.mask, z=False)
    assert bare.z is None and bare.offered_mbps is None and bare.period == sim.period + 1 and bare.mask is ctx.mask


def test_unknown_scheme_and_registration() -> None:
    with pytest.raises(UnknownSchemeError, match=r"unknown scheme 'nope'; choose from \['equal', 'idla'"):
        make_scheme("nope")
    with pytest.raises(UnknownSchemeError, match="needs an RL checkpoint"):
        make_scheme("rl")
    seen = {}

    def factory(**kwargs):
        seen.update(kwargs)
        return SCHEMES["equal"](**kwargs)

    register_scheme("test-equal", factory)
    try:
        assert make_scheme("test-equal", seed=5).name == "equal"
        assert seen["seed"] == 5 and seen["checkpoint"] is None and isinstance(seen["idla"], IdlaConfig)
    finally:
        del SCHEMES["test-equal"]


def test_optim_knows_no_rl() -> None:
    """No module of slicing.optim names the RL layer, importing all of them loads none of it, and importing
    slicing.rl.scheme adds the rl scheme."""
    for path in OPTIM.glob("*.py"):
        assert "slicing.rl" not in path.read_text(), path
    modules = sorted(f"slicing.optim.{p.stem}" for p in OPTIM.glob("*.py") if p.stem != "__init__")
    code = (f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
            "from slicing.optim.schemes import SCHEMES\n"
            "loaded = sorted(m for m in sys.modules if m == 'slicing.rl' or m.startswith('slicing.rl.'))\n"
            "assert not loaded and 'rl' not in SCHEMES, (loaded, sorted(SCHEMES))\n"
            "assert 'ray' not in sys.modules\n"
            "import slicing.rl.scheme\n"
            "assert 'rl' in SCHEMES\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
