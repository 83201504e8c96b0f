"""``CellShard``: one contiguous range of cell ids with its simulator, history, allocation and scheme.

A plain class. ``Population`` wraps it with ``ray.remote`` (a restartable, threaded actor) or runs it in-process;
the code is the same. One period of a shard, as driven by ``Population.run_period``:

    cell_util(ids)            its cells' last-period PRB utilisation (other shards' halo)
    step(t, halo_util)        simulate period t with the current allocation, push the report into the history
    allocate(t + 1)           shares [N, S] for period t + 1 (z = history up to t, warm start = current shares)

Allocation never leaves a cell without shares: until the history holds H periods the IDLA scheme is replaced by
the traffic baseline (warm-up); if the scheme raises or returns a non-finite / infeasible row, that cell keeps its
last good allocation (masked to the active slices), or gets the traffic baseline if that leaves it nothing.

State changes are checkpointed after every ``step`` and every ``allocate`` (``checkpoint.py``) under a name made
of the cell range, and restored when the shard is (re)started. ``step`` and ``allocate`` carry the period they are
for, so a call retried by Ray after a restart is either done (the restored state is before it) or answered from
the stored result (the state is already past it): no period is simulated twice.

With ``e2e`` (``{"config": E2eStepConfig fields, "model": slice-model payload}``), ``allocate`` also runs the
``microopt`` step (``e2e_step.py``) once the history is full: transport Mbit/s and CPU millicores for every e2e
slice instance of the shard, in one vectorised call; ``e2e_allocations()`` reads them. A failure of that step is
reported in the allocation stats (``e2e_error``) and never touches the RAN shares.

A1 slice SLA policies arrive as ``(version, {policy id: policy body})`` with ``allocate`` (``set_policies``; the
population sends them when they change, the shard checkpoints them). From that allocation on, the cells they cover
get the policies' requirements: the simulator measures r against them, IDLA's features z carry them and its
utility weighs the slices by their priority (``slicing/a1.py``). Per policy, ``allocate`` reports the cells in
scope, those where the slice is active and, with an estimator, those where it is infeasible (even the whole cell
is estimated to give r < ``a1.INFEASIBLE_R``); ``step`` reports how many of them met their requirements.

The estimator arrives as ``(version, ref)``: ``ref`` an ObjectRef (or a one-element list holding one, so Ray does
not resolve it before the call) or the payload dict itself (in-process). The shard fetches and rebuilds it only
when ``version`` differs from the one it holds (``reload_count``). A shard of scheme ``rl`` gets a pushed RL
checkpoint the same way (``set_rl_policy``: the archive's bytes instead of the payload).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass, replace
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from slicing import a1
from slicing.config import Scenario
from slicing.data.augment import SATISFIED
from slicing.data.history import History
from slicing.data.kpi import KpiBatch, parse_records
from slicing.errors import FieldError
from slicing.models.qos_estimator import estimator_from_payload
from slicing.optim.baselines import traffic_proportional
from slicing.optim.schemes import AllocationContext, Scheme, make_scheme
from slicing.runtime.checkpoint import CheckpointMismatch, CheckpointStore, scenario_fingerprint
from slicing.sim.simulator import Simulator

RUNTIME_SCHEMES = ("idla", "traffic", "equal", "rl")
CHECKPOINT_FORMAT = "slicing.shard-checkpoint/1"
KPI_FIELDS = ("share", "users", "cqi", "prb_util", "throughput_mbps", "delay_ms", "r")
_SUM_TOL = 1e-9  # the simulator's own tolerance on row sums


class UnknownCell(KeyError):
    """A cell id that the population (or shard) does not hold."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown cell"


@dataclass(frozen=True)
class _Snapshot:
    """What readers see; replaced as a whole after each allocation (threaded actor: no torn reads)."""

    shares: np.ndarray  # [N, S] allocation for ``period``
    period: int
    model_version: str | None
    mask: np.ndarray  # [N, S] active slices in ``period``


