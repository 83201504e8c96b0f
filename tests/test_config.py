"""Scenario loading, --set overrides and the errors they give."""

from __future__ import annotations

import pytest

from slicing.config import ScenarioError, load_scenario


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
