"""The digital twin (slicing/models/twin.py): it learns a known system's transitions and utility, its fidelity
figures are held-out errors, and bad files are refused naming the problem."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from slicing.models.twin import DigitalTwin, Transitions, TwinFileError, load_twin, net_from_payload


def known_system(n: int = 600, seed: int = 0) -> Transitions:
    """s' = 0.6 s + 0.8 a + noise (a = bandwidth shares); U = 3 * s . a; a drawn at random."""
    rng = np.random.default_rng(seed)
    s = np.zeros((n, 3))
    s1 = np.zeros((n, 3))
    a = rng.dirichlet(np.ones(3), n)
    x = np.ones(3)
    for t in range(n):
        s[t] = x
        x = 0.6 * x + 0.8 * a[t] + rng.normal(0, 0.01, 3)
        s1[t] = x
    u = 3.0 * (s * a).sum(axis=1)
    gamma = np.full(n, 1.0)
    r = np.where(u < 1.0, 0.0, 1.0)
    return Transitions(s, a, u, r, gamma, s1, np.zeros(n, dtype=np.int64))


def test_twin_learns_a_known_system_better_than_persistence():
    d = known_system()
    twin = DigitalTwin(hidden=32, seq_len=8, seed=0, lr=3e-3)
    fid = twin.fit(d, gamma_max=2.0, updates=1500)
    test = slice(int(len(d) * 0.8), None)
    persistence = float(np.sqrt(((d.s[test] - d.s_next[test]) ** 2).mean()))
    assert fid["state_rmse_1"] < 0.3 * persistence, (fid, persistence)
    assert fid["utility_mae"] < 0.1
    assert fid["state_rmse_5"] < persistence
    assert fid["held_out"] == len(d) - int(len(d) * 0.8)
    assert np.allclose(twin.resid_std, np.maximum(twin.resid_std, 1e-3))


def test_recalibration_continues_from_the_current_weights():
    d = known_system()
    twin = DigitalTwin(hidden=16, seed=1)
    first = twin.fit(d, gamma_max=2.0, updates=40)
    second = twin.fit(d, gamma_max=2.0, updates=40)
    assert second["state_rmse_1"] < first["state_rmse_1"]


def test_payload_rebuilds_the_same_network():
    d = known_system(100)
    twin = DigitalTwin(hidden=8, seed=0)
    twin.fit(d, gamma_max=2.0, updates=2)
    net = net_from_payload(twin.payload())
    s = torch.rand(1, 4, 3)
    a = torch.rand(1, 4, 3)
    twin.net.eval()
    assert torch.allclose(net.next_state(s, a)[0], twin.net.next_state(s, a)[0])
    assert torch.allclose(net.utility(s, a), twin.net.utility(s, a))


def test_too_few_transitions_is_an_error():
    with pytest.raises(ValueError, match="at least 16"):
        DigitalTwin(seq_len=8).fit(known_system(10), gamma_max=2.0)


def test_saved_twin_round_trips_and_bad_files_are_refused(tmp_path):
    twin = DigitalTwin(hidden=8, seed=0)
    twin.fit(known_system(100), gamma_max=2.0, updates=2)
    good = tmp_path / "twin.pt"
    twin.save(good)
    p = load_twin(good)
    assert p.hidden == 8 and p.start_states.shape == (100, 3)

    blob = twin.to_blob()
    blob["hidden"] = 16  # weights of a hidden-8 twin under a hidden-16 header
    wrong = tmp_path / "wrong.pt"
    torch.save(blob, wrong)
    with pytest.raises(TwinFileError, match="do not fit a twin of hidden size 16"):
        load_twin(wrong)
    other = tmp_path / "other.pt"
    torch.save({"weights": 1}, other)
    with pytest.raises(TwinFileError, match="not a saved digital twin"):
        load_twin(other)
    text = tmp_path / "text.pt"
    text.write_text("hello")
    with pytest.raises(TwinFileError, match="cannot be loaded"):
        load_twin(text)
