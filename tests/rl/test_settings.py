"""Typed settings of slicing.rl (slicing/rl/settings.py): strict models that name an unknown key, cross-field
rules raised as ``FieldError`` with their path, and the checks against a scenario. No Ray started."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from slicing.config import load_scenario
from slicing.errors import FieldError
from slicing.rl.safety import SafeCellSlicingEnv
from slicing.rl.settings import ImitationSettings, SafeEnvConfig, SafetySettings, region_cells
from tests.rl.helpers import IMITATION_TINY as TINY


def test_region_cells_sorted_capped_and_checked(idla_scenario):
    np.testing.assert_array_equal(region_cells(idla_scenario, [5, 2, 5, 0]), [0, 2, 5])  # unique, sorted
    np.testing.assert_array_equal(region_cells(idla_scenario, region=4, start=10), [10, 11])  # capped at 12 cells
    np.testing.assert_array_equal(region_cells(idla_scenario), np.arange(idla_scenario.cells))
    for bad in ([12], [-1, 3], []):
        with pytest.raises(ValueError, match=r"within \[0, 12\) and non-empty"):
            region_cells(idla_scenario, bad)


def test_train_settings_are_strict_and_checked_against_the_scenario():
    from pydantic import ValidationError

    from slicing.rl.train import TrainSettings, build_config

    with pytest.raises(ValidationError, match="episodes_len") as err:
        TrainSettings.model_validate({"episodes_len": 16})
    assert err.value.errors()[0]["type"] == "extra_forbidden"
    with pytest.raises(ValidationError, match="algo"):
        TrainSettings(algo="dqn")
    sc = load_scenario("scenarios/idla.yaml")
    with pytest.raises(ValidationError, match=r"groups: at most one group per cell \(6 cells"):
        TrainSettings.model_validate({"groups": 7, "region": 6}, context={"scenario": sc})
    # a typo in the extra env config keys fails when the config is built, naming the key (no Ray needed)
    with pytest.raises(ValidationError, match="timline"):
        build_config(sc, TrainSettings(region=6, env_config={"timline": True}))
    config, _ = build_config(sc, TrainSettings(region=6, episode_len=16, env_config={"timeline": True}))
    assert config.env_config["timeline"] is True and config.env_config["cell_ids"] == list(range(6))
    assert set(config.env_config) == {"scenario", "cell_ids", "seed", "reward", "episode_len", "timeline"}


def test_settings_reject_a_warmup_as_long_as_the_run_and_unknown_keys():
    with pytest.raises(ValidationError) as err:
        SafetySettings(iterations=4, warmup=4)
    cause = err.value.errors()[0]["ctx"]["error"]
    assert isinstance(cause, FieldError) and cause.path == ("warmup",) and "< iterations (4)" in cause.message
    with pytest.raises(ValidationError, match="warmpu") as err:
        SafetySettings.model_validate({"warmpu": 3})
    assert err.value.errors()[0]["type"] == "extra_forbidden"
    with pytest.raises(ValidationError):  # frozen: derived values are computed, never written back
        SafetySettings().cells = 3  # type: ignore[misc]
    sc = load_scenario("scenarios/idla.yaml", ["steps=500"])  # 6 days
    assert SafetySettings(cells=999).region(sc) == sc.cells
    with pytest.raises(ValidationError, match="must leave training days"):
        SafetySettings.model_validate({"eval_days": 6}, context={"scenario": sc})
    SafetySettings.model_validate({"eval_days": 5}, context={"scenario": sc})


def test_safe_env_config_names_an_unknown_key():
    sc = load_scenario("scenarios/idla.yaml", ["steps=500"])
    with pytest.raises(ValidationError, match="safety_recrod"):
        SafeCellSlicingEnv({"scenario": sc, "region": 3, "safety_recrod": True})
    env = SafeCellSlicingEnv(SafeEnvConfig(scenario=sc, region=3, start_days=(1,), lagrange_lambda=0.5))
    assert env.start_days.tolist() == [1] and env.lagrange_lambda == 0.5


def test_settings_name_an_unknown_key_and_check_early_against_iterations():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="bc_iteratoins") as err:
        ImitationSettings.model_validate({"bc_iteratoins": 5})
    assert err.value.errors()[0]["type"] == "extra_forbidden"
    with pytest.raises(ValidationError, match=r"early: must be <= iterations \(2\)"):
        ImitationSettings(iterations=2, early=3)
    assert TINY.train_settings(3).train_batch == 48  # given
    assert ImitationSettings(cells=3, episode_len=16).train_settings(3).train_batch == 3 * 16  # PPO: one episode


def test_settings_name_an_unknown_key_and_always_compare_integrated():
    from pydantic import ValidationError

    from slicing.rl.settings import STRATEGIES, TransferSettings

    with pytest.raises(ValidationError, match="pretrain_iteration") as err:
        TransferSettings.model_validate({"pretrain_iteration": 3})
    assert err.value.errors()[0]["type"] == "extra_forbidden"
    assert TransferSettings().compared == list(STRATEGIES)
    assert TransferSettings(strategies=("feature", "model")).compared == ["feature", "model", "integrated"]
    with pytest.raises(ValidationError, match="copy"):
        TransferSettings(strategies=("model", "copy"))
    with pytest.raises(ValidationError, match="sources"):
        TransferSettings(sources=5)
