"""IDLA's allocator: feasibility, quality against the grid oracle, methods, determinism, dual candidates."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from slicing.config import IdlaConfig
from slicing.models.qos_estimator import QosEstimator
from slicing.optim import idla
from slicing.optim.baselines import equal_share
from slicing.optim.feasible import project
from slicing.optim.idla import allocate_idla
from slicing.optim.oracle import dp_oracle, grid_values
from tests.optim.helpers import assert_feasible, exact_util, mixed_mask


def run_idla(model: QosEstimator, z: np.ndarray, mask: np.ndarray, cfg: IdlaConfig | None = None,
             warm: np.ndarray | None = None, ids: np.ndarray | None = None, seed: int = 0, period: int = 3):
    ids = np.arange(len(z)) if ids is None else ids
    return allocate_idla(model, z, mask, warm, cfg or IdlaConfig(), seed, period, ids)


def test_idla_feasible_and_consistent(monotone_model: QosEstimator, cells: tuple[np.ndarray, np.ndarray]) -> None:
    z, mask = cells
    mask = mask.copy()
    mask[3] = False  # a cell without slices gets nothing
    res = run_idla(monotone_model, z, mask)
    assert res.shares.shape == (120, 4)
    assert_feasible(res.shares, mask)
    assert np.all(res.shares[3] == 0) and res.est_utility[3] == 0
    assert 1 <= res.iterations <= IdlaConfig().max_iter
    np.testing.assert_allclose(res.est_utility, exact_util(monotone_model, z, mask, res.shares), atol=1e-6)


def test_idla_beats_the_grid_oracle(monotone_model: QosEstimator, cells: tuple[np.ndarray, np.ndarray]) -> None:
    z, mask = cells
    res = run_idla(monotone_model, z, mask)
    dp_shares, _ = dp_oracle(grid_values(monotone_model, z, mask, points=21), mask)
    u_dp = exact_util(monotone_model, z, mask, dp_shares)
    u_idla = exact_util(monotone_model, z, mask, res.shares)
    assert np.all(u_idla >= 0.99 * u_dp)
    assert u_idla.sum() >= u_dp.sum()  # it optimises continuously, the oracle on the 0.05 grid
    # and every cell beats the model-free baseline
    assert np.all(u_idla >= exact_util(monotone_model, z, mask, equal_share(mask)) - 1e-6)


def test_idla_fill_uses_the_whole_budget(monotone_model: QosEstimator, cells: tuple[np.ndarray, np.ndarray]) -> None:
    """With fill (the default) every cell with a slice uses its whole budget, the unfilled point scaled up; the
    estimated utility of a (nearly) monotone f does not fall."""
    z, mask = cells
    bare = run_idla(monotone_model, z, mask, IdlaConfig(fill=False))
    full = run_idla(monotone_model, z, mask)
    live = mask.any(axis=1)
    assert (bare.shares[live].sum(axis=1) < 0.99).any()  # the estimate leaves budget unused somewhere
    np.testing.assert_allclose(full.shares[live].sum(axis=1), 1.0, atol=1e-12)
    scaled_back = full.shares[live] * bare.shares[live].sum(axis=1, keepdims=True)
    np.testing.assert_allclose(scaled_back, bare.shares[live], atol=1e-12)  # proportional: the same point, scaled
    # a trained MLP is monotone in x only nearly: a few cells lose up to 0.003 of estimated utility
    assert np.all(full.est_utility >= bare.est_utility - 0.01)
    np.testing.assert_allclose(full.est_utility, exact_util(monotone_model, z, mask, full.shares), atol=1e-6)


def test_idla_methods_agree(monotone_model: QosEstimator, cells: tuple[np.ndarray, np.ndarray]) -> None:
    z, mask = cells
    tab = run_idla(monotone_model, z[:60], mask[:60])
    auto = run_idla(monotone_model, z[:60], mask[:60], IdlaConfig(method="autograd"))
    assert_feasible(auto.shares, mask[:60])
    assert abs(tab.est_utility.sum() / auto.est_utility.sum() - 1.0) < 0.01


def test_idla_is_deterministic_and_batch_independent(monotone_model: QosEstimator,
                                                     cells: tuple[np.ndarray, np.ndarray]) -> None:
    z, mask = cells
    z, mask = z[:100], mask[:100]
    ids = np.arange(1000, 1100)
    whole = run_idla(monotone_model, z, mask, ids=ids)
    again = run_idla(monotone_model, torch.from_numpy(z), mask, ids=ids)
    np.testing.assert_array_equal(whole.shares, again.shares)
    first = run_idla(monotone_model, z[:50], mask[:50], ids=ids[:50])
    second = run_idla(monotone_model, z[50:], mask[50:], ids=ids[50:])
    np.testing.assert_array_equal(np.concatenate([first.shares, second.shares]), whole.shares)
    # the reported utility is a float32 network evaluation whose last bits depend on the matmul's batch size
    np.testing.assert_allclose(np.concatenate([first.est_utility, second.est_utility]), whole.est_utility,
                               rtol=1e-6)


def test_idla_start_points(monotone_model: QosEstimator, cells: tuple[np.ndarray, np.ndarray]) -> None:
    z, mask = cells
    z, mask = z[:40], mask[:40]
    cold = run_idla(monotone_model, z, mask)
    # an all-zero warm row means "no warm start": the equal share, as with warm=None
    warm = cold.shares.copy()
    warm[::2] = 0.0
    warmed = run_idla(monotone_model, z, mask, warm=warm)
    np.testing.assert_array_equal(warmed.shares[::2], cold.shares[::2])
    assert_feasible(warmed.shares, mask)
    # the start noise is keyed by (seed, period, cell id): another period draws other starts
    cfg = IdlaConfig(method="autograd", max_iter=1, polish_iter=0, start_sigma=0.2)
    a = run_idla(monotone_model, z, mask, cfg, period=1)
    b = run_idla(monotone_model, z, mask, cfg, period=2)
    assert not np.array_equal(a.shares, b.shares)


def test_idla_handles_a_non_monotone_estimator(cells: tuple[np.ndarray, np.ndarray]) -> None:
    torch.manual_seed(0)  # only to make this test's model reproducible
    model = QosEstimator().eval()
    z, mask = cells
    res = run_idla(model, z, mask, IdlaConfig(max_iter=30))
    assert_feasible(res.shares, mask)
    assert np.all(np.isfinite(res.est_utility))


def _table_from_values(values: np.ndarray) -> idla._Table:
    """A _Table over given log(1 + f) values [N, S, G] (bypasses the network)."""
    t = idla._Table.__new__(idla._Table)
    n, s, g = values.shape
    t.g, t.table = g, torch.from_numpy(values).float()
    t.grid = torch.from_numpy(np.linspace(0.0, 1.0, g)).float()
    t.value_sr = t.table.permute(1, 0, 2).contiguous().reshape(-1)
    t.pair_sr = torch.arange(s * n).reshape(s, n)
    return t


def _best_candidate(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    t = _table_from_values(values)
    mt = torch.from_numpy(mask)
    cands, _, _ = t.dual(mt)  # [N, E, S]
    n, e, s = cands.shape
    x = torch.from_numpy(project(cands.reshape(n * e, s).double().numpy(), mask.repeat(e, axis=0)))
    util = t.utility(x.float(), torch.arange(n).repeat_interleave(e), mt.repeat_interleave(e, dim=0))
    return util.reshape(n, e).max(dim=1).values.numpy()


def test_dual_candidates_solve_concave_tables_exactly() -> None:
    rng = np.random.default_rng(21)
    n, g = 400, 21
    steps = np.sort(rng.exponential(1.0, (n, 4, g - 1)), axis=2)[:, :, ::-1] * rng.uniform(0.01, 0.2, (n, 4, 1))
    values = np.concatenate([np.zeros((n, 4, 1)), np.cumsum(steps, axis=2)], axis=2)  # concave, increasing
    mask = mixed_mask(rng, n)
    _, u_dp = dp_oracle(values, mask)
    np.testing.assert_allclose(_best_candidate(values, mask), u_dp, rtol=1e-5)


STEP_CELL = np.array([  # log(1 + f) on the 0.05 grid of a simulator cell whose QoS jumps once load is served
    [0.0148, 0.1101, 0.2536, 0.3413, 0.4056, 0.4903, 0.5327, 0.6085] + [0.6931] * 13,
    [0.0604, 0.6916] + [0.6931] * 19,
    [0.0184, 0.1838, 0.3208] + [0.6931] * 18,
    [0.0255, 0.0420, 0.0546, 0.0770, 0.0884, 0.1070, 0.1301, 0.1535, 0.1794, 0.5079, 0.6906] + [0.6931] * 10,
])


def test_dual_candidates_handle_step_shaped_f() -> None:
    """A knapsack-like cell: the plain dual split leaves ~12 % on the table, the grid repairs find the optimum."""
    values, mask = STEP_CELL[None].astype(np.float64), np.ones((1, 4), dtype=bool)
    _, u_dp = dp_oracle(values, mask)
    assert _best_candidate(values, mask)[0] >= u_dp[0] - 1e-6


def test_paper_literal_variant_is_feasible_and_no_better_than_default(
        monotone_model: QosEstimator, cells: tuple[np.ndarray, np.ndarray]) -> None:
    """All four additions off + autograd = Algorithm 1 as written; the default must not be worse in total."""
    from slicing.config import IdlaConfig

    z, mask = cells
    n = len(z)
    paper = IdlaConfig(method="autograd", normalise=False, trust_region=0.0, dual_candidates=False, fill=False)
    a = allocate_idla(monotone_model, z, mask, None, paper, 0, 0, np.arange(n))
    b = allocate_idla(monotone_model, z, mask, None, IdlaConfig(), 0, 0, np.arange(n))
    for res in (a, b):
        assert_feasible(res.shares, mask)
    assert b.est_utility.sum() >= a.est_utility.sum() - 1e-6


def test_slice_weights_move_shares_towards_the_heavier_slice(monotone_model: QosEstimator,
                                                             cells: tuple[np.ndarray, np.ndarray]) -> None:
    """A1 slice priorities: all-ones weights are the paper's problem bit for bit; a heavier slice gets more."""
    z, mask = cells
    plain = run_idla(monotone_model, z, mask)
    ones = allocate_idla(monotone_model, z, mask, None, IdlaConfig(), 0, 3, np.arange(len(z)), np.ones(mask.shape))
    assert np.array_equal(plain.shares, ones.shares)
    w = np.ones(mask.shape)
    w[:, 0] = 10.0
    heavy = allocate_idla(monotone_model, z, mask, None, IdlaConfig(), 0, 3, np.arange(len(z)), w)
    assert_feasible(heavy.shares, mask)
    act = mask[:, 0]
    assert heavy.shares[act, 0].mean() > plain.shares[act, 0].mean() + 0.05
    assert (heavy.shares[act, 0] >= plain.shares[act, 0] - 0.05).all()
    # the reported utility is the weighted one: sum over slices of w_s times the slice's own term
    terms = [exact_util(monotone_model, z, mask & (np.arange(mask.shape[1]) == j), heavy.shares)
             for j in range(mask.shape[1])]
    np.testing.assert_allclose(heavy.est_utility, sum(w[:, j] * t for j, t in enumerate(terms)), atol=1e-5)
    with pytest.raises(ValueError, match="weight"):
        allocate_idla(monotone_model, z, mask, None, IdlaConfig(), 0, 3, np.arange(len(z)), -w)


