"""Scenario loading, --set overrides and the errors they give; scenario events and their validation."""

from __future__ import annotations

import numpy as np
import pytest

from slicing.config import CellRange, Disc, Region, Scenario, ScenarioError, Topology, build_scenario, load_scenario


def test_idla_scenario_matches_the_paper(idla_scenario):
    assert idla_scenario.cells == 12
    assert [s.throughput_req_mbps for s in idla_scenario.slices] == [2.0, 1.0, 1.5, 0.5]
    assert idla_scenario.initial_slices == (1, 2, 4)
    assert idla_scenario.schedule[0].add == (3,) and idla_scenario.schedule[0].at_fraction == 0.6
    assert idla_scenario.radio.n_prb == 100 and idla_scenario.period_s == 900


def test_overrides_apply_and_validate():
    sc = load_scenario("scenarios/idla.yaml", ["seed=11", "topology.sites=7", "slices.3.delay_req_ms=25"])
    assert sc.seed == 11 and sc.cells == 21 and sc.slices[3].delay_req_ms == 25


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("topology.sitez=3", "topology.sitez"),
        ("topology.sites=0", "topology.sites"),
        ("topology.sites=abc", "topology.sites"),
        ("seed=-1", "seed"),
        ("idla.starts=0", "idla.starts"),
        ("initial_slices=[1,9]", "unknown slice ids [9]"),
        ("noequals", "dotted.key=value"),
        ("slices.9.delay_req_ms=1", "slices.9"),
    ],
)
def test_bad_overrides_name_the_key(override, needle):
    with pytest.raises(ScenarioError) as err:
        load_scenario("scenarios/idla.yaml", [override])
    assert needle in str(err.value)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ScenarioError, match="does not exist"):
        load_scenario(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n")
    with pytest.raises(ScenarioError, match="mapping"):
        load_scenario(bad)


def _events_error(events: list, **changes) -> str:
    """The ScenarioError of a 4-site (12-cell), 20-period scenario with ``events``."""
    with pytest.raises(ScenarioError) as err:
        build_scenario({"topology": {"sites": 4}, "steps": 20, "events": events} | changes)
    return str(err.value)


OUTAGE = {"kind": "outage", "region": {"sites": [0]}}


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ({**OUTAGE, "region": {"sites": [40]}}, "events.1.region.sites: site 40 is outside the network (sites 0..3)"),
        ({**OUTAGE, "region": {"sites": [1, 4, 7]}}, "events.1.region.sites: sites 4, 7 are outside the network"),
        ({**OUTAGE, "region": {"sites": [-1]}}, "events.1.region.sites.0: Input should be greater than or equal to 0"),
        ({**OUTAGE, "region": {"cells": {"first": 3, "last": 12}}},
         "events.1.region.cells: cell 12 is outside the network (cells 0..11)"),
        ({**OUTAGE, "region": {"cells": {"first": 5, "last": 2}}}, "events.1.region.cells: last (2) must be >= first"),
        ({**OUTAGE, "region": {"disc": {"x_m": 9000, "y_m": 0, "radius_m": 100}}},
         "events.1.region.disc: no cell centroid lies in the disc"),
        ({**OUTAGE, "region": {"disc": {"x_m": 0, "y_m": 0, "radius_m": 0}}},
         "events.1.region.disc.radius_m: Input should be greater than 0"),
        ({**OUTAGE, "region": {"sites": [0], "cells": {"first": 0, "last": 1}}},
         "events.1.region: give exactly one of sites, cells or disc (got sites, cells)"),
        ({**OUTAGE, "region": {"site": [0]}}, "events.1.region.site: Extra inputs are not permitted (unknown key)"),
        ({**OUTAGE, "until": 5}, "events.1.until: Extra inputs are not permitted (unknown key)"),
        ({**OUTAGE, "start": 5, "stop": 5}, "events.1.stop: must be > start (5), got 5"),
        ({**OUTAGE, "start": 20}, "events.1.start: period 20 is beyond the run (steps = 20: periods 0..19)"),
        ({"kind": "traffic", "slices": {1: 21}}, "events.1.slices.1: Input should be less than or equal to 20"),
        ({"kind": "traffic", "all": -0.5}, "events.1.all: Input should be greater than or equal to 0"),
        ({"kind": "traffic", "slices": {9: 2}}, "events.1.slices: unknown slice ids [9]; the catalogue has [1, 2, 3"),
        ({"kind": "traffic"}, "events.1: give exactly one of slices (slice id -> multiplier) or all"),
        ({"kind": "add_slice", "slice": 7}, "events.1.slice: unknown slice ids [7]"),
        ({"kind": "add_slice", "slice": 3, "fraction": 0}, "events.1.fraction: Input should be greater than 0"),
        ({"kind": "requirement", "slice": 2}, "events.1: give throughput_mbps, delay_ms or both"),
        ({"kind": "requirement", "slice": 2, "delay_ms": 0}, "events.1.delay_ms: Input should be greater than 0"),
        ({"kind": "flood"}, "events.1: Input tag 'flood' found using 'kind' does not match any of the expected tags"),
        ({"region": {"sites": [0]}}, "events.1: Unable to extract tag using discriminator 'kind'"),
        ({"kind": "outage"}, "events.1: outage events.1 leaves no live cell in periods 0..19"),
    ],
)
def test_event_errors_name_the_key_and_the_rule(event, expected):
    assert expected in _events_error([{"kind": "traffic", "all": 1.1}, event])  # the second event: events.1


def test_overlapping_outages_that_leave_no_cell_name_both_events():
    msg = _events_error([{**OUTAGE, "region": {"sites": [0, 1]}, "start": 0, "stop": 6},
                         {"kind": "traffic", "all": 2},
                         {**OUTAGE, "region": {"cells": {"first": 6, "last": 11}}, "start": 4, "stop": 8}])
    assert msg == "events.2: outages events.0 and events.2 together leave no live cell in periods 4..5"
    build_scenario({"topology": {"sites": 4}, "steps": 20, "events": [  # back to back: a cell is always live
        {**OUTAGE, "region": {"sites": [0, 1]}, "start": 0, "stop": 6},
        {**OUTAGE, "region": {"sites": [2, 3]}, "start": 6}]})


def test_events_parse_round_trip_and_leave_the_schedule_alone():
    sc = load_scenario("scenarios/idla.yaml", ["events=[{kind: add_slice, slice: 3, fraction: 0.5, start: 2}]"])
    assert sc.events[0].kind == "add_slice" and sc.events[0].fraction == 0.5 and sc.events[0].region is None
    assert sc.schedule[0].add == (3,)  # the schedule is untouched by events
    assert build_scenario(sc.model_dump(mode="json")) == sc
    assert Scenario.model_validate(sc.model_dump()) == sc


def test_regions_select_cells_by_site_range_and_centroid():
    topo = Topology(sites=4)
    ids = np.arange(topo.cells)
    assert np.flatnonzero(Region(sites=(1, 3)).contains(topo, ids)).tolist() == [3, 4, 5, 9, 10, 11]
    assert np.flatnonzero(Region(cells=CellRange(first=2, last=4)).contains(topo, ids)).tolist() == [2, 3, 4]
    x, y = topo.centroid_xy_m([7])[0]  # one sector's centroid, and a disc just around it
    assert np.flatnonzero(Region(disc=Disc(x_m=x, y_m=y, radius_m=1.0)).contains(topo, ids)).tolist() == [7]
