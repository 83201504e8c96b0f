"""samples_from_report: one row per active (cell, slice) with the right columns."""

from __future__ import annotations

import numpy as np

from slicing.config import HISTORY
from slicing.data.samples import FEATURE_COLUMNS, Samples, samples_from_report
from tests.data.reports import N, S, make_report


def test_samples_from_report_columns() -> None:
    gen = np.random.default_rng(3)
    rep = make_report(7, gen)
    z = gen.random((N, S, 2 * HISTORY + 2)).astype(np.float32)
    smp = samples_from_report(rep, z, np.array([1, 2, 3, 4]))
    assert FEATURE_COLUMNS[1] == "users_h1" and FEATURE_COLUMNS[HISTORY] == f"users_h{HISTORY}"
    assert len(FEATURE_COLUMNS) == 2 * HISTORY + 3
    assert len(smp) == int(rep.mask.sum())
    ci, si = np.nonzero(rep.mask)
    np.testing.assert_array_equal(smp["cell_id"], rep.cell_ids[ci])
    np.testing.assert_array_equal(smp["slice_id"], si + 1)
    np.testing.assert_array_equal(smp["x"], rep.share[ci, si].astype(np.float32))
    np.testing.assert_array_equal(smp.features()[:, 1:], z[ci, si])
    np.testing.assert_array_equal(smp.targets(), rep.r[ci, si].astype(np.float32))
    assert smp.features().shape == (len(smp), 2 * HISTORY + 3) and smp.features().dtype == np.float32
    assert np.all(smp["period"] == 7) and not smp["augmented"].any()
    assert len(Samples.concat([smp, smp])) == 2 * len(smp) and len(Samples.concat([])) == 0


# ---------------------------------------------------------------- augmentation
