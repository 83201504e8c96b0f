"""Ground-truth end-to-end slice simulator (MicroOpt, section V): traffic and (bandwidth, CPU, radio share) give
a distribution of per-user end-to-end throughput q (Mbit/s). Vectorised over slice instances: arrays are
``[instances, slots, users]``, no Python loop per instance, slot or user.

The paper measured q on a testbed (srsRAN gNB, Open5GS core, an OvS/VXLAN transport overlay, 4K video replayed per
UE). This module is our substitute for that testbed, built to show what the paper reports of it: q falls as users
share the slice, rises with bandwidth and CPU, and below a CPU level more bandwidth does not help (Fig. 4c: "the
gNB is the bottleneck"). Per slot t of instance i, with n = max(x(t), 1) users sharing the slice::

    transport    B_eff   = bandwidth_mbps * transport_efficiency                         [Mbit/s, slice]
    compute      C_eff   = max(cpu_millicores - cpu_base_millicores, 0)
                           * cpu_mbps_per_millicore * j(t)                               [Mbit/s, slice]
    radio        R_u     = radio_share * radio_capacity_mbps * g_u / n                   [Mbit/s, user]
    per user     q_u     = min(d_u, w_u * min(B_eff, C_eff) / n, R_u)                    [Mbit/s, user]

with lognormal factors of mean 1 (median d for the demand): the 4K video demand d_u (``demand_median_mbps``,
``demand_sigma``), the user's radio rate g_u (``channel_sigma``), its share of the transport/CPU bottleneck w_u
(``fairness_sigma``, TCP flows do not split a bottleneck evenly) and the gNB's per-slot processing rate j(t)
(``slot_jitter_sigma``). Every draw is the same for every allocation, so q is pathwise non-decreasing in
bandwidth, CPU and radio share and non-increasing in traffic (the tests check it sample by sample). Below the
CPU level where C_eff < B_eff, the transport term drops out of the min: extra bandwidth changes nothing.

Simplification: a user that asks for less than its share (d_u below it) does not hand the rest to the others
(no max-min water-filling): the sampled users are draws of one user's distribution, not a population.

Traffic (``E2eConfig.traffic``): ``truncated_normal`` draws x(t) i.i.d. per slot from N(mean, std) truncated to
[min, max] users/s by inverse CDF (exact, one uniform per slot); ``csv_trace`` replays a CSV column
``users_per_s``, interval ``period`` reading rows period * slots .. period * slots + slots - 1 (wrapping).

Parameters and where each value comes from (paper or our choice, and why): ``docs/e2e.md``. Randomness comes
only from the counter RNG (``slicing/rng.py``) keyed by (config seed, stream, period, instance id), so simulating
a subset of instances gives exactly their rows of the full run. numpy (+ ``scipy.special`` for the normal CDF and
its inverse); no torch, no Ray.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from scipy.special import ndtr, ndtri

from slicing import rng
from slicing.config import E2eConfig
from slicing.rng import Stream

TRACE_COLUMN = "users_per_s"


class E2eTraceError(ValueError):
    """A traffic trace CSV that cannot be used; the message starts with the key ``traffic.trace_csv``."""


def _ids(instance_ids: np.ndarray) -> np.ndarray:
    ids = np.asarray(instance_ids, dtype=np.int64)
    if ids.ndim != 1 or (ids < 0).any():
        raise ValueError("instance_ids must be a 1-D array of non-negative integers")
    return ids


def _lognormal(cfg: E2eConfig, stream: int, period: int, ids: np.ndarray, count: int, sigma: float) -> np.ndarray:
    """[I, count] lognormal factors of mean 1 (exp(sigma n - sigma^2 / 2))."""
    if sigma == 0.0:
        return np.ones((len(ids), count))
    return np.exp(sigma * rng.normal(cfg.seed, stream, period, ids, count) - 0.5 * sigma**2)


# --------------------------------------------------------------------------------------------------- traffic


def read_trace(path: str | Path) -> np.ndarray:
    """[L] users/s from a CSV with a ``users_per_s`` column (other columns ignored); errors name the key."""
    p = Path(path)
    key = "traffic.trace_csv"
    if not p.is_file():
        raise E2eTraceError(f"{key}: {p} does not exist")
    with p.open(newline="") as f:
        rows = list(csv.reader(f))
    if len(rows) < 2:
        raise E2eTraceError(f"{key}: {p} needs a header and at least one row")
    header = [h.strip() for h in rows[0]]
    if TRACE_COLUMN not in header:
        raise E2eTraceError(f"{key}: {p} has no column {TRACE_COLUMN!r} (header: {header})")
    col = header.index(TRACE_COLUMN)
    try:
        values = np.array([float(r[col]) for r in rows[1:]], dtype=np.float64)
    except (ValueError, IndexError) as err:
        raise E2eTraceError(f"{key}: {p}: every {TRACE_COLUMN} value must be a number ({err})") from None
    if not np.isfinite(values).all() or (values < 0).any():
        raise E2eTraceError(f"{key}: {p}: {TRACE_COLUMN} values must be finite and >= 0")
    return values


def truncated_normal(u: np.ndarray, mean: np.ndarray, std: np.ndarray, low: float, high: float) -> np.ndarray:
    """Inverse-CDF draws of N(mean, std) truncated to [low, high] from uniforms ``u`` (broadcast together)."""
    mean, std = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
    safe = np.where(std > 0, std, 1.0)
    a, b = ndtr((low - mean) / safe), ndtr((high - mean) / safe)  # CDF at the bounds
    x = mean + safe * ndtri(a + u * (b - a))
    return np.clip(np.where(std > 0, x, mean), low, high)  # clip: float rounding at the bounds only


def sample_traffic(cfg: E2eConfig, instance_ids: np.ndarray, period: int = 0,
                   mean_users_per_s: np.ndarray | float | None = None,
                   std_users_per_s: np.ndarray | float | None = None) -> np.ndarray:
    """x(t) in users/s, ``[instances, slots_per_interval]``, for reconfiguration interval ``period``.

    ``truncated_normal``: per-instance centre and std (scalars or ``[I]``; default the config's), truncated to
    the config's [min, max]. ``csv_trace``: the trace's rows of this interval, the same for every instance.
    """
    ids, t, tr = _ids(instance_ids), cfg.slots_per_interval, cfg.traffic
    if tr.model == "csv_trace":
        assert tr.trace_csv is not None  # guaranteed by the E2eTraffic validator
        trace = read_trace(tr.trace_csv)  # [L]
        rows = (period * t + np.arange(t)) % len(trace)  # [T]
        return np.broadcast_to(trace[rows], (len(ids), t)).copy()  # [I, T]
    mean = np.asarray(tr.mean_users_per_s if mean_users_per_s is None else mean_users_per_s, dtype=np.float64)
    std = np.asarray(tr.std_users_per_s if std_users_per_s is None else std_users_per_s, dtype=np.float64)
    if (mean < tr.min_users_per_s).any() or (mean > tr.max_users_per_s).any() or (std < 0).any():
        raise ValueError(f"mean_users_per_s must lie in [{tr.min_users_per_s}, {tr.max_users_per_s}] and "
                         "std_users_per_s must be >= 0")
    u = rng.uniform(cfg.seed, Stream.E2E_TRAFFIC, period, ids, t)  # [I, T]
    mean_b = np.broadcast_to(mean, (len(ids),))[:, None]  # [I, 1]
    std_b = np.broadcast_to(std, (len(ids),))[:, None]  # [I, 1]
    return truncated_normal(u, mean_b, std_b, tr.min_users_per_s, tr.max_users_per_s)  # [I, T]


# ------------------------------------------------------------------------------------------------ throughput


def slice_capacity_mbps(cfg: E2eConfig, bandwidth_mbps: np.ndarray, cpu_millicores: np.ndarray) -> np.ndarray:
    """min(B_eff, C_eff) without the slot jitter: the slice's end-to-end bottleneck in Mbit/s (broadcast)."""
    transport = np.asarray(bandwidth_mbps, dtype=np.float64) * cfg.transport_efficiency
    compute = np.maximum(np.asarray(cpu_millicores, dtype=np.float64) - cfg.cpu_base_millicores, 0.0)
    return np.minimum(transport, compute * cfg.cpu_mbps_per_millicore)


def _per_slot(name: str, value: np.ndarray | float, shape: tuple[int, int]) -> np.ndarray:
    """``value`` (scalar, [I] or [I, T]) as [I, T, 1]; a clear error for another shape or a negative entry."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]  # [I, 1]: constant over the interval
    try:
        out = np.broadcast_to(arr, shape)
    except ValueError:
        raise ValueError(f"{name}: expected a scalar, [{shape[0]}] or {list(shape)}, got shape {arr.shape}") from None
    if not np.isfinite(out).all() or (out < 0).any():
        raise ValueError(f"{name}: every value must be finite and >= 0")
    return out[:, :, None]  # [I, T, 1]


def sample_throughput(cfg: E2eConfig, instance_ids: np.ndarray, traffic_users_per_s: np.ndarray,
                      bandwidth_mbps: np.ndarray | float, cpu_millicores: np.ndarray | float,
                      radio_share: np.ndarray | float = 1.0, period: int = 0,
                      users: int | None = None) -> np.ndarray:
    """Per-user end-to-end throughput q in Mbit/s, ``[instances, slots, users]``.

    ``traffic_users_per_s`` is ``[I, T]`` (e.g. from ``sample_traffic``); the allocation (bandwidth Mbps, CPU
    millicores, radio share in [0, 1]) is a scalar, ``[I]`` (constant over the interval) or ``[I, T]``.
    ``users`` sampled per slot defaults to ``cfg.users_per_slot``. Deterministic in (cfg.seed, period, instance
    id, slot, user): the same ids give the same numbers whatever else is simulated beside them.
    """
    ids = _ids(instance_ids)
    x = np.asarray(traffic_users_per_s, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] != len(ids):
        raise ValueError(f"traffic_users_per_s: expected shape [{len(ids)}, slots], got {x.shape}")
    if not np.isfinite(x).all() or (x < 0).any():
        raise ValueError("traffic_users_per_s: every value must be finite and >= 0")
    n_i, n_t = x.shape
    n_u = cfg.users_per_slot if users is None else int(users)
    bw = _per_slot("bandwidth_mbps", bandwidth_mbps, (n_i, n_t))  # [I, T, 1]
    cpu = _per_slot("cpu_millicores", cpu_millicores, (n_i, n_t))  # [I, T, 1]
    share = _per_slot("radio_share", radio_share, (n_i, n_t))  # [I, T, 1]
    if (share > 1).any():
        raise ValueError("radio_share: every value must be in [0, 1]")
    n = np.maximum(x, 1.0)[:, :, None]  # [I, T, 1] users sharing the slice (a sampled user shares with itself)

    shape = (n_i, n_t, n_u)
    demand = cfg.demand_median_mbps * np.exp(
        cfg.demand_sigma * rng.normal(cfg.seed, Stream.E2E_DEMAND, period, ids, n_t * n_u)).reshape(shape)
    channel = _lognormal(cfg, Stream.E2E_CHANNEL, period, ids, n_t * n_u, cfg.channel_sigma).reshape(shape)
    fairness = _lognormal(cfg, Stream.E2E_FAIRNESS, period, ids, n_t * n_u, cfg.fairness_sigma).reshape(shape)
    jitter = _lognormal(cfg, Stream.E2E_JITTER, period, ids, n_t, cfg.slot_jitter_sigma)[:, :, None]  # [I, T, 1]

    transport = bw * cfg.transport_efficiency  # [I, T, 1] Mbit/s of the slice
    compute = np.maximum(cpu - cfg.cpu_base_millicores, 0.0) * cfg.cpu_mbps_per_millicore * jitter  # [I, T, 1]
    bottleneck = fairness * np.minimum(transport, compute) / n  # [I, T, U] this user's share
    radio = share * cfg.radio_capacity_mbps * channel / n  # [I, T, U]
    return np.minimum(np.minimum(demand, bottleneck), radio)  # [I, T, U] Mbit/s


def summarise(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std over the sampled users: ``q[I, T, U]`` -> (``[I, T]``, ``[I, T]``) in Mbit/s."""
    return q.mean(axis=-1), q.std(axis=-1)
