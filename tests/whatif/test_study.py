"""Study files: validation errors name the key and the rule; the shipped studies validate."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from slicing.study import BASE, StudyError, load_study

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, body: dict) -> Path:
    p = tmp_path / "study.yaml"
    p.write_text(yaml.safe_dump(body))
    return p


def tiny(**extra) -> dict:
    body = {"name": "t", "sites": 4, "periods": 8, "schemes": ["traffic"], "seeds": [0],
            "set": ["initial_slices=[1, 2, 4]"],
            "variants": [{"name": "more", "events": [{"kind": "traffic", "slices": {1: 2.0}}]}]}
    body.update(extra)
    return body


def error_of(tmp_path: Path, body: dict) -> str:
    with pytest.raises(StudyError) as err:
        load_study(write(tmp_path, body))
    return str(err.value)


def test_a_small_study_builds_every_variant(tmp_path: Path) -> None:
    loaded = load_study(write(tmp_path, tiny()))
    assert loaded.names == [BASE, "more"]
    assert loaded.cells == 12
    assert all(sc.steps == 10 and sc.topology.sites == 4 for sc in loaded.scenarios.values())  # at least 10
    assert loaded.scenarios[BASE].events == () and len(loaded.scenarios["more"].events) == 1


def test_overrides_apply_to_the_study(tmp_path: Path) -> None:
    loaded = load_study(write(tmp_path, tiny()), ["periods=3", "seeds=[4, 5]"])
    assert loaded.study.periods == 3 and loaded.study.seeds == (4, 5)
    assert loaded.scenarios["more"].steps == 10  # a scenario has at least 10; the runs stop after 3


def test_unknown_keys_are_named(tmp_path: Path) -> None:
    assert "perods: Extra inputs are not permitted (unknown key)" in error_of(tmp_path, tiny(perods=3))
    body = tiny()
    body["variants"][0]["events"][0]["multiplier"] = 2
    msg = error_of(tmp_path, body)
    assert "variants.0.events.0" in msg and "multiplier" in msg and "unknown key" in msg


def test_a_region_outside_the_network_is_named(tmp_path: Path) -> None:
    body = tiny(variants=[{"name": "down", "events": [{"kind": "outage", "region": {"sites": [40]}, "start": 1,
                                                       "stop": 3}]}])
    msg = error_of(tmp_path, body)
    assert msg.startswith("variants.0.events.0.region") and "40" in msg and "outside" in msg


def test_outages_that_leave_no_cell_are_refused(tmp_path: Path) -> None:
    body = tiny(variants=[{"name": "dark", "events": [
        {"kind": "outage", "region": {"sites": [0, 1]}, "start": 0, "stop": 6},
        {"kind": "outage", "region": {"sites": [2, 3]}, "start": 4, "stop": 8}]}])
    msg = error_of(tmp_path, body)
    assert "variants.0.events.0" in msg and "variants.0.events.1" in msg and "no" in msg and "cell" in msg


def test_an_event_past_the_horizon_is_named(tmp_path: Path) -> None:
    body = tiny(variants=[{"name": "late", "events": [{"kind": "add_slice", "slice": 3, "start": 50}]}])
    msg = error_of(tmp_path, body)
    assert "variants.0.events.0" in msg and "50" in msg


@pytest.mark.parametrize(("change", "words"), [
    ({"variants": [{"name": "base"}]}, ["variants.0.name", "base"]),
    ({"variants": [{"name": "a"}, {"name": "a"}]}, ["variants.1.name", "variants.0"]),
    ({"seeds": [1, 1]}, ["seeds", "unique"]),
    ({"schemes": ["rl"]}, ["schemes.0"]),
    ({"variants": []}, ["variants"]),
    ({"scenario": "missing.yaml"}, ["scenario", "does not exist"]),
    ({"estimator": {"path": "nope.pt"}}, ["estimator.path", "does not exist"]),
])
def test_rules_of_the_study_itself(tmp_path: Path, change: dict, words: list[str]) -> None:
    msg = error_of(tmp_path, tiny(**change))
    for w in words:
        assert w in msg, msg


def test_a_bad_override_of_a_variant_is_named(tmp_path: Path) -> None:
    body = tiny(variants=[{"name": "v", "set": ["radio.bandwidth_mhz=-5"]}])
    msg = error_of(tmp_path, body)
    assert "variants.0" in msg and "radio.bandwidth_mhz" in msg


@pytest.mark.parametrize("name", ["regional.yaml", "city100k.yaml"])
def test_the_shipped_studies_validate(name: str) -> None:
    loaded = load_study(ROOT / "studies" / name)
    assert len(loaded.names) == 4  # the base and three variants
    assert all(sc.steps == max(10, loaded.study.periods) for sc in loaded.scenarios.values())
