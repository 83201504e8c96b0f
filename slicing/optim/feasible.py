"""The per-cell feasible set {x >= 0, sum_s x_s <= 1} over the active slices: projection and budget.

Arrays are ``[N, S]`` (cells x slice columns) with a boolean slice mask; inactive entries are always 0.
``project`` and ``enforce_budget`` guarantee ``x.sum(axis=1) <= 1.0`` exactly in float64 (not just up to
rounding): a row whose computed sum exceeds 1 is scaled by ``(1 - 4 S eps) / sum``, which leaves a margin larger
than the rounding error of any summation order over S terms.
"""

from __future__ import annotations

import numpy as np

_EPS = np.finfo(np.float64).eps


def _as_mask(mask: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    m = np.asarray(mask, dtype=bool)
    if m.shape != shape:
        raise ValueError(f"mask shape {m.shape} does not match x shape {shape}")
    return m


def enforce_budget(x: np.ndarray) -> np.ndarray:
    """Scale down (in place) every row of ``x[N, S] >= 0`` whose float64 sum exceeds 1; returns ``x``."""
    if x.size == 0:
        return x
    margin = 1.0 - 4.0 * x.shape[1] * _EPS
    for _ in range(8):
        s = x.sum(axis=1)  # [N]
        bad = s > 1.0
        if not bad.any():
            return x
        x[bad] *= (margin / s[bad])[:, None]  # [n_bad, S]
    raise AssertionError("enforce_budget did not converge")  # unreachable for finite input


def _simplex_rows(v: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Euclidean projection of each row's masked entries onto {x >= 0, sum = 1} (sort-based, vectorised)."""
    n, s = v.shape
    u = -np.sort(-np.where(mask, v, -np.inf), axis=1)  # [n, S] descending, inactive (-inf) last
    css = np.cumsum(np.where(np.isfinite(u), u, 0.0), axis=1)  # [n, S]
    j = np.arange(1, s + 1, dtype=np.float64)  # [S]
    with np.errstate(invalid="ignore"):
        cond = (u - (css - 1.0) / j > 0.0) & (j[None, :] <= mask.sum(axis=1)[:, None])  # [n, S]
    rho = s - np.argmax(cond[:, ::-1], axis=1)  # [n] last index (1-based) where cond holds
    theta = (css[np.arange(n), rho - 1] - 1.0) / rho  # [n]
    return np.where(mask, np.maximum(v - theta[:, None], 0.0), 0.0)  # [n, S]


def project(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Euclidean projection of each row's active entries onto {x >= 0, sum <= 1}; float64 ``[N, S]``.

    A row with ``sum(max(x, 0)) <= 1`` is just clipped at 0 (so a feasible point is returned unchanged);
    otherwise it is projected onto the simplex. Inactive entries are 0; sums are <= 1 exactly.
    """
    v = np.array(x, dtype=np.float64, copy=True)  # [N, S]
    m = _as_mask(mask, v.shape)
    if v.size == 0:
        return v
    v[~m] = 0.0
    out = np.maximum(v, 0.0)  # [N, S]
    over = out.sum(axis=1) > 1.0  # [N]
    if over.any():
        out[over] = _simplex_rows(v[over], m[over])
    return enforce_budget(out)


def fill_slack(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Hand each row's unused budget ``1 - sum x`` to its active slices in proportion to their shares; float64.

    A row with active slices but no share gets the equal share. Inactive entries stay 0; sums are <= 1 exactly.
    This is work conservation: a share is an upper bound on the slice's PRBs, so budget left unallocated is
    capacity no slice may use.
    """
    v = np.maximum(np.array(x, dtype=np.float64, copy=True), 0.0)  # [N, S]
    m = _as_mask(mask, v.shape)
    v[~m] = 0.0
    total = v.sum(axis=1)  # [N]
    active = m.sum(axis=1)  # [N]
    scale = np.divide(1.0, total, out=np.zeros_like(total), where=total > 0)  # [N]
    out = v * scale[:, None]
    empty = (total <= 0) & (active > 0)
    out[empty] = m[empty] / active[empty, None]
    return enforce_budget(out)


def project_simplex(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Euclidean projection of each row's active entries onto the face {x >= 0, sum = 1}; float64 ``[N, S]``.

    Rows without an active slice are all 0. Sums are <= 1 exactly (and = 1 up to rounding otherwise).
    """
    v = np.array(x, dtype=np.float64, copy=True)  # [N, S]
    m = _as_mask(mask, v.shape)
    out = np.zeros_like(v)
    rows = m.any(axis=1)  # [N]
    if rows.any():
        out[rows] = _simplex_rows(v[rows], m[rows])
    return enforce_budget(out)
