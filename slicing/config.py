"""Typed configuration: scenarios, slices, estimator training, the IDLA allocator and the e2e slice simulator.

Every model forbids unknown keys (``extra="forbid"``) so a typo in a YAML file or a ``--set`` override fails
loudly, naming the key. Derived values are properties; nothing is written back after parsing.

A scenario file (``scenarios/*.yaml``) holds only what differs from these defaults. ``load_scenario`` reads it,
applies ``--set dotted.key=value`` overrides and validates the result; ``ScenarioError`` carries a message that
names every offending key and the rule it broke.

``Scenario.events`` (what-if changes: regional traffic, outages, slices added, requirements; applied by
``slicing/sim/events.py``) are checked against the network itself: regions use ``Topology``'s layout, and an error
is located at the event's key (``events.2.region.sites: site 40 is outside the network (sites 0..11)``).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails

from slicing.snssai import canonical as canonical_snssai

HISTORY = 5  # H: periods of users/CQI history per feature vector (IDLA section V-B uses h = 5)
SECTOR_AZIMUTH_DEG = (30.0, 150.0, 270.0)  # boresight of sectors 0, 1, 2 of every site (cell id = 3 site + sector)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SliceType(Strict):
    """One service type of the slice catalogue."""

    id: int = Field(ge=1, description="catalogue id (1-based, the papers' slice index)")
    name: str = Field(min_length=1, description="human-readable service name")
    snssai: str = Field(description="S-NSSAI in any form of slicing/snssai.py ('01-000001', '1-000001', "
                                    "{sst: 1, sd: '000001'}); kept canonical")
    throughput_req_mbps: float = Field(gt=0, description="per-user average throughput requirement phi*")
    delay_req_ms: float = Field(gt=0, description="delay requirement d*")
    users_peak: float = Field(gt=0, description="mean active users per cell at the daily peak of the mask")
    demand_factor: float = Field(
        default=1.0, ge=1.0, le=3.0, description="offered rate per user as a multiple of the requirement"
    )
    packet_kbit: float = Field(default=12.0, gt=0, description="mean packet size, sets the transmission delay")
    sinr_offset_db: float = Field(default=0.0, ge=-20, le=20, description="mean geometry of this slice's users")
    profile: Literal["business", "evening", "flat", "night"] = Field(
        default="business", description="shape of the daily traffic mask"
    )

    @field_validator("snssai", mode="before")
    @classmethod
    def _canonical_snssai(cls, v: Any) -> str:
        return canonical_snssai(v)


def default_catalogue() -> tuple[SliceType, ...]:
    """The IDLA paper's four service types: phi* = {2, 1, 1.5, 0.5} Mbit/s. Delays are our choice (see README)."""
    return (
        SliceType(id=1, name="embb-video", snssai="01-000001", throughput_req_mbps=2.0, delay_req_ms=100.0,
                  users_peak=7.0, profile="evening"),
        SliceType(id=2, name="web", snssai="01-000002", throughput_req_mbps=1.0, delay_req_ms=150.0,
                  users_peak=10.0, profile="business"),
        SliceType(id=3, name="gaming", snssai="01-000003", throughput_req_mbps=1.5, delay_req_ms=50.0,
                  users_peak=6.0, profile="evening", sinr_offset_db=-2.0),
        SliceType(id=4, name="urllc-iot", snssai="02-000004", throughput_req_mbps=0.5, delay_req_ms=30.0,
                  users_peak=12.0, profile="flat", sinr_offset_db=-3.0),
    )