def _resolve(ref: Any) -> Any:
    """A payload passed as itself (in-process), or as an ObjectRef (alone or in a one-element list)."""
    if isinstance(ref, dict | bytes):
        return ref
    if isinstance(ref, list | tuple) and len(ref) == 1:
        ref = ref[0]
    import ray  # only reached when running under Ray

    if not isinstance(ref, ray.ObjectRef):
        raise ValueError(f"estimator ref: expected an ObjectRef, [ObjectRef] or payload dict, got {type(ref).__name__}")
    return ray.get(ref)


class CellShard:
    """Cells ``lo .. hi - 1`` of ``scenario`` (see module docstring)."""

    def __init__(self, scenario: Scenario, lo: int, hi: int, scheme: str = "traffic", storage: str | None = None,
                 estimator: tuple[str, Any] | None = None, threads: int | None = None,
                 rl_checkpoint: str | None = None, e2e: dict[str, Any] | None = None) -> None:
        if scheme not in RUNTIME_SCHEMES:
            raise ValueError(f"scheme: {scheme!r} is not a runtime scheme; choose from {list(RUNTIME_SCHEMES)}")
        if not 0 <= lo < hi <= scenario.cells:
            raise ValueError(f"cell range: need 0 <= lo < hi <= {scenario.cells}, got [{lo}, {hi})")
        if threads is not None:
            torch.set_num_threads(int(threads))
        self.scenario, self.lo, self.hi, self.scheme_name = scenario, int(lo), int(hi), scheme
        self.name = f"shard-{self.lo:09d}-{self.hi:09d}"
        self.sim = Simulator(scenario, np.arange(lo, hi, dtype=np.int64))
        n, s = len(self.sim.cell_ids), self.sim.n_slices
        self.history = History(n, s)
        self._snssai = {x.lower(): j for j, x in enumerate(self.sim.snssai)}
        self._lock = threading.RLock()  # mutators; allocation() reads the snapshot without it
        self._model, self._model_version, self._reloads = None, None, 0
        if scheme == "rl" and rl_checkpoint is None:
            raise ValueError("rl_checkpoint: scheme 'rl' needs a checkpoint from `slicing train-rl`")
        if scheme == "rl":
            import slicing.rl.scheme  # noqa: F401 - registers the rl scheme (the optim registry knows no RL)
        checkpoint = str(rl_checkpoint) if rl_checkpoint else None
        self._scheme: Scheme | None = None if scheme == "idla" else make_scheme(scheme, checkpoint=checkpoint)
        if scheme == "rl":
            self._model_version = getattr(self._scheme, "version", None)
        self._halo_util: np.ndarray | None = None  # last step's out-of-shard loads (rl observations)
        self._util_before: np.ndarray | None = None  # [N] the cells' load before the last step (a re-run halo)
        self._store = CheckpointStore(storage) if storage else None
        self._fingerprint = scenario_fingerprint(scenario)
        self._last_step: dict | None = None
        self._last_alloc: dict | None = None
        self._alloc_inputs: dict[str, Any] | None = None  # z, mask, weight of the last estimator-based allocation
        self._kpis: dict[str, np.ndarray] | None = None  # last step's arrays (memory only)
        self._e2e = None
        if e2e is not None:
            from slicing.runtime.e2e_step import E2eStep

            self._e2e = E2eStep(e2e["config"], e2e["model"], [s.id for s in scenario.slices])
        self._e2e_result: dict[str, Any] | None = None  # the microopt step's arrays of the current period
        self._a1_version: str | None = None  # A1 policies in force (set_policies)
        self._a1_policies: dict[str, dict] = {}
        self._req: a1.CellRequirements | None = None
        self._sla_measured: dict[str, dict] = {}  # policy id -> the last step's satisfaction in its cells
        if estimator is not None:
            self.set_estimator(*estimator)
        self.restored = self.restore()
        if not self.restored:
            mask = self.sim.slice_mask()
            shares = traffic_proportional(self.sim.demand().offered_mbps, mask)  # [N, S] period 0
            self._last_good = shares
            self._snap = _Snapshot(shares, 0, None, mask)
            self.checkpoint()

    # -- estimator ------------------------------------------------------------------------------------------
    def set_estimator(self, version: str, ref: Any) -> bool:
        """Load the estimator ``version`` from ``ref`` unless it is already loaded; True if it was (re)loaded."""
        with self._lock:
            if version == self._model_version and self._model is not None:
                return False
            model = estimator_from_payload(_resolve(ref))
            if model.version != version:
                raise ValueError(f"estimator version: announced {version!r}, payload holds {model.version!r}")
            self._model, self._model_version = model, version
            self._reloads += 1
            if self.scheme_name == "idla":
                self._scheme = make_scheme("idla", model, idla=self.scenario.idla, seed=self.scenario.seed)
            return True

    def set_rl_policy(self, version: str, ref: Any) -> bool:
        """Scheme ``rl``: switch to the RL checkpoint ``version`` (a ``pack_checkpoint`` archive, ``ref`` as for the
        estimator) unless it is the one in use; True if it was loaded. Other schemes ignore it."""
        with self._lock:
            if self.scheme_name != "rl" or version == self._model_version:
                return False
            from slicing.rl.inference import policy_from_archive
            from slicing.rl.scheme import RlScheme

            policy = policy_from_archive(_resolve(ref))
            if policy.version != version:
                raise ValueError(f"RL policy version: announced {version!r}, the archive holds {policy.version!r}")
            self._scheme, self._model_version = RlScheme(policy), version
            self._reloads += 1
            return True

    def reload_count(self) -> int:
        """How many times this incarnation rebuilt an estimator from the object store."""
        return self._reloads

    # -- A1 policies ----------------------------------------------------------------------------------------
    def set_policies(self, version: str, policies: dict[str, dict]) -> bool:
        """Apply the A1 policies ``version`` (``{policy id: body}``) from the next allocation; False if held."""
        with self._lock:
            if version == self._a1_version:
                return False
            parsed = {pid: a1.parse_policy(body) for pid, body in policies.items()}
            if parsed:
                req = a1.cell_requirements(a1.rules_of(parsed, self.scenario), self.scenario, self.sim.cell_ids)
                self.sim.set_requirements(req.throughput_req_mbps, req.delay_req_ms,
                                          req.slice_mbps if req.has_guarantee else None)
            else:
                req = None
                self.sim.set_requirements()
            self._req, self._a1_version, self._a1_policies = req, str(version), dict(policies)
            return True

    def requirements(self, cell_id: int) -> dict:
        """{snssai: {throughput_req_mbps, delay_req_ms, guaranteed_mbps, priority, policy}} in force in a cell."""
        i = int(cell_id) - self.lo
        if not 0 <= i < self.hi - self.lo:
            raise UnknownCell(f"cell_id: unknown cell {cell_id} ({self.name} holds {self.lo}..{self.hi - 1})")
        with self._lock:
            tp, dl = self.sim.requirements()
            req = self._req
            by = {j: pid for pid, (rows, j) in req.covered.items() if i in rows} if req is not None else {}
            return {sn: {"throughput_req_mbps": float(tp[i, j]), "delay_req_ms": float(dl[i, j]),
                         "guaranteed_mbps": (None if req is None or not np.isfinite(req.slice_mbps[i, j])
                                             else float(req.slice_mbps[i, j])),
                         "priority": 1.0 if req is None else float(req.weight[i, j]), "policy": by.get(j)}
                    for j, sn in enumerate(self.sim.snssai)}

    def _sla_measure(self, rep) -> dict[str, dict]:
        """Per policy: its cells where the slice was active in the report, and how many met r >= SATISFIED."""
        if self._req is None:
            return {}
        out = {}
        for pid, (rows, j) in self._req.covered.items():
            act = rows[rep.mask[rows, j]]
            out[pid] = {"period": int(rep.period), "active": int(len(act)),
                        "satisfied": int((rep.r[act, j] >= SATISFIED).sum())}
        return out

    def _sla_feasibility(self, mask: np.ndarray, z: np.ndarray | None) -> dict[str, dict]:
        """Per policy: cells in scope, active, and (with an estimator and features) the infeasible ones."""
        if self._req is None:
            return {}
        out = {}
        for pid, (rows, j) in self._req.covered.items():
            act = rows[mask[rows, j]]
            entry = {"cells": int(len(rows)), "active": int(len(act)), "n_infeasible": None, "infeasible": []}
            if self._model is not None and z is not None:
                from slicing.optim.utility import estimator_features

                with torch.inference_mode():
                    zt = torch.as_tensor(z[act, j]).float()
                    f1 = self._model(estimator_features(torch.ones(len(act)), zt)).numpy()  # [M] r at x = 1
                bad = act[f1 < a1.INFEASIBLE_R]
                entry["n_infeasible"] = int(len(bad))
                entry["infeasible"] = self.sim.cell_ids[bad[:a1.MAX_LISTED_CELLS]].tolist()
            out[pid] = entry
        return out

    # -- one period -----------------------------------------------------------------------------------------
    def _expect(self, op: str, period: int, sim_period: int, alloc_period: int) -> None:
        if (self.sim.period, self._snap.period) != (sim_period, alloc_period):
            raise RuntimeError(f"{op}(period={period}): {self.name} is at simulated period {self.sim.period} with "
                               f"an allocation for period {self._snap.period}")

    def cell_util(self, ids: np.ndarray | None = None, period: int | None = None) -> np.ndarray:
        """[len(ids)] last-period PRB utilisation of global cell ``ids`` (default: all of this shard's cells): what
        ``step(period)`` takes as halo. With ``period`` given and this shard already past that step (a round cut
        short by a crash, other shards not stepped), the load from before it."""
        util = self.sim.cell_util
        if period is not None and self.sim.period != period:
            if self.sim.period != period + 1 or self._util_before is None:
                raise ValueError(f"cell_util period {period}: {self.name} is at period {self.sim.period}")
            util = self._util_before
        if ids is None:
            return util.copy()
        pos = np.asarray(ids, dtype=np.int64) - self.lo
        if len(pos) and (pos.min() < 0 or pos.max() >= self.hi - self.lo):
            raise ValueError(f"cell_util ids: outside {self.name}'s range [{self.lo}, {self.hi})")
        return util[pos]

    def halo_ids(self) -> np.ndarray:
        """[M] sorted global ids of the out-of-shard neighbours whose load ``step`` needs."""
        return self.sim.halo_ids.copy()

    def step(self, period: int, halo_util: np.ndarray | None = None, kpis: bool = False) -> dict:
        """Simulate ``period`` with the current allocation; stats (+ ``kpis`` arrays [N, S] if asked)."""
        with self._lock:
            done = self._last_step is not None and self._last_step["period"] == period
            if not (done and self.sim.period == period + 1):
                self._expect("step", period, period, period)
                t0 = time.perf_counter()
                self._util_before = self.sim.cell_util.copy()
                rep = self.sim.step(self._snap.shares, halo_util)
                self._halo_util = None if halo_util is None else np.asarray(halo_util, dtype=np.float64).copy()
                self.history.push(rep)
                active = rep.mask
                self._kpis = {k: getattr(rep, k) for k in KPI_FIELDS} | {"mask": rep.mask}
                self._sla_measured = self._sla_measure(rep)
                self._last_step = {"period": period, "cells": len(rep.cell_ids),
                                   "utility_mean": float(rep.utility.mean()),
                                   "r_mean": float(rep.r[active].mean()) if active.any() else None,
                                   "seconds": time.perf_counter() - t0, "sla": self._sla_measured}
                self.checkpoint()
            out = dict(self._last_step)
            if kpis:
                out["kpis"] = self._kpis  # None after a restart that skipped the step
            return out

    def _features(self) -> np.ndarray:
        """z [N, S, 2H+2] of the next allocation: the history with the requirements in force (A1 policies)."""
        req = self._req
        if req is None:  # the catalogue's, or a requirement event's where one is in force (what-if studies)
            return self.history.features(*self.sim.requirements())
        users = self.history.users()[:, :, -1]  # [N, S] the last period's, the best guess of the next
        return self.history.features(req.context_throughput(users, self.sim.demand_per_user_mbps), req.delay_req_ms)

    def _run_scheme(self, mask: np.ndarray) -> np.ndarray:
        if self._scheme is None:
            raise RuntimeError(f"{self.name}: scheme {self.scheme_name!r} has no estimator loaded")
        obs = self._rl_obs(mask) if getattr(self._scheme, "needs_obs", False) else None
        ctx = AllocationContext.of(self.sim, None, self._snap.shares, mask=mask, z=False,
                                   offered=self.scheme_name == "traffic", obs=obs)
        if self._scheme.needs_model:
            weight = self._req.weight if self._req is not None and (self._req.weight != 1.0).any() else None
            ctx = replace(ctx, z=self._features(), weight=weight)
            self._alloc_inputs = {"period": ctx.period, "z": ctx.z, "mask": mask, "weight": weight}
        return np.asarray(self._scheme.allocate(ctx), dtype=np.float64)

    def _rl_obs(self, mask: np.ndarray) -> np.ndarray:
        """[N, 5S] RL observations from the last step's KPIs (slicing/data/features.py, the env's own features)."""
        if self._kpis is None:
            raise RuntimeError(f"{self.name}: no KPI report of the last period (e.g. right after a restart)")
        from slicing.data.features import observations_from_report  # no Ray

        k = self._kpis
        report = SimpleNamespace(cell_ids=self.sim.cell_ids, users=k["users"], prb_util=k["prb_util"],
                                 throughput_mbps=k["throughput_mbps"], mask=k["mask"])
        return observations_from_report(report, mask, self.sim.throughput_req_mbps, self.sim.geometry.nbr_ids,
                                        halo_ids=self.sim.halo_ids, halo_util=self._halo_util)

    def allocate(self, period: int, estimator: tuple[str, Any] | None = None,
                 policies: tuple[str, dict[str, dict]] | None = None, rl: tuple[str, Any] | None = None) -> dict:
        """Shares for ``period`` (= the simulated period + 1 after ``step``); stats. ``policies``: the A1 policies
        ``(version, {id: body})`` to apply first (``set_policies``); ``rl``: the RL checkpoint ``(version, ref)``
        (``set_rl_policy``)."""
        with self._lock:
            if estimator is not None:
                self.set_estimator(*estimator)
            if rl is not None:
                self.set_rl_policy(*rl)
            if policies is not None:
                self.set_policies(*policies)
            if self._last_alloc is not None and self._last_alloc["period"] == period == self._snap.period:
                return dict(self._last_alloc)
            self._expect("allocate", period, period, period - 1)
            t0 = time.perf_counter()
            mask = self.sim.slice_mask()  # [N, S] of ``period``
            warmup = self.scheme_name == "idla" and not self.history.ready
            error = None
            if warmup:
                shares = traffic_proportional(self.sim.demand().offered_mbps, mask)
            else:
                try:
                    shares = self._run_scheme(mask)
                except Exception as err:  # any scheme failure falls back per cell, reported
                    error = f"{type(err).__name__}: {err}"
                    shares = np.full(mask.shape, np.nan)
            shares, ok = self._sanitise(shares, mask)
            if not ok.all():
                good = np.where(mask, self._last_good, 0.0)  # [N, S]
                usable = (good.sum(axis=1) > 0) | ~mask.any(axis=1)  # [N]
                if not usable[~ok].all():
                    good = np.where(usable[:, None], good,
                                    traffic_proportional(self.sim.demand().offered_mbps, mask))
                shares = np.where(ok[:, None], shares, good)
                self._last_good = np.where(ok[:, None], shares, self._last_good)
            else:
                self._last_good = shares
            self._snap = _Snapshot(shares, period, self._model_version, mask)
            z = None if warmup or self._model is None or self._req is None else self._features()
            sla = self._sla_feasibility(mask, z)
            self._last_alloc = {"period": period, "cells": len(mask), "fallback_cells": int((~ok).sum()), "sla": sla,
                                "a1_version": self._a1_version,
                                "warmup": warmup, "error": error, "model_version": self._model_version,
                                "seconds": time.perf_counter() - t0} | self._run_e2e(period, mask)
            self.checkpoint()
            return dict(self._last_alloc)

    def allocation_inputs(self) -> dict[str, Any]:
        """What the estimator-based scheme saw in its last allocation, with the shares that came out of it:
        ``{period, z [N, S, 2H + 2], mask [N, S], weight [N, S] or None, shares [N, S]}`` (memory only: a restart
        forgets it). ``LookupError`` before the first such allocation or when the scheme needs no estimator."""
        with self._lock:
            inputs, snap = self._alloc_inputs, self._snap
            if inputs is None or inputs["period"] != snap.period:
                raise LookupError(f"{self.name}: no estimator-based allocation for period {snap.period}")
            return inputs | {"shares": snap.shares.copy()}

    def grid_oracle(self) -> dict[str, Any]:
        """The exact 0.05-grid oracle (``slicing/optim/oracle.py``: DP over the estimator's values) on the cells and
        features of the last allocation, as a yardstick for it: ``{period, shares [N, S], seconds}`` (the oracle's
        own time). ``slicing bench --shards`` runs it on every shard at once, with the resources IDLA had."""
        from slicing.optim.oracle import dp_oracle, grid_values
        from slicing.optim.schemes import ORACLE_POINTS

        inputs = self.allocation_inputs()
        t0 = time.perf_counter()
        values = grid_values(self._model, inputs["z"], inputs["mask"], points=ORACLE_POINTS)  # [N, S, G]
        if inputs["weight"] is not None:
            values = values * inputs["weight"][:, :, None]
        shares, _ = dp_oracle(values, inputs["mask"])
        return {"period": inputs["period"], "shares": shares, "seconds": time.perf_counter() - t0}

    def _run_e2e(self, period: int, mask: np.ndarray) -> dict[str, Any]:
        """The microopt step for ``period`` (stats for the allocation's answer); nothing before the history is full."""
        if self._e2e is None or not self.history.ready:
            return {}
        t0 = time.perf_counter()
        try:
            res = self._e2e.allocate(self.sim.cell_ids, self.history.users(), mask)
        except Exception as err:  # the RAN shares stand; the last e2e allocation is kept
            return {"e2e_error": f"{type(err).__name__}: {err}"}
        self._e2e_result = res | {"period": period}
        return {"e2e_instances": len(res["group"]), "e2e_infeasible": int((~res["feasible"]).sum()),
                "e2e_clipped": res["clipped"], "e2e_seconds": time.perf_counter() - t0, "e2e_error": None}

    def e2e_allocations(self) -> dict[str, Any] | None:
        """The microopt step's current result: {period, model_version, instances: [{group, slice, snssai,
        transport_mbps, cpu_millicores, traffic_mean, traffic_std, e_beta, feasible}]}; None before the first."""
        res = self._e2e_result
        if res is None or self._e2e is None:
            return None
        rows = [{"group": int(g), "slice": int(j), "snssai": self.sim.snssai[int(j)],
                 "transport_mbps": float(r[0]), "cpu_millicores": float(r[1]), "traffic_mean": float(m),
                 "traffic_std": float(sd), "e_beta": float(e), "feasible": bool(f)}
                for g, j, r, m, sd, e, f in zip(res["group"], res["slice"], res["r"], res["traffic_mean"],
                                                res["traffic_std"], res["e_beta"], res["feasible"], strict=True)]
        return {"period": int(res["period"]), "model_version": self._e2e.version, "instances": rows}

    @staticmethod
    def _sanitise(shares: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(shares zeroed on inactive slices, [N] rows that are finite, >= 0 and sum to <= 1)."""
        if shares.shape != mask.shape:
            return np.zeros(mask.shape), np.zeros(len(mask), dtype=bool)
        x = np.where(mask, shares, 0.0)  # [N, S]
        with np.errstate(invalid="ignore"):
            ok = np.isfinite(x).all(axis=1) & (x >= 0).all(axis=1) & (x.sum(axis=1) <= 1 + _SUM_TOL)
        return np.where(ok[:, None], x, 0.0), ok

    # -- reads ----------------------------------------------------------------------------------------------
    def allocation(self, cell_id: int) -> dict:
        """{cell_id, period, model_version, scheme, slices: [{snssai, share}]} (active slices only)."""
        snap = self._snap
        i = int(cell_id) - self.lo
        if not 0 <= i < self.hi - self.lo:
            raise UnknownCell(f"cell_id: unknown cell {cell_id} ({self.name} holds {self.lo}..{self.hi - 1})")
        slices = [{"snssai": self.sim.snssai[j], "share": float(snap.shares[i, j])}
                  for j in np.flatnonzero(snap.mask[i])]
        return {"cell_id": int(cell_id), "period": snap.period, "model_version": snap.model_version or "none",
                "scheme": self.scheme_name, "slices": slices}

    def history_of(self, cell_id: int, snssai: str) -> dict[str, list[float]]:
        """One (cell, slice)'s users and CQI history, oldest first (what its next allocation sees)."""
        i = int(cell_id) - self.lo
        if not 0 <= i < self.hi - self.lo:
            raise UnknownCell(f"cell_id: unknown cell {cell_id} ({self.name} holds {self.lo}..{self.hi - 1})")
        j = self._snssai[str(snssai).lower()]
        with self._lock:
            return {"users": self.history.users()[i, j].tolist(), "cqi": self.history.cqi()[i, j].tolist()}

    def allocations_array(self) -> np.ndarray:
        """[N, S] current allocation (for period ``info()['alloc_period']``)."""
        return self._snap.shares.copy()

    def allocation_snapshot(self) -> dict:
        """The current allocation of every cell: {period, model_version, shares [N, S], mask [N, S]} (the
        population keeps a few periods of these for bulk reads)."""
        snap = self._snap
        return {"period": snap.period, "model_version": snap.model_version or "none", "shares": snap.shares.copy(),
                "mask": snap.mask.copy()}

    def info(self) -> dict:
        ray = sys.modules.get("ray")  # never imported here just to ask
        node = ray.get_runtime_context().get_node_id() if ray is not None and ray.is_initialized() else "local"
        return {"name": self.name, "lo": self.lo, "hi": self.hi, "period": self.sim.period,
                "alloc_period": self._snap.period, "model_version": self._model_version, "reloads": self._reloads,
                "restored": self.restored, "node_id": node, "pid": os.getpid(), "threads": torch.get_num_threads()}

    # -- KPI reports ----------------------------------------------------------------------------------------
    def ingest(self, records: list[dict] | KpiBatch, dry_run: bool = False) -> int:
        """Replace the newest history entry of each reported (cell, slice) by its users and CQI; returns count.

        Only ``users`` and ``cqi`` enter the estimator's features; ``prb_util``, ``throughput_mbps`` and
        ``delay_ms`` are validated but do not feed back into the simulated radio. ``dry_run`` only validates.
        With a storage path the shard checkpoints before it returns, so records it acknowledged survive its loss.
        """
        batch = parse_records(records)
        if not len(batch):
            return 0
        pos = batch.cell_ids - self.lo  # [M]
        out = (pos < 0) | (pos >= self.hi - self.lo)
        if out.any():
            k = int(np.argmax(out))
            raise FieldError(("records", int(batch.index[k]), "cell_id"),
                             f"unknown cell {batch.cell_ids[k]} ({self.name} holds {self.lo}..{self.hi - 1})")
        col = np.empty(len(batch), dtype=np.int64)
        for k, s in enumerate(batch.snssai):  # per record
            if s not in self._snssai:
                raise FieldError(("records", int(batch.index[k]), "snssai"),
                                 f"unknown S-NSSAI {s!r}; the catalogue has {list(self._snssai)}")
            col[k] = self._snssai[s]
        with self._lock:
            mask = self.sim.slice_mask(max(self.sim.period - 1, 0))  # slices of the reported period
            inactive = ~mask[pos, col]
            if inactive.any():
                k = int(np.argmax(inactive))
                raise FieldError(("records", int(batch.index[k]), "snssai"),
                                 f"slice {batch.snssai[k]} is not active in cell {batch.cell_ids[k]}")
            pair = pos * mask.shape[1] + col
            _, first, counts = np.unique(pair, return_index=True, return_counts=True)
            if (counts > 1).any():
                k = int(first[np.argmax(counts > 1)])
                raise FieldError(("records", int(batch.index[k])), f"(cell_id {batch.cell_ids[k]}, snssai "
                                 f"{batch.snssai[k]}) is reported more than once")
            if dry_run:
                return len(batch)
            state = self.history.state_dict()  # oldest first: [..., -1] is the newest period
            state["users"][pos, col, -1] = batch.values["users"]
            state["cqi"][pos, col, -1] = batch.values["cqi"]
            self.history.load_state_dict(state)
            self.checkpoint()  # acknowledged means durable: the caller's 200 comes after this write
            return len(batch)

    # -- checkpoint / restore ------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        snap = self._snap
        return {"meta": {"format": CHECKPOINT_FORMAT, "fingerprint": self._fingerprint, "lo": self.lo, "hi": self.hi,
                         "scheme": self.scheme_name, "alloc_period": snap.period,
                         "model_version": snap.model_version, "last_step": self._last_step,
                         "last_alloc": self._last_alloc,
                         "a1": {"version": self._a1_version, "policies": self._a1_policies}},
                "sim": self.sim.state_dict(), "history": self.history.state_dict(),
                "alloc": snap.shares, "last_good": self._last_good, "e2e": self._e2e_result,
                "util_before": self._util_before}

    def load_state(self, state: dict[str, Any]) -> None:
        meta = state["meta"]
        expected = {"format": CHECKPOINT_FORMAT, "fingerprint": self._fingerprint, "lo": self.lo, "hi": self.hi,
                    "scheme": self.scheme_name}
        for key, value in expected.items():
            if meta.get(key) != value:
                raise CheckpointMismatch(f"checkpoint {self.name}: {key} is {meta.get(key)!r}, this shard has "
                                         f"{value!r} (use a fresh storage path)")
        self.sim.load_state_dict(state["sim"])
        self.history.load_state_dict(state["history"])
        period = int(meta["alloc_period"])
        self._last_good = np.asarray(state["last_good"], dtype=np.float64)
        self._snap = _Snapshot(np.asarray(state["alloc"], dtype=np.float64), period, meta["model_version"],
                               self.sim.slice_mask(period))
        self._last_step, self._last_alloc = meta["last_step"], meta["last_alloc"]
        held = meta.get("a1") or {}
        self._a1_version = None
        if held.get("version") is not None:
            self.set_policies(held["version"], held.get("policies") or {})
        self._e2e_result = state.get("e2e")
        before = state.get("util_before")
        self._util_before = None if before is None else np.asarray(before, dtype=np.float64)

    def checkpoint(self) -> str | None:
        """Write the full state to the storage (if any); returns the object's path."""
        with self._lock:
            return self._store.save(self.name, self.state()) if self._store else None

    def restore(self) -> bool:
        """Load the stored checkpoint of this cell range, if there is one."""
        with self._lock:
            state = self._store.load(self.name) if self._store else None
            if state is None:
                return False
            self.load_state(state)
            return True
