"""The SLA-violation predictor of safe DRL (slicing/models/violation.py): AUC and a seeded BCE fit."""

from __future__ import annotations

from itertools import product

import numpy as np
import pytest

from slicing.models.violation import auc_score, train_predictor


def test_auc_matches_pairwise_definition():
    rng = np.random.default_rng(1)
    y = rng.uniform(size=60) < 0.3
    p = np.round(rng.uniform(size=60), 1)  # with ties
    pairs = [(1.0 if a > b else 0.5 if a == b else 0.0) for a, b in product(p[y], p[~y])]
    assert auc_score(y, p) == pytest.approx(np.mean(pairs))
    assert np.isnan(auc_score(np.zeros(5, bool), p[:5]))


def test_predictor_learns_a_separable_case_and_needs_both_classes():
    rng = np.random.default_rng(2)
    obs = rng.uniform(0, 2, (3000, 20)).astype(np.float32)
    shares = rng.dirichlet(np.ones(4), 3000).astype(np.float32)
    cost = (shares[:, 0] * 2.0 < obs[:, 2] * 0.3).astype(np.float32)  # too small a share for the slice's load
    assert 0.1 < cost.mean() < 0.9
    model, rep = train_predictor(obs, shares, cost, seed=0, epochs=30, batch=128)
    assert rep["accuracy"] > 0.95 and rep["auc"] > 0.98 and rep["accuracy"] > rep["majority_accuracy"] + 0.05
    p = model.predict_proba(obs[:200], shares[:200])
    assert ((p > 0.5) == cost[:200]).mean() > 0.95
    _, rep2 = train_predictor(obs, shares, cost, seed=0, epochs=30, batch=128)
    assert rep2 == rep  # seeded
    with pytest.raises(ValueError, match="both classes"):
        train_predictor(obs, shares, np.zeros(3000, np.float32))
