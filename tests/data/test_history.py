"""History: ring order, readiness, zero padding, state round trip."""

from __future__ import annotations

import numpy as np
import pytest

from slicing.config import HISTORY
from slicing.data.history import History
from tests.data.reports import N, S, make_report


def test_history_order_and_ready() -> None:
    gen = np.random.default_rng(1)
    hist = History(N, S)
    assert hist.count == 0 and not hist.ready
    for p in range(HISTORY + 3):  # wraps the ring
        hist.push(make_report(p, gen))
        assert hist.count == p + 1
        assert hist.ready == (p + 1 >= HISTORY)
    tp, dl = np.array([2.0, 1.0, 1.5, 0.5]), np.array([100.0, 150.0, 50.0, 30.0])
    z = hist.features(tp, dl)
    assert z.shape == (N, S, 2 * HISTORY + 2) and z.dtype == np.float32
    # slice 0 is always active: users = 100 p + 10 c, periods 3..7 oldest first
    expected = 100.0 * np.arange(3, 3 + HISTORY)[None, :] + 10.0 * np.arange(N)[:, None]
    np.testing.assert_array_equal(z[:, 0, :HISTORY], expected)
    np.testing.assert_array_equal(z[0, 0, HISTORY : 2 * HISTORY], (np.arange(3, 3 + HISTORY) % 15) + 0.5)
    np.testing.assert_array_equal(z[:, :, -2], np.broadcast_to(tp, (N, S)))
    np.testing.assert_array_equal(z[:, :, -1], np.broadcast_to(dl, (N, S)))


def test_history_partial_is_zero_padded_and_state_roundtrip() -> None:
    gen = np.random.default_rng(2)
    hist = History(N, S)
    for p in range(1, 3):
        hist.push(make_report(p, gen))
    assert not hist.ready
    users = hist.users()
    assert np.all(users[:, 0, : HISTORY - 2] == 0)  # not yet filled, oldest slots
    np.testing.assert_array_equal(users[:, 0, -1], 200.0 + 10.0 * np.arange(N))
    for p in range(3, 9):
        hist.push(make_report(p, gen))
    state = hist.state_dict()
    assert all(isinstance(v, np.ndarray) for v in state.values())
    other = History(N, S)
    other.load_state_dict(state)
    assert other.count == hist.count and other.ready
    tp, dl = np.ones(S), np.ones(S)
    np.testing.assert_array_equal(other.features(tp, dl), hist.features(tp, dl))
    rep = make_report(9, gen)  # both continue identically after the restore
    hist.push(rep)
    other.push(rep)
    np.testing.assert_array_equal(other.features(tp, dl), hist.features(tp, dl))
    with pytest.raises(ValueError, match="shape"):
        History(N + 1, S).load_state_dict(state)
    with pytest.raises(ValueError, match="shape"):
        hist.push(make_report(0, gen, n=N + 1))