class Topology(Strict):
    sites: int = Field(default=4, ge=1, le=200_000, description="three-sector sites on a hexagonal grid")
    isd_m: float = Field(default=500.0, gt=10, le=50_000, description="inter-site distance")
    neighbours: int = Field(default=8, ge=1, le=30, description="K strongest interferers kept per cell")

    @property
    def cells(self) -> int:
        return 3 * self.sites

    def site_xy_m(self) -> np.ndarray:
        """[sites, 2] metres, hexagonal grid filled row by row in a near-square patch."""
        cols = int(np.ceil(np.sqrt(self.sites)))
        idx = np.arange(self.sites)
        row, col = idx // cols, idx % cols
        x = self.isd_m * (col + 0.5 * (row % 2))
        y = self.isd_m * (np.sqrt(3.0) / 2.0) * row
        return np.stack([x, y], axis=1)

    def centroid_xy_m(self, cell_ids: np.ndarray | None = None) -> np.ndarray:
        """[N, 2] metres: each cell's sector centroid, isd / 3 from its site along the sector's azimuth (all cells
        when ``cell_ids`` is None). The geometry of ``slicing/sim/topology.py``; here so that config can check
        events' regions against the network."""
        ids = np.arange(self.cells, dtype=np.int64) if cell_ids is None else np.asarray(cell_ids, dtype=np.int64)
        az = np.deg2rad(np.asarray(SECTOR_AZIMUTH_DEG)[ids % 3])
        return self.site_xy_m()[ids // 3] + (self.isd_m / 3.0) * np.stack([np.cos(az), np.sin(az)], axis=1)


class Radio(Strict):
    carrier_ghz: float = Field(default=2.6, gt=0.3, le=100, description="carrier frequency (informational)")
    bandwidth_mhz: Literal[5, 10, 15, 20, 40, 50, 100] = Field(default=20, description="cell bandwidth")
    tx_power_dbm: float = Field(default=46.0, ge=0, le=60, description="cell transmit power")
    noise_figure_db: float = Field(default=9.0, ge=0, le=20, description="UE noise figure")
    shadowing_db: float = Field(default=4.0, ge=0, le=20, description="per (cell, slice) static geometry spread")
    fading_db: float = Field(default=1.0, ge=0, le=10, description="per-period SINR jitter")
    overhead: float = Field(default=0.75, gt=0, le=1, description="fraction of PRB resources carrying user data")

    @property
    def n_prb(self) -> int:
        """PRBs at 15 kHz SCS for 5-20 MHz (LTE/NR), 30 kHz beyond: 20 MHz -> 100 PRB."""
        return {5: 25, 10: 50, 15: 75, 20: 100, 40: 106, 50: 133, 100: 273}[self.bandwidth_mhz]

    @property
    def prb_bandwidth_hz(self) -> float:
        return 180e3 if self.bandwidth_mhz <= 20 else 360e3


class Traffic(Strict):
    model: Literal["daily_mask", "csv_trace"] = Field(default="daily_mask", description="traffic model name")
    trace_csv: Path | None = Field(default=None, description="CSV of normalised activity (csv_trace model)")
    cell_scale_sigma: float = Field(default=0.25, ge=0, le=2, description="lognormal spread of per-cell volume")
    phase_jitter_periods: int = Field(default=4, ge=0, le=48, description="max per-cell shift of the daily mask")
    noise_sigma: float = Field(default=0.08, ge=0, le=1, description="lognormal per-period noise on users")
    load_scale: float = Field(default=1.0, gt=0, le=20, description="multiplies every slice's users_peak")

    @model_validator(mode="after")
    def _trace_needs_file(self) -> Traffic:
        if self.model == "csv_trace" and self.trace_csv is None:
            raise ValueError("traffic.trace_csv is required when traffic.model is 'csv_trace'")
        return self


class Queueing(Strict):
    base_delay_ms: float = Field(default=10.0, ge=0, le=1000, description="core + scheduling delay floor")
    buffer_s: float = Field(default=0.1, ge=0, le=60, description="backlog kept, in seconds of offered traffic")


class SliceEvent(Strict):
    """Adds or removes slice types at a point of the run, in a fraction of the cells."""

    at_fraction: float = Field(ge=0, le=1, description="position in the run, as a fraction of steps")
    add: tuple[int, ...] = Field(default=(), description="slice ids switched on")
    remove: tuple[int, ...] = Field(default=(), description="slice ids switched off")
    cells_fraction: float = Field(default=1.0, gt=0, le=1, description="fraction of cells the event applies to")


class Evaluation(Strict):
    h0_fraction: float = Field(default=0.2, gt=0, lt=1, description="sample collection (baseline in control)")
    h1_fraction: float = Field(default=0.4, gt=0, lt=1, description="online allocation, initial slice set")
    explore_epsilon: float = Field(default=0.5, ge=0, le=1, description="H0: probability of a random allocation")

    @model_validator(mode="after")
    def _fractions(self) -> Evaluation:
        if self.h0_fraction + self.h1_fraction >= 1:
            raise ValueError("h0_fraction + h1_fraction must be < 1 (H2 gets the rest)")
        return self


class EstimatorConfig(Strict):
    hidden: tuple[int, ...] = Field(default=(36, 24, 16, 16), min_length=1, description="MLP hidden sizes")
    lr: float = Field(default=2e-3, gt=0, le=1, description="Adam learning rate")
    epochs: int = Field(default=200, ge=1, le=10_000, description="training epochs (the paper: 200)")
    batch_size: int = Field(default=256, ge=1, le=1_000_000, description="minibatch size")
    test_fraction: float = Field(default=0.25, gt=0, lt=1, description="held-out share (the paper: 25 %)")
    augment: bool = Field(default=True, description="apply IDLA's augmentation rules (1) and (2)")
    quantile: float = Field(default=0.5, gt=0, lt=1, description="the quantile of r that f learns (pinball loss); "
                                                                 "0.5 = the MAE loss (the paper), lower = cautious")

    @field_validator("hidden")
    @classmethod
    def _positive(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if any(h < 1 or h > 4096 for h in v):
            raise ValueError("every hidden size must be in [1, 4096]")
        return v


class IdlaConfig(Strict):
    starts: int = Field(default=5, ge=1, le=64, description="P start points around the warm start")
    start_sigma: float = Field(default=0.05, ge=0, le=1, description="std of the N(0, sigma) start offsets")
    step_x: float = Field(default=0.5, gt=0, le=10, description="initial primal step delta_x")
    step_lambda: float = Field(default=2.0, gt=0, le=100, description="initial dual step delta_lambda")
    decay: float = Field(default=0.97, gt=0, le=1, description="per-iteration step-size decay")
    max_iter: int = Field(default=100, ge=1, le=10_000, description="i_max")
    tol: float = Field(default=1e-5, ge=0, le=1, description="eta: stop when ||x(i) - x(i-1)|| < eta")
    grid_points: int = Field(default=21, ge=3, le=1001, description="tabulation points of f along x (fast path)")
    polish_iter: int = Field(default=3, ge=0, le=100, description="exact-gradient iterations after the table")
    method: Literal["tabulated", "autograd"] = Field(default="tabulated", description="see slicing/optim/idla.py")
    # Additions to the paper's Algorithm 1 (measured in slicing/optim/idla.py); all four off = the paper's text.
    normalise: bool = Field(default=True, description="scale steps per cell by its mean marginal utility")
    trust_region: float = Field(default=0.1, ge=0, le=1, description="clip |x step| to this x decay^i; 0 = off")
    dual_candidates: bool = Field(default=True, description="tabulated: add the table's dual-decomposition points")
    fill: bool = Field(default=True, description="hand the budget the estimate leaves unused to the cell's slices in "
                                                 "proportion to their shares (work conservation); off = the paper")
    refine: int = Field(default=3, ge=0, le=8, description="tabulated: exact local search after the table, moves of "
                                                          "half a grid step, then halves of that; the number of sizes")
    lambda_tol: float = Field(default=0.01, ge=0, le=1, description="tabulated: a cell whose multiplier lambda* is "
                                                                    "at most this keeps its best dual candidate and "
                                                                    "skips the search (at most this much utility below "
                                                                    "the table's optimum); 0 = search every cell")


class DrlConfig(Strict):
    """The IDLA paper's DRL baseline (scheme ``drl`` of ``slicing evaluate``; ``slicing/rl/drl.py``)."""

    groups: int | None = Field(default=None, ge=1, description="policies over the cells; None = one per cell "
                                                                "(cell-wise agents, the paper's choice)")
    hidden: tuple[int, ...] = Field(default=(64, 64), min_length=1, max_length=4, description="MLP layer sizes")
    lr: float = Field(default=3e-4, gt=0, le=1, description="actor and critic learning rate")
    initial_alpha: float = Field(default=0.02, gt=0, le=10, description="SAC's initial entropy weight (RLlib's "
                                                                        "1.0 kept agents near random)")
    gamma: float = Field(default=0.9, ge=0, lt=1, description="discount")
    train_batch: int = Field(default=64, ge=8, le=4096, description="transitions per module and update")
    buffer: int = Field(default=200_000, ge=1000, le=10_000_000, description="replay capacity (transitions)")
    periods_per_update: int = Field(default=4, ge=1, le=96, description="periods sampled between SAC updates")
    reward: Literal["min", "sum_log"] = Field(default="min", description="the paper's: min over slices of r")


class CellClass(Strict):
    """A class ("label") of cells with its own traffic volume and slice mix: a heterogeneous network.

    Members: ``cells`` (global ids) or ``fraction`` (a share of the cells not listed by any class, drawn per
    global cell id by the counter RNG; classes with a fraction take consecutive intervals of one uniform draw).
    ``load_scale`` multiplies every slice's users (and so its offered traffic) in the member cells;
    ``slice_load[id]`` multiplies slice ``id``'s users on top of it (a different slice mix)."""

    name: str = Field(min_length=1, description="label of the class (used in outputs)")
    cells: tuple[int, ...] | None = Field(default=None, description="global cell ids of the class")
    fraction: float | None = Field(default=None, gt=0, le=1, description="share of the unlisted cells instead")
    load_scale: float = Field(default=1.0, gt=0, le=20, description="multiplies the cells' traffic volume")
    slice_load: dict[int, float] = Field(default_factory=dict, description="slice id -> users multiplier")

    @model_validator(mode="after")
    def _members(self) -> CellClass:
        if (self.cells is None) == (self.fraction is None):
            raise ValueError(f"cell class {self.name!r}: give exactly one of cells or fraction")
        if self.cells is not None and len(set(self.cells)) != len(self.cells):
            raise ValueError(f"cell class {self.name!r}: cells must be unique")
        bad = {k: v for k, v in self.slice_load.items() if not 0 <= v <= 20}
        if bad:
            raise ValueError(f"cell class {self.name!r}: slice_load values must be in [0, 20], got {bad}")
        return self


class CellRange(Strict):
    """An inclusive range of global cell ids (cell id = 3 * site + sector, so a range is a band of rows)."""

    first: int = Field(ge=0, description="first global cell id of the range")
    last: int = Field(ge=0, description="last global cell id of the range (inclusive)")

    @model_validator(mode="after")
    def _ordered(self) -> CellRange:
        if self.last < self.first:
            raise ValueError(f"last ({self.last}) must be >= first ({self.first})")
        return self


class Disc(Strict):
    """A disc on the network's plane (``Topology.centroid_xy_m`` coordinates: site 0 at the origin)."""

    x_m: float = Field(description="centre, x")
    y_m: float = Field(description="centre, y")
    radius_m: float = Field(gt=0, description="radius")


class Region(Strict):
    """The cells an event applies to: exactly one of ``sites``, ``cells`` or ``disc``. An event without a region
    applies to the whole network."""

    sites: tuple[Annotated[int, Field(ge=0)], ...] | None = Field(default=None, min_length=1,
                                                                   description="site ids: their 3 cells each")
    cells: CellRange | None = Field(default=None, description="an inclusive range of global cell ids")
    disc: Disc | None = Field(default=None, description="the cells whose sector centroid lies in the disc")

    @model_validator(mode="after")
    def _exactly_one(self) -> Region:
        given = [k for k in ("sites", "cells", "disc") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of sites, cells or disc (got {', '.join(given) or 'none'})")
        return self

    def contains(self, topology: Topology, cell_ids: np.ndarray) -> np.ndarray:
        """[N] bool: which of the global ``cell_ids`` lie in the region (a pure function of the id and the
        topology, so every shard agrees)."""
        ids = np.asarray(cell_ids, dtype=np.int64)
        if self.sites is not None:
            return np.isin(ids // 3, np.asarray(self.sites, dtype=np.int64))
        if self.cells is not None:
            return (ids >= self.cells.first) & (ids <= self.cells.last)
        assert self.disc is not None  # _exactly_one
        xy = topology.centroid_xy_m(ids)  # [N, 2]
        return np.hypot(xy[:, 0] - self.disc.x_m, xy[:, 1] - self.disc.y_m) <= self.disc.radius_m


class _Window(Strict):
    """Where and when an event applies: the cells of ``region`` in periods [start, stop)."""

    region: Region | None = Field(default=None, description="the cells it applies to; omitted = the whole network")
    start: int = Field(default=0, ge=0, description="first period it applies to (inclusive)")
    stop: int | None = Field(default=None, ge=1, description="period it ends (exclusive); omitted = the end of the "
                                                             "run")

    @field_validator("stop")
    @classmethod
    def _after_start(cls, v: int | None, info: ValidationInfo) -> int | None:
        start = info.data.get("start")
        if v is not None and start is not None and v <= start:
            raise ValueError(f"must be > start ({start}), got {v}")
        return v

    def active(self, period: int) -> bool:
        return self.start <= period and (self.stop is None or period < self.stop)

    def contains(self, topology: Topology, cell_ids: np.ndarray) -> np.ndarray:
        """[N] bool: the event's cells among the global ``cell_ids``."""
        if self.region is None:
            return np.ones(len(cell_ids), dtype=bool)
        return self.region.contains(topology, cell_ids)


class TrafficEvent(_Window):
    """More (or less) traffic: multiplies the users, and so the offered traffic, of the region's cells, on top of
    every other factor (``Traffic.load_scale``, ``CellClass.load_scale``/``slice_load``, other traffic events)."""

    kind: Literal["traffic"] = Field(description="event type")
    slices: dict[int, Annotated[float, Field(ge=0, le=20)]] = Field(default_factory=dict,
                                                                     description="slice id -> users multiplier")
    all: float | None = Field(default=None, ge=0, le=20, description="users multiplier of every slice instead")

    @model_validator(mode="after")
    def _one_multiplier(self) -> TrafficEvent:
        if (self.all is None) == (not self.slices):
            raise ValueError("give exactly one of slices (slice id -> multiplier) or all (one multiplier)")
        return self


class OutageEvent(_Window):
    """The region's cells are down: no slice, no traffic, no interference; their users move to the nearest live
    cells (``slicing/sim/events.py``). At every period some cell must stay live."""

    kind: Literal["outage"] = Field(description="event type")


class AddSliceEvent(_Window):
    """Switches slice ``slice`` on in a ``fraction`` of the region's cells (one uniform draw per global cell id,
    so the cells do not depend on sharding), on top of ``initial_slices`` and ``schedule``."""

    kind: Literal["add_slice"] = Field(description="event type")
    slice: int = Field(description="catalogue id of the slice switched on")
    fraction: float = Field(default=1.0, gt=0, le=1, description="share of the region's cells that get it")


class RequirementEvent(_Window):
    """Changes slice ``slice``'s per-user throughput and/or delay requirement in the region's cells. It takes
    precedence over the catalogue and over A1 policies (``Simulator.set_requirements``) for the value it sets."""

    kind: Literal["requirement"] = Field(description="event type")
    slice: int = Field(description="catalogue id of the slice")
    throughput_mbps: float | None = Field(default=None, gt=0, le=1e6, description="per-user throughput "
                                                                                  "requirement phi*")
    delay_ms: float | None = Field(default=None, gt=0, le=1e6, description="delay requirement d*")

    @model_validator(mode="after")
    def _something(self) -> RequirementEvent:
        if self.throughput_mbps is None and self.delay_ms is None:
            raise ValueError("give throughput_mbps, delay_ms or both")
        return self


Event = Annotated[TrafficEvent | OutageEvent | AddSliceEvent | RequirementEvent, Field(discriminator="kind")]
EVENT_KINDS = ("traffic", "outage", "add_slice", "requirement")


class E2eTraffic(Strict):
    """Slice traffic x(t) of the end-to-end simulator (``slicing/sim/e2e.py``), in users/s per slot."""

    model: Literal["truncated_normal", "csv_trace"] = Field(default="truncated_normal",
                                                            description="traffic generator name")
    mean_users_per_s: float = Field(default=3.0, gt=0, le=100, description="centre of the truncated normal "
                                                                            "(the paper: 1 to 5)")
    std_users_per_s: float = Field(default=0.5, ge=0, le=100, description="std before truncation (sigma_mean = "
                                                                           "0.5, sigma_max = 1.5: our choice)")
    min_users_per_s: float = Field(default=1.0, gt=0, le=100, description="lower truncation bound (the model "
                                                                           "grid's lowest traffic)")
    max_users_per_s: float = Field(default=5.0, gt=0, le=100, description="upper truncation bound (the model "
                                                                           "grid's highest traffic)")
    trace_csv: Path | None = Field(default=None, description="CSV with a users_per_s column, one row per slot "
                                                             "(csv_trace model)")

    @model_validator(mode="after")
    def _bounds(self) -> E2eTraffic:
        if not self.min_users_per_s <= self.mean_users_per_s <= self.max_users_per_s:
            raise ValueError("traffic: need min_users_per_s <= mean_users_per_s <= max_users_per_s")
        if self.model == "csv_trace" and self.trace_csv is None:
            raise ValueError("traffic.trace_csv is required when traffic.model is 'csv_trace'")
        return self


class E2eConfig(Strict):
    """The ground-truth end-to-end slice simulator (``slicing/sim/e2e.py``; values and their sources in
    ``docs/e2e.md``). One eMBB slice instance: transport bandwidth, gNB CPU and a radio share."""

    seed: int = Field(default=0, ge=0, lt=2**63, description="root seed of the simulator's random streams")
    slots_per_interval: int = Field(default=60, ge=1, le=100_000, description="slots tau_i of one "
                                                                               "reconfiguration interval")
    users_per_slot: int = Field(default=64, ge=1, le=100_000, description="users sampled per slot to draw the "
                                                                           "throughput distribution")
    traffic: E2eTraffic = E2eTraffic()
    demand_median_mbps: float = Field(default=15.0, gt=0, le=1000, description="median rate a 4K video user "
                                                                                 "asks for")
    demand_sigma: float = Field(default=0.3, ge=0, le=3, description="lognormal spread of a user's demand")
    transport_efficiency: float = Field(default=0.94, gt=0, le=1, description="goodput per Mbps of transport "
                                                                              "bandwidth (VXLAN + GTP-U headers)")
    cpu_base_millicores: float = Field(default=400.0, ge=0, le=100_000, description="gNB CPU spent before any "
                                                                                    "user data is processed")
    cpu_mbps_per_millicore: float = Field(default=0.0135, gt=0, le=10, description="user-plane Mbit/s the gNB "
                                                                                   "processes per millicore above "
                                                                                   "the base")
    radio_capacity_mbps: float = Field(default=80.0, gt=0, le=100_000, description="slice radio capacity at "
                                                                                   "radio share 1")
    channel_sigma: float = Field(default=0.25, ge=0, le=3, description="lognormal spread of a user's radio "
                                                                        "rate (position, mobility)")
    fairness_sigma: float = Field(default=0.15, ge=0, le=3, description="lognormal spread of a user's share of "
                                                                         "the bottleneck (TCP unfairness)")
    slot_jitter_sigma: float = Field(default=0.05, ge=0, le=3, description="lognormal per-slot jitter of the "
                                                                            "gNB's processing rate")


class Scenario(Strict):
    """A simulated network and the experiment run on it."""

    name: str = Field(default="scenario", min_length=1, description="label used in outputs")
    seed: int = Field(default=0, ge=0, lt=2**63, description="root seed of every random stream")
    steps: int = Field(default=5000, ge=10, le=10_000_000, description="periods in a full run")
    period_s: float = Field(default=900.0, gt=0, le=86_400, description="O&M period length")
    topology: Topology = Topology()
    radio: Radio = Radio()
    traffic: Traffic = Traffic()
    queueing: Queueing = Queueing()
    slices: tuple[SliceType, ...] = Field(default_factory=default_catalogue, min_length=1, max_length=16)
    initial_slices: tuple[int, ...] = Field(default=(1, 2, 4), min_length=1, description="slice ids at t = 0")
    schedule: tuple[SliceEvent, ...] = Field(default=(), description="slice additions/removals over the run")
    evaluation: Evaluation = Evaluation()
    estimator: EstimatorConfig = EstimatorConfig()
    idla: IdlaConfig = IdlaConfig()
    drl: DrlConfig = DrlConfig()
    cell_classes: tuple[CellClass, ...] = Field(default=(), description="heterogeneous cells: load and slice mix "
                                                                         "per class of cells")
    events: tuple[Event, ...] = Field(default=(), description="what-if changes over the run: regional traffic, "
                                                              "outages, slices added, requirements "
                                                              "(slicing/sim/events.py)")

    @field_validator("events", mode="wrap")
    @classmethod
    def _event_locations(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        """An error inside an event is located ``events.N.key``: without the ``kind`` segment pydantic's tagged
        union inserts, so it reads like the errors ``_events_fit_the_network`` locates."""
        try:
            return handler(value)
        except ValidationError as err:
            details = []
            for e in err.errors():
                loc = e["loc"]
                if len(loc) >= 2 and loc[1] in EVENT_KINDS:
                    loc = loc[:1] + loc[2:]
                details.append(InitErrorDetails(type=e["type"], loc=loc, input=e["input"], ctx=e.get("ctx", {})))
            raise ValidationError.from_exception_data(err.title, details) from None

    @model_validator(mode="after")
    def _events_fit_the_network(self) -> Scenario:
        errors = event_errors(self)
        if errors:
            raise ValidationError.from_exception_data("Scenario", [
                InitErrorDetails(type="value_error", loc=loc, input=None, ctx={"error": ValueError(msg)})
                for loc, msg in errors])
        return self

    @model_validator(mode="after")
    def _cell_classes(self) -> Scenario:
        owner: dict[int, str] = {}
        known = {s.id for s in self.slices}
        total_fraction = 0.0
        names = [c.name for c in self.cell_classes]
        if len(set(names)) != len(names):
            raise ValueError("cell_classes: names must be unique")
        for i, c in enumerate(self.cell_classes):
            key = f"cell_classes.{i} ({c.name!r})"
            for cell in c.cells or ():
                if not 0 <= cell < self.cells:
                    raise ValueError(f"{key}.cells: cell id {cell} out of range [0, {self.cells})")
                if cell in owner:
                    raise ValueError(f"{key}.cells: cell {cell} is already in class {owner[cell]!r}; a cell "
                                     "belongs to at most one class")
                owner[cell] = c.name
            unknown = sorted(set(c.slice_load) - known)
            if unknown:
                raise ValueError(f"{key}.slice_load: unknown slice ids {unknown}; the catalogue has {sorted(known)}")
            total_fraction += c.fraction or 0.0
        if total_fraction > 1 + 1e-9:
            raise ValueError(f"cell_classes: the fractions sum to {total_fraction:g}; they must sum to <= 1")
        return self

    @model_validator(mode="after")
    def _slice_ids(self) -> Scenario:
        ids = [s.id for s in self.slices]
        if len(set(ids)) != len(ids):
            raise ValueError("slices: ids must be unique")
        snssais = [s.snssai.lower() for s in self.slices]
        if len(set(snssais)) != len(snssais):
            raise ValueError("slices: snssai values must be unique")
        known = set(ids)
        for name, group in [("initial_slices", self.initial_slices)] + [
            (f"schedule.{i}", ev.add + ev.remove) for i, ev in enumerate(self.schedule)
        ]:
            unknown = sorted(set(group) - known)
            if unknown:
                raise ValueError(f"{name}: unknown slice ids {unknown}; the catalogue has {sorted(known)}")
        return self

    @property
    def cells(self) -> int:
        return self.topology.cells

    @property
    def slice_index(self) -> dict[int, int]:
        """Catalogue id -> column of the [cells, slices] arrays."""
        return {s.id: i for i, s in enumerate(self.slices)}


Loc = tuple[str | int, ...]


def event_errors(sc: Scenario) -> list[tuple[Loc, str]]:
    """(location, message) of every event that does not fit the scenario: a period past the run, a slice id not in
    the catalogue, a region outside the network; then outages that leave no live cell. Vectorised over cells."""
    known = sorted(s.id for s in sc.slices)
    out: list[tuple[Loc, str]] = []
    for i, ev in enumerate(sc.events):
        at: Loc = ("events", i)
        if ev.start >= sc.steps:
            out.append(((*at, "start"), f"period {ev.start} is beyond the run (steps = {sc.steps}: periods "
                                        f"0..{sc.steps - 1})"))
        ids, key = ((list(ev.slices), "slices") if isinstance(ev, TrafficEvent)
                    else ([ev.slice], "slice") if isinstance(ev, AddSliceEvent | RequirementEvent) else ([], ""))
        unknown = sorted(set(ids) - set(known))
        if unknown:
            out.append(((*at, key), f"unknown slice ids {unknown}; the catalogue has {known}"))
        if ev.region is not None:
            out.extend(_region_errors(ev.region, sc.topology, (*at, "region")))
    return out or _outage_errors(sc)


def _region_errors(region: Region, topo: Topology, at: Loc) -> list[tuple[Loc, str]]:
    if region.sites is not None:
        bad = sorted({s for s in region.sites if s >= topo.sites})
        if bad:
            what = f"site {bad[0]} is" if len(bad) == 1 else f"sites {', '.join(map(str, bad))} are"
            return [((*at, "sites"), f"{what} outside the network (sites 0..{topo.sites - 1})")]
    elif region.cells is not None:
        if region.cells.last >= topo.cells:
            return [((*at, "cells"), f"cell {region.cells.last} is outside the network (cells 0..{topo.cells - 1})")]
    elif region.disc is not None and not region.contains(topo, np.arange(topo.cells)).any():
        xy = topo.centroid_xy_m()  # [cells, 2]
        d = region.disc
        span = f"x {xy[:, 0].min():.0f}..{xy[:, 0].max():.0f} m, y {xy[:, 1].min():.0f}..{xy[:, 1].max():.0f} m"
        return [((*at, "disc"), f"no cell centroid lies in the disc (centre ({d.x_m:g}, {d.y_m:g}) m, radius "
                                f"{d.radius_m:g} m); the centroids span {span}")]
    return []


def _outage_errors(sc: Scenario) -> list[tuple[Loc, str]]:
    """Outages that, together, take every cell down at some period (checked once per change of the active set)."""
    outages = [(i, ev) for i, ev in enumerate(sc.events) if isinstance(ev, OutageEvent)]
    if not outages:
        return []
    ids = np.arange(sc.cells)
    down = {i: ev.contains(sc.topology, ids) for i, ev in outages}  # [cells] bool each
    bounds = sorted({ev.start for _, ev in outages} | {ev.stop for _, ev in outages if ev.stop is not None}
                    | {sc.steps})
    for t, end in itertools.pairwise(bounds):
        active = [i for i, ev in outages if ev.active(t)]
        if t < sc.steps and active and np.logical_or.reduce([down[i] for i in active]).all():
            names = [f"events.{i}" for i in active]
            what = (f"outage {names[0]} leaves" if len(names) == 1
                    else f"outages {', '.join(names[:-1])} and {names[-1]} together leave")
            return [(("events", active[-1]), f"{what} no live cell in periods {t}..{min(end, sc.steps) - 1}")]
    return []


class ScenarioError(ValueError):
    """A scenario file or override that does not validate; the message names each key and rule."""


def _parse_value(text: str) -> Any:
    return yaml.safe_load(text) if text.strip() else ""


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``dotted.key=value`` strings to a nested dict (values parsed as YAML scalars / lists)."""
    for item in overrides:
        if "=" not in item:
            raise ScenarioError(f"--set {item!r}: expected dotted.key=value")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        if not all(parts):
            raise ScenarioError(f"--set {item!r}: empty key segment in {key!r}")
        node: Any = data
        for depth, part in enumerate(parts[:-1]):
            path = ".".join(parts[: depth + 1])
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise ScenarioError(f"--set {key}: {path} is not a valid list index")
                node = node[int(part)]
            else:
                node = node.setdefault(part, {})
            if not isinstance(node, dict | list):
                raise ScenarioError(f"--set {key}: {path} is a value, not a section")
        last = parts[-1]
        if isinstance(node, list):
            if not last.isdigit() or int(last) >= len(node):
                raise ScenarioError(f"--set {key}: {last} is not a valid list index")
            node[int(last)] = _parse_value(raw)
        else:
            node[last] = _parse_value(raw)
    return data


def format_validation_error(err: ValidationError) -> str:
    """One line per error, ``dotted.key: rule``; whole-model rules carry no location and name their keys."""
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        unknown = " (unknown key)" if e["type"] == "extra_forbidden" else ""
        lines.append(f"{loc}: {msg}{unknown}" if loc else msg)
    return "; ".join(lines)


def read_yaml_mapping(path: str | Path, error: type[ValueError]) -> dict[str, Any]:
    """A YAML file whose top level is a mapping (empty file -> {}); ``error`` names the file and the problem."""
    p = Path(path)
    if not p.is_file():
        raise error(f"file {p} does not exist")
    try:
        loaded = yaml.safe_load(p.read_text())
    except yaml.YAMLError as err:
        raise error(f"{p}: not valid YAML ({err})") from None
    if loaded is not None and not isinstance(loaded, dict):
        raise error(f"{p}: the top level must be a mapping of keys to values")
    return loaded or {}


def _default_dump() -> dict[str, Any]:
    """The defaults as plain data, so list-index overrides (slices.0.x) have something to index."""
    return Scenario().model_dump(mode="json")


def build_scenario(data: dict[str, Any], overrides: list[str] | None = None) -> Scenario:
    data = dict(data)
    if overrides and any(o.split("=", 1)[0].startswith("slices.") for o in overrides) and "slices" not in data:
        data["slices"] = _default_dump()["slices"]
    data = apply_overrides(data, list(overrides or []))
    try:
        return Scenario.model_validate(data)
    except ValidationError as err:
        raise ScenarioError(format_validation_error(err)) from None


def load_scenario(path: str | Path | None, overrides: list[str] | None = None) -> Scenario:
    """Read a scenario YAML (or the defaults when ``path`` is None) and apply ``--set`` overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        data = read_yaml_mapping(p, ScenarioError)
        trace = data.get("traffic", {}).get("trace_csv") if isinstance(data.get("traffic"), dict) else None
        if trace and not Path(trace).is_absolute():
            data["traffic"] = {**data["traffic"], "trace_csv": str(p.parent / trace)}
    return build_scenario(data, overrides)
