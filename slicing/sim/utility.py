"""The utility of the slicing problem (IDLA eq. 5), defined once: per cell ``U = sum_{s active} log(1 + r_s)``.

``r`` is a QoS satisfaction in [0, 1]: measured by the simulator, or estimated by the QoS estimator f(x, z)
(``slicing/optim/utility.py`` adds the estimator forms on top of these). Everything that reports a utility (the
simulator's report, the experiment metrics, the RL reward ``sum_log``, the oracle's grid values, the HTTP
service's ``predicted_utility``) calls these two functions.
"""

from __future__ import annotations

import numpy as np


def log1p_terms(f: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``log(1 + f)`` on active slices, 0 elsewhere: ``f[N, S, ...]``, ``mask[N, S]`` -> float64 ``f.shape``."""
    v = np.asarray(f, dtype=np.float64)
    m = np.asarray(mask, dtype=bool)
    if m.shape != v.shape[:2]:
        raise ValueError(f"mask shape {m.shape} does not match values shape {v.shape}")
    m = m.reshape(m.shape + (1,) * (v.ndim - 2))  # broadcast over trailing axes (e.g. the grid)
    return np.where(m, np.log1p(np.where(m, v, 0.0)), 0.0)


def utility(f: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-cell utility ``sum_{s active} log(1 + f_s)``: ``[N, S]`` -> float64 ``[N]``."""
    return log1p_terms(f, mask).sum(axis=1)
