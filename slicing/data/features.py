"""The feature vectors built from KPIs: the QoS estimator's context z, and the per-cell RL observations.

QoS-estimator context (``qos_context``), per (cell, slice), the ``z`` of f(x, z) in IDLA::

    z = [ users(H) oldest..newest | cqi(H) oldest..newest | throughput_req_mbps | delay_req_ms ]   -> 2H + 2 float32

``History.features`` (the runtime, collection, the experiments) and the HTTP service's stateless
``POST /v1/allocate`` (``slicing/serve/allocate.py``) both call it, so they cannot diverge.

RL observations (TL-MADRL style) and the action -> shares mapping, shared by env and inference.

Observation of one cell, per slice s of the catalogue (S = catalogue size), concatenated block by block:

    [ tp_rel(S) | prb_util(S) | users(S) | nbr_load(S) | mask(S) ]   -> 5 * S float32

- ``tp_rel``: achieved per-user throughput / requirement phi*, capped at ``TP_REL_CAP`` (0 on inactive slices);
- ``prb_util``: the slice's fraction of the cell's PRBs used in the last period;
- ``users``: mean active users / ``USERS_SCALE``, capped at ``USERS_CAP``;
- ``nbr_load``: mean over the cell's K strongest interferers of their per-slice PRB utilisation. A neighbour in the
  known set (the env's simulated cells, a shard's own cells) contributes its per-slice ``prb_util``. A neighbour
  outside it contributes its last total utilisation (``halo_util``: a shard's halo exchange) split equally over
  the observing cell's active slices, or 0 when that is not known;
- ``mask``: 1 for the slices active in the period being allocated.

Both ``CellSlicingEnv`` and the runtime's ``rl`` scheme call ``build_observations``, so they cannot diverge.
This module imports no Ray.
"""

from __future__ import annotations

import numpy as np

TP_REL_CAP = 2.0
USERS_SCALE = 10.0
USERS_CAP = 10.0
N_BLOCKS = 5
ACTION_LIMIT = 5.0  # action space Box(-ACTION_LIMIT, ACTION_LIMIT, [S]): logits of the masked softmax


def qos_context(users_history: np.ndarray, cqi_history: np.ndarray, throughput_req_mbps: np.ndarray,
                delay_req_ms: np.ndarray) -> np.ndarray:
    """z [..., 2H+2] float32 from histories [..., H] (oldest first) and requirements broadcastable to [...].

    E.g. a ``History``'s [N, S, H] arrays with requirements [S], or a request's [M, H] rows with requirements [M].
    """
    users = np.asarray(users_history, dtype=np.float32)  # [..., H]
    cqi = np.asarray(cqi_history, dtype=np.float32)  # [..., H]
    h = users.shape[-1]
    lead = np.broadcast_shapes(users.shape[:-1], cqi.shape[:-1], np.shape(throughput_req_mbps),
                               np.shape(delay_req_ms))
    z = np.empty((*lead, 2 * h + 2), dtype=np.float32)  # [..., 2H+2]
    z[..., :h] = users
    z[..., h : 2 * h] = cqi
    z[..., -2] = np.asarray(throughput_req_mbps, dtype=np.float32)
    z[..., -1] = np.asarray(delay_req_ms, dtype=np.float32)
    return z


def obs_dim(n_slices: int) -> int:
    return N_BLOCKS * n_slices


