"""One base station, three slices sharing 20 MHz: the environment of the digital-twin DRL paper (paper 004).

The paper (Table I) fixes the setting and leaves the rest to the simulator of its reference [4] (Hua et al.,
GAN-DDQN). Where both are silent the values below are ours; ``docs/twin.md`` lists each with its source.

- **Users.** 100 users uniform in a 40 m disc (at least 5 m from the antenna); 46 VoLTE, 46 video, 8 URLLC (the
  6:6:1 service mix of [4]'s simulator, rounded). Path loss 128.1 + 37.6 log10(d / km) dB (3GPP TR 36.814), 46 dBm
  spread over 20 MHz, noise -174 dBm/Hz + 9 dB noise figure, **Rayleigh fading** |h|^2 ~ Exp(1) per user and slot.
  Spectral efficiency min(log2(1 + SNR |h|^2), 7.4063) (the 256-QAM top of the CQI table) times 4 MIMO layers.
- **Traffic** (Table I, sizes from [4]): VoLTE 40-byte packets, inter-arrival uniform in [0, 160] ms; video
  inter-arrival truncated exponential (mean 6 ms, at most 12.5 ms), size truncated exponential (mean 100 B, at
  most 250 B); URLLC inter-arrival exponential (mean 180 ms), size one of 6.4/12.8/19.2/25.6/32 kB. Each user
  queues at most 5 packets ([4]); an arrival to a full queue is lost.
- **Scheduling.** Every 0.5 ms slot each slice's bandwidth (in 180 kHz resource blocks) is shared round-robin by
  its backlogged users: every one gets the same number of blocks and the remainder goes to the next users after a
  rotating pointer. A user serves its queue first-in first-out.
- **SLA** (Table I): rate 51 kbit/s / 100 Mbit/s / 10 Mbit/s, latency 10 / 10 / 1 ms. A packet is successful when
  it is delivered within its latency (counted in whole slots, arrival slot included) and its user's scheduled rate
  in the slot that completes it meets the rate SLA (the instantaneous-rate test of [4]). A packet past its latency
  can no longer succeed and is dropped.
- **One step** = 400 slots (0.2 s). It reports, per slice, the packets that arrived (the state), the successful
  ones, the SSR u_n = successful / arrived (1 when none arrived) and the spectral efficiency
  s = delivered bits / (W * 0.2 s), and the utility U = alpha * s + sum_n beta_n u_n (eq. 5).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

SLICES = ("volte", "video", "urllc")
BANDWIDTH_HZ = 20e6
RB_HZ = 180e3
SLOT_S = 0.5e-3
SLOTS_PER_STEP = 400
QUEUE = 5
RATE_SLA = np.array([51e3, 100e6, 10e6])
LATENCY_SLOTS = np.array([20, 20, 2])  # 10 / 10 / 1 ms
USERS = (46, 46, 8)
RADIUS_M = 40.0
MIN_DIST_M = 5.0
TX_DBM = 46.0
NOISE_DBM_HZ = -174.0 + 9.0
SE_MAX = 7.4063
LAYERS = 8
URLLC_SIZES_BITS = np.array([6.4, 12.8, 19.2, 25.6, 32.0]) * 8e3


def _truncated_mean(mean: float, cap: float) -> float:
    return mean - cap * math.exp(-cap / mean) / (1.0 - math.exp(-cap / mean))


# expected packets per slice and step (users * step / mean inter-arrival), which scales the observation to ~1
EXPECTED_ARRIVALS = np.array(USERS) * SLOTS_PER_STEP * SLOT_S / np.array(
    [0.080, _truncated_mean(0.006, 0.0125), 0.180])


def action_table(resolution_hz: float = 1e6, bandwidth_hz: float = BANDWIDTH_HZ, slices: int = 3) -> np.ndarray:
    """Every split of the bandwidth into ``slices`` positive multiples of ``resolution_hz``, in Hz, [A, slices].

    1 MHz over 20 MHz gives C(19, 2) = 171 actions, 200 kHz gives C(99, 2) = 4851 (the paper's two sizes)."""
    units = round(bandwidth_hz / resolution_hz)
    if units < slices or not math.isclose(units * resolution_hz, bandwidth_hz):
        raise ValueError(f"resolution_hz: {resolution_hz:g} must divide {bandwidth_hz:g} into >= {slices} parts")
    rows = []
    for cuts in combinations(range(1, units), slices - 1):
        edges = (0, *cuts, units)
        rows.append([edges[i + 1] - edges[i] for i in range(slices)])
    return np.asarray(rows, dtype=np.float64) * resolution_hz


@dataclass
class StepReport:
    """One step (400 slots) of the base station, per slice."""

    arrived: np.ndarray  # [3] packets that arrived (the paper's state)
    successful: np.ndarray  # [3]
    ssr: np.ndarray  # [3] u_n
    se: float  # s, bit/s/Hz over the whole band
    utility: float  # U = alpha * s + sum beta_n u_n
    delivered_bits: np.ndarray = field(default_factory=lambda: np.zeros(3))


class BaseStation:
    """The paper's base station; ``step(bandwidth_hz)`` simulates 400 slots with a per-slice split."""

    def __init__(self, seed: int = 0, alpha: float = 0.01, beta: tuple[float, float, float] = (1.0, 1.0, 1.0)):
        self.alpha = float(alpha)
        self.beta = np.asarray(beta, dtype=np.float64)
        self.rng = np.random.default_rng(seed)
        self.category = np.repeat(np.arange(3), USERS)
        n = len(self.category)
        self.members = [np.flatnonzero(self.category == i) for i in range(3)]
        self.onehot = np.eye(3)[self.category]  # [U, 3]
        r = np.sqrt(self.rng.uniform((MIN_DIST_M / RADIUS_M) ** 2, 1.0, n)) * RADIUS_M
        # TR 36.814 as topology.path_loss_db, without its 35 m macro-cell floor: this cell's users are 5-40 m away
        path_loss_db = 128.1 + 37.6 * np.log10(r / 1000.0)
        psd_dbm = TX_DBM - 10 * np.log10(BANDWIDTH_HZ)
        self.mean_snr = 10 ** ((psd_dbm - path_loss_db - NOISE_DBM_HZ) / 10)
        self.rem = np.zeros((n, QUEUE))  # bits left of each queued packet, FIFO, compacted left
        self.arr = np.zeros((n, QUEUE), dtype=np.int64)  # arrival slot of each queued packet
        self.n = np.zeros(n, dtype=np.int64)  # packets queued
        self.pointer = np.zeros(3, dtype=np.int64)  # round-robin pointer per slice (position in members)
        self.clock = 0  # slots since the start
        self._cols = np.arange(QUEUE)[None, :]
        self._rows = np.arange(n)[:, None]
        self._lat = LATENCY_SLOTS[self.category][:, None]
        self._rate_bits = RATE_SLA[self.category] * SLOT_S - 1e-9
        self.next_arrival = self._interarrival(np.arange(n))  # seconds after the current step's start

    # ------------------------------------------------------------------ traffic
    def _interarrival(self, users: np.ndarray) -> np.ndarray:
        cat = self.category[users]
        out = np.empty(len(users))
        m = cat == 0
        out[m] = self.rng.uniform(0.0, 0.160, m.sum())
        m = cat == 1
        out[m] = _truncated_exponential(self.rng, 0.006, 0.0125, m.sum())
        m = cat == 2
        out[m] = self.rng.exponential(0.180, m.sum())
        return out

    def _sizes(self, cat: np.ndarray) -> np.ndarray:
        out = np.empty(len(cat))
        m = cat == 0
        out[m] = 320.0
        m = cat == 1
        out[m] = np.ceil(_truncated_exponential(self.rng, 800.0, 2000.0, m.sum()))
        m = cat == 2
        out[m] = self.rng.choice(URLLC_SIZES_BITS, m.sum())
        return out

    def _arrivals(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """This step's arrivals sorted by slot: (slot, user, bits)."""
        horizon = SLOTS_PER_STEP * SLOT_S
        slots, users = [], []
        t = self.next_arrival.copy()
        alive = np.arange(len(t))
        while alive.size:
            inside = t[alive] < horizon
            alive = alive[inside]
            if not alive.size:
                break
            slots.append((t[alive] / SLOT_S).astype(np.int64))
            users.append(alive)
            t[alive] += self._interarrival(alive)
        self.next_arrival = t - horizon
        if not slots:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
        slot = np.concatenate(slots)
        user = np.concatenate(users)
        order = np.lexsort((user, slot))
        slot, user = slot[order], user[order]
        return slot, user, self._sizes(self.category[user])

    # ------------------------------------------------------------------ one step
    def step(self, bandwidth_hz: np.ndarray) -> StepReport:
        """Simulate 400 slots with slice bandwidths ``bandwidth_hz`` [3] (Hz, summing to at most 20 MHz)."""
        bw = np.asarray(bandwidth_hz, dtype=np.float64)
        if bw.shape != (3,) or np.any(bw < 0) or bw.sum() > BANDWIDTH_HZ * (1 + 1e-9):
            raise ValueError(f"bandwidth_hz: must be 3 non-negative values summing to <= {BANDWIDTH_HZ:g} Hz")
        rbs = np.floor(bw / RB_HZ + 1e-9).astype(np.int64)
        slot, user, bits = self._arrivals()
        arrived = np.bincount(self.category[user], minlength=3).astype(np.float64)
        # a user with several arrivals in one slot: its later ones go in later "layers" (rare; video only)
        first = np.ones(len(user), dtype=bool)
        first[1:] = (user[1:] != user[:-1]) | (slot[1:] != slot[:-1])
        layer = np.arange(len(user)) - np.maximum.accumulate(np.where(first, np.arange(len(user)), 0))
        order = np.lexsort((layer, slot))
        slot, user, bits, layer = slot[order], user[order], bits[order], layer[order]
        starts = np.searchsorted(slot, np.arange(SLOTS_PER_STEP + 1))
        multi = np.zeros(SLOTS_PER_STEP, dtype=bool)
        multi[slot[layer > 0]] = True
        fading = self.rng.exponential(1.0, (SLOTS_PER_STEP, len(self.category)))
        se = np.minimum(np.log2(1.0 + self.mean_snr[None, :] * fading), SE_MAX) * (LAYERS * RB_HZ * SLOT_S)
        success = np.zeros(3)
        delivered = np.zeros(3)
        for t in range(SLOTS_PER_STEP):
            now = self.clock + t
            a, b = starts[t], starts[t + 1]
            if a < b:
                if multi[t]:
                    for k in range(int(layer[a:b].max()) + 1):
                        sel = np.flatnonzero(layer[a:b] == k) + a
                        self._enqueue(user[sel], bits[sel], now)
                else:
                    self._enqueue(user[a:b], bits[a:b], now)
            ok, sent = self._serve(self._schedule(rbs) * se[t], now)  # capacity in bits this slot
            success += ok
            delivered += sent
        self.clock += SLOTS_PER_STEP
        ssr = np.where(arrived > 0, success / np.maximum(arrived, 1), 1.0)
        s = float(delivered.sum() / (BANDWIDTH_HZ * SLOTS_PER_STEP * SLOT_S))
        u = float(self.alpha * s + self.beta @ ssr)
        return StepReport(arrived=arrived, successful=success, ssr=ssr, se=s, utility=u, delivered_bits=delivered)

    def _enqueue(self, user: np.ndarray, bits: np.ndarray, now: int) -> None:
        """Append arrivals (distinct users) to their queues; an arrival to a full queue is lost."""
        room = self.n[user] < QUEUE
        if not room.all():
            user, bits = user[room], bits[room]
        pos = self.n[user]
        self.rem[user, pos] = bits
        self.arr[user, pos] = now
        self.n[user] += 1

    def _schedule(self, rbs: np.ndarray) -> np.ndarray:
        """Resource blocks per user this slot (round robin within each slice over backlogged users)."""
        out = np.zeros(len(self.category))
        active = self.n > 0
        for i, members in enumerate(self.members):
            act = np.flatnonzero(active[members])
            m = act.size
            if m == 0 or rbs[i] == 0:
                continue
            base, extra = divmod(int(rbs[i]), m)
            out[members[act]] = base
            if extra:
                p = self.pointer[i]
                rotated = np.concatenate([act[act >= p], act[act < p]])
                chosen = rotated[:extra]
                out[members[chosen]] += 1.0
                self.pointer[i] = (chosen[-1] + 1) % len(members)
        return out

    def _serve(self, cap_bits: np.ndarray, now: int) -> tuple[np.ndarray, np.ndarray]:
        """Serve every queue FIFO with ``cap_bits``; drop what can no longer meet its latency. Delivered and
        expired packets are always a prefix of a queue (same latency for all of a user's packets), so the queue
        shifts left by their count."""
        valid = self._cols < self.n[:, None]
        cum = np.cumsum(self.rem, axis=1)
        done = valid & (cum <= cap_bits[:, None] + 1e-9)
        nd = done.sum(axis=1)
        sent_bits = np.minimum(cap_bits, cum[:, -1])
        part = np.flatnonzero(nd < self.n)
        if part.size:
            j = nd[part]
            self.rem[part, j] -= cap_bits[part] - (cum[part, j] - self.rem[part, j])
        delay = now - self.arr + 1
        good = (done & (delay <= self._lat)).sum(axis=1) * (cap_bits >= self._rate_bits)
        expired = (valid & ~done & (delay >= self._lat)).sum(axis=1)
        shift = nd + expired
        if shift.any():
            idx = self._cols + shift[:, None]
            inside = idx < QUEUE
            idx = np.minimum(idx, QUEUE - 1)
            self.rem = np.where(inside, self.rem[self._rows, idx], 0.0)
            self.arr = self.arr[self._rows, idx]
            self.n = self.n - shift
        return good @ self.onehot, sent_bits @ self.onehot


def threshold(step: np.ndarray | int, gamma_min: float, gamma_max: float, ramp_steps: int) -> np.ndarray:
    """gamma^t = min(gamma_min + sigma t, gamma_max) with sigma = (gamma_max - gamma_min) / ramp_steps (eq. 6)."""
    sigma = (gamma_max - gamma_min) / max(ramp_steps, 1)
    return np.minimum(gamma_min + sigma * np.asarray(step, dtype=np.float64), gamma_max)


def shaped_reward(u: np.ndarray | float, gamma_t: np.ndarray | float, gamma_max: float) -> np.ndarray:
    """Eq. 6: 0 below the threshold, 1 between it and gamma_max, 1 + (U - gamma_max) / 2 above."""
    u = np.asarray(u, dtype=np.float64)
    return np.where(u < gamma_t, 0.0, np.where(u < gamma_max, 1.0, 1.0 + (u - gamma_max) / 2.0))


def _truncated_exponential(rng: np.random.Generator, mean: float, cap: float, n: int) -> np.ndarray:
    """Exponential(mean) conditioned on <= cap (inverse transform of the truncated law)."""
    u = rng.uniform(0.0, 1.0, n)
    return -mean * np.log1p(-u * (1.0 - math.exp(-cap / mean)))
