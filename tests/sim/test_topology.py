"""Hexagonal three-sector layout and interference coupling (slicing/sim/topology.py)."""

from __future__ import annotations

import numpy as np
import pytest

from slicing.config import Radio, Topology
from slicing.sim.topology import SECTOR_AZIMUTH_DEG, antenna_gain_db, build_geometry, path_loss_db, site_positions


def test_topology_subset_rows_equal_full_rows(small_scenario):
    full = build_geometry(small_scenario.topology, small_scenario.radio)
    part = build_geometry(small_scenario.topology, small_scenario.radio, np.arange(10, 20))
    assert np.array_equal(full.nbr_ids[10:20], part.nbr_ids)
    assert np.allclose(full.nbr_rx_mw[10:20], part.nbr_rx_mw)
    assert not np.isin(10, part.halo_ids) and len(part.halo_ids) > 0
    assert (full.nbr_ids != full.cell_ids[:, None]).all()  # a cell never interferes with itself


def test_sites_sit_on_a_hexagonal_grid():
    topo = Topology(sites=9, isd_m=500.0)
    xy = site_positions(topo)  # 3 columns x 3 rows
    assert xy.shape == (9, 2)
    np.testing.assert_allclose(xy[:3], [[0, 0], [500, 0], [1000, 0]])
    np.testing.assert_allclose(xy[3], [250, 500 * np.sqrt(3) / 2])  # odd rows shifted by half a distance
    d = np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1))  # [sites, sites]
    nearest = np.sort(d, axis=1)[:, 1]
    np.testing.assert_allclose(nearest, 500.0)  # every site's nearest neighbour is one ISD away


def test_antenna_pattern_and_path_loss():
    assert antenna_gain_db(np.array([0.0]))[0] == 0.0
    np.testing.assert_allclose(antenna_gain_db(np.array([65.0, -65.0, 425.0])), -12.0)  # symmetric, folded
    np.testing.assert_allclose(antenna_gain_db(np.array([180.0, 120.0])), -20.0)  # front-to-back floor
    d = np.array([10.0, 35.0, 100.0, 1000.0])
    pl = path_loss_db(d, 2.0)
    assert pl[0] == pl[1] and np.all(np.diff(pl[1:]) > 0)  # clamped below 35 m, then increasing
    assert pl[3] == pytest.approx(128.1)  # 1 km at 2 GHz
    assert path_loss_db(d, 4.0)[3] - pl[3] == pytest.approx(21.0 * np.log10(2.0))


def test_cells_are_sectors_of_their_site():
    topo, radio = Topology(sites=7, neighbours=6), Radio()
    geo = build_geometry(topo, radio)
    xy = site_positions(topo)
    assert geo.cell_ids.tolist() == list(range(21)) and geo.nbr_ids.shape == (21, 6)
    offset = geo.centroid_xy_m - xy[geo.cell_ids // 3]  # cell id = 3 * site + sector
    np.testing.assert_allclose(np.hypot(offset[:, 0], offset[:, 1]), topo.isd_m / 3)
    bearing = np.rad2deg(np.arctan2(offset[:, 1], offset[:, 0])) % 360
    np.testing.assert_allclose(bearing, SECTOR_AZIMUTH_DEG[geo.cell_ids % 3] % 360)
    assert np.all(np.diff(geo.nbr_rx_mw, axis=1) <= 0)  # strongest interferer first
    assert np.all(geo.serving_rx_mw > geo.nbr_rx_mw[:, 0])  # the serving sector dominates at its centroid
    assert geo.halo_ids.size == 0  # the whole network: no neighbour outside it
