"""Why IDLA's probability of full QoS satisfaction is not the highest here: the measurements (issue 15, item 2).

``satisfaction_breakdown(result)`` reads an ``EvaluationResult``'s traces (every cell, slice and period of H1 and
H2, per scheme) and reports, per scheme and phase:

- ``p_at_least``: P(r >= theta) for several thresholds (is the ranking an artefact of the r = 1 threshold?);
- ``mean_r`` and ``mean_log_utility`` (what IDLA maximises: sum log(1 + r));
- ``shortfall``: among the unsatisfied (r < 0.999), the median and 90th percentile of 1 - r (near misses or
  large misses?);
- ``per_slice``: P(r >= 0.999) and mean r per slice of the catalogue (which slices does each scheme satisfy?);
- ``estimator`` (when the run recorded it, ``evaluate(..., estimate=True)``): the estimator's error at the shares
  each scheme applied, split by the true r: MAE on the satisfied and the unsatisfied samples, the bias
  (estimated minus true) on the unsatisfied, and the share of the unsatisfied the estimator called satisfied
  (estimate >= 0.95). Does IDLA leave slices short because the estimator says they are fine?
"""

from __future__ import annotations

from typing import Any

import numpy as np

from slicing.experiments.idla import EvaluationResult

THRESHOLDS = (0.9, 0.95, 0.99, 0.999)
SATISFIED = 0.999


def _estimator(r: np.ndarray, est: np.ndarray, mask: np.ndarray) -> dict[str, Any]:
    v, e = r[mask], est[mask]
    sat = v >= SATISFIED
    err = e - v
    return {"mae": round(float(np.abs(err).mean()), 4),
            "mae_satisfied": round(float(np.abs(err[sat]).mean()), 4) if sat.any() else None,
            "mae_unsatisfied": round(float(np.abs(err[~sat]).mean()), 4) if (~sat).any() else None,
            "bias_unsatisfied": round(float(err[~sat].mean()), 4) if (~sat).any() else None,
            "unsatisfied_called_satisfied": round(float((e[~sat] >= 0.95).mean()), 4) if (~sat).any() else None}


def _phase(r: np.ndarray, mask: np.ndarray, slice_ids: list[int], thresholds: tuple[float, ...]) -> dict[str, Any]:
    v = r[mask]
    short = 1.0 - v[v < SATISFIED]
    per_slice = {}
    for j, sid in enumerate(slice_ids):
        rj = r[..., j][mask[..., j]]
        if rj.size:
            per_slice[str(sid)] = {"p_satisfied": round(float((rj >= SATISFIED).mean()), 4),
                                   "mean_r": round(float(rj.mean()), 4), "samples": int(rj.size)}
    return {"p_at_least": {str(t): round(float((v >= t).mean()), 4) for t in thresholds},
            "mean_r": round(float(v.mean()), 4),
            "mean_log_utility": round(float(np.log1p(v).mean()), 4),
            "shortfall": {"unsatisfied": round(float(short.size / max(v.size, 1)), 4),
                          "median": round(float(np.median(short)), 4) if short.size else 0.0,
                          "p90": round(float(np.quantile(short, 0.9)), 4) if short.size else 0.0},
            "per_slice": per_slice}


def satisfaction_breakdown(result: EvaluationResult, thresholds: tuple[float, ...] = THRESHOLDS) -> dict[str, Any]:
    """{scheme: {"H1": {...}, "H2": {...}}} (see the module docstring)."""
    split = result.h1_end - result.h0_end
    slice_ids = [int(s.id) for s in result.scenario.slices]
    out: dict[str, Any] = {}
    for name, tr in result.traces.items():
        r1, m1, _ = tr.arrays(0, split)
        r2, m2, _ = tr.arrays(split)
        out[name] = {"H1": _phase(r1, m1, slice_ids, thresholds), "H2": _phase(r2, m2, slice_ids, thresholds)}
        if tr.est and len(tr.est) == len(tr.r):
            est = np.stack(tr.est)
            out[name]["H1"]["estimator"] = _estimator(r1, est[:split], m1)
            out[name]["H2"]["estimator"] = _estimator(r2, est[split:], m2)
    return out
