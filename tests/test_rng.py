"""Counter-based random numbers (slicing/rng.py): a pure function of (seed, stream, period, cell id, slot)."""

from __future__ import annotations

import numpy as np

from slicing import rng


def test_rng_is_a_pure_function_of_coordinates():
    ids = np.array([5, 9, 200])
    a = rng.uniform(1, 2, 3, ids, 4)
    b = rng.uniform(1, 2, 3, np.array([9]), 4)
    assert np.array_equal(a[1], b[0])
    assert not np.array_equal(a, rng.uniform(1, 2, 4, ids, 4))  # another period
    assert not np.array_equal(a, rng.uniform(2, 2, 3, ids, 4))  # another seed
    n = rng.normal(0, 1, 0, np.arange(20000), 5)
    assert abs(n.mean()) < 0.02 and abs(n.std() - 1) < 0.02


def test_uniform_shape_range_and_independence_of_coordinates():
    u = rng.uniform(7, rng.Stream.USERS, 11, np.arange(10_000), 3)  # [cells, slots]
    assert u.shape == (10_000, 3) and u.dtype == np.float64
    assert u.min() > 0.0 and u.max() < 1.0  # strictly inside: safe for log(u)
    assert abs(u.mean() - 0.5) < 0.01 and abs(u.var() - 1 / 12) < 0.005
    assert abs(np.corrcoef(u[:, 0], u[:, 1])[0, 1]) < 0.03  # slots do not repeat each other
    other = rng.uniform(7, rng.Stream.FADING, 11, np.arange(10_000), 3)
    assert abs(np.corrcoef(u[:, 0], other[:, 0])[0, 1]) < 0.03  # nor do streams
    # more slots extend the row: the first slots are unchanged
    np.testing.assert_array_equal(rng.uniform(7, rng.Stream.USERS, 11, np.arange(10), 6)[:, :3], u[:10])


def test_seeds_and_periods_beyond_64_bits_and_negative_wrap():
    ids = np.arange(4)
    np.testing.assert_array_equal(rng.uniform(-1, 1, 0, ids, 2), rng.uniform(2**64 - 1, 1, 0, ids, 2))
    np.testing.assert_array_equal(rng.uniform(3, 1, -1, ids, 2), rng.uniform(3, 1, 2**64 - 1, ids, 2))
    assert rng.uniform(3, 1, 0, np.array([], dtype=np.int64), 2).shape == (0, 2)


def test_named_streams_are_distinct():
    values = [v for k, v in vars(rng.Stream).items() if not k.startswith("_")]
    assert len(values) == len(set(values)) > 5
    # normal() draws from streams 2k and 2k+1: no two named streams' normals share an underlying uniform stream
    assert len({2 * v for v in values} | {2 * v + 1 for v in values}) == 2 * len(values)
