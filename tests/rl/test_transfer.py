"""Heterogeneous cells (``Scenario.cell_classes``) and the transfer strategies on real RLlib SAC (tiny budgets)."""

from __future__ import annotations

import numpy as np
import pytest

from slicing.config import ScenarioError, load_scenario
from slicing.optim.baselines import traffic_proportional
from slicing.rl.settings import STRATEGIES
from slicing.sim.simulator import Simulator, cell_classes_of

BASE = ["topology.sites=5", "steps=200", "seed=3"]


def _scenario(*extra: str):
    return load_scenario("scenarios/idla.yaml", [*BASE, *extra])


# ------------------------------------------------------------------------------------------- cell classes
@pytest.mark.parametrize(("override", "match"), [
    ("cell_classes=[{name: a, cells: [0, 15]}]", r"cell_classes\.0 \('a'\)\.cells: cell id 15 out of range"),
    ("cell_classes=[{name: a, cells: [1, 2]}, {name: b, cells: [2]}]", r"cell 2 is already in class 'a'"),
    ("cell_classes=[{name: a, cells: [1], slice_load: {9: 2.0}}]", r"slice_load: unknown slice ids \[9\]"),
    ("cell_classes=[{name: a}]", r"exactly one of cells or fraction"),
    ("cell_classes=[{name: a, cells: [1], slice_load: {1: -1}}]", r"slice_load values must be in \[0, 20\]"),
    ("cell_classes=[{name: a, fraction: 0.7}, {name: b, fraction: 0.6}]", r"fractions sum to 1.3"),
    ("cell_classes=[{name: a, cells: [1], load: 2}]", r"load.*unknown key"),
])
def test_cell_classes_validation_names_the_key(override, match):
    with pytest.raises(ScenarioError, match=match):
        _scenario(override)


def test_cell_classes_scale_demand_exactly():
    plain = _scenario()
    het = _scenario("cell_classes=[{name: busy, cells: [3, 4], load_scale: 2.0, slice_load: {4: 0.5}},"
                    " {name: quiet, cells: [7], load_scale: 0.5}]")
    assert _scenario("cell_classes=[]") == plain  # the default changes nothing
    d0, d1 = Simulator(plain).demand(50), Simulator(het).demand(50)
    col4 = plain.slice_index[4]
    expect = np.ones_like(d0.users)
    expect[[3, 4]] = 2.0
    expect[[3, 4], col4] = 1.0
    expect[7] = 0.5
    active = d0.users > 0
    assert active[[3, 4, 7]].any()
    np.testing.assert_allclose(d1.users[active] / d0.users[active], expect[active], rtol=1e-12)
    np.testing.assert_allclose(d1.offered_mbps[active] / d0.offered_mbps[active], expect[active], rtol=1e-12)
    np.testing.assert_array_equal(cell_classes_of(het, np.arange(15))[[3, 4, 7, 0]], [0, 0, 1, -1])


@pytest.mark.parametrize("k", [2, 4])
def test_split_population_with_classes_matches_unsplit(k):
    sc = _scenario("cell_classes=[{name: a, cells: [0, 5, 9], load_scale: 1.8, slice_load: {1: 0.3}},"
                   " {name: b, fraction: 0.4, load_scale: 0.6}, {name: c, fraction: 0.3, slice_load: {2: 2.5}}]")
    labels = cell_classes_of(sc, np.arange(sc.cells))
    assert set(labels[[0, 5, 9]]) == {0} and {1, 2} <= set(labels.tolist())  # fraction classes got cells
    whole = Simulator(sc)
    parts = [Simulator(sc, ids) for ids in np.array_split(whole.cell_ids, k)]

    def shares(sim):
        return traffic_proportional(sim.demand().offered_mbps, sim.slice_mask())

    for _ in range(6):
        ref = whole.step(shares(whole))
        util = np.concatenate([p.cell_util for p in parts])  # halo exchange of last-period loads
        reps = [p.step(shares(p), halo_util=util[p.halo_ids]) for p in parts]
        for name in ["users", "offered_mbps", "prb_util", "r"]:
            assert np.array_equal(np.concatenate([getattr(r, name) for r in reps]), getattr(ref, name)), name


