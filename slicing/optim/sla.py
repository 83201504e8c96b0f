"""SLA decomposition across domains (paper 003, section V-B): an end-to-end slice SLA split into RAN, transport and
core targets so that the domains' total normalised resource is smallest. The paper gives the concept only; the
formulation below is ours.

E2e SLA of slice i: latency budget L (ms), reliability rho (probability that the e2e latency stays within L) and
throughput theta (Mbit/s the slice carries). Domain d in {ran, transport, core} is a queue of service capacity c_d
(Mbit/s, its resource) serving load lambda_d = theta / efficiency_d, with a fixed latency floor f_d (propagation,
processing, scheduling). For an M/M/1 queue the sojourn time is exponential with rate (c_d - lambda_d) / s_d
per second (s_d: mean packet size in Mbit), hence meeting a local target (latency l_d in ms, reliability rho_d)
needs::

    P(T_d <= l_d - f_d) = 1 - exp(-(c_d - lambda_d)(l_d - f_d) / (1000 s_d)) >= rho_d
    <=>  c_d >= lambda_d + 1000 s_d a_d / (l_d - f_d),       a_d = -ln(1 - rho_d)

Decomposition (latency additive, reliability multiplicative: independent domains all meeting their targets meet
the e2e target with probability at least prod_d rho_d)::

    min  sum_d w_d c_d     s.t.   sum_d l_d <= L,   prod_d rho_d >= rho,   l_d > f_d,   c_d <= C_d

with w_d = 1 / C_d (normalised resource, like MicroOpt's eta). In the variables y_d = l_d - f_d > 0 and
v_d = -ln rho_d >= 0 (sum_d v_d <= V = -ln rho), a_d = -ln(1 - e^{-v_d}) is convex and decreasing in v_d, and
a / y is jointly convex for a convex positive a and y > 0 (a perspective), so the problem is convex: the KKT
conditions below give its unique optimum.

Solution. Latency first, for given a_d: minimise sum_d k_d / y_d (k_d = w_d s_d a_d) s.t. sum_d y_d = Y = L - sum f:
y_d = Y sqrt(k_d) / sum_e sqrt(k_e), value (sum_d sqrt(k_d))^2 / Y. So the reliability split minimises
(sum_d sqrt(w_d s_d a_d(v_d)))^2, i.e. sum_d sqrt(w_d s_d) sqrt(a_d(v_d)) s.t. sum v_d = V: stationarity gives
sqrt(w_d s_d) g(v_d) = nu with g(v) = -d/dv sqrt(a(v)) = e^{-v} / (2 (1 - e^{-v}) sqrt(a(v))), decreasing in v,
solved per domain by bisection on v for a common nu, and nu by bisection so that sum v_d = V. All vectorised over
slices in numpy (a fixed number of bisection steps, no per-slice loop).

Outputs per domain: latency target l_d, reliability rho_d, capacity c_d; the RAN latency target is the cells'
per-slice delay requirement d* of the IDLA layer (``SliceSpec.delay_req_ms``); the transport capacity is the
slice's minimum transport bandwidth for MicroOpt; the core capacity becomes a CPU demand through the e2e
simulator's gNB/UPF processing rate: cpu = base + c_core / mbps_per_millicore (``E2eConfig`` defaults: 400 mc and
0.0135 Mbit/s per mc). An SLA that cannot be met (L not above the sum of the floors, a capacity above its cap) is
reported per slice (``feasible``, ``reason``), never raised; malformed input raises ``ValueError`` naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import Field

from slicing.config import Scenario, Strict

DOMAINS = ("ran", "transport", "core")
_BISECT = 80  # bisection steps: enough for float64 on the brackets used


class DomainModel(Strict):
    """One domain's queue model: latency floor, packet size, efficiency and capacity cap."""

    floor_ms: float = Field(ge=0, le=1e6, description="fixed latency of the domain (propagation, processing)")
    packet_mbit: float = Field(default=0.012, gt=0, le=1e3, description="mean packet size s_d (1500 B)")
    efficiency: float = Field(default=1.0, gt=0, le=1, description="goodput per unit of capacity")
    capacity_cap_mbps: float = Field(gt=0, le=1e9, description="the most the domain can give one slice (C_d)")


class SlaDomains(Strict):
    """The three domains (defaults ours: a 20 MHz cell's order of capacity for the RAN, the MicroOpt testbed's 50
    Mbit/s transport cap, and the CPU cap 4,500 mc x 0.0135 Mbit/s per mc for the core)."""

    ran: DomainModel = DomainModel(floor_ms=2.0, capacity_cap_mbps=150.0)
    transport: DomainModel = DomainModel(floor_ms=1.0, efficiency=0.94, capacity_cap_mbps=50.0)
    core: DomainModel = DomainModel(floor_ms=0.5, capacity_cap_mbps=55.35)
    cpu_base_millicores: float = Field(default=400.0, ge=0, description="CPU before any user data")
    cpu_mbps_per_millicore: float = Field(default=0.0135, gt=0, description="Mbit/s per millicore above the base")

    def domain(self, name: str) -> DomainModel:
        return getattr(self, name)


