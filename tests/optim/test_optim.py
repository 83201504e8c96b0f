"""Feasible set, baselines, grid oracles and the IDLA allocator."""

from __future__ import annotations

from math import comb

import numpy as np
import pytest
import torch
from tests.synthetic import synth_z

from slicing.config import EstimatorConfig, IdlaConfig
from slicing.models.qos_estimator import QosEstimator, tabulate, train_estimator
from slicing.optim import idla
from slicing.optim.baselines import equal_share, traffic_proportional
from slicing.optim.feasible import enforce_budget, project, project_simplex, utility
from slicing.optim.idla import allocate_idla, exact_utility
from slicing.optim.oracle import compositions, dp_oracle, grid_oracle_bruteforce, grid_values


def mixed_mask(rng: np.random.Generator, n: int, s: int = 4) -> np.ndarray:
    """Cells with 1..s active slices (every count present), in random positions."""
    counts = np.resize(np.arange(1, s + 1), n)
    keys = rng.random((n, s))
    return np.argsort(keys, axis=1) < counts[:, None]


@pytest.fixture(scope="module")
def monotone_model() -> QosEstimator:
    """Trained briefly on r = clip(x * 10 / (users_mean * req), 0, 1): f increases with x, then saturates."""
    rng = np.random.default_rng(1)
    z = synth_z(rng, (20_000,))
    x = rng.uniform(0.0, 1.0, 20_000).astype(np.float32)
    r = np.clip(x * 10.0 / (z[:, :5].mean(axis=1) * z[:, 10]), 0.0, 1.0).astype(np.float32)
    model, report = train_estimator(np.concatenate([x[:, None], z], axis=1), r, EstimatorConfig(epochs=15), seed=3)
    assert report.mae_test < 0.05
    return model


@pytest.fixture(scope="module")
def cells() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    z = synth_z(rng, (120, 4))
    mask = mixed_mask(rng, 120)
    return z, mask


def exact_util(model: QosEstimator, z: np.ndarray, mask: np.ndarray, x: np.ndarray) -> np.ndarray:
    return exact_utility(model, torch.from_numpy(z), torch.from_numpy(mask), torch.from_numpy(x).float()).numpy()


def assert_feasible(x: np.ndarray, mask: np.ndarray) -> None:
    assert x.dtype == np.float64
    assert np.all(x >= 0)
    assert np.all(x[~mask] == 0)
    assert np.all(x.sum(axis=1) <= 1.0)


# ----------------------------------------------------------------------------------------------- feasible


def _reference_projection(v: np.ndarray) -> np.ndarray:
    """Projection of one vector onto {x >= 0, sum <= 1} by bisection on the threshold (independent method)."""
    if np.maximum(v, 0).sum() <= 1:
        return np.maximum(v, 0)
    lo, hi = v.min() - 1.0, v.max()
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if np.maximum(v - mid, 0).sum() > 1 else (lo, mid)
    return np.maximum(v - hi, 0)


def test_project_is_the_euclidean_projection() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(0.3, 0.8, size=(400, 5))
    mask = rng.random((400, 5)) < 0.7
    out = project(x, mask)
    assert_feasible(out, mask)
    for row in range(400):
        m = mask[row]
        ref = _reference_projection(x[row, m]) if m.any() else np.zeros(0)
        np.testing.assert_allclose(out[row, m], ref, atol=1e-9)


def test_project_leaves_feasible_points_unchanged() -> None:
    rng = np.random.default_rng(1)
    mask = rng.random((300, 4)) < 0.8
    x = rng.dirichlet(np.ones(4), size=300) * rng.uniform(0, 1, size=(300, 1)) * mask
    x[:5] = np.where(mask[:5], 0.0, 0.0)
    x[5] = [0.5, 0.5, 0.0, 0.0]
    mask[5] = [True, True, False, False]
    x[6], mask[6] = [0.25, 0.25, 0.25, 0.25], True
    assert np.all(x.sum(axis=1) <= 1.0)
    np.testing.assert_array_equal(project(x, mask), x)


def test_budget_is_exact_in_float64() -> None:
    x = np.array([[0.1] * 10 + [1e-16], [0.7, 0.2, 0.1, 0, 0, 0, 0, 0, 0, 0, 0], [1 / 3] * 3 + [0.0] * 8])
    x = x + np.array([[0.0] * 10 + [3e-16], [2e-16] * 3 + [0.0] * 8, [1e-16] * 3 + [0.0] * 8])
    out = enforce_budget(x.copy())
    assert np.all(out.sum(axis=1) <= 1.0)
    rng = np.random.default_rng(2)
    v = rng.uniform(0, 3, size=(2000, 7))
    mask = np.ones_like(v, dtype=bool)
    for proj in (project, project_simplex):
        out = proj(v, mask)
        assert np.all(out.sum(axis=1) <= 1.0) and np.all(out >= 0)
        assert np.all([sum(row) <= 1.0 for row in out.tolist()])  # also in Python's left-to-right order
    np.testing.assert_allclose(project_simplex(v, mask).sum(axis=1), 1.0, atol=1e-12)


def test_project_simplex_fills_the_budget() -> None:
    x = np.array([[0.1, 0.1, 0.0], [0.0, 0.0, 0.0], [2.0, -1.0, 0.0]])
    mask = np.array([[True, True, False], [False, False, False], [True, True, True]])
    out = project_simplex(x, mask)
    np.testing.assert_allclose(out, [[0.5, 0.5, 0.0], [0, 0, 0], [1.0, 0.0, 0.0]], atol=1e-15)


