"""IDLA's augmentation rules (1) and (2)."""

from __future__ import annotations

import numpy as np

from slicing.data.augment import SATISFIED, augment
from slicing.data.samples import ALL_COLUMNS
from tests.data.reports import make_samples


def test_augmentation_rules() -> None:
    smp = make_samples()
    orig = smp.take(~smp["augmented"])
    out = augment(smp, np.random.default_rng(0))
    n = len(smp)
    # originals first and untouched
    for c in ALL_COLUMNS:
        np.testing.assert_array_equal(out[c][:n], smp[c])
    new = out.take(np.arange(n, len(out)))
    assert new["augmented"].all() and np.all(new["r"] == 1.0)

    rule1 = (orig["r"] < 1) & (orig["throughput_mbps"] > 0) & np.isfinite(orig["delay_ms"])
    rule2 = orig["r"] >= SATISFIED
    assert rule1.sum() > 0 and rule2.sum() > 0 and (~rule1 & ~rule2).sum() > 0  # the data exercises each case
    assert len(new) == int(rule1.sum() + rule2.sum())
    a1 = new.take(np.arange(int(rule1.sum())))
    a2 = new.take(np.arange(int(rule1.sum()), len(new)))

    # rule 1: requirements := achieved, everything else (x, history) unchanged, only r < 1 rows
    src1 = orig.take(rule1)
    np.testing.assert_array_equal(a1["throughput_req_mbps"], src1["throughput_mbps"])
    np.testing.assert_array_equal(a1["delay_req_ms"], src1["delay_ms"])
    np.testing.assert_array_equal(a1["x"], src1["x"])
    np.testing.assert_array_equal(a1.features()[:, 1:-2], src1.features()[:, 1:-2])
    assert np.isinf(orig["delay_ms"]).any() and np.all(np.isfinite(a1["delay_req_ms"]))

    # rule 2: x' in [x, 1], requirements unchanged, only r >= 0.999 rows
    src2 = orig.take(rule2)
    assert np.all(a2["x"] >= src2["x"]) and np.all(a2["x"] <= 1.0)
    assert np.any(a2["x"] > src2["x"])
    np.testing.assert_array_equal(a2.features()[:, 1:], src2.features()[:, 1:])
    np.testing.assert_array_equal(a2["cell_id"], src2["cell_id"])

    # seeded
    again = augment(smp, np.random.default_rng(0))
    np.testing.assert_array_equal(again["x"], out["x"])
    assert np.all(np.isfinite(out.features())) and np.all((out.targets() >= 0) & (out.targets() <= 1))


# ---------------------------------------------------------------- parquet
