"""Shares -> TS 28.541 RRMPolicyRatio (slicing/optim/rrm.py): examples and property tests over random shares."""

from __future__ import annotations

import numpy as np
import pytest

from slicing.optim.rrm import check_rrm_invariants, rrm_policy_ratios


def test_examples() -> None:
    shares = np.array([[0.3, 0.29, 0.41], [0.125, 0.0, 0.5], [1.0, 0.0, 0.0]])
    r = rrm_policy_ratios(shares)
    assert r.min_ratio.tolist() == [[30, 29, 41], [12, 0, 50], [100, 0, 0]]
    assert r.max_ratio.tolist() == [[30, 29, 41], [13, 0, 50], [100, 0, 0]]
    assert r.dedicated_ratio.tolist() == [[15, 14, 20], [6, 0, 25], [50, 0, 0]]
    check_rrm_invariants(r)


def test_mask_headroom_and_fraction() -> None:
    shares = np.array([[0.25, 0.7, 0.9]])
    mask = np.array([[True, True, False]])  # the inactive entry is ignored even though the raw row sums to 1.85
    r = rrm_policy_ratios(shares, mask, dedicated_fraction=1.0, headroom_pct=20)
    assert r.min_ratio.tolist() == [[25, 70, 0]]
    assert r.max_ratio.tolist() == [[45, 90, 0]]
    assert r.dedicated_ratio.tolist() == [[25, 70, 0]]
    check_rrm_invariants(r)
    assert rrm_policy_ratios(np.array([[0.95]]), headroom_pct=20).max_ratio.tolist() == [[100]]


@pytest.mark.parametrize("bad", [[[0.6, 0.6]], [[-0.1, 0.2]], [[np.nan, 0.1]], [[np.inf, 0.0]]])
def test_rejects_infeasible_shares(bad) -> None:
    with pytest.raises(ValueError):
        rrm_policy_ratios(np.array(bad))


def test_empty() -> None:
    r = rrm_policy_ratios(np.zeros((0, 4)))
    assert r.min_ratio.shape == (0, 4)
    check_rrm_invariants(r)


@pytest.mark.parametrize("seed", range(6))
def test_property_random_shares(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, s = 5000, int(rng.integers(1, 9))
    mask = rng.random((n, s)) < 0.8
    mask[np.arange(n), rng.integers(0, s, n)] = True
    alpha = rng.choice([0.05, 0.5, 1.0, 5.0])
    x = rng.dirichlet(np.full(s, alpha), size=n) * np.where(mask, 1.0, 0.0)  # [n, s]
    total = x.sum(axis=1, keepdims=True)
    x = np.divide(x, total, out=np.zeros_like(x), where=total > 0)  # rows sum to 1 (up to rounding) ...
    x *= rng.choice([1.0, 1.0, 0.9, 0.5], size=(n, 1))  # ... or less
    whole = rng.random(n) < 0.1
    x[whole] = np.floor(x[whole] * 100.0) / 100.0  # some rows in whole percentages (float rounding near integers)
    x = np.minimum(x, 1.0)
    over = x.sum(axis=1) > 1.0
    x[over] /= x[over].sum(axis=1, keepdims=True) * (1 + 1e-12)
    for frac, head in [(0.5, 0), (0.0, 0), (1.0, 0), (0.3, 7), (0.5, 100)]:
        r = rrm_policy_ratios(x, mask, dedicated_fraction=frac, headroom_pct=head)
        check_rrm_invariants(r)
        pct = 100.0 * np.where(mask, x, 0.0)
        assert (r.min_ratio <= pct + 1e-6).all() and (r.min_ratio > pct - 1 - 1e-6).all()
        if head == 0:
            assert (r.max_ratio >= pct - 1e-6).all() and (r.max_ratio - r.min_ratio <= 1).all()
        assert (r.max_ratio[~mask] == 0).all() and (r.min_ratio[~mask] == 0).all()
        assert r.min_ratio.dtype == np.int64


def test_shares_that_sum_to_one_in_whole_percents() -> None:
    rng = np.random.default_rng(7)
    ints = rng.multinomial(100, [0.25] * 4, size=2000)  # [2000, 4] whole percentages summing to 100
    x = ints / 100.0
    r = rrm_policy_ratios(x)
    assert (r.min_ratio == ints).all() and (r.max_ratio == ints).all()
    assert (r.min_ratio.sum(axis=1) == 100).all()
