"""The feature vectors (slicing/data/features.py): the estimator's context z, the per-cell RL observations, and the
action <-> shares mapping. (The env's use of them is tested in tests/rl/test_env.py.)"""

from __future__ import annotations

import numpy as np
import pytest

from slicing.config import HISTORY
from slicing.data.features import (
    ACTION_LIMIT,
    TP_REL_CAP,
    USERS_CAP,
    USERS_SCALE,
    action_to_shares,
    build_observations,
    neighbour_load,
    obs_dim,
    observations_from_report,
    qos_context,
    shares_to_action,
)
from slicing.data.history import History
from tests.data.reports import N, S, make_report

# ------------------------------------------------------------------------------------------------ z


def test_qos_context_layout_and_broadcast_of_requirements():
    gen = np.random.default_rng(0)
    users, cqi = gen.random((N, S, HISTORY)), gen.random((N, S, HISTORY))  # [N, S, H]
    tp, dl = np.arange(1.0, S + 1), np.arange(10.0, 10.0 + S)  # [S]
    z = qos_context(users, cqi, tp, dl)
    assert z.shape == (N, S, 2 * HISTORY + 2) and z.dtype == np.float32
    np.testing.assert_array_equal(z[..., :HISTORY], users.astype(np.float32))
    np.testing.assert_array_equal(z[..., HISTORY : 2 * HISTORY], cqi.astype(np.float32))
    np.testing.assert_array_equal(z[..., -2], np.broadcast_to(tp, (N, S)))
    np.testing.assert_array_equal(z[..., -1], np.broadcast_to(dl, (N, S)))
    # a request's rows: one requirement per row
    rows = qos_context(users[0], cqi[0], tp, dl)  # [S, H] with [S]
    np.testing.assert_array_equal(rows, z[0])
    with pytest.raises(ValueError):
        qos_context(users, cqi, np.ones(S + 1), dl)  # requirements that do not broadcast


def test_history_features_are_the_qos_context_of_its_arrays():
    gen = np.random.default_rng(3)
    hist = History(N, S)
    for p in range(HISTORY + 1):
        hist.push(make_report(p, gen))
    tp, dl = np.array([2.0, 1.0, 1.5, 0.5]), np.array([100.0, 150.0, 50.0, 30.0])
    np.testing.assert_array_equal(hist.features(tp, dl), qos_context(hist.users(), hist.cqi(), tp, dl))


# ------------------------------------------------------------------------------------- observations


def test_build_observations_blocks_caps_and_masks():
    mask = np.array([[True, True, False], [True, False, True]])  # period to allocate
    report_mask = np.array([[True, True, True], [True, False, False]])  # period reported
    users = np.array([[5.0, 500.0, 8.0], [np.nan, 3.0, 4.0]])
    prb = np.array([[0.2, 1.7, 0.1], [-0.3, 0.5, 0.5]])
    tp = np.array([[1.0, 9.0, 2.0], [2.0, 1.0, 1.0]])
    req = np.array([2.0, 1.0, 4.0])
    nbr = np.array([[0.3, 1.4, -0.2], [0.0, 0.1, 0.9]])
    obs = build_observations(users, prb, tp, report_mask, mask, req, nbr)
    assert obs.shape == (2, obs_dim(3)) == (2, 15) and obs.dtype == np.float32
    tp_rel, util, usr, nl, m = np.split(obs, 5, axis=1)
    np.testing.assert_allclose(tp_rel, [[0.5, TP_REL_CAP, 0.5], [1.0, 0.0, 0.0]])  # capped; 0 if not reported
    np.testing.assert_allclose(util, [[0.2, 1.0, 0.1], [0.0, 0.0, 0.0]])  # clipped to [0, 1]
    np.testing.assert_allclose(usr, [[5 / USERS_SCALE, USERS_CAP, 0.8], [0.0, 0.0, 0.0]])  # NaN -> 0
    np.testing.assert_allclose(nl, [[0.3, 1.0, 0.0], [0.0, 0.1, 0.9]], rtol=1e-6)
    np.testing.assert_array_equal(m, mask)  # the mask of the period to allocate, not the reported one
    assert np.isfinite(obs).all()


def test_neighbour_load_averages_known_cells_and_splits_halo_load():
    nbr = np.array([[1, 7], [0, 9]])  # row 0: 1 known, 7 in the halo; row 1: 0 known, 9 unknown
    prb = np.array([[0.2, 0.4], [0.6, 0.0]])
    mask = np.array([[True, False], [True, True]])
    nl = neighbour_load(nbr, np.array([0, 1]), prb, mask, halo_ids=np.array([7]), halo_util=np.array([0.8]))
    np.testing.assert_allclose(nl, [[(0.6 + 0.8) / 2, 0.0], [0.2 / 2, 0.4 / 2]])  # halo load on active slices only
    without = neighbour_load(nbr, np.array([0, 1]), prb, mask)  # no halo exchange: unknown neighbours count 0
    np.testing.assert_allclose(without, [[0.3, 0.0], [0.1, 0.2]])


