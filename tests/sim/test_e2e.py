"""The ground-truth end-to-end slice simulator: shapes, determinism, monotonicity, the CPU bottleneck, traffic."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from slicing.config import E2eConfig, E2eTraffic
from slicing.sim import e2e

CFG = E2eConfig(slots_per_interval=20, users_per_slot=16)
IDS = np.arange(5)


def _q(cfg=CFG, traffic=3.0, bw=30.0, cpu=3000.0, share=1.0, ids=IDS, period=0):
    x = np.full((len(ids), cfg.slots_per_interval), traffic)
    return e2e.sample_throughput(cfg, ids, x, bw, cpu, share, period=period)


def test_shapes_and_positive_throughput():
    q = _q()
    assert q.shape == (5, 20, 16)
    assert (q > 0).all() and np.isfinite(q).all()
    mean, std = e2e.summarise(q)
    assert mean.shape == std.shape == (5, 20)


def test_deterministic_and_subset_gives_the_same_rows():
    full = _q()
    np.testing.assert_array_equal(full, _q())
    sub = _q(ids=np.array([3]))
    np.testing.assert_array_equal(sub[0], full[3])
    assert not np.array_equal(_q(period=1), full)  # another interval draws anew
    assert not np.array_equal(_q(cfg=CFG.model_copy(update={"seed": 7})), full)


def test_pathwise_monotone_in_resources_and_traffic():
    base = _q(bw=20.0, cpu=2000.0, share=0.5, traffic=3.0)
    assert (_q(bw=30.0, cpu=2000.0, share=0.5, traffic=3.0) >= base).all()
    assert (_q(bw=20.0, cpu=3000.0, share=0.5, traffic=3.0) >= base).all()
    assert (_q(bw=20.0, cpu=2000.0, share=0.8, traffic=3.0) >= base).all()
    assert (_q(bw=20.0, cpu=2000.0, share=0.5, traffic=4.5) <= base).all()
    # and strictly better somewhere: the resources matter
    assert (_q(bw=40.0, cpu=4000.0, share=1.0) > _q(bw=10.0, cpu=1000.0, share=0.2)).mean() > 0.5


def test_cpu_bottleneck_more_bandwidth_does_not_help():
    # at 1000 millicores the gNB processes (1000 - 400) * 0.0135 = 8.1 Mbit/s < 0.94 * 20 Mbit/s of transport
    np.testing.assert_array_equal(_q(bw=20.0, cpu=1000.0), _q(bw=40.0, cpu=1000.0))
    # with plenty of CPU, bandwidth is the bottleneck and more of it helps
    assert _q(bw=40.0, cpu=4000.0).mean() > 1.5 * _q(bw=20.0, cpu=4000.0).mean()
    cap = e2e.slice_capacity_mbps(CFG, np.array([20.0, 40.0]), np.array([1000.0, 1000.0]))
    np.testing.assert_allclose(cap, [8.1, 8.1])


def test_no_cpu_above_base_means_no_throughput():
    assert (_q(cpu=CFG.cpu_base_millicores) == 0).all()


def test_truncated_normal_traffic_stays_in_bounds_and_centres():
    cfg = E2eConfig(slots_per_interval=4000)
    x = e2e.sample_traffic(cfg, np.arange(3), mean_users_per_s=np.array([1.0, 3.0, 5.0]),
                           std_users_per_s=np.array([0.5, 0.5, 1.5]))
    assert x.shape == (3, 4000)
    assert x.min() >= 1.0 and x.max() <= 5.0
    assert abs(x[1].mean() - 3.0) < 0.05  # symmetric bounds around the centre
    assert x[0].mean() > 1.0 and x[2].mean() < 5.0  # truncation pulls edge centres inwards
    constant = e2e.sample_traffic(cfg, np.arange(2), mean_users_per_s=2.0, std_users_per_s=0.0)
    assert (constant == 2.0).all()
    with pytest.raises(ValueError, match="mean_users_per_s"):
        e2e.sample_traffic(cfg, np.arange(2), mean_users_per_s=7.0)


def test_csv_trace_replays_rows_per_interval(tmp_path):
    path = tmp_path / "trace.csv"
    path.write_text("t,users_per_s\n" + "".join(f"{i},{i % 5 + 1}\n" for i in range(7)))
    cfg = E2eConfig(slots_per_interval=3, traffic=E2eTraffic(model="csv_trace", trace_csv=path))
    first = e2e.sample_traffic(cfg, np.arange(2), period=0)
    np.testing.assert_array_equal(first, [[1, 2, 3], [1, 2, 3]])
    np.testing.assert_array_equal(e2e.sample_traffic(cfg, np.arange(1), period=2), [[2, 1, 2]])  # rows 6, 0, 1


@pytest.mark.parametrize(("body", "match"), [
    ("t\n1\n", "no column 'users_per_s'"),
    ("users_per_s\nabc\n", "must be a number"),
    ("users_per_s\n-1\n", "finite and >= 0"),
    ("users_per_s\n", "at least one row"),
])
def test_bad_trace_errors_name_the_key(tmp_path, body, match):
    path = tmp_path / "bad.csv"
    path.write_text(body)
    cfg = E2eConfig(traffic=E2eTraffic(model="csv_trace", trace_csv=path))
    with pytest.raises(e2e.E2eTraceError, match=match) as err:
        e2e.sample_traffic(cfg, np.arange(1))
    assert str(err.value).startswith("traffic.trace_csv")


def test_missing_trace_and_bad_config():
    with pytest.raises(e2e.E2eTraceError, match="does not exist"):
        e2e.read_trace("/nonexistent/trace.csv")
    with pytest.raises(ValidationError, match="trace_csv is required"):
        E2eTraffic(model="csv_trace")
    with pytest.raises(ValidationError, match="min_users_per_s <= mean_users_per_s"):
        E2eTraffic(mean_users_per_s=9.0)
    with pytest.raises(ValidationError, match="extra"):
        E2eConfig(slots=3)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"bw": -1.0}, "bandwidth_mbps"),
    ({"cpu": np.ones((2, 2))}, "cpu_millicores: expected"),
    ({"share": 1.5}, "radio_share"),
    ({"traffic": -1.0}, "traffic_users_per_s"),
])
def test_bad_allocation_errors_name_the_field(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _q(**kwargs)
    with pytest.raises(ValueError, match="instance_ids"):
        e2e.sample_throughput(CFG, np.array([-1]), np.ones((1, 20)), 1.0, 1.0)