@dataclass
class Decomposition:
    """Per-domain targets, each a dict domain -> [I] array; per-slice feasibility and reason."""

    domains: tuple[str, ...]
    latency_ms: dict[str, np.ndarray]
    reliability: dict[str, np.ndarray]
    capacity_mbps: dict[str, np.ndarray]
    objective: np.ndarray  # [I] sum_d c_d / C_d
    transport_mbps: np.ndarray  # [I] minimum transport bandwidth (MicroOpt's lower bound)
    cpu_millicores: np.ndarray  # [I] minimum CPU
    feasible: np.ndarray  # [I]
    reason: list[str | None]


def _a(v: np.ndarray) -> np.ndarray:
    """a(v) = -ln(1 - e^{-v}) (0 < v <= 700), accurate at both ends."""
    v = np.clip(v, 1e-300, 700.0)
    with np.errstate(divide="ignore"):  # np.where computes both forms; each is used only where it is accurate
        return np.where(v < np.log(2.0), -np.log(-np.expm1(-v)), -np.log1p(-np.exp(-v)))


def _g(v: np.ndarray) -> np.ndarray:
    """-d/dv sqrt(a(v)) = e^{-v} / (2 (1 - e^{-v}) sqrt(a(v))), decreasing from +inf to 0."""
    v = np.clip(v, 1e-300, 700.0)
    em = -np.expm1(-v)  # 1 - e^{-v}
    return np.exp(-v) / (2.0 * em * np.sqrt(_a(v)))


