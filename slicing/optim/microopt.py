"""MicroOpt (paper 001, section IV-B, Algorithm 1): the least normalised resource that keeps every e2e slice's QoS
degradation within its threshold, by primal-dual optimisation on a differentiable Gaussian slice model.

Problem (eq. 2), for slice instances i with traffic x_i(t) over the interval's slots and resources r_i in R^K::

    min_r  sum_i eta^T r_i   s.t.  E[beta_i(r_i)] <= beta_thresh_i  (all i),   sum_i r_i <= R  (per group),
    0 <= r_i <= r_max

with beta from ``degradation.py``. Lagrangian (eq. 6): L = sum_i eta^T r_i + sum_i lambda_i (E[beta_i] -
beta_thresh_i) + sum_k mu_k (sum_i r_i,k - R_k). Algorithm 1, vectorised over every instance at once:

- inner loop (``inner_steps``): minimise the *surrogate* Lagrangian over r, where the indicator 1[q <= q_thresh]
  is the sigmoid s(rho (q_thresh - q)) and q = mu + sigma eps uses ``samples`` reparameterised standard-normal
  draws (fixed for the run, shared by all instances and slots, so the surrogate is a smooth function of r); Adam
  steps on the normalised u = r / r_max, projected onto the box [0, 1] (the paper's [r - alpha_1 grad]^+ plus the
  upper bound);
- outer loop (``outer_steps``): lambda_i <- [lambda_i + alpha_2 (E[beta_i] - beta_thresh_i)]^+ on the *strict*
  E[beta] (Monte Carlo with ``strict_samples`` draws per slot, fresh each outer step; multiplicatively by default,
  see below), mu_k <- [mu_k + alpha_3
  (sum_i r_i,k - R_k) / R_k]^+; LB = max(LB, L(r, lambda, mu)) with the strict E[beta], UB = min over iterates of
  the objective of the best feasible allocation found so far; stop when (UB - LB) / UB <= ``eps_gap`` (after at
  least ``min_outer_steps``) or after ``outer_steps``. On a non-convex model with an inexact inner loop, L(r, lambda,
  mu) at the inner loop's end is an estimate of the dual function, not a certified bound: LB may exceed UB (an
  inner loop that ended where the strict E[beta] is above its threshold); the stop then waits for a gap in
  [0, eps_gap].
- returned: per instance, the best strictly feasible iterate (lowest eta^T r among iterates whose exact E[beta],
  the normal CDF without sampling noise, is <= beta_thresh); if none was feasible, the iterate with the lowest
  E[beta] (r_max if every iterate had E[beta] = 1) and ``feasible = False``.

Deviations from Algorithm 1. The multiplier step: the paper's additive [lambda + alpha_2 (beta - beta_thresh)]^+
(``lambda_update="additive"``) swings bang-bang between "no resource" and "too much" when beta_thresh is large
(0.3), because E[beta] lives in [0, 1]: on the analytic test model it ended 30-75 % above the brute-force optimum at
(q_thresh 3, beta_thresh 0.3) with the step that suits beta_thresh 0.1. The default is its exponentiated-gradient
form lambda exp(alpha_2 (beta - beta_thresh) / beta_thresh) (stays >= 0 like the projection, step relative to the
threshold), which came within 1 % of the brute-force optimum at every threshold tried. For speed at thousands of
instances per call: the paper re-initialises r at
random at every outer step; we warm-start each inner loop from the previous r (one random start near the box's
middle at the beginning). The paper's loop conditions read "while gap > eps_1 or tau_1 < tau_1,max"; we stop at
whichever comes first. Where the model's cost matters (one forward of the 16-wide network for I x T rows per
inner step), the eps samples cost nothing more: mu and sigma are computed once per step and the samples only enter
the sigmoid.

Ablations (paper Fig. 9), ``mode``: ``distribution`` (the method), ``mean`` (MicroOpt-0sigma: q = mu) and
``mean_minus_2sigma`` (q = mu - 2 sigma) change what the optimiser believes; the reported ``e_beta`` is always the
exact E[beta] of the full distribution (normal CDF), so an ablation's violation shows. Pure torch; no Ray.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from pydantic import Field

from slicing.config import Strict
from slicing.optim.degradation import MODES, QosMode, strict_e_beta, surrogate_e_beta
from slicing.sim.e2e import truncated_normal

QosModel = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


class MicroOptSettings(Strict):
    """Hyper-parameters of Algorithm 1 (names after the paper's; defaults ours, tuned on the analytic model)."""

    rho: float = Field(default=4.0, gt=0, le=1e4, description="sigmoid sharpness rho (per Mbit/s)")
    samples: int = Field(default=16, ge=1, le=10_000, description="reparameterised eps draws of the surrogate")
    strict_samples: int = Field(default=64, ge=1, le=100_000, description="Monte Carlo draws per slot of the "
                                                                            "strict E[beta] (outer loop)")
    inner_steps: int = Field(default=20, ge=1, le=100_000, description="tau_2,max: inner gradient steps")
    outer_steps: int = Field(default=15, ge=1, le=10_000, description="tau_1,max: outer (multiplier) steps")
    min_outer_steps: int = Field(default=4, ge=1, le=10_000, description="outer steps before the gap may stop")
    lr_r: float = Field(default=0.03, gt=0, le=10, description="alpha_1: Adam step on r / r_max")
    lr_lambda: float = Field(default=0.7, gt=0, le=1e6, description="alpha_2: QoS multiplier step")
    lr_mu: float = Field(default=1.0, gt=0, le=1e6, description="alpha_3: capacity multiplier step (per unit of "
                                                                "relative excess)")
    lambda_update: Literal["additive", "multiplicative"] = Field(
        default="multiplicative", description="additive: the paper's [lambda + alpha_2 (beta - beta_thresh)]^+; "
                                              "multiplicative: lambda exp(alpha_2 (beta - beta_thresh) / "
                                              "beta_thresh), scale-free (see module docstring)")
    lambda_init: float = Field(default=2.0, ge=0, le=1e6, description="initial QoS multipliers")
    eps_gap: float = Field(default=1e-3, gt=0, le=1, description="epsilon_1: relative duality gap to stop at")
    init: float = Field(default=0.6, gt=0, le=1, description="initial r / r_max (plus +-init_jitter)")
    init_jitter: float = Field(default=0.1, ge=0, le=0.5, description="uniform jitter of the initial r / r_max")
    mode: QosMode = Field(default="distribution", description="distribution | mean (0-sigma ablation) | "
                                                              "mean_minus_2sigma (2-sigma ablation)")
    seed: int = Field(default=0, ge=0, lt=2**63, description="seed of the initial point and the eps draws")


@dataclass
class MicroOptResult:
    r: np.ndarray  # [I, K] best feasible allocation per instance
    e_beta: np.ndarray  # [I] exact E[beta] of r on the full distribution
    objective: np.ndarray  # [I] eta^T r
    feasible: np.ndarray  # [I] a strictly feasible iterate was found
    lower_bound: float
    upper_bound: float
    gap: float
    outer_iterations: int
    inner_steps: int


def traffic_points(mean: np.ndarray, std: np.ndarray, low: float, high: float, n: int) -> np.ndarray:
    """[I, n] equal-probability points (midpoint quantiles) of N(mean, std) truncated to [low, high]: a traffic
    forecast as the slots MicroOpt averages over."""
    mean = np.atleast_1d(np.asarray(mean, dtype=np.float64))
    std = np.broadcast_to(np.asarray(std, dtype=np.float64), mean.shape)
    if (std < 0).any() or not np.isfinite(mean).all():
        raise ValueError("traffic: mean must be finite and std >= 0")
    u = (np.arange(n) + 0.5) / n  # [n]
    return truncated_normal(u[None, :], mean[:, None], std[:, None], low, high)  # [I, n]


def _vector(name: str, value: np.ndarray | float, n: int) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    try:
        return np.broadcast_to(arr, (n,)).astype(np.float64)
    except ValueError:
        raise ValueError(f"{name}: expected a scalar or [{n}] values, got shape {arr.shape}") from None


def _check(traffic: np.ndarray, q_thresh: np.ndarray, beta_thresh: np.ndarray, eta: np.ndarray,
           r_max: np.ndarray) -> None:
    if traffic.ndim != 2 or traffic.shape[1] < 1:
        raise ValueError(f"traffic: expected shape [instances, slots], got {traffic.shape}")
    if not np.isfinite(traffic).all() or (traffic < 0).any():
        raise ValueError("traffic: every value must be finite and >= 0")
    if (traffic.sum(axis=1) <= 0).any():
        raise ValueError("traffic: every instance needs some traffic (a row of zeros has no E[beta])")
    if not np.isfinite(q_thresh).all() or (q_thresh <= 0).any():
        raise ValueError("q_thresh: must be finite and > 0")
    if not ((beta_thresh > 0) & (beta_thresh < 1)).all():
        raise ValueError("beta_thresh: must be in (0, 1)")
    if eta.ndim != 1 or not (eta > 0).all() or r_max.shape != eta.shape or not (r_max > 0).all():
        raise ValueError(f"eta and r_max: expected [K] positive values each, got {eta.shape} and {r_max.shape}")


def microopt(qos: QosModel, traffic: np.ndarray, q_thresh: np.ndarray | float, beta_thresh: np.ndarray | float,
             eta: np.ndarray, r_max: np.ndarray, capacity: np.ndarray | None = None, group: np.ndarray | None = None,
             settings: MicroOptSettings | None = None) -> MicroOptResult:
    """Algorithm 1 over every instance in one batched run (see module docstring).

    ``traffic`` [I, T] users/s (the predicted slots; ``traffic_points`` turns a (mean, std) forecast into them);
    ``q_thresh``, ``beta_thresh`` scalars or [I]; ``eta``, ``r_max`` [K]; ``capacity`` None (uncoupled), [K] (one
    budget for all instances) or [G, K] with ``group`` [I] in 0..G-1.
    """
    s = settings or MicroOptSettings()
    if s.mode not in MODES:
        raise ValueError(f"mode: must be one of {MODES}")
    x_np = np.asarray(traffic, dtype=np.float64)
    n_i = x_np.shape[0] if x_np.ndim == 2 else 0
    q_np, b_np = _vector("q_thresh", q_thresh, n_i), _vector("beta_thresh", beta_thresh, n_i)
    eta_np, rmax_np = np.asarray(eta, dtype=np.float64), np.asarray(r_max, dtype=np.float64)
    _check(x_np, q_np, b_np, eta_np, rmax_np)
    n_k = len(eta_np)
    grp, cap = _capacity(capacity, group, n_i, n_k)

    dt = torch.float32
    x, qt, bt = (torch.as_tensor(a, dtype=dt) for a in (x_np, q_np, b_np))
    eta_t, rmax_t = torch.as_tensor(eta_np, dtype=dt), torch.as_tensor(rmax_np, dtype=dt)
    gen = torch.Generator().manual_seed(int(s.seed))
    eps = torch.randn(s.samples, generator=gen, dtype=dt)
    u = (s.init + s.init_jitter * (2 * torch.rand(n_i, n_k, generator=gen, dtype=dt) - 1)).clamp(0, 1)
    u.requires_grad_(True)
    opt = torch.optim.Adam([u], lr=s.lr_r)
    lam = torch.full((n_i,), float(s.lambda_init), dtype=dt)
    n_g = 0 if cap is None else cap.shape[0]
    mu_cap = torch.zeros(n_g, n_k, dtype=dt)
    grp_t = None if grp is None else torch.as_tensor(grp, dtype=torch.long)
    cap_t = None if cap is None else torch.as_tensor(cap, dtype=dt)

    best_r = torch.zeros(n_i, n_k, dtype=dt)
    best_obj = torch.full((n_i,), float("inf"), dtype=dt)
    low_beta = torch.full((n_i,), float("inf"), dtype=dt)
    low_r = torch.zeros(n_i, n_k, dtype=dt)
    lb, ub, steps, outer = -float("inf"), float("inf"), 0, 0

    def group_sums(r: torch.Tensor) -> torch.Tensor:  # [G, K]
        assert grp_t is not None
        return torch.zeros(n_g, n_k, dtype=dt).index_add_(0, grp_t, r)

    for outer in range(1, s.outer_steps + 1):
        for _ in range(s.inner_steps):
            r = u * rmax_t
            mu, sigma = qos(x, r)
            beta_hat = surrogate_e_beta(mu, sigma, x, qt, eps, s.rho, s.mode)  # [I]
            loss = (r @ eta_t).sum() + (lam * (beta_hat - bt)).sum()
            if cap_t is not None:
                loss = loss + (mu_cap * (group_sums(r) - cap_t) / cap_t).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                u.clamp_(0.0, 1.0)
            steps += 1
        with torch.no_grad():
            r = u * rmax_t
            mu, sigma = qos(x, r)
            e_strict = torch.randn(*mu.shape, s.strict_samples, generator=gen, dtype=dt)
            beta = strict_e_beta(mu, sigma, x, qt, e_strict, s.mode)  # [I] Monte Carlo: the multipliers' signal
            # feasibility of an iterate: the same strict E[beta] without sampling noise (exact normal CDF) in mode
            # distribution; the ablations' deterministic belief otherwise
            beta_sel = strict_e_beta(mu, sigma, x, qt) if s.mode == "distribution" else beta
            obj = r @ eta_t  # [I]
            lagr = float(obj.sum() + (lam * (beta - bt)).sum())
            ok = beta_sel <= bt
            if cap_t is not None:
                excess = group_sums(r) - cap_t  # [G, K]
                lagr += float((mu_cap * excess / cap_t).sum())
                ok &= (excess <= 1e-6 * cap_t).all(dim=1)[grp_t]
                mu_cap = (mu_cap + s.lr_mu * excess / cap_t).clamp_min(0.0)
            better = ok & (obj < best_obj)
            best_r[better], best_obj[better] = r[better], obj[better]
            lower = beta_sel < low_beta
            low_r[lower], low_beta[lower] = r[lower], beta_sel[lower]
            lb = max(lb, lagr)
            if torch.isfinite(best_obj).all():
                ub = min(ub, float(best_obj.sum()))
            if s.lambda_update == "additive":
                lam = (lam + s.lr_lambda * (beta - bt)).clamp_min(0.0)
            else:
                lam = lam * torch.exp((s.lr_lambda * (beta - bt) / bt).clamp(-3.0, 3.0))
        if outer >= s.min_outer_steps and np.isfinite(ub) and ub > 0 and 0.0 <= (ub - lb) / ub <= s.eps_gap:
            break

    feasible = torch.isfinite(best_obj)
    # no feasible iterate: the iterate of lowest E[beta], or the whole box when none got below 1 (a belief that no
    # allocation can meet, e.g. the 2-sigma ablation at high traffic): the most the instance can be given
    fallback = torch.where((low_beta < 1.0)[:, None], low_r, rmax_t.expand(n_i, n_k))
    r_out = torch.where(feasible[:, None], best_r, fallback)
    if cap_t is not None:  # per-instance bests come from different iterates: check each group's budget again
        over = ((group_sums(r_out) - cap_t) > 1e-6 * cap_t).any(dim=1)  # [G]
        if over.any():
            scale = (cap_t / group_sums(r_out).clamp_min(1e-9)).clamp(max=1.0).min(dim=1).values  # [G]
            r_out = r_out * torch.where(over, scale, torch.ones_like(scale))[grp_t][:, None]
    with torch.no_grad():
        mu, sigma = qos(x, r_out)
        e_exact = strict_e_beta(mu, sigma, x, qt)  # exact, full distribution
    r_np = r_out.double().numpy()
    gap = (ub - lb) / ub if np.isfinite(ub) and ub > 0 else float("inf")
    return MicroOptResult(r=r_np, e_beta=e_exact.double().numpy(), objective=r_np @ eta_np,
                          feasible=feasible.numpy(),
                          lower_bound=float(lb), upper_bound=float(ub), gap=float(gap), outer_iterations=outer,
                          inner_steps=steps)


def _capacity(capacity: np.ndarray | None, group: np.ndarray | None, n_i: int,
              n_k: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(group [I], capacity [G, K]) or (None, None) when uncoupled."""
    if capacity is None:
        if group is not None:
            raise ValueError("group: given without capacity")
        return None, None
    cap = np.asarray(capacity, dtype=np.float64)
    if cap.ndim == 1:
        cap = cap[None, :]
    if cap.ndim != 2 or cap.shape[1] != n_k or not (cap > 0).all() or not np.isfinite(cap).all():
        raise ValueError(f"capacity: expected [{n_k}] or [G, {n_k}] positive finite values, got shape {cap.shape}")
    grp = np.zeros(n_i, dtype=np.int64) if group is None else np.asarray(group, dtype=np.int64)
    if grp.shape != (n_i,) or (grp < 0).any() or (grp >= cap.shape[0]).any():
        raise ValueError(f"group: expected [{n_i}] integers in [0, {cap.shape[0]})")
    return grp, cap
