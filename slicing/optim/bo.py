"""Atlas and Atlas+ (MicroOpt paper, section VI-A2, after Liu et al., "Atlas", CoNEXT 2022): a Bayesian model of
the QoS degradation beta(r), and Bayesian optimisation with Thompson sampling under a Lagrangian relaxation.

Per slice instance (one BO loop each; the baseline is not vectorised), on the normalised box u = r / r_max in
[0, 1]^K:

1. ``initial`` scrambled-Sobol points are evaluated: beta(r) from the slice model;
2. each iteration fits a BoTorch ``SingleTaskGP`` (GPyTorch, hyper-parameters by marginal likelihood) to the
   observations of logit(beta) (beta clipped to [1e-4, 1 - 1e-4]: the logit makes the steep step of beta near the
   threshold easier for a stationary kernel), draws one joint posterior sample on ``candidates`` fresh Sobol points
   (Thompson sampling), and evaluates the candidate minimising the sampled Lagrangian
   eta^T r + lambda (beta_sample(r) - beta_thresh);
3. lambda <- [lambda + step (beta_observed - beta_thresh)]^+ (dual ascent on the observations);
4. the answer is the cheapest observation with beta <= beta_thresh (else the one of lowest beta, infeasible).

What beta is observed: Atlas assumes constant traffic through the interval, the peak of the predicted slots
(``traffic="peak"``), and observes P(q <= q_thresh) there; Atlas+ (the MicroOpt authors' variant) observes the
E[beta] of the predicted distribution (``traffic="distribution"``). Both observe the exact expectation on the model
(normal CDF), as if the simulator of the original Atlas were run long enough to make its measurement noise
negligible; the GP still gets a small fixed noise floor for numerical stability. The reported ``e_beta`` is always
the exact E[beta] on the full predicted distribution, so Atlas's over- or under-allocation shows.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from pydantic import Field

from slicing.config import Strict
from slicing.optim.degradation import model_e_beta, strict_e_beta

QosModel = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
_CLIP = 1e-4


class AtlasSettings(Strict):
    """One BO loop per instance (defaults ours: a budget at which the loop has settled on the analytic model)."""

    initial: int = Field(default=8, ge=2, le=1000, description="Sobol points before the first GP fit")
    iterations: int = Field(default=40, ge=1, le=10_000, description="BO evaluations after the initial points")
    candidates: int = Field(default=512, ge=16, le=100_000, description="Sobol candidates per Thompson sample")
    lambda_init: float = Field(default=5.0, ge=0, le=1e6, description="initial Lagrange multiplier")
    lambda_step: float = Field(default=10.0, ge=0, le=1e6, description="dual ascent step on (beta - beta_thresh)")
    noise: float = Field(default=1e-4, gt=0, le=1, description="GP observation noise variance (logit scale)")
    traffic: Literal["peak", "distribution"] = Field(default="peak", description="peak: Atlas (constant peak "
                                                                                 "traffic); distribution: Atlas+")
    seed: int = Field(default=0, ge=0, lt=2**31, description="seed of the Sobol points and Thompson samples")


@dataclass
class AtlasResult:
    r: np.ndarray  # [I, K]
    e_beta: np.ndarray  # [I] exact on the full distribution
    objective: np.ndarray  # [I]
    feasible: np.ndarray  # [I] an observation met beta_thresh (in the method's own view of traffic)
    evaluations: int
    history: list[list[float]] = field(default_factory=list)  # per instance: best feasible objective so far


def _beta(qos: QosModel, x: torch.Tensor, r: torch.Tensor, q_thresh: float) -> torch.Tensor:
    """[N] exact E[beta] of N allocations r [N, K] for one instance's traffic x [T]."""
    with torch.no_grad():
        xx = x.expand(len(r), -1)
        mu, sigma = qos(xx, r)
        return strict_e_beta(mu, sigma, xx, q_thresh)