def test_layer1_evaluation_equals_the_network(monotone_model: QosEstimator,
                                              cells: tuple[np.ndarray, np.ndarray]) -> None:
    """The local search evaluates f from layer 1's cached z part; it is the network's f up to float32 rounding."""
    from slicing.models.qos_estimator import f_from_layer1, layer1_z
    from slicing.optim.utility import estimator_features

    z, _ = cells
    zt = torch.from_numpy(z.reshape(-1, z.shape[2]))  # [M, 12]
    x = torch.from_numpy(np.random.default_rng(3).uniform(0.0, 1.0, len(zt))).float()  # [M]
    with torch.inference_mode():
        ref = monotone_model(estimator_features(x, zt))
    np.testing.assert_allclose(f_from_layer1(monotone_model, layer1_z(monotone_model, zt), x), ref, atol=2e-6)


def test_refine_only_raises_the_estimated_utility(monotone_model: QosEstimator,
                                                  cells: tuple[np.ndarray, np.ndarray]) -> None:
    """The exact local search accepts a move only if the network says it gains: no cell loses, most gain."""
    z, mask = cells
    bare = run_idla(monotone_model, z, mask, IdlaConfig(refine=0, lambda_tol=0.0, fill=False))
    refined = run_idla(monotone_model, z, mask, IdlaConfig(refine=3, lambda_tol=0.0, fill=False))
    assert_feasible(refined.shares, mask)
    assert np.all(refined.est_utility >= bare.est_utility - 1e-6)
    assert refined.est_utility.sum() > bare.est_utility.sum() + 1e-3
    # moves are multiples of half a grid step and its halves: at most 3 sizes, 3 moves each per slice
    assert np.abs(refined.shares - bare.shares).max() <= 3 * (0.025 + 0.0125 + 0.00625) + 1e-9