def test_observations_from_report_use_the_report_cells_as_neighbours():
    rep = make_report(3, np.random.default_rng(5))  # cells 100..105
    nbr_ids = np.array([[101 + (i + 1) % 5, 100 + (i + 2) % 6] for i in range(N)])  # [N, K=2], all known
    mask = rep.mask.copy()
    req = np.array([2.0, 1.0, 1.5, 0.5])
    obs = observations_from_report(rep, mask, req, nbr_ids)
    nl = np.mean([rep.prb_util[nbr_ids[:, k] - 100] for k in range(2)], axis=0)  # [N, S]
    ref = build_observations(rep.users, rep.prb_util, rep.throughput_mbps, rep.mask, mask, req, nl)
    np.testing.assert_array_equal(obs, ref)
    rows = np.array([4, 1])  # a subset of rows: the same observations as the full call
    np.testing.assert_array_equal(observations_from_report(rep, mask[rows], req, nbr_ids[rows], rows), obs[rows])


# ------------------------------------------------------------------------------- action <-> shares


def test_action_to_shares_is_a_masked_softmax_of_clipped_logits():
    mask = np.array([True, True, False, True])
    x = action_to_shares(np.array([1.0, 0.0, 9.0, -1.0]), mask)  # [S] in, [S] out
    e = np.exp([1.0, 0.0, -1.0])
    np.testing.assert_allclose(x[[0, 1, 3]], e / e.sum())
    assert x[2] == 0.0
    np.testing.assert_array_equal(action_to_shares(np.array([50.0, 0, 0, 0]), mask),  # clipped to the box
                                  action_to_shares(np.array([ACTION_LIMIT, 0, 0, 0]), mask))
    np.testing.assert_allclose(action_to_shares(np.array([1.0, 2, 3, 4]) + 0.7, np.ones(4, bool)),  # shift-free
                               action_to_shares(np.array([1.0, 2, 3, 4]), np.ones(4, bool)))
    assert action_to_shares(np.ones(4), np.zeros(4, bool)).sum() == 0.0  # no active slice: nothing allocated


def test_shares_round_trip_through_the_action():
    gen = np.random.default_rng(2)
    mask = gen.random((200, 4)) < 0.7
    mask[:, 1] = True
    x = np.where(mask, gen.dirichlet(np.ones(4), 200) + 0.01, 0.0)
    x /= x.sum(axis=1, keepdims=True)  # [N, S] shares summing to 1 over active slices
    logits = shares_to_action(x, mask)
    assert logits.shape == x.shape and np.all(np.abs(logits) <= ACTION_LIMIT) and np.all(logits[~mask] == 0)
    np.testing.assert_allclose(np.where(mask, logits, 0).sum(axis=1), 0.0, atol=1e-12)  # centred on 0
    np.testing.assert_allclose(action_to_shares(logits, mask), x, atol=1e-9)
    one = shares_to_action(x[0], mask[0])  # the [S] form
    np.testing.assert_array_equal(one, logits[0])
    np.testing.assert_allclose(action_to_shares(one, mask[0]), x[0], atol=1e-9)
    tiny = shares_to_action(np.array([1.0, 1e-9]), np.array([True, True]))  # raised to the floor of 1e-3
    np.testing.assert_allclose(action_to_shares(tiny, np.array([True, True]))[1], 1e-3 / (1 + 1e-3))


def test_shares_feasible():
    rng = np.random.default_rng(0)
    act = np.concatenate([rng.normal(0, 10, (500, 4)), np.full((2, 4), np.nan), np.full((2, 4), 1e9)])
    mask = rng.uniform(size=act.shape) < 0.6
    mask[0] = False
    x = action_to_shares(act, mask)
    assert np.isfinite(x).all() and (x >= 0).all() and (x.sum(axis=1) <= 1 + 1e-12).all()
    assert (x[~mask] == 0).all() and x[0].sum() == 0
    np.testing.assert_allclose(x[mask.any(axis=1)].sum(axis=1), 1.0)
    equal = action_to_shares(np.zeros(4), np.array([1, 1, 0, 1], bool))
    assert equal.tolist() == pytest.approx([1 / 3, 1 / 3, 0, 1 / 3])


def test_neighbour_load_known_and_halo():
    nbr = np.array([[1, 7], [0, 9]])  # cell 0: neighbours 1 (known) and 7 (halo); cell 1: 0 (known), 9 (unknown)
    known_ids = np.array([0, 1])
    prb = np.array([[0.2, 0.4], [0.6, 0.0]])
    mask = np.array([[True, True], [True, False]])
    nl = neighbour_load(nbr, known_ids, prb, mask, halo_ids=np.array([7]), halo_util=np.array([0.8]))
    np.testing.assert_allclose(nl, [[(0.6 + 0.4) / 2, (0.0 + 0.4) / 2], [0.2 / 2, 0.4 / 2]])


def test_shares_to_action_inverts_the_masked_softmax():
    from slicing.data.features import ACTION_LIMIT, shares_to_action

    rng = np.random.default_rng(0)
    mask = rng.random((50, 4)) < 0.7
    mask[:, 0] = True
    x = rng.dirichlet(np.ones(4), 50) * mask
    x = x / x.sum(axis=1, keepdims=True)
    x = np.where(mask, np.maximum(x, 0.02), 0.0)
    x = x / x.sum(axis=1, keepdims=True)
    logits = shares_to_action(x, mask)
    assert np.all(np.abs(logits) <= ACTION_LIMIT)
    np.testing.assert_allclose(action_to_shares(logits, mask), x, atol=1e-9)
    assert np.all(logits[~mask] == 0.0)