# ------------------------------------------------------------------------------------ transfer strategies
TINY = {"episode_len": 16, "train_batch": 32}
ENCODER_KEYS = ("pi_encoder.", "qf_encoder.", "qf_twin_encoder.")
HEAD_KEYS = ("pi.net.", "qf.net.", "qf_twin.net.")


@pytest.fixture(scope="module")
def source(ray_session, tmp_path_factory):
    from slicing.rl.transfer import pretrain_source

    sc = _scenario()
    src = pretrain_source(sc, [0, 1, 2], tmp_path_factory.mktemp("tl_source"), iterations=1, seed=0, **TINY)
    return sc, src


def test_pretrain_source_saves_checkpoint_and_buffer_transitions(source):
    _, src = source
    assert src["cells"] == [0, 1, 2] and src["obs_dim"] == 20 and len(src["rewards"]) == 1
    with np.load(src["transitions"]) as z:
        obs, act, rew, nxt = z["obs"], z["actions"], z["rewards"], z["next_obs"]
        chain = z["chain"]
    assert obs.shape == nxt.shape == (src["transition_count"], 20) and act.shape == (len(obs), 4)
    assert len(obs) >= 3 * 16 and np.abs(act).max() <= 1.0 and ((rew >= 0) & (rew <= 1)).all()
    same_chain = np.diff(chain) == 0
    np.testing.assert_array_equal(obs[1:][same_chain], nxt[:-1][same_chain])  # consecutive steps chain up
    assert chain.max() + 1 >= 3  # one trajectory per cell at least


def _pi_weight(state):
    return np.asarray(state["pi_encoder.net.mlp.0.weight"])


def test_model_transfer_copies_all_weights_and_syncs_env_runner(source, tmp_path):
    from slicing.rl.transfer import load_source_state, module_state, transfer_train

    sc, src = source
    want = load_source_state(src["checkpoint"])
    seen = {}

    def check(algo, info):
        got = module_state(algo)
        assert set(got) == set(want)
        seen["equal"] = all(np.array_equal(got[k], want[k]) for k in want)
        runner = algo.env_runner_group.local_env_runner.module["group_0"].state_dict()
        seen["runner"] = np.array_equal(runner["pi_encoder.net.mlp.0.weight"].numpy(), _pi_weight(want))
        seen["buffer"] = algo.local_replay_buffer.get_num_agent_timesteps()

    res = transfer_train(sc, [12, 13, 14], "model", src, iterations=1, seed=1, out=tmp_path, on_built=check, **TINY)
    assert seen == {"equal": True, "runner": True, "buffer": 0}
    assert res["strategy"] == "model" and len(res["rewards"]) == 1
    assert res["early_reward"] == res["final_reward"] == res["rewards"][0]
    trained = load_source_state(res["checkpoint"])
    assert not np.array_equal(_pi_weight(trained), _pi_weight(want))  # fine-tuned from there


def test_instance_transfer_fills_the_buffer_before_sampling(source, tmp_path):
    from slicing.rl.transfer import load_source_state, module_state, transfer_train

    sc, src = source
    seen = {}

    def check(algo, info):
        seen["buffer"] = algo.local_replay_buffer.get_num_agent_timesteps()
        seen["group_0"] = algo.local_replay_buffer.get_num_timesteps("group_0")
        seen["info"] = info["instances"]
        seen["same_weights"] = np.array_equal(_pi_weight(module_state(algo)),
                                              _pi_weight(load_source_state(src["checkpoint"])))
        sampled = algo.local_replay_buffer.sample(num_items=8, n_step=1)  # what SAC's update draws
        seen["sampled_obs"] = np.stack([e.get_observations(0) for e in sampled])

    res = transfer_train(sc, [12, 13, 14], "instance", src, iterations=1, seed=1, out=tmp_path, on_built=check,
                         **TINY)
    n = src["transition_count"]
    assert seen["buffer"] == seen["group_0"] == seen["info"] == n == res["instances"]
    assert not seen["same_weights"]  # instance transfer keeps the target's own random init
    with np.load(src["transitions"]) as z:
        rows = {tuple(np.round(o, 5)) for o in z["obs"]}
    assert all(tuple(np.round(o, 5)) in rows for o in seen["sampled_obs"])  # only source transitions so far