def test_lambda_tol_loses_at_most_tol_per_cell(monotone_model: QosEstimator,
                                               cells: tuple[np.ndarray, np.ndarray]) -> None:
    """Cells whose multiplier lambda* is at most lambda_tol skip the search: by weak duality each stays within
    lambda_tol of the table's optimum (the 0.05-grid DP oracle on the same 21-point table)."""
    z, mask = cells
    tol = 0.3  # large, so that about a third of these cells are skipped and the bound is exercised
    zt, mt = torch.from_numpy(z), torch.from_numpy(mask)
    _, _, lam = idla._Table(monotone_model, zt, mt, 21).dual(mt, tol)  # [N]
    skipped = (lam <= tol).numpy()
    assert 20 <= skipped.sum() <= 100
    res = run_idla(monotone_model, z, mask, IdlaConfig(lambda_tol=tol, fill=False))
    full = run_idla(monotone_model, z, mask, IdlaConfig(lambda_tol=0.0, fill=False))
    assert_feasible(res.shares, mask)
    _, u_dp = dp_oracle(grid_values(monotone_model, z, mask, points=21), mask)  # the table's optimum per cell
    assert np.all(res.est_utility >= u_dp - tol - 1e-5)
    np.testing.assert_array_equal(res.shares[~skipped], full.shares[~skipped])  # the others: the full search
    assert (res.shares[skipped] != full.shares[skipped]).any()  # the skipped ones did not get it