def _one(qos: QosModel, x: torch.Tensor, q_thresh: float, beta_thresh: float, eta: np.ndarray,
         r_max: np.ndarray, s: AtlasSettings, seed: int) -> tuple[np.ndarray, bool, list[float]]:
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP
    from gpytorch.mlls import ExactMarginalLogLikelihood
    from torch.quasirandom import SobolEngine

    k = len(eta)
    dt = torch.float64
    rmax, eta_t = torch.as_tensor(r_max, dtype=dt), torch.as_tensor(eta, dtype=dt)
    sobol = SobolEngine(k, scramble=True, seed=seed)
    torch.manual_seed(seed)
    u = sobol.draw(s.initial, dtype=dt)  # [n, K]
    beta = _beta(qos, x, (u * rmax).float(), q_thresh).double()
    lam = s.lambda_init
    history: list[float] = []
    for _ in range(s.iterations):
        y = torch.logit(beta.clamp(_CLIP, 1 - _CLIP))[:, None]
        gp = SingleTaskGP(u, y, train_Yvar=torch.full_like(y, s.noise))
        # a failed fit keeps the prior hyper-parameters; the loop goes on. Jitter and input-scaling notices of
        # gpytorch/BoTorch are expected on a few dozen logit observations and say nothing to a user.
        with contextlib.suppress(Exception), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit_gpytorch_mll(ExactMarginalLogLikelihood(gp.likelihood, gp))
        cand = sobol.draw(s.candidates, dtype=dt)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sample = gp.posterior(cand).rsample(torch.Size([1]))[0, :, 0]  # [C] one joint Thompson draw
        acq = (cand * rmax) @ eta_t + lam * (torch.sigmoid(sample) - beta_thresh)
        pick = cand[int(torch.argmin(acq))][None, :]
        b_new = _beta(qos, x, (pick * rmax).float(), q_thresh).double()
        u, beta = torch.cat([u, pick]), torch.cat([beta, b_new])
        lam = max(0.0, lam + s.lambda_step * (float(b_new) - beta_thresh))
        obj = (u * rmax) @ eta_t
        ok = beta <= beta_thresh
        history.append(float(obj[ok].min()) if ok.any() else float("nan"))
    obj = (u * rmax) @ eta_t
    ok = beta <= beta_thresh
    best = int(torch.argmin(torch.where(ok, obj, torch.inf))) if ok.any() else int(torch.argmin(beta))
    return (u[best] * rmax).numpy(), bool(ok.any()), history


def atlas(qos: QosModel, traffic: np.ndarray, q_thresh: np.ndarray | float, beta_thresh: np.ndarray | float,
          eta: np.ndarray, r_max: np.ndarray, settings: AtlasSettings | None = None) -> AtlasResult:
    """Atlas (``settings.traffic="peak"``) or Atlas+ (``"distribution"``) for every row of ``traffic`` [I, T]."""
    s = settings or AtlasSettings()
    x_np = np.asarray(traffic, dtype=np.float64)
    if x_np.ndim != 2 or not np.isfinite(x_np).all() or (x_np < 0).any() or (x_np.sum(axis=1) <= 0).any():
        raise ValueError("traffic: expected [instances, slots] finite values >= 0 with some traffic per row")
    n = len(x_np)
    q = np.broadcast_to(np.asarray(q_thresh, dtype=np.float64), (n,))
    b = np.broadcast_to(np.asarray(beta_thresh, dtype=np.float64), (n,))
    if (q <= 0).any():
        raise ValueError("q_thresh: must be > 0")
    if not ((b > 0) & (b < 1)).all():
        raise ValueError("beta_thresh: must be in (0, 1)")
    eta, r_max = np.asarray(eta, dtype=np.float64), np.asarray(r_max, dtype=np.float64)
    if eta.shape != r_max.shape or not (eta > 0).all() or not (r_max > 0).all():
        raise ValueError("eta and r_max: expected [K] positive values each")
    rows, feasible, history = [], [], []
    for i in range(n):
        seen = x_np[i].max(keepdims=True) if s.traffic == "peak" else x_np[i]
        r, ok, hist = _one(qos, torch.as_tensor(seen, dtype=torch.float32)[None, :], float(q[i]), float(b[i]), eta,
                           r_max, s, s.seed + i)
        rows.append(r)
        feasible.append(ok)
        history.append(hist)
    r_all = np.stack(rows)
    e_beta = model_e_beta(qos, x_np, r_all, q)
    return AtlasResult(r=r_all, e_beta=e_beta, objective=r_all @ eta, feasible=np.array(feasible),
                       evaluations=s.initial + s.iterations, history=history)
