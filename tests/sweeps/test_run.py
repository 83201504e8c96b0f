"""Running a sweep (slicing/sweeps/run.py): the search algorithm and scheduler built from the file, and the
``--set`` line written beside the best config. (Whole sweeps run on Ray in test_trainables.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from slicing.sweeps.run import SweepResult, _flow, _scheduler
from slicing.sweeps.spec import SweepFileError, load_sweep
from tests.sweeps.helpers import write_sweep


def test_optuna_is_optional(tmp_path):
    import importlib.util

    from slicing.sweeps.run import _searcher

    data = yaml.safe_load(Path("tune_configs/idla.yaml").read_text())
    data.update(search="optuna", scenario=str(Path("scenarios/idla.yaml").resolve()))
    sweep = load_sweep(write_sweep(tmp_path, data))
    if importlib.util.find_spec("optuna") is None:
        with pytest.raises(SweepFileError, match="pip install optuna"):
            _searcher(sweep)
    else:
        assert type(_searcher(sweep)).__name__ == "OptunaSearch"


def test_scheduler_is_asha_from_the_file_or_none():
    from ray.tune.schedulers import ASHAScheduler

    assert _scheduler(load_sweep("tune_configs/idla.yaml")) is None  # scheduler: null
    asha = _scheduler(load_sweep("tune_configs/estimator.yaml"))
    assert isinstance(asha, ASHAScheduler)
    assert (asha._time_attr, asha._max_t, asha._reduction_factor) == ("training_iteration", 12, 3)
    assert [t for t, _ in asha._brackets[0]._rungs] == [6, 2]  # from grace_period 2, times 3, below max_t 12


def test_best_config_values_print_as_set_overrides():
    assert _flow([64, 32]) == "[64,32]"
    assert _flow(0.001) == "0.001" and _flow(12) == "12" and _flow("a") == "a"
    # the printed value parses back to the value, as `--set idla.key=value` will parse it
    for value in ([36, 24, 16, 16], 0.0375, 7, True):
        assert yaml.safe_load(_flow(value)) == value
    res = SweepResult(name="n", metric="mae", mode="min", best_config={"lr": 0.01}, best_metric=0.1)
    assert res.summary() == {"best_config": {"lr": 0.01}, "best_metric": 0.1, "trials": 0}
