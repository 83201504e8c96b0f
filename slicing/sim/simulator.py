"""One O&M period of a population of cells, vectorised over [cells, slices].

Per period t and (cell c, slice s), given the allocation x[c, s] (an upper bound on the slice's PRB budget):
  users     v = users_peak * scale_c * class_cs * activity_s(t + phase_c) * lognormal noise  (traffic.py)
            class_cs = the cell's class load_scale * slice_load[s] (``Scenario.cell_classes``; 1 if none)
  SINR      S_c g_cs / (N0 + sum_k P_k util_k(t-1))   load-coupled: a neighbour k interferes in
            proportion to its PRB utilisation of the previous period (the hidden global state)
  CQI, SE   mean over the slice's user spread, 4-bit CQI table                              (radio.py)
  capacity  C = x * N_PRB * B_PRB * SE * overhead                                            [Mbit/s]
  queue     served = min(offered * T + backlog, C * T); backlog' = min(rest, buffer_s * offered)
  phi       served / (T * v)                                                per-user throughput [Mbit/s]
  delay     base + packet / (C / v) + Q / C, Q = M/M/1 queue (packet rho / (1 - rho)) capped at the
            buffer, at least backlog'                                                              [ms]
  r         min(phi / phi*, d* / d, 1)          (IDLA eq. 3); utility = sum_s log(1 + r)    (IDLA eq. 5)
            phi*, d* per slice from the catalogue, or per (cell, slice) from A1 policies (``set_requirements``),
            which may add a guaranteed aggregate G: r <= served / (T min(G, offered))
  util_c    sum_s x * served / (C * T)      PRB utilisation, what neighbours see next period

Scenario events (``Scenario.events``, ``events.py``) change this per region and period: users x a traffic
multiplier, slices added, requirements replaced, and outages: a down cell carries no slice, its utilisation (and
so its interference) is 0, and its users are added to its nearest live cells.

r is non-decreasing in the slice's own share and non-increasing in any neighbour's load. Randomness comes from
the counter RNG keyed by global cell id, so a shard (a subset of cells, fed its out-of-shard neighbours' loads
through ``halo_util``) reproduces the rows of the unsplit run exactly, events included.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from slicing import rng
from slicing.config import Scenario
from slicing.rng import Stream
from slicing.sim.events import EventPlan, SliceMask
from slicing.sim.radio import link_quality
from slicing.sim.topology import build_geometry
from slicing.sim.traffic import CELL_CLASS_STREAM, CellUsers, cell_class_scale, cell_classes_of, make_traffic
from slicing.sim.utility import utility

__all__ = ["CELL_CLASS_STREAM", "INITIAL_UTIL", "MAX_DELAY_MS", "Demand", "KpiReport", "Simulator", "cell_class_scale",
           "cell_classes_of"]

MAX_DELAY_MS = 10_000.0
INITIAL_UTIL = 0.5  # neighbour load assumed before the first period


@dataclass(frozen=True)
class Demand:
    users: np.ndarray  # [N, S] mean active users of the current period
    offered_mbps: np.ndarray  # [N, S] offered traffic of the current period


@dataclass(frozen=True)
class KpiReport:
    """What one period reports per (cell, slice). Inactive slices carry zeros."""

    period: int
    cell_ids: np.ndarray  # [N] int64
    mask: np.ndarray  # [N, S] bool
    share: np.ndarray  # [N, S] allocation applied
    users: np.ndarray  # [N, S]
    cqi: np.ndarray  # [N, S] mean CQI 0..15
    prb_util: np.ndarray  # [N, S] fraction of the cell's PRBs used by the slice
    offered_mbps: np.ndarray  # [N, S]
    throughput_mbps: np.ndarray  # [N, S] per user
    delay_ms: np.ndarray  # [N, S]
    r: np.ndarray  # [N, S] QoS satisfaction in [0, 1]

    @property
    def utility(self) -> np.ndarray:
        """[N] sum over active slices of log(1 + r)."""
        return utility(self.r, self.mask)


class Simulator:
    """A set of cells (all, or a shard's sorted subset) stepping through O&M periods."""

    def __init__(self, scenario: Scenario, cell_ids: np.ndarray | None = None) -> None:
        self.scenario = scenario
        if cell_ids is None:
            cell_ids = np.arange(scenario.cells, dtype=np.int64)
        cell_ids = np.asarray(cell_ids, dtype=np.int64)
        if cell_ids.ndim != 1 or len(cell_ids) == 0:
            raise ValueError("cell_ids must be a non-empty 1-D array")
        if np.any(np.diff(cell_ids) <= 0) or cell_ids[0] < 0 or cell_ids[-1] >= scenario.cells:
            raise ValueError(f"cell_ids must be sorted, unique and within [0, {scenario.cells})")
        self.cell_ids = cell_ids
        self.geometry = build_geometry(scenario.topology, scenario.radio, cell_ids)
        self.halo_ids = self.geometry.halo_ids
        # positions of each neighbour in concat([own util, halo util])
        known = np.concatenate([cell_ids, self.halo_ids])
        order = np.argsort(known)
        self._nbr_pos = order[np.searchsorted(known, self.geometry.nbr_ids, sorter=order)]  # [N, K]
        self.traffic = make_traffic(scenario)
        self._init_slices()
        self._init_static_draws()
        self._plan = (EventPlan(scenario, cell_ids, self.geometry.nbr_ids, self.traffic)
                      if scenario.events else None)  # what-if events; None keeps the event-free path as it was
        self.period = 0
        self.cell_util = np.full(len(cell_ids), INITIAL_UTIL)  # [N] PRB utilisation of the last period
        self.backlog_mbit = np.zeros((len(cell_ids), self.n_slices))  # [N, S]
        self._cell_req: tuple[np.ndarray, np.ndarray, np.ndarray | None] | None = None  # set_requirements

    # -- static description -------------------------------------------------------------------------------
    def _init_slices(self) -> None:
        sc = self.scenario
        self.slice_ids = np.array([s.id for s in sc.slices])
        self.snssai = [s.snssai for s in sc.slices]
        self.n_slices = len(sc.slices)
        self.throughput_req_mbps = np.array([s.throughput_req_mbps for s in sc.slices])
        self.delay_req_ms = np.array([s.delay_req_ms for s in sc.slices])
        self._demand_per_user = self.throughput_req_mbps * np.array([s.demand_factor for s in sc.slices])
        self._packet_mbit = np.array([s.packet_kbit for s in sc.slices]) / 1000.0
        self._slices = SliceMask(sc, self.cell_ids)  # initial slices, schedule, add_slice events

    def _init_static_draws(self) -> None:
        sc, ids, S = self.scenario, self.cell_ids, self.n_slices
        self._users = CellUsers(sc, ids, self.traffic)  # users before masks and events
        offset_db = np.array([s.sinr_offset_db for s in sc.slices])
        self._geometry_db = offset_db + sc.radio.shadowing_db * rng.normal(sc.seed, Stream.GEOMETRY, 0, ids, S)
        radio = sc.radio
        noise_dbm = -174.0 + 10 * np.log10(radio.bandwidth_mhz * 1e6) + radio.noise_figure_db
        self._noise_mw = 10.0 ** (noise_dbm / 10.0)
        self._capacity_per_share_mbps = radio.n_prb * radio.prb_bandwidth_hz * radio.overhead / 1e6  # x SE

    def set_requirements(self, throughput_req_mbps: np.ndarray | None = None, delay_req_ms: np.ndarray | None = None,
                         slice_mbps: np.ndarray | None = None) -> None:
        """Per-(cell, slice) requirements [N, S] that replace the catalogue's from the next ``step`` (A1 slice SLA
        policies, ``slicing/a1.py``); all None: back to the catalogue. ``slice_mbps`` is a guaranteed aggregate
        throughput (inf where none): r also falls below 1 when less than ``min(slice_mbps, offered)`` is served.
        The offered traffic does not change: a requirement is what users are promised, not what they ask for.
        """
        if throughput_req_mbps is None and delay_req_ms is None and slice_mbps is None:
            self._cell_req = None
            return
        shape = (len(self.cell_ids), self.n_slices)
        tp = np.broadcast_to(self.throughput_req_mbps if throughput_req_mbps is None else throughput_req_mbps, shape)
        dl = np.broadcast_to(self.delay_req_ms if delay_req_ms is None else delay_req_ms, shape)
        agg = None if slice_mbps is None else np.broadcast_to(slice_mbps, shape).astype(np.float64)
        for name, arr in (("throughput_req_mbps", tp), ("delay_req_ms", dl)):
            if not (np.isfinite(arr).all() and (arr > 0).all()):
                raise ValueError(f"{name}: every entry must be finite and > 0")
        if agg is not None and (np.isnan(agg).any() or (agg < 0).any()):
            raise ValueError("slice_mbps: every entry must be >= 0 (inf: no guarantee)")
        self._cell_req = (tp.astype(np.float64), dl.astype(np.float64), agg)

    def requirements(self) -> tuple[np.ndarray, np.ndarray]:
        """(throughput_req_mbps, delay_req_ms) in force at the current period, [N, S] each: the catalogue's, or the
        A1 policies' (``set_requirements``), replaced where a requirement event sets one."""
        shape = (len(self.cell_ids), self.n_slices)
        tp, dl, _ = self._requirements_at(self.period)
        return np.broadcast_to(tp, shape).copy(), np.broadcast_to(dl, shape).copy()

    def _requirements_at(self, t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(throughput [S] or [N, S], delay [S] or [N, S], guaranteed aggregate [N, S] or None) in force at t."""
        if self._cell_req is None:
            tp, dl, agg = self.throughput_req_mbps, self.delay_req_ms, None
        else:
            tp, dl, agg = self._cell_req
        changed = None if self._plan is None else self._plan.requirements(t)
        if changed is not None:  # requirement events take precedence over A1 policies and the catalogue
            tp = np.where(np.isnan(changed[0]), tp, changed[0])
            dl = np.where(np.isnan(changed[1]), dl, changed[1])
        return tp, dl, agg

    @property
    def demand_per_user_mbps(self) -> np.ndarray:
        """[S] offered Mbit/s per active user."""
        return self._demand_per_user.copy()

    # -- per-period inputs --------------------------------------------------------------------------------
    def slice_mask(self, period: int | None = None) -> np.ndarray:
        """[N, S] active slices at ``period`` (default: the current one); a down cell has none."""
        t = self.period if period is None else period
        mask = self._slices.at(t)
        down = None if self._plan is None else self._plan.down(t)
        if down is not None:
            mask[down] = False
        return mask

    def demand(self, period: int | None = None) -> Demand:
        """Users and offered traffic of ``period`` (default: current): perfect knowledge, for the traffic baseline.
        Includes the events: traffic multipliers, and the users a cell takes over from down cells."""
        t = self.period if period is None else period
        users = self._users.at(t)  # [N, S]
        scale = None if self._plan is None else self._plan.traffic_scale(t)
        if scale is not None:
            users = users * scale
        users = np.where(self.slice_mask(t), users, 0.0)
        inflow = None if self._plan is None else self._plan.inflow(t)
        if inflow is not None:
            users = users + inflow
        return Demand(users=users, offered_mbps=users * self._demand_per_user)

    def interference_mw(self, halo_util: np.ndarray | None) -> np.ndarray:
        """[N] interference at each centroid from the K strongest neighbours at their last-period load."""
        if len(self.halo_ids) and halo_util is None:
            halo_util = np.full(len(self.halo_ids), INITIAL_UTIL) if self.period == 0 else None
            if halo_util is None:
                raise ValueError(f"halo_util: {len(self.halo_ids)} out-of-shard neighbour loads are required")
        halo = np.zeros(0) if halo_util is None else np.asarray(halo_util, dtype=np.float64)
        if len(halo) != len(self.halo_ids):
            raise ValueError(f"halo_util: expected {len(self.halo_ids)} values (one per halo id), got {len(halo)}")
        util = np.concatenate([self.cell_util, halo])[self._nbr_pos]  # [N, K]
        gone = None if self._plan is None else self._plan.interferers_down(self.period)
        if gone is not None:  # a down neighbour transmits nothing from its first down period on
            util = np.where(gone, 0.0, util)
        return (self.geometry.nbr_rx_mw * util).sum(axis=1)

    # -- one period ---------------------------------------------------------------------------------------
    def step(self, shares: np.ndarray, halo_util: np.ndarray | None = None) -> KpiReport:
        sc, t = self.scenario, self.period
        N, S = len(self.cell_ids), self.n_slices
        x = np.asarray(shares, dtype=np.float64)
        if x.shape != (N, S):
            raise ValueError(f"shares: expected shape {(N, S)}, got {x.shape}")
        if not np.isfinite(x).all() or (x < 0).any() or (x.sum(axis=1) > 1 + 1e-9).any():
            raise ValueError("shares: every entry must be finite and >= 0, and each row must sum to <= 1")
        mask = self.slice_mask(t)
        x = np.where(mask, x, 0.0)
        dem = self.demand(t)
        # radio: load-coupled SINR -> CQI -> spectral efficiency
        fading = sc.radio.fading_db * rng.normal(sc.seed, Stream.FADING, t, self.cell_ids, S)
        signal_mw = self.geometry.serving_rx_mw[:, None] * 10.0 ** ((self._geometry_db + fading) / 10.0)  # [N, S]
        sinr_db = 10 * np.log10(signal_mw / (self._noise_mw + self.interference_mw(halo_util))[:, None])
        cqi, se = link_quality(sinr_db)  # [N, S]
        capacity = x * self._capacity_per_share_mbps * se  # [N, S] Mbit/s
        # queues over the period
        T = sc.period_s
        want = dem.offered_mbps * T + self.backlog_mbit  # [N, S] Mbit
        served = np.minimum(want, capacity * T)
        backlog = np.minimum(want - served, sc.queueing.buffer_s * dem.offered_mbps)
        users = np.maximum(dem.users, 1e-9)
        # per-user throughput; a slice with no users has nothing to satisfy (reports its nominal demand)
        throughput = np.where(dem.users > 1e-6, served / (T * users), self._demand_per_user)  # [N, S] Mbit/s
        with np.errstate(divide="ignore", invalid="ignore"):
            rho = np.where(capacity > 0, dem.offered_mbps / capacity, np.inf)  # [N, S] load of the slice budget
            # mean M/M/1 queue (Mbit), capped by the buffer; at least the backlog left when overloaded
            mm1 = np.where(rho < 1, self._packet_mbit * rho / (1 - rho), np.inf)
            queue_mbit = np.maximum(np.minimum(mm1, sc.queueing.buffer_s * dem.offered_mbps), backlog)
            delay = (
                sc.queueing.base_delay_ms
                + 1000.0 * self._packet_mbit * users / capacity  # one packet at the per-user rate
                + 1000.0 * queue_mbit / capacity  # waiting behind the queue
            )
            delay = np.where(capacity > 0, np.minimum(np.nan_to_num(delay, nan=MAX_DELAY_MS), MAX_DELAY_MS),
                             MAX_DELAY_MS)
            prb_util = np.where(capacity > 0, x * served / (capacity * T), 0.0)
        tp_req, dl_req, agg = self._requirements_at(t)  # [S] (catalogue) or [N, S] (A1 policies, events)
        r = np.minimum(np.minimum(throughput / tp_req, dl_req / delay), 1.0)
        if agg is not None:  # A1 policies: a guaranteed aggregate where one is set
            need = np.minimum(agg, dem.offered_mbps) * T  # [N, S] Mbit that must be served
            with np.errstate(divide="ignore", invalid="ignore"):
                r = np.minimum(r, np.where(need > 1e-9, served / need, 1.0))
        r = np.where(mask, r, 0.0)
        zero = ~mask
        report = KpiReport(
            period=t, cell_ids=self.cell_ids, mask=mask, share=x,
            users=np.where(zero, 0.0, dem.users), cqi=np.where(zero, 0.0, cqi), prb_util=prb_util,
            offered_mbps=dem.offered_mbps, throughput_mbps=np.where(zero, 0.0, throughput),
            delay_ms=np.where(zero, 0.0, delay), r=r,
        )
        self.backlog_mbit = np.where(mask, backlog, 0.0)
        self.cell_util = prb_util.sum(axis=1)
        self.period = t + 1
        return report

    # -- checkpointing ------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray | int]:
        return {"period": self.period, "cell_util": self.cell_util.copy(), "backlog_mbit": self.backlog_mbit.copy()}

    def load_state_dict(self, state: dict[str, np.ndarray | int]) -> None:
        self.period = int(state["period"])
        self.cell_util = np.asarray(state["cell_util"], dtype=np.float64).copy()
        self.backlog_mbit = np.asarray(state["backlog_mbit"], dtype=np.float64).copy()
