"""Stateless allocation (``POST /v1/allocate``): every cell of a request in ONE call of the scheme.

Arrays are padded to the request's largest slice count with a slice mask. The estimator's context is
``z[N, S, 12] = [users_history, cqi_history, throughput_req, delay_req]``, built by
``slicing.data.features.qos_context`` (the function ``History.features`` uses); the ``traffic`` scheme's current
offered traffic is ``users_history[-1] * throughput_req``. IDLA has no warm start here (equal shares, the paper's
default action, period 0); its start-point noise is keyed by the cell id (the integer itself for digit-only ids,
else a 63-bit hash of the string), so a cell's answer does not depend on the other cells of the request. Shares
are projected onto {x >= 0, sum <= 1} once more (a no-op for the schemes, which guarantee it) and mapped to
TS 28.541 RRM policy ratios (``slicing/optim/rrm.py``). ``predicted_utility`` is the estimator's
sum over active slices of log(1 + f(x, z)), for every scheme.

Scheme ``rl`` (``rl_shares``): the request's slices fill the policy's slice slots in order (a cell may not have
more slices than the policy was trained with); the observation is built by
``slicing.data.features.build_observations`` from ``users_history[-1]`` and each slice's ``last_period``
(throughput, PRB use, neighbours' PRB use), and all cells go through one batched forward pass.
``model_version`` is then the checkpoint's weight hash.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from slicing.config import HISTORY, IdlaConfig
from slicing.data.features import build_observations, qos_context
from slicing.models.qos_estimator import QosEstimator
from slicing.optim.feasible import project
from slicing.optim.rrm import rrm_policy_ratios
from slicing.optim.schemes import AllocationContext, make_scheme
from slicing.optim.utility import estimator_features
from slicing.serve.errors import invalid, unavailable
from slicing.serve.estimators import Estimators
from slicing.serve.models import AllocateRequest
from slicing.serve.settings import ServiceSettings
from slicing.sim.utility import utility


def cell_key(cell_id: str) -> int:
    """Integer key of a request's cell id for IDLA's counter-based start-point noise."""
    if cell_id.isdigit() and len(cell_id) <= 18:
        return int(cell_id)
    return int.from_bytes(hashlib.blake2b(cell_id.encode(), digest_size=8).digest(), "little") >> 1


def allocate(req: AllocateRequest, est: Estimators, settings: ServiceSettings, idla: IdlaConfig) -> dict:
    """The response of POST /v1/allocate as plain data (all cells in one vectorised call)."""
    model = est.model
    if model is None:
        raise unavailable("estimator not loaded yet", settings.retry_after_s)
    cells = req.cells
    n = len(cells)
    counts = np.fromiter((len(c.slices) for c in cells), dtype=np.int64, count=n)  # [N]
    s = int(counts.max())
    mask = np.arange(s)[None, :] < counts[:, None]  # [N, S]
    flat = [sl for c in cells for sl in c.slices]  # row-major over the mask's True entries
    users = np.array([sl.users_history for sl in flat], dtype=np.float32).reshape(-1, HISTORY)  # [M, H]
    cqi = np.array([sl.cqi_history for sl in flat], dtype=np.float32).reshape(-1, HISTORY)  # [M, H]
    req_tp = np.array([sl.throughput_req_mbps for sl in flat], dtype=np.float32)  # [M]
    req_dl = np.array([sl.delay_req_ms for sl in flat], dtype=np.float32)  # [M]
    z = np.zeros((n, s, 2 * HISTORY + 2), dtype=np.float32)  # [N, S, 12]
    z[mask] = qos_context(users, cqi, req_tp, req_dl)  # [M, 12]
    offered = np.zeros((n, s), dtype=np.float64)  # [N, S]
    offered[mask] = users[:, -1].astype(np.float64) * req_tp
    keys = np.array([cell_key(c.cell_id) for c in cells], dtype=np.int64)  # [N]

    version = model.version
    if req.scheme == "rl":
        shares, version = rl_shares(req, est, settings, mask, users[:, -1], req_tp)
    else:
        scheme = make_scheme(req.scheme, model, idla, seed=settings.seed)
        ctx = AllocationContext(period=0, cell_ids=keys, mask=mask, z=z, offered_mbps=offered, warm=None)
        shares = scheme.allocate(ctx)
    shares = project(shares, mask)  # [N, S] float64, x >= 0, row sums <= 1 exactly
    predicted = utility(estimate(model, z, mask, shares), mask)  # [N]
    rrm = rrm_policy_ratios(shares, mask)

    sh, mx, mn, dd = (a[mask].tolist() for a in (shares, rrm.max_ratio, rrm.min_ratio, rrm.dedicated_ratio))
    allocations, k = [], 0
    for i, c in enumerate(cells):
        out = []
        for sl in c.slices:
            out.append({"snssai": sl.snssai, "share": sh[k],
                        "rrm_policy": {"max_ratio": mx[k], "min_ratio": mn[k], "dedicated_ratio": dd[k]}})
            k += 1
        allocations.append({"cell_id": c.cell_id, "predicted_utility": float(predicted[i]), "slices": out})
    return {"model_version": version, "allocations": allocations}


def estimate(model: QosEstimator, z: np.ndarray, mask: np.ndarray, shares: np.ndarray) -> np.ndarray:
    """[N, S] float64 estimated QoS f(x, z) of the active slices (0 elsewhere).

    f in float32, then ``utility`` takes log(1 + f) in float64: the numbers this endpoint has always reported
    (``slicing.optim.utility.estimated_utility`` takes the log in float32, as IDLA's search does).
    """
    x = torch.from_numpy(shares[mask].astype(np.float32))  # [M]
    with torch.inference_mode():
        f = model(estimator_features(x, torch.from_numpy(z[mask]))).numpy().astype(np.float64)  # [M]
    out = np.zeros(mask.shape)  # [N, S]
    out[mask] = f
    return out


def rl_shares(req: AllocateRequest, est: Estimators, settings: ServiceSettings, mask: np.ndarray,
              users_now: np.ndarray, req_tp: np.ndarray) -> tuple[np.ndarray, str]:
    """[N, S] shares of the RL policy (one batched forward pass) and its version. See the module docstring."""
    for i, c in enumerate(req.cells):
        for j, sl in enumerate(c.slices):
            if sl.last_period is None:
                raise invalid(("cells", i, "slices", j, "last_period"),
                              "required when scheme is 'rl' (the policy observes the last period's throughput and "
                              "PRB use)")
    policy = est.rl_policy
    if policy is None:
        if settings.rl_checkpoint is None:
            raise invalid(("scheme",), "scheme 'rl' is not enabled on this service: set SLICING_RL_CHECKPOINT to a "
                                       "`slicing train-rl` checkpoint, or push one (slicing models push DIR)")
        if est.rl_error is not None:
            raise invalid(("scheme",), f"scheme 'rl' unavailable: the RL checkpoint failed to load ({est.rl_error})")
        raise unavailable("RL policy loading", settings.retry_after_s)
    n, s = mask.shape
    slots = policy.n_slices
    for i, c in enumerate(req.cells):
        if len(c.slices) > slots:
            raise invalid(("cells", i, "slices"), f"{len(c.slices)} slices; the RL policy was trained with at most "
                                                  f"{slots} slices per cell")
    last = [sl.last_period for c in req.cells for sl in c.slices]  # row-major over the mask, all set (above)
    full = np.zeros((n, slots), dtype=bool)  # [N, slots]
    full[:, :s] = mask

    def grid(values: np.ndarray) -> np.ndarray:  # [M] -> [N, slots]
        out = np.zeros((n, slots), dtype=np.float64)
        out[full] = values
        return out

    tp = grid(np.array([lp.throughput_mbps for lp in last]))
    util = grid(np.array([lp.prb_util for lp in last]))
    nbr = grid(np.array([lp.nbr_prb_util for lp in last]))
    users = grid(users_now.astype(np.float64))
    req_grid = np.where(full, grid(req_tp.astype(np.float64)), 1.0)
    obs = build_observations(users, util, tp, full, full, req_grid, nbr)  # [N, 5 * slots]
    shares = policy.allocate(obs, full)  # groups: contiguous blocks of the request's rows
    return shares[:, :s], policy.version