def _lookup(ids: np.ndarray, table_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(positions, found) of ``ids`` in the sorted ``table_ids``."""
    if len(table_ids) == 0:
        return np.zeros(ids.shape, dtype=np.int64), np.zeros(ids.shape, dtype=bool)
    pos = np.clip(np.searchsorted(table_ids, ids), 0, len(table_ids) - 1)
    return pos, table_ids[pos] == ids


def neighbour_load(nbr_ids: np.ndarray, known_ids: np.ndarray, known_prb_util: np.ndarray, mask: np.ndarray,
                   halo_ids: np.ndarray | None = None, halo_util: np.ndarray | None = None) -> np.ndarray:
    """[N, S] mean per-slice PRB utilisation of each row's K neighbours (see module docstring)."""
    nbr = np.asarray(nbr_ids, dtype=np.int64)  # [N, K]
    known_ids = np.asarray(known_ids, dtype=np.int64)
    prb = np.asarray(known_prb_util, dtype=np.float64)  # [M, S]
    pos, found = _lookup(nbr, known_ids)  # [N, K]
    vals = np.where(found[..., None], prb[pos] if len(prb) else 0.0, 0.0)  # [N, K, S]
    if halo_ids is not None and halo_util is not None and len(halo_ids):
        hpos, hfound = _lookup(nbr, np.asarray(halo_ids, dtype=np.int64))
        total = np.where(hfound & ~found, np.asarray(halo_util, dtype=np.float64)[hpos], 0.0)  # [N, K]
        m = np.asarray(mask, dtype=bool)
        split = m / np.maximum(m.sum(axis=1, keepdims=True), 1)  # [N, S]
        vals = vals + total[..., None] * split[:, None, :]
    return vals.mean(axis=1) if nbr.shape[1] else np.zeros(prb.shape[1:], dtype=np.float64)


def build_observations(users: np.ndarray, prb_util: np.ndarray, throughput_mbps: np.ndarray,
                       report_mask: np.ndarray, mask: np.ndarray, throughput_req_mbps: np.ndarray,
                       nbr_load: np.ndarray) -> np.ndarray:
    """[N, 5S] float32 observations from the last period's per-cell KPIs [N, S] (see module docstring).

    ``report_mask``: slices active in the reported period; ``mask``: slices active in the period to allocate.
    """
    rm = np.asarray(report_mask, dtype=bool)
    req = np.asarray(throughput_req_mbps, dtype=np.float64)
    tp = np.where(rm, np.minimum(np.asarray(throughput_mbps, dtype=np.float64) / req, TP_REL_CAP), 0.0)
    util = np.where(rm, np.clip(prb_util, 0.0, 1.0), 0.0)
    usr = np.where(rm, np.minimum(np.asarray(users, dtype=np.float64) / USERS_SCALE, USERS_CAP), 0.0)
    nl = np.clip(np.asarray(nbr_load, dtype=np.float64), 0.0, 1.0)
    obs = np.concatenate([tp, util, usr, nl, np.asarray(mask, dtype=np.float64)], axis=1)
    return np.nan_to_num(obs, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)


def observations_from_report(report, mask: np.ndarray, throughput_req_mbps: np.ndarray, nbr_ids: np.ndarray,
                             rows: np.ndarray | None = None, halo_ids: np.ndarray | None = None,
                             halo_util: np.ndarray | None = None) -> np.ndarray:
    """Observations of ``rows`` (default all) of a ``KpiReport`` (or any object with its fields).

    ``nbr_ids`` [len(rows), K] are the neighbours of those rows; the report's own cells are the known set.
    ``mask`` [len(rows), S] is the slice mask of the period being allocated.
    """
    rows = slice(None) if rows is None else rows
    nl = neighbour_load(nbr_ids, report.cell_ids, report.prb_util, mask, halo_ids, halo_util)
    return build_observations(report.users[rows], report.prb_util[rows], report.throughput_mbps[rows],
                              report.mask[rows], mask, throughput_req_mbps, nl)


def action_to_shares(action: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Masked softmax of logits [N, S] (or [S]) -> shares float64: >= 0, 0 on inactive slices, rows sum <= 1."""
    a = np.asarray(action, dtype=np.float64)
    m = np.asarray(mask, dtype=bool)
    single = a.ndim == 1
    a, m = np.atleast_2d(a), np.atleast_2d(m)
    a = np.clip(np.nan_to_num(a, nan=0.0), -ACTION_LIMIT, ACTION_LIMIT)
    a = np.where(m, a, -np.inf)
    top = np.max(a, axis=1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    e = np.where(m, np.exp(a - top), 0.0)
    total = e.sum(axis=1, keepdims=True)
    x = np.divide(e, total, out=np.zeros_like(e), where=total > 0)
    x = x / np.maximum(x.sum(axis=1, keepdims=True), 1.0)  # guard rounding above 1
    return x[0] if single else x


def shares_to_action(shares: np.ndarray, mask: np.ndarray, floor: float = 1e-3) -> np.ndarray:
    """Inverse of ``action_to_shares``: logits [N, S] in [-ACTION_LIMIT, ACTION_LIMIT] whose masked softmax gives
    ``shares``. Shares below ``floor`` times the largest are raised to that floor; the active logits are centred
    on 0 (the softmax is shift-invariant) and clipped to the action box; inactive slices get 0.

    Divide by ``ACTION_LIMIT`` for the normalised [-1, 1] action an RLModule emits (``normalize_actions=True``).
    """
    x = np.asarray(shares, dtype=np.float64)
    m = np.asarray(mask, dtype=bool)
    single = x.ndim == 1
    x, m = np.atleast_2d(x), np.atleast_2d(m)
    top = np.max(np.where(m, x, 0.0), axis=1, keepdims=True)
    logx = np.log(np.maximum(np.where(m, np.maximum(x, 0.0) / np.maximum(top, 1e-12), 1.0), floor))
    centre = np.where(m, logx, 0.0).sum(axis=1, keepdims=True) / np.maximum(m.sum(axis=1, keepdims=True), 1)
    logits = np.where(m, np.clip(logx - centre, -ACTION_LIMIT, ACTION_LIMIT), 0.0)
    return logits[0] if single else logits
