"""IDLA's allocator (Algorithm 1 of the paper), vectorised over all cells, start points and slices at once.

Per cell c: maximise ``F(x_c) = sum_{s active} log(1 + f(x_cs, z_cs))`` s.t. ``x >= 0``, ``sum_s x_cs <= 1``.
With A1 slice priorities (``slicing/a1.py``) each term is weighted, ``w_cs log(1 + f)``: the table, the gradients
and every utility that picks a candidate use the weighted terms (``weight=None``: all 1, the paper's problem).

Algorithm 1, as run by both methods on tensors [N cells, P starts, S slices] (no Python loop per cell; in the
tabulated method on the cells that ``lambda_tol`` below does not settle):

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
project's simulator and on a synthetic saturating target (the defaults of then: 41 grid points, before lambda_tol
and the local search): the literal method reached 0.9994 resp. 0.989 of the 0.05-grid optimum's total utility,
with 0.8 % resp. 37 % of the cells more than 1 % below it (worst 0.78 / 0.66); with the additions: 1.0002 resp.
1.0018, 0.01 % resp. 0.2 % (worst 0.99 / 0.97). f is steep and saturating (QoS jumps once a slice's load is
served), so log(1 + f) is far from the smooth concave case the method assumes.

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
- Tabulated, with the dual candidates: cells already solved (``IdlaConfig.lambda_tol``). A cell whose slices all
  reach marginal utilities below lambda_tol at shares that fit the budget (lambda* <= lambda_tol) takes the best
  of its dual candidates and skips the search (start points, iterations, polish, local search). By weak duality
  it is then at most lambda_tol below the table's optimum (``_Table.dual``; tested). With the bench estimator
  98-99 % of the cells are such (every slice nearly satisfied, f ~ 0.99); they shared 1.4 of the 25.4 units the
  local search added on 50k cells, so skipping them costs ~2e-5 of the total utility and 3/4 of the time.
- Tabulated: exact local search (``IdlaConfig.refine``, ``local_search.py``) from the chosen point: moves of half
  a grid step, then halves of that, between the cell's slices, kept only if the network's own log(1 + f) rises.
  It finds what the table's interpolation cannot see between grid points.

Methods (``IdlaConfig.method``):

- ``"autograd"``: f and df/dx from torch autograd at every iteration, on all [N, P, S] points:
  2 network passes x iterations x P per (cell, slice). The reference; ~1k cells/s.
- ``"tabulated"`` (default), the fast path. Features z are fixed during the search, so f is a 1-D function of x
  per (cell, slice): it is tabulated once on ``grid_points`` values of x by ``qos_estimator.tabulate``, which
  computes layer 1's z contribution once per (cell, slice) and then, per grid point, one broadcast add + ReLU
  and the small remaining layers as batched matmuls: ~G network rows per (cell, slice) instead of
  2 x iterations x P. The default G = 21 is the 0.05 grid of the exact oracle (``oracle.py``), so the dual sees
  every point the oracle does. The dual decomposition (geometric bisection on lambda, ~12 scans of the [N, S, G]
  table, only for the cells lambda_tol does not settle) gives every cell its candidates; the searched cells add
  their start points and iterations, which read value and slope of the piecewise-linear interpolant of
  log(1 + f) from the table (a gather and ~12 elementwise ops on slice-major [S, N*P] arrays per iteration, rows
  that stopped compacted away). The best candidate by table utility is polished with ``polish_iter``
  exact-gradient (autograd) iterations from its lambda (kept where the exact utility rises), then refined by the
  exact local search.

Choosing: ``"tabulated"`` for any real run (docs/idla.md "The benchmark": 0.7 to 0.9 s per 50k cells x 4 slices
on one core with the bench's estimator, at 1.0002-1.0003 of the 0.05-grid oracle's utility); ``"autograd"`` to
check the fast path or to study the paper's iteration alone (tests require both to agree within 1 % in total
utility on a smooth estimator). ``lambda_tol=0`` searches every cell (3.3x the bench's round for +1.6e-5 of
utility). Increase ``grid_points`` if f has features narrower than 1 / (grid_points - 1) that matter.

Why one module of ~550 lines (a sixth of it this docstring): the table, the iterations, the candidates and the
polish share private state (``_State``, the ``_Oracle`` protocol) and are one algorithm read top to bottom. The
exact local search (``local_search.py``) needs only the network; the utility it maximises lives in
``utility.py``.
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
from slicing.optim.local_search import refine
from slicing.optim.utility import EXACT_CHUNK, estimated_utility_tensor, estimator_features
from slicing.rng import Stream, normal

_DUAL_CHUNK = 8192  # cells per chunk of the dual decomposition's [N, S, G] scans
_DUAL_ROUNDS = 12  # geometric bisection rounds on lambda in [hi 2^-24, hi], hi = the steepest chord
_DUAL_OCTAVES = 24  # lambda* / hi was 2.6e-5 .. 0.4 (median 1e-4) on 50k of the bench's cells
_GAMMA_FLOOR = 1e-3  # smallest utility scale used to normalise a cell's steps

# Additions to the paper's iteration (module docstring). Constants, not IdlaConfig fields (config.py is not ours).


@dataclass(frozen=True)
class IdlaResult:
    shares: np.ndarray  # [N, S] float64, feasible
    est_utility: np.ndarray  # [N] sum over active slices of log(1 + f(shares)), exact network evaluation
    iterations: int  # Lagrangian iterations run (the slowest start; 0 if lambda_tol settled every cell)


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
        pos = (x.T * (self.g - 1)).contiguous()  # [S, R] slice-major, like the value table (x left as it is)
        k = pos.to(torch.int64).clamp_(max=self.g - 2)  # [S, R] left grid index
        idx = self.pair_sr[:, cells] * self.g + k  # [S, R] flat index into value_sr
        v0, v1 = self.value_sr.take(idx), self.value_sr.take(idx + 1)
        vals = (v1 - v0).mul_(pos - k).add_(v0).mul_(mask.T)  # [S, R]
        return vals.double().sum(dim=0)

    def dual(self, mask: torch.Tensor, tol: float = 0.0,
             rounds: int = _DUAL_ROUNDS) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Exact dual decomposition of the table problem: (candidates ``[N, 4 + 2S, S]``, their table utility
        ``[N, 4 + 2S]`` float64, lambda* ``[N]``).

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

        ``tol`` > 0: a cell where ``x(tol)`` already fits the budget (lambda* <= tol: every slice is nearly
        satisfied, its marginal utility below ``tol``) is not bisected; ``x(tol)`` stands for both ``x(lambda*+)``
        and ``x(lambda*-)``, and ``tol`` is returned as its lambda. By weak duality, for every feasible y,
        ``U(y) <= U(x(tol)) + tol (1 - sum x(tol))``: its candidates (``x(tol)`` filled up by ``_ascend`` is one)
        are at most ``tol`` below the table's optimum.
        """
        n, s, g = self.table.shape
        xg = self.grid  # [G]
        table = self.table.clone()
        table[:, :, 1:].masked_fill_(~mask[:, :, None], -torch.inf)  # inactive: only x = 0
        table[:, :, 0].masked_fill_(~mask, 0.0)

        def response(tab: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:  # [R] -> [R, S] smallest maximiser
            k = torch.empty(tab.shape[:2], dtype=torch.int64)
            for lo in range(0, len(tab), _DUAL_CHUNK):  # cache-sized chunks: ~2x faster than one pass
                hi = lo + _DUAL_CHUNK
                k[lo:hi] = torch.addcmul(tab[lo:hi], lam[lo:hi, None, None], xg, value=-1.0).argmax(dim=2)
            return k

        chord = (self.table[:, :, 1:] - self.table[:, :, :1]) / xg[1:]  # [N, S, G-1] slope of the chord from 0
        hi = (chord * mask[:, :, None]).amax(dim=(1, 2)).clamp(min=0.0) * 1.001 + 1e-6  # [N] x(hi) = 0
        lo = torch.zeros(n)
        k_lo = response(table, lo)  # [N, S] x(lambda) for lambda < lambda*: sum > G-1 units (unless done)
        done = k_lo.sum(dim=1) <= g - 1  # [N] unconstrained maximisers already fit: lambda* = 0
        hi = torch.where(done, lo, hi)
        if tol > 0:  # lambda* <= tol: x(tol) fits the budget; it stands for x(lambda*) (see the docstring)
            k_tol = response(table, torch.full((n,), tol))  # [N, S]
            sat = ~done & (k_tol.sum(dim=1) <= g - 1)  # [N]
            k_lo, hi = torch.where(sat[:, None], k_tol, k_lo), torch.where(sat, tol, hi)
            done |= sat
        k_hi = torch.where(done[:, None], k_lo, 0)  # [N, S] x(lambda) for lambda >= lambda*: sum <= G-1 units
        # Bisection. A cell whose x(lo) and x(hi) differ by one grid unit is settled: no lambda in between can
        # give a third point, so it leaves the working set.
        rows = torch.nonzero(~done).squeeze(1)  # [R] cells still bisected
        tab, lo_r, hi_r, klo_r, khi_r = table[rows], lo[rows], hi[rows], k_lo[rows], k_hi[rows]
        floor_r = hi_r * 2.0**-_DUAL_OCTAVES  # [R] below it, lambda is as good as 0
        for _ in range(rounds):
            open_ = (klo_r - khi_r).sum(dim=1) > 1  # [R] a settled cell keeps its bracket from now on
            if 4 * int((~open_).sum()) >= len(rows):  # compact (amortised): write the settled cells back
                lo[rows], hi[rows], k_lo[rows], k_hi[rows] = lo_r, hi_r, klo_r, khi_r
                rows, tab, lo_r, hi_r = rows[open_], tab[open_], lo_r[open_], hi_r[open_]
                klo_r, khi_r, floor_r, open_ = klo_r[open_], khi_r[open_], floor_r[open_], open_[open_]
                if len(rows) == 0:
                    break
            mid = (torch.maximum(lo_r, floor_r) * hi_r).sqrt_()  # [R] geometric: lambda* / hi ranges over 1e-5..1
            k_mid = response(tab, mid)  # [R, S]
            over = k_mid.sum(dim=1) > g - 1  # [R]
            up, down = over & open_, ~over & open_  # [R] lambda* above mid, below mid
            lo_r, hi_r = torch.where(up, mid, lo_r), torch.where(down, mid, hi_r)
            klo_r = torch.where(up[:, None], k_mid, klo_r)
            khi_r = torch.where(down[:, None], k_mid, khi_r)
        lo[rows], hi[rows], k_lo[rows], k_hi[rows] = lo_r, hi_r, klo_r, khi_r
        x_hi, x_lo = xg[k_hi], xg[k_lo]  # [N, S]
        s_hi, s_lo = x_hi.sum(dim=1), x_lo.sum(dim=1)
        t = ((1.0 - s_hi) / (s_lo - s_hi).clamp(min=1e-12)).clamp(0.0, 1.0)  # [N]
        t = torch.where(done, torch.zeros_like(t), t)
        x_fill = x_hi + t[:, None] * (x_lo - x_hi)  # [N, S]
        # unit-by-unit repairs on the grid: fill x(lambda*+) up, trim x(lambda*-) down (knapsack-like f)
        k_up, k_down = self._ascend(table, k_hi), self._descend(table, k_lo)  # [N, S]
        eye = torch.eye(s, dtype=torch.int64)[None]  # [1, S, S]
        k_one = k_hi[:, None, :] + eye * (g - 1 - k_hi.sum(dim=1)).clamp(min=0)[:, None, None]  # [N, S, S]
        corners = (eye * (g - 1)).expand(n, s, s)  # [N, S, S] the whole budget to one slice
        k = torch.cat([torch.stack([k_hi, k_up, k_down], dim=1), k_one, corners], dim=1)  # [N, 3 + 2S, S] on grid
        # table utility: on grid a plain lookup (inactive slices are 0 in self.table, as after the projection)
        u_grid = self.table.gather(2, k.transpose(1, 2)).double().sum(dim=1)  # [N, 3 + 2S]
        u_fill = self.utility(x_fill, torch.arange(n), mask)  # [N]
        x = torch.cat([xg[k[:, :1]], x_fill[:, None], xg[k[:, 1:]]], dim=1)  # [N, 4 + 2S, S]
        util = torch.cat([u_grid[:, :1], u_fill[:, None], u_grid[:, 1:]], dim=1)  # [N, 4 + 2S]
        return x, util, hi

    @staticmethod
    def _units(table: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(flat table, ``[n, S]`` offset of each (row, slice)'s G values in it): the unit loops read single values
        with ``take`` instead of copying the rows' tables."""
        _, s, g = table.shape
        return table.reshape(-1), rows[:, None] * (s * g) + torch.arange(s) * g  # [N*S*G], [n, S]

    @staticmethod
    def _ascend(table: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """From grid units ``k[N, S]``, add one unit at a time to the slice that gains most, while the budget
        lasts and the gain is positive. ``table[N, S, G]`` has -inf beyond x = 0 on inactive slices."""
        g = table.shape[2]
        k = k.clone()
        rows = torch.nonzero(k.sum(dim=1) < g - 1).squeeze(1)  # [n] rows with budget left
        flat, base = _Table._units(table, rows)  # [N*S*G], [n, S]
        kk = k[rows]  # [n, S]
        cur = flat.take(base + kk)  # [n, S] table value at kk
        while len(rows):
            nxt = flat.take(base + (kk + 1).clamp(max=g - 1))  # [n, S]
            gain = (nxt - cur).masked_fill_(kk >= g - 1, -torch.inf)
            best, who = gain.nan_to_num_(nan=-torch.inf).max(dim=1)  # [n]
            go = best > 0  # [n]
            r = torch.nonzero(go).squeeze(1)
            kk[r, who[r]] += 1
            cur[r, who[r]] = nxt[r, who[r]]
            go &= kk.sum(dim=1) < g - 1
            if not bool(go.all()):  # finished rows leave the working set
                k[rows] = kk
                rows, base, kk, cur = rows[go], base[go], kk[go], cur[go]
        return k

    @staticmethod
    def _descend(table: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """From grid units ``k[N, S]`` over budget, take one unit at a time from the slice that loses least."""
        g = table.shape[2]
        k = k.clone()
        rows = torch.nonzero(k.sum(dim=1) > g - 1).squeeze(1)  # [n] rows over budget
        flat, base = _Table._units(table, rows)  # [N*S*G], [n, S]
        kk = k[rows]  # [n, S]
        cur = flat.take(base + kk)  # [n, S]
        while len(rows):
            prev = flat.take(base + (kk - 1).clamp(min=0))  # [n, S]
            loss = (cur - prev).masked_fill_(kk <= 0, torch.inf)
            who = loss.nan_to_num_(nan=torch.inf).argmin(dim=1)  # [n]
            r = torch.arange(len(rows))
            kk[r, who] -= 1
            cur[r, who] = prev[r, who]
            over = kk.sum(dim=1) > g - 1  # [n]
            if not bool(over.all()):
                k[rows] = kk
                rows, base, kk, cur = rows[over], base[over], kk[over], cur[over]
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


def _choose(oracle: _Oracle, state: _State, rows: torch.Tensor, mask: torch.Tensor, p: int,
            extra: _State | None, util_e: torch.Tensor | None) -> tuple[torch.Tensor, _State]:
    """Each cell's best feasible candidate by estimated utility: (x ``[N, S]`` float64, its state).

    Candidates: for the cells ``rows[R]`` that were searched, the two projections of each start's final point
    (``state``: 2P per cell); then for every cell ``extra`` (E per cell, the dual's points with their table utility
    ``util_e[N, E]``: feasible up to rounding, and anything they put on an inactive slice is worth 0 in the table,
    as after the projection that removes it). The first best wins; only the chosen point is projected.
    """
    n, s = mask.shape
    r = len(rows)
    cands = _candidates(state.x, mask[rows].repeat_interleave(p, dim=0))  # [2, R*P, S]
    cands = cands.reshape(2, r, p, s).permute(1, 0, 2, 3).reshape(r, 2 * p, s)  # [R, 2P, S]
    util = oracle.utility(cands.reshape(r * 2 * p, s).float(), rows.repeat_interleave(2 * p),
                          mask[rows].repeat_interleave(2 * p, dim=0)).reshape(r, 2 * p)  # [R, 2P]
    best, pick = util.max(dim=1)  # [R] first best
    ar, start = torch.arange(r), pick // 2  # [R] the picked candidate's start row
    x = torch.zeros((n, s), dtype=torch.float64)  # [N, S]
    lam, it, gam = torch.zeros(n), torch.zeros(n, dtype=torch.int64), torch.ones(n)
    x[rows], lam[rows] = cands[ar, pick], state.lam.reshape(r, p)[ar, start]
    it[rows], gam[rows] = state.it.reshape(r, p)[ar, start], state.gamma.reshape(r, p)[ar, start]
    if extra is not None and util_e is not None:  # [N, E, S] further candidates per cell
        best_e, pick_e = util_e.max(dim=1)  # [N]
        better = best_e > torch.full((n,), -torch.inf, dtype=best_e.dtype).index_put_((rows,), best)  # [N]
        c = torch.nonzero(better).squeeze(1)
        x[c] = extra.x[c, pick_e[c]].double()
        lam[c], it[c], gam[c] = extra.lam[c, pick_e[c]], extra.it[c, pick_e[c]], extra.gamma[c, pick_e[c]]
    x = torch.from_numpy(project(x.numpy(), mask.numpy()))  # [N, S] exact sums <= 1
    return x, _State(x=x.float(), lam=lam, it=it, gamma=gam)


def _best_exact(model: QosEstimator, z: torch.Tensor, mask: torch.Tensor, x: torch.Tensor,
                weight: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The better of the two projections of ``x[N, S]`` by exact estimated utility: (shares, utility ``[N]``)."""
    cands = _candidates(x, mask)  # [2, N, S]
    util = torch.stack([estimated_utility_tensor(model, z, mask, c.float(), weight) for c in cands])  # [2, N]
    which = util.argmax(dim=0)  # [N]
    rows = torch.arange(len(x))
    return cands[which, rows], util[which, rows]


def _polish(model: QosEstimator, z: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor | None,
            shares: torch.Tensor, chosen: _State, cfg: IdlaConfig) -> torch.Tensor:
    """``polish_iter`` exact-gradient iterations from the chosen candidate (its lambda); kept where they help."""
    util = estimated_utility_tensor(model, z, mask, shares.float(), weight)  # [R]
    _lagrangian(_Exact(model, z, mask, weight), chosen, torch.arange(len(z)), cfg, cfg.polish_iter, tol=0.0)
    polished, util_p = _best_exact(model, z, mask, chosen.x, weight)  # [R, S], [R]
    return torch.where((util_p > util)[:, None], polished, shares)  # keep the unpolished point unless it helped


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

    model.eval()
    oracle: _Oracle
    extra = util_e = None
    if cfg.method == "autograd":
        oracle = _Exact(model, zt, mt, wt)
    else:
        oracle = table = _Table(model, zt, mt, cfg.grid_points, wt)
        if cfg.dual_candidates:
            xd, util_e, ld = table.dual(mt, cfg.lambda_tol)  # [N, E, S], [N, E], [N] (sums <= 1 up to rounding)
            e = xd.shape[1]
            extra = _State(x=xd, lam=ld[:, None].expand(n, e), it=torch.zeros((n, e), dtype=torch.int64),
                           gamma=torch.ones((n, e)))
    # The search (start points, iterations, polish, local search) runs on the cells that the dual does not place
    # within lambda_tol of the table's optimum (every cell without the dual candidates or with lambda_tol = 0).
    search = torch.ones(n, dtype=torch.bool) if extra is None or cfg.lambda_tol <= 0 else ld > cfg.lambda_tol
    rows = torch.nonzero(search).squeeze(1)  # [R] cells searched
    cells = rows.repeat_interleave(p)  # [R*P] cell of each start row
    x0 = _start_points(None if warm is None else np.asarray(warm)[rows.numpy()], m_np[rows.numpy()], cfg, seed,
                       period, np.asarray(cell_ids)[rows.numpy()])  # [R, P, S]
    state = _initial_state(oracle, torch.from_numpy(x0).reshape(-1, s), cells, mt[cells].float(), cfg.normalise)
    loops = _lagrangian(oracle, state, cells, cfg, cfg.max_iter, cfg.tol) if len(rows) else 0
    if extra is not None:  # candidates that were not iterated: a polish uses the most decayed steps
        extra.it.fill_(loops)
        extra.gamma[rows] = state.gamma.reshape(-1, p)[:, :1].expand(len(rows), extra.x.shape[1])
    shares, chosen = _choose(oracle, state, rows, mt, p, extra, util_e)  # [N, S] float64 feasible

    if cfg.method == "tabulated" and cfg.polish_iter > 0 and len(rows):
        sub = _State(chosen.x[rows], chosen.lam[rows], chosen.it[rows], chosen.gamma[rows])
        shares[rows] = _polish(model, zt[rows], mt[rows], None if wt is None else wt[rows], shares[rows], sub, cfg)
    if cfg.method == "tabulated" and cfg.refine > 0 and len(rows):
        shares[rows] = refine(model, zt[rows], mt[rows], None if wt is None else wt[rows], shares[rows],
                              0.5 / (cfg.grid_points - 1), cfg.refine)

    out = shares.numpy()
    if cfg.fill:
        out = fill_slack(out, m_np)  # [N, S]
    util = estimated_utility_tensor(model, zt, mt, torch.from_numpy(out).float(), wt)  # [N]
    return IdlaResult(shares=out, est_utility=util.numpy(), iterations=loops)
