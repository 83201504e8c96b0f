"""Hexagonal three-sector layout and the sparse interference coupling between cells.

Sites sit on a hexagonal grid (row by row, odd rows shifted by half an inter-site distance), three sectors each
with azimuths 30, 150 and 270 degrees. Cell id = 3 * site + sector, so contiguous id ranges are contiguous bands of
geography: a shard is a range of ids and only its boundary cells need neighbours from other shards.

Coupling: every cell is represented by its sector centroid (isd / 3 along the azimuth). For each cell we keep the
K strongest interferers at that centroid (3GPP macro path loss and the 3GPP sector antenna pattern), as received
powers in mW. Rows are computed independently, so a subset of cells gets exactly the rows of the full network.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from slicing.config import SECTOR_AZIMUTH_DEG as _AZIMUTHS
from slicing.config import Radio, Topology

SECTOR_AZIMUTH_DEG = np.array(_AZIMUTHS)  # the layout (sites, centroids) is Topology's, so config can check regions
_CANDIDATE_SITES = 19  # own site + two rings: every interferer that can rank in the top K


@dataclass(frozen=True)
class CellGeometry:
    cell_ids: np.ndarray  # [N] int64, sorted
    centroid_xy_m: np.ndarray  # [N, 2]
    serving_rx_mw: np.ndarray  # [N] received power of the serving cell at the centroid
    nbr_ids: np.ndarray  # [N, K] int64 global ids of the K strongest interferers
    nbr_rx_mw: np.ndarray  # [N, K] their received power at full load

    @property
    def halo_ids(self) -> np.ndarray:
        """Neighbours outside this set of cells (sorted, unique): what a shard needs from other shards."""
        nbr = np.unique(self.nbr_ids)
        return nbr[~np.isin(nbr, self.cell_ids)]


def site_positions(topo: Topology) -> np.ndarray:
    """[sites, 2] metres, hexagonal grid filled row by row in a near-square patch (``Topology.site_xy_m``)."""
    return topo.site_xy_m()


def path_loss_db(distance_m: np.ndarray, carrier_ghz: float) -> np.ndarray:
    """3GPP TR 36.814 macro urban, scaled with frequency from 2 GHz."""
    d_km = np.maximum(distance_m, 35.0) / 1000.0
    return 128.1 + 37.6 * np.log10(d_km) + 21.0 * np.log10(carrier_ghz / 2.0)


def antenna_gain_db(offset_deg: np.ndarray) -> np.ndarray:
    """3GPP sector pattern: -min(12 (theta / 65)^2, 20) dB, theta folded into [-180, 180]."""
    theta = (offset_deg + 180.0) % 360.0 - 180.0
    return -np.minimum(12.0 * (theta / 65.0) ** 2, 20.0)


def cell_centroids(topo: Topology, cell_ids: np.ndarray | None = None) -> np.ndarray:
    """[N, 2] metres: the centroid of each cell's sector (all cells when ``cell_ids`` is None)."""
    return topo.centroid_xy_m(cell_ids)


def _rx_power_mw(tx_site_xy: np.ndarray, tx_sector: np.ndarray, at_xy: np.ndarray, radio: Radio) -> np.ndarray:
    delta = at_xy - tx_site_xy  # [..., 2]
    dist = np.hypot(delta[..., 0], delta[..., 1])
    bearing = np.rad2deg(np.arctan2(delta[..., 1], delta[..., 0]))
    gain_db = antenna_gain_db(bearing - SECTOR_AZIMUTH_DEG[tx_sector]) - path_loss_db(dist, radio.carrier_ghz)
    return 10.0 ** ((radio.tx_power_dbm + gain_db) / 10.0)


def build_geometry(topo: Topology, radio: Radio, cell_ids: np.ndarray | None = None) -> CellGeometry:
    sites_xy = site_positions(topo)
    if cell_ids is None:
        cell_ids = np.arange(topo.cells, dtype=np.int64)
    cell_ids = np.asarray(cell_ids, dtype=np.int64)
    centroid = topo.centroid_xy_m(cell_ids)  # [N, 2]
    k_sites = min(_CANDIDATE_SITES, topo.sites)
    _, near = cKDTree(sites_xy).query(centroid, k=k_sites)  # [N, k_sites]
    near = np.asarray(near, dtype=np.int64).reshape(len(cell_ids), k_sites)
    cand = (3 * near[:, :, None] + np.arange(3)[None, None, :]).reshape(len(cell_ids), -1)  # [N, 3 k_sites]
    cand = np.sort(cand, axis=1)  # order-independent of the tree's tie-breaking
    rx = _rx_power_mw(sites_xy[cand // 3], cand % 3, centroid[:, None, :], radio)  # [N, C]
    rx[cand == cell_ids[:, None]] = -1.0  # the serving cell is not its own interferer
    k = min(topo.neighbours, cand.shape[1] - 1)
    order = np.argsort(-rx, axis=1, kind="stable")[:, :k]  # [N, K] strongest first
    serving = _rx_power_mw(sites_xy[cell_ids // 3], cell_ids % 3, centroid, radio)
    return CellGeometry(
        cell_ids=cell_ids,
        centroid_xy_m=centroid,
        serving_rx_mw=serving,
        nbr_ids=np.take_along_axis(cand, order, axis=1),
        nbr_rx_mw=np.maximum(np.take_along_axis(rx, order, axis=1), 0.0),
    )
