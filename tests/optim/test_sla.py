"""SLA decomposition: the targets compose back to the e2e SLA, the split is optimal (checked with scipy), it moves
the right way, and an SLA that cannot be met is reported per slice."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize

from slicing.optim.sla import DOMAINS, SlaDomains, compose, decompose


def test_targets_compose_back_to_the_e2e_sla() -> None:
    lat, rel = np.array([20.0, 50.0, 100.0]), np.array([0.99, 0.999, 0.9999])
    dec = decompose(lat, rel, np.array([5.0, 15.0, 25.0]))
    assert dec.feasible.all() and dec.reason == [None, None, None]
    used, composed = compose(dec)
    np.testing.assert_allclose(used, lat, rtol=1e-9)  # latency additive: the whole budget is used
    np.testing.assert_allclose(composed, rel, rtol=1e-9)  # reliability multiplicative
    dm = SlaDomains()
    for d in DOMAINS:
        assert (dec.latency_ms[d] > dm.domain(d).floor_ms).all()
        assert (dec.capacity_mbps[d] <= dm.domain(d).capacity_cap_mbps).all()
    np.testing.assert_allclose(dec.transport_mbps, dec.capacity_mbps["transport"])
    np.testing.assert_allclose(dec.cpu_millicores, dm.cpu_base_millicores
                               + dec.capacity_mbps["core"] / dm.cpu_mbps_per_millicore)


def test_the_split_is_optimal() -> None:
    """scipy's SLSQP on the same convex problem from a generic start finds no cheaper split."""
    dm = SlaDomains()
    lat, rel, thr = 40.0, 0.999, 10.0
    dec = decompose(lat, rel, thr, dm)
    ms = [dm.domain(d) for d in DOMAINS]
    floor = np.array([m.floor_ms for m in ms])
    s = 1000.0 * np.array([m.packet_mbit for m in ms])
    w = 1.0 / np.array([m.capacity_cap_mbps for m in ms])
    load = thr / np.array([m.efficiency for m in ms])

    def cost(z: np.ndarray) -> float:
        y, v = z[:3], z[3:]
        a = -np.log(-np.expm1(-v))
        return float((w * (load + s * a / y)).sum())

    cons = [{"type": "eq", "fun": lambda z: lat - floor.sum() - z[:3].sum()},
            {"type": "eq", "fun": lambda z: -np.log(rel) - z[3:].sum()}]
    z0 = np.r_[np.full(3, (lat - floor.sum()) / 3), np.full(3, -np.log(rel) / 3)]
    best = minimize(cost, z0, constraints=cons, bounds=[(1e-6, None)] * 6, method="SLSQP", options={"ftol": 1e-12})
    assert best.success
    assert dec.objective[0] <= best.fun * (1 + 1e-6)
    assert dec.objective[0] == pytest.approx(best.fun, rel=1e-4)


def test_tighter_slas_need_more_resource() -> None:
    base = decompose(50.0, 0.999, 10.0)
    assert decompose(30.0, 0.999, 10.0).objective[0] > base.objective[0]  # less latency budget
    assert decompose(50.0, 0.99999, 10.0).objective[0] > base.objective[0]  # more reliability
    assert decompose(50.0, 0.999, 20.0).cpu_millicores[0] > base.cpu_millicores[0]  # more throughput


def test_infeasible_slas_are_reported_per_slice_not_raised() -> None:
    dec = decompose(np.array([2.0, 50.0, 10.0]), np.array([0.99, 0.99, 0.99999]), np.array([5.0, 5.0, 40.0]))
    assert dec.feasible.tolist() == [False, True, False]
    assert "latency_ms 2" in dec.reason[0] and dec.reason[1] is None
    assert "above its cap" in dec.reason[2]


@pytest.mark.parametrize(("kwargs", "field"), [({"latency_ms": -1.0}, "latency_ms"), ({"reliability": 1.0},
                         "reliability"), ({"throughput_mbps": -3.0}, "throughput_mbps"),
                         ({"latency_ms": np.array([10.0, 20.0]), "reliability": np.array([0.9, 0.9, 0.9])},
                          "same length")])
def test_bad_input_names_the_field(kwargs: dict, field: str) -> None:
    args = {"latency_ms": 50.0, "reliability": 0.99, "throughput_mbps": 5.0}
    with pytest.raises(ValueError, match=field):
        decompose(**(args | kwargs))
