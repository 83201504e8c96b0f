"""The population's ``microopt`` step: transport bandwidth and CPU for every end-to-end slice instance of a shard.

An e2e slice instance is one slice over a group of ``sites_per_instance`` consecutive sites (site = cell id // 3;
default one instance per site and slice). Each period, after the RAN shares, a shard forecasts the traffic of its
instances and allocates all of them in one vectorised MicroOpt call (``slicing/optim/microopt.py``) on the slice
model (``slicing/models/slice_model.py``)::

    users_g,s(h)   = sum over the group's cells of the slice's mean active users in history period h   [G, S, H]
    traffic        = users / users_per_traffic_unit, clipped to the slice model's trained range (users/s)
    forecast       = truncated normal with the mean and std of the last H periods of that traffic
    r_g,s          = MicroOpt(forecast, q_thresh, beta_thresh)           (transport Mbit/s, CPU millicores)
    r_g,s          = max(r_g,s, the slice's SLA floors)                  (with ``slas``, see below)

The simulator's users are mean active users of a 15-minute period; the slice model's traffic is users/s of the
MicroOpt testbed (1 to 5). ``users_per_traffic_unit`` is the conversion (default 20: a site's eMBB slice with its
typical 20-100 users maps onto 1-5 users/s; ours, stated in docs/microopt.md); traffic outside the trained range
is clipped and counted (``clipped``), never extrapolated. Instances of a slice that is inactive in every cell of
the group get nothing. A group that spans two shards is allocated by each shard for its own cells (groups are
whole when shard boundaries fall on multiples of ``3 * sites_per_instance`` cells).

SLA decomposition in the period (``slas``: an e2e SLA per catalogue slice id, ``slicing/optim/sla.py``): the RAN
latency target becomes the slice's delay requirement d* in every cell, so IDLA allocates the radio share for it
(``Population`` applies ``sla.apply_slas`` to the scenario before it builds the shards), and the transport and core
targets are floors of every instance's bandwidth and CPU (capped at the MicroOpt box).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from slicing.config import Strict
from slicing.errors import FieldError
from slicing.models.slice_model import ETA, slice_model_from_payload
from slicing.models.slice_model import R_MAX as SLICE_R_MAX
from slicing.optim.degradation import model_e_beta
from slicing.optim.sla import SliceSla

R_MAX = np.array(SLICE_R_MAX)  # the MicroOpt box: the paper's largest allocations (Mbit/s, millicores)
POINTS = 16  # traffic points per instance handed to MicroOpt


class E2eStepConfig(Strict):
    """How a shard groups its cells into e2e slice instances and what each instance must meet."""

    sites_per_instance: int = Field(default=1, ge=1, le=100_000, description="consecutive sites per instance")
    users_per_traffic_unit: float = Field(default=20.0, gt=0, le=1e6, description="simulator users per users/s "
                                                                                  "of the slice model")
    q_thresh_mbps: float = Field(default=5.0, gt=0, le=1e4, description="per-user throughput threshold")
    beta_thresh: float = Field(default=0.1, gt=0, lt=1, description="allowed E[beta]")
    seed: int = Field(default=0, ge=0, description="MicroOpt's seed")
    slas: dict[int, SliceSla] = Field(default_factory=dict, description="e2e SLA per catalogue slice id: its RAN "
                                      "target becomes the cells' d* (Population applies it to the scenario), its "
                                      "transport and core targets floor the instances' bandwidth and CPU")


class E2eStep:
    """The step of one shard: a slice model rebuilt from its payload and the config."""

    def __init__(self, config: E2eStepConfig | dict, model_payload: dict[str, Any],
                 slice_ids: list[int] | None = None) -> None:
        self.config = config if isinstance(config, E2eStepConfig) else E2eStepConfig.model_validate(config)
        ids = list(slice_ids) if slice_ids is not None else sorted(self.config.slas)
        self.floors = np.zeros((len(ids), 2))  # [S, 2] per catalogue slice: the SLA's transport and CPU floors
        if self.config.slas:
            from slicing.optim.sla import decompose

            for j, sid in enumerate(ids):
                sla = self.config.slas.get(sid)
                if sla is not None:
                    dec = decompose(sla.latency_ms, sla.reliability, sla.throughput_mbps)
                    if not dec.feasible[0]:
                        raise FieldError(("slas", sid), f"cannot be decomposed: {dec.reason[0]}")
                    self.floors[j] = [dec.transport_mbps[0], dec.cpu_millicores[0]]
        self.model = slice_model_from_payload(model_payload)
        self.model.eval()
        self.version: str = self.model.version

    def groups(self, cell_ids: np.ndarray) -> np.ndarray:
        """[N] group id of every cell (global, so two shards agree on ids)."""
        return (np.asarray(cell_ids, dtype=np.int64) // 3) // self.config.sites_per_instance

    def allocate(self, cell_ids: np.ndarray, users_history: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
        """Allocate every (group, slice) instance with an active slice: ``users_history`` [N, S, H], ``mask``
        [N, S] -> {group [M], slice [M], traffic_mean/std [M] (users/s), r [M, 2], e_beta [M], feasible [M],
        clipped (int)}."""
        from slicing.optim.microopt import MicroOptSettings, microopt, traffic_points

        c = self.config
        group = self.groups(cell_ids)  # [N]
        ids, inverse = np.unique(group, return_inverse=True)  # [G], [N]
        n_g, n_s = len(ids), mask.shape[1]
        users = np.zeros((n_g, n_s, users_history.shape[2]))
        np.add.at(users, inverse, np.where(mask[:, :, None], users_history, 0.0))  # [G, S, H]
        active = np.zeros((n_g, n_s), dtype=bool)
        np.logical_or.at(active, inverse, mask)  # [G, S]
        gi, si = np.nonzero(active)  # [M]
        lo, hi = float(self.model.traffic_min), float(self.model.traffic_max)
        raw = users[gi, si] / c.users_per_traffic_unit  # [M, H]
        clipped = int(((raw < lo) | (raw > hi)).any(axis=1).sum())
        traffic = np.clip(raw, lo, hi)
        mean, std = traffic.mean(axis=1), traffic.std(axis=1)  # [M]
        out: dict[str, Any] = {"group": ids[gi], "slice": si, "traffic_mean": mean, "traffic_std": std,
                               "r": np.zeros((len(gi), 2)), "e_beta": np.zeros(len(gi)),
                               "feasible": np.zeros(len(gi), dtype=bool), "clipped": clipped}
        if len(gi) == 0:
            return out
        points = traffic_points(mean, std, lo, hi, POINTS)  # [M, P]
        q = np.full(len(gi), c.q_thresh_mbps)
        b = np.full(len(gi), c.beta_thresh)
        res = microopt(self.model.qos, points, q, b, eta=np.asarray(ETA), r_max=R_MAX,
                       settings=MicroOptSettings(seed=c.seed))
        r = np.asarray(res.r, dtype=np.float64)
        if len(self.floors) == n_s:
            r = np.minimum(np.maximum(r, self.floors[si]), R_MAX)  # the SLA's transport and core floors
        e_beta = model_e_beta(self.model.qos, points, r, q)
        out.update(r=r, e_beta=e_beta, feasible=e_beta <= b + 1e-6)
        return out
