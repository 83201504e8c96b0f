"""The one utility function of the allocation problem: per cell, ``U(x) = sum_{s active} w_s log(1 + f_s)``.

The weights ``w`` are 1 (IDLA eq. 5) unless A1 slice SLA policies set slice priorities (``slicing/a1.py``).

``f`` is either a measured QoS satisfaction r or the QoS estimator's f(x, z). Two forms, one definition each:

- numpy, on given values: ``log1p_terms(f, mask)`` and ``utility(f, mask) -> [N]`` in ``slicing/sim/utility.py``
  (the simulator reports the utility of measured r with them, and it sits below this layer).
- estimator, on shares: ``estimated_utility(model, z, mask, shares) -> [N]`` float64 (numpy in and out), and
  ``estimated_utility_tensor`` / ``estimated_log1p_f`` on torch tensors (what IDLA's search calls).

Float order of the estimator form (kept from the allocator, which picks candidates by it): f and log(1 + f) in
float32 on the active (cell, slice) pairs only, in chunks of ``EXACT_CHUNK`` rows; the per-cell sum in float64 in
slice order. Every caller (IDLA, the oracle, the benchmark, the sweeps, the HTTP service) reports this number.
"""

from __future__ import annotations

import numpy as np
import torch

from slicing.models.qos_estimator import QosEstimator

EXACT_CHUNK = 262_144  # rows per network pass


def estimator_features(x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """The estimator's input rows ``[x | z]``: ``x[M]``, ``z[M, 12]`` -> ``[M, 13]``."""
    return torch.cat([x[:, None], z], dim=1)  # [M, 13]


def estimated_log1p_f(model: QosEstimator, z_act: torch.Tensor, x_act: torch.Tensor) -> torch.Tensor:
    """log(1 + f(x, z)) for M (cell, slice) pairs: ``z_act[M, 12]``, ``x_act[M]`` -> float32 ``[M]`` (no grad)."""
    out = torch.empty(len(x_act), dtype=torch.float32)
    with torch.inference_mode():
        for lo in range(0, len(x_act), EXACT_CHUNK):
            hi = lo + EXACT_CHUNK
            out[lo:hi] = torch.log1p(model(estimator_features(x_act[lo:hi], z_act[lo:hi])))
    return out


def estimated_utility_tensor(model: QosEstimator, z: torch.Tensor, mask: torch.Tensor,
                             x: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """``sum_{s active} w_s log(1 + f(x_s, z_s))`` per row: ``z[R, S, 12]``, ``mask[R, S]``, ``x[R, S]``, optional
    slice weights ``weight[R, S]`` (A1 slice priorities; default 1) -> float64 ``[R]``."""
    vals = torch.zeros(x.shape, dtype=torch.float32)  # [R, S]
    vals[mask] = estimated_log1p_f(model, z[mask], x[mask].float())
    if weight is not None:
        vals.mul_(weight)
    return vals.double().sum(dim=1)


def estimated_utility(model: QosEstimator, z: np.ndarray, mask: np.ndarray, shares: np.ndarray) -> np.ndarray:
    """[N] float64 estimated utility of ``shares[N, S]`` given ``z[N, S, 12]`` and ``mask[N, S]`` (numpy)."""
    zt = torch.as_tensor(np.asarray(z)).to(torch.float32)  # [N, S, 12]
    mt = torch.from_numpy(np.asarray(mask, dtype=bool))  # [N, S]
    xt = torch.as_tensor(np.asarray(shares)).to(torch.float32)  # [N, S]
    if zt.shape[:2] != mt.shape or xt.shape != mt.shape:
        raise ValueError(f"estimated_utility: z {tuple(zt.shape)}, mask {tuple(mt.shape)} and shares "
                         f"{tuple(xt.shape)} do not match")
    return estimated_utility_tensor(model, zt, mt, xt).numpy()
