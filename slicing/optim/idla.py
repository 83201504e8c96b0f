"""IDLA's allocator (Algorithm 1 of the paper), vectorised over all cells, start points and slices at once.

Per cell c: maximise ``F(x_c) = sum_{s active} log(1 + f(x_cs, z_cs))`` s.t. ``x >= 0``, ``sum_s x_cs <= 1``.
With A1 slice priorities (``slicing/a1.py``) each term is weighted, ``w_cs log(1 + f)``: the table, the gradients
and every utility that picks a candidate use the weighted terms (``weight=None``: all 1, the paper's problem).

Algorithm 1, as run by both methods on tensors [N cells, P starts, S slices] (no Python loop per cell):

1. Start points: x0 = the warm start x*(t-1), or the equal share ("default action") for a row without one;
   P points x0 + eps, eps ~ N(0, start_sigma) from the counter-based RNG (``Stream.IDLA_STARTS``, keyed by the
   global cell id), clipped at 0, inactive slices 0.
2. The Lagrangian gradient method of eq. 15-16, step sizes decaying by ``decay`` per iteration::

       x      <- [x + dx_i * (f'(x) / (1 + f(x)) - lambda)]_+
       lambda <- [lambda - dl_i * (1 - sum_s x_s)]_+

3. Each start's final point is projected onto the feasible set, the start with the highest estimated utility is
   kept; the result is feasible exactly (``feasible.project``: x >= 0, float64 row sums <= 1).

Stopping: a start (row) stops when ``||x(i) - x(i-1)|| < tol`` and ``|lambda(i) - lambda(i-1)| < tol`` (the
lambda condition keeps a row whose x is pinned at 0 while lambda still moves from stopping), the loop when every
row has stopped or at ``max_iter``. Per-row stopping, not the max over the batch, makes a cell's result
independent of the other cells in the batch.

Additions to the paper's text. Measured (before the fill, below) on 20k cells with estimators trained on the
project's simulator and on a synthetic saturating target (``IdlaConfig()`` defaults): the literal method reached
0.9994 resp. 0.989 of the 0.05-grid optimum's total utility, with 0.8 % resp. 37 % of the cells more than 1 % below
it (worst 0.78 / 0.66); with the additions: 1.0002 resp. 1.0018, 0.01 % resp. 0.2 % (worst 0.99 / 0.97). f is
steep and saturating (QoS jumps once a slice's load is served), so log(1 + f) is far from the smooth concave case
the method assumes.

- ``lambda(0)`` = the mean marginal utility of the cell's active slices at the start point, not 0: the
  primal-dual iteration is barely damped on nearly linear utilities, so its oscillation should start small.
- Scale (``IdlaConfig.normalise``): the x step is divided, the lambda step multiplied, by that same value gamma; this is
  the method run on F / gamma (same maximisers), so one pair of step sizes suits cells whose marginal
  utilities differ by orders of magnitude.
- Trust region (``IdlaConfig.trust_region``): every x step is clipped to +-trust_region * decay^i, so the chatter of a
  steep f around its saturation point cannot throw x (and through it lambda) far off.
- Two projections per final point: onto {sum <= 1} and onto {sum = 1} (a row stopped with lambda > 0 should use
  the whole budget, by complementary slackness); the estimated utility picks.
- Work conservation (``IdlaConfig.fill``): the chosen point's unused budget goes to the cell's slices in
  proportion to their shares (``feasible.fill_slack``). Where f has saturated at 1 the estimated utility is
  flat, so the search stops at the smallest shares that reach it and left 26 % of the PRBs unallocated on
  ``scenarios/idla.yaml`` (H1 mean share sum 0.74); a share caps the slice's PRBs, so that budget was lost, and
  it was lost exactly where f is optimistic (docs/idla.md). The fill is free under f and, r being
  non-decreasing in a slice's own share, never lowers the simulator's r of that cell.
- Tabulated method only (``IdlaConfig.dual_candidates``): further candidates from the table, led by the exact dual
  decomposition (``_Table.dual``), which finds the saddle point the iterations aim at directly and bridges
  convex stretches of f; small grid repairs of it close most of the duality gap left by step-shaped f.

Methods (``IdlaConfig.method``):

- ``"autograd"``: f and df/dx from torch autograd at every iteration, on all [N, P, S] points:
  2 network passes x iterations x P per (cell, slice). The reference; ~1k cells/s.
- ``"tabulated"`` (default), the fast path. Features z are fixed during the search, so f is a 1-D function of x
  per (cell, slice): it is tabulated once on ``grid_points`` values of x by ``qos_estimator.tabulate``, which
  computes layer 1's z contribution once per (cell, slice) and then, per grid point, one broadcast add + ReLU
  and the small remaining layers as batched matmuls: ~G network rows per (cell, slice) instead of
  2 x iterations x P. The iterations then read value and slope of the piecewise-linear interpolant of
  log(1 + f) from the table (a gather and ~12 elementwise ops on slice-major [S, N*P] arrays per iteration, rows
  that stopped compacted away). The dual-decomposition candidates (bisection on lambda: ~20 scans of the
  [N, S, G] table) join the projected end points; the best candidate by table utility is polished with
  ``polish_iter`` exact-gradient (autograd) iterations from its lambda, and its exact estimated utility decides
  per cell whether the polished point is kept.

Choosing: ``"tabulated"`` for any real run (~14k cells/s on 2 cores at 100k cells x 4 slices, and the better
optimiser thanks to the dual candidates); ``"autograd"`` to check the fast path or to study the paper's
iteration alone (tests require both to agree within 1 % in total utility on a smooth estimator). Increase
``grid_points`` if f has features narrower than 1 / (grid_points - 1) that matter.

Why one module of ~450 lines (a sixth of it this docstring): the table, the iterations, the candidates and the
polish share private state (``_State``, the ``_Oracle`` protocol) and are one algorithm read top to bottom. The
utility it maximises lives in ``utility.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from slicing.config import IdlaConfig
from slicing.models.qos_estimator import QosEstimator, tabulate
from slicing.optim.baselines import equal_share
from slicing.optim.feasible import fill_slack, project, project_simplex
from slicing.optim.utility import EXACT_CHUNK, estimated_utility_tensor, estimator_features
from slicing.rng import Stream, normal

_DUAL_CHUNK = 8192  # cells per chunk of the dual decomposition's [N, S, G] scans
_GAMMA_FLOOR = 1e-3  # smallest utility scale used to normalise a cell's steps

# Additions to the paper's iteration (module docstring). Constants, not IdlaConfig fields (config.py is not ours).


@dataclass(frozen=True)
class IdlaResult:
    shares: np.ndarray  # [N, S] float64, feasible
    est_utility: np.ndarray  # [N] sum over active slices of log(1 + f(shares)), exact network evaluation
    iterations: int  # Lagrangian iterations run (the slowest start)


# ------------------------------------------------------------------------------------------ exact network


def exact_grad(model: QosEstimator, z_act: torch.Tensor, x_act: torch.Tensor) -> torch.Tensor:
    """d/dx log(1 + f(x, z)) = f'(x) / (1 + f(x)) by autograd: ``[M]``."""
    out = torch.empty(len(x_act), dtype=torch.float32)
    for lo in range(0, len(x_act), EXACT_CHUNK):
        hi = lo + EXACT_CHUNK
        with torch.inference_mode(False), torch.enable_grad():  # callable from inside inference_mode too
            xc = x_act[lo:hi].detach().clone().requires_grad_(True)  # [m]
            total = torch.log1p(model(estimator_features(xc, z_act[lo:hi].clone()))).sum()
            (g,) = torch.autograd.grad(total, xc)
        out[lo:hi] = g
    return out