def test_feature_transfer_freezes_encoders_and_trains_heads(source, tmp_path):
    from slicing.rl.transfer import load_source_state, module_state, transfer_train

    sc, src = source
    want = load_source_state(src["checkpoint"])
    start = {}

    def check(algo, info):
        start.update(module_state(algo))
        start["_frozen"] = info["frozen"]

    res = transfer_train(sc, [12, 13, 14], "feature", src, iterations=1, seed=1, out=tmp_path, on_built=check,
                         **TINY)
    after = load_source_state(res["checkpoint"])
    enc = [k for k in want if k.startswith(ENCODER_KEYS)]
    heads = [k for k in want if k.startswith(HEAD_KEYS)]
    assert len(enc) >= 6 and len(heads) >= 6 and sorted(start["_frozen"]) == sorted(enc)
    for k in enc:
        np.testing.assert_array_equal(start[k], want[k])  # loaded from the source ...
        np.testing.assert_array_equal(after[k], want[k])  # ... and unchanged by training
    assert any(not np.array_equal(start[k], want[k]) for k in heads)  # heads: the target's own init
    assert any(not np.array_equal(after[k], start[k]) for k in heads)  # ... and they were trained


def test_mismatched_observation_spaces_and_bad_input(source, tmp_path):
    from slicing.config import build_scenario
    from slicing.rl.transfer import transfer_train

    sc, src = source
    data = sc.model_dump(mode="json")
    three = build_scenario(data | {"slices": data["slices"][:3], "initial_slices": [1, 2], "schedule": []})
    with pytest.raises(ValueError, match=r"source \[0, 1, 2\] has observation dim 20 but target \[3, 4, 5\] has 15"):
        transfer_train(three, [3, 4, 5], "integrated", src, 1, 0, tmp_path)
    no_hint = {k: v for k, v in src.items() if k != "obs_dim"}  # the checkpoint's own input layer is checked
    for strategy in ("model", "instance"):
        with pytest.raises(ValueError, match=r"observation dim 20 but target \[3, 4, 5\] has 15"):
            transfer_train(three, [3, 4, 5], strategy, no_hint, 1, 0, tmp_path)
    with pytest.raises(ValueError, match=r"strategy: 'copy'"):
        transfer_train(sc, [3], "copy", src, 1, 0, tmp_path)
    with pytest.raises(ValueError, match=r"needs a source"):
        transfer_train(sc, [3], "model", None, 1, 0, tmp_path)
    with pytest.raises(ValueError, match=r"'instance' needs the source's transitions"):
        transfer_train(sc, [3], "instance", src | {"transitions": None}, 1, 0, tmp_path)


# What each registered strategy carries over from the source: (source weights loaded, source transitions in the
# buffer). A strategy added to the registry without a row here fails the contract test below.
CARRIES = {"model": (True, False), "instance": (False, True), "integrated": (True, True), "feature": (True, False)}


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_registered_strategy_transfers_what_it_says(strategy, source, tmp_path):
    from slicing.rl.transfer import load_source_state, module_state, transfer_train

    sc, src = source
    weights, instances = CARRIES[strategy]
    want = load_source_state(src["checkpoint"])
    seen = {}

    def check(algo, info):
        seen["weights"] = np.array_equal(_pi_weight(module_state(algo)), _pi_weight(want))
        seen["buffer"] = algo.local_replay_buffer.get_num_agent_timesteps()

    res = transfer_train(sc, [12, 13, 14], strategy, src, iterations=1, seed=1, out=tmp_path, on_built=check, **TINY)
    assert res["strategy"] == strategy and len(res["rewards"]) == 1 and 0.0 <= res["rewards"][0] <= 1.0
    assert seen["weights"] is weights
    assert (seen["buffer"] == src["transition_count"]) is instances and (seen["buffer"] == 0) is not instances
    assert set(load_source_state(res["checkpoint"])) == set(want)  # a checkpoint of the same module
