"""Ring buffer of the last H periods of users and CQI per (cell, slice), and the QoS-estimator context z.

The buffer holds arrays [N, S, H]; ``features`` returns them oldest first, so with H = 5 and the current period t
the window covers t-5 .. t-1 when the report of t-1 was the last one pushed. Everything is vectorised over cells
and slices; pushing a report is two slice assignments.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from slicing.config import HISTORY
from slicing.data.features import qos_context


class _UsersCqi(Protocol):
    users: np.ndarray  # [N, S]
    cqi: np.ndarray  # [N, S]


class History:
    """Last ``horizon`` periods of mean active users and mean CQI per (cell, slice)."""

    def __init__(self, n_cells: int, n_slices: int, horizon: int = HISTORY) -> None:
        if n_cells < 0 or n_slices < 1 or horizon < 1:
            raise ValueError(f"History needs n_cells >= 0, n_slices >= 1, horizon >= 1 (got {n_cells}, "
                             f"{n_slices}, {horizon})")
        self.horizon = int(horizon)
        self._users = np.zeros((n_cells, n_slices, horizon), dtype=np.float32)  # [N, S, H] ring
        self._cqi = np.zeros((n_cells, n_slices, horizon), dtype=np.float32)  # [N, S, H] ring
        self._head = 0  # next slot to write == oldest slot once the ring is full
        self._count = 0

    @property
    def shape(self) -> tuple[int, int]:
        """(N, S)."""
        return self._users.shape[0], self._users.shape[1]

    @property
    def count(self) -> int:
        """Number of periods pushed so far."""
        return self._count

    @property
    def ready(self) -> bool:
        """True once ``horizon`` periods have been pushed (the window holds no zero padding)."""
        return self._count >= self.horizon

    def push(self, report: _UsersCqi) -> None:
        """Append one period's ``users`` and ``cqi`` [N, S] (e.g. a ``KpiReport``), dropping the oldest."""
        users = np.asarray(report.users)
        cqi = np.asarray(report.cqi)
        if users.shape != self.shape or cqi.shape != self.shape:
            raise ValueError(f"History.push: expected users/cqi of shape {self.shape}, got {users.shape} / "
                             f"{cqi.shape}")
        self._users[:, :, self._head] = users
        self._cqi[:, :, self._head] = cqi
        self._head = (self._head + 1) % self.horizon
        self._count += 1

    def _order(self) -> np.ndarray:
        return (self._head + np.arange(self.horizon)) % self.horizon  # [H] ring slots, oldest first

    def users(self) -> np.ndarray:
        """[N, S, H] float32 users, oldest first (zeros where fewer than H periods were pushed)."""
        return self._users[:, :, self._order()]

    def cqi(self) -> np.ndarray:
        """[N, S, H] float32 CQI, oldest first (zeros where fewer than H periods were pushed)."""
        return self._cqi[:, :, self._order()]

    def features(self, throughput_req_mbps: np.ndarray, delay_req_ms: np.ndarray) -> np.ndarray:
        """z [N, S, 2H+2] float32: [users oldest..newest, cqi oldest..newest, req_tp, req_delay]
        (``slicing.data.features.qos_context``). Requirements per slice [S], or per cell and slice [N, S]
        (A1 slice SLA policies)."""
        n, s = self.shape
        tp = np.asarray(throughput_req_mbps, dtype=np.float32)
        dl = np.asarray(delay_req_ms, dtype=np.float32)
        if tp.shape not in ((s,), (n, s)) or dl.shape not in ((s,), (n, s)):
            raise ValueError(f"History.features: requirements must have shape ({s},) or ({n}, {s}), got {tp.shape} "
                             f"/ {dl.shape}")
        return qos_context(self.users(), self.cqi(), tp[..., None, :] if tp.ndim == 1 else tp,
                           dl[..., None, :] if dl.ndim == 1 else dl)  # [N, S, 2H+2]

    def state_dict(self) -> dict[str, np.ndarray]:
        """Plain numpy arrays (oldest first), enough to rebuild the buffer with ``load_state_dict``."""
        return {
            "users": self.users().copy(),  # [N, S, H]
            "cqi": self.cqi().copy(),  # [N, S, H]
            "count": np.array(self._count, dtype=np.int64),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from ``state_dict`` output; the shapes must match this buffer's (N, S, H)."""
        users = np.asarray(state["users"], dtype=np.float32)
        cqi = np.asarray(state["cqi"], dtype=np.float32)
        expected = self._users.shape
        if users.shape != expected or cqi.shape != expected:
            raise ValueError(f"History.load_state_dict: expected arrays of shape {expected}, got {users.shape} / "
                             f"{cqi.shape}")
        self._users = users.copy()
        self._cqi = cqi.copy()
        self._head = 0  # stored oldest first, so slot 0 is the oldest
        self._count = int(np.asarray(state["count"]))