def _v_for(nu: np.ndarray, c: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Per (slice, domain): the v in (0, hi] with c g(v) = nu (g decreasing), by bisection in log space."""
    lo_v, hi_v = np.full(nu.shape, 1e-300), hi.copy()
    for _ in range(_BISECT * 2):
        mid = np.sqrt(lo_v * hi_v)
        too_big_g = c * _g(mid) > nu  # g too large -> v must grow
        lo_v = np.where(too_big_g, mid, lo_v)
        hi_v = np.where(too_big_g, hi_v, mid)
    return np.sqrt(lo_v * hi_v)


def _field(name: str, value: np.ndarray | float) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(value, dtype=np.float64))
    if arr.ndim != 1 or not np.isfinite(arr).all():
        raise ValueError(f"{name}: expected finite numbers (a scalar or a 1-D array)")
    return arr


def decompose(latency_ms: np.ndarray | float, reliability: np.ndarray | float, throughput_mbps: np.ndarray | float,
              domains: SlaDomains | None = None) -> Decomposition:
    """Split every slice's e2e SLA into per-domain targets (see module docstring)."""
    dm = domains or SlaDomains()
    lat, rel, thr = _field("latency_ms", latency_ms), _field("reliability", reliability), _field(
        "throughput_mbps", throughput_mbps)
    n = max(len(lat), len(rel), len(thr))
    try:
        lat, rel, thr = (np.broadcast_to(a, (n,)).astype(np.float64) for a in (lat, rel, thr))
    except ValueError:
        raise ValueError("latency_ms, reliability, throughput_mbps: need the same length (or scalars)") from None
    if (lat <= 0).any():
        raise ValueError("latency_ms: must be > 0")
    if ((rel <= 0) | (rel >= 1)).any():
        raise ValueError("reliability: must be in (0, 1)")
    if (thr < 0).any():
        raise ValueError("throughput_mbps: must be >= 0")
    models = [dm.domain(d) for d in DOMAINS]
    floor = np.array([m.floor_ms for m in models])  # [D]
    s = 1000.0 * np.array([m.packet_mbit for m in models])  # [D] Mbit x ms/s: c - lambda = s a / y in Mbit/s
    w = 1.0 / np.array([m.capacity_cap_mbps for m in models])  # [D]
    load = thr[:, None] / np.array([m.efficiency for m in models])[None, :]  # [I, D]
    slack = lat - floor.sum()  # [I] Y
    big_v = -np.log(rel)  # [I] V
    ok = slack > 0
    y_safe = np.where(ok, slack, 1.0)

    # reliability split: sqrt(w_d s_d) g(v_d) = nu, sum_d v_d = V (bisection on log nu)
    c = np.sqrt(w * s)[None, :]  # [1, D]
    hi = np.repeat(np.minimum(big_v, 700.0)[:, None], len(DOMAINS), axis=1)  # [I, D]
    lo_nu, hi_nu = np.full(n, -700.0), np.full(n, 700.0)  # log nu bracket
    for _ in range(_BISECT):
        mid = (lo_nu + hi_nu) / 2
        v = _v_for(np.exp(mid)[:, None], c, hi)
        total = v.sum(axis=1)
        too_much = total > big_v  # v too large -> nu must grow
        lo_nu = np.where(too_much, mid, lo_nu)
        hi_nu = np.where(too_much, hi_nu, mid)
    v = _v_for(np.exp((lo_nu + hi_nu) / 2)[:, None], c, hi)
    v *= (big_v / v.sum(axis=1))[:, None]  # exact sum (the bisection leaves ~1e-12 relative)
    a = _a(v)  # [I, D]
    k = w[None, :] * s[None, :] * a  # [I, D]
    sk = np.sqrt(k)
    y = y_safe[:, None] * sk / sk.sum(axis=1, keepdims=True)  # [I, D]
    cap_mbps = load + s[None, :] * a / y  # [I, D] Mbit/s
    caps = np.array([m.capacity_cap_mbps for m in models])
    over = cap_mbps > caps[None, :]
    reasons: list[str | None] = []
    for i in range(n):
        if not ok[i]:
            reasons.append(f"latency_ms {lat[i]:g} is not above the domains' fixed latencies "
                           f"({floor.sum():g} ms in all)")
        elif over[i].any():
            d = int(np.argmax(over[i]))
            reasons.append(f"the {DOMAINS[d]} domain would need {cap_mbps[i, d]:.1f} Mbit/s, above its cap "
                           f"{caps[d]:g} Mbit/s")
        else:
            reasons.append(None)
    feasible = ok & ~over.any(axis=1)
    latency = {d: np.where(ok, floor[j] + y[:, j], np.nan) for j, d in enumerate(DOMAINS)}
    reliab = {d: np.exp(-v[:, j]) for j, d in enumerate(DOMAINS)}
    capacity = {d: np.where(ok, cap_mbps[:, j], np.nan) for j, d in enumerate(DOMAINS)}
    objective = np.where(ok, (cap_mbps * w[None, :]).sum(axis=1), np.nan)
    cpu = dm.cpu_base_millicores + capacity["core"] / dm.cpu_mbps_per_millicore
    return Decomposition(domains=DOMAINS, latency_ms=latency, reliability=reliab, capacity_mbps=capacity,
                         objective=objective, transport_mbps=capacity["transport"], cpu_millicores=cpu,
                         feasible=feasible, reason=reasons)


def compose(dec: Decomposition) -> tuple[np.ndarray, np.ndarray]:
    """(e2e latency budget used = sum of the domain latencies, e2e reliability = product of theirs), [I] each."""
    lat = sum(dec.latency_ms[d] for d in dec.domains)
    rel = np.prod(np.stack([dec.reliability[d] for d in dec.domains]), axis=0)
    return np.asarray(lat), rel


class SliceSla(Strict):
    """An e2e SLA of one slice type (the per-slice SLAs of the population's microopt step)."""

    latency_ms: float = Field(gt=0, le=1e6, description="end-to-end latency budget (ms)")
    reliability: float = Field(gt=0, lt=1, description="probability that the e2e latency stays within the budget")
    throughput_mbps: float = Field(gt=0, le=1e6, description="slice throughput the domains must carry (Mbit/s)")


def apply_slas(scenario: Scenario, slas: dict[int, SliceSla], domains: SlaDomains | None = None
               ) -> tuple[Scenario, dict[int, dict[str, float]]]:
    """Decompose every slice type's SLA (keyed by catalogue id) and return (the scenario with each such slice's
    delay requirement d* set to its RAN latency target, {id: {"ran_delay_req_ms", "transport_mbps",
    "cpu_millicores"}}). An unknown id or an SLA that cannot be decomposed is a FieldError naming ``slas.<id>``."""
    from slicing.errors import FieldError

    known = {s.id: s for s in scenario.slices}
    targets: dict[int, dict[str, float]] = {}
    for sid, sla in sorted(slas.items()):
        if sid not in known:
            raise FieldError(("slas", sid), f"no slice type {sid} in the catalogue (ids {sorted(known)})")
        dec = decompose(sla.latency_ms, sla.reliability, sla.throughput_mbps, domains)
        if not dec.feasible[0]:
            raise FieldError(("slas", sid), f"cannot be decomposed: {dec.reason[0]}")
        targets[sid] = {"ran_delay_req_ms": float(dec.latency_ms["ran"][0]),
                        "transport_mbps": float(dec.transport_mbps[0]), "cpu_millicores": float(dec.cpu_millicores[0])}
    slices = tuple(s.model_copy(update={"delay_req_ms": targets[s.id]["ran_delay_req_ms"]}) if s.id in targets else s
                   for s in scenario.slices)
    return scenario.model_copy(update={"slices": slices}), targets
