"""Link quality (slicing/sim/radio.py): the SINR -> CQI table and the mean CQI / efficiency of a slice's users."""

from __future__ import annotations

import numpy as np

from slicing.sim.radio import CQI_EFFICIENCY, CQI_SINR_THRESHOLDS_DB, USER_SPREAD_DB, cqi_of, link_quality


def test_cqi_table_monotone():
    sinr = np.linspace(-15, 35, 200)
    assert np.all(np.diff(cqi_of(sinr)) >= 0)
    assert cqi_of(np.array([-20.0]))[0] == 0 and cqi_of(np.array([40.0]))[0] == 15
    cqi, se = link_quality(sinr[:, None])
    assert np.all(np.diff(cqi[:, 0]) >= 0) and np.all(np.diff(se[:, 0]) >= 0)


def test_cqi_steps_up_exactly_at_each_threshold():
    # CQI k is usable from its threshold on: just below it the table gives k - 1, at it k
    k = np.arange(1, 16)
    np.testing.assert_array_equal(cqi_of(CQI_SINR_THRESHOLDS_DB), k)
    np.testing.assert_array_equal(cqi_of(CQI_SINR_THRESHOLDS_DB - 1e-6), k - 1)


def test_link_quality_is_the_mean_over_the_user_quadrature():
    mean_sinr = np.array([[-30.0, 1.0], [10.0, 60.0]])  # [N=2, S=2]
    cqi, se = link_quality(mean_sinr)
    assert cqi.shape == se.shape == (2, 2)
    # brute force: each of the five users of a slice at mean + offset, CQI and efficiency averaged
    for i in range(2):
        for s in range(2):
            users = [int(cqi_of(np.array([mean_sinr[i, s] + d]))[0]) for d in USER_SPREAD_DB]
            assert cqi[i, s] == np.mean(users)
            assert se[i, s] == np.mean([CQI_EFFICIENCY[u] for u in users])
    assert cqi[0, 0] == 0 and se[0, 0] == 0  # every user out of range
    assert cqi[1, 1] == 15 and se[1, 1] == CQI_EFFICIENCY[15]  # every user at the top of the table
    assert 0 < cqi[0, 1] < 15  # a spread of +-6 dB straddles several CQIs