def test_utility() -> None:
    r = np.array([[0.5, 1.0, 0.2], [0.0, 0.3, 0.9]])
    mask = np.array([[True, False, True], [True, True, True]])
    np.testing.assert_allclose(utility(r, mask), [np.log(1.5) + np.log(1.2), np.log(1.3) + np.log(1.9)])


# ---------------------------------------------------------------------------------------------- baselines


def test_equal_share() -> None:
    mask = np.array([[True, True, True, False], [True, False, False, False], [False] * 4, [True] * 4])
    x = equal_share(mask)
    assert_feasible(x, mask)
    np.testing.assert_allclose(x[0], [1 / 3, 1 / 3, 1 / 3, 0])
    np.testing.assert_array_equal(x[1:], [[1, 0, 0, 0], [0, 0, 0, 0], [0.25] * 4])


def test_traffic_proportional() -> None:
    mask = np.array([[True, True, True, False], [True, True, False, False], [True, True, True, True]])
    offered = np.array([[1.0, 3.0, 0.0, 50.0], [0.0, 0.0, 7.0, 0.0], [2.0, -1.0, np.nan, 2.0]])
    x = traffic_proportional(offered, mask)
    assert_feasible(x, mask)
    np.testing.assert_allclose(x[0], [0.25, 0.75, 0.0, 0.0])  # inactive slice's traffic ignored
    np.testing.assert_allclose(x[1], [0.5, 0.5, 0.0, 0.0])  # no traffic on active slices: equal shares
    np.testing.assert_allclose(x[2], [0.5, 0.0, 0.0, 0.5])  # negative / NaN offered count as 0
    rng = np.random.default_rng(3)
    big_mask = rng.random((500, 4)) < 0.7
    big = traffic_proportional(rng.exponential(5.0, (500, 4)), big_mask)
    assert_feasible(big, big_mask)
    np.testing.assert_allclose(big.sum(axis=1)[big_mask.any(axis=1)], 1.0, atol=1e-12)


# ------------------------------------------------------------------------------------------------ oracles


def test_compositions() -> None:
    k = compositions(4, 20)
    assert len(k) == comb(24, 4) and k.min() == 0 and k.sum(axis=1).max() == 20
    assert len({tuple(r) for r in k.tolist()}) == len(k)


@pytest.mark.parametrize("points", [21, 11])
def test_dp_equals_bruteforce(points: int) -> None:
    rng = np.random.default_rng(points)
    n = 300
    mask = mixed_mask(rng, n)
    mask[:10] = False  # cells without an active slice
    monotone = np.cumsum(rng.exponential(1.0, (n // 2, 4, points)), axis=2) / points
    bumpy = rng.normal(0.0, 1.0, (n - n // 2, 4, points))  # non-monotone: unused budget can be optimal
    values = np.concatenate([monotone, bumpy])
    s_bf, u_bf = grid_oracle_bruteforce(values, mask)
    s_dp, u_dp = dp_oracle(values, mask)
    np.testing.assert_array_equal(u_dp, u_bf)
    for shares, util in ((s_bf, u_bf), (s_dp, u_dp)):
        assert_feasible(shares, mask)
        k = np.rint(shares * (points - 1)).astype(int)
        assert np.all(k.sum(axis=1) <= points - 1)
        recomputed = np.where(mask, np.take_along_axis(values, k[:, :, None], axis=2)[:, :, 0], 0.0).sum(axis=1)
        np.testing.assert_allclose(recomputed, util, atol=1e-12)
    assert np.all(u_dp[:10] == 0) and np.all(s_dp[:10] == 0)
    assert np.any(s_dp[n // 2 :].sum(axis=1) < 0.99)  # the bumpy half leaves budget unused somewhere


def test_dp_small_cases_by_hand() -> None:
    values = np.array([[[0.0, 0.9, 1.0], [0.0, 0.5, 1.2], [5.0, 9.0, 9.0]],  # split beats either corner
                       [[0.0, 0.2, 1.0], [0.0, 0.5, 0.7], [5.0, 9.0, 9.0]],  # a corner beats the split
                       [[0.3, -1.0, -2.0], [0.1, 0.0, -1.0], [0.0, 0.0, 0.0]]])  # nothing allocated
    mask = np.array([[True, True, False]] * 3)  # the inactive third slice's values are ignored
    for oracle in (dp_oracle, grid_oracle_bruteforce):
        shares, util = oracle(values, mask)
        np.testing.assert_allclose(util, [1.4, 1.0, 0.4])
        np.testing.assert_allclose(shares, [[0.5, 0.5, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])


def test_grid_values(monotone_model: QosEstimator, cells: tuple[np.ndarray, np.ndarray]) -> None:
    z, mask = cells
    v = grid_values(monotone_model, z, mask, points=21)
    assert v.shape == (120, 4, 21)
    assert np.all(v[~mask] == 0)
    expected = np.log1p(tabulate(monotone_model, z, np.linspace(0, 1, 21)).astype(np.float64))
    np.testing.assert_allclose(v[mask], expected[mask])


# --------------------------------------------------------------------------------------------------- IDLA


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
    cands, _ = t.dual(mt)  # [N, E, S]
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
    """All three additions off + autograd = Algorithm 1 as written; the default must not be worse in total."""
    from slicing.config import IdlaConfig

    z, mask = cells
    n = len(z)
    paper = IdlaConfig(method="autograd", normalise=False, trust_region=0.0, dual_candidates=False)
    a = allocate_idla(monotone_model, z, mask, None, paper, 0, 0, np.arange(n))
    b = allocate_idla(monotone_model, z, mask, None, IdlaConfig(), 0, 0, np.arange(n))
    for res in (a, b):
        assert_feasible(res.shares, mask)
    assert b.est_utility.sum() >= a.est_utility.sum() - 1e-6
