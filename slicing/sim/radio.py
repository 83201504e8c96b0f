"""Link quality: SINR -> 4-bit CQI -> spectral efficiency (3GPP TS 36.213 Table 7.2.3-1).

The KPI a cell reports is the *mean* CQI of a slice's users. Users of a slice are represented by a fixed
quadrature of SINR offsets around the slice's mean SINR (a spread of +-6 dB), so the mean CQI and the mean
spectral efficiency are smooth, monotone functions of the mean SINR.
"""

from __future__ import annotations

import numpy as np

# SINR (dB) above which CQI k (1..15) is usable: a standard 10 % BLER mapping.
CQI_SINR_THRESHOLDS_DB = np.array(
    [-6.7, -4.7, -2.3, 0.2, 2.4, 4.3, 5.9, 8.1, 10.3, 11.7, 14.1, 16.3, 18.7, 21.0, 22.7]
)
# Spectral efficiency (bit/s/Hz) of CQI 0..15; CQI 0 is out of range.
CQI_EFFICIENCY = np.array(
    [0.0, 0.1523, 0.2344, 0.3770, 0.6016, 0.8770, 1.1758, 1.4766, 1.9141, 2.4063, 2.7305, 3.3223, 3.9023,
     4.5234, 5.1152, 5.5547]
)
USER_SPREAD_DB = np.array([-6.0, -3.0, 0.0, 3.0, 6.0])  # quadrature of user positions within a slice


def cqi_of(sinr_db: np.ndarray) -> np.ndarray:
    """Integer CQI 0..15 of each SINR value."""
    return np.searchsorted(CQI_SINR_THRESHOLDS_DB, sinr_db, side="right")


def link_quality(mean_sinr_db: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[N, S] mean SINR -> ([N, S] mean CQI, [N, S] mean spectral efficiency in bit/s/Hz)."""
    per_user = cqi_of(mean_sinr_db[..., None] + USER_SPREAD_DB)  # [N, S, U]
    return per_user.mean(axis=-1), CQI_EFFICIENCY[per_user].mean(axis=-1)
