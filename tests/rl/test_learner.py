"""slicing/rl/learner.py on a real (tiny) RLlib PPO: read the learner module, write weights by key, sync runners."""

from __future__ import annotations

import numpy as np
import pytest

from slicing.rl.learner import load_weights, module_state
from slicing.rl.train import TrainSettings, build_config

MID = "group_0"


@pytest.fixture(scope="module")
def algo(ray_session, scenario):
    config, _ = build_config(scenario, TrainSettings(algo="ppo", region=3, episode_len=8, train_batch=32,
                                                     hidden=(8, 8), iterations=1, seed=0))
    built = config.build_algo()
    yield built
    built.stop()


def _runner_state(algo) -> dict[str, np.ndarray]:
    module = algo.env_runner_group.local_env_runner.module[MID]
    return {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}


def test_module_state_is_a_numpy_copy_of_the_learner_module(algo):
    state = module_state(algo, MID)
    assert state and all(isinstance(v, np.ndarray) for v in state.values())
    key = next(k for k in state if k.endswith("weight"))
    state[key][...] = 123.0  # a copy: the learner is untouched
    assert not np.any(module_state(algo, MID)[key] == 123.0)


def test_load_weights_writes_mapped_keys_and_syncs_the_env_runner(algo):
    before = module_state(algo, MID)
    keys = [k for k in before if k.endswith(".weight")][:2]
    src = {f"src.{k}": np.full_like(before[k], 0.25) for k in keys}
    load_weights(algo, src, {f"src.{k}": k for k in keys}, MID, "test copy", "same sizes")
    after = module_state(algo, MID)
    for k in keys:
        np.testing.assert_array_equal(after[k], 0.25)
    untouched = [k for k in before if k not in keys]
    assert all(np.array_equal(after[k], before[k]) for k in untouched)
    runner = _runner_state(algo)  # the env runner acts with the new weights (inference-only keys)
    assert any(k in runner and np.all(runner[k] == 0.25) for k in keys)


def test_load_weights_refuses_a_shape_mismatch_naming_both_shapes(algo):
    state = module_state(algo, MID)
    key = next(k for k in state if k.endswith(".weight"))
    wrong = np.zeros(tuple(n + 1 for n in state[key].shape), dtype=np.float32)
    with pytest.raises(ValueError) as err:
        load_weights(algo, {"s": wrong}, {"s": key}, MID, "test copy", "same sizes")
    assert str(err.value) == (f"test copy: {key} has shape {tuple(state[key].shape)} in the target but "
                              f"{tuple(wrong.shape)} in the source (s); same sizes")
    np.testing.assert_array_equal(module_state(algo, MID)[key], state[key])  # nothing written