# ----------------------------------------------------------------------------------- gradient providers


class _Oracle(Protocol):
    """What the iterations need: the slope of log(1 + f) (slice-major ``[S, R]``) and the utility."""

    def row_key(self, cells: torch.Tensor) -> torch.Tensor: ...

    def grad_sr(self, x_sr: torch.Tensor, key: torch.Tensor) -> torch.Tensor: ...

    def utility(self, x: torch.Tensor, cells: torch.Tensor, mask: torch.Tensor) -> torch.Tensor: ...


class _Table:
    """Slope and value of the piecewise-linear interpolant of log(1 + f) on a uniform grid over [0, 1]."""

    def __init__(self, model: QosEstimator, z: torch.Tensor, mask: torch.Tensor, points: int,
                 weight: torch.Tensor | None = None) -> None:
        n, s, _ = z.shape
        self.g = points
        grid = np.linspace(0.0, 1.0, points)
        self.grid = torch.from_numpy(grid).float()  # [G]
        table = torch.zeros((n, s, points), dtype=torch.float32)  # [N, S, G]
        f_act = tabulate(model, z[mask][:, None, :], grid)[:, 0, :]  # [M, G] active pairs only
        table[mask] = torch.log1p(torch.from_numpy(f_act))
        if weight is not None:
            table.mul_(weight[:, :, None])
        self.table = table
        self.value_sr = table.permute(1, 0, 2).contiguous().reshape(-1)  # [S*N*G] slice-major values
        self.pair = torch.arange(n * s, dtype=torch.int64).reshape(n, s)  # [N, S] flat (cell, slice) index
        # d/dx per segment, slice-major [S, N, G-1] so the slice-major iterations read it sequentially
        self.slope = (torch.diff(table, dim=2) * (points - 1)).permute(1, 0, 2).contiguous().reshape(-1)
        self.pair_sr = torch.arange(s * n, dtype=torch.int64).reshape(s, n)  # [S, N] flat (slice, cell) index

    def row_key(self, cells: torch.Tensor) -> torch.Tensor:
        """Offset of each (slice, row)'s segment slopes in ``slope``: ``[S, R]`` (rows of cells ``cells[R]``)."""
        return self.pair_sr[:, cells] * (self.g - 1)  # [S, R]

    def grad_sr(self, x_sr: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        """Interpolant slope at ``x_sr[S, R] >= 0`` (slice-major): ``[S, R]``, a fresh tensor."""
        k = (x_sr * (self.g - 1)).to(torch.int64).clamp_(max=self.g - 2).add_(key)  # [S, R] flat segment
        return self.slope.take(k)

    def utility(self, x: torch.Tensor, cells: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Interpolated ``sum_s log(1 + f)`` at ``x[R, S]`` in [0, 1] (``mask[R, S]`` bool): ``[R]`` float64."""
        pos = x.T.contiguous().mul_(self.g - 1)  # [S, R] slice-major, like the value table
        k = pos.to(torch.int64).clamp_(max=self.g - 2)  # [S, R] left grid index
        idx = self.pair_sr[:, cells] * self.g + k  # [S, R] flat index into value_sr
        v0, v1 = self.value_sr.take(idx), self.value_sr.take(idx + 1)
        vals = (v1 - v0).mul_(pos - k).add_(v0).mul_(mask.T)  # [S, R]
        return vals.double().sum(dim=0)

    def dual(self, mask: torch.Tensor, rounds: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact dual decomposition of the table problem: (candidates ``[N, 4 + 2S, S]``, lambda* ``[N]``).

        For a multiplier lambda every slice maximises its own Lagrangian term ``log(1 + f(x)) - lambda x`` over
        the grid (a global max per slice, so convex stretches of f are bridged as by its concave envelope);
        lambda* is found by bisection so that ``sum_s x_s(lambda)`` crosses 1. Candidates:

        - ``x(lambda*+)`` (sum <= 1);
        - the point on the segment towards ``x(lambda*-)`` with sum exactly 1: for concave tables the exact
          optimum of the interpolant, i.e. the saddle point eq. 15-16 converge to;
        - ``x(lambda*+)`` filled up and ``x(lambda*-)`` trimmed down unit by unit on the grid (``_ascend``,
          ``_descend``): the duality gap of f with steps (a slice's QoS jumps once its load is served) is closed
          by trading grid units between slices, as a knapsack heuristic would;
        - per slice, ``x(lambda*+)`` plus the budget it leaves, and the whole budget (a corner; optimal when
          every f is convex). The caller projects them, which removes what lands on inactive slices.
        """
        n, s, g = self.table.shape
        xg = self.grid  # [G]
        table = self.table.clone()
        table[:, :, 1:].masked_fill_(~mask[:, :, None], -torch.inf)  # inactive: only x = 0
        table[:, :, 0].masked_fill_(~mask, 0.0)

        def response(lam: torch.Tensor) -> torch.Tensor:  # [N] -> [N, S] grid index of the smallest maximiser
            k = torch.empty((n, s), dtype=torch.int64)
            for lo in range(0, n, _DUAL_CHUNK):  # cache-sized chunks: ~2x faster than one pass
                hi = lo + _DUAL_CHUNK
                k[lo:hi] = torch.addcmul(table[lo:hi], lam[lo:hi, None, None], xg, value=-1.0).argmax(dim=2)
            return k

        slope = torch.diff(self.table, dim=2) * (g - 1)  # [N, S, G-1]
        hi = (slope * mask[:, :, None]).amax(dim=(1, 2)).clamp(min=0.0) + 1.0  # [N] sum x(hi) = 0
        lo = torch.zeros(n)
        k_lo = response(lo)  # [N, S]
        done = k_lo.sum(dim=1) <= g - 1  # [N] unconstrained maximisers already fit: lambda* = 0
        hi = torch.where(done, lo, hi)
        for _ in range(rounds):
            mid = 0.5 * (lo + hi)
            over = response(mid).sum(dim=1) > g - 1  # [N]
            lo = torch.where(over, mid, lo)
            hi = torch.where(over, hi, mid)
        k_hi, k_lo = response(hi), response(lo)  # [N, S] sum <= G-1 units, sum > G-1 (unless done)
        x_hi, x_lo = xg[k_hi], xg[k_lo]  # [N, S]
        s_hi, s_lo = x_hi.sum(dim=1), x_lo.sum(dim=1)
        t = ((1.0 - s_hi) / (s_lo - s_hi).clamp(min=1e-12)).clamp(0.0, 1.0)  # [N]
        t = torch.where(done, torch.zeros_like(t), t)
        x_fill = x_hi + t[:, None] * (x_lo - x_hi)  # [N, S]
        # unit-by-unit repairs on the grid: fill x(lambda*+) up, trim x(lambda*-) down (knapsack-like f)
        x_up = xg[self._ascend(table, k_hi)]  # [N, S]
        x_down = xg[self._descend(table, k_lo)]  # [N, S]
        eye = torch.eye(s)[None]  # [1, S, S]
        x_one = x_hi[:, None, :] + eye * (1.0 - s_hi).clamp(min=0.0)[:, None, None]  # [N, S, S]
        corners = eye.expand(n, s, s)  # [N, S, S] the whole budget to one slice
        pts = torch.stack([x_hi, x_fill, x_up, x_down], dim=1)  # [N, 4, S]
        return torch.cat([pts, x_one, corners], dim=1), hi

    @staticmethod
    def _ascend(table: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """From grid units ``k[N, S]``, add one unit at a time to the slice that gains most, while the budget
        lasts and the gain is positive. ``table[N, S, G]`` has -inf beyond x = 0 on inactive slices."""
        g = table.shape[2]
        k = k.clone()
        rows = torch.nonzero(k.sum(dim=1) < g - 1).squeeze(1)  # [n] rows with budget left
        tab, kk = table[rows], k[rows]  # [n, S, G], [n, S]
        while len(rows):
            nxt = tab.gather(2, (kk + 1).clamp(max=g - 1)[:, :, None])[:, :, 0]  # [n, S]
            gain = (nxt - tab.gather(2, kk[:, :, None])[:, :, 0]).masked_fill_(kk >= g - 1, -torch.inf)
            best, who = gain.nan_to_num_(nan=-torch.inf).max(dim=1)  # [n]
            go = best > 0  # [n]
            kk.scatter_add_(1, who[:, None], go.to(torch.int64)[:, None])
            go &= kk.sum(dim=1) < g - 1
            if not bool(go.all()):  # finished rows leave the working set
                k[rows] = kk
                rows, tab, kk = rows[go], tab[go], kk[go]
        return k

    @staticmethod
    def _descend(table: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """From grid units ``k[N, S]`` over budget, take one unit at a time from the slice that loses least."""
        g = table.shape[2]
        k = k.clone()
        rows = torch.nonzero(k.sum(dim=1) > g - 1).squeeze(1)  # [n] rows over budget
        tab, kk = table[rows], k[rows]  # [n, S, G], [n, S]
        while len(rows):
            prev = tab.gather(2, (kk - 1).clamp(min=0)[:, :, None])[:, :, 0]  # [n, S]
            loss = (tab.gather(2, kk[:, :, None])[:, :, 0] - prev).masked_fill_(kk <= 0, torch.inf)
            who = loss.nan_to_num_(nan=torch.inf).argmin(dim=1)  # [n]
            kk.scatter_add_(1, who[:, None], torch.full((len(rows), 1), -1, dtype=torch.int64))
            over = kk.sum(dim=1) > g - 1  # [n]
            if not bool(over.all()):
                k[rows] = kk
                rows, tab, kk = rows[over], tab[over], kk[over]
        return k


class _Exact:
    """f'(x) / (1 + f(x)) and log(1 + f) straight from the network (autograd)."""

    def __init__(self, model: QosEstimator, z: torch.Tensor, mask: torch.Tensor,
                 weight: torch.Tensor | None = None) -> None:
        self.model, self.z, self.mask, self.weight = model, z, mask, weight

    def row_key(self, cells: torch.Tensor) -> torch.Tensor:
        return cells

    def grad_sr(self, x_sr: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
        x = x_sr.T  # [R, S]
        m = self.mask[cells]  # [R, S]
        g = torch.zeros(x.shape)  # [R, S]
        g[m] = exact_grad(self.model, self.z[cells][m], x[m])
        if self.weight is not None:
            g.mul_(self.weight[cells])
        return g.T.contiguous()  # [S, R]

    def utility(self, x: torch.Tensor, cells: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        w = None if self.weight is None else self.weight[cells]
        return estimated_utility_tensor(self.model, self.z[cells], mask, x, w)


# ---------------------------------------------------------------------------------------- the iterations


@dataclass
class _State:
    x: torch.Tensor  # [R, S] float32 iterate
    lam: torch.Tensor  # [R] float32 multiplier
    it: torch.Tensor  # [R] int64 iterations done
    gamma: torch.Tensor  # [R] float32 utility scale gamma (x step divided by it, lambda step multiplied)


def _start_points(warm: np.ndarray | None, mask: np.ndarray, cfg: IdlaConfig, seed: int, period: int,
                  cell_ids: np.ndarray) -> np.ndarray:
    """x0 + eps, clipped at 0, inactive slices 0: float32 ``[N, P, S]``."""
    n, s = mask.shape
    x0 = equal_share(mask)  # [N, S] default action
    if warm is not None:
        w = np.where(mask, np.maximum(np.nan_to_num(np.asarray(warm, dtype=np.float64)), 0.0), 0.0)  # [N, S]
        has_warm = w.sum(axis=1) > 0  # [N]
        x0[has_warm] = w[has_warm]
    eps = normal(seed, Stream.IDLA_STARTS, period, cell_ids, cfg.starts * s).reshape(n, cfg.starts, s)
    x = np.maximum(x0[:, None, :] + cfg.start_sigma * eps, 0.0) * mask[:, None, :]  # [N, P, S]
    return x.astype(np.float32)


def _initial_state(oracle: _Oracle, x0: torch.Tensor, cells: torch.Tensor, mask_r: torch.Tensor,
                   normalise: bool) -> _State:
    """lambda(0) = mean marginal utility of the active slices at x0; the same value is the cell's scale."""
    g0 = oracle.grad_sr(x0.T.contiguous(), oracle.row_key(cells)).T * mask_r  # [R, S]
    lam = (g0.sum(dim=1) / mask_r.sum(dim=1).clamp(min=1)).clamp(min=0.0)  # [R]
    gamma = lam.clamp(min=_GAMMA_FLOOR) if normalise else torch.ones_like(lam)  # [R]
    return _State(x=x0, lam=lam, it=torch.zeros(len(x0), dtype=torch.int64), gamma=gamma)


def _lagrangian(oracle: _Oracle, state: _State, cells: torch.Tensor, cfg: IdlaConfig, iters: int,
                tol: float) -> int:
    """Run eq. 15-16 on all rows of ``state`` (in place) until each row stops or ``iters``; returns loop count.

    Row r's step sizes are ``step * decay^(it_r + i)`` (a row resumes its schedule where it stopped). A row that
    stops is frozen by zeroing its step sizes (x, lambda stay bit-identical) and dropped from the working arrays
    once a quarter of them are frozen. Inactive slices stay at 0 without a mask: their slope is 0, so the step
    is -lambda dx <= 0.
    """
    live = torch.arange(len(state.x))  # [R'] rows in the working arrays
    x, lam = state.x.T.contiguous(), state.lam.clone()  # [S, R'] slice-major: row sums are vector adds
    key = oracle.row_key(cells)  # [S, R'] or [R']
    base = torch.tensor(cfg.decay, dtype=torch.float64).pow(state.it).float()  # [R'] schedule position
    cx = cfg.step_x * base / state.gamma  # [R'] primal step at i = 0 (0 once the row stopped)
    cl = cfg.step_lambda * base * state.gamma  # [R'] dual step at i = 0 (0 once the row stopped)
    lim = cfg.trust_region * base  # [R'] trust region at i = 0
    frozen = torch.zeros(len(live), dtype=torch.bool)  # [R'] stopped, still in the working arrays
    done_at = torch.full((len(live),), iters, dtype=torch.int64)  # [R'] iterations run by each row
    loops = 0
    for i in range(iters):
        loops += 1
        d = cfg.decay**i
        step = oracle.grad_sr(x, key).sub_(lam).mul_(cx * d)  # [S, R']
        if cfg.trust_region > 0:
            bound = lim * d  # [R']
            step = step.clamp_(min=-bound, max=bound)
        x_new = step.add_(x).clamp_(min=0.0)  # [S, R']  (x >= 0: a zero step leaves it bit-identical)
        lam_new = (x_new.sum(dim=0) - 1.0).mul_(cl * d).add_(lam).clamp_(min=0.0)  # [R']
        moved = (x_new - x).square_().sum(dim=0)  # [R'] squared step length
        new = (moved < tol * tol) & ((lam_new - lam).abs_() < tol) & ~frozen  # [R'] rows stopping now
        x, lam = x_new, lam_new
        if bool(new.any()):
            frozen |= new
            done_at[new] = i + 1
            cx, cl = cx.masked_fill(new, 0.0), cl.masked_fill(new, 0.0)  # freeze: zero steps from now on
            n_frozen = int(frozen.sum())
            if 4 * n_frozen >= len(live):  # compact (amortised): write the stopped rows back, drop them
                rows = live[frozen]
                state.x[rows], state.lam[rows] = x[:, frozen].T, lam[frozen]
                state.it[rows] += done_at[frozen]
                keep = ~frozen
                live, x, lam, cx, cl, lim = live[keep], x[:, keep], lam[keep], cx[keep], cl[keep], lim[keep]
                key, done_at, frozen = key[..., keep], done_at[keep], frozen[keep]
                if len(live) == 0:
                    break
    done_at = torch.where(frozen, done_at, torch.full_like(done_at, loops))
    state.x[live], state.lam[live], state.it[live] = x.T, lam, state.it[live] + done_at
    return loops


def _candidates(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The two feasible versions of ``x[R, S]``: projections onto {sum <= 1} and onto {sum = 1}: ``[2, R, S]``.

    An iterate stopped with lambda > 0 but sum x < 1 (a dual oscillation frozen by the decaying steps) is
    pushed onto the budget face by the second one, as complementary slackness asks; the estimated utility
    decides which one a cell keeps.
    """
    xd, m = x.double().numpy(), mask.numpy()
    return torch.from_numpy(np.stack([project(xd, m), project_simplex(xd, m)]))  # [2, R, S] float64


def _choose(oracle: _Oracle, state: _State, mask: torch.Tensor, n: int, p: int,
            extra: _State | None) -> tuple[torch.Tensor, _State]:
    """Each cell's best feasible candidate by estimated utility: (x ``[N, S]`` float64, its state).

    Candidates: the two projections of each start's final point (2P per cell), then ``extra`` (E per cell).
    """
    s = mask.shape[1]
    mask_r = mask.repeat_interleave(p, dim=0)  # [N*P, S]
    cands = _candidates(state.x, mask_r).reshape(2, n, p, s).permute(1, 0, 2, 3).reshape(n, 2 * p, s)
    lam = state.lam.reshape(n, 1, p).expand(n, 2, p).reshape(n, 2 * p)  # [N, 2P]
    it = state.it.reshape(n, 1, p).expand(n, 2, p).reshape(n, 2 * p)
    gam = state.gamma.reshape(n, 1, p).expand(n, 2, p).reshape(n, 2 * p)
    if extra is not None:  # [N, E, S] further candidates per cell, already feasible
        cands = torch.cat([cands, extra.x.double()], dim=1)  # [N, C, S]
        lam = torch.cat([lam, extra.lam], dim=1)
        it = torch.cat([it, extra.it], dim=1)
        gam = torch.cat([gam, extra.gamma], dim=1)
    c = cands.shape[1]
    util = oracle.utility(cands.reshape(n * c, s).float(), torch.arange(n).repeat_interleave(c),
                          mask.repeat_interleave(c, dim=0)).reshape(n, c)  # [N, C]
    pick = util.argmax(dim=1)  # [N] first best on ties
    rows = torch.arange(n)
    chosen = _State(x=cands[rows, pick].float(), lam=lam[rows, pick], it=it[rows, pick], gamma=gam[rows, pick])
    return cands[rows, pick], chosen


def _best_exact(model: QosEstimator, z: torch.Tensor, mask: torch.Tensor, x: torch.Tensor,
                weight: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The better of the two projections of ``x[N, S]`` by exact estimated utility: (shares, utility ``[N]``)."""
    cands = _candidates(x, mask)  # [2, N, S]
    util = torch.stack([estimated_utility_tensor(model, z, mask, c.float(), weight) for c in cands])  # [2, N]
    which = util.argmax(dim=0)  # [N]
    rows = torch.arange(len(x))
    return cands[which, rows], util[which, rows]


def allocate_idla(
    model: QosEstimator,
    z: np.ndarray | torch.Tensor,
    mask: np.ndarray,
    warm: np.ndarray | None,
    cfg: IdlaConfig,
    seed: int,
    period: int,
    cell_ids: np.ndarray,
    weight: np.ndarray | None = None,
) -> IdlaResult:
    """IDLA's allocation for N cells at once: ``z[N, S, 12]``, ``mask[N, S]`` bool, ``warm[N, S]`` = x*(t-1).

    ``cell_ids[N]`` (global ids) key the start-point noise, so a cell's result does not depend on the batch.
    ``weight[N, S]`` > 0 weights each slice's term (A1 slice priorities); None is the paper's unweighted utility.
    """
    zt = torch.as_tensor(z).detach().to(torch.float32)  # [N, S, 12]
    m_np = np.asarray(mask, dtype=bool)  # [N, S]
    n, s = m_np.shape
    if zt.shape[:2] != (n, s):
        raise ValueError(f"allocate_idla: z {tuple(zt.shape)} does not match mask {m_np.shape}")
    if n == 0:
        return IdlaResult(shares=np.zeros((0, s)), est_utility=np.zeros(0), iterations=0)
    p = cfg.starts
    mt = torch.from_numpy(m_np)  # [N, S]
    wt = None
    if weight is not None:
        w_np = np.asarray(weight, dtype=np.float64)
        if w_np.shape != (n, s) or not np.isfinite(w_np).all() or (w_np <= 0).any():
            raise ValueError(f"allocate_idla: weight must be finite and > 0 with shape {(n, s)}, got {w_np.shape}")
        wt = torch.from_numpy(w_np).float()  # [N, S]
    cells = torch.arange(n).repeat_interleave(p)  # [N*P] cell of each start row
    mask_r = mt[cells]  # [N*P, S]
    x0 = torch.from_numpy(_start_points(warm, m_np, cfg, seed, period, np.asarray(cell_ids))).reshape(n * p, s)

    model.eval()
    oracle: _Oracle
    extra = None
    if cfg.method == "autograd":
        oracle = _Exact(model, zt, mt, wt)
    else:
        oracle = table = _Table(model, zt, mt, cfg.grid_points, wt)
        if cfg.dual_candidates:
            xd, ld = table.dual(mt)  # [N, E, S], [N]
            e = xd.shape[1]
            xd = project(xd.reshape(e * n, s).double().numpy(), m_np.repeat(e, axis=0))  # exact sums <= 1
            extra = _State(x=torch.from_numpy(xd).reshape(n, e, s), lam=ld[:, None].expand(n, e),
                           it=torch.zeros((n, e), dtype=torch.int64), gamma=torch.ones((n, e)))
    state = _initial_state(oracle, x0, cells, mask_r.float(), cfg.normalise)
    loops = _lagrangian(oracle, state, cells, cfg, cfg.max_iter, cfg.tol)
    if extra is not None:  # candidates that were not iterated: a polish uses the most decayed steps
        extra.it.fill_(loops)
        extra.gamma = state.gamma.reshape(n, p)[:, :1].expand(n, extra.x.shape[1])
    shares, chosen = _choose(oracle, state, mt, n, p, extra)  # [N, S] float64 feasible
    util = estimated_utility_tensor(model, zt, mt, shares.float(), wt)  # [N]

    if cfg.method == "tabulated" and cfg.polish_iter > 0:
        _lagrangian(_Exact(model, zt, mt, wt), chosen, torch.arange(n), cfg, cfg.polish_iter, tol=0.0)
        polished, util_p = _best_exact(model, zt, mt, chosen.x, wt)  # [N, S], [N]
        better = util_p > util  # [N] keep the unpolished point unless polishing helped
        shares = torch.where(better[:, None], polished, shares)
        util = torch.where(better, util_p, util)

    out = shares.numpy()
    if cfg.fill:
        filled = fill_slack(out, m_np)  # [N, S]
        if (filled != out).any():
            out = filled
            util = estimated_utility_tensor(model, zt, mt, torch.from_numpy(out).float(), wt)
    return IdlaResult(shares=out, est_utility=util.numpy(), iterations=loops)