def test_lambda_tol_bound_on_a_table() -> None:
    """The bound itself on tables with a known optimum: linear slices of slope c (lambda* = c) are skipped for
    c <= tol, and the best dual candidate is within tol of the DP optimum; above tol they are bisected."""
    g = 21
    slopes = np.array([0.004, 0.009, 0.02, 0.5])  # per unit share
    values = np.zeros((4, 2, g))  # [cells, S=2, G]: slice 0 linear, slice 1 saturates at x = 0.25
    values[:, 0, :] = slopes[:, None] * np.linspace(0.0, 1.0, g)
    values[:, 1, :] = np.minimum(np.linspace(0.0, 1.0, g), 0.25)
    mask = np.ones((4, 2), dtype=bool)
    t = _table_from_values(values)
    _, _, lam = t.dual(torch.from_numpy(mask), 0.01)
    np.testing.assert_allclose(lam[:2], 0.01)  # skipped: x(0.01) fits the budget
    assert (lam[2:] > 0.01).all()  # bisected
    _, u_dp = dp_oracle(values, mask)
    best = _best_candidate_tol(values, mask, 0.01)
    assert np.all(best >= u_dp - 0.01 * 1.0 - 1e-6)


def _best_candidate_tol(values: np.ndarray, mask: np.ndarray, tol: float) -> np.ndarray:
    t = _table_from_values(values)
    mt = torch.from_numpy(mask)
    cands, _, _ = t.dual(mt, tol)  # [N, E, S]
    n, e, s = cands.shape
    x = torch.from_numpy(project(cands.reshape(n * e, s).double().numpy(), mask.repeat(e, axis=0)))
    util = t.utility(x.float(), torch.arange(n).repeat_interleave(e), mt.repeat_interleave(e, dim=0))
    return util.reshape(n, e).max(dim=1).values.numpy()


def test_dual_is_batch_independent() -> None:
    """A cell's dual candidates and lambda* do not depend on the other cells of the batch (the bisection's working
    set shrinks at batch-dependent rounds; a settled cell's bracket must not move after it settles)."""
    rng = np.random.default_rng(5)
    n, g = 300, 21
    steps = np.sort(rng.exponential(1.0, (n, 4, g - 1)), axis=2)[:, :, ::-1] * rng.uniform(0.01, 0.3, (n, 4, 1))
    values = np.concatenate([np.zeros((n, 4, 1)), np.cumsum(steps, axis=2)], axis=2)  # concave: cells settle
    mask = mixed_mask(rng, n)
    whole_x, _, whole_lam = _table_from_values(values).dual(torch.from_numpy(mask), 0.01)
    for lo, hi in [*((i, i + 1) for i in range(30)), (30, 37), (37, 80), (80, 300)]:  # single cells settle alone
        part_x, _, part_lam = _table_from_values(values[lo:hi]).dual(torch.from_numpy(mask[lo:hi]), 0.01)
        assert torch.equal(part_x, whole_x[lo:hi]) and torch.equal(part_lam, whole_lam[lo:hi])
